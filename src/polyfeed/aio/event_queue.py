"""The bounded queue between a reader and its consumer.

``put`` never waits: the reader must keep draining the socket whatever the consumer does, so
heartbeats and deadlines never depend on the consumer. When the queue is full the overflow policy
decides; every dropped event is counted and the consumer is told with a ``Gap`` before the next
event it gets.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from polyfeed.config import QueueConfig
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    Order,
    PriceChange,
    TickSizeChange,
    Trade,
)
from polyfeed.errors import StreamClosedError
from polyfeed.events import Gap, is_lifecycle

logger = logging.getLogger("polyfeed.queue")


def event_assets(item: object) -> tuple[str, ...]:
    """The asset ids an event concerns (empty for lifecycle and global events)."""
    if isinstance(item, PriceChange):
        return tuple(dict.fromkeys(entry.asset_id for entry in item.price_changes))
    if isinstance(item, Book | LastTradePrice | TickSizeChange | BestBidAsk | Order | Trade):
        return (item.asset_id,)
    return ()


def event_time(item: object) -> float | None:
    """The server timestamp of a market/user event, in epoch seconds, if it has one."""
    timestamp = getattr(item, "timestamp", None)
    # Only epoch-ms values are trusted; anything else (seconds, test values) falls back to
    # the time of the drop.
    if isinstance(timestamp, int) and not isinstance(timestamp, bool) and timestamp > 10**11:
        return timestamp / 1000.0
    return None


_NOTHING: Any = object()


class _DropRecord:
    __slots__ = ("assets", "count", "ended", "started")

    def __init__(self) -> None:
        self.count = 0
        self.started: float | None = None
        self.ended: float | None = None
        self.assets: dict[str, None] = {}

    def add(self, item: object, wall: float) -> None:
        self.count += 1
        when = event_time(item)
        when = wall if when is None else when
        self.started = when if self.started is None else min(self.started, when)
        self.ended = when if self.ended is None else max(self.ended, when)
        for asset in event_assets(item):
            self.assets[asset] = None


class EventQueue:
    """A bounded FIFO with an overflow policy; one consumer."""

    def __init__(self, config: QueueConfig, wall: Callable[[], float]) -> None:
        self.config = config
        self._wall = wall
        self._items: deque[Any] = deque()
        self._kept: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._closed_error: BaseException | None = None
        self._closed = False
        self._drops: _DropRecord | None = None
        # How many queued items precede the pending Gap: 0 when the oldest were dropped; under
        # ``disconnect`` the newest are dropped, so the Gap waits behind what was queued then.
        self._gap_after = 0
        self._alarmed = False
        self.dropped = 0
        self.high_water = 0
        self.overflowed = False
        alarm = config.alarm_at
        self._alarm_at = alarm if alarm is not None else max(1, (config.maxsize * 8) // 10)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<EventQueue {state} {len(self._items)}/{self.config.maxsize} "
            f"policy={self.config.overflow} dropped={self.dropped} high_water={self.high_water}>"
        )

    def __len__(self) -> int:
        return len(self._items) + len(self._kept)

    def put_many(self, items: Iterable[Any]) -> bool:
        """Enqueue without waiting. False when the ``disconnect`` policy asks for a reconnect."""
        if self._closed:
            return True
        queue = self._items
        maxsize = self.config.maxsize
        ok = True
        for item in items:
            if len(queue) >= maxsize:
                if self.config.overflow == "disconnect":
                    self.overflowed = True
                    ok = False
                    if not is_lifecycle(item):
                        self._record_drop(item, newest=True)
                        continue
                    # Lifecycle events are never dropped: this one goes in over the limit.
                else:
                    self._evict_oldest()
            queue.append(item)
        size = len(queue)
        if size > self.high_water:
            self.high_water = size
        if size >= self._alarm_at and not self._alarmed:
            self._alarmed = True
            logger.warning(
                "consumer is falling behind: %d of %d queue slots used (policy %s)",
                size,
                maxsize,
                self.config.overflow,
            )
        elif self._alarmed and size < self._alarm_at // 2:
            self._alarmed = False
        if size:
            self._ready.set()
        return ok

    def _evict_oldest(self) -> None:
        queue = self._items
        while queue:
            victim = queue.popleft()
            if is_lifecycle(victim):
                # Lifecycle events are rare and say what happened to the stream: keep them.
                self._kept.append(victim)
                continue
            self._record_drop(victim, newest=False)
            return

    def _record_drop(self, item: object, *, newest: bool) -> None:
        if self._drops is None:
            self._drops = _DropRecord()
            self._gap_after = len(self._items) if newest else 0
            logger.warning("consumer queue full: dropping events (policy %s)", self.config.overflow)
        self._drops.add(item, self._wall())
        self.dropped += 1

    def close(self, error: BaseException | None = None) -> None:
        """No more items; the consumer drains what is queued, then gets ``error`` (or stops)."""
        self._closed = True
        self._closed_error = error
        self._ready.set()

    def take_gap(self) -> Gap | None:
        """A ``Gap`` for the events dropped since the last call, if any."""
        drops, self._drops = self._drops, None
        if drops is None:
            return None
        wall = self._wall()
        return Gap(
            started=drops.started if drops.started is not None else wall,
            ended=drops.ended if drops.ended is not None else wall,
            assets=list(drops.assets),
            reason="consumer queue overflow",
            dropped=drops.count,
        )

    def _pop(self) -> Any:
        """The next item in delivery order, or ``_NOTHING``."""
        if self._kept:
            return self._kept.popleft()
        if self._gap_after == 0 or not self._items:
            gap = self.take_gap()
            if gap is not None:
                return gap
        if self._items:
            if self._gap_after:
                self._gap_after -= 1
            return self._items.popleft()
        return _NOTHING

    async def get(self) -> Any:
        """The next item; a pending drop ``Gap`` comes where the drop happened (first, when the
        oldest were dropped). Raises when closed and drained."""
        items = self._items
        if items and self._drops is None and not self._kept:
            # Hot path: nothing dropped, nothing kept aside.
            item = items.popleft()
            if not items and not self._closed:
                self._ready.clear()
            return item
        while True:
            item = self._pop()
            if item is not _NOTHING:
                if not self._items and not self._kept and not self._closed:
                    self._ready.clear()
                return item
            if self._closed:
                if self._closed_error is not None:
                    raise self._closed_error
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()

    def get_nowait(self) -> Any:
        """The next item without waiting; raises ``StreamClosedError`` when nothing is queued."""
        item = self._pop()
        if item is _NOTHING:
            raise StreamClosedError("no event queued")
        return item
