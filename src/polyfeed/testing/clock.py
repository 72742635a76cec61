"""FakeClock: a deterministic :class:`polyfeed.aio.clock.Clock` that only moves when a test says so.

Sleepers park on futures keyed by deadline; :meth:`FakeClock.advance` moves time and wakes every
sleeper whose deadline passed, :meth:`FakeClock.run_for` walks time forward deadline by deadline
and lets the woken tasks run in between, so chains of timers fire in the right order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from polyfeed.errors import ConfigError

__all__ = ["FakeClock", "FakeTimer"]


class FakeTimer:
    """A callback scheduled with :meth:`FakeClock.call_at`; ``cancel()`` stops it."""

    __slots__ = ("_callback", "_fired", "_loop", "cancelled", "deadline")

    def __init__(
        self, deadline: float, callback: Callable[[], None], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.deadline = deadline
        self._callback = callback
        self._loop = loop
        self._fired = False
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback (no effect once it ran)."""
        self.cancelled = True

    def done(self) -> bool:
        """Whether it ran or was cancelled."""
        return self._fired or self.cancelled

    def _fire(self) -> bool:
        if self.done():
            return False
        self._fired = True
        # On the event loop, as asyncio's call_at would.
        self._loop.call_soon(self._run)
        return True

    def _run(self) -> None:
        if not self.cancelled:
            self._callback()

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "fired" if self._fired else "pending"
        return f"FakeTimer(deadline={self.deadline:g}, {state})"


class FakeClock:
    """Monotonic time that starts at ``start`` and moves only via :meth:`advance`/:meth:`run_for`.

    ``wall()`` is ``wall_start`` plus the elapsed fake time, so timestamps written out are
    deterministic too.
    """

    def __init__(self, start: float = 0.0, *, wall_start: float = 1_700_000_000.0) -> None:
        self._start = start
        self._now = start
        self._wall_start = wall_start
        self._sleepers: list[tuple[float, int, asyncio.Future[None] | FakeTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        """Fake monotonic seconds."""
        return self._now

    def wall(self) -> float:
        """Fake wall-clock epoch seconds: ``wall_start`` + elapsed fake time."""
        return self._wall_start + (self._now - self._start)

    async def sleep_until(self, deadline: float) -> None:
        """Return once fake time reaches ``deadline`` (a passed deadline still yields once)."""
        if deadline <= self._now:
            # A checkpoint, so a loop sleeping on passed deadlines cannot starve the event loop.
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of fake time."""
        await self.sleep_until(self._now + seconds)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> FakeTimer:
        """Run ``callback`` on the event loop once fake time reaches ``deadline``."""
        timer = FakeTimer(deadline, callback, asyncio.get_running_loop())
        if deadline <= self._now:
            timer._fire()
        else:
            heapq.heappush(self._sleepers, (deadline, next(self._order), timer))
        return timer

    @property
    def sleepers(self) -> int:
        """How many tasks are parked in :meth:`sleep_until` (cancelled ones excluded)."""
        return sum(
            1 for _, _, w in self._sleepers if isinstance(w, asyncio.Future) and not w.done()
        )

    @property
    def timers(self) -> int:
        """How many :meth:`call_at` callbacks are pending (cancelled ones excluded)."""
        return sum(1 for _, _, w in self._sleepers if isinstance(w, FakeTimer) and not w.done())

    def next_deadline(self) -> float | None:
        """The earliest pending deadline (sleeper or timer), or None."""
        self._discard_done()
        return self._sleepers[0][0] if self._sleepers else None

    def _discard_done(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    def _wake_due(self) -> int:
        woken = 0
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, waiter = heapq.heappop(self._sleepers)
            if isinstance(waiter, FakeTimer):
                woken += waiter._fire()
            elif not waiter.done():
                waiter.set_result(None)
                woken += 1
        return woken

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds`` and wake every due sleeper and timer; returns how
        many woke.

        The woken tasks and timer callbacks run when the test next yields to the loop (see
        :meth:`settle`).
        """
        if seconds < 0:
            raise ConfigError(f"cannot move a monotonic clock backwards ({seconds})")
        self._now += seconds
        return self._wake_due()

    async def settle(self, rounds: int = 20) -> None:
        """Yield to the event loop ``rounds`` times so woken tasks can run their next steps."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def run_for(self, seconds: float, *, rounds: int = 20) -> None:
        """Advance ``seconds`` deadline by deadline, settling after each wake-up.

        Timers that woken tasks set inside the window fire too, in deadline order; time ends at
        exactly ``now + seconds``.
        """
        if seconds < 0:
            raise ConfigError(f"cannot move a monotonic clock backwards ({seconds})")
        target = self._now + seconds
        await self.settle(rounds)
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > target:
                break
            self._now = max(self._now, deadline)
            self._wake_due()
            await self.settle(rounds)
        self._now = target
        self._wake_due()
        await self.settle(rounds)

    def __repr__(self) -> str:
        return (
            f"FakeClock(now={self._now:g}, wall={self.wall():.3f}, sleepers={self.sleepers}, "
            f"timers={self.timers})"
        )
