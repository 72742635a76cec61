"""Fault application (testing/server/fault_state.py): every fault of polyfeed.testing.faults,
shown happening on a real loopback socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from polyfeed.errors import ConfigError
from polyfeed.testing import (
    CloseInfo,
    CloseWith,
    DropMessage,
    DropTcp,
    Duplicate,
    FakePolymarket,
    Fault,
    FaultPlan,
    ForgetSubscriptions,
    Hang,
    HugeFrame,
    IgnoreSubscription,
    Malformed,
    RefuseHandshake,
    SilenceAsset,
    SlowDrip,
    StallData,
    StopPong,
    UnknownEvent,
)
from ws_client import assert_quiet, receive, receive_json, receive_text

FAST: dict[str, Any] = {"ping_grace": 2.0, "subscribe_grace": 2.0, "trade_probability": 0.0}
# best_bid_ask is custom-feature only; with trade_probability 0 a step is one price_change, or
# a run of several like the real server's (plus best_bid_ask, not sent to plain subscribers).


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def ping(ws: aiohttp.ClientWebSocketResponse) -> None:
    """PING and expect the PONG as the very next frame."""
    await ws.send_str("PING")
    assert await receive_text(ws) == "PONG"


async def subscribe(
    session: aiohttp.ClientSession, fake: FakePolymarket, assets: list[str] | None = None
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(fake.market_url, max_msg_size=0)
    assets = list(fake.asset_ids) if assets is None else assets
    await ws.send_str(json.dumps({"type": "market", "assets_ids": assets}))
    return ws


def price_changes(fake: FakePolymarket, n: int) -> list[str]:
    """Step n times; the raw price_change texts a plain subscriber of everything should get
    (at least n: a step may be a run of several)."""
    return [e.raw.decode() for e in fake.step(n) if e.event_type == "price_change"]


async def assert_dropped_without_close_frame(ws: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        message = await receive(ws)
        if message.type is not aiohttp.WSMsgType.TEXT:
            break
    assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert ws.close_code == 1006


async def test_faults_are_scripted_per_attempt(session: aiohttp.ClientSession) -> None:
    plan: dict[int, list[Fault]] = {0: [DropTcp()], 2: [CloseWith(4000, "third")]}
    async with FakePolymarket(markets=1, faults=plan, **FAST) as fake:
        first = await subscribe(session, fake)
        await assert_dropped_without_close_frame(first)
        second = await subscribe(session, fake)
        await receive_json(second)
        await ping(second)
        fake.faults.add(3, StopPong())
        third = await subscribe(session, fake)
        message = await receive(third)
        assert (message.data, message.extra) == (4000, "third")
        fourth = await subscribe(session, fake)
        await receive_json(fourth)
        await fourth.send_str("PING")
        await assert_quiet(fourth, 0.1)
        assert [c.attempt for c in fake.connections] == [0, 1, 2, 3]
        assert fake.connections[3].faults == [StopPong()]
        await second.close()
        await fourth.close()


# --------------------------------------------------------------------------- data faults


async def test_stall_data_keeps_pong_but_sends_no_data_then_resumes(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(
        markets=1, faults={0: [StallData(after_messages=2, duration=0.3)]}, **FAST
    ) as fake:
        ws = await subscribe(session, fake)
        assert len(await receive_json(ws)) == 2  # the snapshot pair, then the stall starts
        stalled = price_changes(fake, 3)
        await ping(ws)  # PONG still answered, nothing else came
        await assert_quiet(ws, 0.1)
        connection = fake.connections[0]
        withheld = fake.log.withheld_from(connection.id)
        assert [d.reason for d in withheld] == ["stall"] * len(stalled)
        assert [fake.log.event(d.seq).raw.decode() for d in withheld] == stalled
        await asyncio.sleep(0.25)
        resumed = price_changes(fake, 2)
        assert [await receive_text(ws) for _ in resumed] == resumed
        await ws.close()


async def test_stop_pong_keeps_data(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, faults={0: [StopPong()]}, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        await ws.send_str("PING")
        sent = price_changes(fake, 2)
        assert [await receive_text(ws) for _ in sent] == sent  # no PONG among them
        await assert_quiet(ws, 0.1)
        assert fake.connections[0].pings == 1 and fake.connections[0].pongs == 0
        await ws.close()


async def test_close_with_after_messages_closes_after_exactly_that_many(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(
        markets=1, faults={0: [CloseWith(4002, "slow consumer", after_messages=4)]}, **FAST
    ) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)  # 2 messages
        sent = price_changes(fake, 5)
        assert [await receive_text(ws) for _ in range(2)] == sent[:2]
        message = await receive(ws)
        assert (message.type, message.data, message.extra) == (
            aiohttp.WSMsgType.CLOSE,
            4002,
            "slow consumer",
        )
        connection = fake.connections[0]
        await connection.wait_closed()
        assert connection.close is not None and connection.close.code == 4002
        assert len(fake.log.sent_seqs(connection.id)) == 4


async def test_message_count_faults_fire_as_soon_as_the_count_is_reached(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(
        markets=1, faults={0: [CloseWith(4003, after_messages=2)]}, **FAST
    ) as fake:
        ws = await subscribe(session, fake)
        assert len(await receive_json(ws)) == 2
        message = await receive(ws)  # no further step needed
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4003)


async def test_injected_after_messages_counts_from_the_injection(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=1, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)  # 2 messages before the injection
        fake.inject(DropTcp(after_messages=1))
        sent = price_changes(fake, 3)
        assert await receive_text(ws) == sent[0]
        await assert_dropped_without_close_frame(ws)


async def test_close_with_after_seconds(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, faults={0: [CloseWith(1011, after=0.1)]}, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        loop = asyncio.get_running_loop()
        started = loop.time()
        message = await receive(ws)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1011)
        assert loop.time() - started >= 0.05


async def test_drop_tcp_after_seconds_gives_1006_without_close_frame(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=1, faults={0: [DropTcp(after=0.1)]}, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        await ping(ws)
        await assert_dropped_without_close_frame(ws)
        connection = fake.connections[0]
        await connection.wait_closed()
        assert connection.close is not None
        assert (connection.close.initiator, connection.close.code) == ("server", None)


async def test_drop_tcp_after_messages(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, faults={0: [DropTcp(after_messages=3)]}, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        sent = price_changes(fake, 4)
        assert await receive_text(ws) == sent[0]
        await assert_dropped_without_close_frame(ws)


async def test_hang_answers_nothing_and_never_closes(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(
        markets=1, ping_grace=0.1, subscribe_grace=0.1, faults={0: [Hang()]}
    ) as fake:
        ws = await subscribe(session, fake)
        await ws.send_str("PING")
        fake.step(2)
        await assert_quiet(ws, 0.3)  # no snapshot, no PONG, no data, no close despite the graces
        connection = fake.connections[0]
        assert connection.state == "hanging"
        assert connection.frames_received[-1] == "PING"
        assert fake.log.sent_to(connection.id) == []
        await ws.close()  # the server does not answer the close: the client times out


async def test_hang_during_handshake(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, faults={0: [Hang(during_handshake=True)]}, **FAST) as fake:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await session.ws_connect(fake.market_url)
        connection = fake.connections[0]
        await asyncio.wait_for(connection.wait_closed(), 1.0)
        assert connection.close is not None and connection.close.initiator == "client"
        second = await subscribe(session, fake)
        await receive_json(second)
        await second.close()


@pytest.mark.parametrize(("status", "retry_after"), [(429, 2.0), (503, None), (401, None)])
async def test_refuse_handshake(
    session: aiohttp.ClientSession, status: int, retry_after: float | None
) -> None:
    plan = {0: [RefuseHandshake(status, retry_after=retry_after)]}
    async with FakePolymarket(markets=1, faults=plan, **FAST) as fake:
        with pytest.raises(aiohttp.WSServerHandshakeError) as raised:
            await session.ws_connect(fake.market_url)
        assert raised.value.status == status
        headers: Any = raised.value.headers or {}
        assert headers.get("Retry-After") == (None if retry_after is None else "2")
        assert fake.connections[0].state == "refused"
        assert fake.connections[0].refused_status == status
        ws = await subscribe(session, fake)  # attempt 1 is not refused
        await receive_json(ws)
        await ws.close()


async def test_ignore_subscription_sends_nothing_for_those_assets(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=2, **FAST) as fake:
        yes, no = fake.markets[0].tokens
        fake.faults.add(0, IgnoreSubscription((yes,)))
        ws = await subscribe(session, fake)
        books = await receive_json(ws)
        assert yes not in [b["asset_id"] for b in books] and len(books) == 3
        events = [e for e in fake.step(2) if e.event_type == "price_change"]
        first = await receive_json(ws)  # market 0: the YES entry is cut out
        assert [e["asset_id"] for e in first["price_changes"]] == [no]
        assert first["timestamp"] == events[0].timestamp
        second = await receive_json(ws)  # market 1: untouched
        assert second == events[1].json()
        connection = fake.connections[0]
        assert yes in connection.subscribed
        withheld = fake.log.withheld_from(connection.id)
        assert [(d.outcome, d.reason, d.asset_ids) for d in withheld] == [
            ("withheld", "ignore", (yes,)),
            ("partial", "ignore", (yes,)),
        ]
        assert [e.seq for e in fake.log.missed_by(connection.id, yes)] == [d.seq for d in withheld]
        await ws.close()


async def test_ignore_subscription_of_everything(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, faults={0: [IgnoreSubscription()]}, **FAST) as fake:
        ws = await subscribe(session, fake)
        fake.step(2)
        await ping(ws)  # subscribed, but not even a snapshot came
        assert fake.connections[0].subscribed == set(fake.asset_ids)
        await ws.close()


async def test_forget_subscriptions_then_resubscribe_gets_a_snapshot(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(
        markets=1, faults={0: [ForgetSubscriptions(after=0.1)]}, **FAST
    ) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        await asyncio.sleep(0.15)
        fake.step(2)
        await ping(ws)  # PONG continues, data does not
        connection = fake.connections[0]
        assert connection.subscribed == set()
        assert {d.reason for d in fake.log.withheld_from(connection.id)} == {"forget"}
        # Unlike a live subscription, re-subscribing counts as new: fresh snapshots.
        await ws.send_str(
            json.dumps({"operation": "subscribe", "assets_ids": list(fake.asset_ids)})
        )
        books = await receive_json(ws)
        assert [b["asset_id"] for b in books] == list(fake.asset_ids)
        sent = price_changes(fake, 1)
        assert await receive_text(ws) == sent[0]
        await ws.close()


async def test_malformed_unknown_and_huge_frames(session: aiohttp.ClientSession) -> None:
    plan: dict[int, list[Fault]] = {
        0: [
            Malformed(after_messages=2),
            UnknownEvent(after_messages=2),
            HugeFrame(200_000, after_messages=2),
        ]
    }
    async with FakePolymarket(markets=1, faults=plan, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        sent = price_changes(fake, 1)  # queued behind the fault frames sent after the snapshot
        malformed = await receive_text(ws)
        with pytest.raises(json.JSONDecodeError):
            json.loads(malformed)
        unknown = await receive_json(ws)
        assert unknown["event_type"] == "settlement_preview"
        huge = await receive_text(ws)
        assert 199_000 <= len(huge) <= 200_000 and json.loads(huge)["event_type"] == "huge_frame"
        assert await receive_text(ws) == sent[0]
        fault_events = [e for e in fake.log.events if e.origin == "fault"]
        assert [e.event_type for e in fault_events] == [
            "malformed",
            "settlement_preview",
            "huge_frame",
        ]
        assert all(e.target == fake.connections[0].id for e in fault_events)
        await ws.close()


async def test_slow_drip_delays_every_frame(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, faults={0: [SlowDrip(0.1)]}, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await ping(ws)
        assert loop.time() - started >= 0.09
        await ws.close()


async def test_duplicate_sends_the_next_message_twice(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        connection = fake.inject(Duplicate(count=1))
        sent = price_changes(fake, 2)
        received = [await receive_text(ws) for _ in range(len(sent) + 1)]
        assert received == [sent[0], *sent]
        seqs = fake.log.sent_seqs(connection.id)[-len(sent) - 1 :]
        assert seqs[0] == seqs[1] and len(set(seqs)) == len(sent)
        await assert_quiet(ws, 0.05)
        await ws.close()


async def test_silence_asset_while_others_flow(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=2, **FAST) as fake:
        quiet_market, loud_market = fake.markets
        fake.faults.add(0, SilenceAsset(quiet_market.yes_token))
        ws = await subscribe(session, fake, [quiet_market.yes_token, loud_market.yes_token])
        books = await receive_json(ws)
        assert [b["asset_id"] for b in books] == [loud_market.yes_token]
        events = [e for e in fake.step(4) if e.event_type == "price_change"]
        loud = [e for e in events if e.market == loud_market.condition_id]
        assert [await receive_text(ws) for _ in loud] == [e.raw.decode() for e in loud]
        await assert_quiet(ws, 0.05)
        missed = fake.log.missed_by(fake.connections[0].id, quiet_market.yes_token)
        assert [e.event_type for e in missed] == ["book", "price_change", "price_change"]
        assert {d.reason for d in fake.log.withheld_from(fake.connections[0].id)} == {"silence"}
        await ws.close()


async def test_a_silence_until_unsubscribed_ends_with_a_redrive(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=2, **FAST) as fake:
        quiet_market, loud_market = fake.markets
        dead = quiet_market.yes_token
        ws = await subscribe(session, fake, [dead, loud_market.yes_token])
        assert len(await receive_json(ws)) == 2
        fake.inject(SilenceAsset(dead, until_unsubscribed=True))
        # A subscribe alone (a duplicate) does not cure it, the others keep flowing.
        await ws.send_str(json.dumps({"operation": "subscribe", "assets_ids": [dead]}))
        fake.step(2, market=loud_market.condition_id)
        fake.step(2, market=quiet_market.condition_id)
        for _ in range(2):
            assert json.loads(await receive_text(ws))["market"] == loud_market.condition_id
        await assert_quiet(ws, 0.05)
        # Unsubscribe then subscribe (a redrive): the asset flows again, snapshot first.
        await ws.send_str(json.dumps({"operation": "unsubscribe", "assets_ids": [dead]}))
        await ws.send_str(json.dumps({"operation": "subscribe", "assets_ids": [dead]}))
        snapshot = await receive_json(ws)
        assert [b["asset_id"] for b in snapshot] == [dead]
        fake.step(1, market=quiet_market.condition_id)
        change = json.loads(await receive_text(ws))
        assert dead in {entry["asset_id"] for entry in change["price_changes"]}
        await ws.close()


async def test_drop_message_is_skipped_but_logged(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, faults={0: [DropMessage(count=1)]}, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        events = [e for e in fake.step(3) if e.event_type == "price_change"]
        kept = [e.raw.decode() for e in events[1:]]
        assert [await receive_text(ws) for _ in kept] == kept
        await assert_quiet(ws, 0.05)
        connection = fake.connections[0]
        [dropped] = fake.log.withheld_from(connection.id)
        assert (dropped.seq, dropped.reason, dropped.outcome) == (events[0].seq, "drop", "withheld")
        assert events[0].seq not in fake.log.sent_seqs(connection.id)
        await ws.close()


async def test_drop_message_for_one_asset(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=2, **FAST) as fake:
        target = fake.markets[1].no_token
        ws = await subscribe(session, fake)
        await receive_json(ws)
        fake.inject(DropMessage(asset_id=target, count=2))
        events = [e for e in fake.step(6) if e.event_type == "price_change"]
        kept = [e for e in events if target not in e.asset_ids] + [
            e for e in events if target in e.asset_ids
        ][2:]
        kept.sort(key=lambda e: e.seq)
        assert [await receive_text(ws) for _ in kept] == [e.raw.decode() for e in kept]
        assert len(fake.log.missed_by(fake.connections[0].id, target)) == 2
        await ws.close()


async def test_inject_stall_into_a_live_connection(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=1, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        sent = price_changes(fake, 1)
        assert [await receive_text(ws) for _ in sent] == sent
        connection = fake.inject(StallData())
        assert StallData() in connection.faults
        stalled = price_changes(fake, 2)
        await ping(ws)
        assert len(fake.log.missed_by(connection.id)) == len(stalled)
        await ws.close()


async def test_inject_rejects_handshake_faults_and_closed_connections(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=1, **FAST) as fake:
        with pytest.raises(ConfigError):
            fake.inject(StallData())  # nothing open yet
        ws = await subscribe(session, fake)
        await receive_json(ws)
        with pytest.raises(ConfigError):
            fake.inject(RefuseHandshake(503))
        with pytest.raises(ConfigError):
            fake.inject(Hang(during_handshake=True))
        await ws.close()
        await fake.connections[0].wait_closed()
        with pytest.raises(ConfigError):
            fake.inject(StallData(), connection=fake.connections[0].id)
        with pytest.raises(ConfigError):
            fake.inject(StallData(), connection=99)


async def test_user_channel_faults_use_condition_ids(session: aiohttp.ClientSession) -> None:
    async with FakePolymarket(markets=2, **FAST) as fake:
        silenced, loud = (m.condition_id for m in fake.markets)
        fake.faults.add(0, SilenceAsset(silenced), path="user")
        ws = await session.ws_connect(fake.user_url)
        await ws.send_str(json.dumps({"type": "user", "auth": fake.credentials.auth()}))
        await fake.wait_for_connection(path="user")
        fake.step_user(1, market=silenced)
        fake.step_user(1, market=loud)
        assert (await receive_json(ws))["market"] == loud
        assert [d.reason for d in fake.log.withheld_from(fake.connections[0].id)] == ["silence"]
        await ws.close()


async def test_hang_injected_live_stops_everything_the_server_sends(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePolymarket(markets=1, ping_grace=0.1, subscribe_grace=None) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        await ping(ws)
        connection = fake.inject(Hang())
        await ws.send_str("PING")
        fake.step(2)
        await fake.send_raw("to everyone")  # does not wait for the hung socket
        await assert_quiet(ws, 0.25)  # past the ping grace: a hung server enforces nothing
        assert connection.is_open
        await ws.close()


async def connect_user(
    session: aiohttp.ClientSession, fake: FakePolymarket
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(fake.user_url)
    await ws.send_str(json.dumps({"type": "user", "auth": fake.credentials.auth()}))
    return ws


async def test_user_socket_closes_with_a_code_before_any_frame_then_serves(
    session: aiohttp.ClientSession,
) -> None:
    # A rolling restart as Polymarket does it: close frames with a code, valid credentials.
    codes = (1012, 1001, 1011)
    plan = FaultPlan(user={i: [CloseWith(code, "restart")] for i, code in enumerate(codes)})
    async with FakePolymarket(markets=1, faults=plan, **FAST) as fake:
        for attempt, code in enumerate(codes):
            ws = await connect_user(session, fake)
            message = await receive(ws)  # the very first frame is the close
            assert (message.type, message.data, message.extra) == (
                aiohttp.WSMsgType.CLOSE,
                code,
                "restart",
            )
            assert ws.close_code == code
            connection = fake.connections[attempt]
            await connection.wait_closed()
            assert connection.close == CloseInfo(initiator="server", code=code, reason="restart")
            assert connection.frames_sent == 0
        ws = await connect_user(session, fake)
        await fake.wait_for_connection(len(codes) + 1, path="user")
        [event] = fake.step_user(1)
        assert (await receive_json(ws))["id"] == event.json()["id"]
        await ws.close()


async def test_user_socket_reset_without_close_frame_while_credentials_stay_valid(
    session: aiohttp.ClientSession,
) -> None:
    # The wire shape of a credential rejection, with credentials the REST route confirms.
    plan = FaultPlan(user={0: [DropTcp()]})
    async with FakePolymarket(markets=1, faults=plan, **FAST) as fake:
        ws = await connect_user(session, fake)
        await assert_dropped_without_close_frame(ws)
        connection = fake.connections[0]
        await connection.wait_closed()
        assert connection.close is not None and connection.close.code is None
        assert connection.frames_sent == 0
        headers = fake.credentials.client().l2_headers(1, "GET", "/auth/api-keys")
        async with session.get(f"{fake.rest_url}/auth/api-keys", headers=headers) as response:
            assert response.status == 200


async def test_fault_state_repr_shows_what_is_armed(session: aiohttp.ClientSession) -> None:
    plan = FaultPlan({0: [CloseWith(after_messages=50), Duplicate(count=3), StopPong()]})
    async with FakePolymarket(markets=1, faults=plan, **FAST) as fake:
        ws = await subscribe(session, fake)
        await receive_json(ws)
        state = fake.connections[0]._fault_state
        assert "pong=False" in repr(state) and "active=True" in repr(state)
        assert "waiting=1" in repr(state)
        assert "_Armed(CloseWith" in repr(state._message_triggers)
        assert "remaining=1" in repr(state._duplicates)  # two snapshots used two
        await ws.close()
