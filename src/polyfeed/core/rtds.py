"""The RTDS socket's protocol state machine, sans-I/O: subscriptions, PING, per-topic deadlines.

RTDS (``wss://ws-live-data.polymarket.com``) freezes: data stops every 14-63 minutes while the
socket stays open and PINGs are still answered. So liveness is judged per subscription: each
subscribed topic has its own data deadline (``topic_timeout``), and one topic silent while the
others flow is a stall that ends the connection, exactly like a silent socket. The supervisor
then reconnects with backoff and replays every subscription.

Frames (``action`` frames; the same shape to add and to remove, on the live socket)::

    {"action": "subscribe", "subscriptions": [{"topic": "crypto_prices", "type": "update",
                                               "filters": "{\\"symbol\\":\\"btcusdt\\"}"}]}

and a text ``PING`` every ``ping_interval`` s (5 s). A frame is data for a subscription when its
topic matches and its type matches (``*`` matches any; the history a price topic sends on
subscribe, type ``subscribe``, counts for every subscription of the topic).

Filter pitfalls (reported against the live server, see docs/protocol.md):

- ``filters`` is a **string**. :func:`encode_filters` turns a dict or list into compact JSON text;
  sending a JSON object instead of a string is rejected.
- The documented comma list (``"solusdt,btcusdt"``) has been rejected live with
  ``invalid Subscription.Filters: value does not match regex``; a JSON-array filter was accepted
  but delivered nothing. When in doubt, subscribe unfiltered and filter client-side.
- ``activity`` slug filters delivered nothing, and ``activity``/``trades`` was reported disabled
  (``orders_matched`` works). ``clob_market`` needs a JSON array of token ids as its filter.
- Deadlines are per (topic, type): two subscriptions of one topic with different filters share
  one clock, because a message does not say which filter it matched.

Session states and illegal inputs are those of :class:`polyfeed.core.session.Session`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from polyfeed.config import HeartbeatConfig, WatchdogConfig
from polyfeed.core.channel import SessionState, WatchedSession
from polyfeed.core.rtds_messages import (
    RtdsDecoder,
    RtdsEvent,
    RtdsMalformed,
    RtdsPong,
    RtdsServerMessage,
)
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.core.watchdog import Watchdog
from polyfeed.errors import ConfigError
from polyfeed.events import LifecycleEvent

__all__ = [
    "PING",
    "RtdsConfig",
    "RtdsSession",
    "RtdsSubscription",
    "encode_filters",
    "rtds_frame",
]

PING: Final = "PING"

_encode = msgspec.json.Encoder().encode


def encode_filters(filters: str | Mapping[str, Any] | Sequence[Any] | None) -> str | None:
    """The ``filters`` text the server expects: strings as given, anything else as compact JSON."""
    if filters is None or isinstance(filters, str):
        return filters
    return _encode(filters).decode()


class RtdsSubscription(msgspec.Struct, frozen=True):
    """One RTDS subscription: ``topic``, message ``type`` (``*`` for all) and ``filters`` text.

    Build it with :meth:`of` to have dict/list filters encoded as the server expects (a string).
    """

    topic: str
    type: str = "*"
    filters: str | None = None

    def __post_init__(self) -> None:
        if not self.topic or not self.type:
            raise ConfigError("an RTDS subscription needs a topic and a type")
        if self.filters is not None and not isinstance(self.filters, str):
            raise ConfigError("RTDS filters are sent as a string: use RtdsSubscription.of(...)")

    @classmethod
    def of(
        cls,
        topic: str,
        type: str = "*",
        filters: str | Mapping[str, Any] | Sequence[Any] | None = None,
    ) -> RtdsSubscription:
        """A subscription whose ``filters`` may be a dict or list (encoded to JSON text)."""
        return cls(topic, type, encode_filters(filters))

    @classmethod
    def parse(cls, text: str) -> RtdsSubscription:
        """``TOPIC[:TYPE[:FILTERS]]`` (the CLI's ``--topic``; also the inverse of :attr:`key`)."""
        parts = text.split(":", 2)
        kind = parts[1] if len(parts) > 1 and parts[1] else "*"
        return cls(parts[0], kind, parts[2] if len(parts) > 2 else None)

    @property
    def key(self) -> str:
        """The subscription's id in the stream's subscription set and lifecycle events."""
        base = f"{self.topic}:{self.type}"
        return base if self.filters is None else f"{base}:{self.filters}"

    def matches(self, topic: str, kind: str) -> bool:
        """Whether a message of ``topic``/``kind`` is data for this subscription."""
        return topic == self.topic and (self.type == "*" or kind in (self.type, "subscribe"))

    def wire(self) -> dict[str, str]:
        """The object inside ``subscriptions`` of an ``action`` frame."""
        out = {"topic": self.topic, "type": self.type}
        if self.filters is not None:
            out["filters"] = self.filters
        return out


def rtds_frame(action: str, subscriptions: Iterable[RtdsSubscription]) -> str:
    """The text of a ``subscribe``/``unsubscribe`` frame."""
    if action not in ("subscribe", "unsubscribe"):
        raise ConfigError(f"RTDS action must be subscribe or unsubscribe, not {action!r}")
    body = {"action": action, "subscriptions": [s.wire() for s in subscriptions]}
    return _encode(body).decode()


@dataclass(frozen=True, slots=True)
class RtdsConfig:
    """RTDS timing (seconds). ``ping_interval``: our text ``PING``. ``pong_timeout``: no ``PONG``
    for that long while a PING is unanswered means a dead link; None stops counting PONGs
    (whether RTDS answers every PING with a text ``PONG`` is not settled; the data deadlines
    then judge the link alone). ``data_timeout``: no data on the whole socket. ``topic_timeout``:
    silence of one subscription that counts as a stall (None: off; raise it, or turn it off,
    for topics that are quiet by nature, such as ``comments`` on a small event)."""

    ping_interval: float = 5.0
    pong_timeout: float | None = 30.0
    data_timeout: float = 60.0
    topic_timeout: float | None = 90.0

    def __post_init__(self) -> None:
        # HeartbeatConfig and WatchdogConfig validate the values.
        self.heartbeat()
        self.watchdog()

    def heartbeat(self) -> HeartbeatConfig:
        """The heartbeat part, for the shared watchdog."""
        pong = math.inf if self.pong_timeout is None else self.pong_timeout
        return HeartbeatConfig(interval=self.ping_interval, pong_timeout=pong)

    def watchdog(self) -> WatchdogConfig:
        """The data deadlines, for the shared watchdog (topics are its tracked ids)."""
        return WatchdogConfig(data_timeout=self.data_timeout, asset_timeout=self.topic_timeout)


RtdsSessionEvent = RtdsEvent | LifecycleEvent


class RtdsSession(WatchedSession[RtdsEvent, RtdsSubscription]):
    """One RTDS connection's protocol state (a :class:`~polyfeed.core.channel.ChannelSession`).

    ``subscriptions`` holds subscription keys (:attr:`RtdsSubscription.key`) and outlives the
    connection; ``specs`` maps each key to its subscription (the stream owns both).
    """

    _label = "rtds"
    _class_name = "RtdsSession"
    _what = "RTDS"

    def __init__(
        self,
        subscriptions: SubscriptionSet,
        specs: Mapping[str, RtdsSubscription],
        config: RtdsConfig,
        decoder: RtdsDecoder,
        *,
        connection_id: int = 0,
    ) -> None:
        super().__init__(
            subscriptions, specs, Watchdog(config.heartbeat(), config.watchdog()), connection_id
        )
        self.config = config
        self.decoder = decoder
        self.server_messages = 0

    def __repr__(self) -> str:
        return (
            f"<RtdsSession #{self.connection_id} {self._state.value} "
            f"frames={self.frames_received} subscriptions={len(self.subscriptions)} "
            f"watchdog={self.watchdog!r}>"
        )

    # ------------------------------------------------------------------ inputs

    def connected(self, now: float) -> None:
        """The socket is open: subscribe to every desired topic, start the clocks (-> OPEN)."""
        self._check_connectable()
        keys = self.subscriptions.on_connected(now)
        if keys:
            self._frames.append(rtds_frame("subscribe", [self.specs[k] for k in keys]))
        self._open()
        self.watchdog.start(now)
        self.watchdog.track(keys, now)

    def receive_frames(self, frames: Sequence[str | bytes], now: float) -> None:
        """Several text frames arrived at ``now``."""
        self._check_receiving()
        self.frames_received += len(frames)
        watchdog = self.watchdog
        for frame in frames:
            item = self.decoder.decode(frame)
            if isinstance(item, RtdsPong):
                watchdog.on_pong(now)
                continue
            if isinstance(item, RtdsServerMessage):
                # A refusal is not data: counting it would hide the stall it may announce.
                self.server_messages += 1
            elif isinstance(item, RtdsMalformed):
                watchdog.on_frame(now)
            else:
                self._note_data(item.topic, item.type, now)
            self._events.append(item)

    def _note_data(self, topic: str, kind: str, now: float) -> None:
        self.last_data_at = now
        watchdog = self.watchdog
        watchdog.on_frame(now)
        for key, spec in self.specs.items():
            if spec.matches(topic, kind) and key in self.subscriptions:
                watchdog.on_data(now, key)
                self.subscriptions.confirm(key, now)

    def handle_timer(self, now: float) -> None:
        """PING when due; a dead link, a silent socket or a silent topic -> FAILED.

        A no-op unless OPEN. Afterwards :meth:`next_deadline` is None (FAILED) or later than
        ``now``.
        """
        if self._state is SessionState.OPEN:
            self._watch(now, PING)

    def subscribe(self, ids: Iterable[str], now: float | None) -> list[str]:
        """Add subscription keys (their specs must be in ``specs``); live when OPEN."""
        keys = self._known(ids)
        added = self.subscriptions.add(keys, now if self.opened else None)
        if added and self.opened:
            self._frames.append(rtds_frame("subscribe", [self.specs[k] for k in added]))
            if now is not None:
                self.watchdog.track(added, now)
        return added

    def unsubscribe(self, ids: Iterable[str]) -> list[str]:
        """Remove subscription keys; live when OPEN."""
        removed = self.subscriptions.remove(ids)
        if removed and self.opened:
            self._frames.append(rtds_frame("unsubscribe", [self.specs[k] for k in removed]))
            self.watchdog.untrack(removed)
        return removed

    def refresh(self, ids: Iterable[str], now: float) -> None:
        """RTDS has no snapshots to ask for: a no-op."""
