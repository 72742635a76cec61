"""polyfeed.native: which build is installed, and when a build is unfit to test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from polyfeed import native

SUFFIX = ".cpython-311-x86_64-linux-gnu.so"


def _tree(tmp_path: Path, compiled: dict[str, bool]) -> dict[str, Path]:
    """A module name -> the file it loads from: an extension when compiled, else its source."""
    origins: dict[str, Path] = {}
    for name, is_compiled in compiled.items():
        stem = name.rpartition(".")[2]
        source = tmp_path / f"{stem}.py"
        source.write_text("")
        if is_compiled:
            extension = tmp_path / f"{stem}{SUFFIX}"
            extension.write_bytes(b"")
            origins[name] = extension
        else:
            origins[name] = source
    return origins


def test_the_installed_build_is_reported_consistently() -> None:
    assert (native.COMPILED_MODULES == native.HOT_MODULES) == native.COMPILED
    assert native.build_problem(None) is None  # this run's own build passed conftest's check
    expected = "compiled (mypyc)" if native.COMPILED else "pure Python"
    assert native.build_name() == expected


@pytest.mark.parametrize(
    ("compiled", "expected", "problem"),
    [
        ({"p.a": True, "p.b": True}, "compiled", None),
        ({"p.a": False, "p.b": False}, "pure", None),
        ({"p.a": True, "p.b": True}, None, None),
        ({"p.a": True, "p.b": True}, "pure", "the compiled build is installed, the pure"),
        ({"p.a": False, "p.b": False}, "compiled", "the pure build is installed, the compiled"),
        ({"p.a": True, "p.b": False}, None, "partly compiled build: p.b interpreted"),
        ({"p.a": True, "p.b": True}, "fast", "expected build 'fast' is neither"),
    ],
)
def test_build_problem_names_a_partial_or_unexpected_build(
    tmp_path: Path,
    compiled: dict[str, bool],
    expected: str | None,
    problem: str | None,
) -> None:
    origins = _tree(tmp_path, compiled)
    found = native.build_problem(expected, origins, origins.__getitem__)
    assert found == problem or (problem is not None and found is not None and problem in found)


def test_a_source_edited_after_an_in_place_build_is_a_stale_build(tmp_path: Path) -> None:
    origins = _tree(tmp_path, {"p.a": True, "p.b": True})
    assert native.build_problem("compiled", origins, origins.__getitem__) is None
    edited = tmp_path / "b.py"
    written = origins["p.b"].stat().st_mtime
    os.utime(edited, (written + 0.5, written + 0.5))  # written just after: not an edit
    assert native.build_problem("compiled", origins, origins.__getitem__) is None
    later = written + 5
    os.utime(edited, (later, later))
    problem = native.build_problem("compiled", origins, origins.__getitem__)
    assert problem == "stale compiled build (p.b edited since): reinstall (make setup)"


def test_a_compiled_module_outside_the_sample_is_checked_for_staleness_too(
    tmp_path: Path,
) -> None:
    origins = _tree(tmp_path, {"p.a": True, "p.b": True})
    (tmp_path / "inner").mkdir()
    extension = tmp_path / "inner" / f"c{SUFFIX}"
    extension.write_bytes(b"")
    source = tmp_path / "inner" / "c.py"
    source.write_text("")
    assert native.build_problem("compiled", origins, origins.__getitem__) is None
    later = extension.stat().st_mtime + 5
    os.utime(source, (later, later))
    problem = native.build_problem("compiled", origins, origins.__getitem__)
    assert problem == "stale compiled build (p.inner.c edited since): reinstall (make setup)"
