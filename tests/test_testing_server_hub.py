"""SocketHub: the open connections of a simple fake socket."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from polyfeed.testing import FakePolymarket
from polyfeed.testing.server.hub import send_text


@pytest.mark.timeout(10)
async def test_hub_tracks_waits_and_closes() -> None:
    async with FakePolymarket() as fake, aiohttp.ClientSession() as http:
        hub = fake.rtds.hub
        async with http.ws_connect(fake.rtds_url) as ws:
            connection = await hub.wait_for_connection(1)
            assert hub.open == [connection] and connection.id == 1
            await hub.close_all(code=1012, reason="restart")
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1012
        assert "made=1" in repr(hub)


@pytest.mark.timeout(10)
async def test_send_text_says_whether_it_sent_and_a_gone_client_leaves_the_open_set() -> None:
    async with FakePolymarket() as fake, aiohttp.ClientSession() as http:
        hub = fake.sports.hub
        async with http.ws_connect(fake.sports_url) as ws:
            connection = await hub.wait_for_connection(1)
            assert await send_text(connection.ws, "hello")
            for _ in range(1_000):
                if (await ws.receive()).data == "hello":
                    break
            else:
                raise AssertionError("hello never arrived")
        for _ in range(200):
            if not hub.open:
                break
            await asyncio.sleep(0.01)
        # The handler ended (its pinger and flow cancelled with it) and the socket is closed.
        assert hub.open == [] and fake.sports.connections == hub.connections == [connection]
        assert not await send_text(connection.ws, "late")
