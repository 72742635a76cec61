"""The L2 book of one asset: the façade that composes levels, integrity, doubt and resync.

Events go in (:meth:`OrderBook.apply`, :meth:`OrderBook.complete_resync`, ...), verdicts come out;
the caller does the I/O. Where each rule lives: levels and their validation in
:mod:`~polyfeed.core.book.levels` and :mod:`~polyfeed.core.book.numbers`; hash checks and scheme
detection in :mod:`~polyfeed.core.book.integrity`; doubt, grace and hash runs in
:mod:`~polyfeed.core.book.doubt`; held off-grid deltas in :mod:`~polyfeed.core.book.held`;
snapshots, buffering, replay and invalidation in :mod:`~polyfeed.core.book.resync`
(``SnapshotSide``, a base class of ``OrderBook``); REST comparison in
:mod:`~polyfeed.core.book.reconcile`; the read-only API in :mod:`~polyfeed.core.book.view`
(``OrderBookView``, the base of both). This module holds the live side: the order in which the
checks are consulted for a message, and the fast path for the common one (nothing in doubt, no
hash due).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from decimal import Decimal
from typing import Final, assert_never

import msgspec
from mypy_extensions import mypyc_attr

from polyfeed.core.book.doubt import HELD_OFF_GRID, Grace
from polyfeed.core.book.held import HeldDeltas
from polyfeed.core.book.integrity import DETECT_BUDGET, MATCH, MISMATCH, SKIPPED, HashCheck
from polyfeed.core.book.levels import HELD, MALFORMED_ENTRY, Levels, decimal_of, level_index
from polyfeed.core.book.numbers import (
    COMPILED,
    DECIMALS,
    MALFORMED,
    POSITIVE,
    PRICES,
    is_decimal,
    is_optional_price,
    scan_size_kind,
    size_kind,
)
from polyfeed.core.book.options import BookCounters, BookOptions, BookVerdict
from polyfeed.core.book.reconcile import MISMATCHED, RestCheck
from polyfeed.core.book.resync import (
    MALFORMED_SNAPSHOT,
    ResyncState,
    SnapshotSide,
    malformed_reason,
)
from polyfeed.core.book_hash import HashScheme
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    MarketEvent,
    MarketResolved,
    NewMarket,
    PriceChange,
    PriceChangeEntry,
    TickSizeChange,
)
from polyfeed.errors import ConfigError

__all__ = ["MALFORMED_LAST_TRADE", "MALFORMED_TICK", "EntryFields", "OrderBook", "entry_fields"]

MALFORMED_TICK = "malformed tick_size_change"
MALFORMED_LAST_TRADE = "malformed last_trade_price"

EntryFields = tuple[str, str, str, str, str, str | None, str | None]
"""A ``PriceChangeEntry``'s fields in order: asset_id, price, size, side, hash, best_bid,
best_ask."""

entry_fields: Final[Callable[[PriceChangeEntry], EntryFields]] = msgspec.structs.astuple
"""The fields of an entry in one call. Compiled (``setup.py``), each attribute read of a msgspec
Struct is a generic lookup costing several times this per field; a test pins the order."""


# Compiled (setup.py), a class is closed to Python subclasses unless it says otherwise; the
# property test that pins the fast path to the full one subclasses this one.
@mypyc_attr(allow_interpreted_subclasses=True)
class OrderBook(SnapshotSide):
    """The L2 book of one asset (outcome token). Pure: feed events, read state and verdicts."""

    __slots__ = (
        "_batch",
        "_seen_ask",
        "_seen_ask_text",
        "_seen_bid",
        "_seen_bid_text",
        "_top_check_on",
    )

    def __init__(
        self,
        asset_id: str,
        market: str | None = None,
        *,
        tick_size: str | None = None,
        min_order_size: str | None = None,
        neg_risk: bool | None = None,
        hash_scheme: HashScheme = HashScheme.V2026,
        options: BookOptions | None = None,
        batch: list[OrderBook] | None = None,
        restless: set[SnapshotSide] | None = None,
    ) -> None:
        """``batch``: makes the book *batched* (see :class:`BookOptions` ``verify_every``); the
        book appends itself to this list when a message leaves its hash unchecked, and whoever
        owns the list calls :meth:`end_batch` on its books at the end of each batch.
        ``restless``: the book adds itself to this set whenever it leaves a call not quiet (a
        doubt, hash run, held delta or pending REST check: it may have a deadline), so its
        owner learns of new deadlines without asking every book (``BookRegistry`` passes one)."""
        self.asset_id = asset_id
        self.market = market
        self.tick_size: str | None = None
        self._tick_key = 0
        self.min_order_size = min_order_size
        self.neg_risk = neg_risk
        self._options = options = options if options is not None else BookOptions()
        # Copied from the (frozen) options: the fast path reads them on every message.
        every = options.hash_check_every
        self._hash_every = every and (every if batch is None else options.verify_every)
        self._batch = batch
        self._restless = restless
        self._deferred = None
        self._deferred_timestamp = 0
        self._top_check_on = options.check_top
        # A server best bid/ask text and the (bid, ask-side) key it was found to equal.
        self._seen_bid = self._seen_ask = 0
        self._seen_bid_text = self._seen_ask_text = ""
        self.counters = BookCounters()
        self._levels = Levels()
        self._hash = HashCheck(hash_scheme, auto_detect=options.auto_detect_scheme)
        self._grace = Grace(options, self.counters)
        self._held = HeldDeltas()
        self._resync = ResyncState(options.max_buffered)
        self._rest = RestCheck(options.grace_seconds, self.counters)
        # Plain attributes, not properties: reading the top of book is the other hot path.
        # Read-only by contract.
        self.best_bid: Decimal | None = None
        """Best bid price (the server's while our raw book is transiently crossed)."""
        self.best_ask: Decimal | None = None
        """Best ask price (the server's while our raw book is transiently crossed)."""
        self._top_bid = 0
        self._top_ask_key = 0  # the ask side's key: the negated price
        self._last_trade_price: str | None = None
        self._timestamp = 0
        self._timestamp_known = False
        # No doubt, no open run, no held delta, no pending REST check: the fast path may skip
        # the checks. Cleared where any of those starts; recomputed by the full path.
        self._quiet = True
        self._hash_countdown = 0
        self._ok = BookVerdict(asset_id, "ok")
        if tick_size is not None:
            self._set_tick(tick_size)

    # ------------------------------------------------------------------ metadata

    def set_market_info(
        self,
        min_order_size: str | None = None,
        tick_size: str | None = None,
        neg_risk: bool | None = None,
    ) -> None:
        """Market metadata the 2025/2026 hash covers (REST ``/markets/{condition_id}``).

        Never raises: a value outside the grammar (a size for ``min_order_size``, one of
        Polymarket's ticks for ``tick_size``) is counted as malformed and not adopted, so the
        hash check stays skipped rather than failing on a bad input.
        """
        if min_order_size is not None:
            if is_decimal(min_order_size):
                self.min_order_size = min_order_size
            else:
                self.counters.malformed += 1
        if tick_size is not None:
            try:
                self._set_tick(tick_size)
            except ConfigError:
                self.counters.malformed += 1
        if neg_risk is not None:
            self.neg_risk = neg_risk
        self._hash.detect_budget = DETECT_BUDGET

    # ------------------------------------------------------------------ applying events

    def apply(self, event: MarketEvent, now: float | None = None) -> BookVerdict:
        """Apply a market event; entries and events for other assets are ignored.

        A ``price_change`` is handled right here: it is the hot path of the whole library.
        Each entry goes through :meth:`Levels.set`; a malformed entry (bad price, side or size)
        changes nothing, is counted and invalidates the book.
        """
        if type(event) is not PriceChange and not isinstance(event, PriceChange):
            return self._apply_other(event, now)
        asset = self.asset_id
        last: PriceChangeEntry | None = None
        bad: PriceChangeEntry | None = None
        malformed = 0
        resync = self._resync
        synced = resync.synced
        # Off-grid deltas are only suspicious against a synced book with a known grid.
        tick = self._tick_key if synced else 0
        levels = self._levels
        set_level = levels.set
        for entry in event.price_changes:
            if entry.asset_id != asset:
                continue
            last = entry
            status = set_level(entry.side, entry.price, entry.size, tick)
            if status:
                if status == HELD:
                    self._held.hold(entry)
                    self._quiet = False
                    if self._restless is not None:
                        self._restless.add(self)
                    self.counters.held_entries += 1
                elif status == MALFORMED_ENTRY:
                    malformed += 1
                    bad = bad or entry
        if last is None:
            return self._ok
        if bad is not None or resync.in_flight or not synced:
            return self._keep(event, event.timestamp, last, (bad, malformed), synced, now)
        return self._conclude(event.timestamp, last, last.best_bid, last.best_ask, now)

    def apply_entry(
        self, event: PriceChange, entry: PriceChangeEntry, now: float | None = None
    ) -> BookVerdict:
        """:meth:`apply` for a ``price_change`` whose only entry for this book is ``entry``.

        That is the common shape (one token's change, or one of a binary market's mirrored
        pair), and :class:`BookRegistry` routes it here: :meth:`Levels.set` is inlined for a
        well-formed, on-grid entry with a price seen before, on a synced book; anything else goes
        through :meth:`apply`. A property test pins the two equal.
        """
        return self.apply_fields(event, entry, entry_fields(entry), now)

    def apply_fields(
        self,
        event: PriceChange,
        entry: PriceChangeEntry,
        fields: EntryFields,
        now: float | None = None,
    ) -> BookVerdict:
        """:meth:`apply_entry` with ``fields`` (:func:`entry_fields` of ``entry``) already read:
        the registry reads them to find the book."""
        resync = self._resync
        _, price, size, side, _, best_bid, best_ask = fields
        hit = PRICES.get(price)
        if hit is not None and resync.synced and not resync.in_flight:
            kind = scan_size_kind(size) if COMPILED else size_kind(size)
            positive = kind == POSITIVE
            tick = self._tick_key
            if kind != MALFORMED and not (positive and tick and hit[0] % tick):
                levels = self._levels
                if side == "BUY":
                    key = hit[0]
                    keys = levels.bid_keys
                    texts = levels.bid_texts
                    levels.bid_json = None
                elif side == "SELL":
                    key = -hit[0]
                    keys = levels.ask_keys
                    texts = levels.ask_texts
                    levels.ask_json = None
                else:
                    return self.apply(event, now)
                index = level_index(keys, key) if COMPILED else bisect_left(keys, key)
                if index < len(keys) and keys[index] == key:
                    if positive:
                        texts[index] = f'{{"price":"{price}","size":"{size}"}}'
                    else:
                        del keys[index]
                        del texts[index]
                elif positive:
                    keys.insert(index, key)
                    texts.insert(index, f'{{"price":"{price}","size":"{size}"}}')
                return self._conclude(event.timestamp, entry, best_bid, best_ask, now)
        return self.apply(event, now)

    def _conclude(
        self,
        timestamp: int,
        last: PriceChangeEntry,
        server_bid: str | None,
        server_ask: str | None,
        now: float | None,
    ) -> BookVerdict:
        """After a message's entries were applied to a synced book: its checks (``server_bid``
        and ``server_ask``: ``last``'s ``best_bid`` and ``best_ask``)."""
        levels = self._levels
        if self._quiet:
            # Fast path: nothing in doubt, no hash due, book not crossed, and the server's top
            # (if sent) a price text already parsed (PRICES) and equal to ours. Anything else takes
            # the full path below, which repeats these steps with every check.
            every = self._hash_every
            countdown = self._hash_countdown - 1 if every else 1
            bids = levels.bid_keys
            asks = levels.ask_keys
            if countdown > 0 and bids and asks:
                bid = bids[-1]
                ask_key = asks[-1]
                calm = bid < -ask_key
                if (
                    calm
                    and self._top_check_on
                    and (server_bid is not None or server_ask is not None)
                ):
                    # The server spells its top alike message after message: a text once
                    # found (PRICES) equal to our top is compared as text, not looked up.
                    if server_bid is not None and not (
                        bid == self._seen_bid and server_bid == self._seen_bid_text
                    ):
                        hit = PRICES.get(server_bid)
                        if hit is not None and hit[0] == bid:
                            self._seen_bid = bid
                            self._seen_bid_text = server_bid
                        else:
                            calm = False
                    if (
                        calm
                        and server_ask is not None
                        and not (ask_key == self._seen_ask and server_ask == self._seen_ask_text)
                    ):
                        hit = PRICES.get(server_ask)
                        if hit is not None and hit[0] == -ask_key:
                            self._seen_ask = ask_key
                            self._seen_ask_text = server_ask
                        else:
                            calm = False
                    if calm:
                        self.counters.top_checks += 1
                if calm:
                    if every:
                        self._hash_countdown = countdown
                        batch = self._batch
                        if batch is not None:
                            if self._deferred is None:
                                batch.append(self)
                            self._deferred = last
                            self._deferred_timestamp = timestamp
                    self._timestamp = timestamp
                    if bid != self._top_bid:
                        self._top_bid = bid
                        self.best_bid = DECIMALS.get(bid) or decimal_of(bid)
                    if ask_key != self._top_ask_key:
                        self._top_ask_key = ask_key
                        self.best_ask = DECIMALS.get(-ask_key) or decimal_of(-ask_key)
                    return self._ok
        return self._finish_message(timestamp, last, now)

    def _keep(
        self,
        event: PriceChange,
        timestamp: int,
        last: PriceChangeEntry,
        malformed: tuple[PriceChangeEntry | None, int],
        synced: bool,
        now: float | None,
    ) -> BookVerdict:
        """A message to buffer: the book is unsynced, a fetch is in flight, or it is malformed.

        A malformed message is judged at once on a synced book (counted, invalidated) and also
        buffered, so a snapshot older than it cannot hide it; on an unsynced book it is judged
        at replay, and only if the snapshot does not cover it.
        """
        if self.market is None:
            self.market = event.market
        asset = self.asset_id
        entries = tuple(e for e in event.price_changes if e.asset_id == asset)
        verdict = self._ok
        bad, count = malformed
        if bad is not None and synced:
            self.counters.malformed += count
            verdict = self._invalidate(malformed_reason(bad))
        if self._resync.keep(timestamp, entries, judged=synced):
            self.counters.buffer_dropped += 1
        if verdict is self._ok and self._resync.synced:
            return self._finish_message(timestamp, last, now)
        self._timestamp = timestamp
        self._timestamp_known = True
        self._refresh_top(last)
        return verdict

    def _apply_other(self, event: MarketEvent, now: float | None) -> BookVerdict:
        match event:
            case PriceChange():  # handled by apply()
                return self._ok
            case Book():
                if event.asset_id != self.asset_id:
                    return self._ok
                return self._load_snapshot(event, "snapshot", now)
            case LastTradePrice():
                if event.asset_id != self.asset_id:
                    return self._ok
                return self._on_last_trade(event.price, now)
            case TickSizeChange():
                if event.asset_id != self.asset_id:
                    return self._ok
                return self._on_tick_size(event.new_tick_size)
            case BestBidAsk():
                if event.asset_id == self.asset_id and self.synced and self._options.check_top:
                    self._check_top(event.best_bid, event.best_ask)
                return self._ok
            case NewMarket() | MarketResolved():
                return self._ok
            case _:
                assert_never(event)

    def _finish_message(
        self, timestamp: int, last: PriceChangeEntry, now: float | None
    ) -> BookVerdict:
        """Every check, in order, for a message applied to a synced book."""
        self._timestamp = timestamp
        result = SKIPPED
        every = self._hash_every
        checked = False
        if every:
            self._hash_countdown -= 1
            if self._hash_countdown <= 0 or not self._grace.calm:
                self._hash_countdown = every
                checked = True
                # First: a matching hash may apply held deltas, which moves the top of book.
                result = self._check_delta_hash(last.hash, timestamp)
        return self._judge_message(timestamp, last, now, result, checked)

    def _judge_message(
        self, timestamp: int, last: PriceChangeEntry, now: float | None, result: int, checked: bool
    ) -> BookVerdict:
        """The checks after the hash (``result``, SKIPPED unless ``checked``) of a message."""
        options = self._options
        every = self._hash_every
        self._refresh_top(last)
        crossed = self._levels.crossed
        top_ok = True
        if options.check_top and (last.best_bid is not None or last.best_ask is not None):
            top_ok = self._check_top(last.best_bid, last.best_ask)
        held = bool(self._held.entries)
        if every and not checked and (crossed or not top_ok or held):
            # A doubt is starting: let the hash settle it now rather than a message later.
            self._hash_countdown = every
            checked = True
            result = self._check_delta_hash(last.hash, timestamp)
            self._refresh_top(last)
            crossed = self._levels.crossed
        if checked:
            self._deferred = None
        elif every and self._batch is not None:
            if self._deferred is None:
                self._batch.append(self)
            self._deferred = last
            self._deferred_timestamp = timestamp
        if result == MATCH:
            self._held.clear()  # a match proves the server never took them
            self._hash.pending = None
            held = False
        grace = self._grace
        # Skipped in the common case, where judge() would change nothing.
        if (
            result == MISMATCH
            or held
            or crossed
            or not top_ok
            or grace.doubt is not None
            or grace.run is not None
        ):
            reason = grace.judge(
                result, timestamp, last.hash, held=held, crossed=crossed, top_ok=top_ok, now=now
            )
            if reason is not None:
                return self._invalidate(reason)
        verdict = self._ok
        if self._rest.pending is not None:
            verdict = self._rest_verdict(self._rest.recheck(self._levels, timestamp, now))
        self._update_quiet()
        return verdict

    def end_batch(self, now: float | None = None) -> BookVerdict:
        """The end of a batch (one socket read): check the hash of the book's last message if
        it was not checked yet, with every rule a per-message check follows (runs, grace).

        Between the deferred message and this call the book's levels did not change (a later
        message would have replaced or checked it; a snapshot or invalidation drops it), so this
        is exactly the check that message skipped. Unbatched books have nothing to check.
        """
        last = self._deferred
        if last is None:
            return self._ok
        timestamp = self._deferred_timestamp
        self._hash_countdown = self._hash_every
        result = self._check_delta_hash(last.hash, timestamp)
        if result == MATCH and self._quiet:
            # A deferred message passed every other check when it was applied (one that fails
            # any is hash-checked at once): with nothing in doubt, a match leaves nothing to do.
            self._deferred = None
            self._hash.pending = None
            return self._ok
        return self._judge_message(timestamp, last, now, result, True)

    def _check_top(self, best_bid: str | None, best_ask: str | None) -> bool:
        self.counters.top_checks += 1
        if not (is_optional_price(best_bid) and is_optional_price(best_ask)):
            # The server's opinion, not book content: a doubt (the grace decides), not a verdict.
            self.counters.malformed += 1
        ok = self._levels.top_agrees(best_bid, best_ask)
        if not ok:
            self.counters.top_mismatches += 1
        return ok

    def _check_delta_hash(self, expected: str, timestamp: int) -> int:
        check = self._hash
        levels = self._levels
        ltp = self._last_trade_price
        result = check.check_delta(levels, self, expected, timestamp, ltp, self.counters)
        if result != MISMATCH or not self._held.entries:
            return result
        if self._held.apply_if(
            levels, lambda: check.matches(levels, self, expected, timestamp, ltp)
        ):
            return MATCH
        return result

    # ------------------------------------------------------------------ other events

    def _on_last_trade(self, price: str, now: float | None) -> BookVerdict:
        if not is_optional_price(price):
            # The hash of the next messages covers it: a bad one would fail them all.
            self.counters.malformed += 1
            return self._invalidate(MALFORMED_LAST_TRADE)
        self._last_trade_price = price
        self._hash.detect_budget = DETECT_BUDGET
        if self._hash.pending is None:
            return self._ok
        if self._hash.late_match(self._levels, self, price):
            self.counters.hash_late_matches += 1
            self._hash.pending = None
            self._grace.clear()
            self._held.clear()
            self._update_quiet()
            return self._ok
        if now is not None:
            reason = self._grace.expire(now)
            if reason is not None:
                return self._invalidate(reason)
        return self._ok

    def _on_tick_size(self, new_tick_size: str) -> BookVerdict:
        try:
            self._set_tick(new_tick_size)
        except ConfigError:
            self.counters.malformed += 1
            return self._invalidate(MALFORMED_TICK)
        self._hash.detect_budget = DETECT_BUDGET
        if not self._held:
            return self._ok
        self._held.release_on_grid(self._levels, self._tick_key)
        self._refresh_top(None)
        doubt = self._grace.doubt
        if not self._held and doubt is not None and doubt.reason == HELD_OFF_GRID:
            self._grace.doubt = None
        self._update_quiet()
        return self._ok

    # ------------------------------------------------------------------ REST reconciliation

    def reconcile(self, rest_book: Book, now: float | None = None) -> BookVerdict:
        """Compare our levels with a REST ``/book`` summary of the same asset.

        Equal timestamps decide at once. A REST book *newer* than ours that disagrees is kept and
        compared again after each of our next messages: agreement counts as a match; still
        disagreeing once our timestamp reaches it, or after ``grace_seconds``, invalidates. An
        older REST book that disagrees is inconclusive. Metadata in the summary is adopted. A
        summary with a number outside the grammar is inconclusive (reason ``"malformed
        snapshot"``, counted in ``malformed``): never raises on content.
        """
        if rest_book.asset_id != self.asset_id:
            raise ConfigError(f"REST book for {rest_book.asset_id} given to book {self.asset_id}")
        self.set_market_info(rest_book.min_order_size, rest_book.tick_size, rest_book.neg_risk)
        if not self._resync.synced:
            self.counters.reconcile_inconclusive += 1
            return BookVerdict(self.asset_id, "ok", "unsynced")
        if not Levels.well_formed(rest_book):
            # The REST answer is what is broken, not our book: nothing to compare with.
            self.counters.malformed += 1
            self.counters.reconcile_inconclusive += 1
            return BookVerdict(self.asset_id, "ok", MALFORMED_SNAPSHOT)
        outcome = self._rest.compare(self._levels, self._timestamp, rest_book, now)
        self._update_quiet()
        if outcome == MISMATCHED:
            return self._invalidate("REST book mismatch")
        return BookVerdict(self.asset_id, "ok", outcome)

    def _rest_verdict(self, outcome: str) -> BookVerdict:
        if outcome == MISMATCHED:
            return self._invalidate("REST book mismatch")
        return self._ok

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` should run next (a doubt, open hash run or pending REST
        check expiring)."""
        if self._quiet:
            return None  # no doubt, no run, no pending REST check: nothing can expire
        deadlines = [
            d for d in (self._grace.next_deadline(), self._rest.next_deadline()) if d is not None
        ]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> BookVerdict:
        """Expire doubts, open hash runs and pending REST comparisons on a quiet market."""
        reason = self._grace.expire(now)
        if reason is not None:
            verdict = self._invalidate(reason)
        elif self._rest.expire(now) == MISMATCHED:
            verdict = self._invalidate("REST book mismatch")
        else:
            verdict = self._ok
        self._update_quiet()
        return verdict
