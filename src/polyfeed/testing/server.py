"""FakePolymarket: a real Polymarket-speaking server on 127.0.0.1 for tests, demos and benchmarks.

One aiohttp server serves, on one port:

- ``/ws/market`` and ``/ws/user`` — the CLOB WebSocket channels (protocol.md §1-4, §8);
- ``GET /book``, ``POST /books``, ``GET /markets``, ``GET /markets/{condition_id}`` — CLOB REST;
- ``GET /gamma/markets`` — Gamma-style discovery (``gamma_url`` = ``rest_url + "/gamma"``).

Behaviour of the WebSocket channels, as the live server does it:

- The first frame must be the initial subscription (``{"type": "market", "assets_ids": [...]}`` /
  ``{"type": "user", "auth": {...}, "markets": [...]}``) within ``subscribe_grace`` seconds, or
  the socket is closed 1008. A text ``PING`` (or anything invalid) before it: close
  ``1008 "invalid subscription payload"``.
- Text ``PING`` -> text ``PONG``. A socket that sends no text ``PING`` for ``ping_grace`` seconds
  (counted from the open, then from the last PING) is closed ``1008 "no ping received"`` (or its
  TCP dropped, ``ping_timeout_action="drop"``). WebSocket protocol pings are answered (autoping)
  but do not count.
- A second ``type`` frame -> text ``INVALID OPERATION``; so does any other unusable frame after
  the subscription. ``{"operation": "subscribe"|"unsubscribe", "assets_ids"|"markets": [...]}``
  is applied; subscribing an asset already subscribed is ignored (no snapshot), a new one gets a
  ``book``. Unknown token ids are ignored silently (kept in ``unknown_assets``).
- Initial snapshots: one ``book`` per known asset, all in one JSON-array frame
  (``snapshot_frames="array"``, the default) or one frame each (``"single"``).
- ``custom_feature_enabled`` adds ``best_bid_ask``; with no assets, ``NO NEW ASSETS`` every
  ``no_new_assets_interval`` s.
- ``price_change`` messages carry both tokens of a market; a socket subscribed to either token
  gets the whole message (clients filter entries by ``asset_id``).
- ``/ws/user``: wrong or missing credentials -> the TCP connection is dropped without a close
  frame. ``markets`` absent or empty means every market. Order/trade events are simulated
  (``user_rate`` per second, or :meth:`FakePolymarket.step_user`).

Ground truth: :attr:`FakePolymarket.log` holds every message the server generated (sequence
number, assets, timestamp, raw JSON) and, per connection, which were handed to the transport and
which a fault withheld. Faults: see :mod:`polyfeed.testing.faults`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, assert_never

import msgspec
from aiohttp import WSMsgType, web

from polyfeed.config import Endpoints
from polyfeed.errors import ConfigError
from polyfeed.testing.faults import (
    CloseWith,
    DropMessage,
    DropTcp,
    Duplicate,
    Fault,
    FaultPlan,
    ForgetSubscriptions,
    Hang,
    HugeFrame,
    IgnoreSubscription,
    Malformed,
    Path,
    RefuseHandshake,
    SilenceAsset,
    SlowDrip,
    StallData,
    StopPong,
    UnknownEvent,
)
from polyfeed.testing.market_sim import BookView, MarketSimulator, SimMarket, SimMessage

__all__ = [
    "ApiCredentials",
    "BurstResult",
    "CloseInfo",
    "Delivery",
    "FakeConnection",
    "FakePolymarket",
    "GroundTruthLog",
    "LoggedEvent",
    "PreparedBurst",
]

logger = logging.getLogger("polyfeed.testing")

Origin = Literal["market", "user", "snapshot", "fault", "raw"]
Outcome = Literal["partial", "withheld"]
ConnectionState = Literal[
    "handshake", "refused", "hanging", "awaiting_subscription", "subscribed", "closed"
]

_PONG = b"PONG"
_INVALID_OPERATION = b"INVALID OPERATION"
_NO_NEW_ASSETS = b"NO NEW ASSETS"
_INVALID_SUBSCRIPTION = "invalid subscription payload"

# --------------------------------------------------------------------------- ground truth


class LoggedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One message the server generated, numbered in generation order.

    ``origin``: ``market`` (order flow, broadcast), ``user`` (user channel), ``snapshot`` (a
    ``book`` made for one connection), ``fault`` (a frame a fault sent), ``raw`` (``send_raw``).
    ``target`` is the connection id for per-connection messages.
    """

    seq: int
    origin: Origin
    event_type: str
    market: str
    asset_ids: tuple[str, ...]
    timestamp: str
    raw: bytes
    target: int | None = None

    def json(self) -> Any:
        """The decoded JSON (raises for a malformed fault frame)."""
        return msgspec.json.decode(self.raw)


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A message a fault kept (wholly or partly) from a connection.

    ``outcome`` ``withheld``: not sent at all; ``partial``: sent without the entries of
    ``asset_ids``. ``reason``: ``stall``, ``ignore``, ``silence``, ``drop`` or ``forget``.
    """

    seq: int
    connection_id: int
    outcome: Outcome
    reason: str
    asset_ids: tuple[str, ...]


class GroundTruthLog:
    """Every generated message and, per connection, what was sent and what was withheld.

    "Sent" means handed to the connection's transport (in send order; a duplicated message
    appears twice). ``max_events`` bounds memory for long runs (oldest dropped).
    """

    def __init__(self, max_events: int | None = None) -> None:
        self._events: deque[LoggedEvent] = deque(maxlen=max_events)
        self._next_seq = 1
        self._sent: dict[int, deque[int]] = {}
        self._withheld: dict[int, deque[Delivery]] = {}
        self._max = max_events

    def __len__(self) -> int:
        return len(self._events)

    @property
    def events(self) -> list[LoggedEvent]:
        """All retained events, in generation order."""
        return list(self._events)

    def event(self, seq: int) -> LoggedEvent:
        """The event numbered ``seq`` (KeyError when unknown or trimmed)."""
        if self._events:
            index = seq - self._events[0].seq
            if 0 <= index < len(self._events):
                return self._events[index]
        raise KeyError(seq)

    def events_for(self, asset_id: str, *, origin: Origin | None = None) -> list[LoggedEvent]:
        """Events about ``asset_id`` (or about condition id ``asset_id``), optionally by origin."""
        return [
            e
            for e in self._events
            if (asset_id in e.asset_ids or e.market == asset_id)
            and (origin is None or e.origin == origin)
        ]

    def sent_seqs(self, connection_id: int) -> list[int]:
        """Sequence numbers handed to the connection's transport, in send order."""
        return list(self._sent.get(connection_id, ()))

    def sent_to(self, connection_id: int) -> list[LoggedEvent]:
        """Events handed to the connection's transport, in send order (trimmed ones skipped)."""
        out = []
        for seq in self._sent.get(connection_id, ()):
            with contextlib.suppress(KeyError):
                out.append(self.event(seq))
        return out

    def withheld_from(self, connection_id: int) -> list[Delivery]:
        """What faults kept from the connection (withheld or partial), in order."""
        return list(self._withheld.get(connection_id, ()))

    def missed_by(self, connection_id: int, asset_id: str | None = None) -> list[LoggedEvent]:
        """Events whose data (for ``asset_id``, when given) a fault kept from the connection."""
        out = []
        for delivery in self._withheld.get(connection_id, ()):
            if asset_id is not None and asset_id not in delivery.asset_ids:
                continue
            with contextlib.suppress(KeyError):
                out.append(self.event(delivery.seq))
        return out

    def _append(
        self,
        origin: Origin,
        event_type: str,
        market: str,
        asset_ids: tuple[str, ...],
        timestamp: str,
        raw: bytes,
        target: int | None = None,
    ) -> LoggedEvent:
        event = LoggedEvent(
            seq=self._next_seq,
            origin=origin,
            event_type=event_type,
            market=market,
            asset_ids=asset_ids,
            timestamp=timestamp,
            raw=raw,
            target=target,
        )
        self._next_seq += 1
        self._events.append(event)
        return event

    def _record_sent(self, connection_id: int, seqs: tuple[int, ...]) -> None:
        sent = self._sent.get(connection_id)
        if sent is None:
            sent = self._sent[connection_id] = deque(maxlen=self._max)
        sent.extend(seqs)

    def _record_withheld(self, delivery: Delivery) -> None:
        withheld = self._withheld.get(delivery.connection_id)
        if withheld is None:
            withheld = self._withheld[delivery.connection_id] = deque(maxlen=self._max)
        withheld.append(delivery)

    def __repr__(self) -> str:
        withheld = sum(len(d) for d in self._withheld.values())
        return (
            f"GroundTruthLog(events={len(self._events)}, next_seq={self._next_seq}, "
            f"connections={len(self._sent)}, withheld={withheld})"
        )


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True, slots=True)
class ApiCredentials:
    """CLOB L2 API credentials the fake accepts on ``/ws/user``; the repr hides them."""

    api_key: str
    secret: str
    passphrase: str

    def auth(self) -> dict[str, str]:
        """The ``auth`` object of a user subscription."""
        return {"apiKey": self.api_key, "secret": self.secret, "passphrase": self.passphrase}

    def __repr__(self) -> str:
        return f"ApiCredentials(api_key='{self.api_key[:4]}…', secret=***, passphrase=***)"


# --------------------------------------------------------------------------- connections


class CloseInfo(msgspec.Struct, frozen=True, kw_only=True):
    """How a connection ended: who ended it, the close code (None: no close frame), reason."""

    initiator: Literal["client", "server"]
    code: int | None
    reason: str = ""


class _Frame:
    __slots__ = ("data", "seqs")

    def __init__(self, data: bytes, seqs: tuple[int, ...]) -> None:
        self.data = data
        self.seqs = seqs


class _Control:
    __slots__ = ("code", "future", "kind", "reason")

    def __init__(
        self,
        kind: Literal["close", "abort", "flush"],
        code: int = 0,
        reason: str = "",
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.kind = kind
        self.code = code
        self.reason = reason
        self.future = future


class _Ending(msgspec.Struct, frozen=True):
    kind: Literal["close", "abort", "ended"]
    code: int = 0
    reason: str = ""


class _Armed:
    """A triggered fault's runtime state: ready by time, waiting for its message count."""

    __slots__ = ("base", "fault", "fired", "time_ready")

    def __init__(self, fault: Fault, time_ready: bool, base: int) -> None:
        self.fault = fault
        self.time_ready = time_ready
        self.fired = False
        # Messages already sent when armed: after_messages counts from here.
        self.base = base

    def due(self, data_sent: int) -> bool:
        after_messages = getattr(self.fault, "after_messages", None)
        return self.time_ready and (
            after_messages is None or data_sent - self.base >= after_messages
        )


class FakeConnection:
    """Server-side view of one connection attempt; read its attributes in tests.

    Public attributes: ``id`` (unique per server), ``path`` (``market``/``user``), ``attempt``
    (0-based per path), ``state``, ``faults`` (applied), ``subscribed`` (token ids, or condition
    ids on ``/ws/user``), ``all_markets`` (user socket without a market filter),
    ``unknown_assets``, ``custom_feature_enabled``, ``frames_received`` (client text frames),
    ``frames_sent``, ``data_sent`` (events queued), ``pings``, ``pongs``, ``opened_at``/
    ``closed_at`` (loop time), ``close`` (:class:`CloseInfo`), ``refused_status``.
    """

    def __init__(
        self,
        server: FakePolymarket,
        connection_id: int,
        path: Path,
        attempt: int,
        faults: Sequence[Fault],
    ) -> None:
        self._server = server
        self.id = connection_id
        self.path: Path = path
        self.attempt = attempt
        self.faults: list[Fault] = list(faults)
        self.state: ConnectionState = "handshake"
        self.subscribed: set[str] = set()
        self.all_markets = False
        self.unknown_assets: set[str] = set()
        self.custom_feature_enabled = False
        self.frames_received: list[str] = []
        self.frames_sent = 0
        self.data_sent = 0
        self.pings = 0
        self.pongs = 0
        self.opened_at: float | None = None
        self.closed_at: float | None = None
        self.close: CloseInfo | None = None
        self.refused_status: int | None = None

        self._ws: web.WebSocketResponse | None = None
        self._transport: asyncio.Transport | None = None
        self._outbox: deque[_Frame | _Control] = deque()
        self._wakeup = asyncio.Event()
        self._ending: asyncio.Future[_Ending] | None = None
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = True
        self._last_ping = 0.0
        self._no_new_assets_running = False
        # Fault state.
        self._faulted = False
        self._hung = any(isinstance(f, Hang) for f in faults)
        self._pong_enabled = True
        self._stall_until = 0.0
        self._ignore_all = False
        self._ignored: set[str] = set()
        self._silenced: set[str] = set()
        self._forgotten: set[str] = set()
        self._drops: list[list[Any]] = []
        self._duplicates: list[list[Any]] = []
        self._slow_delay = 0.0
        self._message_triggers: list[_Armed] = []
        self._pending_timers: list[tuple[_Armed, float]] = []

    # ------------------------------------------------------------------ public helpers

    @property
    def is_open(self) -> bool:
        """Whether the WebSocket is open (subscribed or not)."""
        return self.state in ("awaiting_subscription", "subscribed", "hanging")

    async def flush(self) -> None:
        """Wait until every frame queued so far reached the transport (or the socket ended)."""
        if self._ended.done() or self._ws is None or self._hung:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put(_Control("flush", future=future))
        await asyncio.wait((future, self._ended), return_when=asyncio.FIRST_COMPLETED)

    async def wait_closed(self) -> None:
        """Wait until the connection has ended."""
        await asyncio.shield(self._ended)

    def __repr__(self) -> str:
        faults = ",".join(type(f).__name__ for f in self.faults)
        closed = f", close={self.close.initiator}:{self.close.code}" if self.close else ""
        return (
            f"FakeConnection(id={self.id}, path={self.path}, attempt={self.attempt}, "
            f"state={self.state}, subscribed={len(self.subscribed)}, sent={self.frames_sent}, "
            f"received={len(self.frames_received)}, pings={self.pings}, faults=[{faults}]{closed})"
        )

    # ------------------------------------------------------------------ lifecycle

    async def _run(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        loop = asyncio.get_running_loop()
        self._ws = ws
        self._transport = transport
        self._ending = loop.create_future()
        self.opened_at = self._last_ping = loop.time()
        self.state = "hanging" if self._hung else "awaiting_subscription"
        server = self._server
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for fault in self.faults:
                    self._arm(fault)
                self._spawn(self._read_loop())
                if not self._hung:
                    self._spawn(self._writer())
                    if server.subscribe_grace is not None:
                        self._spawn(self._subscribe_watch(server.subscribe_grace))
                    if server.ping_grace is not None:
                        self._spawn(self._ping_watch(server.ping_grace))
                ending = await self._ending
                self._tg = None
                for task in list(self._tasks):
                    task.cancel()
            await self._end(ending)
        finally:
            self._accepting = False
            self.state = "closed"
            self.closed_at = loop.time()
            if self.close is None:
                self.close = CloseInfo(initiator="server", code=None, reason="server stopped")
            if not self._ended.done():
                self._ended.set_result(None)

    async def _end(self, ending: _Ending) -> None:
        match ending.kind:
            case "close":
                assert self._ws is not None
                self.close = CloseInfo(initiator="server", code=ending.code, reason=ending.reason)
                with contextlib.suppress(ConnectionError):
                    await self._ws.close(code=ending.code, message=ending.reason.encode())
            case "abort":
                self._abort_transport(ending.reason)
            case "ended":
                pass
            case _:
                assert_never(ending.kind)

    def _spawn(self, coro: Any) -> None:
        if self._tg is None:
            coro.close()
            return
        task = self._tg.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(
        self, kind: Literal["close", "abort", "ended"], code: int = 0, reason: str = ""
    ) -> None:
        self._accepting = False
        if self._ending is not None and not self._ending.done():
            self._ending.set_result(_Ending(kind, code, reason))

    def _abort_transport(self, reason: str) -> None:
        self._accepting = False
        if self.close is None:
            self.close = CloseInfo(initiator="server", code=None, reason=reason)
        if self._transport is not None:
            self._transport.abort()
        self._finish("ended")

    async def _read_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        while True:
            message = await ws.receive()
            kind = message.type
            if kind is WSMsgType.TEXT:
                self.frames_received.append(message.data)
                if not self._hung:
                    self._on_text(message.data)
            elif kind is WSMsgType.BINARY:
                self.frames_received.append(message.data.decode("utf-8", "replace"))
                if not self._hung:
                    self._on_invalid()
            elif kind is WSMsgType.CLOSE:
                if self.close is None:
                    self.close = CloseInfo(
                        initiator="client", code=message.data, reason=message.extra or ""
                    )
                if self._hung:
                    # A hung server does not answer the close; it waits for the client to drop.
                    await self._wait_transport_closed()
                self._finish("ended")
                return
            elif kind in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                if self.close is None:
                    self.close = CloseInfo(initiator="client", code=None, reason="connection lost")
                self._finish("ended")
                return
            # PING/PONG frames only reach here with autoping off (Hang): they go unanswered.

    async def _wait_transport_closed(self) -> None:
        # aiohttp offers no awaitable for "the peer dropped the TCP connection": poll.
        while self._transport is not None and not self._transport.is_closing():  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def _writer(self) -> None:
        ws = self._ws
        assert ws is not None
        outbox = self._outbox
        log = self._server.log
        text = WSMsgType.TEXT
        while True:
            if not outbox:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            item = outbox.popleft()
            if self._slow_delay:
                await asyncio.sleep(self._slow_delay)
            if type(item) is _Frame:
                try:
                    await ws.send_frame(item.data, text)
                except ConnectionError:
                    self._finish("ended")
                    return
                self.frames_sent += 1
                if item.seqs:
                    log._record_sent(self.id, item.seqs)
                continue
            assert isinstance(item, _Control)
            match item.kind:
                case "flush":
                    if item.future is not None and not item.future.done():
                        item.future.set_result(None)
                case "close":
                    self._finish("close", item.code, item.reason)
                    return
                case "abort":
                    self._abort_transport(item.reason)
                    return
                case _:
                    assert_never(item.kind)

    def _put(self, item: _Frame | _Control) -> None:
        self._outbox.append(item)
        self._wakeup.set()

    def _put_text(self, data: bytes) -> None:
        if not self._hung and self._accepting:
            self._put(_Frame(data, ()))

    def _put_text_raw(self, data: bytes, seq: int) -> None:
        if not self._hung and self._accepting:
            self._put(_Frame(data, (seq,)))

    async def _subscribe_watch(self, grace: float) -> None:
        await asyncio.sleep(grace)
        if self.state == "awaiting_subscription" and not self._hung:
            self._finish("close", 1008, "no subscription received")

    async def _ping_watch(self, grace: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            delay = self._last_ping + grace - loop.time()
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        if self._hung:
            return  # a hung server enforces nothing
        if self._server.ping_timeout_action == "drop":
            self._abort_transport("no ping received")
        else:
            self._finish("close", 1008, "no ping received")

    async def _no_new_assets(self, interval: float) -> None:
        while self.custom_feature_enabled and not self.subscribed:
            await asyncio.sleep(interval)
            if self.custom_feature_enabled and not self.subscribed:
                self._put_text(_NO_NEW_ASSETS)
        self._no_new_assets_running = False

    # ------------------------------------------------------------------ inbound frames

    def _on_invalid(self) -> None:
        if self.state == "awaiting_subscription":
            self._finish("close", 1008, _INVALID_SUBSCRIPTION)
        else:
            self._put_text(_INVALID_OPERATION)

    def _on_text(self, text: str) -> None:
        if text == "PING":
            if self.state == "awaiting_subscription":
                # Live server: PING before the subscription closes the socket (nautilus #4864).
                self._finish("close", 1008, _INVALID_SUBSCRIPTION)
                return
            self.pings += 1
            self._last_ping = asyncio.get_running_loop().time()
            if self._pong_enabled:
                self.pongs += 1
                self._put_text(_PONG)
            return
        try:
            frame = msgspec.json.decode(text)
        except msgspec.DecodeError:
            self._on_invalid()
            return
        if not isinstance(frame, dict):
            self._on_invalid()
            return
        if self.state == "awaiting_subscription":
            self._on_initial(frame)
        elif "type" in frame:
            self._put_text(_INVALID_OPERATION)
        else:
            self._on_operation(frame)

    def _keys(self, frame: Mapping[str, Any]) -> list[str] | None:
        keys = frame.get("assets_ids" if self.path == "market" else "markets")
        if keys is None and self.path == "user":
            return []
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            return None
        return keys

    def _on_initial(self, frame: Mapping[str, Any]) -> None:
        kind = frame.get("type")
        keys = self._keys(frame)
        if not isinstance(kind, str) or kind.lower() != self.path or keys is None:
            self._finish("close", 1008, _INVALID_SUBSCRIPTION)
            return
        if self.path == "user":
            auth = frame.get("auth")
            if not isinstance(auth, dict) or auth != self._server.credentials.auth():
                # Live server: bad credentials drop the socket without a close frame (F18).
                self._abort_transport("authentication failed")
                return
            self.state = "subscribed"
            if keys:
                self._add(keys)
            else:
                self.all_markets = True
            return
        self.state = "subscribed"
        self.custom_feature_enabled = bool(frame.get("custom_feature_enabled", False))
        new = self._add(keys)
        if frame.get("initial_dump", True) is not False:
            self._send_snapshots(new)
        self._maybe_no_new_assets()

    def _on_operation(self, frame: Mapping[str, Any]) -> None:
        operation = frame.get("operation")
        keys = self._keys(frame)
        if operation not in ("subscribe", "unsubscribe") or keys is None:
            self._put_text(_INVALID_OPERATION)
            return
        if self.path == "market" and "custom_feature_enabled" in frame:
            # Applied before the duplicate check, as the live server does (py-sdk notes).
            self.custom_feature_enabled = bool(frame["custom_feature_enabled"])
        if operation == "subscribe":
            new = self._add(keys)
            if self.path == "market":
                self._send_snapshots(new)
                self._maybe_no_new_assets()
        else:
            if self.all_markets:
                self.all_markets = False
                self.subscribed = {m.condition_id for m in self._server.markets}
            for key in keys:
                self.subscribed.discard(key)
                self._forgotten.discard(key)
                self.unknown_assets.discard(key)

    def _add(self, keys: Iterable[str]) -> list[str]:
        sim = self._server.sim
        new = []
        for key in keys:
            known = sim.knows(key) if self.path == "market" else sim.market(key) is not None
            if not known:
                self.unknown_assets.add(key)
            elif key not in self.subscribed:
                self.subscribed.add(key)
                self._forgotten.discard(key)
                new.append(key)
        return new

    def _maybe_no_new_assets(self) -> None:
        interval = self._server.no_new_assets_interval
        if (
            self.custom_feature_enabled
            and not self.subscribed
            and interval is not None
            and not self._no_new_assets_running
        ):
            self._no_new_assets_running = True
            self._spawn(self._no_new_assets(interval))

    def _send_snapshots(self, asset_ids: Sequence[str]) -> None:
        if not asset_ids:
            return
        events = [self._server._snapshot(asset_id, self.id) for asset_id in asset_ids]
        if self._server.snapshot_frames == "single":
            for event in events:
                self._offer(event)
        else:
            self._offer_batch(events)

    # ------------------------------------------------------------------ outbound data

    def _offer(self, event: LoggedEvent) -> None:
        """Hand one generated message to this connection, through its faults."""
        if not self._accepting or self.state != "subscribed":
            return
        if event.event_type == "best_bid_ask" and not self.custom_feature_enabled:
            return
        if not self._faulted:
            if self.path == "market":
                subscribed = self.subscribed
                for key in event.asset_ids:
                    if key in subscribed:
                        break
                else:
                    return
            elif not self.all_markets and event.market not in self.subscribed:
                return
            self._outbox.append(_Frame(event.raw, (event.seq,)))
            self._wakeup.set()
            self.data_sent += 1
            return
        admitted = self._admit(event)
        if admitted is None:
            return
        data, copies = admitted
        for _ in range(copies):
            self._put(_Frame(data, (event.seq,)))
        self.data_sent += 1
        if self._message_triggers:
            # A count reached fires now (e.g. a close right after the n-th message).
            self._check_message_triggers()

    def _offer_batch(self, events: Sequence[LoggedEvent]) -> None:
        """Hand several messages as one JSON-array frame (initial snapshots)."""
        if not self._accepting or self.state != "subscribed":
            return
        parts: list[bytes] = []
        seqs: list[int] = []
        for event in events:
            admitted = self._admit(event) if self._faulted else (event.raw, 1)
            if admitted is None:
                continue
            parts.extend([admitted[0]] * admitted[1])
            seqs.extend([event.seq] * admitted[1])
            self.data_sent += 1
            if not self._accepting:
                break
        if parts:
            self._put(_Frame(b"[" + b",".join(parts) + b"]", tuple(seqs)))
        if self._message_triggers:
            self._check_message_triggers()

    def _keys_of(self, event: LoggedEvent) -> tuple[str, ...]:
        return event.asset_ids if self.path == "market" else (event.market,)

    def _withhold(
        self, event: LoggedEvent, reason: str, keys: tuple[str, ...], outcome: Outcome = "withheld"
    ) -> None:
        self._server.log._record_withheld(
            Delivery(
                seq=event.seq, connection_id=self.id, outcome=outcome, reason=reason, asset_ids=keys
            )
        )

    def _admit(self, event: LoggedEvent) -> tuple[bytes, int] | None:
        """(data to send, copies) for a faulted connection, or None when nothing goes out."""
        if self._message_triggers:
            self._check_message_triggers()
            if not self._accepting:
                return None
        keys = self._keys_of(event)
        mine = tuple(k for k in keys if self.all_markets or k in self.subscribed)
        if not mine:
            lost = tuple(k for k in keys if k in self._forgotten)
            if lost:
                self._withhold(event, "forget", lost)
            return None
        if self._stall_until and asyncio.get_running_loop().time() < self._stall_until:
            self._withhold(event, "stall", mine)
            return None
        blocked: dict[str, str] = {}
        for key in mine:
            if key in self._silenced:
                blocked[key] = "silence"
            elif self._ignore_all or key in self._ignored:
                blocked[key] = "ignore"
        if len(blocked) == len(mine):
            self._withhold(event, next(iter(blocked.values())), mine)
            return None
        if event.event_type == "price_change":
            for rule in self._drops:
                if rule[0] is None or rule[0] in keys:
                    rule[1] -= 1
                    if rule[1] <= 0:
                        self._drops.remove(rule)
                    self._withhold(event, "drop", mine)
                    return None
        data = event.raw
        if blocked:
            payload = msgspec.json.decode(event.raw)
            payload["price_changes"] = [
                entry
                for entry in payload.get("price_changes", [])
                if entry.get("asset_id") not in blocked
            ]
            data = msgspec.json.encode(payload)
            self._withhold(event, next(iter(blocked.values())), tuple(blocked), "partial")
        copies = 1
        for rule in self._duplicates:
            if rule[0] is None or rule[0] in keys:
                rule[1] -= 1
                if rule[1] <= 0:
                    self._duplicates.remove(rule)
                copies = 2
                break
        return data, copies

    # ------------------------------------------------------------------ faults

    def _refresh_faulted(self) -> None:
        self._faulted = bool(
            self._message_triggers
            or self._stall_until
            or self._ignore_all
            or self._ignored
            or self._silenced
            or self._forgotten
            or self._drops
            or self._duplicates
        )

    def _arm(self, fault: Fault) -> None:
        """Apply a fault now: static ones at once, timed ones via a timer or message count."""
        if fault not in self.faults:
            self.faults.append(fault)
        match fault:
            case (
                StallData()
                | StopPong()
                | CloseWith()
                | DropTcp()
                | ForgetSubscriptions()
                | Malformed()
                | UnknownEvent()
                | HugeFrame()
            ):
                armed = _Armed(fault, time_ready=fault.after <= 0, base=self.data_sent)
                if fault.after_messages is not None:
                    self._message_triggers.append(armed)
                if not armed.time_ready:
                    self._spawn(self._fault_timer(armed, fault.after))
                elif armed.due(self.data_sent):
                    self._fire(armed)
            case Hang():
                self._hung = True
                self._accepting = False
                self._outbox.clear()
            case RefuseHandshake():
                pass  # handled at the handshake
            case IgnoreSubscription(asset_ids=asset_ids):
                if asset_ids:
                    self._ignored.update(asset_ids)
                else:
                    self._ignore_all = True
            case SlowDrip(delay=delay):
                self._slow_delay = delay
            case Duplicate(count=count, asset_id=asset_id):
                self._duplicates.append([asset_id, count])
            case SilenceAsset(asset_id=asset_id):
                self._silenced.add(asset_id)
            case DropMessage(asset_id=asset_id, count=count):
                self._drops.append([asset_id, count])
            case _:
                assert_never(fault)
        self._refresh_faulted()

    async def _fault_timer(self, armed: _Armed, after: float) -> None:
        await asyncio.sleep(after)
        armed.time_ready = True
        if armed.due(self.data_sent):
            self._fire(armed)

    def _check_message_triggers(self) -> None:
        for armed in list(self._message_triggers):
            if armed.due(self.data_sent):
                self._fire(armed)

    def _fire(self, armed: _Armed) -> None:
        if armed.fired:
            return
        armed.fired = True
        if armed in self._message_triggers:
            self._message_triggers.remove(armed)
        fault = armed.fault
        loop = asyncio.get_running_loop()
        server = self._server
        match fault:
            case StallData(duration=duration):
                self._stall_until = math.inf if duration is None else loop.time() + duration
            case StopPong():
                self._pong_enabled = False
            case CloseWith(code=code, reason=reason):
                self._put(_Control("close", code, reason))
                self._accepting = False
            case DropTcp(after_messages=after_messages):
                if after_messages is None:
                    self._abort_transport("DropTcp fault")
                else:
                    # After exactly that many messages: behind the frames already queued.
                    self._put(_Control("abort", reason="DropTcp fault"))
                    self._accepting = False
            case ForgetSubscriptions():
                self._forgotten |= self.subscribed
                if self.all_markets:
                    self._forgotten |= {m.condition_id for m in server.markets}
                self.subscribed = set()
                self.all_markets = False
            case Malformed(text=text):
                self._put_fault_frame("malformed", text.encode())
            case UnknownEvent(event_type=event_type):
                payload = {
                    "event_type": event_type,
                    "market": server.markets[0].condition_id,
                    "timestamp": str(int(server.wall() * 1000)),
                    "detail": "an event type this client version does not know",
                }
                self._put_fault_frame(event_type, msgspec.json.encode(payload))
            case HugeFrame(size_bytes=size_bytes):
                head = b'{"event_type":"huge_frame","padding":"'
                data = head + b"x" * max(0, size_bytes - len(head) - 2) + b'"}'
                self._put_fault_frame("huge_frame", data)
            case _:
                raise ConfigError(f"{type(fault).__name__} is not a timed fault")
        self._refresh_faulted()

    def _put_fault_frame(self, event_type: str, data: bytes) -> None:
        event = self._server.log._append("fault", event_type, "", (), "", data, self.id)
        if not self._hung and self._accepting:
            self._put(_Frame(data, (event.seq,)))


# --------------------------------------------------------------------------- server


@dataclass(frozen=True, slots=True)
class PreparedBurst:
    """Pre-generated, pre-encoded messages for :meth:`FakePolymarket.send_burst`."""

    events: tuple[LoggedEvent, ...]

    @property
    def bytes(self) -> int:
        """Total JSON payload bytes."""
        return sum(len(e.raw) for e in self.events)


@dataclass(frozen=True, slots=True)
class BurstResult:
    """What a burst sent: messages generated, frames handed to transports, time taken."""

    messages: int
    connections: int
    frames: int
    bytes: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        """Frames handed to transports per second over the burst."""
        return self.frames / self.seconds if self.seconds > 0 else math.inf


def _decimal_number(text: str) -> float:
    # Gamma and CLOB /markets send these as JSON numbers.
    return float(Decimal(text))


class FakePolymarket:
    """A Polymarket server on 127.0.0.1 (port 0 by default); use as ``async with``.

    ``rate``: ``price_change`` messages per second per market from a background flow (0: none;
    call :meth:`step`). ``user_rate``: user-channel events per second (all markets). Times
    (``ping_grace``, ``subscribe_grace``, ``no_new_assets_interval``) are seconds; None disables.
    ``wall`` is the clock for message timestamps (inject ``FakeClock.wall`` for deterministic
    timestamps). Simulator options (``tick_size``, ``trade_probability``, ...) are passed to
    :class:`polyfeed.testing.market_sim.MarketSimulator`.

    The background flow generates live (each step costs ~70 us, book hashes included), at most
    ``max_steps_per_tick`` per ``flow_interval`` so the loop stays responsive; a backlog beyond
    that is dropped. For throughput tests use :meth:`prepare_burst`/:meth:`send_burst`.
    """

    def __init__(
        self,
        markets: int = 4,
        rate: float = 0.0,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_grace: float | None = 15.0,
        subscribe_grace: float | None = 10.0,
        ping_timeout_action: Literal["close", "drop"] = "close",
        faults: FaultPlan | Mapping[int, Iterable[Fault]] | None = None,
        wall: Callable[[], float] = time.time,
        user_rate: float = 0.0,
        snapshot_frames: Literal["array", "single"] = "array",
        no_new_assets_interval: float | None = 5.0,
        max_log_events: int | None = None,
        flow_interval: float = 0.01,
        max_steps_per_tick: int = 500,
        close_timeout: float = 1.0,
        max_frame_bytes: int = 4 * 1024 * 1024,
        tick_size: str = "0.01",
        min_order_size: str = "5",
        neg_risk: bool = False,
        min_levels: int = 10,
        max_levels: int = 30,
        trade_probability: float = 0.1,
        tick_size_change_probability: float = 0.0,
        trade_print_after_change: bool = False,
    ) -> None:
        if rate < 0 or user_rate < 0:
            raise ConfigError("rate and user_rate must be >= 0")
        if ping_timeout_action not in ("close", "drop"):
            raise ConfigError(
                f"ping_timeout_action must be 'close' or 'drop', got {ping_timeout_action!r}"
            )
        self.host = host
        self.port = port
        self.rate = rate
        self.user_rate = user_rate
        self.ping_grace = ping_grace
        self.subscribe_grace = subscribe_grace
        self.ping_timeout_action = ping_timeout_action
        self.snapshot_frames = snapshot_frames
        self.no_new_assets_interval = no_new_assets_interval
        self.flow_interval = flow_interval
        self.max_steps_per_tick = max_steps_per_tick
        self.close_timeout = close_timeout
        self.max_frame_bytes = max_frame_bytes
        self.wall = wall
        if faults is None:
            faults = FaultPlan()
        elif not isinstance(faults, FaultPlan):
            faults = FaultPlan(faults)
        self.faults: FaultPlan = faults
        self.sim = MarketSimulator(
            markets,
            seed=seed,
            wall=wall,
            tick_size=tick_size,
            min_order_size=min_order_size,
            neg_risk=neg_risk,
            min_levels=min_levels,
            max_levels=max_levels,
            trade_probability=trade_probability,
            tick_size_change_probability=tick_size_change_probability,
            trade_print_after_change=trade_print_after_change,
        )
        rng = random.Random(seed ^ 0x5EED)
        self.credentials = ApiCredentials(
            api_key=str(_uuid(rng)),
            secret=base64.urlsafe_b64encode(rng.randbytes(32)).decode(),
            passphrase=rng.randbytes(32).hex(),
        )
        self.log = GroundTruthLog(max_events=max_log_events)
        self.connections: list[FakeConnection] = []
        self._open: dict[int, FakeConnection] = {}
        self._attempts: dict[Path, int] = {"market": 0, "user": 0}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._flow_task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None

    # ------------------------------------------------------------------ urls and data

    @property
    def market_url(self) -> str:
        """``ws://127.0.0.1:PORT/ws/market``."""
        return f"ws://{self.host}:{self.port}/ws/market"

    @property
    def user_url(self) -> str:
        """``ws://127.0.0.1:PORT/ws/user``."""
        return f"ws://{self.host}:{self.port}/ws/user"

    @property
    def rest_url(self) -> str:
        """``http://127.0.0.1:PORT`` (CLOB REST)."""
        return f"http://{self.host}:{self.port}"

    @property
    def gamma_url(self) -> str:
        """``http://127.0.0.1:PORT/gamma`` (Gamma REST)."""
        return f"{self.rest_url}/gamma"

    @property
    def endpoints(self) -> Endpoints:
        """Every URL of this server, ready for ``StreamConfig(endpoints=fake.endpoints)``."""
        return Endpoints(
            market_url=self.market_url,
            user_url=self.user_url,
            rest_url=self.rest_url,
            gamma_url=self.gamma_url,
        )

    @property
    def markets(self) -> tuple[SimMarket, ...]:
        """The simulated markets (condition id, YES and NO token ids)."""
        return self.sim.markets

    @property
    def asset_ids(self) -> tuple[str, ...]:
        """Every token id, YES then NO per market."""
        return self.sim.asset_ids

    @property
    def books(self) -> dict[str, BookView]:
        """The server's current book per asset (wire order, with its hash)."""
        return {asset_id: self.sim.book(asset_id) for asset_id in self.sim.asset_ids}

    def book(self, asset_id: str) -> BookView:
        """The server's current book of one asset."""
        return self.sim.book(asset_id)

    def open_connections(self, path: Path | None = None) -> list[FakeConnection]:
        """Connections whose WebSocket is open, oldest first."""
        return [c for c in self._open.values() if path is None or c.path == path]

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakePolymarket:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind and serve; fills in ``port`` when it was 0."""
        if self._runner is not None:
            raise ConfigError("FakePolymarket already started")
        app = web.Application()
        app.router.add_get("/ws/market", self._handle_market)
        app.router.add_get("/ws/user", self._handle_user)
        app.router.add_get("/book", self._rest_book)
        app.router.add_post("/books", self._rest_books)
        app.router.add_get("/markets", self._rest_markets)
        app.router.add_get("/markets/{condition_id}", self._rest_market)
        app.router.add_get("/gamma/markets", self._gamma_markets)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=self.close_timeout + 1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._stopping = asyncio.Event()
        # The flow outlives the task that started the server (pytest-asyncio runs fixture setup
        # and teardown in different tasks), so it cannot live in a TaskGroup entered here; it is
        # the server's root task and runs its own TaskGroup.
        self._flow_task = asyncio.create_task(self._flows(), name=f"fake-polymarket-{self.port}")

    async def stop(self) -> None:
        """Close every connection (1001), stop the flows and the server."""
        if self._runner is None:
            return
        assert self._stopping is not None
        self._stopping.set()
        if self._flow_task is not None:
            self._flow_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flow_task
            self._flow_task = None
        for connection in list(self._open.values()):
            if connection._hung:
                connection._abort_transport("server stopped")
            else:
                connection._finish("close", 1001, "server shutting down")
        await asyncio.gather(*(c.wait_closed() for c in list(self._open.values())))
        await self._runner.cleanup()
        self._runner = None

    async def _flows(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._market_flow())
            tg.create_task(self._user_flow())

    async def _market_flow(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        credit = 0.0
        while True:
            await asyncio.sleep(self.flow_interval)
            now = loop.time()
            credit += (now - last) * self.rate * len(self.sim.markets)
            last = now
            steps = int(credit)
            credit -= steps
            if steps > self.max_steps_per_tick:
                # The simulator cannot keep up; drop the backlog rather than starve the loop.
                steps, credit = self.max_steps_per_tick, 0.0
            if steps:
                self.step(steps)

    async def _user_flow(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        credit = 0.0
        while True:
            await asyncio.sleep(self.flow_interval * 10)
            now = loop.time()
            credit += (now - last) * self.user_rate
            last = now
            steps = min(int(credit), self.max_steps_per_tick)
            credit -= int(credit)
            if steps:
                self.step_user(steps)

    # ------------------------------------------------------------------ generating

    def _log_message(
        self, message: SimMessage, origin: Origin, target: int | None = None
    ) -> LoggedEvent:
        return self.log._append(
            origin,
            message.event_type,
            message.market,
            message.asset_ids,
            message.timestamp,
            message.raw,
            target,
        )

    def _snapshot(self, asset_id: str, connection_id: int) -> LoggedEvent:
        return self._log_message(self.sim.snapshot(asset_id), "snapshot", connection_id)

    def _generate(self, n: int, market: str | None) -> list[LoggedEvent]:
        events = []
        for _ in range(n):
            for message in self.sim.step(market):
                events.append(self._log_message(message, "market"))
        return events

    def _broadcast(self, events: Iterable[LoggedEvent], path: Path = "market") -> None:
        connections = [c for c in self._open.values() if c.path == path and c.state == "subscribed"]
        if not connections:
            return
        for event in events:
            for connection in connections:
                connection._offer(event)

    def step(self, n: int = 1, *, market: str | None = None) -> list[LoggedEvent]:
        """Generate ``n`` order-flow steps (each one ``price_change`` plus side events) and queue
        them to every subscribed market socket; returns the logged events.

        Frames go out when the event loop runs the connection writers (await something).
        """
        events = self._generate(n, market)
        self._broadcast(events)
        return events

    def step_user(self, n: int = 1, *, market: str | None = None) -> list[LoggedEvent]:
        """Generate ``n`` user-channel events (order/trade) and queue them to user sockets."""
        events = []
        for _ in range(n):
            message = self.sim.user_step(self.credentials.api_key, market)
            events.append(self._log_message(message, "user"))
        self._broadcast(events, "user")
        return events

    def prepare_burst(self, n: int, *, market: str | None = None) -> PreparedBurst:
        """Generate and encode ``n`` steps now (logged, books advanced) without sending them.

        Send them right away with :meth:`send_burst`: events generated in between would reach
        clients before the burst and their books would disagree with the server's.
        """
        return PreparedBurst(tuple(self._generate(n, market)))

    async def send_burst(
        self, burst: PreparedBurst, *, connection: FakeConnection | int | None = None
    ) -> BurstResult:
        """Queue every message of ``burst`` to the subscribed market sockets (or one) at once and
        wait until all were handed to the transports. Faults still apply."""
        if connection is None:
            targets = [
                c for c in self._open.values() if c.path == "market" and c.state == "subscribed"
            ]
        else:
            targets = [self._connection(connection)]
        loop = asyncio.get_running_loop()
        before = sum(c.frames_sent for c in targets)
        started = loop.time()
        for event in burst.events:
            for target in targets:
                target._offer(event)
        await asyncio.gather(*(t.flush() for t in targets))
        elapsed = loop.time() - started
        return BurstResult(
            messages=len(burst.events),
            connections=len(targets),
            frames=sum(c.frames_sent for c in targets) - before,
            bytes=burst.bytes * len(targets),
            seconds=elapsed,
        )

    async def burst(
        self, n: int, *, market: str | None = None, connection: FakeConnection | int | None = None
    ) -> BurstResult:
        """:meth:`prepare_burst` then :meth:`send_burst`; the timing excludes the generation."""
        return await self.send_burst(self.prepare_burst(n, market=market), connection=connection)

    async def send_raw(
        self, text: str | bytes, connection: FakeConnection | int | None = None
    ) -> LoggedEvent:
        """Send one text frame as is to a connection, or to every open connection; waits until
        it was handed to the transport(s). Logged with origin ``raw``; bypasses data faults."""
        data = text.encode() if isinstance(text, str) else text
        targets = (
            list(self._open.values()) if connection is None else [self._connection(connection)]
        )
        event = self.log._append(
            "raw", "raw", "", (), "", data, None if connection is None else targets[0].id
        )
        for target in targets:
            target._put_text_raw(data, event.seq)
        await asyncio.gather(*(t.flush() for t in targets))
        return event

    # ------------------------------------------------------------------ faults and control

    def _connection(self, connection: FakeConnection | int) -> FakeConnection:
        if isinstance(connection, FakeConnection):
            return connection
        for candidate in self.connections:
            if candidate.id == connection:
                return candidate
        raise ConfigError(f"no connection with id {connection}")

    def inject(
        self, fault: Fault, connection: FakeConnection | int | None = None
    ) -> FakeConnection:
        """Apply ``fault`` to a live connection now (default: the newest open market socket).

        ``after`` counts from now. ``RefuseHandshake`` and ``Hang(during_handshake=True)`` only
        make sense in the plan (``fake.faults.add``).
        """
        if isinstance(fault, RefuseHandshake) or (
            isinstance(fault, Hang) and fault.during_handshake
        ):
            raise ConfigError(f"{fault!r} applies at the handshake; script it with faults.add()")
        if connection is None:
            candidates = self.open_connections("market")
            if not candidates:
                raise ConfigError("no open market connection to inject a fault into")
            target = candidates[-1]
        else:
            target = self._connection(connection)
        if not target.is_open:
            raise ConfigError(f"connection {target.id} is not open")
        target._arm(fault)
        return target

    async def disconnect(
        self,
        connection: FakeConnection | int | None = None,
        *,
        code: int = 1001,
        reason: str = "",
        abort: bool = False,
    ) -> None:
        """Close one connection (or all open ones) with ``code``, or drop TCP (``abort``); waits
        until closed."""
        targets = (
            list(self._open.values()) if connection is None else [self._connection(connection)]
        )
        for target in targets:
            if abort or target._hung:
                target._abort_transport(reason or "disconnect")
            else:
                target._finish("close", code, reason)
        await asyncio.gather(*(t.wait_closed() for t in targets))

    async def wait_for_connection(
        self,
        number: int = 1,
        *,
        path: Path = "market",
        state: ConnectionState | None = "subscribed",
    ) -> FakeConnection:
        """Wait until the ``number``-th connection (1-based, per path) exists and reached ``state``
        (None: any state). Bound it with ``asyncio.timeout``."""
        while True:
            on_path = [c for c in self.connections if c.path == path]
            if len(on_path) >= number:
                connection = on_path[number - 1]
                if state is None or connection.state == state:
                    return connection
                if connection.state in ("closed", "refused") and state != connection.state:
                    raise ConfigError(f"{connection!r} ended before reaching {state}")
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------------ websocket handlers

    async def _handle_market(self, request: web.Request) -> web.StreamResponse:
        return await self._handle_ws(request, "market")

    async def _handle_user(self, request: web.Request) -> web.StreamResponse:
        return await self._handle_ws(request, "user")

    async def _handle_ws(self, request: web.Request, path: Path) -> web.StreamResponse:
        probe = web.WebSocketResponse()
        if not probe.can_prepare(request).ok:
            return web.Response(status=426, text="upgrade required")
        attempt = self._attempts[path]
        self._attempts[path] += 1
        faults = self.faults.for_attempt(attempt, path)
        connection = FakeConnection(self, next(self._ids), path, attempt, faults)
        self.connections.append(connection)
        for fault in faults:
            if isinstance(fault, RefuseHandshake):
                connection.state = "refused"
                connection.refused_status = fault.status
                connection.close = CloseInfo(initiator="server", code=None, reason="refused")
                connection._ended.set_result(None)
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                return web.Response(status=fault.status, text=fault.body or None, headers=headers)
        if any(isinstance(f, Hang) and f.during_handshake for f in faults):
            return await self._hang_handshake(request, connection)
        hung = any(isinstance(f, Hang) for f in faults)
        ws = web.WebSocketResponse(
            autoping=not hung,
            autoclose=not hung,
            compress=False,
            timeout=self.close_timeout,
            max_msg_size=self.max_frame_bytes,
        )
        await ws.prepare(request)
        self._open[connection.id] = connection
        try:
            await connection._run(ws, request.transport)
        finally:
            self._open.pop(connection.id, None)
        return ws

    async def _hang_handshake(
        self, request: web.Request, connection: FakeConnection
    ) -> web.StreamResponse:
        connection.state = "hanging"
        self._open[connection.id] = connection
        connection._transport = request.transport
        assert self._stopping is not None
        try:
            # aiohttp offers no awaitable for "the client gave up on the handshake": poll.
            while not self._stopping.is_set() and not (  # noqa: ASYNC110
                request.transport is None or request.transport.is_closing()
            ):
                await asyncio.sleep(0.02)
        finally:
            self._open.pop(connection.id, None)
            connection.state = "closed"
            if connection.close is None:
                connection.close = CloseInfo(initiator="client", code=None, reason="gave up")
            if not connection._ended.done():
                connection._ended.set_result(None)
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=504)

    # ------------------------------------------------------------------ REST

    async def _rest_book(self, request: web.Request) -> web.StreamResponse:
        token_id = request.query.get("token_id", "")
        if not token_id:
            return web.json_response({"error": "Invalid token id"}, status=400)
        if not self.sim.knows(token_id):
            return web.json_response(
                {"error": "No orderbook exists for the requested token id"}, status=404
            )
        return _json(self.sim.rest_summary(token_id))

    async def _rest_books(self, request: web.Request) -> web.StreamResponse:
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError:
            return web.json_response({"error": "Invalid payload"}, status=400)
        if not isinstance(body, list) or not all(
            isinstance(item, dict) and isinstance(item.get("token_id"), str) for item in body
        ):
            return web.json_response({"error": "Invalid payload"}, status=400)
        return _json(
            [self.sim.rest_summary(i["token_id"]) for i in body if self.sim.knows(i["token_id"])]
        )

    def _clob_market(self, market: SimMarket) -> dict[str, Any]:
        tokens = []
        for token_id, outcome in ((market.yes_token, "Yes"), (market.no_token, "No")):
            book = self.sim.book(token_id)
            tokens.append(
                {"token_id": token_id, "outcome": outcome, "price": _mid(book), "winner": False}
            )
        return {
            "enable_order_book": True,
            "active": True,
            "closed": False,
            "archived": False,
            "accepting_orders": True,
            "minimum_order_size": _decimal_number(self.sim.min_order_size),
            "minimum_tick_size": _decimal_number(self.sim.tick_size(market.yes_token)),
            "condition_id": market.condition_id,
            "question": market.question,
            "market_slug": market.slug,
            "neg_risk": self.sim.neg_risk,
            "tokens": tokens,
        }

    async def _rest_market(self, request: web.Request) -> web.StreamResponse:
        market = self.sim.market(request.match_info["condition_id"])
        if market is None:
            return web.json_response({"error": "market not found"}, status=404)
        return _json(self._clob_market(market))

    async def _rest_markets(self, request: web.Request) -> web.StreamResponse:
        cursor = request.query.get("next_cursor", "")
        try:
            offset = int(base64.b64decode(cursor).decode()) if cursor else 0
        except ValueError:
            return web.json_response({"error": "invalid next_cursor"}, status=400)
        limit = 500
        page = self.sim.markets[offset : offset + limit]
        end = offset + len(page) >= len(self.sim.markets)
        next_cursor = "LTE=" if end else base64.b64encode(str(offset + limit).encode()).decode()
        return _json(
            {
                "limit": limit,
                "count": len(page),
                "next_cursor": next_cursor,
                "data": [self._clob_market(m) for m in page],
            }
        )

    def _gamma_market(self, index: int, market: SimMarket) -> dict[str, Any]:
        prices = [_mid(self.sim.book(t)) for t in market.tokens]
        # Gamma sends these three as JSON-encoded strings (protocol.md §7).
        return {
            "id": str(index + 1),
            "question": market.question,
            "conditionId": market.condition_id,
            "slug": market.slug,
            "outcomes": json.dumps(["Yes", "No"]),
            "outcomePrices": json.dumps([str(p) for p in prices]),
            "clobTokenIds": json.dumps(list(market.tokens)),
            "active": True,
            "closed": False,
            "enableOrderBook": True,
            "acceptingOrders": True,
            "orderPriceMinTickSize": _decimal_number(self.sim.tick_size(market.yes_token)),
            "orderMinSize": _decimal_number(self.sim.min_order_size),
            "negRisk": self.sim.neg_risk,
        }

    async def _gamma_markets(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        try:
            limit = int(query.get("limit", "100"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return web.json_response({"error": "limit and offset must be integers"}, status=400)
        markets = list(enumerate(self.sim.markets))
        if query.get("closed") == "true" or query.get("active") == "false":
            markets = []  # every simulated market is active and open
        wanted = query.getall("condition_ids", [])
        if wanted:
            markets = [(i, m) for i, m in markets if m.condition_id in wanted]
        page = markets[offset : offset + max(0, limit)]
        return _json([self._gamma_market(i, m) for i, m in page])

    def __repr__(self) -> str:
        state = "running" if self._runner is not None else "stopped"
        return (
            f"FakePolymarket({state}, url={self.rest_url}, markets={len(self.sim.markets)}, "
            f"rate={self.rate}, open={len(self._open)}, connections={len(self.connections)}, "
            f"events={len(self.log)}, faults={self.faults!r})"
        )


def _json(body: Any) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


def _mid(book: BookView) -> float:
    if book.best_bid and book.best_ask:
        return float((Decimal(book.best_bid) + Decimal(book.best_ask)) / 2)
    return 0.5


def _uuid(rng: random.Random) -> str:
    digits = f"{rng.getrandbits(128):032x}"
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-a{digits[17:20]}-{digits[20:]}"
