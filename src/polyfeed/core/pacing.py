"""How fast a pool may open connections, sans-I/O: ``now`` is an argument.

Opening many sockets at once draws HTTP 429, so every handshake of a pool (first opens and
reconnects alike) takes a turn from one :class:`OpenPacer`:

- consecutive turns are at least ``interval`` seconds apart (the configured pace);
- a 429 multiplies the interval by ``slowdown`` (up to ``max_interval``) and holds every turn
  until ``retry_after`` has passed (when the server said so), else one new interval;
- each successful handshake after that divides the interval by ``slowdown`` again, never below
  the configured pace.
"""

from __future__ import annotations

from polyfeed.errors import ConfigError

__all__ = ["OpenPacer"]


class OpenPacer:
    """Turns for handshakes: :meth:`take` says when the next one may start and books it."""

    __slots__ = ("_next_at", "base_interval", "interval", "max_interval", "slowdown", "throttles")

    def __init__(
        self, interval: float, *, slowdown: float = 2.0, max_interval: float = 10.0
    ) -> None:
        if not interval >= 0:
            raise ConfigError(f"open interval must be >= 0, got {interval!r}")
        if not slowdown >= 1:
            raise ConfigError(f"slowdown must be >= 1, got {slowdown!r}")
        if not max_interval >= interval:
            raise ConfigError("max_interval must be >= the open interval")
        self.base_interval = interval
        self.interval = interval
        self.slowdown = slowdown
        self.max_interval = max_interval
        self.throttles = 0
        self._next_at: float | None = None

    def __repr__(self) -> str:
        return (
            f"<OpenPacer interval={self.interval:g}s base={self.base_interval:g}s "
            f"next_at={self._next_at} throttles={self.throttles}>"
        )

    def take(self, now: float) -> float:
        """Book the next turn at or after ``now``; returns when it starts."""
        at = now if self._next_at is None or self._next_at < now else self._next_at
        self._next_at = at + self.interval
        return at

    def throttled(self, now: float, retry_after: float | None = None) -> None:
        """A handshake was answered 429 at ``now``: slow down and hold the next turn."""
        self.throttles += 1
        self.interval = min(self.max_interval, max(self.interval, 1e-3) * self.slowdown)
        hold = now + max(self.interval, retry_after or 0.0)
        if self._next_at is None or self._next_at < hold:
            self._next_at = hold

    def succeeded(self) -> None:
        """A handshake succeeded: speed back up towards the configured pace."""
        if self.interval > self.base_interval:
            self.interval = max(self.base_interval, self.interval / self.slowdown)
