"""REST reconciliation: our levels against a ``/book`` summary of the same asset.

Equal timestamps decide at once. A REST book *newer* than ours that disagrees is kept and compared
again after each of our next messages: agreement counts as a match; still disagreeing once our
timestamp reaches it, or after ``grace_seconds``, is a mismatch. An older REST book that disagrees
is inconclusive (it may predate changes we already applied).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from polyfeed.core.book.levels import Levels
from polyfeed.core.book.options import BookCounters
from polyfeed.core.messages import Book

__all__ = ["INCONCLUSIVE", "MATCHED", "MISMATCHED", "PENDING", "PendingRest", "RestCheck"]

Outcome = Literal["match", "mismatch", "inconclusive", "pending", "none"]
MATCHED: Final = "match"
MISMATCHED: Final = "mismatch"
INCONCLUSIVE: Final = "inconclusive"
PENDING: Final = "pending"


@dataclass(slots=True)
class PendingRest:
    """A REST book ahead of ours, waiting for our stream to catch up."""

    book: Book
    since: float | None


class RestCheck:
    """The pending REST comparison of one book, and its counters."""

    __slots__ = ("_counters", "_grace_seconds", "pending")

    def __init__(self, grace_seconds: float, counters: BookCounters) -> None:
        self._grace_seconds = grace_seconds
        self._counters = counters
        self.pending: PendingRest | None = None

    def __repr__(self) -> str:
        pending = self.pending
        return f"RestCheck(pending={None if pending is None else pending.book.timestamp})"

    def compare(self, levels: Levels, ours: int, rest_book: Book, now: float | None) -> Outcome:
        """Compare now; a REST book ahead of us that disagrees becomes pending."""
        self.pending = None
        counters = self._counters
        if levels.equal_to(rest_book):
            counters.reconcile_checks += 1
            return MATCHED
        if rest_book.timestamp == ours:
            return self._mismatch()
        if rest_book.timestamp < ours:
            counters.reconcile_inconclusive += 1
            return INCONCLUSIVE
        self.pending = PendingRest(rest_book, now)
        return PENDING

    def recheck(self, levels: Levels, ours: int, now: float | None) -> Outcome:
        """After one of our messages: the pending comparison's outcome ("none" if none)."""
        pending = self.pending
        if pending is None:
            return "none"
        counters = self._counters
        if levels.equal_to(pending.book):
            self.pending = None
            counters.reconcile_checks += 1
            return MATCHED
        if ours == pending.book.timestamp:
            self.pending = None
            return self._mismatch()
        if ours > pending.book.timestamp:
            self.pending = None
            counters.reconcile_inconclusive += 1
            return INCONCLUSIVE
        if pending.since is None:
            pending.since = now
        elif now is not None and now - pending.since >= self._grace_seconds:
            self.pending = None
            return self._mismatch()
        return PENDING

    def expire(self, now: float) -> Outcome:
        """Timer input: a pending comparison past ``grace_seconds`` is a mismatch."""
        pending = self.pending
        if pending is None:
            return "none"
        if pending.since is None:
            pending.since = now
        elif now - pending.since >= self._grace_seconds:
            self.pending = None
            return self._mismatch()
        return PENDING

    def next_deadline(self) -> float | None:
        """When the pending comparison expires (None without one or without a clock)."""
        pending = self.pending
        if pending is None or pending.since is None:
            return None
        return pending.since + self._grace_seconds

    def _mismatch(self) -> Outcome:
        self._counters.reconcile_checks += 1
        self._counters.reconcile_mismatches += 1
        return MISMATCHED
