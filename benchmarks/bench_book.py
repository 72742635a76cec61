"""Order book cost: polyfeed's OrderBook vs a naive dict-per-side book that sorts on read.

A realistic single-asset flow is generated: a 0.01-tick book with ~30 levels per side, and
``price_change`` messages with one entry each, clustered near the inside (30 % removals), carrying
the server's ``best_bid``/``best_ask`` and the correct 2025-scheme book hash (so the integrity
checks do their full work and never fall into doubt). Every book replays the same messages.

Measured in one run:

- per ``price_change``: apply one entry + read best bid and best ask, polyfeed's registry (the
  stream's path, top-of-book check on as by default) vs the naive loop's book (``float`` keys and
  sizes, ``max()``/``min()`` on every read); target >= 3x cheaper (issue 9). Also shown: no
  checks, and the exact naive book (``Decimal`` keys);
- best bid/ask read: one property read, target < 150 ns (loop overhead included);
- integrity strengths, ns per message: none, cheap top-of-book check, hash every message, hash
  every 10th message.

Usage: ``.venv/bin/python benchmarks/bench_book.py [--quick] [--check] [--seed N]``.
``--check`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from polyfeed.core.book import BookOptions, BookRegistry, OrderBook
from polyfeed.core.book_hash import HashScheme, book_hash
from polyfeed.core.messages import Book, Level, PriceChange, PriceChangeEntry
from polyfeed.native import build_name

TARGET_RATIO = 3.0
TARGET_READ_NS = 150.0
NAIVE = "naive"
NAIVE_FLOAT = "naive float"
REGISTRY = "polyfeed BookRegistry.apply, checks: "
PLAIN = "polyfeed OrderBook.apply (multi-entry loop), no checks"

MARKET = "0x" + "ab" * 32
ASSET = "94022367472047775158269173293876979533288470167463650966689320774843018181757"
METADATA = {"min_order_size": "5", "tick_size": "0.01", "neg_risk": False}


def _price(step: int) -> str:
    return f"{step / 100:.2f}".rstrip("0")


class Flow:
    """Generates a snapshot and a sequence of consistent one-entry ``price_change`` messages."""

    def __init__(self, rng: random.Random, levels_per_side: int = 30) -> None:
        self.rng = rng
        self.bids: dict[int, str] = {}
        self.asks: dict[int, str] = {}
        for step in rng.sample(range(1, 49), levels_per_side):
            self.bids[step] = self._size()
        for step in rng.sample(range(52, 100), levels_per_side):
            self.asks[step] = self._size()
        self.timestamp = 1_761_179_883_493

    def _size(self) -> str:
        return f"{self.rng.uniform(1, 200_000):.2f}".rstrip("0").rstrip(".")

    def _wire(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids = [(_price(s), self.bids[s]) for s in sorted(self.bids)]
        asks = [(_price(s), self.asks[s]) for s in sorted(self.asks, reverse=True)]
        return bids, asks

    def _hash(self) -> str:
        bids, asks = self._wire()
        return book_hash(
            market=MARKET,
            asset_id=ASSET,
            timestamp=self.timestamp,
            bids=bids,
            asks=asks,
            scheme=HashScheme.V2025,
            **METADATA,  # type: ignore[arg-type]
        )

    def snapshot(self) -> Book:
        bids, asks = self._wire()
        return Book(
            market=MARKET,
            asset_id=ASSET,
            timestamp=self.timestamp,
            bids=[Level(p, s) for p, s in bids],
            asks=[Level(p, s) for p, s in asks],
            hash=self._hash(),
        )

    def message(self) -> PriceChange:
        rng = self.rng
        is_bid = rng.random() < 0.5
        side, other = (self.bids, self.asks) if is_bid else (self.asks, self.bids)
        best = max(side) if is_bid else min(side)
        limit = min(other) if is_bid else max(other)
        offset = min(int(rng.expovariate(0.4)), 20)
        step = best - offset if is_bid else best + offset
        if rng.random() < 0.1:
            step = best + 1 if is_bid else best - 1  # improve the inside
        step = max(1, min(99, step))
        if (is_bid and step >= limit) or (not is_bid and step <= limit):
            step = best
        if rng.random() < 0.3 and step in side and len(side) > 5:
            size = "0"
            del side[step]
        else:
            size = self._size()
            side[step] = size
        self.timestamp += rng.randint(1, 200)
        entry = PriceChangeEntry(
            asset_id=ASSET,
            price=_price(step),
            size=size,
            side="BUY" if is_bid else "SELL",
            hash=self._hash(),
            best_bid=_price(max(self.bids)),
            best_ask=_price(min(self.asks)),
        )
        return PriceChange(market=MARKET, timestamp=self.timestamp, price_changes=(entry,))


class FloatBook:
    """The naive loop's book: ``float`` keys and sizes in a dict per side, best found on every
    read (fast and inexact: ``0.1 + 0.2`` style prices and sizes lose their server spelling)."""

    def __init__(self, snapshot: Book) -> None:
        self.bids = {float(lv.price): float(lv.size) for lv in snapshot.bids}
        self.asks = {float(lv.price): float(lv.size) for lv in snapshot.asks}

    def apply(self, entry: PriceChangeEntry) -> None:
        side = self.bids if entry.side == "BUY" else self.asks
        price = float(entry.price)
        size = float(entry.size)
        if size == 0:
            side.pop(price, None)
        else:
            side[price] = size

    @property
    def best_bid(self) -> float | None:
        return max(self.bids) if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return min(self.asks) if self.asks else None


class NaiveBook:
    """The baseline: exact ``Decimal`` keys in a dict per side, best found on every read."""

    def __init__(self, snapshot: Book) -> None:
        self.bids = {Decimal(lv.price): lv.size for lv in snapshot.bids}
        self.asks = {Decimal(lv.price): lv.size for lv in snapshot.asks}

    def apply(self, entry: PriceChangeEntry) -> None:
        side = self.bids if entry.side == "BUY" else self.asks
        price = Decimal(entry.price)
        if Decimal(entry.size) == 0:
            side.pop(price, None)
        else:
            side[price] = entry.size

    @property
    def best_bid(self) -> Decimal | None:
        return max(self.bids) if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return min(self.asks) if self.asks else None


def _polyfeed_book(snapshot: Book, options: BookOptions) -> OrderBook:
    book = OrderBook(ASSET, MARKET, options=options, **METADATA)  # type: ignore[arg-type]
    book.apply(snapshot)
    return book


def _timed(
    book: OrderBook, apply: Callable[[PriceChange], object], messages: list[PriceChange]
) -> float:
    """ns per message of ``apply`` + a best bid/ask read; the book must end verified."""
    start = time.perf_counter_ns()
    for message in messages:
        apply(message)
        _ = book.best_bid
        _ = book.best_ask
    elapsed = time.perf_counter_ns() - start
    counters = book.counters
    assert book.synced and counters.hash_mismatches == 0 and counters.top_mismatches == 0, book
    return elapsed / len(messages)


def _run_polyfeed(snapshot: Book, messages: list[PriceChange], options: BookOptions) -> float:
    book = _polyfeed_book(snapshot, options)
    return _timed(book, book.apply, messages)


def _run_registry(snapshot: Book, messages: list[PriceChange], options: BookOptions) -> float:
    """The stream's path: ``BookRegistry.apply`` (one-entry messages go to ``apply_entry``)."""
    registry = BookRegistry(options)
    registry.set_market_info(MARKET, **METADATA)  # type: ignore[arg-type]
    registry.apply(snapshot)
    return _timed(registry[ASSET], registry.apply, messages)


def _run_naive(
    snapshot: Book, messages: list[PriceChange], kind: type[NaiveBook | FloatBook]
) -> float:
    book = kind(snapshot)
    entries = [message.price_changes[0] for message in messages]
    apply = book.apply
    start = time.perf_counter_ns()
    for entry in entries:
        apply(entry)
        _ = book.best_bid
        _ = book.best_ask
    return (time.perf_counter_ns() - start) / len(entries)


def _read_ns(snapshot: Book, reads: int) -> tuple[float, float]:
    """ns per top-of-book read, raw and net of a loop doing two local stores instead."""
    book = _polyfeed_book(snapshot, BookOptions(check_top=False, hash_check_every=0))
    loop = range(reads)
    start = time.perf_counter_ns()
    for _ in loop:
        _ = book.best_bid
        _ = book.best_ask
    raw = (time.perf_counter_ns() - start) / (2 * reads)
    start = time.perf_counter_ns()
    for _ in loop:
        _ = book
        _ = book
    empty = (time.perf_counter_ns() - start) / (2 * reads)
    return raw, max(0.0, raw - empty)


def _interleaved(
    repeats: int, runs: dict[str, Callable[[], float]]
) -> dict[str, tuple[float, float]]:
    """(min, median) per run; the runs take turns so that load changes hit them all alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(run())
    return {name: (min(values), statistics.median(values)) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and repeats")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    count, repeats, reads = (5_000, 5, 200_000) if args.quick else (20_000, 7, 2_000_000)

    flow = Flow(random.Random(args.seed))
    snapshot = flow.snapshot()
    messages = [flow.message() for _ in range(count)]
    levels = _polyfeed_book(snapshot, BookOptions()).level_counts()

    strengths = {
        "none": BookOptions(check_top=False, hash_check_every=0),
        "cheap (best bid/ask check)": BookOptions(check_top=True, hash_check_every=0),
        "hash every message": BookOptions(check_top=True, hash_check_every=1),
        "hash every 10th message": BookOptions(check_top=True, hash_check_every=10),
    }
    gc.collect()
    gc.disable()
    try:
        runs: dict[str, Callable[[], float]] = {
            NAIVE: lambda: _run_naive(snapshot, messages, NaiveBook),
            NAIVE_FLOAT: lambda: _run_naive(snapshot, messages, FloatBook),
        }
        for name, options in strengths.items():
            runs[REGISTRY + name] = lambda o=options: _run_registry(snapshot, messages, o)
        runs[PLAIN] = lambda: _run_polyfeed(snapshot, messages, strengths["none"])
        results = _interleaved(repeats, runs)
        naive = results.pop(NAIVE)
        naive_float = results.pop(NAIVE_FLOAT)
        read_raw, read_net = min(_read_ns(snapshot, reads) for _ in range(repeats))
    finally:
        gc.enable()

    fast = results[REGISTRY + "none"][0]
    cheap = results[REGISTRY + "cheap (best bid/ask check)"][0]
    ratio = naive_float[0] / cheap
    print(
        f"polyfeed book benchmark ({build_name()}) — Python {platform.python_version()} on "
        f"{platform.machine()}"
    )
    print(f"{count} one-entry price_change messages, {repeats} repeats (min / median), ", end="")
    print(f"book ~{levels[0]}/{levels[1]} levels\n")
    print(f"{'per price_change (apply + best bid/ask read)':<58} {'min ns':>9} {'median ns':>10}")
    for label, (best, median) in (
        ("naive dict book, Decimal keys, max()/min() on read", naive),
        ("naive dict book, float keys and sizes, max()/min()", naive_float),
        *results.items(),
    ):
        print(f"{label:<58} {best:>9.0f} {median:>10.0f}")
    print()
    print(f"float naive ÷ polyfeed (registry, top check): {ratio:.1f}x (target >= {TARGET_RATIO}x)")
    print(f"float naive ÷ polyfeed (registry, no checks): {naive_float[0] / fast:.1f}x")
    print(f"Decimal naive ÷ polyfeed (registry, top check): {naive[0] / cheap:.1f}x, ", end="")
    print(f"(registry, no checks): {naive[0] / fast:.1f}x")
    print(f"best bid/ask read: {read_raw:.0f} ns (net of loop {read_net:.0f} ns), ", end="")
    print(f"target < {TARGET_READ_NS:.0f} ns")
    print("integrity cost over no checks, ns/msg: ", end="")
    print(
        ", ".join(
            f"{name.removeprefix(REGISTRY)}: {results[name][0] - fast:+.0f}"
            for name in list(results)[1:]
            if name.startswith(REGISTRY)
        )
    )
    failed = ratio < TARGET_RATIO or read_raw >= TARGET_READ_NS
    if args.check and failed:
        print("FAILED: a target was missed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
