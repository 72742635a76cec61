"""Decoding of inbound Polymarket WebSocket text frames into typed wire items.

A frame is one of:

- a bare text frame: ``PONG`` (the answer to our ``PING``), ``NO NEW ASSETS``,
  ``INVALID OPERATION`` or any other non-JSON text -> ``Pong`` / ``Notice``;
- one JSON object or a JSON array of objects, each tagged by ``event_type``.

The fast path decodes the whole frame with one typed msgspec decoder per channel; it costs no
Python work per field. Only when that fails (an unknown ``event_type``, a bad element, broken
JSON) does the plain path take over: it splits an array into its elements without decoding them
and judges each element alone with the same typed decoder, so one bad element never loses the
good ones of the same array. Both paths give the same items for every input (a property test
pins them equal). :meth:`FrameDecoder.decode` never raises.

Hostile input costs a bounded amount: a frame yields at most :data:`MAX_ITEMS_PER_FRAME` + 1
items (elements beyond the bound become one ``Malformed``), and ``Notice``, ``Unknown`` and
``Malformed`` keep bounded excerpts (:data:`EXCERPT_CHARS`, :data:`UNKNOWN_RAW_BYTES`), never
the whole frame. Splitting an array skips its elements past the bound without building them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, get_args

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

__all__ = [
    "EXCERPT_CHARS",
    "MAX_ITEMS_PER_FRAME",
    "REASON_CHARS",
    "UNKNOWN_RAW_BYTES",
    "Channel",
    "DecodeStats",
    "FrameDecoder",
    "decode_frame",
]

Channel = Literal["market", "user"]

EXCERPT_CHARS: Final = 200
"""Longest ``Malformed.excerpt``, ``Notice.text`` and ``Unknown.event_type``, in characters."""

REASON_CHARS: Final = 300
"""Longest ``Malformed.reason``, in characters (decoder messages may quote wire values)."""

UNKNOWN_RAW_BYTES: Final = 64 * 1024
"""Longest ``Unknown.raw``: real events are a few KiB; a longer one is cut (``truncated``)."""

MAX_ITEMS_PER_FRAME: Final = 4096
"""Elements of one array frame decoded at most; the rest of the array becomes one ``Malformed``.

The largest real array frame is the initial dump: one ``book`` per subscribed asset, 200 per
connection by default, so the bound leaves 20x headroom.
"""

# What decoding untrusted input can raise: bad JSON or types, nesting deeper than msgspec's
# recursion limit, invalid UTF-8 inside strings, and a str frame holding a lone surrogate
# (msgspec encodes str frames to UTF-8 first).
_DECODE_ERRORS: Final = (msgspec.DecodeError, RecursionError, UnicodeError)

# A bare number Python's float() or a lenient JSON parser would take, non-finite or out of
# range ones included ("NaN", "-Infinity", "1e400"): malformed data, never a server notice.
# Possessive quantifiers keep the match linear on a long run of digits.
_NUMBER_LIKE: Final = re.compile(
    rb"[+-]?+(?:(?:\d++(?:\.\d*+)?+|\.\d++)(?:[eE][+-]?+\d++)?+|nan|inf(?:inity)?+)",
    re.IGNORECASE,
)

_PONGS: Final = ("PONG", b"PONG")
_LEADING_SPACE: Final = re.compile(rb"\s*+")

_KINDS: Final = {ord("{"): "object", ord("["): "array", ord('"'): "string", ord("n"): "null"}
_KINDS.update(dict.fromkeys(b"tf", "boolean"))


class _Tag(msgspec.Struct):
    """Just the ``event_type`` of an object, the rest skipped without being built."""

    event_type: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_TAG: Final = msgspec.json.Decoder(_Tag)
_ANY_VALUE: Final = msgspec.json.Decoder(msgspec.Raw)

_STR: Final = msgspec.json.Decoder(str)


def _array_prefix(slots: int) -> msgspec.json.Decoder[Any]:
    """A decoder of an array's first ``slots`` elements as raw bytes, the rest skipped."""
    prefix = msgspec.defstruct(
        f"_ArrayPrefix{slots}",
        [(f"e{index}", msgspec.Raw, msgspec.UNSET) for index in range(slots)],
        array_like=True,
    )
    return msgspec.json.Decoder(prefix)


# An array decoded positionally into raw slots: msgspec skips the elements past the last slot
# (checking their syntax) without allocating anything for them, so splitting a 16 MiB
# `[0,0,...]` costs one pass over the bytes and a few KiB. A short array is split with few
# slots first: the long prefix costs ~50 us to allocate and unpack, even for three elements.
_SHORT_ARRAY: Final = _array_prefix(32)
_LONG_ARRAY: Final = _array_prefix(MAX_ITEMS_PER_FRAME + 1)

# The shortest event is ~50 bytes, so only a frame longer than this can hold more events than
# the bound. msgspec checks the fast path's max_length after building every event; such a frame
# is first counted by a skip pass (~15 % of a typed decode), so a hostile 16 MiB array of tiny
# valid events is never built.
_COUNT_FIRST_BYTES: Final = 128 * 1024


def _elements_past_bound(data: str | bytes) -> tuple[Any, ...] | None:
    """The split elements of an array frame longer than the bound; otherwise None."""
    try:
        elements = msgspec.structs.astuple(_LONG_ARRAY.decode(data))
    except _DECODE_ERRORS:
        # Not an array, or broken: the fast path fails on it quickly.
        return None
    return None if elements[-1] is msgspec.UNSET else elements


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
    """The immutable, shareable part of a decoder: typed decoders, union and known tags."""

    __slots__ = ("fast", "name", "one", "tags", "union")

    def __init__(self, name: Channel, union: Any) -> None:
        self.name = name
        self.union = union
        # Market timestamps arrive as strings ("1757908892351") and sometimes as numbers;
        # lenient decoding turns both into int. msgspec checks max_length only after building
        # the list; a longer array then goes to the plain path, which splits it cheaply.
        self.fast: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            Annotated[list[union], msgspec.Meta(max_length=MAX_ITEMS_PER_FRAME)] | union,
            strict=False,
        )
        self.one: msgspec.json.Decoder[Any] = msgspec.json.Decoder(union, strict=False)
        self.tags: frozenset[str] = frozenset(cls.__struct_config__.tag for cls in get_args(union))


_CODECS: Final[dict[str, _ChannelCodec]] = {
    "market": _ChannelCodec("market", MarketEvent),
    "user": _ChannelCodec("user", UserEvent),
}


def _as_bytes(data: str | bytes) -> bytes:
    # surrogatepass: a str frame holding a lone surrogate becomes the (invalid) UTF-8 bytes a
    # lenient peer would send, and is judged like them instead of raising.
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return bytes(data)


def _excerpt(data: bytes | msgspec.Raw) -> str:
    # Four bytes per character at most, so this prefix always yields EXCERPT_CHARS characters.
    head = memoryview(data)[: EXCERPT_CHARS * 4]
    return str(head, "utf-8", "replace")[:EXCERPT_CHARS]


def _kind(data: bytes | msgspec.Raw) -> str:
    """The JSON type of a syntactically valid value, from its first byte."""
    view = memoryview(data)
    return _KINDS.get(view[0], "number") if view else "nothing"


def _normalise_price_change(event: PriceChange) -> PriceChange | Malformed:
    """Check a ``price_change`` carries entries, rewriting the legacy shapes into them.

    Before 2025-09-15 the asset and book hash sat on the message with a ``changes`` list; the
    oldest recordings carry a single level as top-level ``price``/``side``/``size``. A message
    with no entry at all (or a single level missing a field) is malformed, not an empty event.
    """
    if event.price_changes:
        return event
    if event.changes:
        levels = [(change.price, change.size, change.side) for change in event.changes]
    elif event.price is not None and event.size is not None and event.side is not None:
        levels = [(event.price, event.size, event.side)]
    elif event.price is None and event.size is None and event.side is None:
        return Malformed("price_change without entries", _excerpt(msgspec.json.encode(event)))
    else:
        return Malformed(
            "legacy price_change without all of price, side and size",
            _excerpt(msgspec.json.encode(event)),
        )
    if event.asset_id is None:
        return Malformed(
            "legacy price_change without asset_id", _excerpt(msgspec.json.encode(event))
        )
    entries = tuple(
        PriceChangeEntry(
            asset_id=event.asset_id, price=price, size=size, side=side, hash=event.hash or ""
        )
        for price, size, side in levels
    )
    return msgspec.structs.replace(event, price_changes=entries)


class FrameDecoder:
    """Decodes the text frames of one connection (``market`` or ``user`` channel).

    Each channel knows only its own events: an ``order`` on the market channel is ``Unknown``.
    """

    __slots__ = ("_codec", "_fast", "_one", "stats")

    def __init__(self, channel: Channel) -> None:
        codec = _CODECS.get(channel)
        if codec is None:
            raise ConfigError(f"unknown channel {channel!r}; expected 'market' or 'user'")
        self._codec = codec
        self._fast = codec.fast.decode
        self._one = codec.one.decode
        self.stats = DecodeStats()

    @property
    def channel(self) -> Channel:
        """The channel this decoder decodes."""
        return self._codec.name

    def __repr__(self) -> str:
        return f"FrameDecoder(channel={self._codec.name!r}, stats={self.stats!r})"

    def decode(self, data: str | bytes) -> list[WireItem]:
        """All items of one frame, in wire order. Never raises; bad input becomes ``Malformed``.

        A frame yields at most ``MAX_ITEMS_PER_FRAME + 1`` items; each element of an array is
        judged alone, so a bad element costs only itself.
        """
        stats = self.stats
        stats.frames += 1
        # Data frames go straight to the typed decoder: no per-frame Python checks before it
        # but a length test. PONG and notices fail it at their first byte, and are classified
        # after that failure.
        if len(data) > _COUNT_FIRST_BYTES and (elements := _elements_past_bound(data)):
            return self._tally(self._judge_elements(elements))
        try:
            decoded = self._fast(data)
        except _DECODE_ERRORS:
            return self._tally(self.decode_plain(data))
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
        count_first = _COUNT_FIRST_BYTES
        price_change = PriceChange
        events = 0
        for frame in frames:
            if len(frame) > count_first and (elements := _elements_past_bound(frame)):
                out.extend(self._tally(self._judge_elements(elements)))
                continue
            try:
                decoded = fast(frame)
            except _DECODE_ERRORS:
                out.extend(self._tally(self.decode_plain(frame)))
                continue
            cls = type(decoded)
            if cls is price_change and decoded.price_changes:
                append(decoded)
                events += 1
            elif cls is list:
                out.extend(self._tally_list(decoded))
            elif cls is price_change:
                out.extend(self._tally([_normalise_price_change(decoded)]))
            else:
                append(decoded)
                events += 1
        stats = self.stats
        stats.frames += len(frames)
        stats.events += events
        return out

    def decode_plain(self, data: str | bytes) -> list[WireItem]:
        """The items of one frame by the plain path alone, without counting them.

        :meth:`decode` gives the same items faster; this reference path splits every array
        into its elements and judges each one alone. Never raises.
        """
        if data in _PONGS:
            return [Pong()]
        raw = _as_bytes(data)
        # The opener found without stripping: a copy of a huge frame would cost its size again.
        leading = _LEADING_SPACE.match(raw)
        start = leading.end() if leading else 0
        opener = raw[start : start + 1]
        # JSON is judged on the frame as received, so Unknown.raw keeps its exact bytes.
        if opener == b"[":
            return self._decode_array(raw)
        if opener == b"{":
            return [self._decode_element(raw)]
        body = raw.strip()
        if not body:
            return [Malformed("empty frame", _excerpt(raw))]
        # The CLOB answers exactly "PONG"; other Polymarket sockets use lowercase, so accept
        # any case rather than let a heartbeat answer look like a notice.
        if len(body) == 4 and body.upper() == b"PONG":
            return [Pong()]
        try:
            _ANY_VALUE.decode(body)
        except _DECODE_ERRORS:
            if _NUMBER_LIKE.fullmatch(body):
                return [Malformed("a bare number that is not valid JSON", _excerpt(body))]
            return [Notice(_excerpt(body))]
        return [Malformed(f"expected a JSON object or array, got {_kind(body)}", _excerpt(body))]

    # ------------------------------------------------------------------ counting, plain path

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

    def _decode_array(self, raw: bytes) -> list[WireItem]:
        """Each element of an array frame judged alone; past the bound, one ``Malformed``."""
        for splitter in (_SHORT_ARRAY, _LONG_ARRAY):
            try:
                elements = msgspec.structs.astuple(splitter.decode(raw))
            except _DECODE_ERRORS as exc:
                return [Malformed(f"invalid JSON: {exc}"[:REASON_CHARS], _excerpt(raw))]
            if elements[-1] is msgspec.UNSET:
                break
        return self._judge_elements(elements)

    def _judge_elements(self, elements: tuple[Any, ...]) -> list[WireItem]:
        """The items of split array elements (raw slots, UNSET past the array's end)."""
        items: list[WireItem] = []
        for element in elements:
            if element is msgspec.UNSET:
                break
            if len(items) == MAX_ITEMS_PER_FRAME:
                items.append(
                    Malformed(
                        f"array frame with more than {MAX_ITEMS_PER_FRAME} elements;"
                        " the rest were dropped undecoded",
                        _excerpt(element),
                    )
                )
                break
            items.append(self._decode_element(element))
        return items

    def _decode_element(self, raw: bytes | msgspec.Raw) -> WireItem:
        """One JSON object (a whole frame or one element of an array) by the typed decoder."""
        try:
            event = self._one(raw)
        except _DECODE_ERRORS as exc:
            return self._classify_rejected(raw, exc)
        if type(event) is PriceChange and not event.price_changes:
            return _normalise_price_change(event)
        result: WireItem = event
        return result

    def _classify_rejected(self, raw: bytes | msgspec.Raw, error: Exception) -> WireItem:
        """What a value the typed decoder rejected is: junk, a bad known event, or unknown."""
        try:
            tag = _TAG.decode(raw).event_type
        except msgspec.ValidationError:
            # Syntactically valid (an array element, or a frame that parsed) but no object.
            return Malformed(f"expected an object, got {_kind(raw)}", _excerpt(raw))
        except _DECODE_ERRORS as exc:
            return Malformed(f"invalid JSON: {exc}"[:REASON_CHARS], _excerpt(raw))
        event_type: str | None = None
        if tag is not msgspec.UNSET:
            kind = _kind(tag)
            if kind == "string":
                try:
                    event_type = _STR.decode(tag)
                except _DECODE_ERRORS:
                    return Malformed("event_type is not valid UTF-8", _excerpt(raw))
            elif kind != "null":
                return Malformed(f"event_type is a {kind}, not a string", _excerpt(raw))
        if event_type in self._codec.tags:
            return Malformed(f"invalid {event_type}: {error}"[:REASON_CHARS], _excerpt(raw))
        view = memoryview(raw)
        return Unknown(
            None if event_type is None else event_type[:EXCERPT_CHARS],
            bytes(view[:UNKNOWN_RAW_BYTES]),
            truncated=len(view) > UNKNOWN_RAW_BYTES,
        )


def decode_frame(data: str | bytes, channel: Channel = "market") -> list[WireItem]:
    """Decode one frame without keeping counters (see :class:`FrameDecoder`)."""
    return FrameDecoder(channel).decode(data)
