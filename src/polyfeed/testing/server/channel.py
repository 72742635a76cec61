"""The channel protocol of the fake server: what a client's frames do on one connection.

As the live server does it (protocol.md §1-4, §8):

- The first frame must be the initial subscription (``{"type": "market", "assets_ids": [...]}`` /
  ``{"type": "user", "auth": {...}, "markets": [...]}``) within ``subscribe_grace`` seconds, or
  the socket is closed 1008. A text ``PING`` (or anything invalid) before it: close
  ``1008 "invalid subscription payload"``.
- Text ``PING`` -> text ``PONG``. A socket that sends no text ``PING`` for ``ping_grace`` seconds
  (counted from the open, then from the last PING) is closed ``1008 "no ping received"`` (or its
  TCP dropped, ``ping_timeout_action="drop"``). WebSocket protocol pings are answered (autoping)
  but do not count.
- A second ``type`` frame -> text ``INVALID OPERATION``; so does any other unusable frame after
  the subscription. ``{"operation": "subscribe"|"unsubscribe", "assets_ids"|"markets": [...]}``
  is applied; subscribing an asset already subscribed is ignored (no snapshot), a new one gets a
  ``book``. Unknown token ids are ignored silently (kept in ``unknown_assets``).
- Initial snapshots: one ``book`` per known asset, all in one JSON-array frame
  (``snapshot_frames="array"``, the default) or one frame each (``"single"``).
- ``custom_feature_enabled`` adds ``best_bid_ask``; with no assets, ``NO NEW ASSETS`` every
  ``no_new_assets_interval`` s.
- ``price_change`` messages carry both tokens of a market; a socket subscribed to either token
  gets the whole message (clients filter entries by ``asset_id``).
- ``/ws/user``: wrong or missing credentials -> the TCP connection is dropped without a close
  frame (no close code: clients see 1006). ``markets`` absent or empty means every market.
  Order/trade events are simulated (``user_rate`` per second, or ``FakePolymarket.step_user``).

One :class:`ChannelFrames` belongs to each
:class:`~polyfeed.testing.server.connection.FakeConnection`: it interprets inbound text frames
(subscription, operations, ``PING``) and decides which snapshots to queue; the connection owns
the socket and the queue. The grace periods are the connection's watches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from polyfeed.testing.server.connection import FakeConnection

__all__ = ["INVALID_SUBSCRIPTION", "ChannelFrames"]

_PONG = b"PONG"
_INVALID_OPERATION = b"INVALID OPERATION"
_NO_NEW_ASSETS = b"NO NEW ASSETS"
INVALID_SUBSCRIPTION = "invalid subscription payload"


class ChannelFrames:
    """Inbound frame handling of one :class:`FakeConnection` (see the module doc)."""

    __slots__ = ("_connection", "_no_new_assets_running")

    def __init__(self, connection: FakeConnection) -> None:
        self._connection = connection
        self._no_new_assets_running = False

    def __repr__(self) -> str:
        return f"ChannelFrames(connection={self._connection.id}, path={self._connection.path})"

    def on_invalid(self) -> None:
        """An unusable frame arrived: before the subscription a 1008 close, after it an answer."""
        connection = self._connection
        if connection.state == "awaiting_subscription":
            connection._finish("close", 1008, INVALID_SUBSCRIPTION)
        else:
            connection._put_text(_INVALID_OPERATION)

    def on_text(self, text: str) -> None:
        """Apply one text frame from the client."""
        connection = self._connection
        if text == "PING":
            if connection.state == "awaiting_subscription":
                # Live server: PING before the subscription closes the socket (nautilus #4864).
                connection._finish("close", 1008, INVALID_SUBSCRIPTION)
                return
            connection.pings += 1
            connection._last_ping = asyncio.get_running_loop().time()
            if connection._fault_state.pong_enabled:
                connection.pongs += 1
                connection._put_text(_PONG)
            return
        try:
            frame = msgspec.json.decode(text)
        except msgspec.DecodeError:
            self.on_invalid()
            return
        if not isinstance(frame, dict):
            self.on_invalid()
            return
        if connection.state == "awaiting_subscription":
            self._on_initial(frame)
        elif "type" in frame:
            connection._put_text(_INVALID_OPERATION)
        else:
            self._on_operation(frame)

    def _keys(self, frame: Mapping[str, Any]) -> list[str] | None:
        path = self._connection.path
        keys = frame.get("assets_ids" if path == "market" else "markets")
        if keys is None and path == "user":
            return []
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            return None
        return keys

    def _on_initial(self, frame: Mapping[str, Any]) -> None:
        connection = self._connection
        kind = frame.get("type")
        keys = self._keys(frame)
        if not isinstance(kind, str) or kind.lower() != connection.path or keys is None:
            connection._finish("close", 1008, INVALID_SUBSCRIPTION)
            return
        if connection.path == "user":
            auth = frame.get("auth")
            if not isinstance(auth, dict) or auth != connection._server.credentials.auth():
                # Live server: bad credentials drop the socket without a close frame (F18).
                connection._abort_transport("authentication failed")
                return
            connection.state = "subscribed"
            if keys:
                self._add(keys)
            else:
                connection.all_markets = True
            return
        connection.state = "subscribed"
        connection.custom_feature_enabled = bool(frame.get("custom_feature_enabled", False))
        new = self._add(keys)
        if frame.get("initial_dump", True) is not False:
            self._send_snapshots(new)
        self._maybe_no_new_assets()

    def _on_operation(self, frame: Mapping[str, Any]) -> None:
        connection = self._connection
        operation = frame.get("operation")
        keys = self._keys(frame)
        if operation not in ("subscribe", "unsubscribe") or keys is None:
            connection._put_text(_INVALID_OPERATION)
            return
        if connection.path == "market" and "custom_feature_enabled" in frame:
            # Applied before the duplicate check, as the live server does (py-sdk notes).
            connection.custom_feature_enabled = bool(frame["custom_feature_enabled"])
        if operation == "subscribe":
            new = self._add(keys)
            if connection.path == "market":
                self._send_snapshots(new)
                self._maybe_no_new_assets()
            return
        if connection.all_markets:
            connection.all_markets = False
            connection.subscribed = {m.condition_id for m in connection._server.markets}
        for key in keys:
            connection.subscribed.discard(key)
            connection._fault_state.resubscribed(key)
            connection._fault_state.unsubscribed(key)
            connection.unknown_assets.discard(key)

    def _add(self, keys: Iterable[str]) -> list[str]:
        connection = self._connection
        sim = connection._server.sim
        new = []
        for key in keys:
            known = sim.knows(key) if connection.path == "market" else sim.market(key) is not None
            if not known:
                connection.unknown_assets.add(key)
            elif key not in connection.subscribed:
                connection.subscribed.add(key)
                connection._fault_state.resubscribed(key)
                new.append(key)
        return new

    def _maybe_no_new_assets(self) -> None:
        connection = self._connection
        interval = connection._server.no_new_assets_interval
        if (
            connection.custom_feature_enabled
            and not connection.subscribed
            and interval is not None
            and not self._no_new_assets_running
        ):
            self._no_new_assets_running = True
            connection._spawn(self._no_new_assets(interval))

    async def _no_new_assets(self, interval: float) -> None:
        connection = self._connection
        while connection.custom_feature_enabled and not connection.subscribed:
            await asyncio.sleep(interval)
            if connection.custom_feature_enabled and not connection.subscribed:
                connection._put_text(_NO_NEW_ASSETS)
        self._no_new_assets_running = False

    def _send_snapshots(self, asset_ids: Sequence[str]) -> None:
        if not asset_ids:
            return
        connection = self._connection
        server = connection._server
        events = [server._snapshot(asset_id, connection.id) for asset_id in asset_ids]
        if server.snapshot_frames == "single":
            for event in events:
                connection._offer(event)
        else:
            connection._offer_batch(events)
