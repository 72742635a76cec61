"""A live terminal dashboard of running streams (rich, on stderr, a fixed refresh rate).

``Dashboard`` holds what the view needs beyond the streams' own health and metrics: events per
second, when the last event came, the latest lifecycle lines. ``render(now)`` is pure (a test
renders it into a fixed-width console); ``showing(dashboard, console)`` repaints it every
``refresh`` seconds while the body runs, never from the reader's path: the consumer calls
``note(event)``, a counter bump and, for lifecycle events, one formatted line.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from polyfeed.aio.metrics_server import Monitored, stream_problem
from polyfeed.cli._format import describe_event, short_id
from polyfeed.core.book import BookRegistry

REFRESH_SECONDS = 0.5
"""Two repaints a second: enough to watch a reconnect, cheap for a busy stream."""

RECENT_LINES = 10


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items())) or "-"


def _price(value: Decimal | None) -> str:
    return "-" if value is None else format(value, "f")


class Dashboard:
    """The dashboard's state for ``streams`` (by name) and up to ``books`` order books."""

    def __init__(
        self,
        streams: Mapping[str, Monitored],
        *,
        books: BookRegistry | None = None,
        book_ids: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
        title: str = "polyfeed",
    ) -> None:
        self.streams = streams
        self.books = books
        self.book_ids = list(book_ids)
        self.clock = clock
        self.title = title
        self.events_total = 0
        self.last_event_at: float | None = None
        self.recent: deque[tuple[float, str]] = deque(maxlen=RECENT_LINES)
        self._rate_total = 0
        self._rate_at: float | None = None
        self.events_per_second = 0.0

    def __repr__(self) -> str:
        return (
            f"<Dashboard streams={list(self.streams)} events={self.events_total} "
            f"books={len(self.book_ids)}>"
        )

    def note(self, event: object) -> None:
        """Count an event; a lifecycle event also becomes a line under the tables."""
        now = self.clock()
        self.events_total += 1
        self.last_event_at = now
        line = describe_event(event)
        if line is not None:
            self.recent.append((now, line))

    def _sample_rate(self, now: float) -> None:
        if self._rate_at is not None and now > self._rate_at:
            self.events_per_second = (self.events_total - self._rate_total) / (now - self._rate_at)
        self._rate_total = self.events_total
        self._rate_at = now

    def _streams_table(self, now: float) -> Table:
        table = Table(title=self.title, title_justify="left", expand=True)
        for column in ("stream", "state", "events/s", "last event"):
            table.add_column(column)
        for column in ("reconnects", "stale"):
            table.add_column(column, justify="right")
        table.add_column("backoff", justify="right")
        table.add_column("queue / dropped", justify="right")
        since = "-" if self.last_event_at is None else f"{now - self.last_event_at:.1f}s ago"
        for name, stream in self.streams.items():
            health = stream.health()
            metrics = stream.metrics
            problem = stream_problem(name, stream)
            state = Text(health.state, style="green" if problem is None else "bold red")
            table.add_row(
                name,
                state,
                f"{self.events_per_second:.0f}",
                since,
                str(sum(metrics.reconnects_by_reason.values())),
                str(sum(metrics.stale_by_kind.values())),
                f"{health.backoff_seconds:.2f}s" if health.state == "backoff" else "-",
                f"{health.queued_events} / {health.dropped_events}",
            )
        return table

    def _books_table(self) -> Table | None:
        if self.books is None or not self.book_ids:
            return None
        table = Table(expand=True)
        for column in ("book", "best bid", "best ask", "sync"):
            table.add_column(column)
        for asset in self.book_ids:
            book = self.books[asset]
            synced = Text("synced", style="green") if book.synced else Text("UNSYNCED", "red")
            table.add_row(short_id(asset), _price(book.best_bid), _price(book.best_ask), synced)
        return table

    def render(self, now: float | None = None) -> RenderableType:
        """The whole view at ``now`` (default: the clock); samples events/s since last call."""
        now = self.clock() if now is None else now
        self._sample_rate(now)
        parts: list[RenderableType] = [self._streams_table(now)]
        for name, stream in self.streams.items():
            metrics = stream.metrics
            parts.append(
                Text(
                    f"{name}: reconnects by reason: {_counts(metrics.reconnects_by_reason)}; "
                    f"stale detections by kind: {_counts(metrics.stale_by_kind)}"
                )
            )
        books = self._books_table()
        if books is not None:
            parts.append(books)
        for at, line in self.recent:
            parts.append(Text(f"{now - at:5.1f}s ago  {line}", style="yellow"))
        return Group(*parts)


async def _repaint(live: Live, dashboard: Dashboard, refresh: float) -> None:
    while True:
        live.update(dashboard.render(), refresh=True)
        await asyncio.sleep(refresh)


@asynccontextmanager
async def showing(
    dashboard: Dashboard | None, console: Console | None = None, refresh: float = REFRESH_SECONDS
) -> AsyncIterator[None]:
    """Repaint ``dashboard`` on ``console`` (default: stderr) while the body runs."""
    if dashboard is None:
        yield
        return
    console = console or Console(stderr=True)
    try:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            async with asyncio.TaskGroup() as group:
                painter = group.create_task(_repaint(live, dashboard, refresh), name="dashboard")
                try:
                    yield
                finally:
                    painter.cancel()
    finally:
        if not console.is_terminal:
            # Rich ends the final frame with a newline only on a terminal.
            console.line()
