"""The curated public API."""

from __future__ import annotations

import polyfeed


def test_all_is_sorted_and_unique() -> None:
    assert polyfeed.__all__ == sorted(set(polyfeed.__all__))


def test_every_public_name_resolves() -> None:
    missing = [name for name in polyfeed.__all__ if not hasattr(polyfeed, name)]
    assert missing == []


def test_seed_vocabulary_is_available() -> None:
    assert polyfeed.SubscriptionManager is polyfeed.SubscriptionSet
    assert issubclass(polyfeed.DataTimeoutError, polyfeed.TransientError)
    assert polyfeed.ConnectionMetrics.__name__ == "ConnectionMetrics"
