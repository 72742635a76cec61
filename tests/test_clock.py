"""LoopClock: the running loop's monotonic time, sleep_until and call_at (tiny intervals)."""

from __future__ import annotations

import asyncio
import time

import pytest

from polyfeed.aio.clock import Clock, LoopClock


def test_loop_clock_satisfies_the_clock_protocol() -> None:
    clock: Clock = LoopClock()
    assert repr(clock) == "LoopClock()"


async def test_now_is_the_loop_time_and_wall_is_epoch() -> None:
    clock = LoopClock()
    loop = asyncio.get_running_loop()
    before = loop.time()
    now = clock.now()
    assert before <= now <= loop.time()
    assert abs(clock.wall() - time.time()) < 1.0


def test_now_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        LoopClock().now()


async def test_sleep_until_returns_at_or_after_the_deadline() -> None:
    clock = LoopClock()
    for delay in (0.001, 0.01, 0.02):
        deadline = clock.now() + delay
        await clock.sleep_until(deadline)
        assert clock.now() >= deadline
        assert clock.now() - deadline < 0.5


async def test_sleep_until_a_past_deadline_does_not_sleep() -> None:
    clock = LoopClock()
    start = clock.now()
    await clock.sleep_until(start - 100.0)
    await clock.sleep_until(start)
    assert clock.now() - start < 0.05


async def test_sleep_until_can_be_cancelled() -> None:
    clock = LoopClock()
    task = asyncio.ensure_future(clock.sleep_until(clock.now() + 60.0))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_call_at_runs_once_after_the_deadline() -> None:
    clock = LoopClock()
    fired: list[float] = []
    done = asyncio.Event()

    def callback() -> None:
        fired.append(clock.now())
        done.set()

    deadline = clock.now() + 0.01
    clock.call_at(deadline, callback)
    await asyncio.wait_for(done.wait(), 2.0)
    await asyncio.sleep(0.02)
    assert len(fired) == 1
    # The loop may run a timer up to its clock resolution early.
    resolution = asyncio.get_running_loop()._clock_resolution  # type: ignore[attr-defined]
    assert fired[0] >= deadline - resolution


async def test_call_at_handle_cancels() -> None:
    clock = LoopClock()
    fired: list[int] = []
    handle = clock.call_at(clock.now() + 0.005, lambda: fired.append(1))
    handle.cancel()
    await asyncio.sleep(0.02)
    assert fired == []


async def test_call_at_in_the_past_runs_soon() -> None:
    clock = LoopClock()
    done = asyncio.Event()
    clock.call_at(clock.now() - 1.0, done.set)
    await asyncio.wait_for(done.wait(), 1.0)


async def test_sleep_until_holds_its_promise_when_the_timer_wakes_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # asyncio runs timers up to one clock resolution early; a wake-up before the deadline must
    # not end the sleep (the ticker would act on a deadline that is not due yet).
    real_sleep = asyncio.sleep
    calls: list[float] = []

    async def early_sleep(delay: float) -> None:
        calls.append(delay)
        await real_sleep(delay / 2)

    monkeypatch.setattr("polyfeed.aio.clock.asyncio.sleep", early_sleep)
    clock = LoopClock()
    deadline = clock.now() + 0.02
    await clock.sleep_until(deadline)
    assert clock.now() >= deadline
    assert len(calls) >= 2
