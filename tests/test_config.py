"""Configuration: Polymarket-appropriate defaults, named profiles, overrides, validation."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from polyfeed.config import (
    DEFAULT_MARKET_URL,
    DEFAULT_USER_URL,
    PROFILES,
    BackoffConfig,
    HeartbeatConfig,
    PoolConfig,
    QueueConfig,
    StreamConfig,
    WatchdogConfig,
)
from polyfeed.errors import ConfigError


def test_defaults_follow_the_protocol_notes() -> None:
    config = StreamConfig()
    assert (config.heartbeat.interval, config.heartbeat.pong_timeout) == (10.0, 30.0)
    backoff = config.backoff
    assert (backoff.base, backoff.max_delay, backoff.jitter, backoff.stable_for) == (
        1.0,
        60.0,
        0.5,
        30.0,
    )
    assert backoff.first_retry_max == 0.25
    assert backoff.max_attempts is None
    assert config.watchdog.data_timeout == 300.0
    assert config.watchdog.confirm_timeout == 30.0
    assert config.watchdog.asset_timeout is None
    assert config.queue.overflow == "drop_oldest"
    assert config.max_assets_per_connection == 200
    assert config.endpoints.market_url == DEFAULT_MARKET_URL
    assert config.endpoints.user_url == DEFAULT_USER_URL
    assert DEFAULT_MARKET_URL.endswith("/ws/market")
    assert DEFAULT_USER_URL.endswith("/ws/user")


@pytest.mark.parametrize(
    ("profile", "data_timeout"), [("hft", 60.0), ("dashboard", 300.0), ("low-activity", 900.0)]
)
def test_profiles_set_the_data_timeout(profile: str, data_timeout: float) -> None:
    config = StreamConfig.from_profile(profile)
    assert config.watchdog.data_timeout == data_timeout
    # Everything else stays at the defaults (hft's heartbeat aside).
    if profile != "hft":
        assert config.heartbeat == HeartbeatConfig()
    assert config.backoff == BackoffConfig()
    assert config.queue == QueueConfig()


def test_hft_profile_finds_a_dead_link_within_15_seconds() -> None:
    heartbeat = StreamConfig.from_profile("hft").heartbeat
    assert heartbeat.pong_timeout <= 15.0
    assert heartbeat == HeartbeatConfig(interval=5.0, pong_timeout=15.0)
    # An explicit heartbeat still wins over the profile's.
    slow = HeartbeatConfig(interval=10.0, pong_timeout=30.0)
    assert StreamConfig.from_profile("hft", heartbeat=slow).heartbeat == slow


def test_default_profile_is_dashboard() -> None:
    assert StreamConfig.from_profile() == StreamConfig.from_profile("dashboard")
    assert set(PROFILES) == {"hft", "dashboard", "low-activity"}


def test_from_profile_applies_overrides() -> None:
    config = StreamConfig.from_profile(
        "hft",
        heartbeat=HeartbeatConfig(interval=5.0, pong_timeout=15.0),
        max_assets_per_connection=50,
        custom_feature_enabled=True,
    )
    assert config.heartbeat.interval == 5.0
    assert config.max_assets_per_connection == 50
    assert config.custom_feature_enabled is True
    assert config.watchdog.data_timeout == 60.0  # the profile's, untouched


def test_unknown_profile_names_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        StreamConfig.from_profile("turbo")
    message = str(caught.value)
    assert "turbo" in message
    for name in ("hft", "dashboard", "low-activity"):
        assert name in message


def test_unknown_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="heartbeet"):
        StreamConfig.from_profile("hft", heartbeet=3)


def test_configs_are_frozen() -> None:
    config = StreamConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.custom_feature_enabled = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.heartbeat.interval = 1.0  # type: ignore[misc]


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        HeartbeatConfig(interval=0)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: HeartbeatConfig(interval=0), "interval"),
        (lambda: HeartbeatConfig(interval=-1), "interval"),
        (lambda: HeartbeatConfig(interval=math.nan), "interval"),
        (lambda: HeartbeatConfig(pong_timeout=0), "pong_timeout"),
        (lambda: HeartbeatConfig(interval=10, pong_timeout=10), "longer"),
        (lambda: HeartbeatConfig(interval=10, pong_timeout=5), "longer"),
        (lambda: WatchdogConfig(data_timeout=0), "data_timeout"),
        (lambda: WatchdogConfig(confirm_timeout=-5), "confirm_timeout"),
        (lambda: WatchdogConfig(asset_timeout=0), "asset_timeout"),
        (lambda: BackoffConfig(base=0), "base"),
        (lambda: BackoffConfig(max_delay=0), "max_delay"),
        (lambda: BackoffConfig(base=10, max_delay=5), "max_delay"),
        (lambda: BackoffConfig(jitter=-0.1), "jitter"),
        (lambda: BackoffConfig(jitter=math.nan), "jitter"),
        (lambda: BackoffConfig(jitter=1.5), "jitter"),
        (lambda: BackoffConfig(first_retry_max=-0.1), "first_retry_max"),
        (lambda: BackoffConfig(first_retry_max=math.nan), "first_retry_max"),
        (lambda: BackoffConfig(stable_for=-1), "stable_for"),
        (lambda: BackoffConfig(stable_for=math.nan), "stable_for"),
        (lambda: BackoffConfig(max_attempts=0), "max_attempts"),
        (lambda: BackoffConfig(auth_retries=-1), "auth_retries"),
        (lambda: QueueConfig(maxsize=0), "maxsize"),
        (lambda: QueueConfig(overflow="block"), "block"),  # type: ignore[arg-type]
        (lambda: QueueConfig(alarm_at=0), "alarm_at"),
        (lambda: QueueConfig(max_bytes=0), "max_bytes"),
        (lambda: QueueConfig(low_water=1.0), "low_water"),
        (lambda: QueueConfig(low_water=-0.1), "low_water"),
        (lambda: QueueConfig(low_water=math.nan), "low_water"),
        (lambda: QueueConfig(lifecycle_cap=0), "lifecycle_cap"),
        (lambda: StreamConfig(max_assets_per_connection=0), "max_assets_per_connection"),
        (lambda: WatchdogConfig(asset_retries=-1), "asset_retries"),
        (lambda: PoolConfig(open_interval=-1), "open_interval"),
        (lambda: PoolConfig(open_interval=math.nan), "open_interval"),
        (lambda: PoolConfig(open_slowdown=0.5), "open_slowdown"),
        (lambda: PoolConfig(open_interval=2, max_open_interval=1), "max_open_interval"),
        (lambda: PoolConfig(compact_below=1.5), "compact_below"),
        (lambda: StreamConfig(connect_timeout=0), "connect_timeout"),
        (lambda: StreamConfig(close_timeout=-1), "close_timeout"),
        (lambda: StreamConfig(max_frame_bytes=0), "max_frame_bytes"),
        (lambda: StreamConfig.from_profile("hft", connect_timeout=-1), "connect_timeout"),
    ],
)
def test_invalid_values_are_rejected_with_the_field_named(
    factory: Callable[[], object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        factory()


def test_valid_edge_values_are_accepted() -> None:
    assert BackoffConfig(jitter=0, stable_for=0).jitter == 0
    assert BackoffConfig(jitter=1).jitter == 1
    assert BackoffConfig(first_retry_max=None).first_retry_max is None
    assert BackoffConfig(first_retry_max=0).first_retry_max == 0
    assert BackoffConfig(base=5, max_delay=5).max_delay == 5
    assert WatchdogConfig(asset_timeout=0.5).asset_timeout == 0.5
    assert QueueConfig(maxsize=1, alarm_at=1).alarm_at == 1
    edge = QueueConfig(maxsize=10, max_bytes=1, low_water=0, lifecycle_cap=1)
    assert (edge.low_water_items, edge.low_water_bytes) == (0, 0)
    assert QueueConfig(maxsize=10, low_water=0.99).low_water_items == 9
    assert StreamConfig(close_timeout=0).close_timeout == 0


def _initial_dump(book: dict[str, Any], assets: int) -> bytes:
    """The initial-dump frame of ``assets`` books shaped like ``book`` (77-digit token ids)."""
    books = [dict(book, asset_id=str(10**76 + index)) for index in range(assets)]
    return json.dumps(books, separators=(",", ":")).encode()


def test_max_frame_bytes_fits_the_largest_initial_dump_with_headroom(fixtures_dir: Path) -> None:
    config = StreamConfig()
    # The largest real book capture: 162 levels, 5,632 bytes of compact JSON.
    book = json.loads((fixtures_dir / "nautilus_trader_py_ws/book.json").read_bytes())
    real_dump = _initial_dump(book, config.max_assets_per_connection)
    # The worst case: every price of a 0.001 tick grid holds a level (sizes as in the capture).
    sizes = [level["size"] for level in book["bids"] + book["asks"]]
    full = dict(
        book,
        bids=[{"price": f"{p / 1000:g}", "size": sizes[p % len(sizes)]} for p in range(1, 500)],
        asks=[
            {"price": f"{p / 1000:g}", "size": sizes[p % len(sizes)]} for p in range(999, 499, -1)
        ],
    )
    worst_dump = _initial_dump(full, config.max_assets_per_connection)
    assert len(real_dump) * 5 <= config.max_frame_bytes
    # Headroom over the worst real frame, but not an open door for a hostile peer.
    assert len(worst_dump) <= config.max_frame_bytes < 2 * len(worst_dump)
