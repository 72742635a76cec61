"""Every socket's session satisfies the ChannelSession protocol the runner and supervisor use."""

from __future__ import annotations

import random

import pytest

from polyfeed.aio.clock import LoopClock
from polyfeed.aio.event_queue import EventQueue
from polyfeed.aio.supervisor import Supervisor
from polyfeed.config import StreamConfig
from polyfeed.core.backoff import Backoff
from polyfeed.core.channel import ChannelSession
from polyfeed.core.codec import FrameDecoder
from polyfeed.core.rtds import RtdsConfig, RtdsSession
from polyfeed.core.rtds_messages import RtdsDecoder
from polyfeed.core.session import Session
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.errors import ConfigError
from polyfeed.metrics import ConnectionMetrics


def test_sessions_are_channel_sessions() -> None:
    # mypy checks the assignments structurally; the runtime check is that they construct.
    sessions: list[ChannelSession] = [
        Session("market", SubscriptionSet(["a"]), StreamConfig(), FrameDecoder("market")),
        RtdsSession(SubscriptionSet(), {}, RtdsConfig(), RtdsDecoder()),
    ]
    for session in sessions:
        assert session.next_deadline() is None
        assert session.failure is None


async def test_a_channel_without_a_session_factory_is_refused() -> None:
    cfg = StreamConfig()
    clock = LoopClock()

    def build(channel: str) -> Supervisor:
        return Supervisor(
            channel,
            "ws://127.0.0.1:1/x",
            SubscriptionSet(),
            cfg,
            clock,
            Backoff(cfg.backoff, random.Random(1).random),
            EventQueue(cfg.queue, clock.wall),
            ConnectionMetrics(clock.now()),
        )

    assert build("market").decoder is not None
    with pytest.raises(ConfigError, match="session_factory"):
        build("rtds")
