"""Polymarket's order-book hash: SHA-1 hex over compact JSON of the book summary.

The preimage has changed twice; all three are reproduced by real captures:

- ``V2024``: ``market, asset_id, timestamp, hash, bids, asks``
- ``V2025`` (seen Oct 2025): ``V2024`` + ``min_order_size, tick_size, neg_risk``
- ``V2026`` (seen 2026): ``V2025`` + ``last_trade_price``

``hash`` is always the empty string in the preimage, ``timestamp`` is the decimal string of the
epoch-ms timestamp, levels keep the server's order (bids ascending, asks descending) and the
server's exact price/size strings. The per-change ``hash`` of a ``price_change`` is the hash of the
book after the change, with the message's timestamp; when one matching event is split over several
messages sharing a timestamp, every entry carries the hash of the book after the whole event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from enum import Enum


class HashScheme(Enum):
    """Which preimage a book hash uses."""

    V2024 = 6
    V2025 = 9
    V2026 = 10


LEVEL_PREFIX = '{"price":"'
LEVEL_MIDDLE = '","size":"'
LEVEL_SUFFIX = '"}'


def level_json(price: str, size: str) -> str:
    """One level in the preimage, with the exact price and size strings: the only copy of the
    format (the book's hot path spells it inline; a test pins the two equal).

    Prices and sizes are ASCII decimals, which JSON would not escape, so no encoder is needed."""
    return f"{LEVEL_PREFIX}{price}{LEVEL_MIDDLE}{size}{LEVEL_SUFFIX}"


def level_fields(text: str) -> tuple[str, str]:
    """``(price, size)`` back from :func:`level_json` text."""
    end = text.index('"', len(LEVEL_PREFIX))
    return text[len(LEVEL_PREFIX) : end], text[end + len(LEVEL_MIDDLE) : -len(LEVEL_SUFFIX)]


def _levels_json(levels: Iterable[tuple[str, str]]) -> str:
    return ",".join([level_json(price, size) for price, size in levels])


def book_hash_preimage(
    *,
    market: str,
    asset_id: str,
    timestamp: int | str,
    bids: Iterable[tuple[str, str]],
    asks: Iterable[tuple[str, str]],
    scheme: HashScheme = HashScheme.V2026,
    min_order_size: str | None = None,
    tick_size: str | None = None,
    neg_risk: bool | None = None,
    last_trade_price: str | None = None,
) -> str:
    """The exact text Polymarket hashes. Levels in wire order (bids ascending, asks descending)."""
    text = (
        f'{{"market":{json.dumps(market)},"asset_id":{json.dumps(asset_id)},'
        f'"timestamp":"{timestamp}","hash":"",'
        f'"bids":[{_levels_json(bids)}],"asks":[{_levels_json(asks)}]'
    )
    if scheme is not HashScheme.V2024:
        text += (
            f',"min_order_size":{json.dumps(min_order_size)}'
            f',"tick_size":{json.dumps(tick_size)}'
            f',"neg_risk":{json.dumps(neg_risk)}'
        )
    if scheme is HashScheme.V2026:
        text += f',"last_trade_price":{json.dumps(last_trade_price)}'
    return text + "}"


def book_hash(
    *,
    market: str,
    asset_id: str,
    timestamp: int | str,
    bids: Iterable[tuple[str, str]],
    asks: Iterable[tuple[str, str]],
    scheme: HashScheme = HashScheme.V2026,
    min_order_size: str | None = None,
    tick_size: str | None = None,
    neg_risk: bool | None = None,
    last_trade_price: str | None = None,
) -> str:
    """Polymarket's SHA-1 book hash (40 hex chars) for the given summary."""
    preimage = book_hash_preimage(
        market=market,
        asset_id=asset_id,
        timestamp=timestamp,
        bids=bids,
        asks=asks,
        scheme=scheme,
        min_order_size=min_order_size,
        tick_size=tick_size,
        neg_risk=neg_risk,
        last_trade_price=last_trade_price,
    )
    return hashlib.sha1(preimage.encode(), usedforsecurity=False).hexdigest()
