"""Heartbeat and data-freshness deadlines for one connection, sans-I/O: ``now`` is an argument.

Three ways a Polymarket socket dies without closing, each with its own clock:

- ``pong``: text ``PING`` goes out every ``interval`` s; no ``PONG`` for ``pong_timeout`` s while a
  ``PING`` is unanswered means the link is dead (the SDKs' 10 s / 30 s rule).
- ``data``: no inbound frame other than ``PONG`` for ``data_timeout`` s. PONGs keep flowing on a
  stalled market socket that delivers no data for hours, so they prove nothing about data.
- ``asset`` (optional, ``asset_timeout``): a tracked asset has had no event for that long. On a
  quiet market this is ambiguous, so it is a hint to re-request, not a reason to reconnect.

The caller sleeps until :meth:`Watchdog.next_deadline`, then calls :meth:`Watchdog.check` and
:meth:`Watchdog.ping_due` with the current time. Deadlines are exact: ``check(deadline)`` reports
what is due at ``deadline``, never a tick later, and nothing before it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import msgspec

from polyfeed.config import HeartbeatConfig, WatchdogConfig
from polyfeed.errors import DataTimeoutError
from polyfeed.events import StaleKind

__all__ = ["StaleVerdict", "Watchdog"]


class StaleVerdict(msgspec.Struct, frozen=True):
    """What :meth:`Watchdog.check` found: which clock ran out, and after how long a silence."""

    kind: StaleKind
    silent_for: float
    asset_ids: tuple[str, ...] = ()

    def error(self) -> DataTimeoutError:
        """The matching exception, for a supervisor that tears the connection down."""
        return DataTimeoutError(self.kind, self.silent_for, self.asset_ids)


class Watchdog:
    """The clocks of one connection; :meth:`start` begins them (again) for a new connection.

    ``pong`` and ``data`` verdicts end the connection: ``check`` keeps returning them until the
    next :meth:`start`. An ``asset`` verdict names each newly silent asset once; it is named
    again only after it had data again and then fell silent again.
    """

    __slots__ = (
        "_asset_seen",
        "_asset_silent",
        "_asset_timeout",
        "_data_timeout",
        "_interval",
        "_last_frame",
        "_last_pong",
        "_next_ping",
        "_pong_grace",
        "_pong_timeout",
        "_started",
        "_unanswered_since",
        "last_pong_rtt",
        "pings_sent",
        "pongs_received",
    )

    def __init__(self, heartbeat: HeartbeatConfig, watchdog: WatchdogConfig) -> None:
        self._interval = heartbeat.interval
        self._pong_timeout = heartbeat.pong_timeout
        # HeartbeatConfig guarantees pong_timeout > interval, so the grace is positive.
        self._pong_grace = heartbeat.pong_timeout - heartbeat.interval
        self._data_timeout = watchdog.data_timeout
        self._asset_timeout = watchdog.asset_timeout
        self._started = False
        self._last_frame = 0.0
        self._last_pong = 0.0
        self._next_ping = 0.0
        self._unanswered_since: float | None = None
        # Tracked assets not yet reported silent -> time of their last event, oldest first
        # (on_data moves an asset to the end), so the earliest asset deadline is the first item.
        self._asset_seen: OrderedDict[str, float] = OrderedDict()
        # Reported silent, awaiting data; a dict as an ordered set keeps verdicts deterministic.
        self._asset_silent: dict[str, None] = {}
        self.last_pong_rtt: float | None = None
        """Seconds from the oldest then-unanswered PING to the last PONG (one in flight: exact)."""
        self.pings_sent = 0
        self.pongs_received = 0

    def __repr__(self) -> str:
        if not self._started:
            return "Watchdog(stopped)"
        rtt = "None" if self.last_pong_rtt is None else f"{self.last_pong_rtt:.3f}"
        return (
            f"Watchdog(last_frame={self._last_frame:.3f}, last_pong={self._last_pong:.3f}, "
            f"next_ping={self._next_ping:.3f}, unanswered_since={self._unanswered_since}, "
            f"rtt={rtt}, assets={len(self._asset_seen) + len(self._asset_silent)}, "
            f"silent_assets={len(self._asset_silent)})"
        )

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> None:
        """A connection opened and its initial subscription went out: every clock starts now.

        The first ``PING`` is due at once: the server drops sockets that have not pinged for
        about 10 s, so waiting a full interval would cut it close. (A PING *before* the
        subscription gets ``1008``; call ``start`` only after sending it.)
        """
        self._started = True
        self._last_frame = now
        self._last_pong = now
        self._next_ping = now
        self._unanswered_since = None
        self.last_pong_rtt = None
        if self._asset_seen or self._asset_silent:
            assets = [*self._asset_seen, *self._asset_silent]
            self._asset_silent.clear()
            self._asset_seen = OrderedDict.fromkeys(assets, now)

    def stop(self) -> None:
        """The connection ended: no deadlines until the next :meth:`start`. Tracking is kept."""
        self._started = False

    def on_frame(self, now: float) -> None:
        """An inbound frame other than a bare-text notice arrived (hot path: O(1)).

        Do not call it for ``PONG`` (see :meth:`on_pong`) nor for ``NO NEW ASSETS`` /
        ``INVALID OPERATION``: the server sends ``NO NEW ASSETS`` periodically on its own, so
        counting it would hide exactly the silent stall the data clock exists to catch.
        """
        self._last_frame = now

    @property
    def watches_assets(self) -> bool:
        """Whether any asset has its own clock (only with ``asset_timeout``)."""
        return bool(self._asset_seen or self._asset_silent)

    def on_data(self, now: float, asset_id: str) -> None:
        """An event for ``asset_id`` arrived; implies :meth:`on_frame`. O(1)."""
        self._last_frame = now
        seen = self._asset_seen
        if asset_id in seen:
            seen[asset_id] = now
            seen.move_to_end(asset_id)
        elif asset_id in self._asset_silent:
            del self._asset_silent[asset_id]
            seen[asset_id] = now

    def on_ping_sent(self, now: float) -> None:
        """A text ``PING`` went out at ``now``; the next is due ``interval`` s later."""
        self.pings_sent += 1
        self._next_ping = now + self._interval
        if self._unanswered_since is None:
            self._unanswered_since = now

    def on_pong(self, now: float) -> None:
        """A text ``PONG`` arrived: the link is alive; answers every PING in flight."""
        self.pongs_received += 1
        self._last_pong = now
        if self._unanswered_since is not None:
            self.last_pong_rtt = now - self._unanswered_since
            self._unanswered_since = None

    def track(self, asset_ids: Iterable[str], now: float) -> None:
        """Watch these assets for silence (no-op unless ``asset_timeout`` is set).

        Newly tracked assets' clocks start at ``now``; already tracked ones keep theirs.
        """
        if self._asset_timeout is None:
            return
        seen = self._asset_seen
        silent = self._asset_silent
        for asset_id in asset_ids:
            if asset_id not in seen and asset_id not in silent:
                seen[asset_id] = now

    def untrack(self, asset_ids: Iterable[str]) -> None:
        """Stop watching these assets (unsubscribed)."""
        seen = self._asset_seen
        silent = self._asset_silent
        for asset_id in asset_ids:
            seen.pop(asset_id, None)
            silent.pop(asset_id, None)

    # ------------------------------------------------------------------ queries

    @property
    def started(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._started

    @property
    def last_frame_at(self) -> float | None:
        """When the last data frame arrived (or the connection started); None when stopped."""
        return self._last_frame if self._started else None

    @property
    def last_pong_at(self) -> float | None:
        """When the last PONG arrived (or the connection started); None when stopped."""
        return self._last_pong if self._started else None

    @property
    def tracked(self) -> frozenset[str]:
        """Every tracked asset, silent or not."""
        return frozenset(self._asset_seen).union(self._asset_silent)

    @property
    def silent_assets(self) -> frozenset[str]:
        """Tracked assets already reported silent that have had no event since."""
        return frozenset(self._asset_silent)

    def ping_due(self, now: float) -> bool:
        """True when a text ``PING`` should go out now."""
        return self._started and now >= self._next_ping

    def _pong_deadline(self) -> float | None:
        """When the missing PONG becomes fatal; None while no PING is unanswered.

        Measured from the last PONG (or start): the SDKs' "no PONG for 30 s". With PINGs on
        schedule the grace term never wins; it only keeps a PING sent late (the loop was
        blocked) from being judged before its answer could arrive.
        """
        sent = self._unanswered_since
        if sent is None:
            return None
        deadline = self._last_pong + self._pong_timeout
        late = sent + self._pong_grace
        return late if late > deadline else deadline

    def next_deadline(self) -> float | None:
        """The earliest time ``check`` or ``ping_due`` may change its answer; None if stopped."""
        if not self._started:
            return None
        deadline = self._next_ping
        data = self._last_frame + self._data_timeout
        if data < deadline:
            deadline = data
        pong = self._pong_deadline()
        if pong is not None and pong < deadline:
            deadline = pong
        if self._asset_seen:
            assert self._asset_timeout is not None
            asset = next(iter(self._asset_seen.values())) + self._asset_timeout
            if asset < deadline:
                deadline = asset
        return deadline

    def check(self, now: float) -> StaleVerdict | None:
        """The verdict due at ``now``, if any: ``pong`` first, then ``data``, then ``asset``."""
        if not self._started:
            return None
        pong = self._pong_deadline()
        if pong is not None and now >= pong:
            return StaleVerdict("pong", now - self._last_pong)
        if now >= self._last_frame + self._data_timeout:
            return StaleVerdict("data", now - self._last_frame)
        seen = self._asset_seen
        if not seen:
            return None
        timeout = self._asset_timeout
        assert timeout is not None
        oldest = next(iter(seen.values()))
        if oldest + timeout > now:
            return None
        newly_silent: list[str] = []
        silent = self._asset_silent
        while seen:
            asset_id, last = next(iter(seen.items()))
            if last + timeout > now:
                break
            del seen[asset_id]
            silent[asset_id] = None
            newly_silent.append(asset_id)
        return StaleVerdict("asset", now - oldest, tuple(newly_silent))
