"""Resync bookkeeping: synced or not, the snapshot fetch in flight, and the replay buffer.

A book is ``synced`` after a snapshot. Invalidation marks it unsynced; the caller then fetches a
REST ``/book`` after ``begin_resync`` (within a :class:`ResyncLimiter`). Deltas keep being applied
(best effort) and are buffered while unsynced or while a fetch is in flight; completing the resync
loads the snapshot and replays the buffered messages whose timestamp is *greater* than the
snapshot's. A message with the *same* timestamp is taken as already in the snapshot: the server
stamps a book with the time of its latest change, and all messages of one matching event share
one timestamp (real captures). Each fetch has an id; a late answer to an abandoned fetch is stale.

:class:`SnapshotSide` is the resync protocol's side of ``OrderBook``: loading a snapshot replaces
the levels, verifies its hash (a snapshot is the truth: a failure there re-runs scheme detection)
and replays the buffer; invalidation marks the book unsynced and drops every doubt. The live side
(``apply``) is :mod:`polyfeed.core.book.order_book`.
"""

from __future__ import annotations

from collections import deque

from mypy_extensions import mypyc_attr

from polyfeed.core.book.integrity import DETECT_BUDGET
from polyfeed.core.book.levels import MALFORMED_ENTRY, decimal_of
from polyfeed.core.book.numbers import is_decimal, is_optional_price, parse_price, tick_key
from polyfeed.core.book.options import BookOptions, BookVerdict
from polyfeed.core.book.reconcile import RestCheck
from polyfeed.core.book.view import OrderBookView
from polyfeed.core.messages import Book, PriceChangeEntry
from polyfeed.errors import ConfigError

__all__ = ["MALFORMED_SNAPSHOT", "Buffered", "ResyncState", "SnapshotSide", "malformed_reason"]

MALFORMED_SNAPSHOT = "malformed snapshot"
"""The invalidation reason for a snapshot (WS or REST) with a number outside the grammar."""

Buffered = tuple[int, tuple[PriceChangeEntry, ...], bool]
"""(timestamp, the asset's entries, whether its malformed entries were already counted)."""


class ResyncState:
    """Whether the book is synced, the fetch in flight, and the messages kept for replay."""

    __slots__ = ("buffer", "ever_synced", "in_flight", "resync_id", "synced")

    def __init__(self, max_buffered: int) -> None:
        self.synced = False
        self.ever_synced = False
        self.in_flight = False
        self.resync_id = 0
        self.buffer: deque[Buffered] = deque(maxlen=max_buffered)

    def __repr__(self) -> str:
        state = "synced" if self.synced else "resyncing" if self.in_flight else "unsynced"
        return f"ResyncState({state}, id={self.resync_id}, buffered={len(self.buffer)})"

    @property
    def buffering(self) -> bool:
        """Messages are kept for replay (unsynced, or a fetch is in flight)."""
        return not self.synced or self.in_flight

    def keep(self, timestamp: int, entries: tuple[PriceChangeEntry, ...], judged: bool) -> bool:
        """Buffer one message; whether the oldest had to be dropped for it (buffer full)."""
        buffer = self.buffer
        full = len(buffer) == buffer.maxlen
        buffer.append((timestamp, entries, judged))
        return full

    def begin(self) -> int:
        """A fetch starts: its id."""
        self.resync_id += 1
        self.in_flight = True
        return self.resync_id

    def abandon(self) -> None:
        """No fetch in flight any more; an answer to the last one is stale."""
        self.in_flight = False
        self.resync_id += 1

    def is_current(self, resync_id: int) -> bool:
        """Whether ``resync_id`` is the fetch in flight."""
        return self.in_flight and resync_id == self.resync_id

    def take(self, snapshot_timestamp: int) -> list[Buffered]:
        """Empty the buffer; the messages newer than the snapshot, oldest first."""
        newer = [item for item in self.buffer if item[0] > snapshot_timestamp]
        self.buffer.clear()
        return newer


# Open to Python subclasses because OrderBook is (mypyc requires it of every base).
@mypyc_attr(allow_interpreted_subclasses=True)
class SnapshotSide(OrderBookView):
    """Loading snapshots, replaying the buffer, invalidating; state upkeep shared with ``apply``."""

    __slots__ = (
        "_deferred",
        "_deferred_timestamp",
        "_hash_countdown",
        "_hash_every",
        "_ok",
        "_options",
        "_quiet",
        "_rest",
        "_restless",
        "_tick_key",
        "_top_ask_key",
        "_top_bid",
    )

    _options: BookOptions
    _rest: RestCheck
    _ok: BookVerdict
    _quiet: bool
    # Where the book records itself whenever it is not quiet (it may have a deadline): the
    # registry's, so its driver learns of new deadlines without asking every book it touched.
    _restless: set[SnapshotSide] | None
    _hash_countdown: int
    _hash_every: int
    # The last message of a batched book whose hash is not checked yet (end_batch checks it).
    _deferred: PriceChangeEntry | None
    _deferred_timestamp: int
    _tick_key: int
    # The keys best_bid/best_ask were made from, 0 for none (no price key is 0): plain ints,
    # which the compiled fast path compares without boxing.
    _top_bid: int
    _top_ask_key: int

    def _finish_message(
        self, timestamp: int, last: PriceChangeEntry, now: float | None
    ) -> BookVerdict:
        """Every check for a message applied to a synced book (the live side defines it)."""
        raise NotImplementedError  # pragma: no cover

    def next_deadline(self) -> float | None:
        """When the book's timers should run next (the live side defines it)."""
        raise NotImplementedError  # pragma: no cover

    def _set_tick(self, tick_size: str) -> None:
        try:
            key = tick_key(tick_size)
        except ValueError as exc:
            raise ConfigError(f"invalid tick size: {exc}") from None
        self.tick_size = tick_size
        self._tick_key = key

    def _refresh_top(self, entry: PriceChangeEntry | None) -> None:
        """Cache the reported top of book (Decimals are looked up only when it moves)."""
        if entry is None:
            bid, ask = self._levels.top(None, None)
        else:
            bid, ask = self._levels.top(entry.best_bid, entry.best_ask)
        bid_key = 0 if bid is None else bid
        if bid_key != self._top_bid:
            self._top_bid = bid_key
            self.best_bid = None if bid is None else decimal_of(bid)
        ask_key = 0 if ask is None else -ask
        if ask_key != self._top_ask_key:
            self._top_ask_key = ask_key
            self.best_ask = None if ask is None else decimal_of(ask)

    def _update_quiet(self) -> None:
        grace = self._grace
        quiet = self._quiet = (
            grace.doubt is None
            and grace.run is None
            and not self._held.entries
            and self._rest.pending is None
        )
        if not quiet and self._restless is not None:
            self._restless.add(self)

    def _load_snapshot(self, snapshot: Book, source: str, now: float | None) -> BookVerdict:
        # Every number is checked before anything is changed: a snapshot loads whole or not at all.
        if (
            (snapshot.min_order_size is not None and not is_decimal(snapshot.min_order_size))
            or not is_optional_price(snapshot.last_trade_price)
            or (snapshot.tick_size and not _is_tick(snapshot.tick_size))
        ):
            self.counters.malformed += 1
            return self._invalidate(MALFORMED_SNAPSHOT)
        try:
            self._levels.load(snapshot)
        except ValueError:
            self.counters.malformed += 1
            return self._invalidate(MALFORMED_SNAPSHOT)
        if snapshot.tick_size:
            self._set_tick(snapshot.tick_size)
        if self.market is None:
            self.market = snapshot.market
        if snapshot.min_order_size is not None:
            self.min_order_size = snapshot.min_order_size
        if snapshot.neg_risk is not None:
            self.neg_risk = snapshot.neg_risk
        if snapshot.last_trade_price is not None:
            self._last_trade_price = snapshot.last_trade_price
        self.counters.snapshots += 1
        self._timestamp = snapshot.timestamp
        self._timestamp_known = True
        self._deferred = None
        self._held.clear()
        self._grace.clear()
        self._hash.pending = None
        self._update_quiet()
        self._hash_countdown = 0
        self._hash.detect_budget = DETECT_BUDGET
        self._refresh_top(None)
        if snapshot.hash and self._options.hash_check_every:
            self._hash.check_snapshot(
                self._levels,
                self,
                snapshot.hash,
                snapshot.timestamp,
                self._last_trade_price,
                self.counters,
            )
        resync = self._resync
        was_synced = resync.synced
        ever_synced = resync.ever_synced
        resync.synced = resync.ever_synced = True
        if source == "snapshot" and resync.in_flight:
            resync.abandon()  # a WS snapshot supersedes whatever fetch was in flight
        replayed = resync.take(snapshot.timestamp)
        verdict = self._replay(replayed, now)
        if verdict.action == "invalidated":
            # The next snapshot may still be older than them: keep them (already judged).
            for timestamp, entries, _ in replayed:
                resync.keep(timestamp, entries, judged=True)
        if verdict.action == "invalidated" or was_synced:
            return verdict
        if not ever_synced and source == "snapshot":
            # The initial snapshot after subscribing: nothing was announced as lost.
            return verdict
        self.counters.resyncs += 1
        return BookVerdict(self.asset_id, "resynced", source)

    def _replay(self, buffered: list[Buffered], now: float | None) -> BookVerdict:
        """Apply buffered messages newer than the snapshot; checks run once, on the last one.

        The same :meth:`Levels.set` as live messages: a malformed entry changes nothing,
        is counted if it was not judged on arrival, and invalidates the book.
        """
        if not buffered:
            return self._ok
        set_level = self._levels.set
        bad: PriceChangeEntry | None = None
        for _, entries, judged in buffered:
            for entry in entries:
                if set_level(entry.side, entry.price, entry.size, 0) == MALFORMED_ENTRY:
                    bad = entry
                    if not judged:
                        self.counters.malformed += 1
        timestamp, entries, _ = buffered[-1]
        self._timestamp = timestamp
        self._timestamp_known = True
        if bad is not None:
            self._refresh_top(None)
            return self._invalidate(malformed_reason(bad))
        self._hash_countdown = 0
        return self._finish_message(timestamp, entries[-1], now)

    def begin_resync(self) -> int:
        """A snapshot fetch starts; returns its id for :meth:`complete_resync`.

        Deltas are buffered from now on (they already are while unsynced).
        """
        return self._resync.begin()

    def abort_resync(self) -> None:
        """The snapshot fetch failed; :attr:`needs_resync` becomes true again if unsynced."""
        self._resync.abandon()
        if self._resync.synced:
            self._resync.buffer.clear()

    def complete_resync(
        self, snapshot: Book, *, resync_id: int | None = None, now: float | None = None
    ) -> BookVerdict:
        """Load a REST ``/book`` snapshot and replay buffered deltas newer than it.

        Ignored (verdict ``ok``, reason ``"stale resync"``) when ``resync_id`` is not the latest
        :meth:`begin_resync` id, or when the book is synced with no resync in flight and the
        snapshot is older than the book (a WS snapshot overtook the fetch).
        """
        if snapshot.asset_id != self.asset_id:
            raise ConfigError(f"snapshot for {snapshot.asset_id} given to book {self.asset_id}")
        resync = self._resync
        if resync_id is not None and not resync.is_current(resync_id):
            return BookVerdict(self.asset_id, "ok", "stale resync")
        if (
            resync.synced
            and not resync.in_flight
            and self._timestamp_known
            and snapshot.timestamp < self._timestamp
        ):
            return BookVerdict(self.asset_id, "ok", "stale resync")
        resync.abandon()
        return self._load_snapshot(snapshot, "rest", now)

    def invalidate(self, reason: str) -> BookVerdict:
        """Mark the book unsynced for an external cause (reconnect, dropped frames, gap).

        A resync in flight is abandoned (its snapshot may predate the gap) and the buffer is
        dropped; deltas are buffered afresh for the next resync.
        """
        if self._resync.in_flight:
            self._resync.abandon()
        self._resync.buffer.clear()
        return self._invalidate(reason)

    def _invalidate(self, reason: str) -> BookVerdict:
        self._deferred = None
        self._grace.clear()
        self._hash.pending = None
        self._rest.pending = None
        self._held.clear()
        self._quiet = True
        if not self._resync.synced:
            return self._ok
        self._resync.synced = False
        self.counters.invalidations += 1
        return BookVerdict(self.asset_id, "invalidated", reason)


def malformed_reason(entry: PriceChangeEntry) -> str:
    """The invalidation reason for a malformed entry: its kind, never its (unbounded) text.

    One reason per kind lets the stream merge and log them once per kind, not once per entry.
    """
    if entry.side not in ("BUY", "SELL", "buy", "sell"):
        return "malformed price_change side"
    try:
        parse_price(entry.price)
    except ValueError:
        return "malformed price_change price"
    return "malformed price_change size"


def _is_tick(text: str) -> bool:
    try:
        tick_key(text)
    except ValueError:
        return False
    return True
