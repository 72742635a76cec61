"""Resync bookkeeping: synced or not, the snapshot fetch in flight, and the replay buffer.

A book is ``synced`` after a snapshot. Invalidation marks it unsynced; the caller then fetches a
REST ``/book`` after ``begin_resync`` (within a :class:`ResyncLimiter`). Deltas keep being applied
(best effort) and are buffered while unsynced or while a fetch is in flight; completing the resync
loads the snapshot and replays the buffered messages whose timestamp is *greater* than the
snapshot's. A message with the *same* timestamp is taken as already in the snapshot: the server
stamps a book with the time of its latest change, and all messages of one matching event share
one timestamp (real captures). Each fetch has an id; a late answer to an abandoned fetch is stale.
"""

from __future__ import annotations

from collections import deque

from polyfeed.core.messages import PriceChangeEntry

__all__ = ["Buffered", "ResyncState"]

Buffered = tuple[int, tuple[PriceChangeEntry, ...], bool]
"""(timestamp, the asset's entries, whether its malformed entries were already counted)."""


class ResyncState:
    """Whether the book is synced, the fetch in flight, and the messages kept for replay."""

    __slots__ = ("buffer", "ever_synced", "in_flight", "resync_id", "synced")

    def __init__(self, max_buffered: int) -> None:
        self.synced = False
        self.ever_synced = False
        self.in_flight = False
        self.resync_id = 0
        self.buffer: deque[Buffered] = deque(maxlen=max_buffered)

    def __repr__(self) -> str:
        state = "synced" if self.synced else "resyncing" if self.in_flight else "unsynced"
        return f"ResyncState({state}, id={self.resync_id}, buffered={len(self.buffer)})"

    @property
    def buffering(self) -> bool:
        """Messages are kept for replay (unsynced, or a fetch is in flight)."""
        return not self.synced or self.in_flight

    def keep(self, timestamp: int, entries: tuple[PriceChangeEntry, ...], judged: bool) -> bool:
        """Buffer one message; whether the oldest had to be dropped for it (buffer full)."""
        buffer = self.buffer
        full = len(buffer) == buffer.maxlen
        buffer.append((timestamp, entries, judged))
        return full

    def begin(self) -> int:
        """A fetch starts: its id."""
        self.resync_id += 1
        self.in_flight = True
        return self.resync_id

    def abandon(self) -> None:
        """No fetch in flight any more; an answer to the last one is stale."""
        self.in_flight = False
        self.resync_id += 1

    def is_current(self, resync_id: int) -> bool:
        """Whether ``resync_id`` is the fetch in flight."""
        return self.in_flight and resync_id == self.resync_id

    def take(self, snapshot_timestamp: int) -> list[Buffered]:
        """Empty the buffer; the messages newer than the snapshot, oldest first."""
        newer = [item for item in self.buffer if item[0] > snapshot_timestamp]
        self.buffer.clear()
        return newer
