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
from polyfeed.aio.socket_stream import SpecStream, StreamOptions
from polyfeed.aio.supervisor import Connector
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


class RtdsStream(SpecStream[RtdsStreamEvent, RtdsSubscription]):
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
        self.rtds_config = rtds or RtdsConfig()
        self._decoder = RtdsDecoder()
        super().__init__(subscriptions, StreamOptions(url, profile, config, clock, rng, connector))

    @staticmethod
    def _parse(text: str) -> RtdsSubscription:
        return RtdsSubscription.parse(text)

    def _new_session(self, connection_id: int) -> ChannelSession:
        return RtdsSession(
            self._subscriptions,
            self._specs,
            self.rtds_config,
            self._decoder,
            connection_id=connection_id,
        )
