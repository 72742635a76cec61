"""Tests of buffering, snapshot fetches and replay (polyfeed.core.book.resync)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from book_support import (
    ANY_ENTRY_SPEC,
    ASSET,
    CHECKS_OFF,
    MARKET,
    SNAPSHOT_SPEC,
    RefBook,
    book_msg,
    hash_sequence,
    make_change,
    make_entry,
    ref_entry_valid,
    side_levels,
    snapshot_from_spec,
    synced_book,
)
from polyfeed.core.book import (
    BookOptions,
    BookRegistry,
    BookVerdict,
    OrderBook,
)
from polyfeed.core.book.resync import ResyncState


def test_resync_buffers_and_replays_newer_deltas(fixtures_dir: Path) -> None:
    snapshot, [(change0, rest0), (change1, rest1)] = hash_sequence(fixtures_dir)
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
    book = synced_book(options=CHECKS_OFF)
    book.invalidate("gap")
    book.apply(make_change(5000, make_entry("0.30", "1", "BUY")))  # same ms as the snapshot below
    book.apply(make_change(5001, make_entry("0.31", "1", "BUY")))
    verdict = book.complete_resync(book_msg([("0.40", "1")], [("0.60", "1")], timestamp=5000))
    assert verdict.action == "resynced"
    assert side_levels(book, "bids") == [("0.40", "1"), ("0.31", "1")]


def test_stale_and_superseded_resyncs_are_ignored() -> None:
    book = synced_book(options=CHECKS_OFF)
    book.invalidate("dropped frames")
    old = book.begin_resync()
    book.abort_resync()
    assert book.needs_resync
    rid = book.begin_resync()
    rest = book_msg([("0.30", "1")], [("0.70", "1")], timestamp=900)
    assert book.complete_resync(rest, resync_id=old).reason == "stale resync"
    # A WS snapshot overtakes the REST fetch.
    ws = book_msg([("0.41", "1")], [("0.59", "1")], timestamp=2000)
    assert book.apply(ws) == BookVerdict(ASSET, "resynced", "snapshot")
    assert book.complete_resync(rest, resync_id=rid).reason == "stale resync"
    assert book.complete_resync(rest).reason == "stale resync"
    assert book.best_bid == Decimal("0.41")
    # A newer REST book without an id is simply applied.
    newer = book_msg([("0.42", "1")], [("0.58", "1")], timestamp=3000)
    assert book.complete_resync(newer) == BookVerdict(ASSET, "ok", "")
    assert book.best_bid == Decimal("0.42")


def test_invalidate_during_a_resync_abandons_it() -> None:
    book = synced_book(options=CHECKS_OFF)
    book.invalidate("gap")
    rid = book.begin_resync()
    book.apply(make_change(2000, make_entry("0.30", "1", "BUY")))
    assert book.invalidate("reconnect").action == "ok"  # already unsynced: no second event
    assert book.buffered == 0
    assert book.needs_resync
    rest = book_msg([("0.30", "1")], [("0.70", "1")], timestamp=1500)
    assert book.complete_resync(rest, resync_id=rid).reason == "stale resync"
    assert book.complete_resync(rest).action == "resynced"


def test_initial_snapshot_is_ok_and_deltas_before_it_are_replayed() -> None:
    book = OrderBook(ASSET, options=CHECKS_OFF)
    assert book.needs_resync
    book.apply(make_change(900, make_entry("0.35", "1", "BUY")))
    book.apply(make_change(1100, make_entry("0.36", "2", "BUY")))
    verdict = book.apply(book_msg([("0.30", "1")], [("0.70", "1")], timestamp=1000))
    assert verdict == BookVerdict(ASSET, "ok", "")
    assert side_levels(book, "bids") == [("0.36", "2"), ("0.30", "1")]
    assert book.timestamp == 1100


def test_buffer_is_bounded() -> None:
    book = OrderBook(ASSET, options=BookOptions(max_buffered=2))
    for ts in range(3):
        book.apply(make_change(ts, make_entry("0.30", str(ts + 1), "BUY")))
    assert book.buffered == 2
    assert book.counters.buffer_dropped == 1


def test_forced_refresh_while_synced() -> None:
    book = synced_book(options=CHECKS_OFF)
    rid = book.begin_resync()
    assert book.synced and book.resync_in_flight
    book.apply(make_change(2000, make_entry("0.46", "1", "BUY")))
    assert book.buffered == 1
    book.abort_resync()
    assert book.buffered == 0
    assert not book.needs_resync
    rid = book.begin_resync()
    book.apply(make_change(2001, make_entry("0.47", "1", "BUY")))
    rest = book_msg([("0.46", "1"), ("0.45", "50")], [("0.55", "70")], timestamp=2000)
    assert book.complete_resync(rest, resync_id=rid) == BookVerdict(ASSET, "ok", "")
    assert book.best_bid == Decimal("0.47")


# --------------------------------------------------------------------------- defect 8: replay


def test_a_malformed_entry_buffered_while_unsynced_is_counted_at_replay() -> None:
    book = synced_book(options=CHECKS_OFF)
    book.invalidate("gap")
    book.apply(make_change(2000, make_entry("0.41", "1abc", "BUY"), make_entry("0.42", "2", "BUY")))
    book.apply(make_change(2001, make_entry("0.43", "3", "BUY")))
    assert book.counters.malformed == 0  # unsynced: judged at replay, if the snapshot is older
    verdict = book.complete_resync(book_msg([("0.40", "1")], [("0.60", "1")], timestamp=1999))
    assert verdict.action == "invalidated"
    assert verdict.reason == "malformed price_change size"
    assert book.counters.malformed == 1
    assert side_levels(book, "bids") == [("0.43", "3"), ("0.42", "2"), ("0.40", "1")]
    assert book.depth("bids") == Decimal(6)
    # A snapshot that covers the bad message ends it.
    assert book.complete_resync(book_msg([("0.40", "1")], [("0.60", "1")], timestamp=2000)) == (
        BookVerdict(ASSET, "resynced", "rest")
    )
    assert side_levels(book, "bids") == [("0.43", "3"), ("0.40", "1")]
    assert book.counters.malformed == 1


def test_a_malformed_message_on_a_synced_book_is_counted_once() -> None:
    book = synced_book(options=CHECKS_OFF)
    assert book.apply(make_change(2000, make_entry("0.41", "x", "BUY"))).action == "invalidated"
    assert book.counters.malformed == 1
    # The REST book lags behind the bad message: the replay meets it again.
    verdict = book.complete_resync(book_msg([("0.40", "1")], [("0.60", "1")], timestamp=1500))
    assert verdict.action == "invalidated"
    assert book.counters.malformed == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snap=SNAPSHOT_SPEC,
    messages=st.lists(st.lists(ANY_ENTRY_SPEC, min_size=1, max_size=3), max_size=12),
    data=st.data(),
)
def test_replay_agrees_with_the_reference_model_on_any_entries(
    snap: Any, messages: list[Any], data: st.DataObject
) -> None:
    book = OrderBook(ASSET, MARKET, options=CHECKS_OFF)
    changes = [
        make_change(timestamp, *(make_entry(price, size, side) for side, price, size in spec))
        for timestamp, spec in enumerate(messages, start=1)
    ]
    for change in changes:
        assert book.apply(change).action == "ok"  # unsynced: buffered, judged later
    assert book.counters.malformed == 0
    covered = data.draw(st.integers(min_value=0, max_value=len(messages)))
    snapshot = snapshot_from_spec(snap, covered)
    ref = RefBook()
    ref.snapshot(snapshot)
    malformed = 0
    for change in changes[covered:]:
        for entry in change.price_changes:
            if ref_entry_valid(entry.side, entry.price, entry.size):
                ref.entry(entry)
            else:
                malformed += 1
    verdict = book.apply(snapshot)
    assert book.counters.malformed == malformed
    assert verdict.action == ("invalidated" if malformed else "ok")
    assert side_levels(book, "bids") == ref.levels("bids")
    assert side_levels(book, "asks") == ref.levels("asks")
    for side in ("bids", "asks"):
        assert book.depth(side) == ref.depth(side, 10**6)


def test_resync_state_repr_and_ids() -> None:
    state = ResyncState(max_buffered=1)
    assert repr(state) == "ResyncState(unsynced, id=0, buffered=0)"
    first = state.begin()
    assert state.is_current(first) and repr(state).startswith("ResyncState(resyncing, id=1")
    assert not state.keep(5, (), judged=False)
    assert state.keep(6, (), judged=False)  # full: the oldest is dropped
    state.abandon()
    assert not state.is_current(first)
    assert [item[0] for item in state.take(5)] == [6]
