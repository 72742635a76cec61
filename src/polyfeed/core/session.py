"""The per-connection protocol state machine, sans-I/O (aioquic style).

The I/O layer feeds it what happened and when (``connected``, ``receive_text``, ``handle_timer``,
``abort``, ``closed``), then collects what to do: ``frames_to_send()`` (text frames, in order),
``events()`` (typed wire events and lifecycle events for the consumer) and ``next_deadline()``.

Its connection state is one value, :attr:`Session.state` (python-websockets style: every
transition is logged at DEBUG on ``polyfeed.session``), changed only by its own inputs:

=========  ==============================================================================
NEW        made, no socket yet                          ``connected`` -> OPEN
OPEN       socket open: frames, timers, live changes    ``abort``/stale link -> FAILED,
                                                        ``closed`` -> CLOSED
FAILED     must be abandoned (``failure`` says why);    ``closed`` -> CLOSED
           the I/O layer aborts the socket at once;
           frames read before the end are still taken
CLOSED     socket gone; ``connected`` again -> OPEN (a session may serve the next socket)
=========  ==============================================================================

Illegal inputs: ``connected`` while OPEN or FAILED and ``receive_*`` while NEW or CLOSED raise
:class:`~polyfeed.errors.InvalidStateError`. Documented no-ops: ``handle_timer`` and ``refresh``
unless OPEN, ``abort`` unless OPEN (the first reason wins), ``closed`` while NEW or CLOSED.

Ordering hazards it owns:

- the initial ``type`` frame goes first and only once per connection; a text ``PING`` before it
  gets ``1008 invalid subscription payload`` and a second ``type`` frame ``INVALID OPERATION``,
  so later changes go out as ``operation`` frames;
- re-requesting an unconfirmed asset is unsubscribe *then* subscribe: the server ignores a
  duplicate subscribe and would send no fresh snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Literal

from polyfeed.config import StreamConfig
from polyfeed.core import frames

# SessionState lives with the base every session shares; importable from here as before.
from polyfeed.core.channel import SessionBase
from polyfeed.core.channel import SessionState as SessionState
from polyfeed.core.codec import FrameDecoder
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    Malformed,
    MarketResolved,
    NewMarket,
    Notice,
    Order,
    Pong,
    PriceChange,
    TickSizeChange,
    Trade,
    Unknown,
    WireItem,
)
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.core.watchdog import Watchdog
from polyfeed.credentials import Credentials
from polyfeed.errors import ConfigError, DataTimeoutError
from polyfeed.events import LifecycleEvent, Resubscribed, Stale

logger = logging.getLogger("polyfeed.session")

Channel = Literal["market", "user"]


# An asset unconfirmed after this many requests on one connection (the initial one plus
# unsubscribe/subscribe redrives) is left alone until the next connection: the server answers
# unknown token ids with silence, so more requests would only add load.
MAX_REQUESTS_PER_CONNECTION = 3
SessionEvent = WireItem | LifecycleEvent


class Session(SessionBase[WireItem]):
    """One connection's protocol state. Subscriptions outlive it; everything else is fresh."""

    _class_name = "Session"

    def __init__(
        self,
        channel: Channel,
        subscriptions: SubscriptionSet,
        config: StreamConfig,
        decoder: FrameDecoder,
        *,
        credentials: Credentials | None = None,
        connection_id: int = 0,
    ) -> None:
        if channel == "user" and credentials is None:
            raise ConfigError("the user channel needs credentials")
        super().__init__(connection_id)
        self.channel: Channel = channel
        self._label = channel
        self.subscriptions = subscriptions
        self.config = config
        self.decoder = decoder
        self.watchdog = Watchdog(config.heartbeat, config.watchdog)
        self._credentials = credentials
        self.opened_at: float | None = None
        # The decoder (and its counters) outlive the connection: count from where it stood.
        self._events_before = decoder.stats.events
        self._events_final: int | None = None
        self.invalid_operations = 0
        self.last_frame_at: float | None = None
        self.abandoned: set[str] = set()

    @property
    def events_received(self) -> int:
        """Typed events decoded on this connection."""
        if self._events_final is not None:
            return self._events_final
        return self.decoder.stats.events - self._events_before

    @property
    def last_pong_rtt(self) -> float | None:
        """Seconds from the oldest then-unanswered PING to the last PONG; None before one."""
        return self.watchdog.last_pong_rtt

    def __repr__(self) -> str:
        return (
            f"<Session {self.channel} #{self.connection_id} {self._state.value} "
            f"frames={self.frames_received} events={self.events_received} "
            f"subscriptions={self.subscriptions!r}>"
        )

    # ------------------------------------------------------------------ inputs

    def connected(self, now: float) -> None:
        """The socket is open: queue the initial subscription and start the clocks.

        NEW or CLOSED -> OPEN; raises :class:`InvalidStateError` while a socket is attached.
        """
        # A session may be reused for the next socket: the old one's verdict does not carry over.
        self._check_connectable()
        self.abandoned.clear()
        self._events_before = self.decoder.stats.events
        self._events_final = None
        ids = self.subscriptions.on_connected(now)
        if self.channel == "market":
            self._frames.append(
                frames.market_subscribe(
                    ids, custom_feature_enabled=self.config.custom_feature_enabled
                )
            )
        else:
            assert self._credentials is not None
            self._frames.append(frames.user_subscribe(self._credentials, ids or None))
        self._open()
        self.opened_at = now
        self.watchdog.start(now)
        if self.channel == "market":
            self.watchdog.track(ids, now)

    def receive_text(self, text: str | bytes, now: float) -> None:
        """A text frame arrived at ``now`` (OPEN or FAILED; otherwise InvalidStateError)."""
        self._check_receiving()
        self.frames_received += 1
        self.last_frame_at = now
        self._receive_items(self.decoder.decode(text), now)

    def receive_frames(self, frames: Sequence[str | bytes], now: float) -> None:
        """Several text frames read from the socket in one go, all at ``now`` (decoded at once)."""
        self._check_receiving()
        self.frames_received += len(frames)
        self.last_frame_at = now
        stats = self.decoder.stats
        controls = stats.pongs + stats.notices
        items = self.decoder.decode_many(frames)
        self._receive_items(items, now, data_only=stats.pongs + stats.notices == controls)

    def _receive_items(self, items: list[WireItem], now: float, *, data_only: bool = False) -> None:
        """``data_only``: the decoder counted no ``Pong`` or ``Notice`` among ``items``."""
        watchdog = self.watchdog
        # Hot path: once every asset is confirmed and no asset has its own clock, an event only
        # needs passing on (the user channel always notes: its markets confirm by events).
        note = (
            self.channel != "market"
            or not self.subscriptions.all_confirmed
            or watchdog.watches_assets
        )
        if data_only and not note:
            if items:
                watchdog.on_frame(now)
                self.last_data_at = now
                self._events.extend(items)
            return
        counted_frame = False
        events = self._events
        for item in items:
            cls = type(item)
            if cls is Pong:
                watchdog.on_pong(now)
                continue
            if cls is Notice:
                # Not data: the server sends NO NEW ASSETS periodically on its own, so counting
                # notices would keep a stalled socket looking fresh for ever.
                if item.text == "INVALID OPERATION":  # type: ignore[union-attr]
                    self.invalid_operations += 1
                events.append(item)
                continue
            if not counted_frame:
                # Any other frame proves the data path is alive, even one we cannot parse.
                watchdog.on_frame(now)
                self.last_data_at = now
                counted_frame = True
            if note:
                self._note_assets(item, now)
            events.append(item)

    def _note_assets(self, item: WireItem, now: float) -> None:
        if self.channel != "market":
            # The user channel subscribes by market (condition id): an order or trade of a
            # market confirms it.
            if isinstance(item, Order | Trade):
                self.subscriptions.confirm(item.market, now)
            return
        subscriptions = self.subscriptions
        watchdog = self.watchdog
        match item:
            case PriceChange(price_changes=entries):
                seen: str | None = None
                for entry in entries:
                    if entry.asset_id != seen:
                        seen = entry.asset_id
                        subscriptions.confirm(seen, now)
                        watchdog.on_data(now, seen)
            case (
                Book(asset_id=asset_id)
                | LastTradePrice(asset_id=asset_id)
                | TickSizeChange(asset_id=asset_id)
                | BestBidAsk(asset_id=asset_id)
            ):
                subscriptions.confirm(asset_id, now)
                watchdog.on_data(now, asset_id)
            case (
                NewMarket()
                | MarketResolved()
                | Order()
                | Trade()
                | Unknown()
                | Malformed()
                | Pong()
                | Notice()
            ):
                pass

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at ``now``: heartbeat, stale checks, overdue confirmations.

        A no-op unless OPEN. Afterwards :meth:`next_deadline` is None or later than ``now``:
        every overdue asset is either re-requested (its clock restarts at ``now``) or given up
        for this connection.
        """
        if self._state is not SessionState.OPEN:
            return
        verdict = self.watchdog.check(now)
        if verdict is not None:
            stale = Stale(
                kind=verdict.kind,
                silent_for=verdict.silent_for,
                asset_ids=list(verdict.asset_ids),
                connection_id=self.connection_id,
            )
            self._events.append(stale)
            if verdict.kind == "asset":
                self._redrive(verdict.asset_ids, now)
            else:
                self._fail(DataTimeoutError(verdict.kind, verdict.silent_for))
                return
        if self.watchdog.ping_due(now):
            self._frames.append(frames.PING)
            self.watchdog.on_ping_sent(now)
        if self.channel == "market":
            overdue = self.subscriptions.overdue(now)
            if overdue:
                # Every overdue asset leaves the overdue set here, re-requested (its clock
                # restarts at `now`) or given up; one left in it would be due again at once
                # and spin the ticker.
                attempts = self.subscriptions.attempts
                abandoned = self.abandoned
                hopeless = [
                    a
                    for a in overdue
                    if a in abandoned or attempts(a) >= MAX_REQUESTS_PER_CONNECTION
                ]
                self._events.append(
                    Stale(
                        kind="asset",
                        silent_for=self.config.watchdog.confirm_timeout,
                        asset_ids=overdue,
                        connection_id=self.connection_id,
                        unconfirmed=overdue,
                        abandoned=hopeless,
                    )
                )
                if hopeless:
                    self.subscriptions.stop_waiting(hopeless)
                    abandoned.update(hopeless)
                self._redrive([a for a in overdue if a not in abandoned], now)

    def refresh(self, asset_ids: Iterable[str], now: float) -> None:
        """Ask the server for fresh snapshots of these assets (unsubscribe, then subscribe).

        A no-op unless OPEN on the market channel.
        """
        if self._state is SessionState.OPEN and self.channel == "market":
            self._redrive(asset_ids, now)

    def _redrive(self, asset_ids: Iterable[str], now: float) -> None:
        ids = [a for a in asset_ids if a in self.subscriptions.desired]
        if not ids:
            return
        self._frames.append(frames.market_operation("unsubscribe", ids))
        self._frames.append(
            frames.market_operation(
                "subscribe", ids, custom_feature_enabled=self.config.custom_feature_enabled or None
            )
        )
        self.subscriptions.redriven(ids, now)
        self._events.append(Resubscribed(assets=ids, connection_id=self.connection_id))

    def subscribe(self, ids: Iterable[str], now: float | None) -> list[str]:
        """Add to the desired set; on an open connection, send a live ``operation`` frame."""
        added = self.subscriptions.add(ids, now if self.opened else None)
        if added and self.opened:
            if self.channel == "market":
                self._frames.append(
                    frames.market_operation(
                        "subscribe",
                        added,
                        custom_feature_enabled=self.config.custom_feature_enabled or None,
                    )
                )
                if now is not None:
                    self.watchdog.track(added, now)
            else:
                self._frames.append(frames.user_operation("subscribe", added))
        return added

    def unsubscribe(self, ids: Iterable[str]) -> list[str]:
        """Remove from the desired set; on an open connection, send a live ``operation`` frame."""
        removed = self.subscriptions.remove(ids)
        # Given up on this connection, then dropped: subscribing again is a fresh request.
        self.abandoned.difference_update(removed)
        if removed and self.opened:
            if self.channel == "market":
                self._frames.append(frames.market_operation("unsubscribe", removed))
                self.watchdog.untrack(removed)
            else:
                self._frames.append(frames.user_operation("unsubscribe", removed))
        return removed

    def _on_closed(self) -> None:
        self._events_final = self.decoder.stats.events - self._events_before
        self.watchdog.stop()
        self.subscriptions.on_disconnected()

    # ------------------------------------------------------------------ outputs

    def _open_deadline(self) -> float | None:
        deadline = self.watchdog.next_deadline()
        if self.channel == "market":
            confirm = self.subscriptions.next_deadline()
            if confirm is not None and (deadline is None or confirm < deadline):
                deadline = confirm
        return deadline
