"""Decoding of inbound Polymarket WebSocket text frames into typed wire items.

A frame is one of:

- a bare text frame: ``PONG`` (the answer to our ``PING``), ``NO NEW ASSETS``,
  ``INVALID OPERATION`` or any other non-JSON text -> ``Pong`` / ``Notice``;
- one JSON object or a JSON array of objects, each tagged by ``event_type``.

The fast path decodes the whole frame with one typed msgspec decoder per channel; it costs no
Python work per field. Only when that fails (an unknown ``event_type``, a bad element, broken
JSON) does the slow path decode generically and convert element by element, so one bad element
never loses the good ones of the same array. :meth:`FrameDecoder.decode` never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import msgspec

from polyfeed.core.messages import (
    Malformed,
    MarketEvent,
    Notice,
    Pong,
    PriceChange,
    PriceChangeEntry,
    Unknown,
    UserEvent,
    WireItem,
)
from polyfeed.errors import ConfigError

__all__ = ["Channel", "DecodeStats", "FrameDecoder", "decode_frame"]

Channel = Literal["market", "user"]

EXCERPT_CHARS: Final = 200

# Frames are sliced to their first character/byte and compared with these; a tuple (not a set)
# so a bytearray slice compares equal instead of failing to hash.
_JSON_OPENERS: Final = ("{", "[", b"{", b"[")

# What decoding untrusted bytes can raise: bad JSON or types, nesting deeper than msgspec's
# recursion limit, and invalid UTF-8 inside strings.
_DECODE_ERRORS: Final = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


@dataclass(slots=True)
class DecodeStats:
    """Counters of one decoder. Every returned item is counted in exactly one of ``events``,
    ``unknown``, ``malformed``, ``notices`` and ``pongs``; ``frames`` counts decode calls.

    The object is live: it keeps counting after you took a reference to it.
    """

    frames: int = 0
    events: int = 0
    unknown: int = 0
    malformed: int = 0
    notices: int = 0
    pongs: int = 0

    @property
    def items(self) -> int:
        """All items returned so far (the sum of the per-kind counters)."""
        return self.events + self.unknown + self.malformed + self.notices + self.pongs


class _ChannelCodec:
    """The immutable, shareable part of a decoder: typed decoder, union and known tags."""

    __slots__ = ("fast", "name", "tags", "union")

    def __init__(self, name: Channel, union: Any) -> None:
        self.name = name
        self.union = union
        self.fast: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            list[union] | union,
            # Market timestamps arrive as strings ("1757908892351") and sometimes as numbers;
            # lenient decoding turns both into int.
            strict=False,
        )
        self.tags: frozenset[str] = frozenset(cls.__struct_config__.tag for cls in get_args(union))


_CODECS: Final[dict[str, _ChannelCodec]] = {
    "market": _ChannelCodec("market", MarketEvent),
    "user": _ChannelCodec("user", UserEvent),
}


def _text_of(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    return bytes(data).decode("utf-8", "replace")


def _excerpt(data: str | bytes) -> str:
    if isinstance(data, str):
        return data[:EXCERPT_CHARS]
    # Four bytes per character at most, so this prefix always yields EXCERPT_CHARS characters.
    return bytes(data[: EXCERPT_CHARS * 4]).decode("utf-8", "replace")[:EXCERPT_CHARS]


def _type_name(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case _:
            return type(value).__name__


def _normalise_price_change(event: PriceChange) -> PriceChange | Malformed:
    """Rewrite a legacy single-asset ``price_change`` into the ``price_changes`` shape.

    Before 2025-09-15 the asset and book hash sat on the message with a ``changes`` list; the
    oldest recordings carry a single level as top-level ``price``/``side``/``size``.
    """
    if event.changes:
        levels = [(change.price, change.size, change.side) for change in event.changes]
    elif event.price is not None and event.size is not None and event.side is not None:
        levels = [(event.price, event.size, event.side)]
    else:
        return event
    if event.asset_id is None:
        return Malformed(
            "legacy price_change without asset_id",
            _excerpt(msgspec.json.encode(event).decode()),
        )
    entries = [
        PriceChangeEntry(
            asset_id=event.asset_id, price=price, size=size, side=side, hash=event.hash or ""
        )
        for price, size, side in levels
    ]
    return msgspec.structs.replace(event, price_changes=entries)


class FrameDecoder:
    """Decodes the text frames of one connection (``market`` or ``user`` channel).

    Each channel knows only its own events: an ``order`` on the market channel is ``Unknown``.
    """

    __slots__ = ("_codec", "_fast", "stats")

    def __init__(self, channel: Channel) -> None:
        codec = _CODECS.get(channel)
        if codec is None:
            raise ConfigError(f"unknown channel {channel!r}; expected 'market' or 'user'")
        self._codec = codec
        self._fast = codec.fast.decode
        self.stats = DecodeStats()

    @property
    def channel(self) -> Channel:
        """The channel this decoder decodes."""
        return self._codec.name

    def __repr__(self) -> str:
        return f"FrameDecoder(channel={self._codec.name!r}, stats={self.stats!r})"

    def decode(self, data: str | bytes) -> list[WireItem]:
        """All items of one frame, in wire order. Never raises; bad input becomes ``Malformed``."""
        stats = self.stats
        stats.frames += 1
        # Data frames go straight to the typed decoder: no per-frame Python checks before it.
        # PONG and notices fail it at their first byte, and are classified after that failure
        # but before any generic JSON decoding, so they are never mistaken for malformed JSON.
        try:
            decoded = self._fast(data)
        except _DECODE_ERRORS:
            return self._tally(self._decode_other(data))
        cls = type(decoded)
        if cls is list:
            return self._tally_list(decoded)
        if cls is PriceChange and not decoded.price_changes:
            return self._tally([_normalise_price_change(decoded)])
        stats.events += 1
        return [decoded]

    def decode_many(self, frames: Sequence[str | bytes]) -> list[WireItem]:
        """All items of several frames, in wire order: ``decode`` of each, concatenated.

        The loop is :meth:`decode` inlined, so a burst read from the socket pays the per-frame
        bookkeeping once. (Joining the frames into one JSON array and decoding that in a single
        call was measured slower: the whole burst's objects stay alive at once, which costs
        more allocator and GC work than the saved calls.)
        """
        out: list[WireItem] = []
        append = out.append
        fast = self._fast
        events = 0
        for frame in frames:
            try:
                decoded = fast(frame)
            except _DECODE_ERRORS:
                out.extend(self._tally(self._decode_other(frame)))
                continue
            cls = type(decoded)
            if cls is list:
                out.extend(self._tally_list(decoded))
            elif cls is PriceChange and not decoded.price_changes:
                out.extend(self._tally([_normalise_price_change(decoded)]))
            else:
                append(decoded)
                events += 1
        stats = self.stats
        stats.frames += len(frames)
        stats.events += events
        return out

    # ------------------------------------------------------------------ counting, slow paths

    def _tally_list(self, items: list[WireItem]) -> list[WireItem]:
        """Count a fast-decoded array frame, normalising legacy price changes in place."""
        stats = self.stats
        stats.events += len(items)
        for index, item in enumerate(items):
            if type(item) is PriceChange and not item.price_changes:
                items[index] = normalised = _normalise_price_change(item)
                if type(normalised) is Malformed:
                    stats.events -= 1
                    stats.malformed += 1
        return items

    def _tally(self, items: list[WireItem]) -> list[WireItem]:
        stats = self.stats
        for item in items:
            match item:
                case Unknown():
                    stats.unknown += 1
                case Malformed():
                    stats.malformed += 1
                case Notice():
                    stats.notices += 1
                case Pong():
                    stats.pongs += 1
                case _:
                    stats.events += 1
        return items

    def _decode_other(self, data: str | bytes) -> list[WireItem]:
        """A frame the typed decoder rejected: a bare text frame, or JSON needing the slow path."""
        if data[:1] in _JSON_OPENERS:
            return self._decode_slow(data)
        return self._decode_text(data)

    def _decode_text(self, data: str | bytes) -> list[WireItem]:
        """A frame that does not start like JSON: heartbeat answer, server notice or junk."""
        text = _text_of(data).strip()
        if not text:
            return [Malformed("empty frame", _excerpt(_text_of(data)))]
        # The CLOB answers exactly "PONG"; other Polymarket sockets use lowercase, so accept
        # any case rather than let a heartbeat answer look like a notice.
        if text.upper() == "PONG":
            return [Pong()]
        if text[0] in '{["':
            # Only leading whitespace kept it off the fast path (or it is broken JSON).
            return self._decode_slow(text)
        try:
            value = msgspec.json.decode(text)
        except _DECODE_ERRORS:
            return [Notice(text)]
        return [
            Malformed(f"expected a JSON object or array, got {_type_name(value)}", _excerpt(text))
        ]

    def _decode_slow(self, data: str | bytes) -> list[WireItem]:
        """Generic decode, then element by element, so good elements survive bad neighbours."""
        try:
            value = msgspec.json.decode(data)
        except _DECODE_ERRORS as exc:
            return [Malformed(f"invalid JSON: {exc}", _excerpt(data))]
        if isinstance(value, dict):
            raw = data.encode() if isinstance(data, str) else bytes(data)
            return [self._decode_element(value, raw)]
        if isinstance(value, list):
            return [self._decode_element(element, None) for element in value]
        return [
            Malformed(f"expected a JSON object or array, got {_type_name(value)}", _excerpt(data))
        ]

    def _decode_element(self, element: Any, raw: bytes | None) -> WireItem:
        """One generically decoded object; ``raw`` is its exact wire bytes when known."""
        if not isinstance(element, dict):
            return Malformed(
                f"expected an object, got {_type_name(element)}",
                _excerpt(msgspec.json.encode(element)),
            )
        event_type = element.get("event_type")
        if event_type is not None and not isinstance(event_type, str):
            return Malformed(
                f"event_type is a {_type_name(event_type)}, not a string",
                _excerpt(raw if raw is not None else msgspec.json.encode(element)),
            )
        if event_type not in self._codec.tags:
            return Unknown(event_type, raw if raw is not None else msgspec.json.encode(element))
        try:
            event = msgspec.convert(element, self._codec.union, strict=False)
        except msgspec.ValidationError as exc:
            return Malformed(
                f"invalid {event_type}: {exc}",
                _excerpt(raw if raw is not None else msgspec.json.encode(element)),
            )
        if type(event) is PriceChange and not event.price_changes:
            return _normalise_price_change(event)
        result: WireItem = event
        return result


def decode_frame(data: str | bytes, channel: Channel = "market") -> list[WireItem]:
    """Decode one frame without keeping counters (see :class:`FrameDecoder`)."""
    return FrameDecoder(channel).decode(data)
