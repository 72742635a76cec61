"""Tests of hash verification and scheme detection (polyfeed.core.book.integrity)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from book_support import (
    ASSET,
    MARKET,
    OTHER,
    RefBook,
    assert_same,
    book_msg,
    hash_sequence,
    json_book,
    load_literal_lines,
    make_change,
    make_entry,
    server_entries,
    synced_book,
)
from polyfeed.core.book import (
    BookOptions,
    BookRegistry,
    BookVerdict,
    OrderBook,
)
from polyfeed.core.book.integrity import HashCheck
from polyfeed.core.book_hash import HashScheme, book_hash
from polyfeed.core.messages import (
    Book,
    LastTradePrice,
    PriceChange,
)


def test_oct_2025_sequence_reproduces_every_hash(fixtures_dir: Path) -> None:
    snapshot, rounds = hash_sequence(fixtures_dir)
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


def test_captured_2026_snapshot_hash_with_last_trade_price(fixtures_dir: Path) -> None:
    snapshot = json_book(fixtures_dir / "nautilus_trader" / "ws_book_snapshot_captured.json")
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
    snapshot, [(change0, _), (change1, _)] = hash_sequence(fixtures_dir)
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
    snapshot = json_book(fixtures_dir / "polypy" / name)
    registry = BookRegistry()
    registry.apply(snapshot)
    book = registry[snapshot.asset_id]
    assert book.hash_scheme is HashScheme.V2024
    assert book.scheme_detected
    assert book.counters.hash_checks == 1
    ref = RefBook()
    ref.snapshot(snapshot)
    assert_same(book, ref)
    assert book.spread == ref.best("asks") - ref.best("bids")  # type: ignore[operator]
    # New books start from the detected scheme.
    assert registry.add(OTHER).hash_scheme is HashScheme.V2024


def test_edited_capture_with_checks_on_reports_no_false_hash_mismatch(fixtures_dir: Path) -> None:
    events = load_literal_lines(fixtures_dir / "polypy" / "test_server_messages.txt")
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


def test_hash_every_nth_message_and_off() -> None:
    ref = RefBook()
    snapshot = book_msg([("0.40", "100")], [("0.60", "100")])
    snapshot = ref.hashed(snapshot)
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
            entries = server_entries([("BUY", "0.30", str(i + 1))], model, 2000 + i)
            assert book.apply(make_change(2000 + i, *entries)).action == "ok"
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
        book_msg(bids, asks), hash=server_hash(bids, asks, 1000, "0.5"), last_trade_price="0.5"
    )
    book.apply(snapshot)
    assert book.hash_scheme is HashScheme.V2026
    # A trade at 0.45 empties that level; the hash already includes the new trade price.
    after = server_hash([("0.40", "100")], asks, 2000, "0.45")
    assert book.apply(make_change(2000, make_entry("0.45", "0", "BUY", hash=after))).action == "ok"
    assert book.in_doubt == "hash mismatch"
    trade = LastTradePrice(market=MARKET, asset_id=ASSET, price="0.45", timestamp=2001)
    assert book.apply(trade).action == "ok"
    assert book.in_doubt is None
    assert book.last_trade_price == "0.45"
    assert book.counters.hash_late_matches == 1
    # A trade price that does not help leaves the doubt in place.
    wrong = server_hash([("0.40", "100")], [("0.60", "10")], 3000, "0.55")
    book.apply(make_change(3000, make_entry("0.55", "0", "SELL", hash=wrong)))
    book.apply(LastTradePrice(market=MARKET, asset_id=ASSET, price="0.56", timestamp=3001))
    assert book.in_doubt == "hash mismatch"


def test_fixed_scheme_counts_a_snapshot_mismatch(fixtures_dir: Path) -> None:
    snapshot = json_book(fixtures_dir / "polypy" / "ws_msg_book_yes.json")
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


def test_snapshot_that_stops_reproducing_clears_the_detected_scheme(fixtures_dir: Path) -> None:
    snapshot = json_book(fixtures_dir / "polypy" / "ws_msg_book_yes.json")
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
            price_changes=(make_entry("0.2", "0", "BUY", asset=snapshot.asset_id, hash="f" * 40),),
        )
    )
    assert verdict.action == "ok"
    assert book.counters.hash_mismatches == 1


def test_fixed_scheme_without_metadata_skips() -> None:
    book = OrderBook(ASSET, MARKET, options=BookOptions(auto_detect_scheme=False))
    book.apply(book_msg([("0.45", "50")], [("0.55", "70")], hash="a" * 40))
    book.apply(make_change(2000, make_entry("0.44", "5", "BUY", hash="b" * 40)))
    book.apply(make_change(2001, make_entry("0.43", "5", "BUY")))  # no hash at all
    assert book.counters.hash_skipped == 3
    assert book.counters.hash_checks == 0
    assert book.in_doubt is None


def test_malformed_server_top_counts_as_a_mismatch() -> None:
    book = synced_book(options=BookOptions(hash_check_every=0, grace_messages=5))
    book.apply(make_change(2000, make_entry("0.44", "30", "SELL", best_bid="bad", best_ask="0.44")))
    assert book.counters.top_mismatches == 1
    assert book.crossed
    assert book.best_bid == Decimal("0.45")  # unusable server values: raw top reported
    assert book.synced


def test_hash_check_repr() -> None:
    check = HashCheck(HashScheme.V2025, auto_detect=True)
    assert repr(check) == "HashCheck(scheme=V2025?, budget=3, pending=False)"
    assert repr(HashCheck(HashScheme.V2024, auto_detect=False)).startswith(
        "HashCheck(scheme=V2024,"
    )
