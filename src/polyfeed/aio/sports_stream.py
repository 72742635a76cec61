"""``SportsStream``: Polymarket's sports socket (scores and game status), kept alive for ever.

Same machinery as the CLOB streams (one supervisor, one connection runner, backoff, gaps and
lifecycle events); the protocol is :mod:`polyfeed.core.sports`: the server pings, the stream
answers every ping at once in the server's case, and a server that stops pinging for
``SportsConfig.ping_timeout`` is a stale link (``Stale(kind="pong")``, then a reconnect)::

    async with polyfeed.SportsStream() as stream:
        async for event in stream:           # SportsStreamEvent
            ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from polyfeed.aio.clock import Clock
from polyfeed.aio.socket_stream import SocketStream, StreamOptions
from polyfeed.aio.supervisor import Connector
from polyfeed.aio.transport import connect
from polyfeed.config import StreamConfig
from polyfeed.core.channel import ChannelSession
from polyfeed.core.sports import SportsConfig, SportsDecoder, SportsEvent, SportsSession
from polyfeed.errors import ConfigError
from polyfeed.events import StreamLifecycleEvent

__all__ = ["DEFAULT_SPORTS_URL", "SportsStream", "SportsStreamEvent"]

DEFAULT_SPORTS_URL: Final = "wss://sports-api.polymarket.com/ws"

SportsStreamEvent = SportsEvent | StreamLifecycleEvent


class SportsStream(SocketStream[SportsStreamEvent]):
    """The sports socket: every active game's score and status, no subscriptions.

    ``sports`` sets the stale-link deadlines; ``config`` (or ``profile``) the queue, backoff and
    connect settings shared with the CLOB streams.
    """

    _channel = "sports"

    def __init__(
        self,
        *,
        url: str = DEFAULT_SPORTS_URL,
        sports: SportsConfig | None = None,
        profile: str = "dashboard",
        config: StreamConfig | None = None,
        clock: Clock | None = None,
        rng: Callable[[], float] | None = None,
        connector: Connector = connect,
    ) -> None:
        self.sports_config = sports or SportsConfig()
        self._decoder = SportsDecoder()
        super().__init__((), StreamOptions(url, profile, config, clock, rng, connector))

    def _new_session(self, connection_id: int) -> ChannelSession:
        return SportsSession(self.sports_config, self._decoder, connection_id=connection_id)

    async def subscribe(self, ids: Iterable[str]) -> list[str]:
        """The sports socket broadcasts every game: there is nothing to subscribe."""
        raise ConfigError("the sports socket has no subscriptions (it broadcasts every game)")

    async def unsubscribe(self, ids: Iterable[str]) -> list[str]:
        """The sports socket broadcasts every game: there is nothing to unsubscribe."""
        raise ConfigError("the sports socket has no subscriptions (it broadcasts every game)")
