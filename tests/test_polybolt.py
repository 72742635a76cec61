"""The pure PolyBolt session: auth then subscribe, acks by rid, exact gaps, close-code policy."""

from __future__ import annotations

import json

import pytest

from polyfeed.core.polybolt import (
    PolyboltAck,
    PolyboltConfig,
    PolyboltData,
    PolyboltError,
    PolyboltGap,
    PolyboltMalformed,
    PolyboltSession,
    PolyboltSubscription,
    ending_policy,
)
from polyfeed.core.session import SessionState
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.credentials import Credentials
from polyfeed.errors import (
    AuthenticationError,
    ClosedByPolicyError,
    ConfigError,
    ConnectionClosedError,
    DataTimeoutError,
    InvalidStateError,
)

CRYPTO = PolyboltSubscription("price.crypto")
EQUITY = PolyboltSubscription("price.equity", {"symbol": "aapl"})
CREDS = Credentials(api_key="k", secret="s", passphrase="p")


def make(*specs: PolyboltSubscription, credentials: Credentials | None = None) -> PolyboltSession:
    table = {s.key: s for s in specs}
    return PolyboltSession(
        SubscriptionSet(table),
        table,
        PolyboltConfig(ping_interval=10.0, pong_timeout=30.0, data_timeout=60.0),
        credentials=credentials,
        connection_id=1,
    )


def data(channel: str, seq: int, **extra: object) -> str:
    return json.dumps({"v": 1, "channel": channel, "seq": seq, "ts": 5, "payload": {}, **extra})


def sent(session: PolyboltSession) -> list[dict[str, object]]:
    return [json.loads(f) for f in session.frames_to_send()]


def test_without_credentials_subscribes_at_once_with_rids() -> None:
    session = make(CRYPTO, EQUITY)
    session.connected(0.0)
    frames = sent(session)
    assert [(f["op"], f["channel"]) for f in frames] == [
        ("subscribe", "price.crypto"),
        ("subscribe", "price.equity"),
    ]
    assert frames[1]["filter"] == {"symbol": "aapl"}
    assert len({f["rid"] for f in frames}) == 2
    session.receive_text(json.dumps({"op": "subscribed", "rid": frames[0]["rid"]}), 0.1)
    [ack] = session.events()
    assert isinstance(ack, PolyboltAck) and ack.rid == frames[0]["rid"]


def test_with_credentials_auth_goes_first_and_subscriptions_follow_authed() -> None:
    session = make(CRYPTO, credentials=CREDS)
    session.connected(0.0)
    [auth] = sent(session)
    assert auth["op"] == "auth"
    assert auth["auth"] == {"apiKey": "k", "secret": "s", "passphrase": "p"}
    session.handle_timer(0.0)
    assert sent(session) == [{"op": "ping"}]
    session.receive_text(json.dumps({"op": "authed", "rid": auth["rid"]}), 0.1)
    assert [f["op"] for f in sent(session)] == ["subscribe"]


def test_errors_name_the_request_they_answer() -> None:
    session = make(CRYPTO)
    session.connected(0.0)
    [request] = sent(session)
    session.receive_text(
        json.dumps({"op": "error", "rid": request["rid"], "message": "unknown channel"}), 1.0
    )
    [error] = session.events()
    assert isinstance(error, PolyboltError)
    assert (error.request, error.channel, error.message) == (
        "subscribe",
        "price.crypto",
        "unknown channel",
    )


def test_a_seq_jump_is_a_gap_of_exactly_the_missing_frames() -> None:
    session = make(CRYPTO)
    session.connected(0.0)
    session.receive_frames(
        [data("price.crypto", 1, snapshot=True), data("price.crypto", 2), data("price.crypto", 6)],
        1.0,
    )
    events = session.events()
    assert [type(e) for e in events] == [PolyboltData, PolyboltData, PolyboltGap, PolyboltData]
    first = events[0]
    assert isinstance(first, PolyboltData) and first.snapshot
    gap = events[2]
    assert isinstance(gap, PolyboltGap)
    assert (gap.channel, gap.missing, gap.after_seq, gap.seq, gap.reason) == (
        "price.crypto",
        3,
        2,
        6,
        "seq",
    )
    session.receive_text(data("price.crypto", 7, dropped=4), 2.0)
    gap, frame = session.events()
    assert isinstance(gap, PolyboltGap) and (gap.missing, gap.reason) == (4, "dropped")
    assert isinstance(frame, PolyboltData) and frame.dropped == 4
    assert session.missing_frames == 7 and session.gaps == 2


def test_seq_restarts_with_each_connection() -> None:
    session = make(CRYPTO)
    session.connected(0.0)
    session.receive_text(data("price.crypto", 40), 1.0)
    session.closed()
    session.connected(2.0)
    session.receive_text(data("price.crypto", 1, snapshot=True), 3.0)
    session.receive_text(data("price.crypto", 2), 3.0)
    assert not any(isinstance(e, PolyboltGap) for e in session.events())


def test_live_unsubscribe_forgets_the_channel_seq() -> None:
    session = make(CRYPTO)
    session.connected(0.0)
    sent(session)
    session.receive_text(data("price.crypto", 5), 1.0)
    assert session.unsubscribe([CRYPTO.key]) == [CRYPTO.key]
    assert [f["op"] for f in sent(session)] == ["unsubscribe"]
    assert session.subscribe([CRYPTO.key], 2.0) == [CRYPTO.key]
    session.receive_text(data("price.crypto", 9, snapshot=True), 2.5)
    assert not any(isinstance(e, PolyboltGap) for e in session.events())
    with pytest.raises(ConfigError):
        session.subscribe(["price.unknown"], 3.0)


def test_pong_and_data_deadlines() -> None:
    session = make(CRYPTO)
    session.connected(0.0)
    session.handle_timer(0.0)
    assert {"op": "ping"} in sent(session)
    session.receive_text('{"op":"pong"}', 0.05)
    assert session.last_pong_rtt == pytest.approx(0.05)
    session.receive_text("garbage", 1.0)
    assert isinstance(session.events()[-1], PolyboltMalformed)
    for t in (10.0, 20.0, 30.0, 40.0, 50.0):
        session.handle_timer(t)
        session.receive_text('{"op":"pong"}', t)
    session.handle_timer(61.0)
    assert isinstance(session.failure, DataTimeoutError) and session.failure.kind == "data"
    assert session.next_deadline() is None
    session.closed()
    assert session.state is SessionState.CLOSED
    with pytest.raises(InvalidStateError):
        session.receive_text("{}", 62.0)
    assert "PolyboltSession #1 closed" in repr(session)


def test_close_codes() -> None:
    policy = ending_policy(PolyboltConfig(drain_max_delay=10.0), lambda: 0.25)
    assert policy(ConnectionClosedError(4003, "draining")) == 2.5
    assert policy(ConnectionClosedError(4002, "slow consumer")) == 0.0
    assert policy(ConnectionClosedError(None)) == 0.0
    assert policy(DataTimeoutError("data", 1.0)) == 0.0
    with pytest.raises(ClosedByPolicyError) as info:
        policy(ConnectionClosedError(4008, "too many subscriptions"))
    assert info.value.code == 4008 and "too many" in str(info.value)
    with pytest.raises(AuthenticationError):
        policy(ConnectionClosedError(4001, "auth"))


def test_subscription_keys() -> None:
    assert CRYPTO.key == "price.crypto"
    assert EQUITY.key == 'price.equity:{"symbol":"aapl"}'
    with pytest.raises(ConfigError):
        PolyboltSubscription("")
    with pytest.raises(ConfigError):
        PolyboltConfig(drain_max_delay=-1.0)
