"""One fake-server connection (testing/server/connection.py): grace periods, how it ends, what it
records, over real loopback sockets with a bare aiohttp client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from polyfeed.testing import FakePolymarket
from ws_client import FAST, receive, receive_json, receive_text, subscribe


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def fake() -> AsyncIterator[FakePolymarket]:
    async with FakePolymarket(markets=2, seed=3, **FAST) as server:
        yield server


async def test_no_subscription_within_grace_closes_1008(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, subscribe_grace=0.1, ping_grace=None) as fake:
        ws = await session.ws_connect(fake.market_url)
        message = await receive(ws)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1008)
        assert fake.connections[0].close is not None
        assert fake.connections[0].close.initiator == "server"


async def test_ping_grace_closes_a_socket_that_does_not_ping_text(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=1, ping_grace=0.2, subscribe_grace=None) as fake:
        pinging = await subscribe(session, fake)
        silent = await subscribe(session, fake)
        # Protocol-level pings are answered but do not count as the heartbeat.
        protocol_only = await subscribe(session, fake)
        await receive_json(pinging), await receive_json(silent), await receive_json(protocol_only)
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < 0.45:
            await pinging.send_str("PING")
            assert await receive_text(pinging) == "PONG"
            await protocol_only.ping()
            await asyncio.sleep(0.05)
        for ws in (silent, protocol_only):
            message = await receive(ws)
            assert (message.type, message.data, message.extra) == (
                aiohttp.WSMsgType.CLOSE,
                1008,
                "no ping received",
            )
        assert not pinging.closed
        await pinging.close()


async def test_ping_timeout_drop_mode_drops_tcp_without_close_frame(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=1, ping_grace=0.1, ping_timeout_action="drop") as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        message = await receive(ws)
        assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert ws.close_code == 1006
        assert fake.connections[0].close is not None
        assert fake.connections[0].close.code is None


async def test_client_close_is_recorded(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    ws = await subscribe(session, fake)
    await receive_json(ws)
    await ws.close(code=4321, message=b"done")
    connection = fake.connections[0]
    await connection.wait_closed()
    assert connection.close is not None
    assert (connection.close.initiator, connection.close.code, connection.close.reason) == (
        "client",
        4321,
        "done",
    )
