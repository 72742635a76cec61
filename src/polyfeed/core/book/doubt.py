"""Doubt and grace: when a disagreement is transient, and when it invalidates the book.

Transient disagreement is real. A taker order crossing the book arrives as several entries, and
the hash of a trade's deltas includes a ``last_trade_price`` whose event arrives up to ~100 ms
later (protocol.md §3.7). So a message that leaves the book crossed, disagreeing with the server's
top of book, failing the hash, or holding off-grid deltas puts the book in *doubt* rather than
invalidating it. A doubt clears when a later message passes its checks (a hash match proves the
whole book), or when a ``last_trade_price`` makes the pending hash reproduce. A doubt still
present after ``grace_messages`` further messages for the asset (``hash_grace_messages`` for a
hash mismatch), or ``grace_seconds`` after it began (checked when a ``now`` is given and by
``handle_timer``), invalidates the book.

*Runs.* Polymarket can split one matching event over several ``price_change`` messages that share
one timestamp, and every entry of such a run carries the same hash and top of book: those of the
book after the whole run. So a hash that does not reproduce opens a *run* keyed by (timestamp,
expected hash) instead of failing. Messages of the same run are not judged (their hash and top
describe the run's end). The run is verified at its end: a match (on its last message, or after a
late trade price) closes it; a message with another timestamp or hash that does not match either,
or ``grace_seconds`` after the run began, fails it, and a failed run counts as one hash mismatch
against the grace. A book that is genuinely wrong is therefore caught one run later than a check
per message would catch it, never missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from polyfeed.core.book.integrity import MATCH, MISMATCH
from polyfeed.core.book.options import BookCounters, BookOptions

__all__ = [
    "CROSSED",
    "HASH_MISMATCH",
    "HELD_OFF_GRID",
    "TOP_MISMATCH",
    "Doubt",
    "Grace",
    "Run",
]

HASH_MISMATCH: Final = "hash mismatch"
HELD_OFF_GRID: Final = "off-grid deltas held after tick size change"
CROSSED: Final = "crossed book"
TOP_MISMATCH: Final = "top of book mismatch"


@dataclass(slots=True)
class Doubt:
    """A disagreement that may still be transient: why, for how many messages, since when."""

    reason: str
    messages: int = 0
    since: float | None = None


@dataclass(slots=True)
class Run:
    """Messages sharing a timestamp and an expected hash that did not reproduce (yet)."""

    timestamp: int
    expected: str
    since: float | None


class Grace:
    """The doubt and open run of one book, and the rule that turns them into invalidations."""

    __slots__ = ("_counters", "_options", "doubt", "run")

    def __init__(self, options: BookOptions, counters: BookCounters) -> None:
        self._options = options
        self._counters = counters
        self.doubt: Doubt | None = None
        self.run: Run | None = None

    def __repr__(self) -> str:
        run = self.run
        open_run = "" if run is None else f" run@{run.timestamp}"
        return f"Grace(doubt={self.reason!r}{open_run})"

    @property
    def reason(self) -> str | None:
        """Why the book is unproven: the doubt's reason, a hash run still open, or None."""
        if self.doubt is not None:
            return self.doubt.reason
        return HASH_MISMATCH if self.run is not None else None

    @property
    def calm(self) -> bool:
        """No doubt and no open run."""
        return self.doubt is None and self.run is None

    def clear(self) -> None:
        """Forget doubt and run (a hash match proved the book, a snapshot replaced it)."""
        self.doubt = None
        self.run = None

    def judge(
        self,
        result: int,
        timestamp: int,
        expected: str,
        *,
        held: bool,
        crossed: bool,
        top_ok: bool,
        now: float | None,
    ) -> str | None:
        """Judge a message on a synced book; returns the reason to invalidate, or None.

        ``result`` is the message's hash check (``MATCH``, ``MISMATCH`` or ``SKIPPED`` from
        :mod:`polyfeed.core.book.integrity`), ``expected`` the hash it carried.
        """
        if result == MATCH:
            self.clear()
            return None
        run = self.run
        same_run = run is not None and run.timestamp == timestamp and run.expected == expected
        failed = run is not None and not same_run
        if result == MISMATCH and not same_run:
            self.run = Run(timestamp, expected, now)
        elif failed:
            self.run = None
        elif same_run and self._expired(run.since if run else None, now):
            self.run = None
            failed = True
        if failed:
            self._counters.hash_mismatches += 1
            reason = HASH_MISMATCH
        elif self.run is not None:
            # An unfinished run: its messages describe the run's end, so they are not judged.
            return self._overdue(now)
        elif held:
            reason = HELD_OFF_GRID
        elif crossed:
            reason = CROSSED
        elif not top_ok:
            reason = TOP_MISMATCH
        else:
            self.doubt = None
            return None
        doubt = self.doubt
        if doubt is None:
            since = now if run is None or run.since is None else run.since
            doubt = self.doubt = Doubt(reason, 0, since)
        else:
            doubt.reason = reason
            doubt.messages += 1
            if doubt.since is None:
                doubt.since = now
        grace = self._options.grace_messages
        if reason == HASH_MISMATCH:
            grace = min(grace, self._options.hash_grace_messages)
        if doubt.messages >= grace or self._expired(doubt.since, now):
            return reason
        return None

    def _expired(self, since: float | None, now: float | None) -> bool:
        return since is not None and now is not None and now - since >= self._options.grace_seconds

    def _overdue(self, now: float | None) -> str | None:
        """The reason of a doubt or run that outlived ``grace_seconds`` at ``now``, or None."""
        doubt = self.doubt
        if doubt is not None and self._expired(doubt.since, now):
            return doubt.reason
        run = self.run
        if run is not None and self._expired(run.since, now):
            self.run = None
            self._counters.hash_mismatches += 1
            return HASH_MISMATCH
        return None

    def expire(self, now: float) -> str | None:
        """Timer input: start clocks that had no ``now`` yet; the reason of what expired."""
        if self.doubt is not None and self.doubt.since is None:
            self.doubt.since = now
        if self.run is not None and self.run.since is None:
            self.run.since = now
        return self._overdue(now)

    def next_deadline(self) -> float | None:
        """When a doubt or open run outlives ``grace_seconds`` (None if neither has a clock)."""
        grace = self._options.grace_seconds
        deadlines = [
            since + grace
            for since in (
                None if self.doubt is None else self.doubt.since,
                None if self.run is None else self.run.since,
            )
            if since is not None
        ]
        return min(deadlines) if deadlines else None
