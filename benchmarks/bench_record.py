"""Recording throughput: sustained events/s into each sink vs the stream alone, same run.

The server is ``bench_stream``'s: ``FakePolymarket`` in a process of its own, one burst of
pre-encoded ``price_change`` frames prepared once and written to each connection in one call, so
the client is always the bottleneck. The contenders take turns on the same burst, several rounds:

- **stream alone**: ``MarketStream`` as shipped (verified books on) consumed with ``async for``;
  its rate is the peak the recorders are held against;
- **record → sqlite / parquet / redis**: the same stream feeding a ``Recorder`` into the sink
  (defaults: batches of up to 5,000 records, 1 s window); the clock stops when the sink has
  committed the N-th ``price_change`` (a graceful stop is requested once the N-th is taken, so
  no batch waits out its window). Redis runs when ``POLYFEED_TEST_REDIS_URL`` (or
  ``--redis-url``) names a server.

Every queue is large enough that nothing is dropped; a drop or a gap fails the run. The target:
the SQLite recorder sustains at least 50 % of the stream's peak rate.

Usage: ``.venv/bin/python benchmarks/bench_record.py [--quick] [--n N] [--rounds R]
[--redis-url URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import polyfeed
from bench_stream import MARKETS, SEED, RunResult, ServerHandle, Stopwatch, run_polyfeed
from polyfeed.sinks.base import Record, Recorder, Resume, SessionInfo, Sink
from polyfeed.sinks.sqlite import SqliteSink

TARGET_SQLITE_VS_STREAM = 0.5
STREAM = "stream alone"


class CountingSink:
    """Wraps a sink; stops the stopwatch when the N-th price_change record is committed."""

    def __init__(self, inner: Sink, n: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.n = n
        self.written = 0
        self.watch: Stopwatch | None = None
        self.result: RunResult | None = None

    def __repr__(self) -> str:
        return f"CountingSink({self.inner!r}, written={self.written}/{self.n})"

    async def open(self, session: SessionInfo) -> Resume | None:
        return await self.inner.open(session)

    async def write(self, records: Sequence[Record]) -> None:
        await self.inner.write(records)
        self.written += sum(record.event_type == "price_change" for record in records)
        if self.result is None and self.written >= self.n and self.watch is not None:
            self.result = self.watch.result(self.written)

    async def aclose(self, ended: float) -> None:
        await self.inner.aclose(ended)


async def run_recorder(
    url: str,
    asset_ids: list[str],
    n: int,
    start_burst: Callable[[], None],
    make_sink: Callable[[], Sink],
) -> RunResult:
    """The stream feeding a Recorder into ``make_sink()``; timed until the sink has N events."""
    config = polyfeed.StreamConfig(queue=polyfeed.QueueConfig(maxsize=n + 10_000))
    rest_url = "http://" + url.removeprefix("ws://").split("/", 1)[0]
    sink = CountingSink(make_sink(), n)
    unexpected: list[object] = []
    async with polyfeed.MarketStream(
        asset_ids, url=url, rest_url=rest_url, config=config
    ) as stream:
        recorder: Recorder | None = None

        class Source:
            """The stream, starting the burst once every snapshot is in."""

            snapshots = 0
            taken = 0

            def __aiter__(self) -> Source:
                return self

            async def __anext__(self) -> Any:
                event = await stream.__anext__()
                if type(event) is polyfeed.Book and Source.snapshots < len(asset_ids):
                    Source.snapshots += 1
                    if Source.snapshots == len(asset_ids):
                        sink.watch = Stopwatch()
                        start_burst()
                elif type(event) is polyfeed.PriceChange:
                    Source.taken += 1
                    if Source.taken == n and recorder is not None:
                        recorder.request_stop()
                elif isinstance(event, polyfeed.Gap | polyfeed.BookInvalidated):
                    unexpected.append(event)
                return event

            async def aclose(self) -> None:
                await stream.aclose()

        recorder = Recorder(
            Source(), sink, channel="market", ids=asset_ids, max_buffer=max(50_000, 2 * 5_000)
        )
        await recorder.run()
        drops = stream.health().dropped_events
    if unexpected or sink.result is None:
        raise RuntimeError(f"run failed: {sink!r}, unexpected {unexpected[:3]!r}")
    sink.result.drops = drops
    return sink.result


def sink_factories(workdir: Path, redis_url: str | None) -> dict[str, Callable[[], Sink]]:
    """One fresh sink per run, by contender name."""
    counter = iter(range(1_000_000))
    factories: dict[str, Callable[[], Sink]] = {
        "record → sqlite": lambda: SqliteSink(workdir / f"bench-{next(counter)}.db"),
    }
    try:
        from polyfeed.sinks.parquet import ParquetSink

        factories["record → parquet"] = lambda: ParquetSink(workdir / f"pq-{next(counter)}")
    except ImportError:
        print("parquet: pyarrow not installed, skipped")
    if redis_url:
        try:
            from polyfeed.sinks.redis import RedisSink

            prefix = f"polyfeed-bench-{uuid.uuid4().hex[:8]}"
            factories["record → redis"] = lambda: RedisSink(
                redis_url, prefix=f"{prefix}-{next(counter)}", maxlen=None
            )
        except ImportError:
            print("redis: redis-py not installed, skipped")
    return factories


async def cleanup_redis(redis_url: str | None) -> None:
    """Delete the benchmark's streams."""
    if not redis_url:
        return
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match="polyfeed-bench-*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when SQLite misses its target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20k events, 1 round")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url", default=os.environ.get("POLYFEED_TEST_REDIS_URL"))
    args = parser.parse_args(argv)
    n, rounds = (20_000, 1) if args.quick else (args.n, args.rounds)
    server = ServerHandle(MARKETS, SEED)
    results: dict[str, list[RunResult]] = {}
    try:
        frames, wire, _ = server.prepare(n)
        print(
            f"polyfeed {polyfeed.__name__} | python {platform.python_version()} | "
            f"{frames} price_change frames ({wire / 1e6:.1f} MB) x {rounds} rounds"
        )
        with tempfile.TemporaryDirectory(prefix="polyfeed-bench-") as tmp:
            factories = sink_factories(Path(tmp), args.redis_url)
            for _ in range(rounds):
                start = server.next_connection("wire")
                result = asyncio.run(
                    run_polyfeed(server.url, server.asset_ids, frames, wire, start)
                )
                server.sent()
                results.setdefault(STREAM, []).append(result)
                for name, factory in factories.items():
                    start = server.next_connection("wire")
                    result = asyncio.run(
                        run_recorder(server.url, server.asset_ids, frames, start, factory)
                    )
                    server.sent()
                    results.setdefault(name, []).append(result)
            asyncio.run(cleanup_redis(args.redis_url))
    finally:
        server.stop()
    peak = max(r.rate for r in results[STREAM])
    print(
        f"{'contender':<20} {'events/s (median)':>18} {'best':>10} {'per CPU s':>10} {'vs peak':>8}"
    )
    for name, runs in results.items():
        rates = [r.rate for r in runs]
        median = statistics.median(rates)
        cpu = statistics.median(r.cpu_rate for r in runs)
        print(
            f"{name:<20} {median:>18,.0f} {max(rates):>10,.0f} {cpu:>10,.0f} {median / peak:>8.0%}"
        )
    sqlite = statistics.median(r.rate for r in results["record → sqlite"])
    ok = sqlite >= TARGET_SQLITE_VS_STREAM * peak
    print(
        f"target: sqlite recorder >= {TARGET_SQLITE_VS_STREAM:.0%} of the stream's peak "
        f"({peak:,.0f}/s): {'met' if ok else 'MISSED'} ({sqlite / peak:.0%})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
