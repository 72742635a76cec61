"""The grammar of Polymarket's decimal strings, and exact integer price keys.

Prices and sizes travel as strings (``"0.52"``, ``"1608.18"``) and are kept as the server wrote
them, since the hash preimage needs the exact text. One grammar decides what is a number, for
prices and sizes alike, on every path: ASCII digits with at most one dot, at least one digit, at
most :data:`MAX_DECIMAL_LENGTH` characters; no sign, exponent, space, underscore, ``NaN`` or
``Infinity`` (Python's ``Decimal`` accepts all of those). The check is a few ``str`` scans, so it
costs O(length) and is done before ``Decimal`` ever sees the text (``Decimal("1e999990")`` alone
takes seconds). An empty size is a removal, as in captures of the old schema.

On top of the grammar: a price lies strictly inside (0, 1) with at most six decimals
(:func:`parse_price`); a tick size is one of :data:`TICK_KEYS` (:func:`tick_key`); the server's
``best_bid``/``best_ask`` and a ``last_trade_price`` are prices, or zero/empty for "none"
(:func:`server_top`, :func:`is_optional_price`); a minimum order size is a size
(:func:`is_decimal`). Every number that enters a book, from the WebSocket or from REST, goes
through one of these.
"""

from __future__ import annotations

from decimal import Decimal
from types import FunctionType
from typing import Final

from mypy_extensions import i64

__all__ = [
    "COMPILED",
    "MALFORMED",
    "MAX_DECIMAL_LENGTH",
    "POSITIVE",
    "PRICE_SCALE",
    "ZERO",
    "TICK_KEYS",
    "is_decimal",
    "is_optional_price",
    "parse_price",
    "price_key",
    "price_decimal",
    "scan_size_kind",
    "server_top",
    "size_kind",
    "tick_key",
]

PRICE_SCALE: Final = 10**6
"""Prices are kept as integers in units of 1e-6 (Polymarket ticks go down to 0.0001)."""

MAX_DECIMAL_LENGTH: Final = 40
"""Longer strings are malformed: no real price or size comes near, and parsing stays bounded."""

TICK_KEYS: Final = frozenset({100_000, 10_000, 1_000, 100})
"""The tick sizes Polymarket uses (0.1, 0.01, 0.001, 0.0001) as price keys."""

ZERO: Final = 0
POSITIVE: Final = 1
MALFORMED: Final = 2

_MAX_CACHED_PRICES = 1 << 16
# Price text -> (scaled int, exact Decimal). The set of prices is tiny (at most a few thousand
# per market, shared by every book), so parsing happens once per distinct string.
PRICES: Final[dict[str, tuple[int, Decimal]]] = {}
DECIMALS: Final[dict[int, Decimal]] = {}


def _probe() -> None: ...


COMPILED: Final = not isinstance(_probe, FunctionType)
"""Whether this module (and so the book, see ``setup.py``) runs compiled. A few hot checks have a
second form, a plain loop, that the compiled build runs natively where the first form's C-level
``str`` methods and ``bisect`` are generic calls for it, and that runs slower interpreted: the hot
path takes the form that suits the build, and a property test pins each pair equal."""


def is_decimal(text: str) -> bool:
    """Whether ``text`` is a Polymarket decimal string (see the module docstring)."""
    return text != "" and size_kind(text) != MALFORMED


def size_kind(size: str) -> int:
    """:data:`ZERO` (any spelling, ``""`` included), :data:`POSITIVE` or :data:`MALFORMED`."""
    if size.isascii() and size.replace(".", "", 1).isdigit():
        if len(size) > MAX_DECIMAL_LENGTH:
            return MALFORMED
        return POSITIVE if size[0] > "0" or size.strip("0.") else ZERO  # "." sorts below "0"
    return MALFORMED if size else ZERO


def scan_size_kind(size: str) -> int:
    """:func:`size_kind` in one pass over the characters, for the compiled build (see
    :data:`COMPILED`); a property test pins the two equal."""
    length: i64 = len(size)
    if length > MAX_DECIMAL_LENGTH:
        return MALFORMED
    kind = ZERO
    dots = 0
    for index in range(length):
        code: i64 = ord(size[index])
        if code == 46:  # "."
            dots += 1
        elif 48 < code <= 57:  # "1".."9"
            kind = POSITIVE
        elif code != 48:  # "0"
            return MALFORMED
    if dots > 1 or (dots and length == 1):
        return MALFORMED
    return kind


def parse_price(text: str) -> tuple[int, Decimal]:
    """Exact scaled key and Decimal of a price.

    ``ValueError`` if malformed, finer than 1e-6, or not strictly inside (0, 1).
    """
    hit = PRICES.get(text)
    if hit is not None:
        return hit
    if not is_decimal(text):
        raise ValueError(f"malformed price {text[:MAX_DECIMAL_LENGTH]!r}")
    value = Decimal(text)
    scaled = value.scaleb(6)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {text!r} has more than 6 decimals")
    if not 0 < scaled < PRICE_SCALE:
        raise ValueError(f"price {text!r} is not inside (0, 1)")
    hit = (int(scaled), value)
    if len(PRICES) < _MAX_CACHED_PRICES:
        PRICES[text] = hit
        DECIMALS.setdefault(hit[0], value)
    return hit


def price_key(text: str) -> int:
    """The scaled integer key of a price (``ValueError`` if malformed)."""
    hit = PRICES.get(text)
    return hit[0] if hit is not None else parse_price(text)[0]


def is_optional_price(text: str | None) -> bool:
    """Whether ``text`` is absent, empty, zero or a price (a ``last_trade_price``)."""
    if text is None or text in PRICES:  # every cached text parsed as a price
        return True
    if not text or size_kind(text) == ZERO:
        return True
    try:
        parse_price(text)
    except ValueError:
        return False
    return True


def tick_key(text: str) -> int:
    """The price key of a tick size; ``ValueError`` unless it is one of :data:`TICK_KEYS`."""
    try:
        key = parse_price(text)[0]
    except ValueError:
        raise ValueError(f"malformed tick size {text[:MAX_DECIMAL_LENGTH]!r}") from None
    if key not in TICK_KEYS:
        raise ValueError(f"tick size {text!r} is not one of Polymarket's")
    return key


def price_decimal(key: int) -> Decimal:
    """The Decimal of a scaled price key (the server's spelling when it was seen)."""
    value = DECIMALS.get(key)
    if value is None:
        value = Decimal(key).scaleb(-6).normalize()
    return value


def server_top(text: str | None) -> int | None:
    """Scaled key of a server ``best_bid``/``best_ask``; None when absent, empty or zero.

    ``ValueError`` when the text is not a price.
    """
    if text is not None:
        hit = PRICES.get(text)  # a cached text parsed as a price, which is never zero
        if hit is not None:
            return hit[0]
    if not text or size_kind(text) == ZERO:
        return None
    key = parse_price(text)[0]
    return key if key else None
