"""Tests of the two sides of a book and the one function that sets a level (core.book.levels)."""

from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from book_support import (
    ASSET,
    CHECKS_OFF,
    OPS,
    RefBook,
    assert_fast_path_invariant,
    assert_same,
    load_literal_lines,
    make_change,
    make_entry,
    side_levels,
    snapshot_from_spec,
    synced_book,
)
from polyfeed.core.book import (
    OrderBook,
)
from polyfeed.core.book.levels import APPLIED, HELD, MALFORMED_ENTRY, Levels, level_index
from polyfeed.core.book.numbers import parse_price
from polyfeed.core.book_hash import level_fields, level_json
from polyfeed.core.messages import (
    Book,
    Level,
    PriceChange,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, n=st.integers(min_value=0, max_value=15))
def test_book_matches_reference_model(ops: list[Any], n: int) -> None:
    book = OrderBook(ASSET, options=CHECKS_OFF)
    ref = RefBook()
    for timestamp, (kind, spec) in enumerate(ops, start=1):
        if kind == "snap":
            snapshot = snapshot_from_spec(spec, timestamp)
            book.apply(snapshot)
            ref.snapshot(snapshot)
        else:
            entries = [make_entry(price, size, side) for side, price, size in spec]
            book.apply(make_change(timestamp, *entries))
            for entry in entries:
                ref.entry(entry)
        assert side_levels(book, "bids") == ref.levels("bids")
        assert side_levels(book, "asks") == ref.levels("asks")
        assert book.level_counts() == (len(ref.sides["bids"]), len(ref.sides["asks"]))
        assert book.best_bid == ref.best("bids")
        assert book.best_ask == ref.best("asks")
        for side in ("bids", "asks"):
            assert book.depth(side, n) == ref.depth(side, n)
            assert [(lv.price, lv.size) for lv in book.top_n(side, n)] == ref.levels(side)[:n]
        assert book.depth("bids") == ref.depth("bids", 10**6)
        assert_fast_path_invariant(book)


def test_zero_in_any_spelling_deletes_and_strings_are_kept() -> None:
    book = synced_book(options=CHECKS_OFF)
    for i, zero in enumerate(["0", "0.0", "0.000", ""]):
        book.apply(make_change(2000 + i, make_entry("0.45", "5", "BUY")))
        assert book.best_bid == Decimal("0.45")
        book.apply(make_change(2100 + i, make_entry("0.450", zero, "BUY")))
        assert book.best_bid == Decimal("0.40")
    book.apply(make_change(3000, make_entry("0.4", "110000.0", "buy")))
    assert side_levels(book, "bids") == [("0.4", "110000.0")]


def test_edited_single_book_capture_levels(fixtures_dir: Path) -> None:
    events = load_literal_lines(fixtures_dir / "polypy" / "test_server_messages.txt")
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
        assert_same(book, ref)
    assert book.last_trade_price == "0.52"
    assert book.tick_size == "0.01"
    assert book.synced


def test_set_is_the_one_function_that_sets_a_level() -> None:
    levels = Levels()
    assert levels.set("BUY", "0.45", "10", 0) == APPLIED
    assert levels.set("sell", "0.55", "5", 0) == APPLIED
    assert levels.set("BUY", "0.452", "1", tick=parse_price("0.01")[0]) == HELD
    for side, price, size in [("HOLD", "0.4", "1"), ("BUY", "x", "1"), ("BUY", "0.4", "1abc")]:
        assert levels.set(side, price, size, 0) == MALFORMED_ENTRY
    assert [lv.price for lv in levels.best_first(True)] == ["0.45"]
    assert levels.wire(False) == [Level("0.55", "5")]
    assert levels.set("BUY", "0.450", "0.00", 0) == APPLIED
    assert levels.bid_keys == [] and not levels.crossed
    assert repr(levels) == "Levels(bids=0, asks=1)"


def test_restore_undoes_set() -> None:
    levels = Levels()
    levels.set("BUY", "0.45", "10", 0)
    text = levels.bids_text()
    for entry in (make_entry("0.45", "3", "BUY"), make_entry("0.46", "1", "BUY")):
        undo = levels.before(entry)
        levels.set(entry.side, entry.price, entry.size, 0)
        assert levels.bids_text() != text
        levels.restore(undo)
        assert levels.bids_text() == text


@given(
    price=st.sampled_from(["0.5", "0.50", "0.01", "0.999", "0.123456", ".5"]),
    size=st.from_regex(r"[0-9]{0,8}(\.[0-9]{0,4})?", fullmatch=True),
    side=st.sampled_from(["BUY", "SELL"]),
)
def test_the_inlined_level_text_of_levels_set_is_level_json(
    price: str, size: str, side: str
) -> None:
    levels = Levels()
    levels.set(side, price, size, 0)
    keys, stored = levels.side(side == "BUY")
    if size.strip("0.") and size.replace(".", "", 1).isdigit():
        (text,) = stored
        assert text == level_json(price, size)
        assert level_fields(text) == (price, size)
        assert (levels.bids_text() if side == "BUY" else levels.asks_text()) == level_json(
            price, size
        )
    else:
        assert not keys and not stored


@given(
    keys=st.lists(st.integers(min_value=-(10**6), max_value=10**6), max_size=80, unique=True),
    key=st.integers(min_value=-(10**6) - 1, max_value=10**6 + 1),
)
def test_level_index_is_bisect_left(keys: list[int], key: int) -> None:
    # The hot path takes level_index when compiled and bisect_left when not.
    keys.sort()
    assert level_index(keys, key) == bisect_left(keys, key)
    for present in keys[:3] + keys[-3:]:
        assert level_index(keys, present) == bisect_left(keys, present)
