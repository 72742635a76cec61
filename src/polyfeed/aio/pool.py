"""Many connections behind one market stream: placement, pacing, live routing, isolation.

A :class:`ConnectionPool` spreads a stream's assets over connections of at most
``max_assets_per_connection`` each (:class:`~polyfeed.core.placement.Placement`). Each connection
is one :class:`~polyfeed.aio.supervisor.Supervisor` with its own subscription set, backoff, gap
tracker and metrics; all of them feed the stream's one event queue and one set of books.

- Pacing: every handshake (first opens and reconnects) takes a turn from one
  :class:`~polyfeed.core.pacing.OpenPacer`; a 429 slows the turns down.
- Routing: a live subscribe fills connections with room, else opens one; an unsubscribe goes to
  the connection carrying the asset; an emptied connection is closed, and sparse ones are
  compacted (the assets subscribe on their new connection before the old one is closed).
- Isolation: a connection that drops reconnects on its own; its ``Disconnected`` invalidates only
  its books and its ``Gap`` names only its assets. A fatal error (a rejected handshake, retries
  exhausted) ends the pool: it is a property of the endpoint, not of one socket.

Ownership: :meth:`ConnectionPool.run` holds one TaskGroup with one task per connection; closing a
connection cancels its task (the supervisor closes the socket politely), and cancelling ``run``
closes them all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol

import msgspec

from polyfeed.aio.clock import Clock
from polyfeed.aio.event_queue import EventQueue
from polyfeed.aio.rest import RestClient
from polyfeed.aio.supervisor import Connector, Supervisor
from polyfeed.aio.transport import Transport, connect
from polyfeed.config import StreamConfig
from polyfeed.core.backoff import Backoff
from polyfeed.core.book import BookRegistry, ResyncLimiter
from polyfeed.core.liveness import AssetLiveness, LivenessAction, book_moved
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    Level,
    PriceChange,
    TickSizeChange,
)
from polyfeed.core.pacing import OpenPacer
from polyfeed.core.placement import Placement, carried
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.core.witness import SilenceWitness, server_moved
from polyfeed.errors import (
    ConnectionClosedError,
    DataTimeoutError,
    PolyfeedError,
    RestError,
    ServerUnavailableError,
)
from polyfeed.events import AssetChecked, Connected, ConnectionReplaced, Stale
from polyfeed.metrics import PoolMetrics, SlotMetrics

logger = logging.getLogger("polyfeed.pool")

PoolState = Literal["idle", "connecting", "open", "backoff", "closed"]

# The pool's state is its worst connection's: one reconnecting connection makes the pool
# "backoff" until it is back.
_SEVERITY: dict[str, int] = {"open": 0, "idle": 1, "connecting": 2, "backoff": 3, "closed": 4}


class ConnectionHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One connection of a stream: its assets, state, freshness and reconnects."""

    connection: int
    assets: int
    confirmed: int
    state: str
    connected: bool
    seconds_since_last_message: float | None
    reconnects: int
    connections_opened: int


class ScopedObserver(Protocol):
    """An observer that can be told which assets the events' connection carries."""

    def observe(
        self, events: Sequence[object], scope: frozenset[str] | None = None
    ) -> Sequence[object]:
        """As :meth:`EventObserver.observe`; ``scope``: the connection's assets."""
        ...


class _SlotObserver:
    """Sees one connection's events: notes each asset's liveness, then hands them to the
    stream's observer (the book keeper) scoped to the connection's assets."""

    __slots__ = ("_pool", "_slot")

    def __init__(self, pool: ConnectionPool, slot: _Slot) -> None:
        self._pool = pool
        self._slot = slot

    def observe(self, events: Sequence[object]) -> Sequence[object]:
        if len(self._pool._slots) > 1:
            # A market's tokens may be split over slots; each slot speaks only for its own.
            events = carried(events, self._slot.subscriptions.desired)
        liveness = self._slot.liveness
        if liveness is not None:
            _note_liveness(liveness, events, self._pool.clock.now())
        witness = self._slot.witness
        if witness is not None:
            _note_witness(witness, events, self._pool.clock.now())
        observer = self._pool.observer
        if observer is None:
            return events
        return observer.observe(events, self._slot.subscriptions.desired)


def _note_liveness(liveness: AssetLiveness, events: Sequence[object], now: float) -> None:
    for event in events:
        cls = type(event)
        if cls is PriceChange:
            assert isinstance(event, PriceChange)
            seen: str | None = None
            for entry in event.price_changes:
                if entry.asset_id != seen:
                    seen = entry.asset_id
                    liveness.on_event(seen, now, (event.timestamp, entry.hash))
        elif cls is Book:
            assert isinstance(event, Book)
            liveness.on_event(event.asset_id, now, (event.timestamp, event.hash))
        elif cls is LastTradePrice or cls is TickSizeChange or cls is BestBidAsk:
            assert isinstance(event, LastTradePrice | TickSizeChange | BestBidAsk)
            liveness.on_event(event.asset_id, now)
        elif cls is Connected:
            # A new socket: its replay brings every snapshot again; pending checks are void.
            liveness.reset(now)


def _note_witness(witness: SilenceWitness, events: Sequence[object], now: float) -> None:
    data = False
    for event in events:
        cls = type(event)
        if cls is PriceChange:
            assert isinstance(event, PriceChange)
            data = True
            for entry in event.price_changes:
                witness.heard(entry.asset_id, event.timestamp, entry.hash)
        elif cls is Book:
            assert isinstance(event, Book)
            data = True
            witness.heard(event.asset_id, event.timestamp, event.hash)
        elif cls is LastTradePrice or cls is TickSizeChange or cls is BestBidAsk:
            data = True
        elif cls is Connected:
            witness.reset(now)
    if data:
        witness.on_data(now)


class _Slot:
    """One connection of the pool: its subscriptions, metrics, supervisor and task."""

    def __init__(
        self,
        slot: int,
        subscriptions: SubscriptionSet,
        metrics: SlotMetrics,
        liveness: AssetLiveness | None,
        witness: SilenceWitness | None = None,
    ) -> None:
        self.id = slot
        self.subscriptions = subscriptions
        self.metrics = metrics
        self.liveness = liveness
        self.witness = witness
        self.supervisor: Supervisor | None = None
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = self.supervisor.state if self.supervisor is not None else "idle"
        return f"<_Slot #{self.id} {state} assets={len(self.subscriptions.desired)}>"


class ConnectionPool:
    """The connections of one market stream (see the module docstring)."""

    def __init__(
        self,
        assets: Iterable[str],
        *,
        url: str,
        config: StreamConfig,
        clock: Clock,
        rng: Callable[[], float],
        queue: EventQueue,
        metrics: PoolMetrics,
        connector: Connector = connect,
    ) -> None:
        self.url = url
        self.config = config
        self.clock = clock
        self.queue = queue
        self.metrics = metrics
        self._rng = rng
        self._connector = connector
        self.rest: RestClient | None = None
        self.books: BookRegistry | None = None
        # The REST budget the witness's /books requests take from (the stream's, shared with
        # book resyncs); None: unlimited.
        self.limiter: ResyncLimiter | None = None
        watchdog = config.watchdog
        self.witness_after = watchdog.witness_after
        self.asset_timeout = watchdog.asset_timeout
        if self.asset_timeout is not None:
            # The pool checks silent assets against REST before redriving them: the sessions'
            # own per-asset clocks (which redrive at once) stay off.
            config = dataclasses.replace(
                config, watchdog=dataclasses.replace(watchdog, asset_timeout=None)
            )
        self._session_config = config
        self.placement = Placement(config.max_assets_per_connection)
        pool = config.pool
        self.pacer = OpenPacer(
            pool.open_interval, slowdown=pool.open_slowdown, max_interval=pool.max_open_interval
        )
        self._pace_lock = asyncio.Lock()
        self._slots: dict[int, _Slot] = {}
        self._group: asyncio.TaskGroup | None = None
        self._observer: ScopedObserver | None = None
        self._state: PoolState = "idle"
        self.stopping = False
        self.handshakes = 0
        self.compactions = 0
        self.asset_checks = 0
        self.replacements = 0
        self.witness_checks = 0
        self.witness_stale = 0
        for slot, placed in self.placement.add(assets).items():
            self._new_slot(slot, placed)

    def __repr__(self) -> str:
        return (
            f"<ConnectionPool {self.state} connections={len(self._slots)} "
            f"assets={len(self.placement)} handshakes={self.handshakes} "
            f"compactions={self.compactions} pacer={self.pacer!r}>"
        )

    # ------------------------------------------------------------------ views

    @property
    def state(self) -> PoolState:
        """``closed`` once run ended, else the worst state among the connections."""
        if self._state != "open":
            return self._state
        states = [s.supervisor.state if s.supervisor else "idle" for s in self._slots.values()]
        if not states:
            return "open"
        worst = max(states, key=_SEVERITY.__getitem__)
        if worst == "backoff":
            return "backoff"
        return "open" if worst == "open" else "connecting"

    @property
    def desired(self) -> frozenset[str]:
        """Every asset of the pool."""
        return frozenset(a for slot in self._slots.values() for a in slot.subscriptions.desired)

    @property
    def confirmed(self) -> int:
        """Assets confirmed (an event seen) on their current connection."""
        return sum(len(slot.subscriptions.confirmed) for slot in self._slots.values())

    def connection_of(self, asset: str) -> int | None:
        """The pool connection (slot number) carrying ``asset``."""
        return self.placement.slot_of(asset)

    def connections(self) -> list[ConnectionHealth]:
        """Each connection's health, oldest first."""
        now = self.clock.now()
        out = []
        for slot in self._slots.values():
            supervisor = slot.supervisor
            metrics = slot.metrics
            out.append(
                ConnectionHealth(
                    connection=slot.id,
                    assets=len(slot.subscriptions.desired),
                    confirmed=len(slot.subscriptions.confirmed),
                    state=supervisor.state if supervisor is not None else "idle",
                    connected=metrics.connected_since is not None,
                    seconds_since_last_message=metrics.seconds_since_last_message(now),
                    reconnects=sum(metrics.reconnects_by_reason.values()),
                    connections_opened=supervisor.connections_opened if supervisor else 0,
                )
            )
        return out

    @property
    def observer(self) -> ScopedObserver | None:
        """Sees every connection's events (scoped to its assets) before the queue."""
        return self._observer

    @observer.setter
    def observer(self, observer: ScopedObserver | None) -> None:
        self._observer = observer

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Run every connection until cancelled; raises the first fatal error of any."""
        if self._state != "idle":
            raise PolyfeedError(f"a pool runs once (it is {self._state})")
        self._state = "open"
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for slot in list(self._slots.values()):
                    self._start(slot)
                if self.asset_timeout is not None:
                    group.create_task(
                        self._watch_assets(self.asset_timeout), name="polyfeed-pool-liveness"
                    )
                if self.witness_after is not None:
                    group.create_task(
                        self._watch_silence(self.witness_after), name="polyfeed-pool-witness"
                    )
                # The group lives until cancelled; connections come and go inside it.
                await asyncio.Event().wait()
        except ExceptionGroup as group_error:
            # Boundary: the stream gets one error, never a group (a fatal one first).
            fatal = group_error.subgroup(PolyfeedError)
            raise _first(fatal if fatal is not None else group_error) from None
        finally:
            self._group = None
            self._state = "closed"
            now = self.clock.now()
            for slot in self._slots.values():
                slot.metrics.on_closed(now)

    def _new_slot(self, slot: int, assets: list[str]) -> _Slot:
        subscriptions = SubscriptionSet(
            assets, confirm_timeout=self.config.watchdog.confirm_timeout
        )
        now = self.clock.now()
        metrics = self.metrics.add_connection(slot, now)
        liveness = None
        if self.asset_timeout is not None:
            liveness = AssetLiveness(self.asset_timeout, self.config.watchdog.asset_retries)
            liveness.track(assets, now)
        witness = None
        if self.witness_after is not None:
            sample = self.config.watchdog.witness_sample
            witness = SilenceWitness(self.witness_after, sample=sample, now=now)
        new = self._slots[slot] = _Slot(slot, subscriptions, metrics, liveness, witness)
        metrics.assets = len(assets)
        return new

    def _start(self, slot: _Slot) -> None:
        group = self._group
        if group is None or self.stopping or slot.task is not None:
            return
        supervisor = slot.supervisor = Supervisor(
            "market",
            self.url,
            slot.subscriptions,
            self._session_config,
            self.clock,
            Backoff(self.config.backoff, self._rng),
            self.queue,
            slot.metrics,
            connector=self._paced_connect,
            observer=_SlotObserver(self, slot),
        )
        slot.task = group.create_task(supervisor.run(), name=f"polyfeed-pool-{slot.id}")
        logger.info("pool: connection %d starts with %d assets", slot.id, slot.metrics.assets)

    def _close(self, slot: _Slot, why: str) -> None:
        del self._slots[slot.id]
        self.metrics.retire_connection(slot.id, self.clock.now())
        logger.info("pool: connection %d closed (%s)", slot.id, why)
        if slot.supervisor is not None:
            slot.supervisor.request_stop()
        if slot.task is not None:
            slot.task.cancel()

    async def _paced_connect(self, url: str, **options: Any) -> Transport:
        """The connector every supervisor of the pool uses: waits for its turn, notes a 429."""
        async with self._pace_lock:
            while True:
                throttles = self.pacer.throttles
                await self.clock.sleep_until(self.pacer.take(self.clock.now()))
                # A 429 while we waited: the turn we had is too early now, take a new one.
                if self.pacer.throttles == throttles:
                    break
        self.handshakes += 1
        try:
            transport = await self._connector(url, **options)
        except ServerUnavailableError as exc:
            if exc.status == 429:
                self.pacer.throttled(self.clock.now(), exc.retry_after)
                logger.warning(
                    "pool: handshake throttled (429); opening at most one connection per %.2fs",
                    self.pacer.interval,
                )
            raise
        self.pacer.succeeded()
        return transport

    def request_stop(self) -> None:
        """The stream is closing: no new connections; each supervisor keeps its shutdown."""
        self.stopping = True
        for slot in self._slots.values():
            if slot.supervisor is not None:
                slot.supervisor.request_stop()

    # ------------------------------------------------------------------ live changes

    def subscribe(self, ids: list[str]) -> list[str]:
        """Place new assets: on connections with room (live), else on new connections."""
        added: list[str] = []
        for slot_id, assets in self.placement.add(ids).items():
            slot = self._slots.get(slot_id)
            if slot is None:
                slot = self._new_slot(slot_id, assets)
                self._start(slot)
                added.extend(assets)
            elif slot.supervisor is not None:
                added.extend(slot.supervisor.subscribe(assets))
            else:
                added.extend(slot.subscriptions.add(assets, None))
            if slot.liveness is not None:
                slot.liveness.track(assets, self.clock.now())
            slot.metrics.assets = len(slot.subscriptions.desired)
        return added

    def unsubscribe(self, ids: list[str]) -> list[str]:
        """Drop assets from their connections; close emptied ones, compact sparse ones."""
        removed: list[str] = []
        for slot_id, assets in self.placement.remove(ids).items():
            slot = self._slots[slot_id]
            if slot_id not in self.placement.slots:
                removed.extend(assets)
                self._close(slot, "emptied")
                continue
            if slot.supervisor is not None:
                removed.extend(slot.supervisor.unsubscribe(assets))
            else:
                removed.extend(slot.subscriptions.remove(assets))
            if slot.liveness is not None:
                slot.liveness.untrack(assets)
            if slot.witness is not None:
                slot.witness.forget(assets)
            slot.metrics.assets = len(slot.subscriptions.desired)
        self._compact()
        return removed

    def _compact(self) -> None:
        moves = self.placement.compaction(self.config.pool.compact_below)
        for move in moves:
            target = self._slots[move.target]
            assets = list(move.assets)
            # Subscribe on the new connection first: the asset is never without one.
            if target.supervisor is not None:
                target.supervisor.subscribe(assets)
            else:
                target.subscriptions.add(assets, None)
            if target.liveness is not None:
                target.liveness.track(assets, self.clock.now())
            target.metrics.assets = len(target.subscriptions.desired)
            logger.info(
                "pool: %d assets move from connection %d to %d",
                len(assets),
                move.source,
                move.target,
            )
        for source in {move.source for move in moves}:
            self.compactions += 1
            self._close(self._slots[source], "compacted")

    # ------------------------------------------------------------------ per-asset liveness

    async def _watch_assets(self, asset_timeout: float) -> None:
        """Check assets silent past ``asset_timeout`` while their connection flows (REST)."""
        clock = self.clock
        while True:
            now = clock.now()
            deadlines = [
                d
                for slot in self._slots.values()
                if slot.liveness is not None and (d := slot.liveness.next_deadline()) is not None
            ]
            # New slots start their clocks at now + timeout: waking once per timeout at the
            # latest sees them without a wake-up call.
            await clock.sleep_until(min([now + asset_timeout, *deadlines]))
            for slot in list(self._slots.values()):
                if slot.id in self._slots:
                    await self._check_slot(slot, asset_timeout)

    async def _check_slot(self, slot: _Slot, asset_timeout: float) -> None:
        liveness = slot.liveness
        supervisor = slot.supervisor
        if liveness is None or supervisor is None:
            return
        now = self.clock.now()
        last = slot.metrics.last_message_at
        connection = supervisor.connection
        flowing = connection is not None and last is not None and now - last < asset_timeout
        due = liveness.due(now, flowing=flowing)
        if not due:
            return
        self.asset_checks += len(due)
        assert connection is not None
        connection_id = connection.session.connection_id
        silent_for = max(liveness.silent_for(asset, now) for asset in due)
        supervisor.emit(
            [Stale(kind="asset", silent_for=silent_for, asset_ids=due, connection_id=connection_id)]
        )
        server = await self._server_books(due)
        now = self.clock.now()
        actions: dict[LivenessAction, list[str]] = {}
        for asset in due:
            moved = self._moved(liveness, asset, server.get(asset))
            action = liveness.checked(asset, now, moved)
            actions.setdefault(action, []).append(asset)
        events: list[object] = [
            AssetChecked(
                asset_ids=assets,
                action=action,
                silent_for=silent_for,
                connection_id=connection_id,
                pool_connection=slot.id,
            )
            for action, assets in actions.items()
        ]
        replace = actions.get("replace")
        if replace:
            events.append(
                ConnectionReplaced(
                    pool_connection=slot.id,
                    reason=f"assets stayed silent after {liveness.retries} redrives",
                    asset_ids=replace,
                )
            )
        supervisor.emit(events)
        if replace:
            self.replacements += 1
            logger.warning(
                "pool: connection %d replaced: %d assets silent after %d redrives",
                slot.id,
                len(replace),
                liveness.retries,
            )
            live = supervisor.connection
            if live is not None:
                live.session.abort(
                    ConnectionClosedError(None, "replaced: assets silent while others flow")
                )
                live.wake()
        elif actions.get("redrive"):
            logger.warning(
                "pool: %d silent assets redriven on connection %d",
                len(actions["redrive"]),
                slot.id,
            )
            supervisor.refresh(actions["redrive"])

    async def _server_books(self, assets: list[str]) -> dict[str, Book]:
        """The server's books over REST (one request); empty when REST fails."""
        rest = self.rest
        if rest is None:
            return {}
        try:
            books = await rest.books(assets)
        except RestError as exc:
            logger.warning("pool: liveness check failed: %s", exc)
            return {}
        return {book.asset_id: book for book in books}

    def _moved(self, liveness: AssetLiveness, asset: str, server: Book | None) -> bool | None:
        """Whether the server's book moved while we heard nothing; None when unknown."""
        if server is None:
            return None
        local = self.books.get(asset) if self.books is not None else None
        if local is None:
            return book_moved(liveness.seen(asset), (server.timestamp, server.hash))
        if not local.synced:
            return None  # a resync is on its way: nothing to compare with
        # The levels, not the hash: Polymarket's hash covers the market's shared timestamp.
        return _levels(local.levels("bids")) != _levels(server.bids) or _levels(
            local.levels("asks")
        ) != _levels(server.asks)

    # ------------------------------------------------------------------ REST witness

    async def _watch_silence(self, after: float) -> None:
        """Check connections silent for ``after`` against REST ``/book`` (the witness)."""
        clock = self.clock
        while True:
            now = clock.now()
            deadlines = [
                d
                for slot in self._slots.values()
                if slot.witness is not None and (d := slot.witness.next_deadline()) is not None
            ]
            await clock.sleep_until(min([now + after, *deadlines]))
            for slot in list(self._slots.values()):
                if slot.id in self._slots:
                    await self._witness_slot(slot)

    async def _witness_slot(self, slot: _Slot) -> None:
        witness = slot.witness
        supervisor = slot.supervisor
        if witness is None or supervisor is None:
            return
        now = self.clock.now()
        connection = supervisor.connection
        due = witness.due(now, sorted(slot.subscriptions.desired))
        if not due:
            return
        limiter = self.limiter
        if connection is None or (limiter is not None and not limiter.try_acquire(now, len(due))):
            # Reconnecting (its own first frame ends the silence), or the REST budget is spent.
            witness.postpone(now)
            return
        self.witness_checks += 1
        server = await self._server_books(due)
        now = self.clock.now()
        moved = {asset: self._witness_moved(witness, asset, server.get(asset)) for asset in due}
        verdict = witness.verdict(now, moved)
        logger.debug("pool: witness on connection %d: %s %s", slot.id, verdict, moved)
        if verdict != "stale" or supervisor.connection is not connection:
            return
        self.witness_stale += 1
        silent_for = witness.silent_for(now)
        assets = [asset for asset, value in moved.items() if value]
        connection_id = connection.session.connection_id
        logger.warning(
            "pool: connection %d silent for %.1fs while REST shows %d of its books moved: stale",
            slot.id,
            silent_for,
            len(assets),
        )
        supervisor.emit(
            [
                Stale(
                    kind="witness",
                    silent_for=silent_for,
                    asset_ids=assets,
                    connection_id=connection_id,
                )
            ]
        )
        connection.session.abort(DataTimeoutError("witness", silent_for, tuple(assets)))
        connection.wake()

    def _witness_moved(
        self, witness: SilenceWitness, asset: str, server: Book | None
    ) -> bool | None:
        """Whether the server's book moved past what this connection told us; None: unknown."""
        if server is None:
            return None
        moved = server_moved(witness.held(asset), (server.timestamp, server.hash))
        local = self.books.get(asset) if self.books is not None else None
        if moved and local is not None and local.synced:
            # The market's shared timestamp is in the hash: a sibling token's trade on another
            # connection changes ours too. Moved means other levels.
            return _levels(local.levels("bids")) != _levels(server.bids) or _levels(
                local.levels("asks")
            ) != _levels(server.asks)
        return moved

    def refresh(self, ids: list[str]) -> None:
        """Fresh snapshots of these assets, each on its own connection (no-op when offline)."""
        by_slot: dict[int, list[str]] = {}
        for asset in ids:
            slot_id = self.placement.slot_of(asset)
            if slot_id is not None:
                by_slot.setdefault(slot_id, []).append(asset)
        for slot_id, assets in by_slot.items():
            supervisor = self._slots[slot_id].supervisor
            if supervisor is not None:
                supervisor.refresh(assets)


def _levels(levels: Iterable[Level]) -> frozenset[tuple[str, str]]:
    return frozenset((level.price, level.size) for level in levels)


def _first(group: ExceptionGroup[Exception]) -> Exception:
    error: Exception = group.exceptions[0]
    while isinstance(error, ExceptionGroup):
        error = error.exceptions[0]
    return error
