"""Typed messages of the RTDS socket (``wss://ws-live-data.polymarket.com``) and their decoder.

Every RTDS data frame is one envelope ``{"topic", "type", "timestamp" (ms), "payload",
"connection_id"?}``. The main topics get their own event; any other topic (or a main topic whose
payload does not have the expected shape) arrives as :class:`RtdsRaw` with the payload as
decoded JSON, so nothing the server sends is lost:

================================  ===================================================
``crypto_prices``,                ``update``: :class:`RtdsPrice`; ``subscribe`` (the
``crypto_prices_chainlink``,      recent history sent on subscribe):
``equity_prices``,                :class:`RtdsPriceHistory`
``crypto_prices_twap_*``
``activity``                      :class:`RtdsActivity` (``trades``, ``orders_matched``)
``comments``                      :class:`RtdsComment` (comment and reaction events)
``clob_market``, ``clob_user``    :class:`RtdsClobMessage` (payload kept as sent: the
                                  compact ``price_change`` keys change without notice)
================================  ===================================================

Price values are JSON numbers on the wire, so they are floats here; ``full_accuracy_value``
keeps the exact text where the server sends it. Bare text frames: ``PONG`` (any case) answers
our ``PING``; a JSON object without ``topic`` but with ``message`` is the server refusing a
request (e.g. ``invalid Subscription.Filters``) and becomes :class:`RtdsServerMessage`.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

__all__ = [
    "PRICE_TOPICS",
    "RtdsActivity",
    "RtdsClobMessage",
    "RtdsComment",
    "RtdsDecoder",
    "RtdsEvent",
    "RtdsMalformed",
    "RtdsPong",
    "RtdsPrice",
    "RtdsPriceHistory",
    "RtdsPricePoint",
    "RtdsRaw",
    "RtdsServerMessage",
]

PRICE_TOPICS: Final = frozenset(
    {
        "crypto_prices",
        "crypto_prices_chainlink",
        "equity_prices",
        "crypto_prices_twap_sixty",
        "crypto_prices_twap_thirty",
    }
)
_CLOB_TOPICS: Final = frozenset({"clob_market", "clob_user"})


class _RtdsEvent(msgspec.Struct, frozen=True, tag_field="event_type", kw_only=True):
    """Base of every RTDS event: which topic and message type, and the server's time (ms)."""

    topic: str
    type: str
    timestamp: int | None = None


class RtdsPrice(_RtdsEvent, frozen=True, tag="rtds_price"):
    """One price update (crypto, Chainlink, equity, TWAP topics)."""

    symbol: str
    value: float
    price_timestamp: int | None = None
    full_accuracy_value: str | None = None


class RtdsPricePoint(msgspec.Struct, frozen=True):
    """One point of the recent history sent on subscribe."""

    timestamp: int
    value: float


class RtdsPriceHistory(_RtdsEvent, frozen=True, tag="rtds_price_history"):
    """The recent prices of ``symbol`` sent when a price topic is subscribed."""

    symbol: str
    points: list[RtdsPricePoint]


class RtdsActivity(_RtdsEvent, frozen=True, tag="rtds_activity"):
    """A trade or match on the ``activity`` topic; ``payload`` is the message as sent."""

    asset: str | None = None
    condition_id: str | None = None
    side: str | None = None
    price: float | None = None
    size: float | None = None
    slug: str | None = None
    event_slug: str | None = None
    outcome: str | None = None
    transaction_hash: str | None = None
    payload: dict[str, Any] = {}


class RtdsComment(_RtdsEvent, frozen=True, tag="rtds_comment"):
    """A comment or reaction event on the ``comments`` topic; ``payload`` as sent."""

    id: str | None = None
    body: str | None = None
    parent_entity_id: int | None = None
    parent_entity_type: str | None = None
    user_address: str | None = None
    payload: dict[str, Any] = {}


class RtdsClobMessage(_RtdsEvent, frozen=True, tag="rtds_clob"):
    """A ``clob_market``/``clob_user`` message, payload as sent (compact keys vary)."""

    payload: Any = None


class RtdsRaw(_RtdsEvent, frozen=True, tag="rtds_raw"):
    """A message of any other topic (or one whose payload had an unexpected shape)."""

    payload: Any = None


class RtdsServerMessage(msgspec.Struct, frozen=True, tag_field="event_type", tag="rtds_server"):
    """The server refused a request (a bad filter, a bad body): its ``message`` text."""

    message: str
    body: Any = None


class RtdsMalformed(msgspec.Struct, frozen=True, tag_field="event_type", tag="rtds_malformed"):
    """A frame that is neither JSON with a topic nor a known text frame (first 200 chars)."""

    text: str
    error: str


class RtdsPong(msgspec.Struct, frozen=True):
    """The server's text ``PONG``; consumed by the session, never reaches a consumer."""


RtdsEvent = (
    RtdsPrice
    | RtdsPriceHistory
    | RtdsActivity
    | RtdsComment
    | RtdsClobMessage
    | RtdsRaw
    | RtdsServerMessage
    | RtdsMalformed
)
RtdsItem = RtdsEvent | RtdsPong


class _Envelope(msgspec.Struct):
    topic: str | None = None
    type: str | None = None
    timestamp: int | None = None
    payload: msgspec.Raw = msgspec.Raw(b"null")
    message: str | None = None


class _PricePayload(msgspec.Struct):
    symbol: str
    value: float
    timestamp: int | None = None
    full_accuracy_value: str | None = None


class _HistoryPayload(msgspec.Struct):
    symbol: str
    data: list[RtdsPricePoint]


# The fields of RtdsActivity (the decoder passes them on by name), camelCase on the wire.
class _ActivityPayload(msgspec.Struct, rename="camel"):
    asset: str | None = None
    condition_id: str | None = None
    side: str | None = None
    price: float | None = None
    size: float | None = None
    slug: str | None = None
    event_slug: str | None = None
    outcome: str | None = None
    transaction_hash: str | None = None


class _CommentPayload(msgspec.Struct):
    id: str | int | None = None
    body: str | None = None
    parentEntityID: int | None = None
    parentEntityType: str | None = None
    userAddress: str | None = None


_PONG_TEXTS: Final = frozenset({"PONG", "pong", "Pong"})


class RtdsDecoder:
    """Turns RTDS text frames into typed items; counts what it could not type."""

    def __init__(self) -> None:
        self._envelope = msgspec.json.Decoder(_Envelope)
        self._price = msgspec.json.Decoder(_PricePayload)
        self._history = msgspec.json.Decoder(_HistoryPayload)
        self._activity = msgspec.json.Decoder(_ActivityPayload)
        self._comment = msgspec.json.Decoder(_CommentPayload)
        self._any = msgspec.json.Decoder()
        self.malformed = 0
        self.raw = 0

    def __repr__(self) -> str:
        return f"<RtdsDecoder raw={self.raw} malformed={self.malformed}>"

    def decode(self, frame: str | bytes) -> RtdsItem:
        """One frame to one item."""
        text = frame.strip() if isinstance(frame, str) else frame.decode(errors="replace").strip()
        if text in _PONG_TEXTS:
            return RtdsPong()
        try:
            envelope = self._envelope.decode(text)
        except msgspec.DecodeError as exc:
            self.malformed += 1
            return RtdsMalformed(text=text[:200], error=str(exc))
        if envelope.topic is None:
            if envelope.message is not None:
                return RtdsServerMessage(message=envelope.message, body=self._any.decode(text))
            self.malformed += 1
            return RtdsMalformed(text=text[:200], error="no topic")
        return self._typed(envelope)

    def _typed(self, envelope: _Envelope) -> RtdsEvent:
        topic = envelope.topic
        assert topic is not None
        kind = envelope.type or ""
        stamp = envelope.timestamp
        raw = envelope.payload
        try:
            if topic in PRICE_TOPICS:
                if kind == "subscribe":
                    history = self._history.decode(raw)
                    return RtdsPriceHistory(
                        topic=topic,
                        type=kind,
                        timestamp=stamp,
                        symbol=history.symbol,
                        points=history.data,
                    )
                price = self._price.decode(raw)
                return RtdsPrice(
                    topic=topic,
                    type=kind,
                    timestamp=stamp,
                    symbol=price.symbol,
                    value=price.value,
                    price_timestamp=price.timestamp,
                    full_accuracy_value=price.full_accuracy_value,
                )
            if topic == "activity":
                activity = self._activity.decode(raw)
                # The payload struct's fields are RtdsActivity's, by name.
                return RtdsActivity(
                    topic=topic,
                    type=kind,
                    timestamp=stamp,
                    payload=self._any.decode(raw),
                    **msgspec.structs.asdict(activity),
                )
            if topic == "comments":
                comment = self._comment.decode(raw)
                return RtdsComment(
                    topic=topic,
                    type=kind,
                    timestamp=stamp,
                    id=None if comment.id is None else str(comment.id),
                    body=comment.body,
                    parent_entity_id=comment.parentEntityID,
                    parent_entity_type=comment.parentEntityType,
                    user_address=comment.userAddress,
                    payload=self._any.decode(raw),
                )
            if topic in _CLOB_TOPICS:
                return RtdsClobMessage(
                    topic=topic, type=kind, timestamp=stamp, payload=self._any.decode(raw)
                )
        except msgspec.ValidationError:
            # A main topic with a shape we do not know: the consumer still gets it, untyped.
            pass
        self.raw += 1
        return RtdsRaw(topic=topic, type=kind, timestamp=stamp, payload=self._any.decode(raw))
