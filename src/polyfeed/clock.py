"""The clock seam: monotonic time for intervals, wall time for timestamps written out."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


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
        delay = deadline - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    def __repr__(self) -> str:
        return "LoopClock()"
