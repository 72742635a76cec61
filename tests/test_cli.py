"""The ``polyfeed`` group: version, logging options, help on every option, the missing extra."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import polyfeed
from polyfeed.cli import main
from polyfeed.cli._logging import JsonFormatter, level_for
from polyfeed.native import build_name


def run(
    *args: str, code: str = "from polyfeed.__main__ import main; main()"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=30
    )


def test_version_flag_and_dunder_agree() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    build = build_name()
    assert result.output == f"polyfeed, version {polyfeed.__version__}, {build}\n"
    assert build in ("compiled (mypyc)", "pure Python")
    assert polyfeed.__version__[0].isdigit()


def test_python_dash_m_polyfeed_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "polyfeed", "--version"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert polyfeed.__version__ in result.stdout


def test_without_the_cli_extra_one_line_names_the_extra() -> None:
    blocked = "import sys; sys.modules['click'] = None; from polyfeed.__main__ import main; main()"
    result = run("--help", code=blocked)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "pip install 'polyfeed[cli]'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("verbose", "quiet", "level"),
    [(0, 0, logging.WARNING), (1, 0, logging.INFO), (2, 0, logging.DEBUG), (0, 1, logging.ERROR)],
)
def test_verbose_and_quiet_move_the_level(verbose: int, quiet: int, level: int) -> None:
    assert level_for(verbose, quiet) == level


def test_json_log_format_is_one_object_per_line() -> None:
    record = logging.LogRecord("polyfeed", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    line = JsonFormatter().format(record)
    body = json.loads(line)
    assert body["message"] == "hello x"
    assert body["level"] == "INFO"
    assert body["logger"] == "polyfeed"


def test_log_format_json_reaches_stderr_of_a_command() -> None:
    result = run("-v", "--log-format", "json", "fake-server", "--host", "no.such.host.invalid")
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)


def _commands(group: click.Group) -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = [(group.name or "polyfeed", group)]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.extend(_commands(command))
        else:
            found.append((name, command))
    return found


@pytest.mark.parametrize(("name", "command"), _commands(main))
def test_every_option_has_help_and_a_stated_default(name: str, command: click.Command) -> None:
    assert command.help, f"{name} has no help text"
    for param in command.params:
        if not isinstance(param, click.Option) or param.is_flag or param.count or param.multiple:
            continue
        if param.name in ("help", "version"):
            continue
        assert param.help, f"{name} {param.opts} has no help"
        stated = param.show_default or "default" in param.help.lower()
        assert stated, f"{name} {param.opts} does not say its default"


BAD_INPUTS = [
    (["demo", "--markets", "0"], "--markets"),
    (["demo", "--rate", "-3"], "--rate"),
    (["demo", "--duration", "-1"], "--duration"),
    (["fake-server", "--port", "70000"], "--port"),
    (["fake-server", "--host", "no.such.host.invalid"], "cannot listen on no.such.host.invalid"),
    (["stream", "--url", "http://x", "1"], "--url"),
    (["--nonsense"], "--nonsense"),
    (
        ["stream", "--channel", "user", "--url", "ws://127.0.0.1:9/ws/market"],
        "market channel's URL",
    ),
    (["stream", "--url", "ws://127.0.0.1:9/ws/user", "1"], "user channel's URL"),
]


@pytest.mark.parametrize(("args", "expected"), BAD_INPUTS)
def test_bad_input_is_one_clear_line_and_non_zero(args: list[str], expected: str) -> None:
    result = run(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0]


def test_fake_server_on_a_busy_port() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("fake-server", "--port", str(port))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip() == f"Error: cannot listen on 127.0.0.1:{port}: address already in use"
    )
