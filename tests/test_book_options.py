"""Tests of book options, verdicts and counters (polyfeed.core.book.options)."""

from __future__ import annotations

import pytest

from polyfeed.core.book import (
    BookOptions,
)
from polyfeed.errors import ConfigError


def test_options_are_validated() -> None:
    for bad in (
        {"hash_check_every": -1},
        {"grace_messages": -1},
        {"grace_seconds": -0.5},
        {"max_buffered": 0},
    ):
        with pytest.raises(ConfigError):
            BookOptions(**bad)
