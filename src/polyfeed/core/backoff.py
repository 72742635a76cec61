"""Capped exponential backoff with additive jitter, sans-I/O: ``now`` and randomness are injected.

The supervisor's loop::

    backoff = Backoff(config.backoff, random.Random().random)
    while True:
        try:
            transport = await connect(...)
        except TransientError as exc:
            delay = backoff.next_delay(at_least=retry_after(exc), last_error=exc)  # may raise
            await clock.sleep_until(clock.now() + delay)
            continue
        backoff.connected(clock.now())
        ...                                   # backoff.healthy(now) now and then, optional
        backoff.disconnected(clock.now())     # then next_delay(...) as above

"Can I retry?" is ``not backoff.exhausted``; "how long?" is ``next_delay()``, which registers the
failure and raises :class:`~polyfeed.errors.RetriesExhaustedError` once ``max_attempts``
connection attempts have failed since the last reset.

The attempt counter resets only when a connection stayed up for ``stable_for`` seconds. A server
that accepts and then closes at once therefore keeps counting up: its delays grow to the cap
instead of hammering it at ``base`` (the reconnect storm a reset-on-connect backoff causes).
"""

from __future__ import annotations

from collections.abc import Callable

from polyfeed.config import BackoffConfig
from polyfeed.errors import RetriesExhaustedError

__all__ = ["Backoff"]

# 2.0 ** 1024 overflows; beyond ~60 doublings every delay is at the cap anyway.
_MAX_EXPONENT = 1000


class Backoff:
    """Delays between connection attempts for one stream.

    ``rng`` returns floats in ``[0, 1)`` (e.g. ``random.Random(seed).random``); it scales the
    jitter so many clients do not reconnect in lockstep.
    """

    __slots__ = ("_config", "_connected_at", "_rng", "attempt", "current_delay")

    def __init__(self, config: BackoffConfig, rng: Callable[[], float]) -> None:
        self._config = config
        self._rng = rng
        self._connected_at: float | None = None
        self.attempt = 0
        """Failed attempts since the last reset (0: none)."""
        self.current_delay = 0.0
        """The last delay ``next_delay`` returned (0.0 before any); for metrics."""

    def __repr__(self) -> str:
        up = "" if self._connected_at is None else f", connected_at={self._connected_at:.3f}"
        limit = self._config.max_attempts
        return (
            f"Backoff(attempt={self.attempt}/{'inf' if limit is None else limit}, "
            f"current_delay={self.current_delay:.3f}{up})"
        )

    @property
    def exhausted(self) -> bool:
        """True once ``max_attempts`` attempts failed since the last reset: do not retry."""
        limit = self._config.max_attempts
        return limit is not None and self.attempt >= limit

    @property
    def retries_left(self) -> int | None:
        """Further failures ``next_delay`` will still answer with a delay; None: unlimited."""
        limit = self._config.max_attempts
        return None if limit is None else max(0, limit - self.attempt - 1)

    def base_delay(self, attempt: int) -> float:
        """The delay before jitter for failure number ``attempt`` (1-based), capped."""
        if attempt < 1:
            return 0.0
        config = self._config
        return min(config.max_delay, config.base * 2.0 ** min(attempt - 1, _MAX_EXPONENT))

    def next_delay(
        self, *, at_least: float = 0.0, last_error: BaseException | None = None
    ) -> float:
        """Register a failed attempt and return how long to wait before the next one.

        The delay is ``min(max_delay, base * 2**(attempt-1))``, raised to ``at_least`` (a
        server's ``Retry-After``, which may exceed ``max_delay``), plus ``rng() * jitter`` on
        top of either. Raises :class:`RetriesExhaustedError` (carrying ``last_error``) when this
        failure is attempt number ``max_attempts``: there is no attempt left to wait for.
        """
        self._connected_at = None
        self.attempt += 1
        if self.exhausted:
            raise RetriesExhaustedError(self.attempt, last_error)
        delay = self.base_delay(self.attempt)
        # `>` rather than max(): a NaN Retry-After is ignored instead of poisoning the delay.
        if at_least > delay:
            delay = at_least
        delay += self._rng() * self._config.jitter
        self.current_delay = delay
        return delay

    def connected(self, now: float) -> None:
        """A connection opened at ``now``; it counts as stable once up for ``stable_for``."""
        self._connected_at = now

    def healthy(self, now: float) -> None:
        """A check while connected: reset the counter once up for ``stable_for`` seconds."""
        connected_at = self._connected_at
        if connected_at is not None and now - connected_at >= self._config.stable_for:
            self.attempt = 0

    def disconnected(self, now: float) -> None:
        """The connection ended at ``now``: reset only if it stayed up for ``stable_for``."""
        self.healthy(now)
        self._connected_at = None

    def reset(self) -> None:
        """Forget every failure (e.g. the user asked to reconnect now)."""
        self.attempt = 0
        self.current_delay = 0.0
