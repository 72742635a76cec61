"""The fake heartbeat endpoint: L2 auth, the id chain, refusals naming the id, the switch."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from polyfeed.testing import FakePolymarket
from polyfeed.testing.server.heartbeat import request_id
from polyfeed.testing.server.sockets import SocketsConfig


async def post(
    http: aiohttp.ClientSession, fake: FakePolymarket, body: str, *, sign: bool = True
) -> tuple[int, dict[str, str]]:
    headers = fake.credentials.client().l2_headers(1, "POST", "/v1/heartbeats", body)
    if not sign:
        headers["POLY_SIGNATURE"] = "bad"
    async with http.post(f"{fake.rest_url}/v1/heartbeats", data=body, headers=headers) as resp:
        return resp.status, await resp.json()


@pytest.mark.timeout(10)
async def test_chain_refusal_auth_and_the_switch() -> None:
    async with (
        FakePolymarket(sockets=SocketsConfig(heartbeat_window=0.1)) as fake,
        aiohttp.ClientSession() as http,
    ):
        status, reply = await post(http, fake, json.dumps({"heartbeat_id": ""}))
        assert status == 200 and reply == {"heartbeat_id": "hb-1"}
        status, reply = await post(http, fake, json.dumps({"heartbeat_id": "wrong"}))
        assert status == 400
        assert reply == {"error": "Invalid Heartbeat ID", "heartbeat_id": "hb-1"}
        status, _ = await post(http, fake, json.dumps({"heartbeat_id": "hb-1"}), sign=False)
        assert status == 401
        status, _ = await post(http, fake, "[]")
        assert status == 400
        status, reply = await post(http, fake, json.dumps({"heartbeat_id": "hb-1"}))
        assert (status, reply) == (200, {"heartbeat_id": "hb-2"})
        assert fake.heartbeats.accepted_chain == [("", "hb-1"), ("hb-1", "hb-2")]
        await asyncio.sleep(0.2)
        assert len(fake.heartbeats.cancellations) == 1
        assert "cancellations=1" in repr(fake.heartbeats)
    with pytest.raises(ValueError):
        request_id('{"heartbeat_id": 5}')
