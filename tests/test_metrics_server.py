"""MetricsServer: /metrics parses with prometheus-client's parser; /health 503 in a stall."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from polyfeed import BackoffConfig, HeartbeatConfig, MarketStream, StreamConfig, WatchdogConfig
from polyfeed.aio.metrics_server import MetricsServer, health_report, render_prometheus
from polyfeed.testing import FakePolymarket, StallData


def quick_config() -> StreamConfig:
    # jitter 0 and no fast first retry: the backoff after a stale link lasts exactly 0.5 s.
    return dataclasses.replace(
        StreamConfig.from_profile("hft"),
        heartbeat=HeartbeatConfig(interval=0.1, pong_timeout=1.0),
        watchdog=WatchdogConfig(data_timeout=0.4, confirm_timeout=2.0),
        backoff=BackoffConfig(base=0.5, max_delay=0.5, jitter=0.0, first_retry_max=None),
    )


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def wait_for_status(session: aiohttp.ClientSession, url: str, status: int) -> dict[str, Any]:
    while True:
        got, body = await get(session, url)
        if got == status:
            assert isinstance(body, dict)
            return body
        await asyncio.sleep(0.02)


@pytest.mark.timeout(30)
async def test_health_flips_to_503_in_a_stall_and_back_after_recovery() -> None:
    async with (
        FakePolymarket(markets=2, rate=40.0, seed=21) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=quick_config()) as stream,
        MetricsServer({"market": stream}) as server,
        aiohttp.ClientSession() as session,
    ):

        async def consume() -> None:
            async for _ in stream:
                pass

        async with asyncio.timeout(20), asyncio.TaskGroup() as group:
            consumer = group.create_task(consume())
            healthy = await wait_for_status(session, f"{server.url}/health", 200)
            assert healthy["status"] == "ok"
            assert healthy["streams"]["market"]["state"] == "open"
            fake.inject(StallData())
            stalled = await wait_for_status(session, f"{server.url}/health", 503)
            assert stalled["status"] == "unhealthy"
            assert any("stale" in reason for reason in stalled["reasons"]), stalled
            recovered = await wait_for_status(session, f"{server.url}/health", 200)
            assert recovered["reasons"] == []
            consumer.cancel()


@pytest.mark.timeout(30)
async def test_metrics_parse_with_prometheus_clients_own_parser() -> None:
    async with (
        FakePolymarket(markets=1, rate=40.0, seed=22) as fake,
        MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=quick_config()) as stream,
        MetricsServer({"market": stream}) as server,
        aiohttp.ClientSession() as session,
    ):
        async with asyncio.timeout(10):
            async for _ in stream:
                if stream.metrics.messages_received_total > 5:
                    break
            status, text = await get(session, f"{server.url}/metrics")
    assert status == 200
    families = {family.name: family for family in text_string_to_metric_families(text)}
    # The parser drops "_total" from counter family names.
    assert families["polyfeed_connects"].type == "counter"
    assert families["polyfeed_connected"].samples[0].labels == {"stream": "market"}
    assert families["polyfeed_connected"].samples[0].value == 1.0
    assert families["polyfeed_messages_received"].samples[0].value > 5


async def test_two_streams_merge_into_one_document_with_one_type_line_per_family() -> None:
    one, two = MarketStream(["1"]), MarketStream(["2"])
    text = render_prometheus({"a": one, "b": two})
    families = list(text_string_to_metric_families(text))
    connected = next(f for f in families if f.name == "polyfeed_connected")
    assert [s.labels["stream"] for s in connected.samples] == ["a", "b"]
    assert text.count("# TYPE polyfeed_connected gauge") == 1


async def test_an_unstarted_stream_and_no_streams_are_unhealthy() -> None:
    report = health_report({"market": MarketStream(["1"])})
    assert report.status == 503
    assert report.reasons == ["market: idle"]
    assert health_report({}).reasons == ["no streams"]


async def test_a_busy_port_raises_oserror_and_leaves_nothing_running() -> None:
    stream = MarketStream(["1"])
    async with MetricsServer({"m": stream}) as first:
        second = MetricsServer({"m": stream}, port=first.port)
        with pytest.raises(OSError):
            await second.start()
        assert "stopped" in repr(second)
        assert "serving" in repr(first)
