"""The Redis Streams sink against a real redis-server (its URL in ``POLYFEED_TEST_REDIS_URL``;
``.ci/run`` and ``make test`` start one). Without it the tests skip, except under ``CI=true``,
where they fail.

"Redis stopped mid-run" is a TCP proxy between the sink and the server that drops every
connection and refuses new ones, then accepts again: the recorder keeps streaming, buffers,
alarms, and catches up, or, when its buffer and the stream's queue overflow, records the exact gap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import running_in_ci
from polyfeed import (
    BackoffConfig,
    Connected,
    Gap,
    HeartbeatConfig,
    MarketStream,
    QueueConfig,
    StreamConfig,
    WatchdogConfig,
)
from polyfeed.errors import ConfigError, SinkUnavailableError
from polyfeed.sinks.base import Recorder, Resume, SessionInfo, from_record
from polyfeed.sinks.base import to_record as record_of
from polyfeed.testing import FakePolymarket
from record_helpers import GapSpan, RecordedKey, unexplained

redis_asyncio = pytest.importorskip("redis.asyncio")

from polyfeed.sinks.redis import RedisSink  # noqa: E402 (after the importorskip)

ENV = "POLYFEED_TEST_REDIS_URL"

CONFIG = StreamConfig(
    heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.3),
    watchdog=WatchdogConfig(data_timeout=0.5, confirm_timeout=2.0),
    backoff=BackoffConfig(base=0.02, max_delay=0.1, jitter=0.02, stable_for=0.5),
)


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(ENV)
    if not url:
        missing = f"{ENV} is not set (no redis-server for the Redis sink tests)"
        if running_in_ci():
            pytest.fail(f"CI=true and {missing}", pytrace=False)
        pytest.skip(missing)
    return url


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"polyfeed-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis_asyncio.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{name}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class Proxy:
    """A TCP proxy on 127.0.0.1 to the Redis server; ``down()`` makes Redis unreachable."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.path = parts.path
        self.up = True
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self.path}"

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.down()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def down(self) -> None:
        self.up = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        # The proxy owns its pipe tasks: __aexit__ cancels and awaits them.
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


async def read_stream(url: str, key: str) -> list[dict[str, str]]:
    client = redis_asyncio.Redis.from_url(url, decode_responses=True)
    try:
        return [fields for _, fields in await client.xrange(key)]
    finally:
        await client.aclose()


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        RedisSink("http://x")
    with pytest.raises(ConfigError):
        RedisSink("redis://x", key_by="asset")
    with pytest.raises(ConfigError):
        RedisSink("redis://x", maxlen=0)
    assert "secret" not in repr(RedisSink("redis://user:secret@127.0.0.1:1/0"))


async def test_entries_gaps_state_and_resume(redis_url: str, prefix: str) -> None:
    sink = RedisSink(redis_url, prefix=prefix)
    assert await sink.open(SessionInfo("market", ("a",), 100.0)) is None
    connected = Connected(url="ws://x", attempt=1)
    gap = Gap(started=1.0, ended=2.0, assets=["a"], reason="reconnect")
    await sink.write([record_of(connected, 150.0), record_of(gap, 151.0)])
    await sink.aclose(160.0)
    entries = await read_stream(redis_url, f"{prefix}:market")
    assert [from_record(e["event_type"], e["json"]) for e in entries] == [connected, gap]
    assert entries[1]["assets"] == '["a"]'
    assert entries[1]["received"] == "151.0"
    [gap_entry] = await read_stream(redis_url, f"{prefix}:market:gaps")
    assert from_record(gap_entry["event_type"], gap_entry["json"]) == gap
    again = RedisSink(redis_url, prefix=prefix)
    assert await again.open(SessionInfo("market", ("b",), 200.0)) == Resume(160.0, ("a",))
    await again.aclose(201.0)


async def test_one_stream_per_market_and_maxlen(redis_url: str, prefix: str) -> None:
    from polyfeed import Book, Level

    sink = RedisSink(redis_url, prefix=prefix, key_by="market", maxlen=10)
    await sink.open(SessionInfo("market", ("a", "b"), 1.0))
    books = [
        Book(market=m, asset_id="a", timestamp=i, bids=[Level("0.1", "1")], asks=[])
        for i in range(30)
        for m in ("0xone", "0xtwo")
    ]
    await sink.write([record_of(b, 2.0) for b in books])
    await sink.write([record_of(Connected(url="ws://x", attempt=1), 3.0)])
    await sink.aclose(4.0)
    one = await read_stream(redis_url, f"{prefix}:market:0xone")
    # MAXLEN ~ trims whole nodes: at least the last 10 remain, never more than were written.
    assert 10 <= len(one) <= 30
    assert json.loads(one[-1]["json"])["timestamp"] == 29
    assert len(await read_stream(redis_url, f"{prefix}:market:0xtwo")) >= 10
    [control] = await read_stream(redis_url, f"{prefix}:market:control")
    assert control["event_type"] == "connected"


async def test_consumer_group_example(redis_url: str, prefix: str) -> None:
    """The README's consumer: a group reads the typed events and acknowledges them."""
    sink = RedisSink(redis_url, prefix=prefix)
    await sink.open(SessionInfo("market", ("a",), 1.0))
    events = [Connected(url="ws://x", attempt=i) for i in range(1, 6)]
    await sink.write([record_of(e, 2.0) for e in events])
    await sink.aclose(3.0)

    # --- the example
    client = redis_asyncio.Redis.from_url(redis_url, decode_responses=True)
    stream = f"{prefix}:market"
    await client.xgroup_create(stream, "backtest", id="0", mkstream=True)
    seen = []
    while True:
        reply = await client.xreadgroup("backtest", "worker-1", {stream: ">"}, count=2, block=100)
        if not reply:
            break
        for _, entries in reply:
            for entry_id, fields in entries:
                seen.append(from_record(fields["event_type"], fields["json"]))
                await client.xack(stream, "backtest", entry_id)
    # --- end of the example
    pending = await client.xpending(stream, "backtest")
    await client.aclose()
    assert seen == events
    assert pending["pending"] == 0


async def test_unreachable_redis_is_unavailable(redis_url: str, prefix: str) -> None:
    async with Proxy(redis_url) as proxy:
        sink = RedisSink(proxy.url, prefix=prefix, timeout=0.5)
        await sink.open(SessionInfo("market", ("a",), 1.0))
        proxy.down()
        with pytest.raises(SinkUnavailableError):
            await sink.write([record_of(Connected(url="ws://x", attempt=1), 2.0)])
        await sink.aclose(3.0)
        with pytest.raises(SinkUnavailableError):
            await RedisSink(proxy.url, prefix=prefix, timeout=0.5).open(
                SessionInfo("market", (), 1.0)
            )


def recorded_in_redis(entries: list[dict[str, str]]) -> tuple[set[RecordedKey], list[GapSpan]]:
    recorded: set[RecordedKey] = set()
    gaps: list[GapSpan] = []
    for entry in entries:
        if entry["server_ts"]:
            recorded.add((entry["event_type"], entry["market"] or None, int(entry["server_ts"])))
        if entry["event_type"] == "gap":
            body: Any = json.loads(entry["json"])
            gaps.append((body["started"], body["ended"], set(body["assets"])))
    return recorded, gaps


@pytest.mark.timeout(60)
@pytest.mark.parametrize("overflow", [False, True], ids=["catch_up", "exact_gap"])
async def test_redis_stopped_mid_run(
    redis_url: str, prefix: str, overflow: bool, caplog: pytest.LogCaptureFixture
) -> None:
    config = CONFIG
    if overflow:
        config = dataclasses.replace(CONFIG, queue=QueueConfig(maxsize=50))
    async with (
        Proxy(redis_url) as proxy,
        FakePolymarket(markets=3, seed=7, ping_grace=2.0) as fake,
    ):
        assets = list(fake.asset_ids)

        async def order_flow() -> None:
            while True:
                fake.step(1)
                await asyncio.sleep(0.005)

        sink = RedisSink(proxy.url, prefix=prefix, timeout=0.3)
        async with MarketStream(assets, endpoints=fake.endpoints, config=config) as stream:
            recorder = Recorder(
                stream,
                sink,
                channel="market",
                ids=assets,
                batch_window=0.05,
                batch_max=20 if overflow else 5_000,
                max_buffer=40 if overflow else 50_000,
                retry_base=0.05,
                retry_max=0.2,
            )
            with caplog.at_level(logging.WARNING, logger="polyfeed.record"):
                async with asyncio.TaskGroup() as group:
                    flow = group.create_task(order_flow())
                    group.create_task(recorder.run())
                    async with asyncio.timeout(20):
                        await fake.wait_for_connection(1)
                        await asyncio.sleep(0.5)
                        proxy.down()
                        await asyncio.sleep(1.0)
                        assert recorder.metrics.sink_stalled
                        health = stream.health()
                        assert health.connected  # the stream kept going
                        proxy.up = True
                        for _ in range(200):  # polled: the recorder has no event for it
                            if not recorder.metrics.sink_stalled:
                                break
                            await asyncio.sleep(0.05)
                        assert not recorder.metrics.sink_stalled
                        await asyncio.sleep(0.3)
                    flow.cancel()
                    for connection in fake.open_connections("market"):
                        await connection.flush()
                    await asyncio.sleep(0.2)
                    recorder.request_stop()
        entries = await read_stream(redis_url, f"{prefix}:market")
    assert "unavailable" in caplog.text
    assert recorder.metrics.sink_errors >= 1
    assert recorder.metrics.records_lost == 0
    recorded, gaps = recorded_in_redis(entries)
    if overflow:
        assert any(entry["event_type"] == "gap" for entry in entries)
        assert stream.health().dropped_events > 0
    else:
        assert stream.health().dropped_events == 0
        assert not gaps
    assert len(fake.connections) == 1  # Redis going away never touched the feed
    assert unexplained(fake.log, recorded, gaps) == []
