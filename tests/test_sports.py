"""The pure sports session: pings answered in their case, a silent server is a stale link."""

from __future__ import annotations

import json

import pytest

from polyfeed.core.session import SessionState
from polyfeed.core.sports import (
    SportResult,
    SportsConfig,
    SportsDecoder,
    SportsMalformed,
    SportsRaw,
    SportsSession,
    pong_for,
)
from polyfeed.errors import ConfigError, DataTimeoutError, InvalidStateError
from polyfeed.events import Stale

RESULT = {
    "slug": "mci-liv-2025-02-03",
    "live": True,
    "ended": False,
    "score": "1-0",
    "period": "1H",
    "elapsed": "32:15",
    "last_update": "2025-02-03T19:50:16.939Z",
    "gameId": 42,
    "homeTeam": "MCI",
}


def make(config: SportsConfig | None = None) -> SportsSession:
    return SportsSession(
        config or SportsConfig(ping_timeout=15.0), SportsDecoder(), connection_id=3
    )


def test_pong_is_in_the_case_the_server_used() -> None:
    assert pong_for("ping") == "pong"
    assert pong_for("PING") == "PONG"
    assert pong_for("Ping") == "Pong"
    assert pong_for("pong") is None
    assert pong_for('{"slug": "x"}') is None


def test_every_ping_is_answered_at_once_and_nothing_is_sent_first() -> None:
    session = make()
    session.connected(0.0)
    assert session.frames_to_send() == []
    session.receive_frames(["ping", json.dumps(RESULT), "PING"], 5.0)
    assert session.frames_to_send() == ["pong", "PONG"]
    assert session.pings_received == session.pongs_sent == 2
    events = session.events()
    assert len(events) == 1 and isinstance(events[0], SportResult)
    assert session.last_data_at == 5.0


def test_a_server_that_stops_pinging_is_stale_at_ping_timeout() -> None:
    session = make()
    session.connected(0.0)
    session.receive_text("ping", 5.0)
    assert session.frames_to_send() == ["pong"]
    # Data keeps flowing, but data is not the server's heartbeat.
    session.receive_text(json.dumps(RESULT), 19.0)
    assert session.next_deadline() == 20.0
    session.handle_timer(19.999)
    assert session.state is SessionState.OPEN
    session.handle_timer(20.0)
    assert isinstance(session.failure, DataTimeoutError) and session.failure.kind == "pong"
    stale = [e for e in session.events() if isinstance(e, Stale)]
    assert [(s.kind, s.silent_for) for s in stale] == [("pong", 15.0)]
    assert session.next_deadline() is None
    # A ping read after the verdict is not answered on the dying socket.
    session.receive_text("ping", 20.1)
    assert session.frames_to_send() == []


def test_optional_data_deadline() -> None:
    session = make(SportsConfig(ping_timeout=15.0, data_timeout=8.0))
    session.connected(0.0)
    session.receive_text("ping", 5.0)
    assert session.next_deadline() == 13.0
    session.handle_timer(13.0)
    assert isinstance(session.failure, DataTimeoutError) and session.failure.kind == "data"
    with pytest.raises(ConfigError):
        SportsConfig(ping_timeout=0.0)
    with pytest.raises(ConfigError):
        SportsConfig(data_timeout=-1.0)


def test_decoding_arrays_raw_and_malformed() -> None:
    decoder = SportsDecoder()
    many = decoder.decode(json.dumps([RESULT, {"type": "hello"}, {"slug": 5}]))
    assert [type(e) for e in many] == [SportResult, SportsRaw, SportsRaw]
    result = many[0]
    assert isinstance(result, SportResult)
    assert (result.game_id, result.home_team, result.score) == (42, "MCI", "1-0")
    assert result.payload["period"] == "1H"
    # A typed field with a wrong type keeps the message, untyped.
    assert isinstance(decoder.decode(json.dumps({"slug": "x", "live": "yes"}))[0], SportsRaw)
    bad = decoder.decode("nonsense")
    assert isinstance(bad[0], SportsMalformed) and decoder.malformed == 1


def test_lifecycle_and_no_subscriptions() -> None:
    session = make()
    with pytest.raises(InvalidStateError):
        session.receive_text("ping", 0.0)
    session.connected(0.0)
    with pytest.raises(InvalidStateError):
        session.connected(0.0)
    assert session.subscribe(["x"], 0.0) == [] and session.unsubscribe(["x"]) == []
    session.receive_text("ping", 1.0)
    session.closed()
    assert session.frames_to_send() == [] and session.state is SessionState.CLOSED
    session.handle_timer(100.0)
    assert session.failure is None and session.last_pong_rtt is None
    assert "SportsSession #3 closed" in repr(session)


def test_every_typed_field_comes_from_its_wire_name() -> None:
    wire = {
        "slug": "s",
        "live": True,
        "ended": False,
        "score": "1-0",
        "period": "2H",
        "elapsed": "50:00",
        "last_update": "u",
        "finished_timestamp": "f",
        "turn": "t",
        "status": "InProgress",
        "gameId": "g7",
        "leagueAbbreviation": "epl",
        "homeTeam": "H",
        "awayTeam": "A",
    }
    (result,) = SportsDecoder().decode(json.dumps(wire))
    assert result == SportResult(
        slug="s",
        live=True,
        ended=False,
        score="1-0",
        period="2H",
        elapsed="50:00",
        last_update="u",
        finished_timestamp="f",
        turn="t",
        status="InProgress",
        game_id="g7",
        league="epl",
        home_team="H",
        away_team="A",
        payload=wire,
    )
    # The Python names are not wire names: they are left in the payload, untyped.
    (plain,) = SportsDecoder().decode(json.dumps({"slug": "s", "home_team": "H"}))
    assert isinstance(plain, SportResult) and plain.home_team is None
