"""The dependency rules of the architecture, checked on the source with ``ast``.

- The pure core (everything under ``core/``, whatever its files are called, and the modules it
  leans on: ``errors``, ``config``, ``events``, ``credentials``) imports only the
  standard library minus anything that does I/O, keeps time or draws randomness, ``msgspec``,
  ``mypy_extensions`` (the decorator that tells mypyc which compiled classes are open),
  and other pure polyfeed modules. So it can be tested with plain floats for ``now``.
- Only ``aio/rest.py``, ``aio/metrics_server.py`` and ``testing/`` import aiohttp / websockets;
  the client sockets (``aio/transport.py``) need neither.
- Only ``cli/`` imports click / rich.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "polyfeed"

# Purity is a folder rule: every module under core/ is checked, new ones included.
PURE_FOLDER = "core"
# What the pure core may import from polyfeed besides itself; checked as pure themselves.
PURE_SUPPORT = ("errors.py", "config.py", "events.py", "credentials.py")
PURE_POLYFEED = frozenset({PURE_FOLDER} | {name.removesuffix(".py") for name in PURE_SUPPORT})

# Standard-library modules that do I/O, read clocks, run concurrently or draw randomness:
# time and randomness are injected (`now` arguments, `rng` callables), never imported.
FORBIDDEN_STDLIB = frozenset(
    {
        "asyncio",
        "time",
        "socket",
        "threading",
        "selectors",
        "select",
        "ssl",
        "http",
        "urllib",
        "subprocess",
        "multiprocessing",
        "concurrent",
        "signal",
        "sched",
        "socketserver",
        "random",
        "importlib",
        "ftplib",
        "smtplib",
        "xmlrpc",
        "webbrowser",
    }
)
# mypy_extensions: only mypyc_attr, a no-op decorator read by the compiler (setup.py).
ALLOWED_THIRD_PARTY = frozenset({"msgspec", "mypy_extensions"})

WEBSOCKET_LIBRARIES = frozenset({"aiohttp", "websockets"})
CLI_LIBRARIES = frozenset({"click", "rich"})


def pure_files() -> list[Path]:
    """Every module the purity rule covers that exists in the tree."""
    files = sorted((SRC / PURE_FOLDER).rglob("*.py"))
    files += [SRC / name for name in PURE_SUPPORT if (SRC / name).exists()]
    return files


def module_name(path: Path) -> str:
    """``src/polyfeed/protocol/codec.py`` -> ``polyfeed.core.codec``."""
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(
    source: str, module: str, *, is_package: bool = False
) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import anywhere in ``source``, nested ones too.

    ``from polyfeed import name`` yields ``polyfeed.name``: the name is a submodule or something
    re-exported by the package ``__init__``, and the rule must tell which.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                assert node.module is not None
                target = node.module
            if target == "polyfeed":
                found += [(node.lineno, f"polyfeed.{alias.name}") for alias in node.names]
            elif target != "__future__":
                found.append((node.lineno, target))
    return found


def purity_violation(name: str) -> str | None:
    """Why importing ``name`` breaks the pure-core rule, or None when it is allowed."""
    parts = name.split(".")
    top = parts[0]
    if top == "polyfeed":
        if len(parts) == 1:
            return "the polyfeed package (its __init__ pulls in the I/O layers)"
        if parts[1] not in PURE_POLYFEED:
            return f"polyfeed.{parts[1]} is not pure"
        return None
    if top in ALLOWED_THIRD_PARTY:
        return None
    if top in FORBIDDEN_STDLIB:
        return f"{top} does I/O, keeps time, runs concurrently or draws randomness"
    if top in sys.stdlib_module_names:
        return None
    return f"third-party {top} is not allowed in the pure core"


def violations(path: Path) -> list[str]:
    """The forbidden imports of one pure module, as ``file:line: module (why)``."""
    source = path.read_text(encoding="utf-8")
    is_package = path.name == "__init__.py"
    out = []
    for line, name in imported_modules(source, module_name(path), is_package=is_package):
        why = purity_violation(name)
        if why is not None:
            out.append(f"{path.relative_to(SRC.parent)}:{line}: {name} ({why})")
    return out


def test_the_pure_core_is_where_the_rule_expects_it() -> None:
    names = {path.name for path in pure_files()}
    assert {"watchdog.py", "backoff.py", "subscriptions.py", "errors.py", "config.py"} <= names
    assert SRC / "core" / "messages.py" in pure_files()
    assert SRC / "core" / "session.py" in pure_files()
    assert module_name(SRC / "core" / "codec.py") == "polyfeed.core.codec"
    assert module_name(SRC / "core" / "__init__.py") == "polyfeed.core"


def test_nothing_under_aio_is_mistaken_for_the_core() -> None:
    assert not any((SRC / "aio") in path.parents for path in pure_files())


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_pure_module_imports_only_pure_things(path: Path) -> None:
    assert violations(path) == []


@pytest.mark.parametrize(
    ("source", "culprit"),
    [
        ("import asyncio", "asyncio"),
        ("import time as clock", "time"),
        ("from time import monotonic", "time"),
        ("import urllib.parse", "urllib.parse"),
        ("from random import random", "random"),
        ("import aiohttp", "aiohttp"),
        ("import numpy", "numpy"),
        ("import polyfeed", "polyfeed"),
        ("from polyfeed import MarketStream", "polyfeed.MarketStream"),
        ("from polyfeed import aio", "polyfeed.aio"),
        ("from polyfeed.aio import transport", "polyfeed.aio"),
        ("from polyfeed.aio.clock import LoopClock", "polyfeed.aio.clock"),
        ("from .. import aio", "polyfeed.aio"),
        ("from ..metrics import ConnectionMetrics", "polyfeed.metrics"),
        ("from ..aio.transport import connect", "polyfeed.aio.transport"),
        ("def f():\n    import socket", "socket"),
        ("if TYPE_CHECKING:\n    import websockets", "websockets"),
    ],
)
def test_the_checker_catches_a_forbidden_import(source: str, culprit: str) -> None:
    found = imported_modules(source, "polyfeed.core.fake")
    assert [name for _, name in found if purity_violation(name)] == [culprit]


def test_the_checker_allows_what_the_pure_core_needs() -> None:
    source = (
        "from __future__ import annotations\nimport json\nimport msgspec\n"
        "from collections.abc import Iterable\nfrom decimal import Decimal\n"
        "from polyfeed.errors import ConfigError\nfrom polyfeed.core import watchdog\n"
        "from polyfeed.core.messages import Book\nfrom . import frames\n"
        "from .codec import FrameDecoder\nfrom ..config import StreamConfig\n"
    )
    found = [name for _, name in imported_modules(source, "polyfeed.core.fake")]
    assert found == [
        "json",
        "msgspec",
        "collections.abc",
        "decimal",
        "polyfeed.errors",
        "polyfeed.core",
        "polyfeed.core.messages",
        "polyfeed.core",
        "polyfeed.core.codec",
        "polyfeed.config",
    ]
    assert [name for name in found if purity_violation(name)] == []
    package = imported_modules("from . import codec", "polyfeed.core", is_package=True)
    assert package == [(1, "polyfeed.core")]


def all_modules() -> list[Path]:
    """Every module of the package."""
    return sorted(SRC.rglob("*.py"))


def top_level_imports(path: Path) -> set[str]:
    """The top-level names of everything ``path`` imports."""
    source = path.read_text(encoding="utf-8")
    is_package = path.name == "__init__.py"
    return {
        name.split(".")[0]
        for _, name in imported_modules(source, module_name(path), is_package=is_package)
    }


def test_only_rest_the_metrics_server_and_testing_import_a_websocket_library() -> None:
    # REST and the /metrics and /health HTTP server are the aiohttp edges; the client
    # WebSockets are polyfeed's own (aio/transport.py over asyncio, core/websocket.py).
    allowed = {
        SRC / "aio" / "rest.py",
        SRC / "aio" / "metrics_server.py",
    }
    # The scan must see the legitimate imports, or it proves nothing.
    assert top_level_imports(SRC / "aio" / "rest.py") & WEBSOCKET_LIBRARIES
    assert not top_level_imports(SRC / "aio" / "transport.py") & WEBSOCKET_LIBRARIES
    offenders = [
        str(path.relative_to(SRC))
        for path in all_modules()
        if top_level_imports(path) & WEBSOCKET_LIBRARIES
        and path not in allowed
        and (SRC / "testing") not in path.parents
    ]
    assert offenders == []


def test_only_the_cli_imports_click_or_rich() -> None:
    assert any(top_level_imports(path) & CLI_LIBRARIES for path in (SRC / "cli").rglob("*.py"))
    offenders = [
        str(path.relative_to(SRC))
        for path in all_modules()
        if top_level_imports(path) & CLI_LIBRARIES and (SRC / "cli") not in path.parents
    ]
    assert offenders == []


@pytest.mark.parametrize("name", ["test_backoff.py", "test_watchdog.py", "test_subscriptions.py"])
def test_pure_module_tests_use_no_event_loop_and_no_clock(name: str) -> None:
    path = Path(__file__).with_name(name)
    imported = {
        n.split(".")[0] for _, n in imported_modules(path.read_text(encoding="utf-8"), "tests.x")
    }
    assert not imported & {"asyncio", "time", "threading"}
