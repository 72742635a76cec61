"""CLOB REST and Gamma discovery against FakePolymarket and the real captures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyfeed.aio.rest import RestClient, decimal_text, parse_gamma_markets
from polyfeed.core.book_hash import book_hash
from polyfeed.errors import RestError
from polyfeed.testing import FakePolymarket


async def test_book_matches_the_server_and_its_hash_reproduces() -> None:
    async with FakePolymarket(markets=2, seed=1) as fake:
        fake.step(10)
        client = RestClient(fake.rest_url)
        try:
            asset = fake.asset_ids[1]
            book = await client.book(asset)
        finally:
            await client.aclose()
    server = fake.book(asset)
    assert [(lv.price, lv.size) for lv in book.bids] == [tuple(lv) for lv in server.bids]
    assert book.min_order_size == "5"
    assert book.neg_risk is False
    assert book.hash == book_hash(
        market=book.market,
        asset_id=book.asset_id,
        timestamp=book.timestamp,
        bids=[(lv.price, lv.size) for lv in book.bids],
        asks=[(lv.price, lv.size) for lv in book.asks],
        min_order_size=book.min_order_size,
        tick_size=book.tick_size,
        neg_risk=book.neg_risk,
        last_trade_price=book.last_trade_price,
    )


async def test_books_market_and_gamma() -> None:
    async with FakePolymarket(markets=3, seed=2) as fake:
        client = RestClient(fake.rest_url, fake.gamma_url)
        try:
            books = await client.books(list(fake.asset_ids[:3]))
            market = await client.market(fake.markets[0].condition_id)
            listed = await client.gamma_markets(limit=10)
        finally:
            await client.aclose()
    assert [b.asset_id for b in books] == list(fake.asset_ids[:3])
    assert market.condition_id == fake.markets[0].condition_id
    assert market.minimum_order_size == "5"
    assert market.minimum_tick_size == "0.01"
    assert [t.token_id for t in market.tokens] == list(fake.asset_ids[:2])
    assert [m.condition_id for m in listed] == [m.condition_id for m in fake.markets]
    assert listed[0].clob_token_ids == list(fake.asset_ids[:2])
    assert listed[0].order_min_size == "5"


async def test_http_errors_are_rest_errors_with_status_and_transience() -> None:
    async with FakePolymarket(markets=1, seed=3) as fake:
        client = RestClient(fake.rest_url)
        try:
            with pytest.raises(RestError) as info:
                await client.market("0xnot-a-market")
        finally:
            await client.aclose()
    assert info.value.status == 404
    assert info.value.transient is False
    assert client.failures == 1


async def test_network_errors_are_transient_rest_errors() -> None:
    client = RestClient("http://127.0.0.1:9")
    try:
        with pytest.raises(RestError) as info:
            await client.book("x")
    finally:
        await client.aclose()
    assert info.value.status is None
    assert info.value.transient is True


def test_gamma_capture_decodes_json_encoded_lists(fixtures_dir: Path) -> None:
    raw = (fixtures_dir / "nautilus_trader" / "gamma_market.json").read_bytes()
    [market] = parse_gamma_markets(b"[" + raw + b"]")
    original = json.loads(raw)
    assert market.condition_id == original["conditionId"]
    assert market.clob_token_ids == json.loads(original["clobTokenIds"])
    assert market.outcomes == ["Up", "Down"]
    assert market.order_price_min_tick_size == "0.01"
    assert market.order_min_size == "5"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5, "5"),
        (5.0, "5"),
        (0.001, "0.001"),
        (0.01, "0.01"),
        (100, "100"),
        ("15", "15"),
        (None, None),
    ],
)
def test_decimal_text_is_the_shortest_exact_form(value: object, text: str | None) -> None:
    assert decimal_text(value) == text  # type: ignore[arg-type]
