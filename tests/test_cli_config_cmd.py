"""``polyfeed config show``: the effective configuration with sources, credentials redacted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from polyfeed.cli import main


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("POLYFEED_", "POLYMARKET_API_")):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_env")
def test_show_lists_each_value_with_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.toml"
    path.write_text('profile = "hft"\n[heartbeat]\ninterval = 4\n')
    monkeypatch.setenv("POLYFEED_QUEUE_MAXSIZE", "77")
    monkeypatch.setenv("POLYMARKET_API_KEY", "the-key-123")
    monkeypatch.setenv("POLYMARKET_API_SECRET", "the-secret-456")
    monkeypatch.setenv("POLYMARKET_API_PASSPHRASE", "the-pass-789")
    result = CliRunner().invoke(main, ["config", "show", "--config", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("heartbeat.interval" in line and "4.0" in line and "file" in line for line in lines)
    assert any(
        "queue.maxsize" in line and "77" in line and "POLYFEED_QUEUE" in line for line in lines
    )
    assert any("pong_timeout" in line and "profile hft" in line for line in lines)
    for secret in ("the-key-123", "the-secret-456", "the-pass-789"):
        assert secret not in result.output
    assert "<redacted>" in result.output


@pytest.mark.usefixtures("clean_env")
def test_show_as_toml_with_a_flag_profile() -> None:
    result = CliRunner().invoke(main, ["config", "show", "--format", "toml", "--profile", "hft"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith('profile = "hft"  # flag\n')
    assert "[heartbeat]\ninterval = 5.0  # profile hft\n" in result.output


@pytest.mark.usefixtures("clean_env")
def test_an_invalid_value_is_one_line_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFEED_WATCHDOG_DATA_TIMEOUT", "-5")
    result = CliRunner().invoke(main, ["config", "show"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: watchdog.data_timeout: data_timeout must be > 0, got -5.0 "
        "(env POLYFEED_WATCHDOG_DATA_TIMEOUT)\n"
    )


@pytest.mark.usefixtures("clean_env")
def test_stream_rejects_a_bad_config_file_at_start(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[backoff]\njitter = 2\n")
    result = CliRunner().invoke(main, ["stream", "--config", str(path), "1"])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert "backoff.jitter" in errors[0]
    assert f"file {path}" in errors[0]


@pytest.mark.usefixtures("clean_env")
def test_stream_flags_override_the_file(tmp_path: Path) -> None:
    from polyfeed.cli.stream import build_config
    from polyfeed.config_file import load

    path = tmp_path / "p.toml"
    path.write_text("[watchdog]\ndata_timeout = 11\n[heartbeat]\ninterval = 3\n")
    start = load(path).config
    config = build_config("dashboard", 22.0, None, None, None, None, None, start)
    assert config.watchdog.data_timeout == 22.0
    assert config.heartbeat.interval == 3.0
