"""Tests of doubt, grace and hash runs (polyfeed.core.book.doubt)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from book_support import (
    ASSET,
    ENTRY_SPEC,
    MARKET,
    OPS,
    RUNS,
    SNAPSHOT_SPEC,
    RefBook,
    assert_fast_path_invariant,
    book_msg,
    hash_sequence,
    make_change,
    make_entry,
    server_entries,
    server_run,
    side_levels,
    snapshot_from_spec,
    synced_book,
)
from polyfeed.core.book import (
    BookOptions,
    BookVerdict,
    OrderBook,
)
from polyfeed.core.book.doubt import Grace
from polyfeed.core.book.integrity import MISMATCH
from polyfeed.core.book.options import BookCounters
from polyfeed.core.messages import (
    BestBidAsk,
    LastTradePrice,
)


def test_dropped_delta_is_detected_by_the_next_hash(fixtures_dir: Path) -> None:
    snapshot, [(_, _), (change1, rest1)] = hash_sequence(fixtures_dir)
    book = OrderBook(
        snapshot.asset_id,
        min_order_size="5",
        tick_size="0.01",
        neg_risk=False,
        options=BookOptions(grace_messages=0),
    )
    book.apply(snapshot)
    # change 0 was "lost". change1 may be the first message of a run (messages sharing its
    # timestamp and hash): it is judged when the run ends.
    assert book.apply(change1).action == "ok"
    assert book.in_doubt == "hash mismatch"
    assert book.counters.hash_mismatches == 0
    # The next message has another timestamp and does not match either: the run failed.
    entry = make_entry("0.02", "1", "BUY", asset=snapshot.asset_id, hash="0" * 40)
    verdict = book.apply(make_change(change1.timestamp + 1, entry))
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
    snapshot, [(_, _), (change1, _)] = hash_sequence(fixtures_dir)
    book = OrderBook(snapshot.asset_id, min_order_size="5", tick_size="0.01", neg_risk=False)
    book.apply(snapshot, now=10.0)
    assert book.apply(change1, now=10.0).action == "ok"
    assert book.in_doubt == "hash mismatch"
    assert book.next_deadline() == pytest.approx(12.0)
    assert book.handle_timer(11.0).action == "ok"
    assert book.handle_timer(12.0) == BookVerdict(book.asset_id, "invalidated", "hash mismatch")
    assert book.next_deadline() is None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, every=st.sampled_from([1, 3, 0]))
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
            snapshot = snapshot_from_spec(spec, timestamp)
            snapshot = ref.hashed(snapshot)
            verdict = book.apply(snapshot)
        else:
            verdict = book.apply(make_change(timestamp, *server_entries(spec, ref, timestamp)))
        assert_fast_path_invariant(book)
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
    snap=SNAPSHOT_SPEC,
    deltas=st.lists(st.lists(ENTRY_SPEC, min_size=1, max_size=3), min_size=2, max_size=12),
    data=st.data(),
)
def test_a_dropped_message_is_detected_exactly_when_the_books_differ(
    snap: Any, deltas: list[Any], data: st.DataObject
) -> None:
    # Each message is its own run (own timestamp): a run whose hash does not reproduce fails
    # when the next message does not match either, or grace_seconds after it began.
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
    snapshot = snapshot_from_spec(snap, 1)
    book.apply(ref.hashed(snapshot))
    differed = False
    for timestamp, spec in enumerate(deltas, start=2):
        entries = server_entries(spec, ref, timestamp)
        if timestamp - 2 == dropped:
            continue
        verdict = book.apply(make_change(timestamp, *entries), now=0.0)
        assert_fast_path_invariant(book)
        differs = side_levels(book, "bids") != ref.levels("bids") or side_levels(
            book, "asks"
        ) != ref.levels("asks")
        if differed and differs:
            assert verdict == BookVerdict(ASSET, "invalidated", "hash mismatch")
            return
        assert verdict.action == "ok"
        assert (book.in_doubt == "hash mismatch") is differs
        differed = differs
    if differed:
        assert book.next_deadline() == 2.0
        assert book.handle_timer(2.0) == BookVerdict(ASSET, "invalidated", "hash mismatch")
    else:
        assert book.next_deadline() is None


def test_crossed_book_reports_the_server_top_and_heals() -> None:
    book = synced_book(options=BookOptions(hash_check_every=0, grace_messages=2))
    # A taker sell at 0.44 arrives before the bids it hits are removed.
    verdict = book.apply(
        make_change(2000, make_entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44"))
    )
    assert verdict.action == "ok"
    assert book.crossed
    assert (book.best_bid, book.best_ask) == (Decimal("0.40"), Decimal("0.44"))
    assert book.in_doubt == "crossed book"
    book.apply(make_change(2000, make_entry("0.45", "0", "BUY", best_bid="0.40", best_ask="0.44")))
    assert not book.crossed
    assert book.in_doubt is None
    assert book.synced


def test_crossing_beyond_grace_messages_invalidates() -> None:
    book = synced_book(options=BookOptions(hash_check_every=0, grace_messages=2))
    crossing = make_entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44")
    assert book.apply(make_change(2000, crossing)).action == "ok"
    assert book.apply(make_change(2001, crossing)).action == "ok"
    assert book.apply(make_change(2002, crossing)) == BookVerdict(
        ASSET, "invalidated", "crossed book"
    )
    assert not book.synced


def test_crossing_beyond_grace_seconds_invalidates() -> None:
    book = synced_book(options=BookOptions(hash_check_every=0, grace_seconds=1.0))
    crossing = make_entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44")
    assert book.apply(make_change(2000, crossing), now=100.0).action == "ok"
    assert book.apply(make_change(2001, crossing), now=100.5).action == "ok"
    assert book.apply(make_change(2002, crossing), now=101.0).action == "invalidated"


def test_top_of_book_disagreement_is_a_doubt_then_a_resync() -> None:
    book = synced_book(options=BookOptions(hash_check_every=0, grace_messages=1))
    wrong = make_entry("0.41", "5", "BUY", best_bid="0.46", best_ask="0.55")
    assert book.apply(make_change(2000, wrong)).action == "ok"
    assert book.in_doubt == "top of book mismatch"
    assert book.counters.top_mismatches == 1
    assert book.apply(make_change(2001, wrong)) == BookVerdict(
        ASSET, "invalidated", "top of book mismatch"
    )
    book2 = synced_book()
    book2.apply(
        BestBidAsk(market=MARKET, asset_id=ASSET, best_bid="0.45", best_ask="0.5", timestamp=1)
    )
    assert (book2.counters.top_checks, book2.counters.top_mismatches) == (1, 1)
    assert book2.synced


def test_doubt_started_without_a_clock_expires_from_the_first_timer() -> None:
    book = synced_book(options=BookOptions(hash_check_every=0, grace_seconds=2.0))
    book.apply(
        make_change(2000, make_entry("0.44", "30", "SELL", best_bid="0.40", best_ask="0.44"))
    )
    assert book.next_deadline() is None
    assert book.handle_timer(5.0).action == "ok"
    assert book.next_deadline() == pytest.approx(7.0)
    assert book.handle_timer(7.0).action == "invalidated"


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
    snapshot = book_msg([("0.45", "50")], [("0.55", "70")])
    book.apply(ref.hashed(snapshot))
    book.apply(make_change(2000, make_entry("0.44", "1", "BUY", hash="0" * 40)), now=1.0)
    assert book.in_doubt == "hash mismatch"
    trade = LastTradePrice(market=MARKET, asset_id=ASSET, price="0.44", timestamp=2001)
    assert book.apply(trade, now=1.5).action == "ok"
    assert book.apply(trade, now=2.0) == BookVerdict(ASSET, "invalidated", "hash mismatch")


# --------------------------------------------------------------------------- defect 9: runs


def _verified_book(**options: Any) -> tuple[OrderBook, RefBook]:
    book = OrderBook(
        ASSET,
        MARKET,
        min_order_size="5",
        tick_size="0.01",
        neg_risk=False,
        options=BookOptions(**options),
    )
    ref = RefBook()
    snapshot = book_msg([("0.40", "100"), ("0.45", "50")], [("0.55", "70"), ("0.60", "10")])
    assert book.apply(ref.hashed(snapshot)).action == "ok"
    assert book.scheme_detected
    return book, ref


def test_a_run_of_messages_sharing_timestamp_and_final_hash_is_verified_at_its_end() -> None:
    book, ref = _verified_book()
    # A taker buy sweeps 0.55 and part of 0.60, then a new ask appears: three messages.
    run = server_run(
        [[("SELL", "0.55", "0")], [("SELL", "0.60", "4")], [("SELL", "0.58", "9")]], ref, 2000
    )
    for message in run[:-1]:
        assert book.apply(message, now=5.0).action == "ok"
        assert book.in_doubt == "hash mismatch"  # not verified yet
        assert book.next_deadline() == pytest.approx(7.0)
    assert book.apply(run[-1], now=5.0).action == "ok"
    assert book.in_doubt is None
    assert book.next_deadline() is None
    assert book.counters.hash_mismatches == 0
    assert (book.best_bid, book.best_ask) == (Decimal("0.45"), Decimal("0.58"))
    # Again with the strictest grace: still no alarm.
    strict, ref = _verified_book(grace_messages=0)
    for message in server_run([[("BUY", "0.45", "0")], [("BUY", "0.44", "7")]], ref, 2000):
        assert strict.apply(message).action == "ok"
    assert strict.in_doubt is None and strict.counters.hash_mismatches == 0


def test_a_wrong_book_is_still_caught_when_its_run_ends() -> None:
    book, ref = _verified_book()
    server_run([[("BUY", "0.30", "1")]], ref, 1500)  # lost on the way
    first = server_run([[("SELL", "0.55", "0")], [("SELL", "0.58", "9")]], ref, 2000)
    for message in first:
        assert book.apply(message).action == "ok"
    assert book.counters.hash_mismatches == 0  # the run has not ended
    second = server_run([[("BUY", "0.46", "5")]], ref, 2001)
    assert book.apply(second[0]).action == "ok"  # first run failed: one mismatch, in grace
    assert book.counters.hash_mismatches == 1
    third = server_run([[("BUY", "0.47", "5")]], ref, 2002)
    assert book.apply(third[0]) == BookVerdict(ASSET, "invalidated", "hash mismatch")
    assert book.counters.hash_mismatches == 2


def test_a_run_that_never_ends_fails_after_grace_seconds() -> None:
    book, ref = _verified_book(grace_seconds=1.0)
    server_run([[("BUY", "0.30", "1")]], ref, 1500)  # lost
    (message,) = server_run([[("SELL", "0.58", "9")]], ref, 2000)
    assert book.apply(message, now=10.0).action == "ok"
    assert book.apply(message, now=10.5).action == "ok"  # same run: not judged
    assert book.next_deadline() == pytest.approx(11.0)
    assert book.handle_timer(10.9).action == "ok"
    assert book.handle_timer(11.0) == BookVerdict(ASSET, "invalidated", "hash mismatch")
    assert book.counters.hash_mismatches == 1
    assert book.next_deadline() is None
    # Messages of a run arriving past grace_seconds end it too.
    book, ref = _verified_book(grace_seconds=1.0)
    server_run([[("BUY", "0.30", "1")]], ref, 1500)
    (message,) = server_run([[("SELL", "0.58", "9")]], ref, 2000)
    assert book.apply(message, now=10.0).action == "ok"
    assert book.apply(message, now=11.0) == BookVerdict(ASSET, "invalidated", "hash mismatch")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snap=SNAPSHOT_SPEC, runs=RUNS, every=st.sampled_from([1, 3]))
def test_a_consistent_server_sending_runs_never_raises_an_alarm(
    snap: Any, runs: list[Any], every: int
) -> None:
    book = OrderBook(
        ASSET,
        MARKET,
        min_order_size="5",
        tick_size="0.01",
        neg_risk=False,
        options=BookOptions(hash_check_every=every, grace_messages=0, hash_grace_messages=0),
    )
    ref = RefBook()
    snapshot = snapshot_from_spec(snap, 1)
    book.apply(ref.hashed(snapshot), now=0.0)
    for timestamp, specs in enumerate(runs, start=2):
        for message in server_run(specs, ref, timestamp):
            assert book.apply(message, now=0.0).action == "ok"
            assert_fast_path_invariant(book)
        assert side_levels(book, "bids") == ref.levels("bids")
        if every == 1 and not (book.crossed and book.in_doubt == "crossed book"):
            assert book.in_doubt is None
    assert book.counters.hash_mismatches == 0
    assert book.handle_timer(1.0).action == "ok" or book.crossed


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snap=SNAPSHOT_SPEC, runs=RUNS.filter(lambda r: len(r) >= 2), data=st.data())
def test_a_dropped_message_inside_runs_is_caught_when_the_books_differ_at_a_run_end(
    snap: Any, runs: list[Any], data: st.DataObject
) -> None:
    book = OrderBook(
        ASSET,
        MARKET,
        min_order_size="5",
        tick_size="0.01",
        neg_risk=False,
        options=BookOptions(check_top=False, grace_messages=0),
    )
    ref = RefBook()
    snapshot = snapshot_from_spec(snap, 1)
    book.apply(ref.hashed(snapshot), now=0.0)
    lost_run = data.draw(st.integers(min_value=0, max_value=len(runs) - 1))
    lost = data.draw(st.integers(min_value=0, max_value=len(runs[lost_run]) - 1))
    differed = False
    for index, specs in enumerate(runs):
        messages = server_run(specs, ref, index + 2)
        verdicts = [
            book.apply(message, now=0.0)
            for number, message in enumerate(messages)
            if (index, number) != (lost_run, lost)
        ]
        if not verdicts:
            continue  # the whole run was lost: the book learns of it from the next one
        differs = side_levels(book, "bids") != ref.levels("bids") or side_levels(
            book, "asks"
        ) != ref.levels("asks")
        if differed and verdicts[0].action == "invalidated":
            assert verdicts[0] == BookVerdict(ASSET, "invalidated", "hash mismatch")
            return
        assert all(verdict.action == "ok" for verdict in verdicts)
        assert (book.in_doubt == "hash mismatch") is differs
        differed = differs
    verdict = book.handle_timer(2.0)
    assert verdict.action == ("invalidated" if differed else "ok")


class DoubtMachine(RuleBasedStateMachine):
    """A verified book fed runs (some with a message lost), timers and resyncs.

    Invariants: a timer never asks to be woken in the past; the fast-path flag never hides a
    doubt; a book that passed a run's end with a match equals the server's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.book, self.ref = _verified_book(grace_seconds=1.0, grace_messages=3)
        self.now = 0.0
        self.timestamp = 2000

    @rule(seconds=st.sampled_from([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.3]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule(specs=st.lists(st.lists(ENTRY_SPEC, min_size=1, max_size=2), min_size=1, max_size=3))
    def a_run_arrives(self, specs: list[Any]) -> None:
        self.timestamp += 1
        for message in server_run(specs, self.ref, self.timestamp):
            self.book.apply(message, now=self.now)
        if self.book.synced and self.book.in_doubt is None:
            assert side_levels(self.book, "bids") == self.ref.levels("bids")
            assert side_levels(self.book, "asks") == self.ref.levels("asks")

    @rule(specs=st.lists(st.lists(ENTRY_SPEC, min_size=1, max_size=2), min_size=2, max_size=3))
    def a_run_loses_its_first_message(self, specs: list[Any]) -> None:
        self.timestamp += 1
        for message in server_run(specs, self.ref, self.timestamp)[1:]:
            self.book.apply(message, now=self.now)

    @rule()
    def timer_fires(self) -> None:
        self.book.handle_timer(self.now)
        deadline = self.book.next_deadline()
        assert deadline is None or deadline > self.now

    @rule()
    def resync_from_rest(self) -> None:
        if self.book.needs_resync:
            resync_id = self.book.begin_resync()
            bids, asks = self.ref.wire()
            rest = book_msg(bids, asks, timestamp=self.timestamp)
            rest = msgspec.structs.replace(rest, hash=self.ref.hash(self.timestamp))
            verdict = self.book.complete_resync(rest, resync_id=resync_id, now=self.now)
            assert verdict == BookVerdict(ASSET, "resynced", "rest")
            assert side_levels(self.book, "bids") == self.ref.levels("bids")

    @invariant()
    def the_fast_path_never_hides_a_doubt(self) -> None:
        assert_fast_path_invariant(self.book)


DoubtMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
test_doubt_machine = DoubtMachine.TestCase


def test_grace_repr_and_deadlines() -> None:
    grace = Grace(BookOptions(grace_seconds=2.0), BookCounters())
    assert repr(grace) == "Grace(doubt=None)" and grace.calm
    assert grace.judge(MISMATCH, 7, "abc", held=False, crossed=False, top_ok=True, now=1.0) is None
    assert repr(grace) == "Grace(doubt='hash mismatch' run@7)"
    assert grace.next_deadline() == pytest.approx(3.0)
    assert grace.expire(3.0) == "hash mismatch"
    assert grace.calm and grace.next_deadline() is None
