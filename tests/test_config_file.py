"""Configuration from a TOML file, POLYFEED_* variables and flags: precedence, errors by key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from polyfeed.config import StreamConfig
from polyfeed.config_file import KEYS, REDACTED, load
from polyfeed.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "polyfeed.toml"
    path.write_text(text)
    return path


def test_nothing_given_is_the_dashboard_profile() -> None:
    effective = load(environ={})
    assert effective.config == StreamConfig.from_profile("dashboard")
    assert effective.profile.source == "default"
    assert {s.source for s in effective.settings.values()} == {"profile dashboard"}


def test_precedence_profile_file_env_flag(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'profile = "hft"\nconnect_timeout = 4\n'
        "[heartbeat]\ninterval = 4\n[watchdog]\ndata_timeout = 50\nconfirm_timeout = 20\n",
    )
    effective = load(
        path,
        environ={"POLYFEED_WATCHDOG_DATA_TIMEOUT": "40", "POLYFEED_WATCHDOG_CONFIRM_TIMEOUT": "9"},
        overrides={"watchdog.confirm_timeout": 7.0},
    )
    config = effective.config
    assert config.heartbeat.interval == 4.0  # file
    assert config.heartbeat.pong_timeout == 15.0  # the hft profile
    assert config.watchdog.data_timeout == 40.0  # env over file
    assert config.watchdog.confirm_timeout == 7.0  # flag over env and file
    assert config.connect_timeout == 4.0
    sources = {key: s.source for key, s in effective.settings.items()}
    assert sources["heartbeat.interval"] == f"file {path}"
    assert sources["heartbeat.pong_timeout"] == "profile hft"
    assert sources["watchdog.data_timeout"] == "env POLYFEED_WATCHDOG_DATA_TIMEOUT"
    assert sources["watchdog.confirm_timeout"] == "flag"


def test_profile_from_env_then_flag(tmp_path: Path) -> None:
    path = write(tmp_path, 'profile = "hft"\n')
    assert load(path, environ={"POLYFEED_PROFILE": "low-activity"}).profile.value == "low-activity"
    assert load(path, environ={}, profile="dashboard").config.watchdog.data_timeout == 300.0


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[queue]\nmaxsize = 5\n")
    assert load(environ={"POLYFEED_CONFIG": str(path)}).config.queue.maxsize == 5


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"POLYFEED_HEARTBEAT_INTERVAL": "abc"}, "heartbeat.interval: expected a number"),
        ({"POLYFEED_QUEUE_MAXSIZE": "1.5"}, "queue.maxsize: expected an integer"),
        ({"POLYFEED_QUEUE_MAXSIZE": "0"}, "queue.maxsize: queue maxsize must be >= 1"),
        ({"POLYFEED_QUEUE_OVERFLOW": "x"}, "queue.overflow: expected one of drop_oldest"),
        ({"POLYFEED_CONNECT_TIMEOUT": "0"}, "connect_timeout: connect_timeout must be > 0"),
        ({"POLYFEED_HEARTBEAT_INTERVAL": "40"}, "heartbeat.interval (env POLYFEED_HEARTBEAT"),
        ({"POLYFEED_PROFILE": "fast"}, "profile: unknown profile 'fast' (env POLYFEED_PROFILE)"),
        ({"POLYFEED_CUSTOM_FEATURE_ENABLED": "maybe"}, "custom_feature_enabled: expected true"),
    ],
)
def test_a_bad_value_names_its_key_and_source(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(environ=environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[heartbeat]\nintervall = 3\n", "unknown key 'heartbeat.intervall'"),
        ("[nonsense]\na = 1\n", "unknown section [nonsense]"),
        ("profile = \n", "is not valid TOML"),
        ('[credentials]\napi_key = "k"\n', "credentials.secret: missing"),
    ],
)
def test_a_bad_file_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        load(write(tmp_path, text), environ={})
    assert message in str(caught.value)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml", environ={})


def test_optional_values_can_be_unset_from_the_environment() -> None:
    config = load(environ={"POLYFEED_BACKOFF_MAX_ATTEMPTS": "5"}).config
    assert config.backoff.max_attempts == 5
    config = load(environ={"POLYFEED_BACKOFF_FIRST_RETRY_MAX": "none"}).config
    assert config.backoff.first_retry_max is None


def test_unknown_polyfeed_variables_are_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="polyfeed.config"):
        load(environ={"POLYFEED_HEARBEAT_INTERVAL": "3"})
    assert "ignoring POLYFEED_HEARBEAT_INTERVAL" in caplog.text


def test_toml_output_round_trips_and_redacts_credentials(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[heartbeat]\ninterval = 4\n[credentials]\napi_key = "KEY-1"\nsecret = "SECRET-1"\n'
        'passphrase = "PASS-1"\n',
    )
    effective = load(path, environ={})
    text = effective.to_toml()
    for secret in ("KEY-1", "SECRET-1", "PASS-1"):
        assert secret not in text
        assert all(secret not in " ".join(row) for row in effective.rows())
    assert REDACTED in text
    # Without its credentials table, the output is a file that gives the same configuration.
    again = write(tmp_path, text.split("[credentials]")[0])
    assert load(again, environ={}).config == effective.config
    assert len(effective.rows()) == 1 + len(KEYS) + 3


def test_the_test_suites_and_the_builds_variables_are_not_settings_but_a_typo_is_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from polyfeed.config_file import read_env

    environ = {
        "POLYFEED_TEST_REDIS_URL": "redis://127.0.0.1:1/0",
        "POLYFEED_FUZZ_EXAMPLES": "100",
        "POLYFEED_TEST_BUILD": "compiled",
        "POLYFEED_PURE_PYTHON": "1",
        "POLYFEED_DATA_TIMOUT": "5",
    }
    with caplog.at_level("WARNING", logger="polyfeed.config"):
        assert read_env(environ) == {}
    assert [r.getMessage() for r in caplog.records] == [
        "ignoring POLYFEED_DATA_TIMOUT: not a configuration key"
    ]


def test_the_pools_settings_are_keys_of_the_file_and_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "max_assets_per_connection = 50\n[pool]\nopen_interval = 0.5\n")
    effective = load(path, environ={"POLYFEED_POOL_COMPACT_BELOW": "0"})
    assert effective.config.max_assets_per_connection == 50
    assert effective.config.pool.open_interval == 0.5
    assert effective.config.pool.compact_below == 0.0
    assert "\n[pool]\nopen_interval = 0.5  # file " in effective.to_toml()
