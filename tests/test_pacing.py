"""OpenPacer: turns never closer than the current interval; a 429 slows and holds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyfeed.core.pacing import OpenPacer
from polyfeed.errors import ConfigError

STEP = st.tuples(
    st.sampled_from(["take", "throttled", "succeeded"]),
    st.floats(0, 0.5),
    st.none() | st.floats(0, 2),
)


@given(st.floats(0, 1), st.lists(STEP, max_size=60))
def test_turns_respect_the_pace_and_429_holds(
    interval: float, steps: list[tuple[str, float, float | None]]
) -> None:
    pacer = OpenPacer(interval, max_interval=5.0)
    now = 0.0
    last_turn: float | None = None
    hold_until = 0.0
    for op, advance, retry_after in steps:
        now += advance
        if op == "take":
            at = pacer.take(now)
            assert at >= now
            assert at >= hold_until - 1e-9
            if last_turn is not None:
                assert at - last_turn >= interval - 1e-9
            last_turn = at
        elif op == "throttled":
            before = pacer.interval
            pacer.throttled(now, retry_after)
            assert pacer.interval >= before
            hold_until = max(hold_until, now + (retry_after or 0.0))
        else:
            pacer.succeeded()
        assert interval <= pacer.interval <= max(5.0, interval)


def test_a_429_doubles_the_interval_and_success_recovers() -> None:
    pacer = OpenPacer(0.1, max_interval=1.0)
    assert [pacer.take(0.0) for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    pacer.throttled(0.2, retry_after=0.5)
    assert pacer.interval == pytest.approx(0.2)
    assert pacer.take(0.2) == pytest.approx(0.7)
    assert pacer.take(0.2) == pytest.approx(0.9)
    pacer.succeeded()
    assert pacer.interval == pytest.approx(0.1)
    pacer.succeeded()
    assert pacer.interval == pytest.approx(0.1)


def test_invalid_settings() -> None:
    with pytest.raises(ConfigError):
        OpenPacer(-1)
    with pytest.raises(ConfigError):
        OpenPacer(1, slowdown=0.5)
    with pytest.raises(ConfigError):
        OpenPacer(1, max_interval=0.5)
