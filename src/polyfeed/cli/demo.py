"""``polyfeed demo``: the built-in fake Polymarket, a MarketStream, and faults it survives.

The demo runs against ``polyfeed.testing.FakePolymarket`` on 127.0.0.1 only: it shows live
events, then a silent stall (data stops, PONGs continue), silently skipped price changes and a
dropped TCP connection being detected, reconnected, replayed, reported as gaps, and the local
books invalidated and resynced so that they end equal to the server's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter

import click
from rich.console import Console
from rich.table import Table

from polyfeed.aio.stream import MarketStream
from polyfeed.cli._format import describe_event, short_id
from polyfeed.cli._run import run_until_signal
from polyfeed.config import BackoffConfig, HeartbeatConfig, StreamConfig, WatchdogConfig
from polyfeed.errors import ConfigError
from polyfeed.testing import DropMessage, DropTcp, FakePolymarket, Fault, StallData


def demo_config() -> StreamConfig:
    """The ``hft`` profile with intervals scaled down so the demo shows recovery in seconds."""
    return dataclasses.replace(
        StreamConfig.from_profile("hft"),
        heartbeat=HeartbeatConfig(interval=0.5, pong_timeout=1.5),
        watchdog=WatchdogConfig(data_timeout=1.0, confirm_timeout=3.0),
        backoff=BackoffConfig(base=0.2, max_delay=2.0, jitter=0.1, stable_for=2.0),
    )


async def _inject(fake: FakePolymarket, fault: Fault) -> None:
    # A fault goes into the live socket; while the client is between sockets, wait for one.
    while True:
        try:
            fake.inject(fault)
        except ConfigError:
            await asyncio.sleep(0.05)
        else:
            return


async def _inject_faults(fake: FakePolymarket, console: Console, duration: float) -> None:
    await asyncio.sleep(duration * 0.25)
    console.print("[bold yellow]fault[/]: the server stalls data on the open socket (PONGs go on)")
    await _inject(fake, StallData())
    await asyncio.sleep(duration * 0.25)
    console.print("[bold yellow]fault[/]: the server silently skips three price changes")
    await _inject(fake, DropMessage(count=3))
    await asyncio.sleep(duration * 0.2)
    console.print("[bold yellow]fault[/]: the server drops the TCP connection (no close frame)")
    await _inject(fake, DropTcp())


def _books_table(stream: MarketStream, fake: FakePolymarket) -> Table:
    table = Table(title="local books vs the server", title_justify="left")
    columns = ("asset", "best bid", "best ask", "server bid/ask", "synced", "hash checks / bad")
    for column in columns:
        table.add_column(column)
    for asset in fake.asset_ids:
        book = stream.books[asset]
        server = fake.book(asset)
        counters = book.counters
        table.add_row(
            short_id(asset),
            str(book.best_bid),
            str(book.best_ask),
            f"{server.best_bid}/{server.best_ask}",
            "yes" if book.synced else "NO",
            f"{counters.hash_checks} / {counters.hash_mismatches}",
        )
    return table


async def _demo(duration: float, markets: int, rate: float) -> int:
    console = Console(highlight=False)
    counts: Counter[str] = Counter()
    async with FakePolymarket(markets=markets, rate=rate, seed=7, ping_grace=5.0) as fake:
        console.print(f"[bold]polyfeed demo[/]: fake Polymarket at {fake.market_url}")
        console.print(
            f"streaming {len(fake.asset_ids)} assets of {markets} markets for {duration:g}s"
        )
        stream = MarketStream(fake.asset_ids, endpoints=fake.endpoints, config=demo_config())
        started = time.monotonic()
        async with stream, asyncio.TaskGroup() as group:
            faults = group.create_task(_inject_faults(fake, console, duration))
            next_status = started + 1.0
            try:
                async with asyncio.timeout(duration):
                    async for event in stream:
                        now = time.monotonic()
                        line = describe_event(event)
                        if line is not None:
                            console.print(f"{now - started:6.2f}s  [cyan]{line}[/]")
                        else:
                            counts[type(event).__name__] += 1
                        if now >= next_status:
                            next_status = now + 1.0
                            summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                            console.print(f"{now - started:6.2f}s  events so far: {summary}")
            except TimeoutError:
                pass
            faults.cancel()
            health = stream.health()
            console.print(_books_table(stream, fake))
        metrics = stream.metrics
        console.print("[bold]done[/]")
        console.print(
            f"state {health.state}, uptime {100 * health.uptime_ratio:.1f}%, "
            f"reconnects {health.reconnects}, stale detections {dict(metrics.stale_by_kind)}, "
            f"events {metrics.events_received_total}, decode errors {metrics.decode_errors_total}"
        )
    return 0


@click.command()
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=8.0,
    show_default=True,
    help="Seconds to run.",
)
@click.option(
    "--markets",
    type=click.IntRange(min=1, max=500),
    default=3,
    show_default=True,
    help="Simulated markets (two tokens each).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="price_change messages per second per market.",
)
def demo(duration: float, markets: int, rate: float) -> None:
    """Stream from the built-in fake Polymarket while it stalls and drops the connection."""
    raise SystemExit(run_until_signal(_demo(duration, markets, rate)))
