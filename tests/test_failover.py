"""Failover end to end, against FakePolymarket over real loopback sockets (scaled intervals, hard
timeouts): the REST witness finds a silent stall on an active market within ``witness_after``
plus one REST round trip, and never flags a market that stopped trading."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from polyfeed import (
    BackoffConfig,
    Book,
    Connected,
    HeartbeatConfig,
    MarketStream,
    Stale,
    StreamConfig,
    WatchdogConfig,
)
from polyfeed.config import PoolConfig
from polyfeed.testing import FakePolymarket, StallData

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
