"""``polyfeed record``: record a stream into a sink (SQLite by default) without silent loss.

SIGTERM and SIGINT stop gracefully: the stream closes, what it still queued is recorded, and every
buffered record is written before the command exits (status 0). ``kill -9`` loses at most the
last ``--batch-window`` seconds; the recording stays readable, and the next run on the same
target records the downtime as a gap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import click

from polyfeed.aio.stream import MarketStream, UserStream
from polyfeed.cli._metrics import (
    MetricsAddress,
    address,
    announcement,
    metrics_options,
    serving_metrics,
)
from polyfeed.cli.dashboard import Dashboard, showing
from polyfeed.cli.stream import _dashboard_for, build_config
from polyfeed.config import PROFILES, StreamConfig
from polyfeed.core.placement import parse_shard
from polyfeed.credentials import Credentials
from polyfeed.errors import ConfigError, PolyfeedError
from polyfeed.sinks.base import Recorder, Sink
from polyfeed.sinks.sqlite import SqliteSink

SINKS = ("sqlite", "parquet", "redis")


def make_sink(kind: str | None, target: str, *, redis_key: str = "channel") -> Sink:
    """The sink for ``--sink`` (None: from the target: ``redis://`` URL, else SQLite file).

    Parquet and Redis are imported here, on demand: they need their optional extras.
    """
    if kind is None:
        kind = "redis" if target.startswith(("redis://", "rediss://")) else "sqlite"
    if kind == "sqlite":
        return SqliteSink(Path(target))
    if kind == "parquet":
        try:
            from polyfeed.sinks.parquet import ParquetSink
        except ImportError as exc:
            raise ConfigError(f"--sink parquet needs polyfeed[parquet]: {exc}") from None
        return ParquetSink(Path(target))
    if kind == "redis":
        try:
            from polyfeed.sinks.redis import RedisSink
        except ImportError as exc:
            raise ConfigError(f"--sink redis needs polyfeed[redis]: {exc}") from None
        return RedisSink(target, key_by=redis_key)
    raise ConfigError(f"unknown sink {kind!r} (one of {', '.join(SINKS)})")


class _Tapped:
    """The stream as the recorder reads it, each event also counted by the dashboard."""

    def __init__(self, stream: MarketStream | UserStream, dashboard: Dashboard) -> None:
        self.stream = stream
        self.dashboard = dashboard

    async def __aiter__(self) -> AsyncIterator[object]:
        async for event in self.stream:
            self.dashboard.note(event)
            yield event

    async def aclose(self) -> None:
        await self.stream.aclose()


async def _record_main(
    stream: MarketStream | UserStream,
    sink: Sink,
    channel: str,
    ids: list[str],
    batch_window: float,
    max_buffer: int,
    metrics_at: MetricsAddress | None = None,
    dashboard: bool = False,
) -> int:
    loop = asyncio.get_running_loop()
    view = _dashboard_for(stream, channel) if dashboard else None
    recorder = Recorder(
        stream if view is None else _Tapped(stream, view),
        sink,
        channel=channel,
        ids=ids,
        batch_window=batch_window,
        max_buffer=max_buffer,
        batch_max=min(5_000, max_buffer),
    )
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, recorder.request_stop)
    try:
        async with serving_metrics({channel: stream}, metrics_at) as server, stream:
            if server is not None:
                click.echo(announcement(server), err=True, nl=False)
            async with showing(view):
                await recorder.run()
    except PolyfeedError as exc:
        click.echo(f"polyfeed: error: {exc}", err=True)
        return 1
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    metrics = recorder.metrics
    click.echo(
        f"polyfeed: recorded {metrics.records_written} events ({metrics.gaps_written} gaps) "
        f"with {sink!r}",
        err=True,
    )
    return 1 if metrics.records_lost else 0


@click.command()
@click.option(
    "--out",
    "target",
    required=True,
    help="SQLite file, Parquet folder or redis:// URL (required; no default).",
)
@click.option(
    "--sink",
    "sink_kind",
    type=click.Choice(SINKS),
    default=None,
    help="Where to record (default: redis for a redis:// URL, else sqlite).",
)
@click.option(
    "--batch-window",
    type=click.FloatRange(min=0.001),
    default=1.0,
    show_default=True,
    help="Seconds a batch collects before it is written (what kill -9 can lose).",
)
@click.option(
    "--max-buffer",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    help="Records held for a slow sink before the recorder stops taking events.",
)
@click.option(
    "--redis-key",
    type=click.Choice(["channel", "market"]),
    default="channel",
    show_default=True,
    help="Redis: one stream per channel, or one per market.",
)
@click.option(
    "--channel",
    type=click.Choice(["market", "user"]),
    default="market",
    show_default=True,
    help="Which CLOB channel to record.",
)
@click.option("--url", default=None, help="WebSocket URL (default: Polymarket's).")
@click.option("--rest-url", default=None, help="CLOB REST URL (default: Polymarket's).")
@click.option(
    "--profile",
    type=click.Choice(sorted(PROFILES)),
    default="dashboard",
    show_default=True,
    help="Freshness profile (data timeout and heartbeat).",
)
@click.option(
    "--data-timeout",
    type=float,
    default=None,
    help="Seconds without data = stale (default: profile's).",
)
@click.option(
    "--heartbeat", type=float, default=None, help="Seconds between text PINGs (default: profile's)."
)
@click.option(
    "--pong-timeout",
    type=float,
    default=None,
    help="Seconds without PONG = dead (default: profile's).",
)
@click.option(
    "--backoff-base", type=float, default=None, help="First backoff step, s (default: profile's)."
)
@click.option(
    "--backoff-max", type=float, default=None, help="Backoff cap, s (default: profile's)."
)
@click.option(
    "--queue-size",
    type=click.IntRange(min=1),
    default=None,
    help="Events the stream buffers for a slow sink before it drops, recorded as a gap "
    "(default: the configuration's queue size).",
)
@click.option(
    "--dashboard",
    "show_dashboard",
    is_flag=True,
    help="A live dashboard on stderr (state, events/s, reconnects, books) while recording.",
)
@click.option(
    "--shard",
    default=None,
    help="I/N: record only the asset ids whose stable hash falls in shard I of N (N recorders; "
    "default: every id).",
)
@click.option(
    "--max-per-connection",
    type=click.IntRange(min=1),
    default=None,
    help="Assets per WebSocket (default 200); more assets open more connections.",
)
@metrics_options
@click.argument("ids", nargs=-1)
def record(
    target: str,
    sink_kind: str | None,
    batch_window: float,
    max_buffer: int,
    redis_key: str,
    channel: str,
    url: str | None,
    rest_url: str | None,
    profile: str,
    data_timeout: float | None,
    heartbeat: float | None,
    pong_timeout: float | None,
    backoff_base: float | None,
    backoff_max: float | None,
    queue_size: int | None,
    ids: tuple[str, ...],
    show_dashboard: bool = False,
    shard: str | None = None,
    max_per_connection: int | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Record IDS (assets, or markets for --channel user) into --out; SIGTERM stops cleanly.

    ``--shard I/N`` records only shard I of the ids (N recorders split a universe exactly once);
    ``--max-per-connection`` spreads the assets over more WebSockets.
    """
    try:
        config: StreamConfig = build_config(
            profile, data_timeout, heartbeat, pong_timeout, backoff_base, backoff_max, queue_size
        )
        if channel == "market" and not ids:
            raise click.UsageError("give at least one asset id")
        if url is not None and not url.startswith(("ws://", "wss://")):
            raise click.UsageError(f"--url must be a ws:// or wss:// URL, got {url!r}")
        if channel != "market" and (shard is not None or max_per_connection is not None):
            raise click.UsageError("--shard and --max-per-connection apply to --channel market")
        if max_per_connection is not None:
            config = dataclasses.replace(config, max_assets_per_connection=max_per_connection)
        chosen = parse_shard(shard) if shard is not None else None
        # The session record names the ids this recorder carries: its shard's.
        recorded = list(ids) if chosen is None else chosen.select(ids)
        stream: MarketStream | UserStream
        if channel == "market":
            stream = MarketStream(recorded, url=url, rest_url=rest_url, config=config, shard=chosen)
        else:
            credentials = Credentials.from_env()
            stream = UserStream(list(ids) or None, credentials=credentials, url=url, config=config)
        sink = make_sink(sink_kind, target, redis_key=redis_key)
    except PolyfeedError as exc:
        raise click.UsageError(str(exc)) from None
    code = asyncio.run(
        _record_main(
            stream,
            sink,
            channel,
            recorded,
            batch_window,
            max_buffer,
            address(metrics_host, metrics_port),
            show_dashboard,
        )
    )
    sys.exit(code)
