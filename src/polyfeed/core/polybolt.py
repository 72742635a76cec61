"""PolyBolt (``wss://ws-live-v2.polymarket.com/ws``): frames, events and the session, sans-I/O.

PolyBolt is the successor of RTDS for reference prices (docs/protocol.md §5). Every frame is a
JSON object tagged ``op`` (requests and acks) or a data envelope
``{"v": 1, "channel", "seq", "ts", "snapshot"?, "dropped"?, "payload"}``:

- ``{"op": "auth", "rid", "auth": {apiKey, secret, passphrase}}`` -> ``{"op": "authed", "rid"}``;
  with credentials the session authenticates first and subscribes once ``authed`` arrives;
- ``{"op": "subscribe"|"unsubscribe", "rid", "channel", "filter"?}`` -> ``subscribed`` /
  ``unsubscribed`` / ``error``, each echoing the request's ``rid``;
- ``{"op": "ping"}`` -> ``{"op": "pong"}`` (the server also sends WebSocket pings, which the
  transport answers; the session's own ping measures the round trip and proves the link).

``seq`` counts the frames of one channel on one connection (it restarts with each connection).
A jump from ``n`` to ``m > n + 1`` is a gap of exactly ``m - n - 1`` frames, and ``dropped: k``
(frames the server dropped because we were slow) a gap of ``k`` frames: both are reported as
:class:`PolyboltGap` with the channel and the count. We assume ``seq`` numbers the frames
*delivered*, so the two never count the same frame twice. The first frame of each new
subscription is a ``snapshot`` (the last two minutes): :attr:`PolyboltData.snapshot` tells the
consumer to reset what it holds for that channel.

Close codes are the supervisor's business (see :func:`ending_policy`): 4003 draining ->
reconnect after a random 0-10 s; 4008 policy -> stop (reconnecting would repeat the violation);
4001 auth -> fatal :class:`~polyfeed.errors.AuthenticationError`; anything else -> backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from polyfeed.config import HeartbeatConfig, WatchdogConfig
from polyfeed.core.channel import SessionState, WatchedSession
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.core.watchdog import Watchdog
from polyfeed.credentials import Credentials
from polyfeed.errors import (
    AuthenticationError,
    ClosedByPolicyError,
    ConfigError,
    ConnectionClosedError,
    TransientError,
)
from polyfeed.events import LifecycleEvent

__all__ = [
    "CLOSE_AUTH",
    "CLOSE_DRAINING",
    "CLOSE_POLICY",
    "PolyboltAck",
    "PolyboltConfig",
    "PolyboltData",
    "PolyboltError",
    "PolyboltEvent",
    "PolyboltGap",
    "PolyboltMalformed",
    "PolyboltSession",
    "PolyboltSubscription",
    "ending_policy",
]

logger = logging.getLogger("polyfeed.session")

CLOSE_AUTH: Final = 4001
CLOSE_SLOW: Final = 4002
CLOSE_DRAINING: Final = 4003
CLOSE_POLICY: Final = 4008

_encode = msgspec.json.Encoder().encode


class PolyboltSubscription(msgspec.Struct, frozen=True):
    """One channel (``price.crypto``, ``price.equity``, ...) with an optional filter object."""

    channel: str
    filter: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.channel:
            raise ConfigError("a PolyBolt subscription needs a channel")

    @property
    def key(self) -> str:
        """The subscription's id in the stream's subscription set and lifecycle events."""
        if self.filter is None:
            return self.channel
        return f"{self.channel}:{_encode(self.filter).decode()}"

    def request(self, op: str, rid: str) -> str:
        """The text of a ``subscribe``/``unsubscribe`` request for this subscription."""
        body: dict[str, Any] = {"op": op, "rid": rid, "channel": self.channel}
        if self.filter is not None:
            body["filter"] = self.filter
        return _encode(body).decode()


# --------------------------------------------------------------------------- events


class PolyboltData(msgspec.Struct, frozen=True, tag_field="event_type", tag="polybolt_data"):
    """One data frame. ``snapshot``: the subscription's initial state (reset the channel)."""

    channel: str
    seq: int
    ts: int | None
    payload: Any
    snapshot: bool = False
    dropped: int = 0


class PolyboltGap(msgspec.Struct, frozen=True, tag_field="event_type", tag="polybolt_gap"):
    """Exactly ``missing`` frames of ``channel`` are lost before the frame numbered ``seq``.

    ``reason``: ``seq`` (the numbering jumped from ``after_seq``) or ``dropped`` (the server
    dropped them because the client was slow).
    """

    channel: str
    missing: int
    after_seq: int | None
    seq: int
    reason: Literal["seq", "dropped"]


class PolyboltAck(msgspec.Struct, frozen=True, tag_field="event_type", tag="polybolt_ack"):
    """The server confirmed a request (``authed``, ``subscribed``, ``unsubscribed``)."""

    op: str
    rid: str | None
    channel: str | None = None


class PolyboltError(msgspec.Struct, frozen=True, tag_field="event_type", tag="polybolt_error"):
    """The server refused a request: ``request`` is the op it answered (None: unknown rid)."""

    rid: str | None
    request: str | None
    channel: str | None
    message: str
    code: str | int | None = None


class PolyboltMalformed(
    msgspec.Struct, frozen=True, tag_field="event_type", tag="polybolt_malformed"
):
    """A frame that is neither a data envelope nor a known op (first 200 characters)."""

    text: str
    error: str


PolyboltEvent = PolyboltData | PolyboltGap | PolyboltAck | PolyboltError | PolyboltMalformed


class _Frame(msgspec.Struct):
    op: str | None = None
    rid: str | None = None
    channel: str | None = None
    seq: int | None = None
    ts: int | None = None
    snapshot: bool = False
    dropped: int = 0
    payload: Any = None
    message: str | None = None
    error: str | None = None
    code: str | int | None = None


_decode_frame = msgspec.json.Decoder(_Frame).decode


# --------------------------------------------------------------------------- config and policy


@dataclass(frozen=True, slots=True)
class PolyboltConfig:
    """PolyBolt timing: our ``{"op":"ping"}`` every ``ping_interval`` s, a dead link after
    ``pong_timeout`` s without ``pong``, a stall after ``data_timeout`` s without data;
    ``drain_max_delay``: the 4003 reconnect waits ``uniform(0, drain_max_delay)``."""

    ping_interval: float = 10.0
    pong_timeout: float = 30.0
    data_timeout: float = 60.0
    drain_max_delay: float = 10.0

    def __post_init__(self) -> None:
        self.heartbeat()
        self.watchdog()
        if not self.drain_max_delay >= 0:
            raise ConfigError(f"drain_max_delay must be >= 0, got {self.drain_max_delay!r}")

    def heartbeat(self) -> HeartbeatConfig:
        """The ping part, for the shared watchdog."""
        return HeartbeatConfig(interval=self.ping_interval, pong_timeout=self.pong_timeout)

    def watchdog(self) -> WatchdogConfig:
        """The data deadline, for the shared watchdog."""
        return WatchdogConfig(data_timeout=self.data_timeout)


def ending_policy(config: PolyboltConfig, rng: Callable[[], float]) -> Callable[[Any], float]:
    """How a PolyBolt connection's end shapes the next attempt: the least delay before it, or
    a fatal error raised (4001 auth, 4008 policy)."""

    def policy(error: TransientError) -> float:
        code = error.code if isinstance(error, ConnectionClosedError) else None
        if code == CLOSE_AUTH:
            raise AuthenticationError(None, 1)
        if code == CLOSE_POLICY:
            raise ClosedByPolicyError(
                code, error.reason if isinstance(error, ConnectionClosedError) else ""
            )
        if code == CLOSE_DRAINING:
            # The server is going away: spread the reconnects of every client over the window.
            return rng() * config.drain_max_delay
        return 0.0

    return policy


# --------------------------------------------------------------------------- session

PolyboltSessionEvent = PolyboltEvent | LifecycleEvent


class PolyboltSession(WatchedSession[PolyboltEvent, PolyboltSubscription]):
    """One PolyBolt connection (a :class:`~polyfeed.core.channel.ChannelSession`).

    ``subscriptions`` holds subscription keys and outlives the connection; ``specs`` maps each
    key to its subscription (the stream owns both).
    """

    _label = "polybolt"
    _class_name = "PolyboltSession"
    _what = "PolyBolt"

    def __init__(
        self,
        subscriptions: SubscriptionSet,
        specs: Mapping[str, PolyboltSubscription],
        config: PolyboltConfig,
        *,
        credentials: Credentials | None = None,
        connection_id: int = 0,
    ) -> None:
        super().__init__(
            subscriptions, specs, Watchdog(config.heartbeat(), config.watchdog()), connection_id
        )
        self.config = config
        self._credentials = credentials
        self._rids = 0
        self._pending: dict[str, tuple[str, str | None]] = {}
        self._authed = credentials is None
        self._last_seq: dict[str, int] = {}
        self.gaps = 0
        self.missing_frames = 0

    def __repr__(self) -> str:
        return (
            f"<PolyboltSession #{self.connection_id} {self._state.value} "
            f"frames={self.frames_received} channels={len(self._last_seq)} gaps={self.gaps} "
            f"missing={self.missing_frames} pending={len(self._pending)}>"
        )

    def _rid(self, op: str, channel: str | None) -> str:
        self._rids += 1
        rid = f"{op[0]}{self._rids}"
        self._pending[rid] = (op, channel)
        return rid

    def _request(self, op: str, keys: Iterable[str]) -> None:
        for key in keys:
            spec = self.specs[key]
            self._frames.append(spec.request(op, self._rid(op, spec.channel)))

    # ------------------------------------------------------------------ inputs

    def connected(self, now: float) -> None:
        """The socket is open: authenticate (with credentials) or subscribe at once (-> OPEN)."""
        self._check_connectable()
        self._pending.clear()
        self._last_seq.clear()
        keys = self.subscriptions.on_connected(now)
        credentials = self._credentials
        if credentials is not None:
            self._authed = False
            auth = {
                "apiKey": credentials.api_key,
                "secret": credentials.secret,
                "passphrase": credentials.passphrase,
            }
            body = {"op": "auth", "rid": self._rid("auth", None), "auth": auth}
            self._frames.append(_encode(body).decode())
        else:
            self._request("subscribe", keys)
        self._open()
        self.watchdog.start(now)

    def receive_frames(self, frames: Sequence[str | bytes], now: float) -> None:
        """Several text frames arrived at ``now``."""
        self._check_receiving()
        self.frames_received += len(frames)
        for text in frames:
            try:
                frame = _decode_frame(text)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raw = text if isinstance(text, str) else text.decode(errors="replace")
                self.watchdog.on_frame(now)
                self._events.append(PolyboltMalformed(text=raw[:200], error=str(exc)))
                continue
            if frame.op is not None:
                self._receive_op(frame, now)
            elif frame.channel is not None and frame.seq is not None:
                self._receive_data(frame, now)
            else:
                self._events.append(
                    PolyboltMalformed(text=str(text)[:200], error="neither op nor data")
                )

    def _receive_op(self, frame: _Frame, now: float) -> None:
        op = frame.op
        if op == "pong":
            self.watchdog.on_pong(now)
            return
        request = self._pending.pop(frame.rid, None) if frame.rid is not None else None
        if op == "error":
            self._events.append(
                PolyboltError(
                    rid=frame.rid,
                    request=None if request is None else request[0],
                    channel=frame.channel or (None if request is None else request[1]),
                    message=frame.message or frame.error or "",
                    code=frame.code,
                )
            )
            return
        self._events.append(PolyboltAck(op=op or "", rid=frame.rid, channel=frame.channel))
        if op == "authed" and not self._authed:
            self._authed = True
            self._request("subscribe", self.subscriptions.ordered())

    def _receive_data(self, frame: _Frame, now: float) -> None:
        channel = frame.channel
        seq = frame.seq
        assert channel is not None and seq is not None
        self.watchdog.on_frame(now)
        self.last_data_at = now
        previous = self._last_seq.get(channel)
        if previous is not None and seq > previous + 1:
            self._gap(channel, seq - previous - 1, previous, seq, "seq")
        if frame.dropped > 0:
            self._gap(channel, frame.dropped, previous, seq, "dropped")
        if previous is None or seq > previous:
            self._last_seq[channel] = seq
        for key, spec in self.specs.items():
            if spec.channel == channel and key in self.subscriptions:
                self.subscriptions.confirm(key, now)
        self._events.append(
            PolyboltData(
                channel=channel,
                seq=seq,
                ts=frame.ts,
                payload=frame.payload,
                snapshot=frame.snapshot,
                dropped=frame.dropped,
            )
        )

    def _gap(
        self,
        channel: str,
        missing: int,
        after: int | None,
        seq: int,
        reason: Literal["seq", "dropped"],
    ) -> None:
        self.gaps += 1
        self.missing_frames += missing
        self._events.append(
            PolyboltGap(channel=channel, missing=missing, after_seq=after, seq=seq, reason=reason)
        )
        logger.warning(
            "polybolt %s: %d frames lost before seq %d (%s)", channel, missing, seq, reason
        )

    def handle_timer(self, now: float) -> None:
        """Ping when due; a dead or silent link -> FAILED. A no-op unless OPEN."""
        if self._state is SessionState.OPEN:
            self._watch(now, '{"op":"ping"}')

    def subscribe(self, ids: Iterable[str], now: float | None) -> list[str]:
        """Add subscription keys (their specs must be in ``specs``); live once authenticated."""
        keys = self._known(ids)
        added = self.subscriptions.add(keys, now if self.opened else None)
        if added and self._state is SessionState.OPEN and self._authed:
            self._request("subscribe", added)
        return added

    def unsubscribe(self, ids: Iterable[str]) -> list[str]:
        """Remove subscription keys; live once authenticated. Their ``seq`` is forgotten."""
        removed = self.subscriptions.remove(ids)
        if removed and self._state is SessionState.OPEN and self._authed:
            self._request("unsubscribe", removed)
        for key in removed:
            channel = self.specs[key].channel
            if not any(
                s.channel == channel and k in self.subscriptions for k, s in self.specs.items()
            ):
                self._last_seq.pop(channel, None)
        return removed

    def refresh(self, ids: Iterable[str], now: float) -> None:
        """A no-op: each new subscription brings its own snapshot."""
