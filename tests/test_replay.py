"""Replay: a recording plays back as the same typed events, and rebuilds the live run's books."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from polyfeed import (
    BackoffConfig,
    Book,
    Connected,
    Disconnected,
    Gap,
    HeartbeatConfig,
    Level,
    MarketStream,
    MarketStreamEvent,
    PriceChange,
    StreamConfig,
    WatchdogConfig,
)
from polyfeed.errors import ConfigError, StreamNotStartedError
from polyfeed.replay import Replay
from polyfeed.sinks.base import Recorder, SessionInfo, to_record
from polyfeed.sinks.sqlite import SqliteSink
from polyfeed.testing import CloseWith, DropTcp, FakeClock, FakePolymarket, FaultPlan

CONFIG = StreamConfig(
    heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.3),
    watchdog=WatchdogConfig(data_timeout=0.5, confirm_timeout=2.0),
    backoff=BackoffConfig(base=0.02, max_delay=0.1, jitter=0.02, stable_for=0.5),
)


def book(asset: str, ts: int, bid: str) -> Book:
    return Book(
        market="0xm",
        asset_id=asset,
        timestamp=ts,
        bids=[Level(bid, "10")],
        asks=[Level("0.9", "10")],
    )


async def write_recording(path: Path, events: list[tuple[float, object]]) -> None:
    sink = SqliteSink(path)
    await sink.open(SessionInfo("market", ("a", "b"), 0.0))
    await sink.write([to_record(event, received) for received, event in events])
    await sink.aclose(100.0)


EVENTS: list[tuple[float, object]] = [
    (10.0, Connected(url="ws://x", attempt=1)),
    (10.5, book("a", 1, "0.1")),
    (11.0, book("b", 2, "0.2")),
    (12.0, Gap(started=11.0, ended=12.0, assets=["b"], reason="reconnect")),
    (13.0, book("a", 3, "0.3")),
]


async def test_events_come_back_typed_in_order_with_receive_times(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    await write_recording(path, EVENTS)
    seen = []
    async with Replay(path, chunk=2) as replay:
        async for event in replay:
            seen.append((replay.received, event))
        assert replay.books["a"].best_bid == Decimal("0.3")
    assert seen == EVENTS
    assert "closed" in repr(replay)


async def test_filters_by_asset_and_time(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    await write_recording(path, EVENTS)
    async with Replay(path, assets=["a"]) as replay:
        kinds = [type(e).__name__ for e in [e async for e in replay]]
    assert kinds == ["Connected", "Book", "Book"]
    async with Replay(path, since=11.0, until=12.0) as replay:
        times = [replay.received async for _ in replay]
    assert times == [11.0, 12.0]


async def test_paced_replay_follows_receive_times_on_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    await write_recording(path, EVENTS)
    clock = FakeClock()
    got: list[float] = []
    async with Replay(path, speed=2.0, clock=clock) as replay:

        async def consume() -> None:
            async for _ in replay:
                got.append(clock.now())

        async with asyncio.TaskGroup() as group:
            consumer = group.create_task(consume())
            async with asyncio.timeout(10):
                while not consumer.done():
                    await clock.run_for(0.05)
                    # Real time for the reader thread, which the fake clock does not move.
                    await asyncio.sleep(0.001)
    # Receive times 10, 10.5, 11, 12, 13 at double speed: 0, 0.25, 0.5, 1.0, 1.5 after the first
    # (which waits for the reader thread, in real time, while the fake time moves on).
    assert [t - got[0] for t in got] == pytest.approx([0.0, 0.25, 0.5, 1.0, 1.5], abs=0.051)


async def test_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Replay(tmp_path / "x.db", speed=0)
    with pytest.raises(ConfigError, match="no recording"):
        async with Replay(tmp_path / "missing.db"):
            pass
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ConfigError, match="not a polyfeed recording"):
        async with Replay(other):
            pass
    with pytest.raises(StreamNotStartedError):
        Replay(other).__aiter__()
    with pytest.raises(ConfigError):
        _ = Replay(other, books=False).books


@pytest.mark.timeout(60)
async def test_replaying_reproduces_the_live_books(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    plan = FaultPlan()
    plan.add(0, DropTcp(after=0.4))
    plan.add(1, CloseWith(code=1012, after=0.5))
    live_events: list[MarketStreamEvent] = []
    async with FakePolymarket(markets=4, seed=11, faults=plan, ping_grace=2.0) as fake:
        assets = list(fake.asset_ids)

        async def order_flow() -> None:
            while True:
                fake.step(1)
                await asyncio.sleep(0.005)

        async with MarketStream(assets, endpoints=fake.endpoints, config=CONFIG) as stream:

            class Tee:
                """The stream, with every event the recorder takes kept for comparison."""

                def __aiter__(self) -> Tee:
                    return self

                async def __anext__(self) -> MarketStreamEvent:
                    event = await stream.__anext__()
                    live_events.append(event)
                    return event

                async def aclose(self) -> None:
                    await stream.aclose()

            recorder = Recorder(
                Tee(), SqliteSink(path), channel="market", ids=assets, batch_window=0.1
            )
            async with asyncio.TaskGroup() as group:
                flow = group.create_task(order_flow())
                group.create_task(recorder.run())
                async with asyncio.timeout(20):
                    await fake.wait_for_connection(3)
                    await asyncio.sleep(0.5)
                flow.cancel()
                for connection in fake.open_connections("market"):
                    await connection.flush()
                await asyncio.sleep(0.3)
                live = {asset: stream.books[asset].to_book() for asset in assets}
                recorder.request_stop()
        server = {asset: fake.book(asset) for asset in assets}

    replayed: list[MarketStreamEvent | object] = []
    async with Replay(path) as replay:
        async for event in replay:
            replayed.append(event)
        rebuilt = {asset: replay.books[asset].to_book() for asset in assets}
    assert replayed == live_events
    assert sum(isinstance(e, Disconnected) for e in replayed) >= 2
    assert sum(isinstance(e, PriceChange) for e in replayed) > 100
    for asset in assets:
        assert rebuilt[asset].bids == live[asset].bids, asset
        assert rebuilt[asset].asks == live[asset].asks, asset
        assert replay.books[asset].synced
        # And both are the server's book.
        assert {lv.price: lv.size for lv in rebuilt[asset].bids} == dict(server[asset].bids)


async def test_a_parquet_folder_replays_in_recording_order(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from polyfeed.sinks.parquet import ParquetSink

    folder = tmp_path / "pq"
    sink = ParquetSink(folder, rotate_rows=2)
    await sink.open(SessionInfo("market", ("a", "b"), 0.0))
    for received, event in EVENTS:
        await sink.write([to_record(event, received)])
    await sink.aclose(100.0)
    async with Replay(folder, chunk=2) as replay:
        seen = [(replay.received, event) async for event in replay]
        assert replay.books["a"].best_bid == Decimal("0.3")
    assert seen == EVENTS
    async with Replay(folder, assets=["b"], until=12.0) as replay:
        assert [type(e).__name__ async for e in replay] == ["Connected", "Book", "Gap"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a polyfeed recording"):
        async with Replay(tmp_path / "empty"):
            pass
