"""The fake PolyBolt socket (``/polybolt`` on :class:`~polyfeed.testing.FakePolymarket`).

``op`` frames as docs/protocol.md §5 describes: ``auth`` -> ``authed`` (close 4001 on wrong
credentials; required only with ``require_auth``), ``subscribe``/``unsubscribe`` -> ``subscribed``
/ ``unsubscribed`` (``error`` for a channel it does not serve), ``ping`` -> ``pong``; every ack
echoes ``rid``. A subscription first gets one ``snapshot`` frame, then a frame every
``interval`` s; ``seq`` counts one channel's frames on one connection, from 1.

Faults on the open connections: :meth:`FakePolybolt.jump_seq` (the next frame's ``seq`` skips
``n`` numbers), :meth:`FakePolybolt.drop` (the next frame reports ``dropped: n``),
:meth:`FakePolybolt.close` (e.g. 4003 draining, 4008 policy).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from polyfeed.testing.server.hub import FakeSocket, send_text

if TYPE_CHECKING:
    from polyfeed.testing.server.auth import ApiCredentials

__all__ = ["CHANNELS", "FakePolybolt", "FakePolyboltConnection"]

CHANNELS = frozenset({"price.crypto", "price.crypto.twap", "price.equity", "price.polymarket"})


class FakePolyboltConnection:
    """Server-side view of one PolyBolt connection; tests read its attributes."""

    def __init__(self, connection_id: int, ws: web.WebSocketResponse) -> None:
        self.id = connection_id
        self.ws = ws
        self.authed = False
        self.channels: dict[str, None] = {}
        self.seq: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []
        self.skip: dict[str, int] = {}
        self.dropped: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<FakePolyboltConnection #{self.id} channels={list(self.channels)} seq={self.seq}>"


class FakePolybolt(FakeSocket[FakePolyboltConnection]):
    """The PolyBolt socket of the fake server; ``credentials`` gives the accepted ones now."""

    def __init__(
        self,
        credentials: Callable[[], ApiCredentials],
        *,
        interval: float | None = 0.02,
        require_auth: bool = False,
    ) -> None:
        super().__init__("polybolt")
        self.credentials = credentials
        self.interval = interval
        self.require_auth = require_auth

    def __repr__(self) -> str:
        return f"<FakePolybolt interval={self.interval} hub={self.hub!r}>"

    def jump_seq(self, channel: str, n: int) -> None:
        """On every open connection, the next frame of ``channel`` skips ``n`` seq numbers."""
        for connection in self.hub.open:
            connection.skip[channel] = connection.skip.get(channel, 0) + n

    def drop(self, channel: str, n: int) -> None:
        """On every open connection, the next frame of ``channel`` reports ``dropped: n``."""
        for connection in self.hub.open:
            connection.dropped[channel] = connection.dropped.get(channel, 0) + n

    async def close(self, code: int, reason: str = "") -> None:
        """Close every open connection with ``code`` (4003 draining, 4008 policy, ...)."""
        await self.hub.close_all(code=code, reason=reason)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The aiohttp handler of the PolyBolt path."""
        return await self.hub.serve(request, FakePolyboltConnection, self._read, self._flow)

    async def _send(self, connection: FakePolyboltConnection, body: dict[str, Any]) -> bool:
        return await send_text(connection.ws, json.dumps(body, separators=(",", ":")))

    async def _data(
        self, connection: FakePolyboltConnection, channel: str, *, snapshot: bool = False
    ) -> bool:
        seq = connection.seq.get(channel, 0) + 1 + connection.skip.pop(channel, 0)
        connection.seq[channel] = seq
        body: dict[str, Any] = {
            "v": 1,
            "channel": channel,
            "seq": seq,
            "ts": int(asyncio.get_running_loop().time() * 1000),
            "payload": {"symbol": "btcusdt", "price": 100.0 + seq % 7},
        }
        if snapshot:
            body["snapshot"] = True
        dropped = connection.dropped.pop(channel, 0)
        if dropped:
            body["dropped"] = dropped
        return await self._send(connection, body)

    async def _read(self, connection: FakePolyboltConnection) -> None:
        async for message in connection.ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                body = json.loads(message.data)
                op = body["op"]
            except (ValueError, KeyError, TypeError):
                await connection.ws.close(code=4008, message=b"malformed frame")
                return
            connection.requests.append(body)
            rid = body.get("rid")
            if op == "ping":
                await self._send(connection, {"op": "pong"})
            elif op == "auth":
                auth = body.get("auth") or {}
                if auth != self.credentials().auth():
                    await connection.ws.close(code=4001, message=b"auth failed")
                    return
                connection.authed = True
                await self._send(connection, {"op": "authed", "rid": rid})
            elif op in ("subscribe", "unsubscribe"):
                await self._subscription(connection, op, rid, body.get("channel"))
            else:
                await self._send(connection, {"op": "error", "rid": rid, "message": "bad op"})

    async def _subscription(
        self, connection: FakePolyboltConnection, op: str, rid: Any, channel: Any
    ) -> None:
        if self.require_auth and not connection.authed:
            await self._send(connection, {"op": "error", "rid": rid, "message": "unauthorized"})
            return
        if channel not in CHANNELS:
            await self._send(
                connection,
                {"op": "error", "rid": rid, "channel": channel, "message": "unknown channel"},
            )
            return
        if op == "unsubscribe":
            connection.channels.pop(channel, None)
            connection.seq.pop(channel, None)
            await self._send(connection, {"op": "unsubscribed", "rid": rid, "channel": channel})
            return
        connection.channels[channel] = None
        await self._send(connection, {"op": "subscribed", "rid": rid, "channel": channel})
        await self._data(connection, channel, snapshot=True)

    async def _flow(self, connection: FakePolyboltConnection) -> None:
        if self.interval is None:
            return
        while True:
            await asyncio.sleep(self.interval)
            for channel in list(connection.channels):
                if not await self._data(connection, channel):
                    return
