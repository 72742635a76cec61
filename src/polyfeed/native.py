"""Whether this installation runs the compiled core (see ``setup.py``), and which modules.

The same source runs either way; the compiled build is faster. ``polyfeed --version`` and the
benchmarks print :func:`build_name` so that a number always says which build it was measured on.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Final

__all__ = ["COMPILED", "COMPILED_MODULES", "HOT_MODULES", "build_name", "build_problem"]

HOT_MODULES: Final = (
    "polyfeed.core.book.order_book",
    "polyfeed.core.book.registry",
    "polyfeed.core.book.levels",
    "polyfeed.core.book_hash",
    "polyfeed.core.websocket",
    "polyfeed.aio.event_queue",
)
"""Modules of the per-message path that ``setup.py`` compiles (a sample of its list)."""


def _origin(name: str) -> Path:
    return Path(getattr(importlib.import_module(name), "__file__", None) or name)


def _compiled(names: Iterable[str], origin: Callable[[str], Path]) -> tuple[str, ...]:
    return tuple(name for name in names if origin(name).name.endswith(tuple(EXTENSION_SUFFIXES)))


COMPILED_MODULES: Final = _compiled(HOT_MODULES, _origin)
"""The hot-path modules that were loaded from C extensions."""

COMPILED: Final = len(COMPILED_MODULES) == len(HOT_MODULES)
"""True when every hot-path module is compiled (a partial set means a broken build)."""


def build_name() -> str:
    """``"compiled (mypyc)"``, ``"pure Python"``, or ``"partly compiled"`` for a broken build."""
    if COMPILED:
        return "compiled (mypyc)"
    return "partly compiled" if COMPILED_MODULES else "pure Python"


def build_problem(
    expected: str | None,
    names: Iterable[str] = HOT_MODULES,
    origin: Callable[[str], Path] = _origin,
) -> str | None:
    """Why the installed build is not the one to test, or None.

    A problem: a partly compiled set; a build other than ``expected`` (``"compiled"`` or
    ``"pure"``; None: either); any compiled module of the package (not only ``names``, which
    are a sample) whose ``.py`` beside it is newer than its extension (edited after an in-place
    build, so the old code is what runs: reinstall, e.g. ``make setup``).
    """
    if expected not in (None, "compiled", "pure"):
        return f"expected build {expected!r} is neither 'compiled' nor 'pure'"
    names = tuple(names)
    compiled = _compiled(names, origin)
    if compiled and len(compiled) != len(names):
        missing = sorted(set(names) - set(compiled))
        return f"partly compiled build: {', '.join(missing)} interpreted"
    actual = "compiled" if compiled else "pure"
    if expected is not None and actual != expected:
        return f"the {actual} build is installed, the {expected} one was expected"
    stale = _stale(compiled, origin) if compiled else []
    if stale:
        return f"stale compiled build ({', '.join(stale)} edited since): reinstall (make setup)"
    return None


def _stale(compiled: tuple[str, ...], origin: Callable[[str], Path]) -> list[str]:
    """The package's extension modules whose source beside them was edited after the build."""
    first = compiled[0]
    package = first.partition(".")[0]
    root = origin(first).parents[first.count(".") - 1]  # the package's folder
    stale = []
    for extension in sorted(root.rglob("*")):
        suffix = next((s for s in EXTENSION_SUFFIXES if extension.name.endswith(s)), None)
        if suffix is None:
            continue
        stem = extension.name.removesuffix(suffix)
        source = extension.with_name(stem + ".py")
        # A second of slack: an installer may write a module's .py just after its extension.
        if source.exists() and source.stat().st_mtime > extension.stat().st_mtime + 1.0:
            stale.append(".".join((package, *extension.parent.relative_to(root).parts, stem)))
    return stale
