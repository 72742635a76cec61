"""The fake PolyBolt socket: acks echo rid, errors, pong, snapshot then numbered frames."""

from __future__ import annotations

import json

import aiohttp
import pytest

from polyfeed.testing import FakePolymarket
from polyfeed.testing.server.sockets import SocketsConfig


@pytest.mark.timeout(10)
async def test_fake_polybolt_protocol() -> None:
    async with (
        FakePolymarket(
            sockets=SocketsConfig(polybolt_interval=None, polybolt_require_auth=True)
        ) as fake,
        aiohttp.ClientSession() as http,
        http.ws_connect(fake.polybolt_url) as ws,
    ):
        await ws.send_str(json.dumps({"op": "ping"}))
        assert json.loads(await ws.receive_str()) == {"op": "pong"}
        await ws.send_str(json.dumps({"op": "subscribe", "rid": "s1", "channel": "price.crypto"}))
        assert json.loads(await ws.receive_str())["message"] == "unauthorized"
        auth = {"op": "auth", "rid": "a1", "auth": fake.credentials.auth()}
        await ws.send_str(json.dumps(auth))
        assert json.loads(await ws.receive_str()) == {"op": "authed", "rid": "a1"}
        await ws.send_str(json.dumps({"op": "subscribe", "rid": "s2", "channel": "nope"}))
        assert json.loads(await ws.receive_str())["message"] == "unknown channel"
        await ws.send_str(json.dumps({"op": "subscribe", "rid": "s3", "channel": "price.crypto"}))
        ack = json.loads(await ws.receive_str())
        assert ack == {"op": "subscribed", "rid": "s3", "channel": "price.crypto"}
        snapshot = json.loads(await ws.receive_str())
        assert snapshot["snapshot"] is True and snapshot["seq"] == 1
        await ws.send_str(json.dumps({"op": "unsubscribe", "rid": "u1", "channel": "price.crypto"}))
        assert json.loads(await ws.receive_str())["op"] == "unsubscribed"
        await ws.send_str("not json")
        closing = await ws.receive()
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4008
        connection = fake.polybolt.connections[0]
        assert connection.authed and "FakePolyboltConnection #1" in repr(connection)
        assert "FakePolybolt" in repr(fake.polybolt)
