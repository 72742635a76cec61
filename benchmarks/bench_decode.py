"""Decode throughput: polyfeed's typed FrameDecoder vs json.loads and orjson.loads.

A realistic market-channel mix is generated in the shapes of real captures (77-digit token ids,
0x-prefixed 64-hex condition ids, 40-hex hashes, string prices/sizes, ms timestamps as strings):
mostly two-entry ``price_change`` (YES/NO mirrored), some 20-level ``book`` snapshots,
``last_trade_price``, ``best_bid_ask`` and ``tick_size_change``, and some array frames (initial
dumps and bursts). Frames are pre-encoded; every decoder gets the same frames in the same run.

Usage: ``.venv/bin/python benchmarks/bench_decode.py [--quick] [--check] [--seed N] [--hostile]``.
``--check`` exits 1 when the typed decode is less than 2.5x faster than ``json.loads``.
``--hostile`` also times amplification frames (4 and 16 MiB arrays of tiny elements) and reports
their items and tracemalloc peak.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from polyfeed.core.codec import FrameDecoder

try:
    import orjson
except ImportError:  # orjson is a dev-only dependency; the bench still runs without it
    orjson = None

TARGET_RATIO = 2.5

POLY_BYTES = "polyfeed FrameDecoder.decode (bytes)"
POLY_STR = "polyfeed FrameDecoder.decode (str)"
JSON_BYTES = "json.loads (bytes)"
JSON_STR = "json.loads (str)"
ORJSON_BYTES = "orjson.loads (bytes)"


class MixBuilder:
    """Generates frames shaped like real market-channel captures."""

    def __init__(self, rng: random.Random, markets: int = 50) -> None:
        self.rng = rng
        self.markets = [
            (
                "0x" + rng.randbytes(32).hex(),
                str(rng.getrandbits(255)),
                str(rng.getrandbits(255)),
            )
            for _ in range(markets)
        ]
        self.clock = 1_761_179_883_493

    def _timestamp(self) -> str:
        self.clock += self.rng.randint(1, 400)
        return str(self.clock)

    def _hash(self) -> str:
        return self.rng.randbytes(20).hex()

    def _price(self) -> str:
        return f"{self.rng.randint(1, 99) / 100:.2f}".rstrip("0").rstrip(".")

    def _size(self) -> str:
        return f"{self.rng.uniform(1, 200_000):.2f}".rstrip("0").rstrip(".")

    def price_change(self) -> dict[str, Any]:
        market, yes, no = self.rng.choice(self.markets)
        price = self.rng.randint(1, 99)
        size = "0" if self.rng.random() < 0.3 else self._size()
        side = self.rng.choice(["BUY", "SELL"])
        other = "SELL" if side == "BUY" else "BUY"
        best_bid = self.rng.randint(1, 98)
        return {
            "event_type": "price_change",
            "market": market,
            "price_changes": [
                {
                    "asset_id": yes,
                    "price": f"{price / 100:g}",
                    "size": size,
                    "side": side,
                    "hash": self._hash(),
                    "best_bid": f"{best_bid / 100:g}",
                    "best_ask": f"{(best_bid + 1) / 100:g}",
                },
                {
                    "asset_id": no,
                    "price": f"{(100 - price) / 100:g}",
                    "size": size,
                    "side": other,
                    "hash": self._hash(),
                    "best_bid": f"{(99 - best_bid) / 100:g}",
                    "best_ask": f"{(100 - best_bid) / 100:g}",
                },
            ],
            "timestamp": self._timestamp(),
        }

    def book(self, levels: int = 20) -> dict[str, Any]:
        market, yes, _ = self.rng.choice(self.markets)
        mid = self.rng.randint(levels + 1, 99 - levels)
        # Live order: bids ascending and asks descending (best level last).
        bids = [{"price": f"{p / 100:g}", "size": self._size()} for p in range(mid - levels, mid)]
        asks = [
            {"price": f"{p / 100:g}", "size": self._size()} for p in range(mid + levels, mid, -1)
        ]
        return {
            "market": market,
            "asset_id": yes,
            "timestamp": self._timestamp(),
            "hash": self._hash(),
            "bids": bids,
            "asks": asks,
            "tick_size": "0.01",
            "event_type": "book",
            "last_trade_price": self._price(),
        }

    def last_trade_price(self) -> dict[str, Any]:
        market, yes, _ = self.rng.choice(self.markets)
        return {
            "asset_id": yes,
            "event_type": "last_trade_price",
            "fee_rate_bps": "0",
            "market": market,
            "price": self._price(),
            "side": self.rng.choice(["BUY", "SELL"]),
            "size": self._size(),
            "timestamp": self._timestamp(),
            "transaction_hash": "0x" + self.rng.randbytes(32).hex(),
        }

    def best_bid_ask(self) -> dict[str, Any]:
        market, yes, _ = self.rng.choice(self.markets)
        bid = self.rng.randint(1, 97)
        return {
            "event_type": "best_bid_ask",
            "market": market,
            "asset_id": yes,
            "best_bid": f"{bid / 100:g}",
            "best_ask": f"{(bid + 2) / 100:g}",
            "spread": "0.02",
            "timestamp": self._timestamp(),
        }

    def tick_size_change(self) -> dict[str, Any]:
        market, yes, _ = self.rng.choice(self.markets)
        return {
            "event_type": "tick_size_change",
            "market": market,
            "asset_id": yes,
            "old_tick_size": "0.01",
            "new_tick_size": "0.001",
            "timestamp": self._timestamp(),
        }

    def frame(self) -> Any:
        roll = self.rng.random()
        if roll < 0.66:
            return self.price_change()
        if roll < 0.72:
            return self.book()
        if roll < 0.82:
            return self.last_trade_price()
        if roll < 0.91:
            return self.best_bid_ask()
        if roll < 0.92:
            return self.tick_size_change()
        if roll < 0.96:
            # A burst of deltas delivered as one array frame.
            return [self.price_change() for _ in range(self.rng.randint(2, 4))]
        # An initial dump: the books of both outcome tokens in one array frame.
        return [self.book(), self.book()]

    def frames(self, count: int) -> list[bytes]:
        return [json.dumps(self.frame(), separators=(",", ":")).encode() for _ in range(count)]


CHUNK = 500


def _time_chunk(decode: Callable[[Any], object], chunk: list[Any]) -> int:
    """Nanoseconds for one pass over ``chunk``, with the cyclic GC paused as timeit does."""
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for frame in chunk:
            decode(frame)
        return time.perf_counter_ns() - start
    finally:
        gc.enable()


def run(count: int, repeats: int, seed: int) -> dict[str, Any]:
    """Time every decoder on the same frames.

    The frames are cut into chunks of ``CHUNK``; each repetition times every chunk with every
    decoder in turn (interleaved, so all share the machine's drift). ``best`` sums the fastest
    time seen for each chunk, which filters out chunks that were slowed down by other processes
    on a shared machine; ``median`` is the median of whole-mix passes.
    """
    frames = MixBuilder(random.Random(seed)).frames(count)
    texts = [frame.decode() for frame in frames]

    check = FrameDecoder("market")
    for frame in frames:
        check.decode(frame)
    stats = check.stats
    assert stats.unknown == stats.malformed == stats.notices == stats.pongs == 0, stats
    assert stats.frames == count, stats

    decoders: list[tuple[str, Callable[[Any], object], list[Any]]] = [
        (POLY_BYTES, FrameDecoder("market").decode, frames),
        (POLY_STR, FrameDecoder("market").decode, texts),
        (JSON_BYTES, json.loads, frames),
        (JSON_STR, json.loads, texts),
    ]
    if orjson is not None:
        decoders.append((ORJSON_BYTES, orjson.loads, frames))

    starts = range(0, count, CHUNK)
    chunk_best = {name: [float("inf")] * len(starts) for name, _, _ in decoders}
    passes: dict[str, list[int]] = {name: [] for name, _, _ in decoders}
    for _name, decode, data in decoders:  # warm-up
        _time_chunk(decode, data[:CHUNK])
    for _ in range(repeats):
        totals = dict.fromkeys(passes, 0)
        for index, first in enumerate(starts):
            for name, decode, data in decoders:
                elapsed = _time_chunk(decode, data[first : first + CHUNK])
                totals[name] += elapsed
                chunk_best[name][index] = min(chunk_best[name][index], elapsed)
        gc.collect()
        for name, total in totals.items():
            passes[name].append(total)

    return {
        "frames": count,
        "events": stats.events,
        "bytes": sum(len(frame) for frame in frames),
        "best": {name: sum(best) / count for name, best in chunk_best.items()},
        "median": {name: statistics.median(p) / count for name, p in passes.items()},
    }


def report(result: dict[str, Any]) -> float:
    """Print the table; return the headline ratio json.loads / polyfeed (bytes, best)."""
    best: dict[str, float] = result["best"]
    median: dict[str, float] = result["median"]
    frames, events = result["frames"], result["events"]
    print(
        f"mix: {frames} frames, {events} events, "
        f"avg {result['bytes'] / frames:.0f} bytes/frame; "
        f"Python {platform.python_version()}, {platform.machine()}, GC paused while timing"
    )
    header = f"{'decoder':<40} {'best ns/frame':>14} {'median':>10} {'÷ polyfeed':>11}"
    print(header)
    print("-" * len(header))
    for name, value in best.items():
        reference = best[POLY_STR] if name.endswith("(str)") else best[POLY_BYTES]
        print(f"{name:<40} {value:>14.0f} {median[name]:>10.0f} {value / reference:>10.2f}x")
    ratio = best[JSON_BYTES] / best[POLY_BYTES]
    ratio_str = best[JSON_STR] / best[POLY_STR]
    print()
    print(f"json.loads / polyfeed, bytes frames: {ratio:.2f}x")
    print(f"json.loads / polyfeed, str frames:   {ratio_str:.2f}x")
    if ORJSON_BYTES in best:
        print(f"orjson.loads / polyfeed, bytes:      {best[ORJSON_BYTES] / best[POLY_BYTES]:.2f}x")
    print(f"polyfeed per event (bytes): {best[POLY_BYTES] * frames / events:.0f} ns")
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(f"target: >= {TARGET_RATIO}x faster than json.loads on bytes frames: {verdict}")
    return ratio


HOSTILE_ELEMENTS = {
    "[0,0,...]": b"0",
    "[{},{},...]": b"{}",
    "[[],[],...]": b"[]",
    "tiny valid events": b'{"event_type":"market_resolved","market":"","timestamp":0}',
}


def hostile() -> None:
    """Time and memory of decoding amplification frames (one decode each, GC running)."""
    print()
    header = f"{'hostile frame':<24} {'MiB':>4} {'items':>6} {'seconds':>8} {'peak MiB':>9}"
    print(header)
    print("-" * len(header))
    for name, element in HOSTILE_ELEMENTS.items():
        for mib in (4, 16):
            frame = b"[" + b",".join([element] * ((mib << 20) // (len(element) + 1))) + b"]"
            start = time.perf_counter()
            items = FrameDecoder("market").decode(frame)
            elapsed = time.perf_counter() - start
            del items
            tracemalloc.start()
            try:
                items = FrameDecoder("market").decode(frame)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            print(f"{name:<24} {mib:>4} {len(items):>6} {elapsed:>8.3f} {peak / 2**20:>9.1f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 unless ``--check`` and the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and repetitions")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument("--seed", type=int, default=20251023)
    parser.add_argument("--hostile", action="store_true", help="also time amplification frames")
    args = parser.parse_args(argv)
    count, repeats = (4_000, 5) if args.quick else (20_000, 15)
    ratio = report(run(count, repeats, args.seed))
    if args.hostile:
        hostile()
    return 1 if args.check and ratio < TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
