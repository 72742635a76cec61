"""Backoff: fast first retry, bounds, growth, cap, stable-gated reset, Retry-After, limits."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyfeed.config import BackoffConfig
from polyfeed.core.backoff import Backoff
from polyfeed.errors import ConnectError, RetriesExhaustedError


def zero() -> float:
    return 0.0


def almost_one() -> float:
    return 0.999999


def make(rng: Callable[[], float] = zero, **overrides: Any) -> Backoff:
    return Backoff(BackoffConfig(**overrides), rng)


@given(
    base=st.floats(0.01, 10),
    factor=st.floats(1, 1000),
    jitter=st.floats(0, 1),
    failures=st.integers(1, 80),
    seed=st.integers(0, 2**32),
)
def test_every_delay_lies_within_its_bounds(
    base: float, factor: float, jitter: float, failures: int, seed: int
) -> None:
    backoff = make(random.Random(seed).random, base=base, max_delay=base * factor, jitter=jitter)
    for n in range(1, failures + 1):
        delay = backoff.next_delay()
        high = min(base * factor, base * 2 ** (n - 1))
        assert high * (1 - jitter) <= delay <= high
        assert backoff.attempt == n
        assert backoff.current_delay == delay


@given(
    first_retry_max=st.floats(0, 1),
    jitter=st.floats(0, 1),
    failures=st.integers(1, 30),
    seed=st.integers(0, 2**32),
)
def test_after_a_connection_that_delivered_data_the_first_retry_is_fast(
    first_retry_max: float, jitter: float, failures: int, seed: int
) -> None:
    backoff = make(
        random.Random(seed).random,
        base=1,
        max_delay=60,
        jitter=jitter,
        first_retry_max=first_retry_max,
        stable_for=30,
    )
    backoff.connected(0.0)
    backoff.disconnected(100.0, delivered=True)
    assert 0 <= backoff.next_delay() <= first_retry_max
    # Then exponential from base, as if the fast retry were retry zero.
    for step in range(1, failures):
        high = min(60, 2 ** (step - 1))
        assert high * (1 - jitter) <= backoff.next_delay() <= high


def test_fast_first_retry_is_full_jitter_over_the_window() -> None:
    delays = []
    for draw in (0.0, 0.5, 0.999):
        backoff = make(functools.partial(float, draw))
        backoff.connected(0.0)
        backoff.disconnected(1.0, delivered=True)
        delays.append(backoff.next_delay())
    assert delays == pytest.approx([0.0, 0.125, 0.24975])


def test_no_fast_retry_without_data_or_when_disabled() -> None:
    silent = make(base=1, jitter=0)
    silent.connected(0.0)
    silent.disconnected(100.0, delivered=False)  # e.g. died before its first frame
    assert silent.next_delay() == 1
    refused = make(base=1, jitter=0)  # no connection at all: a refused first handshake
    assert refused.next_delay() == 1
    disabled = make(base=1, jitter=0, first_retry_max=None)
    disabled.connected(0.0)
    disabled.disconnected(100.0, delivered=True)
    assert disabled.next_delay() == 1


def test_shipped_defaults_reconnect_within_a_quarter_second_after_a_clean_failure() -> None:
    """Issue 7, defect 11: every retry used to add up to 1 s of jitter on top of a 1 s base."""
    backoff = Backoff(BackoffConfig(), almost_one)
    backoff.connected(0.0)
    backoff.disconnected(5.0, delivered=True)  # a server close or TCP drop, 5 s in
    assert backoff.next_delay() < 0.25
    # A second failure in a row backs off: 0.5-1 s, then 1-2 s.
    assert 0.5 <= backoff.next_delay() <= 1.0
    assert 1.0 <= backoff.next_delay() <= 2.0


@given(seed=st.integers(0, 2**32))
def test_a_server_that_closes_every_connection_at_once_gets_few_connections(seed: int) -> None:
    """Accept, send a snapshot, close: only the first retry is fast; the stable gate holds."""
    backoff = Backoff(BackoffConfig(), random.Random(seed).random)
    now = 0.0
    connections = 0
    while now < 600.0:
        connections += 1
        backoff.connected(now)
        now += 0.05
        backoff.disconnected(now, delivered=True)
        now += backoff.next_delay()
    # One fast retry, six exponential steps (at least 31.5 s), then one per 30-60 s: at most
    # 7 + 600 / 30 = 27. Resetting the counter on data would make about 3,000.
    assert connections <= 27


@given(at_least=st.floats(0, 1000), failures=st.integers(1, 20), seed=st.integers(0, 2**32))
def test_retry_after_is_a_floor(at_least: float, failures: int, seed: int) -> None:
    backoff = make(random.Random(seed).random, base=1, max_delay=60, jitter=0.5)
    for _ in range(failures - 1):
        backoff.next_delay()
    delay = backoff.next_delay(at_least=at_least)
    high = min(60, 2 ** (failures - 1))
    assert max(at_least, high / 2) <= delay <= max(at_least, high)


def test_delays_double_from_base_to_the_cap_without_jitter() -> None:
    backoff = make(base=1, max_delay=60, jitter=0)
    delays = [backoff.next_delay() for _ in range(9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_jitter_takes_a_fraction_off_the_delay() -> None:
    backoff = make(lambda: 0.25, base=2, max_delay=60, jitter=0.5)
    assert backoff.next_delay() == 2 * (1 - 0.125)
    assert backoff.next_delay() == 4 * (1 - 0.125)


def test_retry_after_beyond_the_cap_is_honoured() -> None:
    backoff = make(lambda: 0.5, base=1, max_delay=60, jitter=0.5)
    assert backoff.next_delay(at_least=120) == 120
    # Retry-After below the exponential delay changes nothing.
    assert backoff.next_delay(at_least=0.5) == 2 * 0.75


def test_nan_retry_after_is_ignored() -> None:
    backoff = make(base=1, jitter=0)
    assert backoff.next_delay(at_least=float("nan")) == 1


def test_seeded_rng_makes_the_sequence_reproducible() -> None:
    first = make(random.Random(42).random, jitter=1)
    second = make(random.Random(42).random, jitter=1)
    other = make(random.Random(43).random, jitter=1)
    a = [first.next_delay() for _ in range(10)]
    assert a == [second.next_delay() for _ in range(10)]
    assert a != [other.next_delay() for _ in range(10)]


def test_zero_jitter_makes_the_rng_irrelevant() -> None:
    backoff = make(almost_one, base=0.5, max_delay=3, jitter=0, first_retry_max=None)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1, 2, 3, 3]


def test_huge_attempt_counts_stay_at_the_cap() -> None:
    backoff = make(base=1, max_delay=60, jitter=0)
    backoff.attempt = 5000
    assert backoff.next_delay() == 60
    assert backoff.base_delay(0) == 0.0


def test_flapping_server_grows_delays_to_the_cap_not_pinned_at_base() -> None:
    """Accept-then-close at once: each connection lasts 0.1 s, far below stable_for."""
    backoff = make(base=1, max_delay=60, jitter=0, stable_for=30)
    now = 0.0
    delays = []
    for _ in range(10):
        backoff.connected(now)
        now += 0.1
        backoff.disconnected(now)
        delay = backoff.next_delay()
        delays.append(delay)
        now += delay
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_disconnect_resets_only_after_stable_for() -> None:
    backoff = make(base=1, jitter=0, stable_for=30)
    for _ in range(4):
        backoff.next_delay()
    backoff.connected(100.0)
    backoff.disconnected(129.999)
    assert backoff.attempt == 4
    assert backoff.next_delay() == 16

    backoff.connected(200.0)
    backoff.disconnected(230.0)  # exactly stable_for: stable
    assert backoff.attempt == 0
    assert backoff.next_delay() == 1

    # A stable connection that delivered data earns the fast first retry again.
    for _ in range(3):
        backoff.next_delay()
    backoff.connected(300.0)
    backoff.disconnected(330.0, delivered=True)
    assert backoff.next_delay() == 0.0  # rng() * first_retry_max with rng = 0
    assert backoff.next_delay() == 1


def test_healthy_resets_once_stable_for_has_elapsed_while_connected() -> None:
    backoff = make(base=1, jitter=0, stable_for=30)
    for _ in range(3):
        backoff.next_delay()
    backoff.connected(10.0)
    backoff.healthy(39.0)
    assert backoff.attempt == 3
    backoff.healthy(40.0)
    assert backoff.attempt == 0


def test_healthy_and_disconnected_without_a_connection_change_nothing() -> None:
    backoff = make(base=1, jitter=0, stable_for=0)
    backoff.next_delay()
    backoff.healthy(1e9)
    backoff.disconnected(1e9)
    assert backoff.attempt == 1


def test_a_failure_forgets_the_previous_connection() -> None:
    backoff = make(base=1, jitter=0, stable_for=30)
    backoff.connected(0.0)
    backoff.next_delay()  # it failed without disconnected() being called
    backoff.healthy(100.0)
    assert backoff.attempt == 1


def test_max_attempts_counts_failed_attempts_and_raises_with_the_last_error() -> None:
    backoff = make(base=1, jitter=0, max_attempts=3)
    assert backoff.retries_left == 2
    assert backoff.next_delay() == 1
    assert backoff.next_delay() == 2
    assert not backoff.exhausted
    assert backoff.retries_left == 0
    cause = ConnectError("ws://127.0.0.1:1", "refused")
    with pytest.raises(RetriesExhaustedError) as info:
        backoff.next_delay(last_error=cause)
    assert info.value.attempts == 3
    assert info.value.last_error is cause
    assert backoff.exhausted
    with pytest.raises(RetriesExhaustedError):
        backoff.next_delay()


def test_max_attempts_one_means_no_retry() -> None:
    backoff = make(max_attempts=1)
    with pytest.raises(RetriesExhaustedError):
        backoff.next_delay()


def test_a_stable_connection_restores_the_attempt_budget() -> None:
    backoff = make(base=1, jitter=0, max_attempts=2, stable_for=5)
    backoff.next_delay()
    backoff.connected(0.0)
    backoff.disconnected(5.0)
    assert not backoff.exhausted
    assert backoff.retries_left == 1
    assert backoff.next_delay() == 1


def test_unlimited_attempts() -> None:
    backoff = make()
    for _ in range(100):
        backoff.next_delay()
    assert not backoff.exhausted
    assert backoff.retries_left is None


def test_reset() -> None:
    backoff = make(base=1, jitter=0)
    backoff.next_delay()
    backoff.next_delay()
    backoff.reset()
    assert (backoff.attempt, backoff.current_delay) == (0, 0.0)
    assert backoff.next_delay() == 1


def test_repr_shows_the_state() -> None:
    backoff = make(base=1, jitter=0, max_attempts=5)
    assert repr(backoff) == "Backoff(attempt=0/5, current_delay=0.000)"
    backoff.next_delay()
    backoff.next_delay()
    backoff.connected(12.5)
    assert repr(backoff) == "Backoff(attempt=2/5, current_delay=2.000, connected_at=12.500)"
    assert "inf" in repr(make())
