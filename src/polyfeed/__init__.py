"""polyfeed: live Polymarket WebSocket data that keeps flowing.

The public API is what ``__all__`` lists; everything else is internal (importable from its
module, without a stability promise). ``MarketStreamEvent``, ``UserStreamEvent``,
``RtdsStreamEvent``, ``PolyboltStreamEvent`` and ``SportsStreamEvent`` are the unions of what
the streams yield, for ``match`` + ``typing.assert_never``.
"""

from polyfeed._version import __version__ as __version__
from polyfeed.aio.heartbeat import HeartbeatHealth, OrderHeartbeat
from polyfeed.aio.polybolt_stream import PolyboltStream, PolyboltStreamEvent
from polyfeed.aio.rest import GammaMarket, MarketInfo, RestClient
from polyfeed.aio.rtds_stream import RtdsStream, RtdsStreamEvent
from polyfeed.aio.sports_stream import SportsStream, SportsStreamEvent
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
from polyfeed.core.heartbeat import OrderHeartbeatConfig
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
from polyfeed.core.polybolt import PolyboltConfig, PolyboltSubscription
from polyfeed.core.rtds import RtdsConfig, RtdsSubscription
from polyfeed.core.sports import SportsConfig
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.credentials import Credentials
from polyfeed.errors import (
    AuthenticationError,
    ClosedByPolicyError,
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
    AssetChecked,
    BookInvalidated,
    BookResynced,
    Connected,
    ConnectionReplaced,
    Disconnected,
    Gap,
    MarketStreamEvent,
    Reconnecting,
    Redundancy,
    Resubscribed,
    Stale,
    StreamLifecycleEvent,
    UserStreamEvent,
)
from polyfeed.metrics import ConnectionMetrics

# The seed design's vocabulary, kept as aliases so its users find their names.
SubscriptionManager = SubscriptionSet

__all__ = [
    "AssetChecked",
    "AuthenticationError",
    "BackoffConfig",
    "BestBidAsk",
    "Book",
    "BookInvalidated",
    "BookOptions",
    "BookRegistry",
    "BookResynced",
    "BookVerdict",
    "ClosedByPolicyError",
    "ConfigError",
    "ConnectError",
    "Connected",
    "ConnectionClosedError",
    "ConnectionMetrics",
    "ConnectionReplaced",
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
    "HeartbeatHealth",
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
    "OrderHeartbeat",
    "OrderHeartbeatConfig",
    "OverflowDisconnectError",
    "PROFILES",
    "PolyboltConfig",
    "PolyboltStream",
    "PolyboltStreamEvent",
    "PolyboltSubscription",
    "PolyfeedError",
    "PoolConfig",
    "PriceChange",
    "PriceChangeEntry",
    "QueueConfig",
    "Reconnecting",
    "Redundancy",
    "RestClient",
    "RestError",
    "Resubscribed",
    "ResyncLimiter",
    "RetriesExhaustedError",
    "RtdsConfig",
    "RtdsStream",
    "RtdsStreamEvent",
    "RtdsSubscription",
    "ServerUnavailableError",
    "SportsConfig",
    "SportsStream",
    "SportsStreamEvent",
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
