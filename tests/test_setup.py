"""setup.py: the compiled module list agrees with the Makefile's rebuild rule and with
polyfeed.native, so a module added to one cannot be left stale or unreported by the others."""

from __future__ import annotations

import ast
import re
import runpy
from pathlib import Path

from polyfeed import native

ROOT = Path(__file__).resolve().parents[1]


def _compiled_paths() -> set[str]:
    namespace = runpy.run_path(str(ROOT / "setup.py"), run_name="setup_under_test")
    sources: list[str] = namespace["compiled_sources"]()
    return set(sources)


def _makefile_sources() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    match = re.search(r"^COMPILED_SOURCES := (.*?)(?<!\\)\n", text, re.M | re.S)
    assert match is not None
    paths: set[str] = set()
    # Words: "$(wildcard", "a/*.py)", "b.py", ...; a wildcard's pattern is the word ending in ")".
    for word in match[1].replace("\\\n", " ").split():
        if word.endswith(".py)"):
            paths.update(str(p.relative_to(ROOT)) for p in ROOT.glob(word[:-1]))
        elif word.endswith(".py"):
            paths.add(word)
    return paths


def _module(path: str) -> str:
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def test_every_compiled_source_exists_and_the_makefile_rebuilds_on_each() -> None:
    compiled = _compiled_paths()
    assert compiled, "setup.py compiles nothing"
    assert all((ROOT / path).is_file() for path in compiled)
    assert "src/polyfeed/core/book/__init__.py" not in compiled
    assert _makefile_sources() >= compiled


def test_the_reported_hot_modules_are_all_compiled_ones() -> None:
    modules = {_module(path) for path in _compiled_paths()}
    assert set(native.HOT_MODULES) <= modules


def _defines_a_struct(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                name = ast.unparse(base)
                if name in ("msgspec.Struct", "Struct") or name.endswith("._Event"):
                    return True
    return False


def test_no_compiled_module_defines_a_msgspec_struct() -> None:
    # A Struct defined in a compiled module loses its class keywords: BookVerdict lost
    # frozen=True that way (mutable, unhashable) until it moved to an interpreted module.
    offenders = [path for path in _compiled_paths() if _defines_a_struct(ROOT / path)]
    assert offenders == []
    assert _defines_a_struct(ROOT / "src/polyfeed/core/book/verdict.py")  # the check works
