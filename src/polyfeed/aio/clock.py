"""The clock seam: monotonic time for intervals, wall time for timestamps written out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None:
        """Do not run the callback."""
        ...


class Clock(Protocol):
    """What the I/O layer needs of time. Tests inject ``polyfeed.testing.FakeClock``."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall(self) -> float:
        """Wall-clock epoch seconds (only for timestamps written out)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline``."""
        ...

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once ``now() >= deadline`` (on the event loop)."""
        ...


class LoopClock:
    """The running event loop's monotonic clock."""

    def now(self) -> float:
        """Monotonic seconds from the event loop."""
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        """Wall-clock epoch seconds."""
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the loop time reaches ``deadline``."""
        # A loop: asyncio may run the timer up to its clock resolution early.
        delay = deadline - self.now()
        while delay > 0:
            await asyncio.sleep(delay)
            delay = deadline - self.now()

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        """Schedule ``callback`` at loop time ``deadline``."""
        return asyncio.get_running_loop().call_at(deadline, callback)

    def __repr__(self) -> str:
        return "LoopClock()"
