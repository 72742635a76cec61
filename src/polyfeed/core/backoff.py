"""Reconnect delays, sans-I/O: ``now`` and randomness are injected.

The policy, with the shipped :class:`~polyfeed.config.BackoffConfig` numbers:

- **Fast first retry.** When a connection that delivered data (any frame after the
  subscription) ends, the first retry waits a full-jitter ``uniform(0, first_retry_max)``:
  0-0.25 s, 0.125 s on average. A server close or a TCP drop on a healthy link is usually
  cured by reconnecting at once (Polymarket's own SDK reconnects in under 0.1 s); the jitter
  still spreads a fleet of clients that a server restart disconnected together.
- **Exponential after that.** Every other failure waits
  ``min(max_delay, base * 2**k) * uniform(1 - jitter, 1)``, ``k`` = 0, 1, 2, ... counting the
  exponential steps since the last reset: with base 1 s, cap 60 s and jitter 0.5 that is
  0.5-1 s, 1-2 s, 2-4 s, ... up to 30-60 s. Jitter proportional to the delay keeps clients
  apart at every scale without adding a second to every retry. A first failure that follows no
  data (refused handshake, a socket that died before its first frame) starts here.
- **Retry-After** (``at_least``) is a floor, even above the cap.
- **Stable-gated reset.** The attempt counter (and with it the fast first retry) resets only
  when a connection stayed up for ``stable_for`` (30 s). A server that accepts, sends a
  snapshot and closes at once therefore gets one fast retry, then delays that grow to the cap
  instead of a reconnect storm.

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
        backoff.disconnected(clock.now(), delivered=...)   # then next_delay(...) as above

"Can I retry?" is ``not backoff.exhausted``; "how long?" is ``next_delay()``, which registers the
failure and raises :class:`~polyfeed.errors.RetriesExhaustedError` once ``max_attempts``
connection attempts have failed since the last reset.
"""

from __future__ import annotations

from collections.abc import Callable

from polyfeed.config import BackoffConfig
from polyfeed.errors import RetriesExhaustedError

__all__ = ["Backoff"]

# 2.0 ** 1024 overflows; beyond ~60 doublings every delay is at the cap anyway.
_MAX_EXPONENT = 1000


class Backoff:
    """Delays between connection attempts for one stream (the policy is the module docstring).

    ``rng`` returns floats in ``[0, 1)`` (e.g. ``random.Random(seed).random``); it draws the
    jitter so many clients do not reconnect in lockstep.
    """

    __slots__ = (
        "_config",
        "_connected_at",
        "_delivered",
        "_fast_retry_used",
        "_rng",
        "attempt",
        "current_delay",
    )

    def __init__(self, config: BackoffConfig, rng: Callable[[], float]) -> None:
        self._config = config
        self._rng = rng
        self._connected_at: float | None = None
        # The connection that just ended delivered data: its first retry may be the fast one.
        self._delivered = False
        # The first failure since the last reset took the fast retry: exponential steps
        # start one attempt later.
        self._fast_retry_used = False
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

    def base_delay(self, step: int) -> float:
        """The delay before jitter of exponential step ``step`` (1-based), capped."""
        if step < 1:
            return 0.0
        config = self._config
        return min(config.max_delay, config.base * 2.0 ** min(step - 1, _MAX_EXPONENT))

    def next_delay(
        self, *, at_least: float = 0.0, last_error: BaseException | None = None
    ) -> float:
        """Register a failed attempt and return how long to wait before the next one.

        The first failure since the last reset after a connection that delivered data waits
        ``rng() * first_retry_max``; every other one ``base_delay(step) * (1 - jitter * rng())``.
        Either is raised to ``at_least`` (a server's ``Retry-After``, which may exceed
        ``max_delay``). Raises :class:`RetriesExhaustedError` (carrying ``last_error``) when
        this failure is attempt number ``max_attempts``: there is no attempt left to wait for.
        """
        config = self._config
        delivered, self._delivered = self._delivered, False
        self._connected_at = None
        self.attempt += 1
        if self.exhausted:
            raise RetriesExhaustedError(self.attempt, last_error)
        if self.attempt == 1 and delivered and config.first_retry_max is not None:
            self._fast_retry_used = True
            delay = self._rng() * config.first_retry_max
        else:
            step = self.attempt - 1 if self._fast_retry_used else self.attempt
            delay = self.base_delay(step) * (1.0 - config.jitter * self._rng())
        # `>` rather than max(): a NaN Retry-After is ignored instead of poisoning the delay.
        if at_least > delay:
            delay = at_least
        self.current_delay = delay
        return delay

    def connected(self, now: float) -> None:
        """A connection opened at ``now``; it counts as stable once up for ``stable_for``."""
        self._connected_at = now
        self._delivered = False

    def healthy(self, now: float) -> None:
        """A check while connected: reset the counter once up for ``stable_for`` seconds."""
        connected_at = self._connected_at
        if connected_at is not None and now - connected_at >= self._config.stable_for:
            self.attempt = 0
            self._fast_retry_used = False

    def disconnected(self, now: float, *, delivered: bool = False) -> None:
        """The connection ended at ``now``: reset only if it stayed up for ``stable_for``.

        ``delivered``: it received at least one frame after its subscription, so the next
        failure, if it is the first since the last reset, gets the fast retry.
        """
        self.healthy(now)
        self._connected_at = None
        self._delivered = delivered

    def reset(self) -> None:
        """Forget every failure (e.g. the user asked to reconnect now)."""
        self.attempt = 0
        self.current_delay = 0.0
        self._fast_retry_used = False
