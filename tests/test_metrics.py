"""ConnectionMetrics: uptime arithmetic with explicit times, reasons, Prometheus text, logging."""

from __future__ import annotations

import logging
import math
import re

import pytest

from polyfeed.metrics import ConnectionMetrics, PoolMetrics

SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r'(?:\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*)\})?'
    r" (?P<value>\S+)$"
)
TYPE = re.compile(r"^# TYPE (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?P<kind>counter|gauge)$")


def parse_prometheus(text: str) -> tuple[dict[str, str], dict[tuple[str, str], float]]:
    """A strict line-by-line parser: every line is a TYPE line or a sample of a typed family."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: dict[tuple[str, str], float] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            match = TYPE.match(line)
            assert match, f"bad comment line {line!r}"
            name = match["name"]
            assert name not in types, f"second TYPE line for {name}"
            types[name] = match["kind"]
            current = name
            continue
        match = SAMPLE.match(line)
        assert match, f"bad sample line {line!r}"
        name = match["name"]
        assert name == current, f"{name} sample outside its family block"
        key = (name, match["labels"] or "")
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = float(match["value"])
    return types, samples


def test_uptime_ratio_across_connect_disconnect_cycles() -> None:
    metrics = ConnectionMetrics(started_at=0.0)
    metrics.on_connected(0.0)
    assert metrics.uptime_ratio(5.0) == 1.0
    metrics.on_disconnected(10.0, "closed_1006")
    assert metrics.uptime_ratio(15.0) == pytest.approx(10 / 15)
    metrics.on_connected(15.0)
    assert metrics.uptime_ratio(20.0) == pytest.approx(15 / 20)
    assert metrics.connected_seconds(20.0) == pytest.approx(15.0)
    metrics.on_disconnected(20.0, "stale_data")
    assert metrics.uptime_ratio(40.0) == pytest.approx(15 / 40)


def test_uptime_counts_from_stream_start_not_first_connect() -> None:
    metrics = ConnectionMetrics(started_at=100.0)
    metrics.on_connected(104.0)  # four seconds to connect at first
    assert metrics.uptime_ratio(110.0) == pytest.approx(6 / 10)
    assert metrics.uptime_ratio(100.0) == 1.0  # no time elapsed yet
    assert ConnectionMetrics(started_at=5.0).uptime_ratio(5.0) == 0.0
    assert ConnectionMetrics(started_at=5.0).uptime_ratio(50.0) == 0.0


def test_reconnects_are_counted_by_reason() -> None:
    metrics = ConnectionMetrics(0.0)
    for now, reason in [(1, "closed_1006"), (2, "stale_data"), (3, "closed_1006"), (4, "dropped")]:
        metrics.on_connected(now - 0.5)
        metrics.on_disconnected(now, reason)
    assert metrics.reconnects_by_reason == {"closed_1006": 2, "stale_data": 1, "dropped": 1}
    assert metrics.connects_total == 4
    assert metrics.disconnects_total == 4
    assert metrics.snapshot(5.0)["reconnects_total"] == 4
    assert metrics.connected_seconds(5.0) == pytest.approx(2.0)


def test_seconds_since_last_message() -> None:
    metrics = ConnectionMetrics(0.0)
    assert metrics.seconds_since_last_message(10.0) is None
    metrics.last_message_at = 7.5
    assert metrics.seconds_since_last_message(10.0) == pytest.approx(2.5)


def test_snapshot_keys_and_values() -> None:
    metrics = ConnectionMetrics(0.0)
    metrics.on_connected(0.0)
    metrics.messages_received_total = 12
    metrics.last_message_at = 9.0
    metrics.stale_by_kind["data"] += 1
    snap = metrics.snapshot(10.0)
    assert set(snap) == {
        "connects_total",
        "disconnects_total",
        "reconnects_total",
        "reconnects_by_reason",
        "stale_detections_by_kind",
        "messages_received_total",
        "events_received_total",
        "decode_errors_total",
        "unknown_events_total",
        "dropped_events_total",
        "maintenance_restarts_total",
        "backoff_seconds",
        "pong_rtt_seconds",
        "seconds_since_last_message",
        "connected",
        "connected_seconds_total",
        "uptime_ratio",
    }
    assert snap["connected"] == 1
    assert snap["messages_received_total"] == 12
    assert snap["seconds_since_last_message"] == pytest.approx(1.0)
    assert snap["stale_detections_by_kind"] == {"data": 1}
    assert snap["uptime_ratio"] == 1.0
    assert snap["pong_rtt_seconds"] is None


class Maintenance:
    def __init__(self) -> None:
        self.maintenance_restarts = 0


def test_maintenance_restarts_are_read_live_from_the_maintainer() -> None:
    metrics = ConnectionMetrics(0.0)
    assert metrics.maintenance_restarts_total == 0
    assert "polyfeed_maintenance_restarts_total 0\n" in metrics.render_prometheus(1.0)
    keeper = Maintenance()
    metrics.maintenance = keeper
    keeper.maintenance_restarts = 3
    assert metrics.snapshot(1.0)["maintenance_restarts_total"] == 3
    text = metrics.render_prometheus(1.0)
    assert "# TYPE polyfeed_maintenance_restarts_total counter\n" in text
    assert "polyfeed_maintenance_restarts_total 3\n" in text


def test_prometheus_text_parses_line_by_line() -> None:
    metrics = ConnectionMetrics(0.0)
    metrics.on_connected(0.0)
    metrics.on_disconnected(10.0, "closed_1006")
    metrics.on_disconnected(11.0, "stale_data")
    metrics.on_connected(15.0)
    metrics.stale_by_kind["data"] += 1
    metrics.stale_by_kind["pong"] += 2
    metrics.messages_received_total = 42
    metrics.pong_rtt_seconds = 0.0125
    metrics.last_message_at = 19.0
    types, samples = parse_prometheus(metrics.render_prometheus(20.0))
    assert types["polyfeed_reconnects_total"] == "counter"
    assert types["polyfeed_uptime_ratio"] == "gauge"
    assert types["polyfeed_connected"] == "gauge"
    assert all(name.startswith("polyfeed_") for name in types)
    assert all(kind == "counter" for name, kind in types.items() if name.endswith("_total"))
    assert samples[("polyfeed_reconnects_total", 'reason="closed_1006"')] == 1
    assert samples[("polyfeed_reconnects_total", 'reason="stale_data"')] == 1
    assert samples[("polyfeed_stale_detections_total", 'kind="pong"')] == 2
    assert samples[("polyfeed_messages_received_total", "")] == 42
    assert samples[("polyfeed_pong_rtt_seconds", "")] == pytest.approx(0.0125)
    assert samples[("polyfeed_seconds_since_last_message", "")] == pytest.approx(1.0)
    assert samples[("polyfeed_connected", "")] == 1
    assert samples[("polyfeed_uptime_ratio", "")] == pytest.approx(15 / 20)
    # No per-asset labels anywhere.
    assert not [key for key in samples if "asset" in key[1]]


def test_prometheus_omits_unknown_gauges() -> None:
    text = ConnectionMetrics(0.0).render_prometheus(1.0)
    types, samples = parse_prometheus(text)
    assert "polyfeed_pong_rtt_seconds" not in types
    assert "polyfeed_seconds_since_last_message" not in types
    assert samples[("polyfeed_connected", "")] == 0


def test_prometheus_renders_large_counters_exactly() -> None:
    metrics = ConnectionMetrics(0.0)
    metrics.messages_received_total = 123_456_789
    metrics.dropped_events_total = 1_000_001
    _, samples = parse_prometheus(metrics.render_prometheus(1.0))
    assert samples[("polyfeed_messages_received_total", "")] == 123_456_789
    assert samples[("polyfeed_dropped_events_total", "")] == 1_000_001
    assert "polyfeed_messages_received_total 123456789\n" in metrics.render_prometheus(1.0)


def test_prometheus_float_values_round_trip() -> None:
    metrics = ConnectionMetrics(0.0)
    metrics.backoff_seconds = 1.5e-7
    metrics.pong_rtt_seconds = 0.123456789
    _, samples = parse_prometheus(metrics.render_prometheus(3.0))
    assert all(math.isfinite(v) for v in samples.values())
    assert samples[("polyfeed_backoff_seconds", "")] == 1.5e-7
    assert samples[("polyfeed_pong_rtt_seconds", "")] == 0.123456789


def test_prometheus_non_finite_values_use_prometheus_spelling() -> None:
    metrics = ConnectionMetrics(0.0)
    metrics.backoff_seconds = math.inf
    assert "polyfeed_backoff_seconds +Inf\n" in metrics.render_prometheus(1.0)


def test_log_status(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="polyfeed.metrics")
    metrics = ConnectionMetrics(0.0)
    metrics.on_connected(0.0)
    metrics.on_disconnected(5.0, "dropped")
    metrics.on_connected(6.0)
    metrics.messages_received_total = 99
    metrics.last_message_at = 9.0
    metrics.pong_rtt_seconds = 0.034
    metrics.log_status(10.0)
    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith("status: connected,")
    assert "uptime 90.0%" in message
    assert "99 messages" in message
    assert "1 reconnects" in message
    assert "last message 1.0s ago" in message
    assert "pong rtt 34.0ms" in message


def test_log_status_before_anything_happened_uses_the_given_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="custom")
    ConnectionMetrics(0.0).log_status(1.0, logging.getLogger("custom"))
    (record,) = caplog.records
    assert record.name == "custom"
    assert record.getMessage().startswith("status: disconnected,")
    assert "n/a" in record.getMessage()


def test_repr() -> None:
    metrics = ConnectionMetrics(0.0)
    assert "disconnected" in repr(metrics)
    metrics.on_connected(1.0)
    metrics.messages_received_total = 3
    text = repr(metrics)
    assert "<ConnectionMetrics connected" in text
    assert "messages=3" in text


def test_readers_take_now_from_the_clock_when_it_is_left_out() -> None:
    times = iter([10.0, 20.0, 40.0])
    metrics = ConnectionMetrics(0.0, clock=lambda: next(times))
    metrics.on_connected(0.0)
    metrics.on_disconnected(10.0, "closed_1006")
    assert metrics.uptime_ratio() == 1.0
    assert metrics.snapshot()["uptime_ratio"] == 0.5
    text = metrics.render_prometheus()
    assert "polyfeed_uptime_ratio 0.25\n" in text


def test_stream_metrics_need_no_now_argument() -> None:
    from polyfeed import MarketStream
    from polyfeed.testing import FakeClock

    clock = FakeClock(start=100.0)
    stream = MarketStream(["1"], clock=clock)
    metrics = stream.metrics
    metrics.on_connected(100.0)
    metrics.last_message_at = 101.0
    clock.advance(4.0)
    assert metrics.snapshot()["seconds_since_last_message"] == 3.0
    assert "polyfeed_seconds_since_last_message 3.0\n" in metrics.render_prometheus()


def test_log_status_without_now(caplog: pytest.LogCaptureFixture) -> None:
    metrics = ConnectionMetrics(0.0, clock=lambda: 8.0)
    metrics.on_connected(0.0)
    with caplog.at_level(logging.INFO, logger="polyfeed.metrics"):
        metrics.log_status()
    assert "uptime 100.0%" in caplog.text


def test_pool_metrics_total_their_connections_and_render_each_one() -> None:
    pool = PoolMetrics(0.0, shard="1/4")
    one = pool.add_connection(1, 0.0)
    two = pool.add_connection(2, 0.0)
    one.assets, two.assets = 200, 50
    one.on_connected(1.0)
    two.on_connected(2.0)
    one.messages_received_total += 7
    one.last_message_at = 3.0
    two.messages_received_total += 5
    two.on_disconnected(4.0, "dropped")
    two.on_attempt_failed("http_429")
    assert pool.connects_total == 2
    assert pool.messages_received_total == 12
    assert pool.reconnects_by_reason == {"dropped": 1, "http_429": 1}
    assert two.reconnects_by_reason == {"dropped": 1, "http_429": 1}
    assert one.reconnects_by_reason == {}
    # Connected while any connection is: from 1.0 without a break.
    assert pool.connected_since == 1.0
    assert pool.open_connections == 1
    assert pool.connected_seconds(5.0) == pytest.approx(4.0)
    text = pool.render_prometheus(5.0)
    assert "polyfeed_messages_received_total 12" in text
    assert 'polyfeed_connection_assets{connection="1"} 200' in text
    assert 'polyfeed_connection_connected{connection="2"} 0' in text
    assert 'polyfeed_connection_seconds_since_last_message{connection="1"} 2.0' in text
    assert 'polyfeed_connection_reconnects_total{connection="2"} 2' in text
    assert 'polyfeed_shard_info{shard="1/4"} 1' in text
    assert "asset" not in text.replace("connection_assets", "")
    snapshot = pool.snapshot(5.0)
    assert snapshot["connections"] == 2
    assert snapshot["connection_1_messages_received_total"] == 7
    # A connection the pool closes keeps its counts in the totals and leaves the open count.
    pool.retire_connection(1, 6.0)
    assert pool.open_connections == 0
    assert pool.connected_since is None
    assert pool.messages_received_total == 12
    assert list(pool.connections) == [2]


def test_pool_metrics_name_the_last_reconnect_reason_of_any_connection() -> None:
    pool = PoolMetrics(0.0)
    one = pool.add_connection(1, 0.0)
    one.on_connected(1.0)
    assert pool.last_reconnect_reason is None
    one.on_disconnected(2.0, "stale_data")
    assert pool.last_reconnect_reason == "stale_data"
    one.on_attempt_failed("http_429")
    assert pool.last_reconnect_reason == "http_429"


def test_pool_metrics_read_their_clock_when_now_is_left_out() -> None:
    pool = PoolMetrics(0.0, clock=lambda: 5.0)
    one = pool.add_connection(1, 0.0)
    one.on_connected(1.0)
    one.last_message_at = 3.0
    assert one.seconds_since_last_message() == 2.0
    assert pool.snapshot()["connection_1_seconds_since_last_message"] == 2.0
    assert 'polyfeed_connection_seconds_since_last_message{connection="1"} 2.0' in (
        pool.render_prometheus()
    )
