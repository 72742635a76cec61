"""The recorder loop (batch window, backpressure, retries, graceful stop, downtime gap) and the
record codec, driven by an in-memory source and sink on a FakeClock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from polyfeed import (
    Book,
    BookInvalidated,
    BookResynced,
    Connected,
    Disconnected,
    Gap,
    LastTradePrice,
    Level,
    Malformed,
    Notice,
    Order,
    PriceChange,
    PriceChangeEntry,
    Reconnecting,
    Resubscribed,
    Stale,
    Trade,
    Unknown,
)
from polyfeed.errors import AuthenticationError, ConfigError, SinkError, StreamClosedError
from polyfeed.sinks.base import RESTART_GAP_REASON, Recorder, Resume, from_record, to_record
from polyfeed.testing import FakeClock
from record_helpers import MemorySink, QueueSource

ASSET = "111"
OTHER = "222"


def change(ts: int, asset: str = ASSET, price: str = "0.5") -> PriceChange:
    return PriceChange(
        market="0xm",
        timestamp=ts,
        price_changes=(PriceChangeEntry(asset_id=asset, price=price, size="10", side="BUY"),),
    )


EVENTS: list[object] = [
    Book(
        market="0xm",
        asset_id=ASSET,
        timestamp=1_700_000_000_123,
        bids=[Level("0.4", "10")],
        asks=[Level("0.6", "5")],
        hash="h",
    ),
    PriceChange(
        market="0xm",
        timestamp=1_700_000_000_124,
        price_changes=(
            PriceChangeEntry(asset_id=ASSET, price="0.5", size="1", side="BUY", hash="a"),
            PriceChangeEntry(asset_id=OTHER, price="0.5", size="1", side="SELL", hash="b"),
        ),
    ),
    LastTradePrice(market="0xm", asset_id=ASSET, price="0.5", timestamp=1_700_000_000_125),
    Order(
        id="o",
        market="0xm",
        asset_id=ASSET,
        side="BUY",
        price="0.5",
        original_size="10",
        size_matched="0",
        type="PLACEMENT",
        timestamp=1_700_000_000_126,
    ),
    Trade(
        id="t", market="0xm", asset_id=ASSET, side="BUY", size="1", price="0.5", status="MATCHED"
    ),
    Connected(url="ws://127.0.0.1:1/ws/market", attempt=1),
    Disconnected(reason="closed", code=1012),
    Reconnecting(attempt=2, delay=0.1),
    Stale(kind="asset", silent_for=3.0, asset_ids=[ASSET]),
    Resubscribed(assets=[ASSET, OTHER]),
    Gap(started=1.0, ended=2.0, assets=[ASSET], reason="reconnect", dropped=3),
    BookInvalidated(asset_ids=[ASSET, OTHER], reason="hash mismatch"),
    BookResynced(asset_ids=[ASSET], source="rest"),
    Notice("NO NEW ASSETS"),
    Unknown("brand_new", b'{"event_type":"brand_new","x":1}'),
    Malformed("bad json", "{not"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_record_round_trips_to_the_same_typed_event(event: object) -> None:
    record = to_record(event, 5.0)
    assert from_record(record.event_type, record.json) == event
    assert from_record(record.event_type, record.json.decode()) == event


def test_record_columns() -> None:
    record = to_record(EVENTS[1], 5.0)
    assert (record.event_type, record.asset_id, record.assets) == (
        "price_change",
        ASSET,
        (ASSET, OTHER),
    )
    assert (record.market, record.server_ts, record.received) == ("0xm", 1_700_000_000_124, 5.0)
    invalidated = to_record(BookInvalidated(asset_ids=[OTHER, ASSET], reason="x"), 1.0)
    assert (invalidated.asset_id, invalidated.server_ts) == (OTHER, None)
    assert invalidated.assets == (OTHER, ASSET)
    gap = to_record(EVENTS[10], 1.0)
    assert gap.gap == EVENTS[10]
    assert gap.assets == (ASSET,)


def test_record_refuses_what_no_stream_yields() -> None:
    with pytest.raises(TypeError):
        to_record(object(), 1.0)
    with pytest.raises(msgspec.DecodeError):
        from_record("no_such_type", b"{}")


def test_recorder_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError):
        Recorder(QueueSource(), MemorySink(), channel="market", ids=[], batch_window=0)
    with pytest.raises(ConfigError):
        Recorder(QueueSource(), MemorySink(), channel="market", ids=[], batch_max=10, max_buffer=5)


async def test_batches_wait_for_the_window_then_go_in_one_write() -> None:
    clock = FakeClock()
    source, sink = QueueSource(), MemorySink()
    recorder = Recorder(source, sink, channel="market", ids=[ASSET], batch_window=1.0, clock=clock)
    async with asyncio.TaskGroup() as group:
        group.create_task(recorder.run())
        source.put(change(1), change(2), change(3))
        await clock.run_for(0.9)
        assert sink.batches == []
        await clock.run_for(0.2)
        assert [r.server_ts for r in sink.records] == [1, 2, 3]
        assert len(sink.batches) == 1
        recorder.request_stop()
    assert sink.closed_at is not None
    assert "closed" in repr(recorder)


async def test_batch_max_writes_before_the_window() -> None:
    clock = FakeClock()
    source, sink = QueueSource(), MemorySink()
    recorder = Recorder(
        source, sink, channel="market", ids=[], batch_window=10.0, batch_max=2, clock=clock
    )
    async with asyncio.TaskGroup() as group:
        group.create_task(recorder.run())
        source.put(change(1), change(2), change(3))
        await clock.settle()
        assert [len(b) for b in sink.batches] == [2]
        recorder.request_stop()
    assert [len(b) for b in sink.batches] == [2, 1]


async def test_graceful_stop_writes_everything_still_queued_or_buffered() -> None:
    clock = FakeClock()
    source, sink = QueueSource(), MemorySink()
    recorder = Recorder(source, sink, channel="market", ids=[], batch_window=60.0, clock=clock)
    async with asyncio.TaskGroup() as group:
        group.create_task(recorder.run())
        source.put(*(change(i) for i in range(100)))
        await clock.settle()
        recorder.request_stop()
    assert [r.server_ts for r in sink.records] == list(range(100))
    assert source.closed


async def test_slow_sink_stops_the_consumer_and_alarms(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    source, sink = QueueSource(), MemorySink()
    sink.gate = asyncio.Event()
    recorder = Recorder(
        source,
        sink,
        channel="market",
        ids=[],
        batch_window=0.1,
        batch_max=5,
        max_buffer=10,
        clock=clock,
    )
    with caplog.at_level(logging.WARNING, logger="polyfeed.record"):
        async with asyncio.TaskGroup() as group:
            group.create_task(recorder.run())
            source.put(*(change(i) for i in range(100)))
            await clock.run_for(1.0)
            # One batch is stuck in the sink, the buffer is full: the rest stays in the source.
            assert source.taken <= 5 + 10 + 1
            assert recorder.metrics.backpressure_waits >= 1
            assert "buffer full" in caplog.text
            sink.gate.set()
            recorder.request_stop()
    assert [r.server_ts for r in sink.records] == list(range(100))


async def test_unavailable_sink_is_retried_until_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    source, sink = QueueSource(), MemorySink()
    sink.fail_unavailable = 4
    recorder = Recorder(
        source, sink, channel="market", ids=[], batch_window=0.1, retry_base=0.1, clock=clock
    )
    with caplog.at_level(logging.WARNING, logger="polyfeed.record"):
        async with asyncio.TaskGroup() as group:
            group.create_task(recorder.run())
            source.put(change(1), change(2))
            await clock.run_for(0.5)
            assert recorder.metrics.sink_stalled
            assert "unavailable" in caplog.text
            source.put(change(3))
            await clock.run_for(5.0)
            assert not recorder.metrics.sink_stalled
            recorder.request_stop()
    assert [r.server_ts for r in sink.records] == [1, 2, 3]
    assert recorder.metrics.sink_errors == 4
    assert "polyfeed_recorder_sink_errors_total 4" in recorder.metrics.render_prometheus()


async def test_stop_with_the_sink_still_down_counts_the_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    source, sink = QueueSource(), MemorySink()
    sink.fail_unavailable = 10**9
    recorder = Recorder(
        source, sink, channel="market", ids=[], batch_window=0.1, stop_timeout=1.0, clock=clock
    )
    async with asyncio.TaskGroup() as group:
        task = group.create_task(recorder.run())
        source.put(change(1), change(2))
        await clock.run_for(0.5)
        recorder.request_stop()
        await clock.run_for(5.0)
    assert task.done()
    assert recorder.metrics.records_lost == 2
    assert "were not written" in caplog.text


async def test_fatal_sink_error_is_raised_as_itself() -> None:
    clock = FakeClock()
    source, sink = QueueSource(), MemorySink()
    sink.fail_fatal = True
    recorder = Recorder(source, sink, channel="market", ids=[], batch_window=0.1, clock=clock)
    source.put(change(1))

    async def drive() -> None:
        await clock.run_for(1.0)

    with pytest.raises(SinkError, match="disk on fire"):
        # gather: the error as raised by run(), not wrapped in a group by the test itself.
        await asyncio.gather(recorder.run(), drive())
    assert sink.closed_at is not None


async def test_restart_writes_the_downtime_gap_before_the_first_data() -> None:
    clock = FakeClock(wall_start=1000.0)
    source = QueueSource()
    sink = MemorySink(resume=Resume(last_seen=900.0, assets=(OTHER,)))
    recorder = Recorder(source, sink, channel="market", ids=[ASSET], batch_window=0.1, clock=clock)
    async with asyncio.TaskGroup() as group:
        group.create_task(recorder.run())
        source.put(Connected(url="ws://x", attempt=1))
        await clock.run_for(2.0)
        source.put(change(7))
        await clock.run_for(0.5)
        recorder.request_stop()
    kinds = [r.event_type for r in sink.records]
    assert kinds == ["connected", "gap", "price_change"]
    gap = sink.records[1].gap
    assert gap is not None
    assert gap.reason == RESTART_GAP_REASON
    assert (gap.started, gap.ended) == (900.0, 1002.0)
    assert set(gap.assets) == {ASSET, OTHER}
    assert recorder.metrics.gaps_written == 1


async def test_restart_without_data_still_closes_the_gap() -> None:
    clock = FakeClock(wall_start=1000.0)
    source = QueueSource()
    sink = MemorySink(resume=Resume(last_seen=990.0, assets=(ASSET,)))
    recorder = Recorder(source, sink, channel="market", ids=[ASSET], batch_window=0.1, clock=clock)
    async with asyncio.TaskGroup() as group:
        group.create_task(recorder.run())
        await clock.run_for(3.0)
        recorder.request_stop()
    [gap] = [r.gap for r in sink.records]
    assert gap is not None
    assert (gap.started, gap.ended) == (990.0, 1003.0)


def test_only_their_sinks_import_the_optional_extras() -> None:
    """pyarrow only in sinks/parquet.py, redis only in sinks/redis.py (the extras stay optional:
    everything else imports without them)."""
    import ast
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "polyfeed"
    owners = {"pyarrow": "sinks/parquet.py", "redis": "sinks/redis.py"}
    offenders = []
    for path in sorted(src.rglob("*.py")):
        relative = path.relative_to(src).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in owners and owners[top] != relative:
                    offenders.append(f"{relative} imports {name}")
    assert offenders == []


class FailingSource(QueueSource):
    """Yields what was put, then fails like a stream whose credentials were rejected."""

    async def _iterate(self) -> AsyncIterator[Any]:
        while not self.queue.empty():
            yield self.queue.get_nowait()
        raise AuthenticationError(None, 3)


async def test_a_failing_source_is_raised_after_everything_before_it_is_written() -> None:
    clock = FakeClock()
    source, sink = FailingSource(), MemorySink()
    source.put(change(1), change(2))
    recorder = Recorder(source, sink, channel="user", ids=[], batch_window=60.0, clock=clock)
    with pytest.raises(AuthenticationError):
        await recorder.run()
    assert [r.server_ts for r in sink.records] == [1, 2]
    assert sink.closed_at is not None
    with pytest.raises(StreamClosedError):
        await recorder.run()


# --------------------------------------------------------------------------- invariants

Step = tuple[str, int]


class TimedSource(QueueSource):
    """Notes when (fake time) the recorder took each event."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.taken_at: dict[int, float] = {}

    async def _iterate(self) -> AsyncIterator[Any]:
        async for event in super()._iterate():
            self.taken_at[event.timestamp] = self.clock.now()
            yield event


async def scenario(steps: list[Step]) -> None:
    """Runs ``steps`` against a recorder on a FakeClock, checking its invariants after each."""
    clock = FakeClock()
    source, sink = TimedSource(clock), MemorySink()
    window, batch_max, max_buffer = 1.0, 4, 8
    recorder = Recorder(
        source,
        sink,
        channel="market",
        ids=[],
        batch_window=window,
        batch_max=batch_max,
        max_buffer=max_buffer,
        retry_base=0.1,
        retry_max=0.4,
        stop_timeout=60.0,
        clock=clock,
    )
    put: list[int] = []
    async with asyncio.TaskGroup() as group:
        group.create_task(recorder.run())
        for action, amount in steps:
            match action:
                case "events":
                    for _ in range(amount):
                        ts = len(put)
                        put.append(ts)
                        source.put(change(ts))
                case "advance":
                    await clock.run_for(amount / 10)
                case "sink_down":
                    sink.fail_unavailable = amount
            await clock.settle()
            written = [r.server_ts for r in sink.records]
            # Written in order, each once, only what was put.
            assert written == put[: len(written)]
            assert all(len(batch) <= batch_max for batch in sink.batches)
            assert recorder.metrics.buffered <= max_buffer
            if not recorder.metrics.sink_stalled and sink.fail_unavailable == 0:
                # With a healthy sink nothing waits longer than one window after it was taken.
                overdue = [
                    ts
                    for ts in put[len(written) :]
                    if ts in source.taken_at and source.taken_at[ts] + window < clock.now()
                ]
                assert overdue == []
        sink.fail_unavailable = 0
        recorder.request_stop()
        await clock.run_for(10.0)
    assert [r.server_ts for r in sink.records] == put
    assert recorder.metrics.records_lost == 0


step_strategy = st.one_of(
    st.tuples(st.just("events"), st.integers(1, 12)),
    st.tuples(st.just("advance"), st.integers(1, 15)),
    st.tuples(st.just("sink_down"), st.integers(1, 4)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(step_strategy, max_size=25))
@example([("events", 3), ("sink_down", 3), ("events", 6), ("advance", 1), ("advance", 15)])
# The last event is taken while the buffer is full during the outage: its window runs from then,
# not from when space freed up (it was written a window after the sink came back).
@example([("events", 1), ("events", 1), ("sink_down", 2), ("events", 11), ("advance", 11)])
def test_recorder_invariants_hold_for_any_schedule(steps: list[Step]) -> None:
    asyncio.run(scenario(steps))
