"""The open WebSocket connections of one of the fake's simpler sockets (RTDS, PolyBolt, sports).

Each connection is served by its aiohttp handler, which runs one TaskGroup (reader plus the
socket's flow) and ends in ``finally``: the hub only keeps the book of who is open, lets tests
wait for the n-th connection and closes them all when the server stops.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web

__all__ = ["FakeSocket", "HubConnection", "SocketHub", "send_text"]


class HubConnection(Protocol):
    """What the hub needs of a connection."""

    id: int
    ws: web.WebSocketResponse


ConnT = TypeVar("ConnT", bound=HubConnection)


class SocketHub(Generic[ConnT]):
    """Every connection made (``connections``, oldest first) and the open ones."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.connections: list[ConnT] = []
        self._open: dict[int, ConnT] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()

    def __repr__(self) -> str:
        return f"<SocketHub {self.name} open={len(self._open)} made={len(self.connections)}>"

    def next_id(self) -> int:
        """A fresh connection id."""
        return next(self._ids)

    @property
    def open(self) -> list[ConnT]:
        """The open connections, oldest first."""
        return list(self._open.values())

    async def opened(self, connection: ConnT) -> None:
        """A connection was accepted."""
        self.connections.append(connection)
        self._open[connection.id] = connection
        async with self._changed:
            self._changed.notify_all()

    def closed(self, connection: ConnT) -> None:
        """A connection ended."""
        self._open.pop(connection.id, None)

    async def wait_for_connection(self, n: int, within: float = 5.0) -> ConnT:
        """The n-th connection (1-based) once accepted; TimeoutError after ``within`` s."""

        async def made() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.connections) >= n)

        await asyncio.wait_for(made(), within)
        return self.connections[n - 1]

    async def serve(
        self,
        request: web.Request,
        make: Callable[[int, web.WebSocketResponse], ConnT],
        read: Callable[[ConnT], Awaitable[None]],
        *flows: Callable[[ConnT], Coroutine[Any, Any, None]],
    ) -> web.WebSocketResponse:
        """Accept the WebSocket of ``request`` as a connection ``make`` builds and serve it: the
        ``flows`` run while ``read`` reads, and are cancelled once the client has gone."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = make(self.next_id(), ws)
        await self.opened(connection)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(flow(connection)) for flow in flows]
                await read(connection)
                for task in tasks:
                    task.cancel()
        finally:
            self.closed(connection)
        return ws

    async def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close every open connection with a close frame."""
        for connection in list(self._open.values()):
            await connection.ws.close(code=code, message=reason.encode())


class FakeSocket(Generic[ConnT]):
    """The base of a fake socket path: its hub and the connections made to it."""

    def __init__(self, name: str) -> None:
        self.hub: SocketHub[ConnT] = SocketHub(name)

    @property
    def connections(self) -> list[ConnT]:
        """Every connection made, oldest first."""
        return self.hub.connections


async def send_text(ws: web.WebSocketResponse, text: str) -> bool:
    """Send ``text``; False (nothing sent) when the socket is closed or the client went away."""
    if ws.closed:
        return False
    try:
        await ws.send_str(text)
    except ConnectionResetError:
        # The client went away mid-flow: its handler is ending anyway.
        return False
    return True
