"""polyfeed: live Polymarket WebSocket data that keeps flowing.

The public API is what ``__all__`` lists; everything else is internal.
"""

from polyfeed.client import Health, MarketStream, UserStream
from polyfeed.config import (
    PROFILES,
    BackoffConfig,
    Endpoints,
    HeartbeatConfig,
    QueueConfig,
    StreamConfig,
    WatchdogConfig,
)
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
    TransientError,
)
from polyfeed.events import (
    BookInvalidated,
    BookResynced,
    Connected,
    Disconnected,
    Gap,
    Reconnecting,
    Resubscribed,
    Stale,
)
from polyfeed.metrics import ConnectionMetrics
from polyfeed.protocol.messages import (
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
    Pong,
    PriceChange,
    PriceChangeEntry,
    TickSizeChange,
    Trade,
    Unknown,
)
from polyfeed.rest import RestClient
from polyfeed.subscriptions import SubscriptionSet

# The seed design's vocabulary, kept as aliases so its users find their names.
SubscriptionManager = SubscriptionSet

__all__ = [
    "AuthenticationError",
    "BackoffConfig",
    "BestBidAsk",
    "Book",
    "BookInvalidated",
    "BookResynced",
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
    "Gap",
    "HandshakeRejectedError",
    "Health",
    "HeartbeatConfig",
    "LastTradePrice",
    "Level",
    "MakerOrder",
    "Malformed",
    "MarketResolved",
    "MarketStream",
    "NewMarket",
    "Notice",
    "Order",
    "OverflowDisconnectError",
    "PROFILES",
    "PolyfeedError",
    "Pong",
    "PriceChange",
    "PriceChangeEntry",
    "QueueConfig",
    "Reconnecting",
    "RestClient",
    "RestError",
    "Resubscribed",
    "RetriesExhaustedError",
    "ServerUnavailableError",
    "Stale",
    "StreamClosedError",
    "StreamConfig",
    "SubscriptionManager",
    "SubscriptionSet",
    "TickSizeChange",
    "Trade",
    "TransientError",
    "Unknown",
    "UserStream",
    "WatchdogConfig",
]
