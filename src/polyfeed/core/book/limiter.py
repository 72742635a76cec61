"""Rate limit for snapshot fetches (REST ``/book``), pure: ``now`` is an argument."""

from __future__ import annotations

import math

from polyfeed.errors import ConfigError

__all__ = ["ResyncLimiter"]


class ResyncLimiter:
    """Token bucket for snapshot fetches, pure (``now`` in seconds, monotonic).

    Polymarket allows 1,500 ``/book`` requests per 10 s; the default is far below that so that
    a burst of invalidations (a reconnect of many assets) cannot starve other REST use.
    """

    __slots__ = ("_capacity", "_refill_per_second", "_tokens", "_updated", "granted", "refused")

    def __init__(self, rate: int = 50, per: float = 10.0, *, burst: int | None = None) -> None:
        if rate < 1 or per <= 0 or (burst is not None and burst < 1):
            raise ConfigError("ResyncLimiter needs rate >= 1, per > 0 and burst >= 1")
        self._capacity = float(burst if burst is not None else rate)
        self._refill_per_second = rate / per
        self._tokens = self._capacity
        self._updated: float | None = None
        self.granted = 0
        self.refused = 0

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            elapsed = now - self._updated
            self._tokens = min(self._capacity, self._tokens + elapsed * self._refill_per_second)
        if self._updated is None or now > self._updated:
            self._updated = now

    def try_acquire(self, now: float, n: int = 1) -> bool:
        """Take ``n`` tokens if available at ``now``."""
        self._refill(now)
        if self._tokens >= n:
            self._tokens -= n
            self.granted += n
            return True
        self.refused += 1
        return False

    def available(self, now: float) -> int:
        """Whole tokens available at ``now``."""
        self._refill(now)
        return math.floor(self._tokens)

    def next_available(self, now: float, n: int = 1) -> float:
        """The earliest time at which ``n`` tokens are available (``now`` if already)."""
        self._refill(now)
        missing = n - self._tokens
        return now if missing <= 0 else now + missing / self._refill_per_second

    def __repr__(self) -> str:
        return (
            f"ResyncLimiter(tokens={self._tokens:.2f}/{self._capacity:g}, "
            f"rate={self._refill_per_second:g}/s, granted={self.granted}, refused={self.refused})"
        )
