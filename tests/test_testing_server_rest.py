"""The fake server's CLOB REST and Gamma routes (testing/server/rest.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from polyfeed.core.book_hash import book_hash
from polyfeed.testing import FakePolymarket
from ws_client import FAST, level_pairs


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def fake() -> AsyncIterator[FakePolymarket]:
    async with FakePolymarket(markets=2, seed=3, **FAST) as server:
        yield server


async def test_rest_book_matches_the_server_book_and_its_hash(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    fake.step(5)
    asset = fake.asset_ids[1]
    async with session.get(f"{fake.rest_url}/book", params={"token_id": asset}) as response:
        assert response.status == 200
        body = await response.json()
    assert list(body) == [
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
    view = fake.book(asset)
    assert (tuple(level_pairs(body["bids"])), tuple(level_pairs(body["asks"]))) == (
        view.bids,
        view.asks,
    )
    expected = book_hash(
        market=body["market"],
        asset_id=body["asset_id"],
        timestamp=body["timestamp"],
        bids=level_pairs(body["bids"]),
        asks=level_pairs(body["asks"]),
        min_order_size=body["min_order_size"],
        tick_size=body["tick_size"],
        neg_risk=body["neg_risk"],
        last_trade_price=body["last_trade_price"],
    )
    assert body["hash"] == expected == view.hash
    assert (body["min_order_size"], body["tick_size"], body["neg_risk"]) == ("5", "0.01", False)


async def test_rest_book_errors(fake: FakePolymarket, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{fake.rest_url}/book") as response:
        assert response.status == 400
    async with session.get(f"{fake.rest_url}/book", params={"token_id": "42"}) as response:
        assert response.status == 404
        assert "error" in await response.json()
    async with session.post(f"{fake.rest_url}/books", data="{") as response:
        assert response.status == 400


async def test_rest_books_batch(fake: FakePolymarket, session: aiohttp.ClientSession) -> None:
    body = [{"token_id": a} for a in fake.asset_ids] + [{"token_id": "42"}]
    async with session.post(f"{fake.rest_url}/books", json=body) as response:
        books = await response.json()
    assert [b["asset_id"] for b in books] == list(fake.asset_ids)
    assert [b["hash"] for b in books] == [fake.book(a).hash for a in fake.asset_ids]


async def test_rest_clob_markets(fake: FakePolymarket, session: aiohttp.ClientSession) -> None:
    market = fake.markets[1]
    async with session.get(f"{fake.rest_url}/markets/{market.condition_id}") as response:
        body = await response.json()
    assert body["condition_id"] == market.condition_id
    assert [(t["token_id"], t["outcome"]) for t in body["tokens"]] == [
        (market.yes_token, "Yes"),
        (market.no_token, "No"),
    ]
    assert (body["minimum_order_size"], body["minimum_tick_size"], body["neg_risk"]) == (
        5,
        0.01,
        False,
    )
    async with session.get(f"{fake.rest_url}/markets/0xdead") as response:
        assert response.status == 404
    async with session.get(f"{fake.rest_url}/markets") as response:
        page = await response.json()
    assert [m["condition_id"] for m in page["data"]] == [m.condition_id for m in fake.markets]
    assert page["next_cursor"] == "LTE="


async def test_gamma_markets_encode_lists_as_json_strings(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=5, **FAST) as fake:
        async with session.get(
            f"{fake.gamma_url}/markets", params={"limit": "2", "offset": "1"}
        ) as response:
            page = await response.json()
        assert [m["conditionId"] for m in page] == [m.condition_id for m in fake.markets[1:3]]
        first = page[0]
        assert isinstance(first["clobTokenIds"], str)
        assert json.loads(first["clobTokenIds"]) == list(fake.markets[1].tokens)
        assert json.loads(first["outcomes"]) == ["Yes", "No"]
        assert (first["orderPriceMinTickSize"], first["orderMinSize"], first["negRisk"]) == (
            0.01,
            5,
            False,
        )
        assert (first["active"], first["closed"]) == (True, False)
        async with session.get(f"{fake.gamma_url}/markets", params={"closed": "true"}) as response:
            assert await response.json() == []
