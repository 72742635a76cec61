"""RtdsStream against the fake server's RTDS path over loopback, with scaled-down intervals."""

from __future__ import annotations

import asyncio
import json
from typing import assert_never

import pytest

from polyfeed import (
    Connected,
    Disconnected,
    Gap,
    Reconnecting,
    Resubscribed,
    Stale,
)
from polyfeed.aio.rtds_stream import RtdsStream, RtdsStreamEvent
from polyfeed.core.rtds import RtdsConfig, RtdsSubscription
from polyfeed.core.rtds_messages import (
    RtdsActivity,
    RtdsClobMessage,
    RtdsComment,
    RtdsMalformed,
    RtdsPrice,
    RtdsPriceHistory,
    RtdsRaw,
    RtdsServerMessage,
)
from polyfeed.testing import FakePolymarket
from polyfeed.testing.server.sockets import SocketsConfig
from socket_support import FAST, eventually, first_kinds, until

RTDS = RtdsConfig(ping_interval=0.05, pong_timeout=0.5, data_timeout=1.0, topic_timeout=0.3)


@pytest.mark.timeout(15)
async def test_a_frozen_topic_is_detected_at_its_deadline_and_recovered() -> None:
    btc = RtdsSubscription.of("crypto_prices", "update", {"symbol": "btcusdt"})
    async with FakePolymarket(sockets=SocketsConfig(rtds_interval=0.02)) as fake:
        loop = asyncio.get_running_loop()
        async with RtdsStream(
            [btc, "comments:comment_created"], url=fake.rtds_url, rtds=RTDS, config=FAST
        ) as stream:
            await until(stream, RtdsPrice)
            first = fake.rtds.connections[0]
            assert json.loads(json.dumps(first.actions[0]))["subscriptions"][0]["filters"] == (
                '{"symbol":"btcusdt"}'
            )
            fake.rtds.freeze("comments")
            frozen_at = loop.time()
            stale = await until(stream, Stale)
            detected_after = loop.time() - frozen_at
            assert stale.kind == "asset"
            assert stale.asset_ids == ["comments:comment_created"]
            # Detected at the topic deadline (0.3 s after its last message), not much later,
            # while PINGs were answered and the other topic flowed all along.
            assert 0.2 <= detected_after <= 0.3 + 0.35
            assert first.pings >= 2
            assert first.sent["crypto_prices"] > first.sent.get("comments", 0)
            await until(stream, Reconnecting)
            connected = await until(stream, Connected)
            assert connected.connection_id == 2
            replay = await until(stream, Resubscribed)
            assert sorted(replay.assets) == sorted([btc.key, "comments:comment_created"])
            gap = await until(stream, Gap)
            assert gap.reason == "stale_asset"
            second = await fake.rtds.hub.wait_for_connection(2)
            # Subscriptions restored, filters included; both topics flow again.
            assert second.subscriptions == first.subscriptions
            await until(stream, RtdsPrice)
            await eventually(lambda: second.sent.get("comments", 0) >= 3)
            assert second.sent["comments"] >= 3
            health = stream.health()
            assert health.reconnects == 1 and health.subscribed == 2


@pytest.mark.timeout(15)
async def test_live_subscribe_unsubscribe_and_history() -> None:
    async with (
        FakePolymarket(sockets=SocketsConfig(rtds_interval=0.02)) as fake,
        RtdsStream(["activity"], url=fake.rtds_url, rtds=RTDS, config=FAST) as stream,
    ):
        raw = await until(stream, RtdsActivity)
        assert raw.topic == "activity"
        added = await stream.subscribe(["crypto_prices_chainlink:update"])
        assert added == ["crypto_prices_chainlink:update"]
        history = await until(stream, RtdsPriceHistory)
        assert history.topic == "crypto_prices_chainlink" and len(history.points) == 3
        assert await stream.unsubscribe(["activity"]) == ["activity:*"]
        connection = fake.rtds.connections[0]
        await eventually(lambda: connection.topics == {"crypto_prices_chainlink"})
        assert connection.topics == {"crypto_prices_chainlink"}
        assert set(stream.specs) == {"crypto_prices_chainlink:update"}
        assert "RtdsStream" in repr(stream)


def describe(event: RtdsStreamEvent) -> str:
    """Every case of the union: ``mypy tests`` fails here if the stream can yield another type."""
    match event:
        case RtdsPrice() | RtdsPriceHistory() | RtdsActivity() | RtdsComment():
            return "data"
        case RtdsClobMessage() | RtdsRaw():
            return "data"
        case RtdsServerMessage() | RtdsMalformed():
            return "other"
        case Connected() | Disconnected() | Reconnecting() | Stale() | Resubscribed() | Gap():
            return "link"
        case _:
            assert_never(event)


@pytest.mark.timeout(15)
async def test_iteration_is_typed_with_the_union() -> None:
    async with (
        FakePolymarket(sockets=SocketsConfig(rtds_interval=0.02)) as fake,
        RtdsStream(["comments"], url=fake.rtds_url, rtds=RTDS, config=FAST) as stream,
    ):
        kinds = await first_kinds(stream, describe)
        assert kinds[0] == "link" and "data" in kinds
