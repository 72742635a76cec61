"""floor_pins: the exact pins ``make test-floor`` installs are read from pyproject.toml's floors,
and the floor run refuses an environment that does not hold them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError

import pytest

from floor_pins import PYPROJECT, floor_pin, floor_pins, main, mismatches


@pytest.mark.parametrize(
    ("requirement", "pin"),
    [("aiohttp>=3.11", "aiohttp==3.11"), ("msgspec >= 0.18.6", "msgspec==0.18.6"),
     ("typing_extensions>=4.1", "typing_extensions==4.1")],
)  # fmt: skip
def test_a_floor_becomes_an_exact_pin(requirement: str, pin: str) -> None:
    assert floor_pin(requirement) == pin


@pytest.mark.parametrize(
    "requirement",
    ["aiohttp", "aiohttp>=3.11,<4", "aiohttp[speedups]>=3.11", "aiohttp==3.11", "aiohttp>3.11",
     "aiohttp>=3.11; python_version < '3.12'", "aiohttp~=3.11"],
)  # fmt: skip
def test_anything_but_one_plain_floor_is_refused(requirement: str) -> None:
    # A pin would silently drop an upper bound, marker or extra: the floor run would then test
    # something that is not what users install.
    with pytest.raises(ValueError, match="floor"):
        floor_pin(requirement)


def test_pins_cover_every_runtime_dependency_and_the_cli_extra() -> None:
    project = {
        "dependencies": ["aiohttp>=3.11", "msgspec>=0.18"],
        "optional-dependencies": {"cli": ["click>=8.1"], "dev": ["pytest==9.2.0"]},
    }
    assert floor_pins(project) == ["aiohttp==3.11", "msgspec==0.18", "click==8.1"]


def test_this_pyproject_declares_a_floor_for_every_runtime_dependency() -> None:
    with PYPROJECT.open("rb") as file:
        project = tomllib.load(file)["project"]
    pinned = {pin.split("==")[0] for pin in floor_pins(project)}
    assert {"aiohttp", "msgspec"} <= pinned
    assert len(pinned) == len(project["dependencies"]) + len(
        project["optional-dependencies"]["cli"]
    )


def test_mismatches_name_missing_and_other_versions_and_accept_padded_equal_ones() -> None:
    installed = {"aiohttp": "3.11.0", "msgspec": "0.23.0"}

    def version_of(name: str) -> str:
        if name not in installed:
            raise PackageNotFoundError(name)
        return installed[name]

    pins = ["aiohttp==3.11", "msgspec==0.18", "click==8.1"]
    assert mismatches(pins, version_of) == [
        "msgspec: 0.23.0 installed, the floor is 0.18",
        "click: not installed, the floor is 8.1",
    ]
    assert mismatches(["aiohttp==3.11"], version_of) == []


def test_the_script_prints_the_pins_of_this_pyproject() -> None:
    script = PYPROJECT.parent / "tests" / "floor_pins.py"
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=30
    )
    with PYPROJECT.open("rb") as file:
        assert done.stdout.splitlines() == floor_pins(tomllib.load(file)["project"])


def test_unknown_arguments_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bogus"]) == 2
    assert "usage" in capsys.readouterr().err
