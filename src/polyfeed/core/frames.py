"""Outbound CLOB WebSocket frames: each function returns the exact text to send.

The initial ``type`` frame may be sent only once per connection (a second one is answered with
``INVALID OPERATION``); later changes use ``operation`` frames on the same socket.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from polyfeed.errors import ConfigError

if TYPE_CHECKING:
    # Type-only: the protocol layer stays free of non-protocol imports at runtime.
    from polyfeed.credentials import Credentials

__all__ = [
    "PING",
    "Operation",
    "market_operation",
    "market_subscribe",
    "user_operation",
    "user_subscribe",
]

# The CLOB only counts this text frame as a heartbeat; WebSocket protocol pings do not keep the
# socket alive.
PING: Final = "PING"

Operation = Literal["subscribe", "unsubscribe"]

_LEVELS: Final = (1, 2, 3)
_OPERATIONS: Final = ("subscribe", "unsubscribe")

_encode = msgspec.json.Encoder().encode


def _ids(values: Iterable[str], what: str) -> list[str]:
    # A bare string is iterable too: "123" would become ["1", "2", "3"] without this check.
    if isinstance(values, str | bytes):
        raise ConfigError(f"{what} must be a list of strings, not a single string")
    ids = list(values)
    for value in ids:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{what} must contain non-empty strings, got {type(value).__name__}")
    return ids


def _operation(operation: str) -> str:
    if operation not in _OPERATIONS:
        raise ConfigError(f"operation must be 'subscribe' or 'unsubscribe', not {operation!r}")
    return operation


def _text(payload: dict[str, Any]) -> str:
    return _encode(payload).decode()


def market_subscribe(
    asset_ids: Iterable[str],
    *,
    initial_dump: bool = True,
    custom_feature_enabled: bool = False,
    level: int | None = None,
) -> str:
    """The first frame of a market connection.

    ``initial_dump`` is always sent explicitly: at scale some assets never got their snapshot
    when it was left to the server default. An empty ``asset_ids`` with
    ``custom_feature_enabled`` subscribes to ``new_market`` discovery only.
    """
    payload: dict[str, Any] = {
        "type": "market",
        "assets_ids": _ids(asset_ids, "asset_ids"),
        "initial_dump": bool(initial_dump),
        "custom_feature_enabled": bool(custom_feature_enabled),
    }
    if level is not None:
        if isinstance(level, bool) or level not in _LEVELS:
            raise ConfigError(f"level must be 1, 2 or 3, not {level!r}")
        payload["level"] = level
    return _text(payload)


def user_subscribe(credentials: Credentials, markets: Iterable[str] | None = None) -> str:
    """The first frame of a user connection; ``markets`` are condition ids (None = all).

    The returned text contains the secret: send it, never log it.
    """
    payload: dict[str, Any] = {
        "type": "user",
        "auth": {
            "apiKey": credentials.api_key,
            "secret": credentials.secret,
            "passphrase": credentials.passphrase,
        },
    }
    if markets is not None:
        payload["markets"] = _ids(markets, "markets")
    return _text(payload)


def market_operation(
    operation: Operation,
    asset_ids: Iterable[str],
    *,
    custom_feature_enabled: bool | None = None,
) -> str:
    """Subscribe or unsubscribe assets on an open market connection.

    Subscribing an asset that is already subscribed yields no fresh snapshot; unsubscribe first
    to force one.
    """
    payload: dict[str, Any] = {
        "operation": _operation(operation),
        "assets_ids": _ids(asset_ids, "asset_ids"),
    }
    if custom_feature_enabled is not None:
        payload["custom_feature_enabled"] = bool(custom_feature_enabled)
    return _text(payload)


def user_operation(operation: Operation, markets: Iterable[str]) -> str:
    """Subscribe or unsubscribe markets (condition ids) on an open user connection."""
    return _text({"operation": _operation(operation), "markets": _ids(markets, "markets")})
