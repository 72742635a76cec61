"""FakePolymarket: a real Polymarket-speaking server on 127.0.0.1 for tests, demos and benchmarks.

This module is the server and its routing: the app and its URLs (:attr:`FakePolymarket.endpoints`),
start and stop, the market and user order flows, broadcasting to the open connections, the
WebSocket handshake (where ``RefuseHandshake`` and ``Hang(during_handshake=True)`` apply), and
the controls tests drive (``step``, ``burst``, ``send_raw``, ``inject``, ``disconnect``).
Sockets: :mod:`~polyfeed.testing.server.connection`; REST, Gamma and ``/auth/api-keys``:
:mod:`~polyfeed.testing.server.rest`; ground truth: :mod:`~polyfeed.testing.server.log`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from polyfeed.config import Endpoints
from polyfeed.errors import ConfigError
from polyfeed.testing.faults import Fault, FaultPlan, Hang, Path, RefuseHandshake
from polyfeed.testing.market_sim import BookView, MarketSimulator, SimMarket
from polyfeed.testing.server.auth import ApiCredentials, AuthCheck
from polyfeed.testing.server.connection import ConnectionState, FakeConnection
from polyfeed.testing.server.log import GroundTruthLog, LoggedEvent
from polyfeed.testing.server.rest import RestApi
from polyfeed.testing.server.sockets import Sockets, SocketsConfig

__all__ = ["BurstResult", "FakePolymarket", "PreparedBurst"]


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


class FakePolymarket:
    """A Polymarket server on 127.0.0.1 (port 0 by default); use as ``async with``.

    ``rate``: ``price_change`` messages per second per market from a background flow (0: none;
    call :meth:`step`). ``user_rate``: user-channel events per second (all markets). Times
    (``ping_grace``, ``subscribe_grace``, ``no_new_assets_interval``) are seconds; None disables.
    ``wall`` is the clock for message timestamps (inject ``FakeClock.wall`` for deterministic
    timestamps). Simulator options (``tick_size``, ``trade_probability``, ...) are passed to
    :class:`polyfeed.testing.market_sim.MarketSimulator`.

    As the real server does, the fake splits some matching events over several ``price_change``
    messages (a *run*) that share one timestamp, every entry carrying the hash and top of book
    after the whole run: ``run_probability`` (default 0.1) of the steps that are not trades
    become runs of 2 to ``max_run_messages`` messages. So a step may send more than one
    ``price_change``, and timestamps are non-decreasing, not strictly increasing.
    ``run_probability=0`` gives one message per step.

    The background flow generates live (each step costs ~70 us, book hashes included), at most
    ``max_steps_per_tick`` per ``flow_interval`` so the loop stays responsive; a backlog beyond
    that is dropped. For throughput tests use :meth:`prepare_burst`/:meth:`send_burst`.

    ``credentials`` (:class:`ApiCredentials`, derived from ``seed``) are the ones accepted on
    ``/ws/user`` and ``GET /auth/api-keys``; ``credentials.client()`` gives them to a client.
    Assign other credentials to revoke those clients hold. ``auth_checks`` lists every
    ``/auth/api-keys`` request answered (:class:`AuthCheck`: accepted or why not).

    The other sockets (timings in ``sockets``, :class:`SocketsConfig`), each with its controls
    and faults: :attr:`rtds` at ``rtds_url``, :attr:`sports` at ``sports_url``,
    :attr:`polybolt` at ``polybolt_url`` and :attr:`heartbeats` (``POST /v1/heartbeats``).
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
        run_probability: float = 0.1,
        max_run_messages: int = 3,
        sockets: SocketsConfig | None = None,
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
            run_probability=run_probability,
            max_run_messages=max_run_messages,
        )
        self.credentials = ApiCredentials.generate(random.Random(seed ^ 0x5EED))
        self.auth_checks: list[AuthCheck] = []
        self.log = GroundTruthLog(max_events=max_log_events)
        self.connections: list[FakeConnection] = []
        self._open: dict[int, FakeConnection] = {}
        self._attempts: dict[Path, int] = {"market": 0, "user": 0}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._flow_task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self.sockets = Sockets(self, sockets or SocketsConfig())
        self.rtds = self.sockets.rtds
        self.sports = self.sockets.sports
        self.polybolt = self.sockets.polybolt
        self.heartbeats = self.sockets.heartbeats

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
    def rtds_url(self) -> str:
        """``ws://127.0.0.1:PORT/rtds`` (the RTDS socket: :attr:`rtds` drives it)."""
        return f"ws://{self.host}:{self.port}/rtds"

    @property
    def sports_url(self) -> str:
        """``ws://127.0.0.1:PORT/sports`` (the sports socket: :attr:`sports` drives it)."""
        return f"ws://{self.host}:{self.port}/sports"

    @property
    def polybolt_url(self) -> str:
        """``ws://127.0.0.1:PORT/polybolt`` (the PolyBolt socket: :attr:`polybolt` drives it)."""
        return f"ws://{self.host}:{self.port}/polybolt"

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
        app.router.add_get("/ws/market", functools.partial(self._handle_ws, path="market"))
        app.router.add_get("/ws/user", functools.partial(self._handle_ws, path="user"))
        app.add_routes(RestApi(self).routes())
        app.add_routes(self.sockets.routes())
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
        await self.sockets.close()
        await self._runner.cleanup()
        self._runner = None

    async def _flows(self) -> None:
        # Rates are read at every tick: a test may change ``rate`` while the server runs.
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                self._paced(self.flow_interval, lambda: self.rate * len(self.markets), self.step)
            )
            tg.create_task(
                self._paced(self.flow_interval * 10, lambda: self.user_rate, self.step_user)
            )

    async def _paced(
        self, interval: float, rate: Callable[[], float], step: Callable[[int], object]
    ) -> None:
        """Every ``interval`` s, ``step(n)`` with the n steps that ``rate()`` per second owes."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        credit = 0.0
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            credit += (now - last) * rate()
            last = now
            owed = int(credit)
            credit -= owed
            # The simulator cannot keep up: drop the backlog rather than starve the loop.
            steps = min(owed, self.max_steps_per_tick)
            if steps:
                step(steps)

    # ------------------------------------------------------------------ generating

    def _snapshot(self, asset_id: str, connection_id: int) -> LoggedEvent:
        return self.log._append_message(self.sim.snapshot(asset_id), "snapshot", connection_id)

    def _generate(self, n: int, market: str | None) -> list[LoggedEvent]:
        events = []
        for _ in range(n):
            for message in self.sim.step(market):
                events.append(self.log._append_message(message, "market"))
        return events

    def _broadcast(self, events: Iterable[LoggedEvent], path: Path = "market") -> None:
        connections = [c for c in self._open.values() if c.path == path and c.state == "subscribed"]
        if not connections:
            return
        for event in events:
            for connection in connections:
                connection._offer(event)

    def step(self, n: int = 1, *, market: str | None = None) -> list[LoggedEvent]:
        """Generate ``n`` order-flow steps (each one ``price_change`` or a run of several, plus side
        events) and queue them to every subscribed market socket; returns the logged events.

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
            events.append(self.log._append_message(message, "user"))
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
        target._fault_state.arm(fault)
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

    async def _handle_ws(self, request: web.Request, path: Path) -> web.StreamResponse:
        if not web.WebSocketResponse().can_prepare(request).ok:
            return web.Response(status=426, text="upgrade required")
        attempt = self._attempts[path]
        self._attempts[path] += 1
        faults = self.faults.for_attempt(attempt, path)
        connection = FakeConnection(self, next(self._ids), path, attempt, faults)
        self.connections.append(connection)
        refusal = connection._refusal()
        if refusal is not None:
            return refusal
        if connection._hangs_handshake:
            assert self._stopping is not None
            self._open[connection.id] = connection
            try:
                return await connection._hang_handshake(request, self._stopping)
            finally:
                self._open.pop(connection.id, None)
        ws = await connection._accept(request)
        self._open[connection.id] = connection
        try:
            await connection._run(ws, request.transport)
        finally:
            self._open.pop(connection.id, None)
        return ws

    def __repr__(self) -> str:
        state = "running" if self._runner is not None else "stopped"
        return (
            f"FakePolymarket({state}, url={self.rest_url}, markets={len(self.sim.markets)}, "
            f"rate={self.rate}, open={len(self._open)}, connections={len(self.connections)}, "
            f"events={len(self.log)}, faults={self.faults!r})"
        )
