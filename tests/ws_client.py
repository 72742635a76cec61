"""A bare aiohttp WebSocket client's reads, with timeouts, for the fake-server tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest


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
