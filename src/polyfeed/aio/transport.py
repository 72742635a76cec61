"""The one seam to the WebSocket library (aiohttp). Maps its errors onto ``polyfeed.errors``."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import math
import re
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
        """The next text or binary frame, as the raw UTF-8 bytes.

        Text frames are not decoded to ``str``: the msgspec decoder reads bytes directly, which
        saves a decode and a copy per frame on the hot path.
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
        conn = self._ws._response.connection
        if conn is not None and conn.transport is not None:
            conn.transport.abort()
        self._ws._response.close()

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
                decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=connect_timeout),
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
