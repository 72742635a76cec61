"""The reconnect loop, driven through MarketStream/UserStream over in-memory transports.

Intervals are scaled down to tens of milliseconds; every test has a hard timeout.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from polyfeed import (
    AuthenticationError,
    BackoffConfig,
    Book,
    Connected,
    Credentials,
    Disconnected,
    Gap,
    HeartbeatConfig,
    MarketStream,
    QueueConfig,
    Reconnecting,
    Resubscribed,
    RetriesExhaustedError,
    ServerUnavailableError,
    Stale,
    StreamConfig,
    UserStream,
    WatchdogConfig,
)
from polyfeed.aio.clock import LoopClock
from polyfeed.aio.event_queue import EventQueue
from polyfeed.aio.supervisor import Supervisor, reason_slug
from polyfeed.config import Endpoints
from polyfeed.core.backoff import Backoff
from polyfeed.core.messages import Order, PriceChange
from polyfeed.core.session import Channel
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.errors import (
    ConnectionClosedError,
    DataTimeoutError,
    HandshakeRejectedError,
    InvalidStateError,
)
from polyfeed.metrics import ConnectionMetrics
from polyfeed.testing import CloseWith, DropTcp, FakePolymarket, FaultPlan
from polyfeed.testing.memory import MemoryConnector, MemoryTransport

HB = HeartbeatConfig(interval=0.05, pong_timeout=0.2)
# In-memory transports: the URL is only a label, and books=False keeps REST out of these tests.
URL = "ws://127.0.0.1:9/ws/market"


def config(**overrides: Any) -> StreamConfig:
    base = StreamConfig(
        heartbeat=HB,
        watchdog=WatchdogConfig(data_timeout=0.3, confirm_timeout=5.0),
        backoff=BackoffConfig(base=0.01, max_delay=0.08, jitter=0.0, stable_for=1.0),
    )

    return dataclasses.replace(base, **overrides)


def book(asset: str, ts: int = 1_700_000_000_000) -> str:
    return json.dumps(
        {
            "event_type": "book",
            "market": "0xm",
            "asset_id": asset,
            "timestamp": str(ts),
            "bids": [{"price": "0.4", "size": "10"}],
            "asks": [{"price": "0.6", "size": "10"}],
            "hash": "",
        }
    )


async def serve(transport: MemoryTransport, *, pong: bool = True, data: bool = True) -> None:
    """Play a well-behaved server on one transport: snapshot on subscribe, PONG on PING."""
    while True:
        text = await transport.sent()
        if text == "PING":
            if pong:
                transport.feed("PONG")
            continue
        frame = json.loads(text)
        if data and frame.get("type") == "market":
            for asset in frame["assets_ids"]:
                transport.feed(book(asset))


async def next_of(stream: AsyncIterator[Any], kind: type, limit: int = 200) -> Any:
    for _ in range(limit):
        event = await anext(stream)
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} in {limit} events")


@pytest.mark.timeout(10)
async def test_initial_frame_first_then_text_pings() -> None:
    connector = MemoryConnector()
    async with MarketStream(
        ["a1", "a2"], url=URL, config=config(), connector=connector, books=False
    ) as s:
        transport = await connector.wait_for(1)
        async with asyncio.TaskGroup() as tg:
            server = tg.create_task(serve(transport))
            assert isinstance(await anext(s), Connected)
            books = [await next_of(s, Book), await next_of(s, Book)]
            assert {b.asset_id for b in books} == {"a1", "a2"}
            await asyncio.sleep(0.18)
            server.cancel()
        first = json.loads(transport.sent_frames[0])
        assert first == {
            "type": "market",
            "assets_ids": ["a1", "a2"],
            "initial_dump": True,
            "custom_feature_enabled": False,
        }
        pings = [f for f in transport.sent_frames[1:] if f == "PING"]
        assert 2 <= len(pings) <= 5
        assert all(f == "PING" for f in transport.sent_frames[1:])


@pytest.mark.timeout(10)
async def test_silent_stall_is_detected_at_the_deadline_and_recovered() -> None:
    connector = MemoryConnector()
    loop = asyncio.get_running_loop()
    async with MarketStream(
        ["a1"], url=URL, config=config(), connector=connector, books=False
    ) as s:
        async with asyncio.TaskGroup() as tg:
            first = await connector.wait_for(1)
            # PONGs keep flowing after the snapshot, data never comes again.
            s1 = tg.create_task(serve(first))
            await next_of(s, Book)
            last_data = loop.time()
            stale = await next_of(s, Stale)
            detected = loop.time()
            assert stale.kind == "data"
            assert 0.3 <= detected - last_data < 0.3 + 0.1
            assert first.aborted, "a stale socket is aborted, not closed politely"
            disconnected = await next_of(s, Disconnected)
            assert disconnected.code is None
            reconnecting = await next_of(s, Reconnecting)
            assert reconnecting.attempt == 1
            second = await connector.wait_for(2)
            s2 = tg.create_task(serve(second))
            await next_of(s, Connected)
            assert (await next_of(s, Resubscribed)).assets == ["a1"]
            gap = await next_of(s, Gap)
            assert gap.assets == ["a1"]
            assert gap.reason == "stale_data"
            assert gap.ended >= gap.started
            assert (await next_of(s, Book)).asset_id == "a1"
            assert json.loads(second.sent_frames[0])["assets_ids"] == ["a1"]
            s1.cancel()
            s2.cancel()
        assert s.metrics.stale_by_kind["data"] == 1
        assert s.metrics.reconnects_by_reason["stale_data"] == 1


@pytest.mark.timeout(10)
@pytest.mark.parametrize("code", [1000, 1001, 1006, 1011])
async def test_server_close_codes_reconnect_and_replay(code: int) -> None:
    connector = MemoryConnector()
    async with MarketStream(
        ["a1", "a2"], url=URL, config=config(), connector=connector, books=False
    ) as s:
        first = await connector.wait_for(1)
        await next_of(s, Connected)
        first.peer_close(code, "bye")
        disconnected = await next_of(s, Disconnected)
        assert disconnected.code == code
        await next_of(s, Reconnecting)
        second = await connector.wait_for(2)
        await next_of(s, Connected)
        await asyncio.sleep(0.01)
        assert json.loads(second.sent_frames[0])["assets_ids"] == ["a1", "a2"]


@pytest.mark.timeout(10)
async def test_dead_peer_detected_by_pong_deadline_and_aborted() -> None:
    connector = MemoryConnector()
    loop = asyncio.get_running_loop()
    cfg = config(watchdog=WatchdogConfig(data_timeout=30.0))
    async with MarketStream(["a1"], url=URL, config=cfg, connector=connector, books=False) as s:
        transport = await connector.wait_for(1)
        started = loop.time()
        stale = await next_of(s, Stale)
        detected = loop.time()
        assert stale.kind == "pong"
        # First PING at +0.05 s unanswered -> dead at +0.05 + 0.2 at the latest.
        assert detected - started < 0.05 + 0.2 + 0.1
        assert transport.aborted
        await next_of(s, Reconnecting)
        await connector.wait_for(2)
        reconnected = loop.time()
        assert reconnected - detected < 0.05 + 0.01 + 0.05


@pytest.mark.timeout(10)
async def test_flapping_server_delays_grow_to_the_cap() -> None:
    connector = MemoryConnector()
    async with MarketStream(
        ["a1"], url=URL, config=config(), connector=connector, books=False
    ) as s:
        delays: list[float] = []
        while len(delays) < 6:
            event = await anext(s)
            if isinstance(event, Connected):
                connector.transports[-1].peer_close(1011)
            elif isinstance(event, Reconnecting):
                delays.append(event.delay)
        assert delays == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.08, 0.08])


@pytest.mark.timeout(10)
async def test_backoff_resets_only_after_a_stable_connection() -> None:
    connector = MemoryConnector()
    cfg = config(
        backoff=BackoffConfig(
            base=0.01, max_delay=0.08, jitter=0.0, stable_for=0.15, first_retry_max=0.004
        )
    )
    async with MarketStream(["a1"], url=URL, config=cfg, connector=connector, books=False) as s:
        async with asyncio.TaskGroup() as tg:
            servers = []
            delays: list[float] = []
            while len(delays) < 3:
                event = await anext(s)
                if isinstance(event, Connected):
                    transport = connector.transports[-1]
                    servers.append(tg.create_task(serve(transport)))
                    if len(delays) < 2:
                        transport.peer_close(1011)
                    else:
                        await asyncio.sleep(0.2)
                        transport.peer_close(1011)
                elif isinstance(event, Reconnecting):
                    delays.append(event.delay)
            for server in servers:
                server.cancel()
        # The stable third connection delivered data: the counter reset, and its first retry
        # is the fast one.
        assert delays[:2] == pytest.approx([0.01, 0.02])
        assert 0 <= delays[2] <= 0.004


@pytest.mark.timeout(10)
@pytest.mark.parametrize("ending", ["close_1012", "drop"])
async def test_shipped_backoff_reconnects_fast_after_a_connection_that_delivered_data(
    ending: str,
) -> None:
    """Issue 7, defect 11: with the shipped backoff, data flowed again only after 1.1-2.0 s."""
    connector = MemoryConnector()
    loop = asyncio.get_running_loop()
    cfg = config(backoff=BackoffConfig())
    async with (
        MarketStream(["a1"], url=URL, config=cfg, connector=connector, books=False) as s,
        asyncio.TaskGroup() as tg,
    ):
        first = await connector.wait_for(1)
        servers = [tg.create_task(serve(first))]
        await next_of(s, Book)
        if ending == "drop":
            first.peer_drop()
        else:
            first.peer_close(1012, "service restart")
        await next_of(s, Disconnected)
        ended = loop.time()
        reconnecting = await next_of(s, Reconnecting)
        assert reconnecting.delay <= 0.25
        second = await connector.wait_for(2)
        servers.append(tg.create_task(serve(second)))
        await next_of(s, Book)
        # Generous for a loaded machine, and still under the old minimum of 1 s.
        assert loop.time() - ended < 0.9, "data flows again well within a second"
        for server in servers:
            server.cancel()


@pytest.mark.timeout(10)
async def test_server_closing_every_connection_after_its_snapshot_gets_few_connections() -> None:
    # One fast retry, then the exponential steps: the stable gate is not fooled by data.
    connector = MemoryConnector()
    cfg = config(
        backoff=BackoffConfig(
            base=0.01, max_delay=0.04, jitter=0.0, stable_for=1.0, first_retry_max=0.002
        )
    )
    async with MarketStream(["a1"], url=URL, config=cfg, connector=connector, books=False) as s:
        delays: list[float] = []
        while len(delays) < 6:
            event = await anext(s)
            if isinstance(event, Connected):
                transport = connector.transports[-1]
                await transport.sent()
                transport.feed(book("a1"))
                transport.peer_close(1011)
            elif isinstance(event, Reconnecting):
                delays.append(event.delay)
        assert delays[0] <= 0.002
        assert delays[1:] == pytest.approx([0.01, 0.02, 0.04, 0.04, 0.04])


@pytest.mark.timeout(10)
async def test_refused_first_handshake_reports_no_gap_and_a_later_outage_exactly_one() -> None:
    """Issue 7, defect 7: a refused first handshake yielded Gap(started=0.0, ...)."""

    async def refuse_first(index: int) -> None:
        if index == 0:
            raise ServerUnavailableError(503)

    connector = MemoryConnector(refuse_first)
    async with (
        MarketStream(["a1"], url=URL, config=config(), connector=connector, books=False) as s,
        asyncio.TaskGroup() as tg,
    ):
        seen: list[object] = []
        servers = [tg.create_task(serve(await connector.wait_for(1)))]
        while not isinstance(event := await anext(s), Book):
            seen.append(event)
        assert not [e for e in seen if isinstance(e, Gap)], "nothing was missed yet"
        live_at = time.time()
        connector.transports[0].peer_close(1012)
        await next_of(s, Disconnected)
        servers.append(tg.create_task(serve(await connector.wait_for(2))))
        gap = await next_of(s, Gap)
        assert gap.reason == "closed_1012"
        assert live_at - 1.0 <= gap.started <= gap.ended <= time.time()
        for server in servers:
            server.cancel()


@pytest.mark.timeout(10)
async def test_retry_after_is_honoured_on_429() -> None:
    async def refuse_first(index: int) -> None:
        if index == 0:
            raise ServerUnavailableError(429, retry_after=0.12)
        if index == 1:
            raise ServerUnavailableError(503)

    connector = MemoryConnector(refuse_first)
    async with MarketStream(
        ["a1"], url=URL, config=config(), connector=connector, books=False
    ) as s:
        first = await next_of(s, Reconnecting)
        second = await next_of(s, Reconnecting)
        await next_of(s, Connected)
        assert first.delay == pytest.approx(0.12)
        assert second.delay == pytest.approx(0.02)
        assert s.metrics.connects_total == 1


@pytest.mark.timeout(10)
async def test_rejected_credentials_are_fatal_after_auth_retries() -> None:
    async def reject(index: int) -> None:
        raise AuthenticationError(401, index + 1)

    connector = MemoryConnector(reject)
    creds = Credentials(api_key="key-123456", secret="s3cret-value", passphrase="pass-phrase")
    stream = UserStream(None, credentials=creds, url=URL, config=config(), connector=connector)
    async with stream:
        with pytest.raises(AuthenticationError) as info:
            async for _ in stream:
                pass
    assert connector.attempts == 3  # the first try plus auth_retries=2
    assert info.value.status == 401
    assert "s3cret" not in repr(info.value) and "pass-phrase" not in str(info.value)
    assert stream.health().state == "failed"


@pytest.mark.timeout(10)
async def test_user_socket_dropped_after_subscribe_counts_as_auth_failure() -> None:
    connector = MemoryConnector()
    creds = Credentials(api_key="key-123456", secret="s3cret-value", passphrase="pass-phrase")
    stream = UserStream(["0xc1"], credentials=creds, url=URL, config=config(), connector=connector)
    async with stream:
        with pytest.raises(AuthenticationError) as info:
            async for event in stream:
                if isinstance(event, Connected):
                    transport = connector.transports[-1]
                    await transport.sent()
                    transport.peer_drop()
        assert info.value.status is None
        first = json.loads(connector.transports[0].sent_frames[0])
        assert first["type"] == "user" and first["markets"] == ["0xc1"]
        assert first["auth"]["apiKey"] == "key-123456"


@pytest.mark.timeout(15)
async def test_rolling_server_restart_does_not_kill_the_user_stream() -> None:
    """Issue 7, defect 3: closes *with a close frame* before the first frame are no rejection.

    Four restarts in a row (more than ``auth_retries``) used to end the stream with a fatal
    AuthenticationError.
    """
    restarts = {
        0: [CloseWith(1012, "service restart")],
        1: [CloseWith(1001, "going away")],
        2: [CloseWith(1011, "internal error")],
        3: [CloseWith(1012, "service restart")],
    }
    async with FakePolymarket(markets=1, seed=21, faults=FaultPlan(user=restarts)) as fake:
        creds = Credentials(
            api_key=fake.credentials.api_key,
            secret=fake.credentials.secret,
            passphrase=fake.credentials.passphrase,
        )
        market = fake.markets[0].condition_id
        async with UserStream([market], credentials=creds, url=fake.user_url, config=config()) as s:
            codes = [(await next_of(s, Disconnected)).code for _ in range(4)]
            assert codes == [1012, 1001, 1011, 1012]
            await fake.wait_for_connection(5, path="user")
            await next_of(s, Connected)
            fake.step_user(2, market=market)
            assert isinstance(await next_of(s, Order), Order)


@pytest.mark.timeout(15)
async def test_resets_without_a_close_frame_count_only_while_consecutive() -> None:
    # Two resets (auth_retries=2 allows them), a healthy socket, two more: still alive. The
    # fake resets exactly as Polymarket does for bad credentials (DropTcp: no close frame).
    drops = {0: [DropTcp()], 1: [DropTcp()], 3: [DropTcp()], 4: [DropTcp()]}
    async with FakePolymarket(markets=1, seed=22, faults=FaultPlan(user=drops)) as fake:
        creds = Credentials(
            api_key=fake.credentials.api_key,
            secret=fake.credentials.secret,
            passphrase=fake.credentials.passphrase,
        )
        market = fake.markets[0].condition_id
        async with UserStream([market], credentials=creds, url=fake.user_url, config=config()) as s:
            assert [(await next_of(s, Disconnected)).code for _ in range(2)] == [None, None]
            healthy = await fake.wait_for_connection(3, path="user")
            fake.step_user(1, market=market)
            await next_of(s, Order)
            fake.inject(CloseWith(1012), healthy)
            assert [(await next_of(s, Disconnected)).code for _ in range(3)] == [1012, None, None]
            await fake.wait_for_connection(6, path="user")
            fake.step_user(1, market=market)
            await next_of(s, Order)


class ScriptedCheck:
    """A credentials check answering from a script (the last answer repeats); counts calls."""

    def __init__(self, *answers: bool | None) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> bool | None:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


def user_supervisor(
    connector: MemoryConnector, check: ScriptedCheck | None, *, channel: Channel = "user"
) -> Supervisor:
    cfg = config()
    clock = LoopClock()
    return Supervisor(
        channel,
        URL,
        SubscriptionSet(["0xc1"]),
        cfg,
        clock,
        Backoff(cfg.backoff, random.Random(7).random),
        EventQueue(cfg.queue, clock.wall),
        ConnectionMetrics(clock.now()),
        credentials=Credentials(api_key="key-123456", secret="s3cret", passphrase="pass"),
        connector=connector,
        credentials_check=check,
    )


async def reset_after_subscribe(connector: MemoryConnector, count: int) -> None:
    """Play Polymarket rejecting credentials: reset (no close frame) right after the subscribe."""
    for n in range(1, count + 1):
        transport = await connector.wait_for(n)
        await transport.sent()
        transport.peer_drop()


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("check", "fatal_after"),
    [(ScriptedCheck(False), 1), (ScriptedCheck(None), 3), (None, 3)],
    ids=["check_says_invalid", "check_inconclusive", "no_check"],
)
async def test_resets_before_the_first_frame_are_confirmed_by_the_credentials_check(
    check: ScriptedCheck | None, fatal_after: int
) -> None:
    connector = MemoryConnector()
    supervisor = user_supervisor(connector, check)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(reset_after_subscribe(connector, fatal_after))
        with pytest.raises(AuthenticationError) as info:
            await supervisor.run()
    assert connector.attempts == fatal_after
    assert info.value.attempts == fatal_after
    assert info.value.status is None
    if check is not None:
        assert check.calls == fatal_after, "one REST call per suspected rejection"


@pytest.mark.timeout(10)
async def test_resets_are_transient_when_the_check_says_the_credentials_are_valid() -> None:
    connector = MemoryConnector()
    # Valid twice, then inconclusive: the count restarted, so three more resets are needed.
    check = ScriptedCheck(True, True, True, True, None)
    supervisor = user_supervisor(connector, check)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(reset_after_subscribe(connector, 4 + 3))
        with pytest.raises(AuthenticationError) as info:
            await supervisor.run()
    assert connector.attempts == 7
    assert info.value.attempts == 3
    assert check.calls == 7


@pytest.mark.timeout(10)
async def test_user_stream_asks_the_clob_before_failing_on_a_reset() -> None:
    """The stream wires the check: a signing key rejected by REST ends the stream at once."""
    seen: list[str] = []

    async def api_keys(request: web.Request) -> web.Response:
        seen.append(request.headers.get("POLY_API_KEY", ""))
        return web.json_response({"error": "Unauthorized/Invalid api key"}, status=401)

    app = web.Application()
    app.router.add_get("/auth/api-keys", api_keys)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        rest_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        cfg = config(endpoints=Endpoints(user_url=URL, rest_url=rest_url, gamma_url=rest_url))
        creds = Credentials(
            api_key="key-123456",
            secret=base64.urlsafe_b64encode(b"0123456789abcdef").decode(),
            passphrase="pass-phrase",
            address="0x0000000000000000000000000000000000000001",
        )
        connector = MemoryConnector()
        stream = UserStream(["0xc1"], credentials=creds, url=URL, config=cfg, connector=connector)
        async with stream, asyncio.TaskGroup() as tg:
            tg.create_task(reset_after_subscribe(connector, 1))
            with pytest.raises(AuthenticationError):
                async for _ in stream:
                    pass
    finally:
        await runner.cleanup()
    assert connector.attempts == 1
    assert seen == ["key-123456"]


@pytest.mark.timeout(10)
async def test_rejected_handshake_is_fatal_at_once() -> None:
    async def not_found(index: int) -> None:
        raise HandshakeRejectedError(404, "ws://x")

    connector = MemoryConnector(not_found)
    async with MarketStream(
        ["a1"], url=URL, config=config(), connector=connector, books=False
    ) as s:
        with pytest.raises(HandshakeRejectedError):
            await anext(s)
    assert connector.attempts == 1


@pytest.mark.timeout(10)
async def test_max_attempts_ends_with_a_clear_fatal_error() -> None:
    async def refuse(index: int) -> None:
        raise ServerUnavailableError(503)

    cfg = config(backoff=BackoffConfig(base=0.01, max_delay=0.02, jitter=0.0, max_attempts=3))
    connector = MemoryConnector(refuse)
    async with MarketStream(["a1"], url=URL, config=cfg, connector=connector, books=False) as s:
        with pytest.raises(RetriesExhaustedError) as info:
            async for _ in s:
                pass
    assert info.value.attempts == 3
    assert isinstance(info.value.last_error, ServerUnavailableError)


@pytest.mark.timeout(10)
async def test_live_subscribe_and_unsubscribe_without_reconnect() -> None:
    connector = MemoryConnector()
    async with MarketStream(
        ["a1"], url=URL, config=config(), connector=connector, books=False
    ) as s:
        transport = await connector.wait_for(1)
        async with asyncio.TaskGroup() as tg:
            server = tg.create_task(serve(transport))
            await next_of(s, Book)
            assert await s.subscribe(["a2", "a1"]) == ["a2"]
            assert await s.unsubscribe(["a1"]) == ["a1"]
            await asyncio.sleep(0.02)
            server.cancel()
        frames = [json.loads(f) for f in transport.sent_frames if f != "PING"]
        assert frames[1:] == [
            {"operation": "subscribe", "assets_ids": ["a2"]},
            {"operation": "unsubscribe", "assets_ids": ["a1"]},
        ]
        assert connector.attempts == 1
        assert s.subscriptions == frozenset({"a2"})


@pytest.mark.timeout(10)
async def test_unconfirmed_asset_is_redriven() -> None:
    connector = MemoryConnector()
    cfg = config(watchdog=WatchdogConfig(data_timeout=5.0, confirm_timeout=0.1))
    async with MarketStream(
        ["a1", "a2"], url=URL, config=cfg, connector=connector, books=False
    ) as s:
        transport = await connector.wait_for(1)
        await next_of(s, Connected)
        await transport.sent()
        transport.feed(book("a1"))  # a2 is ignored by the server
        stale = await next_of(s, Stale)
        assert stale.kind == "asset" and stale.asset_ids == ["a2"]
        assert (await next_of(s, Resubscribed)).assets == ["a2"]
        await asyncio.sleep(0.01)
        ops = [json.loads(f) for f in transport.sent_frames if f.startswith('{"operation"')]
        assert ops[:2] == [
            {"operation": "unsubscribe", "assets_ids": ["a2"]},
            {"operation": "subscribe", "assets_ids": ["a2"]},
        ]


@pytest.mark.timeout(10)
async def test_slow_consumer_never_delays_heartbeats_and_drops_become_a_gap() -> None:
    connector = MemoryConnector()
    cfg = config(queue=QueueConfig(maxsize=50, overflow="drop_oldest"))
    async with MarketStream(["a1"], url=URL, config=cfg, connector=connector, books=False) as s:
        transport = await connector.wait_for(1)
        async with asyncio.TaskGroup() as tg:
            server = tg.create_task(serve(transport))
            # The consumer reads nothing for 0.3 s while 500 events arrive.
            for ts in range(500):
                transport.feed(book("a1", 1_700_000_000_000 + ts))
                if ts % 50 == 0:
                    await asyncio.sleep(0.03)
            await asyncio.sleep(0.05)
            pings = transport.sent_frames.count("PING")
            assert pings >= 4, "heartbeats went on while the consumer slept"
            gap = await next_of(s, Gap)
            server.cancel()
        assert gap.dropped > 400
        assert gap.assets == ["a1"]
        assert gap.reason == "consumer queue overflow"
        assert 1_700_000_000.0 <= gap.started <= gap.ended < 1_700_000_001.0
        assert s.health().dropped_events == gap.dropped
        assert s.metrics.stale_by_kind == {}


@pytest.mark.timeout(10)
async def test_aclose_is_prompt_and_leaves_no_task() -> None:
    connector = MemoryConnector()
    loop = asyncio.get_running_loop()
    before = asyncio.all_tasks()
    stream = MarketStream(["a1"], url=URL, config=config(), connector=connector, books=False)
    await stream.start()
    await connector.wait_for(1)
    await next_of(stream, Connected)
    started = loop.time()
    await stream.aclose()
    assert loop.time() - started < 1.0
    assert asyncio.all_tasks() == before
    assert connector.transports[0].closed_politely
    assert stream.health().state == "closed"
    with pytest.raises(StopAsyncIteration):
        while True:
            await anext(stream)


def test_reason_slugs() -> None:
    assert reason_slug(DataTimeoutError("pong", 1.0)) == "stale_pong"
    assert reason_slug(ConnectionClosedError(None)) == "dropped"
    assert reason_slug(ConnectionClosedError(1011)) == "closed_1011"
    assert reason_slug(ServerUnavailableError(429, 1.0)) == "http_429"


def state_of(supervisor: Supervisor) -> str:
    # Read through a call, so mypy does not narrow the property across awaits that change it.
    return supervisor.state


@pytest.mark.timeout(10)
async def test_supervisor_state_is_one_value_with_transitions_logged_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = MemoryConnector()
    supervisor = user_supervisor(connector, None, channel="market")
    assert supervisor.state == "idle"
    with caplog.at_level(logging.DEBUG, logger="polyfeed.supervisor"):
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(supervisor.run())
            first = await connector.wait_for(1)
            await first.sent()
            assert state_of(supervisor) == "open"
            first.peer_close(1011)
            second = await connector.wait_for(2)
            await second.sent()
            supervisor.request_stop()
            task.cancel()
    assert state_of(supervisor) == "closed"
    transitions = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("market supervisor:")
    ]
    assert transitions == [
        "market supervisor: idle -> connecting",
        "market supervisor: connecting -> open",
        "market supervisor: open -> backoff",
        "market supervisor: backoff -> connecting",
        "market supervisor: connecting -> open",
        "market supervisor: open -> closed",
    ]
    # It runs once, and nobody outside moves it: the state is a read-only property.
    with pytest.raises(InvalidStateError):
        await supervisor.run()
    with pytest.raises(AttributeError):
        setattr(supervisor, "state", "open")  # noqa: B010 (mypy rightly refuses the plain form)
    assert state_of(supervisor) == "closed"


@pytest.mark.timeout(10)
async def test_supervisor_is_closed_after_a_fatal_error() -> None:
    async def not_found(index: int) -> None:
        raise HandshakeRejectedError(404, "ws://x")

    supervisor = user_supervisor(MemoryConnector(not_found), None, channel="market")
    with pytest.raises(HandshakeRejectedError):
        await supervisor.run()
    assert supervisor.state == "closed"
    assert "closed" in repr(supervisor)


@pytest.mark.timeout(20)
async def test_disconnect_policy_reconnects_once_the_consumer_drained_the_queue() -> None:
    """Issue 8, item 5: every new connection overflowed at once (five reconnects in 30 s), and
    the gap waited behind the queued events of the next connection."""
    cfg = config(
        queue=QueueConfig(maxsize=200, overflow="disconnect"),
        watchdog=WatchdogConfig(data_timeout=5.0, confirm_timeout=5.0),
    )
    async with (
        FakePolymarket(markets=2, seed=83) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=cfg, books=False) as s,
    ):
        got: list[object] = [await next_of(s, Book)]
        await fake.burst(400)  # the consumer reads nothing: the queue overflows
        await asyncio.sleep(0.4)  # five times the longest backoff
        assert s.metrics.connects_total == 1, "no reconnect into a queue still full"
        queued = s.health().queued_events
        assert queued >= 190
        while not isinstance(got[-1], Connected):
            got.append(await anext(s))
        # The reconnect came once the consumer had read half the queue.
        assert len(got) >= queued // 2
        second = len(got) - 1
        got.append(await next_of(s, Book))
        assert s.metrics.connects_total == 2
    overflow = [
        index
        for index, item in enumerate(got)
        if isinstance(item, Gap) and item.reason == "consumer queue overflow"
    ]
    assert len(overflow) == 1
    assert overflow[0] < second, "the drop gap comes before the next connection's data"
    assert not any(isinstance(item, Book | PriceChange) for item in got[overflow[0] : second])
