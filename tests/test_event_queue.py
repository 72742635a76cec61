"""EventQueue: FIFO, never-blocking puts, overflow policies with exact Gap reports, close,
lifecycle coalescing and the lifecycle cap."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import re
import sys
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeGuard

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from polyfeed import HeartbeatConfig, MarketStream, StreamConfig
from polyfeed.aio.book_keeper import BookKeeper
from polyfeed.aio.event_queue import (
    EventQueue,
    FeederTurns,
    QueueIterator,
    estimate_size,
    event_assets,
    event_time,
)
from polyfeed.config import OverflowPolicy, QueueConfig
from polyfeed.core.book import BookOptions, BookRegistry, ResyncLimiter
from polyfeed.core.codec import decode_frame
from polyfeed.core.messages import (
    Book,
    LastTradePrice,
    Level,
    Notice,
    PriceChange,
    PriceChangeEntry,
    Unknown,
)
from polyfeed.errors import ConfigError, ConnectionClosedError, StreamClosedError
from polyfeed.events import (
    AssetChecked,
    BookInvalidated,
    BookResynced,
    Connected,
    ConnectionReplaced,
    Disconnected,
    Gap,
    Reconnecting,
    Resubscribed,
    Stale,
    is_lifecycle,
)
from polyfeed.testing import FakeClock, FakePolymarket

WALL = 1_800_000_000.0


def make(
    maxsize: int = 10,
    overflow: OverflowPolicy = "drop_oldest",
    alarm_at: int | None = None,
    wall: float = WALL,
) -> EventQueue:
    return EventQueue(
        QueueConfig(maxsize=maxsize, overflow=overflow, alarm_at=alarm_at), lambda: wall
    )


def book(asset: str, ts_ms: int) -> Book:
    return Book(market="0xm", asset_id=asset, timestamp=ts_ms, bids=[], asks=[])


def change(ts_ms: int, *assets: str) -> PriceChange:
    return PriceChange(
        market="0xm",
        timestamp=ts_ms,
        price_changes=tuple(
            PriceChangeEntry(asset_id=a, price="0.5", size="1", side="BUY") for a in assets
        ),
    )


async def drain(queue: EventQueue) -> list[object]:
    out: list[object] = []
    queue.close()
    while True:
        try:
            out.append(await queue.get())
        except StopAsyncIteration:
            return out


async def test_fifo() -> None:
    queue = make()
    assert queue.put_many([1, 2, 3])
    assert queue.put_many([4])
    assert [await queue.get() for _ in range(4)] == [1, 2, 3, 4]
    assert len(queue) == 0


def test_put_many_is_synchronous_and_never_blocks_when_full() -> None:
    assert not inspect.iscoroutinefunction(EventQueue.put_many)
    for overflow in ("drop_oldest", "buffer", "disconnect"):
        queue = make(maxsize=3, overflow=overflow)
        queue.put_many(range(1000))  # returns at once whatever the policy
        assert len(queue) == 3


async def test_the_queue_iterator_steps_through_get_until_the_queue_is_closed_and_drained() -> None:
    queue = make()
    queue.put_many([1, 2, 3])
    iterator = QueueIterator(queue)
    assert aiter(iterator) is iterator
    assert await anext(iterator) == 1
    queue.close()
    assert [item async for item in iterator] == [2, 3]
    assert repr(iterator).startswith("<QueueIterator over ")


async def test_get_waits_for_a_put() -> None:
    queue = make()
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    queue.put_many(["x"])
    assert await asyncio.wait_for(waiter, 1.0) == "x"


async def test_drop_oldest_reports_a_gap_before_the_next_item() -> None:
    queue = make(maxsize=3)
    queue.put_many([book("a", 1_000_000_000_000), book("b", 1_000_000_001_500)])
    queue.put_many([book("c", 1_000_000_002_000)])
    assert queue.put_many([book("d", 1_000_000_003_000), book("e", 1_000_000_004_000)])
    assert queue.dropped == 2
    assert len(queue) == 3
    gap = await queue.get()
    assert gap == Gap(
        started=1_000_000_000.0,
        ended=1_000_000_001.5,
        assets=["a", "b"],
        reason="consumer queue overflow",
        dropped=2,
    )
    rest = [await queue.get() for _ in range(3)]
    assert [b.asset_id for b in rest] == ["c", "d", "e"]
    # Reported once only.
    assert queue.take_gap() is None
    assert queue.dropped == 2


async def test_each_overflow_episode_gets_its_own_gap() -> None:
    queue = make(maxsize=2)
    queue.put_many([book("a", 1_000_000_000_000), book("b", 1_000_000_001_000)])
    queue.put_many([book("c", 1_000_000_002_000)])
    first = await queue.get()
    assert isinstance(first, Gap)
    assert (first.dropped, first.assets) == (1, ["a"])
    assert [(await queue.get()).asset_id for _ in range(2)] == ["b", "c"]
    # The consumer caught up (emptied the queue): a new burst is a new episode, reported alone.
    queue.put_many([book(name, 1_000_000_003_000 + i) for i, name in enumerate("def")])
    second = await queue.get()
    assert isinstance(second, Gap)
    assert (second.dropped, second.assets, second.started) == (1, ["d"], 1_000_000_003.0)
    assert [(await queue.get()).asset_id for _ in range(2)] == ["e", "f"]
    assert queue.dropped == 2
    assert queue.rooms_freed == 0


async def test_gap_lists_every_asset_of_dropped_price_changes_once() -> None:
    queue = make(maxsize=1)
    queue.put_many(
        [change(1_000_000_005_000, "y", "n"), change(1_000_000_001_000, "n", "z"), "keep"]
    )
    gap = await queue.get()
    assert isinstance(gap, Gap)
    assert gap.assets == ["y", "n", "z"]
    assert (gap.started, gap.ended) == (1_000_000_001.0, 1_000_000_005.0)
    assert await queue.get() == "keep"


async def test_drops_without_an_epoch_ms_timestamp_are_timed_by_the_wall_clock() -> None:
    queue = make(maxsize=1, wall=1234.5)
    seconds = LastTradePrice(market="m", asset_id="s", price="0.5", timestamp=1_700_000_000)
    queue.put_many(["no timestamp", seconds, "next"])
    gap = await queue.get()
    assert isinstance(gap, Gap)
    assert (gap.started, gap.ended, gap.assets, gap.dropped) == (1234.5, 1234.5, ["s"], 2)
    assert await queue.get() == "next"


async def test_lifecycle_events_are_never_dropped() -> None:
    for overflow in ("drop_oldest", "buffer", "disconnect"):
        queue = make(maxsize=2, overflow=overflow)
        connected = Connected(url="ws://x", attempt=1)
        disconnected = Disconnected(reason="gone", code=1006)
        queue.put_many([connected, "a", "b", "c", disconnected, "d"])
        items = await drain(queue)
        assert connected in items, overflow
        assert disconnected in items, overflow
        assert items.index(connected) < items.index(disconnected), overflow


async def test_disconnect_policy_returns_false_and_keeps_what_was_queued() -> None:
    queue = make(maxsize=2, overflow="disconnect")
    assert queue.put_many([book("a", 1_000_000_000_000)])
    assert queue.put_many([book("b", 1_000_000_001_000)])
    assert queue.put_many([book("c", 1_000_000_002_000)]) is False
    assert queue.overflowed
    assert queue.dropped == 1
    assert len(queue) == 2
    items = await drain(queue)
    assert [i.asset_id for i in items if isinstance(i, Book)] == ["a", "b"]
    gaps = [i for i in items if isinstance(i, Gap)]
    assert len(gaps) == 1
    assert (gaps[0].assets, gaps[0].dropped) == (["c"], 1)
    # The dropped event came after a and b: the gap is reported after them.
    assert items[-1] == gaps[0]


async def test_disconnect_gap_comes_before_events_queued_after_the_drop() -> None:
    queue = make(maxsize=2, overflow="disconnect")
    queue.put_many(["a", "b", "dropped"])
    assert await queue.get() == "a"
    queue.put_many(["after"])
    items = await drain(queue)
    assert items[0] == "b"
    assert isinstance(items[1], Gap)
    assert items[2] == "after"


async def test_buffer_policy_warns_once_at_alarm_at_and_again_after_recovering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="polyfeed.queue")
    queue = make(maxsize=100, overflow="buffer", alarm_at=10)
    queue.put_many(range(9))
    assert not caplog.records
    queue.put_many([9])
    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert record.levelno == logging.WARNING
    assert "10 of 100" in record.getMessage()
    assert "buffer" in record.getMessage()
    queue.put_many(range(20))
    assert len(caplog.records) == 1
    # Drain below half the alarm level: the next climb warns again.
    for _ in range(len(queue) - 3):
        await queue.get()
    queue.put_many([0])  # 4 queued: below half the alarm level
    assert len(caplog.records) == 1
    queue.put_many(range(6))
    assert len(caplog.records) == 2
    assert queue.dropped == 0


def test_buffer_alarm_defaults_to_eighty_percent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="polyfeed.queue")
    queue = make(maxsize=10, overflow="buffer")
    queue.put_many(range(7))
    assert not caplog.records
    queue.put_many([7])
    assert "8 of 10" in caplog.records[0].getMessage()


async def test_buffer_policy_drops_oldest_when_full(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="polyfeed.queue")
    queue = make(maxsize=3, overflow="buffer")
    assert queue.put_many([1, 2, 3, 4])
    assert queue.dropped == 1
    assert any("dropping" in r.getMessage() for r in caplog.records)
    gap = await queue.get()
    assert isinstance(gap, Gap)
    assert [await queue.get() for _ in range(3)] == [2, 3, 4]


async def test_close_with_error_drains_then_raises_it() -> None:
    queue = make()
    queue.put_many([1, 2])
    error = ConnectionClosedError(4001, "x")
    queue.close(error)
    assert await queue.get() == 1
    assert await queue.get() == 2
    with pytest.raises(ConnectionClosedError) as caught:
        await queue.get()
    assert caught.value is error
    with pytest.raises(ConnectionClosedError):
        await queue.get()


async def test_close_without_error_drains_then_stops() -> None:
    queue = make()
    queue.put_many([1])
    queue.close()
    assert await queue.get() == 1
    with pytest.raises(StopAsyncIteration):
        await queue.get()


async def test_close_wakes_a_waiting_consumer() -> None:
    queue = make()
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiter, 1.0)


async def test_pending_gap_is_delivered_before_close() -> None:
    queue = make(maxsize=1)
    queue.put_many(["old", "new"])
    queue.close()
    assert isinstance(await queue.get(), Gap)
    assert await queue.get() == "new"
    with pytest.raises(StopAsyncIteration):
        await queue.get()


def test_puts_after_close_are_ignored() -> None:
    queue = make()
    queue.close()
    assert queue.put_many([1, 2])
    assert len(queue) == 0


def test_high_water_and_repr() -> None:
    queue = make(maxsize=5)
    queue.put_many([1, 2, 3])
    assert queue.high_water == 3
    queue.get_nowait()
    queue.put_many([4])
    assert queue.high_water == 3
    queue.put_many([5, 6, 7, 8])
    assert queue.high_water == 5
    text = repr(queue)
    assert "5/5" in text
    assert "dropped=2" in text
    assert "high_water=5" in text
    assert "open" in text
    queue.close()
    assert "closed" in repr(queue)


def test_get_nowait() -> None:
    queue = make(maxsize=1)
    with pytest.raises(StreamClosedError):
        queue.get_nowait()
    queue.put_many(["a", "b"])
    assert isinstance(queue.get_nowait(), Gap)
    assert queue.get_nowait() == "b"


def test_event_helpers() -> None:
    assert event_assets(book("a", 1)) == ("a",)
    assert event_assets(change(1, "y", "n", "y")) == ("y", "n")
    assert event_assets(Connected(url="u", attempt=1)) == ()
    assert event_time(book("a", 1_700_000_000_123)) == pytest.approx(1_700_000_000.123)
    # Only epoch-ms values are trusted; a seconds value falls back to the drop time.
    trade = LastTradePrice(market="m", asset_id="a", price="0.5", timestamp=1_700_000_000)
    assert event_time(trade) is None
    assert event_time(Connected(url="u", attempt=1)) is None


# --------------------------------------------------------------------------- lifecycle bound


def invalidated(*assets: str, reason: str = "reconnect") -> BookInvalidated:
    return BookInvalidated(asset_ids=list(assets), reason=reason)


def resynced(*assets: str, source: str = "snapshot") -> BookResynced:
    return BookResynced(asset_ids=list(assets), source=source)


async def test_consecutive_reconnecting_merge_keeping_the_latest() -> None:
    queue = make()
    queue.put_many([Reconnecting(attempt=1, delay=0.1), Reconnecting(attempt=2, delay=0.2)])
    queue.put_many([Reconnecting(attempt=3, delay=0.4)])
    queue.put_many(["data", Reconnecting(attempt=4, delay=0.8)])
    assert await drain(queue) == [
        Reconnecting(attempt=3, delay=0.4),
        "data",
        Reconnecting(attempt=4, delay=0.8),
    ]
    assert queue.coalesced == 2


async def test_consecutive_book_events_of_one_cause_merge_naming_each_asset_once() -> None:
    queue = make()
    queue.put_many([invalidated("a", "b"), invalidated("b", "c")])
    queue.put_many([invalidated("d", reason="hash mismatch")])  # another cause
    queue.put_many([resynced("a"), resynced("b"), resynced("c", source="rest")])
    queue.put_many([resynced("d", source="rest"), "data", resynced("e", source="rest")])
    assert await drain(queue) == [
        invalidated("a", "b", "c"),
        invalidated("d", reason="hash mismatch"),
        resynced("a", "b"),
        resynced("c", "d", source="rest"),
        "data",
        resynced("e", source="rest"),
    ]
    assert queue.coalesced == 3


async def test_lifecycle_events_kept_from_a_dropped_stretch_merge_with_their_neighbour() -> None:
    queue = make(maxsize=3)
    queue.put_many([resynced("a"), book("a", 1_000_000_000_000), resynced("b")])
    queue.put_many([book("b", 1_000_000_001_000), book("c", 1_000_000_002_000)])
    queue.put_many([book("d", 1_000_000_003_000)])
    # The books of a and b were dropped; the two notices they separated became neighbours.
    assert queue.lifecycle_queued == 1
    items = await drain(queue)
    assert items[0] == resynced("a", "b")
    assert isinstance(items[1], Gap)
    assert (items[1].assets, items[1].dropped) == (["a", "b"], 2)
    assert items[2:] == [book("c", 1_000_000_002_000), book("d", 1_000_000_003_000)]


async def test_no_merge_across_a_pending_drop_gap() -> None:
    queue = make(maxsize=1, overflow="disconnect")
    queue.put_many([Reconnecting(attempt=1, delay=0.1)])
    queue.put_many(["dropped"])
    queue.put_many([Reconnecting(attempt=2, delay=0.2)])
    items = await drain(queue)
    assert items[0] == Reconnecting(attempt=1, delay=0.1)
    assert isinstance(items[1], Gap)
    assert items[2] == Reconnecting(attempt=2, delay=0.2)


async def test_past_the_cap_queued_lifecycle_events_collapse_into_one_summary_gap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="polyfeed.queue")
    queue = EventQueue(QueueConfig(maxsize=100, lifecycle_cap=4), lambda: WALL)
    queue.put_many(
        [
            Disconnected(reason="dropped"),
            invalidated("a", "b"),
            "x",
            Gap(started=WALL - 5.0, ended=WALL - 1.0, assets=["a", "b"], reason="reconnect"),
            "y",
            Stale(kind="asset", silent_for=2.0, asset_ids=["c"]),
        ]
    )
    assert queue.lifecycle_queued == 4
    assert queue.collapses == 0
    queue.put_many([Connected(url="ws://x", attempt=2), "z"])
    assert queue.lifecycle_queued == 1
    assert queue.collapses == 1
    assert len(queue) == 4
    items = await drain(queue)
    assert items == [
        Gap(
            started=WALL - 5.0,
            ended=WALL,
            assets=["a", "b", "c"],
            reason="lifecycle overflow",
            collapsed=5,
        ),
        "x",
        "y",
        "z",
    ]
    assert "5 lifecycle events" in caplog.text


async def test_a_later_collapse_folds_the_earlier_summary_and_the_pending_drops() -> None:
    clock = [WALL]
    queue = EventQueue(QueueConfig(maxsize=2, lifecycle_cap=2), lambda: clock[0])
    queue.put_many([resynced("a"), Disconnected(reason="x"), Connected(url="u", attempt=1)])
    assert (queue.collapses, queue.lifecycle_queued) == (1, 1)
    clock[0] += 10.0
    queue.put_many([book("b", 1_000_000_000_000), book("c", 1_000_000_001_000), "d"])
    assert queue.dropped == 1
    # Into a full queue, each lifecycle event takes the slot of the oldest market event.
    queue.put_many([Disconnected(reason="y"), Connected(url="u", attempt=2)])
    assert queue.dropped == 3
    assert queue.collapses == 2
    assert await drain(queue) == [
        Gap(
            started=1_000_000_000.0,  # the first dropped book is older than anything else
            ended=WALL + 10.0,
            assets=["a", "b", "c"],
            reason="lifecycle overflow",
            dropped=3,
            collapsed=5,
        )
    ]


def test_lifecycle_cap_is_validated_and_shown() -> None:
    with pytest.raises(ConfigError):
        QueueConfig(lifecycle_cap=0)
    queue = make()
    queue.put_many([Reconnecting(attempt=1, delay=0.1), Reconnecting(attempt=2, delay=0.1)])
    text = repr(queue)
    assert "lifecycle=1/256" in text
    assert "coalesced=1" in text
    assert "collapses=0" in text


def measured(make_one: Callable[[], object]) -> int:
    """Bytes allocated by building one object (tracemalloc must be on)."""
    before = tracemalloc.get_traced_memory()[0]
    kept = make_one()
    size = tracemalloc.get_traced_memory()[0] - before
    del kept
    return size


@pytest.mark.timeout(60)
async def test_a_stalled_consumer_2000_assets_and_50_reconnects_stay_within_the_bound() -> None:
    assets = [f"{index:077d}" for index in range(2000)]  # token ids are 77 digits
    clock = FakeClock(wall_start=WALL)
    registry = BookRegistry(BookOptions(hash_check_every=0))
    queue = EventQueue(QueueConfig(), clock.wall)  # the defaults: 10,000 and drop_oldest
    keeper = BookKeeper(
        registry,
        clock=clock,
        rest=None,
        limiter=ResyncLimiter(),
        spawn=lambda factory, name: None,
        emit=queue.put_many,
        refresh=lambda ids: None,
    )
    stamp = itertools.count(1_800_000_000_000)

    def emit(events: Sequence[object]) -> None:
        # What the supervisor does with what the reader decodes.
        queue.put_many(keeper.observe(events))

    levels = [Level("0.40", "100"), Level("0.45", "50")]
    # Built once: the data side is bounded by maxsize anyway, the lifecycle side is measured.
    snapshots = [
        Book(market="0xm", asset_id=asset, timestamp=next(stamp), bids=levels, asks=[])
        for asset in assets
    ]
    changes = [change(next(stamp), assets[0]) for _ in range(100)]

    def connection(number: int) -> None:
        emit([Connected(url="ws://127.0.0.1/ws/market", attempt=number, connection_id=number)])
        emit([Resubscribed(assets=list(assets), connection_id=number)])
        emit([Gap(started=clock.wall() - 1.0, ended=clock.wall(), assets=assets, reason="x")])
        for start in range(0, len(assets), 100):  # the replay, in frames of 100 snapshots
            emit(snapshots[start : start + 100])
        emit(changes)

    def reconnect(number: int) -> None:
        emit([Disconnected(reason="dropped", connection_id=number - 1)])
        for attempt in range(1, 4):  # two refused handshakes, then the connection
            emit([Reconnecting(attempt=attempt, delay=0.1 * attempt)])
        connection(number)
        clock.advance(1.0)

    connection(1)  # books, queue full: the steady state before the link starts flapping
    bound_items = queue.config.maxsize + queue.lifecycle_cap
    tracemalloc.start()
    try:
        data_bytes = measured(lambda: Book(**msgspec.structs.asdict(snapshots[0])))
        lifecycle_bytes = measured(lambda: Resubscribed(assets=list(assets)))
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        lengths = []
        for number in range(2, 52):
            reconnect(number)
            lengths.append(len(queue))
            assert queue.lifecycle_queued <= queue.lifecycle_cap
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert max(lengths) <= bound_items
    # What the bound allows: maxsize market events and lifecycle_cap events naming every asset
    # (the pending drop record and the summary gap are within the slack).
    bound_bytes = queue.config.maxsize * data_bytes + queue.lifecycle_cap * lifecycle_bytes
    assert peak < bound_bytes + 2_000_000, (peak, bound_bytes)
    assert queue.collapses >= 1
    items = await drain(queue)
    summary = items[0]
    assert isinstance(summary, Gap)
    assert summary.reason == "lifecycle overflow"
    assert set(summary.assets) == set(assets)
    assert summary.dropped > 0
    # A consumer that follows the notices ends with every book trusted again.
    last = max(i for i, item in enumerate(items) if isinstance(item, BookInvalidated))
    assert items[last] == BookInvalidated(asset_ids=assets, reason="reconnect")
    after = [item for item in items[last:] if isinstance(item, BookResynced)]
    assert sorted(itertools.chain.from_iterable(e.asset_ids for e in after)) == assets


# --------------------------------------------------------------------------- slow consumer


def trades(count: int, start: itertools.count[int]) -> list[LastTradePrice]:
    return [
        LastTradePrice(market="0xm", asset_id="a", price="0.5", timestamp=next(start))
        for _ in range(count)
    ]


def is_market(item: object) -> TypeGuard[LastTradePrice | Book]:
    return isinstance(item, LastTradePrice | Book)


def assert_gaps_in_place(got: Sequence[object]) -> None:
    """Every drop gap sits where its events were: after older, before newer market events."""
    for index, item in enumerate(got):
        if isinstance(item, Gap) and item.reason == "consumer queue overflow":
            before = [event_time(e) for e in got[:index] if is_market(e)]
            after = [event_time(e) for e in got[index + 1 :] if is_market(e)]
            assert all(t is not None and t < item.started for t in before), index
            assert all(t is not None and t > item.ended for t in after), index


@pytest.mark.parametrize("overflow", ["drop_oldest", "buffer"])
def test_a_consumer_at_a_tenth_of_the_feed_rate_reads_mostly_market_events(
    overflow: OverflowPolicy,
) -> None:
    clock = FakeClock(wall_start=WALL)
    queue = EventQueue(QueueConfig(maxsize=1000, overflow=overflow), clock.wall, now=clock.now)
    stamps = itertools.count(1_800_000_000_000)
    put = got_count = 0
    got: list[object] = []
    for _ in range(5000):  # the feed: 10 events per read, 1 ms apart
        queue.put_many(trades(10, stamps))
        put += 10
        clock.advance(0.001)
        got.append(queue.get_nowait())
    queue.close()
    while True:
        try:
            got.append(queue.get_nowait())
        except StreamClosedError:
            break
    got_count = len(got)
    market = [item for item in got if is_market(item)]
    gaps = [item for item in got if isinstance(item, Gap)]
    assert len(market) / got_count > 0.95, (len(market), len(gaps))
    # Exactly what it missed: every event was read or counted in a gap, and the gaps add up to
    # the queue's own count.
    assert len(market) + sum(gap.dropped for gap in gaps) == put
    assert sum(gap.dropped for gap in gaps) == queue.dropped
    assert_gaps_in_place(got)
    assert queue.rooms_freed >= 1


async def test_a_lagging_consumer_s_next_gap_frees_room_down_to_the_low_water_mark() -> None:
    queue = EventQueue(QueueConfig(maxsize=10, low_water=0.3), lambda: WALL)
    stamps = itertools.count(1_800_000_000_000)
    queue.put_many(trades(12, stamps))  # a burst: 2 dropped
    first = await queue.get()
    assert isinstance(first, Gap)
    assert first.dropped == 2
    assert queue.rooms_freed == 0  # the first gap of an episode drops nothing more
    await queue.get()  # the consumer goes on, but does not empty the queue...
    queue.put_many(trades(2, stamps))  # ... and the next drop finds it lagging
    second = await queue.get()
    assert isinstance(second, Gap)
    # One dropped by the put (10 queued), then 7 more: down to 3 of 10 events by the gap.
    assert (second.dropped, len(queue), queue.rooms_freed) == (1 + 7, 3, 1)
    assert queue.dropped == 2 + 8
    rest = await drain(queue)
    assert [item.timestamp for item in rest if is_market(item)] == [
        1_800_000_000_000 + n for n in (11, 12, 13)
    ]
    assert len(rest) == 3


def test_the_queue_full_warning_is_rate_limited_on_the_injected_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="polyfeed.queue")
    clock = FakeClock(wall_start=WALL)
    queue = EventQueue(QueueConfig(maxsize=10, alarm_at=10**6), clock.wall, now=clock.now)
    stamps = itertools.count(1_800_000_000_000)

    def overload(seconds: float) -> None:
        for _ in range(int(seconds * 100)):
            queue.put_many(trades(10, stamps))
            queue.get_nowait()
            clock.advance(0.01)

    overload(9.9)
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().endswith("1 dropped since the last warning, 1 in all")
    overload(0.2)  # past DROP_WARNING_INTERVAL: one more line, with what was dropped since
    assert len(caplog.records) == 2
    since, total = re.findall(r"(\d+) dropped since the last warning, (\d+) in all", caplog.text)[1]
    assert int(since) == int(total) - 1 > 900  # ~10 s of 9 drops every 10 ms


async def test_disconnect_drops_after_later_queued_events_get_a_gap_of_their_own() -> None:
    queue = make(maxsize=2, overflow="disconnect")
    stamps = itertools.count(1_800_000_000_000)
    a, b, dropped, c, dropped_later = trades(5, stamps)
    queue.put_many([a, b, dropped])  # full: dropped, the connection is torn down
    assert await queue.get() == a
    queue.put_many([c])  # the next connection, into the room the consumer made
    queue.put_many([Connected(url="ws://x", attempt=3), dropped_later])  # full again
    items = await drain(queue)
    gaps = [item for item in items if isinstance(item, Gap)]
    assert [gap.dropped for gap in gaps] == [1, 1]
    assert items == [b, gaps[0], c, Connected(url="ws://x", attempt=3), gaps[1]]
    assert_gaps_in_place([a, *items])


async def test_disconnect_drained_waits_for_the_consumer_to_reach_the_low_water_mark() -> None:
    queue = EventQueue(QueueConfig(maxsize=10, overflow="disconnect"), lambda: WALL)
    stamps = itertools.count(1_800_000_000_000)
    assert queue.put_many(trades(11, stamps)) is False
    waiter = asyncio.ensure_future(queue.drained())
    for _ in range(4):
        await asyncio.sleep(0)
        assert not waiter.done()
        await queue.get()  # 10 -> 6 queued
    await asyncio.sleep(0)
    assert not waiter.done()
    await queue.get()  # 5 queued: drained to half of maxsize
    await asyncio.wait_for(waiter, 1.0)
    # Below the mark already, or under another policy, or closed: at once.
    await asyncio.wait_for(queue.drained(), 1.0)
    full = make(maxsize=2)
    full.put_many(trades(5, stamps))
    await asyncio.wait_for(full.drained(), 1.0)
    stuck = EventQueue(QueueConfig(maxsize=10, overflow="disconnect"), lambda: WALL)
    stuck.put_many(trades(10, stamps))
    waiter = asyncio.ensure_future(stuck.drained())
    await asyncio.sleep(0)
    stuck.close()
    await asyncio.wait_for(waiter, 1.0)


# --------------------------------------------------------------------------- bytes


def levels(count: int) -> list[Level]:
    return [Level(f"0.{index:04d}", str(index + 1)) for index in range(count)]


def deep_size(item: object, seen: set[int] | None = None) -> int:
    """Every object ``item`` references, counted once (what holding it really costs)."""
    seen = set() if seen is None else seen
    if id(item) in seen:
        return 0
    seen.add(id(item))
    size = sys.getsizeof(item)
    if isinstance(item, msgspec.Struct):
        size += sum(deep_size(getattr(item, name), seen) for name in item.__struct_fields__)
    elif isinstance(item, list | tuple):
        size += sum(deep_size(element, seen) for element in item)
    return size


def capture_frames(folder: Path) -> Iterable[str]:
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".json":
            yield path.read_text()
        elif path.suffix == ".txt":
            yield from (line for line in path.read_text().splitlines() if line.strip())


def test_the_size_estimate_is_within_a_factor_of_two_on_real_and_huge_events(
    fixtures_dir: Path,
) -> None:
    events: list[object] = []
    for frame in capture_frames(fixtures_dir):
        for channel in ("market", "user"):
            events.extend(decode_frame(frame, channel))
    kinds = {type(event).__name__ for event in events}
    assert {"Book", "PriceChange", "Trade", "Order", "NewMarket", "Unknown"} <= kinds
    asset_ids = [f"{index:077d}" for index in range(2000)]
    # Huge ones as the decoder makes them (every string its own object).
    huge_book = {
        "event_type": "book",
        "market": "0xm",
        "asset_id": asset_ids[0],
        "timestamp": "1800000000000",
        "hash": "0x" + "ab" * 20,
        "bids": [{"price": f"0.{i:04d}", "size": f"{i}.5"} for i in range(5000)],
        "asks": [],
    }
    huge_change = {
        "event_type": "price_change",
        "market": "0xm",
        "timestamp": "1800000000000",
        "price_changes": [
            {
                "asset_id": asset_ids[i % 2],
                "price": f"0.{i:03d}",
                "size": f"{i}",
                "side": "BUY",
                "hash": "0x" + "cd" * 20,
                "best_bid": "0.5",
                "best_ask": "0.6",
            }
            for i in range(1000)
        ],
    }
    events += [
        *decode_frame(msgspec.json.encode(huge_book)),
        *decode_frame(msgspec.json.encode(huge_change)),
        Unknown(event_type="x", raw=b"x" * 1_000_000),
        Notice(text="N" * 100_000),
        # Lifecycle events at their most (ids not shared with the subscriptions).
        BookInvalidated(asset_ids=[f"{index:077d}" for index in range(2000)], reason="r"),
        Resubscribed(assets=[f"{index:077d}" for index in range(2000)]),
        # A pool's events (issue 12) are charged for the assets they name, too.
        AssetChecked(
            asset_ids=[f"{index:077d}" for index in range(2000)], action="redrive", silent_for=1.0
        ),
        ConnectionReplaced(
            pool_connection=1, reason="r", asset_ids=[f"{index:077d}" for index in range(2000)]
        ),
    ]
    for event in events:
        estimate, actual = estimate_size(event), deep_size(event)
        assert actual / 2 <= estimate <= actual * 2, (type(event).__name__, estimate, actual)


@pytest.mark.parametrize("overflow", ["drop_oldest", "buffer", "disconnect"])
def test_the_queue_is_bounded_in_bytes_with_large_items(overflow: OverflowPolicy) -> None:
    max_bytes = 4 * 1024 * 1024
    queue = EventQueue(
        QueueConfig(maxsize=10_000, max_bytes=max_bytes, overflow=overflow), lambda: WALL
    )
    stamps = itertools.count(1_800_000_000_000)

    def big_book() -> Book:  # ~5,000 levels: about 750 KB held
        return Book(market="0xm", asset_id="a", timestamp=next(stamps), bids=levels(5000), asks=[])

    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(40):
            queue.put_many([big_book()])
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert len(queue) <= 5  # 4 MiB / ~750 KB, whatever maxsize allows
    assert queue.queued_bytes <= max_bytes
    assert held < 2 * max_bytes, held
    assert queue.dropped == 40 - len(queue)
    # Small events fill the same budget up to maxsize.
    small = EventQueue(QueueConfig(maxsize=100, max_bytes=max_bytes), lambda: WALL)
    small.put_many(trades(200, stamps))
    assert len(small) == 100


def test_an_event_larger_than_max_bytes_is_taken_into_an_empty_queue_only() -> None:
    queue = EventQueue(QueueConfig(max_bytes=10_000), lambda: WALL)
    stamps = itertools.count(1_800_000_000_000)
    huge = Book(market="0xm", asset_id="a", timestamp=next(stamps), bids=levels(100), asks=[])
    assert estimate_size(huge) > 10_000
    queue.put_many([huge])
    assert len(queue) == 1
    queue.put_many(trades(3, stamps))  # the huge one makes room for them
    assert queue.dropped == 1
    assert len(queue) == 3
    queue.put_many([huge])  # and they for it
    assert (queue.dropped, len(queue)) == (4, 1)


# ---------------------------------------------------------------------- against the fake server


async def received(stream: MarketStream, frames: int) -> None:
    """Wait (up to 5 s) until the stream has read ``frames`` frames in all."""
    for _ in range(5000):
        if stream.metrics.messages_received_total >= frames:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{stream.metrics.messages_received_total} of {frames} frames read")


@pytest.mark.timeout(30)
async def test_a_stream_consumer_at_a_tenth_of_a_fast_flow_reads_mostly_market_events() -> None:
    config = StreamConfig(
        queue=QueueConfig(maxsize=400),
        heartbeat=HeartbeatConfig(interval=0.5, pong_timeout=5.0),
    )
    async with (
        FakePolymarket(markets=2, seed=81) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=config) as stream,
    ):
        got: list[object] = []
        while not any(isinstance(item, Book) for item in got):
            got.append(await anext(stream))
        frames = stream.metrics.messages_received_total
        for _ in range(600):
            # The feed: about ten frames of order flow per event the consumer reads.
            burst = await fake.burst(8)
            frames += burst.frames
            await received(stream, frames)
            for _ in range(max(1, burst.frames // 10)):
                got.append(await anext(stream))
        # The feed stops: the consumer reads what is left, the last drop report included.
        while True:
            try:
                got.append(await asyncio.wait_for(anext(stream), 0.2))
            except TimeoutError:
                break
        dropped = stream.health().dropped_events
        assert stream.metrics.connects_total == 1
    market = [item for item in got if isinstance(item, PriceChange | LastTradePrice | Book)]
    gaps = [item for item in got if isinstance(item, Gap)]
    assert gaps, "the consumer was slow enough to overflow the queue"
    assert len(market) / len(got) > 0.9, (len(market), len(got), len(gaps))
    assert sum(gap.dropped for gap in gaps) == dropped


# --------------------------------------------------------------------------- stateful


ASSETS = ["a", "b", "c"]
LIFECYCLE_EVENTS = st.one_of(
    st.builds(Reconnecting, attempt=st.integers(1, 9), delay=st.sampled_from([0.1, 0.5])),
    st.builds(
        BookInvalidated,
        asset_ids=st.lists(st.sampled_from(ASSETS), min_size=1, max_size=3, unique=True),
        reason=st.sampled_from(["reconnect", "hash mismatch"]),
    ),
    st.builds(
        BookResynced,
        asset_ids=st.lists(st.sampled_from(ASSETS), min_size=1, max_size=3, unique=True),
        source=st.sampled_from(["snapshot", "rest"]),
    ),
    st.builds(Disconnected, reason=st.just("dropped")),
    st.builds(Connected, url=st.just("ws://x"), attempt=st.integers(1, 9)),
    st.builds(
        Gap,
        started=st.just(WALL - 1.0),
        ended=st.just(WALL),
        assets=st.lists(st.sampled_from(ASSETS), max_size=3, unique=True),
        reason=st.just("reconnect"),
    ),
)


BookState = tuple[str, str] | None


def book_states(events: Iterable[object]) -> dict[str, BookState]:
    """Per asset, what a consumer following the notices knows: ("invalidated", reason),
    ("resynced", source), or None after a summary gap named it (ask ``stream.books``)."""
    state: dict[str, BookState] = {}
    for event in events:
        if isinstance(event, BookInvalidated):
            state.update(dict.fromkeys(event.asset_ids, ("invalidated", event.reason)))
        elif isinstance(event, BookResynced):
            state.update(dict.fromkeys(event.asset_ids, ("resynced", event.source)))
        elif isinstance(event, Gap) and event.reason == "lifecycle overflow":
            state.update(dict.fromkeys(event.assets))
    return state


def canonical(events: Iterable[object]) -> list[object]:
    """The lifecycle events as a consumer can tell them apart: drop gaps left out, runs of one
    kind of book notice as one set of assets, runs of ``Reconnecting`` as the last one."""
    out: list[object] = []
    for event in events:
        if not is_lifecycle(event) or (
            isinstance(event, Gap) and event.reason == "consumer queue overflow"
        ):
            continue
        previous = out[-1] if out else None
        if isinstance(event, BookInvalidated | BookResynced):
            key = (type(event), getattr(event, "reason", None) or getattr(event, "source", None))
            ids = frozenset(event.asset_ids)
            if isinstance(previous, tuple) and previous[0] == key:
                out[-1] = (key, previous[1] | ids)
            else:
                out.append((key, ids))
        elif isinstance(event, Reconnecting) and isinstance(previous, Reconnecting):
            out[-1] = event
        else:
            out.append(event)
    return out


class QueueMachine(RuleBasedStateMachine):
    """Any puts and gets: the bound holds, no market event is lost unreported, and (without a
    collapse) the coalesced lifecycle stream means what the one put in meant."""

    def __init__(self) -> None:
        super().__init__()
        self.queue = make()
        self.put: list[object] = []
        self.got: list[object] = []
        self.sequence = itertools.count(1)

    @initialize(
        maxsize=st.integers(1, 6),
        cap=st.sampled_from([1, 3, 64, 64, 64]),
        overflow=st.sampled_from(["drop_oldest", "buffer", "disconnect"]),
        max_bytes=st.sampled_from([1_500, 4_000, 64 * 1024 * 1024]),
        low_water=st.sampled_from([0.0, 0.5, 0.9]),
    )
    def configure(
        self, maxsize: int, cap: int, overflow: OverflowPolicy, max_bytes: int, low_water: float
    ) -> None:
        self.queue = EventQueue(
            QueueConfig(
                maxsize=maxsize,
                overflow=overflow,
                lifecycle_cap=cap,
                max_bytes=max_bytes,
                low_water=low_water,
            ),
            lambda: WALL,
        )

    @rule(
        batch=st.lists(
            st.one_of(
                st.sampled_from(ASSETS).map(lambda a: ("data", a)),
                st.sampled_from(ASSETS).map(lambda a: ("data", a)),
                st.tuples(st.sampled_from(ASSETS), st.integers(0, 12)).map(
                    lambda pair: ("book", *pair)
                ),
                LIFECYCLE_EVENTS,
            ),
            max_size=8,
        )
    )
    def put_batch(self, batch: list[object]) -> None:
        items: list[object] = []
        for item in batch:
            if isinstance(item, tuple) and item[0] == "data":
                seq = next(self.sequence)
                item = LastTradePrice(
                    market="m", asset_id=item[1], price=str(seq), timestamp=1_800_000_000_000 + seq
                )
            elif isinstance(item, tuple):  # a book of 0-12 levels: 600-2,400 estimated bytes
                seq = next(self.sequence)
                _, asset, depth = item
                item = Book(
                    market="m",
                    asset_id=asset,
                    timestamp=1_800_000_000_000 + seq,
                    bids=levels(depth),
                    asks=[],
                )
            items.append(item)
        self.put.extend(items)
        self.queue.put_many(items)

    @rule(count=st.integers(1, 8))
    def take(self, count: int) -> None:
        for _ in range(count):
            try:
                self.got.append(self.queue.get_nowait())
            except StreamClosedError:
                return

    @invariant()
    def within_the_bound(self) -> None:
        queue = self.queue
        assert len(queue) <= queue.config.maxsize + queue.lifecycle_cap
        assert queue.lifecycle_queued <= queue.lifecycle_cap
        # White box: the count the cap is checked against is the true count.
        queued = [*queue._kept, *queue._items]
        assert queue.lifecycle_queued == sum(1 for item in queued if is_lifecycle(item))
        assert list(queue._sizes) == list(map(estimate_size, queue._items))
        assert queue.queued_bytes == sum(queue._sizes)
        # The byte bound on market events (one larger event alone excepted).
        market = [item for item in queue._items if is_market(item)]
        assert sum(map(estimate_size, market)) <= queue.config.max_bytes or len(market) == 1

    def teardown(self) -> None:
        self.take(10**6)
        queue, got, put = self.queue, self.got, self.put
        data_put = [item for item in put if is_market(item)]
        data_got = [item for item in got if is_market(item)]
        # In order, and every missing one counted in a Gap.
        assert [d.timestamp for d in data_got] == sorted(d.timestamp for d in data_got)
        dropped = sum(item.dropped for item in got if isinstance(item, Gap))
        assert len(data_got) + dropped == len(data_put)
        assert queue.dropped == dropped
        # Each drop gap where its events were (the disconnect policy's too).
        assert_gaps_in_place(got)
        # Every notice reaches the consumer, merged or folded into a summary gap.
        summarised = {
            asset
            for item in got
            if isinstance(item, Gap) and item.reason == "lifecycle overflow"
            for asset in item.assets
        }
        told = {(asset, state) for item in got for asset, state in book_states([item]).items()}
        for item in put:
            for asset, state in book_states([item]).items():
                assert (asset, state) in told or asset in summarised, (asset, state)
        # What the consumer knows is true, or marked unknown by a summary gap.
        known, truth = book_states(got), book_states(put)
        for asset in known.keys() | truth.keys():
            assert asset in known, asset
            assert known[asset] in (None, truth.get(asset)), asset
        if queue.collapses:
            assert any(isinstance(i, Gap) and i.reason == "lifecycle overflow" for i in got)
            return
        assert known == truth
        assert canonical(got) == canonical(put)
        for kind in (Connected, Disconnected):
            assert [i for i in got if isinstance(i, kind)] == [
                i for i in put if isinstance(i, kind)
            ]
        reconnecting_put = [i for i in put if isinstance(i, Reconnecting)]
        reconnecting_got = [i for i in got if isinstance(i, Reconnecting)]
        assert reconnecting_got[-1:] == reconnecting_put[-1:]


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


# ---------------------------------------------------------------- feeders' turns


async def test_feeders_take_turns_within_a_frame_budget_and_the_consumer_runs_between() -> None:
    turns = FeederTurns(frames_per_turn=500)
    log: list[str] = []

    def feeder(name: str, frames: int) -> Callable[[], int]:
        def process() -> int:
            log.append(name)
            return frames

        return process

    loop = asyncio.get_running_loop()
    # A burst on four sockets: each read is a batch of 400 frames.
    for name in "abcd":
        turns.schedule(feeder(name, 400))
    # The consumer's wake-up, scheduled when the first events were queued.
    loop.call_soon(lambda: log.append("consumer"))
    for _ in range(5):
        await asyncio.sleep(0)
        loop.call_soon(lambda: log.append("consumer"))
    # Budget 500: two batches a turn (the second one overdraws it), the consumer between turns.
    assert log[:5] == ["a", "b", "consumer", "c", "d"]
    assert turns.turns == 2
    assert "waiting=0 scheduled=False turns=2" in repr(turns)


async def test_under_light_load_every_waiting_batch_runs_in_one_turn() -> None:
    turns = FeederTurns()
    ran: list[int] = []

    def batch(index: int, frames: int) -> Callable[[], int]:
        def process() -> int:
            ran.append(index)
            return frames

        return process

    for index in range(50):
        turns.schedule(batch(index, 7))
    await asyncio.sleep(0)
    assert ran == list(range(50))
    assert turns.turns == 1
    # Scheduling after the turn starts a new one; an empty batch costs no budget.
    turns.schedule(batch(50, 0))
    turns.schedule(batch(51, 0))
    await asyncio.sleep(0)
    assert ran[-2:] == [50, 51]
    assert turns.turns == 2


async def test_a_batch_that_raises_does_not_strand_the_batches_behind_it() -> None:
    turns = FeederTurns()
    ran: list[str] = []

    def broken() -> int:
        raise RuntimeError("a bug in a batch")

    def fine() -> int:
        ran.append("fine")
        return 1

    loop = asyncio.get_running_loop()
    errors: list[object] = []
    loop.set_exception_handler(lambda _, context: errors.append(context.get("exception")))
    try:
        turns.schedule(broken)
        turns.schedule(fine)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert ran == ["fine"]
    assert [type(error) for error in errors] == [RuntimeError]


class FakeLoop:
    """Runs ``call_soon`` callbacks a turn at a time, as asyncio does: a turn runs what was
    scheduled before it began; what those schedule runs in the next turn."""

    def __init__(self) -> None:
        self.ready: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.ready.append(callback)

    def run_turn(self) -> None:
        ready, self.ready = self.ready, []
        for callback in ready:
            callback()


@given(
    budget=st.integers(1, 50),
    waves=st.lists(st.lists(st.integers(0, 30), max_size=8), min_size=1, max_size=6),
)
def test_feeder_turns_run_every_batch_once_in_order_and_each_turn_within_its_budget(
    budget: int, waves: list[list[int]]
) -> None:
    # Each wave is the batches scheduled in one loop turn (reads of many sockets).
    loop = FakeLoop()
    turns = FeederTurns(frames_per_turn=budget, call_soon=loop.call_soon)
    ran: list[tuple[int, int]] = []  # (turn, batch number)
    sizes: list[int] = []

    def batch(number: int, frames: int) -> Callable[[], int]:
        def process() -> int:
            ran.append((turns.turns, number))
            return frames

        return process

    for wave in waves:
        for frames in wave:
            turns.schedule(batch(len(sizes), frames))
            sizes.append(frames)
        loop.run_turn()
    for _ in range(len(sizes) + 1):
        loop.run_turn()
    assert [number for _, number in ran] == list(range(len(sizes)))  # once each, in order
    assert "waiting=0 scheduled=False" in repr(turns)
    assert loop.ready == []
    by_turn: dict[int, list[int]] = {}
    for turn, number in ran:
        by_turn.setdefault(turn, []).append(sizes[number])
    for spent in by_turn.values():
        # A turn stops at the first batch that spends what is left of the budget.
        assert sum(spent[:-1]) < budget
