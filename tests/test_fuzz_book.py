"""Fuzz target for the books: mutations of the real Polymarket captures fed to a registry.

Every real market-channel event in the captures (WS ``book``, ``price_change``,
``last_trade_price``, ``tick_size_change``, ``best_bid_ask``, ...) and every real REST ``/book``
is a seed. A run strings a few seeds together, and replaces some of their numbers (prices,
sizes, tick sizes, the server's top of book, last trade prices, minimum order sizes) and sides
with hostile text: Python-``Decimal``-only spellings (``1e999990``, ``NaN``, ``+0.5``,
``0.4_2``), non-ASCII digits, prices on or outside (0, 1), very long digit strings, and
arbitrary text. The mutants go through every path a number enters a book by: ``apply``, a REST
resync (``complete_resync``) and a REST comparison (``reconcile``). For every mutant, the book
must: never raise; answer each input in a bounded CPU time (5 ms, far above the microseconds it
takes); store only levels that pass the grammar; and keep every reader usable (``depth``,
``to_book``, a comparison with its own summary).

The normal suite runs a short pass (a few seconds). A long run raises the example count::

    POLYFEED_FUZZ_BOOK_EXAMPLES=100000 .venv/bin/python -m pytest -q tests/test_fuzz_book.py

(roughly a minute per 10,000 examples on one core; hypothesis prints any failing mutant,
shrunk, which belongs in tests/test_book_order_book.py as a regression case).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from book_support import hash_sequence, load_literal_lines
from conftest import FIXTURES, collector_paused, require_captures
from polyfeed.core.book import BookOptions, BookRegistry, OrderBook
from polyfeed.core.book.numbers import is_decimal, parse_price
from polyfeed.core.codec import FrameDecoder
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    Level,
    MarketEvent,
    PriceChange,
    TickSizeChange,
)

EXAMPLES = int(os.environ.get("POLYFEED_FUZZ_BOOK_EXAMPLES", "150"))
CPU_BOUND = 0.005
"""Seconds of CPU per input: the issue asks for "well under a millisecond"; this is generous
for a loaded machine, and thread CPU time ignores preemption by other processes."""

_WS_FOLDERS = ("nautilus_trader", "nautilus_trader_py_ws", "polypy")
_MARKET_TYPES = (Book, PriceChange, LastTradePrice, TickSizeChange, BestBidAsk)
_LITERAL_FILES = (
    "test_server_messages.txt",
    "test_server_multi_book.txt",
    "test_server_multiple_last_trade_price.txt",
)


def _load_seeds(root: Path) -> tuple[list[MarketEvent], list[Book]]:
    events: list[MarketEvent] = []
    rest: list[Book] = []
    for folder in _WS_FOLDERS:
        for path in sorted((root / folder).glob("*.json")) if root.is_dir() else []:
            if path.name.startswith(("gamma_", "rtds_")):
                continue
            if path.name.startswith("clob_book"):
                rest.append(msgspec.json.decode(path.read_bytes(), type=Book, strict=False))
                continue
            frame = json.dumps(json.loads(path.read_bytes()), separators=(",", ":"))
            for item in FrameDecoder("market").decode(frame):
                if isinstance(item, _MARKET_TYPES):
                    events.append(item)
    polypy = root / "polypy"
    for name in _LITERAL_FILES:
        if (polypy / name).is_file():
            events.extend(load_literal_lines(polypy / name))
    if (polypy / "messages_hash.txt").is_file():
        snapshot, rounds = hash_sequence(root)
        events.append(snapshot)
        for change, rest_book in rounds:
            events.append(change)
            rest.append(rest_book)
    return events, rest


SEEDS, REST_SEEDS = _load_seeds(FIXTURES)

HOSTILE = (
    "1e999990",
    "1e999999",
    "1e400",
    "1e100002",
    "NaN",
    "Infinity",
    "-5",
    "+0.5",
    " 0.5",
    "5 ",
    "0.4_2",
    "1_0",
    "1,000",
    "9-",
    "1abc",
    "\u00b2",
    "\u0660.\u0665",
    "0",
    "1",
    "0.000",
    "1.5",
    "",
    "9" * 41,
    "9" * 100_000,
    "0." + "0" * 100_000 + "1",
    "0.1234567",
    "0.05",
)
_TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=10))
_NUMBER_FIELDS: dict[type, tuple[str, ...]] = {
    Book: ("tick_size", "last_trade_price", "min_order_size"),
    PriceChange: (),
    LastTradePrice: ("price",),
    TickSizeChange: ("new_tick_size",),
    BestBidAsk: ("best_bid", "best_ask"),
}
_ENTRY_FIELDS = ("price", "size", "side", "best_bid", "best_ask")


@st.composite
def _mutated(draw: st.DrawFn, event: Any) -> Any:
    """``event`` with a few of its numbers (or sides) replaced by hostile text."""
    if isinstance(event, PriceChange) and event.price_changes:
        entries = list(event.price_changes)
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(entries) - 1))
            field = draw(st.sampled_from(_ENTRY_FIELDS))
            entries[at] = msgspec.structs.replace(entries[at], **{field: draw(_TEXT)})
        return msgspec.structs.replace(event, price_changes=tuple(entries))
    if isinstance(event, Book):
        event = msgspec.structs.replace(
            event, bids=draw(_levels(event.bids)), asks=draw(_levels(event.asks))
        )
    fields: tuple[str, ...] = _NUMBER_FIELDS.get(type(event), ())
    replace: bool = draw(st.booleans())
    if fields and replace:
        event = msgspec.structs.replace(event, **{draw(st.sampled_from(fields)): draw(_TEXT)})
    return event


@st.composite
def _levels(draw: st.DrawFn, original: list[Level]) -> list[Level]:
    levels = list(original)
    mutate: bool = draw(st.booleans())
    if levels and mutate:
        at = draw(st.integers(0, len(levels) - 1))
        price, size = levels[at].price, levels[at].size
        if draw(st.booleans()):
            price = draw(_TEXT)
        else:
            size = draw(_TEXT)
        levels[at] = Level(price, size)
    return levels


@st.composite
def _run(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """A few inputs: (path, event) with path "apply", "resync" or "reconcile"."""
    steps: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 8))):
        if REST_SEEDS and draw(st.integers(0, 4)) == 0:
            book = draw(_mutated(draw(st.sampled_from(REST_SEEDS))))
            steps.append((draw(st.sampled_from(["resync", "reconcile"])), book))
        else:
            steps.append(("apply", draw(_mutated(draw(st.sampled_from(SEEDS))))))
    return steps


def _assert_well_formed(book: OrderBook) -> None:
    sides: tuple[Literal["bids"], Literal["asks"]] = ("bids", "asks")
    for side in sides:
        for level in book.levels(side):
            assert is_decimal(level.size), level
            parse_price(level.price)
    book.depth("bids")
    book.depth("asks", 3)
    summary = book.to_book()
    if book.synced:
        assert book._levels.equal_to(summary)


def _assets() -> set[str]:
    assets: set[str] = set()
    for event in [*SEEDS, *REST_SEEDS]:
        if isinstance(event, PriceChange):
            assets.update(entry.asset_id for entry in event.price_changes)
        elif isinstance(event, (Book, LastTradePrice, TickSizeChange, BestBidAsk)):
            assets.add(event.asset_id)
    return assets


ASSETS = sorted(_assets())


# The suite's 60 s per-test timeout grows with a long run.
@pytest.mark.timeout(60 + EXAMPLES // 50)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=_run())
def test_mutated_captures_never_break_a_book(steps: list[tuple[str, Any]]) -> None:
    require_captures(FIXTURES)
    registry = BookRegistry(BookOptions(grace_seconds=0.5))
    for asset in ASSETS:
        registry.add(asset)
    for now, (path, event) in enumerate(steps, start=1):
        # The bound is the book's own work: a garbage collection of the test process's heap
        # (100+ ms late in a run) is not timed into a step.
        with collector_paused(collect_first=False):
            started = time.thread_time()
            if path == "apply":
                registry.apply(event, float(now))
            elif event.asset_id in registry:
                book = registry[event.asset_id]
                if path == "resync":
                    book.complete_resync(event, resync_id=book.begin_resync(), now=float(now))
                else:
                    book.reconcile(event, float(now))
            registry.handle_timer(float(now) + 0.75)
            elapsed = time.thread_time() - started
        assert elapsed < CPU_BOUND, (elapsed, path, event)
        for book in registry.values():
            _assert_well_formed(book)


def test_the_seeds_are_the_real_captures_and_load_cleanly() -> None:
    root = require_captures(FIXTURES)
    events, rest = _load_seeds(root)
    assert len(events) >= 30 and len(rest) >= 4
    assert {type(event) for event in events} >= {Book, PriceChange, LastTradePrice}
    # Unmutated, no real input is malformed.
    registry = BookRegistry()
    for asset in ASSETS:
        registry.add(asset)
    for event in events:
        registry.apply(event)
    for book in rest:
        registry[book.asset_id].complete_resync(book)
    assert sum(book.counters.malformed for book in registry.values()) == 0
