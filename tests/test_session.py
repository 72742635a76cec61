"""Session: the per-connection protocol state machine, driven with float ``now`` (no event loop).

What is checked is what goes on the wire (frames, in order) and what the consumer is told
(events), at exact deadlines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from polyfeed.config import HeartbeatConfig, StreamConfig, WatchdogConfig
from polyfeed.core.codec import FrameDecoder
from polyfeed.core.messages import Book, Malformed, Notice, Pong, Unknown
from polyfeed.core.session import MAX_REQUESTS_PER_CONNECTION, Channel, Session, SessionState
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.credentials import Credentials
from polyfeed.errors import ConfigError, ConnectionClosedError, DataTimeoutError, InvalidStateError
from polyfeed.events import Resubscribed, Stale

SECRET = "s3cr3t-value-that-must-not-leak"
PASSPHRASE = "pass-phrase-that-must-not-leak"
CREDS = Credentials(api_key="key-0123456789abcdef", secret=SECRET, passphrase=PASSPHRASE)


def make(
    ids: Iterable[str] = ("a", "b"),
    *,
    channel: Channel = "market",
    interval: float = 10.0,
    pong_timeout: float = 30.0,
    data_timeout: float = 300.0,
    confirm_timeout: float = 30.0,
    asset_timeout: float | None = None,
    custom_feature_enabled: bool = False,
    connection_id: int = 7,
) -> Session:
    config = StreamConfig(
        heartbeat=HeartbeatConfig(interval=interval, pong_timeout=pong_timeout),
        watchdog=WatchdogConfig(
            data_timeout=data_timeout,
            confirm_timeout=confirm_timeout,
            asset_timeout=asset_timeout,
        ),
        custom_feature_enabled=custom_feature_enabled,
    )
    subs = SubscriptionSet(ids, confirm_timeout=confirm_timeout)
    return Session(
        channel,
        subs,
        config,
        FrameDecoder(channel),
        credentials=CREDS if channel == "user" else None,
        connection_id=connection_id,
    )


def book(asset: str, ts: int = 1_700_000_000_000) -> str:
    return json.dumps(
        {
            "event_type": "book",
            "market": "0xm",
            "asset_id": asset,
            "timestamp": str(ts),
            "bids": [{"price": "0.4", "size": "10"}],
            "asks": [{"price": "0.6", "size": "10"}],
            "hash": "h",
        }
    )


def price_change(*assets: str) -> str:
    return json.dumps(
        {
            "event_type": "price_change",
            "market": "0xm",
            "timestamp": "1700000000000",
            "price_changes": [
                {"asset_id": a, "price": "0.5", "size": "1", "side": "BUY"} for a in assets
            ],
        }
    )


def last_trade(asset: str) -> str:
    return json.dumps(
        {
            "event_type": "last_trade_price",
            "market": "0xm",
            "asset_id": asset,
            "price": "0.5",
            "size": "1",
            "side": "SELL",
            "timestamp": "1700000000000",
        }
    )


def decoded(frames: list[str]) -> list[object]:
    """Frames as JSON values; the text heartbeat stays the string ``PING``."""
    return [f if f == "PING" else json.loads(f) for f in frames]


def data_frames(frames: list[str]) -> list[dict[str, Any]]:
    return [json.loads(f) for f in frames if f != "PING"]


def open_session(session: Session, now: float = 0.0) -> list[str]:
    session.connected(now)
    session.handle_timer(now)
    return session.frames_to_send()


# ---------------------------------------------------------------- initial frame and heartbeat


def test_market_initial_frame_is_first_and_sent_once() -> None:
    session = make(["a", "b"])
    frames = open_session(session)
    assert json.loads(frames[0]) == {
        "type": "market",
        "assets_ids": ["a", "b"],
        "initial_dump": True,
        "custom_feature_enabled": False,
    }
    assert frames[1:] == ["PING"]
    # An hour of heartbeats, live changes and redrives: never a second `type` frame.
    session.subscribe(["c"], 1.0)
    session.unsubscribe(["a"])
    now = 0.0
    sent: list[str] = []
    while now < 3600:
        deadline = session.next_deadline()
        assert deadline is not None
        now = deadline
        session.receive_text(book("b"), now)
        session.receive_text("PONG", now)
        session.handle_timer(now)
        sent += session.frames_to_send()
    assert sent.count("PING") >= 360
    assert not [f for f in data_frames(sent) if "type" in f]


def test_custom_feature_flag_reaches_initial_and_operation_frames() -> None:
    session = make(["a"], custom_feature_enabled=True)
    frames = open_session(session)
    assert json.loads(frames[0])["custom_feature_enabled"] is True
    session.subscribe(["b"], 1.0)
    assert json.loads(session.frames_to_send()[0]) == {
        "operation": "subscribe",
        "assets_ids": ["b"],
        "custom_feature_enabled": True,
    }


def test_user_initial_frame_carries_auth_and_markets_but_repr_hides_credentials() -> None:
    session = make(["0xcond1", "0xcond2"], channel="user")
    frames = open_session(session)
    first = json.loads(frames[0])
    assert first == {
        "type": "user",
        "auth": {"apiKey": CREDS.api_key, "secret": SECRET, "passphrase": PASSPHRASE},
        "markets": ["0xcond1", "0xcond2"],
    }
    assert frames[1:] == ["PING"]
    for text in (repr(session), str(session), repr(session.subscriptions)):
        assert SECRET not in text
        assert PASSPHRASE not in text
        assert CREDS.api_key not in text


def test_user_initial_frame_without_markets_omits_the_field() -> None:
    session = make([], channel="user")
    first = json.loads(open_session(session)[0])
    assert "markets" not in first
    assert first["type"] == "user"


def test_user_channel_needs_credentials() -> None:
    config = StreamConfig()
    with pytest.raises(ValueError, match="credentials"):
        Session("user", SubscriptionSet([]), config, FrameDecoder("user"))


def test_no_ping_and_no_deadline_before_the_initial_frame() -> None:
    session = make()
    assert session.next_deadline() is None
    for now in (0.0, 10.0, 1000.0):
        session.handle_timer(now)
    assert session.frames_to_send() == []
    session.connected(2000.0)
    session.handle_timer(2000.0)
    frames = session.frames_to_send()
    assert json.loads(frames[0])["type"] == "market"
    assert frames[1] == "PING"


def test_ping_every_interval_via_handle_timer() -> None:
    session = make(interval=10.0, pong_timeout=30.0)
    open_session(session, 100.0)
    pings: list[float] = []
    now = 100.0
    while now < 160.0:
        deadline = session.next_deadline()
        assert deadline is not None
        now = deadline
        session.receive_text("PONG", now)
        session.receive_text(book("a"), now)
        session.handle_timer(now)
        if "PING" in session.frames_to_send():
            pings.append(now)
    assert pings == [110.0, 120.0, 130.0, 140.0, 150.0, 160.0]
    # Just before a deadline nothing is due.
    session.handle_timer(169.999)
    assert session.frames_to_send() == []


def test_pong_feeds_the_watchdog_and_is_not_data() -> None:
    session = make()
    open_session(session, 0.0)  # PING sent at 0
    session.receive_text("PONG", 0.25)
    assert session.watchdog.last_pong_rtt == pytest.approx(0.25)
    assert session.watchdog.pongs_received == 1
    assert session.events() == []
    assert session.events_received == 0
    assert session.last_data_at is None
    assert session.last_frame_at == 0.25
    assert session.frames_received == 1


# ---------------------------------------------------------------- stale connection


def run_until_failure(session: Session, *, pong: bool, data: bool, limit: float) -> float:
    """Sleep to each deadline like the ticker; answer PINGs / send data as asked."""
    now = 0.0
    session.connected(now)
    while session.failure is None:
        deadline = session.next_deadline()
        assert deadline is not None
        assert deadline > now or deadline == now == 0.0
        now = deadline
        assert now <= limit
        session.handle_timer(now)
        frames = session.frames_to_send()
        if "PING" in frames and pong:
            session.receive_text("PONG", now)
        if data and session.failure is None:
            session.receive_text(book("a"), now)
    return now


def test_data_timeout_at_exactly_the_deadline() -> None:
    session = make(data_timeout=60.0)
    open_session(session, 0.0)
    session.receive_text(book("a"), 5.0)
    for now in (10.0, 20.0, 30.0, 40.0, 50.0, 60.0):
        session.receive_text("PONG", now - 9.5)
        session.handle_timer(now)
        assert "PING" in session.frames_to_send()
    session.receive_text("PONG", 60.5)
    session.events()
    session.handle_timer(64.999)
    assert session.failure is None
    assert session.next_deadline() == 65.0
    session.handle_timer(65.0)
    failure = session.failure
    assert isinstance(failure, DataTimeoutError)
    assert failure.kind == "data"
    assert failure.silent_for == pytest.approx(60.0)
    stale = [e for e in session.events() if isinstance(e, Stale)]
    assert stale == [Stale(kind="data", silent_for=60.0, asset_ids=[], connection_id=7)]
    # A failed session plans nothing more and sends nothing more.
    assert session.next_deadline() is None
    session.handle_timer(100.0)
    assert session.events() == []


def test_data_timeout_while_pongs_keep_flowing() -> None:
    session = make(data_timeout=60.0)
    assert run_until_failure(session, pong=True, data=False, limit=60.0) == 60.0
    assert isinstance(session.failure, DataTimeoutError)
    assert session.failure.kind == "data"


def test_pong_timeout_while_data_keeps_flowing() -> None:
    session = make(interval=10.0, pong_timeout=30.0, data_timeout=60.0)
    assert run_until_failure(session, pong=False, data=True, limit=30.0) == 30.0
    failure = session.failure
    assert isinstance(failure, DataTimeoutError)
    assert failure.kind == "pong"
    stale = [e for e in session.events() if isinstance(e, Stale)]
    assert [s.kind for s in stale] == ["pong"]
    assert stale[0].silent_for == pytest.approx(30.0)


def test_pong_timeout_not_before_the_deadline() -> None:
    session = make(interval=10.0, pong_timeout=30.0)
    open_session(session, 0.0)
    session.receive_text(book("a"), 29.0)
    session.handle_timer(29.999)
    assert session.failure is None
    session.handle_timer(30.0)
    assert isinstance(session.failure, DataTimeoutError)
    assert session.failure.kind == "pong"


# ---------------------------------------------------------------- confirmations and redrive


def test_unconfirmed_asset_is_redriven_with_unsubscribe_then_subscribe() -> None:
    session = make(["a", "b"], confirm_timeout=30.0, data_timeout=300.0)
    open_session(session, 0.0)
    session.receive_text(book("a"), 1.0)
    session.events()
    session.handle_timer(29.999)
    assert "unsubscribe" not in "".join(session.frames_to_send())
    session.receive_text("PONG", 20.0)
    session.handle_timer(30.0)
    ops = data_frames(session.frames_to_send())
    assert ops == [
        {"operation": "unsubscribe", "assets_ids": ["b"]},
        {"operation": "subscribe", "assets_ids": ["b"]},
    ]
    events = session.events()
    assert (
        Stale(kind="asset", silent_for=30.0, asset_ids=["b"], connection_id=7, unconfirmed=["b"])
        in events
    )
    assert Resubscribed(assets=["b"], connection_id=7) in events
    assert events.index(next(e for e in events if isinstance(e, Stale))) < events.index(
        Resubscribed(assets=["b"], connection_id=7)
    )
    assert session.failure is None
    assert session.subscriptions.attempts("b") == 2
    # Still silent: redriven again one confirm_timeout after the redrive, not before.
    session.handle_timer(59.999)
    assert not data_frames(session.frames_to_send())
    session.receive_text("PONG", 50.0)
    session.handle_timer(60.0)
    assert [f["operation"] for f in data_frames(session.frames_to_send())] == [
        "unsubscribe",
        "subscribe",
    ]
    # A book confirms it: no more redrives.
    session.receive_text(book("b"), 61.0)
    for now in (90.0, 120.0, 150.0):
        session.receive_text("PONG", now)
        session.receive_text(book("a"), now)
        session.handle_timer(now)
        assert not data_frames(session.frames_to_send())


def test_asset_never_answered_is_left_alone_after_three_requests() -> None:
    # An unknown token id gets silence from the server, like an ignored subscription: after
    # the initial request and two redrives, stop asking on this connection (no reconnect).
    session = make(["a", "b"], confirm_timeout=30.0, data_timeout=300.0)
    open_session(session, 0.0)
    session.receive_text(book("a"), 1.0)
    redrives = 0
    now = 0.0
    while now < 200.0:
        now += 5.0
        session.receive_text("PONG", now)
        session.receive_text(book("a"), now)
        session.handle_timer(now)
        redrives += sum(
            f["operation"] == "subscribe" for f in data_frames(session.frames_to_send())
        )
    assert redrives == 2
    assert session.abandoned == {"b"}
    assert session.failure is None
    assert "b" in session.subscriptions.pending
    deadline = session.next_deadline()
    assert deadline is not None
    assert deadline > now, "an abandoned asset must not keep the ticker spinning"
    # The next connection asks again.
    session.closed()
    frames = open_session(session, 300.0)
    assert json.loads(frames[0])["assets_ids"] == ["a", "b"]


def test_abandoned_asset_unsubscribed_and_subscribed_again_does_not_spin_the_ticker() -> None:
    # Issue 7, defect 1: the re-subscribed asset stayed "abandoned", so it was overdue but never
    # re-requested nor given up: next_deadline() stayed in the past and the ticker spun.
    session = make(["a", "b"], confirm_timeout=30.0, data_timeout=3000.0)
    open_session(session, 0.0)
    now = 0.0
    while "b" not in session.abandoned:
        now += 5.0
        session.receive_text("PONG", now)
        session.receive_text(book("a"), now)
        session.handle_timer(now)
        session.frames_to_send()
    session.unsubscribe(["b"])
    session.subscribe(["b"], now)
    assert data_frames(session.frames_to_send()) == [
        {"operation": "unsubscribe", "assets_ids": ["b"]},
        {"operation": "subscribe", "assets_ids": ["b"]},
    ]
    session.events()
    stale_events = 0
    for _ in range(100):
        deadline = session.next_deadline()
        assert deadline is not None
        assert deadline > now, "the ticker would wake in the past and spin"
        now = deadline
        session.receive_text("PONG", now)
        session.receive_text(book("a"), now)
        session.handle_timer(now)
        session.frames_to_send()
        stale_events += sum(isinstance(e, Stale) for e in session.events())
    # A fresh request gets its full budget again: the initial one plus two redrives.
    assert session.subscriptions.attempts("b") == MAX_REQUESTS_PER_CONNECTION
    assert stale_events == MAX_REQUESTS_PER_CONNECTION
    assert session.abandoned == {"b"}


@pytest.mark.parametrize(
    ("frame", "confirmed"),
    [
        (book("a"), {"a"}),
        (last_trade("a"), {"a"}),
        (price_change("a"), {"a"}),
        (price_change("a", "b"), {"a", "b"}),
        (price_change("b", "a", "b"), {"a", "b"}),
        (book("zzz"), set()),
    ],
)
def test_market_events_confirm_their_assets(frame: str, confirmed: set[str]) -> None:
    session = make(["a", "b"])
    open_session(session)
    session.receive_text(frame, 1.0)
    assert session.subscriptions.confirmed == confirmed
    session.receive_text("PONG", 20.0)
    session.handle_timer(30.0)
    redriven = {asset for f in data_frames(session.frames_to_send()) for asset in f["assets_ids"]}
    assert redriven == {"a", "b"} - confirmed


def test_array_frame_confirms_every_element() -> None:
    session = make(["a", "b"])
    open_session(session)
    session.receive_text(f"[{book('a')}, {last_trade('b')}]", 1.0)
    assert session.subscriptions.confirmed == {"a", "b"}
    assert session.subscriptions.next_deadline() is None
    assert session.events_received == 2


def test_unsubscribed_pending_asset_is_not_redriven() -> None:
    session = make(["a", "b"])
    open_session(session)
    session.unsubscribe(["b"])
    assert data_frames(session.frames_to_send()) == [
        {"operation": "unsubscribe", "assets_ids": ["b"]}
    ]
    session.receive_text(book("a"), 1.0)
    session.receive_text("PONG", 20.0)
    session.handle_timer(30.0)
    assert data_frames(session.frames_to_send()) == []
    assert not [e for e in session.events() if isinstance(e, Stale | Resubscribed)]


def test_live_subscription_gets_its_own_confirm_clock() -> None:
    session = make(["a"], confirm_timeout=30.0)
    open_session(session)
    session.receive_text(book("a"), 1.0)
    assert session.subscribe(["c", "a"], 10.0) == ["c"]
    session.frames_to_send()
    session.receive_text("PONG", 20.0)
    session.handle_timer(39.999)
    assert data_frames(session.frames_to_send()) == []
    session.receive_text("PONG", 30.0)
    session.handle_timer(40.0)
    assert data_frames(session.frames_to_send()) == [
        {"operation": "unsubscribe", "assets_ids": ["c"]},
        {"operation": "subscribe", "assets_ids": ["c"]},
    ]


def test_silent_asset_with_asset_timeout_is_redriven_without_failing() -> None:
    session = make(["a", "b"], asset_timeout=20.0, confirm_timeout=30.0, data_timeout=300.0)
    open_session(session)
    session.receive_text(f"[{book('a')}, {book('b')}]", 1.0)
    session.events()
    for now in (10.0, 20.0):
        session.receive_text(book("a"), now)
        session.receive_text("PONG", now)
        session.handle_timer(now)
        session.frames_to_send()
    assert session.next_deadline() == 21.0  # b's silence deadline beats the next PING
    session.receive_text(book("a"), 21.0)
    session.handle_timer(21.0)
    assert data_frames(session.frames_to_send()) == [
        {"operation": "unsubscribe", "assets_ids": ["b"]},
        {"operation": "subscribe", "assets_ids": ["b"]},
    ]
    events = session.events()
    stale = [e for e in events if isinstance(e, Stale)]
    assert [(s.kind, s.asset_ids) for s in stale] == [("asset", ["b"])]
    assert Resubscribed(assets=["b"], connection_id=7) in events
    assert session.failure is None


# ---------------------------------------------------------------- live subscribe / unsubscribe


def test_live_changes_while_open_are_operation_frames() -> None:
    session = make(["a"])
    open_session(session)
    assert session.subscribe(["b", "c", "b"], 1.0) == ["b", "c"]
    assert session.unsubscribe(["a", "zzz"]) == ["a"]
    assert session.subscribe(["b"], 2.0) == []  # already desired: nothing on the wire
    assert session.unsubscribe(["zzz"]) == []
    assert data_frames(session.frames_to_send()) == [
        {"operation": "subscribe", "assets_ids": ["b", "c"]},
        {"operation": "unsubscribe", "assets_ids": ["a"]},
    ]
    assert session.subscriptions.ordered() == ["b", "c"]


def test_user_live_changes_use_markets_operation_frames() -> None:
    session = make(["0x1"], channel="user")
    open_session(session)
    session.subscribe(["0x2"], 1.0)
    session.unsubscribe(["0x1"])
    assert data_frames(session.frames_to_send()) == [
        {"operation": "subscribe", "markets": ["0x2"]},
        {"operation": "unsubscribe", "markets": ["0x1"]},
    ]


def test_user_channel_has_no_confirmation_redrives() -> None:
    session = make(["0x1"], channel="user", confirm_timeout=5.0)
    open_session(session)
    assert session.next_deadline() == 10.0  # the PING, not a confirmation deadline
    session.receive_text("PONG", 1.0)
    session.handle_timer(10.0)
    assert session.frames_to_send() == ["PING"]
    assert session.events() == []


def test_changes_while_closed_send_nothing_and_go_into_the_next_initial_frame() -> None:
    session = make(["a", "b"])
    open_session(session)
    session.closed()
    assert session.subscribe(["c"], None) == ["c"]
    assert session.unsubscribe(["a"]) == ["a"]
    assert session.frames_to_send() == []
    frames = open_session(session, 100.0)
    assert json.loads(frames[0])["assets_ids"] == ["b", "c"]
    assert frames[1:] == ["PING"]


def test_reconnect_replays_the_full_desired_set_once_each() -> None:
    session = make(["a", "b"])
    open_session(session)
    session.receive_text(book("a"), 1.0)
    session.subscribe(["c"], 2.0)
    session.unsubscribe(["b"])
    session.closed()
    session.subscribe(["d", "c", "d"], None)
    assert session.next_deadline() is None
    session.handle_timer(500.0)
    assert session.frames_to_send() == []
    frames = open_session(session, 1000.0)
    initial = [f for f in data_frames(frames) if "type" in f]
    assert len(initial) == 1
    assert initial[0]["assets_ids"] == ["a", "c", "d"]
    assert not [f for f in data_frames(frames) if "operation" in f]
    # Confirmations belong to the old connection: all three are pending again.
    assert session.subscriptions.pending == {"a", "c", "d"}


def test_session_reused_after_a_failure_starts_clean() -> None:
    session = make(["a"], data_timeout=60.0)
    open_session(session)
    session.handle_timer(60.0)
    assert session.failure is not None
    session.closed()
    frames = open_session(session, 100.0)
    assert session.failure is None
    assert json.loads(frames[0])["type"] == "market"
    assert frames[1:] == ["PING"]
    assert session.next_deadline() == 110.0


def test_frames_unsent_when_the_socket_died_are_not_sent_on_the_next_one() -> None:
    session = make(["a"])
    session.connected(0.0)
    session.handle_timer(0.0)  # initial frame and PING queued ...
    session.closed()  # ... but the socket died before the writer sent them
    frames = open_session(session, 50.0)
    # A PING ahead of the subscription gets `1008 invalid subscription payload`.
    assert json.loads(frames[0])["type"] == "market"
    assert frames[1:] == ["PING"]


# ---------------------------------------------------------------- odd frames


def test_invalid_operation_notice_is_counted_and_passed_on() -> None:
    session = make()
    open_session(session)
    session.receive_text("INVALID OPERATION", 1.0)
    session.receive_text("INVALID OPERATION", 2.0)
    assert session.invalid_operations == 2
    assert session.events() == [Notice("INVALID OPERATION"), Notice("INVALID OPERATION")]
    assert session.events_received == 0


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        '{"event_type": "mystery", "x": 1}',
        '[{"event_type": "book"}]',
        "[1, 2]",
        b'{"event_type": "book", "asset_id"',
        b"[\xff]",
        '{"event_type": "book", "asset_id": 5}',
    ],
)
def test_malformed_and_unknown_frames_do_not_crash_and_count_as_data(frame: str | bytes) -> None:
    session = make(["a"], data_timeout=60.0)
    open_session(session)
    session.receive_text(frame, 50.0)
    events = session.events()
    assert events
    assert all(isinstance(e, Malformed | Unknown | Notice) for e in events)
    assert session.last_data_at == 50.0
    session.receive_text("PONG", 50.0)
    session.handle_timer(60.0)
    assert session.failure is None
    assert session.next_deadline() is not None
    session.receive_text("PONG", 100.0)
    session.handle_timer(110.0)
    assert isinstance(session.failure, DataTimeoutError)
    assert session.failure.kind == "data"


def test_bare_text_notices_are_passed_on_but_are_not_data() -> None:
    session = make(["a"])
    open_session(session)
    session.receive_text("NO NEW ASSETS", 1.0)
    session.receive_text(b"\xff\xfe", 2.0)
    assert session.events() == [Notice("NO NEW ASSETS"), Notice("\ufffd\ufffd")]
    assert session.last_data_at is None
    assert session.last_frame_at == 2.0
    assert session.frames_received == 2


def test_no_new_assets_notice_does_not_hide_a_silent_stall() -> None:
    # The server sends NO NEW ASSETS periodically on its own; counting it as data would keep a
    # stalled socket looking fresh for ever.
    session = make(["a"], data_timeout=60.0)
    open_session(session)
    for now in (10.0, 20.0, 30.0, 40.0, 50.0):
        session.receive_text("PONG", now)
        session.receive_text("NO NEW ASSETS", now)
    session.handle_timer(60.0)
    assert isinstance(session.failure, DataTimeoutError)
    assert session.failure.kind == "data"


def test_wire_events_are_passed_on_in_order() -> None:
    session = make(["a", "b"])
    open_session(session)
    session.receive_text(book("a", 1), 1.0)
    session.receive_text("PONG", 1.5)
    session.receive_text(f"[{book('b', 2)}, {book('a', 3)}]", 2.0)
    events = session.events()
    assert [(e.asset_id, e.timestamp) for e in events if isinstance(e, Book)] == [
        ("a", 1),
        ("b", 2),
        ("a", 3),
    ]
    assert len(events) == 3
    assert session.events() == []


# ---------------------------------------------------------------- deadlines


def test_next_deadline_is_the_earliest_of_watchdog_and_confirmations() -> None:
    early_confirm = make(["a"], interval=10.0, confirm_timeout=4.0)
    open_session(early_confirm, 0.0)
    assert early_confirm.next_deadline() == 4.0
    early_confirm.receive_text(book("a"), 1.0)
    assert early_confirm.next_deadline() == 10.0

    late_confirm = make(["a"], interval=10.0, confirm_timeout=25.0)
    open_session(late_confirm, 0.0)
    assert late_confirm.next_deadline() == 10.0

    data_first = make(["a"], interval=10.0, data_timeout=3.0, confirm_timeout=25.0)
    open_session(data_first, 0.0)
    assert data_first.next_deadline() == 3.0


def test_handle_timer_at_next_deadline_always_makes_progress() -> None:
    session = make(["a", "b"], interval=10.0, confirm_timeout=7.0, data_timeout=45.0)
    open_session(session)
    now = 0.0
    for _ in range(200):
        deadline = session.next_deadline()
        if deadline is None:
            break
        assert deadline > now
        now = deadline
        session.receive_text("PONG", now)
        session.handle_timer(now)
        session.frames_to_send()
    assert isinstance(session.failure, DataTimeoutError)
    assert now == 45.0


def test_repr_shows_state_and_counters() -> None:
    session = make(["a"])
    assert "new" in repr(session)
    open_session(session)
    session.receive_text(book("a"), 1.0)
    text = repr(session)
    assert "open" in text
    assert "frames=1" in text
    assert "#7" in text
    session.handle_timer(1000.0)
    assert "failed" in repr(session)


def test_subscribe_while_open_needs_now() -> None:
    session = make(["a"])
    open_session(session)
    with pytest.raises(ConfigError):
        session.subscribe(["b"], None)


# ---------------------------------------------------------------- property: wire order


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["tick", "pong", "book", "notice", "junk", "sub", "unsub", "close", "open", "send"]
        ),
        st.floats(min_value=0.0, max_value=40.0, allow_nan=False),
        st.sampled_from(["a", "b", "c", "d"]),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(actions=ACTIONS, confirm_timeout=st.sampled_from([5.0, 30.0]))
def test_wire_order_invariants_hold_for_any_sequence(
    actions: list[tuple[str, float, str]], confirm_timeout: float
) -> None:
    """Per connection: the initial frame goes first and once; no PING before it; no operation
    frame on a closed socket, even one queued before it died; after a tick the next deadline
    lies in the future."""
    session = make(["a"], confirm_timeout=confirm_timeout, data_timeout=45.0)
    now = 0.0
    socket_open = False
    sent_on_this_socket: list[str] = []

    def flush() -> None:
        frames = session.frames_to_send()
        if not socket_open:
            assert frames == []
            return
        sent_on_this_socket.extend(frames)

    for kind, dt, asset in actions:
        now += dt
        match kind:
            case "open":
                if socket_open:
                    continue
                socket_open = True
                sent_on_this_socket = []
                session.connected(now)
            case "close":
                if not socket_open:
                    continue
                session.closed()
                socket_open = False
            case "tick":
                deadline = session.next_deadline()
                if deadline is not None:
                    now = max(now, deadline)
                session.handle_timer(now)
            case "pong":
                if socket_open:
                    session.receive_text("PONG", now)
            case "book":
                if socket_open:
                    session.receive_text(book(asset), now)
            case "notice":
                if socket_open:
                    session.receive_text("NO NEW ASSETS", now)
            case "junk":
                if socket_open:
                    session.receive_text("{junk", now)
            case "sub":
                session.subscribe([asset], now if socket_open else None)
            case "unsub":
                session.unsubscribe([asset])
            case "send":
                # The writer runs when it gets to; a socket may die with frames still queued.
                flush()
        if socket_open and sent_on_this_socket:
            assert json.loads(sent_on_this_socket[0]).get("type") == "market"
            later = [f for f in sent_on_this_socket[1:] if f != "PING"]
            assert all("type" not in json.loads(f) for f in later)
        deadline = session.next_deadline()
        if kind == "tick" and deadline is not None:
            # A tick handles everything due at `now`: the next deadline lies in the future.
            assert deadline > now
        session.events()


def test_raw_utf8_bytes_frames_behave_like_text() -> None:
    # The transport hands frames over as raw UTF-8 bytes: PONG, notices and data alike.
    session = make(["a", "b"], data_timeout=60.0)
    open_session(session)
    session.receive_text(b"PONG", 0.5)
    assert session.watchdog.last_pong_rtt == pytest.approx(0.5)
    session.receive_text(b"INVALID OPERATION", 1.0)
    assert session.invalid_operations == 1
    session.receive_text(price_change("a", "b").encode(), 2.0)
    assert session.subscriptions.confirmed == {"a", "b"}
    assert session.last_data_at == 2.0
    events = session.events()
    assert events[0] == Notice("INVALID OPERATION")
    assert len(events) == 2


def test_receive_frames_is_receive_text_for_each_frame() -> None:
    frames = [book("a"), "PONG", price_change("a", "b"), "NO NEW ASSETS", last_trade("b")]
    one_by_one = make(["a", "b"])
    batched = make(["a", "b"])
    for session in (one_by_one, batched):
        open_session(session, 0.0)
        session.events()
    for frame in frames:
        one_by_one.receive_text(frame.encode(), 1.0)
    batched.receive_frames([frame.encode() for frame in frames], 1.0)
    assert batched.events() == one_by_one.events()
    assert batched.subscriptions.confirmed == one_by_one.subscriptions.confirmed == {"a", "b"}
    assert batched.frames_received == one_by_one.frames_received == 5
    assert batched.watchdog.last_pong_at == one_by_one.watchdog.last_pong_at == 1.0
    assert batched.last_data_at == 1.0


def test_events_received_counts_this_connection_only() -> None:
    decoder = FrameDecoder("market")
    config = StreamConfig()
    subs = SubscriptionSet(["a"])
    first = Session("market", subs, config, decoder)
    first.connected(0.0)
    first.receive_text(book("a"), 1.0)
    first.closed()
    second = Session("market", subs, config, decoder, connection_id=2)
    second.connected(2.0)
    second.receive_text(book("a"), 3.0)
    second.receive_text(last_trade("a"), 3.0)
    assert first.events_received == 1
    assert second.events_received == 2


# ---------------------------------------------------------------- state machine (stateful test)


def state_of(session: Session) -> SessionState:
    # Read through a call, so mypy does not narrow the property across inputs that change it.
    return session.state


def test_state_transitions_and_illegal_inputs() -> None:
    session = make(["a"])
    assert session.state is SessionState.NEW
    with pytest.raises(InvalidStateError):
        session.receive_text("PONG", 0.0)
    session.closed()  # documented no-op while NEW
    session.abort(DataTimeoutError("data", 1.0))  # ... and so is abort
    assert session.state is SessionState.NEW and session.failure is None
    session.connected(0.0)
    assert state_of(session) is SessionState.OPEN
    with pytest.raises(InvalidStateError) as info:
        session.connected(1.0)
    assert info.value.state == "OPEN" and info.value.event == "connected"
    first = ConnectionClosedError(None, "first")
    session.abort(first)
    session.abort(ConnectionClosedError(None, "second"))
    assert state_of(session) is SessionState.FAILED
    assert session.failure is first, "the first reason wins"
    assert session.next_deadline() is None
    session.receive_text(book("a"), 2.0)  # read just before the socket went: still data
    assert Book in {type(e) for e in session.events()}
    session.closed()
    assert state_of(session) is SessionState.CLOSED
    assert session.failure is first
    session.connected(3.0)
    assert state_of(session) is SessionState.OPEN and session.failure is None


def test_state_transitions_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    session = make(["a"], data_timeout=10.0)
    with caplog.at_level(logging.DEBUG, logger="polyfeed.session"):
        open_session(session, 0.0)
        session.handle_timer(10.0)
        session.closed()
    lines = [r.getMessage() for r in caplog.records if r.name == "polyfeed.session"]
    assert lines == [
        "session market #7: NEW -> OPEN",
        "session market #7: OPEN -> FAILED",
        "session market #7: FAILED -> CLOSED",
    ]


ASSETS = ("a", "b", "c")
# Everything a socket can deliver: heartbeat answers, data, notices and garbage.
FRAMES = st.one_of(
    st.just("PONG"),
    st.just("NO NEW ASSETS"),
    st.just("INVALID OPERATION"),
    st.just("{junk"),
    st.just('{"event_type": "brand_new", "market": "0xm"}'),
    st.sampled_from(ASSETS).map(book),
    st.sampled_from(ASSETS).map(last_trade),
    st.lists(st.sampled_from(ASSETS), min_size=1, max_size=3).map(lambda a: price_change(*a)),
)
# Per handle_timer: one watchdog Stale and its Resubscribed, one overdue Stale and its
# Resubscribed; a PING and two unsubscribe/subscribe pairs.
MAX_EVENTS_PER_TIMER = 4
MAX_FRAMES_PER_TIMER = 5


class SessionMachine(RuleBasedStateMachine):
    """The whole ``Session`` input alphabet in any order, at non-decreasing times."""

    def __init__(self) -> None:
        super().__init__()
        self.session = make(["a"])
        self.now = 0.0
        self.socket_open = False
        self.sent: list[str] = []

    @initialize(
        confirm_timeout=st.sampled_from([1.0, 5.0, 30.0]),
        asset_timeout=st.sampled_from([None, 7.0]),
        channel=st.sampled_from(["market", "market", "user"]),
        initial=st.lists(st.sampled_from(ASSETS), max_size=3),
    )
    def configure(
        self,
        confirm_timeout: float,
        asset_timeout: float | None,
        channel: Channel,
        initial: list[str],
    ) -> None:
        self.session = make(
            initial,
            channel=channel,
            confirm_timeout=confirm_timeout,
            asset_timeout=asset_timeout,
            data_timeout=45.0,
        )

    def _flush(self) -> None:
        frames = self.session.frames_to_send()
        if not self.socket_open:
            # Nothing queued while no socket is open may reach the next one.
            assert frames == []
            return
        self.sent.extend(frames)

    @rule()
    def connected(self) -> None:
        if self.session.opened:
            with pytest.raises(InvalidStateError):
                self.session.connected(self.now)
            return
        self.session.connected(self.now)
        self.socket_open = True
        self.sent = []

    @rule(frames=st.lists(FRAMES, min_size=1, max_size=3))
    def receive(self, frames: list[str]) -> None:
        session = self.session
        if not session.opened:
            with pytest.raises(InvalidStateError):
                session.receive_text(frames[0], self.now)
        elif len(frames) == 1:
            session.receive_text(frames[0], self.now)
        else:
            session.receive_frames([f.encode() for f in frames], self.now)

    @rule(at_deadline=st.booleans(), dt=st.sampled_from([0.0, 0.5, 1.0, 5.0, 30.0]))
    def handle_timer(self, at_deadline: bool, dt: float) -> None:
        # The ticker wakes at the deadline it asked for, or later (a busy loop), or early (a
        # live change woke it).
        self.now += dt
        deadline = self.session.next_deadline()
        if at_deadline and deadline is not None:
            self.now = max(self.now, deadline)
        self._timer()

    @rule(ticks=st.integers(1, 6))
    def ticker_runs(self, ticks: int) -> None:
        # A quiet spell: the ticker wakes at each deadline it asked for, nothing else happens.
        for _ in range(ticks):
            deadline = self.session.next_deadline()
            if deadline is None:
                return
            self.now = max(self.now, deadline)
            self._timer()

    def _timer(self) -> None:
        self._flush()
        self.session.events()
        self.session.handle_timer(self.now)
        assert len(self.session.events()) <= MAX_EVENTS_PER_TIMER
        frames = self.session.frames_to_send()
        assert len(frames) <= MAX_FRAMES_PER_TIMER
        self.sent.extend(frames)
        after = self.session.next_deadline()
        assert after is None or after > self.now, "the ticker would wake in the past and spin"

    @rule(assets=st.lists(st.sampled_from(ASSETS), min_size=1, max_size=2))
    def subscribe(self, assets: list[str]) -> None:
        self.session.subscribe(assets, self.now)

    @rule(assets=st.lists(st.sampled_from(ASSETS), min_size=1, max_size=2))
    def unsubscribe(self, assets: list[str]) -> None:
        self.session.unsubscribe(assets)

    @rule(assets=st.lists(st.sampled_from(ASSETS), min_size=1, max_size=2))
    def unsubscribe_then_subscribe(self, assets: list[str]) -> None:
        # A user changing their mind at once: the asset's redrive budget starts again.
        self.session.unsubscribe(assets)
        self.session.subscribe(assets, self.now)

    @rule(assets=st.lists(st.sampled_from(ASSETS), min_size=1, max_size=2))
    def refresh(self, assets: list[str]) -> None:
        self.session.refresh(assets, self.now)

    @rule(how=st.sampled_from(["abort", "closed", "abort_then_closed"]))
    def socket_ends(self, how: str) -> None:
        session = self.session
        if how != "closed":
            was_open = session.state is SessionState.OPEN
            before = session.failure
            reason = ConnectionClosedError(None, "aborted by the I/O layer")
            session.abort(reason)
            assert session.failure is (reason if was_open else before), "first reason wins"
        if how != "abort":
            session.closed()
            self.socket_open = False
            self.sent = []

    @rule()
    def send(self) -> None:
        # The writer runs when it gets to; a socket may die with frames still queued.
        self._flush()

    @invariant()
    def state_is_consistent(self) -> None:
        session = self.session
        state = session.state
        assert (state is SessionState.OPEN) == (session.opened and session.failure is None), (
            "OPEN exactly when a socket is attached and nothing failed"
        )
        if state is SessionState.FAILED:
            assert session.failure is not None
        if state is not SessionState.OPEN:
            assert session.next_deadline() is None
        assert session.subscriptions.confirmed <= session.subscriptions.desired

    @invariant()
    def initial_frame_first_and_once(self) -> None:
        if not self.sent:
            return
        assert self.sent[0] != "PING", "a PING before the initial frame gets 1008"
        assert "type" in json.loads(self.sent[0])
        later = [json.loads(f) for f in self.sent[1:] if f != "PING"]
        assert all("type" not in frame for frame in later)


SessionMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
TestSessionMachine = SessionMachine.TestCase


def test_unconfirmed_assets_are_named_and_the_given_up_ones_said_so() -> None:
    session = make(["a", "b"], confirm_timeout=30.0, data_timeout=300.0)
    open_session(session, 0.0)
    session.receive_text(book("a"), 1.0)
    reports: list[Stale] = []
    now = 0.0
    while now < 200.0:
        now += 5.0
        session.receive_text("PONG", now)
        session.receive_text(book("a"), now)
        session.handle_timer(now)
        session.frames_to_send()
        reports.extend(e for e in session.events() if isinstance(e, Stale) and e.unconfirmed)
    assert [r.unconfirmed for r in reports] == [["b"]] * MAX_REQUESTS_PER_CONNECTION
    assert [r.abandoned for r in reports] == [[], [], ["b"]]


@given(
    confirm_first=st.booleans(),
    batches=st.lists(st.lists(FRAMES, min_size=1, max_size=6), min_size=1, max_size=4),
)
@example(confirm_first=True, batches=[[last_trade("a"), "PONG", "NO NEW ASSETS", book("b")]])
@example(confirm_first=True, batches=[[last_trade("a"), "{junk"], ["INVALID OPERATION"]])
def test_receive_frames_is_receive_text_for_each_frame_on_the_data_only_hot_path(
    confirm_first: bool, batches: list[list[str]]
) -> None:
    # Once every asset is confirmed, a batch the decoder found no PONG or notice in is passed on
    # whole (data_only): it must still be what the frames one by one would give.
    one_by_one = make(list(ASSETS))
    batched = make(list(ASSETS))
    for session in (one_by_one, batched):
        open_session(session, 0.0)
        if confirm_first:
            session.receive_text(price_change(*ASSETS).encode(), 0.5)
            assert session.subscriptions.all_confirmed
        session.events()
    for step, frames in enumerate(batches, start=1):
        now = float(step)
        for frame in frames:
            one_by_one.receive_text(frame.encode(), now)
        batched.receive_frames([frame.encode() for frame in frames], now)
        events = batched.events()
        assert events == one_by_one.events()
        # And what both give is right: a PONG is a heartbeat answer, never an event.
        assert not any(isinstance(event, Pong) for event in events)
        if "PONG" in frames:
            assert batched.watchdog.last_pong_at == now
        assert batched.last_data_at == one_by_one.last_data_at
        assert batched.watchdog.last_frame_at == one_by_one.watchdog.last_frame_at
        assert batched.watchdog.last_pong_at == one_by_one.watchdog.last_pong_at
        assert batched.invalid_operations == one_by_one.invalid_operations
        assert batched.subscriptions.confirmed == one_by_one.subscriptions.confirmed
