"""MarketStream / UserStream against FakePolymarket over real loopback sockets.

Each known failure mode is reproduced by a fault and recovered, with the consumer told.
Intervals are scaled down (tens of ms); every test has a hard timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest

from polyfeed import (
    AuthenticationError,
    BackoffConfig,
    Book,
    BookResynced,
    ConfigError,
    Connected,
    Credentials,
    Disconnected,
    Endpoints,
    Gap,
    HandshakeRejectedError,
    HeartbeatConfig,
    MarketStream,
    MarketStreamEvent,
    Order,
    PolyfeedError,
    PriceChange,
    QueueConfig,
    Reconnecting,
    Resubscribed,
    Stale,
    StreamClosedError,
    StreamConfig,
    StreamNotStartedError,
    Trade,
    UserStream,
    WatchdogConfig,
)
from polyfeed.core.messages import Unknown
from polyfeed.core.placement import Shard, shard_of
from polyfeed.testing import (
    CloseWith,
    DropTcp,
    FakePolymarket,
    ForgetSubscriptions,
    Hang,
    IgnoreSubscription,
    RefuseHandshake,
    StallData,
)

FAST = StreamConfig(
    heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.25),
    watchdog=WatchdogConfig(data_timeout=0.4, confirm_timeout=2.0),
    backoff=BackoffConfig(base=0.02, max_delay=0.16, jitter=0.0, stable_for=1.0),
)


def fast(**overrides: Any) -> StreamConfig:
    return dataclasses.replace(FAST, **overrides)


async def until(stream: AsyncIterator[Any], kind: type, limit: int = 10_000) -> Any:
    for _ in range(limit):
        event = await anext(stream)
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} within {limit} events")


async def flow(fake: FakePolymarket, period: float = 0.02) -> None:
    """Keep order flow going, like a live market."""
    while True:
        fake.step(1)
        await asyncio.sleep(period)


@pytest.mark.timeout(15)
async def test_snapshots_then_live_deltas_over_a_real_socket() -> None:
    async with FakePolymarket(markets=2, seed=1) as fake:
        assets = list(fake.asset_ids[:2])
        async with MarketStream(assets, endpoints=fake.endpoints, config=FAST) as stream:
            assert isinstance(await anext(stream), Connected)
            books = [await until(stream, Book), await until(stream, Book)]
            assert {b.asset_id for b in books} == set(assets)
            fake.step(5, market=fake.markets[0].condition_id)
            change = await until(stream, PriceChange)
            assert change.market == fake.markets[0].condition_id
            health = stream.health()
            assert health.connected
            assert health.confirmed == 2


@pytest.mark.timeout(15)
async def test_silent_stall_detected_within_the_deadline_replayed_and_gap_reported() -> None:
    plan = {0: [StallData(after=0.2)]}
    async with FakePolymarket(markets=1, seed=2, faults=plan) as fake:
        loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as tg:
            producer = tg.create_task(flow(fake))
            async with MarketStream(
                fake.asset_ids, endpoints=fake.endpoints, config=FAST
            ) as stream:
                last_data = 0.0
                while True:
                    event = await anext(stream)
                    if isinstance(event, PriceChange | Book):
                        last_data = loop.time()
                    if isinstance(event, Stale):
                        break
                assert event.kind == "data"
                # Detection within a small slack of the data deadline (0.4 s after the last data).
                assert loop.time() - last_data < 0.4 + 0.15
                first = fake.connections[0]
                assert first.pings > 0
                await until(stream, Reconnecting)
                await until(stream, Connected)
                resubscribed = await until(stream, Resubscribed)
                assert sorted(resubscribed.assets) == sorted(fake.asset_ids)
                gap = await until(stream, Gap)
                assert gap.reason == "stale_data"
                assert sorted(gap.assets) == sorted(fake.asset_ids)
                await until(stream, Book)
                await until(stream, PriceChange)
                # Everything the stall withheld lies inside the reported gap.
                withheld = fake.log.withheld_from(first.id)
                assert withheld
                for delivery in withheld:
                    ts = int(fake.log.event(delivery.seq).timestamp) / 1000.0
                    assert gap.started - 0.01 <= ts <= gap.ended + 0.01
            producer.cancel()


@pytest.mark.timeout(15)
@pytest.mark.parametrize("code", [1000, 1001, 1011])
async def test_server_close_codes_reconnect_with_backoff_and_replay(code: int) -> None:
    plan = {0: [CloseWith(code=code, after=0.1)]}
    async with (
        FakePolymarket(markets=2, seed=3, faults=plan) as fake,
        MarketStream(fake.asset_ids[:3], endpoints=fake.endpoints, config=FAST) as stream,
    ):
        disconnected = await until(stream, Disconnected)
        assert disconnected.code == code
        reconnecting = await until(stream, Reconnecting)
        assert reconnecting.delay <= 0.25  # the fast first retry: it delivered data
        await until(stream, Connected)
        second = await fake.wait_for_connection(2)
        assert sorted(second.subscribed) == sorted(fake.asset_ids[:3])
        await until(stream, Book)


@pytest.mark.timeout(15)
@pytest.mark.parametrize("fault", [DropTcp(after=0.1), Hang()], ids=["drop_tcp", "hang"])
async def test_dead_peer_found_by_the_pong_deadline_and_replaced(fault: Any) -> None:
    plan = {0: [fault]}
    cfg = fast(watchdog=WatchdogConfig(data_timeout=30.0, confirm_timeout=5.0))
    async with (
        FakePolymarket(markets=1, seed=4, faults=plan) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=cfg) as stream,
    ):
        loop = asyncio.get_running_loop()
        events: list[Any] = []
        while True:
            events.append(await anext(stream))
            if isinstance(events[-1], Stale | Disconnected):
                detected = loop.time()
                break
        if isinstance(fault, Hang):
            assert isinstance(events[-1], Stale)
            assert events[-1].kind == "pong"
        reconnecting = await until(stream, Reconnecting)
        await fake.wait_for_connection(2, state=None)
        # Reconnect starts right after detection plus the backoff delay: never after waiting out
        # a close handshake with the dead peer (close_timeout, 0.5 s). The slack is for a loaded
        # 2-core machine (50 ms failed about one run in four there).
        assert cfg.close_timeout == 0.5
        assert loop.time() - detected < reconnecting.delay + 0.3
        await until(stream, Connected)
        await until(stream, Book)


@pytest.mark.timeout(15)
async def test_forgotten_subscriptions_are_detected_and_replayed() -> None:
    plan = {0: [ForgetSubscriptions(after=0.15)]}
    async with FakePolymarket(markets=1, seed=5, faults=plan) as fake, asyncio.TaskGroup() as tg:
        producer = tg.create_task(flow(fake))
        async with MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST) as stream:
            stale = await until(stream, Stale)
            assert stale.kind == "data"
            await until(stream, Connected)
            await until(stream, Book)
            await until(stream, PriceChange)
        producer.cancel()


@pytest.mark.timeout(15)
async def test_ignored_asset_is_detected_and_redriven() -> None:
    async with FakePolymarket(markets=2, seed=6) as fake:
        ignored = fake.asset_ids[1]
        fake.faults.add(0, IgnoreSubscription((ignored,)))
        cfg = fast(watchdog=WatchdogConfig(data_timeout=30.0, confirm_timeout=0.2))
        assets = list(fake.asset_ids[:2])
        async with MarketStream(assets, endpoints=fake.endpoints, config=cfg) as stream:
            stale = await until(stream, Stale)
            assert stale.kind == "asset"
            assert stale.asset_ids == [ignored]
            resubscribed = await until(stream, Resubscribed)
            assert resubscribed.assets == [ignored]
            connection = await fake.wait_for_connection(1)
            await asyncio.sleep(0.05)
            operations = [f for f in connection.frames_received if "operation" in f]
            assert '"unsubscribe"' in operations[0]
            assert '"subscribe"' in operations[1]
            assert stream.metrics.connects_total == 1


@pytest.mark.timeout(15)
async def test_flapping_server_backoff_grows_to_the_cap() -> None:
    async with FakePolymarket(markets=1, seed=7) as fake:
        fake.faults.add_every(CloseWith(code=1011, after=0.0))
        async with MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST) as stream:
            delays = [(await until(stream, Reconnecting)).delay for _ in range(6)]
        assert delays == pytest.approx([0.02, 0.04, 0.08, 0.16, 0.16, 0.16])


@pytest.mark.timeout(15)
async def test_429_honours_retry_after_and_503_backs_off() -> None:
    async with FakePolymarket(markets=1, seed=8) as fake:
        fake.faults.add(0, RefuseHandshake(status=429, retry_after=0.3))
        fake.faults.add(1, RefuseHandshake(status=503))
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST) as stream:
            first = await until(stream, Reconnecting)
            second = await until(stream, Reconnecting)
            await until(stream, Connected)
            assert first.delay == pytest.approx(0.3)
            assert second.delay == pytest.approx(0.04)
            assert loop.time() - started >= 0.34
            assert stream.metrics.reconnects_by_reason == {"http_429": 1, "http_503": 1}


@pytest.mark.timeout(15)
async def test_401_is_fatal_with_a_clear_message_and_no_retry_storm() -> None:
    async with FakePolymarket(markets=1, seed=9) as fake:
        fake.faults.add_every(RefuseHandshake(status=401), path="user")
        creds = Credentials(api_key="k" * 36, secret="top-secret-value", passphrase="p" * 64)
        stream = UserStream(None, credentials=creds, endpoints=fake.endpoints, config=FAST)
        async with stream:
            with pytest.raises(AuthenticationError) as info:
                async for _ in stream:
                    pass
        assert "401" in str(info.value)
        assert "top-secret-value" not in str(info.value)
        assert len([c for c in fake.connections if c.path == "user"]) == 3


@pytest.mark.timeout(15)
async def test_bad_user_credentials_dropped_by_the_server_are_fatal() -> None:
    async with FakePolymarket(markets=1, seed=10) as fake:
        creds = Credentials(api_key="k" * 36, secret="wrong-secret", passphrase="p" * 64)
        stream = UserStream(None, credentials=creds, endpoints=fake.endpoints, config=FAST)
        async with stream:
            with pytest.raises(AuthenticationError):
                async for _ in stream:
                    pass


@pytest.mark.timeout(15)
async def test_user_channel_with_good_credentials_streams_orders_and_trades() -> None:
    async with FakePolymarket(markets=2, seed=11) as fake:
        creds = Credentials(
            api_key=fake.credentials.api_key,
            secret=fake.credentials.secret,
            passphrase=fake.credentials.passphrase,
        )
        market = fake.markets[0].condition_id
        async with UserStream(
            [market], credentials=creds, endpoints=fake.endpoints, config=FAST
        ) as s:
            await until(s, Connected)
            await fake.wait_for_connection(1, path="user")
            fake.step_user(6, market=market)
            seen = [await anext(s) for _ in range(6)]
            orders_and_trades = [e for e in seen if isinstance(e, Order | Trade)]
            assert len(orders_and_trades) == len(seen)
            assert {e.market for e in orders_and_trades} == {market}


@pytest.mark.timeout(15)
async def test_live_subscribe_and_unsubscribe_without_reconnect() -> None:
    async with FakePolymarket(markets=3, seed=12) as fake:
        a, b, c = fake.asset_ids[0], fake.asset_ids[2], fake.asset_ids[4]
        async with MarketStream([a], endpoints=fake.endpoints, config=FAST) as stream:
            assert (await until(stream, Book)).asset_id == a
            assert await stream.subscribe([b, c]) == [b, c]
            got = {(await until(stream, Book)).asset_id, (await until(stream, Book)).asset_id}
            assert got == {b, c}
            assert await stream.unsubscribe([a]) == [a]
            connection = await fake.wait_for_connection(1)
            await asyncio.sleep(0.05)
            assert sorted(connection.subscribed) == sorted([b, c])
            assert len(fake.connections) == 1
            assert stream.metrics.connects_total == 1


@pytest.mark.timeout(20)
async def test_slow_consumer_does_not_delay_heartbeats_and_drops_are_a_gap() -> None:
    async with FakePolymarket(markets=2, seed=13) as fake:
        cfg = fast(
            queue=QueueConfig(maxsize=100, overflow="drop_oldest"),
            watchdog=WatchdogConfig(data_timeout=5.0, confirm_timeout=2.0),
        )
        async with MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=cfg) as stream:
            await until(stream, Connected)
            connection = await fake.wait_for_connection(1)
            pings_before = connection.pings
            # The consumer sleeps for 0.6 s while 2,000 messages arrive.
            await fake.burst(2000)
            await asyncio.sleep(0.6)
            assert connection.pings - pings_before >= 8
            gap = await until(stream, Gap)
            assert gap.reason == "consumer queue overflow"
            assert gap.dropped >= 1800
            assert stream.metrics.stale_by_kind == {}
            assert stream.health().dropped_events == gap.dropped
            assert stream.metrics.connects_total == 1


@pytest.mark.timeout(15)
async def test_malformed_unknown_and_huge_frames_are_skipped_and_counted() -> None:
    async with (
        FakePolymarket(markets=1, seed=14) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST) as stream,
    ):
        await until(stream, Book)
        await fake.send_raw('{"event_type": "price_change", "market": "0x')
        await fake.send_raw('{"event_type": "settlement_preview", "market": "0x1"}')
        await fake.send_raw("not json at all")
        await fake.send_raw('{"event_type": "book", "padding": "' + "x" * 2_000_000 + '"}')
        fake.step(1)
        await until(stream, PriceChange)
        assert stream.metrics.decode_errors_total >= 2
        assert stream.metrics.unknown_events_total == 1
        assert stream.metrics.connects_total == 1


@pytest.mark.timeout(15)
async def test_aclose_within_a_second_against_a_hung_server_and_no_task_left() -> None:
    async with FakePolymarket(markets=1, seed=15) as fake:
        before = asyncio.all_tasks()
        stream = MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST)
        await stream.start()
        await until(stream, Book)
        fake.inject(Hang())
        loop = asyncio.get_running_loop()
        started = loop.time()
        await stream.aclose()
        assert loop.time() - started < 1.0
        assert not [t for t in asyncio.all_tasks() - before if "polyfeed" in t.get_name()]
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("polyfeed-")]


@pytest.mark.timeout(15)
async def test_unknown_event_reaches_the_consumer_as_unknown() -> None:
    async with (
        FakePolymarket(markets=1, seed=16) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST) as stream,
    ):
        await until(stream, Book)
        await fake.send_raw('{"event_type": "settlement_preview", "market": "0x1"}')
        unknown = await until(stream, Unknown)
        assert unknown.event_type == "settlement_preview"


@pytest.mark.timeout(15)
async def test_closing_while_a_connection_is_ending_does_not_hang() -> None:
    # The consumer leaves just as the watchdog tears the connection down: Python 3.11's
    # TaskGroup would swallow the cancellation and aclose() would wait for ever.
    plan = {0: [StallData(after=0.1)]}
    async with FakePolymarket(markets=1, seed=17, faults=plan) as fake:
        loop = asyncio.get_running_loop()
        stream = MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST)
        async with stream:
            await until(stream, Stale)
            started = loop.time()
        assert loop.time() - started < 1.0
        assert stream.health().state == "closed"


# ---------------------------------------------------------------------- ownership (issue 7, #5)


def stream_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("polyfeed-")]


@pytest.mark.timeout(15)
async def test_iterating_a_stream_that_was_not_started_is_refused_and_starts_nothing() -> None:
    async with FakePolymarket(markets=1, seed=21) as fake:
        stream = MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST)
        with pytest.raises(StreamNotStartedError, match="async with"):
            async for _ in stream:
                break
        with pytest.raises(StreamNotStartedError):
            await anext(stream)
        await asyncio.sleep(0.1)
        assert stream_tasks() == []
        assert fake.connections == []
        assert stream.health().state == "idle"


@pytest.mark.timeout(15)
async def test_breaking_out_of_iteration_ends_every_task_and_closes_the_socket() -> None:
    async with FakePolymarket(markets=1, seed=22) as fake:
        async with MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST) as stream:
            async for event in stream:
                if isinstance(event, Book):
                    break
        assert stream_tasks() == []
        connection = fake.connections[0]
        async with asyncio.timeout(1.0):
            await connection.wait_closed()
        assert connection.close is not None
        assert connection.close.initiator == "client"
        assert stream.health().state == "closed"


@pytest.mark.timeout(15)
async def test_concurrent_acloses_both_return_once_the_stream_is_closed() -> None:
    async with FakePolymarket(markets=1, seed=28) as fake:
        stream = MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST)
        await stream.start()
        await until(stream, Book)
        fake.inject(Hang())
        async with asyncio.TaskGroup() as group:
            first = group.create_task(stream.aclose())
            second = group.create_task(stream.aclose())
            await asyncio.wait([second])
            assert first.done()
            assert stream_tasks() == []


@pytest.mark.timeout(15)
async def test_run_owns_a_stream_it_started() -> None:
    async with FakePolymarket(markets=1, seed=23) as fake:
        stream = MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST)
        seen: list[object] = []

        def on_event(event: MarketStreamEvent) -> None:
            seen.append(event)
            if isinstance(event, Book):
                raise LookupError("enough")

        with pytest.raises(LookupError):
            await stream.run(on_event)
        assert any(isinstance(event, Connected) for event in seen)
        assert stream_tasks() == []
        assert stream.health().state == "closed"
        async with asyncio.timeout(1.0):
            await fake.connections[0].wait_closed()


@pytest.mark.timeout(15)
async def test_resync_then_leaving_at_once_leaves_no_unawaited_coroutine() -> None:
    async with FakePolymarket(markets=2, seed=24) as fake:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with MarketStream(
                fake.asset_ids, endpoints=fake.endpoints, config=FAST
            ) as stream:
                for _ in fake.asset_ids:
                    await until(stream, Book)
                await stream.resync()
            gc.collect()
        assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
        assert stream_tasks() == []


@pytest.mark.timeout(15)
async def test_a_fatal_error_ends_the_background_work_and_the_state_is_failed() -> None:
    async with FakePolymarket(markets=1, seed=25) as fake:
        fake.faults.add_every(RefuseHandshake(status=404), path="market")
        async with MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST) as stream:
            with pytest.raises(HandshakeRejectedError):
                async for _ in stream:
                    pass
            # Fatal: the supervisor and the book maintenance are gone before the stream is left.
            assert stream_tasks() == []
            assert stream.health().state == "failed"
            with pytest.raises(StreamClosedError):
                await stream.resync()
        assert stream.health().state == "failed"


@pytest.mark.timeout(15)
async def test_health_and_metrics_show_the_book_keepers_maintenance_restarts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_next_deadline() -> float | None:
        raise RuntimeError("boom")

    async with FakePolymarket(markets=1, seed=27) as fake:
        stream = MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=FAST)
        assert stream.health().maintenance_restarts == 0
        # The keeper's timer loop asks the books for their next deadline first: make it crash.
        monkeypatch.setattr(stream.books, "next_deadline", broken_next_deadline)
        async with stream:
            for _ in range(200):
                if stream.health().maintenance_restarts >= 2:
                    break
                await asyncio.sleep(0.02)
            health = stream.health()
            assert health.maintenance_restarts >= 2
            assert health.maintenance_error == "RuntimeError: boom"
            text = stream.metrics.render_prometheus(stream.clock.now())
            assert f"polyfeed_maintenance_restarts_total {health.maintenance_restarts}" in text


@pytest.mark.timeout(15)
async def test_an_internal_error_reaches_the_consumer_as_one_error_not_a_group() -> None:
    async def broken_connector(url: str, **options: Any) -> Any:
        raise ValueError("a bug in a transport")

    stream = MarketStream(["a"], url="ws://127.0.0.1:1/ws/market", connector=broken_connector)
    async with stream:
        with pytest.raises(PolyfeedError, match="internal error: ValueError") as info:
            await anext(stream)
    assert not isinstance(info.value, BaseExceptionGroup)
    assert stream.health().state == "failed"
    assert stream_tasks() == []


# ---------------------------------------------------------------------- endpoints (issue 7, #6)


def test_rest_url_comes_from_the_configuration_never_from_the_websocket_url() -> None:
    production = MarketStream(["a"], url="wss://ws-subscriptions-clob.polymarket.com/ws/market")
    assert production.rest_url == "https://clob.polymarket.com"
    local = Endpoints(rest_url="http://127.0.0.1:9", gamma_url="http://127.0.0.1:9/gamma")
    configured = MarketStream(
        ["a"], url="ws://127.0.0.1:1/ws/market", config=StreamConfig(endpoints=local)
    )
    assert configured.rest_url == "http://127.0.0.1:9"
    explicit = MarketStream(["a"], url="ws://127.0.0.1:1/ws/market", rest_url="http://127.0.0.1:8")
    assert explicit.rest_url == "http://127.0.0.1:8"


def test_endpoints_argument_points_every_url_at_once() -> None:
    local = Endpoints(
        market_url="ws://127.0.0.1:7/ws/market",
        user_url="ws://127.0.0.1:7/ws/user",
        rest_url="http://127.0.0.1:7",
        gamma_url="http://127.0.0.1:7/gamma",
    )
    market = MarketStream(["a"], endpoints=local, config=FAST)
    assert (market.url, market.rest_url) == (local.market_url, local.rest_url)
    assert market.config.endpoints == local
    assert market.config.heartbeat == FAST.heartbeat
    creds = Credentials(api_key="k" * 36, secret="s" * 44, passphrase="p" * 64)
    user = UserStream(None, credentials=creds, endpoints=local)
    assert user.url == local.user_url


@pytest.mark.timeout(15)
async def test_resyncs_go_to_the_configured_rest_host() -> None:
    # Two fakes with one seed serve the same markets: the socket of one, the REST of the other.
    async with (
        FakePolymarket(markets=1, seed=26) as ws_fake,
        FakePolymarket(markets=1, seed=26) as rest_fake,
    ):
        assert ws_fake.asset_ids == rest_fake.asset_ids
        config = fast(endpoints=rest_fake.endpoints)
        async with MarketStream(ws_fake.asset_ids, url=ws_fake.market_url, config=config) as stream:
            asset = ws_fake.asset_ids[0]
            await until(stream, Book)
            await stream.resync([asset])
            await until(stream, BookResynced)
            keeper = stream.book_keeper
            assert keeper is not None and keeper.rest is not None
            assert keeper.rest.rest_url == rest_fake.rest_url
            assert keeper.rest.requests >= 1


@pytest.mark.timeout(15)
async def test_an_unknown_id_is_named_in_an_event_and_a_warning_with_the_hint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bogus = "1234567890"
    async with FakePolymarket(markets=1, seed=61) as fake:
        cfg = fast(watchdog=WatchdogConfig(data_timeout=30.0, confirm_timeout=0.15))
        assets = [fake.asset_ids[0], bogus]
        with caplog.at_level("WARNING", logger="polyfeed"):
            async with MarketStream(assets, endpoints=fake.endpoints, config=cfg) as stream:
                reports: list[Stale] = []
                async with asyncio.timeout(10):
                    while not reports or not reports[-1].abandoned:
                        stale = await until(stream, Stale)
                        if stale.unconfirmed:
                            reports.append(stale)
                assert stream.metrics.stale_by_kind["unconfirmed"] == len(reports)
    assert all(report.unconfirmed == [bogus] for report in reports)
    assert reports[-1].abandoned == [bogus]
    warnings = [r.getMessage() for r in caplog.records if bogus in r.getMessage()]
    assert warnings
    assert "the id may be wrong or the market closed" in warnings[0]


async def test_a_sharded_stream_keeps_only_its_shard() -> None:
    ids = [f"token-{n}" for n in range(40)]
    stream = MarketStream(ids, shard="1/3", config=FAST)
    mine = {t for t in ids if shard_of(t, 3) == 1}
    assert stream.subscriptions == mine
    assert 'polyfeed_shard_info{shard="1/3"} 1' in stream.metrics.render_prometheus(0.0)
    with pytest.raises(ConfigError):
        MarketStream(ids, shard="3/3")


async def test_a_sharded_stream_subscribes_only_ids_of_its_shard() -> None:
    stream = MarketStream([], shard=Shard(0, 2), config=FAST)
    ids = [f"token-{n}" for n in range(20)]
    added = await stream.subscribe(ids)
    assert added == [t for t in ids if shard_of(t, 2) == 0]
    assert stream.subscriptions == set(added)
