"""``polyfeed status --url http://HOST:PORT``: a running command's ``/health`` as a table.

Exit status: 0 healthy (200), 1 unhealthy (503) or unreachable, with one line saying why.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import click
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

_ROWS = (
    ("state", "state"),
    ("connected", "connected"),
    ("last frame", "seconds_since_last_message"),
    ("uptime", "uptime_ratio"),
    ("reconnects", "reconnects"),
    ("confirmed", "confirmed"),
    ("queued", "queued_events"),
    ("dropped", "dropped_events"),
    ("backoff", "backoff_seconds"),
)


def _cell(key: str, health: dict[str, Any]) -> str:
    value = health.get(key)
    match key:
        case "connected":
            return "yes" if value else "NO"
        case "seconds_since_last_message":
            return "-" if value is None else f"{value:.1f}s ago"
        case "uptime_ratio":
            return "-" if value is None else f"{100 * value:.1f}%"
        case "confirmed":
            return f"{value}/{health.get('subscribed')}"
        case "backoff_seconds":
            return f"{value:.2f}s" if value else "-"
    return str(value)


def verdict(body: dict[str, Any]) -> str:
    """``healthy``, or ``UNHEALTHY:`` and the reasons, from the ``/health`` JSON."""
    if body.get("status") == "ok":
        return "healthy"
    return "UNHEALTHY: " + "; ".join(body.get("reasons", []))


def health_view(body: dict[str, Any]) -> Group:
    """The verdict line over a table with a column per stream.

    Streams are columns so that the table fits a narrow terminal (or a pipe's 80 columns).
    """
    streams: dict[str, dict[str, Any]] = body.get("streams", {})
    table = Table()
    table.add_column("")
    for name in streams:
        table.add_column(name)
    for header, key in _ROWS:
        table.add_row(header, *(_cell(key, health) for health in streams.values()))
    return Group(Text(verdict(body)), table)


def fetch_health(url: str, seconds: float) -> tuple[int, dict[str, Any]]:
    """GET ``<url>/health``: the status (a 503 is an answer, not an error) and the JSON body.

    The standard library's client: a one-shot command needs no event loop, and only the
    transport, REST and metrics-server modules touch aiohttp.
    """
    base = url.rstrip("/").removesuffix("/health")
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=seconds) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("the answer is not a JSON object")
    return status, body


@click.command()
@click.option(
    "--url",
    default="http://127.0.0.1:9464",
    show_default=True,
    help="The metrics server of a running polyfeed command (its --metrics-port).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds to wait for the answer.",
)
def status(url: str, timeout: float) -> None:
    """Print a running command's /health as a table; exit 1 when unhealthy or unreachable."""
    if not url.startswith(("http://", "https://")):
        raise click.UsageError(f"--url must be an http:// or https:// URL, got {url!r}")
    try:
        code, body = fetch_health(url, timeout)
    except (OSError, ValueError) as exc:
        # URLError (refused, DNS), a timeout, a body that is not JSON.
        reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        raise click.ClickException(f"cannot read {url}/health: {reason}") from None
    Console(highlight=False).print(health_view(body))
    raise SystemExit(0 if code == 200 else 1)
