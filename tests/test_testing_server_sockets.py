"""The fake's other sockets as one group: their config, routes and shutdown."""

from __future__ import annotations

import aiohttp
import pytest

from polyfeed.testing import FakePolymarket
from polyfeed.testing.server.sockets import SocketsConfig


@pytest.mark.timeout(10)
async def test_every_socket_is_routed_configured_and_closed_with_the_server() -> None:
    config = SocketsConfig(rtds_interval=None, heartbeat_window=3.0, polybolt_require_auth=True)
    fake = FakePolymarket(sockets=config)
    assert fake.sockets.config is config
    assert fake.rtds.interval is None and fake.heartbeats.window == 3.0
    assert fake.polybolt.require_auth
    paths = sorted(route.path for route in fake.sockets.routes())
    assert paths == ["/polybolt", "/rtds", "/sports", "/v1/heartbeats"]
    async with fake, aiohttp.ClientSession() as http:
        sockets = [await http.ws_connect(url) for url in (fake.rtds_url, fake.polybolt_url)]
        await fake.rtds.hub.wait_for_connection(1)
        await fake.polybolt.hub.wait_for_connection(1)
        assert "Sockets" in repr(fake.sockets)
        await fake.sockets.close()
        for ws in sockets:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1001
            await ws.close()
