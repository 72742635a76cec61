"""The lowest versions pyproject.toml allows, as exact pins (``make test-floor`` installs them).

Run as a script, it prints one ``name==X`` line per runtime dependency (``[project]
dependencies``) and per ``cli`` extra, read from each ``name>=X`` floor: pip gets them as
constraints, so the floor run and the declared floors cannot drift apart. A dependency without a
``>=`` floor (or with an upper bound, marker or extra that a plain pin would silently drop) is an
error here, not a floor left untested. ``--check-installed`` instead exits non-zero unless the
running environment holds exactly those versions (the floor run proves nothing otherwise).
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
FLOOR_EXTRAS = ("cli",)

_FLOOR = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*(?P<version>[0-9][0-9A-Za-z.]*)")


def floor_pin(requirement: str) -> str:
    """``"aiohttp>=3.9"`` → ``"aiohttp==3.9"``; ValueError for anything but one plain floor."""
    match = _FLOOR.fullmatch(requirement.strip())
    if match is None:
        raise ValueError(f"not a plain 'name>=version' floor: {requirement!r}")
    return f"{match['name']}=={match['version']}"


def floor_pins(project: Mapping[str, Any], extras: Iterable[str] = FLOOR_EXTRAS) -> list[str]:
    """The pins for the runtime dependencies and the named extras of a ``[project]`` table."""
    requirements: list[str] = list(project.get("dependencies", []))
    optional: Mapping[str, list[str]] = project.get("optional-dependencies", {})
    for extra in extras:
        requirements.extend(optional[extra])
    return [floor_pin(requirement) for requirement in requirements]


def mismatches(pins: Iterable[str], installed: Callable[[str], str] = version) -> list[str]:
    """One line per pin that the environment does not satisfy exactly (missing, or another
    version); ``installed`` maps a distribution name to its version (raising
    ``PackageNotFoundError`` when absent)."""
    # Imported here: printing the pins runs in a bare venv, before pytest brings ``packaging``.
    from packaging.version import Version

    problems: list[str] = []
    for pin in pins:
        name, wanted = pin.split("==")
        try:
            found = installed(name)
        except PackageNotFoundError:
            problems.append(f"{name}: not installed, the floor is {wanted}")
            continue
        if Version(found) != Version(wanted):  # PEP 440: 3.11 == 3.11.0
            problems.append(f"{name}: {found} installed, the floor is {wanted}")
    return problems


def main(argv: list[str]) -> int:
    """Print the floor pins of this checkout's pyproject.toml, one per line; with
    ``--check-installed``, report the pins this environment does not match (exit 1)."""
    with PYPROJECT.open("rb") as file:
        pins = floor_pins(tomllib.load(file)["project"])
    if argv == ["--check-installed"]:
        problems = mismatches(pins)
        for problem in problems:
            sys.stderr.write(f"not the declared floor: {problem}\n")
        if not problems:
            sys.stdout.write(f"floor versions installed: {', '.join(pins)}\n")
        return 1 if problems else 0
    if argv:
        sys.stderr.write("usage: floor_pins.py [--check-installed]\n")
        return 2
    sys.stdout.write("".join(f"{pin}\n" for pin in pins))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
