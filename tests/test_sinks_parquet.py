"""The Parquet sink: one schema per event type, rotation, a killed run's files and resume, and the
done-when run against the fake server with faults."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from polyfeed import (
    BackoffConfig,
    Book,
    Gap,
    HeartbeatConfig,
    Level,
    MarketStream,
    Notice,
    PriceChange,
    PriceChangeEntry,
    StreamConfig,
    Trade,
    WatchdogConfig,
)
from polyfeed.errors import ConfigError
from polyfeed.sinks.base import Recorder, Resume, SessionInfo, from_record, to_record
from polyfeed.testing import CloseWith, DropTcp, FakePolymarket, FaultPlan, StallData
from record_helpers import GapSpan, RecordedKey, unexplained

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from polyfeed.sinks.parquet import ParquetSink  # noqa: E402 (after the importorskip)

CONFIG = StreamConfig(
    heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.3),
    watchdog=WatchdogConfig(data_timeout=0.5, confirm_timeout=2.0),
    backoff=BackoffConfig(base=0.02, max_delay=0.1, jitter=0.02, stable_for=0.5),
)

BOOK = Book(
    market="0xm",
    asset_id="a",
    timestamp=1_700_000_000_001,
    bids=[Level("0.4", "10")],
    asks=[Level("0.6", "5"), Level("0.7", "1")],
    hash="h",
)
CHANGE = PriceChange(
    market="0xm",
    timestamp=1_700_000_000_002,
    price_changes=(PriceChangeEntry(asset_id="a", price="0.5", size="3", side="BUY"),),
)
TRADE = Trade(
    id="t",
    market="0xm",
    asset_id="a",
    side="BUY",
    size="1",
    price="0.5",
    status="MATCHED",
    fee_rate_bps=7,  # sent as a number by some captures, a string by others
)
GAP = Gap(started=1.0, ended=2.0, assets=["a"], reason="reconnect", dropped=1)


def session(started: float = 100.0) -> SessionInfo:
    return SessionInfo("market", ("a",), started)


def read_folder(folder: Path, event_type: str) -> Any:
    files = sorted((folder / event_type).glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def test_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ParquetSink(tmp_path, rotate_seconds=0)
    with pytest.raises(ConfigError):
        ParquetSink(tmp_path, rotate_rows=0)


async def test_one_typed_schema_per_event_type(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    assert await sink.open(session()) is None
    events: list[object] = [BOOK, CHANGE, TRADE, GAP, Notice("NO NEW ASSETS")]
    await sink.write([to_record(e, 200.0 + i) for i, e in enumerate(events)])
    await sink.aclose(300.0)
    assert "closed" in repr(sink)
    book = read_folder(tmp_path, "book")
    assert book.schema.field("bids").type == pa.list_(
        pa.struct([("price", pa.string()), ("size", pa.string())])
    )
    assert book.schema.field("timestamp").type == pa.int64()
    assert book.column("asks").to_pylist() == [
        [{"price": "0.6", "size": "5"}, {"price": "0.7", "size": "1"}]
    ]
    change = read_folder(tmp_path, "price_change")
    assert change.column("price_changes").to_pylist()[0][0]["size"] == "3"
    trade = read_folder(tmp_path, "trade")
    assert trade.schema.field("fee_rate_bps").type == pa.string()
    assert trade.column("fee_rate_bps").to_pylist() == ["7"]
    gap = read_folder(tmp_path, "gap")
    assert gap.select(["started", "ended", "assets"]).to_pylist() == [
        {"started": 1.0, "ended": 2.0, "assets": ["a"]}
    ]
    notice = read_folder(tmp_path, "notice")
    rows = [
        *book.to_pylist(),
        *change.to_pylist(),
        *trade.to_pylist(),
        *gap.to_pylist(),
        *notice.to_pylist(),
    ]
    rows.sort(key=lambda row: row["rec_seq"])
    assert [row["rec_seq"] for row in rows] == [1, 2, 3, 4, 5]
    assert [from_record(r["rec_event_type"], r["rec_json"]) for r in rows] == events
    assert [row["rec_received"] for row in rows] == [200.0, 201.0, 202.0, 203.0, 204.0]


def partials(folder: Path) -> list[Path]:
    return list(folder.glob("*/*.partial"))


async def test_files_rotate_by_rows_and_by_receive_time(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, rotate_rows=2, rotate_seconds=10.0)
    await sink.open(session())
    for i in range(3):
        await sink.write([to_record(CHANGE, 200.0), to_record(CHANGE, 200.0 + i)])
    await sink.write([to_record(CHANGE, 250.0)])  # 50 s later: a new file, though only 1 row
    await sink.write([to_record(CHANGE, 251.0)])
    await sink.aclose(300.0)
    files = sorted((tmp_path / "price_change").glob("*.parquet"))
    assert [pq.read_metadata(f).num_rows for f in files] == [2, 2, 2, 2]
    assert not partials(tmp_path)


async def test_a_killed_runs_open_files_are_inside_the_next_runs_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = ParquetSink(tmp_path, rotate_seconds=10.0)
    await sink.open(session(100.0))
    await sink.write([to_record(CHANGE, 200.0)])
    await sink.write([to_record(CHANGE, 215.0)])  # rotates: the first file is durable
    # kill -9: the second file never gets its footer.
    await sink._shutdown()
    assert len(partials(tmp_path)) == 1
    again = ParquetSink(tmp_path)
    resume = await again.open(session(400.0))
    # Durable data ends with the first file: the gap starts there (its receive time, here
    # earlier than its server timestamp), not at the killed file's 215.
    assert resume == Resume(last_seen=200.0, assets=("a",))
    assert "unfinished files" in caplog.text
    await again.write([to_record(CHANGE, 401.0)])
    await again.aclose(402.0)
    table = read_folder(tmp_path, "price_change")
    # rec_seq continues from the last durable row.
    assert table.column("rec_seq").to_pylist() == [1, 2]


@pytest.mark.timeout(60)
async def test_every_ground_truth_event_is_recorded_or_in_a_recorded_gap(tmp_path: Path) -> None:
    plan = FaultPlan()
    plan.add(0, DropTcp(after=0.4))
    plan.add(1, CloseWith(code=1012, after=0.4))
    plan.add(2, StallData(after=0.3))
    folder = tmp_path / "rec"
    async with FakePolymarket(markets=4, seed=9, faults=plan, ping_grace=2.0) as fake:
        assets = list(fake.asset_ids)

        async def order_flow() -> None:
            while True:
                fake.step(2)
                await asyncio.sleep(0.005)

        async with MarketStream(assets, endpoints=fake.endpoints, config=CONFIG) as stream:
            recorder = Recorder(
                stream,
                ParquetSink(folder, rotate_seconds=0.5),
                channel="market",
                ids=assets,
                batch_window=0.1,
            )
            async with asyncio.TaskGroup() as group:
                flow = group.create_task(order_flow())
                group.create_task(recorder.run())
                async with asyncio.timeout(30):
                    await fake.wait_for_connection(4)
                    await asyncio.sleep(0.8)
                flow.cancel()
                for connection in fake.open_connections("market"):
                    await connection.flush()
                await asyncio.sleep(0.2)
                recorder.request_stop()
    recorded: set[RecordedKey] = set()
    gaps: list[GapSpan] = []
    for event_dir in folder.iterdir():
        if not event_dir.is_dir():
            continue
        for row in read_folder(folder, event_dir.name).to_pylist():
            if event_dir.name == "gap":
                gaps.append((row["started"], row["ended"], set(row["assets"])))
            elif row["rec_server_ts"] is not None:
                recorded.add((event_dir.name, row.get("market"), row["rec_server_ts"]))
    assert len(list((folder / "price_change").glob("*.parquet"))) > 2  # rotated
    assert gaps
    assert unexplained(fake.log, recorded, gaps) == []
