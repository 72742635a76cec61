"""``polyfeed stream``: NDJSON on stdout, status on stderr, clean exit on signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import msgspec
import pytest
from click.testing import CliRunner

from polyfeed.cli import main
from polyfeed.cli.fake_server import stream_args
from polyfeed.cli.stream import build_config, encode_event
from polyfeed.core.messages import Malformed, Notice, Pong, Unknown
from polyfeed.core.placement import shard_of
from polyfeed.errors import ConfigError
from polyfeed.events import Gap, Stale
from polyfeed.testing import FakePolymarket, StallData

LAUNCH = "from polyfeed.cli import main; main()"


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LAUNCH,
        "stream",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_streams_ndjson_and_exits_0_within_2s_of_a_signal(sig: signal.Signals) -> None:
    async with FakePolymarket(markets=1, rate=20.0, seed=1) as fake:
        process = await start(
            "--url",
            fake.market_url,
            "--rest-url",
            fake.rest_url,
            "--heartbeat",
            "0.2",
            *fake.asset_ids,
        )
        assert process.stdout is not None
        assert process.stderr is not None
        kinds: list[str] = []
        try:
            async with asyncio.timeout(15):
                while "price_change" not in kinds:
                    line = await process.stdout.readline()
                    assert line, (await process.stderr.read()).decode()
                    kinds.append(json.loads(line)["event_type"])
        finally:
            loop = asyncio.get_running_loop()
            signalled = loop.time()
            process.send_signal(sig)
            async with asyncio.timeout(10):
                returncode = await process.wait()
            elapsed = loop.time() - signalled
        assert returncode == 0
        assert elapsed < 2.0
        assert kinds[0] == "connected"
        assert "book" in kinds
        stderr = (await process.stderr.read()).decode()
        assert "Traceback" not in stderr
        # The server saw a clean close, not a dropped connection.
        await asyncio.sleep(0.1)
        close = fake.connections[0].close
        assert close is not None
        assert close.code == 1000


async def read_lines_until(reader: asyncio.StreamReader, kind: str) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    while not lines or lines[-1]["event_type"] != kind:
        line = await reader.readline()
        assert line, f"stdout ended before a {kind} line"
        lines.append(json.loads(line))
    return lines


@pytest.mark.timeout(40)
async def test_a_stdout_nobody_reads_does_not_stop_heartbeats_and_drops_are_a_gap() -> None:
    async with FakePolymarket(markets=1, rate=0.0, seed=5) as fake:
        read_end, write_end = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                LAUNCH,
                "stream",
                "--url",
                fake.market_url,
                "--rest-url",
                fake.rest_url,
                "--heartbeat",
                "0.1",
                "--pong-timeout",
                "1.0",
                "--queue-size",
                "200",
                *fake.asset_ids,
                stdout=write_end,
                stderr=asyncio.subprocess.PIPE,
            )
        finally:
            os.close(write_end)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_end, "rb")
        )
        # Nothing is read yet: the pipe (64 KiB) fills at once.
        transport.pause_reading()
        try:
            async with asyncio.timeout(15):
                connection = await fake.wait_for_connection(1)
            # Far more output than the pipe, the writer's queue and the stream's queue hold; in
            # small bursts, so that generating them never keeps this (the server's) loop busy.
            for _ in range(30):
                await fake.burst(100)
                await asyncio.sleep(0.01)
            pings = connection.pings
            await asyncio.sleep(1.5)
            # Blocked output must not block the event loop: PINGs went on, on the same socket.
            assert connection.pings - pings >= 5
            assert connection.is_open
            assert len(fake.connections) == 1
            transport.resume_reading()
            async with asyncio.timeout(15):
                lines = await read_lines_until(reader, "gap")
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                _, stderr = await process.communicate()
            transport.close()
        gap = lines[-1]
        assert gap["reason"] == "consumer queue overflow"
        assert isinstance(gap["dropped"], int)
        assert gap["dropped"] > 0
        assert not [line for line in lines if line["event_type"] == "stale"]
        assert process.returncode == 0
        assert "stale" not in stderr.decode()
        assert len(fake.connections) == 1


@pytest.mark.timeout(30)
async def test_stale_and_gap_lines_have_event_types() -> None:
    async with FakePolymarket(
        markets=1, rate=20.0, seed=2, faults={0: [StallData(after=0.3)]}
    ) as fake:
        process = await start(
            "--url",
            fake.market_url,
            "--rest-url",
            fake.rest_url,
            "--heartbeat",
            "0.1",
            "--data-timeout",
            "0.5",
            "--backoff-base",
            "0.05",
            *fake.asset_ids,
        )
        assert process.stdout is not None
        kinds: list[str] = []
        try:
            async with asyncio.timeout(15):
                while "gap" not in kinds:
                    kinds.append(json.loads(await process.stdout.readline())["event_type"])
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                assert await process.wait() == 0
        for expected in ("stale", "disconnected", "reconnecting", "connected", "resubscribed"):
            assert expected in kinds


@pytest.mark.timeout(30)
async def test_fatal_error_exits_non_zero_with_a_one_line_reason() -> None:
    async with FakePolymarket(markets=1, seed=3) as fake:
        url = fake.market_url.replace("/ws/market", "/ws/nowhere")
        process = await start("--url", url, "--rest-url", fake.rest_url, "x")
        async with asyncio.timeout(15):
            _, stderr = await process.communicate()
    assert process.returncode == 1
    lines = [line for line in stderr.decode().splitlines() if line.startswith("polyfeed: error")]
    assert len(lines) == 1
    assert "404" in lines[0]


@pytest.mark.timeout(30)
async def test_bad_credentials_on_the_user_channel_exit_non_zero() -> None:
    async with FakePolymarket(markets=1, seed=4) as fake:
        env = {
            "POLYMARKET_API_KEY": "k" * 36,
            "POLYMARKET_API_SECRET": "not-the-secret",
            "POLYMARKET_API_PASSPHRASE": "p" * 64,
            "PATH": "/usr/bin:/bin",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            LAUNCH,
            "stream",
            "--channel",
            "user",
            "--url",
            fake.user_url,
            "--heartbeat",
            "0.1",
            "--backoff-base",
            "0.05",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        async with asyncio.timeout(20):
            _, stderr = await process.communicate()
    assert process.returncode == 1
    text = stderr.decode()
    assert "authentication rejected" in text
    assert "not-the-secret" not in text


async def books_seen(process: asyncio.subprocess.Process, count: int) -> set[str]:
    assert process.stdout is not None
    seen: set[str] = set()
    while len(seen) < count:
        line = await process.stdout.readline()
        assert line, "stdout ended early"
        event = json.loads(line)
        if event["event_type"] == "book":
            seen.add(event["asset_id"])
    return seen


@pytest.mark.timeout(40)
async def test_two_shards_of_all_active_cover_the_universe_exactly_once() -> None:
    async with FakePolymarket(markets=12, rate=0.0, seed=11) as fake:
        universe = set(fake.asset_ids)
        expected = [{a for a in universe if shard_of(a, 2) == i} for i in range(2)]
        processes = [
            await start(
                *stream_args(fake),
                "--all-active",
                "--shard",
                f"{i}/2",
                "--max-per-connection",
                "5",
                "--heartbeat",
                "0.2",
            )
            for i in range(2)
        ]
        try:
            async with asyncio.timeout(30):
                seen = [await books_seen(p, len(expected[i])) for i, p in enumerate(processes)]
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                codes = [await p.wait() for p in processes]
        assert seen == expected
        assert seen[0] | seen[1] == universe and not seen[0] & seen[1]
        assert codes == [0, 0]
        # Each process spread its shard over connections of at most 5 assets.
        for shard in expected:
            mine = [c.subscribed for c in fake.connections if c.subscribed <= shard]
            assert set().union(*mine) == shard
            assert len(mine) == -(-len(shard) // 5)
        assert max(len(c.subscribed) for c in fake.connections) <= 5
        assert sum(len(c.subscribed) for c in fake.connections) == len(universe)


def test_usage_errors_are_reported_by_click() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["stream", "--url", "http://example", "x"])
    assert result.exit_code == 2
    assert "ws://" in result.output
    result = runner.invoke(main, ["stream"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["stream", "--heartbeat", "-1", "x"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["stream", "--rest-url", "ws://127.0.0.1:1", "x"])
    assert result.exit_code == 2
    assert "--rest-url must be an http://" in result.output
    result = runner.invoke(main, ["stream", "--queue-size", "0", "x"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["stream", "--shard", "2/2", "x"])
    assert result.exit_code == 2
    assert "shard" in result.output
    result = runner.invoke(main, ["stream", "--refresh", "5", "x"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["stream", "--channel", "user", "--all-active"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["stream", "--max-per-connection", "0", "x"])
    assert result.exit_code == 2


def test_missing_user_credentials_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POLYMARKET_API_KEY", "POLYMARKET_API_SECRET", "POLYMARKET_API_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["stream", "--channel", "user", "--url", "ws://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "POLYMARKET_API_KEY" in result.output


def test_build_config_overrides() -> None:
    config = build_config("hft", 5.0, 2.0, None, 0.5, 4.0)
    assert config.watchdog.data_timeout == 5.0
    assert config.heartbeat.interval == 2.0
    assert config.heartbeat.pong_timeout == 15.0  # the hft profile's PONG deadline
    assert (config.backoff.base, config.backoff.max_delay) == (0.5, 4.0)
    assert build_config("dashboard", None, None, None, None, None).watchdog.data_timeout == 300.0
    assert build_config("dashboard", None, None, None, None, None, 50).queue.maxsize == 50
    with pytest.raises(ConfigError):
        build_config("nope", None, None, None, None, None)


def test_backoff_flags_keep_the_profiles_other_backoff_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from polyfeed.config import BackoffConfig, StreamConfig

    custom = BackoffConfig(first_retry_max=None, stable_for=7.0, auth_retries=5, max_attempts=9)
    profile = StreamConfig(backoff=custom)
    monkeypatch.setattr(StreamConfig, "from_profile", classmethod(lambda cls, name: profile))
    config = build_config("hft", None, None, None, 0.5, 4.0)
    assert (config.backoff.base, config.backoff.max_delay) == (0.5, 4.0)
    assert config.backoff.first_retry_max is None
    assert (config.backoff.stable_for, config.backoff.auth_retries) == (7.0, 5)
    assert config.backoff.max_attempts == 9


def test_every_line_has_an_event_type() -> None:
    items = [
        Stale(kind="data", silent_for=1.0),
        Gap(started=1.0, ended=2.0, assets=["a"], reason="stale_data"),
        Unknown(event_type="x", raw=b'{"event_type":"x"}'),
        Notice(text="NO NEW ASSETS"),
        Malformed(reason="bad", excerpt="{"),
        Pong(),
    ]
    kinds = [msgspec.json.decode(encode_event(item))["event_type"] for item in items]
    assert kinds == ["stale", "gap", "unknown", "notice", "malformed", "pong"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("channel", "topics", "wanted"),
    [
        ("rtds", ["crypto_prices:update", "comments"], {"rtds_price", "rtds_comment"}),
        ("polybolt", ["price.crypto"], {"polybolt_data"}),
        ("sports", [], {"sport_result"}),
    ],
)
async def test_the_other_sockets_stream_ndjson_and_exit_0_on_a_signal(
    channel: str, topics: list[str], wanted: set[str]
) -> None:
    async with FakePolymarket() as fake:
        url = {"rtds": fake.rtds_url, "polybolt": fake.polybolt_url, "sports": fake.sports_url}
        flags = [arg for topic in topics for arg in ("--topic", topic)]
        process = await start("--channel", channel, "--url", url[channel], *flags)
        assert process.stdout is not None and process.stderr is not None
        kinds: list[str] = []
        try:
            async with asyncio.timeout(15):
                while not wanted <= set(kinds):
                    line = await process.stdout.readline()
                    assert line, (await process.stderr.read()).decode()
                    kinds.append(json.loads(line)["event_type"])
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                returncode = await process.wait()
        assert returncode == 0
        assert kinds[0] == "connected"
        assert "Traceback" not in (await process.stderr.read()).decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--channel", "rtds"], "needs at least one --topic"),
        (["--channel", "polybolt"], "needs at least one --topic"),
        (["--channel", "sports", "--topic", "x"], "--topic is for"),
        (["--channel", "rtds", "--topic", "a", "some-id"], "takes no ids"),
        (["--channel", "market", "--topic", "a", "some-id"], "--topic is for"),
        (["--channel", "rtds", "--topic", "a", "--topic-timeout", "-1"], "must be > 0"),
    ],
)
def test_usage_errors_of_the_other_sockets(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["stream", *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.timeout(30)
async def test_a_wrong_port_is_named_at_the_first_reconnect() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now: every attempt is refused.
    process = await start("--url", f"ws://127.0.0.1:{port}/ws/market", "1")
    assert process.stderr is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(10):
            line = (await process.stderr.readline()).decode()
            while "reconnecting" not in line:
                line = (await process.stderr.readline()).decode()
                assert line
        elapsed = loop.time() - started
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await process.wait()
    assert elapsed < 5.0
    assert line.startswith("polyfeed: reconnecting: attempt 1 in ")
    assert f"cannot connect to ws://127.0.0.1:{port}/ws/market" in line
    assert "Reconnecting(" not in line


def test_status_lines_are_sentences_not_reprs() -> None:
    from polyfeed.cli.stream import status_line
    from polyfeed.events import Disconnected, Reconnecting

    line = status_line(Reconnecting(attempt=2, delay=1.5, error="HTTP 503"))
    assert line == b"polyfeed: reconnecting: attempt 2 in 1.50s after: HTTP 503\n"
    line = status_line(Disconnected(reason="stale data", code=None))
    assert line == b"polyfeed: disconnected: stale data (no close frame)\n"


@pytest.mark.timeout(40)
async def test_metrics_port_serves_health_and_sigterm_exits_0() -> None:
    import re

    import aiohttp

    async with FakePolymarket(markets=1, rate=20.0, seed=41) as fake:
        process = await start(
            "--url",
            fake.market_url,
            "--rest-url",
            fake.rest_url,
            "--heartbeat",
            "0.2",
            "--metrics-port",
            "0",
            *fake.asset_ids,
        )
        assert process.stderr is not None
        try:
            async with asyncio.timeout(15):
                line = (await process.stderr.readline()).decode()
                match = re.fullmatch(
                    r"polyfeed: metrics on (http://127\.0\.0\.1:\d+)/metrics, "
                    r"health on \1/health\n",
                    line,
                )
                assert match, line
                url = match.group(1)
                async with aiohttp.ClientSession() as session:
                    while True:
                        async with session.get(f"{url}/health") as response:
                            if response.status == 200:
                                body = await response.json()
                                break
                        await asyncio.sleep(0.05)
                    async with session.get(f"{url}/metrics") as response:
                        text = await response.text()
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                returncode = await process.wait()
    assert returncode == 0
    assert body["streams"]["market"]["state"] == "open"
    assert 'polyfeed_connected{stream="market"} 1' in text


def test_a_busy_metrics_port_is_one_line() -> None:
    import socket
    import subprocess

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                *(sys.executable, "-c", LAUNCH, "stream", "--url", "ws://127.0.0.1:9/ws/market"),
                *("--metrics-port", str(port), "1"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"Error: cannot serve metrics on 127.0.0.1:{port}: address already in use" in (
        result.stderr
    )


@pytest.mark.timeout(30)
async def test_dashboard_goes_to_stderr_while_ndjson_goes_to_stdout() -> None:
    async with FakePolymarket(markets=1, rate=20.0, seed=42) as fake:
        process = await start(
            "--url", fake.market_url, "--rest-url", fake.rest_url, "--dashboard", *fake.asset_ids
        )
        assert process.stdout is not None
        try:
            async with asyncio.timeout(15):
                kinds: list[str] = []
                while "price_change" not in kinds:
                    kinds.append(json.loads(await process.stdout.readline())["event_type"])
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                _, stderr_bytes = await process.communicate()
    assert process.returncode == 0
    stderr = stderr_bytes.decode()
    assert "Traceback" not in stderr
    assert "events/s" in stderr
    assert "polyfeed: connected" not in stderr  # no status lines tearing the view


def test_an_unconfirmed_id_is_a_named_warning_with_the_hint() -> None:
    from polyfeed.cli.stream import status_line

    line = status_line(
        Stale(kind="asset", silent_for=30.0, asset_ids=["42"], unconfirmed=["42"], abandoned=["42"])
    )
    assert line == (
        b"polyfeed: WARNING: the server has not confirmed 1 asset(s) within 30s (gave up on them"
        b" for this connection): 42; the id may be wrong or the market closed\n"
    )


@pytest.mark.timeout(40)
async def test_redundancy_2_carries_every_asset_on_two_connections() -> None:
    async with FakePolymarket(markets=2, rate=0.0, seed=12) as fake:
        process = await start(*stream_args(fake), "--redundancy", "2", *fake.asset_ids)
        try:
            async with asyncio.timeout(20):
                seen = await books_seen(process, len(fake.asset_ids))
                await fake.wait_for_connection(2)
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                code = await process.wait()
        assert seen == set(fake.asset_ids)
        assert code == 0
        assert [set(c.subscribed) for c in fake.connections] == [set(fake.asset_ids)] * 2


def test_redundancy_is_a_market_channel_option_of_1_to_3() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["stream", "--redundancy", "4", "x"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["stream", "--channel", "user", "--redundancy", "2"])
    assert result.exit_code == 2
    assert "market channel only" in result.output
