"""Connection metrics with Prometheus-style names; no per-asset labels.

Times are monotonic seconds. The readers (``snapshot()``, ``render_prometheus()``,
``log_status()``, ``uptime_ratio()``...) take an optional ``now``: left out, it is read from the
clock the metrics were made with (a stream's own clock for ``stream.metrics``), so users never
pass one; tests pass it to keep the arithmetic free of a clock. ``uptime_ratio`` is time
connected over time since the stream started (the seed's formula divided by connects, which is
wrong).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from polyfeed.core.codec import DecodeStats

logger = logging.getLogger("polyfeed.metrics")


def _sample_value(value: float) -> str:
    """A Prometheus sample value, exact: ``:g`` would print 1234567 as ``1.23457e+06``."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class MaintenanceCounters(Protocol):
    """Whatever runs a stream's background maintenance (the book keeper) and counts its crashes."""

    @property
    def maintenance_restarts(self) -> int:
        """Maintenance loops restarted after a crash."""
        ...


class ConnectionMetrics:
    """Counters and gauges of one stream (all its connections)."""

    def __init__(self, started_at: float, *, clock: Callable[[], float] | None = None) -> None:
        """``clock`` gives monotonic seconds on the same scale as ``started_at`` and is read
        whenever a reader is called without ``now`` (default: ``time.monotonic``, which is also
        what asyncio's default loop clock reads)."""
        self.started_at = started_at
        self._clock = clock or time.monotonic
        self.connects_total = 0
        self.disconnects_total = 0
        self.reconnects_by_reason: Counter[str] = Counter()
        self.stale_by_kind: Counter[str] = Counter()
        self.messages_received_total = 0
        self.decode_stats: DecodeStats | None = None
        self.maintenance: MaintenanceCounters | None = None
        self.dropped_events_total = 0
        self.backoff_seconds = 0.0
        self.pong_rtt_seconds: float | None = None
        self.last_message_at: float | None = None
        self.connected_since: float | None = None
        self.last_reconnect_reason: str | None = None
        self._connected_seconds = 0.0

    def __repr__(self) -> str:
        state = "connected" if self.connected_since is not None else "disconnected"
        return (
            f"<ConnectionMetrics {state} connects={self.connects_total} "
            f"messages={self.messages_received_total} "
            f"reconnects={sum(self.reconnects_by_reason.values())} "
            f"dropped={self.dropped_events_total}>"
        )

    # The decoder's own counters are the source of truth: read them live, never copied.
    @property
    def events_received_total(self) -> int:
        """Typed events decoded (all connections)."""
        return self.decode_stats.events if self.decode_stats is not None else 0

    @property
    def decode_errors_total(self) -> int:
        """Frames or array elements that could not be decoded (counted, skipped)."""
        return self.decode_stats.malformed if self.decode_stats is not None else 0

    @property
    def unknown_events_total(self) -> int:
        """Events with an ``event_type`` this version does not know (passed on as Unknown)."""
        return self.decode_stats.unknown if self.decode_stats is not None else 0

    @property
    def maintenance_restarts_total(self) -> int:
        """Background maintenance loops (book timers, reconciliation) restarted after a crash."""
        return self.maintenance.maintenance_restarts if self.maintenance is not None else 0

    def on_connected(self, now: float) -> None:
        """A connection opened."""
        self.connects_total += 1
        self.connected_since = now
        self.backoff_seconds = 0.0

    def on_disconnected(self, now: float, reason: str) -> None:
        """A connection ended for ``reason``, a short slug (``stale_data``, ``closed_1006``)."""
        if self.connected_since is not None:
            self._connected_seconds += max(0.0, now - self.connected_since)
            self.connected_since = None
        self.disconnects_total += 1
        self.reconnects_by_reason[reason] += 1
        self.last_reconnect_reason = reason

    def on_attempt_failed(self, reason: str) -> None:
        """A connection attempt failed before the socket opened (refused, 429/5xx, 401)."""
        self.reconnects_by_reason[reason] += 1
        self.last_reconnect_reason = reason

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock the readers use when called without ``now``."""
        return self._clock

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def connected_seconds(self, now: float | None = None) -> float:
        """Total time connected since start."""
        now = self._now(now)
        extra = now - self.connected_since if self.connected_since is not None else 0.0
        return self._connected_seconds + max(0.0, extra)

    def uptime_ratio(self, now: float | None = None) -> float:
        """Fraction of the time since start spent connected (1.0 right at start)."""
        now = self._now(now)
        elapsed = now - self.started_at
        if elapsed <= 0:
            return 1.0 if self.connected_since is not None else 0.0
        return min(1.0, self.connected_seconds(now) / elapsed)

    def seconds_since_last_message(self, now: float | None = None) -> float | None:
        """Seconds since the last frame of any kind, None before the first."""
        now = self._now(now)
        return None if self.last_message_at is None else max(0.0, now - self.last_message_at)

    def snapshot(self, now: float | None = None) -> dict[str, float | int | dict[str, int] | None]:
        """All metrics as plain values (Prometheus names without the ``polyfeed_`` prefix)."""
        now = self._now(now)
        return {
            "connects_total": self.connects_total,
            "disconnects_total": self.disconnects_total,
            "reconnects_total": sum(self.reconnects_by_reason.values()),
            "reconnects_by_reason": dict(self.reconnects_by_reason),
            "stale_detections_by_kind": dict(self.stale_by_kind),
            "messages_received_total": self.messages_received_total,
            "events_received_total": self.events_received_total,
            "decode_errors_total": self.decode_errors_total,
            "unknown_events_total": self.unknown_events_total,
            "dropped_events_total": self.dropped_events_total,
            "maintenance_restarts_total": self.maintenance_restarts_total,
            "backoff_seconds": self.backoff_seconds,
            "pong_rtt_seconds": self.pong_rtt_seconds,
            "seconds_since_last_message": self.seconds_since_last_message(now),
            "connected": 1 if self.connected_since is not None else 0,
            "connected_seconds_total": self.connected_seconds(now),
            "uptime_ratio": self.uptime_ratio(now),
        }

    def render_prometheus(self, now: float | None = None) -> str:
        """The metrics in Prometheus text exposition format."""
        now = self._now(now)
        lines: list[str] = []

        def emit(name: str, kind: str, value: float | None, labels: str = "") -> None:
            if value is None:
                return
            if not any(line.startswith(f"# TYPE polyfeed_{name} ") for line in lines):
                lines.append(f"# TYPE polyfeed_{name} {kind}")
            lines.append(f"polyfeed_{name}{labels} {_sample_value(value)}")

        emit("connects_total", "counter", self.connects_total)
        emit("disconnects_total", "counter", self.disconnects_total)
        for reason, count in sorted(self.reconnects_by_reason.items()):
            emit("reconnects_total", "counter", count, f'{{reason="{reason}"}}')
        for kind, count in sorted(self.stale_by_kind.items()):
            emit("stale_detections_total", "counter", count, f'{{kind="{kind}"}}')
        emit("messages_received_total", "counter", self.messages_received_total)
        emit("events_received_total", "counter", self.events_received_total)
        emit("decode_errors_total", "counter", self.decode_errors_total)
        emit("unknown_events_total", "counter", self.unknown_events_total)
        emit("dropped_events_total", "counter", self.dropped_events_total)
        emit("maintenance_restarts_total", "counter", self.maintenance_restarts_total)
        emit("backoff_seconds", "gauge", self.backoff_seconds)
        emit("pong_rtt_seconds", "gauge", self.pong_rtt_seconds)
        emit("seconds_since_last_message", "gauge", self.seconds_since_last_message(now))
        emit("connected", "gauge", 1 if self.connected_since is not None else 0)
        emit("uptime_ratio", "gauge", self.uptime_ratio(now))
        return "\n".join(lines) + "\n"

    def log_status(self, now: float | None = None, log: logging.Logger | None = None) -> None:
        """One INFO line with the headline numbers."""
        now = self._now(now)
        since = self.seconds_since_last_message(now)
        rtt = self.pong_rtt_seconds
        (log or logger).info(
            "status: %s, uptime %.1f%%, %d messages, %d reconnects, %d dropped, "
            "last message %s ago, pong rtt %s",
            "connected" if self.connected_since is not None else "disconnected",
            100.0 * self.uptime_ratio(now),
            self.messages_received_total,
            sum(self.reconnects_by_reason.values()),
            self.dropped_events_total,
            "n/a" if since is None else f"{since:.1f}s",
            "n/a" if rtt is None else f"{rtt * 1000:.1f}ms",
        )


# --------------------------------------------------------------------------- pools of connections
# A market stream over many connections: one ConnectionMetrics per connection (its own gauges),
# every count also added to the stream's PoolMetrics, which renders both. Labels name the
# connection (a small number), never an asset.


class SlotMetrics(ConnectionMetrics):
    """The metrics of one connection of a pool; its counts also go to the pool's totals."""

    def __init__(self, started_at: float, pool: PoolMetrics, slot: int) -> None:
        """Metrics of connection ``slot`` of ``pool``, read on the pool's clock."""
        # Set before the base initialiser: its assignments go through the properties below.
        self._pool = pool
        self._messages = 0
        self._last_message_at: float | None = None
        self._pong_rtt: float | None = None
        self._backoff = 0.0
        self.slot = slot
        self.assets = 0
        super().__init__(started_at, clock=pool.clock)
        # Stale detections are counted by kind for the stream as a whole.
        self.stale_by_kind = pool.stale_by_kind

    def __repr__(self) -> str:
        return f"<SlotMetrics #{self.slot} assets={self.assets} {super().__repr__()[1:-1]}>"

    @property
    def messages_received_total(self) -> int:
        """Frames received on this connection."""
        return self._messages

    @messages_received_total.setter
    def messages_received_total(self, value: int) -> None:
        self._pool.messages_received_total += value - self._messages
        self._messages = value

    @property
    def last_message_at(self) -> float | None:
        """When this connection last received a frame."""
        return self._last_message_at

    @last_message_at.setter
    def last_message_at(self, value: float | None) -> None:
        self._last_message_at = value
        if value is not None:
            self._pool.last_message_at = value

    @property
    def dropped_events_total(self) -> int:
        """Events the stream's (shared) queue dropped."""
        return self._pool.dropped_events_total

    @dropped_events_total.setter
    def dropped_events_total(self, value: int) -> None:
        self._pool.dropped_events_total = value

    @property
    def pong_rtt_seconds(self) -> float | None:
        """The last PONG round trip of this connection."""
        return self._pong_rtt

    @pong_rtt_seconds.setter
    def pong_rtt_seconds(self, value: float | None) -> None:
        self._pong_rtt = value
        if value is not None:
            self._pool.pong_rtt_seconds = value

    @property
    def backoff_seconds(self) -> float:
        """The delay before this connection's next attempt (0 while connected)."""
        return self._backoff

    @backoff_seconds.setter
    def backoff_seconds(self, value: float) -> None:
        self._backoff = value
        self._pool.backoff_seconds = max(
            (m.backoff_seconds for m in self._pool.connections.values() if m is not self),
            default=0.0,
        )
        self._pool.backoff_seconds = max(self._pool.backoff_seconds, value)

    def on_connected(self, now: float) -> None:
        """This connection opened."""
        super().on_connected(now)
        self._pool.slot_connected(now)

    def on_disconnected(self, now: float, reason: str) -> None:
        """This connection ended for ``reason``."""
        was_connected = self.connected_since is not None
        super().on_disconnected(now, reason)
        self._pool.slot_disconnected(now, reason, was_connected=was_connected)

    def on_attempt_failed(self, reason: str) -> None:
        """An attempt of this connection failed before its socket opened."""
        super().on_attempt_failed(reason)
        self._pool.on_attempt_failed(reason)

    def on_closed(self, now: float) -> None:
        """The pool closed this connection (shutdown): not a disconnect, nothing to retry."""
        if self.connected_since is not None:
            self._connected_seconds += max(0.0, now - self.connected_since)
            self.connected_since = None
            self._pool.connection_left(now)


class PoolMetrics(ConnectionMetrics):
    """A stream's metrics over all its connections, and each connection's (``connections``).

    ``connected`` means at least one connection is open; ``uptime_ratio`` counts the time at
    least one was. ``shard`` (``"I/N"``) is rendered as ``polyfeed_shard_info``.
    """

    def __init__(
        self,
        started_at: float,
        shard: str | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock``: as :class:`ConnectionMetrics`; every connection's metrics read it too."""
        super().__init__(started_at, clock=clock)
        self.shard = shard
        self.connections: dict[int, SlotMetrics] = {}
        self._open = 0
        self._retired_events = 0
        self._retired_malformed = 0
        self._retired_unknown = 0

    def __repr__(self) -> str:
        return (
            f"<PoolMetrics connections={len(self.connections)} open={self._open} "
            f"shard={self.shard} {super().__repr__()[1:-1]}>"
        )

    def add_connection(self, slot: int, now: float) -> SlotMetrics:
        """Metrics for a new connection of the pool."""
        metrics = self.connections[slot] = SlotMetrics(now, self, slot)
        return metrics

    def retire_connection(self, slot: int, now: float) -> None:
        """A connection was closed by the pool (emptied or compacted): keep its counts."""
        metrics = self.connections.pop(slot, None)
        if metrics is None:
            return
        self._retired_events += metrics.events_received_total
        self._retired_malformed += metrics.decode_errors_total
        self._retired_unknown += metrics.unknown_events_total
        if metrics.connected_since is not None:
            self.connection_left(now)

    def slot_connected(self, now: float) -> None:
        """One connection opened."""
        self.connects_total += 1
        self.backoff_seconds = 0.0
        self._open += 1
        if self.connected_since is None:
            self.connected_since = now

    def slot_disconnected(self, now: float, reason: str, *, was_connected: bool) -> None:
        """One connection ended for ``reason``."""
        self.disconnects_total += 1
        self.reconnects_by_reason[reason] += 1
        self.last_reconnect_reason = reason
        if was_connected:
            self.connection_left(now)

    def connection_left(self, now: float) -> None:
        """One open connection is no longer open (ended, or closed by the pool)."""
        self._open = max(0, self._open - 1)
        if self._open == 0 and self.connected_since is not None:
            self._connected_seconds += max(0.0, now - self.connected_since)
            self.connected_since = None

    @property
    def open_connections(self) -> int:
        """Connections open right now."""
        return self._open

    @property
    def events_received_total(self) -> int:
        """Typed events decoded (all connections, closed ones included)."""
        return self._retired_events + sum(
            m.events_received_total for m in self.connections.values()
        )

    @property
    def decode_errors_total(self) -> int:
        """Frames or array elements that could not be decoded (all connections)."""
        return self._retired_malformed + sum(
            m.decode_errors_total for m in self.connections.values()
        )

    @property
    def unknown_events_total(self) -> int:
        """Events of an unknown ``event_type`` (all connections)."""
        return self._retired_unknown + sum(
            m.unknown_events_total for m in self.connections.values()
        )

    def snapshot(self, now: float | None = None) -> dict[str, float | int | dict[str, int] | None]:
        """The totals (as :meth:`ConnectionMetrics.snapshot`), the connection count, and
        ``connection_<n>_<metric>`` for each connection's assets, state and freshness."""
        now = self._now(now)
        out = super().snapshot(now)
        out["connections"] = len(self.connections)
        out["open_connections"] = self._open
        for slot, metrics in sorted(self.connections.items()):
            prefix = f"connection_{slot}_"
            out[prefix + "assets"] = metrics.assets
            out[prefix + "connected"] = 1 if metrics.connected_since is not None else 0
            out[prefix + "seconds_since_last_message"] = metrics.seconds_since_last_message(now)
            out[prefix + "reconnects_total"] = sum(metrics.reconnects_by_reason.values())
            out[prefix + "messages_received_total"] = metrics.messages_received_total
        return out

    def render_prometheus(self, now: float | None = None) -> str:
        """The totals, then ``polyfeed_connection_*{connection="n"}`` per connection."""
        now = self._now(now)
        lines = [super().render_prometheus(now).rstrip("\n")]
        slots = sorted(self.connections.items())

        def family(name: str, kind: str, values: list[tuple[int, float | None]]) -> None:
            samples = [(slot, value) for slot, value in values if value is not None]
            if not samples:
                return
            lines.append(f"# TYPE polyfeed_{name} {kind}")
            lines.extend(
                f'polyfeed_{name}{{connection="{slot}"}} {_sample_value(value)}'
                for slot, value in samples
            )

        lines.append("# TYPE polyfeed_connections gauge")
        lines.append(f"polyfeed_connections {len(self.connections)}")
        lines.append("# TYPE polyfeed_open_connections gauge")
        lines.append(f"polyfeed_open_connections {self._open}")
        family("connection_assets", "gauge", [(s, m.assets) for s, m in slots])
        family(
            "connection_connected",
            "gauge",
            [(s, 1 if m.connected_since is not None else 0) for s, m in slots],
        )
        family(
            "connection_seconds_since_last_message",
            "gauge",
            [(s, m.seconds_since_last_message(now)) for s, m in slots],
        )
        family(
            "connection_reconnects_total",
            "counter",
            [(s, sum(m.reconnects_by_reason.values())) for s, m in slots],
        )
        family(
            "connection_messages_received_total",
            "counter",
            [(s, m.messages_received_total) for s, m in slots],
        )
        if self.shard is not None:
            lines.append("# TYPE polyfeed_shard_info gauge")
            lines.append(f'polyfeed_shard_info{{shard="{self.shard}"}} 1')
        return "\n".join(lines) + "\n"
