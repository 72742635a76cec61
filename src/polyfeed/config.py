"""Configuration: frozen dataclasses with Polymarket-appropriate defaults, and named profiles.

Profiles set the data-freshness timeout for the kind of consumer, and ``hft`` a faster
heartbeat (a dead link is found within 15 s instead of 30 s):

============ ============ ================= ============= ===================================
profile      data_timeout PING / PONG dead  witness_after for
============ ============ ================= ============= ===================================
hft          60 s         every 5 s / 15 s  3 s           busy markets, a trading bot
dashboard    300 s        every 10 s / 30 s 30 s          the default: monitors, dashboards
low-activity 900 s        every 10 s / 30 s 120 s         thin markets, quiet for minutes
============ ============ ================= ============= ===================================

``witness_after``: a market connection silent that long is checked against REST ``/book``
(:mod:`polyfeed.core.witness`); a silent stall is then found in seconds, a quiet market never
flagged.

Every value can be overridden: ``StreamConfig.from_profile("hft", heartbeat=...)`` or
``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from polyfeed.errors import ConfigError

OverflowPolicy = Literal["drop_oldest", "disconnect", "buffer"]

DEFAULT_MARKET_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
DEFAULT_USER_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/user"
DEFAULT_REST_URL = "https://clob.polymarket.com"
DEFAULT_GAMMA_URL = "https://gamma-api.polymarket.com"


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    """Text ``PING`` every ``interval`` s; no ``PONG`` for ``pong_timeout`` s means a dead link."""

    interval: float = 10.0
    pong_timeout: float = 30.0

    def __post_init__(self) -> None:
        _positive("heartbeat interval", self.interval)
        _positive("pong_timeout", self.pong_timeout)
        if self.pong_timeout <= self.interval:
            raise ConfigError("pong_timeout must be longer than the heartbeat interval")


@dataclass(frozen=True, slots=True)
class WatchdogConfig:
    """Data freshness: no frame for ``data_timeout`` s is a stale connection.

    ``asset_timeout`` (None: off) flags single subscribed assets silent that long while others
    flow; ``confirm_timeout`` is how long a subscribed asset may go without its first event before
    it is re-requested. On a market stream a silent asset is first checked against REST
    ``/book`` (a quiet market is left alone), then redriven; after ``asset_retries`` redrives in
    a row its connection is replaced.

    ``witness_after`` (None: off; the profiles set it) is the REST witness of a market stream:
    a connection without a market event that long has ``witness_sample`` of its assets checked
    against REST ``/book``; a server book that moved past ours is ``Stale(kind="witness")`` and
    the connection is replaced at once, long before ``data_timeout`` (a quiet market is never
    flagged: its book did not move). See :mod:`polyfeed.core.witness`.
    """

    data_timeout: float = 300.0
    asset_timeout: float | None = None
    confirm_timeout: float = 30.0
    asset_retries: int = 2
    witness_after: float | None = None
    witness_sample: int = 3

    def __post_init__(self) -> None:
        _positive("data_timeout", self.data_timeout)
        _positive("confirm_timeout", self.confirm_timeout)
        if self.asset_retries < 0:
            raise ConfigError(f"asset_retries must be >= 0, got {self.asset_retries!r}")
        if self.asset_timeout is not None:
            _positive("asset_timeout", self.asset_timeout)
        if self.witness_after is not None:
            _positive("witness_after", self.witness_after)
        if self.witness_sample < 1:
            raise ConfigError(f"witness_sample must be >= 1, got {self.witness_sample!r}")


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """Reconnect delays (the policy in full: :mod:`polyfeed.core.backoff`).

    After a connection that delivered data ends, the first retry waits
    ``uniform(0, first_retry_max)`` (None: no fast retry). Every other failure waits
    ``min(max_delay, base * 2**k) * uniform(1 - jitter, 1)``, ``k`` counting those exponential
    retries from 0; ``jitter`` is a fraction of the delay in ``[0, 1]`` (0: none). The attempt
    counter resets only after a connection stayed healthy for ``stable_for`` s.
    ``max_attempts`` None retries for ever; ``auth_retries`` is how many apparent credential
    rejections are retried before the stream fails.
    """

    base: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.5
    first_retry_max: float | None = 0.25
    stable_for: float = 30.0
    max_attempts: int | None = None
    auth_retries: int = 2

    def __post_init__(self) -> None:
        _positive("backoff base", self.base)
        _positive("backoff max_delay", self.max_delay)
        if self.max_delay < self.base:
            raise ConfigError("backoff max_delay must be >= base")
        # `not 0 <= x` rather than `x < 0`: NaN fails every comparison and must not slip through.
        if not 0 <= self.jitter <= 1:
            raise ConfigError(
                f"backoff jitter is a fraction of the delay in [0, 1], got {self.jitter!r}"
            )
        if self.first_retry_max is not None and not self.first_retry_max >= 0:
            raise ConfigError(
                f"backoff first_retry_max must be >= 0 or None, got {self.first_retry_max!r}"
            )
        if not self.stable_for >= 0:
            raise ConfigError(f"stable_for must be >= 0, got {self.stable_for!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError("max_attempts must be >= 1 or None")
        if self.auth_retries < 0:
            raise ConfigError("auth_retries must be >= 0")


LIFECYCLE_CAP = 256
"""Default hard cap on lifecycle events queued at once (``QueueConfig.lifecycle_cap``)."""

MAX_QUEUE_BYTES = 64 * 1024 * 1024
"""Default ``QueueConfig.max_bytes``: 64 MiB of estimated event size."""


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """The bounded queue between the reader and the consumer.

    ``drop_oldest``: drop the oldest item, count it and report a gap. ``disconnect``: tear the
    connection down and reconnect (data is replayed as fresh snapshots) once the consumer has
    drained the queue to its low-water mark. ``buffer``: a large buffer; above ``alarm_at``
    items a warning is logged, when full the oldest is dropped.

    The queue is full at ``maxsize`` events or ``max_bytes`` of their estimated size
    (:func:`polyfeed.aio.event_queue.estimate_size`), whichever comes first; one event larger
    than ``max_bytes`` is still taken into an empty queue. ``low_water`` (a fraction of both
    bounds) is where a lagging queue is brought back to: under ``drop_oldest``/``buffer`` a drop
    ``Gap`` delivered while the consumer is still behind the previous one drops the oldest
    events down to it (counted in that gap), so a consumer slower than the feed gets runs of
    recent events rather than a gap on every read; under ``disconnect`` the reconnect waits
    until the consumer has drained the queue to it. ``lifecycle_cap``: lifecycle events queued
    at once before they collapse into one summary ``Gap``.
    """

    maxsize: int = 10_000
    overflow: OverflowPolicy = "drop_oldest"
    alarm_at: int | None = None
    max_bytes: int = MAX_QUEUE_BYTES
    low_water: float = 0.5
    lifecycle_cap: int = LIFECYCLE_CAP

    def __post_init__(self) -> None:
        if self.maxsize < 1:
            raise ConfigError("queue maxsize must be >= 1")
        if self.overflow not in ("drop_oldest", "disconnect", "buffer"):
            raise ConfigError(f"unknown overflow policy {self.overflow!r}")
        if self.alarm_at is not None and self.alarm_at < 1:
            # 0 would warn on every put, even into an empty queue.
            raise ConfigError(f"queue alarm_at must be >= 1 or None, got {self.alarm_at!r}")
        if self.max_bytes < 1:
            raise ConfigError(f"queue max_bytes must be >= 1, got {self.max_bytes!r}")
        # `not 0 <= x < 1` rather than two comparisons: NaN fails every comparison.
        if not 0 <= self.low_water < 1:
            raise ConfigError(
                f"queue low_water is a fraction of the bounds in [0, 1), got {self.low_water!r}"
            )
        if self.lifecycle_cap < 1:
            raise ConfigError(f"queue lifecycle_cap must be >= 1, got {self.lifecycle_cap!r}")

    @property
    def low_water_items(self) -> int:
        """``low_water`` of ``maxsize``, in events."""
        return int(self.maxsize * self.low_water)

    @property
    def low_water_bytes(self) -> int:
        """``low_water`` of ``max_bytes``, in estimated bytes."""
        return int(self.max_bytes * self.low_water)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """How a market stream spreads its assets over connections (``max_assets_per_connection``
    each, on :class:`StreamConfig`).

    Handshakes, first opens and reconnects alike, start at least ``open_interval`` s apart; a
    429 multiplies that by ``open_slowdown`` (up to ``max_open_interval``) and each successful
    handshake divides it again. After an unsubscribe, connections are compacted when the assets
    fit on fewer and one is filled below ``compact_below`` (a fraction of the maximum; 0: never).
    """

    open_interval: float = 0.1
    open_slowdown: float = 2.0
    max_open_interval: float = 10.0
    compact_below: float = 0.25

    def __post_init__(self) -> None:
        if not self.open_interval >= 0:
            raise ConfigError(f"open_interval must be >= 0, got {self.open_interval!r}")
        if not self.open_slowdown >= 1:
            raise ConfigError(f"open_slowdown must be >= 1, got {self.open_slowdown!r}")
        if not self.max_open_interval >= self.open_interval:
            raise ConfigError("max_open_interval must be >= open_interval")
        if not 0 <= self.compact_below <= 1:
            raise ConfigError(f"compact_below must be in [0, 1], got {self.compact_below!r}")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where to connect. Tests point these at ``polyfeed.testing.FakePolymarket``."""

    market_url: str = DEFAULT_MARKET_URL
    user_url: str = DEFAULT_USER_URL
    rest_url: str = DEFAULT_REST_URL
    gamma_url: str = DEFAULT_GAMMA_URL


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Everything a stream needs; build with :meth:`from_profile`.

    ``max_frame_bytes`` (default 8 MiB) is the largest inbound WebSocket frame accepted; a
    longer one closes the connection. The largest real frame is the initial dump, one ``book``
    per subscribed asset in one array. The largest real book capture (162 levels) is 5,632
    bytes of compact JSON, about 33 bytes per level, so a 200-asset dump of such books is
    1.07 MiB. A book holds at most 999 levels (every price of a 0.001 tick grid): 33.6 KB, and
    a 200-asset dump of full books 6.4 MiB. The default covers that worst case with 25 %
    headroom (7x the dump of real books). Raise it together with
    ``max_assets_per_connection``: about 42 KB per asset.
    """

    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    endpoints: Endpoints = field(default_factory=Endpoints)
    pool: PoolConfig = field(default_factory=PoolConfig)
    custom_feature_enabled: bool = False
    max_assets_per_connection: int = 200
    connect_timeout: float = 10.0
    close_timeout: float = 0.5
    max_frame_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_assets_per_connection < 1:
            raise ConfigError(
                f"max_assets_per_connection must be >= 1, got {self.max_assets_per_connection!r}"
            )
        # A zero connect timeout would fail every handshake at once, and be retried for ever.
        _positive("connect_timeout", self.connect_timeout)
        if not self.close_timeout >= 0:
            raise ConfigError(f"close_timeout must be >= 0, got {self.close_timeout!r}")
        if self.max_frame_bytes < 1:
            raise ConfigError(f"max_frame_bytes must be >= 1, got {self.max_frame_bytes!r}")

    @classmethod
    def from_profile(cls, name: str = "dashboard", **overrides: object) -> StreamConfig:
        """The named profile's configuration with ``overrides`` (field name -> value) applied."""
        try:
            data_timeout = PROFILES[name]
        except KeyError:
            raise ConfigError(
                f"unknown profile {name!r}; choose one of {', '.join(sorted(PROFILES))}"
            ) from None
        base = cls(
            heartbeat=PROFILE_HEARTBEATS.get(name, HeartbeatConfig()),
            watchdog=WatchdogConfig(
                data_timeout=data_timeout, witness_after=PROFILE_WITNESS.get(name)
            ),
        )
        try:
            return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError(str(exc)) from None


PROFILES: dict[str, float] = {"hft": 60.0, "dashboard": 300.0, "low-activity": 900.0}
PROFILE_WITNESS: dict[str, float] = {"hft": 3.0, "dashboard": 30.0, "low-activity": 120.0}
"""Each profile's ``witness_after``: seconds of silence before a connection is checked over REST."""
PROFILE_HEARTBEATS: dict[str, HeartbeatConfig] = {
    "hft": HeartbeatConfig(interval=5.0, pong_timeout=15.0),
}
"""Profiles whose heartbeat differs from the default (PING every 10 s, PONG deadline 30 s)."""
