"""The frame decoder against every real capture, edge-case frames and hypothesis properties."""

from __future__ import annotations

import ast
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyfeed.core.codec import (
    EXCERPT_CHARS,
    MAX_ITEMS_PER_FRAME,
    REASON_CHARS,
    UNKNOWN_RAW_BYTES,
    DecodeStats,
    FrameDecoder,
    decode_frame,
)
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    Level,
    Malformed,
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
    WireItem,
)
from polyfeed.errors import ConfigError

MARKET_TAGS = (
    "book",
    "price_change",
    "last_trade_price",
    "tick_size_change",
    "best_bid_ask",
    "new_market",
    "market_resolved",
)
USER_TAGS = ("order", "trade")

# --------------------------------------------------------------------------- fixture table

# file -> (channel, event_type to inject or None when the file carries one, expected item types)
FIXTURE_TABLE: dict[str, tuple[str, str | None, list[type]]] = {
    # market channel, as sent
    "nautilus_trader/ws_book_snapshot_captured.json": ("market", None, [Book]),
    "nautilus_trader/ws_market_book_msg.json": ("market", None, [Book]),
    "nautilus_trader/ws_market_price_change_msg.json": ("market", None, [PriceChange]),
    "nautilus_trader/ws_market_last_trade_msg.json": ("market", None, [LastTradePrice]),
    "nautilus_trader/ws_market_tick_size_msg.json": ("market", None, [TickSizeChange]),
    "nautilus_trader/ws_market_best_bid_ask_msg.json": ("market", None, [BestBidAsk]),
    "nautilus_trader/ws_market_new_market_msg.json": ("market", None, [NewMarket]),
    "nautilus_trader/ws_market_resolved_msg.json": ("market", None, [MarketResolved]),
    "nautilus_trader/ws_market_mixed_known_unknown.json": (
        "market",
        None,
        [PriceChange, Unknown, LastTradePrice],
    ),
    "nautilus_trader_py_ws/book.json": ("market", None, [Book]),
    "nautilus_trader_py_ws/price_change.json": ("market", None, [PriceChange]),
    "nautilus_trader_py_ws/price_change_v2.json": ("market", None, [PriceChange]),
    "nautilus_trader_py_ws/last_trade_price.json": ("market", None, [LastTradePrice]),
    "nautilus_trader_py_ws/tick_size_change.json": ("market", None, [TickSizeChange]),
    # market bodies without event_type (the README names their type)
    "nautilus_trader/ws_book_snapshot.json": ("market", "book", [Book]),
    "nautilus_trader/ws_book_snapshot_missing_hash.json": ("market", "book", [Book]),
    "nautilus_trader/ws_quotes.json": ("market", "price_change", [PriceChange]),
    "nautilus_trader/ws_last_trade.json": ("market", "last_trade_price", [LastTradePrice]),
    "nautilus_trader/ws_tick_size_change.json": ("market", "tick_size_change", [TickSizeChange]),
    "polypy/ws_msg_book_yes.json": ("market", "book", [Book]),
    "polypy/ws_msg_book_no.json": ("market", "book", [Book]),
    # REST /book responses share the book shape
    "nautilus_trader/clob_book_response.json": ("market", "book", [Book]),
    "nautilus_trader/clob_book_response_empty_ask.json": ("market", "book", [Book]),
    # user channel, as sent
    "nautilus_trader/ws_user_order_msg.json": ("user", None, [Order]),
    "nautilus_trader/ws_user_order_fok_buy_pusd_size.json": ("user", None, [Order]),
    "nautilus_trader/ws_user_order_fok_killed.json": ("user", None, [Order]),
    "nautilus_trader/ws_user_trade_msg.json": ("user", None, [Trade]),
    "nautilus_trader/ws_user_batch_msg.json": ("user", None, [Order, Trade]),
    "nautilus_trader_py_ws/order_placement.json": ("user", None, [Order]),
    "nautilus_trader_py_ws/order_cancel.json": ("user", None, [Order]),
    "nautilus_trader_py_ws/user_trade1.json": ("user", None, [Trade]),
    "nautilus_trader_py_ws/user_trade2.json": ("user", None, [Trade]),
    "nautilus_trader_py_ws/user_trade3.json": ("user", None, [Trade]),
    "nautilus_trader_py_ws/user_trade4.json": ("user", None, [Trade]),
    # user bodies without event_type
    "nautilus_trader/ws_user_order_placement.json": ("user", "order", [Order]),
    "nautilus_trader/ws_user_order_update.json": ("user", "order", [Order]),
    "nautilus_trader/ws_user_order_matched.json": ("user", "order", [Order]),
    "nautilus_trader/ws_user_order_cancellation.json": ("user", "order", [Order]),
    "nautilus_trader/ws_user_order_venue_cancel.json": ("user", "order", [Order]),
    "nautilus_trader/ws_user_trade.json": ("user", "trade", [Trade]),
    "nautilus_trader/ws_user_trade_completion.json": ("user", "trade", [Trade]),
    "nautilus_trader/ws_user_trade_full.json": ("user", "trade", [Trade]),
    "nautilus_trader/ws_user_trade_full_failed.json": ("user", "trade", [Trade]),
    "nautilus_trader_py_ws/trades.json": ("user", "trade", [Trade]),
    "polypy/test_order_info_maker_buy_placement.json": ("user", "order", [Order]),
    "polypy/test_order_info_maker_buy_update.json": ("user", "order", [Order]),
    "polypy/test_order_info_maker_buy_unmatched.json": ("user", "order", [Order]),
    "polypy/test_trade_info_maker_buy_matched.json": ("user", "trade", [Trade]),
    "polypy/test_trade_info_maker_buy_confirmed.json": ("user", "trade", [Trade]),
    "polypy/test_trade_info_taker_buy_matched.json": ("user", "trade", [Trade]),
    "polypy/test_trade_info_partitioned_maker_fill.json": ("user", "trade", [Trade]),
}

# JSON fixtures that are not CLOB WebSocket messages (Gamma, RTDS, REST /markets).
NOT_CLOB_WS = {
    "nautilus_trader/gamma_event.json",
    "nautilus_trader/gamma_market.json",
    "nautilus_trader/gamma_market_crypto_twap.json",
    "nautilus_trader/gamma_market_live.json",
    "nautilus_trader/rtds_crypto_prices_subscribe.json",
    "nautilus_trader/rtds_crypto_prices_update.json",
    "nautilus_trader/rtds_crypto_twap_sixty_update.json",
    "nautilus_trader/rtds_equity_prices_subscribe.json",
    "nautilus_trader/rtds_equity_prices_update.json",
    "polypy/ws_msg_market_data.json",
}


def _frame(fixtures_dir: Path, name: str) -> bytes:
    """The fixture as a wire frame, with the README's event_type injected where it is absent."""
    _, inject, _ = FIXTURE_TABLE[name]
    data = (fixtures_dir / name).read_bytes()
    if inject is None:
        return data
    value: dict[str, Any] = json.loads(data)
    assert "event_type" not in value
    value["event_type"] = inject
    return msgspec.json.encode(value)


def _decode(fixtures_dir: Path, name: str) -> list[WireItem]:
    channel = FIXTURE_TABLE[name][0]
    decoder = FrameDecoder(channel)  # type: ignore[arg-type]
    items = decoder.decode(_frame(fixtures_dir, name))
    assert decoder.stats.frames == 1
    assert decoder.stats.items == len(items)
    return items


def _one(fixtures_dir: Path, name: str) -> Any:
    (item,) = _decode(fixtures_dir, name)
    return item


def test_table_covers_every_json_fixture(fixtures_dir: Path) -> None:
    on_disk = {str(p.relative_to(fixtures_dir)) for p in fixtures_dir.rglob("*.json")}
    assert on_disk == set(FIXTURE_TABLE) | NOT_CLOB_WS


@pytest.mark.parametrize("name", sorted(FIXTURE_TABLE))
def test_fixture_decodes_to_expected_types(fixtures_dir: Path, name: str) -> None:
    channel, inject, expected = FIXTURE_TABLE[name]
    items = _decode(fixtures_dir, name)
    assert [type(item) for item in items] == expected
    for item in items:
        if isinstance(item, Unknown):
            continue
        assert item.timestamp is None or isinstance(item.timestamp, int)  # type: ignore[union-attr]

    # The same frame through the slow path (leading whitespace keeps it off the fast path)
    # gives equal items: both paths agree.
    slow = FrameDecoder(channel).decode(b" " + _frame(fixtures_dir, name))  # type: ignore[arg-type]
    assert _comparable(slow) == _comparable(items)

    raw = (fixtures_dir / name).read_bytes()
    if inject is not None:
        # Without the injected tag the body is passed on as Unknown, exactly as received.
        assert FrameDecoder(channel).decode(raw) == [Unknown(None, raw)]  # type: ignore[arg-type]

    # The other channel does not know these events: they come out Unknown, not lost.
    other = "user" if channel == "market" else "market"
    crossed = FrameDecoder(other).decode(_frame(fixtures_dir, name))  # type: ignore[arg-type]
    assert [type(item) for item in crossed] == [Unknown] * len(expected)


def _comparable(items: list[WireItem]) -> list[Any]:
    """Items with Unknown compared by content (raw may be re-encoded) and Malformed by kind."""
    result: list[Any] = []
    for item in items:
        match item:
            case Unknown(event_type=event_type, raw=raw):
                result.append(("unknown", event_type, json.loads(raw)))
            case Malformed():
                result.append("malformed")
            case _:
                result.append(item)
    return result


def test_captured_book_fields(fixtures_dir: Path) -> None:
    book = _one(fixtures_dir, "nautilus_trader/ws_book_snapshot_captured.json")
    assert isinstance(book, Book)
    assert book.timestamp == 1786604072222
    assert book.asset_id.startswith("3509777698529173293870")
    assert (len(book.bids), len(book.asks)) == (7, 57)
    assert book.bids[0] == Level(price="0.01", size="3149725.72")
    assert book.asks[0] == Level(price="0.99", size="156606.14")
    assert book.asks[-1] == Level(price="0.08", size="228198.28")
    assert book.tick_size == "0.01"
    # Exact strings: the trailing zero survives (it is part of the hashed preimage).
    assert book.last_trade_price == "0.920"
    assert book.hash == "ed47eb91f3c7985fac1cb18cb7c19535eddd3c0a"


def test_book_without_hash_defaults_to_empty(fixtures_dir: Path) -> None:
    book = _one(fixtures_dir, "nautilus_trader/ws_book_snapshot_missing_hash.json")
    assert isinstance(book, Book)
    assert (book.hash, book.bids, book.asks) == ("", [], [])
    assert book.timestamp == 1703875200000


def test_price_change_two_assets(fixtures_dir: Path) -> None:
    change = _one(fixtures_dir, "nautilus_trader/ws_quotes.json")
    assert isinstance(change, PriceChange)
    assert change.timestamp == 1703875201000
    assert len(change.price_changes) == 2
    first, second = change.price_changes
    assert (first.price, first.size, first.side, first.hash) == (
        "0.51",
        "150.0",
        "BUY",
        "0xhash001",
    )
    assert (second.price, second.side, second.best_bid, second.best_ask) == (
        "0.49",
        "SELL",
        "0.48",
        "0.49",
    )
    assert first.asset_id != second.asset_id


def test_price_change_v2_three_entries(fixtures_dir: Path) -> None:
    change = _one(fixtures_dir, "nautilus_trader_py_ws/price_change_v2.json")
    assert isinstance(change, PriceChange)
    assert [entry.price for entry in change.price_changes] == ["0.6", "0.5", "0.7"]
    assert change.changes is None


def test_oldest_single_level_price_change_is_normalised(fixtures_dir: Path) -> None:
    change = _one(fixtures_dir, "nautilus_trader_py_ws/price_change.json")
    assert isinstance(change, PriceChange)
    asset = "48331043336612883890938759509493159234755048973500640148014422747788308965732"
    assert change.price_changes == (
        PriceChangeEntry(
            asset_id=asset,
            price="0.514",
            size="21574.08",
            side="SELL",
            hash="bf32b3746fff40c76c98021b7f3f07261169dd26",
        ),
    )
    assert change.timestamp == 1723967931411
    # The legacy fields stay as received.
    assert (change.asset_id, change.price, change.side) == (asset, "0.514", "SELL")


LEGACY_CHANGES = (
    b'{"event_type":"price_change","market":"0xm","asset_id":"7","hash":"h1",'
    b'"timestamp":"1700000000000","changes":[{"price":"0.4","side":"BUY","size":"10"},'
    b'{"price":"0.6","side":"SELL","size":"0"}]}'
)


def test_legacy_changes_list_is_normalised() -> None:
    decoder = FrameDecoder("market")
    (change,) = decoder.decode(LEGACY_CHANGES)
    assert isinstance(change, PriceChange)
    assert change.price_changes == (
        PriceChangeEntry(asset_id="7", price="0.4", size="10", side="BUY", hash="h1"),
        PriceChangeEntry(asset_id="7", price="0.6", size="0", side="SELL", hash="h1"),
    )
    assert change.timestamp == 1700000000000
    # Inside an array frame too, on both paths.
    assert decoder.decode(b"[" + LEGACY_CHANGES + b"]") == [change]
    assert decoder.decode(b" [" + LEGACY_CHANGES + b', {"event_type":"x"}]')[0] == change
    assert decoder.stats == DecodeStats(frames=3, events=3, unknown=1)


def test_legacy_price_change_without_asset_is_malformed() -> None:
    frame = (
        b'{"event_type":"price_change","market":"m","timestamp":1,'
        b'"price":"0.1","size":"1","side":"BUY"}'
    )
    decoder = FrameDecoder("market")
    for data in (frame, b"[" + frame + b"]", b" " + frame):
        (item,) = decoder.decode(data)
        assert isinstance(item, Malformed)
        assert "asset_id" in item.reason
    assert decoder.stats == DecodeStats(frames=3, malformed=3)


def test_mixed_known_unknown(fixtures_dir: Path) -> None:
    change, unknown, trade = _decode(
        fixtures_dir, "nautilus_trader/ws_market_mixed_known_unknown.json"
    )
    assert isinstance(change, PriceChange)
    assert change.price_changes[0].hash == "price-change-hash"
    assert isinstance(unknown, Unknown)
    assert unknown.event_type == "settlement_preview"
    assert msgspec.json.decode(unknown.raw) == {"event_type": "settlement_preview", "sequence": 2}
    assert isinstance(trade, LastTradePrice)
    assert (trade.price, trade.size, trade.fee_rate_bps) == ("0.63", "4.25", "17")
    assert trade.transaction_hash == "0xtrade-hash"


def test_bad_elements_do_not_lose_good_ones(fixtures_dir: Path) -> None:
    elements = json.loads(
        (fixtures_dir / "nautilus_trader/ws_market_mixed_known_unknown.json").read_bytes()
    )
    broken_book = {"event_type": "book", "market": "m"}  # required fields missing
    bad_timestamp = dict(elements[2], timestamp="soon")
    frame = json.dumps([elements[0], broken_book, 5, elements[1], bad_timestamp, elements[2]])
    decoder = FrameDecoder("market")
    items = decoder.decode(frame)
    assert [type(item) for item in items] == [
        PriceChange,
        Malformed,
        Malformed,
        Unknown,
        Malformed,
        LastTradePrice,
    ]
    assert "book" in items[1].reason  # type: ignore[union-attr]
    assert "object" in items[2].reason  # type: ignore[union-attr]
    assert "timestamp" in items[4].reason  # type: ignore[union-attr]
    assert decoder.stats == DecodeStats(frames=1, events=2, unknown=1, malformed=3)


def test_new_market_fields(fixtures_dir: Path) -> None:
    event = _one(fixtures_dir, "nautilus_trader/ws_market_new_market_msg.json")
    assert isinstance(event, NewMarket)
    assert event.event_message is not None
    assert event.event_message.id == "125819"
    assert len(event.assets_ids) == 2
    assert event.outcomes == ["Yes", "No"]
    assert event.active is True
    assert event.order_price_min_tick_size == "0.01"


def test_market_resolved_and_best_bid_ask(fixtures_dir: Path) -> None:
    resolved = _one(fixtures_dir, "nautilus_trader/ws_market_resolved_msg.json")
    assert isinstance(resolved, MarketResolved)
    assert resolved.winning_outcome == "Yes"
    assert resolved.winning_asset_id == resolved.assets_ids[0]
    top = _one(fixtures_dir, "nautilus_trader/ws_market_best_bid_ask_msg.json")
    assert isinstance(top, BestBidAsk)
    assert (top.best_bid, top.best_ask, top.spread, top.timestamp) == (
        "0.73",
        "0.77",
        "0.04",
        1766789469958,
    )


def test_tick_size_change_fields(fixtures_dir: Path) -> None:
    event = _one(fixtures_dir, "nautilus_trader_py_ws/tick_size_change.json")
    assert isinstance(event, TickSizeChange)
    assert (event.old_tick_size, event.new_tick_size, event.timestamp) == (
        "0.01",
        "0.001",
        1739068041853,
    )


def test_user_order_fields(fixtures_dir: Path) -> None:
    killed = _one(fixtures_dir, "nautilus_trader/ws_user_order_fok_killed.json")
    assert isinstance(killed, Order)
    assert killed.status is not None
    assert killed.status.startswith("CANCELED_")
    assert (killed.type, killed.size_matched, killed.associate_trades) == ("CANCELLATION", "", [])
    assert killed.timestamp == 1777824065000

    numeric = _one(fixtures_dir, "polypy/test_order_info_maker_buy_placement.json")
    assert isinstance(numeric, Order)
    assert (numeric.created_at, numeric.expiration, numeric.timestamp) == (
        1737678469,
        0,
        1737678469623,
    )


def test_user_trade_fields(fixtures_dir: Path) -> None:
    trade = _one(fixtures_dir, "nautilus_trader_py_ws/user_trade1.json")
    assert isinstance(trade, Trade)
    assert len(trade.maker_orders) >= 3
    assert {order.outcome for order in trade.maker_orders} == {"Yes", "No"}

    maker = _one(fixtures_dir, "nautilus_trader_py_ws/user_trade3.json")
    assert isinstance(maker, Trade)
    assert maker.trader_side == "MAKER"
    assert maker.timestamp == 1762776436  # sent as a string of epoch seconds
    assert maker.match_time == "1762776367"  # user-channel times are kept as received

    partitioned = _one(fixtures_dir, "polypy/test_trade_info_partitioned_maker_fill.json")
    assert isinstance(partitioned, Trade)
    assert partitioned.fee_rate_bps == 0  # a JSON number in this capture
    assert [m.side for m in partitioned.maker_orders] == ["BUY", "SELL"]
    assert partitioned.timestamp == 1744590395842


def test_user_batch(fixtures_dir: Path) -> None:
    order, trade = _decode(fixtures_dir, "nautilus_trader/ws_user_batch_msg.json")
    assert isinstance(order, Order)
    assert isinstance(trade, Trade)
    assert order.associate_trades is None
    assert trade.maker_orders == []
    assert trade.transaction_hash == ""


# --------------------------------------------------------------------------- sequence files


def _python_literal_frames(path: Path) -> list[bytes]:
    # polypy's recordings are Python literals (single quotes): parse, then re-encode as JSON.
    frames = []
    for line in path.read_text().splitlines():
        if line.strip():
            frames.append(msgspec.json.encode(ast.literal_eval(line)))
    return frames


B, PC, LTP, TSC = Book, PriceChange, LastTradePrice, TickSizeChange

SEQUENCES: dict[str, list[list[type]]] = {
    "polypy/test_server_messages.txt": [[B], [PC], [PC], [PC], [PC], [LTP], [PC], [PC], [B], [TSC]],
    "polypy/test_server_multi_book.txt": [
        [B],
        [B],
        [PC],
        [PC],
        [PC],
        [PC],
        [B],
        [PC],
        [PC],
        [LTP],
        [PC],
        [B],
    ],
    "polypy/test_server_multiple_last_trade_price.txt": [[B], [LTP], [LTP], [LTP], [PC]],
}


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_polypy_sequences(fixtures_dir: Path, name: str) -> None:
    decoder = FrameDecoder("market")
    decoded = [decoder.decode(frame) for frame in _python_literal_frames(fixtures_dir / name)]
    assert [[type(item) for item in items] for items in decoded] == SEQUENCES[name]
    flat = [item for items in decoded for item in items]
    assert all(isinstance(item.timestamp, int) for item in flat)  # type: ignore[union-attr]
    assert decoder.stats == DecodeStats(frames=len(decoded), events=len(flat))


def test_polypy_sequence_field_values(fixtures_dir: Path) -> None:
    frames = _python_literal_frames(fixtures_dir / "polypy/test_server_messages.txt")
    decoder = FrameDecoder("market")
    (book,) = decoder.decode(frames[0])
    assert isinstance(book, Book)
    assert book.timestamp == 1733411269309
    assert book.hash == "edb3102b9710247c749505a41618303b0cad66e6"
    (change,) = decoder.decode(frames[6])
    assert isinstance(change, PriceChange)
    assert len(change.price_changes) == 2
    assert change.price_changes[0].size == "0"
    (trade,) = decoder.decode(frames[5])
    assert isinstance(trade, LastTradePrice)
    assert (trade.price, trade.transaction_hash) == ("0.52", "1234")
    (tick,) = decoder.decode(frames[9])
    assert isinstance(tick, TickSizeChange)
    assert (tick.old_tick_size, tick.new_tick_size) == ("0.001", "0.01")


def test_messages_hash_lines(fixtures_dir: Path) -> None:
    lines = [
        line
        for line in (fixtures_dir / "polypy/messages_hash.txt").read_bytes().splitlines()
        if line.startswith(b"{")
    ]
    decoder = FrameDecoder("market")
    decoded = [decoder.decode(line) for line in lines]
    # WS book, WS price_change, REST book, WS price_change, REST book. The REST lines carry no
    # event_type, so the WS decoder passes them on as Unknown.
    assert [[type(item) for item in items] for items in decoded] == [
        [Book],
        [PriceChange],
        [Unknown],
        [PriceChange],
        [Unknown],
    ]
    book = decoded[0][0]
    assert isinstance(book, Book)
    assert book.timestamp == 1761179883493  # a JSON number in this capture
    assert (len(book.bids), len(book.asks)) == (18, 17)
    for index in (1, 3):
        change = decoded[index][0]
        assert isinstance(change, PriceChange)
        assert len(change.price_changes) == 2
    assert decoded[2][0] == Unknown(None, lines[2])


# --------------------------------------------------------------------------- text frames


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("PONG", [Pong()]),
        (b"PONG", [Pong()]),
        ("PONG\n", [Pong()]),
        ("pong", [Pong()]),
        ("NO NEW ASSETS", [Notice("NO NEW ASSETS")]),
        (b"INVALID OPERATION", [Notice("INVALID OPERATION")]),
        ("something else entirely", [Notice("something else entirely")]),
        ("[]", []),
        (b"[]", []),
        ("{}", [Unknown(None, b"{}")]),
        ('{"event_type":"nope","x":1}', [Unknown("nope", b'{"event_type":"nope","x":1}')]),
    ],
)
def test_text_frames(data: str | bytes, expected: list[WireItem]) -> None:
    assert decode_frame(data) == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("null", "got null"),
        ("123", "got number"),
        ("-1.5e3", "got number"),
        ("true", "got boolean"),
        ('"PONG"', "got string"),
        ("[1,2]", "expected an object, got number"),
        ("[[]]", "expected an object, got array"),
        ('{"event_type": 5}', "event_type is a number"),
        ("{", "invalid JSON"),
        ('{"event_type":"book"', "invalid JSON"),
        ('["a"', "invalid JSON"),
        ("[" * 10_000, "invalid JSON"),
        ('{"event_type":"book"}', "invalid book"),
    ],
)
def test_malformed_frames(data: str, reason: str) -> None:
    decoder = FrameDecoder("market")
    items = decoder.decode(data)
    assert items
    assert all(isinstance(item, Malformed) for item in items)
    assert reason in items[0].reason  # type: ignore[union-attr]
    assert all(len(item.excerpt) <= EXCERPT_CHARS for item in items)  # type: ignore[union-attr]
    assert decoder.stats.malformed == len(items)
    assert decoder.stats.frames == 1


def test_excerpt_is_bounded_for_huge_junk() -> None:
    (item,) = decode_frame("{" + "x" * 100_000)
    assert isinstance(item, Malformed)
    assert item.excerpt == ("{" + "x" * 100_000)[:EXCERPT_CHARS]
    (item,) = decode_frame(("{" + "é" * 100_000).encode())
    assert isinstance(item, Malformed)
    assert len(item.excerpt) == EXCERPT_CHARS


def test_invalid_utf8_never_raises() -> None:
    assert decode_frame(b"\xff\xfe\xfd") == [Notice("\ufffd\ufffd\ufffd")]
    (item,) = decode_frame(b'{"event_type":"\xff"}')
    assert isinstance(item, Malformed)


def test_str_and_bytes_agree(fixtures_dir: Path) -> None:
    data = (fixtures_dir / "nautilus_trader/ws_market_mixed_known_unknown.json").read_bytes()
    as_str = decode_frame(data.decode())
    as_bytes = decode_frame(data)
    assert _comparable(as_str) == _comparable(as_bytes)
    assert decode_frame(bytearray(data)) == as_bytes  # type: ignore[arg-type]


def test_huge_frames_decode(fixtures_dir: Path) -> None:
    levels = [{"price": f"0.{i:06d}", "size": str(i)} for i in range(50_000)]
    frame = msgspec.json.encode(
        {
            "event_type": "book",
            "market": "0xm",
            "asset_id": "1",
            "timestamp": "1",
            "bids": levels,
            "asks": levels,
        }
    )
    assert len(frame) > 2_000_000
    (book,) = decode_frame(frame)
    assert isinstance(book, Book)
    assert len(book.bids) == len(book.asks) == 50_000
    assert book.bids[-1] == Level(price="0.049999", size="49999")

    change = (fixtures_dir / "nautilus_trader/ws_market_price_change_msg.json").read_bytes()
    many = b"[" + b",".join([change] * MAX_ITEMS_PER_FRAME) + b"]"
    decoder = FrameDecoder("market")
    items = decoder.decode(many)
    assert len(items) == MAX_ITEMS_PER_FRAME
    assert all(isinstance(item, PriceChange) for item in items)
    assert decoder.stats == DecodeStats(frames=1, events=MAX_ITEMS_PER_FRAME)


def test_channels_are_separate() -> None:
    order = (
        b'{"event_type":"order","id":"1","market":"m","asset_id":"a","side":"BUY","price":"0.5",'
        b'"original_size":"1","size_matched":"0","type":"PLACEMENT","timestamp":"5"}'
    )
    (on_user,) = decode_frame(order, "user")
    assert isinstance(on_user, Order)
    assert on_user.timestamp == 5
    assert decode_frame(order, "market") == [Unknown("order", order)]


def test_decoder_repr_stats_and_channel() -> None:
    decoder = FrameDecoder("user")
    assert decoder.channel == "user"
    decoder.decode("PONG")
    decoder.decode("NO NEW ASSETS")
    decoder.decode("[1]")
    decoder.decode('{"event_type":"book"}')
    assert decoder.stats == DecodeStats(frames=4, unknown=1, malformed=1, notices=1, pongs=1)
    assert decoder.stats.items == 4
    assert repr(decoder) == (
        "FrameDecoder(channel='user', stats=DecodeStats(frames=4, events=0, unknown=1, "
        "malformed=1, notices=1, pongs=1))"
    )


def test_unknown_channel_rejected() -> None:
    with pytest.raises(ConfigError, match="channel"):
        FrameDecoder("rtds")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="channel"):
        decode_frame("PONG", "sports")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- properties

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
FIELD_NAMES = (
    "market",
    "asset_id",
    "timestamp",
    "bids",
    "asks",
    "hash",
    "price_changes",
    "price",
    "size",
    "side",
    "changes",
    "id",
    "status",
    "type",
    "original_size",
    "size_matched",
    "maker_orders",
    "old_tick_size",
    "new_tick_size",
    "best_bid",
    "best_ask",
)
plausible_strings = st.sampled_from(["0.5", "1700000000000", "", "BUY", "x", "0"]) | st.text(
    max_size=8
)
events = st.fixed_dictionaries(
    {"event_type": st.sampled_from(MARKET_TAGS + USER_TAGS) | st.text(max_size=12)},
    optional={name: plausible_strings | json_values for name in FIELD_NAMES},
)
frames_values = events | st.lists(events | json_values, max_size=6) | json_values


class _Tally:
    def __init__(self, channel: str) -> None:
        self.decoder = FrameDecoder(channel)  # type: ignore[arg-type]
        self.calls = 0
        self.items = 0

    def decode(self, data: str | bytes) -> list[WireItem]:
        items = self.decoder.decode(data)
        self.calls += 1
        self.items += len(items)
        assert isinstance(items, list)
        stats = self.decoder.stats
        assert stats.frames == self.calls
        assert stats.items == self.items
        for item in items:
            if isinstance(item, Malformed):
                assert len(item.excerpt) <= EXCERPT_CHARS
        return items


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(text=st.text())
def test_any_text_never_raises(text: str) -> None:
    for channel in ("market", "user"):
        tally = _Tally(channel)
        tally.decode(text)
        tally.decode(text.encode())
        tally.decode(" " + text)


@SETTINGS
@given(data=st.binary())
def test_any_bytes_never_raises(data: bytes) -> None:
    _Tally("market").decode(data)


@SETTINGS
@given(value=json_values)
def test_any_json_value_never_raises(value: Any) -> None:
    tally = _Tally("market")
    items = tally.decode(json.dumps(value))
    if isinstance(value, list):
        assert len(items) == len(value)  # one item per element, whatever the element
    else:
        assert len(items) == 1


@SETTINGS
@given(value=frames_values, channel=st.sampled_from(["market", "user"]))
def test_event_like_frames_never_raise(value: Any, channel: str) -> None:
    tally = _Tally(channel)
    text = json.dumps(value)
    items = tally.decode(text)
    if isinstance(value, list):
        assert len(items) == len(value)
        # Every object decodes the same inside the array as alone: neighbours never matter.
        for element, item in zip(value, items, strict=True):
            if isinstance(element, dict):
                (alone,) = _Tally(channel).decode(json.dumps(element))
                assert _comparable([alone]) == _comparable([item])
            else:
                assert isinstance(item, Malformed)
    assert _comparable(tally.decode(text.encode())) == _comparable(items)
    assert _comparable(tally.decode("\n" + text)) == _comparable(items)


@SETTINGS
@given(
    elements=st.lists(
        st.sampled_from(
            [
                b'{"event_type":"tick_size_change","market":"m","asset_id":"a",'
                b'"old_tick_size":"0.01","new_tick_size":"0.001","timestamp":"1"}',
                b'{"event_type":"best_bid_ask","market":"m","asset_id":"a","best_bid":"0.1",'
                b'"best_ask":"0.2","timestamp":2}',
                b'{"event_type":"settlement_preview"}',
                b'{"event_type":"book"}',
                b"7",
                LEGACY_CHANGES,
            ]
        ),
        max_size=8,
    )
)
def test_arrays_keep_every_good_element(elements: list[bytes]) -> None:
    items = _Tally("market").decode(b"[" + b",".join(elements) + b"]")
    assert len(items) == len(elements)
    for element, item in zip(elements, items, strict=True):
        (alone,) = decode_frame(element)
        assert _comparable([item]) == _comparable([alone])


VALID_MARKET_EVENTS: dict[type, dict[str, Any]] = {
    Book: {
        "event_type": "book",
        "market": "0xm",
        "asset_id": "1",
        "timestamp": "1700000000000",
        "hash": "h",
        "bids": [{"price": "0.4", "size": "10"}],
        "asks": [{"price": "0.6", "size": "5"}],
        "tick_size": "0.01",
    },
    PriceChange: {
        "event_type": "price_change",
        "market": "0xm",
        "timestamp": "1700000000001",
        "price_changes": [
            {"asset_id": "1", "price": "0.4", "size": "0", "side": "BUY", "hash": "h"},
            {"asset_id": "2", "price": "0.6", "size": "3", "side": "SELL", "best_bid": "0.5"},
        ],
    },
    LastTradePrice: {
        "event_type": "last_trade_price",
        "market": "0xm",
        "asset_id": "1",
        "price": "0.5",
        "size": "2",
        "side": "BUY",
        "timestamp": 1700000000002,
    },
    TickSizeChange: {
        "event_type": "tick_size_change",
        "market": "0xm",
        "asset_id": "1",
        "old_tick_size": "0.01",
        "new_tick_size": "0.001",
        "timestamp": "1700000000003",
    },
}


@SETTINGS
@given(
    kind=st.sampled_from(sorted(VALID_MARKET_EVENTS, key=lambda cls: cls.__name__)),
    drop=st.sets(st.sampled_from(FIELD_NAMES[:11])),
    replace=st.dictionaries(st.sampled_from(FIELD_NAMES[:11]), json_values, max_size=2),
)
def test_mutated_events_are_typed_or_malformed(
    kind: type, drop: set[str], replace: dict[str, Any]
) -> None:
    value = {k: v for k, v in VALID_MARKET_EVENTS[kind].items() if k not in drop}
    value.update(replace)
    tally = _Tally("market")
    (item,) = tally.decode(json.dumps(value))
    assert isinstance(item, kind | Malformed)
    if not drop and not replace:
        assert isinstance(item, kind)
    # Inside an array next to an intact event, the intact one always survives.
    intact = VALID_MARKET_EVENTS[TickSizeChange]
    first, second = tally.decode(json.dumps([value, intact]))
    assert _comparable([first]) == _comparable([item])
    assert isinstance(second, TickSizeChange)


@SETTINGS
@given(
    values=st.lists(
        st.one_of(frames_values, st.sampled_from(["PONG", "NO NEW ASSETS", "{broken", ""])),
        max_size=8,
    ),
    channel=st.sampled_from(["market", "user"]),
)
def test_decode_many_equals_decoding_frame_by_frame(values: list[Any], channel: str) -> None:
    # The reader hands a whole socket read to decode_many: one bad frame in the burst must not
    # change what any other frame decodes to, nor the counters.
    frames = [v.encode() if isinstance(v, str) else json.dumps(v).encode() for v in values]
    one_by_one = FrameDecoder(channel)  # type: ignore[arg-type]
    expected = [item for frame in frames for item in one_by_one.decode(frame)]
    batched = FrameDecoder(channel)  # type: ignore[arg-type]
    got = batched.decode_many(frames) if frames else []
    assert _comparable(got) == _comparable(expected)
    if frames:
        assert batched.stats == one_by_one.stats


def test_decode_many_flattens_array_frames_and_normalises_legacy(fixtures_dir: Path) -> None:
    frames = [
        _frame(fixtures_dir, "nautilus_trader/ws_market_mixed_known_unknown.json"),
        _frame(fixtures_dir, "nautilus_trader_py_ws/price_change.json"),
        b"PONG",
        _frame(fixtures_dir, "nautilus_trader/ws_market_last_trade_msg.json"),
    ]
    decoder = FrameDecoder("market")
    items = decoder.decode_many(frames)
    expected = [item for frame in frames for item in FrameDecoder("market").decode(frame)]
    assert _comparable(items) == _comparable(expected)
    assert any(isinstance(i, PriceChange) and i.price_changes for i in items)


# --------------------------------------------------------------------------- hostile input


def _bounded(items: list[WireItem]) -> None:
    assert len(items) <= MAX_ITEMS_PER_FRAME + 1
    for item in items:
        match item:
            case Malformed(reason=reason, excerpt=excerpt):
                assert len(reason) <= REASON_CHARS
                assert len(excerpt) <= EXCERPT_CHARS
            case Notice(text=text):
                assert len(text) <= EXCERPT_CHARS
            case Unknown(event_type=event_type, raw=raw):
                assert event_type is None or len(event_type) <= EXCERPT_CHARS
                assert len(raw) <= UNKNOWN_RAW_BYTES
            case _:
                pass


@pytest.mark.parametrize("mib", [4, 16])
def test_amplification_frame_is_cheap(mib: int) -> None:
    # Before the bound a 4 MiB `[0,0,...]` became 2.1 million Malformed items (1.6 s, +292 MiB);
    # 16 MiB took 8 s and +1.15 GiB. The limits are generous for a shared machine.
    frame = b"[" + b",".join([b"0"] * (mib << 19)) + b"]"
    assert len(frame) >= mib << 20
    decoder = FrameDecoder("market")
    started = time.perf_counter()
    items = decoder.decode(frame)
    elapsed = time.perf_counter() - started
    del items
    tracemalloc.start()
    try:
        items = decoder.decode(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.3
    assert peak < 16 << 20
    assert len(items) == MAX_ITEMS_PER_FRAME + 1
    assert all(isinstance(item, Malformed) for item in items)
    last = items[-1]
    assert isinstance(last, Malformed)
    assert f"more than {MAX_ITEMS_PER_FRAME} elements" in last.reason
    assert decoder.stats.malformed == 2 * len(items)
    _bounded(items)


@pytest.mark.parametrize(
    "element",
    [
        b"{}",
        b"[]",
        b'{"event_type":"settlement_preview","x":1}',
        b'{"event_type":"market_resolved","market":"","timestamp":0}',
        b'{"event_type":"price_change","market":"","timestamp":0}',
    ],
)
def test_items_per_frame_are_bounded_for_every_shape(element: bytes) -> None:
    frame = b"[" + b",".join([element] * (MAX_ITEMS_PER_FRAME * 3)) + b"]"
    decoder = FrameDecoder("market")
    items = decoder.decode(frame)
    assert len(items) == MAX_ITEMS_PER_FRAME + 1
    assert decoder.stats.items == len(items)
    assert items[:-1] == decode_frame(b"[" + b",".join([element] * MAX_ITEMS_PER_FRAME) + b"]")
    assert isinstance(items[-1], Malformed)
    _bounded(items)
    # Long frames are counted before the fast path; every route gives the same items.
    assert decoder.decode_plain(frame) == items
    assert decoder.decode(frame.decode()) == items
    assert decoder.decode_many([frame, b"PONG"]) == [*items, Pong()]


def test_long_array_of_valid_events_is_never_built() -> None:
    # msgspec checks max_length only after building the list: 16 MiB of tiny valid events
    # took 0.2 s and +44 MiB before long frames were counted first.
    event = b'{"event_type":"price_change","market":"","timestamp":0}'
    frame = b"[" + b",".join([event] * ((16 << 20) // (len(event) + 1))) + b"]"
    decoder = FrameDecoder("market")
    tracemalloc.start()
    try:
        items = decoder.decode(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(items) == MAX_ITEMS_PER_FRAME + 1
    assert peak < 8 << 20


def test_excerpts_of_huge_frames_are_bounded() -> None:
    big = "x" * (1 << 20)
    (unknown,) = decode_frame(json.dumps({"event_type": big, "data": big}))
    assert isinstance(unknown, Unknown)
    assert unknown.event_type == big[:EXCERPT_CHARS]
    assert len(unknown.raw) == UNKNOWN_RAW_BYTES
    assert unknown.truncated
    (notice,) = decode_frame("NOTICE " + big)
    assert notice == Notice(("NOTICE " + big)[:EXCERPT_CHARS])
    (bad,) = decode_frame(json.dumps({"event_type": "book", "market": big}))
    assert isinstance(bad, Malformed)
    _bounded([unknown, notice, bad])
    # Unknown events of a normal size keep their exact wire bytes.
    small = b'{"event_type":"settlement_preview", "x": [1, 2]}'
    assert decode_frame(b"[" + small + b"]") == [Unknown("settlement_preview", small)]


LAST_TRADE = (
    b'{"event_type":"last_trade_price","market":"0xm","asset_id":"1","price":"0.5",'
    b'"timestamp":"1700000000002"'
)


@pytest.mark.parametrize(
    "bad",
    [
        b'{"event_type":"tick_size_change","timestamp":1e400}',
        b'{"event_type":"book","market":"m","timestamp":99999999999999999999999999}',
        b"1e400",
        b'"\xff"',
    ],
)
def test_one_bad_element_costs_only_itself(bad: bytes) -> None:
    good = LAST_TRADE + b"}"
    items = decode_frame(b"[" + good + b"," + bad + b"," + good + b"]")
    assert len(items) == 3
    assert isinstance(items[0], LastTradePrice)
    assert isinstance(items[1], Malformed)
    assert items[2] == items[0]


@pytest.mark.parametrize(
    "extra", [b',"x":"\xff\xfe"', b',"\xff":1', b',"x":1e400', b',"x":"\xed\xa0\x80"']
)
def test_fast_and_plain_paths_agree_on_odd_unknown_keys(extra: bytes) -> None:
    event = LAST_TRADE + extra + b"}"
    (alone,) = decode_frame(event)
    assert isinstance(alone, LastTradePrice)
    # Next to a bad neighbour the same element takes the plain path and must decode the same.
    items = decode_frame(b"[" + event + b",7]")
    assert items[0] == alone
    assert isinstance(items[1], Malformed)


@pytest.mark.parametrize(
    "value",
    [
        {"event_type": "price_change", "market": "m", "timestamp": 1},
        {"event_type": "price_change", "market": "m", "timestamp": 1, "price_changes": []},
        {"event_type": "price_change", "market": "m", "timestamp": 1, "changes": []},
        # Legacy single level missing side and/or size.
        {"event_type": "price_change", "market": "m", "timestamp": 1, "asset_id": "a",
         "price": "0.5", "size": "1"},
        {"event_type": "price_change", "market": "m", "timestamp": 1, "asset_id": "a",
         "price": "0.5", "side": "BUY"},
        {"event_type": "price_change", "market": "m", "timestamp": 1, "asset_id": "a",
         "price": "0.5"},
    ],
)  # fmt: skip
def test_price_change_without_entries_is_malformed(value: dict[str, Any]) -> None:
    decoder = FrameDecoder("market")
    (item,) = decoder.decode(json.dumps(value))
    assert isinstance(item, Malformed)
    assert "price_change" in item.reason
    (in_array, good) = decoder.decode(json.dumps([value, json.loads(LAST_TRADE + b"}")]))
    assert in_array == item
    assert isinstance(good, LastTradePrice)
    assert decoder.stats == DecodeStats(frames=2, events=1, malformed=2)


@pytest.mark.parametrize(
    "data",
    ["\ud800", '{"event_type":"book","x":"\udfff"}', '["\ud800"]', "PONG\udc80", '{"\ud800":1}'],
)
def test_lone_surrogate_in_str_never_raises(data: str) -> None:
    items = decode_frame(data)
    assert items
    assert items == decode_frame(data.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "text", ["NaN", "-NaN", "nan", "Infinity", "-Infinity", "inf", "1e400", "-1e400", " NaN\n"]
)
def test_bare_non_finite_numbers_are_malformed(text: str) -> None:
    decoder = FrameDecoder("market")
    (item,) = decoder.decode(text)
    assert isinstance(item, Malformed)
    assert decoder.stats.malformed == 1
    assert decode_frame("NO NEW ASSETS") == [Notice("NO NEW ASSETS")]
    assert decode_frame("INFO") == [Notice("INFO")]


json_ish_text = st.lists(
    st.sampled_from(['{', '}', '[', ']', ',', ':', '"', '"event_type"', '"book"', '"price_change"',
                     '"market"', '"m"', '"timestamp"', '1', '1e400', 'NaN', 'null', ' ',
                     '"price_changes"', '\\', '\\ud800', '\ud800', '\xff', 'PONG'])
    | st.text(max_size=3),
    max_size=30,
).map("".join)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=200)
    | st.text(max_size=100)
    | json_ish_text
    | json_ish_text.map(lambda t: t.encode("utf-8", "surrogatepass"))
    | frames_values.map(lambda v: json.dumps(v).encode())
    | st.lists(frames_values, max_size=6).map(lambda v: json.dumps(v).encode()),
    channel=st.sampled_from(["market", "user"]),
)
def test_fast_path_equals_plain_path(data: str | bytes, channel: str) -> None:
    decoder = FrameDecoder(channel)  # type: ignore[arg-type]
    items = decoder.decode(data)
    assert items == decoder.decode_plain(data)
    assert decoder.stats.items == len(items)
    assert decoder.decode_many([data]) == items
    _bounded(items)


@pytest.mark.parametrize(
    "count",
    [1, 31, 32, 33, 64, MAX_ITEMS_PER_FRAME - 1, MAX_ITEMS_PER_FRAME, MAX_ITEMS_PER_FRAME + 1],
)
def test_plain_path_splits_arrays_of_every_length(count: int) -> None:
    # A bad first element sends the array to the plain path, which splits it in two stages.
    good = LAST_TRADE + b"}"
    items = decode_frame(b"[" + b",".join([b"7"] + [good] * (count - 1)) + b"]")
    kept = min(count, MAX_ITEMS_PER_FRAME)
    assert len(items) == kept + (count > MAX_ITEMS_PER_FRAME)
    assert isinstance(items[0], Malformed)
    assert all(isinstance(item, LastTradePrice) for item in items[1:kept])
