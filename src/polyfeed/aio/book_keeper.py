"""Keeps a stream's local order books: applies events on the reader side, resyncs on doubt.

The pure ``BookRegistry`` decides what is wrong (hash mismatch, crossed book beyond grace,
tick-size doubt, reconnect); this keeper does the I/O that follows:

- market metadata for the hash (``min_order_size``, ``neg_risk``) is fetched once per market over
  REST ``/markets/{condition_id}``;
- an invalidated book is resynced from REST ``/book`` (rate-limited), with the deltas that arrive
  during the fetch buffered by the book and replayed on top; if REST fails, the asset is
  re-requested on the socket (unsubscribe + subscribe) for a fresh snapshot;
- after a reconnect every book is invalidated and resynced by the replayed snapshots, no REST.

``BookInvalidated`` / ``BookResynced`` go into the stream right after the event that caused them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from polyfeed.aio.clock import Clock, TimerHandle
from polyfeed.aio.rest import RestClient
from polyfeed.core.book import BookRegistry, BookVerdict, ResyncLimiter
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    PriceChange,
    TickSizeChange,
)
from polyfeed.errors import RestError
from polyfeed.events import BookInvalidated, BookResynced, Disconnected, Stale

logger = logging.getLogger("polyfeed.books")

Spawn = Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]


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
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.rest = rest
        self.limiter = limiter
        self._spawn = spawn
        self._emit = emit
        self._refresh = refresh
        self._tasks: set[asyncio.Task[None]] = set()
        self._metadata_requested: set[str] = set()
        self._awaiting_snapshot: set[str] = set()
        self._resyncing: set[str] = set()
        self._tick = asyncio.Event()
        self._closed = False
        self.rest_resyncs = 0
        self.socket_resyncs = 0
        self.metadata_failures = 0

    def __repr__(self) -> str:
        synced = sum(1 for book in self.registry.values() if book.synced)
        return (
            f"<BookKeeper books={len(self.registry)} synced={synced} "
            f"resyncing={len(self._resyncing)} rest_resyncs={self.rest_resyncs} "
            f"socket_resyncs={self.socket_resyncs}>"
        )

    # ------------------------------------------------------------------ reader side (sync)

    def observe(self, events: Sequence[object]) -> Sequence[object]:
        """Apply market events to the books; return the events with book verdicts inserted."""
        registry = self.registry
        out: list[object] | None = None
        now = self.clock.now()
        for index, event in enumerate(events):
            verdicts: list[BookVerdict]
            if isinstance(event, PriceChange | LastTradePrice | TickSizeChange | BestBidAsk):
                verdicts = registry.apply(event, now)
            elif isinstance(event, Book):
                verdicts = registry.apply(event, now)
                self._awaiting_snapshot.discard(event.asset_id)
                if event.market not in self._metadata_requested and self.rest is not None:
                    self._metadata_requested.add(event.market)
                    self._start(self._fetch_metadata(event.market))
            elif isinstance(event, Disconnected):
                verdicts = registry.invalidate_all("reconnect")
                # The replay after the reconnect brings a snapshot per asset: no REST needed.
                self._awaiting_snapshot.update(registry)
            elif isinstance(event, Stale) and event.kind == "asset":
                # The snapshot we waited for did not come: REST is the way left.
                self._awaiting_snapshot.difference_update(event.asset_ids)
                self._schedule_resyncs()
                verdicts = []
            else:
                verdicts = []
            if verdicts:
                if out is None:
                    out = list(events[:index])
                out.append(event)
                out.extend(self._lifecycle(verdicts))
            elif out is not None:
                out.append(event)
        if out is None:
            return events
        self._schedule_resyncs()
        return out

    def _lifecycle(self, verdicts: list[BookVerdict]) -> list[object]:
        events: list[object] = []
        for verdict in verdicts:
            if verdict.action == "invalidated":
                if verdict.reason != "reconnect":
                    logger.warning("book %s invalidated: %s", verdict.asset_id, verdict.reason)
                events.append(BookInvalidated(asset_id=verdict.asset_id, reason=verdict.reason))
            elif verdict.action == "resynced":
                events.append(BookResynced(asset_id=verdict.asset_id, source=verdict.reason))
        return events

    def _schedule_resyncs(self) -> None:
        for asset in self.registry.needing_resync():
            if asset in self._awaiting_snapshot or asset in self._resyncing:
                continue
            self._resyncing.add(asset)
            self._start(self._resync(asset))

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        guarded = self.guarded(coro)
        if self._closed:
            guarded.close()
            coro.close()
            return
        task = self._spawn(guarded)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ on demand

    def invalidate(self, assets: Sequence[str], reason: str) -> None:
        """Invalidate these books now and resync them (REST, else a fresh socket snapshot)."""
        verdicts = [
            book.invalidate(reason) for asset in assets if (book := self.registry.get(asset))
        ]
        events = self._lifecycle([v for v in verdicts if v.action != "ok"])
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
            if verdict.action != "ok":
                self._emit(self._lifecycle([verdict]))
                self._schedule_resyncs()
        return results

    async def _acquire(self) -> None:
        clock = self.clock
        while not self.limiter.try_acquire(clock.now()):
            await clock.sleep_until(self.limiter.next_available(clock.now()))

    # ------------------------------------------------------------------ I/O side (tasks)

    async def guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro``, logging instead of raising an unexpected error.

        Boundary: the keeper's tasks share the stream's TaskGroup, where an unexpected error
        would take the whole stream down. A failed resync leaves the book unsynced, which is
        safe and visible (``book.synced``).
        """
        try:
            await coro
        except Exception:
            logger.exception("book maintenance task failed")

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
            verdict = self.registry.complete_resync(snapshot, resync_id=resync_id, now=clock.now())
            self.rest_resyncs += 1
            if verdict.action != "ok":
                self._emit(self._lifecycle([verdict]))
            else:
                self._schedule_resyncs()
        finally:
            self._resyncing.discard(asset)

    def _refresh_on_socket(self, asset: str) -> None:
        self.socket_resyncs += 1
        self._awaiting_snapshot.add(asset)
        self._refresh([asset])

    async def run_timers(self) -> None:
        """Expire doubts on quiet markets (a crossed book nobody updates must still resync)."""
        clock = self.clock
        handle: TimerHandle | None = None
        try:
            while True:
                deadline = self.registry.next_deadline()
                now = clock.now()
                if deadline is not None and deadline <= now:
                    verdicts = self.registry.handle_timer(now)
                    if verdicts:
                        self._emit(self._lifecycle(verdicts))
                        self._schedule_resyncs()
                    continue
                # Doubts start on the reader without telling us: look again at least every
                # quarter second, or at the known deadline.
                wake_at = now + 0.25 if deadline is None else min(deadline, now + 0.25)
                handle = clock.call_at(wake_at, self._tick.set)
                await self._tick.wait()
                self._tick.clear()
                handle.cancel()
                handle = None
        finally:
            if handle is not None:
                handle.cancel()

    async def reconcile_periodically(self, every: float) -> None:
        """Compare every synced book with REST ``/book`` once per ``every`` seconds."""
        clock = self.clock
        while True:
            await clock.sleep_until(clock.now() + every)
            assets = [asset for asset, book in self.registry.items() if book.synced]
            try:
                await self.reconcile(assets)
            except RestError as exc:
                logger.warning("periodic REST reconciliation failed: %s", exc)

    def cancel_tasks(self) -> None:
        """Cancel metadata fetches and resyncs in flight (stream shutdown)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
