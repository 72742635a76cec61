"""Per-stage cost of the books-on path without sockets: decode, registry, end of batch.

The fake's market simulator (20 binary markets, one ``price_change`` per step carrying both
mirrored entries with the server's best bid/ask and a correct 2026-scheme hash) generates the
frames; a batched :class:`BookRegistry` with the default options and the markets' metadata then
takes them in batches of 512 (the size of a stream's turn): ``FrameDecoder.decode_many``,
``BookRegistry.apply_run`` over the batch (as the stream's book keeper calls it), one ``end_batch``
per batch. Every verdict must be ok (every
hash checked and matching). Reported: ns per event of each stage, best of ``--rounds`` (the
garbage collector frozen after setup), for the installed build (compiled or pure). ``--options``
takes a ``BookOptions(...)`` expression to see what each check costs.

Usage: ``.venv/bin/python benchmarks/bench_apply.py [--frames N] [--rounds R] [--options EXPR]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from polyfeed.core.book import BookOptions, BookRegistry, BookVerdict
from polyfeed.core.codec import FrameDecoder
from polyfeed.native import build_name
from polyfeed.testing.market_sim import MarketSimulator

BATCH = 512
MARKETS = 20


def _workload(frames: int) -> tuple[list[bytes], list[bytes], list[tuple[str, str, str, bool]]]:
    """(snapshot frames, price_change frames, (market, min_order_size, tick, neg_risk))."""
    sim = MarketSimulator(
        MARKETS, seed=11, wall=lambda: 1.7e9, trade_probability=0.0, run_probability=0.0
    )
    markets = list(sim.markets)
    snapshots = [
        sim.snapshot(token).raw
        for market in markets
        for token in (market.yes_token, market.no_token)
    ]
    metadata = [
        (m.condition_id, sim.min_order_size, sim.tick_size(m.yes_token), sim.neg_risk)
        for m in markets
    ]
    changes: list[bytes] = []
    while len(changes) < frames:
        changes.extend(m.raw for m in sim.step() if m.event_type == "price_change")
    return snapshots, changes[:frames], metadata


def _round(
    snapshots: list[bytes],
    changes: list[bytes],
    metadata: list[tuple[str, str, str, bool]],
    options: BookOptions,
) -> tuple[float, float, float]:
    """ns per event of decode, registry and end of batch over every frame."""
    decoder = FrameDecoder("market")
    registry = BookRegistry(options, batched=True)
    for market, min_order_size, tick_size, neg_risk in metadata:
        registry.set_market_info(
            market, min_order_size=min_order_size, tick_size=tick_size, neg_risk=neg_risk
        )
    for event in decoder.decode_many(snapshots):
        registry.apply(event, 0.0)
    decoding = applying = ending = 0
    events = 0
    caused: list[tuple[int, list[BookVerdict]]] = []
    for start in range(0, len(changes), BATCH):
        t0 = time.perf_counter_ns()
        batch = decoder.decode_many(changes[start : start + BATCH])
        t1 = time.perf_counter_ns()
        # The stream's path: the keeper hands the batch's run of updates to apply_run.
        if registry.apply_run(batch, 0, 1.0, caused) != len(batch) or caused:
            raise AssertionError(f"a verdict or a non-update in the batch: {caused!r}")
        t2 = time.perf_counter_ns()
        if any(verdict.action != "ok" for verdict in registry.end_batch(1.0)):
            raise AssertionError("a book failed its end-of-batch check")
        t3 = time.perf_counter_ns()
        decoding += t1 - t0
        applying += t2 - t1
        ending += t3 - t2
        events += len(batch)
    return decoding / events, applying / events, ending / events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--options", default="BookOptions()", help="a BookOptions(...) expression")
    args = parser.parse_args()
    options = eval(args.options, {"BookOptions": BookOptions})  # a benchmark's own argument
    if not isinstance(options, BookOptions):
        parser.error("--options must evaluate to a BookOptions")
    snapshots, changes, metadata = _workload(args.frames)
    gc.collect()
    gc.freeze()
    rounds = [_round(snapshots, changes, metadata, options) for _ in range(args.rounds)]
    decode, apply, end = min(rounds, key=sum)
    print(
        f"books-on path without sockets ({build_name()}): {len(changes):,} price_change frames "
        f"(2 entries each), {MARKETS} markets, batches of {BATCH}, {options}"
    )
    print(f"ns per event, best of {args.rounds} rounds:")
    print(f"  decode {decode:,.0f}  registry {apply:,.0f}  end of batch {end:,.0f}  ", end="")
    print(f"total {decode + apply + end:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
