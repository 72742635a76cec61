"""The default sink: one SQLite database (standard library), WAL mode, one transaction a batch.

Every call to sqlite3 runs in the sink's own worker thread (one connection, one thread), never
on the event loop. Schema (version 1), meant to be queried directly::

    events(id INTEGER PRIMARY KEY,   -- recording order
           event_type TEXT,          -- book, price_change, ..., connected, gap, book_resynced
           asset_id TEXT,            -- first asset the event concerns (NULL: none)
           assets TEXT,              -- every asset it concerns, a JSON array
           market TEXT,              -- condition id, when the event has one
           server_ts INTEGER,        -- the server's timestamp, epoch ms (NULL: none)
           received REAL,            -- local wall-clock receive time, epoch seconds
           json TEXT)                -- the event as JSON (unknown events: the raw frame)
    gaps(id INTEGER PRIMARY KEY, started REAL, ended REAL,   -- epoch seconds
         assets TEXT, reason TEXT, dropped INTEGER, received REAL)
    sessions(id INTEGER PRIMARY KEY, channel TEXT, ids TEXT, started REAL, ended REAL)
    meta(key TEXT PRIMARY KEY, value TEXT)                   -- schema_version

No index beyond the primary key (an index costs every insert); for lookups by asset, add one
yourself: ``CREATE INDEX events_asset ON events (asset_id, server_ts)``.

Every gap is both a row of ``gaps`` and an ``events`` row with ``event_type = 'gap'`` (so a
replay yields it in order). ``sessions.ended`` stays NULL for a run that was killed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import msgspec

from polyfeed.errors import SinkError, SinkUnavailableError
from polyfeed.sinks.base import Record, Resume, SessionInfo

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY, channel TEXT NOT NULL, ids TEXT NOT NULL,
    started REAL NOT NULL, ended REAL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, event_type TEXT NOT NULL, asset_id TEXT, assets TEXT NOT NULL,
    market TEXT, server_ts INTEGER, received REAL NOT NULL, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY, started REAL NOT NULL, ended REAL NOT NULL, assets TEXT NOT NULL,
    reason TEXT NOT NULL, dropped INTEGER NOT NULL, received REAL NOT NULL);
"""

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


class SqliteSink:
    """Records into the SQLite database at ``path`` (created when missing; reopened to continue).

    ``busy_timeout``: seconds a write waits for another process's lock before the batch is
    retried (:class:`SinkUnavailableError`).
    """

    name = "sqlite"

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._session_id: int | None = None
        self.rows_written = 0

    def __repr__(self) -> str:
        state = "open" if self._executor is not None else "closed"
        session = self._session_id
        return f"<SqliteSink {self.path} {state} session={session} rows={self.rows_written}>"

    async def _call(self, fn: Callable[[], T]) -> T:
        executor = self._executor
        if executor is None:
            raise SinkError(f"{self.path}: sink is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    async def open(self, session: SessionInfo) -> Resume | None:
        """Create or reopen the database; the previous run's end, when there was one."""
        if self._executor is not None:
            raise SinkError(f"{self.path}: sink is already open")
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="polyfeed-sqlite")
        try:
            return await self._call(lambda: self._open(session))
        except BaseException as exc:
            await self._abandon()
            if isinstance(exc, sqlite3.Error):
                raise SinkError(f"{self.path}: cannot open recording: {exc}") from exc
            raise

    def _open(self, session: SessionInfo) -> Resume | None:
        db = self._db = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=True
        )
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a committed batch survives the process being killed (not a power cut).
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is None:
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        elif version[0] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version[0]}, expected {SCHEMA_VERSION}")
        resume = self._resume(db)
        cursor = db.execute(
            "INSERT INTO sessions (channel, ids, started) VALUES (?, ?, ?)",
            (session.channel, json.dumps(list(session.ids)), session.started),
        )
        self._session_id = cursor.lastrowid
        return resume

    @staticmethod
    def _resume(db: sqlite3.Connection) -> Resume | None:
        last = db.execute("SELECT ids, started, ended FROM sessions ORDER BY id DESC LIMIT 1")
        row = last.fetchone()
        if row is None:
            return None
        ids, started, ended = row
        (received,) = db.execute("SELECT max(received) FROM events").fetchone()
        # Only epoch-ms timestamps (user-channel times vary in unit and are skipped).
        (server_ts,) = db.execute(
            "SELECT max(server_ts) FROM events WHERE server_ts > 100000000000"
        ).fetchone()
        candidates = [t for t in (received, ended) if t is not None]
        last_seen = max(candidates) if candidates else started
        if server_ts is not None:
            # Data after the last server timestamp recorded may be lost: start the gap there.
            last_seen = min(last_seen, server_ts / 1000.0)
        return Resume(last_seen=last_seen, assets=tuple(json.loads(ids)))

    async def write(self, records: Sequence[Record]) -> None:
        """Insert ``records`` in one transaction (gaps also into ``gaps``)."""
        try:
            await self._call(lambda: self._write(records))
        except sqlite3.OperationalError as exc:
            # "database is locked" or a full disk: worth retrying.
            raise SinkUnavailableError(f"{self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise SinkError(f"{self.path}: {exc}") from exc

    def _write(self, records: Sequence[Record]) -> None:
        db = self._db
        assert db is not None
        rows = [
            (
                r.event_type,
                r.asset_id,
                _encoder.encode(r.assets).decode(),
                r.market,
                r.server_ts,
                r.received,
                r.json.decode("utf-8", errors="replace"),
            )
            for r in records
        ]
        gaps = [
            (
                r.gap.started,
                r.gap.ended,
                json.dumps(r.gap.assets),
                r.gap.reason,
                r.gap.dropped,
                r.received,
            )
            for r in records
            if r.gap is not None
        ]
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT INTO events (event_type, asset_id, assets, market, server_ts, received, "
                "json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            if gaps:
                db.executemany(
                    "INSERT INTO gaps (started, ended, assets, reason, dropped, received) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    gaps,
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self.rows_written += len(rows)

    async def aclose(self, ended: float) -> None:
        """Mark the session ended and close the database."""
        if self._executor is None:
            return
        try:
            await self._call(lambda: self._close(ended))
        except sqlite3.Error as exc:
            raise SinkError(f"{self.path}: closing: {exc}") from exc
        finally:
            await self._shutdown()

    def _close(self, ended: float) -> None:
        db = self._db
        if db is None:
            return
        self._db = None
        try:
            if self._session_id is not None:
                db.execute("UPDATE sessions SET ended = ? WHERE id = ?", (ended, self._session_id))
        finally:
            db.close()

    async def _abandon(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await self._call(db.close)
        await self._shutdown()

    async def _shutdown(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            # The worker finishes what it runs (a write in progress completes) off the loop.
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
