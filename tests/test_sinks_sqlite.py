"""The SQLite sink: schema, WAL, batches off the loop, resume after a restart, and the done-when
run against the fake server with faults (every ground-truth event recorded or in a gap)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from polyfeed import (
    BackoffConfig,
    Gap,
    HeartbeatConfig,
    MarketStream,
    QueueConfig,
    StreamConfig,
    WatchdogConfig,
)
from polyfeed.errors import SinkError
from polyfeed.sinks.base import Record, Recorder, Resume, SessionInfo, to_record
from polyfeed.sinks.sqlite import SqliteSink
from polyfeed.testing import (
    CloseWith,
    DropTcp,
    Duplicate,
    FakePolymarket,
    FaultPlan,
    Malformed,
    RefuseHandshake,
    StallData,
)
from record_helpers import unexplained_events

CONFIG = StreamConfig(
    heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.3),
    watchdog=WatchdogConfig(data_timeout=0.5, confirm_timeout=2.0),
    backoff=BackoffConfig(base=0.02, max_delay=0.1, jitter=0.02, stable_for=0.5),
)


def session(started: float = 100.0, ids: Sequence[str] = ("a",)) -> SessionInfo:
    return SessionInfo("market", tuple(ids), started)


def price_change(ts: int, asset: str = "a") -> dict[str, Any]:
    return {
        "event_type": "price_change",
        "market": "0xm",
        "timestamp": str(ts),
        "price_changes": [{"asset_id": asset, "price": "0.5", "size": "1", "side": "BUY"}],
    }


def records(*timestamps: int, received: float = 200.0) -> list[Record]:
    from polyfeed.core.codec import decode_frame

    out = []
    for ts in timestamps:
        [event] = decode_frame(json.dumps(price_change(ts)), "market")
        out.append(to_record(event, received))
    return out


async def test_schema_rows_and_gaps(tmp_path: Path) -> None:
    path = tmp_path / "rec.db"
    sink = SqliteSink(path)
    assert await sink.open(session()) is None
    gap = Gap(started=1.5, ended=2.5, assets=["a", "b"], reason="reconnect", dropped=2)
    await sink.write([*records(1_700_000_000_001, 1_700_000_000_002), to_record(gap, 3.0)])
    assert "rows=3" in repr(sink)
    await sink.aclose(300.0)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    rows = db.execute(
        "SELECT event_type, asset_id, assets, market, server_ts, received FROM events ORDER BY id"
    ).fetchall()
    assert rows == [
        ("price_change", "a", '["a"]', "0xm", 1_700_000_000_001, 200.0),
        ("price_change", "a", '["a"]', "0xm", 1_700_000_000_002, 200.0),
        ("gap", "a", '["a","b"]', None, None, 3.0),
    ]
    assert db.execute("SELECT started, ended, assets, reason, dropped FROM gaps").fetchall() == [
        (1.5, 2.5, '["a", "b"]', "reconnect", 2)
    ]
    assert db.execute("SELECT channel, ids, started, ended FROM sessions").fetchall() == [
        ("market", '["a"]', 100.0, 300.0)
    ]
    body = db.execute("SELECT json FROM events WHERE id = 1").fetchone()[0]
    assert json.loads(body)["price_changes"][0]["asset_id"] == "a"


async def test_the_connection_lives_in_the_worker_thread(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "rec.db")
    await sink.open(session())
    try:
        # sqlite3 refuses a connection used from another thread than its creator's: the event
        # loop's thread is not the one that does the I/O.
        with pytest.raises(sqlite3.ProgrammingError):
            assert sink._db is not None
            sink._db.execute("SELECT 1")
        await sink.write(records(1_700_000_000_001))
    finally:
        await sink.aclose(1.0)


async def test_reopen_after_a_kill_resumes_from_the_last_data(tmp_path: Path) -> None:
    path = tmp_path / "rec.db"
    killed = SqliteSink(path)
    await killed.open(session(100.0, ["a", "b"]))
    await killed.write(records(1_700_000_150_000, received=1_700_000_151.0))
    # A kill: no aclose, the session keeps ended = NULL; only the thread is let go.
    killed._db = None
    await killed._shutdown()

    again = SqliteSink(path)
    resume = await again.open(session(1_700_000_300.0, ["a"]))
    await again.aclose(1_700_000_301.0)
    # The gap starts at the last server timestamp (data after it may be lost), not later.
    assert resume == Resume(last_seen=1_700_000_150.0, assets=("a", "b"))


async def test_reopen_after_a_clean_stop_without_data(tmp_path: Path) -> None:
    path = tmp_path / "rec.db"
    first = SqliteSink(path)
    await first.open(session(100.0))
    await first.aclose(150.0)
    second = SqliteSink(path)
    assert await second.open(session(200.0)) == Resume(last_seen=150.0, assets=("a",))
    await second.aclose(201.0)


async def test_a_foreign_database_is_a_sink_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    db.commit()
    db.close()
    sink = SqliteSink(path)
    with pytest.raises(SinkError, match="schema version 99"):
        await sink.open(session())
    not_a_db = tmp_path / "text.db"
    not_a_db.write_text("hello, this is not a database" * 100)
    with pytest.raises(SinkError):
        await SqliteSink(not_a_db).open(session())


async def test_a_locked_database_is_retried_as_unavailable(tmp_path: Path) -> None:
    from polyfeed.errors import SinkUnavailableError

    path = tmp_path / "rec.db"
    sink = SqliteSink(path, busy_timeout=0.05)
    await sink.open(session())
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(SinkUnavailableError):
            await sink.write(records(1_700_000_000_001))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    await sink.write(records(1_700_000_000_001))
    await sink.aclose(1.0)


# --------------------------------------------------------------------------- done-when


class SlowSink(SqliteSink):
    """SQLite that takes ``delay`` seconds more per batch (a disk that cannot keep up)."""

    def __init__(self, path: Path, delay: float) -> None:
        super().__init__(path)
        self.delay = delay

    async def write(self, records: Sequence[Record]) -> None:
        await asyncio.sleep(self.delay)
        await super().write(records)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("slow", [False, True], ids=["fast_sink", "slow_sink"])
async def test_every_ground_truth_event_is_recorded_or_in_a_recorded_gap(
    tmp_path: Path, slow: bool
) -> None:
    plan = FaultPlan()
    plan.add(0, DropTcp(after=0.4))
    plan.add(1, RefuseHandshake(status=503))
    plan.add(2, Duplicate(count=3))
    plan.add(2, CloseWith(code=1012, after=0.4))
    plan.add(3, StallData(after=0.3))
    plan.add(4, Malformed(after=0.2))
    plan.add(4, CloseWith(code=1001, after=0.4))
    path = tmp_path / "rec.db"
    config = CONFIG
    sink: SqliteSink = SqliteSink(path)
    if slow:
        # A sink far slower than the flow, a small buffer and a small stream queue: the stream
        # must drop, and the drops must be in the recording as gaps.
        config = dataclasses.replace(CONFIG, queue=QueueConfig(maxsize=50))
        sink = SlowSink(path, delay=0.2)
    async with FakePolymarket(markets=5, seed=3, faults=plan, ping_grace=2.0) as fake:
        assets = list(fake.asset_ids)

        async def order_flow() -> None:
            while True:
                fake.step(2)
                await asyncio.sleep(0.005)

        async with MarketStream(assets, endpoints=fake.endpoints, config=config) as stream:
            recorder = Recorder(
                stream,
                sink,
                channel="market",
                ids=assets,
                batch_window=0.1,
                batch_max=20 if slow else 5_000,
                max_buffer=40 if slow else 50_000,
            )
            async with asyncio.TaskGroup() as group:
                flow = group.create_task(order_flow())
                recording = group.create_task(recorder.run())
                async with asyncio.timeout(30):
                    await fake.wait_for_connection(6)
                    await asyncio.sleep(0.8)
                flow.cancel()
                for connection in fake.open_connections("market"):
                    await connection.flush()
                await asyncio.sleep(0.2)
                recorder.request_stop()
            assert recording.done()
    db = sqlite3.connect(path)
    ((integrity,),) = db.execute("PRAGMA integrity_check").fetchall()
    assert integrity == "ok"
    (gap_rows,) = db.execute("SELECT count(*) FROM gaps").fetchone()
    db.close()
    assert gap_rows >= 1, "faults that cost data must be recorded as gaps"
    if slow:
        assert recorder.metrics.backpressure_waits >= 1
        assert stream.health().dropped_events > 0
    assert unexplained_events(fake.log, path) == []


@pytest.mark.timeout(30)
async def test_user_channel_orders_and_trades_are_recorded_as_received(tmp_path: Path) -> None:
    from polyfeed import Credentials, UserStream
    from polyfeed.core.codec import decode_frame
    from polyfeed.replay import Replay

    path = tmp_path / "user.db"
    async with FakePolymarket(markets=2, seed=11) as fake:
        market = fake.markets[0].condition_id
        credentials = Credentials(
            api_key=fake.credentials.api_key,
            secret=fake.credentials.secret,
            passphrase=fake.credentials.passphrase,
        )
        async with UserStream(
            [market], credentials=credentials, endpoints=fake.endpoints, config=CONFIG
        ) as stream:
            recorder = Recorder(
                stream, SqliteSink(path), channel="user", ids=[market], batch_window=0.1
            )
            async with asyncio.TaskGroup() as group:
                group.create_task(recorder.run())
                async with asyncio.timeout(10):
                    connection = await fake.wait_for_connection(1, path="user")
                    sent = fake.step_user(8, market=market)
                    await connection.flush()
                    await asyncio.sleep(0.3)
                recorder.request_stop()
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT event_type, market, json FROM events WHERE event_type IN ('order', 'trade')"
    ).fetchall()
    (session_channel,) = db.execute("SELECT channel FROM sessions").fetchone()
    db.close()
    assert session_channel == "user"
    assert [(t, m) for t, m, _ in rows] == [(e.event_type, market) for e in sent]
    async with Replay(path) as replay:
        replayed = [e async for e in replay if type(e).__name__ in ("Order", "Trade")]
    # The typed events the live stream decoded from the server's frames, field for field.
    assert replayed == [decode_frame(logged.raw, "user")[0] for logged in sent]
