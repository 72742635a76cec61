"""RedundantPool: its settings and its views (the fault runs are in tests/test_failover.py)."""

from __future__ import annotations

import random

import pytest

from polyfeed import MarketStream, StreamConfig
from polyfeed.aio.event_queue import EventQueue
from polyfeed.aio.redundant import RedundantPool
from polyfeed.errors import ConfigError
from polyfeed.metrics import PoolMetrics
from polyfeed.testing import FakeClock


def _pool(redundancy: int, stagger: float = 0.05) -> RedundantPool:
    config = StreamConfig()
    clock = FakeClock()
    return RedundantPool(
        ["b", "a"],
        redundancy=redundancy,
        stagger=stagger,
        url="ws://127.0.0.1:1/ws/market",
        config=config,
        clock=clock,
        rng=random.Random(1).random,
        queue=EventQueue(config.queue, clock.wall),
        metrics=PoolMetrics(0.0),
    )


@pytest.mark.parametrize(("redundancy", "stagger"), [(1, 0.05), (0, 0.05), (2, -1.0)])
def test_bad_settings_are_config_errors(redundancy: int, stagger: float) -> None:
    with pytest.raises(ConfigError):
        _pool(redundancy, stagger)


@pytest.mark.parametrize("redundancy", [0, 4])
def test_the_stream_takes_1_to_3_legs(redundancy: int) -> None:
    with pytest.raises(ConfigError):
        MarketStream(["a"], redundancy=redundancy)


def test_every_leg_carries_every_asset_with_the_same_placement() -> None:
    pool = _pool(3)
    assert len(pool.legs) == 3 and pool.legs[0] is pool
    assert all(leg.desired == frozenset({"a", "b"}) for leg in pool.legs)
    assert all(leg.placement.slot_of("a") == pool.placement.slot_of("a") for leg in pool.legs)
    # The stream's observer (the book keeper) comes after the merge, never instead of it.
    merge_hook = pool.observer
    pool.observer = None
    assert pool.observer is merge_hook
    assert pool.state == "idle"
    assert len(pool.connections()) == 3
    assert "legs=3" in repr(pool)


def test_every_leg_keeps_the_order_given_so_a_markets_tokens_share_a_slot() -> None:
    config = StreamConfig(max_assets_per_connection=2)
    clock = FakeClock()
    # A market's YES and NO side by side (as discovery lists them), not in sorted order.
    pool = RedundantPool(
        ["d", "a", "c", "b"],
        redundancy=2,
        url="ws://127.0.0.1:1/ws/market",
        config=config,
        clock=clock,
        rng=random.Random(1).random,
        queue=EventQueue(config.queue, clock.wall),
        metrics=PoolMetrics(0.0),
    )
    for leg in pool.legs:
        assert leg.placement.slot_of("d") == leg.placement.slot_of("a")
        assert leg.placement.slot_of("c") == leg.placement.slot_of("b")
        assert leg.placement.slot_of("a") != leg.placement.slot_of("b")
