"""Watchdog: PING cadence, exact PONG / data / per-asset deadlines, RTT, repr. Fake time only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyfeed.config import HeartbeatConfig, WatchdogConfig
from polyfeed.core.watchdog import StaleVerdict, Watchdog
from polyfeed.errors import DataTimeoutError


def make(
    interval: float = 10.0,
    pong_timeout: float = 30.0,
    data_timeout: float = 300.0,
    asset_timeout: float | None = None,
    start: float | None = None,
) -> Watchdog:
    dog = Watchdog(
        HeartbeatConfig(interval=interval, pong_timeout=pong_timeout),
        WatchdogConfig(data_timeout=data_timeout, asset_timeout=asset_timeout),
    )
    if start is not None:
        dog.start(start)
    return dog


def drive(dog: Watchdog, until: float, *, pong_after: float | None = 0.05) -> list[float]:
    """Act like the I/O layer: sleep to each deadline, check, ping; the server PONGs after
    ``pong_after`` s (None: never). Returns the PING times; stops at a verdict."""
    pings: list[float] = []
    pong_at: float | None = None
    while True:
        deadline = dog.next_deadline()
        assert deadline is not None
        now = deadline if pong_at is None else min(deadline, pong_at)
        if now > until:
            return pings
        if pong_at is not None and now == pong_at:
            dog.on_pong(now)
            pong_at = None
        if dog.check(now) is not None:
            return pings
        if dog.ping_due(now):
            dog.on_ping_sent(now)
            pings.append(now)
            if pong_after is not None:
                pong_at = now + pong_after
        dog.on_frame(now)  # data keeps flowing in these runs


# ---------------------------------------------------------------- heartbeat


def test_stopped_watchdog_has_no_deadlines() -> None:
    dog = make()
    assert dog.next_deadline() is None
    assert dog.check(1e9) is None
    assert not dog.ping_due(1e9)
    assert dog.last_frame_at is None
    assert dog.last_pong_at is None
    dog.start(5.0)
    dog.stop()
    assert dog.next_deadline() is None
    assert not dog.started


def test_first_ping_is_due_at_start_then_every_interval() -> None:
    dog = make(start=100.0)
    assert dog.started
    assert dog.ping_due(100.0)
    assert dog.next_deadline() == 100.0
    pings = drive(dog, until=160.0)
    assert pings == [100.0, 110.0, 120.0, 130.0, 140.0, 150.0, 160.0]
    assert dog.pings_sent == 7
    assert dog.pongs_received == 6


def test_ping_cadence_follows_the_actual_send_time() -> None:
    dog = make(start=0.0)
    dog.on_ping_sent(0.0)
    assert not dog.ping_due(9.999)
    assert dog.ping_due(10.0)
    dog.on_ping_sent(12.5)  # sent late: the next one is an interval after it
    assert dog.next_deadline() == 22.5
    assert not dog.ping_due(22.4)
    assert dog.ping_due(22.5)


def test_pong_answers_reset_the_pong_clock_and_no_verdict_comes() -> None:
    dog = make(start=0.0)
    assert drive(dog, until=1000.0) == [float(t) for t in range(0, 1001, 10)]
    assert dog.check(1000.0) is None


def test_pong_timeout_fires_exactly_at_last_pong_plus_timeout() -> None:
    dog = make(start=0.0)
    dog.on_ping_sent(0.0)
    dog.on_pong(0.04)
    dog.on_ping_sent(10.0)  # never answered
    deadline = 0.04 + 30.0
    dog.on_ping_sent(20.0)
    dog.on_frame(25.0)
    assert dog.next_deadline() == 30.0  # the next PING comes first
    dog.on_ping_sent(30.0)
    assert dog.next_deadline() == deadline
    assert dog.check(deadline - 1e-9) is None
    verdict = dog.check(deadline)
    assert verdict is not None
    assert verdict.kind == "pong"
    assert verdict.silent_for == pytest.approx(30.0)
    assert dog.check(deadline + 5) == StaleVerdict("pong", verdict.silent_for + 5)


def test_pong_verdict_from_start_when_no_pong_ever_came() -> None:
    dog = make(start=50.0)
    pings = drive(dog, until=1000.0, pong_after=None)
    assert pings == [50.0, 60.0, 70.0]
    assert dog.check(80.0) == StaleVerdict("pong", 30.0)
    assert dog.check(79.999) is None


def test_no_pong_deadline_while_no_ping_is_unanswered() -> None:
    dog = make(interval=10, pong_timeout=30, data_timeout=1000, start=0.0)
    # The caller never pings (e.g. still connecting): silence of PONGs is not a verdict.
    assert dog.check(500.0) is None
    dog.on_ping_sent(500.0)
    # A PING sent late (the loop was blocked) still gets pong_timeout - interval to be answered.
    assert dog.next_deadline() == 510.0
    dog.on_ping_sent(510.0)
    assert dog.next_deadline() == 520.0
    assert dog.check(519.999) is None
    assert dog.check(520.0) == StaleVerdict("pong", 520.0)


def test_a_late_pong_answers_the_oldest_ping_and_clears_the_deadline() -> None:
    dog = make(start=0.0)
    dog.on_ping_sent(0.0)
    dog.on_ping_sent(10.0)
    dog.on_pong(10.5)
    assert dog.last_pong_rtt == 10.5
    assert dog.next_deadline() == 20.0  # the next PING; no PONG deadline armed
    dog.on_pong(10.6)  # the answer to the second PING: nothing in flight, rtt kept
    assert dog.last_pong_rtt == 10.5
    assert dog.last_pong_at == 10.6


def test_rtt_is_ping_to_pong() -> None:
    dog = make(start=0.0)
    assert dog.last_pong_rtt is None
    dog.on_ping_sent(0.0)
    dog.on_pong(0.125)
    assert dog.last_pong_rtt == 0.125
    dog.on_ping_sent(10.0)
    dog.on_pong(10.25)
    assert dog.last_pong_rtt == 0.25
    dog.on_pong(11.0)  # unsolicited
    assert dog.last_pong_rtt == 0.25


def test_pongs_do_not_count_as_data() -> None:
    dog = make(data_timeout=60, start=0.0)
    t = 0.0
    while dog.check(t) is None:
        if dog.ping_due(t):
            dog.on_ping_sent(t)
            dog.on_pong(t + 0.01)
        deadline = dog.next_deadline()
        assert deadline is not None
        t = deadline
    assert t == 60.0
    assert dog.check(t) == StaleVerdict("data", 60.0)


# ---------------------------------------------------------------- data


def test_data_timeout_fires_exactly_at_last_frame_plus_timeout() -> None:
    dog = make(data_timeout=300, start=1000.0)
    dog.on_frame(1100.0)
    assert dog.last_frame_at == 1100.0
    assert dog.check(1399.999) is None
    assert dog.check(1400.0) == StaleVerdict("data", 300.0)


def test_frames_push_the_data_deadline() -> None:
    dog = make(interval=100, pong_timeout=200, data_timeout=5, start=0.0)
    dog.on_ping_sent(0.0)
    dog.on_pong(0.01)
    for t in (1.0, 4.0, 8.5):
        dog.on_frame(t)
        assert dog.next_deadline() == t + 5
        assert dog.check(t + 4.999) is None
    assert dog.check(13.5) == StaleVerdict("data", 5.0)


def test_on_data_counts_as_a_frame() -> None:
    dog = make(data_timeout=5, start=0.0)
    dog.on_data(3.0, "untracked-asset")
    assert dog.last_frame_at == 3.0
    assert dog.check(7.9) is None


def test_pong_verdict_wins_over_data_verdict() -> None:
    dog = make(interval=10, pong_timeout=30, data_timeout=30, start=0.0)
    dog.on_ping_sent(0.0)
    assert dog.check(30.0) == StaleVerdict("pong", 30.0)


def test_verdict_repeats_until_restart_and_start_resets_every_clock() -> None:
    dog = make(data_timeout=60, start=0.0)
    assert dog.check(60.0) is not None
    assert dog.check(61.0) == StaleVerdict("data", 61.0)
    dog.on_ping_sent(0.5)
    dog.on_pong(0.7)
    dog.start(100.0)
    assert dog.last_pong_rtt is None
    assert dog.ping_due(100.0)
    assert dog.check(159.9) is None
    assert dog.next_deadline() == 100.0


@given(
    frames=st.lists(st.floats(0, 50), max_size=30).map(sorted),
    data_timeout=st.floats(1, 100),
)
def test_data_verdict_exactly_at_next_deadline(frames: list[float], data_timeout: float) -> None:
    dog = make(interval=1000, pong_timeout=2000, data_timeout=data_timeout, start=0.0)
    dog.on_ping_sent(0.0)
    dog.on_pong(0.0)
    last = 0.0
    for t in frames:
        if t >= last + data_timeout:
            break
        dog.on_frame(t)
        last = t
    deadline = dog.next_deadline()
    assert deadline is not None
    assert deadline == last + data_timeout
    verdict = dog.check(deadline)
    assert verdict is not None
    assert verdict.kind == "data"
    assert dog.check(deadline - max(1e-9, deadline * 1e-12)) is None


# ---------------------------------------------------------------- assets


def test_tracking_is_off_without_asset_timeout() -> None:
    dog = make(data_timeout=1000, start=0.0)
    dog.track(["a"], 0.0)
    assert dog.tracked == frozenset()
    dog.on_ping_sent(0.0)
    dog.on_pong(0.0)
    assert dog.next_deadline() == 10.0


def test_silent_assets_are_reported_together_once() -> None:
    dog = make(interval=100, pong_timeout=200, data_timeout=1000, asset_timeout=60, start=0.0)
    dog.on_ping_sent(0.0)
    dog.on_pong(0.0)
    dog.track(["a", "b", "c"], 0.0)
    dog.on_data(10.0, "a")
    dog.on_data(20.0, "b")
    dog.on_data(30.0, "c")
    dog.on_data(40.0, "a")
    assert dog.next_deadline() == 80.0  # b is the oldest
    dog.on_data(75.0, "c")
    assert dog.check(79.999) is None
    assert dog.check(80.0) == StaleVerdict("asset", 60.0, ("b",))
    assert dog.check(80.0) is None
    assert dog.next_deadline() == 100.0  # a at 40 + 60; ping at 100 too
    assert dog.check(135.0) == StaleVerdict("asset", 95.0, ("a", "c"))
    assert dog.silent_assets == {"a", "b", "c"}
    assert dog.tracked == {"a", "b", "c"}
    assert dog.check(500.0) is None  # each reported once while it stays silent


def test_a_silent_asset_is_reported_again_after_it_spoke() -> None:
    dog = make(interval=100, pong_timeout=200, data_timeout=1000, asset_timeout=60, start=0.0)
    dog.track(["a"], 0.0)
    assert dog.check(60.0) == StaleVerdict("asset", 60.0, ("a",))
    dog.on_data(70.0, "a")
    assert dog.silent_assets == frozenset()
    assert dog.check(129.0) is None
    assert dog.check(130.0) == StaleVerdict("asset", 60.0, ("a",))


def test_track_keeps_existing_clocks_and_untrack_forgets() -> None:
    dog = make(interval=100, pong_timeout=200, data_timeout=1000, asset_timeout=60, start=0.0)
    dog.track(["a", "b"], 0.0)
    dog.track(["a", "c"], 50.0)  # a keeps its clock from 0
    dog.untrack(["b", "zz"])
    assert dog.tracked == {"a", "c"}
    assert dog.check(60.0) == StaleVerdict("asset", 60.0, ("a",))
    dog.untrack(["a"])
    assert dog.tracked == {"c"}
    dog.on_data(70.0, "a")  # untracked: no resurrection
    assert dog.tracked == {"c"}
    assert dog.check(110.0) == StaleVerdict("asset", 60.0, ("c",))


def test_start_restarts_asset_clocks() -> None:
    dog = make(interval=100, pong_timeout=200, data_timeout=1000, asset_timeout=60, start=0.0)
    dog.track(["a", "b"], 0.0)
    assert dog.check(60.0) is not None
    dog.start(200.0)
    assert dog.silent_assets == frozenset()
    assert dog.check(259.0) is None
    assert dog.check(260.0) == StaleVerdict("asset", 60.0, ("a", "b"))


def test_data_verdict_wins_over_asset_verdict() -> None:
    dog = make(interval=100, pong_timeout=200, data_timeout=60, asset_timeout=60, start=0.0)
    dog.on_ping_sent(0.0)
    dog.on_pong(0.0)
    dog.track(["a"], 0.0)
    assert dog.check(60.0) == StaleVerdict("data", 60.0)


def test_next_deadline_is_the_earliest_of_all_clocks() -> None:
    dog = make(interval=10, pong_timeout=30, data_timeout=25, asset_timeout=7, start=0.0)
    assert dog.next_deadline() == 0.0  # first PING
    dog.on_ping_sent(0.0)
    assert dog.next_deadline() == 10.0
    dog.track(["a"], 1.0)
    assert dog.next_deadline() == 8.0
    dog.on_data(5.0, "a")
    assert dog.next_deadline() == 10.0
    dog.on_ping_sent(10.0)
    dog.on_data(19.0, "a")
    assert dog.next_deadline() == 20.0
    dog.on_ping_sent(20.0)
    assert dog.next_deadline() == 26.0  # asset a
    assert dog.check(26.0) == StaleVerdict("asset", 7.0, ("a",))
    dog.on_ping_sent(30.0)
    # pong deadline (0 + 30) passed already; data 19 + 25 = 44 later
    assert dog.next_deadline() == 30.0
    assert dog.check(30.0) == StaleVerdict("pong", 30.0)


# ---------------------------------------------------------------- misc


def test_verdict_converts_to_the_error() -> None:
    error = StaleVerdict("asset", 61.5, ("a", "b")).error()
    assert isinstance(error, DataTimeoutError)
    assert (error.kind, error.silent_for, error.asset_ids) == ("asset", 61.5, ("a", "b"))


def test_repr_shows_the_state() -> None:
    dog = make(asset_timeout=60)
    assert repr(dog) == "Watchdog(stopped)"
    dog.start(1.0)
    dog.track(["a", "b"], 1.0)
    dog.on_ping_sent(1.0)
    dog.on_pong(1.25)
    dog.on_frame(2.0)
    assert repr(dog) == (
        "Watchdog(last_frame=2.000, last_pong=1.250, next_ping=11.000, unanswered_since=None, "
        "rtt=0.250, assets=2, silent_assets=0)"
    )
