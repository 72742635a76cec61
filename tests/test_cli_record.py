"""``polyfeed record``: usage errors, and real recorder processes against the fake server:
``kill -9`` loses at most the last batch window and leaves a database that opens cleanly; the
restart records the downtime as a gap; SIGTERM loses nothing."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from polyfeed.cli import main
from polyfeed.cli.record import make_sink
from polyfeed.core.placement import shard_of
from polyfeed.errors import ConfigError
from polyfeed.sinks.base import RESTART_GAP_REASON
from polyfeed.sinks.sqlite import SqliteSink
from polyfeed.testing import FakePolymarket
from record_helpers import unexplained_events

FAST = [
    "--heartbeat",
    "0.2",
    "--pong-timeout",
    "1.0",
    "--backoff-base",
    "0.02",
    "--backoff-max",
    "0.1",
]


def test_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = str(tmp_path / "r.db")
    result = runner.invoke(main, ["record", "--out", out])
    assert result.exit_code == 2
    assert "at least one asset" in result.output
    result = runner.invoke(main, ["record", "--out", out, "--url", "http://x", "1"])
    assert result.exit_code == 2
    assert "ws://" in result.output
    result = runner.invoke(main, ["record", "1"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["record", "--out", out, "--shard", "2/2", "1"])
    assert result.exit_code == 2
    assert "shard" in result.output
    result = runner.invoke(main, ["record", "--out", out, "--channel", "user", "--shard", "0/2"])
    assert result.exit_code == 2
    assert "--channel market" in result.output


def test_sink_choice_from_the_target(tmp_path: Path) -> None:
    assert isinstance(make_sink(None, str(tmp_path / "r.db")), SqliteSink)
    assert make_sink(None, "redis://127.0.0.1:1/0").name == "redis"
    assert make_sink("parquet", str(tmp_path / "folder")).name == "parquet"
    with pytest.raises(ConfigError):
        make_sink("csv", "x")


def count_rows(path: Path) -> int:
    try:
        db = sqlite3.connect(path)
        try:
            (rows,) = db.execute("SELECT count(*) FROM events").fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return 0  # not created yet
    return int(rows)


async def wait_for_rows(path: Path, rows: int) -> None:
    """Poll the database (another process writes it: nothing to wait on but the file)."""
    for _ in range(400):
        if count_rows(path) >= rows:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {rows} rows recorded in 20 s")


async def start_recorder(
    fake: FakePolymarket, path: Path, batch_window: float, *options: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from polyfeed.cli import main; main()",
        "record",
        "--url",
        fake.market_url,
        "--rest-url",
        fake.rest_url,
        "--out",
        str(path),
        "--batch-window",
        str(batch_window),
        *FAST,
        *options,
        *fake.asset_ids,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.timeout(60)
async def test_kill_9_loses_at_most_a_window_restart_records_downtime_sigterm_loses_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rec.db"
    window = 0.2
    async with FakePolymarket(markets=3, seed=5, ping_grace=5.0) as fake:

        async def order_flow() -> None:
            while True:
                fake.step(1)
                await asyncio.sleep(0.005)

        async with asyncio.TaskGroup() as group:
            flow = group.create_task(order_flow())
            # 1. A recorder with a short window, killed with SIGKILL.
            killed = await start_recorder(fake, path, window)
            try:
                async with asyncio.timeout(20):
                    first = await fake.wait_for_connection(1)
                    await wait_for_rows(path, 50)
                    await asyncio.sleep(1.0)
            finally:
                killed.send_signal(signal.SIGKILL)
                await killed.wait()
            killed_at = time.time()
            await first.wait_closed()
            db = sqlite3.connect(path)
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            recorded = {ts for (ts,) in db.execute("SELECT server_ts FROM events")}
            (ended,) = db.execute("SELECT ended FROM sessions").fetchone()
            db.close()
            rows_after_kill = count_rows(path)
            assert ended is None  # killed: no clean end
            # Everything handed to the socket more than one window (plus slack for a loaded
            # machine) before the kill is in the database.
            horizon_ms = (killed_at - window - 0.5) * 1000
            old = [e for e in fake.log.sent_to(first.id) if int(e.timestamp) < horizon_ms]
            assert len(old) > 50
            lost = [e for e in old if int(e.timestamp) not in recorded]
            assert lost == []

            await asyncio.sleep(0.3)  # downtime with order flow going on
            # 2. A recorder with a long window on the same database, stopped with SIGTERM after
            # the flow stops: it must write everything it received, though no window elapsed.
            stopped = await start_recorder(fake, path, 30.0)
            try:
                async with asyncio.timeout(20):
                    second = await fake.wait_for_connection(2)
                    await asyncio.sleep(1.0)
                flow.cancel()
                await second.flush()
                await asyncio.sleep(0.3)
                assert count_rows(path) == rows_after_kill  # nothing written yet
            finally:
                stopped.send_signal(signal.SIGTERM)
                _, stderr = await stopped.communicate()
            assert stopped.returncode == 0, stderr.decode()
            assert b"recorded" in stderr

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    recorded = {ts for (ts,) in db.execute("SELECT server_ts FROM events")}
    sent = fake.log.sent_to(second.id)
    assert len(sent) > 50
    assert [e for e in sent if int(e.timestamp) not in recorded] == []
    gaps = db.execute(
        "SELECT started, ended, assets FROM gaps WHERE reason = ?", (RESTART_GAP_REASON,)
    )
    [(started, gap_end, _)] = gaps.fetchall()
    assert started <= killed_at - window - 0.5 + 1.0
    assert gap_end >= killed_at + 0.3
    assert db.execute("SELECT count(*) FROM sessions WHERE ended IS NOT NULL").fetchone() == (1,)
    db.close()
    # And over both runs: every event the server generated is recorded or inside a gap.
    assert unexplained_events(fake.log, path) == []


@pytest.mark.timeout(60)
async def test_record_serves_metrics_and_health_and_shows_a_dashboard(tmp_path: Path) -> None:
    import re

    import aiohttp

    async with FakePolymarket(markets=1, rate=20.0, seed=43) as fake:
        process = await start_recorder(
            fake, tmp_path / "r.db", 1.0, "--metrics-port", "0", "--dashboard"
        )
        assert process.stderr is not None
        try:
            async with asyncio.timeout(20):
                line = (await process.stderr.readline()).decode()
                match = re.search(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", line)
                assert match, line
                url = match.group(1)
                async with aiohttp.ClientSession() as session:
                    while True:
                        async with session.get(f"{url}/health") as response:
                            if response.status == 200:
                                health = await response.json()
                                break
                        await asyncio.sleep(0.05)
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                stderr = (await process.stderr.read()).decode()
                returncode = await process.wait()
    assert returncode == 0
    assert health["streams"]["market"]["state"] == "open"
    # The dashboard painted on stderr while the events went to the database.
    assert "polyfeed" in stderr
    assert "events/s" in stderr
    assert count_rows(tmp_path / "r.db") > 0


@pytest.mark.timeout(40)
async def test_record_keeps_its_shard_over_a_pool(tmp_path: Path) -> None:
    import json

    path = tmp_path / "shard.db"
    async with FakePolymarket(markets=4, rate=40.0, seed=44) as fake:
        index = shard_of(fake.asset_ids[0], 2)
        mine = [a for a in fake.asset_ids if shard_of(a, 2) == index]
        assert 0 < len(mine) < len(fake.asset_ids)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from polyfeed.cli import main; main()",
            "record",
            "--url",
            fake.market_url,
            "--rest-url",
            fake.rest_url,
            "--out",
            str(path),
            "--batch-window",
            "0.1",
            "--shard",
            f"{index}/2",
            "--max-per-connection",
            "1",
            *FAST,
            *fake.asset_ids,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await wait_for_rows(path, 20)
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                returncode = await process.wait()
    assert returncode == 0
    db = sqlite3.connect(path)
    try:
        [(ids,)] = db.execute("SELECT ids FROM sessions").fetchall()
        books = {a for (a,) in db.execute("SELECT asset_id FROM events WHERE event_type='book'")}
        connected = db.execute("SELECT count(*) FROM events WHERE event_type='connected'")
        (connects,) = connected.fetchone()
    finally:
        db.close()
    assert json.loads(ids) == mine
    # The sockets open paced: by the time rows are counted not every one may have a snapshot.
    assert books and books <= set(mine)
    assert connects >= 1
