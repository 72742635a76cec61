"""One WebSocket connection of the fake server: handshake to close, as the live server does it.

:class:`FakeConnection` is the server-side view of one connection attempt on ``/ws/market`` or
``/ws/user``; tests read its attributes. Each connection runs one TaskGroup (reader, writer,
watches and fault timers) inside the aiohttp handler that accepted it, and ends in one place
(:meth:`FakeConnection._run`), which records how it ended (:class:`CloseInfo`).

What the client's frames do: :mod:`polyfeed.testing.server.channel`; what faults do to a
connection: :mod:`polyfeed.testing.server.fault_state`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Literal, assert_never

import msgspec
from aiohttp import WSMsgType, web

from polyfeed.testing.faults import Fault, Hang, Path, RefuseHandshake
from polyfeed.testing.server.channel import ChannelFrames
from polyfeed.testing.server.fault_state import FaultState
from polyfeed.testing.server.log import LoggedEvent

if TYPE_CHECKING:
    from polyfeed.testing.server.app import FakePolymarket

__all__ = ["CloseInfo", "ConnectionState", "FakeConnection"]

ConnectionState = Literal[
    "handshake", "refused", "hanging", "awaiting_subscription", "subscribed", "closed"
]


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
        self._fault_state = FaultState(self, faults)
        self._channel = ChannelFrames(self)

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

    # ------------------------------------------------------------------ handshake

    def _refusal(self) -> web.Response | None:
        """The HTTP answer a ``RefuseHandshake`` fault gives instead of the upgrade, if any."""
        for fault in self.faults:
            if isinstance(fault, RefuseHandshake):
                self.state = "refused"
                self.refused_status = fault.status
                self.close = CloseInfo(initiator="server", code=None, reason="refused")
                self._ended.set_result(None)
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                return web.Response(status=fault.status, text=fault.body or None, headers=headers)
        return None

    @property
    def _hangs_handshake(self) -> bool:
        return any(isinstance(f, Hang) and f.during_handshake for f in self.faults)

    async def _accept(self, request: web.Request) -> web.WebSocketResponse:
        """Complete the upgrade; a hung socket answers neither protocol pings nor closes."""
        hung = self._hung
        server = self._server
        ws = web.WebSocketResponse(
            autoping=not hung,
            autoclose=not hung,
            compress=False,
            timeout=server.close_timeout,
            max_msg_size=server.max_frame_bytes,
        )
        await ws.prepare(request)
        return ws

    async def _hang_handshake(
        self, request: web.Request, stopping: asyncio.Event
    ) -> web.StreamResponse:
        """Leave the upgrade unanswered until the client gives up or the server stops."""
        self.state = "hanging"
        self._transport = request.transport
        try:
            # aiohttp offers no awaitable for "the client gave up on the handshake": poll.
            while not stopping.is_set() and not (  # noqa: ASYNC110
                request.transport is None or request.transport.is_closing()
            ):
                await asyncio.sleep(0.02)
        finally:
            self.state = "closed"
            if self.close is None:
                self.close = CloseInfo(initiator="client", code=None, reason="gave up")
            if not self._ended.done():
                self._ended.set_result(None)
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=504)

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
                    self._fault_state.arm(fault)
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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
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
                    self._channel.on_text(message.data)
            elif kind is WSMsgType.BINARY:
                self.frames_received.append(message.data.decode("utf-8", "replace"))
                if not self._hung:
                    self._channel.on_invalid()
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
            if self._fault_state.slow_delay:
                await asyncio.sleep(self._fault_state.slow_delay)
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

    # ------------------------------------------------------------------ outbound data

    def _offer(self, event: LoggedEvent) -> None:
        """Hand one generated message to this connection, through its faults."""
        if not self._accepting or self.state != "subscribed":
            return
        if event.event_type == "best_bid_ask" and not self.custom_feature_enabled:
            return
        if not self._fault_state.active:
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
        admitted = self._fault_state.admit(event)
        if admitted is None:
            return
        data, copies = admitted
        for _ in range(copies):
            self._put(_Frame(data, (event.seq,)))
        self.data_sent += 1
        if self._fault_state.has_message_triggers:
            # A count reached fires now (e.g. a close right after the n-th message).
            self._fault_state.check_message_triggers()

    def _offer_batch(self, events: Sequence[LoggedEvent]) -> None:
        """Hand several messages as one JSON-array frame (initial snapshots)."""
        if not self._accepting or self.state != "subscribed":
            return
        parts: list[bytes] = []
        seqs: list[int] = []
        for event in events:
            admitted = (
                self._fault_state.admit(event) if self._fault_state.active else (event.raw, 1)
            )
            if admitted is None:
                continue
            parts.extend([admitted[0]] * admitted[1])
            seqs.extend([event.seq] * admitted[1])
            self.data_sent += 1
            if not self._accepting:
                break
        if parts:
            self._put(_Frame(b"[" + b",".join(parts) + b"]", tuple(seqs)))
        if self._fault_state.has_message_triggers:
            self._fault_state.check_message_triggers()

    # ------------------------------------------------------------------ what faults do

    @property
    def _hung(self) -> bool:
        return self._fault_state.hung

    def _go_silent(self) -> None:
        """Hang: drop what is queued and queue nothing more."""
        self._accepting = False
        self._outbox.clear()

    def _close_after_queued(self, code: int, reason: str) -> None:
        """Close with ``code`` once the frames already queued are sent; queue nothing more."""
        self._put(_Control("close", code, reason))
        self._accepting = False

    def _abort_after_queued(self, reason: str) -> None:
        """Drop the TCP connection once the frames already queued are sent."""
        self._put(_Control("abort", reason=reason))
        self._accepting = False

    def _forget_subscriptions(self) -> set[str]:
        """Forget every subscription (all markets included); returns the keys forgotten."""
        forgotten = set(self.subscribed)
        if self.all_markets:
            forgotten |= {m.condition_id for m in self._server.markets}
        self.subscribed = set()
        self.all_markets = False
        return forgotten

    def _send_fault_frame(self, event_type: str, data: bytes) -> None:
        """Queue one frame a fault made up, logged with origin ``fault``."""
        event = self._server.log._append("fault", event_type, "", (), "", data, self.id)
        if not self._hung and self._accepting:
            self._put(_Frame(data, (event.seq,)))
