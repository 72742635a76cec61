"""Latency: the time from the server's send to the consumer's hands, at a paced rate.

The server process of ``bench_stream.py`` (``FakePolymarket``, the same checked firehose of
mirrored ``price_change`` messages over 20 markets) writes one pre-framed message every
``1 / rate`` seconds down one connection and stamps each write with ``time.monotonic()``
(CLOCK_MONOTONIC, shared by the processes of one machine); the client stamps each event when
its consumer gets it. Latency is the difference, message by message. Contenders, taking turns:

- **polyfeed** ``MarketStream`` consumed with ``async for``, verified books on (the default)
  and ``books=False``; with books on the run fails unless every book was verified through it
  (no hash mismatch or skip, no invalidation);
- **bare aiohttp + json.loads**: ``ws.receive()`` then ``json.loads`` in a loop.

The first 10 % of each run (connection warm-up) is left out of the percentiles. With
``--freeze`` every client calls ``gc.collect(); gc.freeze()`` once set up, right before the
run (what a latency-sensitive application does after start-up): a full collection of the
start-up heap takes ~15 ms here, and whether one falls into a 2-second run decides its p99.

Usage: ``.venv/bin/python benchmarks/bench_latency.py [--rates 2000,10000] [--seconds 2]
[--rounds 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp

import polyfeed
from bench_stream import (
    MARKETS,
    SEED,
    ServerHandle,
    _check_books,
    _subscription,
    warm_up,
)
from polyfeed.native import build_name

BOOKS_ON = "polyfeed MarketStream (books on)"
BOOKS_OFF = "polyfeed books=False"
BARE = "bare aiohttp + json.loads"
TARGET_P99_OVER_BARE_US = 150.0

FREEZE = False
"""``--freeze``: collect and freeze the heap right before each run (see the module docstring)."""


def _before_run() -> None:
    if FREEZE:
        gc.collect()
        gc.freeze()


# (url, asset ids, events, trigger) -> the consumer's time.monotonic() per event, in order.
Client = Callable[[str, list[str], int, Callable[[], None]], Awaitable[list[float]]]


async def _polyfeed(
    url: str, asset_ids: list[str], n: int, start: Callable[[], None], *, books: bool
) -> list[float]:
    config = polyfeed.StreamConfig(queue=polyfeed.QueueConfig(maxsize=n + 10_000))
    rest_url = "http://" + url.removeprefix("ws://").split("/", 1)[0]
    clock = time.monotonic
    stamps: list[float] = []
    append = stamps.append
    other: list[object] = []
    async with polyfeed.MarketStream(
        asset_ids, url=url, rest_url=rest_url, config=config, books=books
    ) as stream:
        before = await warm_up(stream, asset_ids, books=books)
        _before_run()
        start()
        async for event in stream:
            if type(event) is polyfeed.PriceChange:
                append(clock())
                if len(stamps) == n:
                    break
            else:
                other.append(event)
        if books:
            await _check_books(stream.books, before)
    if other:
        raise RuntimeError(f"unexpected events during the run: {other[:3]!r}")
    return stamps


async def run_books_on(
    url: str, asset_ids: list[str], n: int, start: Callable[[], None]
) -> list[float]:
    """polyfeed as shipped: verified books on."""
    return await _polyfeed(url, asset_ids, n, start, books=True)


async def run_books_off(
    url: str, asset_ids: list[str], n: int, start: Callable[[], None]
) -> list[float]:
    """polyfeed with ``books=False``."""
    return await _polyfeed(url, asset_ids, n, start, books=False)


async def run_bare(
    url: str, asset_ids: list[str], n: int, start: Callable[[], None]
) -> list[float]:
    """aiohttp ``ws.receive()`` + ``json.loads`` per message."""
    clock = time.monotonic
    stamps: list[float] = []
    append = stamps.append
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(_subscription(asset_ids))
        await ws.receive()  # the initial book snapshots
        _before_run()
        start()
        while len(stamps) < n:
            msg = await ws.receive()
            data = json.loads(msg.data)
            if data["event_type"] != "price_change":
                raise RuntimeError(f"bare loop got {data['event_type']!r}")
            append(clock())
    return stamps


def _run(server: ServerHandle, client: Client, rate: int, n: int) -> list[float]:
    server.connections += 1
    number = server.connections

    def start() -> None:
        server.pipe.send(("pace", number, float(rate), n))

    try:
        received = asyncio.run(client(server.url, server.asset_ids, n, start))
    finally:
        gc.unfreeze()
    (_, sent) = server.reply("paced")
    if len(received) != n or len(sent) != n:
        raise RuntimeError(f"expected {n} events, got {len(received)}, server sent {len(sent)}")
    return [r - s for r, s in zip(received, sent, strict=True)][n // 10 :]


def main() -> int:
    """Parse flags, measure, print p50/p99 per rate and contender."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="2000,10000", help="messages/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=2.0, help="per run (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per contender (default 2)")
    parser.add_argument("--markets", type=int, default=MARKETS)
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() before each run")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args()
    global FREEZE
    FREEZE = args.freeze
    rates = [int(r) for r in args.rates.split(",")]
    counts = {rate: int(rate * args.seconds) for rate in rates}
    contenders: list[tuple[str, Client]] = [
        (BOOKS_ON, run_books_on),
        (BOOKS_OFF, run_books_off),
        (BARE, run_bare),
    ]
    server = ServerHandle(args.markets, SEED)
    results: dict[tuple[int, str], list[float]] = {}
    try:
        frames, _, _, verified = server.prepare(max(counts.values()))
        print(
            f"latency ({build_name()}): {args.markets} markets, {frames:,} messages prepared, "
            f"{verified:,} hashes checked; {args.seconds} s per run, {args.rounds} rounds, "
            f"gc.freeze() before runs: {FREEZE}"
        )
        for rate in rates:
            for round_number in range(args.rounds):
                shift = round_number % len(contenders)
                for name, client in contenders[shift:] + contenders[:shift]:
                    latencies = _run(server, client, rate, counts[rate])
                    results.setdefault((rate, name), []).extend(latencies)
    finally:
        server.stop()
    met = True
    header = (
        f"{'rate/s':>7} {'contender':<34} {'p50 µs':>8} {'p99 µs':>8} {'max µs':>8} "
        f"{'p99 - bare':>10}"
    )
    print(header)
    print("-" * len(header))
    for rate in rates:
        bare_p99 = statistics.quantiles(results[(rate, BARE)], n=100)[98]
        for name, _ in contenders:
            values = results[(rate, name)]
            p50 = statistics.median(values) * 1e6
            p99 = statistics.quantiles(values, n=100)[98] * 1e6
            over = p99 - bare_p99 * 1e6
            print(
                f"{rate:>7,} {name:<34} {p50:>8.0f} {p99:>8.0f} {max(values) * 1e6:>8.0f} "
                f"{'' if name == BARE else f'{over:+.0f}':>10}"
            )
            if name == BOOKS_ON and rate == 2000 and over > TARGET_P99_OVER_BARE_US:
                met = False
    print(f"target: books on at 2,000/s, p99 at most {TARGET_P99_OVER_BARE_US:.0f} µs above bare")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
