"""Tests of the books of many assets (polyfeed.core.book.registry)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from book_support import (
    ASSET,
    CHECKS_OFF,
    MARKET,
    OTHER,
    RefBook,
    assert_same,
    book_msg,
    json_book,
    load_literal_lines,
    make_change,
    make_entry,
)
from polyfeed.core.book import (
    BookOptions,
    BookRegistry,
    Books,
    BookVerdict,
    OrderBook,
)
from polyfeed.core.messages import (
    Book,
    LastTradePrice,
    NewMarket,
    PriceChange,
    TickSizeChange,
)


def test_yes_and_no_books_mirror(fixtures_dir: Path) -> None:
    yes = json_book(fixtures_dir / "polypy" / "ws_msg_book_yes.json")
    no = json_book(fixtures_dir / "polypy" / "ws_msg_book_no.json")
    registry = Books()
    registry.apply(yes)
    registry.apply(no)
    yes_book, no_book = registry[yes.asset_id], registry[no.asset_id]
    assert yes_book.best_bid == 1 - no_book.best_ask  # type: ignore[operator]
    assert yes_book.best_ask == 1 - no_book.best_bid  # type: ignore[operator]


def test_edited_multi_book_capture_levels(fixtures_dir: Path) -> None:
    events = load_literal_lines(fixtures_dir / "polypy" / "test_server_multi_book.txt")
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
            assert_same(registry[asset], ref)
    assert len(registry) == 2


def test_entries_for_other_assets_are_ignored_and_the_registry_mirrors() -> None:
    registry = BookRegistry(CHECKS_OFF)
    registry.apply(book_msg([("0.40", "1")], [("0.60", "1")], asset=ASSET))
    registry.apply(book_msg([("0.40", "1")], [("0.60", "1")], asset=OTHER))
    message = make_change(
        2000,
        make_entry("0.45", "10", "BUY", asset=ASSET),
        make_entry("0.55", "10", "SELL", asset=OTHER),
        make_entry("0.46", "10", "BUY", asset="unknown"),
    )
    assert registry.apply(message) == []
    assert registry[ASSET].best_bid == Decimal("0.45")
    assert registry[ASSET].best_ask == Decimal("0.60")
    assert registry[OTHER].best_ask == Decimal("0.55")
    assert registry[OTHER].best_bid == Decimal("0.40")
    alone = OrderBook(ASSET, options=CHECKS_OFF)
    alone.apply(book_msg([("0.40", "1")], [("0.60", "1")]))
    alone.apply(message)
    assert alone.best_ask == Decimal("0.60")
    assert "unknown" not in registry
    registry.remove(OTHER)
    assert list(registry) == [ASSET]
    assert registry.apply(NewMarket(market=MARKET, timestamp=1)) == []


def test_registry_timers_and_unknown_assets() -> None:
    registry = BookRegistry(BookOptions(hash_check_every=0, grace_seconds=1.0))
    registry.apply(book_msg([("0.45", "50")], [("0.55", "70")]))
    assert registry.next_deadline() is None
    registry.apply(
        make_change(2000, make_entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44")),
        now=10.0,
    )
    assert registry.next_deadline() == pytest.approx(11.0)
    assert registry.handle_timer(10.5) == []
    assert registry.handle_timer(11.0) == [BookVerdict(ASSET, "invalidated", "crossed book")]
    unknown = book_msg([], [], asset=OTHER)
    assert registry.reconcile(unknown).reason == "unknown asset"
    assert registry.complete_resync(unknown).reason == "unknown asset"
    trade = LastTradePrice(market=MARKET, asset_id=OTHER, price="0.5", timestamp=1)
    assert registry.apply(trade) == []


def test_registry_hands_market_info_to_books_learning_their_market() -> None:
    registry = BookRegistry()
    registry.set_market_info(MARKET, min_order_size="5", tick_size="0.01", neg_risk=False)
    single = registry.add(ASSET)
    double = registry.add(OTHER)
    assert single.market is None
    registry.apply(make_change(2000, make_entry("0.45", "1", "BUY")))
    registry.apply(
        make_change(
            2001, make_entry("0.46", "1", "BUY", asset=OTHER), make_entry("0.54", "1", "SELL")
        )
    )
    for book in (single, double):
        assert book.market == MARKET
        assert (book.min_order_size, book.tick_size, book.neg_risk) == ("5", "0.01", False)
    late = registry.add("3333", market=MARKET)
    assert late.min_order_size == "5"
    registry.add("4444")
    rest = book_msg([("0.45", "1")], [("0.55", "1")], asset="4444")
    assert registry.complete_resync(rest).action == "resynced"
    assert registry["4444"].tick_size == "0.01"


def test_registry_passes_on_every_non_ok_verdict() -> None:
    registry = BookRegistry(BookOptions(hash_check_every=0, grace_messages=0, grace_seconds=1.0))
    for asset in (ASSET, OTHER):
        registry.add(asset)  # market unknown until the snapshot
        registry.apply(book_msg([("0.45", "50")], [("0.55", "70")], asset=asset))
    crossing = make_entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44")
    assert registry.apply(make_change(2000, crossing)) == [
        BookVerdict(ASSET, "invalidated", "crossed book")
    ]
    again = book_msg([("0.45", "50")], [("0.55", "70")], timestamp=3000)
    assert registry.apply(again) == [BookVerdict(ASSET, "resynced", "snapshot")]
    both = make_change(
        4000,
        crossing,
        make_entry("0.44", "30", "SELL", asset=OTHER, best_bid="0.40", best_ask="0.44"),
    )
    assert [v.asset_id for v in registry.apply(both)] == [ASSET, OTHER]
    assert registry.reconcile(again).reason == "unsynced"
    bad_tick = TickSizeChange(
        market=MARKET, asset_id=ASSET, old_tick_size="0.01", new_tick_size="x", timestamp=1
    )
    registry.apply(again)
    assert registry.apply(bad_tick)[0].action == "invalidated"


def test_a_snapshot_after_remove_does_not_bring_the_book_back() -> None:
    registry = BookRegistry(CHECKS_OFF)
    registry.add(ASSET)
    registry.apply(book_msg([("0.40", "1")], [("0.60", "1")]))
    registry.remove(ASSET)  # unsubscribed; a snapshot was already on its way
    late = book_msg([("0.41", "1")], [("0.59", "1")], timestamp=2000)
    assert registry.apply(late) == []
    assert ASSET not in registry
    assert registry.complete_resync(late).reason == "unknown asset"
    assert "removed=1" in repr(registry)
    # Subscribed again: snapshots count again.
    registry.add(ASSET)
    assert registry.apply(late) == []
    assert registry[ASSET].best_bid == Decimal("0.41")
    # An asset never added still gets a book from its snapshot, as before.
    registry.apply(book_msg([("0.10", "1")], [("0.90", "1")], asset=OTHER))
    assert OTHER in registry


def test_bad_market_metadata_never_raises_for_present_or_future_books() -> None:
    # REST /markets answers feed every book of the market; a bad tick raised ConfigError here.
    registry = BookRegistry()
    present = registry.add(ASSET, MARKET)
    registry.set_market_info(MARKET, min_order_size="1e400", tick_size="1e100002", neg_risk=True)
    future = registry.add(OTHER, MARKET)
    for book in (present, future):
        assert (book.tick_size, book.min_order_size, book.neg_risk) == (None, None, True)
        assert book.counters.malformed == 2
