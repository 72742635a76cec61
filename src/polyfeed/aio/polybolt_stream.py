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
from polyfeed.aio.stream import _resolve_config, _Stream
from polyfeed.aio.supervisor import Connector, EndingPolicy, SessionFactory
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


def _specs(items: Iterable[ChannelLike]) -> list[PolyboltSubscription]:
    if isinstance(items, str | PolyboltSubscription):
        items = [items]
    return [PolyboltSubscription(i) if isinstance(i, str) else i for i in items]


class PolyboltStream(_Stream[PolyboltStreamEvent]):
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
        self._specs: dict[str, PolyboltSubscription] = {s.key: s for s in _specs(channels)}
        self.polybolt_config = polybolt or PolyboltConfig()
        super().__init__(
            list(self._specs),
            url=url,
            config=_resolve_config(profile, config, None),
            credentials=credentials,
            clock=clock,
            rng=rng,
            connector=connector,
        )

    @property
    def specs(self) -> dict[str, PolyboltSubscription]:
        """The subscriptions by key (a copy)."""
        return dict(self._specs)

    def _session_factory(self) -> SessionFactory:
        def factory(connection_id: int) -> ChannelSession:
            return PolyboltSession(
                self._subscriptions,
                self._specs,
                self.polybolt_config,
                credentials=self._credentials,
                connection_id=connection_id,
            )

        return factory

    def _ending_policy(self) -> EndingPolicy:
        return ending_policy(self.polybolt_config, self._rng)

    async def subscribe(self, ids: Iterable[ChannelLike]) -> list[str]:
        """Subscribe more channels live; returns the keys that were new."""
        specs = _specs(ids)
        for spec in specs:
            self._specs.setdefault(spec.key, spec)
        return await super().subscribe([s.key for s in specs])

    async def unsubscribe(self, ids: Iterable[ChannelLike]) -> list[str]:
        """Unsubscribe channels live; returns the keys that were subscribed."""
        removed = await super().unsubscribe([s.key for s in _specs(ids)])
        for key in removed:
            self._specs.pop(key, None)
        return removed
