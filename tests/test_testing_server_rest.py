"""The fake server's CLOB REST and Gamma routes (testing/server/rest.py)."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from polyfeed.core.book_hash import book_hash
from polyfeed.credentials import Credentials
from polyfeed.testing import ApiCredentials, FakePolymarket
from polyfeed.testing.server.rest import RestApi
from ws_client import FAST, level_pairs, receive


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


async def test_gamma_selects_markets_by_slug_and_groups_events(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=7, **FAST) as fake:
        wanted = [fake.markets[2].slug, fake.markets[5].slug]
        async with session.get(
            f"{fake.gamma_url}/markets", params=[("slug", s) for s in wanted]
        ) as response:
            assert [m["slug"] for m in await response.json()] == wanted
        async with session.get(f"{fake.gamma_url}/events") as response:
            events = await response.json()
        assert [e["slug"] for e in events] == [f"simulated-event-{n}" for n in range(3)]
        assert [len(e["markets"]) for e in events] == [3, 3, 1]
        assert events[1]["markets"][0]["conditionId"] == fake.markets[3].condition_id
        async with session.get(
            f"{fake.gamma_url}/events", params={"slug": "simulated-event-2"}
        ) as response:
            [last] = await response.json()
        assert json.loads(last["markets"][0]["clobTokenIds"]) == list(fake.markets[6].tokens)


async def get_api_keys(
    session: aiohttp.ClientSession, fake: FakePolymarket, headers: dict[str, str]
) -> tuple[int, Any]:
    async with session.get(f"{fake.rest_url}/auth/api-keys", headers=headers) as response:
        return response.status, await response.json()


async def test_api_keys_confirms_credentials_signed_with_the_accepted_secret(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    client = fake.credentials.client()
    headers = client.l2_headers(int(fake.wall()), "GET", "/auth/api-keys")
    assert await get_api_keys(session, fake, headers) == (200, {"apiKeys": [client.api_key]})
    [check] = fake.auth_checks
    assert (check.method, check.path, check.accepted, check.reason) == (
        "GET",
        "/auth/api-keys",
        True,
        "",
    )


async def test_api_keys_rejects_other_or_missing_credentials_with_401(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    accepted = fake.credentials
    stranger = ApiCredentials.generate(random.Random(99)).client()
    forged = Credentials(
        api_key=accepted.api_key,
        secret=stranger.secret,
        passphrase=accepted.passphrase,
        address=accepted.address,
    )
    attempts = {
        "unknown api key": stranger.l2_headers(1, "GET", "/auth/api-keys"),
        "bad signature": forged.l2_headers(1, "GET", "/auth/api-keys"),
        "missing header POLY_ADDRESS": {},
    }
    for reason, headers in attempts.items():
        status, body = await get_api_keys(session, fake, headers)
        assert (status, body) == (401, {"error": "Unauthorized/Invalid api key"})
        assert fake.auth_checks[-1].reason == reason
        assert not fake.auth_checks[-1].accepted
    for secret in (accepted.secret, accepted.passphrase, stranger.secret):
        assert all(secret not in repr(check) for check in fake.auth_checks)


async def test_revoked_credentials_are_refused_on_the_route_and_the_user_socket(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    old = fake.credentials
    fake.credentials = ApiCredentials.generate(random.Random(5))
    headers = old.client().l2_headers(1, "GET", "/auth/api-keys")
    assert (await get_api_keys(session, fake, headers))[0] == 401
    ws = await session.ws_connect(fake.user_url)
    await ws.send_str(json.dumps({"type": "user", "auth": old.auth()}))
    message = await receive(ws)
    assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert ws.close_code == 1006  # reset without a close frame, as Polymarket does


async def test_rest_api_repr_names_the_server(fake: FakePolymarket) -> None:
    assert repr(RestApi(fake)) == f"RestApi(url={fake.rest_url}, markets=2)"
