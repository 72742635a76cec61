"""Hash verification: Polymarket's book hash recomputed from our levels, and scheme detection.

The hash is the strong check (the top-of-book check is :meth:`Levels.top_agrees`, REST
comparison is :mod:`polyfeed.core.book.reconcile`). With ``auto_detect_scheme`` the scheme is
unknown until a hash reproduces under one of V2026/V2025/V2024 (the configured one is tried
first); from then on that scheme is used. A snapshot whose hash stops reproducing re-runs
detection and, if nothing reproduces, clears it again: a snapshot is the truth, so a failure there
means our preimage inputs are wrong, and verifying deltas with wrong inputs would only cause a
resync loop. While undetected, up to three delta checks after each snapshot, metadata or trade
price change try detection; the others are counted as skipped. Unknown inputs (market metadata
missing for the 2025/2026 schemes) skip a check, never fail it.
"""

from __future__ import annotations

import hashlib
from typing import Final, Protocol

from polyfeed.core.book.levels import Levels
from polyfeed.core.book.options import BookCounters
from polyfeed.core.book_hash import HashScheme, book_hash_preimage

__all__ = ["DETECT_BUDGET", "MATCH", "MISMATCH", "SKIPPED", "HashCheck", "HashInputs"]

MATCH: Final = 0
MISMATCH: Final = 1
SKIPPED: Final = 2

DETECT_BUDGET: Final = 3
_DETECT_ORDER = (HashScheme.V2026, HashScheme.V2025, HashScheme.V2024)
_TIMESTAMP_MARK = "\x00timestamp\x00"
_EMPTY_LEVELS = '"bids":[],"asks":[]'


class HashInputs(Protocol):
    """The non-level fields of the preimage, as the book knows them."""

    @property
    def asset_id(self) -> str: ...
    @property
    def market(self) -> str | None: ...
    @property
    def min_order_size(self) -> str | None: ...
    @property
    def tick_size(self) -> str | None: ...
    @property
    def neg_risk(self) -> bool | None: ...


class HashCheck:
    """One book's hash scheme, detection budget, and the hash that awaits a trade price."""

    __slots__ = ("_template", "auto_detect", "detect_budget", "pending", "scheme", "scheme_known")

    def __init__(self, scheme: HashScheme, *, auto_detect: bool) -> None:
        self.scheme = scheme
        self.auto_detect = auto_detect
        self.scheme_known = not auto_detect
        self.detect_budget = DETECT_BUDGET
        # (expected hash, timestamp) of the last check that failed: a trade price that arrives
        # just after its change may still make it reproduce (protocol.md §3.7).
        self.pending: tuple[str, int] | None = None
        self._template: tuple[tuple[object, ...], str | None, str, str, str] | None = None

    def __repr__(self) -> str:
        return (
            f"HashCheck(scheme={self.scheme.name}{'' if self.scheme_known else '?'}, "
            f"budget={self.detect_budget}, pending={self.pending is not None})"
        )

    def inputs_known(
        self, inputs: HashInputs, scheme: HashScheme, last_trade_price: str | None
    ) -> bool:
        """Whether every field ``scheme`` covers is known."""
        if inputs.market is None:
            return False
        if scheme is HashScheme.V2024:
            return True
        if inputs.min_order_size is None or inputs.tick_size is None or inputs.neg_risk is None:
            return False
        return scheme is HashScheme.V2025 or last_trade_price is not None

    def compute(
        self,
        levels: Levels,
        inputs: HashInputs,
        timestamp: int | None,
        scheme: HashScheme,
        last_trade_price: str | None,
    ) -> str:
        """The hash of our levels under ``scheme``."""
        # The fixed fields (JSON-encoded metadata) cost more than the levels, and a message
        # usually changes one side: both are cached. The template comes from
        # book_hash_preimage itself, so the preimage format has a single source.
        key = (scheme, inputs.market, inputs.min_order_size, inputs.tick_size, inputs.neg_risk)
        template = self._template
        if template is None or template[0] != key or template[1] != last_trade_price:
            text = book_hash_preimage(
                market=inputs.market or "",
                asset_id=inputs.asset_id,
                timestamp=_TIMESTAMP_MARK,
                bids=(),
                asks=(),
                scheme=scheme,
                min_order_size=inputs.min_order_size,
                tick_size=inputs.tick_size,
                neg_risk=inputs.neg_risk,
                last_trade_price=last_trade_price,
            )
            head, _, rest = text.partition(_TIMESTAMP_MARK)
            middle, _, tail = rest.partition(_EMPTY_LEVELS)
            template = self._template = (key, last_trade_price, head, middle, tail)
        _, _, head, middle, tail = template
        stamp = "" if timestamp is None else timestamp
        bids = levels.bid_json
        if bids is None:
            bids = levels.bids_text()
        asks = levels.ask_json
        if asks is None:
            asks = levels.asks_text()
        text = f'{head}{stamp}{middle}"bids":[{bids}],"asks":[{asks}]{tail}'
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    def detect(
        self,
        levels: Levels,
        inputs: HashInputs,
        expected: str,
        timestamp: int,
        last_trade_price: str | None,
    ) -> bool:
        """Try every scheme whose inputs we have (current first); adopt the one that matches."""
        order = [self.scheme, *(s for s in _DETECT_ORDER if s is not self.scheme)]
        for scheme in order:
            if not self.inputs_known(inputs, scheme, last_trade_price):
                continue
            if self.compute(levels, inputs, timestamp, scheme, last_trade_price) == expected:
                self.scheme = scheme
                self.scheme_known = True
                return True
        return False

    def matches(
        self, levels: Levels, inputs: HashInputs, expected: str, timestamp: int, ltp: str | None
    ) -> bool:
        """Whether our levels reproduce ``expected`` under the current (known) scheme."""
        return self.compute(levels, inputs, timestamp, self.scheme, ltp) == expected

    def check_delta(
        self,
        levels: Levels,
        inputs: HashInputs,
        expected: str,
        timestamp: int,
        ltp: str | None,
        counters: BookCounters,
    ) -> int:
        """:data:`MATCH`, :data:`MISMATCH` or :data:`SKIPPED` for the book after a message.

        A mismatch is not counted here: whether it is one is decided at the end of its run.
        """
        if not expected:
            counters.hash_skipped += 1
            return SKIPPED
        if not self.scheme_known:
            if self.detect_budget <= 0:
                counters.hash_skipped += 1
                return SKIPPED
            self.detect_budget -= 1
            if self.detect(levels, inputs, expected, timestamp, ltp):
                counters.hash_checks += 1
                return MATCH
            counters.hash_skipped += 1
            return SKIPPED
        if not self.inputs_known(inputs, self.scheme, ltp):
            counters.hash_skipped += 1
            return SKIPPED
        counters.hash_checks += 1
        if self.compute(levels, inputs, timestamp, self.scheme, ltp) == expected:
            return MATCH
        self.pending = (expected, timestamp)
        return MISMATCH

    def check_snapshot(
        self,
        levels: Levels,
        inputs: HashInputs,
        expected: str,
        timestamp: int,
        ltp: str | None,
        counters: BookCounters,
    ) -> None:
        """A snapshot is the truth: a failing hash means our inputs (scheme/metadata) are off."""
        if self.scheme_known:
            if not self.inputs_known(inputs, self.scheme, ltp):
                counters.hash_skipped += 1
                return
            counters.hash_checks += 1
            if self.matches(levels, inputs, expected, timestamp, ltp):
                return
            counters.hash_mismatches += 1
            if not self.auto_detect:
                return
            self.scheme_known = False
        if self.detect(levels, inputs, expected, timestamp, ltp):
            counters.hash_checks += 1
            return
        counters.hash_skipped += 1
        # A trade price arriving next may still make it reproduce (protocol.md §3.7).
        self.pending = (expected, timestamp)

    def late_match(self, levels: Levels, inputs: HashInputs, ltp: str) -> bool:
        """Whether a new trade price makes the pending hash reproduce."""
        pending = self.pending
        if pending is None:
            return False
        expected, timestamp = pending
        if self.scheme_known:
            return self.inputs_known(inputs, self.scheme, ltp) and self.matches(
                levels, inputs, expected, timestamp, ltp
            )
        return self.detect(levels, inputs, expected, timestamp, ltp)
