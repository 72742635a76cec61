"""The curated public API."""

from __future__ import annotations

from typing import assert_never, assert_type

import pytest

import polyfeed
from polyfeed.core.messages import Pong
from polyfeed.testing import FakePolymarket

PUBLIC = {
    # streams and what they yield
    "MarketStream",
    "UserStream",
    "Health",
    "MarketStreamEvent",
    "UserStreamEvent",
    "StreamLifecycleEvent",
    # Polymarket's events and their parts
    "BestBidAsk",
    "Book",
    "LastTradePrice",
    "Level",
    "MakerOrder",
    "Malformed",
    "MarketResolved",
    "NewMarket",
    "Notice",
    "Order",
    "PriceChange",
    "PriceChangeEntry",
    "TickSizeChange",
    "Trade",
    "Unknown",
    # lifecycle events
    "AssetChecked",
    "BookInvalidated",
    "BookResynced",
    "Connected",
    "ConnectionReplaced",
    "Disconnected",
    "Gap",
    "Reconnecting",
    "Redundancy",
    "Resubscribed",
    "Stale",
    # configuration
    "PROFILES",
    "BackoffConfig",
    "Endpoints",
    "HeartbeatConfig",
    "PoolConfig",
    "QueueConfig",
    "StreamConfig",
    "WatchdogConfig",
    "Credentials",
    # local books
    "BookOptions",
    "BookRegistry",
    "BookVerdict",
    "OrderBook",
    "ResyncLimiter",
    # REST
    "GammaMarket",
    "MarketInfo",
    "RestClient",
    # errors
    "AuthenticationError",
    "ConfigError",
    "ConnectError",
    "ConnectionClosedError",
    "DataTimeoutError",
    "FatalError",
    "HandshakeRejectedError",
    "OverflowDisconnectError",
    "PolyfeedError",
    "RestError",
    "RetriesExhaustedError",
    "ServerUnavailableError",
    "StreamClosedError",
    "StreamNotStartedError",
    "TransientError",
    # the other sockets and the order heartbeat
    "ClosedByPolicyError",
    "HeartbeatHealth",
    "OrderHeartbeat",
    "OrderHeartbeatConfig",
    "PolyboltConfig",
    "PolyboltStream",
    "PolyboltStreamEvent",
    "PolyboltSubscription",
    "RtdsConfig",
    "RtdsStream",
    "RtdsStreamEvent",
    "RtdsSubscription",
    "SportsConfig",
    "SportsStream",
    "SportsStreamEvent",
    # metrics and the seed's vocabulary
    "ConnectionMetrics",
    "SubscriptionManager",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(polyfeed.__all__) == PUBLIC
    assert polyfeed.__all__ == sorted(set(polyfeed.__all__))


def test_every_public_name_resolves() -> None:
    missing = [name for name in polyfeed.__all__ if not hasattr(polyfeed, name)]
    assert missing == []


def test_pong_never_reaches_a_consumer_so_it_is_not_public() -> None:
    assert "Pong" not in polyfeed.__all__
    assert Pong not in polyfeed.MarketStreamEvent.__args__
    assert Pong not in polyfeed.UserStreamEvent.__args__


def test_seed_vocabulary_is_available() -> None:
    assert polyfeed.SubscriptionManager.__name__ == "SubscriptionSet"
    assert issubclass(polyfeed.DataTimeoutError, polyfeed.TransientError)
    assert polyfeed.ConnectionMetrics.__name__ == "ConnectionMetrics"


def describe_market(event: polyfeed.MarketStreamEvent) -> str:
    """Every case of the union: ``mypy tests`` fails here if a stream can yield another type."""
    match event:
        case polyfeed.Book() | polyfeed.PriceChange() | polyfeed.LastTradePrice():
            return "data"
        case polyfeed.TickSizeChange() | polyfeed.BestBidAsk():
            return "data"
        case polyfeed.NewMarket() | polyfeed.MarketResolved():
            return "market"
        case polyfeed.Notice() | polyfeed.Unknown() | polyfeed.Malformed():
            return "other"
        case polyfeed.Connected() | polyfeed.Disconnected() | polyfeed.Reconnecting():
            return "link"
        case polyfeed.Stale() | polyfeed.Resubscribed() | polyfeed.Gap():
            return "link"
        case polyfeed.BookInvalidated() | polyfeed.BookResynced():
            return "book"
        case polyfeed.AssetChecked() | polyfeed.ConnectionReplaced() | polyfeed.Redundancy():
            return "pool"
        case _:
            assert_never(event)


def describe_user(event: polyfeed.UserStreamEvent) -> str:
    """The user channel's union: no book events, no market events."""
    match event:
        case polyfeed.Order() | polyfeed.Trade():
            return "data"
        case polyfeed.Notice() | polyfeed.Unknown() | polyfeed.Malformed():
            return "other"
        case polyfeed.Connected() | polyfeed.Disconnected() | polyfeed.Reconnecting():
            return "link"
        case polyfeed.Stale() | polyfeed.Resubscribed() | polyfeed.Gap():
            return "link"
        case _:
            assert_never(event)


def test_a_match_over_the_stream_unions_is_exhaustive() -> None:
    assert describe_market(polyfeed.Notice("NO NEW ASSETS")) == "other"
    assert describe_market(polyfeed.Gap(started=1.0, ended=2.0, assets=[], reason="x")) == "link"
    assert describe_user(polyfeed.Stale(kind="data", silent_for=1.0)) == "link"


@pytest.mark.timeout(15)
async def test_iteration_and_run_are_typed_with_the_union() -> None:
    async with FakePolymarket(markets=1, seed=31) as fake:
        async with polyfeed.MarketStream(fake.asset_ids, endpoints=fake.endpoints) as stream:
            kinds = []
            async for event in stream:
                assert_type(event, polyfeed.MarketStreamEvent)
                kinds.append(describe_market(event))
                if isinstance(event, polyfeed.Book):
                    break
            assert kinds[0] == "link"
            assert_type(await anext(stream), polyfeed.MarketStreamEvent)

        seen: list[str] = []

        def on_event(event: polyfeed.MarketStreamEvent) -> None:
            seen.append(describe_market(event))
            if len(seen) == 2:
                raise LookupError("enough")

        with pytest.raises(LookupError):
            await polyfeed.MarketStream(fake.asset_ids, endpoints=fake.endpoints).run(on_event)
        assert seen[0] == "link"
