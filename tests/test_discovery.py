"""Discovery against the fake's Gamma: slugs, events, condition ids, --all-active paging,
shards, and following a running stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from polyfeed.aio.clock import LoopClock
from polyfeed.aio.discovery import Discovery, MarketQuery, token_ids
from polyfeed.aio.rest import GammaMarket, RestClient
from polyfeed.core.placement import Shard
from polyfeed.errors import ConfigError, RestError
from polyfeed.testing import FakePolymarket


@pytest.mark.timeout(20)
async def test_slugs_events_and_condition_ids_resolve_to_token_ids() -> None:
    async with FakePolymarket(markets=8, seed=1) as fake:
        rest = RestClient(fake.rest_url, fake.gamma_url)
        try:
            discovery = Discovery(rest)
            m = fake.markets
            query = MarketQuery(
                markets=(m[7].slug,),
                events=("simulated-event-1",),  # markets 3, 4, 5
                condition_ids=(m[0].condition_id, m[4].condition_id),
            )
            tokens = await discovery.resolve(query)
            expected = [t for i in (7, 3, 4, 5, 0) for t in m[i].tokens]
            assert tokens == expected
            with pytest.raises(ConfigError, match="unknown market slug: no-such-market"):
                await discovery.resolve(MarketQuery(markets=("no-such-market",)))
            with pytest.raises(ConfigError, match="unknown event slug"):
                await discovery.resolve(MarketQuery(events=("no-such-event",)))
        finally:
            await rest.aclose()


@pytest.mark.timeout(20)
async def test_all_active_pages_through_every_market_and_shards_split_it_once() -> None:
    async with FakePolymarket(markets=25, seed=2) as fake:
        rest = RestClient(fake.rest_url, fake.gamma_url)
        try:
            discovery = Discovery(rest, page_size=10)
            tokens = await discovery.resolve(MarketQuery(all_active=True))
            assert tokens == list(fake.asset_ids)
            assert discovery.pages == 3
            halves = [
                await discovery.resolve(MarketQuery(all_active=True, shard=Shard(i, 2)))
                for i in range(2)
            ]
            assert sorted(halves[0] + halves[1]) == sorted(fake.asset_ids)
            assert not set(halves[0]) & set(halves[1])
            assert all(halves)
        finally:
            await rest.aclose()


def test_closed_markets_are_skipped_and_tokens_kept_once() -> None:
    markets = [
        GammaMarket(condition_id="0x1", clob_token_ids=["a", "b"]),
        GammaMarket(condition_id="0x2", clob_token_ids=["c", "d"], closed=True),
        GammaMarket(condition_id="0x3", clob_token_ids=["b", "e"]),
    ]
    assert token_ids(markets) == ["a", "b", "e"]
    assert MarketQuery().empty
    assert not MarketQuery(all_active=True).empty
    with pytest.raises(ConfigError):
        Discovery(RestClient("http://127.0.0.1:1"), page_size=0)


class FakeStream:
    def __init__(self, ids: Iterable[str]) -> None:
        self.ids = set(ids)
        self.changes: list[tuple[str, list[str]]] = []

    @property
    def subscriptions(self) -> frozenset[str]:
        return frozenset(self.ids)

    async def subscribe(self, ids: Iterable[str]) -> list[str]:
        new = [i for i in ids if i not in self.ids]
        self.ids.update(new)
        self.changes.append(("subscribe", new))
        return new

    async def unsubscribe(self, ids: Iterable[str]) -> list[str]:
        gone = [i for i in ids if i in self.ids]
        self.ids.difference_update(gone)
        self.changes.append(("unsubscribe", gone))
        return gone


@pytest.mark.timeout(20)
async def test_follow_subscribes_new_markets_and_drops_the_ones_gone() -> None:
    async with FakePolymarket(markets=3, seed=3) as fake:
        rest = RestClient(fake.rest_url, fake.gamma_url)
        try:
            discovery = Discovery(rest)
            gone = "token-of-a-resolved-market"
            stream = FakeStream([fake.asset_ids[0], gone])
            follower = asyncio.create_task(
                discovery.follow(
                    stream, MarketQuery(all_active=True), every=0.05, clock=LoopClock()
                )
            )
            try:
                for _ in range(250):
                    if stream.subscriptions == set(fake.asset_ids):
                        break
                    await asyncio.sleep(0.02)
            finally:
                follower.cancel()
                await asyncio.wait([follower])
            assert stream.subscriptions == set(fake.asset_ids)
            assert stream.changes[:2] == [
                ("subscribe", sorted(fake.asset_ids[1:])),
                ("unsubscribe", [gone]),
            ]
        finally:
            await rest.aclose()


@pytest.mark.timeout(20)
async def test_a_gamma_failure_is_a_rest_error() -> None:
    rest = RestClient("http://127.0.0.1:1", "http://127.0.0.1:1/gamma", request_timeout=1.0)
    try:
        with pytest.raises(RestError):
            await Discovery(rest).resolve(MarketQuery(all_active=True))
    finally:
        await rest.aclose()
