"""The fake server's channel protocol (testing/server/channel.py): subscription, operations,
PING, snapshots and the user channel, over real loopback sockets with a bare aiohttp client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import pytest

from polyfeed.core.messages import Book, Order, Trade
from polyfeed.testing import FakePolymarket, LoggedEvent
from ws_client import (
    FAST,
    assert_book_hash,
    assert_quiet,
    level_pairs,
    receive,
    receive_json,
    receive_text,
    subscribe,
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def fake() -> AsyncIterator[FakePolymarket]:
    async with FakePolymarket(markets=2, seed=3, **FAST) as server:
        yield server


async def test_initial_subscription_sends_one_array_of_books_matching_the_server(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    ws = await subscribe(session, fake, [*fake.asset_ids, "123456789"])
    books = await receive_json(ws)
    assert isinstance(books, list)
    assert [b["asset_id"] for b in books] == list(fake.asset_ids)  # the unknown id is ignored
    for book in books:
        view = fake.book(book["asset_id"])
        assert book["event_type"] == "book"
        assert tuple(level_pairs(book["bids"])) == view.bids
        assert tuple(level_pairs(book["asks"])) == view.asks
        bids = [Decimal(p) for p, _ in level_pairs(book["bids"])]
        asks = [Decimal(p) for p, _ in level_pairs(book["asks"])]
        assert bids == sorted(bids) and asks == sorted(asks, reverse=True)  # live wire order
        assert bids[-1] < asks[-1]
        assert_book_hash(book, view)
        msgspec.json.decode(json.dumps(book), type=Book, strict=False)
    connection = fake.connections[0]
    assert connection.subscribed == set(fake.asset_ids)
    assert connection.unknown_assets == {"123456789"}
    assert [e.seq for e in fake.log.sent_to(connection.id)] == [
        e.seq for e in fake.log.events if e.origin == "snapshot"
    ]
    await ws.close()


async def test_single_snapshot_frames_and_initial_dump_false(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=1, snapshot_frames="single", **FAST) as fake:
        ws = await subscribe(session, fake)
        first, second = await receive_json(ws), await receive_json(ws)
        assert (first["asset_id"], second["asset_id"]) == fake.asset_ids
        quiet = await subscribe(session, fake, initial_dump=False)
        await quiet.send_str("PING")
        assert await receive_text(quiet) == "PONG"  # nothing came before the PONG
        await ws.close()
        await quiet.close()


async def test_ping_is_answered_with_pong(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    ws = await subscribe(session, fake)
    await receive_json(ws)
    for _ in range(3):
        await ws.send_str("PING")
        assert await receive_text(ws) == "PONG"
    assert fake.connections[0].pings == 3
    assert fake.connections[0].pongs == 3
    await ws.close()


async def test_ping_before_subscription_closes_1008(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    ws = await session.ws_connect(fake.market_url)
    await ws.send_str("PING")
    message = await receive(ws)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert (message.data, message.extra) == (1008, "invalid subscription payload")
    await ws.close()


async def test_invalid_first_frame_closes_1008(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    ws = await session.ws_connect(fake.market_url)
    await ws.send_str(json.dumps({"type": "user", "assets_ids": []}))
    message = await receive(ws)
    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1008)
    await ws.close()


async def test_second_initial_frame_and_garbage_get_invalid_operation(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    ws = await subscribe(session, fake, fake.asset_ids[:1])
    await receive_json(ws)
    await ws.send_str(json.dumps({"type": "market", "assets_ids": [fake.asset_ids[1]]}))
    assert await receive_text(ws) == "INVALID OPERATION"
    for junk in ("not json", "[1, 2]", json.dumps({"operation": "explode", "assets_ids": []})):
        await ws.send_str(junk)
        assert await receive_text(ws) == "INVALID OPERATION"
    assert fake.connections[0].subscribed == {fake.asset_ids[0]}
    assert not ws.closed
    await ws.close()


async def test_subscribe_and_unsubscribe_operations(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    yes, no = fake.markets[0].tokens
    ws = await subscribe(session, fake, [yes])
    assert [b["asset_id"] for b in await receive_json(ws)] == [yes]
    # Already subscribed: ignored, no fresh snapshot (the PONG comes first).
    await ws.send_str(json.dumps({"operation": "subscribe", "assets_ids": [yes]}))
    await ws.send_str("PING")
    assert await receive_text(ws) == "PONG"
    # A new asset gets its snapshot.
    await ws.send_str(json.dumps({"operation": "subscribe", "assets_ids": [yes, no]}))
    assert [b["asset_id"] for b in await receive_json(ws)] == [no]
    assert fake.connections[0].subscribed == {yes, no}
    # Unsubscribed from the whole market: its price changes no longer come.
    await ws.send_str(json.dumps({"operation": "unsubscribe", "assets_ids": [yes, no]}))
    await ws.send_str("PING")
    assert await receive_text(ws) == "PONG"
    fake.step(2, market=fake.markets[0].condition_id)
    await assert_quiet(ws, 0.1)
    await ws.close()


async def test_custom_features_best_bid_ask_and_no_new_assets(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=1, no_new_assets_interval=0.05, **FAST) as fake:
        plain = await subscribe(session, fake)
        custom = await subscribe(session, fake, custom_feature_enabled=True)
        discovery = await subscribe(session, fake, [], custom_feature_enabled=True)
        await receive_json(plain), await receive_json(custom)
        events: list[LoggedEvent] = []
        while not any(e.event_type == "best_bid_ask" for e in events):
            events += fake.step()
        received_custom = [await receive_json(custom) for _ in events]
        received_plain = [
            await receive_json(plain) for e in events if e.event_type != "best_bid_ask"
        ]
        assert [m["event_type"] for m in received_custom] == [e.event_type for e in events]
        assert "best_bid_ask" not in {m["event_type"] for m in received_plain}
        best = next(m for m in received_custom if m["event_type"] == "best_bid_ask")
        view = fake.book(best["asset_id"])
        assert (best["best_bid"], best["best_ask"]) == (view.best_bid, view.best_ask)
        assert Decimal(best["spread"]) == Decimal(view.best_ask) - Decimal(view.best_bid)
        assert await receive_text(discovery) == "NO NEW ASSETS"
        for ws in (plain, custom, discovery):
            await ws.close()


async def test_user_channel_auth_and_market_filter(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    first, second = (m.condition_id for m in fake.markets)
    ws = await session.ws_connect(fake.user_url)
    await ws.send_str(
        json.dumps({"type": "user", "auth": fake.credentials.auth(), "markets": [first]})
    )
    connection = await fake.wait_for_connection(path="user")
    fake.step_user(2, market=second)
    events = fake.step_user(6, market=first)
    received = [await receive_json(ws) for _ in events]
    assert [m["market"] for m in received] == [first] * 6
    kinds = [(m["event_type"], m.get("status")) for m in received]
    assert kinds[:3] == [("order", "LIVE"), ("order", "LIVE"), ("trade", "MATCHED")]
    assert kinds[-1] == ("order", "CANCELED")
    for message in received:
        struct = Order if message["event_type"] == "order" else Trade
        msgspec.json.decode(json.dumps(message), type=struct, strict=False)
    await ws.send_str(json.dumps({"operation": "subscribe", "markets": [second]}))
    await ws.send_str("PING")
    assert await receive_text(ws) == "PONG"
    assert connection.subscribed == {first, second}
    fake.step_user(1, market=second)
    assert (await receive_json(ws))["market"] == second
    await ws.close()


async def test_user_channel_without_markets_gets_every_market(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    ws = await session.ws_connect(fake.user_url)
    await ws.send_str(json.dumps({"type": "user", "auth": fake.credentials.auth()}))
    await fake.wait_for_connection(path="user")
    fake.step_user(2)  # round-robin over both markets
    assert {(await receive_json(ws))["market"] for _ in range(2)} == {
        m.condition_id for m in fake.markets
    }
    await ws.close()


@pytest.mark.parametrize(
    "auth",
    [None, {"apiKey": "nope", "secret": "nope", "passphrase": "nope"}],
    ids=["missing", "wrong"],
)
async def test_user_channel_bad_credentials_drop_tcp_without_close_frame(
    fake: FakePolymarket, session: aiohttp.ClientSession, auth: dict[str, str] | None
) -> None:
    ws = await session.ws_connect(fake.user_url)
    frame: dict[str, Any] = {"type": "user", "markets": []}
    if auth is not None:
        frame["auth"] = auth
    await ws.send_str(json.dumps(frame))
    message = await receive(ws)
    assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert ws.close_code == 1006
    connection = fake.connections[0]
    await connection.wait_closed()
    assert connection.close is not None
    assert (connection.close.initiator, connection.close.code) == ("server", None)
    assert fake.credentials.secret not in repr(fake.credentials)
    assert fake.credentials.passphrase not in repr(fake.credentials)


async def test_channel_repr_names_its_connection(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    ws = await subscribe(session, fake)
    await receive_json(ws)
    connection = fake.connections[0]
    assert repr(connection._channel) == f"ChannelFrames(connection={connection.id}, path=market)"
    await ws.close()
