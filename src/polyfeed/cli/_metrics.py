"""``--metrics-port`` / ``--metrics-host`` for the long-running commands."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import click

from polyfeed.aio.metrics_server import MetricsServer, Monitored

F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True, slots=True)
class MetricsAddress:
    """Where to serve ``/metrics`` and ``/health`` (port 0: a free one, printed at start)."""

    host: str
    port: int


class MetricsListenError(click.ClickException):
    """The metrics port could not be opened: one line, exit 1."""


def metrics_options(command: F) -> F:
    """Add ``--metrics-port`` and ``--metrics-host`` to a command."""
    command = click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Address for the metrics server (0.0.0.0 to serve a container probe).",
    )(command)
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=None,
        help="Serve Prometheus /metrics and JSON /health on this port (default: off; 0 picks "
        "a free port).",
    )(command)


def address(host: str, port: int | None) -> MetricsAddress | None:
    """The address from the two options, None when ``--metrics-port`` was not given."""
    return None if port is None else MetricsAddress(host, port)


def announcement(server: MetricsServer) -> str:
    """The stderr line that says where the metrics are (the real port when 0 was asked)."""
    return f"polyfeed: metrics on {server.url}/metrics, health on {server.url}/health\n"


@asynccontextmanager
async def serving_metrics(
    streams: Mapping[str, Monitored],
    where: MetricsAddress | None,
) -> AsyncIterator[MetricsServer | None]:
    """Serve the streams' metrics for the body's duration (nothing when ``where`` is None)."""
    if where is None:
        yield None
        return
    server = MetricsServer(streams, host=where.host, port=where.port)
    try:
        await server.start()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).rsplit(": ", 1)[-1]
        raise MetricsListenError(
            f"cannot serve metrics on {where.host}:{where.port}: {reason}"
        ) from None
    try:
        yield server
    finally:
        await server.aclose()
