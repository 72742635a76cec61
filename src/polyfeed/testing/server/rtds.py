"""The fake RTDS socket (``/rtds`` on :class:`~polyfeed.testing.FakePolymarket`).

It speaks what docs/protocol.md §5 describes: ``action`` frames add and remove
``{topic, type, filters}`` subscriptions on the live socket (``filters`` must be a string, else
the server answers ``{"message": "invalid request body"}``), text ``PING`` gets ``PONG`` (case as
sent), and every ``interval`` s each subscription gets one message (prices for the price topics,
a small payload for the others). A price topic also sends its recent history (type
``subscribe``) when subscribed.

Fault: :meth:`FakeRtds.freeze` stops one topic on the open connections while PINGs are still
answered and the other topics flow: the real server's silent freeze. New connections are not
frozen (reconnecting is the cure, as on the real server).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from polyfeed.core.rtds_messages import PRICE_TOPICS
from polyfeed.testing.server.hub import FakeSocket, send_text

__all__ = ["FakeRtds", "FakeRtdsConnection"]


class FakeRtdsConnection:
    """Server-side view of one RTDS connection; tests read its attributes."""

    def __init__(self, connection_id: int, ws: web.WebSocketResponse) -> None:
        self.id = connection_id
        self.ws = ws
        # (topic, type, filters) in subscription order.
        self.subscriptions: dict[tuple[str, str, str | None], None] = {}
        self.frozen: set[str] = set()
        self.pings = 0
        self.actions: list[dict[str, Any]] = []
        self.sent: dict[str, int] = {}

    def __repr__(self) -> str:
        return (
            f"<FakeRtdsConnection #{self.id} subscriptions={len(self.subscriptions)} "
            f"frozen={sorted(self.frozen)} pings={self.pings}>"
        )

    @property
    def topics(self) -> set[str]:
        """The subscribed topics."""
        return {topic for topic, _, _ in self.subscriptions}


class FakeRtds(FakeSocket[FakeRtdsConnection]):
    """The RTDS socket of the fake server: subscriptions, PONGs, a paced flow and the freeze."""

    def __init__(
        self, *, interval: float | None = 0.02, wall: Callable[[], float] = time.time
    ) -> None:
        super().__init__("rtds")
        self.interval = interval
        self.wall = wall

    def __repr__(self) -> str:
        return f"<FakeRtds interval={self.interval} hub={self.hub!r}>"

    def freeze(self, topic: str) -> None:
        """Stop ``topic`` on every open connection (PINGs still answered, others flow)."""
        for connection in self.hub.open:
            connection.frozen.add(topic)

    async def publish(self, topic: str, kind: str, payload: Any) -> int:
        """Send one message to every open connection subscribed to it; returns how many."""
        sent = 0
        for connection in self.hub.open:
            if self._wants(connection, topic, kind):
                await self._send(connection, topic, kind, payload)
                sent += 1
        return sent

    @staticmethod
    def _wants(connection: FakeRtdsConnection, topic: str, kind: str) -> bool:
        if topic in connection.frozen:
            return False
        return any(t == topic and k in ("*", kind) for t, k, _ in connection.subscriptions)

    async def _send(
        self, connection: FakeRtdsConnection, topic: str, kind: str, payload: Any
    ) -> None:
        message = {
            "topic": topic,
            "type": kind,
            "timestamp": int(self.wall() * 1000),
            "payload": payload,
            "connection_id": f"fake-{connection.id}",
        }
        if not await send_text(connection.ws, json.dumps(message, separators=(",", ":"))):
            return
        connection.sent[topic] = connection.sent.get(topic, 0) + 1

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The aiohttp handler of the RTDS path."""
        return await self.hub.serve(request, FakeRtdsConnection, self._read, self._flow)

    async def _read(self, connection: FakeRtdsConnection) -> None:
        async for message in connection.ws:
            if message.type != WSMsgType.TEXT:
                continue
            text = message.data.strip()
            if text.upper() == "PING":
                connection.pings += 1
                await connection.ws.send_str("PONG" if text == "PING" else "pong")
                continue
            await self._action(connection, text)

    async def _action(self, connection: FakeRtdsConnection, text: str) -> None:
        try:
            body = json.loads(text)
            action = body["action"]
            subscriptions = body["subscriptions"]
            entries = [(s["topic"], s.get("type", "*"), s.get("filters")) for s in subscriptions]
        except (ValueError, KeyError, TypeError):
            await connection.ws.send_str(json.dumps({"message": "invalid request body"}))
            return
        if action not in ("subscribe", "unsubscribe") or any(
            f is not None and not isinstance(f, str) for _, _, f in entries
        ):
            await connection.ws.send_str(json.dumps({"message": "invalid request body"}))
            return
        connection.actions.append(body)
        for entry in entries:
            if action == "subscribe":
                connection.subscriptions[entry] = None
                if entry[0] in PRICE_TOPICS:
                    await self._send(connection, entry[0], "subscribe", self._history())
            else:
                connection.subscriptions.pop(entry, None)

    def _history(self) -> dict[str, Any]:
        stamp = int(self.wall()) * 1000
        points = [{"timestamp": stamp - 1000 * i, "value": 100.0 + i} for i in (2, 1, 0)]
        return {"symbol": "btcusdt", "data": points}

    def _payload(self, topic: str, n: int) -> dict[str, Any]:
        stamp = int(self.wall() * 1000)
        if topic in PRICE_TOPICS:
            value = 100.0 + n % 7
            return {
                "symbol": "btcusdt",
                "timestamp": stamp,
                "value": value,
                "full_accuracy_value": f"{value:.8f}",
            }
        if topic == "comments":
            return {"id": str(n), "body": f"comment {n}", "parentEntityID": 1}
        return {"n": n}

    async def _flow(self, connection: FakeRtdsConnection) -> None:
        if self.interval is None:
            return
        n = 0
        while True:
            await asyncio.sleep(self.interval)
            n += 1
            for topic, kind, _ in list(connection.subscriptions):
                if topic in connection.frozen:
                    continue
                await self._send(
                    connection, topic, "update" if kind == "*" else kind, self._payload(topic, n)
                )
