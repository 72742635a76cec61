"""SportsStream against the fake sports socket over loopback, with scaled-down intervals."""

from __future__ import annotations

import asyncio
from typing import assert_never

import pytest

from polyfeed import (
    ConfigError,
    Connected,
    Disconnected,
    Gap,
    Reconnecting,
    Resubscribed,
    Stale,
)
from polyfeed.aio.sports_stream import SportsStream, SportsStreamEvent
from polyfeed.core.sports import SportResult, SportsConfig, SportsMalformed, SportsRaw
from polyfeed.testing import FakePolymarket
from polyfeed.testing.server.sockets import SocketsConfig
from socket_support import FAST, eventually, first_kinds, until


@pytest.mark.timeout(15)
@pytest.mark.parametrize("ping_text", ["ping", "PING"])
async def test_every_server_ping_is_answered(ping_text: str) -> None:
    async with (
        FakePolymarket(
            sockets=SocketsConfig(sports_ping_interval=0.02, sports_pong_grace=0.1)
        ) as fake,
        SportsStream(
            url=fake.sports_url, sports=SportsConfig(ping_timeout=0.3), config=FAST
        ) as stream,
    ):
        fake.sports.ping_text = ping_text
        connection = await fake.sports.hub.wait_for_connection(1)
        for _ in range(200):
            if connection.pings_sent >= 15:
                break
            await until(stream, SportResult)
        await asyncio.sleep(0.05)
        assert connection.pings_sent >= 15
        # Every ping answered in its own case; the server never had to close for a late pong.
        assert connection.pongs >= connection.pings_sent - 1
        assert connection.wrong_replies == []
        assert not connection.closed_for_no_pong
        assert len(fake.sports.connections) == 1
        with pytest.raises(ConfigError):
            await stream.subscribe(["x"])


@pytest.mark.timeout(15)
async def test_a_server_that_stops_pinging_is_detected_and_recovered() -> None:
    async with (
        FakePolymarket(sockets=SocketsConfig(sports_ping_interval=0.02)) as fake,
        SportsStream(
            url=fake.sports_url, sports=SportsConfig(ping_timeout=0.2), config=FAST
        ) as stream,
    ):
        await until(stream, SportResult)
        first = fake.sports.connections[0]
        fake.sports.stop_pinging()
        stale = await until(stream, Stale)
        assert stale.kind == "pong" and 0.18 <= stale.silent_for <= 0.4
        # Data flowed all along: only the missing heartbeat gave the link away.
        assert first.results_sent > 0
        await until(stream, Reconnecting)
        connected = await until(stream, Connected)
        assert connected.connection_id == 2
        second = await fake.sports.hub.wait_for_connection(2)
        await until(stream, SportResult)
        await eventually(lambda: second.pongs >= 3, tries=100, step=0.01)
        assert second.pongs >= 3
        assert stream.health().reconnects == 1


def describe(event: SportsStreamEvent) -> str:
    """Every case of the union: ``mypy tests`` fails here if the stream can yield another type."""
    match event:
        case SportResult() | SportsRaw():
            return "data"
        case SportsMalformed():
            return "other"
        case Connected() | Disconnected() | Reconnecting() | Stale() | Resubscribed() | Gap():
            return "link"
        case _:
            assert_never(event)


@pytest.mark.timeout(15)
async def test_iteration_is_typed_with_the_union() -> None:
    async with (
        FakePolymarket() as fake,
        SportsStream(url=fake.sports_url, config=FAST) as stream,
    ):
        kinds = await first_kinds(stream, describe)
        assert kinds == ["link", "data", "data"]
