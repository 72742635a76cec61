"""BookKeeper: books kept by MarketStream against FakePolymarket (verified, invalidated,
resynced), and the keeper alone on a FakeClock (merged events, deadline-driven timers,
maintenance restarts)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from book_support import ASSET, RefBook, book_msg, make_change, make_entry, server_entries
from polyfeed import (
    BackoffConfig,
    Book,
    BookInvalidated,
    BookResynced,
    HeartbeatConfig,
    MarketStream,
    StreamConfig,
    WatchdogConfig,
)
from polyfeed.aio.book_keeper import RESTART_BASE, RESTART_MAX, RESTART_STABLE_FOR, BookKeeper
from polyfeed.aio.rest import RestClient
from polyfeed.core.book import BookOptions, BookRegistry, BookVerdict, OrderBook, ResyncLimiter
from polyfeed.core.book_hash import HashScheme
from polyfeed.core.messages import Level, PriceChange, PriceChangeEntry
from polyfeed.errors import ConfigError, RestError
from polyfeed.events import Disconnected
from polyfeed.testing import (
    CloseWith,
    DropMessage,
    DropTcp,
    FakeClock,
    FakePolymarket,
    Fault,
    IgnoreSubscription,
    StallData,
)
from polyfeed.testing.market_sim import BookView

CONFIG = StreamConfig(
    heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.3),
    watchdog=WatchdogConfig(data_timeout=5.0, confirm_timeout=2.0),
    backoff=BackoffConfig(base=0.02, max_delay=0.1, jitter=0.0, stable_for=0.5),
)


def same_levels(ours: OrderBook, server: BookView) -> bool:
    bids = [(level.price, level.size) for level in ours.levels("bids")]
    asks = [(level.price, level.size) for level in ours.levels("asks")]
    return bids == [tuple(level) for level in reversed(server.bids)] and asks == [
        tuple(level) for level in reversed(server.asks)
    ]


async def until(stream: AsyncIterator[Any], kind: type, limit: int = 100_000) -> Any:
    for _ in range(limit):
        event = await anext(stream)
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__}")


async def settle(fake: FakePolymarket) -> None:
    for connection in fake.open_connections("market"):
        await connection.flush()
    await asyncio.sleep(0.05)


@pytest.mark.timeout(15)
@pytest.mark.parametrize(
    "runs",
    [{}, {"run_probability": 0.6, "max_run_messages": 5}],
    ids=["default runs", "mostly runs"],
)
async def test_books_follow_the_server_and_every_hash_verifies(runs: dict[str, Any]) -> None:
    # The fake splits events into runs as the real server does (issue 7, defect 9): a run is
    # verified at its end, so no book is ever invalidated by a correct run.
    async with (
        FakePolymarket(markets=3, seed=1, **runs) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=CONFIG) as stream,
    ):
        await until(stream, Book)
        await asyncio.sleep(0.1)  # market metadata arrives over REST
        for _ in range(10):
            fake.step(10)
            await asyncio.sleep(0.01)
        await settle(fake)
        for asset in fake.asset_ids:
            book = stream.books[asset]
            server = fake.book(asset)
            assert book.synced
            assert same_levels(book, server), asset
            assert book.best_bid == (None if not server.best_bid else Decimal(server.best_bid))
            assert book.scheme_detected
            assert book.hash_scheme is HashScheme.V2026
            assert book.counters.hash_mismatches == 0
            assert book.counters.invalidations == 0
        checks = sum(stream.books[a].counters.hash_checks for a in fake.asset_ids)
        assert checks >= 50
        changes = [e for e in fake.log.events if e.event_type == "price_change"]
        shared = len(changes) - len({(e.market, e.timestamp) for e in changes})
        assert shared >= 5, "the fake sent runs"


@pytest.mark.timeout(20)
async def test_a_dropped_price_change_is_caught_by_the_hash_and_resynced_from_rest() -> None:
    async with (
        FakePolymarket(markets=1, seed=2) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=CONFIG) as stream,
    ):
        await until(stream, Book)
        await asyncio.sleep(0.1)
        fake.step(5)
        invalidated: BookInvalidated | None = None
        for _ in range(10):  # a dropped change can heal by chance; then drop another
            fake.inject(DropMessage(count=1))
            fake.step(4)
            await settle(fake)
            if any(stream.books[a].counters.invalidations for a in fake.asset_ids):
                invalidated = await until(stream, BookInvalidated)
                break
        assert invalidated is not None
        assert invalidated.reason == "hash mismatch"
        resynced = await until(stream, BookResynced)
        assert resynced.asset_ids == invalidated.asset_ids
        assert resynced.source == "rest"
        fake.step(5)
        await settle(fake)
        for asset in fake.asset_ids:
            assert stream.books[asset].synced
            assert same_levels(stream.books[asset], fake.book(asset))
        keeper = stream.book_keeper
        assert keeper is not None
        assert keeper.rest_resyncs >= 1
        assert stream.metrics.connects_total == 1


@pytest.mark.timeout(20)
async def test_rest_failure_falls_back_to_a_fresh_snapshot_on_the_socket() -> None:
    async with FakePolymarket(markets=1, seed=3) as fake:
        stream = MarketStream(
            fake.asset_ids,
            endpoints=fake.endpoints,
            rest_url="http://127.0.0.1:9",  # nothing listens there: every REST call fails
            config=CONFIG,
            book_options=BookOptions(grace_messages=0),
        )
        async with stream:
            await until(stream, Book)
            await until(stream, Book)
            await stream.resync([fake.asset_ids[0]])
            invalidated = await until(stream, BookInvalidated)
            assert invalidated.reason == "resync requested"
            resynced = await until(stream, BookResynced)
            keeper = stream.book_keeper
            assert keeper is not None
            assert resynced.source == "snapshot"
            assert keeper.socket_resyncs >= 1
            await settle(fake)
            assert same_levels(stream.books[fake.asset_ids[0]], fake.book(fake.asset_ids[0]))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("fault", [CloseWith(code=1011, after=0.2), DropTcp(after=0.2)])
async def test_a_reconnect_invalidates_every_book_and_the_replay_resyncs_them(fault: Any) -> None:
    async with (
        FakePolymarket(markets=2, seed=4, faults={0: [fault]}) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=CONFIG) as stream,
    ):
        invalidated: set[str] = set()
        resynced: set[str] = set()
        async with asyncio.timeout(10):
            async for event in stream:
                if isinstance(event, BookInvalidated):
                    assert event.reason == "reconnect"
                    # One event for every book the reconnect invalidated.
                    assert set(event.asset_ids) == set(fake.asset_ids)
                    invalidated.update(event.asset_ids)
                elif isinstance(event, BookResynced):
                    assert set(event.asset_ids) <= invalidated
                    assert event.source == "snapshot"
                    resynced.update(event.asset_ids)
                    if resynced == set(fake.asset_ids):
                        break
        assert invalidated == set(fake.asset_ids)
        keeper = stream.book_keeper
        assert keeper is not None
        assert keeper.rest_resyncs == 0


@pytest.mark.timeout(40)
async def test_chaos_books_equal_the_server_and_every_invalidation_is_resynced() -> None:
    plan: dict[int, list[Fault]] = {
        0: [DropMessage(count=3), CloseWith(code=1012, after=0.8)],
        1: [StallData(after=0.3)],
        2: [DropMessage(count=2), CloseWith(code=1001, after=0.6)],
        3: [DropTcp(after=0.4)],
        4: [DropMessage(count=4)],
    }
    cfg = dataclasses.replace(
        CONFIG, watchdog=WatchdogConfig(data_timeout=1.0, confirm_timeout=2.0)
    )
    async with FakePolymarket(markets=5, seed=5, faults=plan) as fake:
        open_invalidations: dict[str, int] = {}
        invalidations = 0

        async def flow() -> None:
            while True:
                fake.step(1)
                await asyncio.sleep(0.005)

        async with (
            MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=cfg) as stream,
            asyncio.TaskGroup() as group,
        ):
            producer = group.create_task(flow())

            async def consume() -> None:
                nonlocal invalidations
                async for event in stream:
                    if isinstance(event, BookInvalidated):
                        invalidations += 1
                        for asset in event.asset_ids:
                            open_invalidations[asset] = open_invalidations.get(asset, 0) + 1
                    elif isinstance(event, BookResynced):
                        for asset in event.asset_ids:
                            open_invalidations.pop(asset, None)

            consumer = group.create_task(consume())
            await fake.wait_for_connection(5)
            await asyncio.sleep(1.0)
            producer.cancel()
            await settle(fake)
            await asyncio.sleep(0.2)
            consumer.cancel()
            books = stream.books
            for asset in fake.asset_ids:
                assert books[asset].synced, asset
                assert same_levels(books[asset], fake.book(asset)), asset
            assert invalidations > 0
            assert open_invalidations == {}, "every invalidation was followed by a resync"


@pytest.mark.timeout(15)
async def test_reconcile_on_demand_and_periodically_compares_with_rest() -> None:
    async with FakePolymarket(markets=1, seed=6) as fake:
        stream = MarketStream(
            fake.asset_ids, endpoints=fake.endpoints, config=CONFIG, reconcile_every=0.1
        )
        async with stream:
            await until(stream, Book)
            await until(stream, Book)
            fake.step(3)
            await settle(fake)
            verdicts = await stream.reconcile()
            assert {v.action for v in verdicts.values()} == {"ok"}
            await asyncio.sleep(0.35)
            checks = [stream.books[a].counters.reconcile_checks for a in fake.asset_ids]
            assert all(count >= 3 for count in checks), checks
            assert all(stream.books[a].counters.reconcile_mismatches == 0 for a in fake.asset_ids)


@pytest.mark.timeout(15)
async def test_resyncs_respect_the_rate_limiter() -> None:
    async with FakePolymarket(markets=2, seed=7) as fake:
        limiter = ResyncLimiter(rate=1, per=0.3, burst=1)
        stream = MarketStream(
            fake.asset_ids, endpoints=fake.endpoints, config=CONFIG, resync_limiter=limiter
        )
        async with stream:
            for _ in fake.asset_ids:
                await until(stream, Book)
            await asyncio.sleep(0.1)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await stream.resync()
            done: set[str] = set()
            while done != set(fake.asset_ids):
                event = await until(stream, BookResynced)
                done.update(event.asset_ids)
            # Four resyncs through a bucket of one token per 0.3 s: at least 0.9 s.
            assert loop.time() - started >= 0.85
            assert limiter.granted >= 4


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "options",
    [
        {"tick_size_change_probability": 0.05},
        {"trade_print_after_change": True, "trade_probability": 0.3},
    ],
    ids=["tick_size_changes", "late_trade_prints"],
)
async def test_legitimate_quirks_never_invalidate_a_book(options: dict[str, Any]) -> None:
    # Tick-size refinements and the live quirk of a trade price that arrives after the change
    # it belongs to (its hash only verifies with the later price) are not corruption.
    async with (
        FakePolymarket(markets=2, seed=8, **options) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=CONFIG) as stream,
    ):
        for _ in fake.asset_ids:
            await until(stream, Book)
        await asyncio.sleep(0.1)
        for _ in range(20):
            fake.step(5)
            await asyncio.sleep(0.01)
        await settle(fake)
        for asset in fake.asset_ids:
            book = stream.books[asset]
            assert book.synced, asset
            assert book.counters.invalidations == 0, book.counters
            assert same_levels(book, fake.book(asset)), asset
        # Batched books: a hash check at the end of each read, not one per message.
        checks = sum(stream.books[a].counters.hash_checks for a in fake.asset_ids)
        assert checks >= 20
        if "trade_print_after_change" in options:
            # A trade price in the same read as its change is already there when the batch is
            # verified at its end; one in a later read matches late. Both are fine, neither fails.
            mismatches = sum(stream.books[a].counters.hash_mismatches for a in fake.asset_ids)
            assert mismatches == 0
        else:
            assert any(stream.books[a].tick_size != "0.01" for a in fake.asset_ids)


@pytest.mark.timeout(20)
async def test_a_snapshot_that_never_comes_after_a_reconnect_is_fetched_over_rest() -> None:
    # The server replays nothing for one asset on the second connection: its book would wait
    # for a snapshot for ever; the confirmation timeout hands it to REST instead.
    async with FakePolymarket(markets=1, seed=9) as fake:
        ignored = fake.asset_ids[0]
        fake.faults.add(0, CloseWith(code=1012, after=0.2))
        fake.faults.add(1, IgnoreSubscription((ignored,)))
        cfg = dataclasses.replace(
            CONFIG, watchdog=WatchdogConfig(data_timeout=5.0, confirm_timeout=0.3)
        )
        async with MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=cfg) as stream:
            invalidated = False
            async with asyncio.timeout(10):
                async for event in stream:
                    if isinstance(event, BookInvalidated) and ignored in event.asset_ids:
                        invalidated = True
                    if (
                        isinstance(event, BookResynced)
                        and ignored in event.asset_ids
                        and invalidated
                    ):
                        assert event.source == "rest"
                        break
            assert stream.books[ignored].synced


# --------------------------------------------------------------------------- the keeper alone
# Driven directly with a FakeClock: no server, no real sleeps.

MARKET = "0xmarket"
CROSSING_OPTIONS = BookOptions(hash_check_every=0, grace_messages=1_000, grace_seconds=2.0)


def snapshot(asset: str, timestamp: int = 1000) -> Book:
    return Book(
        market=MARKET,
        asset_id=asset,
        timestamp=timestamp,
        bids=[Level("0.40", "100"), Level("0.45", "50")],
        asks=[Level("0.60", "10"), Level("0.55", "70")],
    )


def crossing(asset: str, timestamp: int = 2000) -> PriceChange:
    # A taker sell at 0.44 before the bids it hits are removed: a crossed book, in doubt.
    entry = PriceChangeEntry(
        asset_id=asset, price="0.44", size="30", side="SELL", best_bid="0.40", best_ask="0.44"
    )
    return PriceChange(market=MARKET, timestamp=timestamp, price_changes=(entry,))


class Harness:
    """A keeper on a FakeClock whose tasks run in the test's TaskGroup."""

    def __init__(
        self,
        registry: BookRegistry,
        clock: FakeClock,
        group: asyncio.TaskGroup | None,
        *,
        rest: RestClient | None = None,
        reconcile_every: float | None = None,
    ) -> None:
        self.emitted: list[object] = []
        self.refreshed: list[str] = []
        self.group = group
        self.spawned: list[str] = []
        self.keeper = BookKeeper(
            registry,
            clock=clock,
            rest=rest,
            limiter=ResyncLimiter(rate=1_000, per=1.0),
            spawn=self.spawn,
            emit=self.emit,
            refresh=self.refreshed.extend,
            reconcile_every=reconcile_every,
        )

    def spawn(
        self, factory: Callable[[], Coroutine[Any, Any, None]], name: str
    ) -> asyncio.Task[None] | None:
        self.spawned.append(name)
        if self.group is None:  # the stream is stopping
            return None
        return self.group.create_task(factory(), name=name)

    def emit(self, events: Sequence[object]) -> bool:
        self.emitted.extend(events)
        return True


def synced_registry(*assets: str, options: BookOptions = CROSSING_OPTIONS) -> BookRegistry:
    registry = BookRegistry(options)
    for asset in assets:
        registry.apply(snapshot(asset))
        assert registry[asset].synced
    return registry


def test_one_event_per_cause_placed_after_the_last_event_that_caused_it() -> None:
    registry = synced_registry("a", "b", "c", options=BookOptions(hash_check_every=0))
    harness = Harness(registry, FakeClock(), None)
    keeper = harness.keeper
    gone = Disconnected(reason="dropped")
    assert keeper.observe([gone]) == [
        gone,
        BookInvalidated(asset_ids=["a", "b", "c"], reason="reconnect"),
    ]
    replay = [snapshot("a", 3000), crossing("z"), snapshot("b", 3000), snapshot("c", 3000)]
    assert keeper.observe(replay) == [
        *replay,
        BookResynced(asset_ids=["a", "b", "c"], source="snapshot"),
    ]
    assert keeper.observe([crossing("z")]) == [crossing("z")]  # nothing to say: same list back


def test_a_disconnect_scoped_to_one_connection_invalidates_only_its_books() -> None:
    registry = synced_registry("a", "b", "c", options=BookOptions(hash_check_every=0))
    keeper = Harness(registry, FakeClock(), None).keeper
    gone = Disconnected(reason="dropped", connection_id=2)
    # A pool's connection carrying b and c (and an asset without a book) lost its socket.
    assert keeper.observe([gone], scope=frozenset({"b", "c", "x"})) == [
        gone,
        BookInvalidated(asset_ids=["b", "c"], reason="reconnect"),
    ]
    assert registry["a"].synced
    assert not registry["b"].synced
    assert not registry["c"].synced


def test_runs_of_different_causes_stay_in_order() -> None:
    registry = synced_registry("a", "b", options=BookOptions(hash_check_every=0, grace_messages=0))
    registry["a"].invalidate("resync requested")
    keeper = Harness(registry, FakeClock(), None).keeper
    events = [snapshot("a", 3000), crossing("b", 3001), snapshot("b", 3002)]
    assert keeper.observe(events) == [
        events[0],
        BookResynced(asset_ids=["a"]),
        events[1],
        BookInvalidated(asset_ids=["b"], reason="crossed book"),
        events[2],
        BookResynced(asset_ids=["b"]),
    ]


async def test_a_stopping_stream_gets_no_coroutine_to_run() -> None:
    registry = synced_registry("a", "b")
    harness = Harness(registry, FakeClock(), None)  # spawn says: stopping
    harness.keeper.invalidate(["a", "b"], "resync requested")
    assert harness.spawned == ["polyfeed-book-resync", "polyfeed-book-resync"]
    assert harness.emitted == [BookInvalidated(asset_ids=["a", "b"], reason="resync requested")]
    # filterwarnings=error: a coroutine created and never awaited would fail this test.
    gc.collect()


async def test_timers_sleep_until_the_next_deadline_and_wake_for_an_earlier_one() -> None:
    clock = FakeClock(start=10.0)
    registry = synced_registry("a", "b")
    async with asyncio.TaskGroup() as group:
        harness = Harness(registry, clock, group)
        runner = group.create_task(harness.keeper.run())
        await clock.settle()
        # No deadline: no timer and no poll, however long nothing happens.
        assert (clock.timers, clock.sleepers) == (0, 0)
        await clock.run_for(100.0)
        assert (clock.timers, clock.sleepers) == (0, 0)
        assert "timer_at=None" in repr(harness.keeper)
        harness.keeper.observe([crossing("a")])  # a doubt with a deadline 2 s from now
        await clock.settle()
        assert clock.timers == 1
        assert clock.next_deadline() == 112.0
        await clock.run_for(1.0)
        harness.keeper.observe([crossing("b")])  # later: the armed timer stays
        await clock.settle()
        assert clock.next_deadline() == 112.0
        await clock.run_for(0.999)
        assert harness.emitted == []
        await clock.run_for(0.001)
        assert harness.emitted == [BookInvalidated(asset_ids=["a"], reason="crossed book")]
        assert clock.next_deadline() == 113.0
        await clock.run_for(1.0)
        assert harness.emitted[1:] == [BookInvalidated(asset_ids=["b"], reason="crossed book")]
        assert harness.refreshed == ["a", "b"]  # no REST: fresh snapshots on the socket
        assert harness.keeper.maintenance_restarts == 0
        runner.cancel()


class CrashingTimers(BookRegistry):
    """A registry whose timer handling crashes the first ``crashes`` times."""

    def __init__(self, clock: FakeClock, crashes: int) -> None:
        super().__init__(CROSSING_OPTIONS)
        self.clock = clock
        self.crashes = crashes
        self.calls: list[float] = []

    def handle_timer(self, now: float) -> list[BookVerdict]:
        self.calls.append(self.clock.now())
        if len(self.calls) <= self.crashes:
            raise ArithmeticError(f"boom {len(self.calls)}")
        return super().handle_timer(now)


async def test_a_crashed_timer_loop_restarts_with_capped_backoff_and_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="polyfeed.books")
    clock = FakeClock(start=10.0)
    registry = CrashingTimers(clock, crashes=12)
    registry.apply(snapshot("a"))
    async with asyncio.TaskGroup() as group:
        harness = Harness(registry, clock, group)
        keeper = harness.keeper
        runner = group.create_task(keeper.run())
        await clock.settle()
        keeper.observe([crossing("a")])
        await clock.run_for(200.0)
        delays = [round(b - a, 6) for a, b in itertools.pairwise(registry.calls)]
        assert delays == [min(RESTART_MAX, RESTART_BASE * 2**k) for k in range(12)]
        assert delays[-1] == RESTART_MAX
        assert keeper.maintenance_restarts == 12
        assert keeper.maintenance_error == "ArithmeticError: boom 12"
        assert "maintenance_restarts=12" in repr(keeper)
        # Restarted for good: the doubt expired and the book was invalidated.
        assert harness.emitted == [BookInvalidated(asset_ids=["a"], reason="crossed book")]
        warnings = [r for r in caplog.records if "book timers loop crashed" in r.getMessage()]
        assert len(warnings) == 12
        assert all(r.levelno == logging.WARNING and r.exc_info for r in warnings)
        # A loop that ran long enough before crashing restarts after the first delay again.
        await clock.run_for(RESTART_STABLE_FOR)
        registry.crashes = 15
        registry.apply(snapshot("a", 5000))
        keeper.observe([crossing("a", 6000)])
        await clock.run_for(100.0)
        assert [round(b - a, 6) for a, b in itertools.pairwise(registry.calls[-3:])] == [
            RESTART_BASE,
            RESTART_BASE * 2,
        ]
        assert keeper.maintenance_restarts == 14
        assert keeper.maintenance_error == "ArithmeticError: boom 15"
        runner.cancel()


class StuckTimers(BookRegistry):
    """A registry whose timer handling leaves a due deadline due (a core bug)."""

    def __init__(self) -> None:
        super().__init__(CROSSING_OPTIONS)
        self.calls = 0

    def handle_timer(self, now: float) -> list[BookVerdict]:
        self.calls += 1
        return []


async def test_a_deadline_still_due_after_handling_is_a_reported_crash_not_a_spin() -> None:
    clock = FakeClock(start=10.0)
    registry = StuckTimers()
    registry.apply(snapshot("a"))
    async with asyncio.TaskGroup() as group:
        keeper = Harness(registry, clock, group).keeper
        runner = group.create_task(keeper.run())
        await clock.settle()
        keeper.observe([crossing("a")])
        await clock.run_for(3.0)  # due at 12.0: crashes at 12.0, 12.1, 12.3, 12.7 (next 13.5)
        assert registry.calls == 4
        assert keeper.maintenance_restarts == 4
        assert keeper.maintenance_error == (
            "RuntimeError: book deadline 12.0 still due after handle_timer"
        )
        runner.cancel()


class FlakyRest(RestClient):
    """REST whose ``/book`` fails as scripted, then answers with the registry's own book."""

    def __init__(self, registry: BookRegistry, script: list[BaseException | None]) -> None:
        super().__init__("http://127.0.0.1:9")
        self.registry = registry
        self.script = script
        self.calls = 0

    async def book(self, token_id: str) -> Book:
        self.calls += 1
        failure = self.script.pop(0) if self.script else None
        if failure is not None:
            raise failure
        return self.registry[token_id].to_book()


async def test_a_crashed_reconcile_loop_restarts_and_a_rest_failure_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="polyfeed.books")
    clock = FakeClock()
    registry = synced_registry("a")
    rest = FlakyRest(registry, [RestError(503, "/book", "unavailable"), ValueError("bad"), None])
    async with asyncio.TaskGroup() as group:
        harness = Harness(registry, clock, group, rest=rest, reconcile_every=5.0)
        keeper = harness.keeper
        runner = group.create_task(keeper.run())
        await clock.run_for(10.0)  # at 5 s: REST failed, a warning; at 10 s: a crash
        assert rest.calls == 2
        assert (keeper.maintenance_restarts, keeper.maintenance_error) == (1, "ValueError: bad")
        assert "periodic REST reconciliation failed" in caplog.text
        await clock.run_for(5.1)  # restarted after 0.1 s, the next round 5 s later
        assert rest.calls == 3
        assert registry["a"].counters.reconcile_checks == 1
        assert keeper.maintenance_restarts == 1
        runner.cancel()


async def test_a_crashed_resync_is_reported_and_leaves_the_book_ready_for_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="polyfeed.books")
    registry = synced_registry("a")
    rest = FlakyRest(registry, [ValueError("bad book")])
    async with asyncio.TaskGroup() as group:
        harness = Harness(registry, FakeClock(), group, rest=rest)
        harness.keeper.invalidate(["a"], "resync requested")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert rest.calls == 1
    assert harness.keeper.maintenance_error == "ValueError: bad book"
    (record,) = [r for r in caplog.records if "maintenance task failed" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.exc_info
    book = registry["a"]
    assert not book.synced
    assert not book.resync_in_flight
    assert book.needs_resync
    # The next trigger resyncs it.
    async with asyncio.TaskGroup() as group:
        harness.group = group
        harness.keeper.invalidate(["a"], "resync requested")
    assert registry["a"].synced
    assert harness.keeper.rest_resyncs == 1


def test_reconcile_every_is_validated() -> None:
    with pytest.raises(ConfigError):
        Harness(BookRegistry(), FakeClock(), None, reconcile_every=0.0)


@pytest.mark.timeout(15)
async def test_resync_then_leaving_the_stream_at_once_leaves_no_coroutine_unawaited() -> None:
    async with FakePolymarket(markets=1, seed=10) as fake:
        async with MarketStream(fake.asset_ids, url=fake.market_url, config=CONFIG) as stream:
            await until(stream, Book)
            await stream.resync()
        gc.collect()


def _bad_change(asset: str, timestamp: int, price: str, size: str) -> PriceChange:
    entry = PriceChangeEntry(asset_id=asset, price=price, size=size, side="BUY")
    return PriceChange(market=MARKET, timestamp=timestamp, price_changes=(entry,))


def test_malformed_input_is_logged_once_per_kind_and_counted_per_entry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="polyfeed.books")
    registry = synced_registry("a", "b", options=BookOptions(hash_check_every=0))
    keeper = Harness(registry, FakeClock(), None).keeper
    bad = [("0.41", "1abc"), ("0.41", "9-"), ("1e999999", "1"), ("0", "1"), ("0.41", "1,000")]
    for timestamp, (price, size) in enumerate(bad, start=2000):
        for asset in ("a", "b"):
            registry.apply(snapshot(asset, timestamp=timestamp * 10))
        events = keeper.observe([_bad_change(a, timestamp * 10 + 1, price, size) for a in "ab"])
        assert [type(e) for e in events].count(BookInvalidated) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # one per kind: a size, a price
    assert any("malformed price_change size" in w for w in warnings)
    assert any("malformed price_change price" in w for w in warnings)
    assert all("1abc" not in r.getMessage() for r in caplog.records)  # no hostile text logged
    assert registry["a"].counters.malformed == len(bad)


class MalformedRest(RestClient):
    """REST whose ``/book`` answers with numbers outside the grammar."""

    def __init__(self, registry: BookRegistry) -> None:
        super().__init__("http://127.0.0.1:9")
        self.registry = registry
        self.calls = 0

    async def book(self, token_id: str) -> Book:
        self.calls += 1
        book = self.registry[token_id].to_book()
        hostile = [Level("1e999999", "1"), Level("0.41", "1abc"), Level("0.4_2", "NaN")]
        return msgspec.structs.replace(
            book, bids=[*book.bids, hostile[self.calls % 3]], tick_size="1e100002"
        )


async def test_reconcile_with_a_malformed_rest_book_never_raises_and_the_loop_lives() -> None:
    clock = FakeClock()
    registry = synced_registry("a", options=BookOptions(hash_check_every=0))
    rest = MalformedRest(registry)
    async with asyncio.TaskGroup() as group:
        harness = Harness(registry, clock, group, rest=rest, reconcile_every=5.0)
        keeper = harness.keeper
        verdicts = await keeper.reconcile(["a"])
        assert verdicts == {"a": BookVerdict("a", "ok", "malformed snapshot")}
        runner = group.create_task(keeper.run())
        await clock.run_for(20.0)
        assert rest.calls == 5
        assert keeper.maintenance_restarts == 0 and keeper.maintenance_error is None
        book = registry["a"]
        assert book.synced and book.counters.malformed == 2 * 5  # the level and the tick
        book.depth("bids")
        runner.cancel()


def test_a_dropped_delta_in_a_burst_is_in_doubt_when_the_read_is_handed_on() -> None:
    # A batched registry defers the hash inside a read; observe() checks it at the read's end,
    # so the doubt (and its grace deadline) exists before the events reach the queue.
    registry = BookRegistry(BookOptions(verify_every=100), batched=True)
    registry.set_market_info(MARKET, min_order_size="5", tick_size="0.01", neg_risk=False)
    ref = RefBook()
    first = book_msg([("0.40", "100")], [("0.55", "70")], asset=ASSET)
    sent = ref.hashed(first)
    clock = FakeClock()
    keeper = Harness(registry, clock, None).keeper
    keeper.observe([sent])
    book = registry[ASSET]
    burst = [
        make_change(t, *server_entries([("BUY", f"0.{t % 30 + 10}", "5")], ref, t))
        for t in range(2000, 2020)
    ]
    del burst[7]  # lost on the way
    assert keeper.observe(burst) == burst
    assert book.in_doubt == "hash mismatch"
    assert book.next_deadline() == clock.now() + BookOptions().grace_seconds
    assert keeper._timer_wake.is_set()
    # The next read does not reproduce the server's hash either: the run failed, one mismatch.
    later = make_change(3000, make_entry("0.30", "1", "BUY", hash="0" * 40))
    assert keeper.observe([later]) == [later]
    assert book.counters.hash_mismatches == 1


def _burst_with_a_lost_delta(registry: BookRegistry, ref: RefBook) -> list[PriceChange]:
    registry.set_market_info(MARKET, min_order_size="5", tick_size="0.01", neg_risk=False)
    first = book_msg([("0.40", "100")], [("0.55", "70")], asset=ASSET)
    assert registry.apply(ref.hashed(first)) == []
    burst = [
        make_change(t, *server_entries([("BUY", f"0.{t % 30 + 10}", "5")], ref, t))
        for t in range(2000, 2020)
    ]
    del burst[7]  # lost on the way
    return burst


async def test_while_the_keeper_runs_the_batch_end_check_follows_the_hand_off() -> None:
    # The default (verify_before_handoff=False): the consumer gets a batch's events without
    # waiting for its hash checks, which run as soon as it waits again, before anything else.
    registry = BookRegistry(BookOptions(verify_every=100, hash_grace_messages=0), batched=True)
    burst = _burst_with_a_lost_delta(registry, RefBook())
    book = registry[ASSET]
    clock = FakeClock()
    async with asyncio.TaskGroup() as group:
        harness = Harness(registry, clock, group)
        keeper = harness.keeper
        runner = group.create_task(keeper.run())
        await asyncio.sleep(0)  # the maintenance loops start
        queued = asyncio.get_running_loop().create_future()
        seen: list[str | None] = []

        async def consumer() -> None:
            await queued
            seen.append(book.in_doubt)  # what the consumer sees while handling the batch

        taker = group.create_task(consumer())
        await asyncio.sleep(0)
        assert keeper.observe(burst) == burst  # no verdict in the batch itself
        queued.set_result(None)  # the batch is queued: the consumer's wake-up comes now
        for _ in range(5):
            await asyncio.sleep(0)
        await taker
        assert seen == [None]  # the consumer was not kept waiting for the check
        assert book.in_doubt == "hash mismatch"  # and the check ran right after
        assert keeper._timer_at == clock.now() + BookOptions().grace_seconds  # timer told
        runner.cancel()


def test_a_batch_that_comes_before_the_deferred_check_has_it_run_first() -> None:
    registry = BookRegistry(BookOptions(verify_every=100, hash_grace_messages=0), batched=True)
    burst = _burst_with_a_lost_delta(registry, RefBook())
    book = registry[ASSET]
    keeper = Harness(registry, FakeClock(), None).keeper
    keeper._verifying = True  # as while run() runs, but its loop gets no turn here
    assert keeper.observe(burst) == burst
    assert book.in_doubt is None  # deferred
    later = make_change(3000, make_entry("0.30", "1", "BUY", hash="0" * 40))
    out = keeper.observe([later])
    # The deferred check opened the doubt before `later` was applied; `later` closes its run.
    assert out[0] is later and isinstance(out[1], BookInvalidated), out
    assert book.counters.hash_mismatches == 1


def test_verify_before_handoff_checks_inside_the_batch_even_while_the_keeper_runs() -> None:
    registry = BookRegistry(BookOptions(verify_every=100, verify_before_handoff=True), batched=True)
    burst = _burst_with_a_lost_delta(registry, RefBook())
    keeper = Harness(registry, FakeClock(), None).keeper
    keeper._verifying = True  # as while run() is running
    assert keeper.observe(burst) == burst
    assert registry[ASSET].in_doubt == "hash mismatch"
