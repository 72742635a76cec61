"""``polyfeed fake-server`` as a real process: prints how to connect, serves, stops on a signal."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import aiohttp
from click.testing import CliRunner

from polyfeed.cli.fake_server import fake_server

LAUNCH = "from polyfeed.cli.fake_server import fake_server; fake_server()"


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LAUNCH,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_json_mode_serves_until_sigterm() -> None:
    process = await start(
        "--json", "--markets", "2", "--rate", "50", "--port", "0", "--run-probability", "0.5"
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(10):
            info = json.loads(await process.stdout.readline())
        assert info["market_url"].startswith("ws://127.0.0.1:")
        assert info["gamma_url"] == info["rest_url"] + "/gamma"
        assert len(info["asset_ids"]) == 4 and len(info["markets"]) == 2
        assert info["run_probability"] == 0.5
        assert info["stream_args"] == [
            "--url",
            info["market_url"],
            "--rest-url",
            info["rest_url"],
            "--gamma-url",
            info["gamma_url"],
        ]
        async with aiohttp.ClientSession() as session, session.ws_connect(info["market_url"]) as ws:
            await ws.send_str(json.dumps({"type": "market", "assets_ids": info["asset_ids"]}))
            async with asyncio.timeout(5):
                books = json.loads((await ws.receive()).data)
                assert [b["asset_id"] for b in books] == info["asset_ids"]
                assert json.loads((await ws.receive()).data)["event_type"] in (
                    "price_change",
                    "last_trade_price",
                )
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            returncode = await process.wait()
    assert returncode == 0


async def test_human_mode_prints_urls_and_stops_on_sigint() -> None:
    process = await start("--markets", "1", "--rate", "0")
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(10):
            while not lines or lines[-1] != "Ctrl-C to stop.":
                lines.append((await process.stdout.readline()).decode().rstrip())
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            returncode = await process.wait()
    text = "\n".join(lines)
    assert "market WS  ws://127.0.0.1:" in text and "/ws/user" in text and "YES " in text
    assert "runs (several price_change of one event) on 10% of steps" in text
    assert returncode == 0


def test_run_probability_is_a_probability() -> None:
    result = CliRunner().invoke(fake_server, ["--run-probability", "1.5"])
    assert result.exit_code == 2
    assert "--run-probability" in result.output
