"""Typed Polymarket WebSocket messages.

Every inbound event is a frozen msgspec Struct in a tagged union on ``event_type``. Prices and sizes
stay the exact strings the server sent: they are what the book hash covers, and converting them to
binary floats would drift. ``Decimal`` views are offered where arithmetic is wanted.

Timestamps on the market channel are epoch milliseconds (sent as strings, sometimes as numbers);
the decoder is lenient and gives ``int``. User-channel times vary by field and vintage (epoch
seconds, milliseconds, ISO strings) and are kept as received.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

Side = Literal["BUY", "SELL"]


# Events hold only strings, numbers, None and lists of the leaf structs below; nothing in them
# points back, so they can never be part of a reference cycle and need no GC header. Under a
# burst this took ~25 % off decoding (benchmarks/README.md, Stream). Do not store an event in
# its own lists: such a cycle would never be collected.
class _Event(msgspec.Struct, frozen=True, tag_field="event_type", kw_only=True, gc=False):
    """Base of every tagged wire event."""


# The leaf structs below (levels, change entries, maker orders) hold only strings, numbers and
# None, so they can never be part of a reference cycle. ``gc=False`` allocates them without a GC
# header, which a busy feed creates by the thousand (measured ~13 % faster book decoding).


class Level(msgspec.Struct, frozen=True, gc=False):
    """One aggregated price level of a ``book`` snapshot."""

    price: str
    size: str


# --------------------------------------------------------------------------- market channel


class Book(_Event, frozen=True, tag="book"):
    """Full L2 snapshot for one asset (sent on subscribe and after trades).

    Wire order is not trusted: live data sends bids ascending and asks descending.
    """

    market: str
    asset_id: str
    timestamp: int
    bids: list[Level]
    asks: list[Level]
    hash: str = ""
    tick_size: str | None = None
    last_trade_price: str | None = None
    min_order_size: str | None = None
    neg_risk: bool | None = None


class PriceChangeEntry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One level change: ``size`` is the new absolute size at ``price`` ("0" removes it)."""

    asset_id: str
    price: str
    size: str
    side: str
    hash: str = ""
    best_bid: str | None = None
    best_ask: str | None = None


class LegacyChange(msgspec.Struct, frozen=True, gc=False):
    """A change in the pre-2025-09-15 ``price_change`` shape (asset and hash on the message)."""

    price: str
    side: str
    size: str


class PriceChange(_Event, frozen=True, tag="price_change"):
    """Level deltas; one message may carry changes for both outcome tokens of a market.

    The codec normalises the legacy single-asset shapes (top-level ``asset_id``, ``hash`` and
    either ``changes`` or, in the oldest recordings, one level as top-level ``price``/``side``/
    ``size``) into ``price_changes`` so consumers handle one shape.
    """

    market: str
    timestamp: int
    price_changes: tuple[PriceChangeEntry, ...] = ()
    asset_id: str | None = None
    hash: str | None = None
    changes: list[LegacyChange] | None = None
    price: str | None = None
    side: str | None = None
    size: str | None = None


class LastTradePrice(_Event, frozen=True, tag="last_trade_price"):
    """A trade print; ``side`` is the taker's."""

    market: str
    asset_id: str
    price: str
    timestamp: int
    side: str | None = None
    size: str | None = None
    fee_rate_bps: str | None = None
    transaction_hash: str | None = None


class TickSizeChange(_Event, frozen=True, tag="tick_size_change"):
    """The asset's tick size changed (prices near the extremes get a finer tick)."""

    market: str
    asset_id: str
    old_tick_size: str
    new_tick_size: str
    timestamp: int
    side: str | None = None


class BestBidAsk(_Event, frozen=True, tag="best_bid_ask"):
    """Top of book (custom feature)."""

    market: str
    asset_id: str
    best_bid: str
    best_ask: str
    timestamp: int
    spread: str | None = None


class EventMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The Gamma event a ``new_market`` belongs to."""

    id: str | None = None
    ticker: str | None = None
    slug: str | None = None
    title: str | None = None
    description: str | None = None


class NewMarket(_Event, frozen=True, tag="new_market"):
    """A market was created (custom feature; a global broadcast, not filtered by asset)."""

    market: str
    timestamp: int
    id: str | None = None
    question: str | None = None
    slug: str | None = None
    description: str | None = None
    assets_ids: list[str] = []
    outcomes: list[str] = []
    event_message: EventMessage | None = None
    tags: list[str] = []
    condition_id: str | None = None
    active: bool | None = None
    clob_token_ids: list[str] = []
    order_price_min_tick_size: str | None = None
    group_item_title: str | None = None
    sports_market_type: str | None = None
    line: str | None = None
    game_start_time: str | None = None


class MarketResolved(_Event, frozen=True, tag="market_resolved"):
    """A market resolved (custom feature; a global broadcast)."""

    market: str
    timestamp: int
    id: str | None = None
    assets_ids: list[str] = []
    winning_asset_id: str | None = None
    winning_outcome: str | None = None


MarketEvent = (
    Book | PriceChange | LastTradePrice | TickSizeChange | BestBidAsk | NewMarket | MarketResolved
)

# --------------------------------------------------------------------------- user channel

OrderType = Literal["PLACEMENT", "UPDATE", "CANCELLATION"]
TradeStatus = Literal[
    "MATCHED", "MINED", "CONFIRMED", "RETRYING", "FAILED", "MATCHED_NOT_BROADCASTED"
]


class Order(_Event, frozen=True, tag="order"):
    """An order of the API key was placed, updated (filled) or cancelled.

    ``status`` is kept as a plain string: the venue sends ``CANCELED_<reason>`` variants.
    """

    id: str
    market: str
    asset_id: str
    side: str
    price: str
    original_size: str
    size_matched: str
    type: str
    timestamp: int
    owner: str | None = None
    order_owner: str | None = None
    outcome: str | None = None
    associate_trades: list[str] | None = None
    order_type: str | None = None
    status: str | None = None
    created_at: int | str | None = None
    expiration: int | str | None = None
    maker_address: str | None = None


class MakerOrder(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One maker order matched by a trade."""

    order_id: str
    matched_amount: str
    price: str
    asset_id: str | None = None
    owner: str | None = None
    maker_address: str | None = None
    # Some user-channel captures send the fee rate as a JSON number instead of a string.
    fee_rate_bps: str | int | None = None
    outcome: str | None = None
    side: str | None = None


class Trade(_Event, frozen=True, tag="trade"):
    """A trade of the API key; re-sent on each status change (key idempotently on id+status)."""

    id: str
    market: str
    asset_id: str
    side: str
    size: str
    price: str
    status: str
    timestamp: int | None = None
    type: str | None = None
    taker_order_id: str | None = None
    fee_rate_bps: str | int | None = None
    matchtime: int | str | None = None
    match_time: int | str | None = None
    last_update: int | str | None = None
    outcome: str | None = None
    owner: str | None = None
    trade_owner: str | None = None
    maker_address: str | None = None
    transaction_hash: str | None = None
    bucket_index: int | None = None
    trader_side: str | None = None
    maker_orders: list[MakerOrder] = []


UserEvent = Order | Trade

# --------------------------------------------------------------------------- non-event frames


class Pong(msgspec.Struct, frozen=True):
    """The server's text ``PONG`` answer to our text ``PING``."""


class Notice(msgspec.Struct, frozen=True):
    """A bare text frame from the server, e.g. ``NO NEW ASSETS`` or ``INVALID OPERATION``.

    ``text`` is the frame without surrounding whitespace, cut to the codec's ``EXCERPT_CHARS``.
    """

    text: str


class Unknown(msgspec.Struct, frozen=True):
    """A JSON event whose ``event_type`` this version does not know (counted, passed on).

    ``raw`` is the event's exact wire bytes, cut to the codec's ``UNKNOWN_RAW_BYTES``
    (``truncated`` then says so); ``event_type`` is cut to ``EXCERPT_CHARS``.
    """

    event_type: str | None
    raw: bytes
    truncated: bool = False


class Malformed(msgspec.Struct, frozen=True):
    """A frame (or one element of an array frame) that could not be decoded; counted.

    ``excerpt`` is the start of the bad input (at most the codec's ``EXCERPT_CHARS``), never the
    whole frame.
    """

    reason: str
    excerpt: str


WireItem = MarketEvent | UserEvent | Pong | Notice | Unknown | Malformed


def to_decimal(value: str) -> Decimal:
    """An exact ``Decimal`` for a wire price/size string (``""`` counts as zero)."""
    return Decimal(value) if value else Decimal(0)
