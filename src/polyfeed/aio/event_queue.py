"""The bounded queue between a reader and its consumer.

``put`` never waits: the reader must keep draining the socket whatever the consumer does, so
heartbeats and deadlines never depend on the consumer. When the queue is full the overflow policy
decides; every dropped event is counted and the consumer is told with a ``Gap`` before the next
event it gets. Lifecycle events are never dropped silently: neighbours of one kind merge, and past
a hard cap the queued ones collapse into one summary ``Gap`` (see :class:`EventQueue`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, assert_never

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
from polyfeed.errors import ConfigError, StreamClosedError
from polyfeed.events import (
    AssetChecked,
    BookInvalidated,
    BookResynced,
    Connected,
    ConnectionReplaced,
    Disconnected,
    Gap,
    LifecycleEvent,
    Reconnecting,
    Redundancy,
    Resubscribed,
    Stale,
    is_lifecycle,
)

LIFECYCLE_CAP = 256
"""Default hard cap on lifecycle events queued at once (see :class:`EventQueue`)."""

COLLAPSED_REASON = "lifecycle overflow"
"""``Gap.reason`` of the summary gap that stands for collapsed lifecycle events."""

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


def coalesce(older: object, newer: object) -> object | None:
    """The one event that stands for ``older`` immediately followed by ``newer``, or None.

    Only neighbours merge, so no event moves past another: consecutive ``Reconnecting`` keep the
    latest attempt and delay; consecutive ``BookInvalidated`` of one reason (``BookResynced`` of
    one source) carry both lists of asset ids, each id once.
    """
    if isinstance(newer, Reconnecting) and isinstance(older, Reconnecting):
        return newer
    if (
        isinstance(newer, BookInvalidated)
        and isinstance(older, BookInvalidated)
        and older.reason == newer.reason
    ):
        return BookInvalidated(
            asset_ids=_union(older.asset_ids, newer.asset_ids), reason=newer.reason
        )
    if (
        isinstance(newer, BookResynced)
        and isinstance(older, BookResynced)
        and older.source == newer.source
    ):
        return BookResynced(asset_ids=_union(older.asset_ids, newer.asset_ids), source=newer.source)
    return None


def _union(first: list[str], second: list[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def lifecycle_assets(event: LifecycleEvent) -> list[str]:
    """The asset ids a lifecycle event names (empty for connection events)."""
    match event:
        case Gap(assets=assets) | Resubscribed(assets=assets):
            return assets
        case BookInvalidated(asset_ids=assets) | BookResynced(asset_ids=assets):
            return assets
        case Stale(asset_ids=assets):
            return assets
        case Connected() | Disconnected() | Reconnecting() | Redundancy():
            return []
        case AssetChecked(asset_ids=assets) | ConnectionReplaced(asset_ids=assets):
            return assets
        case _:
            assert_never(event)


class EventQueue:
    """A bounded FIFO with an overflow policy; one consumer.

    The bound: at any time at most ``config.maxsize`` market/user events and at most
    ``lifecycle_cap`` lifecycle events are queued (``len(queue) <= maxsize + lifecycle_cap``),
    plus one pending drop record (a count, a time span and the distinct asset ids dropped). A
    lifecycle event names each asset id at most once, so memory is bounded by the stream's
    assets, ``maxsize`` and ``lifecycle_cap`` however long the consumer stalls and however often
    the link flaps.

    How lifecycle events stay within it, in delivery order and never silently lost:

    - neighbours merge (:func:`coalesce`): consecutive ``Reconnecting`` keep the latest;
      consecutive ``BookInvalidated`` of one reason, ``BookResynced`` of one source, become one
      event with all the asset ids;
    - when a full queue drops market events, the lifecycle events among them are kept aside (and
      merge there with their new neighbours);
    - a lifecycle event that would exceed ``lifecycle_cap`` collapses every queued lifecycle
      event, itself and any pending drop record into one summary ``Gap`` (reason
      ``"lifecycle overflow"``, ``collapsed`` = how many lifecycle events it stands for, the union
      of their assets, the span since the oldest of them) delivered before what remains queued.
    """

    def __init__(
        self,
        config: QueueConfig,
        wall: Callable[[], float],
        *,
        lifecycle_cap: int = LIFECYCLE_CAP,
    ) -> None:
        if lifecycle_cap < 1:
            raise ConfigError(f"lifecycle_cap must be >= 1, got {lifecycle_cap!r}")
        self.config = config
        self.lifecycle_cap = lifecycle_cap
        self._wall = wall
        self._items: deque[Any] = deque()
        # Lifecycle events rescued from dropped stretches: all delivered before ``_items``.
        self._kept: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._closed_error: BaseException | None = None
        self._closed = False
        self._drops: _DropRecord | None = None
        # How many queued items precede the pending Gap: 0 when the oldest were dropped; under
        # ``disconnect`` the newest are dropped, so the Gap waits behind what was queued then.
        self._gap_after = 0
        self._alarmed = False
        # Lifecycle events in ``_items`` and ``_kept``, and the wall time since when (at least)
        # one has been queued: the start of a summary gap.
        self._lifecycle = 0
        self._lifecycle_since: float | None = None
        self.dropped = 0
        self.high_water = 0
        self.overflowed = False
        self.coalesced = 0
        self.collapses = 0
        alarm = config.alarm_at
        self._alarm_at = alarm if alarm is not None else max(1, (config.maxsize * 8) // 10)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<EventQueue {state} {len(self._items)}/{self.config.maxsize} "
            f"policy={self.config.overflow} dropped={self.dropped} high_water={self.high_water} "
            f"lifecycle={self._lifecycle}/{self.lifecycle_cap} coalesced={self.coalesced} "
            f"collapses={self.collapses}>"
        )

    def __len__(self) -> int:
        return len(self._items) + len(self._kept)

    @property
    def lifecycle_queued(self) -> int:
        """Lifecycle events queued now (at most ``lifecycle_cap``)."""
        return self._lifecycle

    def put_many(self, items: Iterable[Any]) -> bool:
        """Enqueue without waiting. False when the ``disconnect`` policy asks for a reconnect."""
        if self._closed:
            return True
        queue = self._items
        maxsize = self.config.maxsize
        ok = True
        for item in items:
            if is_lifecycle(item):
                if self._merge_at_tail(item):
                    continue
                if len(queue) >= maxsize:
                    if self.config.overflow == "disconnect":
                        # Over the limit rather than dropped; ``lifecycle_cap`` bounds these.
                        self.overflowed = True
                        ok = False
                    else:
                        self._evict_oldest()
                queue.append(item)
                self._lifecycle_added()
                continue
            if len(queue) >= maxsize:
                if self.config.overflow == "disconnect":
                    self.overflowed = True
                    ok = False
                    self._record_drop(item, newest=True)
                    continue
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
        if size or self._kept:
            self._ready.set()
        return ok

    def _merge_at_tail(self, item: object) -> bool:
        """Merge ``item`` into the event delivered just before it, if that one is its kind."""
        items = self._items
        if items:
            if self._drops is not None and len(items) <= self._gap_after:
                return False  # the pending drop Gap comes between
            tail: deque[Any] = items
        elif self._kept and self._drops is None:
            tail = self._kept
        else:
            return False
        merged = coalesce(tail[-1], item)
        if merged is None:
            return False
        tail[-1] = merged
        self.coalesced += 1
        return True

    def _lifecycle_added(self) -> None:
        if not self._lifecycle:
            self._lifecycle_since = self._wall()
        self._lifecycle += 1
        if self._lifecycle > self.lifecycle_cap:
            self._collapse()

    def _lifecycle_taken(self) -> None:
        self._lifecycle -= 1
        if not self._lifecycle:
            self._lifecycle_since = None

    def _collapse(self) -> None:
        folded: list[LifecycleEvent] = list(self._kept)
        kept_data: deque[Any] = deque()
        for item in self._items:
            if is_lifecycle(item):
                folded.append(item)
            else:
                kept_data.append(item)
        wall = self._wall()
        started = self._lifecycle_since if self._lifecycle_since is not None else wall
        ended = wall
        assets: dict[str, None] = {}
        dropped = 0
        collapsed = 0
        for event in folded:
            if isinstance(event, Gap):
                started = min(started, event.started)
                ended = max(ended, event.ended)
                dropped += event.dropped
                collapsed += event.collapsed or 1
            else:
                collapsed += 1
            assets.update(dict.fromkeys(lifecycle_assets(event)))
        drops, self._drops = self._drops, None
        if drops is not None:
            # The drop record is folded in too: one summary for everything the consumer missed.
            dropped += drops.count
            started = min(started, drops.started if drops.started is not None else wall)
            ended = max(ended, drops.ended if drops.ended is not None else wall)
            assets.update(drops.assets)
        self._gap_after = 0
        # In place: ``put_many`` holds a reference to this deque.
        self._items.clear()
        self._items.extend(kept_data)
        self._kept.clear()
        self._kept.append(
            Gap(
                started=started,
                ended=ended,
                assets=list(assets),
                reason=COLLAPSED_REASON,
                dropped=dropped,
                collapsed=collapsed,
            )
        )
        self._lifecycle = 1
        self.collapses += 1
        logger.warning(
            "consumer stalled: %d lifecycle events on %d asset(s) collapsed into one gap "
            "(lifecycle_cap %d)",
            collapsed,
            len(assets),
            self.lifecycle_cap,
        )

    def _evict_oldest(self) -> None:
        queue = self._items
        while queue:
            victim = queue.popleft()
            if is_lifecycle(victim):
                # Lifecycle events say what happened to the stream: keep them, merged with
                # their new neighbour when they can be.
                kept = self._kept
                merged = coalesce(kept[-1], victim) if kept else None
                if merged is None:
                    kept.append(victim)
                else:
                    kept[-1] = merged
                    self.coalesced += 1
                    self._lifecycle_taken()
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
            self._lifecycle_taken()
            return self._kept.popleft()
        if self._gap_after == 0 or not self._items:
            gap = self.take_gap()
            if gap is not None:
                return gap
        if self._items:
            if self._gap_after:
                self._gap_after -= 1
            item = self._items.popleft()
            if self._lifecycle and is_lifecycle(item):
                self._lifecycle_taken()
            return item
        return _NOTHING

    async def get(self) -> Any:
        """The next item; a pending drop ``Gap`` comes where the drop happened (first, when the
        oldest were dropped). Raises when closed and drained."""
        items = self._items
        if items and self._drops is None and not self._kept:
            # Hot path: nothing dropped, nothing kept aside.
            item = items.popleft()
            if self._lifecycle and is_lifecycle(item):
                self._lifecycle_taken()
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
