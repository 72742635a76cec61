"""``polyfeed book``: a live order-book ladder of one asset, from the stream's verified book.

The ladder shows what ``MarketStream.books[asset]`` holds: the local book kept from ``book``
snapshots and ``price_change`` deltas, checked against the server's top of book and book hash,
resynced on doubt. The header says whether that book can be trusted right now (synced, in doubt,
unsynced) and how many checks backed it; the status line under the ladder shows the latest
lifecycle event (stale link, disconnect, gap, invalidation, resync).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal

import click
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from polyfeed.aio.stream import Health, MarketStream
from polyfeed.cli._format import describe_event, short_id
from polyfeed.cli._metrics import (
    MetricsAddress,
    address,
    announcement,
    metrics_options,
    serving_metrics,
)
from polyfeed.cli._run import run_until_signal
from polyfeed.config import PROFILES, StreamConfig
from polyfeed.core.book import OrderBook
from polyfeed.core.messages import Level
from polyfeed.errors import PolyfeedError

__all__ = ["BookView", "book", "describe_event", "render_book", "sync_state"]

MIN_REFRESH_INTERVAL = 0.25
"""Seconds between two repaints at most 4 per second: a busy book changes far faster than
anyone can read, and repainting a terminal is not free."""

IDLE_REFRESH_INTERVAL = 1.0
"""Repaint at least this often on a quiet market, so the "last message" age keeps moving."""


def _num(value: Decimal | None) -> str:
    # "f": never scientific notation (Decimal("1E+1") would print as 1E+1).
    return "-" if value is None else format(value, "f")


def sync_state(book: OrderBook) -> str:
    """``SYNCED``, ``UNSYNCED`` (``, resync in flight``) or ``IN DOUBT: <reason>``."""
    if not book.synced:
        return "UNSYNCED, resync in flight" if book.resync_in_flight else "UNSYNCED"
    doubt = book.in_doubt
    if doubt is not None:
        return f"IN DOUBT: {doubt}"
    return "SYNCED"


def _header(book: OrderBook) -> Text:
    line = Text()
    line.append(short_id(book.asset_id), style="bold")
    line.append(f"  bid {_num(book.best_bid)}", style="green")
    line.append(f"  ask {_num(book.best_ask)}", style="red")
    line.append(f"  spread {_num(book.spread)}  mid {_num(book.midpoint)}")
    line.append(f"  last {book.last_trade_price or '-'}")
    return line


def _integrity(book: OrderBook) -> tuple[Text, Text]:
    state = sync_state(book)
    style = "bold green" if state == "SYNCED" else "bold yellow" if book.synced else "bold red"
    c = book.counters
    scheme = book.hash_scheme.name + ("" if book.scheme_detected else " (undetected)")
    first = Text()
    first.append(state, style=style)
    first.append(f"  scheme {scheme}  invalidations {c.invalidations}, resyncs {c.resyncs}")
    second = Text()
    second.append(f"hash checks {c.hash_checks}, mismatches ")
    second.append(str(c.hash_mismatches), style="bold red" if c.hash_mismatches else "")
    second.append(f", skipped {c.hash_skipped}  top checks {c.top_checks}, mismatches ")
    second.append(str(c.top_mismatches), style="bold red" if c.top_mismatches else "")
    return first, second


def _health(health: Health | None) -> Text:
    if health is None:
        return Text("stream: not started", style="dim")
    age = health.seconds_since_last_message
    last = "no message yet" if age is None else f"last message {age:.1f}s ago"
    link = "connected" if health.connected else "NOT CONNECTED"
    line = Text()
    line.append(f"stream {health.state}, ")
    line.append(link, style="green" if health.connected else "bold red")
    line.append(f", reconnects {health.reconnects}, {last}")
    if health.error:
        line.append(f", error: {health.error}", style="bold red")
    return line


def _cumulative(levels: Iterable[Level]) -> list[tuple[Level, Decimal]]:
    total = Decimal(0)
    out = []
    for level in levels:
        total += Decimal(level.size)
        out.append((level, total))
    return out


def _ladder(book: OrderBook, depth: int) -> Table:
    table = Table(box=box.HORIZONTALS, show_edge=False, pad_edge=False)
    table.add_column("side")
    table.add_column("price", justify="right")
    table.add_column("size", justify="right")
    table.add_column("cum. size", justify="right")
    # Cumulative sizes run outward from the best level on each side; asks are printed farthest
    # first so that the best ask sits just above the best bid.
    asks = _cumulative(book.top_n("asks", depth))
    bids = _cumulative(book.top_n("bids", depth))
    if not asks:
        table.add_row("ask", "(none)", "", "", style="dim", end_section=True)
    for index, (level, total) in enumerate(reversed(asks)):
        table.add_row(
            "ask",
            level.price,
            level.size,
            format(total, "f"),
            style="red",
            end_section=index == len(asks) - 1,
        )
    for level, total in bids:
        table.add_row("bid", level.price, level.size, format(total, "f"), style="green")
    if not bids:
        table.add_row("bid", "(none)", "", "", style="dim")
    return table


def render_book(
    book: OrderBook, health: Health | None, *, depth: int = 10, status: str | None = None
) -> RenderableType:
    """The ladder of ``book``: header, integrity, stream health, ``depth`` levels a side, status.

    Pure: reads the book and the health snapshot, renders nothing itself.
    """
    parts: list[RenderableType] = [
        _header(book),
        *_integrity(book),
        _health(health),
        _ladder(book, depth),
    ]
    if status:
        parts.append(Text(status, style="yellow"))
    return Group(*parts)


@dataclass
class BookView:
    """What the live ladder shows: the stream, its asset, the latest status line, a dirty flag."""

    stream: MarketStream
    asset_id: str
    depth: int
    status: str | None = None
    status_at: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, event: object) -> None:
        """Take an event from the stream: lifecycle events become the status line."""
        line = describe_event(event)
        if line is not None:
            self.status = line
            self.status_at = self.stream.clock.now()
        self.changed.set()

    def render(self) -> RenderableType:
        """The current ladder (the stream's book and health right now)."""
        status = self.status
        if status is not None and self.status_at is not None:
            status = f"{status}  ({self.stream.clock.now() - self.status_at:.0f}s ago)"
        return render_book(
            self.stream.books[self.asset_id],
            self.stream.health(),
            depth=self.depth,
            status=status,
        )

    def __repr__(self) -> str:
        return (
            f"BookView({short_id(self.asset_id)} depth={self.depth} status={self.status!r} "
            f"changed={self.changed.is_set()})"
        )


async def _consume(stream: MarketStream, view: BookView) -> PolyfeedError | None:
    """Drain the stream (the books are applied on its reader side); a fatal error is returned."""
    try:
        async for event in stream:
            view.note(event)
    except PolyfeedError as exc:
        return exc
    return None


async def _paint(live: Live, view: BookView) -> None:
    while True:
        view.changed.clear()
        live.refresh()
        await asyncio.sleep(MIN_REFRESH_INTERVAL)
        with suppress(TimeoutError):
            async with asyncio.timeout(IDLE_REFRESH_INTERVAL - MIN_REFRESH_INTERVAL):
                await view.changed.wait()


async def _live(view: BookView, console: Console, duration: float | None) -> PolyfeedError | None:
    error: PolyfeedError | None = None
    with Live(get_renderable=view.render, console=console, auto_refresh=False) as live:
        try:
            async with asyncio.timeout(duration), asyncio.TaskGroup() as group:
                painter = group.create_task(_paint(live, view), name="polyfeed-book-paint")
                error = await _consume(view.stream, view)
                painter.cancel()
        except TimeoutError:
            pass
    if not console.is_terminal:
        # Rich ends the final rendering with a newline only on a terminal.
        console.line()
    return error


def top_line(book: OrderBook, now: float) -> str:
    """One plain line for a pipe or a log file: time, best bid/ask and sync state."""
    return f"{now:.3f} bid {_num(book.best_bid)} ask {_num(book.best_ask)} {sync_state(book)}"


async def _plain(view: BookView, duration: float | None) -> PolyfeedError | None:
    # Not a terminal: a repainted ladder would only appear at exit, so print lines as they come
    # (lifecycle events at once, the top of book when it changed, at most once per second).
    book = view.stream.books[view.asset_id]
    last: tuple[object, object, str] | None = None
    error: PolyfeedError | None = None

    async def consume() -> None:
        async for event in view.stream:
            line = describe_event(event)
            if line is not None:
                print(f"polyfeed: {line}", flush=True)

    async def sample() -> None:
        nonlocal last
        while True:
            current = (book.best_bid, book.best_ask, sync_state(book))
            if current != last:
                last = current
                print(top_line(book, view.stream.clock.wall()), flush=True)
            await asyncio.sleep(IDLE_REFRESH_INTERVAL)

    try:
        async with asyncio.timeout(duration), asyncio.TaskGroup() as group:
            sampler = group.create_task(sample(), name="polyfeed-book-sample")
            try:
                await consume()
            except PolyfeedError as exc:
                error = exc
            sampler.cancel()
    except TimeoutError:
        pass
    return error


async def _wait_synced(view: BookView, patience: float) -> PolyfeedError | None:
    book = view.stream.books[view.asset_id]
    stream = view.stream
    async with asyncio.timeout(patience):
        while not book.synced:
            try:
                # A snapshot (socket or REST) is followed by an event in the stream, so a
                # synced book is always noticed right after the event that synced it.
                view.note(await anext(stream))
            except StopAsyncIteration:
                return None
            except PolyfeedError as exc:
                return exc
    return None


async def _book_main(
    asset_id: str,
    url: str | None,
    rest_url: str | None,
    config: StreamConfig,
    depth: int,
    duration: float | None,
    once: bool,
    patience: float,
    metrics: MetricsAddress | None = None,
) -> int:
    console = Console(highlight=False)
    stream = MarketStream([asset_id], url=url, rest_url=rest_url, config=config)
    view = BookView(stream, asset_id, depth)
    try:
        async with serving_metrics({"market": stream}, metrics) as server, stream:
            if server is not None:
                print(announcement(server), end="", file=sys.stderr, flush=True)
            if once:
                try:
                    error = await _wait_synced(view, patience)
                except TimeoutError:
                    error = None
                if error is None and not stream.books[asset_id].synced:
                    print(
                        f"polyfeed: error: book of {asset_id} not synced within {patience:g}s",
                        file=sys.stderr,
                    )
                    return 1
                if error is None:
                    console.print(view.render())
            elif console.is_terminal:
                error = await _live(view, console, duration)
            else:
                try:
                    error = await _plain(view, duration)
                finally:
                    # The final ladder, as on a terminal (also when a signal stops the run).
                    console.print(view.render())
    except PolyfeedError as exc:
        error = exc
    if error is not None:
        print(f"polyfeed: error: {error}", file=sys.stderr)
        return 1
    return 0


@click.command()
@click.argument("asset")
@click.option("--url", default=None, help="WebSocket URL (default: Polymarket's market channel).")
@click.option("--rest-url", default=None, help="CLOB REST URL for resyncs (default: Polymarket's).")
@click.option(
    "--profile",
    type=click.Choice(sorted(PROFILES)),
    default="dashboard",
    show_default=True,
    help="Timing preset (heartbeat, watchdog, backoff).",
)
@click.option(
    "--depth", type=click.IntRange(1, 200), default=10, show_default=True, help="Levels a side."
)
@click.option(
    "--duration",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: until Ctrl-C).",
)
@click.option("--once", is_flag=True, help="Wait for a synced book, print it once and exit.")
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=10.0,
    show_default=True,
    help="With --once: seconds to wait for a synced book.",
)
@metrics_options
def book(
    asset: str,
    url: str | None,
    rest_url: str | None,
    profile: str,
    depth: int,
    duration: float | None,
    once: bool,
    timeout: float,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Show the live order book of ASSET (a token id), verified against the server's hashes."""
    if url is not None and not url.startswith(("ws://", "wss://")):
        raise click.UsageError(f"--url must be a ws:// or wss:// URL, got {url!r}")
    if rest_url is not None and not rest_url.startswith(("http://", "https://")):
        raise click.UsageError(f"--rest-url must be an http:// or https:// URL, got {rest_url!r}")
    try:
        config = StreamConfig.from_profile(profile)
    except PolyfeedError as exc:
        raise click.UsageError(str(exc)) from None
    code = run_until_signal(
        _book_main(
            asset,
            url,
            rest_url,
            config,
            depth,
            duration,
            once,
            timeout,
            address(metrics_host, metrics_port),
        )
    )
    sys.exit(code)
