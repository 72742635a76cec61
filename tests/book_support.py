"""Shared helpers of the book tests: message builders, real-capture loaders, a reference model."""

from __future__ import annotations

import ast
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import strategies as st

from polyfeed.core.book import (
    BookOptions,
    OrderBook,
)
from polyfeed.core.book_hash import HashScheme, book_hash
from polyfeed.core.messages import (
    Book,
    Level,
    MarketEvent,
    PriceChange,
    PriceChangeEntry,
)

MARKET = "0xmarket"


ASSET = "1111111111111111111111111111111111111111111111111111111111111111111111111111"


OTHER = "2222222222222222222222222222222222222222222222222222222222222222222222222222"


CHECKS_OFF = BookOptions(check_top=False, hash_check_every=0)


def decode_event(data: Any) -> MarketEvent:
    if isinstance(data, list):
        (data,) = data
    if "bids" in data:
        data = {**data, "event_type": "book"}
    event: MarketEvent = msgspec.convert(data, type=MarketEvent, strict=False)
    return event


def load_literal_lines(path: Path) -> list[MarketEvent]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [decode_event(ast.literal_eval(line)) for line in lines]


def hash_sequence(fixtures_dir: Path) -> tuple[Book, list[tuple[PriceChange, Book]]]:
    """messages_hash.txt: a WS book, then (WS price_change, REST /book) twice (Oct 2025)."""
    text = (fixtures_dir / "polypy" / "messages_hash.txt").read_text()
    objects = [msgspec.json.decode(line) for line in text.splitlines() if line.startswith("{")]
    snapshot = decode_event(objects[0])
    assert isinstance(snapshot, Book)
    rounds = []
    for change, rest in zip(objects[1::2], objects[2::2], strict=True):
        event = decode_event(change)
        assert isinstance(event, PriceChange)
        rounds.append((event, msgspec.convert(rest, type=Book, strict=False)))
    return snapshot, rounds


def json_book(path: Path) -> Book:
    return msgspec.json.decode(path.read_bytes(), type=Book, strict=False)


def make_entry(
    price: str,
    size: str,
    side: str,
    *,
    asset: str = ASSET,
    hash: str = "",
    best_bid: str | None = None,
    best_ask: str | None = None,
) -> PriceChangeEntry:
    return PriceChangeEntry(
        asset_id=asset,
        price=price,
        size=size,
        side=side,
        hash=hash,
        best_bid=best_bid,
        best_ask=best_ask,
    )


def make_change(timestamp: int, *entries: PriceChangeEntry) -> PriceChange:
    return PriceChange(market=MARKET, timestamp=timestamp, price_changes=entries)


def book_msg(
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    *,
    timestamp: int = 1000,
    asset: str = ASSET,
    hash: str = "",
    tick_size: str | None = None,
) -> Book:
    return Book(
        market=MARKET,
        asset_id=asset,
        timestamp=timestamp,
        bids=[Level(p, s) for p, s in bids],
        asks=[Level(p, s) for p, s in asks],
        hash=hash,
        tick_size=tick_size,
    )


def side_levels(book: OrderBook, side: str) -> list[tuple[str, str]]:
    return [(level.price, level.size) for level in book.levels(side)]  # type: ignore[arg-type]


class RefBook:
    """Reference model: a dict per side keyed by exact value, sorted on every read."""

    def __init__(self) -> None:
        self.sides: dict[str, dict[Decimal, tuple[str, str]]] = {"bids": {}, "asks": {}}

    def snapshot(self, book: Book) -> None:
        self.sides = {"bids": {}, "asks": {}}
        for name, levels in (("bids", book.bids), ("asks", book.asks)):
            for level in levels:
                self.set(name, level.price, level.size)

    def set(self, side: str, price: str, size: str) -> None:
        if Decimal(size or "0") == 0:
            self.sides[side].pop(Decimal(price), None)
        else:
            self.sides[side][Decimal(price)] = (price, size)

    def hashed(self, book: Book) -> Book:
        """Take ``book`` as the server's book and return it as the server sends it: with the
        hash of its levels at its timestamp (metadata as in :meth:`hash`)."""
        self.snapshot(book)
        return msgspec.structs.replace(book, hash=self.hash(book.timestamp))

    def entry(self, entry: PriceChangeEntry) -> None:
        self.set("bids" if entry.side.upper() == "BUY" else "asks", entry.price, entry.size)

    def levels(self, side: str) -> list[tuple[str, str]]:
        return [self.sides[side][p] for p in sorted(self.sides[side], reverse=side == "bids")]

    def best(self, side: str) -> Decimal | None:
        prices = self.sides[side]
        if not prices:
            return None
        return max(prices) if side == "bids" else min(prices)

    def depth(self, side: str, n: int) -> Decimal:
        return sum((Decimal(size) for _, size in self.levels(side)[:n]), Decimal(0))

    def wire(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Levels in the server's hash order: bids ascending, asks descending."""
        return self.levels("bids")[::-1], self.levels("asks")[::-1]

    def hash(self, timestamp: int, scheme: HashScheme = HashScheme.V2025) -> str:
        bids, asks = self.wire()
        return book_hash(
            market=MARKET,
            asset_id=ASSET,
            timestamp=timestamp,
            bids=bids,
            asks=asks,
            scheme=scheme,
            min_order_size="5",
            tick_size="0.01",
            neg_risk=False,
        )


def assert_fast_path_invariant(book: OrderBook) -> None:
    # The fast path skips every check while this flag is set: it must never hide a doubt.
    if book._quiet:
        assert book.in_doubt is None
        assert book.held == 0
        assert book._rest.pending is None


def assert_same(book: OrderBook, ref: RefBook) -> None:
    assert_fast_path_invariant(book)
    assert side_levels(book, "bids") == ref.levels("bids")
    assert side_levels(book, "asks") == ref.levels("asks")
    if not book.crossed:
        assert book.best_bid == ref.best("bids")
        assert book.best_ask == ref.best("asks")


PRICE_STEPS = st.integers(min_value=1, max_value=99)


SIZES = st.one_of(
    st.sampled_from(["0", "0.0", "0.00", ""]),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2).map(str),
    st.integers(min_value=1, max_value=10**6).map(str),
)


NONZERO_SIZES = st.integers(min_value=1, max_value=10**6).map(str)


def price_text(step: int, pad: bool) -> str:
    text = f"0.{step:02d}"
    return text if pad else text.rstrip("0")


PRICE_TEXTS = st.builds(price_text, PRICE_STEPS, st.booleans())


ENTRY_SPEC = st.tuples(st.sampled_from(["BUY", "SELL", "buy", "sell"]), PRICE_TEXTS, SIZES)


SIDE_LEVELS = st.dictionaries(PRICE_STEPS, st.tuples(st.booleans(), NONZERO_SIZES), max_size=12)


SNAPSHOT_SPEC = st.tuples(SIDE_LEVELS, SIDE_LEVELS, st.randoms(use_true_random=False))


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("snap"), SNAPSHOT_SPEC),
        st.tuples(st.just("delta"), st.lists(ENTRY_SPEC, min_size=1, max_size=3)),
    ),
    max_size=40,
)


def snapshot_from_spec(spec: Any, timestamp: int) -> Book:
    bid_spec, ask_spec, rng = spec
    bids = [(price_text(k, pad), size) for k, (pad, size) in bid_spec.items()]
    asks = [(price_text(k, pad), size) for k, (pad, size) in ask_spec.items()]
    rng.shuffle(bids)  # wire order is never trusted
    rng.shuffle(asks)
    return book_msg(bids, asks, timestamp=timestamp)


def server_entries(spec: list[Any], ref: RefBook, timestamp: int) -> list[PriceChangeEntry]:
    """What a consistent server sends: each entry's hash/top are of the book after it."""
    entries = []
    for side, price, size in spec:
        ref.set("bids" if side.upper() == "BUY" else "asks", price, size)
        best_bid, best_ask = ref.best("bids"), ref.best("asks")
        entries.append(
            make_entry(
                price,
                size,
                side,
                hash=ref.hash(timestamp),
                best_bid="0" if best_bid is None else str(best_bid),
                best_ask="0" if best_ask is None else str(best_ask),
            )
        )
    return entries


def synced_book(**kwargs: Any) -> OrderBook:
    book = OrderBook(ASSET, MARKET, **kwargs)
    book.apply(book_msg([("0.40", "100"), ("0.45", "50")], [("0.55", "70"), ("0.60", "10")]))
    assert book.synced
    return book


# --------------------------------------------------------------------------- malformed input

_WIRE_DECIMAL = re.compile(r"[0-9]+\.?[0-9]*|\.[0-9]+")
JUNK = [
    "1abc",
    "abc",
    "-5",
    "+1",
    "NaN",
    "nan",
    "Infinity",
    "1e3",
    "1E-2",
    " 1",
    "1 ",
    "1_0",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: str.isdigit() says yes
    "1.2.3",
    ".",
    "9" * 41,
    "0x10",
]


def ref_size_valid(size: str) -> bool:
    """The grammar, written independently: empty, or ASCII digits with at most one dot."""
    return size == "" or (len(size) <= 40 and _WIRE_DECIMAL.fullmatch(size) is not None)


def ref_price_valid(price: str) -> bool:
    """A price is a size-grammar number (not empty) with at most six decimals, inside (0, 1)."""
    if price == "" or not ref_size_valid(price):
        return False
    scaled = Decimal(price).scaleb(6)
    return scaled == scaled.to_integral_value() and 0 < Decimal(price) < 1


def ref_entry_valid(side: str, price: str, size: str) -> bool:
    """Whether the book must accept an entry (else: malformed)."""
    known_side = side in ("BUY", "SELL", "buy", "sell")
    return known_side and ref_price_valid(price) and ref_size_valid(size)


ANY_SIZES = st.one_of(SIZES, st.sampled_from(JUNK), st.text(max_size=5))
ANY_PRICES = st.one_of(PRICE_TEXTS, st.sampled_from([*JUNK, "0.1234567"]), st.text(max_size=5))
ANY_ENTRY_SPEC = st.tuples(st.sampled_from(["BUY", "SELL", "buy", "HOLD"]), ANY_PRICES, ANY_SIZES)
"""Entries of any shape: well formed most of the time, malformed in every way otherwise."""


def server_run(specs: list[list[Any]], ref: RefBook, timestamp: int) -> list[PriceChange]:
    """One matching event split over several messages, as Polymarket sends it: every message
    shares the timestamp, and every entry carries the hash and top of the book after the run."""
    for spec in specs:
        for side, price, size in spec:
            ref.set("bids" if side.upper() == "BUY" else "asks", price, size)
    best_bid, best_ask = ref.best("bids"), ref.best("asks")
    final = {
        "hash": ref.hash(timestamp),
        "best_bid": "0" if best_bid is None else str(best_bid),
        "best_ask": "0" if best_ask is None else str(best_ask),
    }
    return [
        make_change(
            timestamp, *(make_entry(price, size, side, **final) for side, price, size in spec)
        )
        for spec in specs
    ]


RUNS = st.lists(
    st.lists(st.lists(ENTRY_SPEC, min_size=1, max_size=2), min_size=1, max_size=4), max_size=12
)
"""Matching events, each a run of one to four messages."""
