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
from polyfeed.errors import ConfigError, DataTimeoutError, InvalidStateError, TransientError
from polyfeed.events import LifecycleEvent, Resubscribed, Stale

logger = logging.getLogger("polyfeed.session")

Channel = Literal["market", "user"]


# An asset unconfirmed after this many requests on one connection (the initial one plus
# unsubscribe/subscribe redrives) is left alone until the next connection: the server answers
# unknown token ids with silence, so more requests would only add load.
MAX_REQUESTS_PER_CONNECTION = 3
SessionEvent = WireItem | LifecycleEvent


class Session:
    """One connection's protocol state. Subscriptions outlive it; everything else is fresh."""

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
        self.channel: Channel = channel
        self.subscriptions = subscriptions
        self.config = config
        self.decoder = decoder
        self.connection_id = connection_id
        self.watchdog = Watchdog(config.heartbeat, config.watchdog)
        self._credentials = credentials
        self._frames: list[str] = []
        self._events: list[SessionEvent] = []
        self._state = SessionState.NEW
        self._failure: TransientError | None = None
        self.opened_at: float | None = None
        self.frames_received = 0
        # The decoder (and its counters) outlive the connection: count from where it stood.
        self._events_before = decoder.stats.events
        self._events_final: int | None = None
        self.invalid_operations = 0
        self.last_frame_at: float | None = None
        self.last_data_at: float | None = None
        self.abandoned: set[str] = set()

    @property
    def events_received(self) -> int:
        """Typed events decoded on this connection."""
        if self._events_final is not None:
            return self._events_final
        return self.decoder.stats.events - self._events_before

    @property
    def state(self) -> SessionState:
        """The connection state; only the session's inputs change it."""
        return self._state

    def _set_state(self, state: SessionState) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "session %s #%d: %s -> %s",
                self.channel,
                self.connection_id,
                self._state.name,
                state.name,
            )
        self._state = state

    @property
    def failure(self) -> TransientError | None:
        """Why the socket must be given up: set on entering FAILED, cleared by ``connected``."""
        return self._failure

    @property
    def last_pong_rtt(self) -> float | None:
        """Seconds from the oldest then-unanswered PING to the last PONG; None before one."""
        return self.watchdog.last_pong_rtt

    @property
    def opened(self) -> bool:
        """True while a socket is attached: OPEN or FAILED."""
        return self._state is SessionState.OPEN or self._state is SessionState.FAILED

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
        if self.opened:
            raise InvalidStateError("Session", self._state.name, "connected")
        # A session may be reused for the next socket: the old one's verdict does not carry over.
        self._failure = None
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
        self._set_state(SessionState.OPEN)
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
        self._receive_items(self.decoder.decode_many(frames), now)

    def _check_receiving(self) -> None:
        # FAILED still receives: frames read just before the socket was aborted are real data.
        if not self.opened:
            raise InvalidStateError("Session", self._state.name, "receive")

    def _receive_items(self, items: list[WireItem], now: float) -> None:
        watchdog = self.watchdog
        # Hot path: once every asset is confirmed and no asset has its own clock, an event only
        # needs passing on (the user channel always notes: its markets confirm by events).
        note = (
            self.channel != "market"
            or not self.subscriptions.all_confirmed
            or watchdog.watches_assets
        )
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

    def abort(self, reason: TransientError) -> None:
        """The I/O layer must give the socket up (``reason``): OPEN -> FAILED.

        The I/O layer then aborts the socket and calls :meth:`closed`. A no-op unless OPEN: a
        session already FAILED keeps its first reason, and one without a socket has nothing to
        abort.
        """
        if self._state is SessionState.OPEN:
            self._fail(reason)

    def _fail(self, reason: TransientError) -> None:
        self._failure = reason
        self._set_state(SessionState.FAILED)

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

    def closed(self) -> None:
        """The socket is gone (for whatever reason).

        Frames not yet sent are dropped: they belong to the dead socket, and a queued ``PING`` or
        ``operation`` frame sent ahead of the next initial frame would get ``1008``. OPEN or
        FAILED -> CLOSED (``failure`` stays readable); a no-op while NEW or CLOSED.
        """
        if not self.opened:
            return
        self._events_final = self.decoder.stats.events - self._events_before
        self._set_state(SessionState.CLOSED)
        self._frames.clear()
        self.watchdog.stop()
        self.subscriptions.on_disconnected()

    # ------------------------------------------------------------------ outputs

    def next_deadline(self) -> float | None:
        """The earliest time at which ``handle_timer`` has work to do; None unless OPEN."""
        if self._state is not SessionState.OPEN:
            return None
        deadline = self.watchdog.next_deadline()
        if self.channel == "market":
            confirm = self.subscriptions.next_deadline()
            if confirm is not None and (deadline is None or confirm < deadline):
                deadline = confirm
        return deadline

    @property
    def has_output(self) -> bool:
        """Whether frames or events wait to be collected (cheap; for the reader's hot path)."""
        return bool(self._frames or self._events)

    def frames_to_send(self) -> list[str]:
        """Text frames to send, in order; the queue is emptied."""
        out, self._frames = self._frames, []
        return out

    def events(self) -> list[SessionEvent]:
        """Events for the consumer, in wire order; the queue is emptied."""
        out, self._events = self._events, []
        return out
