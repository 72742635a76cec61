"""Memory per asset: 10 000 verified books with 30 levels per side, measured with tracemalloc.

Each book is loaded from its own decoded ``book`` frame (so its price and size strings are its
own objects, as on a live socket: nothing is shared between books except the process-wide price
cache; each level is kept as its preimage text), then gets one ``price_change`` per side and a
hash check, which caches each side's joined text: the steady state of a verified book. Reported
per asset, in three states, next to a naive book (one dict of float price -> float size per side).

Usage: ``.venv/bin/python benchmarks/bench_memory.py [--books N] [--levels L]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import msgspec

from polyfeed import BookOptions, BookRegistry
from polyfeed.core.book_hash import HashScheme, book_hash
from polyfeed.core.codec import FrameDecoder
from polyfeed.core.messages import Book, PriceChange
from polyfeed.native import build_name

MARKET = "0x" + "ab" * 32


def _asset(index: int) -> str:
    return str(10**76 + index * 7919)  # a 77-digit token id, like the real ones


def _frame(asset: str, levels: int, index: int) -> bytes:
    bids = [
        {"price": f"0.{k:02d}", "size": f"{100 + (index + k) % 900}.{k:02d}"}
        for k in range(1, levels + 1)
    ]
    asks = [
        {"price": f"0.{99 - k:02d}", "size": f"{200 + (index + k) % 800}.{k:02d}"}
        for k in range(levels)
    ]
    return msgspec.json.encode(
        {
            "event_type": "book",
            "market": MARKET,
            "asset_id": asset,
            "timestamp": "1764000000000",
            "hash": "",
            "bids": bids,
            "asks": asks,
            "tick_size": "0.01",
            "min_order_size": "5",
            "neg_risk": False,
            "last_trade_price": "0.50",
        }
    )


def _measure(build: object, count: int) -> tuple[int, object]:
    gc.collect()
    tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    kept = build()  # type: ignore[operator]
    gc.collect()
    end, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (end - start) // count, kept


def main() -> int:
    """Build the books, print bytes per asset."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--books", type=int, default=10_000)
    parser.add_argument("--levels", type=int, default=30)
    args = parser.parse_args()
    count, depth = args.books, args.levels
    decoder = FrameDecoder("market")
    frames = [_frame(_asset(i), depth, i) for i in range(count)]
    # Warm the process-wide price cache outside the measurement (it is shared by all books).
    for event in decoder.decode(frames[0]):
        BookRegistry().apply(event)

    def snapshots() -> list[Book]:
        out: list[Book] = []
        for frame in frames:
            (event,) = decoder.decode(frame)
            assert isinstance(event, Book)
            out.append(event)
        return out

    per_event, events = _measure(snapshots, count)
    assert isinstance(events, list)

    def loaded() -> BookRegistry:
        registry = BookRegistry(BookOptions(), HashScheme.V2026, batched=True)
        for event in events:
            registry.apply(event)
        return registry

    # The snapshot events are dropped after loading; the books keep their strings.
    per_loaded, registry = _measure(loaded, count)
    assert isinstance(registry, BookRegistry)

    def verified() -> None:
        for index in range(count):
            asset = _asset(index)
            book = registry[asset]
            bids = [(level.price, level.size) for level in book.levels("bids")][::-1]
            asks = [(level.price, level.size) for level in book.levels("asks")][::-1]
            bids[-1] = (bids[-1][0], "7")
            change = {
                "event_type": "price_change",
                "market": MARKET,
                "timestamp": "1764000000001",
                "price_changes": [
                    {
                        "asset_id": asset,
                        "price": bids[-1][0],
                        "size": "7",
                        "side": "BUY",
                        "hash": book_hash(
                            market=MARKET,
                            asset_id=asset,
                            timestamp=1764000000001,
                            bids=bids,
                            asks=asks,
                            scheme=HashScheme.V2026,
                            min_order_size="5",
                            tick_size="0.01",
                            neg_risk=False,
                            last_trade_price="0.50",
                        ),
                        "best_bid": bids[-1][0],
                        "best_ask": asks[-1][0],
                    }
                ],
            }
            (event,) = decoder.decode(msgspec.json.encode(change))
            assert isinstance(event, PriceChange)
            registry.apply(event)
        registry.end_batch()

    per_verified, _ = _measure(verified, count)
    checks = sum(book.counters.hash_checks for book in registry.values())
    bad = sum(
        book.counters.hash_mismatches + book.counters.invalidations for book in registry.values()
    )
    if checks < count or bad:
        raise RuntimeError(f"{checks} hash checks, {bad} mismatches/invalidations")

    def naive() -> dict[str, tuple[dict[float, float], dict[float, float]]]:
        books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
        for frame in frames:
            data = msgspec.json.decode(frame)
            books[data["asset_id"]] = (
                {float(x["price"]): float(x["size"]) for x in data["bids"]},
                {float(x["price"]): float(x["size"]) for x in data["asks"]},
            )
        return books

    per_naive, _ = _measure(naive, count)
    print(
        f"{count:,} books, {depth} levels per side, Python {sys.version.split()[0]}, {build_name()}"
    )
    print(f"{'state':<58} {'bytes/asset':>11}")
    print(f"{'a decoded book snapshot event (for scale)':<58} {per_event:>11,}")
    print(f"{'polyfeed OrderBook, loaded from its snapshot':<58} {per_loaded:>11,}")
    print(f"{'  + one delta and a hash check (side texts cached)':<58} {per_verified:>11,}")
    print(f"{'  = verified book, steady state':<58} {per_loaded + per_verified:>11,}")
    print(f"{'naive dict-of-floats book':<58} {per_naive:>11,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
