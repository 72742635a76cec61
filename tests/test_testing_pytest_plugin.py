"""The pytest plugin's ``fake_polymarket`` fixture (testing/pytest_plugin.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from polyfeed.testing import FakePolymarket, pytest_plugin
from polyfeed.testing.pytest_plugin import fake_polymarket  # noqa: F401


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def test_fixture_serves_a_small_quiet_market(
    fake_polymarket: FakePolymarket,  # noqa: F811
    session: aiohttp.ClientSession,
) -> None:
    assert len(fake_polymarket.markets) == 2 and fake_polymarket.rate == 0.0
    async with session.get(f"{fake_polymarket.rest_url}/markets") as response:
        assert response.status == 200


def test_fixture_options_come_from_the_marker() -> None:
    # The marker itself is registered by the plugin's pytest_configure (entry point); here the
    # option merging is checked on a stand-in request.
    class Node:
        def __init__(self, marker: Mark | None) -> None:
            self.marker = marker

        def get_closest_marker(self, name: str) -> Mark | None:
            assert name == "fake_polymarket"
            return self.marker

    class Request:
        def __init__(self, marker: Mark | None) -> None:
            self.node = Node(marker)

    class Mark:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.args = args
            self.kwargs = kwargs

    marked = Mark(markets=3, ping_grace=0.5)
    assert pytest_plugin._options(Request(marked)) == {  # type: ignore[arg-type]
        "markets": 3,
        "rate": 0.0,
        "seed": 0,
        "ping_grace": 0.5,
    }
    assert pytest_plugin._options(Request(None)) == pytest_plugin.DEFAULTS  # type: ignore[arg-type]
    with pytest.raises(pytest.UsageError):
        pytest_plugin._options(Request(Mark(3)))  # type: ignore[arg-type]
