"""``RtdsStream``: Polymarket's real-time data socket, with per-topic stall detection.

Same machinery as the CLOB streams (one supervisor, one connection runner, the same backoff,
gap and lifecycle events); only the protocol session differs (:mod:`polyfeed.core.rtds`)::

    async with polyfeed.RtdsStream(["crypto_prices:update", "comments"]) as stream:
        async for event in stream:           # RtdsStreamEvent
            ...

Subscriptions are :class:`~polyfeed.core.rtds.RtdsSubscription` values or ``TOPIC[:TYPE]``
strings. In lifecycle events (``Resubscribed.assets``, ``Gap.assets``, ``Stale.asset_ids``) a
subscription appears as its :attr:`~polyfeed.core.rtds.RtdsSubscription.key`; a silent topic is
reported as ``Stale(kind="asset", asset_ids=[key])`` followed by a reconnect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from polyfeed.aio.clock import Clock
from polyfeed.aio.stream import _resolve_config, _Stream
from polyfeed.aio.supervisor import Connector, SessionFactory
from polyfeed.aio.transport import connect
from polyfeed.config import StreamConfig
from polyfeed.core.channel import ChannelSession
from polyfeed.core.rtds import RtdsConfig, RtdsSession, RtdsSubscription
from polyfeed.core.rtds_messages import RtdsDecoder, RtdsEvent
from polyfeed.events import StreamLifecycleEvent

__all__ = ["DEFAULT_RTDS_URL", "RtdsStream", "RtdsStreamEvent"]

DEFAULT_RTDS_URL: Final = "wss://ws-live-data.polymarket.com"

RtdsStreamEvent = RtdsEvent | StreamLifecycleEvent

SubscriptionLike = str | RtdsSubscription


def _specs(items: Iterable[SubscriptionLike]) -> list[RtdsSubscription]:
    if isinstance(items, str | RtdsSubscription):
        items = [items]
    return [RtdsSubscription.parse(i) if isinstance(i, str) else i for i in items]


class RtdsStream(_Stream[RtdsStreamEvent]):
    """The RTDS socket for a set of subscriptions (typed events for the main topics).

    ``rtds`` sets the PING interval and the socket and per-topic data deadlines; ``config``
    (or ``profile``) the queue, backoff and connect settings shared with the CLOB streams.
    """

    _channel = "rtds"

    def __init__(
        self,
        subscriptions: Iterable[SubscriptionLike] = (),
        *,
        url: str = DEFAULT_RTDS_URL,
        rtds: RtdsConfig | None = None,
        profile: str = "dashboard",
        config: StreamConfig | None = None,
        clock: Clock | None = None,
        rng: Callable[[], float] | None = None,
        connector: Connector = connect,
    ) -> None:
        specs = _specs(subscriptions)
        self._specs: dict[str, RtdsSubscription] = {s.key: s for s in specs}
        self.rtds_config = rtds or RtdsConfig()
        self._decoder = RtdsDecoder()
        super().__init__(
            list(self._specs),
            url=url,
            config=_resolve_config(profile, config, None),
            clock=clock,
            rng=rng,
            connector=connector,
        )

    @property
    def specs(self) -> dict[str, RtdsSubscription]:
        """The subscriptions by key (a copy)."""
        return dict(self._specs)

    def _session_factory(self) -> SessionFactory:
        def factory(connection_id: int) -> ChannelSession:
            return RtdsSession(
                self._subscriptions,
                self._specs,
                self.rtds_config,
                self._decoder,
                connection_id=connection_id,
            )

        return factory

    async def subscribe(self, ids: Iterable[SubscriptionLike]) -> list[str]:
        """Subscribe more topics live; returns the keys that were new."""
        specs = _specs(ids)
        for spec in specs:
            self._specs.setdefault(spec.key, spec)
        return await super().subscribe([s.key for s in specs])

    async def unsubscribe(self, ids: Iterable[SubscriptionLike]) -> list[str]:
        """Unsubscribe topics live; returns the keys that were subscribed."""
        removed = await super().unsubscribe([s.key for s in _specs(ids)])
        for key in removed:
            self._specs.pop(key, None)
        return removed
