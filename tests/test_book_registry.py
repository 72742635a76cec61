"""Tests of the books of many assets (polyfeed.core.book.registry)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from book_support import (
    ASSET,
    CHECKS_OFF,
    MARKET,
    OTHER,
    SIZES,
    SNAPSHOT_SPEC,
    RefBook,
    assert_fast_path_invariant,
    assert_same,
    book_msg,
    json_book,
    load_literal_lines,
    make_change,
    make_entry,
    server_entries,
    side_levels,
    snapshot_from_spec,
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


def test_market_info_set_after_the_books_learned_their_market_reaches_exactly_those_books() -> None:
    registry = BookRegistry()
    by_add = registry.add("1111", market=MARKET)
    by_change = registry.add(ASSET)
    by_pair = registry.add(OTHER)
    registry.apply(make_change(2000, make_entry("0.45", "1", "BUY")))
    registry.apply(
        make_change(
            2001, make_entry("0.46", "1", "BUY", asset=OTHER), make_entry("0.54", "1", "SELL")
        )
    )
    by_snapshot = registry.add("2222")
    registry.apply(book_msg([("0.45", "1")], [("0.55", "1")], asset="2222"))
    by_resync = registry.add("3333")
    registry.complete_resync(book_msg([("0.45", "1")], [("0.55", "1")], asset="3333"))
    elsewhere = registry.add("4444", market="0xother")
    registry.add("5555", market=MARKET)
    registry.remove("5555")
    registry.remove("1111")
    again = registry.add("1111", market=MARKET)
    registry.add("6666", market=MARKET)
    registry.remove("6666")
    moved = registry.add("6666", market="0xother")  # an id reused: only its market counts
    registry.set_market_info(MARKET, min_order_size="5", tick_size="0.01", neg_risk=True)
    for book in (again, by_change, by_pair, by_snapshot, by_resync):
        assert (book.market, book.min_order_size, book.neg_risk) == (MARKET, "5", True)
    assert by_add.neg_risk is None  # removed before the info came: not a book of the registry
    assert (elsewhere.min_order_size, elsewhere.neg_risk) == (None, None)
    assert moved.neg_risk is None
    registry.set_market_info("0xother", min_order_size="7", neg_risk=False)
    assert (elsewhere.min_order_size, elsewhere.neg_risk) == ("7", False)
    assert by_change.min_order_size == "5"


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


# --------------------------------------------------------------------------- batched verification


def _batched_registry(**options: Any) -> tuple[BookRegistry, RefBook]:
    registry = BookRegistry(BookOptions(**options), batched=True)
    registry.set_market_info(MARKET, min_order_size="5", tick_size="0.01", neg_risk=False)
    registry.add(ASSET, MARKET)
    return registry, RefBook()


# Bids below 0.50 and asks above: an uncrossed book stays calm, so only the hash can notice.
_CALM_ENTRY = st.one_of(
    st.tuples(st.just("BUY"), st.integers(1, 49).map("0.{:02d}".format), SIZES),
    st.tuples(st.just("SELL"), st.integers(51, 99).map("0.{:02d}".format), SIZES),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snap=SNAPSHOT_SPEC,
    deltas=st.lists(st.lists(_CALM_ENTRY, min_size=1, max_size=3), min_size=2, max_size=40),
    every=st.sampled_from([1, 3, 100]),
    data=st.data(),
)
def test_a_dropped_delta_in_a_burst_is_noticed_within_verify_every_and_by_the_batch_end(
    snap: Any, deltas: list[Any], every: int, data: st.DataObject
) -> None:
    # The guarantee of batched verification: a book that differs from the server's is in doubt
    # (or invalidated) at the latest on the verify_every-th message of the asset after it began
    # to differ, and always at the end of the batch; a book that agrees is never in doubt there.
    dropped = data.draw(st.integers(min_value=0, max_value=len(deltas) - 1), label="dropped")
    ends = data.draw(st.sets(st.integers(min_value=0, max_value=len(deltas) - 1)), label="ends")
    registry, ref = _batched_registry(grace_messages=0, check_top=False, verify_every=every)
    book = registry[ASSET]
    snapshot = snapshot_from_spec(snap, 1)
    assert registry.apply(ref.hashed(snapshot)) == []
    if ref.levels("bids") and ref.levels("asks") and ref.best("bids") >= ref.best("asks"):  # type: ignore[operator]
        return  # a crossed snapshot: doubt from the start, not what this test is about
    streak = 0  # messages applied in a row after which the book differed from the server's
    # The server's book as of the last message received: what a check can compare with.
    expected = (ref.levels("bids"), ref.levels("asks"))
    for index, spec in enumerate(deltas):
        timestamp = index + 2
        entries = server_entries(spec, ref, timestamp)
        verdicts: list[BookVerdict] = []
        if index != dropped:
            verdicts += registry.apply(make_change(timestamp, *entries), now=0.0)
            expected = (ref.levels("bids"), ref.levels("asks"))
        if index in ends or index == len(deltas) - 1:
            verdicts += [v for v in registry.end_batch(now=0.0) if v.action != "ok"]
            at_end = True
        else:
            at_end = False
        assert_fast_path_invariant(book)
        differs = (side_levels(book, "bids"), side_levels(book, "asks")) != expected
        if verdicts:
            assert verdicts == [BookVerdict(ASSET, "invalidated", "hash mismatch")]
            assert streak > 0 or differs  # never a false alarm
            return
        if index != dropped:
            streak = streak + 1 if differs else 0
        noticed = book.in_doubt == "hash mismatch"
        if streak >= every or (at_end and differs):
            assert noticed, (index, streak)
        if at_end and not differs:
            assert book.in_doubt is None


def test_a_burst_in_one_batch_costs_a_hash_per_verify_every_messages_and_one_at_its_end() -> None:
    registry, ref = _batched_registry(verify_every=100)
    book = registry[ASSET]
    snapshot = book_msg([("0.40", "100"), ("0.45", "50")], [("0.55", "70"), ("0.60", "10")])
    registry.apply(ref.hashed(snapshot))
    checks = book.counters.hash_checks
    for timestamp in range(2000, 2250):
        size = str(timestamp % 7 + 1)
        (entry,) = server_entries([("BUY", "0.40", size)], ref, timestamp)
        assert registry.apply(make_change(timestamp, entry)) == []
    assert book.counters.hash_checks - checks == 3  # the 1st after the snapshot, 101st, 201st
    assert registry.end_batch() == [BookVerdict(ASSET, "ok")]
    assert book.counters.hash_checks - checks == 4  # and the last one, at the end
    assert registry.end_batch() == []  # nothing new since
    assert book.counters.hash_mismatches == 0
    assert book.in_doubt is None


def test_an_unbatched_registry_checks_every_message_and_has_no_batches() -> None:
    registry = BookRegistry(BookOptions(verify_every=100))
    registry.set_market_info(MARKET, min_order_size="5", tick_size="0.01", neg_risk=False)
    book = registry.add(ASSET, MARKET)
    ref = RefBook()
    snapshot = book_msg([("0.40", "100")], [("0.55", "70")])
    registry.apply(ref.hashed(snapshot))
    checks = book.counters.hash_checks
    for timestamp in range(2000, 2010):
        (entry,) = server_entries([("BUY", "0.40", str(timestamp))], ref, timestamp)
        registry.apply(make_change(timestamp, entry))
    assert book.counters.hash_checks - checks == 10
    assert registry.end_batch() == []


def test_a_snapshot_or_invalidation_drops_the_unchecked_message() -> None:
    registry, ref = _batched_registry(verify_every=100)
    book = registry[ASSET]
    snapshot = book_msg([("0.40", "100")], [("0.55", "70")])
    registry.apply(ref.hashed(snapshot))
    # A delta whose hash would not reproduce, then a snapshot: the snapshot is what to prove.
    registry.apply(make_change(2000, make_entry("0.41", "5", "BUY", hash="0" * 40)))
    registry.apply(msgspec.structs.replace(snapshot, timestamp=3000, hash=ref.hash(3000)))
    assert registry.end_batch() == []
    registry.apply(make_change(4000, make_entry("0.41", "5", "BUY", hash="0" * 40)))
    assert registry.invalidate_all("reconnect") == [BookVerdict(ASSET, "invalidated", "reconnect")]
    assert [v for v in registry.end_batch() if v.action != "ok"] == []
    assert book.counters.hash_mismatches == 0


def test_take_deadline_reports_a_doubt_started_on_the_reader_once() -> None:
    registry = BookRegistry(BookOptions(hash_check_every=0, grace_seconds=1.0))
    registry.apply(book_msg([("0.40", "100")], [("0.55", "70")]))
    assert registry.take_deadline() is None  # quiet: nothing can expire
    crossing = make_entry("0.56", "5", "BUY", best_bid="0.56", best_ask="0.55")
    registry.apply(make_change(2000, crossing), now=10.0)
    assert registry[ASSET].in_doubt == "crossed book"
    assert registry.take_deadline() == 11.0
    assert registry.take_deadline() is None  # reported; nothing new since
    registry.apply(make_change(2001, crossing), now=10.5)  # still in doubt: asked again
    assert registry.take_deadline() == 11.0


_ANY_TOP = st.one_of(st.none(), st.integers(1, 99).map("0.{:02d}".format), st.just("0"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(
                st.just("change"),
                st.sampled_from([ASSET, OTHER]),
                st.sampled_from(["BUY", "SELL"]),
                st.integers(1, 99).map("0.{:02d}".format),
                SIZES,
                _ANY_TOP,
                _ANY_TOP,
            ),
            st.tuples(st.just("timer")),
        ),
        max_size=40,
    )
)
def test_take_deadline_never_misses_a_deadline_that_appeared_or_moved(steps: list[Any]) -> None:
    # What the book keeper relies on to wake its timer: after any call, every book whose
    # deadline is new or earlier than before is covered by the next take_deadline().
    registry = BookRegistry(BookOptions(hash_check_every=0, grace_seconds=1.0, grace_messages=2))
    for asset in (ASSET, OTHER):
        registry.apply(book_msg([("0.40", "100")], [("0.55", "70")], asset=asset))
    now = 10.0
    for step in steps:
        now += 0.3
        before = {asset: book.next_deadline() for asset, book in registry.items()}
        match step:
            case ("change", asset, side, price, size, bid, ask):
                entry = make_entry(price, size, side, asset=asset, best_bid=bid, best_ask=ask)
                registry.apply(make_change(int(now * 1000), entry), now=now)
            case _:
                registry.handle_timer(now)
        taken = registry.take_deadline()
        for asset, book in registry.items():
            deadline = book.next_deadline()
            earlier = before[asset]
            if deadline is not None and (earlier is None or deadline < earlier):
                assert taken is not None and taken <= deadline, (asset, deadline, taken)


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["add", "add_with_market", "remove", "learn", "info"]),
            st.sampled_from(["1", "2", "3", "4"]),
            st.sampled_from(["0xa", "0xb"]),
        ),
        max_size=25,
    )
)
def test_market_info_reaches_the_books_a_scan_of_every_book_would(
    steps: list[tuple[str, str, str]],
) -> None:
    # The index set_market_info uses must reach exactly the books whose market is the one given,
    # as the plain pass over every book did, whatever the adds, removals and re-adds before.
    registry = BookRegistry()
    for number, (action, asset, market) in enumerate(steps):
        if action == "add":
            registry.add(asset)
        elif action == "add_with_market":
            registry.add(asset, market=market)
        elif action == "remove":
            registry.remove(asset)
        elif action == "learn" and asset in registry:
            change = make_change(1000 + number, make_entry("0.45", "1", "BUY", asset=asset))
            registry.apply(msgspec.structs.replace(change, market=market))
        elif action == "info":
            size = str(number + 1)
            registry.set_market_info(market, min_order_size=size)
            for book in registry.values():
                if book.market == market:
                    assert book.min_order_size == size
                else:
                    assert book.min_order_size != size


def test_apply_run_stops_at_the_first_event_that_is_not_a_book_update() -> None:
    # The keeper's batch loop: the run of updates in one call, with each verdict at the index
    # of the event that caused it; what apply() one event at a time would give.
    def fresh() -> BookRegistry:
        registry = BookRegistry(CHECKS_OFF)
        registry.apply(book_msg([("0.40", "10")], [("0.60", "10")]))
        return registry

    malformed = make_change(1002, make_entry("0.45", "lots", "BUY"))  # invalidates the book
    events: list[object] = [
        make_change(1001, make_entry("0.41", "5", "BUY")),
        LastTradePrice(
            market=MARKET, asset_id=ASSET, price="0.5", side="BUY", size="1", timestamp=1001
        ),
        malformed,
        book_msg([("0.40", "10")], [("0.60", "10")], timestamp=1003),
        make_change(1004, make_entry("0.42", "5", "BUY")),
    ]
    registry = fresh()
    caused: list[tuple[int, list[BookVerdict]]] = []
    assert registry.apply_run(events, 0, 5.0, caused) == 3
    assert registry.apply_run(events, 4, 5.0, caused) == len(events)
    assert registry.apply_run(events, len(events), 5.0, caused) == len(events)
    one_by_one = fresh()
    expected = [
        (index, verdicts)
        for index, event in enumerate(events)
        if index != 3 and (verdicts := one_by_one.apply(event, 5.0))  # type: ignore[arg-type]
    ]
    assert caused == expected
    assert [index for index, _ in caused] == [2]
    assert caused[0][1][0].action == "invalidated"
    assert registry[ASSET].best_bid == one_by_one[ASSET].best_bid
