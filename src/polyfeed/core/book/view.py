"""The read side of an :class:`~polyfeed.core.book.OrderBook`: prices, levels, state, repr.

Everything here only reads; what changes a book is in :mod:`~polyfeed.core.book.order_book`.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

from mypy_extensions import mypyc_attr

from polyfeed.core.book.doubt import Grace
from polyfeed.core.book.held import HeldDeltas
from polyfeed.core.book.integrity import HashCheck
from polyfeed.core.book.levels import Levels
from polyfeed.core.book.options import BookCounters, BookSide
from polyfeed.core.book_hash import HashScheme
from polyfeed.core.messages import Book, Level
from polyfeed.errors import ConfigError

if TYPE_CHECKING:
    from polyfeed.core.book.resync import ResyncState

__all__ = ["OrderBookView"]


# Open to Python subclasses because OrderBook is (mypyc requires it of every base).
@mypyc_attr(allow_interpreted_subclasses=True)
class OrderBookView:
    """Reading one asset's book; the state it reads is created by ``OrderBook``."""

    __slots__ = (
        "_grace",
        "_hash",
        "_held",
        "_last_trade_price",
        "_levels",
        "_resync",
        "_timestamp",
        "_timestamp_known",
        "asset_id",
        "best_ask",
        "best_bid",
        "counters",
        "market",
        "min_order_size",
        "neg_risk",
        "tick_size",
    )

    asset_id: str
    market: str | None
    tick_size: str | None
    min_order_size: str | None
    neg_risk: bool | None
    best_bid: Decimal | None
    best_ask: Decimal | None
    counters: BookCounters
    _levels: Levels
    _hash: HashCheck
    _grace: Grace
    _held: HeldDeltas
    _resync: ResyncState
    _last_trade_price: str | None
    # Not an optional int: compiled, storing a timestamp there would allocate an int object on
    # every message.
    _timestamp: int
    _timestamp_known: bool

    # ------------------------------------------------------------------ reading

    @property
    def synced(self) -> bool:
        """True while the book follows a snapshot plus every delta since (as far as we know)."""
        return self._resync.synced

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
        return self._levels.crossed

    @property
    def in_doubt(self) -> str | None:
        """Why the book is unproven (a doubt, or a hash run not verified yet), or None."""
        return self._grace.reason

    @property
    def last_trade_price(self) -> str | None:
        """The asset's last trade price as the server wrote it (part of the 2026 hash)."""
        return self._last_trade_price

    @property
    def timestamp(self) -> int | None:
        """Server timestamp (epoch ms) of the last snapshot or message applied."""
        return self._timestamp if self._timestamp_known else None

    @property
    def hash_scheme(self) -> HashScheme:
        """The hash preimage scheme in use (or tried first, while not yet detected)."""
        return self._hash.scheme

    @property
    def scheme_detected(self) -> bool:
        """Whether a hash has reproduced under :attr:`hash_scheme` (or detection is off)."""
        return self._hash.scheme_known

    @property
    def resync_in_flight(self) -> bool:
        """True between :meth:`begin_resync` and :meth:`complete_resync`/:meth:`abort_resync`."""
        return self._resync.in_flight

    @property
    def needs_resync(self) -> bool:
        """Unsynced and no resync in flight: the caller should fetch a snapshot (rate-limited)."""
        return not self._resync.synced and not self._resync.in_flight

    @property
    def buffered(self) -> int:
        """Messages buffered for replay after the next snapshot."""
        return len(self._resync.buffer)

    @property
    def held(self) -> int:
        """Off-grid deltas currently held after a tick size change."""
        return len(self._held)

    def level_counts(self) -> tuple[int, int]:
        """Number of (bid, ask) levels."""
        return len(self._levels.bid_keys), len(self._levels.ask_keys)

    def _is_bid(self, side: BookSide) -> bool:
        if side == "bids":
            return True
        if side == "asks":
            return False
        raise ConfigError(f"side must be 'bids' or 'asks', not {side!r}")

    def levels(self, side: BookSide) -> Iterator[Level]:
        """The side's levels, best first, with the server's exact strings."""
        return self._levels.best_first(self._is_bid(side))

    def top_n(self, side: BookSide, n: int) -> list[Level]:
        """The best ``n`` levels of a side, best first."""
        return self._levels.top_n(self._is_bid(side), n)

    def depth(self, side: BookSide, n: int | None = None) -> Decimal:
        """Total size within the best ``n`` levels of a side (all levels when ``n`` is None)."""
        return self._levels.depth(self._is_bid(side), n)

    def to_book(self) -> Book:
        """Our raw book as a ``Book`` message, levels in wire order (bids up, asks down)."""
        return Book(
            market=self.market or "",
            asset_id=self.asset_id,
            timestamp=self._timestamp,
            bids=self._levels.wire(True),
            asks=self._levels.wire(False),
            tick_size=self.tick_size,
            last_trade_price=self._last_trade_price,
            min_order_size=self.min_order_size,
            neg_risk=self.neg_risk,
        )

    def compute_hash(self, timestamp: int | None = None, scheme: HashScheme | None = None) -> str:
        """Polymarket's hash of our raw book (default: current timestamp and scheme)."""
        return self._hash.compute(
            self._levels,
            self,
            self.timestamp if timestamp is None else timestamp,
            self._hash.scheme if scheme is None else scheme,
            self._last_trade_price,
        )

    def __repr__(self) -> str:
        c = self.counters
        short = (
            self.asset_id
            if len(self.asset_id) <= 12
            else f"{self.asset_id[:4]}…{self.asset_id[-4:]}"
        )
        resync = self._resync
        state = "synced" if resync.synced else "resyncing" if resync.in_flight else "unsynced"
        reason = self._grace.reason
        doubt = f" doubt={reason!r}" if reason is not None else ""
        bids, asks = self.level_counts()
        return (
            f"OrderBook({short} {state} bid={self.best_bid} ask={self.best_ask} "
            f"levels={bids}/{asks} "
            f"top={c.top_checks}/{c.top_mismatches} "
            f"hash={c.hash_checks}/{c.hash_mismatches} skipped={c.hash_skipped} "
            f"rest={c.reconcile_checks}/{c.reconcile_mismatches} "
            f"scheme={self._hash.scheme.name}{'' if self._hash.scheme_known else '?'} "
            f"held={len(self._held)} buffered={len(resync.buffer)}{doubt})"
        )
