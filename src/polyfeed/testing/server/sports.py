"""The fake sports socket (``/sports`` on :class:`~polyfeed.testing.FakePolymarket`).

As docs/protocol.md §6 describes: no subscription; the server sends text ``ping`` every
``ping_interval`` s and closes (1008) a client that has not answered ``pong`` (same case) within
``pong_grace`` s; every ``interval`` s it broadcasts one ``sport_result``.

Fault: :meth:`FakeSports.stop_pinging` makes the open connections stop pinging while data still
flows (a stale link the client must notice itself). New connections ping again.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from polyfeed.testing.server.hub import FakeSocket, send_text

__all__ = ["FakeSports", "FakeSportsConnection"]


class FakeSportsConnection:
    """Server-side view of one sports connection; tests read its attributes."""

    def __init__(self, connection_id: int, ws: web.WebSocketResponse) -> None:
        self.id = connection_id
        self.ws = ws
        self.pings_sent = 0
        self.pongs = 0
        self.wrong_replies: list[str] = []
        self.pinging = True
        self.results_sent = 0
        self.closed_for_no_pong = False
        self._answered = asyncio.Event()

    def __repr__(self) -> str:
        return (
            f"<FakeSportsConnection #{self.id} pings={self.pings_sent} pongs={self.pongs} "
            f"pinging={self.pinging}>"
        )


class FakeSports(FakeSocket[FakeSportsConnection]):
    """The sports socket of the fake server."""

    def __init__(
        self,
        *,
        ping_interval: float = 0.05,
        pong_grace: float = 0.2,
        interval: float | None = 0.02,
        ping_text: str = "ping",
    ) -> None:
        super().__init__("sports")
        self.ping_interval = ping_interval
        self.pong_grace = pong_grace
        self.interval = interval
        self.ping_text = ping_text

    def __repr__(self) -> str:
        return f"<FakeSports ping_interval={self.ping_interval} hub={self.hub!r}>"

    def stop_pinging(self) -> None:
        """The open connections stop pinging (and stop expecting pongs); data still flows."""
        for connection in self.hub.open:
            connection.pinging = False

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The aiohttp handler of the sports path."""
        return await self.hub.serve(
            request, FakeSportsConnection, self._read, self._pinger, self._flow
        )

    async def _read(self, connection: FakeSportsConnection) -> None:
        expected = self.ping_text.replace("i", "o").replace("I", "O")
        async for message in connection.ws:
            if message.type != WSMsgType.TEXT:
                continue
            if message.data == expected:
                connection.pongs += 1
                connection._answered.set()
            else:
                connection.wrong_replies.append(message.data)

    async def _send(self, connection: FakeSportsConnection, text: str) -> bool:
        return await send_text(connection.ws, text)

    async def _pinger(self, connection: FakeSportsConnection) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if not connection.pinging:
                continue
            connection._answered.clear()
            if not await self._send(connection, self.ping_text):
                return
            connection.pings_sent += 1
            try:
                await asyncio.wait_for(connection._answered.wait(), self.pong_grace)
            except TimeoutError:
                if connection.pinging:
                    connection.closed_for_no_pong = True
                    await connection.ws.close(code=1008, message=b"pong timeout")
                    return

    def result(self, n: int) -> dict[str, Any]:
        """The n-th generated ``sport_result``."""
        return {
            "slug": "mci-liv-2025-02-03",
            "live": True,
            "ended": False,
            "score": f"{n % 5}-0",
            "period": "1H",
            "elapsed": f"{n % 45}:00",
            "last_update": "2025-02-03T19:50:16.939Z",
        }

    async def publish(self, message: Any) -> int:
        """Send one JSON message to every open connection; returns how many."""
        text = json.dumps(message)
        sent = 0
        for connection in self.hub.open:
            sent += await self._send(connection, text)
        return sent

    async def _flow(self, connection: FakeSportsConnection) -> None:
        if self.interval is None:
            return
        n = 0
        while True:
            await asyncio.sleep(self.interval)
            n += 1
            if not await self._send(connection, json.dumps(self.result(n))):
                return
            connection.results_sent += 1
