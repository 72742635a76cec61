"""The live dashboard: renders into a fixed-width console and shows an injected fault."""

from __future__ import annotations

import asyncio
import dataclasses
import io

import pytest
from rich.console import Console

from polyfeed import BackoffConfig, HeartbeatConfig, MarketStream, StreamConfig, WatchdogConfig
from polyfeed.cli.dashboard import Dashboard, showing
from polyfeed.events import Disconnected, Stale
from polyfeed.testing import FakePolymarket, StallData


def fixed_console() -> Console:
    return Console(width=110, file=io.StringIO(), force_terminal=False, color_system=None)


def text_of(dashboard: Dashboard, now: float | None = None) -> str:
    console = fixed_console()
    with console.capture() as capture:
        console.print(dashboard.render(now))
    return capture.get()


async def test_an_unstarted_stream_renders_idle_with_its_books() -> None:
    stream = MarketStream(["111", "222"])
    dashboard = Dashboard(
        {"market": stream}, books=stream.books, book_ids=["111", "222"], clock=lambda: 5.0
    )
    text = text_of(dashboard)
    assert "idle" in text
    assert text.count("UNSYNCED") == 2
    assert max(len(line) for line in text.splitlines()) <= 110


async def test_events_per_second_and_the_latest_lifecycle_lines() -> None:
    times = iter([0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 4.0])
    stream = MarketStream(["1"])
    dashboard = Dashboard({"market": stream}, clock=lambda: next(times))
    dashboard.render()  # t=0: the rate's first sample
    dashboard.note(object())  # t=1
    dashboard.note(Stale(kind="data", silent_for=1.25))  # t=1
    dashboard.note(object())  # t=1
    dashboard.note(Disconnected(reason="stale data", code=None))  # t=2
    text = text_of(dashboard, now=2.0)
    assert "STALE (data): nothing for 1.25s" in text
    assert "disconnected: stale data (no close frame)" in text
    assert "  1.0s ago  STALE" in text
    # 4 events in the 2 s since the last sample.
    row = text.splitlines()[4]
    assert row.split("│")[3].strip() == "2", row


@pytest.mark.timeout(30)
async def test_a_live_stall_shows_as_a_stale_detection_and_a_reconnect_reason() -> None:
    config = dataclasses.replace(
        StreamConfig.from_profile("hft"),
        heartbeat=HeartbeatConfig(interval=0.1, pong_timeout=1.0),
        watchdog=WatchdogConfig(data_timeout=0.4, confirm_timeout=2.0),
        backoff=BackoffConfig(base=0.2, max_delay=0.2, jitter=0.0),
    )
    async with (
        FakePolymarket(markets=1, rate=30.0, seed=51) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=config) as stream,
    ):
        dashboard = Dashboard({"market": stream}, books=stream.books, book_ids=list(fake.asset_ids))
        console = fixed_console()
        async with asyncio.timeout(15), showing(dashboard, console, refresh=0.05):
            stalled = False
            async for event in stream:
                dashboard.note(event)
                if not stalled and stream.books[fake.asset_ids[0]].synced:
                    fake.inject(StallData())
                    stalled = True
                if stream.metrics.connects_total >= 2 and all(
                    stream.books[a].synced for a in fake.asset_ids
                ):
                    break
        text = text_of(dashboard)
    assert "STALE (data)" in text
    assert "stale_data 1" in text  # reconnects by reason
    assert "data 1" in text  # stale detections by kind
    assert text.count("synced") >= 2
    painted = console.file
    assert isinstance(painted, io.StringIO)
    assert "market" in painted.getvalue()
