"""Playing a recording (SQLite file or Parquet folder) back as the typed event stream it was
recorded from.

::

    async with polyfeed.replay.Replay("feed.db") as replay:
        async for event in replay:          # MarketStreamEvent | UserStreamEvent
            ...                             # the same code as for a live stream
        replay.books["<token_id>"].best_bid  # books rebuilt from the recorded events

Events come in recording order, as the same frozen msgspec Structs the live stream yielded,
lifecycle events (``Connected``, ``Gap``, ``BookInvalidated``, ...) included, so a consumer sees
every hole the live run saw. ``replay.received`` is the local receive time (epoch seconds) of the
event last yielded. With ``books=True`` (default) the replay keeps a
:class:`~polyfeed.core.book.BookRegistry` the way the live stream does (market events applied,
every book invalidated on ``Disconnected`` until its next snapshot); books that the live run
resynced over REST stay unsynced until the next socket snapshot, since REST answers are not
recorded.

``speed``: None replays as fast as possible; ``1.0`` paces events by their receive times
(``2.0`` twice as fast), on the injected clock. SQLite reads run in a worker thread, a chunk at
a time, never on the event loop; a Parquet folder (needs ``polyfeed[parquet]``) is read whole
into memory when entered, its closed files only. Use as ``async with`` (it owns that thread).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from polyfeed.aio.clock import Clock, LoopClock
from polyfeed.core.book import BookOptions, BookRegistry
from polyfeed.core.messages import BestBidAsk, Book, LastTradePrice, PriceChange, TickSizeChange
from polyfeed.errors import ConfigError, StreamClosedError, StreamNotStartedError
from polyfeed.events import Disconnected, MarketStreamEvent, UserStreamEvent
from polyfeed.sinks.base import from_record
from polyfeed.sinks.sqlite import SCHEMA_VERSION

__all__ = ["Replay", "ReplayEvent"]

ReplayEvent = MarketStreamEvent | UserStreamEvent

T = TypeVar("T")

_Row = tuple[int, str, str, float, str]


class Replay:
    """An async iterator over the events of a recording (see the module docstring).

    ``assets``: only events about these assets (events about no asset, such as ``Connected``,
    are kept). ``since``/``until``: receive-time bounds in epoch seconds (inclusive).
    """

    def __init__(
        self,
        recording: str | Path,
        *,
        assets: Iterable[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        speed: float | None = None,
        books: bool = True,
        book_options: BookOptions | None = None,
        clock: Clock | None = None,
        chunk: int = 2_000,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ConfigError("speed must be > 0 (None: as fast as possible)")
        if chunk < 1:
            raise ConfigError("chunk must be >= 1")
        self.path = Path(recording)
        self.assets = frozenset(assets) if assets is not None else None
        self.since = since
        self.until = until
        self.speed = speed
        self.clock: Clock = clock or LoopClock()
        self.chunk = chunk
        self._books = BookRegistry(book_options) if books else None
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._rows: list[_Row] | None = None
        self._offset = 0
        self._pending: deque[tuple[float, ReplayEvent]] = deque()
        self._last_id = 0
        self._exhausted = False
        self._closed = False
        self._origin: tuple[float, float] | None = None
        self.received: float | None = None
        self.events = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._executor is not None else "idle"
        return f"<Replay {self.path} {state} events={self.events} last_id={self._last_id}>"

    @property
    def books(self) -> BookRegistry:
        """The books rebuilt from the events yielded so far."""
        if self._books is None:
            raise ConfigError("this replay was created with books=False")
        return self._books

    async def __aenter__(self) -> Self:
        if self._closed:
            raise StreamClosedError("replay is closed")
        if not self.path.exists():
            raise ConfigError(f"no recording at {self.path}")
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="polyfeed-replay")
        try:
            await self._call(self._open)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the recording and the reader thread."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
        finally:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise StreamNotStartedError("use a Replay inside `async with`")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _open(self) -> None:
        if self.path.is_dir():
            self._open_parquet()
            return
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        db = self._db = sqlite3.connect(uri, uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a polyfeed recording: {exc}") from None
        if row is None or row[0] != SCHEMA_VERSION:
            raise ConfigError(f"{self.path}: recording schema {row}, expected {SCHEMA_VERSION}")

    def _open_parquet(self) -> None:
        try:
            from polyfeed.sinks.parquet import read_rows
        except ImportError as exc:
            raise ConfigError(f"replaying Parquet needs polyfeed[parquet]: {exc}") from None
        rows = read_rows(self.path)
        if not rows and not (self.path / "state.json").exists():
            raise ConfigError(f"{self.path} is not a polyfeed recording")
        self._rows = [
            (seq, event_type, json.dumps(assets), received, raw)
            for seq, event_type, assets, received, raw in rows
            if (self.since is None or received >= self.since)
            and (self.until is None or received <= self.until)
        ]

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _fetch(self) -> list[_Row]:
        if self._rows is not None:
            chunk = self._rows[self._offset : self._offset + self.chunk]
            self._offset += len(chunk)
            return chunk
        db = self._db
        assert db is not None
        query = "SELECT id, event_type, assets, received, json FROM events WHERE id > ?"
        params: list[float | int] = [self._last_id]
        if self.since is not None:
            query += " AND received >= ?"
            params.append(self.since)
        if self.until is not None:
            query += " AND received <= ?"
            params.append(self.until)
        query += " ORDER BY id LIMIT ?"
        params.append(self.chunk)
        return db.execute(query, params).fetchall()

    def __aiter__(self) -> Self:
        if self._executor is None:
            raise StreamNotStartedError("use a Replay inside `async with`")
        return self

    async def __anext__(self) -> ReplayEvent:
        while not self._pending:
            if self._exhausted or self._closed:
                raise StopAsyncIteration
            rows = await self._call(self._fetch)
            if len(rows) < self.chunk:
                self._exhausted = True
            for row_id, event_type, assets, received, raw in rows:
                self._last_id = row_id
                if (
                    self.assets is not None
                    and assets != "[]"
                    and not self.assets.intersection(_assets(assets))
                ):
                    continue
                self._pending.append((received, from_record(event_type, raw)))
        received, event = self._pending.popleft()
        if self.speed is not None:
            await self._pace(received)
        self.received = received
        self.events += 1
        if self._books is not None:
            self._apply(event, received)
        return event

    async def _pace(self, received: float) -> None:
        if self._origin is None:
            self._origin = (received, self.clock.now())
        first, started = self._origin
        await self.clock.sleep_until(started + (received - first) / (self.speed or 1.0))

    def _apply(self, event: ReplayEvent, received: float) -> None:
        books = self._books
        assert books is not None
        # As the live stream's book keeper does (aio/book_keeper.py, ``observe``).
        if isinstance(event, PriceChange | LastTradePrice | TickSizeChange | BestBidAsk | Book):
            books.apply(event, received)
        elif isinstance(event, Disconnected):
            books.invalidate_all("reconnect")


def _assets(encoded: str) -> list[str]:
    decoded = json.loads(encoded)
    return [a for a in decoded if isinstance(a, str)] if isinstance(decoded, list) else []
