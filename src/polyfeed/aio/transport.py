"""The WebSocket client sockets: asyncio's TCP (and TLS) transport, framed by
``polyfeed.core.websocket``. Maps every failure onto ``polyfeed.errors``.

A socket read's data frames go straight into the caller's list from the protocol's
``data_received``: no message object, queue entry or coroutine call per frame (see the core
module's docstring for why that matters at burst rates). aiohttp stays polyfeed's HTTP client
(REST) and the fake server's framework; it is no longer on the client sockets' path.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import email.utils
import functools
import math
import os
import platform
import re
import ssl
import time
from collections.abc import Callable
from typing import NoReturn, Protocol, assert_never
from urllib.parse import urlsplit

from polyfeed._version import __version__
from polyfeed.core.websocket import (
    OP_CLOSE,
    OP_PONG,
    OP_TEXT,
    Close,
    ControlEvent,
    Failure,
    FrameReader,
    HandshakeError,
    HandshakeResponse,
    Ping,
    check_upgrade,
    close_payload,
    encode_frame,
    handshake_request,
    parse_handshake_response,
)
from polyfeed.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    ConnectionClosedError,
    HandshakeRejectedError,
    ServerUnavailableError,
)

USER_AGENT = f"polyfeed/{__version__} Python/{platform.python_version()}"
"""The ``User-Agent`` of the client sockets' opening handshake."""

_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


class Transport(Protocol):
    """A connected text WebSocket."""

    async def send_text(self, text: str) -> None:
        """Send one text frame."""
        ...

    async def receive_text(self) -> str | bytes:
        """The next text frame (UTF-8 bytes or str); raises ``ConnectionClosedError`` at the end."""
        ...

    async def read_frames(self, sink: list[str | bytes], on_first: Callable[[], None]) -> NoReturn:
        """Append frames to ``sink`` until the socket ends; ``on_first()`` when ``sink`` was
        empty. Raises ``ConnectionClosedError`` at the end."""
        ...

    def abort(self) -> None:
        """Drop the TCP connection now, without a close handshake."""
        ...

    async def close(self, grace: float) -> None:
        """Close politely, giving up (abort) after ``grace`` seconds."""
        ...

    async def release(self) -> None:
        """Free what the connection holds after it ended (idempotent)."""
        ...


def parse_retry_after(value: str | None, now_wall: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None when absent/bad.

    Only plain ASCII digits (a fraction tolerated) count as delta-seconds: ``float()`` would also
    take ``inf``, ``nan`` and ``-5``, and an infinite wait would park the reconnect loop for ever
    (the backoff honours a server's Retry-After beyond its own cap). A date in the past is 0.
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # "-0000" parses to a naive datetime; HTTP dates are always UTC, never local time.
        when = when.replace(tzinfo=datetime.UTC)
    now_wall = time.time() if now_wall is None else now_wall
    return max(0.0, when.timestamp() - now_wall)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # One context for every wss:// socket: loading the CA store costs milliseconds each time.
    return ssl.create_default_context()


def _random_bytes(count: int) -> bytes:
    # Handshake keys and frame masks are security nonces (RFC 6455 10.3), not behaviour a test
    # steers: they come from the OS, never from an injected seedable source.
    return os.urandom(count)


class _ClientProtocol(asyncio.Protocol):
    """The asyncio side of one client WebSocket: the handshake answer, then frames.

    Data messages go to ``sink`` (the reader's list) in ``data_received`` itself; ``on_first``
    runs when a message lands in an empty ``sink``.
    """

    def __init__(self, max_frame_bytes: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.frames = FrameReader(max_frame_bytes)
        self.handshake: asyncio.Future[HandshakeResponse] = (
            asyncio.get_running_loop().create_future()
        )
        self._head = b""
        self.opened = False
        self.inbox: list[bytes] = []
        self.sink: list[bytes] = self.inbox
        self.on_first: Callable[[], None] = self._wake
        self._waiter: asyncio.Future[None] | None = None
        self.ended: ConnectionClosedError | None = None
        self.ended_future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_sent = False
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        state = "ended" if self.ended is not None else "open" if self.opened else "handshake"
        return (
            f"<_ClientProtocol {state} inbox={len(self.inbox)} close_sent={self.close_sent} "
            f"write_paused={self._write_paused} {self.frames!r}>"
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.opened:
            self._handshake_data(data)
            return
        sink = self.sink
        was_empty = not sink
        controls = self.frames.feed(data, sink)
        if was_empty and sink:
            self.on_first()
        if controls:
            self._control(controls)

    def _handshake_data(self, data: bytes) -> None:
        if self.handshake.done():
            return
        head = self._head + data
        try:
            parsed = parse_handshake_response(head)
        except HandshakeError as exc:
            self.handshake.set_exception(exc)
            return
        if parsed is None:
            self._head = head
            return
        response, end = parsed
        self._head = b""
        self.handshake.set_result(response)
        if response.status == 101:
            self.opened = True
            if end < len(head):
                # Frames that came in the same read as the 101: kept in the inbox for now.
                self.data_received(head[end:])

    def _control(self, controls: list[ControlEvent]) -> None:
        for event in controls:
            match event:
                case Ping(payload):
                    if not self.close_sent:
                        self.write_frame(OP_PONG, payload)
                    continue
                case Close(code, reason):
                    # The closing handshake: echo the code, then let the peer drop TCP.
                    self._send_close(code, "")
                    self.end(ConnectionClosedError(code, reason))
                case Failure(code, reason):
                    self._send_close(code, reason)
                    self.end(ConnectionClosedError(code, f"error: {reason}"))
                case _:
                    assert_never(event)
            assert self.transport is not None
            self.transport.close()

    def write_frame(self, opcode: int, payload: bytes) -> None:
        """Write one masked frame (no wait; see ``drain``)."""
        assert self.transport is not None
        self.transport.write(encode_frame(opcode, payload, _random_bytes(4)))

    def _send_close(self, code: int | None, reason: str) -> None:
        transport = self.transport
        if self.close_sent or transport is None or transport.is_closing():
            return
        self.close_sent = True
        self.write_frame(OP_CLOSE, close_payload(code, reason))

    def end(self, error: ConnectionClosedError) -> None:
        """The socket is over: the first reason sticks; readers and waiters wake."""
        if self.ended is not None:
            return
        self.ended = error
        if not self.ended_future.done():
            self.ended_future.set_result(None)
        self._wake()
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_in_inbox(self) -> bytes:
        """The oldest message that no ``read_frames`` took; raises once the socket ended."""
        inbox = self.inbox
        while not inbox:
            if self.ended is not None:
                raise self.ended
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return inbox.pop(0)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost ends the socket

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(
                exc or ConnectionResetError("connection closed during the handshake")
            )
        # An EOF without a close frame: no close code, whatever the peer meant.
        self.end(ConnectionClosedError(None, f"closed: {exc}" if exc else "closed"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        while self._write_paused and self.ended is None:
            self._drained = asyncio.get_running_loop().create_future()
            try:
                await self._drained
            finally:
                self._drained = None


class SocketTransport:
    """``Transport`` over one client WebSocket (a TCP or TLS connection it owns)."""

    def __init__(self, transport: asyncio.Transport, protocol: _ClientProtocol, url: str) -> None:
        self._transport = transport
        self._protocol = protocol
        self.url = url

    def __repr__(self) -> str:
        state = "closed" if self._protocol.ended is not None else "open"
        return f"<SocketTransport {self.url} {state}>"

    def _check_open(self, action: str) -> None:
        protocol = self._protocol
        ended = protocol.ended
        if ended is not None:
            raise ConnectionClosedError(ended.code, f"{action} failed: {ended.reason}")
        if self._transport.is_closing() or protocol.close_sent:
            raise ConnectionClosedError(None, f"{action} failed: the socket is closing")

    async def send_text(self, text: str) -> None:
        """Send one text frame; a dead socket raises ``ConnectionClosedError``."""
        self._check_open("send")
        self._protocol.write_frame(OP_TEXT, text.encode("utf-8"))
        await self._protocol.drain()

    async def receive_text(self) -> bytes:
        """The next text or binary frame, as its raw UTF-8 bytes (the decoder reads bytes);
        raises ``ConnectionClosedError`` once the socket ended."""
        return await self._protocol.next_in_inbox()

    async def read_frames(self, sink: list[str | bytes], on_first: Callable[[], None]) -> NoReturn:
        """Append every frame to ``sink`` until the socket ends (then raise).

        The protocol appends each socket read's frames to ``sink`` as they are parsed, and
        calls ``on_first()`` when a frame lands in an empty ``sink``: the caller schedules one
        processing step for everything that arrives before it runs, and empties ``sink`` there.
        """
        protocol = self._protocol
        target: list[bytes] = sink  # type: ignore[assignment]  # bytes only, a list[str|bytes]
        if protocol.inbox:
            was_empty = not target
            target.extend(protocol.inbox)
            protocol.inbox.clear()
            if was_empty:
                on_first()
        protocol.sink = target
        protocol.on_first = on_first
        try:
            await asyncio.shield(protocol.ended_future)
            assert protocol.ended is not None
            raise protocol.ended
        finally:
            protocol.sink = protocol.inbox
            protocol.on_first = protocol._wake

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close frame (used on stale detection)."""
        self._transport.abort()
        self._protocol.end(ConnectionClosedError(None, "aborted"))

    async def close(self, grace: float) -> None:
        """Send a close frame and wait up to ``grace`` s for the peer's; then drop the socket."""
        protocol = self._protocol
        if protocol.ended is None and not self._transport.is_closing():
            protocol._send_close(1000, "")
            try:
                async with asyncio.timeout(grace):
                    await asyncio.shield(protocol.ended_future)
            except TimeoutError:
                pass
        if protocol.ended is None:
            self._transport.abort()  # the peer did not answer within the grace
        else:
            self._transport.close()
        protocol.end(ConnectionClosedError(1000, "closed by us"))

    async def release(self) -> None:
        """Free the connection after an abort or a close (idempotent)."""
        if not self._transport.is_closing():
            self._transport.abort()
        self._protocol.end(ConnectionClosedError(None, "released"))


def _endpoint(url: str) -> tuple[bool, str, int, str, str]:
    """(TLS?, host, port, Host header, request target) of a ws:// or wss:// URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"invalid WebSocket URL: {url!r}") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("ws", "wss") or not host:
        raise ConfigError(f"not a WebSocket URL: {url!r}")
    secure = scheme == "wss"
    default_port = 443 if secure else 80
    if port is None:
        port = default_port
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default_port else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return secure, host, port, host_header, target


async def connect(
    url: str,
    *,
    connect_timeout: float,
    max_frame_bytes: int,
    auth_attempt: int = 1,
) -> SocketTransport:
    """Open a WebSocket to ``url``, mapping failures to transient or fatal polyfeed errors.

    No protocol-level pings are sent (Polymarket counts only the text ``PING``); server pings
    are answered.
    """
    secure, host, port, host_header, target = _endpoint(url)
    loop = asyncio.get_running_loop()
    key = base64.b64encode(_random_bytes(16)).decode("ascii")
    transport: asyncio.Transport | None = None
    try:
        # The TCP/TLS connect and the handshake together must not hang on a dead server.
        async with asyncio.timeout(connect_timeout):
            transport, protocol = await loop.create_connection(
                lambda: _ClientProtocol(max_frame_bytes),
                host,
                port,
                ssl=_tls_context() if secure else None,
            )
            transport.write(handshake_request(host_header, target, key, USER_AGENT))
            response = await protocol.handshake
        if response.status == 101:
            check_upgrade(response, key)
    except (OSError, TimeoutError, HandshakeError) as exc:
        if transport is not None:
            transport.abort()
        raise ConnectError(url, str(exc) or type(exc).__name__) from None
    except BaseException:
        if transport is not None:
            transport.abort()
        raise
    status = response.status
    if status == 101:
        return SocketTransport(transport, protocol, url)
    transport.abort()
    if status in (401, 403):
        raise AuthenticationError(status, auth_attempt)
    if status == 429 or status >= 500:
        raise ServerUnavailableError(status, parse_retry_after(response.headers.get("retry-after")))
    raise HandshakeRejectedError(status, url)
