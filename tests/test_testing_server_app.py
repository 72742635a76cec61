"""FakePolymarket as a server (testing/server/app.py): urls, flows, bursts, controls, lifecycle."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import pytest

from polyfeed.core.book_hash import book_hash
from polyfeed.core.messages import PriceChange
from polyfeed.errors import ConfigError
from polyfeed.testing import FakePolymarket
from polyfeed.testing.server.log import LoggedEvent
from ws_client import FAST, assert_quiet, receive, receive_json, receive_text, subscribe


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def fake() -> AsyncIterator[FakePolymarket]:
    async with FakePolymarket(markets=2, seed=3, **FAST) as server:
        yield server


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


def _final_hashes(event: LoggedEvent) -> dict[str, str]:
    return {entry["asset_id"]: entry["hash"] for entry in event.json()["price_changes"]}


async def test_timestamps_follow_the_injected_wall_clock(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, wall=lambda: 1_700_000_000.0, **FAST) as fake:
        ws = await subscribe(session, fake)
        books = await receive_json(ws)
        events = fake.step(5)
        stamps = [int(b["timestamp"]) for b in books] + [int(e.timestamp) for e in events]
        assert stamps[0] == 1_700_000_000_000
        assert stamps == sorted(stamps)
        # Only the messages of one run share a timestamp, with the hash after the whole run.
        stamps = stamps[len(books) :]
        assert len(set(stamps)) >= 5
        for before, after in itertools.pairwise(events):
            if before.timestamp == after.timestamp:
                assert before.event_type == after.event_type == "price_change"
                first, second = _final_hashes(before), _final_hashes(after)
                assert first.keys() & second.keys()
                assert all(first[a] == second[a] for a in first.keys() & second.keys())
        await ws.close()


async def test_plain_http_on_the_websocket_path_is_426(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    async with session.get(fake.market_url.replace("ws://", "http://")) as response:
        assert response.status == 426
    assert fake.connections == []


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


async def test_background_user_rate_reaches_user_sockets(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=2, user_rate=100.0, **FAST) as fake:
        ws = await session.ws_connect(fake.user_url)
        await ws.send_str(json.dumps({"type": "user", "auth": fake.credentials.auth()}))
        await fake.wait_for_connection(path="user")
        await asyncio.sleep(0.3)
        generated = [e for e in fake.log.events if e.origin == "user"]
        # ~30 expected (100/s x 0.3 s); loose bounds for a loaded machine.
        assert 5 <= len(generated) <= 60
        first = await receive_json(ws)
        assert first["id"] in {e.json()["id"] for e in generated}
        await ws.close()


async def test_burst_delivers_every_message_in_order(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=4, trade_probability=0.0, **FAST) as fake:
        ws = await session.ws_connect(fake.market_url, max_msg_size=0)
        await ws.send_str(json.dumps({"type": "market", "assets_ids": list(fake.asset_ids)}))
        await receive_json(ws)
        burst = fake.prepare_burst(2_000)
        price_changes = [e for e in burst.events if e.event_type == "price_change"]
        # One step, one timestamp per market: a single message or a run of up to 3 (default).
        steps = collections.Counter((e.market, e.timestamp) for e in price_changes)
        assert len(steps) == 2_000
        assert max(steps.values()) <= 3 and len(price_changes) > 2_000
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


async def test_endpoints_name_every_url_of_the_server(fake: FakePolymarket) -> None:
    endpoints = fake.endpoints
    assert endpoints.market_url == fake.market_url
    assert endpoints.user_url == fake.user_url
    assert endpoints.rest_url == fake.rest_url
    assert endpoints.gamma_url == fake.gamma_url
    assert endpoints.rest_url.startswith("http://127.0.0.1:")
