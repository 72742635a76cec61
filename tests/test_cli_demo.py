"""``polyfeed demo``: a fault schedule against the built-in fake, a summary that checks itself."""

from __future__ import annotations

import asyncio
import logging

import pytest
from click.testing import CliRunner

from polyfeed.cli import main
from polyfeed.cli.demo import FAULTS, FaultTracker, LossAudit, demo_config
from polyfeed.events import Connected, Disconnected, Gap, Stale
from polyfeed.testing import FakePolymarket


@pytest.mark.timeout(40)
def test_short_demo_passes_its_own_summary() -> None:
    result = CliRunner().invoke(
        main, ["demo", "--faults", "stall,hiccup", "--duration", "11", "--markets", "4"]
    )
    assert result.exit_code == 0, result.output
    output = result.output
    assert "fault: stall" in output
    assert "fault: hiccup" in output
    assert "faults recovered: 2/2" in output
    assert "events lost without a reported gap: 0" in output
    assert "books in sync with the server: 8/8" in output
    assert "PASS" in output
    assert "WARNING" not in output
    assert "Traceback" not in output
    # The library's logger is left as it was found.
    assert logging.getLogger("polyfeed").level == logging.NOTSET


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--faults", "stall,meteor"], "unknown fault 'meteor'"),
        (["--duration", "5"], "too short for 6 fault(s)"),
        (["--markets", "0"], "--markets"),
    ],
)
def test_bad_demo_options_are_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["demo", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_demo_config_keeps_heartbeat_inside_the_server_grace() -> None:
    config = demo_config()
    assert config.heartbeat.interval < 5.0
    assert config.watchdog.data_timeout < config.heartbeat.pong_timeout


def test_tracker_times_detection_and_recovery() -> None:
    synced = [True]
    tracker = FaultTracker(all_synced=lambda: synced[0])
    run = tracker.injected(FAULTS["stall"], 10.0)
    tracker.ended(run, 10.0)
    tracker.note(Connected(url="ws://x", attempt=1), 10.5)  # before detection: ignored
    assert run.detected_at is None
    synced[0] = False
    tracker.note(Stale(kind="data", silent_for=1.0), 11.0)
    tracker.note(Connected(url="ws://x", attempt=2), 11.3)
    assert run.recovered_at is None  # books not synced yet
    synced[0] = True
    tracker.note(object(), 11.5)
    assert run.detection == 1.0
    assert run.recovery == 0.5
    assert run.detected_by == "stale data"
    assert tracker.current is None


def test_flapping_is_not_recovered_before_the_server_stops_flapping() -> None:
    tracker = FaultTracker(all_synced=lambda: True)
    run = tracker.injected(FAULTS["flapping"], 0.0)
    tracker.note(Disconnected(reason="dropped", code=None), 0.1)
    tracker.note(Connected(url="ws://x", attempt=2), 0.5)
    tracker.note(object(), 0.6)
    assert run.recovered_at is None
    tracker.ended(run, 1.5)
    tracker.note(Connected(url="ws://x", attempt=3), 1.8)
    assert run.recovered_at == 1.8
    assert run.detected_by == "disconnect, no close frame"


async def test_loss_audit_counts_what_was_neither_received_nor_in_a_gap() -> None:
    async with FakePolymarket(markets=1, seed=3) as fake:
        logged = []
        for _ in range(3):
            # Apart by more than the audit's 5 ms tolerance around a gap.
            logged.extend(fake.step(1))
            await asyncio.sleep(0.03)
    changes = [e for e in logged if e.event_type == "price_change"]
    assert len(changes) == 3
    audit = LossAudit()
    audit.received.add((changes[0].market, int(changes[0].timestamp)))
    covered = int(changes[1].timestamp) / 1000.0
    audit.note(Gap(started=covered, ended=covered, assets=list(changes[1].asset_ids), reason="x"))
    assert audit.unexplained(fake) == 1
    audit.received.add((changes[2].market, int(changes[2].timestamp)))
    assert audit.unexplained(fake) == 0


@pytest.mark.timeout(30)
def test_no_faults_with_a_metrics_port_announces_it_and_passes() -> None:
    result = CliRunner().invoke(
        main,
        ["demo", "--faults", "none", "--duration", "4", "--markets", "2", "--metrics-port", "0"],
    )
    assert result.exit_code == 0, result.output
    assert "polyfeed: metrics on http://127.0.0.1:" in result.output
    assert "faults recovered: 0/0" in result.output
    assert "books in sync with the server: 4/4" in result.output
