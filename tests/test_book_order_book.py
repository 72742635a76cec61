"""Tests of the OrderBook facade (polyfeed.core.book.order_book).

Reading API, malformed input, events for other assets.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from book_support import (
    ASSET,
    CHECKS_OFF,
    MARKET,
    OTHER,
    book_msg,
    make_change,
    make_entry,
    synced_book,
)
from polyfeed.core.book import (
    BookRegistry,
    BookVerdict,
    OrderBook,
)
from polyfeed.core.messages import (
    LastTradePrice,
    Level,
    NewMarket,
    PriceChangeEntry,
    TickSizeChange,
)
from polyfeed.errors import ConfigError


def test_reading_api_and_repr() -> None:
    book = synced_book()
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
