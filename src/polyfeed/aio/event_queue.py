"""The bounded queue between a reader and its consumer.

``put`` never waits: the reader must keep draining the socket whatever the consumer does, so
heartbeats and deadlines never depend on the consumer. When the queue is full the overflow policy
decides; every dropped event is counted and the consumer is told with a ``Gap`` before the next
event it gets. Lifecycle events are never dropped silently: neighbours of one kind merge, and past
a hard cap the queued ones collapse into one summary ``Gap`` (see :class:`EventQueue`). The queue
is bounded in events and in bytes (estimated per event: :func:`estimate_size`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, assert_never

from polyfeed.config import LIFECYCLE_CAP, QueueConfig
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    Malformed,
    MarketResolved,
    NewMarket,
    Notice,
    Order,
    PriceChange,
    TickSizeChange,
    Trade,
    Unknown,
)
from polyfeed.errors import StreamClosedError
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

__all__ = [
    "COLLAPSED_REASON",
    "DROP_WARNING_INTERVAL",
    "FRAMES_PER_TURN",
    "LIFECYCLE_CAP",
    "EventQueue",
    "FeederTurns",
    "QueueIterator",
    "coalesce",
    "estimate_size",
    "event_assets",
    "event_time",
    "lifecycle_assets",
]

COLLAPSED_REASON = "lifecycle overflow"
"""``Gap.reason`` of the summary gap that stands for collapsed lifecycle events."""

DROP_WARNING_INTERVAL = 10.0
"""Seconds (on the queue's ``now`` clock, the stream's monotonic clock) between two "consumer
queue full" warnings; drops in between are counted and reported with the next one."""

logger = logging.getLogger("polyfeed.queue")


# --------------------------------------------------------------------------- size estimate
#
# Constants measured on the decoded real captures (tests/test_event_queue.py checks each
# estimate against a recursive ``sys.getsizeof`` of the event, which counts every string and
# list it holds). Fixed-shape events cost what their usual field lengths cost; events that hold
# lists or free text add a per-element or per-character term, so a huge book, a long raw
# ``Unknown`` or a lifecycle event naming thousands of assets is charged for its size.
_BOOK = 600
_BOOK_LEVEL = 150  # a Level and its two price/size strings
_PRICE_CHANGE = 200
_PRICE_CHANGE_ENTRY = 620  # an entry: 77-digit asset id, hash, price, size, side, best bid/ask
_TRADE = 1700
_MAKER_ORDER = 750
_NEW_MARKET = 1500
_TEXT_EVENT = 150  # Unknown, Malformed, Notice: the struct, plus one byte per character
_LIFECYCLE = 250
_ASSET_ID = 140  # a 77-digit token id and its list slot
_FIXED_SIZE: dict[type, int] = {
    LastTradePrice: 650,
    TickSizeChange: 550,
    BestBidAsk: 550,
    Order: 1500,
}


def _book_size(item: Book) -> int:
    return _BOOK + _BOOK_LEVEL * (len(item.bids) + len(item.asks))


def _trade_size(item: Trade) -> int:
    return _TRADE + _MAKER_ORDER * len(item.maker_orders)


def _new_market_size(item: NewMarket) -> int:
    ids = len(item.assets_ids) + len(item.clob_token_ids) + len(item.outcomes) + len(item.tags)
    text = len(item.description or "") + len(item.question or "")
    event = item.event_message
    if event is not None:
        text += len(event.description or "") + len(event.title or "")
    return _NEW_MARKET + _ASSET_ID * ids + text


def _market_resolved_size(item: MarketResolved) -> int:
    return _FIXED_SIZE[BestBidAsk] + _ASSET_ID * len(item.assets_ids)


def _unknown_size(item: Unknown) -> int:
    return _TEXT_EVENT + len(item.raw) + len(item.event_type or "")


def _malformed_size(item: Malformed) -> int:
    return _TEXT_EVENT + len(item.reason) + len(item.excerpt)


def _notice_size(item: Notice) -> int:
    return _TEXT_EVENT + len(item.text)


def _lifecycle_size(item: LifecycleEvent) -> int:
    return _LIFECYCLE + _ASSET_ID * len(lifecycle_assets(item))


_SIZERS: dict[type, Callable[[Any], int]] = {
    Book: _book_size,
    Trade: _trade_size,
    NewMarket: _new_market_size,
    MarketResolved: _market_resolved_size,
    Unknown: _unknown_size,
    Malformed: _malformed_size,
    Notice: _notice_size,
    **dict.fromkeys(
        (
            Connected,
            Disconnected,
            Reconnecting,
            Stale,
            Resubscribed,
            Gap,
            BookInvalidated,
            BookResynced,
            AssetChecked,
            ConnectionReplaced,
            Redundancy,
        ),
        _lifecycle_size,
    ),
}


def estimate_size(item: object) -> int:
    """The memory an event holds, estimated in O(1) from its type and the lengths of its lists
    and free text (``sys.getsizeof`` for anything that is not a polyfeed event).

    Within a factor of two of the event's full size (every object it references counted once) on
    every real capture and on events with thousands of levels, entries, assets or characters.
    It overestimates what merged lifecycle events really hold (their asset id strings are
    shared with the subscriptions) and underestimates free text outside ASCII (up to 4 bytes a
    character); frames are not kept, so their length plays no part.
    """
    kind = type(item)
    if kind is PriceChange:  # most of the feed: no call, no lookup
        return _PRICE_CHANGE + _PRICE_CHANGE_ENTRY * len(item.price_changes)  # type: ignore[attr-defined]
    fixed = _FIXED_SIZE.get(kind)
    if fixed is not None:
        return fixed
    sizer = _SIZERS.get(kind)
    if sizer is not None:
        return sizer(item)
    return sys.getsizeof(item)


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


FRAMES_PER_TURN = 512
"""Frames one loop turn processes for the connections feeding a queue (about one full read)."""


class FeederTurns:
    """The connections feeding one queue take turns processing what they read.

    In a burst on many sockets one loop turn reads every socket (asyncio reads 256 KiB, ~400
    frames, per socket). Processing each read in the next turn, as it was, queued all of their
    events before the consumer ran: 21,000 events on 50 sockets in ``bench_pool.py``, gone cold in
    memory by the time they were consumed, and the first of them waited for all the others. Here
    a turn processes waiting batches in the order they were read until ``frames_per_turn``
    frames, then yields one loop turn: the consumer's wake-up, scheduled when the first events
    were queued, runs in between. Under light load every batch still runs in the turn after its
    read; under a burst a batch waits at most (frames waiting ahead of it) / ``frames_per_turn``
    turns, and frames that arrive meanwhile join it (a larger batch, one hash check per book).
    """

    __slots__ = ("_call_soon", "_scheduled", "_waiting", "frames_per_turn", "turns")

    def __init__(
        self,
        frames_per_turn: int = FRAMES_PER_TURN,
        call_soon: Callable[[Callable[[], None]], object] | None = None,
    ) -> None:
        """``call_soon``: how to run a callback in the next loop turn (default: the running
        loop's, looked up when first needed)."""
        self.frames_per_turn = frames_per_turn
        self._call_soon = call_soon
        self._waiting: deque[Callable[[], int]] = deque()
        self._scheduled = False
        self.turns = 0

    def __repr__(self) -> str:
        return (
            f"<FeederTurns waiting={len(self._waiting)} scheduled={self._scheduled} "
            f"turns={self.turns} frames_per_turn={self.frames_per_turn}>"
        )

    def schedule(self, process: Callable[[], int]) -> None:
        """Run ``process`` (it returns how many frames it processed) in a coming loop turn."""
        self._waiting.append(process)
        if not self._scheduled:
            self._scheduled = True
            self._next_turn()

    def _next_turn(self) -> None:
        if self._call_soon is None:
            self._call_soon = asyncio.get_running_loop().call_soon
        self._call_soon(self._turn)

    def _turn(self) -> None:
        self._scheduled = False
        self.turns += 1
        waiting = self._waiting
        budget = self.frames_per_turn
        try:
            while waiting and budget > 0:
                budget -= waiting.popleft()()
        finally:
            # Even after an error escaped a batch: the batches behind it must not be stranded.
            if waiting and not self._scheduled:
                self._scheduled = True
                self._next_turn()


class EventQueue:
    """A bounded FIFO with an overflow policy; one consumer.

    The bound: at any time at most ``config.maxsize`` market/user events, of at most
    ``config.max_bytes`` estimated bytes together (:func:`estimate_size`; one larger event is
    still taken into an empty queue), and at most ``config.lifecycle_cap`` lifecycle events are
    queued (``len(queue) <= maxsize + lifecycle_cap``), plus one pending drop record (a count, a
    time span and the distinct asset ids dropped). A lifecycle event names each asset id at most
    once, so memory is bounded by the stream's assets, ``maxsize``, ``max_bytes`` and
    ``lifecycle_cap`` however long the consumer stalls and however often the link flaps.

    A consumer slower than the feed still gets the feed's recent events. Under ``drop_oldest``
    and ``buffer`` a full queue drops its oldest event for each new one, and the drops are
    reported by one ``Gap`` delivered before what remains. If the consumer has not emptied the
    queue since the previous drop gap (it is lagging, not hit by one burst), the next gap frees
    room: it also drops the oldest events down to ``config.low_water`` of the bounds, counted in
    it. The consumer then reads runs of consecutive recent events, each run preceded by one gap
    that says exactly what it missed. Under ``disconnect`` the newest event is dropped, the
    connection is torn down and :meth:`drained` holds the reconnect until the consumer has
    drained the queue to the low-water mark; each gap is delivered after the events queued
    before its drops and before anything queued after them (the next connection's data). The
    "consumer queue full" warning is logged at most once per :data:`DROP_WARNING_INTERVAL`
    seconds of the ``now`` clock.

    How lifecycle events stay within the bound, in delivery order and never silently lost:

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
        now: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.lifecycle_cap = config.lifecycle_cap
        self._wall = wall
        self._now = now if now is not None else wall
        self.turns = FeederTurns()
        self._items: deque[Any] = deque()
        # The estimated size of each item in ``_items`` (kept so a take needs no estimate), and
        # their sum.
        self._sizes: deque[int] = deque()
        self._bytes = 0
        # Lifecycle events rescued from dropped stretches: all delivered before ``_items``.
        self._kept: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._closed_error: BaseException | None = None
        self._closed = False
        self._drops: _DropRecord | None = None
        # How many queued items precede the pending Gap: 0 when the oldest were dropped; under
        # ``disconnect`` the newest are dropped, so the Gap waits behind what was queued then.
        self._gap_after = 0
        # A drop gap was delivered and the consumer has not emptied the queue since: the next
        # drop gap frees room.
        self._lagging = False
        self._drained: asyncio.Event | None = None
        # ``_lagging or _drained is not None``: whether a take must check the low-water mark.
        self._watch_takes = False
        self._low_items = config.low_water_items
        self._low_bytes = config.low_water_bytes
        self._alarmed = False
        self._warned_at: float | None = None
        self._dropped_at_warning = 0
        # Lifecycle events in ``_items`` and ``_kept``, and the wall time since when (at least)
        # one has been queued: the start of a summary gap.
        self._lifecycle = 0
        self._lifecycle_since: float | None = None
        self.dropped = 0
        self.high_water = 0
        self.overflowed = False
        self.coalesced = 0
        self.collapses = 0
        self.rooms_freed = 0
        alarm = config.alarm_at
        self._alarm_at = alarm if alarm is not None else max(1, (config.maxsize * 8) // 10)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<EventQueue {state} {len(self._items)}/{self.config.maxsize} "
            f"bytes={self._bytes}/{self.config.max_bytes} "
            f"policy={self.config.overflow} dropped={self.dropped} high_water={self.high_water} "
            f"lifecycle={self._lifecycle}/{self.lifecycle_cap} coalesced={self.coalesced} "
            f"collapses={self.collapses} rooms_freed={self.rooms_freed}>"
        )

    def __len__(self) -> int:
        return len(self._items) + len(self._kept)

    @property
    def lifecycle_queued(self) -> int:
        """Lifecycle events queued now (at most ``lifecycle_cap``)."""
        return self._lifecycle

    @property
    def queued_bytes(self) -> int:
        """Estimated bytes of the events queued now (lifecycle events set aside not counted)."""
        return self._bytes

    def put_many(self, items: Iterable[Any]) -> bool:
        """Enqueue without waiting. False when the ``disconnect`` policy asks for a reconnect."""
        if self._closed:
            return True
        queue = self._items
        sizes = self._sizes
        append = queue.append
        append_size = sizes.append
        maxsize = self.config.maxsize
        max_bytes = self.config.max_bytes
        total = self._bytes
        ok = True
        for item in items:
            if type(item) is PriceChange:  # most of the feed: estimate_size inlined
                size = _PRICE_CHANGE + _PRICE_CHANGE_ENTRY * len(item.price_changes)
                lifecycle = False
            else:
                size = estimate_size(item)
                lifecycle = is_lifecycle(item)
            if not lifecycle and (
                (len(queue) < maxsize and total + size <= max_bytes) or not queue
            ):
                append(item)
                append_size(size)
                total += size
                continue
            self._bytes = total
            if not self._put_one(item, size, lifecycle=lifecycle):
                ok = False
            total = self._bytes
        self._bytes = total
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

    def _put_one(self, item: object, size: int, *, lifecycle: bool) -> bool:
        """Enqueue a lifecycle event, or an event into a full queue; False: disconnect."""
        queue = self._items
        maxsize = self.config.maxsize
        max_bytes = self.config.max_bytes
        disconnect = self.config.overflow == "disconnect"
        if lifecycle and self._merge_at_tail(item):
            return True
        ok = True
        if queue and (len(queue) >= maxsize or self._bytes + size > max_bytes):
            if disconnect:
                self.overflowed = True
                ok = False
                if not lifecycle:
                    self._record_drop(item, newest=True)
                    return False
                # A lifecycle event goes over the limit rather than being dropped;
                # ``lifecycle_cap`` bounds these.
            else:
                # Several old events may have to go to make room for one large one.
                while queue and (len(queue) >= maxsize or self._bytes + size > max_bytes):
                    self._evict_oldest()
        queue.append(item)
        self._sizes.append(size)
        self._bytes += size
        if lifecycle:
            self._lifecycle_added()
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
        older = tail[-1]
        merged = coalesce(older, item)
        if merged is None:
            return False
        tail[-1] = merged
        if tail is items:
            size = estimate_size(merged)
            self._bytes += size - self._sizes[-1]
            self._sizes[-1] = size
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
        self._sizes.clear()
        self._sizes.extend(map(estimate_size, kept_data))
        self._bytes = sum(self._sizes)
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
            self._bytes -= self._sizes.popleft()
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

    def _free_room(self) -> None:
        """Drop the oldest events down to the low-water mark (into the pending drop record)."""
        queue = self._items
        before = self.dropped
        while queue and (len(queue) > self._low_items or self._bytes > self._low_bytes):
            self._evict_oldest()
        if self.dropped > before:
            self.rooms_freed += 1

    def _record_drop(self, item: object, *, newest: bool) -> None:
        if newest and self._drops is not None and self._gap_after < len(self._items):
            # Events were queued after the pending gap's place since: that gap is final, and
            # these drops need a gap of their own, after those events.
            self._place_gap()
        if self._drops is None:
            self._drops = _DropRecord()
            self._gap_after = len(self._items) if newest else 0
            warn = True
        else:
            warn = False
        self._drops.add(item, self._wall())
        self.dropped += 1
        if warn:
            self._warn_dropping()

    def _place_gap(self) -> None:
        """Queue the pending drop report as a ``Gap`` at its place among the queued events."""
        gap = self.take_gap()
        assert gap is not None
        size = estimate_size(gap)
        self._items.insert(self._gap_after, gap)
        self._sizes.insert(self._gap_after, size)
        self._bytes += size
        self._gap_after = 0
        self._lifecycle_added()

    def _warn_dropping(self) -> None:
        now = self._now()
        warned_at = self._warned_at
        # ``now < warned_at``: a clock that went back (a wall clock) must not mute the warning.
        if warned_at is not None and warned_at <= now < warned_at + DROP_WARNING_INTERVAL:
            return
        self._warned_at = now
        since, self._dropped_at_warning = self.dropped - self._dropped_at_warning, self.dropped
        logger.warning(
            "consumer queue full: dropping events (policy %s): %d dropped since the last "
            "warning, %d in all",
            self.config.overflow,
            since,
            self.dropped,
        )

    def close(self, error: BaseException | None = None) -> None:
        """No more items; the consumer drains what is queued, then gets ``error`` (or stops)."""
        self._closed = True
        self._closed_error = error
        self._ready.set()
        if self._drained is not None:
            self._drained.set()

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

    def _below_low_water(self) -> bool:
        return len(self._items) <= self._low_items and self._bytes <= self._low_bytes

    def _after_take(self) -> None:
        if not self._items:
            self._lagging = False
        if self._drained is not None and self._below_low_water():
            self._drained.set()
        self._watch_takes = self._lagging or self._drained is not None

    def _pop(self) -> Any:
        """The next item in delivery order, or ``_NOTHING``."""
        if self._kept:
            self._lifecycle_taken()
            return self._kept.popleft()
        if self._drops is not None and (self._gap_after == 0 or not self._items):
            if self._lagging and self._gap_after == 0:
                # Still behind since the last gap: make this one free room.
                self._free_room()
                if self._kept:
                    self._lifecycle_taken()
                    return self._kept.popleft()
            gap = self.take_gap()
            if self.config.overflow != "disconnect":
                self._lagging = bool(self._items)
                self._watch_takes = self._lagging or self._drained is not None
            return gap
        if self._items:
            if self._gap_after:
                self._gap_after -= 1
            item = self._items.popleft()
            self._bytes -= self._sizes.popleft()
            if self._lifecycle and is_lifecycle(item):
                self._lifecycle_taken()
            if self._watch_takes:
                self._after_take()
            return item
        return _NOTHING

    async def get(self) -> Any:
        """The next item; a pending drop ``Gap`` comes where the drop happened (first, when the
        oldest were dropped). Raises when closed and drained."""
        items = self._items
        if items and self._drops is None and not self._kept:
            # Hot path: nothing dropped, nothing kept aside.
            item = items.popleft()
            self._bytes -= self._sizes.popleft()
            if self._lifecycle and is_lifecycle(item):
                self._lifecycle_taken()
            if self._watch_takes:
                self._after_take()
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

    async def drained(self) -> None:
        """Under ``disconnect``: return once the consumer has drained the queue to its low-water
        mark (or it is closed). Under the other policies, at once.

        The supervisor awaits this before reconnecting: a new connection's snapshots into a
        queue still nearly full would overflow it again at once.
        """
        if self.config.overflow != "disconnect" or self._closed or self._below_low_water():
            return
        logger.info(
            "waiting for the consumer to drain the queue to %d events / %d bytes before "
            "reconnecting (%d events / %d bytes queued)",
            self._low_items,
            self._low_bytes,
            len(self._items),
            self._bytes,
        )
        drained = self._drained = asyncio.Event()
        self._watch_takes = True
        try:
            await drained.wait()
        finally:
            self._drained = None
            self._watch_takes = self._lagging


class QueueIterator:
    """``async for`` over an :class:`EventQueue`: each step is :meth:`EventQueue.get`.

    A stream hands this out from ``__aiter__`` rather than stepping through its own
    ``__anext__``: compiled (``setup.py``), a step then runs no interpreted frame.
    """

    def __init__(self, queue: EventQueue) -> None:
        self._queue = queue

    def __repr__(self) -> str:
        return f"<QueueIterator over {self._queue!r}>"

    def __aiter__(self) -> QueueIterator:
        return self

    def __anext__(self) -> Awaitable[Any]:
        return self._queue.get()
