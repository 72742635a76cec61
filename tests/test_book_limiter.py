"""Tests of the snapshot-fetch token bucket (polyfeed.core.book.limiter)."""

from __future__ import annotations

import pytest

from polyfeed.core.book import (
    ResyncLimiter,
)
from polyfeed.errors import ConfigError


def test_resync_limiter_token_bucket() -> None:
    limiter = ResyncLimiter(rate=2, per=1.0)
    assert limiter.try_acquire(0.0)
    assert limiter.try_acquire(0.0)
    assert not limiter.try_acquire(0.0)
    assert limiter.next_available(0.0) == pytest.approx(0.5)
    assert limiter.available(0.25) == 0
    assert limiter.try_acquire(0.5)
    assert limiter.next_available(10.0) == 10.0
    assert limiter.available(10.0) == 2  # never above the bucket size
    assert (limiter.granted, limiter.refused) == (3, 1)
    assert "granted=3" in repr(limiter)
    default = ResyncLimiter()
    assert sum(default.try_acquire(100.0) for _ in range(60)) == 50
    burst = ResyncLimiter(rate=10, per=10.0, burst=1)
    assert burst.try_acquire(0.0) and not burst.try_acquire(0.0)
    for bad in ({"rate": 0}, {"per": 0.0}, {"burst": 0}):
        with pytest.raises(ConfigError):
            ResyncLimiter(**bad)
