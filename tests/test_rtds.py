"""The pure RTDS session: frames, PING, per-topic deadlines, live (un)subscribe."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyfeed.core.rtds import RtdsConfig, RtdsSession, RtdsSubscription, encode_filters, rtds_frame
from polyfeed.core.rtds_messages import RtdsDecoder, RtdsPrice, RtdsServerMessage
from polyfeed.core.session import SessionState
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.errors import ConfigError, DataTimeoutError, InvalidStateError
from polyfeed.events import Stale

BTC = RtdsSubscription.of("crypto_prices", "update", {"symbol": "btcusdt"})
COMMENTS = RtdsSubscription("comments", "comment_created")
CONFIG = RtdsConfig(ping_interval=5.0, pong_timeout=15.0, data_timeout=60.0, topic_timeout=30.0)


def make(*specs: RtdsSubscription, config: RtdsConfig = CONFIG) -> RtdsSession:
    table = {s.key: s for s in specs}
    return RtdsSession(SubscriptionSet(table), table, config, RtdsDecoder(), connection_id=1)


def message(topic: str, kind: str = "update") -> str:
    payload = {"symbol": "btcusdt", "value": 1.5} if topic == "crypto_prices" else {"id": "1"}
    return json.dumps({"topic": topic, "type": kind, "timestamp": 1, "payload": payload})


def test_filters_are_sent_as_a_string() -> None:
    assert BTC.filters == '{"symbol":"btcusdt"}'
    assert encode_filters(["a", "b"]) == '["a","b"]'
    assert encode_filters("btcusdt,solusdt") == "btcusdt,solusdt"
    frame = json.loads(rtds_frame("subscribe", [BTC, COMMENTS]))
    assert frame == {
        "action": "subscribe",
        "subscriptions": [
            {"topic": "crypto_prices", "type": "update", "filters": '{"symbol":"btcusdt"}'},
            {"topic": "comments", "type": "comment_created"},
        ],
    }
    with pytest.raises(ConfigError):
        RtdsSubscription("crypto_prices", "update", {"symbol": "x"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        rtds_frame("replace", [BTC])


def test_parse_is_the_inverse_of_key() -> None:
    assert RtdsSubscription.parse("activity") == RtdsSubscription("activity", "*")
    assert RtdsSubscription.parse("activity:trades") == RtdsSubscription("activity", "trades")
    assert RtdsSubscription.parse(BTC.key) == BTC


def test_connect_subscribes_then_pings_every_interval() -> None:
    session = make(BTC, COMMENTS)
    session.connected(0.0)
    first = session.frames_to_send()
    assert [json.loads(f)["action"] for f in first] == ["subscribe"]
    session.handle_timer(0.0)
    assert session.frames_to_send() == ["PING"]
    session.receive_text("PONG", 0.01)
    assert session.last_pong_rtt == pytest.approx(0.01)
    assert session.next_deadline() == 5.0
    session.handle_timer(4.999)
    assert session.frames_to_send() == []
    session.handle_timer(5.0)
    assert session.frames_to_send() == ["PING"]


def test_one_silent_topic_is_a_stall_at_its_deadline_while_others_flow() -> None:
    session = make(BTC, COMMENTS)
    session.connected(0.0)
    session.receive_text(message("comments", "comment_created"), 1.0)
    t = 0.0
    while t < 40.0:
        session.handle_timer(t)
        session.receive_text("PONG", t)
        session.receive_text(message("crypto_prices"), t)
        assert session.state is SessionState.OPEN, t
        deadline = session.next_deadline()
        assert deadline is not None and deadline > t
        t = min(deadline, t + 1.0)
        if t >= 31.0:
            break
    # comments last had data at 1.0: its deadline is exactly 31.0, not a tick earlier.
    session.handle_timer(30.999)
    assert session.state is SessionState.OPEN
    session.handle_timer(31.0)
    assert session.state.value == "failed"
    assert isinstance(session.failure, DataTimeoutError)
    assert session.failure.kind == "asset"
    stale = [e for e in session.events() if isinstance(e, Stale)]
    assert [(s.kind, s.asset_ids) for s in stale] == [("asset", [COMMENTS.key])]
    assert session.next_deadline() is None


def test_type_star_and_subscribe_history_count_as_data() -> None:
    star = RtdsSubscription("crypto_prices")
    session = make(star, BTC)
    session.connected(0.0)
    session.receive_text(message("crypto_prices", "subscribe"), 29.0)
    session.handle_timer(30.0)
    assert session.state is SessionState.OPEN
    assert session.subscriptions.confirmed == {star.key, BTC.key}


def test_server_refusals_are_events_but_not_data() -> None:
    session = make(BTC, config=RtdsConfig(topic_timeout=None, data_timeout=10.0))
    session.connected(0.0)
    session.receive_text('{"message": "invalid request body"}', 5.0)
    assert any(isinstance(e, RtdsServerMessage) for e in session.events())
    assert session.last_data_at is None
    session.handle_timer(10.0)
    assert isinstance(session.failure, DataTimeoutError) and session.failure.kind == "data"


def test_live_subscribe_and_unsubscribe_and_their_clocks() -> None:
    session = make(BTC)
    session.connected(0.0)
    session.frames_to_send()
    with pytest.raises(ConfigError):
        session.subscribe([COMMENTS.key], 1.0)  # the stream registers the spec first
    session.specs = {**session.specs, COMMENTS.key: COMMENTS}
    assert session.subscribe([COMMENTS.key], 1.0) == [COMMENTS.key]
    assert json.loads(session.frames_to_send()[0])["subscriptions"] == [COMMENTS.wire()]
    assert session.unsubscribe([BTC.key]) == [BTC.key]
    assert json.loads(session.frames_to_send()[0])["action"] == "unsubscribe"
    # BTC no longer has a clock; COMMENTS' started at 1.0.
    session.receive_text(message("crypto_prices"), 2.0)
    session.handle_timer(30.5)
    session.receive_text("PONG", 30.5)
    assert session.state is SessionState.OPEN
    session.handle_timer(31.0)
    assert session.failure is not None


def test_closed_drops_frames_and_the_next_connection_replays() -> None:
    session = make(BTC)
    session.connected(0.0)
    session.handle_timer(0.0)
    session.closed()
    assert session.frames_to_send() == []
    assert session.state is SessionState.CLOSED
    with pytest.raises(InvalidStateError):
        session.receive_text("PONG", 1.0)
    session.connected(2.0)
    assert json.loads(session.frames_to_send()[0])["subscriptions"] == [BTC.wire()]
    with pytest.raises(InvalidStateError):
        session.connected(2.0)
    assert "RtdsSession #1 open" in repr(session)


def test_typed_events_pass_through_in_order() -> None:
    session = make(BTC)
    session.connected(0.0)
    session.receive_frames([message("crypto_prices"), "PONG", message("crypto_prices")], 1.0)
    assert [type(e) for e in session.events()] == [RtdsPrice, RtdsPrice]
    assert session.frames_received == 3


inputs = st.lists(
    st.tuples(
        st.sampled_from(["data_btc", "data_comments", "pong", "timer", "close", "sub", "unsub"]),
        st.floats(min_value=0.0, max_value=20.0),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(inputs)
def test_after_handle_timer_the_next_deadline_is_later(steps: list[tuple[str, float]]) -> None:
    session = make(BTC, COMMENTS)
    now = 0.0
    session.connected(now)
    for action, dt in steps:
        now += dt
        if not session.opened and action != "close":
            session.connected(now)
        match action:
            case "data_btc" if session.opened:
                session.receive_text(message("crypto_prices"), now)
            case "data_comments" if session.opened:
                session.receive_text(message("comments", "comment_created"), now)
            case "pong" if session.opened:
                session.receive_text("PONG", now)
            case "close":
                session.closed()
            case "sub":
                session.subscribe([BTC.key], now)
            case "unsub":
                session.unsubscribe([BTC.key])
            case _:
                pass
        session.handle_timer(now)
        deadline = session.next_deadline()
        assert deadline is None or deadline > now
        session.frames_to_send()
        session.events()


def test_pongs_can_be_left_uncounted() -> None:
    # Whether RTDS answers PING with a text PONG is not settled: then data alone judges the link.
    config = RtdsConfig(ping_interval=5.0, pong_timeout=None, data_timeout=60.0, topic_timeout=30.0)
    session = make(BTC, config=config)
    session.connected(0.0)
    for t in range(0, 300, 5):
        session.handle_timer(float(t))
        session.receive_text(message("crypto_prices"), float(t))
        assert session.state is SessionState.OPEN
    assert session.frames_to_send().count("PING") == 60
    assert session.last_pong_rtt is None
