"""CLOB REST and Gamma discovery against FakePolymarket and the real captures."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from polyfeed.aio.rest import RestClient, credentials_check, decimal_text, parse_gamma_markets
from polyfeed.core.book_hash import book_hash
from polyfeed.credentials import Credentials, l2_signature
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


# ---------------------------------------------------------------- credential check

SIGNING = Credentials(
    api_key="key-0123456789abcdef",
    secret=base64.urlsafe_b64encode(b"thirty-two bytes of hmac secret!").decode(),
    passphrase="pass-phrase-that-must-not-leak",
    address="0x0000000000000000000000000000000000000001",
)


@contextlib.asynccontextmanager
async def api_keys_app(status: int | None = None) -> AsyncIterator[tuple[str, list[str]]]:
    """A tiny CLOB on 127.0.0.1 answering ``/auth/api-keys`` as Polymarket does.

    Valid L2 headers for SIGNING get 200 ``{"apiKeys": [key]}``, others 401; ``status`` forces
    an answer. Yields the base URL and the list of paths requested.
    """
    seen: list[str] = []

    async def api_keys(request: web.Request) -> web.Response:
        seen.append(request.path)
        if status is not None:
            return web.json_response({"error": "forced"}, status=status)
        headers = request.headers
        expected = l2_signature(
            SIGNING.secret, int(headers.get("POLY_TIMESTAMP", "0")), "GET", request.path
        )
        if (
            headers.get("POLY_API_KEY") == SIGNING.api_key
            and headers.get("POLY_PASSPHRASE") == SIGNING.passphrase
            and headers.get("POLY_ADDRESS") == SIGNING.address
            and headers.get("POLY_SIGNATURE") == expected
        ):
            return web.json_response({"apiKeys": [SIGNING.api_key]})
        return web.json_response({"error": "Unauthorized/Invalid api key"}, status=401)

    app = web.Application()
    app.router.add_get("/auth/api-keys", api_keys)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@pytest.mark.timeout(10)
async def test_check_credentials_true_for_valid_false_for_rejected() -> None:
    wrong = dataclasses.replace(SIGNING, passphrase="another-passphrase")
    async with api_keys_app() as (url, seen):
        client = RestClient(url)
        try:
            assert await client.check_credentials(SIGNING) is True
            assert await client.check_credentials(wrong) is False
        finally:
            await client.aclose()
    assert seen == ["/auth/api-keys", "/auth/api-keys"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("status", "verdict"), [(401, False), (403, False), (429, None), (500, None), (503, None)]
)
async def test_check_credentials_statuses(status: int, verdict: bool | None) -> None:
    async with api_keys_app(status) as (url, _):
        client = RestClient(url)
        try:
            assert await client.check_credentials(SIGNING) is verdict
        finally:
            await client.aclose()
    assert client.failures == 1


@pytest.mark.timeout(10)
async def test_check_credentials_is_inconclusive_on_network_errors_and_without_a_signer() -> None:
    client = RestClient("http://127.0.0.1:9")
    try:
        assert await client.check_credentials(SIGNING) is None
        unsigned = dataclasses.replace(SIGNING, address=None)
        assert await client.check_credentials(unsigned) is None
    finally:
        await client.aclose()
    assert client.requests == 1, "credentials that cannot sign make no request"


@pytest.mark.timeout(10)
async def test_credentials_check_factory_makes_one_request_per_call() -> None:
    assert credentials_check("http://127.0.0.1:9", None) is None
    assert (
        credentials_check("http://127.0.0.1:9", dataclasses.replace(SIGNING, address=None)) is None
    )
    async with api_keys_app() as (url, seen):
        check = credentials_check(url, SIGNING)
        assert check is not None
        assert await check() is True
        assert await check() is True
    assert len(seen) == 2


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


async def test_post_heartbeat_returns_any_status_and_raises_on_network_errors() -> None:
    async with FakePolymarket() as fake:
        client = RestClient(fake.rest_url)
        signer = fake.credentials.client()
        try:
            status, body = await client.post_heartbeat(signer, "", timestamp=1)
            assert (status, json.loads(body)) == (200, {"heartbeat_id": "hb-1"})
            status, body = await client.post_heartbeat(signer, "nope", timestamp=1)
            assert status == 400 and json.loads(body)["heartbeat_id"] == "hb-1"
        finally:
            await client.aclose()
    client = RestClient(fake.rest_url, request_timeout=1.0)
    try:
        with pytest.raises(RestError) as info:
            await client.post_heartbeat(signer, "", timestamp=1)
        assert info.value.status is None and info.value.transient
    finally:
        await client.aclose()


async def test_gamma_markets_by_slug_and_condition_id_and_events() -> None:
    async with FakePolymarket(markets=6, seed=4) as fake:
        client = RestClient(fake.rest_url, fake.gamma_url)
        try:
            m = fake.markets
            by_slug = await client.gamma_markets(slugs=[m[1].slug, m[4].slug])
            assert [x.condition_id for x in by_slug] == [m[1].condition_id, m[4].condition_id]
            by_id = await client.gamma_markets(condition_ids=[m[5].condition_id])
            assert [x.clob_token_ids for x in by_id] == [list(m[5].tokens)]
            [event] = await client.gamma_events(["simulated-event-1"])
            assert event.slug == "simulated-event-1"
            assert [x.condition_id for x in event.markets] == [c.condition_id for c in m[3:6]]
        finally:
            await client.aclose()
