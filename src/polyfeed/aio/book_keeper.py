"""Keeps a stream's local order books: applies events on the reader side, resyncs on doubt.

The pure ``BookRegistry`` decides what is wrong (hash mismatch, crossed book beyond grace,
tick-size doubt, reconnect); this keeper does the I/O that follows:

- market metadata for the hash (``min_order_size``, ``neg_risk``) is fetched once per market over
  REST ``/markets/{condition_id}``;
- an invalidated book is resynced from REST ``/book`` (rate-limited), with the deltas that arrive
  during the fetch buffered by the book and replayed on top; if REST fails, the asset is
  re-requested on the socket (unsubscribe + subscribe) for a fresh snapshot;
- after a reconnect every book is invalidated and resynced by the replayed snapshots, no REST;
- :meth:`BookKeeper.run` is the maintenance: book timers woken at the registry's next deadline,
  the end-of-read hash checks one loop turn after the read's events were queued (unless
  ``BookOptions.verify_before_handoff``), and the optional periodic REST reconcile; a crashed
  loop is restarted with backoff and reported (``maintenance_restarts``, ``maintenance_error``).

``BookInvalidated`` / ``BookResynced`` go into the stream right after the event that caused them
(a deferred end-of-read check's: right after the read's events), one event per cause:
consecutive verdicts of one kind and reason carry all their asset ids (a reconnect invalidates
every book with one event; a replayed batch of snapshots resyncs them with one).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Collection, Coroutine, Sequence
from typing import Any, NoReturn

from polyfeed.aio.clock import Clock
from polyfeed.aio.rest import RestClient
from polyfeed.core.book import BookRegistry, BookVerdict, ResyncLimiter
from polyfeed.core.messages import Book
from polyfeed.errors import ConfigError, RestError
from polyfeed.events import BookInvalidated, BookResynced, Disconnected, Stale

logger = logging.getLogger("polyfeed.books")

CoroutineFactory = Callable[[], Coroutine[Any, Any, None]]
Spawn = Callable[[CoroutineFactory, str], asyncio.Task[None] | None]
"""Starts a task from a coroutine factory in the stream's group; None (the factory not called)
when the stream is stopping."""

_Loop = Callable[[], Coroutine[Any, Any, NoReturn]]

RESTART_BASE = 0.1
"""First delay before a crashed maintenance loop restarts (seconds); doubles per crash."""
RESTART_MAX = 30.0
"""Cap of the restart delay."""
RESTART_STABLE_FOR = 60.0
"""A loop that ran this long before crashing restarts after ``RESTART_BASE`` again."""


class BookKeeper:
    """The I/O side of the local books of one stream (an ``EventObserver`` of its supervisor)."""

    def __init__(
        self,
        registry: BookRegistry,
        *,
        clock: Clock,
        rest: RestClient | None,
        limiter: ResyncLimiter,
        spawn: Spawn,
        emit: Callable[[Sequence[object]], bool],
        refresh: Callable[[list[str]], None],
        reconcile_every: float | None = None,
    ) -> None:
        if reconcile_every is not None and not reconcile_every > 0:
            raise ConfigError("reconcile_every must be > 0 seconds or None")
        self.registry = registry
        self.clock = clock
        self.rest = rest
        self.limiter = limiter
        self.reconcile_every = reconcile_every
        self._spawn = spawn
        self._emit = emit
        self._refresh = refresh
        self._metadata_requested: set[str] = set()
        self._awaiting_snapshot: set[str] = set()
        self._resyncing: set[str] = set()
        # The timer loop sleeps until ``_timer_at`` (None: no deadline); ``_timer_wake`` wakes it
        # early when a book gets an earlier deadline.
        self._timer_wake = asyncio.Event()
        self._timer_at: float | None = None
        # Set when a batch left hash checks for after the hand-off (see BookOptions
        # verify_before_handoff); the verify loop runs them. Only while that loop runs.
        self._verify_due = asyncio.Event()
        self._verifying = False
        self.rest_resyncs = 0
        self.socket_resyncs = 0
        self.metadata_failures = 0
        self.maintenance_restarts = 0
        self.maintenance_error: str | None = None
        self._malformed_logged: set[str] = set()

    def __repr__(self) -> str:
        synced = sum(1 for book in self.registry.values() if book.synced)
        return (
            f"<BookKeeper books={len(self.registry)} synced={synced} "
            f"resyncing={len(self._resyncing)} rest_resyncs={self.rest_resyncs} "
            f"socket_resyncs={self.socket_resyncs} timer_at={self._timer_at} "
            f"maintenance_restarts={self.maintenance_restarts} "
            f"maintenance_error={self.maintenance_error!r}>"
        )

    # ------------------------------------------------------------------ reader side (sync)

    def observe(
        self, events: Sequence[object], scope: Collection[str] | None = None
    ) -> Sequence[object]:
        """Apply market events to the books; return the events with book verdicts inserted.

        Consecutive verdicts of one action and reason become one event, placed right after the
        last event that caused it. ``scope``: the assets of the connection the events came from
        (a pool's); its ``Disconnected`` invalidates only those books (None: every book).
        """
        registry = self.registry
        now = self.clock.now()
        if self._verify_due.is_set():
            # The last batch's checks did not run yet: they prove the books this batch starts
            # from, so they come first, and so do their verdicts.
            self._verify_due.clear()
            early = [v for v in registry.end_batch(now) if v.action != "ok"]
            if early:
                events = [*lifecycle_events(early, self._malformed_logged), *events]
                self._schedule_resyncs()
        # (index of the event that caused them, verdicts), in event order.
        caused: list[tuple[int, list[BookVerdict]]] = []
        apply_run = registry.apply_run
        count = len(events)
        index = 0
        while True:
            # The book updates (nearly every event) in one call; the rest one by one here.
            index = apply_run(events, index, now, caused)
            if index >= count:
                break
            event = events[index]
            verdicts: list[BookVerdict]
            if isinstance(event, Book):
                verdicts = registry.apply(event, now)
                self._awaiting_snapshot.discard(event.asset_id)
                if event.market not in self._metadata_requested and self.rest is not None:
                    self._metadata_requested.add(event.market)
                    self._start(functools.partial(self._fetch_metadata, event.market), "metadata")
            elif isinstance(event, Disconnected):
                if scope is None:
                    verdicts = registry.invalidate_all("reconnect")
                    # The replay after the reconnect brings a snapshot per asset: no REST needed.
                    self._awaiting_snapshot.update(registry)
                else:
                    # One connection of a pool: the others' books are still live.
                    books = [book for a in sorted(scope) if (book := registry.get(a)) is not None]
                    verdicts = [
                        v for book in books if (v := book.invalidate("reconnect")).action != "ok"
                    ]
                    self._awaiting_snapshot.update(a for a in scope if registry.get(a) is not None)
            elif isinstance(event, Stale) and event.kind == "asset":
                # The snapshot we waited for did not come: REST is the way left.
                self._awaiting_snapshot.difference_update(event.asset_ids)
                self._schedule_resyncs()
                verdicts = []
            else:
                verdicts = []
            if verdicts:
                caused.append((index, verdicts))
            index += 1
        # The state to prove is the one at the end of the batch (a batched registry checks every
        # hash it skipped on the way here). Nothing to place a verdict after in an empty batch:
        # the next one checks.
        if events and self._verifying and not registry.options.verify_before_handoff:
            self._verify_due.set()
            checked: list[BookVerdict] = []
        else:
            checked = registry.end_batch(now) if events else []
        for verdict in checked:
            if verdict.action != "ok":
                caused.append((len(events) - 1, [verdict]))
        # Doubts start on the reader without a verdict: the timer loop must hear of deadlines.
        earliest = registry.take_deadline()
        if earliest is not None and (self._timer_at is None or earliest < self._timer_at):
            self._timer_wake.set()
        if not caused:
            return events
        if any(v.action == "invalidated" for _, verdicts in caused for v in verdicts):
            self._schedule_resyncs()
        return _insert_after_causes(events, caused, self._malformed_logged)

    def _schedule_resyncs(self) -> None:
        for asset in self.registry.needing_resync():
            if asset in self._awaiting_snapshot or asset in self._resyncing:
                continue
            self._resyncing.add(asset)
            self._start(functools.partial(self._resync, asset), "resync")

    def _start(self, factory: CoroutineFactory, what: str) -> None:
        # A factory, not a coroutine: when the stream is stopping, spawn creates nothing that
        # would never be awaited. The stream's task group owns (and at close cancels) the task.
        self._spawn(functools.partial(self._guarded, factory), f"polyfeed-book-{what}")

    # ------------------------------------------------------------------ on demand

    def invalidate(self, assets: Sequence[str], reason: str) -> None:
        """Invalidate these books now and resync them (REST, else a fresh socket snapshot)."""
        verdicts = [
            book.invalidate(reason) for asset in assets if (book := self.registry.get(asset))
        ]
        events = lifecycle_events([v for v in verdicts if v.action != "ok"], self._malformed_logged)
        if events:
            self._emit(events)
        self._schedule_resyncs()

    async def reconcile(self, assets: Sequence[str]) -> dict[str, BookVerdict]:
        """Compare each book with REST ``/book`` (rate-limited); a mismatch resyncs the book."""
        if self.rest is None:
            raise RestError(None, "(none)", "no REST endpoint configured")
        results: dict[str, BookVerdict] = {}
        for asset in assets:
            await self._acquire()
            snapshot = await self.rest.book(asset)
            verdict = self.registry.reconcile(snapshot, self.clock.now())
            results[asset] = verdict
            # A REST book ahead of ours starts a pending comparison with a deadline.
            self._timer_wake.set()
            if verdict.action != "ok":
                self._emit(lifecycle_events([verdict], self._malformed_logged))
                self._schedule_resyncs()
        return results

    async def _acquire(self) -> None:
        clock = self.clock
        while not self.limiter.try_acquire(clock.now()):
            await clock.sleep_until(self.limiter.next_available(clock.now()))

    # ------------------------------------------------------------------ I/O side (tasks)

    async def _guarded(self, factory: CoroutineFactory) -> None:
        """Run one metadata fetch or resync, logging instead of raising an unexpected error.

        Boundary: the keeper's tasks share the stream's TaskGroup, where an unexpected error
        would take the whole stream down. A failed resync leaves the book unsynced, which is
        safe and visible (``book.synced``); the error is kept in ``maintenance_error``.
        """
        try:
            await factory()
        except Exception as exc:
            self.maintenance_error = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "book maintenance task failed (%s)", self.maintenance_error, exc_info=exc
            )

    async def _fetch_metadata(self, market: str) -> None:
        assert self.rest is not None
        try:
            info = await self.rest.market(market)
        except RestError as exc:
            # Without metadata the hash check is skipped (counted), not failed.
            self.metadata_failures += 1
            self._metadata_requested.discard(market)
            logger.warning("market metadata for %s unavailable: %s", market, exc)
            return
        self.registry.set_market_info(
            market, min_order_size=info.minimum_order_size, neg_risk=info.neg_risk
        )

    async def _resync(self, asset: str) -> None:
        try:
            clock = self.clock
            await self._acquire()
            book = self.registry.get(asset)
            if book is None or book.synced or not book.needs_resync:
                return
            if self.rest is None:
                self._refresh_on_socket(asset)
                return
            resync_id = book.begin_resync()
            try:
                snapshot = await self.rest.book(asset)
            except RestError as exc:
                book.abort_resync()
                logger.warning("REST resync of %s failed (%s); re-requesting it", asset, exc)
                self._refresh_on_socket(asset)
                return
            except BaseException:
                # Cancelled or crashed: no resync may stay "in flight" for ever.
                book.abort_resync()
                raise
            verdict = self.registry.complete_resync(snapshot, resync_id=resync_id, now=clock.now())
            self.rest_resyncs += 1
            self._timer_wake.set()
            if verdict.action != "ok":
                self._emit(lifecycle_events([verdict], self._malformed_logged))
            else:
                self._schedule_resyncs()
        finally:
            self._resyncing.discard(asset)

    def _refresh_on_socket(self, asset: str) -> None:
        self.socket_resyncs += 1
        self._awaiting_snapshot.add(asset)
        self._refresh([asset])

    # ------------------------------------------------------------------ maintenance

    async def run(self) -> None:
        """The keeper's maintenance until cancelled: book timers, the end-of-read hash checks
        that run after the hand-off (see ``BookOptions.verify_before_handoff``; without this
        running, ``observe`` does them itself) and, with ``reconcile_every``, the periodic REST
        reconcile.

        A crash in any loop is logged at WARNING with the exception, counted in
        ``maintenance_restarts`` (the last one in ``maintenance_error``) and the loop restarts
        after ``RESTART_BASE`` seconds, doubling per consecutive crash up to ``RESTART_MAX``.
        """
        async with asyncio.TaskGroup() as group:
            group.create_task(self._supervise("book timers", self._timer_loop))
            group.create_task(self._supervise("book verification", self._verify_loop))
            every = self.reconcile_every
            if every is not None:
                group.create_task(
                    self._supervise(
                        "REST reconcile", functools.partial(self._reconcile_loop, every)
                    )
                )

    async def _supervise(
        self, name: str, loop: Callable[[], Coroutine[Any, Any, NoReturn]]
    ) -> None:
        clock = self.clock
        crashes = 0
        while True:
            started = clock.now()
            try:
                await loop()
            except Exception as exc:
                # Boundary: one policy for background loops, restart with backoff and report.
                if clock.now() - started >= RESTART_STABLE_FOR:
                    crashes = 0
                delay = min(RESTART_MAX, RESTART_BASE * 2.0**crashes)
                crashes += 1
                self.maintenance_restarts += 1
                self.maintenance_error = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "%s loop crashed (%s); restart %d in %.2fs",
                    name,
                    self.maintenance_error,
                    self.maintenance_restarts,
                    delay,
                    exc_info=exc,
                )
                await clock.sleep_until(clock.now() + delay)

    async def _timer_loop(self) -> NoReturn:
        """Expire doubts on quiet markets (a crossed book nobody updates must still resync)."""
        clock = self.clock
        registry = self.registry
        wake = self._timer_wake
        while True:
            wake.clear()
            now = clock.now()
            deadline = registry.next_deadline()
            if deadline is not None and deadline <= now:
                verdicts = registry.handle_timer(now)
                if verdicts:
                    self._emit(lifecycle_events(verdicts, self._malformed_logged))
                    self._schedule_resyncs()
                deadline = registry.next_deadline()
                if deadline is not None and deadline <= now:
                    # Waiting would spin: a crash gets the restart backoff and is reported.
                    raise RuntimeError(f"book deadline {deadline} still due after handle_timer")
            self._timer_at = deadline
            try:
                if deadline is None:
                    await wake.wait()
                else:
                    handle = clock.call_at(deadline, wake.set)
                    try:
                        await wake.wait()
                    finally:
                        handle.cancel()
            finally:
                self._timer_at = None

    async def _verify_loop(self) -> NoReturn:
        """The end-of-batch hash checks, right after the consumer took the batch's events."""
        due = self._verify_due
        registry = self.registry
        self._verifying = True
        try:
            while True:
                await due.wait()
                # Our wake-up was scheduled while the batch was observed, the consumer's when it
                # was queued, just after: one more turn of the loop lets the consumer go first.
                await asyncio.sleep(0)
                if not due.is_set():
                    continue  # the next batch came first and ran these checks itself
                due.clear()
                verdicts = [v for v in registry.end_batch(self.clock.now()) if v.action != "ok"]
                if verdicts:
                    self._emit(lifecycle_events(verdicts, self._malformed_logged))
                    self._schedule_resyncs()
                earliest = registry.take_deadline()
                if earliest is not None and (self._timer_at is None or earliest < self._timer_at):
                    self._timer_wake.set()
        finally:
            self._verifying = False

    async def _reconcile_loop(self, every: float) -> NoReturn:
        """Compare every synced book with REST ``/book`` once per ``every`` seconds."""
        clock = self.clock
        while True:
            await clock.sleep_until(clock.now() + every)
            assets = [asset for asset, book in self.registry.items() if book.synced]
            try:
                await self.reconcile(assets)
            except RestError as exc:
                logger.warning("periodic REST reconciliation failed: %s", exc)


def lifecycle_events(verdicts: Sequence[BookVerdict], malformed_logged: set[str]) -> list[object]:
    """One ``BookInvalidated``/``BookResynced`` per run of consecutive verdicts of one action and
    reason (``ok`` verdicts are skipped). ``malformed_logged``: see :func:`_merged`."""
    return [event for _, event in _runs([(0, list(verdicts))], malformed_logged)]


def _runs(
    caused: list[tuple[int, list[BookVerdict]]], malformed_logged: set[str]
) -> list[tuple[int, object]]:
    """(index of the last causing event, merged lifecycle event) per run of verdicts."""
    runs: list[tuple[int, object]] = []
    key: tuple[str, str] | None = None
    assets: dict[str, None] = {}
    last = 0
    for index, verdicts in caused:
        for verdict in verdicts:
            if verdict.action == "ok":
                continue
            if (verdict.action, verdict.reason) != key:
                if key is not None:
                    runs.append((last, _merged(key, list(assets), malformed_logged)))
                key = (verdict.action, verdict.reason)
                assets = {}
            assets[verdict.asset_id] = None
            last = index
    if key is not None:
        runs.append((last, _merged(key, list(assets), malformed_logged)))
    return runs


def _merged(key: tuple[str, str], assets: list[str], malformed_logged: set[str]) -> object:
    """The merged event of one run; logs an invalidation at WARNING.

    Malformed input (``"malformed ..."`` reasons: one per kind, see the book) is logged at
    WARNING once per kind per stream, then at DEBUG: a broken upstream would otherwise log
    every message. The count is in each book's ``counters.malformed``.
    """
    action, reason = key
    if action == "invalidated":
        if reason.startswith("malformed "):
            first = reason not in malformed_logged
            malformed_logged.add(reason)
            logger.log(
                logging.WARNING if first else logging.DEBUG,
                "%d book(s) invalidated (%s): %s%s",
                len(assets),
                reason,
                _some(assets),
                "; further ones are logged at DEBUG and counted" if first else "",
            )
        elif reason != "reconnect":
            logger.warning("%d book(s) invalidated (%s): %s", len(assets), reason, _some(assets))
        return BookInvalidated(asset_ids=assets, reason=reason)
    return BookResynced(asset_ids=assets, source=reason)


def _some(assets: list[str], shown: int = 5) -> str:
    more = f" and {len(assets) - shown} more" if len(assets) > shown else ""
    return ", ".join(assets[:shown]) + more


def _insert_after_causes(
    events: Sequence[object],
    caused: list[tuple[int, list[BookVerdict]]],
    malformed_logged: set[str],
) -> list[object]:
    runs = _runs(caused, malformed_logged)
    out: list[object] = []
    position = 0
    for index, event in enumerate(events):
        out.append(event)
        while position < len(runs) and runs[position][0] == index:
            out.append(runs[position][1])
            position += 1
    return out
