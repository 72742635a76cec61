"""The one seam to the WebSocket library (aiohttp). Maps its errors onto ``polyfeed.errors``.

Every difference between the aiohttp versions that pyproject.toml allows is handled here, and
only here: ``ws_connect_options`` adapts to the ``ws_connect`` keywords a version has, and
``abort_websocket`` is the one place that touches aiohttp's private objects. ``make test-floor``
runs the stream tests on the lowest versions allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import inspect
import math
import re
import socket
import time
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

import aiohttp

from polyfeed.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    ConnectionClosedError,
    HandshakeRejectedError,
    ServerUnavailableError,
)

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


_TEXT = aiohttp.WSMsgType.TEXT
_BINARY = aiohttp.WSMsgType.BINARY


def ws_connect_options(close_timeout: float, *, decode_text: bool | None = None) -> dict[str, Any]:
    """The ``ws_connect`` keywords: no receive timeout (the watchdog owns liveness),
    ``close_timeout`` for the close handshake, and, where aiohttp can, text frames left as bytes:
    the msgspec decoder reads bytes and ``str`` alike, and bytes save a decode and a copy.

    ``decode_text`` came with aiohttp 3.14; the floor (3.11) hands over text frames as ``str``.
    None asks the installed ``ClientSession.ws_connect`` whether it takes that keyword.
    """
    if decode_text is None:
        parameters = inspect.signature(aiohttp.ClientSession.ws_connect).parameters
        decode_text = "decode_text" in parameters
    options: dict[str, Any] = {
        "timeout": aiohttp.ClientWSTimeout(ws_receive=None, ws_close=close_timeout),
    }
    if decode_text:
        options["decode_text"] = False
    return options


def abort_websocket(ws: aiohttp.ClientWebSocketResponse[Any]) -> None:
    """Drop ``ws``'s TCP connection at once, without a close frame.

    aiohttp has no public abort for a client WebSocket, so this reaches the response behind it
    (``ws._response``: its ``connection.transport.abort()``, then ``close()`` to release it).
    Checked on aiohttp 3.11.0, 3.11.18, 3.12.15, 3.13.5 and 3.14.5. Where that private
    layout is missing (a later aiohttp), the fallback shuts the socket down through the public
    ``get_extra_info("socket")``: the peer sees the TCP connection end without a close frame,
    the reader gets EOF, and ``ClientSession.close()`` later frees the rest.
    """
    response = getattr(ws, "_response", None)
    if response is not None and hasattr(response, "connection") and hasattr(response, "close"):
        connection = response.connection
        if connection is not None and connection.transport is not None:
            connection.transport.abort()
        response.close()
        return
    sock = ws.get_extra_info("socket")
    if sock is not None:
        # OSError: the peer is already gone, so there is nothing left to drop.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class AiohttpTransport:
    """``Transport`` over an aiohttp client WebSocket (it owns its ClientSession)."""

    def __init__(
        self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse[bool], url: str
    ) -> None:
        self._session = session
        self._ws = ws
        self.url = url

    def __repr__(self) -> str:
        state = "closed" if self._ws.closed else "open"
        return f"<AiohttpTransport {self.url} {state}>"

    async def send_text(self, text: str) -> None:
        """Send one text frame; a dead socket raises ``ConnectionClosedError``."""
        try:
            await self._ws.send_str(text)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            raise ConnectionClosedError(self._ws.close_code, f"send failed: {exc}") from exc

    async def receive_text(self) -> str | bytes:
        """The next text or binary frame, as the raw UTF-8 bytes where aiohttp can (3.14 on).

        Text frames are not decoded to ``str`` there: the msgspec decoder reads bytes directly,
        which saves a decode and a copy per frame on the hot path. Older aiohttp versions have no
        such option and deliver ``str``, which the decoder reads as well.
        """
        ws = self._ws
        while True:
            try:
                msg = await ws.receive()
            except (ConnectionError, aiohttp.ClientError) as exc:
                raise ConnectionClosedError(None, f"receive failed: {exc}") from exc
            kind = msg.type
            if kind is _TEXT or kind is _BINARY:
                data: str | bytes = msg.data
                return data
            self._not_data(msg)

    async def read_frames(self, sink: list[str | bytes], on_first: Callable[[], None]) -> NoReturn:
        """Append every frame to ``sink`` until the socket ends (then raise).

        ``on_first()`` runs when a frame lands in an empty ``sink``: the caller schedules one
        processing step for everything that arrives before it runs, and empties ``sink`` there.
        One loop here instead of a ``receive_text`` call per frame saves a coroutine per frame.
        """
        ws = self._ws
        receive = ws.receive
        append = sink.append
        while True:
            try:
                msg = await receive()
            except (ConnectionError, aiohttp.ClientError) as exc:
                raise ConnectionClosedError(None, f"receive failed: {exc}") from exc
            kind = msg.type
            if kind is _TEXT or kind is _BINARY:
                if not sink:
                    on_first()
                append(msg.data)
                continue
            self._not_data(msg)

    def _not_data(self, msg: Any) -> None:
        """Raise for a message that ends the socket; return for the others."""
        ws = self._ws
        kind = msg.type
        if kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
            raise ConnectionClosedError(ws.close_code, str(msg.extra or ""))
        if kind is aiohttp.WSMsgType.CLOSED:
            code = ws.close_code
            # aiohttp reports an abrupt EOF as 1006 only sometimes; normalise to "no frame".
            raise ConnectionClosedError(None if code in (None, 1006) else code, "closed")
        if kind is aiohttp.WSMsgType.ERROR:
            problem = ws.exception()
            code = ws.close_code
            if isinstance(problem, aiohttp.WebSocketError):
                code = problem.code
            raise ConnectionClosedError(code, f"error: {problem}")
        # PING/PONG are answered by aiohttp itself (autoping); nothing else is expected.

    def abort(self) -> None:
        """Drop the TCP connection at once (used on stale detection)."""
        abort_websocket(self._ws)

    async def close(self, grace: float) -> None:
        """Send a close frame and wait up to ``grace`` s for the peer; then release everything."""
        try:
            async with asyncio.timeout(grace):
                await self._ws.close()
        except (TimeoutError, ConnectionError, aiohttp.ClientError):
            self.abort()
        finally:
            await self._session.close()

    async def release(self) -> None:
        """Free the HTTP session after an abort."""
        if not self._ws.closed:
            self.abort()
        await self._session.close()


async def connect(
    url: str,
    *,
    connect_timeout: float,
    max_frame_bytes: int,
    auth_attempt: int = 1,
) -> AiohttpTransport:
    """Open a WebSocket to ``url``, mapping failures to transient or fatal polyfeed errors.

    Protocol-level pings are not sent (Polymarket counts only the text ``PING``) but server pings
    are answered.
    """
    if not url.lower().startswith(("ws://", "wss://")):
        raise ConfigError(f"not a WebSocket URL: {url!r}")
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
    try:
        # The handshake itself must not hang on a dead server.
        async with asyncio.timeout(connect_timeout):
            ws = await session.ws_connect(
                url,
                autoping=True,
                heartbeat=None,
                max_msg_size=max_frame_bytes,
                **ws_connect_options(connect_timeout),
            )
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        status = exc.status
        if status in (401, 403):
            raise AuthenticationError(status, auth_attempt) from None
        if status == 429 or status >= 500:
            headers = exc.headers
            retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
            raise ServerUnavailableError(status, retry_after) from None
        raise HandshakeRejectedError(status, url) from None
    except aiohttp.InvalidURL:
        # Before the generic ClientError: a malformed URL will not connect on any retry.
        await session.close()
        raise ConfigError(f"invalid WebSocket URL: {url!r}") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        await session.close()
        raise ConnectError(url, str(exc) or type(exc).__name__) from None
    except BaseException:
        await session.close()
        raise
    return AiohttpTransport(session, ws, url)
