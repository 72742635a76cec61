"""Tests of the firehose (polyfeed.testing.server.firehose)."""

from __future__ import annotations

import asyncio

import pytest

from polyfeed import (
    BackoffConfig,
    Book,
    BookOptions,
    HeartbeatConfig,
    MarketStream,
    PriceChange,
    StreamConfig,
    WatchdogConfig,
)
from polyfeed.errors import ConfigError
from polyfeed.testing import FakePolymarket
from polyfeed.testing.server import FirehoseResult, firehose

CONFIG = StreamConfig(
    heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.3),
    watchdog=WatchdogConfig(data_timeout=5.0, confirm_timeout=2.0),
    backoff=BackoffConfig(base=0.02, max_delay=0.1, jitter=0.0, stable_for=0.5),
)


@pytest.mark.timeout(20)
async def test_a_paced_firehose_keeps_its_rate_and_every_hash_verifies() -> None:
    # Unbatched books checking every message's hash: the firehose's messages must all verify.
    options = BookOptions(grace_messages=0)
    async with (
        # One hash check per entry holds only without multi-message runs (a run is verified at
        # its end, as test_book_keeper's runs test shows), so this count runs with them off.
        FakePolymarket(markets=4, seed=5, rate=0.0, run_probability=0.0) as fake,
        MarketStream(
            fake.asset_ids, endpoints=fake.endpoints, config=CONFIG, book_options=options
        ) as stream,
    ):
        books = 0
        async for event in stream:
            if isinstance(event, Book):
                books += 1
                if books == len(fake.asset_ids):
                    break
        # The metadata the hash covers comes over REST after the snapshots.
        while not all(stream.books[a].neg_risk is not None for a in fake.asset_ids):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        before = {a: stream.books[a].counters.hash_checks for a in fake.asset_ids}
        result = await firehose(fake, messages=300, rate=3_000.0)
        assert isinstance(result, FirehoseResult)
        assert result.messages == 300
        assert result.frames >= 300
        # Paced: the last chunk is due at 299/3000 s; not much later on a loaded machine.
        assert result.seconds >= 0.099
        changes = 0
        while changes < 300:
            event = await asyncio.wait_for(anext(stream), 5.0)
            if isinstance(event, PriceChange):
                assert len(event.price_changes) == 2  # both tokens of the market
                changes += 1
        for asset in fake.asset_ids:
            book = stream.books[asset]
            counters = book.counters
            assert book.synced and book.in_doubt is None, book
            assert counters.hash_mismatches == counters.invalidations == 0, counters
        checked = sum(stream.books[a].counters.hash_checks - before[a] for a in fake.asset_ids)
        assert checked == 600  # every entry of every message


async def test_an_unpaced_firehose_and_bad_arguments() -> None:
    async with FakePolymarket(markets=1, seed=2) as fake:
        result = await firehose(fake, messages=50)
        assert result.messages == 50
        assert result.frames == 0  # nobody subscribed
        assert result.rate > 0
        assert (await firehose(fake, messages=0)).messages == 0
        for bad in (
            {"messages": -1},
            {"messages": 1, "rate": -1.0},
            {"messages": 1, "rate": float("inf")},
        ):
            with pytest.raises(ConfigError):
                await firehose(fake, **bad)
