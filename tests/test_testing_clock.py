"""FakeClock: time moves only when the test moves it; sleepers wake in deadline order."""

from __future__ import annotations

import asyncio

import pytest

from polyfeed.aio.clock import Clock
from polyfeed.errors import ConfigError
from polyfeed.testing.clock import FakeClock


def test_now_and_wall_start_where_told_and_move_together() -> None:
    clock = FakeClock(start=100.0, wall_start=1_700_000_000.0)
    assert (clock.now(), clock.wall()) == (100.0, 1_700_000_000.0)
    assert clock.advance(2.5) == 0
    assert (clock.now(), clock.wall()) == (102.5, 1_700_000_002.5)


async def test_it_is_a_clock() -> None:
    clock: Clock = FakeClock()
    assert clock.now() == 0.0
    clock.call_at(1.0, lambda: None).cancel()


async def test_advance_wakes_only_due_sleepers_in_deadline_order() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append(name)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(sleeper("late", 3.0))
        tg.create_task(sleeper("early", 1.0))
        tg.create_task(sleeper("middle", 2.0))
        await clock.settle()
        assert clock.sleepers == 3 and clock.next_deadline() == 1.0
        assert clock.advance(0.5) == 0
        await clock.settle()
        assert woke == []
        assert clock.advance(1.6) == 2  # now 2.1
        await clock.settle()
        assert woke == ["early", "middle"]
        assert clock.sleepers == 1
        clock.advance(1.0)
    assert woke == ["early", "middle", "late"]
    assert clock.next_deadline() is None


async def test_a_passed_deadline_returns_at_once_but_yields() -> None:
    clock = FakeClock(start=5.0)
    other_ran = asyncio.Event()

    async def other() -> None:
        other_ran.set()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(other())
        await clock.sleep_until(4.0)
        assert other_ran.is_set()  # the checkpoint let the other task run
    assert clock.now() == 5.0


async def test_cancelled_sleepers_are_skipped() -> None:
    clock = FakeClock()
    async with asyncio.TaskGroup() as tg:
        doomed = tg.create_task(clock.sleep(1.0))
        survivor = tg.create_task(clock.sleep(2.0))
        await clock.settle()
        doomed.cancel()
        await clock.settle()
        assert clock.sleepers == 1 and clock.next_deadline() == 2.0
        assert clock.advance(5.0) == 1
    assert doomed.cancelled() and survivor.done()


async def test_run_for_fires_chained_timers_at_their_deadlines() -> None:
    clock = FakeClock()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            await clock.sleep(0.3)
            ticks.append(round(clock.now(), 6))

    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(ticker())
        await clock.run_for(1.0)
        assert ticks == [0.3, 0.6, 0.9]
        assert clock.now() == 1.0
        await clock.run_for(0.2)
        assert ticks == [0.3, 0.6, 0.9, 1.2]
        task.cancel()


async def test_call_at_runs_callbacks_on_the_loop_in_deadline_order() -> None:
    clock = FakeClock()
    calls: list[str] = []
    late = clock.call_at(2.0, lambda: calls.append("late"))
    clock.call_at(1.0, lambda: calls.append("early"))
    cancelled = clock.call_at(1.5, lambda: calls.append("cancelled"))
    cancelled.cancel()
    assert clock.timers == 2 and clock.next_deadline() == 1.0
    assert clock.advance(1.6) == 1
    assert calls == []  # on the loop, not inside advance()
    await clock.settle()
    assert calls == ["early"]
    assert "pending" in repr(late)
    await clock.run_for(1.0)
    assert calls == ["early", "late"] and clock.timers == 0
    assert "fired" in repr(late) and "cancelled" in repr(cancelled)
    clock.call_at(0.0, lambda: calls.append("past"))  # a passed deadline runs soon
    await clock.settle()
    assert calls[-1] == "past"


async def test_a_timer_cancelled_after_firing_but_before_running_does_not_run() -> None:
    clock = FakeClock()
    calls: list[int] = []
    timer = clock.call_at(1.0, lambda: calls.append(1))
    clock.advance(1.0)
    timer.cancel()
    await clock.settle()
    assert calls == []


async def test_moving_backwards_raises() -> None:
    clock = FakeClock()
    with pytest.raises(ConfigError):
        clock.advance(-1.0)
    with pytest.raises(ConfigError):
        await clock.run_for(-1.0)


async def test_repr_shows_time_and_sleepers() -> None:
    clock = FakeClock(start=1.0, wall_start=10.0)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(clock.sleep(1.0))
        await clock.settle()
        assert repr(clock) == "FakeClock(now=1, wall=10.000, sleepers=1, timers=0)"
        task.cancel()
