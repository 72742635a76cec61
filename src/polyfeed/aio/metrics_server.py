"""``/metrics`` (Prometheus text) and ``/health`` (JSON) over HTTP for running streams.

One server serves any number of named streams. ``/metrics`` merges their exposition into one
document, each sample labelled ``stream="<name>"`` (a family's ``# TYPE`` line appears once).
``/health`` answers 200 when every stream is fresh and 503 otherwise, with the reasons: a
container liveness or readiness probe can use it as it is.

Fresh means: no fatal error, the connection is open, and the last frame (data or PONG) is no
older than the stream's ``watchdog.data_timeout`` (or ``max_silence`` when given). A stall the
watchdog has not yet declared stays "fresh" until it does; from then until the reconnect has
delivered a frame the stream is in ``backoff``/``connecting`` and ``/health`` says 503.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import msgspec
from aiohttp import web

from polyfeed.aio.stream import Health
from polyfeed.config import StreamConfig
from polyfeed.metrics import ConnectionMetrics

logger = logging.getLogger("polyfeed.metrics")

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Monitored(Protocol):
    """What the server reads of a stream (every polyfeed stream is one)."""

    @property
    def config(self) -> StreamConfig:
        """The stream's configuration (its data timeout bounds "fresh")."""
        ...

    @property
    def metrics(self) -> ConnectionMetrics:
        """The stream's metrics."""
        ...

    def health(self) -> Health:
        """State, freshness and counters right now."""
        ...


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The ``/health`` answer: ``healthy`` and why not, and each stream's health."""

    healthy: bool
    reasons: list[str]
    streams: dict[str, Health]

    @property
    def status(self) -> int:
        """The HTTP status: 200 healthy, 503 not."""
        return 200 if self.healthy else 503

    def to_json(self) -> bytes:
        """The JSON body: ``status`` (``ok``/``unhealthy``), ``reasons``, ``streams``."""
        body = {
            "status": "ok" if self.healthy else "unhealthy",
            "reasons": self.reasons,
            "streams": {name: msgspec.to_builtins(h) for name, h in self.streams.items()},
        }
        return msgspec.json.encode(body)


def stream_problem(name: str, stream: Monitored, max_silence: float | None = None) -> str | None:
    """Why ``stream`` is not fresh right now, or None when it is."""
    health = stream.health()
    if health.error is not None:
        return f"{name}: failed: {health.error}"
    if health.state != "open" or not health.connected:
        last = stream.metrics.last_reconnect_reason
        after = f" after {last}" if last else ""
        return f"{name}: {health.state}{after}"
    silent = health.seconds_since_last_message
    limit = max_silence if max_silence is not None else stream.config.watchdog.data_timeout
    if silent is None:
        return f"{name}: open, no frame received yet"
    if silent > limit:
        return f"{name}: silent for {silent:.1f}s (limit {limit:g}s)"
    return None


def health_report(
    streams: Mapping[str, Monitored], max_silence: float | None = None
) -> HealthReport:
    """The health of every stream; healthy only when each is fresh (and there is at least one)."""
    reasons = [
        problem
        for name, stream in streams.items()
        if (problem := stream_problem(name, stream, max_silence)) is not None
    ]
    if not streams:
        reasons.append("no streams")
    return HealthReport(
        healthy=not reasons,
        reasons=reasons,
        streams={name: stream.health() for name, stream in streams.items()},
    )


def _labelled(sample: str, name: str) -> str:
    metric, _, value = sample.rpartition(" ")
    label = f'stream="{name}"'
    if metric.endswith("}"):
        return f"{metric[:-1]},{label}}} {value}"
    return f"{metric}{{{label}}} {value}"


def render_prometheus(streams: Mapping[str, Monitored]) -> str:
    """All streams' metrics in one exposition document, labelled by stream name."""
    kinds: dict[str, str] = {}
    samples: dict[str, list[str]] = {}
    for name, stream in streams.items():
        family = ""
        for line in stream.metrics.render_prometheus().splitlines():
            if line.startswith("# TYPE "):
                _, _, family, kind = line.split(" ")
                kinds.setdefault(family, kind)
                samples.setdefault(family, [])
            elif line:
                samples[family].append(_labelled(line, name))
    lines: list[str] = []
    for family, kind in kinds.items():
        lines.append(f"# TYPE {family} {kind}")
        lines.extend(samples[family])
    return "\n".join(lines) + "\n"


class MetricsServer:
    """An HTTP server for ``/metrics`` and ``/health``, owned by ``async with``.

    ``port=0`` picks a free port; ``url`` tells which once started.
    """

    def __init__(
        self,
        streams: Mapping[str, Monitored],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_silence: float | None = None,
    ) -> None:
        self.streams = streams
        self.host = host
        self.port = port
        self.max_silence = max_silence
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        state = "serving" if self._runner is not None else "stopped"
        return f"<MetricsServer {state} {self.host}:{self.port} streams={list(self.streams)}>"

    @property
    def url(self) -> str:
        """``http://host:port`` (the real port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=render_prometheus(self.streams).encode(),
            headers={"Content-Type": PROMETHEUS_CONTENT_TYPE},
        )

    async def _health(self, request: web.Request) -> web.Response:
        report = health_report(self.streams, self.max_silence)
        return web.Response(
            body=report.to_json(), status=report.status, content_type="application/json"
        )

    async def start(self) -> None:
        """Listen (raises OSError for a busy port or an address not on this machine)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address: Any = runner.addresses[0]
        self.port = int(address[1])
        logger.info("metrics on %s/metrics, health on %s/health", self.url, self.url)

    async def aclose(self) -> None:
        """Stop listening (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
