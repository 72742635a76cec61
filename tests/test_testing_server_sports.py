"""The fake sports socket: pings, the pong deadline, broadcasting, the stop-pinging fault."""

from __future__ import annotations

import aiohttp
import pytest

from polyfeed.testing import FakePolymarket
from polyfeed.testing.server.sockets import SocketsConfig


@pytest.mark.timeout(10)
async def test_a_client_that_does_not_answer_is_closed_1008() -> None:
    async with (
        FakePolymarket(
            sockets=SocketsConfig(
                sports_ping_interval=0.02, sports_pong_grace=0.05, sports_interval=None
            )
        ) as fake,
        aiohttp.ClientSession() as http,
        http.ws_connect(fake.sports_url) as ws,
    ):
        assert await ws.receive_str() == "ping"
        await ws.send_str("PONG")  # wrong case
        message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1008
        connection = fake.sports.connections[0]
        assert connection.closed_for_no_pong and connection.wrong_replies == ["PONG"]


@pytest.mark.timeout(10)
async def test_answered_pings_publish_and_stop_pinging() -> None:
    async with (
        FakePolymarket(
            sockets=SocketsConfig(sports_ping_interval=0.02, sports_interval=None)
        ) as fake,
        aiohttp.ClientSession() as http,
        http.ws_connect(fake.sports_url) as ws,
    ):
        for _ in range(3):
            assert await ws.receive_str() == "ping"
            await ws.send_str("pong")
        connection = await fake.sports.hub.wait_for_connection(1)
        fake.sports.stop_pinging()
        assert await fake.sports.publish({"slug": "a"}) == 1
        # Only the published message arrives: the pings stopped (a ping in flight may precede).
        text = await ws.receive_str()
        if text == "ping":
            await ws.send_str("pong")
            text = await ws.receive_str()
        assert text == '{"slug": "a"}'
        assert not connection.pinging and "pinging=False" in repr(connection)
        assert fake.sports.result(3)["score"] == "3-0"
