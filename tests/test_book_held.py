"""Tests of off-grid deltas held after a tick size change (polyfeed.core.book.held)."""

from __future__ import annotations

from decimal import Decimal

from book_support import (
    ASSET,
    MARKET,
    RefBook,
    book_msg,
    make_change,
    make_entry,
    server_entries,
    side_levels,
)
from polyfeed.core.book import (
    BookOptions,
    BookVerdict,
    OrderBook,
)
from polyfeed.core.book.held import HeldDeltas
from polyfeed.core.messages import (
    TickSizeChange,
)


def test_tick_size_change_holds_off_grid_deltas() -> None:
    book = OrderBook(ASSET, MARKET, options=BookOptions(hash_check_every=0, grace_messages=3))
    book.apply(book_msg([("0.401", "100"), ("0.45", "50")], [("0.55", "70")], tick_size="0.001"))
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
    assert book.apply(make_change(2000, make_entry("0.452", "10", "BUY"))).action == "ok"
    assert book.held == 1
    assert book.best_bid == Decimal("0.45")
    assert book.in_doubt == "off-grid deltas held after tick size change"
    # Removing an old off-grid level is consistent and applied.
    book.apply(make_change(2001, make_entry("0.401", "0", "BUY")))
    assert side_levels(book, "bids") == [("0.45", "50")]
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
    book.apply(book_msg([("0.45", "50")], [("0.55", "70")], tick_size="0.01"))
    off = make_entry("0.452", "10", "BUY")
    assert book.apply(make_change(2000, off)).action == "ok"
    assert book.apply(make_change(2001, off)).action == "ok"
    verdict = book.apply(make_change(2002, off))
    assert verdict == BookVerdict(
        ASSET, "invalidated", "off-grid deltas held after tick size change"
    )
    assert book.held == 0
    book2 = OrderBook(ASSET, MARKET, options=BookOptions(hash_check_every=0))
    book2.apply(book_msg([("0.45", "50")], [("0.55", "70")], tick_size="0.01"))
    book2.apply(make_change(2000, off))
    assert book2.held == 1
    book2.apply(book_msg([("0.45", "50")], [("0.55", "70")], timestamp=3000))
    assert book2.held == 0
    assert book2.in_doubt is None


def test_held_delta_is_applied_when_the_hash_says_the_server_took_it() -> None:
    book = OrderBook(ASSET, MARKET, min_order_size="5", tick_size="0.01", neg_risk=False)
    ref = RefBook()
    snapshot = book_msg([("0.45", "50")], [("0.55", "70")], tick_size="0.01")
    book.apply(ref.hashed(snapshot))
    entries = server_entries([("BUY", "0.452", "10")], ref, 2000)
    assert book.apply(make_change(2000, *entries)).action == "ok"
    assert book.held == 0
    assert book.best_bid == Decimal("0.452")
    assert book.in_doubt is None


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
    snapshot = book_msg([("0.45", "50")], [("0.55", "70"), ("0.56", "1")], tick_size="0.01")
    book.apply(ref.hashed(snapshot))
    # The server never took the off-grid bid; a later entry of ours is also wrong (dropped).
    ref.set("asks", "0.56", "0")
    stale = make_entry("0.452", "10", "BUY", hash=ref.hash(2000))
    assert book.apply(make_change(2000, stale)).action == "ok"
    assert book.held == 1
    assert book.in_doubt == "hash mismatch"
    assert side_levels(book, "bids") == [("0.45", "50")]
    # The next message brings the book back in line: the hash match drops the held delta.
    fix = server_entries([("SELL", "0.56", "0")], ref, 3000)
    assert book.apply(make_change(3000, *fix)).action == "ok"
    assert book.held == 0
    assert book.in_doubt is None
    assert side_levels(book, "bids") == [("0.45", "50")]


def test_held_deltas_repr() -> None:
    held = HeldDeltas()
    held.hold(make_entry("0.452", "1", "BUY"))
    assert (repr(held), len(held), bool(held)) == ("HeldDeltas(1)", 1, True)
