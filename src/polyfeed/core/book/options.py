"""What a book is told (:class:`BookOptions`) and what it counts (:class:`BookCounters`);
:class:`BookVerdict`, what it reports, lives in :mod:`~polyfeed.core.book.verdict` (re-exported
here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from polyfeed.core.book.verdict import BookVerdict, VerdictAction
from polyfeed.errors import ConfigError

__all__ = ["BookCounters", "BookOptions", "BookSide", "BookVerdict", "VerdictAction"]

BookSide = Literal["bids", "asks"]


@dataclass(frozen=True, slots=True)
class BookOptions:
    """Integrity and resync settings shared by the books of a :class:`BookRegistry`.

    ``grace_messages``/``grace_seconds``: how long a doubt (crossed book, server top of book
    disagreeing, hash mismatch, held off-grid deltas) may last before the book is invalidated;
    ``grace_messages=0`` invalidates on the first failing message. ``hash_grace_messages``: the
    tighter limit for a hash mismatch alone (its only benign cause, a ``last_trade_price`` that
    arrives just after the change, clears it at once; a dropped message does not heal, or heals
    only by chance). A hash is judged at the end of its *run* (messages sharing timestamp and
    expected hash, see :mod:`polyfeed.core.book.doubt`), so these limits count runs, not
    messages; a run still open after ``grace_seconds`` fails. ``max_buffered``: messages kept
    for replay while unsynced (the oldest are dropped beyond it; the snapshot usually covers them).

    ``verify_every``: the hash cadence of *batched* books (a :class:`BookRegistry` made with
    ``batched=True``, as every ``MarketStream``'s is). A batched book checks the hash at the end
    of every batch (``end_batch``: one socket read) that changed it, and within a batch at least
    on every ``verify_every``-th message of the asset; the top-of-book check still runs on every
    message, and a book in doubt checks every message. A match proves the whole book, so a
    divergence is noticed at most ``verify_every - 1`` messages of the asset after it happened,
    and at the end of the batch that carried it. ``hash_check_every`` is the cadence of unbatched
    books; ``hash_check_every=0`` turns hash checks off in both modes.

    ``verify_before_handoff`` (a stream's books): whether the end-of-batch hash check runs before
    the batch's events are queued for the consumer (``True``: every book state the consumer can
    see was hash-checked, at the cost of the check's time on every event's latency) or right
    after they were queued (``False``, the default: one turn of the event loop later, so a waiting
    consumer takes them first, and before any later batch is applied or handed on; a
    ``BookInvalidated`` it causes is the next event). The top-of-book check runs before the
    hand-off either way.
    """

    check_top: bool = True
    hash_check_every: int = 1
    auto_detect_scheme: bool = True
    grace_messages: int = 10
    hash_grace_messages: int = 1
    grace_seconds: float = 2.0
    max_buffered: int = 10_000
    verify_every: int = 100
    verify_before_handoff: bool = False

    def __post_init__(self) -> None:
        if self.hash_check_every < 0:
            raise ConfigError("hash_check_every must be >= 0")
        if self.verify_every < 1:
            raise ConfigError("verify_every must be >= 1")
        if self.grace_messages < 0 or self.grace_seconds < 0 or self.hash_grace_messages < 0:
            raise ConfigError("grace_messages, hash_grace_messages, grace_seconds must be >= 0")
        if self.max_buffered < 1:
            raise ConfigError("max_buffered must be >= 1")


@dataclass(slots=True)
class BookCounters:
    """Checks done and mismatches found, per strength, plus resync bookkeeping.

    ``hash_mismatches`` counts runs (or snapshots) whose hash did not reproduce; ``malformed``
    counts each malformed entry once, when it is judged (on arrival at a synced book, or at the
    replay of a message buffered while the book was unsynced), and each other number outside
    the grammar of :mod:`~polyfeed.core.book.numbers`: a snapshot (WS or REST), a
    ``tick_size_change``, a ``last_trade_price``, the server's ``best_bid``/``best_ask``, a REST
    summary given to ``reconcile`` and market metadata.
    """

    snapshots: int = 0
    top_checks: int = 0
    top_mismatches: int = 0
    hash_checks: int = 0
    hash_mismatches: int = 0
    hash_skipped: int = 0
    hash_late_matches: int = 0
    reconcile_checks: int = 0
    reconcile_mismatches: int = 0
    reconcile_inconclusive: int = 0
    held_entries: int = 0
    buffer_dropped: int = 0
    invalidations: int = 0
    resyncs: int = 0
    malformed: int = 0
