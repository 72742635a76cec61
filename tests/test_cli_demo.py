"""``polyfeed demo``: runs against the built-in fake server and shows recovery."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from polyfeed.cli import main
from polyfeed.cli.demo import demo_config


@pytest.mark.timeout(30)
def test_demo_shows_a_stall_and_a_drop_being_recovered() -> None:
    result = CliRunner().invoke(main, ["demo", "--duration", "4", "--rate", "20"])
    assert result.exit_code == 0, result.output
    output = result.output
    assert "STALE (data)" in output
    assert output.count("connected (connection #") >= 3
    assert "GAP of" in output
    assert "done" in output
    assert "local books vs the server" in output
    assert "invalidated: reconnect" in output
    assert "resynced from snapshot" in output


def test_demo_config_keeps_heartbeat_inside_the_server_grace() -> None:
    config = demo_config()
    assert config.heartbeat.interval < 5.0
    assert config.watchdog.data_timeout < config.heartbeat.pong_timeout
