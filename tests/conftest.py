"""Shared test helpers: the location of the real Polymarket captures in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "polymarket"


@pytest.fixture
def fixtures_dir() -> Path:
    """The real-capture folder; tests using it skip with a reason where ../shared is absent."""
    if not FIXTURES.is_dir():
        pytest.skip(f"Polymarket fixtures not found at {FIXTURES} (../shared is absent)")
    return FIXTURES
