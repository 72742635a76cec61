"""Wire message types: tags, immutability, exact strings, REST book responses as Book."""

from __future__ import annotations

import gc
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest

from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    EventMessage,
    LastTradePrice,
    LegacyChange,
    Level,
    MakerOrder,
    Malformed,
    MarketEvent,
    MarketResolved,
    NewMarket,
    Notice,
    Order,
    Pong,
    PriceChange,
    PriceChangeEntry,
    TickSizeChange,
    Trade,
    Unknown,
    UserEvent,
    WireItem,
    to_decimal,
)

EXPECTED_TAGS: dict[type[msgspec.Struct], str] = {
    Book: "book",
    PriceChange: "price_change",
    LastTradePrice: "last_trade_price",
    TickSizeChange: "tick_size_change",
    BestBidAsk: "best_bid_ask",
    NewMarket: "new_market",
    MarketResolved: "market_resolved",
    Order: "order",
    Trade: "trade",
}


def test_tags() -> None:
    for cls, tag in EXPECTED_TAGS.items():
        assert cls.__struct_config__.tag == tag
        assert cls.__struct_config__.tag_field == "event_type"
    assert set(get_args(MarketEvent)) | set(get_args(UserEvent)) == set(EXPECTED_TAGS)
    assert set(get_args(WireItem)) == set(EXPECTED_TAGS) | {Pong, Notice, Unknown, Malformed}


def test_structs_are_frozen() -> None:
    level = Level(price="0.5", size="1")
    with pytest.raises(AttributeError):
        level.price = "0.6"  # type: ignore[misc]
    book = Book(market="m", asset_id="a", timestamp=1, bids=[level], asks=[])
    with pytest.raises(AttributeError):
        book.hash = "x"  # type: ignore[misc]


def test_encode_round_trip_keeps_tag_and_strings() -> None:
    book = Book(
        market="m",
        asset_id="a",
        timestamp=1700000000000,
        bids=[Level("0.10", "5.000")],
        asks=[],
        last_trade_price="0.920",
    )
    encoded = msgspec.json.encode(book)
    assert json.loads(encoded)["event_type"] == "book"
    assert msgspec.json.decode(encoded, type=MarketEvent) == book
    assert b'"0.10"' in encoded
    assert b'"5.000"' in encoded


def test_mutable_defaults_are_not_shared() -> None:
    first = NewMarket(id="1", question="q", market="m", slug="s", timestamp=1)
    second = NewMarket(id="2", question="q", market="m", slug="s", timestamp=2)
    first.assets_ids.append("a")
    assert second.assets_ids == []
    # A price_change's entries are a tuple: nothing to share, nothing for the GC to promote.
    assert PriceChange(market="m", timestamp=1).price_changes == ()


def test_to_decimal_is_exact() -> None:
    assert to_decimal("0.920") == Decimal("0.920")
    assert str(to_decimal("0.920")) == "0.920"
    assert to_decimal("") == 0
    assert to_decimal("0.1") + to_decimal("0.2") == Decimal("0.3")


def test_lenient_timestamps_and_numeric_fee() -> None:
    trade = msgspec.convert(
        {
            "event_type": "trade",
            "id": "t",
            "market": "m",
            "asset_id": "a",
            "side": "BUY",
            "size": "1",
            "price": "0.5",
            "status": "MATCHED",
            "timestamp": "1700000000",
            "fee_rate_bps": 0,
            "maker_orders": [
                {"order_id": "o", "matched_amount": "1", "price": "0.5", "fee_rate_bps": "10"}
            ],
        },
        Trade,
        strict=False,
    )
    assert trade.timestamp == 1700000000
    assert trade.fee_rate_bps == 0
    assert trade.maker_orders == [
        MakerOrder(order_id="o", matched_amount="1", price="0.5", fee_rate_bps="10")
    ]


def test_legacy_price_change_fields_are_optional() -> None:
    change = msgspec.convert(
        {
            "event_type": "price_change",
            "market": "m",
            "timestamp": "5",
            "asset_id": "a",
            "hash": "h",
            "price": "0.5",
            "side": "SELL",
            "size": "3",
        },
        PriceChange,
        strict=False,
    )
    assert (change.asset_id, change.hash, change.price, change.side, change.size) == (
        "a",
        "h",
        "0.5",
        "SELL",
        "3",
    )
    assert change.price_changes == ()
    assert change.changes is None


def _rest_book(value: dict[str, Any]) -> Book:
    # REST /book has no event_type; the tag is injected to reuse the Book type.
    return msgspec.convert({**value, "event_type": "book"}, Book, strict=False)


def test_clob_book_response(fixtures_dir: Path) -> None:
    book = _rest_book(
        json.loads((fixtures_dir / "nautilus_trader/clob_book_response.json").read_bytes())
    )
    assert book.timestamp == 1703875200000
    assert book.hash == "0xabc123"
    assert [level.price for level in book.bids] == ["0.48", "0.49", "0.50"]
    assert book.bids[-1].size == "150.00"
    assert book.min_order_size is None


def test_clob_book_response_empty_ask(fixtures_dir: Path) -> None:
    path = fixtures_dir / "nautilus_trader/clob_book_response_empty_ask.json"
    book = _rest_book(json.loads(path.read_bytes()))
    assert book.asks == []
    assert book.bids == [Level("0.001", "667.12"), Level("0.002", "6.99")]
    assert (book.min_order_size, book.tick_size, book.neg_risk, book.last_trade_price) == (
        "5",
        "0.001",
        True,
        "",
    )
    assert book.timestamp == 1785734468581


def test_messages_hash_rest_lines(fixtures_dir: Path) -> None:
    lines = (fixtures_dir / "polypy/messages_hash.txt").read_bytes().splitlines()
    rest = [
        json.loads(line) for line in lines if line.startswith(b"{") and b"event_type" not in line
    ]
    assert len(rest) == 2
    for value in rest:
        book = _rest_book(value)
        assert book.timestamp == value["timestamp"]
        assert (book.min_order_size, book.tick_size, book.neg_risk) == ("5", "0.01", False)
        assert len(book.bids) == len(value["bids"])
        assert [(level.price, level.size) for level in book.asks] == [
            (level["price"], level["size"]) for level in value["asks"]
        ]
        assert len(book.hash) == 40


def test_rest_book_without_required_field_fails() -> None:
    with pytest.raises(msgspec.ValidationError, match="asset_id"):
        _rest_book({"market": "m", "timestamp": "1", "bids": [], "asks": []})


def test_non_event_items() -> None:
    assert Pong() == Pong()
    assert Notice("NO NEW ASSETS").text == "NO NEW ASSETS"
    assert Unknown(None, b"{}").event_type is None
    assert Malformed("why", "what").excerpt == "what"


def test_unknown_says_when_raw_was_cut() -> None:
    # Positional construction (event_type, raw) stays valid: truncated defaults to False.
    assert Unknown("x", b"{}") == Unknown("x", b"{}", truncated=False)
    assert Unknown("x", b"{", truncated=True).truncated
    assert Unknown("x", b"{}") != Unknown("x", b"{}", truncated=True)


LEAF_STRUCTS = (Level, PriceChangeEntry, LegacyChange, MakerOrder, EventMessage)
SCALARS = (
    msgspec.inspect.StrType,
    msgspec.inspect.IntType,
    msgspec.inspect.BoolType,
    msgspec.inspect.NoneType,
)


def _scalar_only(node: msgspec.inspect.Type) -> bool:
    if isinstance(node, msgspec.inspect.UnionType):
        return all(_scalar_only(member) for member in node.types)
    return isinstance(node, SCALARS)


@pytest.mark.parametrize("cls", LEAF_STRUCTS, ids=lambda cls: cls.__name__)
def test_gc_free_leaf_structs_hold_only_scalars(cls: type[msgspec.Struct]) -> None:
    # gc=False is only safe for types that can never be part of a reference cycle: a field
    # holding a container (or another struct) here would make it leak-prone.
    assert cls.__struct_config__.gc is False
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        assert _scalar_only(field.type), f"{cls.__name__}.{field.name} is not a scalar"
    instance = msgspec.convert({f.name: "1" for f in info.fields if f.required}, cls)
    assert not gc.is_tracked(instance)
