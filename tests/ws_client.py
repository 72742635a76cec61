"""A bare aiohttp WebSocket client for the fake-server tests: reads with timeouts, the initial
subscription, and the wire-book checks several test modules share."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest

from polyfeed.core.book_hash import book_hash
from polyfeed.testing import BookView, FakePolymarket


async def receive(ws: aiohttp.ClientWebSocketResponse, within: float = 1.0) -> aiohttp.WSMessage:
    """The next message, or TimeoutError after ``within`` seconds."""
    async with asyncio.timeout(within):
        return await ws.receive()


async def receive_text(ws: aiohttp.ClientWebSocketResponse, within: float = 1.0) -> str:
    """The next message, which must be a text frame."""
    message = await receive(ws, within)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    text: str = message.data
    return text


async def receive_json(ws: aiohttp.ClientWebSocketResponse, within: float = 1.0) -> Any:
    """The next text frame, parsed."""
    return json.loads(await receive_text(ws, within))


async def assert_quiet(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> None:
    """No frame at all arrives for ``seconds``."""
    with pytest.raises(TimeoutError):
        message = await receive(ws, seconds)
        pytest.fail(f"unexpected frame {message}")


FAST: dict[str, Any] = {"ping_grace": 2.0, "subscribe_grace": 2.0}
"""Server options for tests: grace periods short enough to test, long enough not to interfere."""


async def subscribe(
    session: aiohttp.ClientSession,
    fake: FakePolymarket,
    assets: Sequence[str] | None = None,
    **extra: Any,
) -> aiohttp.ClientWebSocketResponse:
    """Open ``/ws/market`` and send the initial subscription (every asset by default)."""
    ws = await session.ws_connect(fake.market_url)
    frame = {"type": "market", "assets_ids": list(fake.asset_ids if assets is None else assets)}
    await ws.send_str(json.dumps({**frame, **extra}))
    return ws


def level_pairs(levels: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(price, size) of each wire level."""
    return [(level["price"], level["size"]) for level in levels]


def assert_book_hash(book: dict[str, Any], view: BookView) -> None:
    """The WS book's hash is the V2026 hash of its own content (with the server's metadata)."""
    expected = book_hash(
        market=book["market"],
        asset_id=book["asset_id"],
        timestamp=book["timestamp"],
        bids=level_pairs(book["bids"]),
        asks=level_pairs(book["asks"]),
        min_order_size=view.min_order_size,
        tick_size=book["tick_size"],
        neg_risk=view.neg_risk,
        last_trade_price=book["last_trade_price"],
    )
    assert book["hash"] == expected
