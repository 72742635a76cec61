"""The cost of redundancy: what the exact A/B merge adds per event, and what it holds in memory.

The same realistic market-channel mix as ``bench_decode.py`` is decoded twice (each leg decodes
its own copy of every frame, as two sockets would), then:

- **decode, one leg**: ``FrameDecoder.decode`` of every frame (the cost of a plain stream);
- **decode, two legs**: the same for both legs (redundancy doubles the decoding);
- **message_key**: the identity of one message (canonical encoding + BLAKE2b-128);
- **merge, two legs**: ``LegMerger.offer`` for every message of both legs, leg B ``--lag``
  messages behind leg A (each consumer event is offered twice: once new, once a duplicate).

Memory: ``tracemalloc`` of the merger after the run (``window`` keys per market).

Usage: ``.venv/bin/python benchmarks/bench_merge.py [--quick] [--seed N] [--lag N]``.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_decode import MixBuilder
from polyfeed.core.codec import FrameDecoder
from polyfeed.core.merge import LegMerger, message_key
from polyfeed.core.messages import MarketEvent

_MARKET_TYPES: tuple[type, ...] = tuple(MarketEvent.__args__)  # type: ignore[attr-defined]


def _decode_all(frames: list[bytes]) -> list[MarketEvent]:
    decoder = FrameDecoder("market")
    out: list[MarketEvent] = []
    for frame in frames:
        out.extend(item for item in decoder.decode(frame) if isinstance(item, _MARKET_TYPES))  # type: ignore[misc]
    return out


def _best(samples: list[float]) -> float:
    return min(samples)


def run(count: int, repeats: int, seed: int, lag: int) -> dict[str, Any]:
    frames = MixBuilder(random.Random(seed)).frames(count)
    leg_a = _decode_all(frames)
    leg_b = _decode_all(frames)
    events = len(leg_a)
    timings: dict[str, list[float]] = {"decode": [], "key": [], "merge": []}
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter_ns()
        _decode_all(frames)
        timings["decode"].append((time.perf_counter_ns() - start) / events)
        start = time.perf_counter_ns()
        for event in leg_a:
            message_key(event)
        timings["key"].append((time.perf_counter_ns() - start) / events)
        merger = LegMerger(["a", "b"])
        offer = merger.offer
        start = time.perf_counter_ns()
        for index, event in enumerate(leg_a):
            offer("a", event, float(index))
            if index >= lag:
                offer("b", leg_b[index - lag], float(index))
        for index in range(max(0, events - lag), events):
            offer("b", leg_b[index], float(events))
        timings["merge"].append((time.perf_counter_ns() - start) / events)
        assert merger.emitted == events, (merger.emitted, events)
    tracemalloc.start()
    merger = LegMerger(["a", "b"])
    for index, event in enumerate(leg_a):
        merger.offer("a", event, float(index))
        merger.offer("b", leg_b[index], float(index))
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    markets = len({event.market for event in leg_a})
    return {
        "frames": count,
        "events": events,
        "markets": markets,
        "window": merger.window,
        "decode_ns": _best(timings["decode"]),
        "key_ns": _best(timings["key"]),
        "merge_ns": _best(timings["merge"]),
        "merge_median_ns": statistics.median(timings["merge"]),
        "memory_bytes": held,
        "stats": {leg: merger.stats[leg] for leg in merger.legs},
    }


def report(result: dict[str, Any]) -> None:
    decode = result["decode_ns"]
    merge = result["merge_ns"]
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(
        f"{result['frames']} frames, {result['events']} market events, "
        f"{result['markets']} markets, window {result['window']}"
    )
    print(f"decode, one leg        {decode:8.0f} ns/event")
    print(f"decode, two legs       {2 * decode:8.0f} ns/event")
    print(f"message_key            {result['key_ns']:8.0f} ns/message")
    print(f"merge, two legs        {merge:8.0f} ns/event (median {result['merge_median_ns']:.0f})")
    print(f"redundancy, total      {(2 * decode + merge) / decode:8.2f}x one leg's decode")
    per_market = result["memory_bytes"] / result["markets"]
    print(
        f"merger memory          {result['memory_bytes'] / 1e6:8.2f} MB "
        f"({per_market / 1e3:.0f} kB per market)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and repeats")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lag", type=int, default=50, help="messages leg B runs behind")
    args = parser.parse_args(argv)
    count, repeats = (2_000, 2) if args.quick else (20_000, 5)
    report(run(count, repeats, args.seed, args.lag))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
