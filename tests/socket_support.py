"""Shared helpers of the RTDS, PolyBolt and sports stream tests (loopback, scaled-down times)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from polyfeed import BackoffConfig, StreamConfig

# Reconnects within a fraction of a second, without jitter, so the tests stay short.
FAST = StreamConfig(backoff=BackoffConfig(base=0.02, max_delay=0.1, jitter=0.0, stable_for=1.0))

EventT = TypeVar("EventT")


async def until(stream: AsyncIterator[Any], kind: type, limit: int = 5_000) -> Any:
    """The stream's next event of type ``kind``, the others skipped (at most ``limit``)."""
    for _ in range(limit):
        event = await anext(stream)
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} within {limit} events")


async def eventually(condition: Callable[[], bool], tries: int = 50, step: float = 0.02) -> None:
    """Wait until ``condition()`` holds, ``tries`` times ``step`` s at the most; the caller
    asserts it afterwards (so a failure shows what did not hold)."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(step)


async def first_kinds(
    stream: AsyncIterator[EventT], describe: Callable[[EventT], str], n: int = 3
) -> list[str]:
    """``describe`` of the stream's first ``n`` events."""
    return [describe(await anext(stream)) for _ in range(n)]
