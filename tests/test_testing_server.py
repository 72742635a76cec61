"""FakePolymarket over real loopback sockets, driven by a bare aiohttp client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import pytest

from polyfeed.core.book_hash import book_hash
from polyfeed.core.messages import Book, Order, PriceChange, Trade
from polyfeed.errors import ConfigError
from polyfeed.testing import BookView, FakePolymarket, LoggedEvent, pytest_plugin
from polyfeed.testing.pytest_plugin import fake_polymarket  # noqa: F401
from ws_client import assert_quiet, receive, receive_json, receive_text

FAST: dict[str, Any] = {"ping_grace": 2.0, "subscribe_grace": 2.0}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def fake() -> AsyncIterator[FakePolymarket]:
    async with FakePolymarket(markets=2, seed=3, **FAST) as server:
        yield server


async def subscribe(
    session: aiohttp.ClientSession,
    fake: FakePolymarket,
    assets: Sequence[str] | None = None,
    **extra: Any,
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(fake.market_url)
    frame = {"type": "market", "assets_ids": list(fake.asset_ids if assets is None else assets)}
    await ws.send_str(json.dumps({**frame, **extra}))
    return ws


def level_pairs(levels: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(level["price"], level["size"]) for level in levels]


def assert_book_hash(book: dict[str, Any], view: BookView) -> None:
    """The WS book's hash is the V2026 hash of its own content (with the server's metadata)."""
    expected = book_hash(
        market=book["market"],
        asset_id=book["asset_id"],
        timestamp=book["timestamp"],
        bids=level_pairs(book["bids"]),
        asks=level_pairs(book["asks"]),
        min_order_size=view.min_order_size,
        tick_size=book["tick_size"],
        neg_risk=view.neg_risk,
        last_trade_price=book["last_trade_price"],
    )
    assert book["hash"] == expected


# --------------------------------------------------------------------------- subscription


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


async def test_no_subscription_within_grace_closes_1008(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, subscribe_grace=0.1, ping_grace=None) as fake:
        ws = await session.ws_connect(fake.market_url)
        message = await receive(ws)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1008)
        assert fake.connections[0].close is not None
        assert fake.connections[0].close.initiator == "server"


async def test_ping_grace_closes_a_socket_that_does_not_ping_text(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=1, ping_grace=0.2, subscribe_grace=None) as fake:
        pinging = await subscribe(session, fake)
        silent = await subscribe(session, fake)
        # Protocol-level pings are answered but do not count as the heartbeat.
        protocol_only = await subscribe(session, fake)
        await receive_json(pinging), await receive_json(silent), await receive_json(protocol_only)
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < 0.45:
            await pinging.send_str("PING")
            assert await receive_text(pinging) == "PONG"
            await protocol_only.ping()
            await asyncio.sleep(0.05)
        for ws in (silent, protocol_only):
            message = await receive(ws)
            assert (message.type, message.data, message.extra) == (
                aiohttp.WSMsgType.CLOSE,
                1008,
                "no ping received",
            )
        assert not pinging.closed
        await pinging.close()


async def test_ping_timeout_drop_mode_drops_tcp_without_close_frame(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=1, ping_grace=0.1, ping_timeout_action="drop") as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        message = await receive(ws)
        assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert ws.close_code == 1006
        assert fake.connections[0].close is not None
        assert fake.connections[0].close.code is None


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


async def test_price_change_hashes_equal_the_server_books(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    ws = await subscribe(session, fake, custom_feature_enabled=True)
    await receive_json(ws)
    for _ in range(30):
        events = fake.step(market=fake.markets[0].condition_id)
        books = fake.books
        for event in events:
            message = await receive_json(ws)
            assert message["timestamp"] == event.timestamp
            if message["event_type"] != "price_change":
                continue
            msgspec.json.decode(json.dumps(message), type=PriceChange, strict=False)
            assert {e["asset_id"] for e in message["price_changes"]} == set(fake.markets[0].tokens)
            for entry in message["price_changes"]:
                view = books[entry["asset_id"]]
                # The book after this (last) change, stamped with the message's timestamp.
                assert entry["hash"] == book_hash(
                    market=view.market,
                    asset_id=view.asset_id,
                    timestamp=message["timestamp"],
                    bids=view.bids,
                    asks=view.asks,
                    min_order_size=view.min_order_size,
                    tick_size=view.tick_size,
                    neg_risk=view.neg_risk,
                    last_trade_price=view.last_trade_price,
                )
                assert (entry["best_bid"], entry["best_ask"]) == (view.best_bid, view.best_ask)
    await ws.close()


async def test_timestamps_follow_the_injected_wall_clock(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, wall=lambda: 1_700_000_000.0, **FAST) as fake:
        ws = await subscribe(session, fake)
        books = await receive_json(ws)
        stamps = [int(b["timestamp"]) for b in books] + [int(e.timestamp) for e in fake.step(5)]
        assert stamps[0] == 1_700_000_000_000
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
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


async def test_plain_http_on_the_websocket_path_is_426(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    async with session.get(fake.market_url.replace("ws://", "http://")) as response:
        assert response.status == 426
    assert fake.connections == []


# --------------------------------------------------------------------------- user channel


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


# --------------------------------------------------------------------------- REST


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


# --------------------------------------------------------------------------- flow, burst, control


async def test_background_rate_produces_price_changes(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=2, rate=100.0, trade_probability=0.0, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        await asyncio.sleep(0.3)
        changes = [e for e in fake.log.events if e.event_type == "price_change"]
        # ~60 expected (2 markets x 100/s x 0.3 s); loose bounds for a loaded machine.
        assert 20 <= len(changes) <= 120
        received = 0
        while received < 20:
            if (await receive_json(ws))["event_type"] == "price_change":
                received += 1
        await ws.close()


async def test_burst_delivers_every_message_in_order(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=4, trade_probability=0.0, **FAST) as fake:
        ws = await session.ws_connect(fake.market_url, max_msg_size=0)
        await ws.send_str(json.dumps({"type": "market", "assets_ids": list(fake.asset_ids)}))
        await receive_json(ws)
        burst = fake.prepare_burst(2_000)
        price_changes = [e for e in burst.events if e.event_type == "price_change"]
        assert len(price_changes) == 2_000
        # best_bid_ask only goes to custom-feature subscribers.
        expected = [e.raw.decode() for e in burst.events if e.event_type != "best_bid_ask"]
        result = await fake.send_burst(burst)
        assert result.connections == 1
        assert result.messages == len(burst.events)
        assert result.frames == len(expected)
        assert result.frames_per_second > 0
        received = [await receive_text(ws) for _ in expected]
        assert received == expected
        await ws.close()


async def test_send_raw_to_one_connection_or_all(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    first = await subscribe(session, fake)
    second = await subscribe(session, fake)
    await receive_json(first), await receive_json(second)
    await fake.wait_for_connection(2)
    event = await fake.send_raw('{"event_type":"custom"}', connection=fake.connections[1])
    assert await receive_text(second) == '{"event_type":"custom"}'
    await assert_quiet(first, 0.05)
    await fake.send_raw("hello all")
    assert await receive_text(first) == await receive_text(second) == "hello all"
    assert fake.log.sent_to(fake.connections[1].id)[-2] == event
    await first.close()
    await second.close()


async def test_disconnect_with_code_and_abort(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    polite = await subscribe(session, fake)
    rude = await subscribe(session, fake)
    await receive_json(polite), await receive_json(rude)
    # The server waits for the client's close reply: read while it closes.
    async with asyncio.TaskGroup() as tg:
        tg.create_task(fake.disconnect(fake.connections[0], code=4001, reason="bye"))
        message = await receive(polite)
    assert (message.type, message.data, message.extra) == (aiohttp.WSMsgType.CLOSE, 4001, "bye")
    await fake.disconnect(fake.connections[1], abort=True)
    message = await receive(rude)
    assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert rude.close_code == 1006
    assert fake.open_connections() == []
    assert [c.state for c in fake.connections] == ["closed", "closed"]


async def test_client_close_is_recorded(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    ws = await subscribe(session, fake)
    await receive_json(ws)
    await ws.close(code=4321, message=b"done")
    connection = fake.connections[0]
    await connection.wait_closed()
    assert connection.close is not None
    assert (connection.close.initiator, connection.close.code, connection.close.reason) == (
        "client",
        4321,
        "done",
    )


async def test_ground_truth_log_matches_what_the_client_received(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    yes = fake.markets[0].yes_token
    ws = await subscribe(session, fake, [yes])
    frames = [await receive_text(ws)]
    events = fake.step(6)
    mine = [e for e in events if yes in e.asset_ids and e.event_type != "best_bid_ask"]
    frames += [await receive_text(ws) for _ in mine]
    connection = fake.connections[0]
    await connection.flush()
    sent = fake.log.sent_to(connection.id)
    assert frames[0] == "[" + sent[0].raw.decode() + "]"
    assert frames[1:] == [e.raw.decode() for e in sent[1:]]
    assert [e.seq for e in sent[1:]] == [e.seq for e in mine]
    assert fake.log.withheld_from(connection.id) == []
    assert all(yes in e.asset_ids for e in fake.log.events_for(yes))
    assert fake.log.event(sent[0].seq) == sent[0]
    with pytest.raises(KeyError):
        fake.log.event(10_000)
    await ws.close()


async def test_bounded_log_keeps_the_newest_events() -> None:
    async with FakePolymarket(markets=1, max_log_events=10, **FAST) as fake:
        events = fake.step(30)
        assert len(fake.log) == 10
        assert fake.log.events == events[-10:]


async def test_reprs_show_state(fake: FakePolymarket, session: aiohttp.ClientSession) -> None:
    ws = await subscribe(session, fake)
    await receive_json(ws)
    assert "running" in repr(fake) and "open=1" in repr(fake)
    assert "state=subscribed" in repr(fake.connections[0])
    assert "events=4" in repr(fake.log)
    await ws.close()
    await fake.connections[0].wait_closed()
    assert "close=client:1000" in repr(fake.connections[0])


async def test_start_twice_and_bad_arguments_raise() -> None:
    with pytest.raises(ConfigError):
        FakePolymarket(rate=-1.0)
    async with FakePolymarket(markets=1) as fake:
        with pytest.raises(ConfigError):
            await fake.start()
        with pytest.raises(ConfigError):
            fake.step(market="0xnope")
    assert "stopped" in repr(fake)


async def test_stop_closes_open_sockets_with_1001(session: aiohttp.ClientSession) -> None:
    fake = FakePolymarket(markets=1, **FAST)
    await fake.start()
    ws = await subscribe(session, fake)
    await receive_json(ws)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(fake.stop())
        message = await receive(ws)
    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1001)


# --------------------------------------------------------------------------- pytest fixture


async def test_fixture_serves_a_small_quiet_market(
    fake_polymarket: FakePolymarket,  # noqa: F811
    session: aiohttp.ClientSession,
) -> None:
    assert len(fake_polymarket.markets) == 2 and fake_polymarket.rate == 0.0
    async with session.get(f"{fake_polymarket.rest_url}/markets") as response:
        assert response.status == 200


def test_fixture_options_come_from_the_marker() -> None:
    # The marker itself is registered by the plugin's pytest_configure (entry point); here the
    # option merging is checked on a stand-in request.
    class Node:
        def __init__(self, marker: Mark | None) -> None:
            self.marker = marker

        def get_closest_marker(self, name: str) -> Mark | None:
            assert name == "fake_polymarket"
            return self.marker

    class Request:
        def __init__(self, marker: Mark | None) -> None:
            self.node = Node(marker)

    class Mark:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.args = args
            self.kwargs = kwargs

    marked = Mark(markets=3, ping_grace=0.5)
    assert pytest_plugin._options(Request(marked)) == {  # type: ignore[arg-type]
        "markets": 3,
        "rate": 0.0,
        "seed": 0,
        "ping_grace": 0.5,
    }
    assert pytest_plugin._options(Request(None)) == pytest_plugin.DEFAULTS  # type: ignore[arg-type]
    with pytest.raises(pytest.UsageError):
        pytest_plugin._options(Request(Mark(3)))  # type: ignore[arg-type]


async def test_endpoints_name_every_url_of_the_server(fake: FakePolymarket) -> None:
    endpoints = fake.endpoints
    assert endpoints.market_url == fake.market_url
    assert endpoints.user_url == fake.user_url
    assert endpoints.rest_url == fake.rest_url
    assert endpoints.gamma_url == fake.gamma_url
    assert endpoints.rest_url.startswith("http://127.0.0.1:")
