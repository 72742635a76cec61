"""Shared test helpers: the location of the real Polymarket captures in ../shared, and a pause
of the garbage collector for timing-sensitive blocks.

Every test that reads the captures goes through :func:`require_captures` (the ``fixtures_dir``
fixture calls it). Where ``../shared`` is absent a developer's run skips those tests with the
reason; a CI run (``CI=true``) fails them instead, so a checkout without the captures cannot pass
CI while silently testing less.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from polyfeed.native import build_name, build_problem

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "polymarket"

# CI services set CI=true (GitHub Actions, GitLab, CircleCI, Travis); "1" covers the rest.
_CI_TRUE = frozenset({"true", "1"})


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a broken, stale or unexpected build (``POLYFEED_TEST_BUILD``:
    ``compiled`` or ``pure``; the Makefile sets it), rather than pass on other code."""
    problem = build_problem(os.environ.get("POLYFEED_TEST_BUILD") or None)
    if problem is not None:
        raise pytest.UsageError(f"polyfeed build: {problem}")


def pytest_report_header() -> str:
    """Which build the run tests (the header of every pytest run)."""
    return f"polyfeed build: {build_name()}"


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


@contextlib.contextmanager
def collector_paused(*, collect_first: bool = True) -> Iterator[None]:
    """Run a timing-sensitive block without CPython's cyclic garbage collector.

    Several hundred tests into a run the process holds ~150,000 tracked objects, and a full
    collection takes 100-250 ms on the 2-core CI machine. Landing inside a test that checks the
    pacer's 20 ms turns, or a step's CPU bound, it failed the test for something the test does not
    measure. ``collect_first``: collect before pausing (skip it where the block runs per hypothesis
    example). The collector's previous state is restored, also on error.
    """
    enabled = gc.isenabled()
    if collect_first:
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
