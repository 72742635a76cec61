"""Tests of the pure order book: real captures, a reference model, doubt/resync/limiter logic."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyfeed.core.book import (
    BookOptions,
    BookRegistry,
    Books,
    BookVerdict,
    OrderBook,
    ResyncLimiter,
)
from polyfeed.core.book_hash import HashScheme, book_hash
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    Level,
    MarketEvent,
    NewMarket,
    PriceChange,
    PriceChangeEntry,
    TickSizeChange,
)
from polyfeed.errors import ConfigError

MARKET = "0xmarket"
ASSET = "1111111111111111111111111111111111111111111111111111111111111111111111111111"
OTHER = "2222222222222222222222222222222222222222222222222222222222222222222222222222"
CHECKS_OFF = BookOptions(check_top=False, hash_check_every=0)


# --------------------------------------------------------------------------- helpers


def _decode_event(data: Any) -> MarketEvent:
    if isinstance(data, list):
        (data,) = data
    if "bids" in data:
        data = {**data, "event_type": "book"}
    event: MarketEvent = msgspec.convert(data, type=MarketEvent, strict=False)
    return event


def _load_literal_lines(path: Path) -> list[MarketEvent]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [_decode_event(ast.literal_eval(line)) for line in lines]


def _hash_sequence(fixtures_dir: Path) -> tuple[Book, list[tuple[PriceChange, Book]]]:
    """messages_hash.txt: a WS book, then (WS price_change, REST /book) twice (Oct 2025)."""
    text = (fixtures_dir / "polypy" / "messages_hash.txt").read_text()
    objects = [msgspec.json.decode(line) for line in text.splitlines() if line.startswith("{")]
    snapshot = _decode_event(objects[0])
    assert isinstance(snapshot, Book)
    rounds = []
    for change, rest in zip(objects[1::2], objects[2::2], strict=True):
        event = _decode_event(change)
        assert isinstance(event, PriceChange)
        rounds.append((event, msgspec.convert(rest, type=Book, strict=False)))
    return snapshot, rounds


def _json_book(path: Path) -> Book:
    return msgspec.json.decode(path.read_bytes(), type=Book, strict=False)


def _entry(
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


def _change(timestamp: int, *entries: PriceChangeEntry) -> PriceChange:
    return PriceChange(market=MARKET, timestamp=timestamp, price_changes=list(entries))


def _snapshot(
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


def _levels(book: OrderBook, side: str) -> list[tuple[str, str]]:
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


def _assert_fast_path_invariant(book: OrderBook) -> None:
    # The fast path skips every check while this flag is set: it must never hide a doubt.
    if book._quiet:
        assert book.in_doubt is None
        assert book.held == 0
        assert book._pending_rest is None


def _assert_same(book: OrderBook, ref: RefBook) -> None:
    _assert_fast_path_invariant(book)
    assert _levels(book, "bids") == ref.levels("bids")
    assert _levels(book, "asks") == ref.levels("asks")
    if not book.crossed:
        assert book.best_bid == ref.best("bids")
        assert book.best_ask == ref.best("asks")


# --------------------------------------------------------------------------- real captures


def test_oct_2025_sequence_reproduces_every_hash(fixtures_dir: Path) -> None:
    snapshot, rounds = _hash_sequence(fixtures_dir)
    registry = BookRegistry()
    registry.set_market_info(snapshot.market, min_order_size="5", tick_size="0.01", neg_risk=False)
    assert registry.apply(snapshot) == []
    book = registry[snapshot.asset_id]
    assert book.synced
    assert book.hash_scheme is HashScheme.V2025
    assert book.scheme_detected
    assert book.compute_hash() == snapshot.hash
    for change, rest in rounds:
        assert registry.apply(change) == []
        (mine,) = [e for e in change.price_changes if e.asset_id == book.asset_id]
        assert book.compute_hash(change.timestamp) == mine.hash
        assert book.compute_hash(rest.timestamp) == rest.hash
        assert book.reconcile(rest) == BookVerdict(book.asset_id, "ok", "match")
        assert book.best_bid == Decimal(mine.best_bid or "")
        assert book.best_ask == Decimal(mine.best_ask or "")
    counters = book.counters
    assert (counters.hash_checks, counters.hash_mismatches, counters.hash_skipped) == (3, 0, 0)
    assert (counters.top_checks, counters.top_mismatches) == (2, 0)
    assert (counters.reconcile_checks, counters.reconcile_mismatches) == (2, 0)
    # The other outcome's entries never touched this book, and it has no book of its own.
    assert len(registry) == 1
    assert book.level_counts() == (18, 16)


def test_dropped_delta_is_detected_by_the_next_hash(fixtures_dir: Path) -> None:
    snapshot, [(_, _), (change1, rest1)] = _hash_sequence(fixtures_dir)
    book = OrderBook(
        snapshot.asset_id,
        min_order_size="5",
        tick_size="0.01",
        neg_risk=False,
        options=BookOptions(grace_messages=0),
    )
    book.apply(snapshot)
    verdict = book.apply(change1)  # change 0 was "lost"
    assert verdict == BookVerdict(book.asset_id, "invalidated", "hash mismatch")
    assert not book.synced
    assert book.needs_resync
    assert book.counters.hash_mismatches == 1
    # The REST book agrees with what the server has, not with us.
    rid = book.begin_resync()
    assert book.complete_resync(rest1, resync_id=rid) == BookVerdict(
        book.asset_id, "resynced", "rest"
    )
    assert book.synced
    assert book.compute_hash(rest1.timestamp) == rest1.hash


def test_dropped_delta_with_default_grace_invalidates_after_grace_seconds(
    fixtures_dir: Path,
) -> None:
    snapshot, [(_, _), (change1, _)] = _hash_sequence(fixtures_dir)
    book = OrderBook(snapshot.asset_id, min_order_size="5", tick_size="0.01", neg_risk=False)
    book.apply(snapshot, now=10.0)
    assert book.apply(change1, now=10.0).action == "ok"
    assert book.in_doubt == "hash mismatch"
    assert book.next_deadline() == pytest.approx(12.0)
    assert book.handle_timer(11.0).action == "ok"
    assert book.handle_timer(12.0) == BookVerdict(book.asset_id, "invalidated", "hash mismatch")
    assert book.next_deadline() is None


def test_rest_reconcile_detects_a_dropped_delta(fixtures_dir: Path) -> None:
    snapshot, [(_, _), (change1, rest1)] = _hash_sequence(fixtures_dir)
    book = OrderBook(snapshot.asset_id, options=CHECKS_OFF)
    book.apply(snapshot)
    book.apply(change1)
    assert book.reconcile(rest1) == BookVerdict(book.asset_id, "invalidated", "REST book mismatch")
    assert book.counters.reconcile_mismatches == 1


def test_rest_reconcile_timing_rules(fixtures_dir: Path) -> None:
    snapshot, [(change0, rest0), (change1, rest1)] = _hash_sequence(fixtures_dir)
    book = OrderBook(snapshot.asset_id, options=CHECKS_OFF)
    assert book.reconcile(rest0).reason == "unsynced"
    book.apply(snapshot)
    # REST is ahead of us: kept, then matched when the delta arrives.
    assert book.reconcile(rest0).reason == "pending"
    assert book.apply(change0).action == "ok"
    assert book.counters.reconcile_checks == 1
    # REST older than us and different: inconclusive.
    book.apply(change1)
    assert book.reconcile(rest0).reason == "inconclusive"
    assert book.counters.reconcile_inconclusive == 2
    # REST ahead and the deltas never come: invalidated after grace_seconds.
    book2 = OrderBook(snapshot.asset_id, options=CHECKS_OFF)
    book2.apply(snapshot)
    assert book2.reconcile(rest1, now=5.0).reason == "pending"
    assert book2.next_deadline() == pytest.approx(7.0)
    assert book2.handle_timer(6.0).action == "ok"
    assert book2.handle_timer(7.5) == BookVerdict(
        book2.asset_id, "invalidated", "REST book mismatch"
    )
    # REST ahead, our stream reaches its timestamp with a different book: invalidated.
    book3 = OrderBook(snapshot.asset_id, options=CHECKS_OFF)
    book3.apply(snapshot)
    assert book3.reconcile(rest1).reason == "pending"
    assert book3.apply(change1) == BookVerdict(book3.asset_id, "invalidated", "REST book mismatch")


def test_reconcile_rejects_another_asset(fixtures_dir: Path) -> None:
    _, [(_, rest0), _] = _hash_sequence(fixtures_dir)
    with pytest.raises(ConfigError):
        OrderBook(OTHER).reconcile(rest0)
    with pytest.raises(ConfigError):
        OrderBook(OTHER).complete_resync(rest0)


def test_captured_2026_snapshot_hash_with_last_trade_price(fixtures_dir: Path) -> None:
    snapshot = _json_book(fixtures_dir / "nautilus_trader" / "ws_book_snapshot_captured.json")
    book = OrderBook(snapshot.asset_id, min_order_size="5", neg_risk=False)
    book.apply(snapshot)
    assert book.hash_scheme is HashScheme.V2026
    assert book.scheme_detected
    assert book.last_trade_price == snapshot.last_trade_price
    assert book.tick_size == "0.01"
    assert book.compute_hash() == snapshot.hash
    assert book.counters.hash_checks == 1
    assert book.best_bid == Decimal("0.07")
    assert book.best_ask == Decimal("0.08")
    assert book.level_counts() == (7, 57)


def test_missing_metadata_skips_the_hash_check(fixtures_dir: Path) -> None:
    snapshot, [(change0, _), (change1, _)] = _hash_sequence(fixtures_dir)
    registry = BookRegistry()
    registry.apply(snapshot)
    book = registry[snapshot.asset_id]
    assert book.synced
    assert not book.scheme_detected
    assert book.counters.hash_skipped == 1
    assert book.counters.hash_mismatches == 0
    assert registry.apply(change0) == []
    assert book.counters.hash_mismatches == 0
    # Metadata arrives (REST /markets): the next delta detects the scheme and verifies.
    registry.set_market_info(snapshot.market, min_order_size="5", tick_size="0.01", neg_risk=False)
    assert registry.apply(change1) == []
    assert book.scheme_detected
    assert book.hash_scheme is HashScheme.V2025
    assert book.counters.hash_checks == 1
    assert book.counters.hash_mismatches == 0
    assert book.in_doubt is None


@pytest.mark.parametrize("name", ["ws_msg_book_yes.json", "ws_msg_book_no.json"])
def test_2024_snapshots_autodetect_v2024(fixtures_dir: Path, name: str) -> None:
    snapshot = _json_book(fixtures_dir / "polypy" / name)
    registry = BookRegistry()
    registry.apply(snapshot)
    book = registry[snapshot.asset_id]
    assert book.hash_scheme is HashScheme.V2024
    assert book.scheme_detected
    assert book.counters.hash_checks == 1
    ref = RefBook()
    ref.snapshot(snapshot)
    _assert_same(book, ref)
    assert book.spread == ref.best("asks") - ref.best("bids")  # type: ignore[operator]
    # New books start from the detected scheme.
    assert registry.add(OTHER).hash_scheme is HashScheme.V2024


def test_yes_and_no_books_mirror(fixtures_dir: Path) -> None:
    yes = _json_book(fixtures_dir / "polypy" / "ws_msg_book_yes.json")
    no = _json_book(fixtures_dir / "polypy" / "ws_msg_book_no.json")
    registry = Books()
    registry.apply(yes)
    registry.apply(no)
    yes_book, no_book = registry[yes.asset_id], registry[no.asset_id]
    assert yes_book.best_bid == 1 - no_book.best_ask  # type: ignore[operator]
    assert yes_book.best_ask == 1 - no_book.best_bid  # type: ignore[operator]


def test_edited_single_book_capture_levels(fixtures_dir: Path) -> None:
    events = _load_literal_lines(fixtures_dir / "polypy" / "test_server_messages.txt")
    first = events[0]
    assert isinstance(first, Book)
    book = OrderBook(first.asset_id, options=CHECKS_OFF)
    ref = RefBook()
    for event in events:
        assert book.apply(event).action == "ok"
        if isinstance(event, Book):
            ref.snapshot(event)
        elif isinstance(event, PriceChange):
            for entry in event.price_changes:
                ref.entry(entry)
        _assert_same(book, ref)
    assert book.last_trade_price == "0.52"
    assert book.tick_size == "0.01"
    assert book.synced


def test_edited_capture_with_checks_on_reports_no_false_hash_mismatch(fixtures_dir: Path) -> None:
    events = _load_literal_lines(fixtures_dir / "polypy" / "test_server_messages.txt")
    first = events[0]
    assert isinstance(first, Book)
    book = OrderBook(first.asset_id)
    for event in events:
        book.apply(event)
    # Edited messages: no scheme reproduces, so hashes are skipped rather than failed; the
    # edited best_bid/best_ask ("0") disagree with the book and are counted.
    assert not book.scheme_detected
    assert book.counters.hash_mismatches == 0
    assert book.counters.hash_skipped > 0
    assert book.counters.top_mismatches > 0


def test_edited_multi_book_capture_levels(fixtures_dir: Path) -> None:
    events = _load_literal_lines(fixtures_dir / "polypy" / "test_server_multi_book.txt")
    registry = BookRegistry(CHECKS_OFF)
    refs: dict[str, RefBook] = {}
    for event in events:
        assert registry.apply(event) == []
        if isinstance(event, Book):
            refs.setdefault(event.asset_id, RefBook()).snapshot(event)
        elif isinstance(event, PriceChange):
            for entry in event.price_changes:
                refs[entry.asset_id].entry(entry)
        for asset, ref in refs.items():
            _assert_same(registry[asset], ref)
    assert len(registry) == 2


# --------------------------------------------------------------------------- reference model

_PRICE_STEPS = st.integers(min_value=1, max_value=99)
_SIZES = st.one_of(
    st.sampled_from(["0", "0.0", "0.00", ""]),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2).map(str),
    st.integers(min_value=1, max_value=10**6).map(str),
)
_NONZERO = st.integers(min_value=1, max_value=10**6).map(str)


def _price_text(step: int, pad: bool) -> str:
    text = f"0.{step:02d}"
    return text if pad else text.rstrip("0")


_PRICES = st.builds(_price_text, _PRICE_STEPS, st.booleans())
_ENTRY = st.tuples(st.sampled_from(["BUY", "SELL", "buy", "sell"]), _PRICES, _SIZES)
_SIDE_LEVELS = st.dictionaries(_PRICE_STEPS, st.tuples(st.booleans(), _NONZERO), max_size=12)
_SNAPSHOT = st.tuples(_SIDE_LEVELS, _SIDE_LEVELS, st.randoms(use_true_random=False))
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("snap"), _SNAPSHOT),
        st.tuples(st.just("delta"), st.lists(_ENTRY, min_size=1, max_size=3)),
    ),
    max_size=40,
)


def _make_snapshot(spec: Any, timestamp: int) -> Book:
    bid_spec, ask_spec, rng = spec
    bids = [(_price_text(k, pad), size) for k, (pad, size) in bid_spec.items()]
    asks = [(_price_text(k, pad), size) for k, (pad, size) in ask_spec.items()]
    rng.shuffle(bids)  # wire order is never trusted
    rng.shuffle(asks)
    return _snapshot(bids, asks, timestamp=timestamp)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS, n=st.integers(min_value=0, max_value=15))
def test_book_matches_reference_model(ops: list[Any], n: int) -> None:
    book = OrderBook(ASSET, options=CHECKS_OFF)
    ref = RefBook()
    for timestamp, (kind, spec) in enumerate(ops, start=1):
        if kind == "snap":
            snapshot = _make_snapshot(spec, timestamp)
            book.apply(snapshot)
            ref.snapshot(snapshot)
        else:
            entries = [_entry(price, size, side) for side, price, size in spec]
            book.apply(_change(timestamp, *entries))
            for entry in entries:
                ref.entry(entry)
        assert _levels(book, "bids") == ref.levels("bids")
        assert _levels(book, "asks") == ref.levels("asks")
        assert book.level_counts() == (len(ref.sides["bids"]), len(ref.sides["asks"]))
        assert book.best_bid == ref.best("bids")
        assert book.best_ask == ref.best("asks")
        for side in ("bids", "asks"):
            assert book.depth(side, n) == ref.depth(side, n)
            assert [(lv.price, lv.size) for lv in book.top_n(side, n)] == ref.levels(side)[:n]
        assert book.depth("bids") == ref.depth("bids", 10**6)
        _assert_fast_path_invariant(book)


def _server_entries(spec: list[Any], ref: RefBook, timestamp: int) -> list[PriceChangeEntry]:
    """What a consistent server sends: each entry's hash/top are of the book after it."""
    entries = []
    for side, price, size in spec:
        ref.set("bids" if side.upper() == "BUY" else "asks", price, size)
        best_bid, best_ask = ref.best("bids"), ref.best("asks")
        entries.append(
            _entry(
                price,
                size,
                side,
                hash=ref.hash(timestamp),
                best_bid="0" if best_bid is None else str(best_bid),
                best_ask="0" if best_ask is None else str(best_ask),
            )
        )
    return entries


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS, every=st.sampled_from([1, 3, 0]))
def test_consistent_server_never_raises_an_alarm(ops: list[Any], every: int) -> None:
    book = OrderBook(
        ASSET,
        MARKET,
        min_order_size="5",
        tick_size="0.01",
        neg_risk=False,
        options=BookOptions(hash_check_every=every),
    )
    ref = RefBook()
    for timestamp, (kind, spec) in enumerate(ops, start=1):
        if kind == "snap":
            snapshot = _make_snapshot(spec, timestamp)
            ref.snapshot(snapshot)
            snapshot = msgspec.structs.replace(snapshot, hash=ref.hash(timestamp))
            verdict = book.apply(snapshot)
        else:
            verdict = book.apply(_change(timestamp, *_server_entries(spec, ref, timestamp)))
        _assert_fast_path_invariant(book)
        if every == 0:
            # Without hashes a real crossing cannot be proven transient: only that may alarm.
            assert verdict.action == "ok" or verdict.reason in ("crossed book", "snapshot")
            if book.synced and not book.crossed:
                assert book.in_doubt is None
            continue
        assert verdict.action == "ok"
        if book.synced:
            assert book.in_doubt is None
            assert book.best_bid == ref.best("bids")
            assert book.best_ask == ref.best("asks")
    assert book.counters.hash_mismatches == 0
    assert book.counters.top_mismatches == 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snap=_SNAPSHOT,
    deltas=st.lists(st.lists(_ENTRY, min_size=1, max_size=3), min_size=2, max_size=12),
    data=st.data(),
)
def test_a_dropped_message_is_detected_exactly_when_the_books_differ(
    snap: Any, deltas: list[Any], data: st.DataObject
) -> None:
    dropped = data.draw(st.integers(min_value=0, max_value=len(deltas) - 2))
    book = OrderBook(
        ASSET,
        MARKET,
        min_order_size="5",
        tick_size="0.01",
        neg_risk=False,
        options=BookOptions(grace_messages=0, check_top=False),
    )
    ref = RefBook()
    snapshot = _make_snapshot(snap, 1)
    ref.snapshot(snapshot)
    book.apply(msgspec.structs.replace(snapshot, hash=ref.hash(1)))
    for timestamp, spec in enumerate(deltas, start=2):
        entries = _server_entries(spec, ref, timestamp)
        if timestamp - 2 == dropped:
            continue
        verdict = book.apply(_change(timestamp, *entries))
        _assert_fast_path_invariant(book)
        differs = _levels(book, "bids") != ref.levels("bids") or _levels(
            book, "asks"
        ) != ref.levels("asks")
        if differs:
            assert verdict == BookVerdict(ASSET, "invalidated", "hash mismatch")
            break
        assert verdict.action == "ok"


# --------------------------------------------------------------------------- behaviours


def _synced_book(**kwargs: Any) -> OrderBook:
    book = OrderBook(ASSET, MARKET, **kwargs)
    book.apply(_snapshot([("0.40", "100"), ("0.45", "50")], [("0.55", "70"), ("0.60", "10")]))
    assert book.synced
    return book


def test_reading_api_and_repr() -> None:
    book = _synced_book()
    assert (book.best_bid, book.best_ask) == (Decimal("0.45"), Decimal("0.55"))
    assert book.spread == Decimal("0.10")
    assert book.midpoint == Decimal("0.5")
    assert book.top_n("bids", 1) == [Level("0.45", "50")]
    assert book.top_n("asks", 5) == [Level("0.55", "70"), Level("0.60", "10")]
    assert book.top_n("asks", 0) == []
    assert book.depth("bids", 1) == Decimal(50)
    assert book.depth("asks") == Decimal(80)
    assert book.depth("asks", 0) == Decimal(0)
    wire = book.to_book()
    assert [lv.price for lv in wire.bids] == ["0.40", "0.45"]
    assert [lv.price for lv in wire.asks] == ["0.60", "0.55"]
    with pytest.raises(ConfigError):
        book.depth("up")  # type: ignore[arg-type]
    text = repr(book)
    assert "1111…1111 synced" in text
    assert "bid=0.45 ask=0.55" in text
    assert "levels=2/2" in text
    assert "hash=" in text
    empty = OrderBook("short")
    assert empty.best_bid is None and empty.spread is None and empty.midpoint is None
    assert "short unsynced" in repr(empty)
    assert "books=0" in repr(BookRegistry())


def test_zero_in_any_spelling_deletes_and_strings_are_kept() -> None:
    book = _synced_book(options=CHECKS_OFF)
    for i, zero in enumerate(["0", "0.0", "0.000", ""]):
        book.apply(_change(2000 + i, _entry("0.45", "5", "BUY")))
        assert book.best_bid == Decimal("0.45")
        book.apply(_change(2100 + i, _entry("0.450", zero, "BUY")))
        assert book.best_bid == Decimal("0.40")
    book.apply(_change(3000, _entry("0.4", "110000.0", "buy")))
    assert _levels(book, "bids") == [("0.4", "110000.0")]


def test_entries_for_other_assets_are_ignored_and_the_registry_mirrors() -> None:
    registry = BookRegistry(CHECKS_OFF)
    registry.apply(_snapshot([("0.40", "1")], [("0.60", "1")], asset=ASSET))
    registry.apply(_snapshot([("0.40", "1")], [("0.60", "1")], asset=OTHER))
    message = _change(
        2000,
        _entry("0.45", "10", "BUY", asset=ASSET),
        _entry("0.55", "10", "SELL", asset=OTHER),
        _entry("0.46", "10", "BUY", asset="unknown"),
    )
    assert registry.apply(message) == []
    assert registry[ASSET].best_bid == Decimal("0.45")
    assert registry[ASSET].best_ask == Decimal("0.60")
    assert registry[OTHER].best_ask == Decimal("0.55")
    assert registry[OTHER].best_bid == Decimal("0.40")
    alone = OrderBook(ASSET, options=CHECKS_OFF)
    alone.apply(_snapshot([("0.40", "1")], [("0.60", "1")]))
    alone.apply(message)
    assert alone.best_ask == Decimal("0.60")
    assert "unknown" not in registry
    registry.remove(OTHER)
    assert list(registry) == [ASSET]
    assert registry.apply(NewMarket(market=MARKET, timestamp=1)) == []


def test_crossed_book_reports_the_server_top_and_heals() -> None:
    book = _synced_book(options=BookOptions(hash_check_every=0, grace_messages=2))
    # A taker sell at 0.44 arrives before the bids it hits are removed.
    verdict = book.apply(
        _change(2000, _entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44"))
    )
    assert verdict.action == "ok"
    assert book.crossed
    assert (book.best_bid, book.best_ask) == (Decimal("0.40"), Decimal("0.44"))
    assert book.in_doubt == "crossed book"
    book.apply(_change(2000, _entry("0.45", "0", "BUY", best_bid="0.40", best_ask="0.44")))
    assert not book.crossed
    assert book.in_doubt is None
    assert book.synced


def test_crossing_beyond_grace_messages_invalidates() -> None:
    book = _synced_book(options=BookOptions(hash_check_every=0, grace_messages=2))
    crossing = _entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44")
    assert book.apply(_change(2000, crossing)).action == "ok"
    assert book.apply(_change(2001, crossing)).action == "ok"
    assert book.apply(_change(2002, crossing)) == BookVerdict(ASSET, "invalidated", "crossed book")
    assert not book.synced


def test_crossing_beyond_grace_seconds_invalidates() -> None:
    book = _synced_book(options=BookOptions(hash_check_every=0, grace_seconds=1.0))
    crossing = _entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44")
    assert book.apply(_change(2000, crossing), now=100.0).action == "ok"
    assert book.apply(_change(2001, crossing), now=100.5).action == "ok"
    assert book.apply(_change(2002, crossing), now=101.0).action == "invalidated"


def test_top_of_book_disagreement_is_a_doubt_then_a_resync() -> None:
    book = _synced_book(options=BookOptions(hash_check_every=0, grace_messages=1))
    wrong = _entry("0.41", "5", "BUY", best_bid="0.46", best_ask="0.55")
    assert book.apply(_change(2000, wrong)).action == "ok"
    assert book.in_doubt == "top of book mismatch"
    assert book.counters.top_mismatches == 1
    assert book.apply(_change(2001, wrong)) == BookVerdict(
        ASSET, "invalidated", "top of book mismatch"
    )
    book2 = _synced_book()
    book2.apply(
        BestBidAsk(market=MARKET, asset_id=ASSET, best_bid="0.45", best_ask="0.5", timestamp=1)
    )
    assert (book2.counters.top_checks, book2.counters.top_mismatches) == (1, 1)
    assert book2.synced


def test_hash_every_nth_message_and_off() -> None:
    ref = RefBook()
    snapshot = _snapshot([("0.40", "100")], [("0.60", "100")])
    ref.snapshot(snapshot)
    snapshot = msgspec.structs.replace(snapshot, hash=ref.hash(1000))
    for every, expected_checks in ((1, 1 + 20), (10, 1 + 2), (0, 0)):
        book = OrderBook(
            ASSET,
            MARKET,
            min_order_size="5",
            tick_size="0.01",
            neg_risk=False,
            options=BookOptions(hash_check_every=every),
        )
        model = RefBook()
        model.snapshot(snapshot)
        book.apply(snapshot)
        for i in range(20):
            entries = _server_entries([("BUY", "0.30", str(i + 1))], model, 2000 + i)
            assert book.apply(_change(2000 + i, *entries)).action == "ok"
        assert book.counters.hash_checks == expected_checks
        assert book.counters.hash_mismatches == 0


def test_late_last_trade_price_resolves_a_2026_hash_mismatch() -> None:
    book = OrderBook(ASSET, MARKET, min_order_size="5", tick_size="0.01", neg_risk=False)
    bids, asks = [("0.40", "100"), ("0.45", "50")], [("0.60", "10"), ("0.55", "70")]

    def server_hash(b: list[tuple[str, str]], a: list[tuple[str, str]], ts: int, ltp: str) -> str:
        return book_hash(
            market=MARKET,
            asset_id=ASSET,
            timestamp=ts,
            bids=b,
            asks=a,
            min_order_size="5",
            tick_size="0.01",
            neg_risk=False,
            last_trade_price=ltp,
        )

    snapshot = msgspec.structs.replace(
        _snapshot(bids, asks), hash=server_hash(bids, asks, 1000, "0.5"), last_trade_price="0.5"
    )
    book.apply(snapshot)
    assert book.hash_scheme is HashScheme.V2026
    # A trade at 0.45 empties that level; the hash already includes the new trade price.
    after = server_hash([("0.40", "100")], asks, 2000, "0.45")
    assert book.apply(_change(2000, _entry("0.45", "0", "BUY", hash=after))).action == "ok"
    assert book.in_doubt == "hash mismatch"
    trade = LastTradePrice(market=MARKET, asset_id=ASSET, price="0.45", timestamp=2001)
    assert book.apply(trade).action == "ok"
    assert book.in_doubt is None
    assert book.last_trade_price == "0.45"
    assert book.counters.hash_late_matches == 1
    # A trade price that does not help leaves the doubt in place.
    wrong = server_hash([("0.40", "100")], [("0.60", "10")], 3000, "0.55")
    book.apply(_change(3000, _entry("0.55", "0", "SELL", hash=wrong)))
    book.apply(LastTradePrice(market=MARKET, asset_id=ASSET, price="0.56", timestamp=3001))
    assert book.in_doubt == "hash mismatch"


def test_tick_size_change_holds_off_grid_deltas() -> None:
    book = OrderBook(ASSET, MARKET, options=BookOptions(hash_check_every=0, grace_messages=3))
    book.apply(_snapshot([("0.401", "100"), ("0.45", "50")], [("0.55", "70")], tick_size="0.001"))
    book.apply(
        TickSizeChange(
            market=MARKET,
            asset_id=ASSET,
            old_tick_size="0.001",
            new_tick_size="0.01",
            timestamp=1500,
        )
    )
    assert book.tick_size == "0.01"
    # Off the new grid and not a removal: held.
    assert book.apply(_change(2000, _entry("0.452", "10", "BUY"))).action == "ok"
    assert book.held == 1
    assert book.best_bid == Decimal("0.45")
    assert book.in_doubt == "off-grid deltas held after tick size change"
    # Removing an old off-grid level is consistent and applied.
    book.apply(_change(2001, _entry("0.401", "0", "BUY")))
    assert _levels(book, "bids") == [("0.45", "50")]
    assert book.counters.held_entries == 1
    # A tick change that leaves it off the grid keeps holding it.
    book.apply(
        TickSizeChange(
            market=MARKET, asset_id=ASSET, old_tick_size="0.01", new_tick_size="0.1", timestamp=1
        )
    )
    assert book.held == 1
    # The tick goes back: the held delta is now on the grid and applied.
    book.apply(
        TickSizeChange(
            market=MARKET,
            asset_id=ASSET,
            old_tick_size="0.01",
            new_tick_size="0.001",
            timestamp=2500,
        )
    )
    assert book.held == 0
    assert book.in_doubt is None
    assert book.best_bid == Decimal("0.452")


def test_held_deltas_beyond_grace_invalidate_and_a_snapshot_clears_them() -> None:
    book = OrderBook(ASSET, MARKET, options=BookOptions(hash_check_every=0, grace_messages=2))
    book.apply(_snapshot([("0.45", "50")], [("0.55", "70")], tick_size="0.01"))
    off = _entry("0.452", "10", "BUY")
    assert book.apply(_change(2000, off)).action == "ok"
    assert book.apply(_change(2001, off)).action == "ok"
    verdict = book.apply(_change(2002, off))
    assert verdict == BookVerdict(
        ASSET, "invalidated", "off-grid deltas held after tick size change"
    )
    assert book.held == 0
    book2 = OrderBook(ASSET, MARKET, options=BookOptions(hash_check_every=0))
    book2.apply(_snapshot([("0.45", "50")], [("0.55", "70")], tick_size="0.01"))
    book2.apply(_change(2000, off))
    assert book2.held == 1
    book2.apply(_snapshot([("0.45", "50")], [("0.55", "70")], timestamp=3000))
    assert book2.held == 0
    assert book2.in_doubt is None


def test_held_delta_is_applied_when_the_hash_says_the_server_took_it() -> None:
    book = OrderBook(ASSET, MARKET, min_order_size="5", tick_size="0.01", neg_risk=False)
    ref = RefBook()
    snapshot = _snapshot([("0.45", "50")], [("0.55", "70")], tick_size="0.01")
    ref.snapshot(snapshot)
    book.apply(msgspec.structs.replace(snapshot, hash=ref.hash(1000)))
    entries = _server_entries([("BUY", "0.452", "10")], ref, 2000)
    assert book.apply(_change(2000, *entries)).action == "ok"
    assert book.held == 0
    assert book.best_bid == Decimal("0.452")
    assert book.in_doubt is None


def test_resync_buffers_and_replays_newer_deltas(fixtures_dir: Path) -> None:
    snapshot, [(change0, rest0), (change1, rest1)] = _hash_sequence(fixtures_dir)
    registry = BookRegistry()
    registry.set_market_info(snapshot.market, min_order_size="5", tick_size="0.01", neg_risk=False)
    registry.apply(snapshot)
    book = registry[snapshot.asset_id]
    assert registry.invalidate_all("reconnect") == [
        BookVerdict(book.asset_id, "invalidated", "reconnect")
    ]
    assert registry.invalidate_all("again") == []
    assert registry.needing_resync() == [book.asset_id]
    rid = book.begin_resync()
    assert book.resync_in_flight
    assert registry.needing_resync() == []
    registry.apply(change0)
    registry.apply(change1)
    assert book.buffered == 2
    assert "resyncing" in repr(book)
    # The REST snapshot is at change0's timestamp: change0 is in it, change1 is replayed.
    verdict = registry.complete_resync(rest0, resync_id=rid)
    assert verdict == BookVerdict(book.asset_id, "resynced", "rest")
    assert book.synced
    assert book.buffered == 0
    assert book.reconcile(rest1).reason == "match"
    assert book.counters.hash_mismatches == 0
    assert book.counters.resyncs == 1


def test_equal_timestamp_deltas_are_taken_as_in_the_snapshot() -> None:
    book = _synced_book(options=CHECKS_OFF)
    book.invalidate("gap")
    book.apply(_change(5000, _entry("0.30", "1", "BUY")))  # same ms as the snapshot below
    book.apply(_change(5001, _entry("0.31", "1", "BUY")))
    verdict = book.complete_resync(_snapshot([("0.40", "1")], [("0.60", "1")], timestamp=5000))
    assert verdict.action == "resynced"
    assert _levels(book, "bids") == [("0.40", "1"), ("0.31", "1")]


def test_stale_and_superseded_resyncs_are_ignored() -> None:
    book = _synced_book(options=CHECKS_OFF)
    book.invalidate("dropped frames")
    old = book.begin_resync()
    book.abort_resync()
    assert book.needs_resync
    rid = book.begin_resync()
    rest = _snapshot([("0.30", "1")], [("0.70", "1")], timestamp=900)
    assert book.complete_resync(rest, resync_id=old).reason == "stale resync"
    # A WS snapshot overtakes the REST fetch.
    ws = _snapshot([("0.41", "1")], [("0.59", "1")], timestamp=2000)
    assert book.apply(ws) == BookVerdict(ASSET, "resynced", "snapshot")
    assert book.complete_resync(rest, resync_id=rid).reason == "stale resync"
    assert book.complete_resync(rest).reason == "stale resync"
    assert book.best_bid == Decimal("0.41")
    # A newer REST book without an id is simply applied.
    newer = _snapshot([("0.42", "1")], [("0.58", "1")], timestamp=3000)
    assert book.complete_resync(newer) == BookVerdict(ASSET, "ok", "")
    assert book.best_bid == Decimal("0.42")


def test_invalidate_during_a_resync_abandons_it() -> None:
    book = _synced_book(options=CHECKS_OFF)
    book.invalidate("gap")
    rid = book.begin_resync()
    book.apply(_change(2000, _entry("0.30", "1", "BUY")))
    assert book.invalidate("reconnect").action == "ok"  # already unsynced: no second event
    assert book.buffered == 0
    assert book.needs_resync
    rest = _snapshot([("0.30", "1")], [("0.70", "1")], timestamp=1500)
    assert book.complete_resync(rest, resync_id=rid).reason == "stale resync"
    assert book.complete_resync(rest).action == "resynced"


def test_initial_snapshot_is_ok_and_deltas_before_it_are_replayed() -> None:
    book = OrderBook(ASSET, options=CHECKS_OFF)
    assert book.needs_resync
    book.apply(_change(900, _entry("0.35", "1", "BUY")))
    book.apply(_change(1100, _entry("0.36", "2", "BUY")))
    verdict = book.apply(_snapshot([("0.30", "1")], [("0.70", "1")], timestamp=1000))
    assert verdict == BookVerdict(ASSET, "ok", "")
    assert _levels(book, "bids") == [("0.36", "2"), ("0.30", "1")]
    assert book.timestamp == 1100


def test_buffer_is_bounded() -> None:
    book = OrderBook(ASSET, options=BookOptions(max_buffered=2))
    for ts in range(3):
        book.apply(_change(ts, _entry("0.30", str(ts + 1), "BUY")))
    assert book.buffered == 2
    assert book.counters.buffer_dropped == 1


@pytest.mark.parametrize(
    "entry",
    [
        _entry("abc", "1", "BUY"),
        _entry("0.1234567", "1", "BUY"),
        _entry("-0.5", "1", "BUY"),
        _entry("0.30", "1", "HOLD"),
        _entry("0.30", "0.x", "SELL"),
        _entry("0.30", "-1", "SELL"),
    ],
)
def test_malformed_entries_invalidate(entry: PriceChangeEntry) -> None:
    book = _synced_book(options=CHECKS_OFF)
    verdict = book.apply(_change(2000, entry))
    assert verdict.action == "invalidated"
    assert verdict.reason.startswith("malformed")
    assert book.counters.malformed == 1


def test_malformed_snapshot_and_tick_size() -> None:
    book = _synced_book(options=CHECKS_OFF)
    assert book.apply(_snapshot([("x", "1")], [])).action == "invalidated"
    book2 = _synced_book(options=CHECKS_OFF)
    bad_tick = TickSizeChange(
        market=MARKET, asset_id=ASSET, old_tick_size="0.01", new_tick_size="0", timestamp=1
    )
    assert book2.apply(bad_tick).action == "invalidated"
    with pytest.raises(ConfigError):
        OrderBook(ASSET, tick_size="tick")


def test_fixed_scheme_counts_a_snapshot_mismatch(fixtures_dir: Path) -> None:
    snapshot = _json_book(fixtures_dir / "polypy" / "ws_msg_book_yes.json")
    book = OrderBook(
        snapshot.asset_id,
        min_order_size="5",
        neg_risk=False,
        tick_size="0.001",
        hash_scheme=HashScheme.V2025,
        options=BookOptions(auto_detect_scheme=False),
    )
    book.apply(snapshot)
    assert book.scheme_detected
    assert book.hash_scheme is HashScheme.V2025
    assert book.counters.hash_mismatches == 1
    assert book.synced
    auto = OrderBook(snapshot.asset_id, min_order_size="5", neg_risk=False, tick_size="0.001")
    auto.apply(snapshot)
    assert auto.hash_scheme is HashScheme.V2024


def test_options_are_validated() -> None:
    for bad in (
        {"hash_check_every": -1},
        {"grace_messages": -1},
        {"grace_seconds": -0.5},
        {"max_buffered": 0},
    ):
        with pytest.raises(ConfigError):
            BookOptions(**bad)


def test_registry_timers_and_unknown_assets() -> None:
    registry = BookRegistry(BookOptions(hash_check_every=0, grace_seconds=1.0))
    registry.apply(_snapshot([("0.45", "50")], [("0.55", "70")]))
    assert registry.next_deadline() is None
    registry.apply(
        _change(2000, _entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44")), now=10.0
    )
    assert registry.next_deadline() == pytest.approx(11.0)
    assert registry.handle_timer(10.5) == []
    assert registry.handle_timer(11.0) == [BookVerdict(ASSET, "invalidated", "crossed book")]
    unknown = _snapshot([], [], asset=OTHER)
    assert registry.reconcile(unknown).reason == "unknown asset"
    assert registry.complete_resync(unknown).reason == "unknown asset"
    trade = LastTradePrice(market=MARKET, asset_id=OTHER, price="0.5", timestamp=1)
    assert registry.apply(trade) == []


def test_resync_limiter_token_bucket() -> None:
    limiter = ResyncLimiter(rate=2, per=1.0)
    assert limiter.try_acquire(0.0)
    assert limiter.try_acquire(0.0)
    assert not limiter.try_acquire(0.0)
    assert limiter.next_available(0.0) == pytest.approx(0.5)
    assert limiter.available(0.25) == 0
    assert limiter.try_acquire(0.5)
    assert limiter.next_available(10.0) == 10.0
    assert limiter.available(10.0) == 2  # never above the bucket size
    assert (limiter.granted, limiter.refused) == (3, 1)
    assert "granted=3" in repr(limiter)
    default = ResyncLimiter()
    assert sum(default.try_acquire(100.0) for _ in range(60)) == 50
    burst = ResyncLimiter(rate=10, per=10.0, burst=1)
    assert burst.try_acquire(0.0) and not burst.try_acquire(0.0)
    for bad in ({"rate": 0}, {"per": 0.0}, {"burst": 0}):
        with pytest.raises(ConfigError):
            ResyncLimiter(**bad)


def test_held_delta_the_server_did_not_take_is_reverted() -> None:
    book = OrderBook(
        ASSET,
        MARKET,
        min_order_size="5",
        tick_size="0.01",
        neg_risk=False,
        options=BookOptions(grace_messages=5),
    )
    ref = RefBook()
    snapshot = _snapshot([("0.45", "50")], [("0.55", "70"), ("0.56", "1")], tick_size="0.01")
    ref.snapshot(snapshot)
    book.apply(msgspec.structs.replace(snapshot, hash=ref.hash(1000)))
    # The server never took the off-grid bid; a later entry of ours is also wrong (dropped).
    ref.set("asks", "0.56", "0")
    stale = _entry("0.452", "10", "BUY", hash=ref.hash(2000))
    assert book.apply(_change(2000, stale)).action == "ok"
    assert book.held == 1
    assert book.in_doubt == "hash mismatch"
    assert _levels(book, "bids") == [("0.45", "50")]
    # The next message brings the book back in line: the hash match drops the held delta.
    fix = _server_entries([("SELL", "0.56", "0")], ref, 3000)
    assert book.apply(_change(3000, *fix)).action == "ok"
    assert book.held == 0
    assert book.in_doubt is None
    assert _levels(book, "bids") == [("0.45", "50")]


def test_snapshot_that_stops_reproducing_clears_the_detected_scheme(fixtures_dir: Path) -> None:
    snapshot = _json_book(fixtures_dir / "polypy" / "ws_msg_book_yes.json")
    book = OrderBook(snapshot.asset_id)
    book.apply(snapshot)
    assert book.scheme_detected
    book.apply(msgspec.structs.replace(snapshot, hash="0" * 40))
    assert not book.scheme_detected
    assert book.counters.hash_mismatches == 1
    assert book.synced
    # Deltas are then not judged by a hash we cannot reproduce.
    verdict = book.apply(
        PriceChange(
            market=snapshot.market,
            timestamp=snapshot.timestamp + 1,
            price_changes=[_entry("0.2", "0", "BUY", asset=snapshot.asset_id, hash="f" * 40)],
        )
    )
    assert verdict.action == "ok"
    assert book.counters.hash_mismatches == 1


def test_fixed_scheme_without_metadata_skips() -> None:
    book = OrderBook(ASSET, MARKET, options=BookOptions(auto_detect_scheme=False))
    book.apply(_snapshot([("0.45", "50")], [("0.55", "70")], hash="a" * 40))
    book.apply(_change(2000, _entry("0.44", "5", "BUY", hash="b" * 40)))
    book.apply(_change(2001, _entry("0.43", "5", "BUY")))  # no hash at all
    assert book.counters.hash_skipped == 3
    assert book.counters.hash_checks == 0
    assert book.in_doubt is None


def test_events_for_other_assets_leave_a_book_alone() -> None:
    book = _synced_book(options=CHECKS_OFF)
    before = repr(book)
    foreign_tick = TickSizeChange(
        market=MARKET, asset_id=OTHER, old_tick_size="0.01", new_tick_size="0.1", timestamp=1
    )
    for event in (
        _snapshot([("0.10", "1")], [("0.90", "1")], asset=OTHER),
        LastTradePrice(market=MARKET, asset_id=OTHER, price="0.5", timestamp=1),
        foreign_tick,
        _change(2000, _entry("0.46", "1", "BUY", asset=OTHER)),
        NewMarket(market=MARKET, timestamp=1),
    ):
        assert book.apply(event) == BookVerdict(ASSET, "ok", "")
    assert repr(book) == before


def test_malformed_server_top_counts_as_a_mismatch() -> None:
    book = _synced_book(options=BookOptions(hash_check_every=0, grace_messages=5))
    book.apply(_change(2000, _entry("0.44", "30", "SELL", best_bid="bad", best_ask="0.44")))
    assert book.counters.top_mismatches == 1
    assert book.crossed
    assert book.best_bid == Decimal("0.45")  # unusable server values: raw top reported
    assert book.synced


def test_doubt_started_without_a_clock_expires_from_the_first_timer() -> None:
    book = _synced_book(options=BookOptions(hash_check_every=0, grace_seconds=2.0))
    book.apply(_change(2000, _entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44")))
    assert book.next_deadline() is None
    assert book.handle_timer(5.0).action == "ok"
    assert book.next_deadline() == pytest.approx(7.0)
    assert book.handle_timer(7.0).action == "invalidated"


def test_pending_rest_book_overtaken_or_expired(fixtures_dir: Path) -> None:
    snapshot, [(change0, rest0), (change1, _)] = _hash_sequence(fixtures_dir)
    book = OrderBook(snapshot.asset_id, options=CHECKS_OFF)
    book.apply(snapshot)
    assert book.reconcile(rest0).reason == "pending"
    book.apply(change1)  # jumps past rest0's timestamp without matching it: inconclusive
    assert book.counters.reconcile_inconclusive == 1
    assert book.next_deadline() is None
    book2 = OrderBook(snapshot.asset_id, options=CHECKS_OFF)
    book2.apply(snapshot)
    assert book2.reconcile(msgspec.structs.replace(rest0, timestamp=change1.timestamp + 5))
    other = _change(change0.timestamp, _entry("0.02", "1", "BUY", asset=snapshot.asset_id))
    assert book2.apply(other, now=1.0).action == "ok"  # pending clock starts here
    later = _change(change0.timestamp + 1, _entry("0.02", "2", "BUY", asset=snapshot.asset_id))
    assert book2.apply(later, now=3.5) == BookVerdict(
        snapshot.asset_id, "invalidated", "REST book mismatch"
    )
    broken = msgspec.structs.replace(rest0, bids=[Level("x", "1")])
    book3 = OrderBook(snapshot.asset_id, options=CHECKS_OFF)
    book3.apply(snapshot)
    assert book3.reconcile(broken).reason == "pending"


def test_forced_refresh_while_synced() -> None:
    book = _synced_book(options=CHECKS_OFF)
    rid = book.begin_resync()
    assert book.synced and book.resync_in_flight
    book.apply(_change(2000, _entry("0.46", "1", "BUY")))
    assert book.buffered == 1
    book.abort_resync()
    assert book.buffered == 0
    assert not book.needs_resync
    rid = book.begin_resync()
    book.apply(_change(2001, _entry("0.47", "1", "BUY")))
    rest = _snapshot([("0.46", "1"), ("0.45", "50")], [("0.55", "70")], timestamp=2000)
    assert book.complete_resync(rest, resync_id=rid) == BookVerdict(ASSET, "ok", "")
    assert book.best_bid == Decimal("0.47")


def test_registry_hands_market_info_to_books_learning_their_market() -> None:
    registry = BookRegistry()
    registry.set_market_info(MARKET, min_order_size="5", tick_size="0.01", neg_risk=False)
    single = registry.add(ASSET)
    double = registry.add(OTHER)
    assert single.market is None
    registry.apply(_change(2000, _entry("0.45", "1", "BUY")))
    registry.apply(
        _change(2001, _entry("0.46", "1", "BUY", asset=OTHER), _entry("0.54", "1", "SELL"))
    )
    for book in (single, double):
        assert book.market == MARKET
        assert (book.min_order_size, book.tick_size, book.neg_risk) == ("5", "0.01", False)
    late = registry.add("3333", market=MARKET)
    assert late.min_order_size == "5"
    registry.add("4444")
    rest = _snapshot([("0.45", "1")], [("0.55", "1")], asset="4444")
    assert registry.complete_resync(rest).action == "resynced"
    assert registry["4444"].tick_size == "0.01"


def test_registry_passes_on_every_non_ok_verdict() -> None:
    registry = BookRegistry(BookOptions(hash_check_every=0, grace_messages=0, grace_seconds=1.0))
    for asset in (ASSET, OTHER):
        registry.add(asset)  # market unknown until the snapshot
        registry.apply(_snapshot([("0.45", "50")], [("0.55", "70")], asset=asset))
    crossing = _entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44")
    assert registry.apply(_change(2000, crossing)) == [
        BookVerdict(ASSET, "invalidated", "crossed book")
    ]
    again = _snapshot([("0.45", "50")], [("0.55", "70")], timestamp=3000)
    assert registry.apply(again) == [BookVerdict(ASSET, "resynced", "snapshot")]
    both = _change(
        4000,
        crossing,
        _entry("0.44", "30", "SELL", asset=OTHER, best_bid="0.40", best_ask="0.44"),
    )
    assert [v.asset_id for v in registry.apply(both)] == [ASSET, OTHER]
    assert registry.reconcile(again).reason == "unsynced"
    bad_tick = TickSizeChange(
        market=MARKET, asset_id=ASSET, old_tick_size="0.01", new_tick_size="x", timestamp=1
    )
    registry.apply(again)
    assert registry.apply(bad_tick)[0].action == "invalidated"


def test_trade_price_that_does_not_help_lets_an_expired_doubt_invalidate() -> None:
    book = OrderBook(
        ASSET,
        MARKET,
        min_order_size="5",
        tick_size="0.01",
        neg_risk=False,
        options=BookOptions(grace_seconds=1.0),
    )
    ref = RefBook()
    snapshot = _snapshot([("0.45", "50")], [("0.55", "70")])
    ref.snapshot(snapshot)
    book.apply(msgspec.structs.replace(snapshot, hash=ref.hash(1000)))
    book.apply(_change(2000, _entry("0.44", "1", "BUY", hash="0" * 40)), now=1.0)
    assert book.in_doubt == "hash mismatch"
    trade = LastTradePrice(market=MARKET, asset_id=ASSET, price="0.44", timestamp=2001)
    assert book.apply(trade, now=1.5).action == "ok"
    assert book.apply(trade, now=2.0) == BookVerdict(ASSET, "invalidated", "hash mismatch")
