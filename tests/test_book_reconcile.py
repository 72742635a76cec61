"""Tests of comparison with a REST summary (polyfeed.core.book.reconcile)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from book_support import (
    CHECKS_OFF,
    OTHER,
    hash_sequence,
    make_change,
    make_entry,
)
from polyfeed.core.book import (
    BookVerdict,
    OrderBook,
)
from polyfeed.core.book.options import BookCounters
from polyfeed.core.book.reconcile import RestCheck
from polyfeed.core.messages import (
    Level,
)
from polyfeed.errors import ConfigError


def test_rest_reconcile_detects_a_dropped_delta(fixtures_dir: Path) -> None:
    snapshot, [(_, _), (change1, rest1)] = hash_sequence(fixtures_dir)
    book = OrderBook(snapshot.asset_id, options=CHECKS_OFF)
    book.apply(snapshot)
    book.apply(change1)
    assert book.reconcile(rest1) == BookVerdict(book.asset_id, "invalidated", "REST book mismatch")
    assert book.counters.reconcile_mismatches == 1


def test_rest_reconcile_timing_rules(fixtures_dir: Path) -> None:
    snapshot, [(change0, rest0), (change1, rest1)] = hash_sequence(fixtures_dir)
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
    _, [(_, rest0), _] = hash_sequence(fixtures_dir)
    with pytest.raises(ConfigError):
        OrderBook(OTHER).reconcile(rest0)
    with pytest.raises(ConfigError):
        OrderBook(OTHER).complete_resync(rest0)


def test_pending_rest_book_overtaken_or_expired(fixtures_dir: Path) -> None:
    snapshot, [(change0, rest0), (change1, _)] = hash_sequence(fixtures_dir)
    book = OrderBook(snapshot.asset_id, options=CHECKS_OFF)
    book.apply(snapshot)
    assert book.reconcile(rest0).reason == "pending"
    book.apply(change1)  # jumps past rest0's timestamp without matching it: inconclusive
    assert book.counters.reconcile_inconclusive == 1
    assert book.next_deadline() is None
    book2 = OrderBook(snapshot.asset_id, options=CHECKS_OFF)
    book2.apply(snapshot)
    assert book2.reconcile(msgspec.structs.replace(rest0, timestamp=change1.timestamp + 5))
    other = make_change(change0.timestamp, make_entry("0.02", "1", "BUY", asset=snapshot.asset_id))
    assert book2.apply(other, now=1.0).action == "ok"  # pending clock starts here
    later = make_change(
        change0.timestamp + 1, make_entry("0.02", "2", "BUY", asset=snapshot.asset_id)
    )
    assert book2.apply(later, now=3.5) == BookVerdict(
        snapshot.asset_id, "invalidated", "REST book mismatch"
    )
    broken = msgspec.structs.replace(rest0, bids=[Level("x", "1")])
    book3 = OrderBook(snapshot.asset_id, options=CHECKS_OFF)
    book3.apply(snapshot)
    # A REST answer outside the grammar says nothing about our book: inconclusive, counted.
    assert book3.reconcile(broken) == BookVerdict(snapshot.asset_id, "ok", "malformed snapshot")
    assert book3.synced and book3.counters.malformed == 1


def test_rest_check_repr() -> None:
    check = RestCheck(2.0, BookCounters())
    assert repr(check) == "RestCheck(pending=None)"
    assert check.next_deadline() is None
    assert check.expire(1.0) == "none"
