"""The pure market simulator: exact strings, mirrored books, hashes a client can verify in order."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from polyfeed.core.book import BookRegistry
from polyfeed.core.book_hash import HashScheme, book_hash
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    MarketEvent,
    Order,
    PriceChange,
    TickSizeChange,
    Trade,
)
from polyfeed.errors import ConfigError
from polyfeed.testing.market_sim import (
    BookView,
    MarketSimulator,
    SimMessage,
    format_price,
    format_size,
)

WIRE_DECIMAL = re.compile(r"^(0|[1-9]\d*)(\.\d*[1-9])?$")  # no exponent, no trailing zeros
ONE = Decimal(1)


class Ticker:
    """A wall clock that moves 1 ms per read, so timestamps are deterministic."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def simulator(**options: Any) -> MarketSimulator:
    options.setdefault("seed", 7)
    return MarketSimulator(options.pop("markets", 2), wall=Ticker(), **options)


class ReferenceBook:
    """A client-side book built only from wire messages, as a consumer would keep it."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.market = snapshot["market"]
        self.asset_id = snapshot["asset_id"]
        self.bids = {Decimal(lv["price"]): lv for lv in snapshot["bids"]}
        self.asks = {Decimal(lv["price"]): lv for lv in snapshot["asks"]}
        self.tick_size = snapshot["tick_size"]
        self.last_trade_price = snapshot["last_trade_price"]

    def apply(self, entry: dict[str, Any]) -> None:
        side = self.bids if entry["side"] == "BUY" else self.asks
        price = Decimal(entry["price"])
        if entry["size"] == "0":
            del side[price]
        else:
            side[price] = {"price": entry["price"], "size": entry["size"]}

    def wire(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids = [(self.bids[p]["price"], self.bids[p]["size"]) for p in sorted(self.bids)]
        asks = [
            (self.asks[p]["price"], self.asks[p]["size"]) for p in sorted(self.asks, reverse=True)
        ]
        return bids, asks

    def hash(self, timestamp: str) -> str:
        bids, asks = self.wire()
        return book_hash(
            market=self.market,
            asset_id=self.asset_id,
            timestamp=timestamp,
            bids=bids,
            asks=asks,
            scheme=HashScheme.V2026,
            min_order_size="5",
            tick_size=self.tick_size,
            neg_risk=False,
            last_trade_price=self.last_trade_price,
        )


def replay(sim: MarketSimulator, steps: int) -> tuple[dict[str, ReferenceBook], list[SimMessage]]:
    """Snapshot every asset, run ``steps``, apply the messages in order to reference books and
    assert every hash and best price on the way."""
    books = {a: ReferenceBook(sim.snapshot(a).payload) for a in sim.asset_ids}
    messages = run(sim, steps)
    for index, message in enumerate(messages):
        payload = message.payload
        match message.event_type:
            case "price_change":
                for entry in payload["price_changes"]:
                    books[entry["asset_id"]].apply(entry)
                if _run_continues(messages, index):
                    continue  # a run: hashes and tops are those after its last message
                for entry in payload["price_changes"]:
                    book = books[entry["asset_id"]]
                    assert entry["hash"] == book.hash(payload["timestamp"])
                    bids, asks = book.wire()
                    assert entry["best_bid"] == bids[-1][0]
                    assert entry["best_ask"] == asks[-1][0]
            case "last_trade_price":
                books[payload["asset_id"]].last_trade_price = payload["price"]
            case "tick_size_change":
                books[payload["asset_id"]].tick_size = payload["new_tick_size"]
            case "best_bid_ask":
                bids, asks = books[payload["asset_id"]].wire()
                assert (payload["best_bid"], payload["best_ask"]) == (bids[-1][0], asks[-1][0])
            case other:
                pytest.fail(f"unexpected event {other}")
    return books, messages


def _run_continues(messages: list[SimMessage], index: int) -> bool:
    """Whether the next message is a ``price_change`` of the same run (market and timestamp)."""
    if index + 1 >= len(messages):
        return False
    current, following = messages[index], messages[index + 1]
    return (
        following.event_type == "price_change"
        and following.market == current.market
        and following.timestamp == current.timestamp
    )


def run(sim: MarketSimulator, steps: int) -> list[SimMessage]:
    return [m for _ in range(steps) for m in sim.step()]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first = [m.raw for m in run(simulator(), 200)]
    assert first == [m.raw for m in run(simulator(), 200)]
    assert first != [m.raw for m in run(simulator(seed=8), 200)]


def test_ids_look_like_polymarket_ids() -> None:
    sim = simulator(markets=3)
    assert len(sim.markets) == 3 and len(sim.asset_ids) == 6
    for market in sim.markets:
        assert re.fullmatch(r"0x[0-9a-f]{64}", market.condition_id)
        assert all(t.isdigit() and len(t) > 60 for t in market.tokens)
        assert sim.market(market.condition_id) == market
        assert sim.market_of(market.no_token) == market
    assert sim.market("0xnope") is None and sim.market_of("1") is None


def test_prices_and_sizes_are_exact_wire_strings_on_the_tick_grid() -> None:
    sim = simulator()
    run(sim, 300)
    for asset_id in sim.asset_ids:
        view = sim.book(asset_id)
        for price, size in view.bids + view.asks:
            assert WIRE_DECIMAL.match(price) and WIRE_DECIMAL.match(size), (price, size)
            assert Decimal(price) % Decimal(view.tick_size) == 0
            assert 0 < Decimal(price) < 1 and Decimal(size) > 0
    assert (format_price(5000), format_price(100), format_price(9900)) == ("0.5", "0.01", "0.99")
    assert (format_size(80000), format_size(1230), format_size(1)) == ("800", "12.3", "0.01")


def test_books_are_mirrored_in_wire_order_bounded_and_uncrossed() -> None:
    sim = simulator(min_levels=5, max_levels=12, trade_probability=0.3)
    for _ in range(40):
        run(sim, 25)
        for market in sim.markets:
            yes, no = sim.book(market.yes_token), sim.book(market.no_token)
            # A YES bid at p is a NO ask at 1-p with the same size, and vice versa.
            assert [(str(ONE - Decimal(p)), s) for p, s in yes.bids] == [
                (str(Decimal(p)), s) for p, s in no.asks
            ]
            assert [(str(ONE - Decimal(p)), s) for p, s in yes.asks] == [
                (str(Decimal(p)), s) for p, s in no.bids
            ]
            for view in (yes, no):
                bids = [Decimal(p) for p, _ in view.bids]
                asks = [Decimal(p) for p, _ in view.asks]
                assert bids == sorted(bids) and asks == sorted(asks, reverse=True)
                assert bids[-1] < asks[-1]
                assert 5 <= len(bids) <= 12 and 5 <= len(asks) <= 12


def test_every_hash_verifies_for_a_client_applying_messages_in_order() -> None:
    sim = simulator(trade_probability=0.3)
    books, messages = replay(sim, 400)
    assert {m.event_type for m in messages} >= {"price_change", "last_trade_price", "best_bid_ask"}
    for asset_id, book in books.items():
        view = sim.book(asset_id)
        assert book.wire() == (list(view.bids), list(view.asks))
        assert book.hash(view.timestamp) == view.hash


def test_trade_prints_both_tokens_before_the_change_by_default() -> None:
    sim = simulator(trade_probability=1.0, markets=1)
    messages = sim.step()
    assert [m.event_type for m in messages[:3]] == [
        "last_trade_price",
        "last_trade_price",
        "price_change",
    ]
    yes_print, no_print = messages[0].payload, messages[1].payload
    assert Decimal(yes_print["price"]) + Decimal(no_print["price"]) == 1
    assert {yes_print["side"], no_print["side"]} == {"BUY", "SELL"}
    assert sim.book(sim.asset_ids[0]).last_trade_price == yes_print["price"]


def test_trade_print_after_change_reproduces_the_live_hash_quirk() -> None:
    sim = simulator(trade_probability=1.0, markets=1, trade_print_after_change=True)
    before = {a: ReferenceBook(sim.snapshot(a).payload) for a in sim.asset_ids}
    messages = sim.step()
    assert [m.event_type for m in messages[:3]] == [
        "price_change",
        "last_trade_price",
        "last_trade_price",
    ]
    change = messages[0].payload
    entry = change["price_changes"][0]
    book = before[entry["asset_id"]]
    book.apply(entry)
    # Applied in order the hash does not verify; with the later trade price it does.
    assert entry["hash"] != book.hash(change["timestamp"])
    book.last_trade_price = messages[1].payload["price"]
    assert entry["hash"] == book.hash(change["timestamp"])


def test_tick_size_change_refines_the_tick_once_and_hashes_follow() -> None:
    sim = simulator(tick_size_change_probability=1.0, markets=1)
    _, messages = replay(sim, 50)
    changes = [m for m in messages if m.event_type == "tick_size_change"]
    assert [(m.payload["old_tick_size"], m.payload["new_tick_size"]) for m in changes] == [
        ("0.01", "0.001"),
        ("0.01", "0.001"),
    ]
    assert sim.tick_size(sim.asset_ids[1]) == "0.001"
    assert any(Decimal(p) % Decimal("0.01") for p, _ in sim.book(sim.asset_ids[0]).bids)


def test_timestamps_are_ms_strings_strictly_increasing_per_market() -> None:
    frozen_wall = simulator(markets=2)
    frozen_wall._wall = lambda: 1_700_000_000.0  # a stuck clock still yields increasing stamps
    messages = run(frozen_wall, 100)
    for market in frozen_wall.markets:
        mine = [m for m in messages if m.market == market.condition_id]
        for before, after in itertools.pairwise(mine):
            same_run = before.event_type == after.event_type == "price_change"
            assert int(after.timestamp) > int(before.timestamp) or (
                same_run and after.timestamp == before.timestamp
            )
        assert int(mine[0].timestamp) == 1_700_000_000_000


def test_messages_decode_as_polyfeed_wire_types() -> None:
    sim = simulator(trade_probability=0.5, tick_size_change_probability=0.05)
    types = {
        "book": Book,
        "price_change": PriceChange,
        "last_trade_price": LastTradePrice,
        "tick_size_change": TickSizeChange,
        "best_bid_ask": BestBidAsk,
    }
    for message in [sim.snapshot(sim.asset_ids[0]), *run(sim, 100)]:
        decoded = msgspec.json.decode(message.raw, type=types[message.event_type], strict=False)
        assert decoded.market == message.market
        assert str(decoded.timestamp) == message.timestamp


def test_snapshot_and_rest_summary_carry_verifiable_hashes() -> None:
    sim = simulator()
    run(sim, 20)
    asset_id = sim.asset_ids[1]
    snapshot = sim.snapshot(asset_id).payload
    assert (
        snapshot["event_type"] == "book" and snapshot["timestamp"] == sim.book(asset_id).timestamp
    )
    assert snapshot["hash"] == ReferenceBook(snapshot).hash(snapshot["timestamp"])
    summary = sim.rest_summary(asset_id)
    assert summary["hash"] == sim.book(asset_id).hash
    assert summary["hash"] == book_hash(
        **{k: v for k, v in summary.items() if k not in ("hash", "bids", "asks")},
        bids=[(lv["price"], lv["size"]) for lv in summary["bids"]],
        asks=[(lv["price"], lv["size"]) for lv in summary["asks"]],
    )


def test_book_view_best_prices() -> None:
    view = simulator().book(simulator().asset_ids[0])
    assert view.best_bid == view.bids[-1][0] and view.best_ask == view.asks[-1][0]
    empty = BookView(
        market="m",
        asset_id="a",
        bids=(),
        asks=(),
        tick_size="0.01",
        min_order_size="5",
        neg_risk=False,
        last_trade_price="",
        timestamp="1",
        hash="",
    )
    assert (empty.best_bid, empty.best_ask) == ("", "")


def test_user_lifecycle_decodes_and_cycles() -> None:
    sim = simulator(markets=1)
    messages = [sim.user_step("owner-key") for _ in range(8)]
    kinds = [(m.event_type, m.payload.get("type"), m.payload["status"]) for m in messages]
    assert kinds[:6] == [
        ("order", "PLACEMENT", "LIVE"),
        ("order", "UPDATE", "LIVE"),
        ("trade", "TRADE", "MATCHED"),
        ("trade", "TRADE", "MINED"),
        ("trade", "TRADE", "CONFIRMED"),
        ("order", "CANCELLATION", "CANCELED"),
    ]
    assert kinds[6][1] == "PLACEMENT" and messages[6].payload["id"] != messages[0].payload["id"]
    for message in messages:
        struct: type[Order | Trade] = Order if message.event_type == "order" else Trade
        decoded = msgspec.json.decode(message.raw, type=struct, strict=False)
        assert decoded.owner == "owner-key" and decoded.market == sim.markets[0].condition_id


@pytest.mark.parametrize(
    "options",
    [
        {"markets": 0},
        {"min_levels": 0},
        {"min_levels": 5, "max_levels": 4},
        {"tick_size": "0.00001"},
        {"run_probability": 1.5},
        {"run_probability": -0.1},
        {"max_run_messages": 1},
    ],
)
def test_bad_options_raise_config_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        simulator(**options)
    with pytest.raises(ConfigError):
        simulator().step("0xnot-a-market")


def test_repr_shows_state() -> None:
    sim = simulator()
    sim.step()
    assert repr(sim) == (
        "MarketSimulator(markets=2, assets=4, steps=1, trade_probability=0.1, run_probability=0.0)"
    )


def test_a_run_shares_one_timestamp_and_every_entry_carries_the_final_hash() -> None:
    sim = simulator(markets=1, trade_probability=0.0, run_probability=1.0, max_run_messages=4)
    books = {a: ReferenceBook(sim.snapshot(a).payload) for a in sim.asset_ids}
    lengths = set()
    for _ in range(30):
        changes = [m for m in sim.step() if m.event_type == "price_change"]
        lengths.add(len(changes))
        assert len({m.timestamp for m in changes}) == 1
        stamp = changes[0].timestamp
        verified_early = False
        for number, message in enumerate(changes):
            for entry in message.payload["price_changes"]:
                book = books[entry["asset_id"]]
                book.apply(entry)
                if number < len(changes) - 1 and entry["hash"] == book.hash(stamp):
                    verified_early = True
        assert not verified_early or len(changes) == 1
        for asset_id, book in books.items():
            final = sim.book(asset_id)
            assert book.wire() == (list(final.bids), list(final.asks))
            for message in changes:
                (entry,) = [
                    e for e in message.payload["price_changes"] if e["asset_id"] == asset_id
                ]
                assert entry["hash"] == book.hash(stamp)
                assert (entry["best_bid"], entry["best_ask"]) == (final.best_bid, final.best_ask)
    assert lengths == {2, 3, 4}


def test_run_probability_controls_how_often_a_step_is_a_run() -> None:
    def run_steps(**options: Any) -> int:
        sim = simulator(trade_probability=0.0, **options)
        return sum(
            len([m for m in sim.step() if m.event_type == "price_change"]) > 1 for _ in range(400)
        )

    assert run_steps() == 0  # off by default
    assert 20 <= run_steps(run_probability=0.1) <= 70
    assert run_steps(run_probability=1.0) == 400
    # Trades stay single messages.
    trades = simulator(trade_probability=1.0, run_probability=1.0, markets=1)
    assert [m.event_type for m in trades.step()].count("price_change") == 1


def test_polyfeed_books_follow_runs_without_a_false_alarm() -> None:
    sim = simulator(trade_probability=0.3, run_probability=0.5)
    registry = BookRegistry()
    for market in sim.markets:
        registry.set_market_info(
            market.condition_id, min_order_size="5", tick_size="0.01", neg_risk=False
        )

    def decode(raw: bytes) -> MarketEvent:
        event: MarketEvent = msgspec.json.decode(raw, type=MarketEvent, strict=False)
        return event

    for asset_id in sim.asset_ids:
        assert registry.apply(decode(sim.snapshot(asset_id).raw)) == []
    for message in run(sim, 300):
        assert registry.apply(decode(message.raw), now=0.0) == []
    for asset_id in sim.asset_ids:
        book = registry[asset_id]
        assert book.synced and book.in_doubt is None, book
        assert book.counters.hash_mismatches == 0
        assert book.counters.hash_checks > 100
        assert book.compute_hash() == sim.book(asset_id).hash
