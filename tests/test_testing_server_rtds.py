"""The fake RTDS socket: PONGs as sent, string filters only, the freeze, history on subscribe."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from polyfeed.testing import FakePolymarket
from polyfeed.testing.server.sockets import SocketsConfig


@pytest.mark.timeout(10)
async def test_fake_rtds_protocol_and_freeze() -> None:
    async with (
        FakePolymarket(sockets=SocketsConfig(rtds_interval=0.01)) as fake,
        aiohttp.ClientSession() as http,
        http.ws_connect(fake.rtds_url) as ws,
    ):
        await ws.send_str("ping")
        assert await ws.receive_str() == "pong"
        await ws.send_str("PING")
        assert await ws.receive_str() == "PONG"
        bad = {"action": "subscribe", "subscriptions": [{"topic": "x", "filters": {"a": 1}}]}
        await ws.send_str(json.dumps(bad))
        assert json.loads(await ws.receive_str()) == {"message": "invalid request body"}
        good = {
            "action": "subscribe",
            "subscriptions": [{"topic": "crypto_prices", "type": "update"}, {"topic": "rfq"}],
        }
        await ws.send_str(json.dumps(good))
        first = json.loads(await ws.receive_str())
        assert (first["topic"], first["type"]) == ("crypto_prices", "subscribe")
        connection = await fake.rtds.hub.wait_for_connection(1)
        assert connection.topics == {"crypto_prices", "rfq"}
        for _ in range(100):
            if connection.sent.get("rfq", 0) >= 2:
                break
            await asyncio.sleep(0.01)
        fake.rtds.freeze("rfq")
        await asyncio.sleep(0.05)
        before = dict(connection.sent)
        await asyncio.sleep(0.1)
        assert connection.sent["rfq"] == before["rfq"]
        assert connection.sent["crypto_prices"] > before["crypto_prices"]
        await ws.send_str("PING")
        # PINGs are still answered while the topic is frozen.
        while (message := await ws.receive_str()) != "PONG":
            assert json.loads(message)["topic"] in ("crypto_prices", "rfq")
        assert await fake.rtds.publish("rfq", "request_created", {}) == 0
        assert await fake.rtds.publish("crypto_prices", "update", {"symbol": "x", "value": 1}) == 1
        assert "FakeRtds" in repr(fake.rtds) and "frozen=['rfq']" in repr(connection)
