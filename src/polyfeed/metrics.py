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
