"""Correct local L2 order books, sans-I/O: the book decides what to do, the caller does the I/O.

An :class:`OrderBook` is built from ``book`` snapshots and ``price_change`` entries and keeps the
server's exact price/size strings (the hash preimage needs them: ``"0.3"`` is not ``"0.30"``)
next to exact integer price keys. Integrity comes in three strengths, each counted in
:class:`BookCounters`:

1. **top of book** (every message, cheap): the server's ``best_bid``/``best_ask`` of the asset's
   last entry in a message against our raw book.
2. **hash** (``hash_check_every``: 1 = every message, N = every N-th, 0 = off; every message while
   in doubt): Polymarket's SHA-1 book hash recomputed from our book after the message, with the
   message's timestamp, judged at the end of its run of messages. *Batched* books (a registry
   made with ``batched=True``) check instead at every :meth:`BookRegistry.end_batch` and at least
   every ``verify_every``-th message (:class:`BookOptions`).
3. **REST** (:meth:`OrderBook.reconcile`): our levels against a ``/book`` summary.

Module map (one concern each):

- :mod:`.numbers`: the grammar of decimal strings, exact price keys.
- :mod:`.levels`: the two sides, the one function that sets a level, top of book.
- :mod:`.integrity`: hash verification and scheme detection.
- :mod:`.doubt`: doubt, grace and hash runs (when a disagreement invalidates).
- :mod:`.held`: off-grid deltas held after a tick size change.
- :mod:`.resync`: synced state, snapshot fetches, buffering and replay, invalidation.
- :mod:`.reconcile`: comparison with a REST summary.
- :mod:`.view`: the read-only API of a book (top of book, levels, depth, hash, repr).
- :mod:`.order_book`: :class:`OrderBook`, the façade composing them: live messages, fast path.
- :mod:`.registry`: :class:`BookRegistry`, the books of many assets.
- :mod:`.limiter`: :class:`ResyncLimiter`, the token bucket for snapshot fetches.
- :mod:`.options`: :class:`BookOptions`, :class:`BookVerdict`, :class:`BookCounters`.
"""

from __future__ import annotations

from polyfeed.core.book.limiter import ResyncLimiter
from polyfeed.core.book.numbers import PRICE_SCALE
from polyfeed.core.book.options import (
    BookCounters,
    BookOptions,
    BookSide,
    BookVerdict,
    VerdictAction,
)
from polyfeed.core.book.order_book import OrderBook
from polyfeed.core.book.registry import BookRegistry, Books

__all__ = [
    "PRICE_SCALE",
    "BookCounters",
    "BookOptions",
    "BookRegistry",
    "BookSide",
    "BookVerdict",
    "Books",
    "OrderBook",
    "ResyncLimiter",
    "VerdictAction",
]
