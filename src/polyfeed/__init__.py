"""polyfeed: live Polymarket WebSocket data that keeps flowing.

The public API is what ``__all__`` lists; everything else is internal (importable from its
module, without a stability promise). ``MarketStreamEvent`` and ``UserStreamEvent`` are the
unions of what the streams yield, for ``match`` + ``typing.assert_never``.
"""

from polyfeed.aio.rest import GammaMarket, MarketInfo, RestClient
from polyfeed.aio.stream import Health, MarketStream, UserStream
from polyfeed.config import (
    PROFILES,
    BackoffConfig,
    Endpoints,
    HeartbeatConfig,
    PoolConfig,
    QueueConfig,
    StreamConfig,
    WatchdogConfig,
)
from polyfeed.core.book import BookOptions, BookRegistry, BookVerdict, OrderBook, ResyncLimiter
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    Level,
    MakerOrder,
    Malformed,
    MarketResolved,
    NewMarket,
    Notice,
    Order,
    PriceChange,
    PriceChangeEntry,
    TickSizeChange,
    Trade,
    Unknown,
)
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.credentials import Credentials
from polyfeed.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    ConnectionClosedError,
    DataTimeoutError,
    FatalError,
    HandshakeRejectedError,
    OverflowDisconnectError,
    PolyfeedError,
    RestError,
    RetriesExhaustedError,
    ServerUnavailableError,
    StreamClosedError,
    StreamNotStartedError,
    TransientError,
)
from polyfeed.events import (
    BookInvalidated,
    BookResynced,
    Connected,
    Disconnected,
    Gap,
    MarketStreamEvent,
    Reconnecting,
    Resubscribed,
    Stale,
    StreamLifecycleEvent,
    UserStreamEvent,
)
from polyfeed.metrics import ConnectionMetrics

# The seed design's vocabulary, kept as aliases so its users find their names.
SubscriptionManager = SubscriptionSet

__all__ = [
    "AuthenticationError",
    "BackoffConfig",
    "BestBidAsk",
    "Book",
    "BookInvalidated",
    "BookOptions",
    "BookRegistry",
    "BookResynced",
    "BookVerdict",
    "ConfigError",
    "ConnectError",
    "Connected",
    "ConnectionClosedError",
    "ConnectionMetrics",
    "Credentials",
    "DataTimeoutError",
    "Disconnected",
    "Endpoints",
    "FatalError",
    "GammaMarket",
    "Gap",
    "HandshakeRejectedError",
    "Health",
    "HeartbeatConfig",
    "LastTradePrice",
    "Level",
    "MakerOrder",
    "Malformed",
    "MarketInfo",
    "MarketResolved",
    "MarketStream",
    "MarketStreamEvent",
    "NewMarket",
    "Notice",
    "Order",
    "OrderBook",
    "OverflowDisconnectError",
    "PROFILES",
    "PolyfeedError",
    "PoolConfig",
    "PriceChange",
    "PriceChangeEntry",
    "QueueConfig",
    "Reconnecting",
    "RestClient",
    "RestError",
    "Resubscribed",
    "ResyncLimiter",
    "RetriesExhaustedError",
    "ServerUnavailableError",
    "Stale",
    "StreamClosedError",
    "StreamConfig",
    "StreamLifecycleEvent",
    "StreamNotStartedError",
    "SubscriptionManager",
    "TickSizeChange",
    "Trade",
    "TransientError",
    "Unknown",
    "UserStream",
    "UserStreamEvent",
    "WatchdogConfig",
]
