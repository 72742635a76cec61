"""``PolyboltStream``: Polymarket's PolyBolt price socket, with exact gap reports.

Same machinery as the CLOB streams (one supervisor, one connection runner, backoff, lifecycle
events); the protocol is :mod:`polyfeed.core.polybolt`::

    async with polyfeed.PolyboltStream(["price.crypto"]) as stream:
        async for event in stream:           # PolyboltStreamEvent
            match event:
                case PolyboltData(snapshot=True): ...   # reset that channel
                case PolyboltGap(channel=c, missing=n): ...

Close codes: 4003 (draining) reconnects after ``uniform(0, drain_max_delay)`` s drawn from the
stream's ``rng``; 4008 (policy) ends the stream with :class:`~polyfeed.errors.ClosedByPolicyError`;
4001 (auth) with :class:`~polyfeed.errors.AuthenticationError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from polyfeed.aio.clock import Clock
from polyfeed.aio.socket_stream import SpecStream, StreamOptions
from polyfeed.aio.supervisor import Connector, EndingPolicy
from polyfeed.aio.transport import connect
from polyfeed.config import StreamConfig
from polyfeed.core.channel import ChannelSession
from polyfeed.core.polybolt import (
    PolyboltConfig,
    PolyboltEvent,
    PolyboltSession,
    PolyboltSubscription,
    ending_policy,
)
from polyfeed.credentials import Credentials
from polyfeed.events import StreamLifecycleEvent

__all__ = ["DEFAULT_POLYBOLT_URL", "PolyboltStream", "PolyboltStreamEvent"]

DEFAULT_POLYBOLT_URL: Final = "wss://ws-live-v2.polymarket.com/ws"

PolyboltStreamEvent = PolyboltEvent | StreamLifecycleEvent

ChannelLike = str | PolyboltSubscription


class PolyboltStream(SpecStream[PolyboltStreamEvent, PolyboltSubscription]):
    """The PolyBolt socket for a set of channels (names or :class:`PolyboltSubscription`).

    ``credentials``: sent in an ``auth`` request first when given. ``polybolt`` sets the ping
    and data deadlines and the draining delay; ``config`` (or ``profile``) the queue, backoff
    and connect settings shared with the CLOB streams.
    """

    _channel = "polybolt"

    def __init__(
        self,
        channels: Iterable[ChannelLike] = (),
        *,
        credentials: Credentials | None = None,
        url: str = DEFAULT_POLYBOLT_URL,
        polybolt: PolyboltConfig | None = None,
        profile: str = "dashboard",
        config: StreamConfig | None = None,
        clock: Clock | None = None,
        rng: Callable[[], float] | None = None,
        connector: Connector = connect,
    ) -> None:
        self.polybolt_config = polybolt or PolyboltConfig()
        super().__init__(
            channels, StreamOptions(url, profile, config, clock, rng, connector, credentials)
        )

    @staticmethod
    def _parse(text: str) -> PolyboltSubscription:
        return PolyboltSubscription(text)

    def _new_session(self, connection_id: int) -> ChannelSession:
        return PolyboltSession(
            self._subscriptions,
            self._specs,
            self.polybolt_config,
            credentials=self._credentials,
            connection_id=connection_id,
        )

    def _ending_policy(self) -> EndingPolicy:
        return ending_policy(self.polybolt_config, self._rng)
