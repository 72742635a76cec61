"""PolyboltStream against the fake PolyBolt socket: gaps, draining, policy and auth closes."""

from __future__ import annotations

import asyncio
from typing import assert_never

import pytest

from polyfeed import (
    AuthenticationError,
    Connected,
    Disconnected,
    Gap,
    Reconnecting,
    Resubscribed,
    Stale,
)
from polyfeed.aio.polybolt_stream import PolyboltStream, PolyboltStreamEvent
from polyfeed.core.polybolt import (
    PolyboltAck,
    PolyboltConfig,
    PolyboltData,
    PolyboltError,
    PolyboltGap,
    PolyboltMalformed,
)
from polyfeed.credentials import Credentials
from polyfeed.errors import ClosedByPolicyError
from polyfeed.testing import FakePolymarket
from polyfeed.testing.server.sockets import SocketsConfig
from socket_support import FAST, first_kinds, until

PB = PolyboltConfig(ping_interval=0.05, pong_timeout=0.5, data_timeout=1.0, drain_max_delay=0.4)


@pytest.mark.timeout(15)
async def test_a_seq_jump_is_reported_as_exactly_the_missing_frames() -> None:
    async with (
        FakePolymarket() as fake,
        PolyboltStream(["price.crypto"], url=fake.polybolt_url, polybolt=PB, config=FAST) as stream,
    ):
        snapshot = await until(stream, PolyboltData)
        assert snapshot.snapshot and snapshot.seq == 1
        await until(stream, PolyboltData)
        fake.polybolt.jump_seq("price.crypto", 5)
        gap = await until(stream, PolyboltGap)
        assert (gap.channel, gap.missing, gap.reason) == ("price.crypto", 5, "seq")
        assert gap.seq == gap.after_seq + 6
        fake.polybolt.drop("price.crypto", 3)
        gap = await until(stream, PolyboltGap)
        assert (gap.missing, gap.reason) == (3, "dropped")


@pytest.mark.timeout(15)
async def test_a_draining_close_is_followed_by_a_reconnect_after_the_random_delay() -> None:
    draws = iter([0.5, 0.5, 0.5, 0.5])
    async with (
        FakePolymarket() as fake,
        PolyboltStream(
            ["price.crypto", "price.equity"],
            url=fake.polybolt_url,
            polybolt=PB,
            config=FAST,
            rng=lambda: next(draws, 0.5),
        ) as stream,
    ):
        await until(stream, PolyboltData)
        await fake.polybolt.close(4003, "draining")
        closed = await until(stream, Disconnected)
        assert closed.code == 4003
        retry = await until(stream, Reconnecting)
        # uniform(0, drain_max_delay) with the injected draw: 0.5 * 0.4 s.
        assert retry.delay == pytest.approx(0.2)
        connected = await until(stream, Connected)
        assert connected.connection_id == 2
        replay = await until(stream, Resubscribed)
        assert sorted(replay.assets) == ["price.crypto", "price.equity"]
        # seq restarts on the new connection: a fresh snapshot, no false gap.
        snapshot = await until(stream, PolyboltData)
        assert snapshot.snapshot and snapshot.seq == 1
        second = await fake.polybolt.hub.wait_for_connection(2)
        assert set(second.channels) <= {"price.crypto", "price.equity"}


@pytest.mark.timeout(15)
async def test_a_policy_close_ends_the_stream_without_a_loop() -> None:
    async with (
        FakePolymarket() as fake,
        PolyboltStream(["price.crypto"], url=fake.polybolt_url, polybolt=PB, config=FAST) as stream,
    ):
        await until(stream, PolyboltData)
        await fake.polybolt.close(4008, "policy")
        with pytest.raises(ClosedByPolicyError):
            while True:
                await anext(stream)
        await asyncio.sleep(0.1)
        assert len(fake.polybolt.connections) == 1
        assert stream.health().state == "failed"


@pytest.mark.timeout(15)
async def test_auth_first_and_rejected_credentials_are_fatal() -> None:
    async with FakePolymarket(sockets=SocketsConfig(polybolt_require_auth=True)) as fake:
        async with PolyboltStream(
            ["price.crypto"],
            credentials=fake.credentials.client(),
            url=fake.polybolt_url,
            polybolt=PB,
            config=FAST,
        ) as stream:
            await until(stream, PolyboltData)
            assert fake.polybolt.connections[0].authed
        wrong = Credentials(api_key="k", secret="s", passphrase="p")
        async with PolyboltStream(
            ["price.crypto"], credentials=wrong, url=fake.polybolt_url, polybolt=PB, config=FAST
        ) as stream:
            with pytest.raises(AuthenticationError):
                while True:
                    await anext(stream)
        assert len(fake.polybolt.connections) == 2


def describe(event: PolyboltStreamEvent) -> str:
    """Every case of the union: ``mypy tests`` fails here if the stream can yield another type."""
    match event:
        case PolyboltData() | PolyboltGap():
            return "data"
        case PolyboltAck() | PolyboltError() | PolyboltMalformed():
            return "control"
        case Connected() | Disconnected() | Reconnecting() | Stale() | Resubscribed() | Gap():
            return "link"
        case _:
            assert_never(event)


@pytest.mark.timeout(15)
async def test_iteration_is_typed_with_the_union() -> None:
    async with (
        FakePolymarket() as fake,
        PolyboltStream(["price.crypto"], url=fake.polybolt_url, polybolt=PB, config=FAST) as stream,
    ):
        kinds = await first_kinds(stream, describe)
        assert kinds == ["link", "control", "data"]
