"""SocketHub: the open connections of a simple fake socket."""

from __future__ import annotations

import aiohttp
import pytest

from polyfeed.testing import FakePolymarket


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
