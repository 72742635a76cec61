"""The pure order-heartbeat machine: id chain, invalid ids, timeouts, alarm before expiry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyfeed.core.heartbeat import (
    HeartbeatAlarm,
    HeartbeatExpired,
    HeartbeatMachine,
    HeartbeatRecovered,
    OrderHeartbeatConfig,
)
from polyfeed.errors import ConfigError, InvalidStateError

CONFIG = OrderHeartbeatConfig(
    interval=5.0, window=10.0, alarm_margin=3.0, retry_delay=0.5, request_timeout=1.0
)


def started() -> HeartbeatMachine:
    machine = HeartbeatMachine(CONFIG)
    machine.start(0.0)
    return machine


def test_the_chain_of_ids_and_the_cadence() -> None:
    machine = started()
    assert machine.beat_due(0.0)
    beat, sent = machine.begin_beat(0.0)
    assert sent == "" and not machine.beat_due(0.0)
    assert machine.accepted(beat, "id-1", 0.1)
    assert machine.state == "ok" and machine.time_left(0.1) == pytest.approx(10.0)
    # Next beat five seconds after the previous was sent, not after its answer.
    assert machine.next_deadline() == 5.0
    assert not machine.beat_due(4.99)
    beat, sent = machine.begin_beat(5.0)
    assert sent == "id-1"
    machine.accepted(beat, "id-2", 5.05)
    assert machine.heartbeat_id == "id-2" and machine.beats_accepted == 2


def test_an_invalid_id_is_retried_at_once_with_the_id_the_server_names() -> None:
    machine = started()
    beat, _ = machine.begin_beat(0.0)
    machine.accepted(beat, "id-1", 0.0)
    beat, sent = machine.begin_beat(5.0)
    assert machine.invalid_id(beat, "id-9", 5.01)
    assert machine.beat_due(5.01)
    beat, sent = machine.begin_beat(5.01)
    assert sent == "id-9" and machine.invalid_ids == 1
    machine.accepted(beat, "id-10", 5.02)
    assert machine.state == "ok" and machine.last_error is None


def test_a_stalled_endpoint_raises_the_alarm_before_the_window_closes() -> None:
    machine = started()
    beat, _ = machine.begin_beat(0.0)
    machine.accepted(beat, "id-1", 0.0)
    now = 5.0
    machine.handle_timer(now)
    beat, _ = machine.begin_beat(now)
    # No answer: given up at the request timeout, retried after retry_delay, and so on.
    while machine.state == "ok":
        deadline = machine.next_deadline()
        assert deadline is not None and deadline > now
        now = deadline
        machine.handle_timer(now)
        if machine.beat_due(now):
            beat, _ = machine.begin_beat(now)
    assert machine.state == "alarm" and now == pytest.approx(7.0)
    [alarm] = machine.events()
    assert isinstance(alarm, HeartbeatAlarm)
    assert alarm.time_left == pytest.approx(3.0) and "no answer" in alarm.reason
    # The late answer to a beat given up is ignored.
    assert not machine.accepted(1, "late", now)
    while machine.state == "alarm":
        deadline = machine.next_deadline()
        assert deadline is not None and deadline > now
        now = deadline
        machine.handle_timer(now)
        if machine.beat_due(now):
            beat, _ = machine.begin_beat(now)
    assert machine.state == "expired" and now == pytest.approx(10.0)
    assert [type(e) for e in machine.events()] == [HeartbeatExpired]
    assert machine.time_left(now) == pytest.approx(0.0)
    if not machine.in_flight:
        beat, _ = machine.begin_beat(now)
    machine.accepted(beat, "id-2", 10.5)
    [recovered] = machine.events()
    assert isinstance(recovered, HeartbeatRecovered) and recovered.silent_for == 10.5
    assert machine.alarms == 1 and machine.expiries == 1


def test_failures_retry_after_the_delay_and_nothing_alarms_before_the_first_accept() -> None:
    machine = started()
    beat, _ = machine.begin_beat(0.0)
    assert machine.failed(beat, "HTTP 503", 0.2)
    assert machine.next_deadline() == 0.7 and machine.last_error == "HTTP 503"
    machine.handle_timer(30.0)
    assert machine.state == "starting" and machine.events() == []
    assert machine.time_left(30.0) is None


def test_illegal_inputs_and_stop() -> None:
    machine = HeartbeatMachine(CONFIG)
    assert machine.next_deadline() is None and not machine.beat_due(0.0)
    with pytest.raises(InvalidStateError):
        machine.begin_beat(0.0)
    machine.start(0.0)
    with pytest.raises(InvalidStateError):
        machine.start(0.0)
    machine.begin_beat(0.0)
    with pytest.raises(InvalidStateError):
        machine.begin_beat(0.0)
    machine.stop()
    assert machine.state == "stopped" and machine.next_deadline() is None
    assert not machine.accepted(1, "x", 1.0)
    assert "stopped" in repr(machine)


def test_config_rejects_a_cadence_that_would_alarm_on_one_slow_beat() -> None:
    with pytest.raises(ConfigError):
        OrderHeartbeatConfig(interval=5.0, window=10.0, alarm_margin=3.0, request_timeout=2.5)
    with pytest.raises(ConfigError):
        OrderHeartbeatConfig(interval=0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["accept", "invalid", "fail", "late", "timer"]),
            st.floats(min_value=0.0, max_value=6.0),
        ),
        max_size=40,
    )
)
def test_after_handle_timer_something_is_due_later_or_a_beat_now(
    steps: list[tuple[str, float]],
) -> None:
    machine = started()
    now = 0.0
    for action, dt in steps:
        now += dt
        machine.handle_timer(now)
        if machine.beat_due(now):
            machine.begin_beat(now)
        deadline = machine.next_deadline()
        assert deadline is not None and deadline > now
        beat = machine.beats_sent
        match action:
            case "accept":
                machine.accepted(beat, f"id-{beat}", now)
            case "invalid":
                machine.invalid_id(beat, f"exp-{beat}", now)
            case "fail":
                machine.failed(beat, "x", now)
            case "late":
                machine.accepted(beat - 1, "stale", now)
            case _:
                pass
        machine.events()
        left = machine.time_left(now)
        if machine.state == "ok":
            assert left is not None and left > CONFIG.alarm_margin
