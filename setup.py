"""Build: the per-message path compiled to C extensions with mypyc, or pure Python.

The compiled modules are the same source as the pure ones (mypyc compiles the type-checked
Python; there is no second copy of any logic): the books (``polyfeed/core/book``), their hash,
the WebSocket framing and the streams' event queue, which carry the per-message work (numbers in
benchmarks/README.md). The rest stays interpreted: modules that define msgspec Structs (a
compiled class body does not pass on their class keywords), and the rest, where nothing is hot.

Pure Python is used when ``POLYFEED_PURE_PYTHON=1`` is set at install time, when mypyc is not
importable or fails, or when the C build fails (no compiler, no Python headers): the package then
works unchanged, only slower. ``polyfeed.native.build_name()`` says which build is installed. The
whole test suite runs on both: ``make test`` on the compiled build, which it insists on
(tests/conftest.py, so a silent fallback cannot pass CI), ``make test-floor`` on the pure one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
CORE = HERE / "src" / "polyfeed" / "core"
# Modules that define msgspec Structs stay interpreted (tests/test_setup.py checks).
INTERPRETED = {"__init__.py", "verdict.py"}
COMPILED = [
    *sorted(path for path in (CORE / "book").glob("*.py") if path.name not in INTERPRETED),
    CORE / "book_hash.py",
    CORE / "websocket.py",
    # Not the sans-I/O core, but every event crosses it twice (put_many, get).
    CORE.parent / "aio" / "event_queue.py",
]


def compiled_sources() -> list[str]:
    """The paths of the modules mypyc compiles, relative to the project root."""
    return [str(path.relative_to(HERE)) for path in COMPILED]


class OptionalBuildExt(build_ext):
    """Builds the extensions, or none of them: a failed C build leaves the pure-Python package.

    All or nothing, since the modules share one runtime library: a half-built set would not
    import.
    """

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # a compiler or linker failure, whatever its class
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            print(
                f"polyfeed: the C build failed ({error}); installing pure Python",
                file=sys.stderr,
            )


def extensions() -> list[Any]:
    if os.environ.get("POLYFEED_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("polyfeed: mypyc is not installed; installing pure Python", file=sys.stderr)
        return []
    os.chdir(HERE)  # mypyc names the modules from paths relative to the working directory
    try:
        return list(mypycify(compiled_sources(), opt_level="3", group_name="polyfeed_native"))
    except (Exception, SystemExit) as error:  # mypyc reports its own failures with sys.exit()
        print(f"polyfeed: mypyc failed ({error}); installing pure Python", file=sys.stderr)
        return []


# setuptools' build backend runs this file as __main__; tests import it for its lists.
if __name__ == "__main__":
    setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
