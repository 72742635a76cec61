"""The fake's sockets beyond the CLOB channels, and its order heartbeat endpoint, in one place.

:class:`FakePolymarket` serves them on its port: ``/rtds`` (:class:`FakeRtds`), ``/sports``
(:class:`FakeSports`), ``/polybolt`` (:class:`FakePolybolt`) and ``POST /v1/heartbeats``
(:class:`FakeHeartbeats`). :class:`SocketsConfig` holds their timings; the defaults are tens of
milliseconds, because this server is for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from polyfeed.testing.server.heartbeat import FakeHeartbeats
from polyfeed.testing.server.polybolt import FakePolybolt
from polyfeed.testing.server.rtds import FakeRtds
from polyfeed.testing.server.sports import FakeSports

if TYPE_CHECKING:
    from polyfeed.testing.server.app import FakePolymarket

__all__ = ["Sockets", "SocketsConfig"]


@dataclass(frozen=True, slots=True)
class SocketsConfig:
    """Timings (seconds) of the fake's other sockets.

    ``rtds_interval``: a message per RTDS subscription this often (None: only ``publish``).
    ``sports_ping_interval``/``sports_pong_grace``: the sports server's pings and how long it
    waits for the pong before closing 1008; ``sports_interval``: a result this often.
    ``polybolt_interval``: a frame per PolyBolt channel this often; ``polybolt_require_auth``:
    subscriptions need ``auth`` first. ``heartbeat_window``: the order switch fires after this
    long without an accepted beat.
    """

    rtds_interval: float | None = 0.02
    sports_ping_interval: float = 0.05
    sports_pong_grace: float = 0.2
    sports_interval: float | None = 0.02
    polybolt_interval: float | None = 0.02
    polybolt_require_auth: bool = False
    heartbeat_window: float = 10.0


class Sockets:
    """The four fakes of one server, their routes, and their shutdown."""

    def __init__(self, server: FakePolymarket, config: SocketsConfig) -> None:
        self.config = config
        self.rtds = FakeRtds(interval=config.rtds_interval, wall=server.wall)
        self.sports = FakeSports(
            ping_interval=config.sports_ping_interval,
            pong_grace=config.sports_pong_grace,
            interval=config.sports_interval,
        )
        self.polybolt = FakePolybolt(
            lambda: server.credentials,
            interval=config.polybolt_interval,
            require_auth=config.polybolt_require_auth,
        )
        self.heartbeats = FakeHeartbeats(server, window=config.heartbeat_window)

    def __repr__(self) -> str:
        return f"<Sockets {self.rtds!r} {self.sports!r} {self.polybolt!r} {self.heartbeats!r}>"

    def routes(self) -> list[web.RouteDef]:
        """Every route of the four, for ``app.add_routes``."""
        return [
            web.get("/rtds", self.rtds.handle),
            web.get("/sports", self.sports.handle),
            web.get("/polybolt", self.polybolt.handle),
            *self.heartbeats.routes(),
        ]

    async def close(self) -> None:
        """Close every open connection (1001) and stop the heartbeat switch's timer."""
        await self.rtds.hub.close_all()
        await self.sports.hub.close_all()
        await self.polybolt.hub.close_all()
        self.heartbeats.close()
