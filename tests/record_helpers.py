"""Helpers shared by the recording tests: an in-memory source and sink."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from polyfeed.errors import SinkError, SinkUnavailableError
from polyfeed.sinks.base import Record, Resume, SessionInfo
from polyfeed.testing.server import GroundTruthLog, LoggedEvent


class QueueSource:
    """A closable source: ``put`` events; ``aclose`` lets what is queued drain, then ends."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False
        self.taken = 0
        self._end = object()

    def put(self, *events: Any) -> None:
        for event in events:
            self.queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            event = await self.queue.get()
            if event is self._end:
                return
            self.taken += 1
            yield event

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(self._end)


class MemorySink:
    """Keeps written batches; ``fail`` makes the next writes raise; ``gate`` holds writes."""

    name = "memory"

    def __init__(self, resume: Resume | None = None) -> None:
        self.resume = resume
        self.batches: list[list[Record]] = []
        self.sessions: list[SessionInfo] = []
        self.fail_unavailable = 0
        self.fail_fatal = False
        self.gate: asyncio.Event | None = None
        self.closed_at: float | None = None

    @property
    def records(self) -> list[Record]:
        return [record for batch in self.batches for record in batch]

    async def open(self, session: SessionInfo) -> Resume | None:
        self.sessions.append(session)
        return self.resume

    async def write(self, records: Sequence[Record]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_fatal:
            raise SinkError("disk on fire")
        if self.fail_unavailable:
            self.fail_unavailable -= 1
            raise SinkUnavailableError("server down")
        self.batches.append(list(records))

    async def aclose(self, ended: float) -> None:
        self.closed_at = ended


RecordedKey = tuple[str, str | None, int]
GapSpan = tuple[float, float, set[str]]


def unexplained(
    log: GroundTruthLog, recorded: set[RecordedKey], gaps: list[GapSpan]
) -> list[LoggedEvent]:
    """Market events of the ground truth that are neither recorded (by event_type, market and
    server timestamp) nor inside a recorded gap. Events generated before the server made the
    first snapshot of an asset for us are not ours to receive and are skipped."""
    subscribed_at: dict[str, int] = {}
    for logged in log.events:
        if logged.origin == "snapshot":
            for asset in logged.asset_ids:
                subscribed_at.setdefault(asset, logged.seq)
    missing = []
    for logged in log.events:
        if logged.origin != "market" or logged.event_type in ("book", "best_bid_ask"):
            continue
        if all(logged.seq < subscribed_at.get(asset, 1 << 62) for asset in logged.asset_ids):
            continue
        if (logged.event_type, logged.market, int(logged.timestamp)) in recorded:
            continue
        ts = int(logged.timestamp) / 1000.0
        if any(
            started - 0.005 <= ts <= ended + 0.005 and set(logged.asset_ids) & assets
            for started, ended, assets in gaps
        ):
            continue
        missing.append(logged)
    return missing


def unexplained_events(log: GroundTruthLog, path: Path) -> list[LoggedEvent]:
    """:func:`unexplained` for a SQLite recording."""
    db = sqlite3.connect(path)
    recorded = {
        (event_type, market, ts)
        for event_type, market, ts in db.execute(
            "SELECT event_type, market, server_ts FROM events WHERE server_ts IS NOT NULL"
        )
    }
    gaps = [
        (started, ended, set(json.loads(assets)))
        for started, ended, assets in db.execute("SELECT started, ended, assets FROM gaps")
    ]
    db.close()
    assert recorded, "nothing was recorded"
    return unexplained(log, recorded, gaps)
