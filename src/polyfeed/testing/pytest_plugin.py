"""pytest plugin: the ``fake_polymarket`` fixture (a started :class:`FakePolymarket`).

Registered through the ``pytest11`` entry point ``polyfeed``; without it, add
``pytest_plugins = ["polyfeed.testing.pytest_plugin"]`` to the root ``conftest.py`` (or import the
fixture into a test module). The fixture is async and needs pytest-asyncio; without it, tests that
ask for the fixture are skipped with a reason instead of breaking the whole session.

Defaults are small and quiet: two markets, ``rate=0`` (call ``fake.step()``), seed 0. Override per
test with the marker::

    @pytest.mark.fake_polymarket(markets=4, rate=20.0, ping_grace=0.5)
    async def test_bot(fake_polymarket): ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from polyfeed.testing.server import FakePolymarket

__all__ = ["fake_polymarket", "pytest_configure"]

DEFAULTS: dict[str, Any] = {"markets": 2, "rate": 0.0, "seed": 0}


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``fake_polymarket`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "fake_polymarket(**options): keyword arguments for the fake_polymarket fixture's server",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    options = dict(DEFAULTS)
    marker = request.node.get_closest_marker("fake_polymarket")
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.fake_polymarket takes keyword arguments only")
        options.update(marker.kwargs)
    return options


async def _serve(request: pytest.FixtureRequest) -> AsyncIterator[FakePolymarket]:
    async with FakePolymarket(**_options(request)) as fake:
        yield fake


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised only where pytest-asyncio is absent

    @pytest.fixture
    def fake_polymarket() -> None:
        """A started FakePolymarket (needs pytest-asyncio, which is not installed)."""
        pytest.skip("the fake_polymarket fixture needs pytest-asyncio")

else:
    # One of two definitions is chosen at import time; mypy sees both.
    @pytest_asyncio.fixture
    async def fake_polymarket(  # type: ignore[misc]
        request: pytest.FixtureRequest,
    ) -> AsyncIterator[FakePolymarket]:
        """A started :class:`FakePolymarket` on 127.0.0.1 (options: the ``fake_polymarket``
        marker); stopped after the test."""
        async for fake in _serve(request):
            yield fake
