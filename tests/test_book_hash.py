"""Polymarket's book hash reproduced on real captures, through the typed decoder.

Each case decodes the capture with the codec (so the hash also proves the decoder keeps the exact
price/size strings and wire order) and recomputes the server's SHA-1 with the preimage scheme of
the capture's vintage.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyfeed.core.book_hash import (
    HashScheme,
    book_hash,
    book_hash_preimage,
    level_fields,
    level_json,
)
from polyfeed.core.codec import FrameDecoder
from polyfeed.core.messages import Book, Level, PriceChange


def _levels(levels: list[Level]) -> list[tuple[str, str]]:
    return [(level.price, level.size) for level in levels]


def _decode_book(data: bytes | str) -> Book:
    items = FrameDecoder("market").decode(data)
    assert len(items) == 1
    book = items[0]
    assert isinstance(book, Book)
    return book


def _with_event_type(path: Path, event_type: str) -> bytes:
    raw: dict[str, Any] = json.loads(path.read_bytes())
    raw["event_type"] = event_type
    return msgspec.json.encode(raw)


def _hash_of(book: Book, scheme: HashScheme, **extra: Any) -> str:
    return book_hash(
        market=book.market,
        asset_id=book.asset_id,
        timestamp=book.timestamp,
        bids=_levels(book.bids),
        asks=_levels(book.asks),
        scheme=scheme,
        **extra,
    )


def test_ws_book_snapshot_captured_v2026(fixtures_dir: Path) -> None:
    path = fixtures_dir / "nautilus_trader/ws_book_snapshot_captured.json"
    book = _decode_book(path.read_bytes())
    assert book.hash == "ed47eb91f3c7985fac1cb18cb7c19535eddd3c0a"
    # The WS frame omits min_order_size/neg_risk, but the server hashes its REST summary, which
    # has them; "5" and false are this market's values.
    assert book.min_order_size is None
    assert book.neg_risk is None
    computed = _hash_of(
        book,
        HashScheme.V2026,
        min_order_size="5",
        tick_size=book.tick_size,
        neg_risk=False,
        last_trade_price=book.last_trade_price,
    )
    assert computed == book.hash


def test_clob_book_response_empty_ask_v2026(fixtures_dir: Path) -> None:
    path = fixtures_dir / "nautilus_trader/clob_book_response_empty_ask.json"
    book = _decode_book(_with_event_type(path, "book"))
    assert book.asks == []
    assert book.neg_risk is True
    assert book.last_trade_price == ""
    computed = _hash_of(
        book,
        HashScheme.V2026,
        min_order_size=book.min_order_size,
        tick_size=book.tick_size,
        neg_risk=book.neg_risk,
        last_trade_price=book.last_trade_price,
    )
    assert computed == book.hash == "d7df883ae546b09533a4f485bfae0810da1af04e"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("polypy/ws_msg_book_yes.json", "c298a90870afa056768fc82bf5217c9aa8665284"),
        ("polypy/ws_msg_book_no.json", "e0ceb272d9675fb2dd609f466689aabbd5482c40"),
    ],
)
def test_polypy_ws_books_v2024(fixtures_dir: Path, name: str, expected: str) -> None:
    book = _decode_book(_with_event_type(fixtures_dir / name, "book"))
    assert book.hash == expected
    assert _hash_of(book, HashScheme.V2024) == expected
    # The newer preimages must not match by accident: the scheme is what is being proven.
    assert _hash_of(book, HashScheme.V2025) != expected


class _DictBook:
    """Reference book for the test: price -> size dicts, sorted as the server sends them."""

    def __init__(self, book: Book) -> None:
        self.bids = {level.price: level.size for level in book.bids}
        self.asks = {level.price: level.size for level in book.asks}

    def apply(self, side: str, price: str, size: str) -> None:
        levels = self.bids if side == "BUY" else self.asks
        if Decimal(size) == 0:
            levels.pop(price, None)
        else:
            levels[price] = size

    def wire_bids(self) -> list[tuple[str, str]]:
        return sorted(self.bids.items(), key=lambda kv: Decimal(kv[0]))

    def wire_asks(self) -> list[tuple[str, str]]:
        return sorted(self.asks.items(), key=lambda kv: Decimal(kv[0]), reverse=True)


def _messages_hash_lines(fixtures_dir: Path) -> list[bytes]:
    text = (fixtures_dir / "polypy/messages_hash.txt").read_bytes()
    return [line for line in text.splitlines() if line.startswith(b"{")]


# The Oct 2025 market's REST summary: these are the values in the file's REST lines.
_V2025_EXTRA: dict[str, Any] = {"min_order_size": "5", "tick_size": "0.01", "neg_risk": False}


def test_messages_hash_sequence_v2025(fixtures_dir: Path) -> None:
    lines = _messages_hash_lines(fixtures_dir)
    assert len(lines) == 5  # book, (price_change, REST book) x 2
    book = _decode_book(lines[0])
    assert _hash_of(book, HashScheme.V2025, **_V2025_EXTRA) == book.hash
    # The timestamp is hashed as its decimal string whether the wire sent a string or a number.
    assert _hash_of(book, HashScheme.V2025, **_V2025_EXTRA) == book_hash(
        market=book.market,
        asset_id=book.asset_id,
        timestamp=str(book.timestamp),
        bids=_levels(book.bids),
        asks=_levels(book.asks),
        scheme=HashScheme.V2025,
        **_V2025_EXTRA,
    )

    reference = _DictBook(book)
    for change_line, rest_line in ((lines[1], lines[2]), (lines[3], lines[4])):
        (change,) = FrameDecoder("market").decode(change_line)
        assert isinstance(change, PriceChange)
        own = [entry for entry in change.price_changes if entry.asset_id == book.asset_id]
        foreign = [entry for entry in change.price_changes if entry.asset_id != book.asset_id]
        assert len(own) == 1
        assert len(foreign) == 1
        for entry in own:
            reference.apply(entry.side, entry.price, entry.size)
            computed = book_hash(
                market=book.market,
                asset_id=book.asset_id,
                timestamp=change.timestamp,
                bids=reference.wire_bids(),
                asks=reference.wire_asks(),
                scheme=HashScheme.V2025,
                **_V2025_EXTRA,
            )
            assert computed == entry.hash

        rest: dict[str, Any] = json.loads(rest_line)
        rest["event_type"] = "book"
        rest_book = _decode_book(msgspec.json.encode(rest))
        assert rest_book.timestamp == change.timestamp
        # The locally maintained book equals the server's REST book level for level.
        assert _levels(rest_book.bids) == reference.wire_bids()
        assert _levels(rest_book.asks) == reference.wire_asks()
        rest_extra = {
            "min_order_size": rest_book.min_order_size,
            "tick_size": rest_book.tick_size,
            "neg_risk": rest_book.neg_risk,
        }
        assert rest_extra == _V2025_EXTRA
        assert _hash_of(rest_book, HashScheme.V2025, **rest_extra) == rest_book.hash
        assert rest_book.hash == own[0].hash


def test_changed_size_changes_the_hash(fixtures_dir: Path) -> None:
    book = _decode_book(_with_event_type(fixtures_dir / "polypy/ws_msg_book_yes.json", "book"))
    bids = _levels(book.bids)
    price, size = bids[0]
    tampered = [(price, str(Decimal(size) + 1)), *bids[1:]]
    assert tampered != bids
    original = _hash_of(book, HashScheme.V2024)
    changed = book_hash(
        market=book.market,
        asset_id=book.asset_id,
        timestamp=book.timestamp,
        bids=tampered,
        asks=_levels(book.asks),
        scheme=HashScheme.V2024,
    )
    assert changed != original
    # Same number written differently is a different preimage too: strings are hashed as sent.
    respelled = [(price, size + ".0" if "." not in size else size + "0"), *bids[1:]]
    assert (
        book_hash(
            market=book.market,
            asset_id=book.asset_id,
            timestamp=book.timestamp,
            bids=respelled,
            asks=_levels(book.asks),
            scheme=HashScheme.V2024,
        )
        != original
    )


def test_preimage_shape_per_scheme() -> None:
    common: dict[str, Any] = {
        "market": "0xm",
        "asset_id": "1",
        "timestamp": 17,
        "bids": [("0.1", "5")],
        "asks": [],
        "min_order_size": "5",
        "tick_size": "0.01",
        "neg_risk": False,
        "last_trade_price": "0.5",
    }
    v2024 = book_hash_preimage(scheme=HashScheme.V2024, **common)
    v2025 = book_hash_preimage(scheme=HashScheme.V2025, **common)
    v2026 = book_hash_preimage(scheme=HashScheme.V2026, **common)
    assert v2024 == (
        '{"market":"0xm","asset_id":"1","timestamp":"17","hash":"",'
        '"bids":[{"price":"0.1","size":"5"}],"asks":[]}'
    )
    assert v2025 == v2024[:-1] + ',"min_order_size":"5","tick_size":"0.01","neg_risk":false}'
    assert v2026 == v2025[:-1] + ',"last_trade_price":"0.5"}'
    assert list(json.loads(v2026)) == [
        "market",
        "asset_id",
        "timestamp",
        "hash",
        "bids",
        "asks",
        "min_order_size",
        "tick_size",
        "neg_risk",
        "last_trade_price",
    ]


DECIMAL_TEXT = st.from_regex(r"[0-9]{0,8}(\.[0-9]{0,6})?", fullmatch=True)


@given(price=DECIMAL_TEXT, size=DECIMAL_TEXT)
def test_level_json_is_the_preimage_level_and_level_fields_reads_it_back(
    price: str, size: str
) -> None:
    text = level_json(price, size)
    assert json.loads(text) == {"price": price, "size": size}
    assert text == json.dumps({"price": price, "size": size}, separators=(",", ":"))
    assert level_fields(text) == (price, size)
