"""``polyfeed status``: a running command's /health as a table; exit 1 unhealthy or unreachable."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest
from rich.console import Console

from polyfeed import MarketStream
from polyfeed.aio.metrics_server import MetricsServer
from polyfeed.cli.status import health_view
from polyfeed.testing import FakePolymarket


async def status(url: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "polyfeed",
        "status",
        "--url",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def render(body: dict[str, object]) -> str:
    console = Console(width=120, record=True, file=None, force_terminal=False)
    with console.capture() as capture:
        console.print(health_view(body))
    return capture.get()


def test_table_shows_the_verdict_and_a_row_per_stream() -> None:
    stream = {
        "state": "backoff",
        "connected": False,
        "seconds_since_last_message": 3.25,
        "uptime_ratio": 0.5,
        "reconnects": 2,
        "subscribed": 4,
        "confirmed": 3,
        "queued_events": 0,
        "dropped_events": 7,
        "backoff_seconds": 1.5,
    }
    text = render(
        {
            "status": "unhealthy",
            "reasons": ["market: backoff after stale_data"],
            "streams": {"market": stream},
        }
    )
    assert "UNHEALTHY: market: backoff after stale_data" in text
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("│")}
    assert text.splitlines()[0].rstrip() == "UNHEALTHY: market: backoff after stale_data"
    assert "market" in text.splitlines()[2]
    for row, cell in [
        ("state", "backoff"),
        ("connected", "NO"),
        ("last", "3.2s ago"),
        ("uptime", "50.0%"),
        ("confirmed", "3/4"),
        ("dropped", "7"),
        ("backoff", "1.50s"),
    ]:
        assert cell in rows[row], (row, rows)


@pytest.mark.timeout(40)
async def test_healthy_then_unhealthy_exit_codes() -> None:
    async with FakePolymarket(markets=1, rate=20.0, seed=31) as fake:
        stream = MarketStream(fake.asset_ids, endpoints=fake.endpoints)
        async with MetricsServer({"market": stream}) as server:
            code, stdout, stderr = await status(server.url)
            assert code == 1, stderr
            assert "UNHEALTHY: market: idle" in stdout
            async with stream:
                async with asyncio.timeout(10):
                    async for _ in stream:
                        if stream.health().seconds_since_last_message is not None:
                            break
                code, stdout, stderr = await status(f"{server.url}/health")
    assert code == 0, stdout + stderr
    assert "healthy" in stdout
    assert "market" in stdout


async def test_unreachable_is_one_line_and_exit_1() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, stderr = await status(f"http://127.0.0.1:{port}")
    assert code == 1
    assert "Traceback" not in stderr
    assert stderr.startswith(f"Error: cannot read http://127.0.0.1:{port}/health: ")
    assert stderr.count("\n") == 1
