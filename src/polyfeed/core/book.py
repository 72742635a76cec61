"""Correct local L2 order books, sans-I/O: the book decides what to do, the caller does the I/O.

An :class:`OrderBook` is built from ``book`` snapshots and ``price_change`` entries and keeps the
server's exact price/size strings (the hash preimage needs them: ``"0.3"`` is not ``"0.30"``)
next to exact integer price keys (prices scaled by ``10**6``; a price with more decimals is
rejected as malformed). Each side keeps a sorted key list updated with ``bisect``; asks are keyed
by the negated price so that on both sides the best level is the *last* key and iterating the keys
in order yields the server's wire order (bids ascending, asks descending).

Integrity, three strengths, each counted in :class:`BookCounters`:

1. **top of book** (every message, cheap): the server's ``best_bid``/``best_ask`` of the
   asset's last entry in a message against our raw book.
2. **hash** (``hash_check_every``: 1 = every message, N = every N-th, 0 = off; every message while
   in doubt): Polymarket's SHA-1 book hash recomputed from our book after the message, with the
   message's timestamp. Needs the market metadata (:meth:`OrderBook.set_market_info`) for the
   2025/2026 schemes; unknown inputs skip the check (counted), never a mismatch. Only the *last*
   entry of a message for the asset is checked: real captures show every entry of one matching
   event carrying the hash of the book after the whole event.
3. **REST** (:meth:`OrderBook.reconcile`): our levels against a ``/book`` summary.

*Doubt.* Transient disagreement is real (a taker order crossing the book arrives as several
entries; the hash of a trade's deltas includes a ``last_trade_price`` whose event arrives up to
~100 ms later, protocol.md §3.7). So a message that leaves the book crossed, disagreeing with the
server's top of book, failing the hash, or holding off-grid deltas puts the book in *doubt* rather
than invalidating it. A doubt clears when a later message passes its checks (a hash match proves
the whole book), or when a ``last_trade_price`` makes the pending hash reproduce. A doubt still
present after ``grace_messages`` further messages for the asset, or ``grace_seconds`` after it
began (checked when a ``now`` is given and by :meth:`OrderBook.handle_timer`), invalidates the
book. While the raw book is crossed, the *reported* ``best_bid``/``best_ask`` follow the server's
values; the raw levels (what the hash covers) stay exact.

*Hash scheme detection.* With ``auto_detect_scheme`` (default) the scheme is unknown until a hash
reproduces under one of V2026/V2025/V2024 (the configured one is tried first); from then on that
scheme is used. A snapshot whose hash stops reproducing re-runs detection and, if nothing
reproduces, clears it again: a snapshot is the truth, so a failure there means our preimage
inputs are wrong, and verifying deltas with wrong inputs would only cause a resync loop. While
undetected, up to three delta checks after each snapshot, metadata or trade price change try
detection; the others are counted as skipped.

*Resync protocol.* A book is ``synced`` after a snapshot. Invalidation (doubt beyond grace, REST
mismatch, malformed entry, or :meth:`OrderBook.invalidate` for reconnects and dropped frames)
returns a verdict ``"invalidated"``; the caller emits ``BookInvalidated`` and, within a
:class:`ResyncLimiter`, fetches ``/book`` after :meth:`OrderBook.begin_resync`. Deltas keep being
applied (best effort) and are buffered while unsynced or while a resync is in flight;
:meth:`OrderBook.complete_resync` loads the REST snapshot and replays the buffered deltas whose
timestamp is *greater* than the snapshot's. A delta with the *same* timestamp is taken as already
in the snapshot: the server stamps a book with the time of its latest change, and all entries of
one matching event share one timestamp (real captures). A fresh WS ``book`` also resyncs. The
first snapshot of a book returns ``"ok"`` (nothing was announced as lost); a snapshot that ends an
invalidation returns ``"resynced"``.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal, assert_never

import msgspec

from polyfeed.core.book_hash import LEVEL_TEMPLATE, HashScheme, book_hash_preimage
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    Level,
    MarketEvent,
    MarketResolved,
    NewMarket,
    PriceChange,
    PriceChangeEntry,
    TickSizeChange,
)
from polyfeed.errors import ConfigError

__all__ = [
    "PRICE_SCALE",
    "BookCounters",
    "BookOptions",
    "BookRegistry",
    "BookSide",
    "BookVerdict",
    "Books",
    "OrderBook",
    "ResyncLimiter",
    "VerdictAction",
]

PRICE_SCALE = 10**6
"""Prices are kept as integers in units of 1e-6 (Polymarket ticks go down to 0.0001)."""

BookSide = Literal["bids", "asks"]
VerdictAction = Literal["ok", "invalidated", "resynced"]

_MAX_CACHED_PRICES = 1 << 16
# Price text -> (scaled int, exact Decimal). The set of prices is tiny (at most a few thousand
# per market, shared by every book), so parsing happens once per distinct string.
_PRICES: dict[str, tuple[int, Decimal]] = {}
_DECIMALS: dict[int, Decimal] = {}

_MATCH = 0
_MISMATCH = 1
_SKIPPED = 2

_APPLIED = 0
_MALFORMED = 1
_HELD = 2

_ZERO = 0
_NONZERO = 1
_BAD_SIZE = 2
_NONZERO_LEADS = frozenset("123456789")

_HELD_REASON = "off-grid deltas held after tick size change"

_TIMESTAMP_MARK = "\x00timestamp\x00"
_EMPTY_LEVELS = '"bids":[],"asks":[]'

_DETECT_ORDER = (HashScheme.V2026, HashScheme.V2025, HashScheme.V2024)
_DETECT_BUDGET = 3


def _parse_price(text: str) -> tuple[int, Decimal]:
    """Exact scaled key and Decimal of a price string; ``ValueError`` if not a decimal price."""
    hit = _PRICES.get(text)
    if hit is not None:
        return hit
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"malformed price {text!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"malformed price {text!r}")
    scaled = value.scaleb(6)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {text!r} has more than 6 decimals")
    hit = (int(scaled), value)
    if len(_PRICES) < _MAX_CACHED_PRICES:
        _PRICES[text] = hit
        _DECIMALS.setdefault(hit[0], value)
    return hit


def _price_decimal(key: int) -> Decimal:
    value = _DECIMALS.get(key)
    if value is None:
        value = Decimal(key).scaleb(-6).normalize()
    return value


def _server_top(text: str | None) -> int | None:
    """Scaled key of a server best_bid/best_ask; ``None`` when absent, empty or zero."""
    if not text:
        return None
    key = _parse_price(text)[0]
    return key if key else None


class BookVerdict(msgspec.Struct, frozen=True):
    """What the caller should do after a book operation.

    ``"invalidated"``: emit ``BookInvalidated(asset_id, reason)`` and schedule a resync.
    ``"resynced"``: emit ``BookResynced(asset_id, source=reason)`` (``"snapshot"`` or ``"rest"``).
    ``"ok"``: nothing to do; ``reason`` may say why nothing happened (e.g. ``"stale resync"``).
    """

    asset_id: str
    action: VerdictAction
    reason: str = ""


@dataclass(frozen=True, slots=True)
class BookOptions:
    """Integrity and resync settings shared by the books of a :class:`BookRegistry`.

    ``grace_messages``/``grace_seconds``: how long a doubt (crossed book, server top of book
    disagreeing, hash mismatch, held off-grid deltas) may last before the book is invalidated;
    ``grace_messages=0`` invalidates on the first failing message. ``hash_grace_messages``: the
    tighter limit for a hash mismatch alone (its only benign cause, a ``last_trade_price`` that
    arrives just after the change, clears it at once; a dropped message does not heal, or heals
    only by chance). ``max_buffered``: messages kept
    for replay while unsynced (the oldest are dropped beyond it; the snapshot usually covers them).
    """

    check_top: bool = True
    hash_check_every: int = 1
    auto_detect_scheme: bool = True
    grace_messages: int = 10
    hash_grace_messages: int = 1
    grace_seconds: float = 2.0
    max_buffered: int = 10_000

    def __post_init__(self) -> None:
        if self.hash_check_every < 0:
            raise ConfigError("hash_check_every must be >= 0")
        if self.grace_messages < 0 or self.grace_seconds < 0 or self.hash_grace_messages < 0:
            raise ConfigError("grace_messages, hash_grace_messages, grace_seconds must be >= 0")
        if self.max_buffered < 1:
            raise ConfigError("max_buffered must be >= 1")


@dataclass(slots=True)
class BookCounters:
    """Checks done and mismatches found, per strength, plus resync bookkeeping."""

    snapshots: int = 0
    top_checks: int = 0
    top_mismatches: int = 0
    hash_checks: int = 0
    hash_mismatches: int = 0
    hash_skipped: int = 0
    hash_late_matches: int = 0
    reconcile_checks: int = 0
    reconcile_mismatches: int = 0
    reconcile_inconclusive: int = 0
    held_entries: int = 0
    buffer_dropped: int = 0
    invalidations: int = 0
    resyncs: int = 0
    malformed: int = 0


_Entries = tuple[PriceChangeEntry, ...]


@dataclass(slots=True)
class _Doubt:
    reason: str
    messages: int = 0
    since: float | None = None


@dataclass(slots=True)
class _PendingRest:
    book: Book
    since: float | None


def _side_json(
    levels: dict[int, tuple[str, str]],
    keys: list[int],
    frags: dict[int, tuple[tuple[str, str], str]],
) -> str:
    """One side's levels as the preimage text, reusing the text of levels that did not change.

    A message changes a level or two; formatting every level again was most of the hash check.
    """
    parts: list[str] = []
    append = parts.append
    for key in keys:
        level = levels[key]
        cached = frags.get(key)
        if cached is not None and cached[0] is level:
            append(cached[1])
        else:
            text = LEVEL_TEMPLATE % level
            frags[key] = (level, text)
            append(text)
    if len(frags) > 2 * len(keys) + 64:
        # Removed levels linger in the cache; drop them once they outnumber the live ones.
        live = set(keys)
        for key in [k for k in frags if k not in live]:
            del frags[key]
    return ",".join(parts)


class OrderBook:
    """The L2 book of one asset (outcome token). Pure: feed events, read state and verdicts."""

    __slots__ = (
        "_ask_frags",
        "_ask_json",
        "_ask_keys",
        "_ask_levels",
        "_bid_frags",
        "_bid_json",
        "_bid_keys",
        "_bid_levels",
        "_buffer",
        "_check_top_on",
        "_detect_budget",
        "_doubt",
        "_ever_synced",
        "_hash_countdown",
        "_hash_every",
        "_hash_template",
        "_held",
        "_last_trade_price",
        "_ok",
        "_options",
        "_pending_hash",
        "_pending_rest",
        "_quiet",
        "_resync_id",
        "_resync_in_flight",
        "_scheme",
        "_scheme_known",
        "_synced",
        "_tick_key",
        "_timestamp",
        "_top_ask_key",
        "_top_bid",
        "asset_id",
        "best_ask",
        "best_bid",
        "counters",
        "market",
        "min_order_size",
        "neg_risk",
        "tick_size",
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
    ) -> None:
        self.asset_id = asset_id
        self.market = market
        self.tick_size: str | None = None
        self._tick_key = 0
        self.min_order_size = min_order_size
        self.neg_risk = neg_risk
        self._options = options if options is not None else BookOptions()
        self._check_top_on = self._options.check_top
        self._hash_every = self._options.hash_check_every
        self._scheme = hash_scheme
        self._scheme_known = not self._options.auto_detect_scheme
        self._detect_budget = _DETECT_BUDGET
        self.counters = BookCounters()
        self._bid_levels: dict[int, tuple[str, str]] = {}
        self._ask_levels: dict[int, tuple[str, str]] = {}
        # Level -> its JSON text in the hash preimage, cached per price key and valid while the
        # stored level tuple is the same object (a change stores a new tuple).
        self._bid_frags: dict[int, tuple[tuple[str, str], str]] = {}
        self._ask_frags: dict[int, tuple[tuple[str, str], str]] = {}
        self._bid_keys: list[int] = []
        self._ask_keys: list[int] = []
        self._bid_json: str | None = None
        self._ask_json: str | None = None
        self._hash_template: tuple[tuple[object, ...], str | None, str, str, str] | None = None
        # Plain attributes, not properties: reading the top of book is the other hot path.
        # Read-only by contract.
        self.best_bid: Decimal | None = None
        """Best bid price (the server's while our raw book is transiently crossed)."""
        self.best_ask: Decimal | None = None
        """Best ask price (the server's while our raw book is transiently crossed)."""
        self._top_bid: int | None = None
        self._top_ask_key: int | None = None  # the ask side's key: the negated price
        self._last_trade_price: str | None = None
        self._timestamp: int | None = None
        self._synced = False
        self._ever_synced = False
        self._resync_in_flight = False
        self._resync_id = 0
        self._buffer: deque[tuple[int, _Entries]] = deque(maxlen=self._options.max_buffered)
        self._held: list[PriceChangeEntry] = []
        self._doubt: _Doubt | None = None
        self._pending_hash: tuple[str, int] | None = None
        self._pending_rest: _PendingRest | None = None
        # No doubt, no held delta, no pending REST check: the fast path may skip the checks.
        # Cleared where any of those starts; recomputed by the full path.
        self._quiet = True
        self._hash_countdown = 0
        self._ok = BookVerdict(asset_id, "ok")
        if tick_size is not None:
            self._set_tick(tick_size)

    # ------------------------------------------------------------------ reading

    @property
    def synced(self) -> bool:
        """True while the book follows a snapshot plus every delta since (as far as we know)."""
        return self._synced

    @property
    def spread(self) -> Decimal | None:
        """``best_ask - best_bid``, or None when a side is empty."""
        bid = self.best_bid
        ask = self.best_ask
        if bid is None or ask is None:
            return None
        return ask - bid

    @property
    def midpoint(self) -> Decimal | None:
        """``(best_bid + best_ask) / 2``, or None when a side is empty."""
        bid = self.best_bid
        ask = self.best_ask
        if bid is None or ask is None:
            return None
        return (bid + ask) / 2

    @property
    def crossed(self) -> bool:
        """Whether the raw book has best bid >= best ask (transient during matching)."""
        bids = self._bid_keys
        asks = self._ask_keys
        return bool(bids and asks and bids[-1] >= -asks[-1])

    @property
    def in_doubt(self) -> str | None:
        """The reason of the current doubt (see module docstring), or None."""
        return self._doubt.reason if self._doubt is not None else None

    @property
    def last_trade_price(self) -> str | None:
        """The asset's last trade price as the server wrote it (part of the 2026 hash)."""
        return self._last_trade_price

    @property
    def timestamp(self) -> int | None:
        """Server timestamp (epoch ms) of the last snapshot or message applied."""
        return self._timestamp

    @property
    def hash_scheme(self) -> HashScheme:
        """The hash preimage scheme in use (or tried first, while not yet detected)."""
        return self._scheme

    @property
    def scheme_detected(self) -> bool:
        """Whether a hash has reproduced under :attr:`hash_scheme` (or detection is off)."""
        return self._scheme_known

    @property
    def resync_in_flight(self) -> bool:
        """True between :meth:`begin_resync` and :meth:`complete_resync`/:meth:`abort_resync`."""
        return self._resync_in_flight

    @property
    def needs_resync(self) -> bool:
        """Unsynced and no resync in flight: the caller should fetch a snapshot (rate-limited)."""
        return not self._synced and not self._resync_in_flight

    @property
    def buffered(self) -> int:
        """Messages buffered for replay after the next snapshot."""
        return len(self._buffer)

    @property
    def held(self) -> int:
        """Off-grid deltas currently held after a tick size change."""
        return len(self._held)

    def level_counts(self) -> tuple[int, int]:
        """Number of (bid, ask) levels."""
        return len(self._bid_keys), len(self._ask_keys)

    def _side(self, side: BookSide) -> tuple[list[int], dict[int, tuple[str, str]]]:
        if side == "bids":
            return self._bid_keys, self._bid_levels
        if side == "asks":
            return self._ask_keys, self._ask_levels
        raise ConfigError(f"side must be 'bids' or 'asks', not {side!r}")

    def levels(self, side: BookSide) -> Iterator[Level]:
        """The side's levels, best first, with the server's exact strings."""
        keys, levels = self._side(side)
        for key in reversed(keys):
            price, size = levels[key]
            yield Level(price, size)

    def top_n(self, side: BookSide, n: int) -> list[Level]:
        """The best ``n`` levels of a side, best first."""
        keys, levels = self._side(side)
        return [Level(*levels[key]) for key in keys[: -n - 1 : -1]] if n > 0 else []

    def depth(self, side: BookSide, n: int | None = None) -> Decimal:
        """Total size within the best ``n`` levels of a side (all levels when ``n`` is None)."""
        keys, levels = self._side(side)
        chosen = keys if n is None else keys[max(0, len(keys) - n) :] if n > 0 else []
        return sum((Decimal(levels[key][1]) for key in chosen), Decimal(0))

    def to_book(self) -> Book:
        """Our raw book as a ``Book`` message, levels in wire order (bids up, asks down)."""
        return Book(
            market=self.market or "",
            asset_id=self.asset_id,
            timestamp=self._timestamp or 0,
            bids=[Level(*self._bid_levels[key]) for key in self._bid_keys],
            asks=[Level(*self._ask_levels[key]) for key in self._ask_keys],
            tick_size=self.tick_size,
            last_trade_price=self._last_trade_price,
            min_order_size=self.min_order_size,
            neg_risk=self.neg_risk,
        )

    def compute_hash(self, timestamp: int | None = None, scheme: HashScheme | None = None) -> str:
        """Polymarket's hash of our raw book (default: current timestamp and scheme)."""
        return self._hash(
            self._timestamp if timestamp is None else timestamp,
            self._scheme if scheme is None else scheme,
            self._last_trade_price,
        )

    def __repr__(self) -> str:
        c = self.counters
        short = (
            self.asset_id
            if len(self.asset_id) <= 12
            else f"{self.asset_id[:4]}…{self.asset_id[-4:]}"
        )
        state = "synced" if self._synced else "resyncing" if self._resync_in_flight else "unsynced"
        doubt = f" doubt={self._doubt.reason!r}" if self._doubt is not None else ""
        return (
            f"OrderBook({short} {state} bid={self.best_bid} ask={self.best_ask} "
            f"levels={len(self._bid_keys)}/{len(self._ask_keys)} "
            f"top={c.top_checks}/{c.top_mismatches} "
            f"hash={c.hash_checks}/{c.hash_mismatches} skipped={c.hash_skipped} "
            f"rest={c.reconcile_checks}/{c.reconcile_mismatches} "
            f"scheme={self._scheme.name}{'' if self._scheme_known else '?'} "
            f"held={len(self._held)} buffered={len(self._buffer)}{doubt})"
        )

    # ------------------------------------------------------------------ metadata

    def set_market_info(
        self,
        min_order_size: str | None = None,
        tick_size: str | None = None,
        neg_risk: bool | None = None,
    ) -> None:
        """Market metadata the 2025/2026 hash covers (REST ``/markets/{condition_id}``)."""
        if min_order_size is not None:
            self.min_order_size = min_order_size
        if tick_size is not None:
            self._set_tick(tick_size)
        if neg_risk is not None:
            self.neg_risk = neg_risk
        self._detect_budget = _DETECT_BUDGET

    def _set_tick(self, tick_size: str) -> None:
        try:
            key = _parse_price(tick_size)[0]
        except ValueError:
            raise ConfigError(f"invalid tick size {tick_size!r}") from None
        if key <= 0:
            raise ConfigError(f"invalid tick size {tick_size!r}")
        self.tick_size = tick_size
        self._tick_key = key

    # ------------------------------------------------------------------ applying events

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
                return self._on_tick_size(event.new_tick_size, now)
            case BestBidAsk():
                if event.asset_id == self.asset_id and self._synced and self._options.check_top:
                    self._check_top(event.best_bid, event.best_ask)
                return self._ok
            case NewMarket() | MarketResolved():
                return self._ok
            case _:
                assert_never(event)

    def apply(self, event: MarketEvent, now: float | None = None) -> BookVerdict:
        """Apply a market event; entries and events for other assets are ignored.

        A ``price_change`` is handled right here: it is the hot path of the whole library.
        """
        if type(event) is not PriceChange and not isinstance(event, PriceChange):
            return self._apply_other(event, now)
        asset = self.asset_id
        last: PriceChangeEntry | None = None
        synced = self._synced
        # Off-grid deltas are only suspicious against a synced book with a known grid.
        tick = self._tick_key if synced else 0
        # The body of _apply_entry, inlined: this loop is the hot path of the whole library.
        for entry in event.price_changes:
            if entry.asset_id != asset:
                continue
            last = entry
            price = entry.price
            hit = _PRICES.get(price)
            if hit is None:
                try:
                    hit = _parse_price(price)
                except ValueError:
                    return self._malformed(entry)
            side = entry.side
            if side == "BUY" or side == "buy":
                key = hit[0]
                levels = self._bid_levels
                keys = self._bid_keys
                self._bid_json = None
            elif side == "SELL" or side == "sell":
                key = -hit[0]
                levels = self._ask_levels
                keys = self._ask_keys
                self._ask_json = None
            else:
                return self._malformed(entry)
            size = entry.size
            if size != "0" and not (size and size[0] in _NONZERO_LEADS):
                # A rare spelling: "0.00", "", "0.5", or garbage.
                kind = _size_kind(size)
                if kind == 2:  # _BAD_SIZE
                    return self._malformed(entry)
                if kind == 0:  # _ZERO
                    size = "0"
            if size == "0":
                if levels.pop(key, None) is not None:
                    del keys[bisect_left(keys, key)]
            elif tick and key % tick:
                self._held.append(entry)
                self._quiet = False
                self.counters.held_entries += 1
            else:
                if key not in levels:
                    insort(keys, key)
                levels[key] = (price, size)
        if last is None:
            return self._ok
        timestamp = event.timestamp
        if not synced or self._resync_in_flight:
            if self.market is None:
                self.market = event.market
            self._buffer_message(
                timestamp, tuple(e for e in event.price_changes if e.asset_id == asset)
            )
        elif self._quiet:
            # Fast path: nothing in doubt, no hash due, book not crossed, and the server's top
            # (if sent) spelled exactly like ours. Anything else takes the full path below,
            # which repeats these steps with every check.
            every = self._hash_every
            countdown = self._hash_countdown - 1 if every else 1
            bids = self._bid_keys
            asks = self._ask_keys
            if countdown > 0 and bids and asks:
                bid = bids[-1]
                ask_key = asks[-1]
                calm = bid < -ask_key
                if calm and self._check_top_on:
                    server_bid = last.best_bid
                    server_ask = last.best_ask
                    if server_bid is not None or server_ask is not None:
                        calm = (server_bid is None or self._bid_levels[bid][0] == server_bid) and (
                            server_ask is None or self._ask_levels[ask_key][0] == server_ask
                        )
                        if calm:
                            self.counters.top_checks += 1
                if calm:
                    if every:
                        self._hash_countdown = countdown
                    self._timestamp = timestamp
                    if bid != self._top_bid:
                        self._top_bid = bid
                        self.best_bid = _DECIMALS.get(bid) or _price_decimal(bid)
                    if ask_key != self._top_ask_key:
                        self._top_ask_key = ask_key
                        self.best_ask = _DECIMALS.get(-ask_key) or _price_decimal(-ask_key)
                    return self._ok
        return self._finish_message(timestamp, last, now)

    def _apply_entry(self, entry: PriceChangeEntry, tick: int) -> int:
        """Set one level: ``_APPLIED``, or ``_MALFORMED``/``_HELD`` (nothing changed then)."""
        try:
            key = _parse_key(entry.price)
        except ValueError:
            return _MALFORMED
        side = entry.side
        if side == "BUY" or side == "buy":
            levels = self._bid_levels
            keys = self._bid_keys
        elif side == "SELL" or side == "sell":
            key = -key
            levels = self._ask_levels
            keys = self._ask_keys
        else:
            return _MALFORMED
        kind = _size_kind(entry.size)
        self._bid_json = self._ask_json = None
        if kind == _NONZERO:
            if tick and key % tick:
                return _HELD
            if key not in levels:
                insort(keys, key)
            levels[key] = (entry.price, entry.size)
        elif kind == _ZERO:
            if levels.pop(key, None) is not None:
                del keys[bisect_left(keys, key)]
        else:
            return _MALFORMED
        return _APPLIED

    def _buffer_message(self, timestamp: int, entries: _Entries) -> None:
        buffer = self._buffer
        if len(buffer) == buffer.maxlen:
            self.counters.buffer_dropped += 1
        buffer.append((timestamp, entries))

    def _refresh_top(self, entry: PriceChangeEntry | None) -> bool:
        """Cache the reported top of book; returns whether the raw book is crossed."""
        bids = self._bid_keys
        asks = self._ask_keys
        bid = bids[-1] if bids else None
        ask = -asks[-1] if asks else None
        crossed = bid is not None and ask is not None and bid >= ask
        if crossed and entry is not None and (entry.best_bid or entry.best_ask):
            # Matching in progress: the server's top is what the book will be after it.
            with suppress(ValueError):  # unusable server values: report our raw top
                bid, ask = _server_top(entry.best_bid), _server_top(entry.best_ask)
        # Decimals are looked up only when the top moves (most deltas are below the top).
        if bid != self._top_bid:
            self._top_bid = bid
            self.best_bid = None if bid is None else _DECIMALS.get(bid) or _price_decimal(bid)
        ask_key = None if ask is None else -ask
        if ask_key != self._top_ask_key:
            self._top_ask_key = ask_key
            self.best_ask = None if ask is None else _DECIMALS.get(ask) or _price_decimal(ask)
        return crossed

    def _finish_message(
        self, timestamp: int, last: PriceChangeEntry, now: float | None
    ) -> BookVerdict:
        self._timestamp = timestamp
        if not self._synced:
            self._refresh_top(last)
            return self._ok
        options = self._options
        result = _SKIPPED
        every = options.hash_check_every
        checked = False
        if every:
            self._hash_countdown -= 1
            if self._hash_countdown <= 0 or self._doubt is not None:
                self._hash_countdown = every
                checked = True
                # First: a matching hash may apply held deltas, which moves the top of book.
                result = self._check_delta_hash(last.hash, timestamp)
        crossed = self._refresh_top(last)
        top_ok = True
        if options.check_top and (last.best_bid is not None or last.best_ask is not None):
            top_ok = self._check_top(last.best_bid, last.best_ask)
        if every and not checked and (crossed or not top_ok or self._held):
            # A doubt is starting: let the hash settle it now rather than a message later.
            self._hash_countdown = every
            result = self._check_delta_hash(last.hash, timestamp)
            crossed = self._refresh_top(last)
        if (
            top_ok
            and not crossed
            and result != _MISMATCH
            and self._doubt is None
            and not self._held
            and self._pending_rest is None
        ):
            self._quiet = True
            return self._ok
        verdict = self._judge(result, crossed, top_ok, now)
        if verdict is self._ok and self._pending_rest is not None:
            verdict = self._recheck_rest(now)
        self._update_quiet()
        return verdict

    def _update_quiet(self) -> None:
        self._quiet = self._doubt is None and not self._held and self._pending_rest is None

    def _check_top(self, best_bid: str | None, best_ask: str | None) -> bool:
        self.counters.top_checks += 1
        ok = _same_price(best_bid, self._bid_keys, self._bid_levels, 1) and _same_price(
            best_ask, self._ask_keys, self._ask_levels, -1
        )
        if not ok:
            self.counters.top_mismatches += 1
        return ok

    def _judge(self, result: int, crossed: bool, top_ok: bool, now: float | None) -> BookVerdict:
        if result == _MATCH:
            self._clear_doubt()
            return self._ok
        if result == _MISMATCH:
            reason = "hash mismatch"
        elif self._held:
            reason = _HELD_REASON
        elif crossed:
            reason = "crossed book"
        elif not top_ok:
            reason = "top of book mismatch"
        else:
            self._clear_doubt()
            return self._ok
        doubt = self._doubt
        self._quiet = False
        if doubt is None:
            doubt = self._doubt = _Doubt(reason, 0, now)
        else:
            doubt.reason = reason
            doubt.messages += 1
            if doubt.since is None:
                doubt.since = now
        grace = self._options.grace_messages
        if result == _MISMATCH:
            grace = min(grace, self._options.hash_grace_messages)
        if doubt.messages >= grace or self._doubt_expired(now):
            return self._invalidate(reason)
        return self._ok

    def _doubt_expired(self, now: float | None) -> bool:
        doubt = self._doubt
        return (
            doubt is not None
            and doubt.since is not None
            and now is not None
            and now - doubt.since >= self._options.grace_seconds
        )

    def _clear_doubt(self) -> None:
        self._doubt = None
        self._pending_hash = None
        if self._held:
            # A hash match proves our book equals the server's: held deltas never took effect.
            self._held.clear()
        self._update_quiet()

    def _malformed(self, entry: PriceChangeEntry) -> BookVerdict:
        self.counters.malformed += 1
        return self._invalidate(f"malformed price_change entry ({entry.price!r}, {entry.size!r})")

    # ------------------------------------------------------------------ hashing

    def _inputs_known(self, scheme: HashScheme, last_trade_price: str | None) -> bool:
        if self.market is None:
            return False
        if scheme is HashScheme.V2024:
            return True
        if self.min_order_size is None or self.tick_size is None or self.neg_risk is None:
            return False
        return scheme is HashScheme.V2025 or last_trade_price is not None

    def _hash(self, timestamp: int | None, scheme: HashScheme, last_trade_price: str | None) -> str:
        # The fixed fields (JSON-encoded metadata) cost more than the levels, and a message
        # usually changes one side: both are cached. The template comes from
        # book_hash_preimage itself, so the preimage format has a single source.
        inputs = (scheme, self.market, self.min_order_size, self.tick_size, self.neg_risk)
        template = self._hash_template
        if template is None or template[0] != inputs or template[1] != last_trade_price:
            text = book_hash_preimage(
                market=self.market or "",
                asset_id=self.asset_id,
                timestamp=_TIMESTAMP_MARK,
                bids=(),
                asks=(),
                scheme=scheme,
                min_order_size=self.min_order_size,
                tick_size=self.tick_size,
                neg_risk=self.neg_risk,
                last_trade_price=last_trade_price,
            )
            head, _, rest = text.partition(_TIMESTAMP_MARK)
            middle, _, tail = rest.partition(_EMPTY_LEVELS)
            template = self._hash_template = (inputs, last_trade_price, head, middle, tail)
        bids = self._bid_json
        if bids is None:
            bids = self._bid_json = _side_json(self._bid_levels, self._bid_keys, self._bid_frags)
        asks = self._ask_json
        if asks is None:
            asks = self._ask_json = _side_json(self._ask_levels, self._ask_keys, self._ask_frags)
        _, _, head, middle, tail = template
        stamp = "" if timestamp is None else timestamp
        text = f'{head}{stamp}{middle}"bids":[{bids}],"asks":[{asks}]{tail}'
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    def _detect(self, expected: str, timestamp: int, last_trade_price: str | None) -> bool:
        """Try every scheme whose inputs we have (current first); adopt the one that matches."""
        order = [self._scheme, *(s for s in _DETECT_ORDER if s is not self._scheme)]
        for scheme in order:
            if not self._inputs_known(scheme, last_trade_price):
                continue
            if self._hash(timestamp, scheme, last_trade_price) == expected:
                self._scheme = scheme
                self._scheme_known = True
                return True
        return False

    def _check_delta_hash(self, expected: str, timestamp: int) -> int:
        counters = self.counters
        ltp = self._last_trade_price
        if not expected:
            counters.hash_skipped += 1
            return _SKIPPED
        if not self._scheme_known:
            if self._detect_budget <= 0:
                counters.hash_skipped += 1
                return _SKIPPED
            self._detect_budget -= 1
            if self._detect(expected, timestamp, ltp):
                counters.hash_checks += 1
                return _MATCH
            counters.hash_skipped += 1
            return _SKIPPED
        if not self._inputs_known(self._scheme, ltp):
            counters.hash_skipped += 1
            return _SKIPPED
        counters.hash_checks += 1
        if self._hash(timestamp, self._scheme, ltp) == expected:
            return _MATCH
        if self._held and self._try_held(expected, timestamp):
            return _MATCH
        counters.hash_mismatches += 1
        self._pending_hash = (expected, timestamp)
        return _MISMATCH

    def _try_held(self, expected: str, timestamp: int) -> bool:
        """Apply the held off-grid deltas if (and only if) that makes the hash reproduce."""
        undo: list[tuple[bool, int, tuple[str, str] | None]] = []
        for entry in self._held:
            undo.append(self._set_level(entry))
        if self._hash(timestamp, self._scheme, self._last_trade_price) == expected:
            self._held.clear()
            return True
        for is_bid, key, previous in reversed(undo):
            self._restore_level(is_bid, key, previous)
        return False

    def _set_level(self, entry: PriceChangeEntry) -> tuple[bool, int, tuple[str, str] | None]:
        is_bid = entry.side in ("BUY", "buy")
        key = _parse_key(entry.price) * (1 if is_bid else -1)
        levels = self._bid_levels if is_bid else self._ask_levels
        previous = levels.get(key)
        self._apply_entry(entry, 0)
        return is_bid, key, previous

    def _restore_level(self, is_bid: bool, key: int, previous: tuple[str, str] | None) -> None:
        self._bid_json = self._ask_json = None
        levels = self._bid_levels if is_bid else self._ask_levels
        keys = self._bid_keys if is_bid else self._ask_keys
        present = key in levels
        if previous is None:
            if present:
                del levels[key]
                del keys[bisect_left(keys, key)]
        else:
            if not present:
                insort(keys, key)
            levels[key] = previous

    def _verify_snapshot_hash(self, expected: str, timestamp: int) -> None:
        """A snapshot is the truth: a failing hash means our inputs (scheme/metadata) are off."""
        if not expected or not self._options.hash_check_every:
            return
        counters = self.counters
        ltp = self._last_trade_price
        if self._scheme_known:
            if not self._inputs_known(self._scheme, ltp):
                counters.hash_skipped += 1
                return
            counters.hash_checks += 1
            if self._hash(timestamp, self._scheme, ltp) == expected:
                return
            counters.hash_mismatches += 1
            if not self._options.auto_detect_scheme:
                return
            self._scheme_known = False
        if self._detect(expected, timestamp, ltp):
            counters.hash_checks += 1
            return
        counters.hash_skipped += 1
        # A trade price arriving next may still make it reproduce (protocol.md §3.7).
        self._pending_hash = (expected, timestamp)

    # ------------------------------------------------------------------ other events

    def _on_last_trade(self, price: str, now: float | None) -> BookVerdict:
        self._last_trade_price = price
        self._detect_budget = _DETECT_BUDGET
        pending = self._pending_hash
        if pending is None:
            return self._ok
        expected, timestamp = pending
        if self._scheme_known:
            matched = self._inputs_known(self._scheme, price) and (
                self._hash(timestamp, self._scheme, price) == expected
            )
        else:
            matched = self._detect(expected, timestamp, price)
        if matched:
            self.counters.hash_late_matches += 1
            self._clear_doubt()
            return self._ok
        if self._doubt is not None and self._doubt_expired(now):
            return self._invalidate(self._doubt.reason)
        return self._ok

    def _on_tick_size(self, new_tick_size: str, now: float | None) -> BookVerdict:
        try:
            self._set_tick(new_tick_size)
        except ConfigError:
            self.counters.malformed += 1
            return self._invalidate(f"malformed tick_size_change {new_tick_size!r}")
        self._detect_budget = _DETECT_BUDGET
        if not self._held:
            return self._ok
        tick = self._tick_key
        still: list[PriceChangeEntry] = []
        for entry in self._held:
            if _parse_key(entry.price) % tick:
                still.append(entry)
            else:
                self._apply_entry(entry, 0)
        self._held = still
        self._refresh_top(None)
        if not still and self._doubt is not None and self._doubt.reason == _HELD_REASON:
            self._doubt = None
        self._update_quiet()
        return self._ok

    # ------------------------------------------------------------------ snapshots and resync

    def _load_levels(self, snapshot: Book) -> None:
        bid_levels: dict[int, tuple[str, str]] = {}
        ask_levels: dict[int, tuple[str, str]] = {}
        for level in snapshot.bids:
            if not _is_zero(level.size):
                bid_levels[_parse_key(level.price)] = (level.price, level.size)
        for level in snapshot.asks:
            if not _is_zero(level.size):
                ask_levels[-_parse_key(level.price)] = (level.price, level.size)
        self._bid_levels = bid_levels
        self._ask_levels = ask_levels
        self._bid_keys = sorted(bid_levels)
        self._ask_keys = sorted(ask_levels)
        self._bid_json = self._ask_json = None

    def _load_snapshot(self, snapshot: Book, source: str, now: float | None) -> BookVerdict:
        try:
            self._load_levels(snapshot)
            if snapshot.tick_size:
                self._set_tick(snapshot.tick_size)
        except (ValueError, ConfigError):
            self.counters.malformed += 1
            return self._invalidate("malformed snapshot")
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
        self._held.clear()
        self._doubt = None
        self._pending_hash = None
        self._update_quiet()
        self._hash_countdown = 0
        self._detect_budget = _DETECT_BUDGET
        self._refresh_top(None)
        self._verify_snapshot_hash(snapshot.hash, snapshot.timestamp)
        was_synced = self._synced
        ever_synced = self._ever_synced
        self._synced = True
        self._ever_synced = True
        if source == "snapshot" and self._resync_in_flight:
            # A WS snapshot supersedes whatever fetch was in flight.
            self._resync_id += 1
            self._resync_in_flight = False
        verdict = self._replay(self._take_buffer(snapshot.timestamp), now)
        if verdict.action == "invalidated" or was_synced:
            return verdict
        if not ever_synced and source == "snapshot":
            # The initial snapshot after subscribing: nothing was announced as lost.
            return verdict
        self.counters.resyncs += 1
        return BookVerdict(self.asset_id, "resynced", source)

    def _take_buffer(self, snapshot_timestamp: int) -> list[tuple[int, _Entries]]:
        buffered = [item for item in self._buffer if item[0] > snapshot_timestamp]
        self._buffer.clear()
        return buffered

    def _replay(self, buffered: list[tuple[int, _Entries]], now: float | None) -> BookVerdict:
        """Apply buffered deltas newer than the snapshot; checks run once, on the last message."""
        if not buffered:
            return self._ok
        for _, entries in buffered:
            for entry in entries:
                # Buffered entries were applied once already, so they are well formed.
                self._apply_entry(entry, 0)
        timestamp, entries = buffered[-1]
        self._hash_countdown = 0
        return self._finish_message(timestamp, entries[-1], now)

    def begin_resync(self) -> int:
        """A snapshot fetch starts; returns its id for :meth:`complete_resync`.

        Deltas are buffered from now on (they already are while unsynced).
        """
        self._resync_id += 1
        self._resync_in_flight = True
        return self._resync_id

    def abort_resync(self) -> None:
        """The snapshot fetch failed; :attr:`needs_resync` becomes true again if unsynced."""
        self._resync_in_flight = False
        self._resync_id += 1
        if self._synced:
            self._buffer.clear()

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
        if resync_id is not None and (resync_id != self._resync_id or not self._resync_in_flight):
            return BookVerdict(self.asset_id, "ok", "stale resync")
        if (
            self._synced
            and not self._resync_in_flight
            and self._timestamp is not None
            and snapshot.timestamp < self._timestamp
        ):
            return BookVerdict(self.asset_id, "ok", "stale resync")
        self._resync_in_flight = False
        self._resync_id += 1
        return self._load_snapshot(snapshot, "rest", now)

    def invalidate(self, reason: str) -> BookVerdict:
        """Mark the book unsynced for an external cause (reconnect, dropped frames, gap).

        A resync in flight is abandoned (its snapshot may predate the gap) and the buffer is
        dropped; deltas are buffered afresh for the next resync.
        """
        if self._resync_in_flight:
            self._resync_in_flight = False
            self._resync_id += 1
        self._buffer.clear()
        return self._invalidate(reason)

    def _invalidate(self, reason: str) -> BookVerdict:
        self._doubt = None
        self._pending_hash = None
        self._pending_rest = None
        self._held.clear()
        self._quiet = True
        if not self._synced:
            return self._ok
        self._synced = False
        self.counters.invalidations += 1
        return BookVerdict(self.asset_id, "invalidated", reason)

    # ------------------------------------------------------------------ REST reconciliation

    def reconcile(self, rest_book: Book, now: float | None = None) -> BookVerdict:
        """Compare our levels with a REST ``/book`` summary of the same asset.

        Equal timestamps decide at once. A REST book *newer* than ours that disagrees is kept and
        compared again after each of our next messages: agreement counts as a match; still
        disagreeing once our timestamp reaches it, or after ``grace_seconds``, invalidates. An
        older REST book that disagrees is inconclusive. Metadata in the summary is adopted.
        """
        if rest_book.asset_id != self.asset_id:
            raise ConfigError(f"REST book for {rest_book.asset_id} given to book {self.asset_id}")
        self.set_market_info(rest_book.min_order_size, rest_book.tick_size, rest_book.neg_risk)
        if not self._synced:
            self.counters.reconcile_inconclusive += 1
            return BookVerdict(self.asset_id, "ok", "unsynced")
        self._pending_rest = None
        self._update_quiet()
        if self._levels_equal(rest_book):
            self.counters.reconcile_checks += 1
            return BookVerdict(self.asset_id, "ok", "match")
        ours = self._timestamp or 0
        if rest_book.timestamp == ours:
            return self._rest_mismatch()
        if rest_book.timestamp < ours:
            self.counters.reconcile_inconclusive += 1
            return BookVerdict(self.asset_id, "ok", "inconclusive")
        self._pending_rest = _PendingRest(rest_book, now)
        self._quiet = False
        return BookVerdict(self.asset_id, "ok", "pending")

    def _rest_mismatch(self) -> BookVerdict:
        self.counters.reconcile_checks += 1
        self.counters.reconcile_mismatches += 1
        return self._invalidate("REST book mismatch")

    def _recheck_rest(self, now: float | None) -> BookVerdict:
        pending = self._pending_rest
        if pending is None:
            return self._ok
        if self._levels_equal(pending.book):
            self._pending_rest = None
            self.counters.reconcile_checks += 1
            return self._ok
        ours = self._timestamp or 0
        if ours == pending.book.timestamp:
            self._pending_rest = None
            return self._rest_mismatch()
        if ours > pending.book.timestamp:
            self._pending_rest = None
            self.counters.reconcile_inconclusive += 1
            return self._ok
        if pending.since is None:
            pending.since = now
        elif now is not None and now - pending.since >= self._options.grace_seconds:
            self._pending_rest = None
            return self._rest_mismatch()
        return self._ok

    def _levels_equal(self, other: Book) -> bool:
        try:
            bids = {
                _parse_key(level.price): Decimal(level.size)
                for level in other.bids
                if not _is_zero(level.size)
            }
            asks = {
                -_parse_key(level.price): Decimal(level.size)
                for level in other.asks
                if not _is_zero(level.size)
            }
        except (ValueError, InvalidOperation):
            return False
        return _sizes(self._bid_levels) == bids and _sizes(self._ask_levels) == asks

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` should run next (a doubt or pending REST check expiring)."""
        deadlines = []
        grace = self._options.grace_seconds
        if self._doubt is not None and self._doubt.since is not None:
            deadlines.append(self._doubt.since + grace)
        if self._pending_rest is not None and self._pending_rest.since is not None:
            deadlines.append(self._pending_rest.since + grace)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> BookVerdict:
        """Expire doubts and pending REST comparisons on a quiet market."""
        verdict = self._expire(now)
        self._update_quiet()
        return verdict

    def _expire(self, now: float) -> BookVerdict:
        doubt = self._doubt
        if doubt is not None:
            if doubt.since is None:
                doubt.since = now
            elif self._doubt_expired(now):
                return self._invalidate(doubt.reason)
        pending = self._pending_rest
        if pending is not None:
            if pending.since is None:
                pending.since = now
            elif now - pending.since >= self._options.grace_seconds:
                self._pending_rest = None
                return self._rest_mismatch()
        return self._ok


def _parse_key(price: str) -> int:
    hit = _PRICES.get(price)
    return hit[0] if hit is not None else _parse_price(price)[0]


def _is_zero(size: str) -> bool:
    return not size.replace(".", "", 1).strip("0")


def _size_kind(size: str) -> int:
    """Zero in any spelling (``"0"``, ``"0.00"``, ``""``), a positive decimal, or malformed.

    Sizes are kept as strings; the hot path only needs to tell a removal from a level, so a size
    starting with 1-9 is taken as a positive decimal without a full parse.
    """
    digits = size.replace(".", "", 1)
    if not digits.strip("0"):
        return _ZERO
    return _NONZERO if digits.isdigit() else _BAD_SIZE


def _same_price(
    server: str | None, keys: list[int], levels: dict[int, tuple[str, str]], sign: int
) -> bool:
    """Whether the server's best price (absent: no opinion) equals our best on a side."""
    if server is None:
        return True
    if keys:
        best = keys[-1]
        if levels[best][0] == server:
            return True
        try:
            return _server_top(server) == sign * best
        except ValueError:
            return False
    try:
        return _server_top(server) is None
    except ValueError:
        return False


def _sizes(levels: dict[int, tuple[str, str]]) -> dict[int, Decimal]:
    return {key: Decimal(size) for key, (_, size) in levels.items()}


class BookRegistry(Mapping[str, OrderBook]):
    """The books of many assets: applies whole messages to every book they concern.

    A ``book`` snapshot for an unknown asset adds a book (the subscription is the caller's
    business); deltas and trades for unknown assets are ignored. Market metadata given for a
    condition id is kept and handed to books of that market when they learn their market.
    """

    def __init__(
        self, options: BookOptions | None = None, hash_scheme: HashScheme = HashScheme.V2026
    ) -> None:
        self.options = options if options is not None else BookOptions()
        self._scheme = hash_scheme
        self._books: dict[str, OrderBook] = {}
        self._market_info: dict[str, tuple[str | None, str | None, bool | None]] = {}

    def __getitem__(self, asset_id: str) -> OrderBook:
        return self._books[asset_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._books)

    def __len__(self) -> int:
        return len(self._books)

    def __repr__(self) -> str:
        synced = sum(1 for book in self._books.values() if book.synced)
        return (
            f"BookRegistry(books={len(self._books)}, synced={synced}, scheme={self._scheme.name})"
        )

    def add(self, asset_id: str, market: str | None = None) -> OrderBook:
        """The book of ``asset_id``, created (unsynced) if needed."""
        book = self._books.get(asset_id)
        if book is None:
            book = OrderBook(asset_id, market, hash_scheme=self._scheme, options=self.options)
            self._books[asset_id] = book
            if market is not None:
                self._hand_market_info(book)
        return book

    def remove(self, asset_id: str) -> None:
        """Forget a book (unsubscribed)."""
        self._books.pop(asset_id, None)

    def set_market_info(
        self,
        market: str,
        *,
        min_order_size: str | None = None,
        tick_size: str | None = None,
        neg_risk: bool | None = None,
    ) -> None:
        """Metadata of a market (condition id) for every book of it, present and future."""
        self._market_info[market] = (min_order_size, tick_size, neg_risk)
        for book in self._books.values():
            if book.market == market:
                book.set_market_info(min_order_size, tick_size, neg_risk)

    def _learn_market(self, book: OrderBook, market: str) -> None:
        book.market = market
        self._hand_market_info(book)

    def _hand_market_info(self, book: OrderBook) -> None:
        info = self._market_info.get(book.market or "")
        if info is not None:
            book.set_market_info(*info)

    def apply(self, event: MarketEvent, now: float | None = None) -> list[BookVerdict]:
        """Apply one event to every book it concerns; returns only the non-``ok`` verdicts."""
        books = self._books
        verdicts: list[BookVerdict] = []
        match event:
            case PriceChange():
                entries = event.price_changes
                if len(entries) == 1:
                    book = books.get(entries[0].asset_id)
                    if book is not None:
                        if book.market is None:
                            self._learn_market(book, event.market)
                        verdict = book.apply(event, now)
                        if verdict.action != "ok":
                            verdicts.append(verdict)
                    return verdicts
                touched: list[OrderBook] = []
                for entry in entries:
                    book = books.get(entry.asset_id)
                    if book is not None and book not in touched:
                        if book.market is None:
                            self._learn_market(book, event.market)
                        touched.append(book)
                for book in touched:
                    verdict = book.apply(event, now)
                    if verdict.action != "ok":
                        verdicts.append(verdict)
            case Book():
                book = books.get(event.asset_id)
                if book is None:
                    book = self.add(event.asset_id, event.market)
                elif book.market is None:
                    self._learn_market(book, event.market)
                verdict = book.apply(event, now)
                if verdict.action != "ok":
                    verdicts.append(verdict)
                self._learn_scheme(book)
            case LastTradePrice() | TickSizeChange() | BestBidAsk():
                book = books.get(event.asset_id)
                if book is not None:
                    verdict = book.apply(event, now)
                    if verdict.action != "ok":
                        verdicts.append(verdict)
            case NewMarket() | MarketResolved():
                pass
            case _:
                assert_never(event)
        return verdicts

    def _learn_scheme(self, book: OrderBook) -> None:
        # New books start with the scheme the last detection found.
        if book.scheme_detected:
            self._scheme = book.hash_scheme

    def reconcile(self, rest_book: Book, now: float | None = None) -> BookVerdict:
        """:meth:`OrderBook.reconcile` on the asset's book (ok/"unknown asset" if absent)."""
        book = self._books.get(rest_book.asset_id)
        if book is None:
            return BookVerdict(rest_book.asset_id, "ok", "unknown asset")
        return book.reconcile(rest_book, now)

    def complete_resync(
        self, snapshot: Book, *, resync_id: int | None = None, now: float | None = None
    ) -> BookVerdict:
        """:meth:`OrderBook.complete_resync` on the asset's book (ok/"unknown asset" if absent)."""
        book = self._books.get(snapshot.asset_id)
        if book is None:
            return BookVerdict(snapshot.asset_id, "ok", "unknown asset")
        if book.market is None:
            self._learn_market(book, snapshot.market)
        verdict = book.complete_resync(snapshot, resync_id=resync_id, now=now)
        self._learn_scheme(book)
        return verdict

    def invalidate_all(self, reason: str) -> list[BookVerdict]:
        """Invalidate every book (reconnect, dropped frames); returns the ``invalidated`` ones."""
        verdicts = [book.invalidate(reason) for book in self._books.values()]
        return [verdict for verdict in verdicts if verdict.action != "ok"]

    def needing_resync(self) -> list[str]:
        """Assets whose book is unsynced with no resync in flight."""
        return [asset for asset, book in self._books.items() if book.needs_resync]

    def next_deadline(self) -> float | None:
        """The earliest :meth:`OrderBook.next_deadline` over all books."""
        deadlines = [d for book in self._books.values() if (d := book.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> list[BookVerdict]:
        """:meth:`OrderBook.handle_timer` on every book; returns the non-``ok`` verdicts."""
        verdicts = [book.handle_timer(now) for book in self._books.values()]
        return [verdict for verdict in verdicts if verdict.action != "ok"]


Books = BookRegistry


class ResyncLimiter:
    """Token bucket for snapshot fetches, pure (``now`` in seconds, monotonic).

    Polymarket allows 1,500 ``/book`` requests per 10 s; the default is far below that so that
    a burst of invalidations (a reconnect of many assets) cannot starve other REST use.
    """

    __slots__ = ("_capacity", "_refill_per_second", "_tokens", "_updated", "granted", "refused")

    def __init__(self, rate: int = 50, per: float = 10.0, *, burst: int | None = None) -> None:
        if rate < 1 or per <= 0 or (burst is not None and burst < 1):
            raise ConfigError("ResyncLimiter needs rate >= 1, per > 0 and burst >= 1")
        self._capacity = float(burst if burst is not None else rate)
        self._refill_per_second = rate / per
        self._tokens = self._capacity
        self._updated: float | None = None
        self.granted = 0
        self.refused = 0

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            elapsed = now - self._updated
            self._tokens = min(self._capacity, self._tokens + elapsed * self._refill_per_second)
        if self._updated is None or now > self._updated:
            self._updated = now

    def try_acquire(self, now: float, n: int = 1) -> bool:
        """Take ``n`` tokens if available at ``now``."""
        self._refill(now)
        if self._tokens >= n:
            self._tokens -= n
            self.granted += n
            return True
        self.refused += 1
        return False

    def available(self, now: float) -> int:
        """Whole tokens available at ``now``."""
        self._refill(now)
        return math.floor(self._tokens)

    def next_available(self, now: float, n: int = 1) -> float:
        """The earliest time at which ``n`` tokens are available (``now`` if already)."""
        self._refill(now)
        missing = n - self._tokens
        return now if missing <= 0 else now + missing / self._refill_per_second

    def __repr__(self) -> str:
        return (
            f"ResyncLimiter(tokens={self._tokens:.2f}/{self._capacity:g}, "
            f"rate={self._refill_per_second:g}/s, granted={self.granted}, refused={self.refused})"
        )
