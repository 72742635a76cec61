"""Tests of the read-only API of a book (polyfeed.core.book.view)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from book_support import make_change, make_entry, synced_book
from polyfeed.core.book import BookOptions, BookRegistry, OrderBook
from polyfeed.core.messages import Level
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


def test_levels_depth_and_wire_order_of_a_crossed_book() -> None:
    book = synced_book(options=BookOptions(hash_check_every=0))
    book.apply(make_change(2000, make_entry("0.56", "5", "BUY", best_bid="0.45", best_ask="0.55")))
    assert book.crossed
    assert (book.best_bid, book.best_ask) == (Decimal("0.45"), Decimal("0.55"))  # the server's
    assert book.top_n("bids", 1) == [Level("0.56", "5")]  # raw levels stay exact
    assert book.depth("bids", 2) == Decimal(55)
    assert book.level_counts() == (3, 2)
    assert [level.price for level in book.to_book().bids] == ["0.40", "0.45", "0.56"]
    assert book.in_doubt == "crossed book"
    assert "doubt='crossed book'" in repr(book)
