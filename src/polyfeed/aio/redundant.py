"""Redundant legs behind one market stream: A/B feed arbitration over two or more pools.

With ``MarketStream(..., redundancy=N)`` every asset is carried by N connections, one in each of
N :class:`~polyfeed.aio.pool.ConnectionPool` *legs* with the same placement. Leg k opens
``k * stagger`` seconds after leg 0 and reconnects on its own backoff, so one failure rarely
hits every leg at once.

Every event of every leg passes :class:`_LegObserver` before the books and the queue:

- market messages go through one :class:`~polyfeed.core.merge.LegMerger`: the consumer and the
  books see each message once, in order per market, from whichever leg was first;
- a leg's ``Disconnected`` resets it in the merger. While another leg carries the same assets
  (:class:`~polyfeed.core.merge.LegOutages` per placement slot) it goes no further: no book is
  invalidated, and a ``Redundancy(state="degraded")`` says the stream runs on fewer legs until
  the leg is back (``full``). When every leg is down it passes (books invalidate as without
  redundancy) with ``Redundancy(state="down")``;
- the legs' own ``Gap`` events are dropped: a ``Gap`` is owed only for the time every leg was
  down, and is emitted when the first leg is back.

Leg 0 is this pool itself (its metrics are the stream's); the other legs keep their own
metrics (``legs[k].metrics``) and appear after leg 0's in :meth:`connections`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from polyfeed.aio.pool import ConnectionHealth, ConnectionPool, PoolState, ScopedObserver
from polyfeed.core.merge import LegMerger, LegOutages, RedundancyChange
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    MarketResolved,
    NewMarket,
    PriceChange,
    TickSizeChange,
)
from polyfeed.errors import ConfigError, PolyfeedError
from polyfeed.events import Connected, Disconnected, Gap, Redundancy
from polyfeed.metrics import PoolMetrics

__all__ = ["RedundantPool"]

logger = logging.getLogger("polyfeed.redundant")

_MARKET_TYPES = (
    PriceChange,
    Book,
    LastTradePrice,
    TickSizeChange,
    BestBidAsk,
    NewMarket,
    MarketResolved,
)


class _LegObserver:
    """Sees one leg's events (scoped to one of its connections): merges, then hands on."""

    __slots__ = ("_leg", "_owner")

    def __init__(self, owner: RedundantPool, leg: int) -> None:
        self._owner = owner
        self._leg = leg

    def __repr__(self) -> str:
        return f"<_LegObserver leg={self._leg}>"

    def observe(
        self, events: Sequence[object], scope: frozenset[str] | None = None
    ) -> Sequence[object]:
        return self._owner.merge_leg(self._leg, events, scope)


class RedundantPool(ConnectionPool):
    """A market stream's connections, each asset on ``redundancy`` legs (module docstring)."""

    def __init__(
        self, assets: Iterable[str], *, redundancy: int, stagger: float = 0.05, **options: Any
    ) -> None:
        if redundancy < 2:
            raise ConfigError(f"a redundant pool needs redundancy >= 2, got {redundancy!r}")
        if stagger < 0:
            raise ConfigError(f"stagger must be >= 0 seconds, got {stagger!r}")
        # The order given (a market's tokens side by side), the same on every leg: slot n of each
        # leg carries the same assets.
        wanted = list(assets)
        super().__init__(wanted, **options)
        self.redundancy = redundancy
        self.stagger = stagger
        self.merger = LegMerger(range(redundancy))
        self._outages: dict[int, LegOutages] = {}
        # Slots whose legs were all up once: before that, "degraded" is only the legs opening.
        self._was_full: set[int] = set()
        self._consumer: ScopedObserver | None = None
        self._leg_observers = [_LegObserver(self, leg) for leg in range(redundancy)]
        self.legs: list[ConnectionPool] = [self]
        for leg in range(1, redundancy):
            other = ConnectionPool(
                wanted,
                **{**options, "metrics": PoolMetrics(self.clock.now(), clock=self.clock.now)},
            )
            other.observer = self._leg_observers[leg]
            self.legs.append(other)

    def __repr__(self) -> str:
        return (
            f"<RedundantPool legs={self.redundancy} {super().__repr__()[1:-1]} "
            f"merger={self.merger!r}>"
        )

    # ------------------------------------------------------------------ the merge hook

    @property
    def observer(self) -> ScopedObserver | None:
        """Leg 0's hook: the merge (the stream's observer, the book keeper, comes after it)."""
        return self._leg_observers[0]

    @observer.setter
    def observer(self, observer: ScopedObserver | None) -> None:
        self._consumer = observer

    def merge_leg(
        self, leg: int, events: Sequence[object], scope: frozenset[str] | None
    ) -> Sequence[object]:
        """One leg's events, merged: what the books and the consumer see."""
        now = self.clock.now()
        slot = self._slot_of(leg, scope)
        outages = self._outages.get(slot)
        if outages is None:
            outages = self._outages[slot] = LegOutages(range(self.redundancy))
        out: list[object] = []
        merger = self.merger
        for event in events:
            if isinstance(event, _MARKET_TYPES):
                out.extend(merger.offer(leg, event, now))
            elif isinstance(event, Connected):
                out.append(event)
                self._changed(out, outages.up(leg, self.clock.wall()), slot, scope)
            elif isinstance(event, Disconnected):
                out.extend(merger.reset(leg, now))
                change = outages.down(leg, self.clock.wall(), event.reason)
                if outages.state == "down":
                    out.append(event)  # every leg is down: the books cannot be kept
                else:
                    logger.info(
                        "leg %d of connection %d down (%s): the other legs carry on",
                        leg,
                        slot,
                        event.reason,
                    )
                self._changed(out, change, slot, scope)
            elif isinstance(event, Gap):
                continue  # a Gap is owed only for the time every leg was down
            else:
                out.append(event)
        consumer = self._consumer
        if consumer is None:
            return out
        return consumer.observe(out, scope)

    def _slot_of(self, leg: int, scope: frozenset[str] | None) -> int:
        if scope:
            slot = self.legs[leg].placement.slot_of(next(iter(scope)))
            if slot is not None:
                return slot
        return -1

    def _changed(
        self,
        out: list[object],
        change: RedundancyChange | None,
        slot: int,
        scope: frozenset[str] | None,
    ) -> None:
        if change is None or change.state == "connecting":
            return
        if change.outage is not None:
            outage = change.outage
            out.append(
                Gap(
                    started=outage.started,
                    ended=outage.ended,
                    assets=sorted(scope or ()),
                    reason=outage.reason,
                )
            )
        if slot not in self._was_full:
            if change.state == "full":
                self._was_full.add(slot)
            if change.state != "down":
                return  # the legs are still opening: not news
        out.append(
            Redundancy(
                state=change.state,
                legs_up=change.legs_up,
                legs=change.legs,
                pool_connection=slot,
            )
        )

    # ------------------------------------------------------------------ views

    @property
    def state(self) -> PoolState:
        """Leg 0's state, ``open`` while any leg is."""
        own = super().state
        if own == "closed" or own == "open":
            return own
        if any(leg.state == "open" for leg in self.legs[1:]):
            return "open"
        return own

    def connections(self) -> list[ConnectionHealth]:
        """Every leg's connections, leg 0's first."""
        out = super().connections()
        for leg in self.legs[1:]:
            out.extend(leg.connections())
        return out

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Run every leg until cancelled (leg k after ``k * stagger`` s); raises the first fatal
        error of any."""
        for leg in self.legs[1:]:
            leg.rest, leg.books, leg.limiter = self.rest, self.books, self.limiter
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(super().run(), name="polyfeed-leg-0")
                for index, leg in enumerate(self.legs[1:], 1):
                    group.create_task(self._run_leg(leg, index), name=f"polyfeed-leg-{index}")
        except ExceptionGroup as group_error:
            # Boundary: the stream gets one error, never a group (a fatal one first).
            fatal = group_error.subgroup(PolyfeedError)
            first: BaseException = (fatal if fatal is not None else group_error).exceptions[0]
            while isinstance(first, ExceptionGroup):
                first = first.exceptions[0]
            raise first from None

    async def _run_leg(self, leg: ConnectionPool, index: int) -> None:
        await self.clock.sleep_until(self.clock.now() + index * self.stagger)
        await leg.run()

    def request_stop(self) -> None:
        """The stream is closing: every leg stops."""
        super().request_stop()
        for leg in self.legs[1:]:
            leg.request_stop()

    def subscribe(self, ids: list[str]) -> list[str]:
        """Every leg subscribes (the same placement); returns leg 0's new ids."""
        added = super().subscribe(ids)
        for leg in self.legs[1:]:
            leg.subscribe(ids)
        return added

    def unsubscribe(self, ids: list[str]) -> list[str]:
        """Every leg unsubscribes; returns leg 0's removed ids."""
        removed = super().unsubscribe(ids)
        for leg in self.legs[1:]:
            leg.unsubscribe(ids)
        return removed

    def refresh(self, ids: list[str]) -> None:
        """Fresh snapshots on every leg (the merge keeps the first)."""
        super().refresh(ids)
        for leg in self.legs[1:]:
            leg.refresh(ids)
