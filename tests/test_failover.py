"""Failover end to end, against FakePolymarket over real loopback sockets (scaled intervals, hard
timeouts): with ``redundancy=2`` each fault on one leg delivers every event of the server's
ground-truth log exactly once, with no ``Gap`` and no book invalidation, and both legs down at
once owe one ``Gap``; the REST witness finds a silent stall on an active market within
``witness_after`` plus one REST round trip, and never flags a market that stopped trading."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Hashable

import pytest

from polyfeed import (
    BackoffConfig,
    Book,
    BookInvalidated,
    Connected,
    Disconnected,
    Gap,
    HeartbeatConfig,
    MarketStream,
    Redundancy,
    Stale,
    StreamConfig,
    WatchdogConfig,
)
from polyfeed.aio.redundant import RedundantPool
from polyfeed.config import PoolConfig
from polyfeed.core.codec import FrameDecoder
from polyfeed.core.merge import LegStats, MessageKey, message_key
from polyfeed.core.messages import MarketEvent
from polyfeed.testing import (
    DropTcp,
    FakeConnection,
    FakePolymarket,
    ForgetSubscriptions,
    Hang,
    StallData,
)

WITNESS_AFTER = 0.3
# A loaded two-core machine: one REST round trip plus scheduling, with room to spare; far below
# the data timeout (5 s) that would otherwise be the first to notice.
ROUND_TRIP_SLACK = 0.6


def witness_config(after: float = WITNESS_AFTER) -> StreamConfig:
    return StreamConfig(
        heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.25),
        watchdog=WatchdogConfig(data_timeout=5.0, confirm_timeout=2.0, witness_after=after),
        backoff=BackoffConfig(base=0.02, max_delay=0.16, jitter=0.0, stable_for=1.0),
        pool=PoolConfig(open_interval=0.0),
    )


async def trade(fake: FakePolymarket, period: float = 0.02) -> None:
    """Order flow on every market."""
    while True:
        fake.step(1)
        await asyncio.sleep(period)


async def snapshots(stream: MarketStream, assets: set[str]) -> None:
    missing = set(assets)
    while missing:
        event = await anext(stream)
        if isinstance(event, Book):
            missing.discard(event.asset_id)


@pytest.mark.timeout(30)
async def test_the_witness_finds_a_silent_stall_on_an_active_market_within_one_round_trip() -> None:
    async with FakePolymarket(markets=3, seed=21) as fake:
        loop = asyncio.get_running_loop()
        async with MarketStream(
            fake.asset_ids, endpoints=fake.endpoints, config=witness_config()
        ) as stream:
            async with asyncio.timeout(10):
                await snapshots(stream, set(fake.asset_ids))
            (first,) = fake.open_connections("market")
            async with asyncio.TaskGroup() as tg:
                producer = tg.create_task(trade(fake))
                await asyncio.sleep(0.2)  # data flows; the silence clock restarts with it
                fake.inject(StallData(), first)  # PONGs go on, data stops for good
                stalled_at = loop.time()
                events: list[object] = []
                async with asyncio.timeout(10):
                    while not any(isinstance(e, Connected) for e in events):
                        event = await anext(stream)
                        if isinstance(event, Stale) and not events:
                            detected_at = loop.time()
                        if isinstance(event, Stale) or events:
                            events.append(event)
                producer.cancel()
            stale = events[0]
            assert isinstance(stale, Stale)
            assert stale.kind == "witness"
            assert stale.asset_ids and set(stale.asset_ids) <= set(fake.asset_ids)
            assert detected_at - stalled_at < WITNESS_AFTER + ROUND_TRIP_SLACK
            assert WITNESS_AFTER - 0.05 <= stale.silent_for < WITNESS_AFTER + ROUND_TRIP_SLACK
            # The stale connection was replaced at once, by the witness, not the data timeout.
            assert not first.is_open
            assert len(fake.open_connections("market")) == 1
            pool = stream.pool
            assert pool is not None
            assert pool.witness_stale == 1
            assert stream.metrics.reconnects_by_reason.get("stale_witness") == 1


@pytest.mark.timeout(30)
async def test_the_witness_never_flags_a_market_that_stopped_trading() -> None:
    async with (
        FakePolymarket(markets=3, seed=22) as fake,
        MarketStream(
            fake.asset_ids, endpoints=fake.endpoints, config=witness_config(0.1)
        ) as stream,
    ):
        async with asyncio.timeout(10):
            await snapshots(stream, set(fake.asset_ids))
        for _ in range(10):  # it traded, then stopped
            fake.step(1)
        events: list[object] = []
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                while True:
                    events.append(await anext(stream))
        pool = stream.pool
        assert pool is not None
        assert pool.witness_checks >= 2  # it looked, more than once
        assert pool.witness_stale == 0
        assert not any(isinstance(e, Stale) for e in events)
        assert len(fake.connections) == 1  # never replaced


def test_profiles_set_the_witness() -> None:
    hft = StreamConfig.from_profile("hft").watchdog.witness_after
    dashboard = StreamConfig.from_profile("dashboard").watchdog.witness_after
    low = StreamConfig.from_profile("low-activity").watchdog.witness_after
    assert hft is not None and dashboard is not None and low is not None
    assert hft <= 5.0 < dashboard < low
    assert WatchdogConfig().witness_after is None  # off unless a profile or a caller sets it
    assert dataclasses.replace(WatchdogConfig(), witness_after=1.0).witness_sample == 3


# --------------------------------------------------------------------------- redundancy

REDUNDANT = StreamConfig(
    heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.25),
    watchdog=WatchdogConfig(data_timeout=0.6, confirm_timeout=2.0),
    backoff=BackoffConfig(base=0.02, max_delay=0.16, jitter=0.0, stable_for=1.0),
    pool=PoolConfig(open_interval=0.0),
)

Fault = Callable[[FakePolymarket, FakeConnection], Awaitable[None]]


def _truth(fake: FakePolymarket, origin: str) -> list[tuple[str, MessageKey]]:
    """The messages of ``origin`` the server addressed to the stream: sent to a connection, or
    withheld from it by a fault (``best_bid_ask`` without the custom feature is neither)."""
    log = fake.log
    addressed: set[int] = set()
    for connection in fake.connections:
        addressed.update(log.sent_seqs(connection.id))
        addressed.update(delivery.seq for delivery in log.withheld_from(connection.id))
    decoder = FrameDecoder("market")
    out = []
    for logged in log.events:
        if logged.origin == origin and logged.seq in addressed:
            for item in decoder.decode(logged.raw):
                event: MarketEvent = item  # type: ignore[assignment]
                out.append((event.market, message_key(event)))
    return out


def _per_market(pairs: list[tuple[str, MessageKey]]) -> dict[str, list[MessageKey]]:
    out: dict[str, list[MessageKey]] = {}
    for market, key in pairs:
        out.setdefault(market, []).append(key)
    return out


async def _run_with_fault(
    fault: Fault, seed: int, *, reconnections: int = 1
) -> tuple[FakePolymarket, list[object], dict[Hashable, LegStats]]:
    """Two legs; order flow; ``fault`` on one leg midway; flow until the failed legs are back
    (``reconnections`` new sockets); every event the consumer saw."""
    events: list[object] = []
    async with (
        FakePolymarket(markets=2, seed=seed) as fake,
        MarketStream(
            fake.asset_ids, endpoints=fake.endpoints, config=REDUNDANT, redundancy=2
        ) as stream,
    ):
        async with asyncio.timeout(10):
            await fake.wait_for_connection(2)
            missing = set(fake.asset_ids)
            while missing:
                event = await anext(stream)
                events.append(event)
                if isinstance(event, Book):
                    missing.discard(event.asset_id)
        victim = fake.open_connections("market")[0]

        async def flow() -> None:
            for step in range(200):
                fake.step(1)
                if step == 20:
                    await fault(fake, victim)
                await asyncio.sleep(0.01)

        async def consume() -> None:
            while True:
                events.append(await anext(stream))

        async with asyncio.timeout(15):
            async with asyncio.TaskGroup() as tg:
                consumer = tg.create_task(consume())
                await flow()
                # The failed legs are back (subscribed again), then the last events drain.
                await fake.wait_for_connection(2 + reconnections)
                fake.step(5)
                await asyncio.sleep(0.3)
                consumer.cancel()
        pool = stream.pool
        assert isinstance(pool, RedundantPool)
        assert all(stream.books[asset].synced for asset in fake.asset_ids)
    return fake, events, pool.merger.stats


def _delivered(events: list[object]) -> list[tuple[str, MessageKey]]:
    return [(e.market, message_key(e)) for e in events if isinstance(e, MarketEvent.__args__)]


async def _stall(fake: FakePolymarket, victim: FakeConnection) -> None:
    fake.inject(StallData(), victim)


async def _close(fake: FakePolymarket, victim: FakeConnection) -> None:
    await fake.disconnect(victim, code=1012)


async def _drop(fake: FakePolymarket, victim: FakeConnection) -> None:
    fake.inject(DropTcp(), victim)


async def _hang(fake: FakePolymarket, victim: FakeConnection) -> None:
    fake.inject(Hang(), victim)


async def _forget(fake: FakePolymarket, victim: FakeConnection) -> None:
    fake.inject(ForgetSubscriptions(), victim)


@pytest.mark.timeout(40)
@pytest.mark.parametrize(
    "fault",
    [_stall, _close, _drop, _hang, _forget],
    ids=["silent-stall", "server-close", "tcp-drop", "hung-peer", "forgotten-subscription"],
)
async def test_a_fault_on_one_leg_loses_and_repeats_nothing(fault: Fault) -> None:
    fake, events, stats = await _run_with_fault(fault, seed=31)
    truth = _truth(fake, "market")
    assert len(truth) >= 200
    snapshots = {key for _, key in _truth(fake, "snapshot")}
    delivered = [(m, k) for m, k in _delivered(events) if k not in snapshots]
    # Every generated event exactly once, in order per market.
    assert _per_market(delivered) == _per_market(truth)
    assert not [e for e in events if isinstance(e, Gap | BookInvalidated | Disconnected)]
    states = [e.state for e in events if isinstance(e, Redundancy)]
    assert states == ["degraded", "full"]
    # The failed leg did reconnect: the fault really took it down.
    assert len(fake.connections) == 3
    # Per-leg stats: every message was first on one leg; the other saw it as a duplicate.
    assert sum(leg.first for leg in stats.values()) == len(_delivered(events))
    assert all(leg.delivered > 0 for leg in stats.values())
    assert sum(leg.resets for leg in stats.values()) == 1


@pytest.mark.timeout(40)
async def test_both_legs_down_at_once_owe_one_gap_for_the_outage() -> None:
    async def both(fake: FakePolymarket, victim: FakeConnection) -> None:
        await fake.disconnect(abort=True)

    fake, events, _ = await _run_with_fault(both, seed=32, reconnections=2)
    gaps = [e for e in events if isinstance(e, Gap)]
    assert len(gaps) == 1
    (gap,) = gaps
    assert sorted(gap.assets) == sorted(fake.asset_ids)
    assert 0 <= gap.ended - gap.started < 2.0
    states = [e.state for e in events if isinstance(e, Redundancy)]
    assert states[0] == "degraded" and "down" in states and states[-1] == "full"
    assert any(isinstance(e, BookInvalidated) for e in events)
