"""``polyfeed replay``: a recording as the NDJSON lines ``polyfeed stream`` writes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from polyfeed import Book, Connected, Gap, Level, Notice, Unknown
from polyfeed.cli import main
from polyfeed.cli.stream import encode_event
from polyfeed.sinks.base import SessionInfo, to_record
from polyfeed.sinks.sqlite import SqliteSink

EVENTS: list[object] = [
    Connected(url="ws://x", attempt=1),
    Book(market="0xm", asset_id="a", timestamp=1, bids=[Level("0.1", "1")], asks=[]),
    Notice("NO NEW ASSETS"),
    Unknown("brand_new", b'{"event_type":"brand_new"}'),
    Book(market="0xm", asset_id="b", timestamp=2, bids=[], asks=[Level("0.9", "1")]),
    Gap(started=1.0, ended=2.0, assets=["b"], reason="reconnect"),
]


async def recording(path: Path) -> Path:
    sink = SqliteSink(path)
    await sink.open(SessionInfo("market", ("a", "b"), 0.0))
    await sink.write([to_record(event, 10.0 + i) for i, event in enumerate(EVENTS)])
    await sink.aclose(100.0)
    return path


async def run(*args: str) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from polyfeed.cli import main; main()",
        "replay",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout, stderr


async def test_prints_the_stream_commands_lines(tmp_path: Path) -> None:
    path = await recording(tmp_path / "r.db")
    code, stdout, stderr = await run(str(path))
    assert code == 0, stderr
    assert stdout == b"".join(encode_event(event) for event in EVENTS)
    assert all("event_type" in msgspec.json.decode(line) for line in stdout.splitlines())


async def test_filters(tmp_path: Path) -> None:
    path = await recording(tmp_path / "r.db")
    code, stdout, _ = await run("--asset", "b", "--since", "11", str(path))
    assert code == 0
    lines = [msgspec.json.decode(line) for line in stdout.splitlines()]
    assert [line["event_type"] for line in lines] == ["notice", "unknown", "book", "gap"]


async def test_not_a_recording_is_a_one_line_error(tmp_path: Path) -> None:
    code, stdout, stderr = await run(str(tmp_path / "missing.db"))
    assert code == 1
    assert stdout == b""
    assert stderr.decode().strip() == f"polyfeed: error: no recording at {tmp_path / 'missing.db'}"


def test_usage_errors() -> None:
    result = CliRunner().invoke(main, ["replay", "--speed", "0", "x.db"])
    assert result.exit_code == 2
    result = CliRunner().invoke(main, ["replay"])
    assert result.exit_code == 2


async def test_a_parquet_folder_gives_the_same_lines(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from polyfeed.sinks.parquet import ParquetSink

    sink = ParquetSink(tmp_path / "pq")
    await sink.open(SessionInfo("market", ("a", "b"), 0.0))
    await sink.write([to_record(event, 10.0 + i) for i, event in enumerate(EVENTS)])
    await sink.aclose(100.0)
    code, stdout, stderr = await run(str(tmp_path / "pq"))
    assert code == 0, stderr
    assert stdout == b"".join(encode_event(event) for event in EVENTS)
