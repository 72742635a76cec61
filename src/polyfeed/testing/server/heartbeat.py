"""The fake order-safety heartbeat endpoint (``POST /v1/heartbeats``), a dead-man switch.

As docs/protocol.md §7 describes: L2-authenticated (401 otherwise); the first beat of a chain
sends ``""``; each accepted beat is answered ``{"heartbeat_id": <next>}``; a wrong id is answered
400 ``{"error": "Invalid Heartbeat ID", "heartbeat_id": <expected>}``. When no beat has been
accepted for ``window`` s after the first, the switch fires: ``cancellations`` records when (the
real server cancels every open order of the key).

Faults: :meth:`FakeHeartbeats.reject_next_id` makes the server expect an id the client cannot
know (its next beat is refused, naming the right id); :meth:`FakeHeartbeats.stall` makes every
beat hang until :meth:`FakeHeartbeats.resume`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from polyfeed.testing.server.auth import check_l2_headers

if TYPE_CHECKING:
    from polyfeed.testing.server.app import FakePolymarket

__all__ = ["Beat", "FakeHeartbeats"]


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat request: the id sent, the HTTP status answered, the id handed out."""

    at: float
    sent_id: str
    status: int
    next_id: str | None


class FakeHeartbeats:
    """The heartbeat endpoint of one :class:`FakePolymarket` (``now``: its monotonic clock)."""

    def __init__(
        self,
        server: FakePolymarket,
        *,
        window: float = 10.0,
        now: Callable[[], float] | None = None,
    ) -> None:
        self._server = server
        self.window = window
        self._now = now
        self.expected: str | None = None
        self.beats: list[Beat] = []
        self.cancellations: list[float] = []
        self._last_accepted: float | None = None
        self._ids = itertools.count(1)
        self._running = asyncio.Event()
        self._running.set()
        self._watch: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return (
            f"<FakeHeartbeats beats={len(self.beats)} cancellations={len(self.cancellations)} "
            f"stalled={not self._running.is_set()}>"
        )

    def routes(self) -> list[web.RouteDef]:
        """The endpoint's route."""
        return [web.post("/v1/heartbeats", self._handle)]

    def now(self) -> float:
        """The endpoint's clock."""
        return self._now() if self._now is not None else asyncio.get_running_loop().time()

    @property
    def accepted_chain(self) -> list[tuple[str, str]]:
        """(sent id, next id) of every accepted beat, in order."""
        return [(b.sent_id, b.next_id) for b in self.beats if b.status == 200 and b.next_id]

    def reject_next_id(self) -> None:
        """Expect an id the client does not hold: its next beat gets 400 naming this one."""
        self.expected = f"hb-rotated-{next(self._ids)}"

    def stall(self) -> None:
        """Every beat hangs (no answer) until :meth:`resume`."""
        self._running.clear()

    def resume(self) -> None:
        """Answer beats again."""
        self._running.set()

    def _arm(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        loop = asyncio.get_running_loop()
        self._watch = loop.call_later(self.window, self._fire)

    def _fire(self) -> None:
        self._watch = None
        self.cancellations.append(self.now())

    def close(self) -> None:
        """Stop the switch's timer (server shutdown)."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self._running.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        reason = check_l2_headers(
            request.headers, self._server.credentials, "POST", request.rel_url.path, body
        )
        if reason:
            return web.json_response({"error": "Unauthorized/Invalid api key"}, status=401)
        await self._running.wait()
        try:
            sent = request_id(body)
        except ValueError:
            return web.json_response({"error": "invalid body"}, status=400)
        expected = self.expected
        if expected is not None and sent != expected:
            self.beats.append(Beat(self.now(), sent, 400, None))
            return web.json_response(
                {"error": "Invalid Heartbeat ID", "heartbeat_id": expected}, status=400
            )
        next_id = f"hb-{next(self._ids)}"
        self.expected = next_id
        self._last_accepted = self.now()
        self.beats.append(Beat(self._last_accepted, sent, 200, next_id))
        self._arm()
        return web.json_response({"heartbeat_id": next_id})


def request_id(body: str) -> str:
    """The ``heartbeat_id`` of a request body (ValueError when there is none)."""
    value: Any = json.loads(body)
    if not isinstance(value, dict) or not isinstance(value.get("heartbeat_id"), str):
        raise ValueError("no heartbeat_id")
    return str(value["heartbeat_id"])
