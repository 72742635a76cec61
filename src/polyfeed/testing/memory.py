"""An in-memory transport pair for lifecycle tests: no sockets, the test plays the server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn

from polyfeed.errors import ConnectionClosedError


class MemoryTransport:
    """A ``polyfeed.aio.transport.Transport`` whose peer is the test.

    The test reads what the client sent with ``await sent()`` (or ``sent_frames``) and feeds
    frames with ``feed(text)``; ``peer_close(code)`` and ``peer_drop()`` end the connection the
    way a server would.
    """

    def __init__(self, url: str = "memory://polymarket") -> None:
        self.url = url
        self.sent_frames: list[str] = []
        self._inbox: asyncio.Queue[str | ConnectionClosedError] = asyncio.Queue()
        self._sent = asyncio.Queue[str]()
        self.aborted = False
        self.closed_politely = False
        self.released = False

    def __repr__(self) -> str:
        state = "aborted" if self.aborted else ("closed" if self.closed_politely else "open")
        return f"<MemoryTransport {state} sent={len(self.sent_frames)}>"

    # ------------------------------------------------------------------ client side

    async def send_text(self, text: str) -> None:
        """Record a frame the client sends."""
        if self.aborted or self.closed_politely:
            raise ConnectionClosedError(None, "send on a closed transport")
        self.sent_frames.append(text)
        self._sent.put_nowait(text)

    async def receive_text(self) -> str:
        """The next frame the test fed, or the close it scripted."""
        item = await self._inbox.get()
        if isinstance(item, ConnectionClosedError):
            self._inbox.put_nowait(item)
            raise item
        return item

    async def read_frames(self, sink: list[str | bytes], on_first: Callable[[], None]) -> NoReturn:
        """Append every fed frame to ``sink`` until the scripted end (then raise)."""
        while True:
            frame = await self.receive_text()
            if not sink:
                on_first()
            sink.append(frame)

    def abort(self) -> None:
        """Client-side abort: the peer sees the TCP vanish."""
        self.aborted = True
        self._inbox.put_nowait(ConnectionClosedError(None, "aborted"))

    async def close(self, grace: float) -> None:
        """Client-side polite close."""
        self.closed_politely = True
        self._inbox.put_nowait(ConnectionClosedError(1000, "closed by client"))
        self.released = True

    async def release(self) -> None:
        """Free resources after the connection ended."""
        self.released = True

    # ------------------------------------------------------------------ test (server) side

    def feed(self, text: str) -> None:
        """Deliver a frame to the client."""
        self._inbox.put_nowait(text)

    def peer_close(self, code: int, reason: str = "") -> None:
        """The server closes with ``code``."""
        self._inbox.put_nowait(ConnectionClosedError(code, reason))

    def peer_drop(self) -> None:
        """The server's TCP vanishes without a close frame."""
        self._inbox.put_nowait(ConnectionClosedError(None, "connection lost"))

    async def sent(self) -> str:
        """The next frame the client sent (waits for it)."""
        return await self._sent.get()


class MemoryConnector:
    """A connector for ``MarketStream(connector=...)`` handing out scripted transports.

    Each connection attempt calls ``on_attempt(index)``, which may raise (refuse) or return
    None; the new transport is appended to ``transports``.
    """

    def __init__(self, on_attempt: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.transports: list[MemoryTransport] = []
        self.attempts = 0
        self._on_attempt = on_attempt
        self._opened = asyncio.Condition()

    def __repr__(self) -> str:
        return f"<MemoryConnector attempts={self.attempts} transports={len(self.transports)}>"

    async def __call__(self, url: str, **_: object) -> MemoryTransport:
        index = self.attempts
        self.attempts += 1
        if self._on_attempt is not None:
            await self._on_attempt(index)
        transport = MemoryTransport(url)
        self.transports.append(transport)
        async with self._opened:
            self._opened.notify_all()
        return transport

    async def wait_for(self, count: int) -> MemoryTransport:
        """Wait until ``count`` transports were opened; return the last one."""
        async with self._opened:
            await self._opened.wait_for(lambda: len(self.transports) >= count)
        return self.transports[count - 1]
