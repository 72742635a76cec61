"""Tests of the OrderBook facade (polyfeed.core.book.order_book).

Reading API, malformed input, events for other assets.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from book_support import (
    ANY_ENTRY_SPEC,
    ASSET,
    CHECKS_OFF,
    MARKET,
    OTHER,
    SNAPSHOT_SPEC,
    RefBook,
    book_msg,
    make_change,
    make_entry,
    ref_entry_valid,
    side_levels,
    snapshot_from_spec,
    synced_book,
)
from polyfeed.core.book import (
    BookOptions,
    BookVerdict,
    OrderBook,
)
from polyfeed.core.messages import (
    LastTradePrice,
    NewMarket,
    PriceChangeEntry,
    TickSizeChange,
)
from polyfeed.errors import ConfigError


@pytest.mark.parametrize(
    "entry",
    [
        make_entry("abc", "1", "BUY"),
        make_entry("0.1234567", "1", "BUY"),
        make_entry("-0.5", "1", "BUY"),
        make_entry("0.30", "1", "HOLD"),
        make_entry("0.30", "0.x", "SELL"),
        make_entry("0.30", "-1", "SELL"),
    ],
)
def test_malformed_entries_invalidate(entry: PriceChangeEntry) -> None:
    book = synced_book(options=CHECKS_OFF)
    verdict = book.apply(make_change(2000, entry))
    assert verdict.action == "invalidated"
    assert verdict.reason.startswith("malformed")
    assert book.counters.malformed == 1


def test_malformed_snapshot_and_tick_size() -> None:
    book = synced_book(options=CHECKS_OFF)
    assert book.apply(book_msg([("x", "1")], [])).action == "invalidated"
    book2 = synced_book(options=CHECKS_OFF)
    bad_tick = TickSizeChange(
        market=MARKET, asset_id=ASSET, old_tick_size="0.01", new_tick_size="0", timestamp=1
    )
    assert book2.apply(bad_tick).action == "invalidated"
    with pytest.raises(ConfigError):
        OrderBook(ASSET, tick_size="tick")


def test_events_for_other_assets_leave_a_book_alone() -> None:
    book = synced_book(options=CHECKS_OFF)
    before = repr(book)
    foreign_tick = TickSizeChange(
        market=MARKET, asset_id=OTHER, old_tick_size="0.01", new_tick_size="0.1", timestamp=1
    )
    for event in (
        book_msg([("0.10", "1")], [("0.90", "1")], asset=OTHER),
        LastTradePrice(market=MARKET, asset_id=OTHER, price="0.5", timestamp=1),
        foreign_tick,
        make_change(2000, make_entry("0.46", "1", "BUY", asset=OTHER)),
        NewMarket(market=MARKET, timestamp=1),
    ):
        assert book.apply(event) == BookVerdict(ASSET, "ok", "")
    assert repr(book) == before


# --------------------------------------------------------------------------- defect 8


@pytest.mark.parametrize("size", ["1abc", "12x", "1e3", "1_0", "1 ", "1.2.3", "\u0661"])
def test_a_malformed_size_on_a_synced_book_is_never_stored(size: str) -> None:
    # The inlined fast path took any size starting with 1-9 as a number and stored it;
    # depth() and reconcile() then raised decimal.InvalidOperation.
    book = synced_book(options=CHECKS_OFF)
    verdict = book.apply(make_change(2000, make_entry("0.41", size, "BUY")))
    assert verdict == BookVerdict(
        ASSET, "invalidated", f"malformed price_change entry ('0.41', {size!r})"
    )
    assert book.counters.malformed == 1
    assert side_levels(book, "bids") == [("0.45", "50"), ("0.40", "100")]
    assert book.depth("bids") == Decimal(150)
    rest = book_msg([("0.40", "100"), ("0.45", "50")], [("0.55", "70"), ("0.60", "10")])
    assert book.reconcile(rest).reason == "unsynced"


@pytest.mark.parametrize("size", ["abc", "-5", "NaN", "1abc"])
def test_a_snapshot_with_a_malformed_size_is_refused(size: str) -> None:
    book = synced_book(options=CHECKS_OFF)
    bad = book_msg([("0.40", size)], [("0.60", "1")], timestamp=3000)
    assert book.apply(bad) == BookVerdict(ASSET, "invalidated", "malformed snapshot")
    assert book.counters.malformed == 1
    assert side_levels(book, "bids") == [("0.45", "50"), ("0.40", "100")]
    assert book.depth("bids") == Decimal(150)
    fresh = OrderBook(ASSET, options=CHECKS_OFF)
    assert fresh.apply(bad).action == "ok"  # never synced: nothing to announce
    assert not fresh.synced
    assert fresh.depth("bids") == 0


def test_other_entries_of_a_malformed_message_still_apply_and_all_bad_ones_count() -> None:
    book = synced_book(options=CHECKS_OFF)
    message = make_change(
        2000,
        make_entry("0.41", "5", "BUY"),
        make_entry("0.42", "x", "BUY"),
        make_entry("0.43", "NaN", "BUY"),
        make_entry("0.56", "3", "SELL"),
    )
    assert book.apply(message).action == "invalidated"
    assert book.counters.malformed == 2
    assert [p for p, _ in side_levels(book, "bids")] == ["0.45", "0.41", "0.40"]
    assert [p for p, _ in side_levels(book, "asks")] == ["0.55", "0.56", "0.60"]


_NEVER_IN_DOUBT = BookOptions(
    check_top=False, hash_check_every=0, grace_messages=10**6, grace_seconds=1e9
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snap=SNAPSHOT_SPEC,
    messages=st.lists(st.lists(ANY_ENTRY_SPEC, min_size=1, max_size=3), max_size=25),
)
def test_fast_path_agrees_with_the_reference_model_on_any_entries(
    snap: Any, messages: list[Any]
) -> None:
    """Malformed entries change nothing, are counted, and invalidate: on every path."""
    book = OrderBook(ASSET, MARKET, options=_NEVER_IN_DOUBT)
    ref = RefBook()
    snapshot = snapshot_from_spec(snap, 1)
    book.apply(snapshot)
    ref.snapshot(snapshot)
    malformed = 0
    for timestamp, spec in enumerate(messages, start=2):
        entries = [make_entry(price, size, side) for side, price, size in spec]
        bad = [e for e in entries if not ref_entry_valid(e.side, e.price, e.size)]
        verdict = book.apply(make_change(timestamp, *entries))
        for entry in entries:
            if ref_entry_valid(entry.side, entry.price, entry.size):
                ref.entry(entry)
        malformed += len(bad)
        if bad:
            assert verdict.action == "invalidated"
            assert verdict.reason.startswith("malformed price_change entry")
            assert not book.synced
            # Back in sync for the next message (a snapshot newer than everything).
            snapshot = msgspec.structs.replace(book.to_book(), timestamp=10_000 + timestamp)
            assert book.apply(snapshot).action == "resynced"
        else:
            assert verdict.action == "ok"
        assert book.counters.malformed == malformed
        assert side_levels(book, "bids") == ref.levels("bids")
        assert side_levels(book, "asks") == ref.levels("asks")
        for side in ("bids", "asks"):
            assert book.depth(side) == ref.depth(side, 10**6)
        assert book.reconcile(book.to_book()).reason == "match"
