"""ConnectionPool behind MarketStream, against FakePolymarket over real loopback sockets.

Spread over connections, paced handshakes (slower after a 429), live routing of subscribe and
unsubscribe, closing emptied and compacting sparse connections, and isolation: one connection's
failure never disturbs the others. Intervals are scaled down; every test has a hard timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest

from conftest import collector_paused
from polyfeed import (
    AssetChecked,
    BackoffConfig,
    Book,
    BookInvalidated,
    Connected,
    ConnectionReplaced,
    Disconnected,
    Gap,
    HeartbeatConfig,
    MarketStream,
    PriceChange,
    Resubscribed,
    StreamConfig,
    WatchdogConfig,
)
from polyfeed.aio.transport import connect
from polyfeed.config import PoolConfig
from polyfeed.errors import ServerUnavailableError
from polyfeed.testing import FakePolymarket, RefuseHandshake, SilenceAsset

FAST = StreamConfig(
    heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.25),
    watchdog=WatchdogConfig(data_timeout=5.0, confirm_timeout=2.0),
    backoff=BackoffConfig(base=0.02, max_delay=0.16, jitter=0.0, stable_for=1.0),
    pool=PoolConfig(open_interval=0.0),
)


def fast(per_connection: int, **pool: Any) -> StreamConfig:
    return dataclasses.replace(
        FAST,
        max_assets_per_connection=per_connection,
        pool=dataclasses.replace(FAST.pool, **pool),
    )


async def books_for(stream: AsyncIterator[Any], assets: set[str], limit: int = 100_000) -> None:
    """Consume until every asset had a Book snapshot."""
    missing = set(assets)
    for _ in range(limit):
        event = await anext(stream)
        if isinstance(event, Book):
            missing.discard(event.asset_id)
            if not missing:
                return
    raise AssertionError(f"no book for {len(missing)} assets")


async def wait_until(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Poll server-side state (the fake offers no event for it) until ``predicate()``."""
    for _ in range(int(limit / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def subscribed_sets(fake: FakePolymarket) -> list[set[str]]:
    return [set(c.subscribed) for c in fake.open_connections("market")]


@pytest.mark.timeout(30)
async def test_1000_assets_spread_over_5_connections_each_gets_its_book() -> None:
    async with FakePolymarket(markets=500, seed=3) as fake:
        assets = set(fake.asset_ids)
        # No reconnect is asserted below: a 0.25 s PONG deadline is missed on a loaded machine
        # (1000 snapshots and 500 metadata requests in one process), so this one is generous.
        config = dataclasses.replace(
            fast(200), heartbeat=HeartbeatConfig(interval=0.5, pong_timeout=3.0)
        )
        async with MarketStream(assets, endpoints=fake.endpoints, config=config) as stream:
            async with asyncio.timeout(20):
                await books_for(stream, assets)
            sets = subscribed_sets(fake)
            assert sorted(len(s) for s in sets) == [200] * 5
            assert set().union(*sets) == assets
            assert all(stream.books[a].synced for a in assets)
            health = stream.health()
            assert health.state == "open"
            assert health.subscribed == 1000
            assert [(c.assets, c.connected, c.state) for c in health.connections] == [
                (200, True, "open")
            ] * 5
            text = stream.metrics.render_prometheus(stream.clock.now())
            assert "polyfeed_open_connections 5" in text
            assert 'polyfeed_connection_assets{connection="5"} 200' in text
            assert stream.metrics.connects_total == 5


@pytest.mark.timeout(30)
async def test_handshakes_keep_the_pace_and_a_429_slows_it() -> None:
    interval = 0.02
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    async def recording(url: str, **options: Any) -> Any:
        starts.append(loop.time())
        return await connect(url, **options)

    plan = {3: [RefuseHandshake(429)]}
    # The recorded starts are loop times: a full garbage collection (100+ ms this deep in a run)
    # between a turn and its start would bunch two starts together.
    with collector_paused():
        async with FakePolymarket(markets=25, seed=4, faults=plan) as fake:
            config = fast(1, open_interval=interval, max_open_interval=1.0)
            async with MarketStream(
                fake.asset_ids, endpoints=fake.endpoints, config=config, connector=recording
            ) as stream:
                async with asyncio.timeout(20):
                    await books_for(stream, set(fake.asset_ids))
                pool = stream.pool
                assert pool is not None
                assert pool.pacer.throttles == 1
                assert stream.metrics.reconnects_by_reason == {"http_429": 1}
    # 50 connections, 51 handshakes (one refused and retried), never closer than the pace.
    assert len(starts) == 51
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Turns are exact; the recorded starts carry a few ms of event-loop jitter.
    assert min(gaps) >= interval - 0.004
    assert starts[-1] - starts[0] >= (len(starts) - 1) * interval
    # The turn after the 429 (the 4th handshake) waits the doubled interval.
    assert gaps[3] >= 2 * interval - 0.004


@pytest.mark.timeout(20)
async def test_a_429_is_told_to_the_pacer() -> None:
    async def refusing(url: str, **options: Any) -> Any:
        raise ServerUnavailableError(429, retry_after=0.3)

    config = fast(1, open_interval=0.01)
    stream = MarketStream(
        ["a"], url="ws://127.0.0.1:1/ws/market", config=config, connector=refusing
    )
    async with stream:
        await asyncio.sleep(0.2)
        pool = stream.pool
        assert pool is not None
        # The server asked for 0.3 s: one handshake only, and a slower pace after it.
        assert pool.handshakes == 1
        assert pool.pacer.interval == pytest.approx(0.02)


@pytest.mark.timeout(30)
async def test_live_subscribe_fills_connections_with_room_then_opens_new_ones() -> None:
    async with FakePolymarket(markets=4, seed=5) as fake:
        a = sorted(fake.asset_ids)
        async with MarketStream(a[:3], endpoints=fake.endpoints, config=fast(2)) as stream:
            async with asyncio.timeout(10):
                await books_for(stream, set(a[:3]))
            assert len(fake.open_connections("market")) == 2
            pool = stream.pool
            assert pool is not None
            assert await stream.subscribe([a[3]]) == [a[3]]
            async with asyncio.timeout(10):
                await books_for(stream, {a[3]})
            # Live on the connection with room: no new socket.
            assert len(fake.connections) == 2
            assert pool.connection_of(a[3]) == pool.connection_of(a[2])
            assert {a[2], a[3]} in subscribed_sets(fake)
            assert await stream.subscribe(a[4:7]) == a[4:7]
            async with asyncio.timeout(10):
                await books_for(stream, set(a[4:7]))
            await wait_until(lambda: len(fake.open_connections("market")) == 4)
            assert sorted(map(len, subscribed_sets(fake))) == [1, 2, 2, 2]
            assert stream.health().subscribed == 7
            assert all(stream.books[x].synced for x in a[:7])


@pytest.mark.timeout(30)
async def test_an_emptied_connection_closes_and_a_sparse_one_is_compacted() -> None:
    async with FakePolymarket(markets=6, seed=6) as fake:
        a = sorted(fake.asset_ids)
        config = fast(4, compact_below=0.5)
        async with MarketStream(a, endpoints=fake.endpoints, config=config) as stream:
            async with asyncio.timeout(10):
                await books_for(stream, set(a))
            pool = stream.pool
            assert pool is not None
            assert len(fake.open_connections("market")) == 3
            # Emptying connection 3 closes it.
            await stream.unsubscribe(a[8:12])
            await wait_until(lambda: len(fake.open_connections("market")) <= 2)
            assert [c.connection for c in stream.health().connections] == [1, 2]
            # Connection 2 down to one asset: it fits on connection 1, so it moves there.
            await stream.unsubscribe([a[0], a[4], a[5], a[6]])
            await wait_until(lambda: len(fake.open_connections("market")) <= 1)
            async with asyncio.timeout(5):
                await books_for(stream, {a[7]})
            assert subscribed_sets(fake) == [{a[1], a[2], a[3], a[7]}]
            assert pool.compactions == 1
            assert pool.connection_of(a[7]) == 1
            assert [c.assets for c in stream.health().connections] == [4]
            assert stream.books[a[7]].synced
            assert stream.subscriptions == {a[1], a[2], a[3], a[7]}


@pytest.mark.timeout(30)
async def test_a_killed_connection_recovers_while_the_others_deliver_without_a_gap() -> None:
    async with FakePolymarket(markets=6, seed=7) as fake:
        a = sorted(fake.asset_ids)
        received: set[tuple[str, str, int]] = set()
        events: list[object] = []

        async def consume(stream: MarketStream) -> None:
            async for event in stream:
                events.append(event)
                if isinstance(event, PriceChange):
                    received.add(("price_change", event.market, event.timestamp))

        async with MarketStream(a, endpoints=fake.endpoints, config=fast(4)) as stream:
            async with asyncio.timeout(10):
                await books_for(stream, set(a))
            pool = stream.pool
            assert pool is not None
            async with asyncio.TaskGroup() as tg:
                consumer = tg.create_task(consume(stream))
                survivors = fake.open_connections("market")
                victim = survivors.pop(1)
                victim_assets = set(victim.subscribed)
                for _ in range(10):
                    fake.step(3)
                    await asyncio.sleep(0.01)
                await fake.disconnect(victim, abort=True)
                for _ in range(30):
                    fake.step(3)
                    await asyncio.sleep(0.01)
                await wait_until(lambda: any(isinstance(e, Gap) for e in events), 10.0)
                for connection in fake.open_connections("market"):
                    await connection.flush()
                await asyncio.sleep(0.2)
                consumer.cancel()
            gaps = [e for e in events if isinstance(e, Gap)]
            assert [set(g.assets) for g in gaps] == [victim_assets]
            assert sum(isinstance(e, Disconnected) for e in events) == 1
            invalidated = [e for e in events if isinstance(e, BookInvalidated)]
            assert invalidated and all(set(e.asset_ids) <= victim_assets for e in invalidated)
            # Every message the surviving sockets were sent reached the consumer.
            for connection in survivors:
                sent = [e for e in fake.log.sent_to(connection.id) if e.origin == "market"]
                assert sent
                assert all(
                    (e.event_type, e.market, int(e.timestamp)) in received
                    for e in sent
                    if e.event_type == "price_change"
                )
            health = stream.health()
            assert health.state == "open"
            assert [c.reconnects for c in health.connections] == [0, 1, 0]
            assert sum(isinstance(e, Connected) for e in events) == 1
            assert all(stream.books[x].synced for x in a)


def liveness_config(asset_timeout: float, retries: int = 2) -> StreamConfig:
    return dataclasses.replace(
        fast(200),
        watchdog=WatchdogConfig(
            data_timeout=5.0,
            confirm_timeout=2.0,
            asset_timeout=asset_timeout,
            asset_retries=retries,
        ),
    )


async def flow_except(fake: FakePolymarket, quiet: str) -> None:
    """Order flow on every market but ``quiet`` (a market nobody trades)."""
    markets = [m.condition_id for m in fake.markets if m.condition_id != quiet]
    while True:
        for market in markets:
            fake.step(1, market=market)
        await asyncio.sleep(0.02)


@pytest.mark.timeout(30)
async def test_one_silent_asset_among_200_is_checked_redriven_alone_and_flows_again() -> None:
    asset_timeout = 0.3
    async with FakePolymarket(markets=100, seed=8) as fake:
        quiet_market = fake.markets[0]
        dead = fake.markets[1].yes_token
        events: list[object] = []
        loop = asyncio.get_running_loop()
        config = liveness_config(asset_timeout)
        async with MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=config) as stream:
            async with asyncio.timeout(10):
                await books_for(stream, set(fake.asset_ids))
            assert len(fake.open_connections("market")) == 1
            async with asyncio.TaskGroup() as tg:
                producer = tg.create_task(flow_except(fake, quiet_market.condition_id))
                fake.inject(SilenceAsset(dead, until_unsubscribed=True))
                silenced_at = loop.time()
                checked_at = flowing_at = None
                async with asyncio.timeout(10):
                    while flowing_at is None:
                        event = await anext(stream)
                        events.append(event)
                        if (
                            isinstance(event, AssetChecked)
                            and event.action == "redrive"
                            and checked_at is None
                        ):
                            checked_at = loop.time()
                        if (
                            checked_at is not None
                            and isinstance(event, PriceChange)
                            and any(e.asset_id == dead for e in event.price_changes)
                        ):
                            flowing_at = loop.time()
                producer.cancel()
            redriven = [
                e for e in events if isinstance(e, AssetChecked) and e.action != "left_alone"
            ]
            assert [(e.action, e.asset_ids) for e in redriven] == [("redrive", [dead])]
            # Detected within asset_timeout of its last event plus the REST check.
            assert checked_at is not None
            assert checked_at - silenced_at < asset_timeout + 0.5
            resubscribed = [e for e in events if isinstance(e, Resubscribed)]
            assert [e.assets for e in resubscribed] == [[dead]]
            # The quiet market was checked and left alone: never flagged, never redriven.
            quiet = set(quiet_market.tokens)
            left_alone = [
                e for e in events if isinstance(e, AssetChecked) and e.action == "left_alone"
            ]
            assert quiet <= {a for e in left_alone for a in e.asset_ids}
            assert not any(isinstance(e, Disconnected | ConnectionReplaced) for e in events)
            assert stream.books[dead].synced
            pool = stream.pool
            assert pool is not None
            assert pool.replacements == 0


@pytest.mark.timeout(30)
async def test_an_asset_a_redrive_cannot_cure_gets_its_connection_replaced() -> None:
    async with FakePolymarket(markets=3, seed=9) as fake:
        dead = fake.markets[1].yes_token
        others = [a for a in fake.asset_ids if a != dead]
        events: list[object] = []
        config = liveness_config(0.2, retries=1)
        async with MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=config) as stream:
            async with asyncio.timeout(10):
                await books_for(stream, set(fake.asset_ids))
            async with asyncio.TaskGroup() as tg:
                producer = tg.create_task(flow_except(fake, ""))
                fake.inject(SilenceAsset(dead))
                async with asyncio.timeout(10):
                    while not any(isinstance(e, Connected) for e in events):
                        events.append(await anext(stream))
                    await books_for(stream, {dead})
                producer.cancel()
            checks = [(e.action, e.asset_ids) for e in events if isinstance(e, AssetChecked)]
            assert checks == [("redrive", [dead]), ("replace", [dead])]
            [replaced] = [e for e in events if isinstance(e, ConnectionReplaced)]
            assert replaced.asset_ids == [dead]
            assert replaced.pool_connection == 1
            assert sum(isinstance(e, Disconnected) for e in events) == 1
            assert len(fake.connections) == 2
            assert set(others) | {dead} == fake.open_connections("market")[0].subscribed
            pool = stream.pool
            assert pool is not None
            assert pool.replacements == 1


@pytest.mark.timeout(30)
async def test_a_markets_tokens_given_side_by_side_share_a_connection_and_arrive_once() -> None:
    async with FakePolymarket(markets=4, seed=10) as fake:
        # YES then NO per market, as discovery lists them.
        stream = MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=fast(2))
        async with stream:
            async with asyncio.timeout(10):
                await books_for(stream, set(fake.asset_ids))
            assert sorted(map(sorted, subscribed_sets(fake))) == sorted(
                sorted(m.tokens) for m in fake.markets
            )
            sent = [e for e in fake.step(20) if e.event_type == "price_change"]
            received: list[tuple[str, int]] = []
            async with asyncio.timeout(10):
                while len(received) < len(sent):
                    event = await anext(stream)
                    if isinstance(event, PriceChange):
                        received.append((event.market, event.timestamp))
            assert sorted(received) == sorted((e.market, int(e.timestamp)) for e in sent)


@pytest.mark.timeout(30)
async def test_a_markets_tokens_on_two_connections_each_entry_once_and_the_books_stay_exact() -> (
    None
):
    # One asset per connection: every market's YES and NO sit on different sockets, and the
    # server sends each price_change (both tokens' entries) down both. Applied from both, a stale
    # copy from the slower socket undid newer levels (hash mismatches, resyncs, duplicates).
    async with FakePolymarket(markets=3, seed=21, run_probability=0.0) as fake:
        stream = MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=fast(1))
        async with stream:
            async with asyncio.timeout(10):
                await books_for(stream, set(fake.asset_ids))
            assert len(fake.open_connections("market")) == 6
            sent = [
                (entry["asset_id"], int(event.timestamp), entry["price"], entry["size"])
                for event in fake.step(60)
                if event.event_type == "price_change"
                for entry in msgspec.json.decode(event.raw)["price_changes"]
            ]
            received: list[tuple[str, int, str, str]] = []
            other: list[object] = []
            async with asyncio.timeout(10):
                while len(received) < len(sent):
                    event = await anext(stream)
                    if isinstance(event, PriceChange):
                        received += [
                            (e.asset_id, event.timestamp, e.price, e.size)
                            for e in event.price_changes
                        ]
                    else:
                        other.append(event)
            assert sorted(received) == sorted(sent)  # every entry exactly once
            assert not [e for e in other if isinstance(e, BookInvalidated)]
            for asset in fake.asset_ids:
                book = stream.books[asset]
                assert book.synced and book.counters.hash_mismatches == 0
                assert [(lv.price, lv.size) for lv in book.levels("bids")] == list(
                    fake.book(asset).bids[::-1]
                )


@pytest.mark.timeout(30)
async def test_closing_the_stream_closes_every_connection_politely_and_leaves_no_task() -> None:
    async with FakePolymarket(markets=10, seed=13) as fake:
        stream = MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=fast(4))
        async with stream:
            async with asyncio.timeout(10):
                await books_for(stream, set(fake.asset_ids))
            assert len(fake.open_connections("market")) == 5
            assert "polyfeed-pool-3" in {t.get_name() for t in asyncio.all_tasks()}
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("polyfeed-")] == []
        await wait_until(lambda: not fake.open_connections("market"))
        assert [c.close.code if c.close else None for c in fake.connections] == [1000] * 5
        assert stream.health().state == "closed"
        health = stream.health()
        assert [(c.state, c.connected) for c in health.connections] == [("closed", False)] * 5
        assert not health.connected
        assert stream.metrics.open_connections == 0
