"""The two sides of one book: exact levels, sorted keys, and the preimage text of each side.

Each side is two aligned lists: the sorted integer price keys and each level's preimage text
(``{"price":"0.52","size":"10"}``, :func:`~polyfeed.core.book_hash.level_json` of the server's
exact strings), kept in order with ``bisect``. Storing the text rather than a ``(price, size)``
pair, in key order, makes a side's hash text one C-level ``join`` (formatting the levels of a
side changed by a burst was most of a hash check), keeps a book free of objects the cyclic GC
tracks beyond its two lists per side, and halves a book's memory; the rarer readers (views, REST
comparison) split the text with :func:`~polyfeed.core.book_hash.level_fields`.

Asks are keyed by the *negated* price, so on both sides the best level is the last key and
iterating the keys in order yields the wire order (bids ascending, asks descending).
:meth:`Levels.set` is the one function that sets a level, on every path (live deltas, replay,
held deltas); :meth:`Levels.load` is the one that reads a snapshot. Both validate with
:mod:`polyfeed.core.book.numbers`, so nothing malformed is ever stored.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Final

from mypy_extensions import i64

from polyfeed.core.book.numbers import (
    COMPILED,
    DECIMALS,
    MALFORMED,
    POSITIVE,
    PRICES,
    ZERO,
    parse_price,
    price_decimal,
    price_key,
    scan_size_kind,
    server_top,
    size_kind,
)
from polyfeed.core.book_hash import level_fields, level_json
from polyfeed.core.messages import Book, Level, PriceChangeEntry

__all__ = ["APPLIED", "HELD", "MALFORMED_ENTRY", "Levels", "Undo", "level_index"]

APPLIED: Final = 0
MALFORMED_ENTRY: Final = 1
HELD: Final = 2

Side = dict[int, str]
"""Price key -> the level's :func:`~polyfeed.core.book_hash.level_json` text (a loaded side)."""
Undo = tuple[bool, int, str | None]
"""How to put one level back: (is bid, key, previous level text or None when it was absent)."""


def level_index(keys: list[int], key: int) -> int:
    """``bisect.bisect_left(keys, key)`` as a plain loop, for the compiled build (see
    :data:`~polyfeed.core.book.numbers.COMPILED`); a property test pins the two equal."""
    low: i64 = 0
    high: i64 = len(keys)
    while low < high:
        middle = (low + high) >> 1
        if keys[middle] < key:
            low = middle + 1
        else:
            high = middle
    return low


def _load_side(levels: Sequence[Level], sign: int) -> Side:
    side: Side = {}
    for level in levels:
        kind = size_kind(level.size)
        if kind == MALFORMED:
            raise ValueError(f"malformed size {level.size!r}")
        key = sign * price_key(level.price)
        if kind == ZERO:
            side.pop(key, None)
        else:
            side[key] = level_json(level.price, level.size)
    return side


class Levels:
    """Bids and asks of one asset with their exact strings (see the module docstring)."""

    __slots__ = (
        "ask_json",
        "ask_keys",
        "ask_texts",
        "bid_json",
        "bid_keys",
        "bid_texts",
    )

    def __init__(self) -> None:
        self.bid_keys: list[int] = []
        self.ask_keys: list[int] = []
        # Each level's preimage text, aligned with the keys.
        self.bid_texts: list[str] = []
        self.ask_texts: list[str] = []
        # A side's preimage text, None once the side changed.
        self.bid_json: str | None = None
        self.ask_json: str | None = None

    def __repr__(self) -> str:
        return f"Levels(bids={len(self.bid_keys)}, asks={len(self.ask_keys)})"

    # ------------------------------------------------------------------ writing

    def set(self, side: str, price: str, size: str, tick: int) -> int:
        """Set one level from a delta: :data:`APPLIED`, :data:`HELD` or :data:`MALFORMED_ENTRY`.

        A malformed price, side or size, or a nonzero size off the ``tick`` grid (``tick`` > 0,
        in price keys), changes nothing. A zero size removes the level.
        """
        hit = PRICES.get(price)
        if hit is None:
            try:
                hit = parse_price(price)
            except ValueError:
                return MALFORMED_ENTRY
        # The side's preimage text is dropped up front (even if nothing changes below):
        # cheaper than tracking whether it must be.
        if side == "BUY" or side == "buy":
            key = hit[0]
            keys = self.bid_keys
            texts = self.bid_texts
            self.bid_json = None
        elif side == "SELL" or side == "sell":
            key = -hit[0]
            keys = self.ask_keys
            texts = self.ask_texts
            self.ask_json = None
        else:
            return MALFORMED_ENTRY
        kind = scan_size_kind(size) if COMPILED else size_kind(size)
        if kind == MALFORMED:
            return MALFORMED_ENTRY
        positive = kind == POSITIVE
        if positive and tick and key % tick:
            return HELD
        index = level_index(keys, key) if COMPILED else bisect_left(keys, key)
        if index < len(keys) and keys[index] == key:
            if positive:
                # level_json, inlined; a test pins them equal.
                texts[index] = f'{{"price":"{price}","size":"{size}"}}'
            else:
                del keys[index]
                del texts[index]
        elif positive:
            keys.insert(index, key)
            texts.insert(index, f'{{"price":"{price}","size":"{size}"}}')
        return APPLIED

    def before(self, entry: PriceChangeEntry) -> Undo:
        """What :meth:`restore` needs to undo ``entry`` (which must be well formed)."""
        is_bid = entry.side in ("BUY", "buy")
        key = price_key(entry.price) * (1 if is_bid else -1)
        keys, texts = self.side(is_bid)
        index = bisect_left(keys, key)
        present = index < len(keys) and keys[index] == key
        return is_bid, key, texts[index] if present else None

    def restore(self, undo: Undo) -> None:
        """Put back one level recorded by :meth:`before`."""
        is_bid, key, previous = undo
        keys, texts = self.side(is_bid)
        self.bid_json = self.ask_json = None
        index = bisect_left(keys, key)
        if index < len(keys) and keys[index] == key:
            if previous is None:
                del keys[index]
                del texts[index]
            else:
                texts[index] = previous
        elif previous is not None:
            keys.insert(index, key)
            texts.insert(index, previous)

    def load(self, snapshot: Book) -> None:
        """Replace both sides with a snapshot's; ``ValueError`` (nothing changed) if malformed."""
        bids = _load_side(snapshot.bids, 1)
        asks = _load_side(snapshot.asks, -1)
        self.bid_keys = sorted(bids)
        self.ask_keys = sorted(asks)
        self.bid_texts = [bids[key] for key in self.bid_keys]
        self.ask_texts = [asks[key] for key in self.ask_keys]
        self.bid_json = self.ask_json = None

    # ------------------------------------------------------------------ reading

    @property
    def crossed(self) -> bool:
        """Whether best bid >= best ask (transient during matching)."""
        bids = self.bid_keys
        asks = self.ask_keys
        return bool(bids and asks and bids[-1] >= -asks[-1])

    def side(self, is_bid: bool) -> tuple[list[int], list[str]]:
        """(sorted keys, level texts aligned with them) of a side."""
        return (self.bid_keys, self.bid_texts) if is_bid else (self.ask_keys, self.ask_texts)

    def best_first(self, is_bid: bool) -> Iterator[Level]:
        """A side's levels, best first."""
        for text in reversed(self.side(is_bid)[1]):
            yield Level(*level_fields(text))

    def top_n(self, is_bid: bool, n: int) -> list[Level]:
        """The best ``n`` levels of a side, best first."""
        texts = self.side(is_bid)[1]
        return [Level(*level_fields(text)) for text in texts[: -n - 1 : -1]] if n > 0 else []

    def depth(self, is_bid: bool, n: int | None) -> Decimal:
        """Total size of the best ``n`` levels of a side (all when None)."""
        texts = self.side(is_bid)[1]
        chosen = texts if n is None else texts[max(0, len(texts) - n) :] if n > 0 else []
        return sum((Decimal(level_fields(text)[1]) for text in chosen), Decimal(0))

    def wire(self, is_bid: bool) -> list[Level]:
        """A side in wire order (bids ascending, asks descending)."""
        return [Level(*level_fields(text)) for text in self.side(is_bid)[1]]

    def bids_text(self) -> str:
        """The bids as preimage text (cached until they change)."""
        text = self.bid_json
        if text is None:
            text = self.bid_json = ",".join(self.bid_texts)
        return text

    def asks_text(self) -> str:
        """The asks as preimage text (cached until they change)."""
        text = self.ask_json
        if text is None:
            text = self.ask_json = ",".join(self.ask_texts)
        return text

    @staticmethod
    def well_formed(book: Book) -> bool:
        """Whether every level of a summary is in the grammar (what :meth:`load` accepts)."""
        try:
            _load_side(book.bids, 1)
            _load_side(book.asks, -1)
        except ValueError:
            return False
        return True

    def equal_to(self, book: Book) -> bool:
        """Whether a summary holds the same sizes at the same prices (spellings may differ)."""
        try:
            loaded = _load_side(book.bids, 1), _load_side(book.asks, -1)
            bids, asks = (_sizes(list(side), list(side.values())) for side in loaded)
        except ValueError:
            return False
        return (
            _sizes(self.bid_keys, self.bid_texts) == bids
            and _sizes(self.ask_keys, self.ask_texts) == asks
        )

    def top(self, server_bid: str | None, server_ask: str | None) -> tuple[int | None, int | None]:
        """The reported (bid, ask) prices as keys: ours, or the server's while we are crossed.

        During matching the raw book is transiently crossed and the server's top is what the
        book will be after it; unusable server values leave our raw top.
        """
        bids = self.bid_keys
        asks = self.ask_keys
        bid = bids[-1] if bids else None
        ask = -asks[-1] if asks else None
        if bid is not None and ask is not None and bid >= ask and (server_bid or server_ask):
            try:
                return server_top(server_bid), server_top(server_ask)
            except ValueError:
                pass
        return bid, ask

    def top_agrees(self, server_bid: str | None, server_ask: str | None) -> bool:
        """Whether the server's best prices (absent: no opinion) equal ours."""
        return _same_price(server_bid, self.bid_keys, 1) and _same_price(
            server_ask, self.ask_keys, -1
        )


def decimal_of(key: int) -> Decimal:
    """The Decimal of a (positive) price key, from the parse cache when possible."""
    return DECIMALS.get(key) or price_decimal(key)


def _sizes(keys: list[int], texts: list[str]) -> dict[int, Decimal]:
    return {key: Decimal(level_fields(text)[1]) for key, text in zip(keys, texts, strict=True)}


def _same_price(server: str | None, keys: list[int], sign: int) -> bool:
    if server is None:
        return True
    if keys:
        best = keys[-1]
        try:
            return server_top(server) == sign * best
        except ValueError:
            return False
    try:
        return server_top(server) is None
    except ValueError:
        return False
