"""Shared test helpers: the location of the real Polymarket captures in ../shared.

Every test that reads the captures goes through :func:`require_captures` (the ``fixtures_dir``
fixture calls it). Where ``../shared`` is absent a developer's run skips those tests with the
reason; a CI run (``CI=true``) fails them instead, so a checkout without the captures cannot pass
CI while silently testing less.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "polymarket"

# CI services set CI=true (GitHub Actions, GitLab, CircleCI, Travis); "1" covers the rest.
_CI_TRUE = frozenset({"true", "1"})


def running_in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``CI`` is set to a true value (``true``/``1``, any case)."""
    env = os.environ if environ is None else environ
    return env.get("CI", "").strip().lower() in _CI_TRUE


def require_captures(path: Path, environ: Mapping[str, str] | None = None) -> Path:
    """``path`` when it is a folder; otherwise skip the test, or fail it under ``CI=true``.

    The failure is one line naming the missing folder, without a traceback.
    """
    if path.is_dir():
        return path
    missing = f"Polymarket captures not found at {path} (../shared is absent)"
    if running_in_ci(environ):
        pytest.fail(f"CI=true and {missing}", pytrace=False)
    pytest.skip(missing)


@pytest.fixture
def fixtures_dir() -> Path:
    """The real-capture folder (see :func:`require_captures` for when it is missing)."""
    return require_captures(FIXTURES)
