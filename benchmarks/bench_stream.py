"""Stream throughput: events/s a consumer gets from a burst of price_change frames.

The server (``polyfeed.testing.FakePolymarket``) runs in a separate process so the client under
test has a core of its own. It prepares one burst of pre-encoded ``price_change`` frames once
(generation excluded from every timing) and, on command, pushes it down one connection. The same
burst goes to every contender, taking turns, several rounds:

- **polyfeed**: ``MarketStream`` consumed with ``async for event in stream`` (counts
  ``PriceChange``), default config (heartbeat 10 s) with a queue large enough to drop nothing;
  once as shipped (verified books on) and once with ``books=False``;
- **naive websockets loop** (the design we were given): ``websockets`` client,
  ``async for msg in ws: data = json.loads(msg); await callback(data)``, the async callback
  counting ``event_type == "price_change"`` (object or array frames);
- **bare aiohttp loop**: ``ws.receive()`` in a loop counting text frames, no decoding at all.

By default the burst is pre-framed and written to the socket in one call, far faster than any
client consumes, so each rate is the client's capacity (``--push fake`` feeds the clients with
``FakePolymarket.send_burst`` instead, which is slower than the bare loop). A last row, **raw TCP
sink**, is not a client: it does the WebSocket handshake by hand and then only counts bytes, fed
by ``send_burst``: the fake server's own ceiling.

A client's clock runs from the burst command (sent once its snapshot is in) to its N-th event.
Besides wall-clock events/s it reports events per CPU second of the client process, which other
jobs on a shared machine disturb far less. Each snapshot shows the books as they were before the
burst, so polyfeed's verified books apply every delta with matching hashes.

The server runs with ``ping_grace=None`` (it does not close sockets that send no text ``PING``)
so the naive and bare loops need no heartbeat task; polyfeed still runs its own heartbeat.

Usage: ``.venv/bin/python benchmarks/bench_stream.py [--quick] [--n N] [--rounds R]
[--push wire|fake]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import aiohttp
import msgspec
from websockets.asyncio.client import connect as websockets_connect

import polyfeed
from polyfeed.core.codec import FrameDecoder
from polyfeed.native import build_name
from polyfeed.testing import FakePolymarket
from polyfeed.testing.server import PreparedBurst

MARKETS = 20
SEED = 7
TARGET_BOOKS_VS_NAIVE_BOOK = 2.0
TARGET_BOOKS_VS_BARE = 0.25
TARGET_BOOKLESS_VS_NAIVE = 4.0
REPLY_TIMEOUT = 120.0
PUSH_CHUNK = 1 << 20  # bytes per server write
PUSH_QUEUED = 4 << 20  # the server writes more while less than this waits in its transport

POLYFEED = "polyfeed MarketStream"
POLYFEED_BOOKLESS = "polyfeed books=False"
NAIVE = "naive websockets loop"
NAIVE_BOOK = "naive loop + dict-of-floats book"
BARE = "bare aiohttp loop"
SINK = "raw TCP sink"

# "wire": the burst pre-framed once, written to the socket in one call (the server is never the
# bottleneck); "fake": FakePolymarket.send_burst, one aiohttp send_frame per message.
Push = Literal["wire", "fake"]


# --------------------------------------------------------------------------- server process


def _text_frame(payload: bytes) -> bytes:
    # What aiohttp's server writes for send_frame(payload, TEXT) without compression: FIN +
    # opcode 1, unmasked, 7-bit / 16-bit / 64-bit length (RFC 6455 §5.2).
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


def serve(pipe: Connection, markets: int, seed: int) -> None:
    """Server process entry point: FakePolymarket driven by commands from ``pipe``."""
    asyncio.run(_serve(pipe, markets, seed))


async def _serve(pipe: Connection, markets: int, seed: int) -> None:
    fake = FakePolymarket(
        markets=markets,
        rate=0.0,
        seed=seed,
        ping_grace=None,
        no_new_assets_interval=None,
        trade_probability=0.0,
        # One message per step: the untimed pre-check verifies each message's own hash, which a
        # multi-message run (verified at its end; the fake's default since issue 7) would fail.
        run_probability=0.0,
        max_log_events=1_000_000,
    )
    async with fake:
        pipe.send(("ready", fake.market_url, list(fake.asset_ids)))
        burst = PreparedBurst(())
        wire = b""
        framed: list[bytes] = []
        loop = asyncio.get_running_loop()
        while True:
            command = await asyncio.to_thread(pipe.recv)
            match command:
                case ("prepare", int(n)):
                    started = time.perf_counter()
                    pristine = copy.deepcopy(fake.sim)
                    prepared = fake.prepare_burst(n)
                    # Every connection is sent the same burst, so its snapshot must show the
                    # books as they were before the burst (sending does not move the simulator):
                    # polyfeed's verified books then apply every delta with matching hashes.
                    fake.sim = pristine
                    # best_bid_ask never reaches a socket without custom_feature_enabled anyway.
                    burst = PreparedBurst(
                        tuple(e for e in prepared.events if e.event_type == "price_change")
                    )
                    framed = [_text_frame(e.raw) for e in burst.events]
                    wire = b"".join(framed)
                    verified = _verify_every_hash(fake, burst)
                    pipe.send(
                        (
                            "prepared",
                            len(burst.events),
                            len(wire),
                            time.perf_counter() - started,
                            verified,
                        )
                    )
                case ("send", int(number), "fake"):
                    async with asyncio.timeout(REPLY_TIMEOUT):
                        connection = await fake.wait_for_connection(number)
                    result = await fake.send_burst(burst, connection=connection)
                    pipe.send(("sent", result.frames, result.seconds))
                case ("send", int(number), "wire"):
                    async with asyncio.timeout(REPLY_TIMEOUT):
                        connection = await fake.wait_for_connection(number)
                    # The fake has no public handle on the TCP transport; nothing else writes to
                    # it during the burst (the snapshot was already read by the client).
                    transport = connection._transport
                    assert transport is not None
                    started = loop.time()
                    await _push(transport, wire)
                    pipe.send(("sent", len(burst.events), loop.time() - started))
                case ("pace", int(number), float(rate), int(count)):
                    async with asyncio.timeout(REPLY_TIMEOUT):
                        connection = await fake.wait_for_connection(number)
                    transport = connection._transport
                    assert transport is not None
                    stamps = await _paced_write(transport, framed[:count], rate)
                    pipe.send(("paced", stamps))
                case ("stop",):
                    pipe.send(("stopped",))
                    return
                case _:
                    raise ValueError(f"unknown command {command!r}")


async def _push(transport: asyncio.WriteTransport, wire: bytes) -> None:
    """Write ``wire`` keeping ~4 MiB queued in the transport until all of it is written.

    One ``write`` of the whole burst (60 MB) copied it into the transport's buffer first, page
    faults and all: ~55 ms in which the server sent nothing and every client waited, counted in
    its wall clock. A raw asyncio transport offers no awaitable drain, so this polls every loop
    turn (the server has a core of its own).
    """
    view = memoryview(wire)
    offset = 0
    while offset < len(view) and not transport.is_closing():
        if transport.get_write_buffer_size() < PUSH_QUEUED:
            transport.write(view[offset : offset + PUSH_CHUNK])
            offset += PUSH_CHUNK
        else:
            await asyncio.sleep(0)
    while transport.get_write_buffer_size() and not transport.is_closing():  # noqa: ASYNC110
        await asyncio.sleep(0)


def _verify_every_hash(fake: FakePolymarket, burst: PreparedBurst) -> int:
    """Check the hash of every entry of the burst once, untimed, with unbatched books that
    start from the snapshots each connection gets; returns the number of hashes checked.

    The firehose must be realistic: every ``price_change`` entry's hash (2026 scheme, market
    metadata as REST serves it) and ``best_bid``/``best_ask`` must be the server's book after
    it, or the benchmark would measure recovery instead of the stream.
    """
    registry = polyfeed.BookRegistry(polyfeed.BookOptions(grace_messages=0))
    decoder = FrameDecoder("market")
    for asset in fake.asset_ids:
        for event in decoder.decode(fake.sim.snapshot(asset).raw):
            assert isinstance(event, polyfeed.Book)
            registry.apply(event)
    sim = fake.sim
    for market in sim.markets:
        registry.set_market_info(
            market.condition_id, min_order_size=sim.min_order_size, neg_risk=sim.neg_risk
        )
    checks = sum(book.counters.hash_checks for book in registry.values())
    entries = 0
    for message in burst.events:
        for event in decoder.decode(message.raw):
            assert isinstance(event, polyfeed.PriceChange)
            if len(event.price_changes) != 2:
                raise RuntimeError(f"a firehose price_change without its mirror: {event!r}")
            for entry in event.price_changes:
                entries += 1
                # One entry at a time: each carries the hash of the book after it.
                single = msgspec.structs.replace(event, price_changes=(entry,))
                if registry.apply(single) or registry[entry.asset_id].in_doubt is not None:
                    raise RuntimeError(f"the firehose carries a wrong hash or top: {entry!r}")
    done = sum(book.counters.hash_checks for book in registry.values()) - checks
    if done != entries:
        raise RuntimeError(f"{done} of {entries} firehose hashes were checked")
    return done


async def _paced_write(
    transport: asyncio.WriteTransport, frames: list[bytes], rate: float
) -> list[float]:
    """Write one frame every ``1 / rate`` seconds; returns each frame's ``time.monotonic()``
    just before its write (CLOCK_MONOTONIC: comparable across processes of one machine).

    The event loop's timers are good to about a millisecond, so frames due within the same
    millisecond go out together (each stamped at its own write); spinning for finer spacing
    would take a core from the client on a shared 2-core machine.
    """
    clock = time.monotonic
    start = clock() + 0.01
    stamps: list[float] = []
    for index, frame in enumerate(frames):
        due = start + index / rate
        now = clock()
        if due > now:
            await asyncio.sleep(due - now)
        stamps.append(clock())
        transport.write(frame)
    return stamps


class ServerHandle:
    """The parent's side of the server process."""

    def __init__(self, markets: int, seed: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, markets, seed), daemon=True)
        self.process.start()
        child.close()
        _, self.url, self.asset_ids = self.reply("ready")
        self.connections = 0

    def __repr__(self) -> str:
        return f"ServerHandle(url={self.url}, connections={self.connections})"

    def reply(self, kind: str) -> tuple[Any, ...]:
        """The server's next reply, which must be of ``kind``."""
        if not self.pipe.poll(REPLY_TIMEOUT):
            raise TimeoutError(f"server gave no {kind!r} reply")
        message: tuple[Any, ...] = self.pipe.recv()
        if message[0] != kind:
            raise RuntimeError(f"expected {kind!r} from the server, got {message!r}")
        return message

    def prepare(self, n: int) -> tuple[int, int, float, int]:
        """Have the server generate, encode and check the burst; (frames, wire bytes, seconds,
        hashes verified)."""
        self.pipe.send(("prepare", n))
        _, frames, wire, seconds, verified = self.reply("prepared")
        return frames, wire, seconds, verified

    def next_connection(self, push: Push) -> Callable[[], None]:
        """A trigger that makes the server push the burst down the next connection."""
        self.connections += 1
        number = self.connections
        return lambda: self.pipe.send(("send", number, push))

    def sent(self) -> tuple[int, float]:
        """(frames, seconds) the server reported for the last burst."""
        _, frames, seconds = self.reply("sent")
        return frames, seconds

    def stop(self) -> None:
        """Stop the server process."""
        try:
            self.pipe.send(("stop",))
            self.reply("stopped")
        finally:
            self.process.join(10)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(5)


# --------------------------------------------------------------------------- clients


@dataclass(slots=True)
class RunResult:
    """One contender's run: events counted, wall and CPU seconds of the client process from the
    burst command to the last event, drops."""

    events: int
    seconds: float
    cpu_seconds: float
    drops: int | None

    @property
    def rate(self) -> float:
        """Events per wall-clock second."""
        return self.events / self.seconds

    @property
    def cpu_rate(self) -> float:
        """Events per CPU second of the client process."""
        return self.events / self.cpu_seconds


class Stopwatch:
    """Wall and process CPU time together.

    The client is the bottleneck (the socket always holds data), so it never idles and its CPU
    time is the time it worked: events per CPU second barely move when other processes steal
    the core, unlike the wall-clock rate.
    """

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def __repr__(self) -> str:
        return f"Stopwatch(wall={self.wall:.3f}, cpu={self.cpu:.3f})"

    def result(self, events: int, drops: int | None = None) -> RunResult:
        """The run so far, as a ``RunResult``."""
        return RunResult(
            events, time.perf_counter() - self.wall, time.process_time() - self.cpu, drops
        )


# (url, asset ids, events expected, wire bytes expected, trigger) -> result. The client calls
# the trigger once its snapshot is in, and times from that call to its last burst event.
Client = Callable[[str, list[str], int, int, Callable[[], None]], Awaitable[RunResult]]


def _subscription(asset_ids: list[str]) -> str:
    return json.dumps({"assets_ids": asset_ids, "type": "market"})


async def _run_polyfeed(
    url: str,
    asset_ids: list[str],
    n: int,
    start_burst: Callable[[], None],
    *,
    books: bool,
) -> RunResult:
    config = polyfeed.StreamConfig(queue=polyfeed.QueueConfig(maxsize=n + 10_000))
    price_change = polyfeed.PriceChange
    # The benchmark's fake serves REST on the socket's host (a stream never guesses that).
    rest_url = "http://" + url.removeprefix("ws://").split("/", 1)[0]
    async with polyfeed.MarketStream(
        asset_ids, url=url, rest_url=rest_url, config=config, books=books
    ) as stream:
        before = await warm_up(stream, asset_ids, books=books)
        count = 0
        other: list[object] = []
        watch = Stopwatch()
        start_burst()
        async for event in stream:
            if type(event) is price_change:
                count += 1
                if count == n:
                    break
            else:
                other.append(event)
        result = watch.result(count, stream.health().dropped_events)
        if books:
            await _check_books(stream.books, before)
    if other:
        # A Gap or BookInvalidated would mean the run measured recovery, not the stream.
        raise RuntimeError(f"unexpected events during the burst: {other[:3]!r}")
    return result


async def warm_up(
    stream: polyfeed.MarketStream, asset_ids: list[str], *, books: bool
) -> dict[str, tuple[int, int]]:
    """Wait for every snapshot (and, with books, the REST metadata); the hash counts then."""
    snapshots = 0
    async for event in stream:
        if type(event) is polyfeed.Book:
            snapshots += 1
            if snapshots == len(asset_ids):
                break
    if not books:
        return {}
    # The REST metadata the hash covers arrives after the snapshots: from then on no check may
    # be skipped.
    async with asyncio.timeout(REPLY_TIMEOUT):
        while not all(stream.books[a].neg_risk is not None for a in asset_ids):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return {a: _hash_counts(stream.books[a]) for a in asset_ids}


def _hash_counts(book: polyfeed.OrderBook) -> tuple[int, int]:
    return book.counters.hash_checks, book.counters.hash_skipped


async def _check_books(books: polyfeed.BookRegistry, before: dict[str, tuple[int, int]]) -> None:
    """Fail the run unless every book was verified during the burst: no hash mismatch, none
    skipped, no invalidation, every book in sync and checked at least once."""
    # The last read's checks run a loop turn after its events were queued (verify_before_handoff
    # is off by default): let them.
    for _ in range(3):
        await asyncio.sleep(0)
    for asset, (checks, skipped) in before.items():
        book = books[asset]
        counters = book.counters
        now_checks, now_skipped = _hash_counts(book)
        if (
            not book.synced
            or book.in_doubt is not None
            or counters.hash_mismatches
            or counters.top_mismatches
            or counters.invalidations
            or now_skipped != skipped
            or now_checks == checks
        ):
            raise RuntimeError(f"book {asset} not verified through the burst: {book!r}")


async def run_polyfeed(
    url: str, asset_ids: list[str], n: int, wire: int, start_burst: Callable[[], None]
) -> RunResult:
    """polyfeed's MarketStream as shipped (verified books on), consumed with ``async for``."""
    return await _run_polyfeed(url, asset_ids, n, start_burst, books=True)


async def run_polyfeed_bookless(
    url: str, asset_ids: list[str], n: int, wire: int, start_burst: Callable[[], None]
) -> RunResult:
    """polyfeed's MarketStream with ``books=False``: the stream alone, like the other loops."""
    return await _run_polyfeed(url, asset_ids, n, start_burst, books=False)


async def run_naive(
    url: str, asset_ids: list[str], n: int, wire: int, start_burst: Callable[[], None]
) -> RunResult:
    """The seed design: websockets client, json.loads per message, an awaited async callback."""
    count = 0

    async def callback(data: Any) -> None:
        nonlocal count
        for item in data if isinstance(data, list) else (data,):
            if item.get("event_type") == "price_change":
                count += 1

    async with websockets_connect(url) as ws:
        await ws.send(_subscription(asset_ids))
        await ws.recv()  # the initial book snapshots (one array frame)
        watch = Stopwatch()
        start_burst()
        async for msg in ws:
            data = json.loads(msg)
            await callback(data)
            if count >= n:
                break
        result = watch.result(count)
    return result


async def run_naive_book(
    url: str, asset_ids: list[str], n: int, wire: int, start_burst: Callable[[], None]
) -> RunResult:
    """The seed design with a naive book: websockets, json.loads, an awaited async callback
    keeping one dict of float price -> float size per side and asset, best bid/ask read
    (``max``/``min``) after each message for every asset it touched."""
    count = 0
    books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
    tops: dict[str, tuple[float | None, float | None]] = {}

    async def callback(data: Any) -> None:
        nonlocal count
        for item in data if isinstance(data, list) else (data,):
            kind = item.get("event_type")
            if kind == "book":
                books[item["asset_id"]] = (
                    {float(level["price"]): float(level["size"]) for level in item["bids"]},
                    {float(level["price"]): float(level["size"]) for level in item["asks"]},
                )
            elif kind == "price_change":
                count += 1
                touched = []
                for change in item["price_changes"]:
                    book = books.get(change["asset_id"])
                    if book is None:
                        continue
                    side = book[0] if change["side"] == "BUY" else book[1]
                    price = float(change["price"])
                    size = float(change["size"])
                    if size == 0:
                        side.pop(price, None)
                    else:
                        side[price] = size
                    touched.append(change["asset_id"])
                for asset in touched:
                    bids, asks = books[asset]
                    tops[asset] = (max(bids) if bids else None, min(asks) if asks else None)

    async with websockets_connect(url) as ws:
        await ws.send(_subscription(asset_ids))
        await callback(json.loads(await ws.recv()))  # the initial book snapshots
        if len(books) != len(asset_ids):
            raise RuntimeError(f"naive book loop got {len(books)} of {len(asset_ids)} snapshots")
        watch = Stopwatch()
        start_burst()
        async for msg in ws:
            data = json.loads(msg)
            await callback(data)
            if count >= n:
                break
        result = watch.result(count)
    return result


async def run_bare(
    url: str, asset_ids: list[str], n: int, wire: int, start_burst: Callable[[], None]
) -> RunResult:
    """aiohttp's ``ws.receive()`` in a loop; counts text frames, decodes nothing."""
    text = aiohttp.WSMsgType.TEXT
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(_subscription(asset_ids))
        await ws.receive()  # the initial book snapshots (one array frame)
        count = 0
        watch = Stopwatch()
        start_burst()
        while True:
            msg = await ws.receive()
            if msg.type is not text:
                raise RuntimeError(f"bare loop got {msg.type!r}")
            count += 1
            if count == n:
                break
        result = watch.result(count)
    return result


class _Sink(asyncio.Protocol):
    """Skips the handshake response and the snapshot frame, then only counts bytes."""

    def __init__(self, wire: int) -> None:
        loop = asyncio.get_running_loop()
        self.wire = wire
        self.buffer = bytearray()
        self.phase = "handshake"
        self.received = 0
        self.ready: asyncio.Future[None] = loop.create_future()
        self.snapshot: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()

    def __repr__(self) -> str:
        return f"_Sink(phase={self.phase}, received={self.received}/{self.wire})"

    def data_received(self, data: bytes) -> None:
        if self.phase == "burst":
            self.received += len(data)
            if self.received >= self.wire and not self.done.done():
                self.done.set_result(None)
            return
        self.buffer += data
        if self.phase == "handshake":
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"handshake refused: {bytes(self.buffer[:80])!r}")
            del self.buffer[: end + 4]
            self.phase = "snapshot"
            self.ready.set_result(None)
        if self.phase == "snapshot" and len(self.buffer) >= 2:
            length = self.buffer[1] & 0x7F
            header = 2
            if length == 126:
                header, length = 4, int.from_bytes(self.buffer[2:4], "big")
            elif length == 127:
                header, length = 10, int.from_bytes(self.buffer[2:10], "big")
            if len(self.buffer) >= header + length:
                extra = bytes(self.buffer[header + length :])
                self.buffer.clear()
                self.phase = "burst"
                self.snapshot.set_result(None)
                if extra:
                    self.data_received(extra)


def _masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    if size < 126:
        header = bytes([0x81, 0x80 | size])
    else:
        header = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    return header + mask + masked


async def run_sink(
    url: str, asset_ids: list[str], n: int, wire: int, start_burst: Callable[[], None]
) -> RunResult:
    """Handshake by hand, then only count bytes: how fast the server can push."""
    host_port = url.removeprefix("ws://").split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_connection(lambda: _Sink(wire), host, int(port))
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /ws/market HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await sink.ready
        transport.write(_masked_text_frame(_subscription(asset_ids).encode()))
        await sink.snapshot
        watch = Stopwatch()
        start_burst()
        await sink.done
        result = watch.result(n)
    finally:
        transport.abort()
    return result


# --------------------------------------------------------------------------- driver


@dataclass(slots=True)
class Row:
    """Every run of one contender."""

    name: str
    client: Client
    push: Push
    runs: list[RunResult] = field(default_factory=list)
    server_rates: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Name and how the server pushed."""
        return f"{self.name} <- {'pre-framed' if self.push == 'wire' else 'send_burst'}"

    @property
    def best(self) -> float:
        """The fastest run, events per wall second."""
        return max(r.rate for r in self.runs)

    @property
    def median(self) -> float:
        """The median run, events per wall second."""
        return statistics.median(r.rate for r in self.runs)

    @property
    def cpu_median(self) -> float:
        """The median run, events per client CPU second."""
        return statistics.median(r.cpu_rate for r in self.runs)

    @property
    def drops(self) -> int | None:
        """Events the client dropped over all runs (None: it cannot drop)."""
        counted = [r.drops for r in self.runs if r.drops is not None]
        return sum(counted) if counted else None


async def _one_run(server: ServerHandle, row: Row, n: int, wire: int) -> tuple[RunResult, float]:
    trigger = server.next_connection(row.push)
    async with asyncio.timeout(REPLY_TIMEOUT):
        result = await row.client(server.url, server.asset_ids, n, wire, trigger)
    frames, seconds = server.sent()
    # send_burst also counts a PONG answering polyfeed's PING if one went out meanwhile.
    if result.events != n or not n <= frames <= n + 2:
        raise RuntimeError(f"expected {n} events, client counted {result.events}, server {frames}")
    return result, frames / seconds


def measure(
    n: int, rounds: int, push: Push, markets: int = MARKETS
) -> tuple[list[Row], dict[str, float]]:
    """Run every contender ``rounds`` times against one server process, order rotated."""
    rows = [
        Row(POLYFEED, run_polyfeed, push),
        Row(POLYFEED_BOOKLESS, run_polyfeed_bookless, push),
        Row(NAIVE, run_naive, push),
        Row(NAIVE_BOOK, run_naive_book, push),
        Row(BARE, run_bare, push),
        # The fake's own frame-by-frame ceiling, whatever the clients got.
        Row(SINK, run_sink, "fake"),
    ]
    server = ServerHandle(markets, SEED)
    info: dict[str, float] = {}
    try:
        frames, wire, prepare_seconds, verified = server.prepare(n)
        if frames != n:
            raise RuntimeError(f"burst has {frames} price_change frames, wanted {n}")
        info = {"wire_bytes": wire, "prepare_seconds": prepare_seconds, "verified": verified}
        for round_number in range(rounds):
            shift = round_number % len(rows)
            for row in rows[shift:] + rows[:shift]:
                result, server_rate = asyncio.run(_one_run(server, row, n, wire))
                row.runs.append(result)
                row.server_rates.append(server_rate)
                print(
                    f"  round {round_number + 1} {row.label:<38} {result.rate:>10,.0f} ev/s "
                    f"{result.cpu_rate:>10,.0f} ev/CPU-s   server {server_rate:>10,.0f} frames/s",
                    flush=True,
                )
    finally:
        server.stop()
    return rows, info


def _ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x"


def print_table(rows: list[Row]) -> None:
    """The summary table; ratios are of medians."""
    by_name = {row.name: row for row in rows}
    naive, bare = by_name[NAIVE], by_name[BARE]
    header = (
        f"{'contender':<38} {'best ev/s':>10} {'median ev/s':>11} {'vs naive':>8} "
        f"{'vs bare':>8} {'drops':>5} {'ev/CPU-s':>10} {'vs naive':>8} {'vs bare':>8} "
        f"{'server fr/s':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        client = row.name != SINK
        drops = row.drops
        print(
            f"{row.label:<38} {row.best:>10,.0f} {row.median:>11,.0f} "
            f"{_ratio(row.median, naive.median) if client else '-':>8} "
            f"{_ratio(row.median, bare.median) if client else '-':>8} "
            f"{'-' if drops is None else drops:>5} "
            f"{f'{row.cpu_median:,.0f}' if client else '-':>10} "
            f"{_ratio(row.cpu_median, naive.cpu_median) if client else '-':>8} "
            f"{_ratio(row.cpu_median, bare.cpu_median) if client else '-':>8} "
            f"{statistics.median(row.server_rates):>11,.0f}"
        )
    poly, bookless, naive_book = by_name[POLYFEED], by_name[POLYFEED_BOOKLESS], by_name[NAIVE_BOOK]
    print(
        f"\n{POLYFEED} (books on, verified): vs {NAIVE_BOOK} "
        f"{_ratio(poly.median, naive_book.median)} median, "
        f"{_ratio(poly.cpu_median, naive_book.cpu_median)} per CPU s "
        f"(target >= {TARGET_BOOKS_VS_NAIVE_BOOK}x); vs bare {_ratio(poly.median, bare.median)} "
        f"median, {_ratio(poly.cpu_median, bare.cpu_median)} per CPU s "
        f"(target >= {TARGET_BOOKS_VS_BARE}x)"
    )
    print(
        f"{POLYFEED_BOOKLESS}: vs {NAIVE} {_ratio(bookless.median, naive.median)} median, "
        f"{_ratio(bookless.cpu_median, naive.cpu_median)} per CPU s "
        f"(target >= {TARGET_BOOKLESS_VS_NAIVE}x)"
    )


def targets_met(rows: list[Row]) -> bool:
    """The issue's throughput targets, on medians of wall-clock rates."""
    by_name = {row.name: row for row in rows}
    poly, bookless = by_name[POLYFEED], by_name[POLYFEED_BOOKLESS]
    return (
        poly.median >= TARGET_BOOKS_VS_NAIVE_BOOK * by_name[NAIVE_BOOK].median
        and poly.median >= TARGET_BOOKS_VS_BARE * by_name[BARE].median
        and bookless.median >= TARGET_BOOKLESS_VS_NAIVE * by_name[NAIVE].median
    )


def main() -> int:
    """Parse flags, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k frames, 2 rounds (~5 s)")
    parser.add_argument("--n", type=int, help="frames per burst (default 100 000; quick 10 000)")
    parser.add_argument("--rounds", type=int, help="runs per contender (default 3; quick 2)")
    parser.add_argument(
        "--push",
        choices=["wire", "fake"],
        default="wire",
        help="how the server sends to the three clients: the burst pre-framed in one socket "
        "write (default; the server is never the bottleneck) or FakePolymarket.send_burst",
    )
    parser.add_argument(
        "--markets", type=int, default=MARKETS, help=f"markets (2 assets each; {MARKETS})"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    n = args.n or (10_000 if args.quick else 100_000)
    rounds = args.rounds or (2 if args.quick else 3)
    push: Push = args.push
    if n < 2 or rounds < 1:
        parser.error("--n must be >= 2 and --rounds >= 1")

    print(
        f"stream throughput ({build_name()}): {n:,} price_change frames per run, {rounds} rounds, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}, websockets {version('websockets')}"
    )
    started = time.perf_counter()
    rows, info = measure(n, rounds, push, args.markets)
    print(
        f"\nburst: {n:,} frames over {args.markets} markets, {info['wire_bytes'] / n:.0f} wire "
        f"bytes/frame, prepared and {info['verified']:,} hashes checked in "
        f"{info['prepare_seconds']:.1f} s (not timed)"
    )
    print_table(rows)
    print(f"total {time.perf_counter() - started:.1f} s")
    return 1 if args.check and not targets_met(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
