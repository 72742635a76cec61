"""Helpers shared by the recording tests: an in-memory source and sink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from polyfeed.sinks.base import Record, Resume, SessionInfo, SinkError, SinkUnavailableError


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
