"""``polyfeed book``: the ladder rendering, ``--once`` against the fake server, errors, signals."""

from __future__ import annotations

import asyncio
import io
import re
import signal
import sys
from decimal import Decimal

import pytest
from click.testing import CliRunner
from rich.console import Console

from polyfeed.aio.stream import Health
from polyfeed.cli.book import book, describe_event, render_book, sync_state
from polyfeed.core.book import OrderBook
from polyfeed.core.messages import Book, Level, PriceChange, PriceChangeEntry
from polyfeed.events import (
    AssetChecked,
    BookInvalidated,
    BookResynced,
    Connected,
    ConnectionReplaced,
    Disconnected,
    Gap,
    Reconnecting,
    Redundancy,
    Resubscribed,
    Stale,
)
from polyfeed.testing import FakePolymarket

LAUNCH = "from polyfeed.cli.book import book; book()"
ASSET = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
ROW = re.compile(r"^\s*(ask|bid)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def snapshot(asset: str = ASSET) -> Book:
    # Wire order as the server sends it: bids ascending, asks descending.
    return Book(
        market="0xmarket",
        asset_id=asset,
        timestamp=1_700_000_000_000,
        bids=[Level("0.45", "300"), Level("0.47", "20.5"), Level("0.48", "100")],
        asks=[Level("0.55", "70"), Level("0.53", "40"), Level("0.52", "10")],
        last_trade_price="0.5",
    )


def synced_book() -> OrderBook:
    order_book = OrderBook(ASSET)
    assert order_book.apply(snapshot()).action == "ok"
    assert order_book.synced
    return order_book


def health(**changes: object) -> Health:
    fields: dict[str, object] = {
        "state": "open",
        "connected": True,
        "seconds_since_last_message": 1.25,
        "uptime_ratio": 1.0,
        "reconnects": 3,
        "subscribed": 1,
        "confirmed": 1,
        "queued_events": 0,
        "dropped_events": 0,
        "backoff_seconds": 0.0,
        "pong_rtt_seconds": 0.01,
    }
    fields.update(changes)
    return Health(**fields)  # type: ignore[arg-type]


def rendered(order_book: OrderBook, stream_health: Health | None, **kwargs: object) -> str:
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(render_book(order_book, stream_health, **kwargs))  # type: ignore[arg-type]
    return console.export_text()


def rows(text: str) -> list[tuple[str, str, str, str]]:
    found = []
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            side, price, size, total = match.groups()
            found.append((side, price, size, total))
    return found


# --------------------------------------------------------------------------- rendering


def test_ladder_lists_asks_down_to_the_best_then_bids_from_the_best() -> None:
    text = rendered(synced_book(), health(), depth=10)
    assert rows(text) == [
        ("ask", "0.55", "70", "120"),
        ("ask", "0.53", "40", "50"),
        ("ask", "0.52", "10", "10"),
        ("bid", "0.48", "100", "100"),
        ("bid", "0.47", "20.5", "120.5"),
        ("bid", "0.45", "300", "420.5"),
    ]
    header = text.splitlines()[0]
    assert "713210…992563" in header
    assert "bid 0.48" in header
    assert "ask 0.52" in header
    assert "spread 0.04" in header
    assert "mid 0.50" in header
    assert "last 0.5" in header


def test_depth_limits_the_levels_shown_on_each_side() -> None:
    text = rendered(synced_book(), health(), depth=2)
    assert rows(text) == [
        ("ask", "0.53", "40", "50"),
        ("ask", "0.52", "10", "10"),
        ("bid", "0.48", "100", "100"),
        ("bid", "0.47", "20.5", "120.5"),
    ]


def test_header_shows_sync_state_counters_and_stream_health() -> None:
    order_book = synced_book()
    order_book.counters.hash_checks = 17
    order_book.counters.hash_mismatches = 2
    order_book.counters.hash_skipped = 5
    order_book.counters.top_checks = 19
    text = rendered(order_book, health(), depth=3, status="stale (data): nothing for 3.0s")
    assert "SYNCED" in text
    assert "UNSYNCED" not in text
    assert "hash checks 17, mismatches 2, skipped 5" in text
    assert "top checks 19, mismatches 0" in text
    assert f"scheme {order_book.hash_scheme.name}" in text
    assert "stream open, connected, reconnects 3, last message 1.2s ago" in text
    assert text.rstrip().splitlines()[-1] == "stale (data): nothing for 3.0s"


def test_an_invalidated_book_says_unsynced_and_counts_the_invalidation() -> None:
    order_book = synced_book()
    assert order_book.invalidate("reconnect").action == "invalidated"
    assert sync_state(order_book) == "UNSYNCED"
    text = rendered(order_book, health(connected=False, state="backoff"), depth=3)
    assert "UNSYNCED" in text
    assert "invalidations 1" in text
    assert "stream backoff, NOT CONNECTED" in text


def test_a_crossed_book_is_shown_in_doubt_with_the_reason() -> None:
    order_book = synced_book()
    crossing = PriceChange(
        market="0xmarket",
        timestamp=1_700_000_000_001,
        price_changes=(PriceChangeEntry(asset_id=ASSET, price="0.53", size="5", side="BUY"),),
    )
    assert order_book.apply(crossing).action == "ok"
    assert order_book.in_doubt is not None
    text = rendered(order_book, health(), depth=3)
    assert f"IN DOUBT: {order_book.in_doubt}" in text
    assert "SYNCED" not in text.replace("UNSYNCED", "")


def test_an_empty_unstarted_book_renders_without_prices() -> None:
    text = rendered(OrderBook(ASSET), None, depth=5)
    assert "UNSYNCED" in text
    assert "bid -" in text
    assert "spread -" in text
    assert "stream: not started" in text
    assert rows(text) == []
    assert text.count("(none)") == 2


def test_health_without_a_message_yet_and_with_a_fatal_error() -> None:
    text = rendered(
        synced_book(), health(seconds_since_last_message=None, error="HTTP 404"), depth=1
    )
    assert "no message yet" in text
    assert "error: HTTP 404" in text


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            Stale(kind="data", silent_for=2.5),
            "STALE (data): nothing for 2.50s while the socket was open",
        ),
        (Disconnected(reason="stale", code=None), "disconnected: stale (no close frame)"),
        (Reconnecting(attempt=2, delay=0.5), "reconnecting: attempt 2 in 0.50s"),
        (Connected(url="ws://x", attempt=1), "connected (connection #0, attempt 1)"),
        (Resubscribed(assets=["a", "b"]), "resubscribed 2 asset(s)"),
        (
            Gap(started=10.0, ended=11.5, assets=["a"], reason="reconnect"),
            "GAP of 1.50s on 1 asset(s) (reconnect): events in it may be missing",
        ),
        (
            Gap(started=10.0, ended=11.0, assets=["a"], reason="lifecycle overflow", collapsed=7),
            "GAP of 1.00s on 1 asset(s) (lifecycle overflow, 7 lifecycle events collapsed): "
            "events in it may be missing",
        ),
        (
            BookInvalidated(asset_ids=["a"], reason="hash mismatch"),
            "book a invalidated: hash mismatch",
        ),
        (BookResynced(asset_ids=["a"], source="rest"), "book a resynced from rest"),
        (
            BookInvalidated(asset_ids=["a", "b"], reason="reconnect"),
            "2 books invalidated: reconnect",
        ),
        (BookResynced(asset_ids=["a", "b", "c"]), "3 books resynced from snapshot"),
        (
            Redundancy(state="degraded", legs_up=1, legs=2, pool_connection=0),
            "redundancy degraded: 1/2 legs up (connection 0)",
        ),
        (
            AssetChecked(asset_ids=["a"], action="redrive", silent_for=3.0, pool_connection=2),
            "1 asset(s) silent for 3.0s on connection 2 checked over REST: the server's book "
            "moved, subscription re-requested",
        ),
        (
            AssetChecked(asset_ids=["a", "b"], action="left_alone", silent_for=5.0),
            "2 asset(s) silent for 5.0s on connection 0 checked over REST: the server's book "
            "did not move (a quiet market), left alone",
        ),
        (
            ConnectionReplaced(pool_connection=1, reason="redrives failed", asset_ids=["a"]),
            "connection 1 replaced (redrives failed; 1 asset(s))",
        ),
        (snapshot(), None),
    ],
)
def test_lifecycle_events_become_status_lines(event: object, expected: str | None) -> None:
    assert describe_event(event) == expected


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://127.0.0.1:1/ws/market", "x"], "--url must be a ws://"),
        (["--rest-url", "ws://127.0.0.1:1", "x"], "--rest-url must be an http://"),
        (["--depth", "0", "x"], "--depth"),
    ],
)
def test_bad_options_exit_2_with_a_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(book, args)
    assert result.exit_code == 2
    assert message in result.output


async def run_book(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LAUNCH,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(15):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.timeout(30)
async def test_once_prints_the_servers_book_and_exits_0() -> None:
    async with FakePolymarket(markets=1, rate=0.0, seed=11) as fake:
        asset = fake.asset_ids[0]
        code, stdout, stderr = await run_book(
            asset, "--url", fake.market_url, "--rest-url", fake.rest_url, "--once"
        )
        server = fake.book(asset)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    ladder = rows(stdout)
    asks = [row for row in ladder if row[0] == "ask"]
    bids = [row for row in ladder if row[0] == "bid"]
    assert len(asks) == min(10, len(server.asks))
    assert len(bids) == min(10, len(server.bids))
    # Best ask just above the best bid, both equal to the server's, sizes too.
    assert asks[-1][1:3] == tuple(server.asks[-1])
    assert bids[0][1:3] == tuple(server.bids[-1])
    assert [row[1] for row in bids] == [level[0] for level in reversed(server.bids)][:10]
    header = stdout.splitlines()[0]
    assert f"bid {Decimal(server.best_bid)}" in header
    assert f"ask {Decimal(server.best_ask)}" in header
    assert "SYNCED" in stdout
    assert "UNSYNCED" not in stdout


@pytest.mark.timeout(30)
async def test_once_gives_up_when_the_book_never_syncs() -> None:
    async with FakePolymarket(markets=1, rate=0.0, seed=12) as fake:
        code, stdout, stderr = await run_book(
            "no-such-asset",
            "--url",
            fake.market_url,
            "--rest-url",
            fake.rest_url,
            "--once",
            "--timeout",
            "0.5",
        )
    assert code == 1
    assert stdout == ""
    assert stderr.strip() == "polyfeed: error: book of no-such-asset not synced within 0.5s"


@pytest.mark.timeout(30)
async def test_a_fatal_error_exits_1_with_a_one_line_reason() -> None:
    async with FakePolymarket(markets=1, rate=0.0, seed=13) as fake:
        url = fake.market_url.replace("/ws/market", "/ws/nowhere")
        code, _, stderr = await run_book(
            fake.asset_ids[0], "--url", url, "--rest-url", fake.rest_url, "--once"
        )
    assert code == 1
    lines = [line for line in stderr.splitlines() if line.startswith("polyfeed: error")]
    assert len(lines) == 1
    assert "404" in lines[0]
    assert "Traceback" not in stderr


@pytest.mark.timeout(30)
async def test_duration_ends_a_live_run_with_the_final_ladder() -> None:
    async with FakePolymarket(markets=1, rate=30.0, seed=14) as fake:
        code, stdout, stderr = await run_book(
            fake.asset_ids[0],
            "--url",
            fake.market_url,
            "--rest-url",
            fake.rest_url,
            "--duration",
            "1.5",
            "--depth",
            "3",
        )
    assert code == 0, stderr
    assert "SYNCED" in stdout
    checks = re.search(r"hash checks (\d+), mismatches (\d+)", stdout)
    assert checks is not None
    assert int(checks.group(1)) > 0
    assert checks.group(2) == "0"
    assert len(rows(stdout)) == 6


@pytest.mark.timeout(30)
async def test_sigterm_during_a_live_run_exits_0_within_2s() -> None:
    async with FakePolymarket(markets=1, rate=20.0, seed=15) as fake:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            LAUNCH,
            fake.asset_ids[0],
            "--url",
            fake.market_url,
            "--rest-url",
            fake.rest_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(15):
                connection = await fake.wait_for_connection(1)
                await connection.flush()
            # Time for the client to apply the snapshot that went out with the subscription.
            await asyncio.sleep(0.3)
        finally:
            signalled = loop.time()
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                stdout, stderr = await process.communicate()
            elapsed = loop.time() - signalled
    assert process.returncode == 0, stderr.decode()
    assert elapsed < 2.0
    assert "Traceback" not in stderr.decode()
    # The live display leaves its last rendering behind.
    assert "SYNCED" in stdout.decode()
    assert rows(stdout.decode())


@pytest.mark.timeout(30)
async def test_without_a_tty_lines_come_as_they_go_not_at_exit() -> None:
    async with FakePolymarket(markets=1, rate=30.0, seed=16) as fake:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            LAUNCH,
            fake.asset_ids[0],
            "--url",
            fake.market_url,
            "--rest-url",
            fake.rest_url,
            "--duration",
            "20",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        try:
            async with asyncio.timeout(10):
                line = (await process.stdout.readline()).decode()
                while not line.endswith(" SYNCED\n"):
                    line = (await process.stdout.readline()).decode()
                    assert line
            assert process.returncode is None
            assert re.fullmatch(r"\d+\.\d{3} bid [\d.]+ ask [\d.]+ SYNCED\n", line), line
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                _, stderr = await process.communicate()
    assert process.returncode == 0
    assert "Traceback" not in stderr.decode()


@pytest.mark.timeout(30)
async def test_metrics_port_is_announced_on_stderr() -> None:
    async with FakePolymarket(markets=1, rate=10.0, seed=17) as fake:
        code, stdout, stderr = await run_book(
            fake.asset_ids[0],
            "--url",
            fake.market_url,
            "--rest-url",
            fake.rest_url,
            "--once",
            "--metrics-port",
            "0",
        )
    assert code == 0, stderr
    assert re.search(r"polyfeed: metrics on http://127\.0\.0\.1:\d+/metrics", stderr)
    assert "SYNCED" in stdout
