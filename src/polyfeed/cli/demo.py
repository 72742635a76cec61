"""``polyfeed demo``: the built-in fake Polymarket runs a fault schedule; the client proves itself.

The demo runs against ``polyfeed.testing.FakePolymarket`` on 127.0.0.1 only. A few dozen
simulated markets stream through a ``MarketStream`` with the live dashboard while the server
injects, one at a time, each of Polymarket's known failures:

=================== ================================================================
stall               data stops on the open socket, PONGs go on (the silent stall)
server-close        the server closes the socket with 1011
subscription-loss   the server forgets the socket's subscriptions, PONGs go on
hiccup              the TCP connection is aborted, no close frame (1006)
hung-peer           the server stops answering anything (no PONG, nothing sent)
flapping            for a while every connection is dropped shortly after it opens
=================== ================================================================

It ends with a summary table: when each fault was injected, what detected it and how long
that took, how long until every book was back in sync; then the events lost without a reported
gap (checked against the server's ground-truth log: must be 0) and the books equal to the
server's. The exit status is 0 only when every fault was detected and recovered, nothing was
lost unreported and every book is in sync.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import click
from rich.console import Console
from rich.table import Table

from polyfeed.aio.stream import MarketStream
from polyfeed.cli._metrics import (
    MetricsAddress,
    address,
    announcement,
    metrics_options,
    serving_metrics,
)
from polyfeed.cli._run import run_until_signal
from polyfeed.cli.dashboard import Dashboard, showing
from polyfeed.config import BackoffConfig, HeartbeatConfig, StreamConfig, WatchdogConfig
from polyfeed.core.messages import PriceChange
from polyfeed.errors import ConfigError
from polyfeed.events import Connected, Disconnected, Gap, Stale
from polyfeed.testing import (
    CloseWith,
    DropTcp,
    FakePolymarket,
    Fault,
    ForgetSubscriptions,
    Hang,
    StallData,
)

WARMUP_SECONDS = 2.0
"""Streaming before the first fault: every book synced, the dashboard filled."""

TAIL_SECONDS = 2.0
"""After the last fault's slot: the final recovery, then the server's flow is stopped and
flushed so that the loss audit compares complete logs."""

MIN_SLOT_SECONDS = 3.5
"""A fault's slot must hold its detection (up to the 1.5 s PONG timeout) and the recovery."""

FLAP_SECONDS = 1.5
"""How long the flapping server drops every new connection."""

FLAP_AFTER = 0.3
"""Seconds a connection lives while the server flaps."""


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


async def _flap(fake: FakePolymarket) -> None:
    fake.faults.add_every(DropTcp(after=FLAP_AFTER))
    try:
        await _inject(fake, DropTcp())
        await asyncio.sleep(FLAP_SECONDS)
    finally:
        fake.faults.clear("market")


def _live(fault: Fault) -> Callable[[FakePolymarket], Awaitable[None]]:
    async def inject(fake: FakePolymarket) -> None:
        await _inject(fake, fault)

    return inject


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A fault of the schedule: its name, what the server does, and how to make it do it."""

    name: str
    description: str
    inject: Callable[[FakePolymarket], Awaitable[None]]


FAULTS: dict[str, FaultSpec] = {
    spec.name: spec
    for spec in (
        FaultSpec("stall", "data stops, PONGs go on", _live(StallData())),
        FaultSpec("server-close", "close frame 1011", _live(CloseWith(code=1011))),
        FaultSpec("subscription-loss", "subscriptions forgotten", _live(ForgetSubscriptions())),
        FaultSpec("hiccup", "TCP aborted, no close frame", _live(DropTcp())),
        FaultSpec("hung-peer", "server answers nothing", _live(Hang())),
        FaultSpec("flapping", f"every connection dropped for {FLAP_SECONDS:g}s", _flap),
    )
}


@dataclass(slots=True)
class FaultRun:
    """One fault's timeline, seconds since the demo started."""

    name: str
    description: str
    injected_at: float
    ended_at: float | None = None
    detected_at: float | None = None
    detected_by: str = ""
    reconnected_at: float | None = None
    recovered_at: float | None = None

    @property
    def detection(self) -> float | None:
        """Seconds from injection to the first sign the client saw (stale or disconnect)."""
        return None if self.detected_at is None else self.detected_at - self.injected_at

    @property
    def recovery(self) -> float | None:
        """Seconds from detection until every book was synced again on a clean connection."""
        if self.recovered_at is None or self.detected_at is None:
            return None
        return self.recovered_at - self.detected_at


@dataclass
class FaultTracker:
    """Turns the stream's events into each fault's detection and recovery times.

    A fault is detected by the first ``Stale`` or ``Disconnected`` after its injection. It is
    recovered once its injection has ended (a flapping server stops flapping), a connection
    opened after both the detection and that end, and every book is synced again.
    """

    all_synced: Callable[[], bool]
    runs: list[FaultRun] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<FaultTracker runs={[run.name for run in self.runs]}>"

    @property
    def current(self) -> FaultRun | None:
        """The fault being injected or recovered from, None between faults."""
        if self.runs and self.runs[-1].recovered_at is None:
            return self.runs[-1]
        return None

    def injected(self, spec: FaultSpec, now: float) -> FaultRun:
        """A fault's injection started at ``now``."""
        run = FaultRun(spec.name, spec.description, injected_at=now)
        self.runs.append(run)
        return run

    def ended(self, run: FaultRun, now: float) -> None:
        """The server stopped injecting ``run``'s fault (at once for all but flapping)."""
        run.ended_at = now
        self.check(now)

    def note(self, event: object, now: float) -> None:
        """Take a stream event seen at ``now``."""
        run = self.current
        if run is None:
            return
        if run.detected_at is None:
            match event:
                case Stale(kind=kind):
                    run.detected_at, run.detected_by = now, f"stale {kind}"
                case Disconnected(code=None):
                    run.detected_at, run.detected_by = now, "disconnect, no close frame"
                case Disconnected(code=code):
                    run.detected_at, run.detected_by = now, f"close frame {code}"
            return
        if isinstance(event, Connected) and run.ended_at is not None:
            run.reconnected_at = now
        self.check(now)

    def check(self, now: float) -> None:
        """Mark the current fault recovered if every book is synced on a clean connection."""
        run = self.current
        if run is None or run.detected_at is None or run.ended_at is None:
            return
        if run.reconnected_at is None or run.reconnected_at < max(run.ended_at, run.detected_at):
            return
        if self.all_synced():
            run.recovered_at = now


@dataclass
class LossAudit:
    """What the consumer received and the gaps it was told about, for the ground-truth check."""

    received: set[tuple[str, int]] = field(default_factory=set)
    gaps: list[Gap] = field(default_factory=list)
    first_snapshot_ms: int | None = None

    def __repr__(self) -> str:
        return f"<LossAudit received={len(self.received)} gaps={len(self.gaps)}>"

    def note(self, event: object) -> None:
        """Remember a price change (by market and timestamp) or a gap."""
        match event:
            case PriceChange(market=market, timestamp=timestamp):
                self.received.add((market, int(timestamp)))
            case Gap():
                self.gaps.append(event)

    def unexplained(self, fake: FakePolymarket) -> int:
        """Price changes the server sent after our first snapshot that we neither received
        nor were told we may have missed (a gap over their time and asset)."""
        lost = 0
        for logged in fake.log.events:
            if logged.origin != "market" or logged.event_type != "price_change":
                continue
            stamp = int(logged.timestamp)
            if self.first_snapshot_ms is not None and stamp <= self.first_snapshot_ms:
                continue
            if (logged.market, stamp) in self.received:
                continue
            seconds = stamp / 1000.0
            assets = set(logged.asset_ids)
            if any(
                gap.started - 0.005 <= seconds <= gap.ended + 0.005 and assets & set(gap.assets)
                for gap in self.gaps
            ):
                continue
            lost += 1
        return lost


def books_in_sync(stream: MarketStream, fake: FakePolymarket) -> list[str]:
    """The assets whose local book is synced and level for level equal to the server's."""
    equal = []
    for asset in fake.asset_ids:
        book = stream.books[asset]
        server = fake.book(asset)
        if not book.synced:
            continue
        local_bids = {level.price: level.size for level in book.levels("bids")}
        local_asks = {level.price: level.size for level in book.levels("asks")}
        if local_bids == dict(server.bids) and local_asks == dict(server.asks):
            equal.append(asset)
    return equal


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def summary_table(runs: Sequence[FaultRun]) -> Table:
    """One row per fault: when, what detected it, detection and recovery times, the verdict."""
    table = Table(title="faults", title_justify="left")
    for column in ("fault", "injected", "detected by"):
        table.add_column(column)
    for column in ("detection", "recovery", "result"):
        table.add_column(column, justify="right")
    for run in runs:
        ok = run.recovered_at is not None
        table.add_row(
            run.name,
            f"{run.injected_at:.1f}s",
            run.detected_by or "NOT DETECTED",
            _seconds(run.detection),
            _seconds(run.recovery),
            "[green]recovered[/]" if ok else "[bold red]NOT RECOVERED[/]",
        )
    return table


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the command line asked for."""

    duration: float
    markets: int
    rate: float
    faults: tuple[str, ...]
    metrics: MetricsAddress | None = None


async def _schedule(
    fake: FakePolymarket,
    tracker: FaultTracker,
    console: Console,
    options: DemoOptions,
    started: float,
) -> None:
    slot = (options.duration - WARMUP_SECONDS - TAIL_SECONDS) / max(1, len(options.faults))
    for index, name in enumerate(options.faults):
        spec = FAULTS[name]
        due = started + WARMUP_SECONDS + index * slot
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        run = tracker.injected(spec, time.monotonic() - started)
        console.print(
            f"[bold yellow]{run.injected_at:6.2f}s  fault[/]: {name} ({spec.description})"
        )
        await spec.inject(fake)
        tracker.ended(run, time.monotonic() - started)


async def _demo(options: DemoOptions) -> int:
    console = Console(highlight=False)
    async with FakePolymarket(
        markets=options.markets, rate=options.rate, seed=7, ping_grace=5.0
    ) as fake:
        assets = list(fake.asset_ids)
        console.print(f"[bold]polyfeed demo[/]: fake Polymarket at {fake.market_url}")
        console.print(
            f"streaming {len(assets)} assets of {options.markets} markets for "
            f"{options.duration:g}s; faults: {', '.join(options.faults) or 'none'}"
        )
        stream = MarketStream(assets, endpoints=fake.endpoints, config=demo_config())
        tracker = FaultTracker(all_synced=lambda: all(stream.books[a].synced for a in assets))
        audit = LossAudit()
        dashboard = Dashboard(
            {"market": stream}, books=stream.books, book_ids=assets[:6], title="polyfeed demo"
        )
        started = time.monotonic()
        stop = asyncio.Event()

        async def consume() -> None:
            async for event in stream:
                now = time.monotonic() - started
                dashboard.note(event)
                audit.note(event)
                if audit.first_snapshot_ms is None and type(event).__name__ == "Book":
                    audit.first_snapshot_ms = int(getattr(event, "timestamp", 0))
                tracker.note(event, now)
                if stop.is_set():
                    return

        async def run_schedule() -> None:
            await _schedule(fake, tracker, console, options, started)
            # The tail: the last recovery, then a quiet server whose queues are flushed.
            deadline = started + options.duration - 0.5
            while tracker.current is not None and time.monotonic() < deadline:
                tracker.check(time.monotonic() - started)
                await asyncio.sleep(0.05)
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            fake.rate = 0.0
            for connection in fake.open_connections("market"):
                await connection.flush()
            await asyncio.sleep(0.3)
            stop.set()

        async with serving_metrics({"market": stream}, options.metrics) as server, stream:
            if server is not None:
                console.print(announcement(server).rstrip())
            async with showing(dashboard, console), asyncio.TaskGroup() as group:
                consumer = group.create_task(consume())
                scheduler = group.create_task(run_schedule())
                await scheduler
                # The consumer returns at its next event; a quiet server may send none.
                consumer.cancel()
            lost = audit.unexplained(fake)
            synced = books_in_sync(stream, fake)
            metrics = stream.metrics
        console.print(summary_table(tracker.runs))
        recovered = sum(run.recovered_at is not None for run in tracker.runs)
        console.print(
            f"faults recovered: {recovered}/{len(tracker.runs)}; events lost without a "
            f"reported gap: {lost} (server's ground truth: {len(fake.log)} messages); books "
            f"in sync with the server: {len(synced)}/{len(assets)}; gaps reported: "
            f"{len(audit.gaps)}; reconnects: {sum(metrics.reconnects_by_reason.values())}"
        )
    passed = recovered == len(tracker.runs) and lost == 0 and len(synced) == len(assets)
    if passed:
        console.print("[bold green]PASS[/]: every fault detected and recovered, nothing lost")
        return 0
    console.print("[bold red]FAIL[/]: see the table above")
    return 1


def _parse_faults(value: str) -> tuple[str, ...]:
    if value.strip() in ("", "none"):
        return ()
    if value.strip() == "all":
        return tuple(FAULTS)
    names = tuple(name.strip() for name in value.split(","))
    unknown = [name for name in names if name not in FAULTS]
    if unknown:
        raise click.BadParameter(
            f"unknown fault {unknown[0]!r}; choose from {', '.join(FAULTS)}, all or none",
            param_hint="--faults",
        )
    return names


@click.command()
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help=f"Seconds to run: {WARMUP_SECONDS:g} s warm-up, a {MIN_SLOT_SECONDS:g} s+ slot per "
    f"fault, {TAIL_SECONDS:g} s tail.",
)
@click.option(
    "--markets",
    type=click.IntRange(min=1, max=500),
    default=24,
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
@click.option(
    "--faults",
    "fault_names",
    default="all",
    show_default=True,
    help=f"Comma-separated faults in order, 'all' or 'none': {', '.join(FAULTS)}.",
)
@metrics_options
def demo(
    duration: float,
    markets: int,
    rate: float,
    fault_names: str,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Stream from the built-in fake Polymarket through a fault schedule; summarize recovery."""
    faults = _parse_faults(fault_names)
    needed = WARMUP_SECONDS + TAIL_SECONDS + MIN_SLOT_SECONDS * len(faults)
    if duration < needed:
        raise click.BadParameter(
            f"{duration:g}s is too short for {len(faults)} fault(s): give at least {needed:g}s",
            param_hint="--duration",
        )
    options = DemoOptions(duration, markets, rate, faults, address(metrics_host, metrics_port))
    # The faults are the point of the demo: their WARNING lines would read as alarms, and the
    # dashboard and the summary say the same. -v brings them back.
    library = logging.getLogger("polyfeed")
    previous = library.level
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        library.setLevel(logging.ERROR)
    try:
        code = run_until_signal(_demo(options))
    finally:
        library.setLevel(previous)
    raise SystemExit(code)
