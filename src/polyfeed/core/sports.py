"""The sports socket's protocol state machine and messages, sans-I/O.

``wss://sports-api.polymarket.com/ws`` broadcasts every active game; there is nothing to
subscribe. Here the *server* keeps the link alive: it sends text ``ping`` every 5 s and closes a
client that has not answered ``pong`` within 10 s. So the session answers every ping at once,
in the case the server used (``ping`` -> ``pong``, ``PING`` -> ``PONG``: the docs disagree on the
case), and a server that has not pinged for ``ping_timeout`` s is a stale link, reported as
``Stale(kind="pong")`` (the heartbeat failed) and ended so that the supervisor reconnects.

Messages (docs/protocol.md §6): one JSON object per frame (an array of them is accepted too);
only ``slug`` is required. Objects with a ``slug`` become :class:`SportResult` (score and status);
anything else JSON is :class:`SportsRaw`; non-JSON text is :class:`SportsMalformed`.

Session states and illegal inputs are those of :class:`polyfeed.core.session.Session`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from polyfeed.core.channel import SessionBase, SessionState
from polyfeed.errors import ConfigError, DataTimeoutError
from polyfeed.events import LifecycleEvent, Stale, StaleKind

__all__ = [
    "SportResult",
    "SportsConfig",
    "SportsDecoder",
    "SportsEvent",
    "SportsMalformed",
    "SportsRaw",
    "SportsSession",
    "pong_for",
]

_PING: Final = "ping"


class SportResult(msgspec.Struct, frozen=True, tag_field="event_type", tag="sport_result"):
    """A game's score and status (``sport_result``); only ``slug`` is always present.

    ``score`` is kept as sent (``"1-0"``, or multi-segment ``"2-1|1-0|Bo3"``); ``payload`` is
    the whole message for fields not typed here.
    """

    slug: str
    live: bool | None = None
    ended: bool | None = None
    score: str | None = None
    period: str | None = None
    elapsed: str | None = None
    last_update: str | None = None
    finished_timestamp: str | None = None
    turn: str | None = None
    status: str | None = None
    game_id: int | str | None = None
    league: str | None = None
    home_team: str | None = None
    away_team: str | None = None
    payload: dict[str, Any] = {}


class SportsRaw(msgspec.Struct, frozen=True, tag_field="event_type", tag="sports_raw"):
    """A JSON message without a ``slug``, as sent."""

    payload: Any


class SportsMalformed(msgspec.Struct, frozen=True, tag_field="event_type", tag="sports_malformed"):
    """A text frame that is neither JSON nor a ping (first 200 characters)."""

    text: str
    error: str


SportsEvent = SportResult | SportsRaw | SportsMalformed


# The wire shape of SportResult: its fields but ``payload``, four of them camelCase on the wire.
# Derived from SportResult, so the two cannot drift apart.
_RESULT_WIRE_NAMES: Final = {
    "game_id": "gameId",
    "league": "leagueAbbreviation",
    "home_team": "homeTeam",
    "away_team": "awayTeam",
}
_Result: Final = msgspec.defstruct(
    "_Result",
    [
        (field.name, field.type, field.default)
        for field in msgspec.structs.fields(SportResult)
        if field.name != "payload"
    ],
    rename=_RESULT_WIRE_NAMES,
)


def pong_for(text: str) -> str | None:
    """The answer to a server ping, in its case (``ping`` -> ``pong``); None if not a ping."""
    if text.lower() != _PING:
        return None
    return text.replace("i", "o").replace("I", "O")


class SportsDecoder:
    """Sports frames to typed events (pings are answered by the session, never decoded)."""

    def __init__(self) -> None:
        self._any = msgspec.json.Decoder()
        self.malformed = 0

    def __repr__(self) -> str:
        return f"<SportsDecoder malformed={self.malformed}>"

    def decode(self, text: str) -> list[SportsEvent]:
        """One frame to its events (an array frame gives several)."""
        try:
            value = self._any.decode(text)
        except msgspec.DecodeError as exc:
            self.malformed += 1
            return [SportsMalformed(text=text[:200], error=str(exc))]
        items = value if isinstance(value, list) else [value]
        return [self._typed(item) for item in items]

    def _typed(self, item: Any) -> SportsEvent:
        if not isinstance(item, dict) or not isinstance(item.get("slug"), str):
            return SportsRaw(payload=item)
        try:
            result = msgspec.convert(item, _Result)
        except msgspec.ValidationError:
            return SportsRaw(payload=item)
        return SportResult(payload=item, **msgspec.structs.asdict(result))


@dataclass(frozen=True, slots=True)
class SportsConfig:
    """``ping_timeout``: no server ping for that long is a stale link (the server pings every
    5 s; 15 s is three missed pings). ``data_timeout``: no message at all for that long (None:
    off; a day without games is quiet)."""

    ping_timeout: float = 15.0
    data_timeout: float | None = None

    def __post_init__(self) -> None:
        if not self.ping_timeout > 0:
            raise ConfigError(f"ping_timeout must be > 0, got {self.ping_timeout!r}")
        if self.data_timeout is not None and not self.data_timeout > 0:
            raise ConfigError(f"data_timeout must be > 0 or None, got {self.data_timeout!r}")


SportsSessionEvent = SportsEvent | LifecycleEvent


class SportsSession(SessionBase[SportsEvent]):
    """One sports connection (a :class:`~polyfeed.core.channel.ChannelSession`)."""

    _label = "sports"
    _class_name = "SportsSession"

    def __init__(
        self, config: SportsConfig, decoder: SportsDecoder, *, connection_id: int = 0
    ) -> None:
        super().__init__(connection_id)
        self.config = config
        self.decoder = decoder
        self._last_ping = 0.0
        self._last_frame = 0.0
        self.pings_received = 0
        self.pongs_sent = 0
        self.last_ping_interval: float | None = None

    def __repr__(self) -> str:
        return (
            f"<SportsSession #{self.connection_id} {self._state.value} "
            f"frames={self.frames_received} pings={self.pings_received} pongs={self.pongs_sent}>"
        )

    @property
    def last_pong_rtt(self) -> float | None:
        """The server pings, so there is no round trip to measure: always None."""
        return None

    def connected(self, now: float) -> None:
        """The socket is open: nothing to send; the ping clock starts now (-> OPEN)."""
        self._check_connectable()
        self._last_ping = now
        self._last_frame = now
        self._open()

    def receive_frames(self, frames: Sequence[str | bytes], now: float) -> None:
        """Several text frames arrived at ``now``: pings are answered, the rest decoded."""
        self._check_receiving()
        self.frames_received += len(frames)
        self._last_frame = now
        for frame in frames:
            text = frame if isinstance(frame, str) else frame.decode(errors="replace")
            text = text.strip()
            pong = pong_for(text)
            if pong is not None:
                self.pings_received += 1
                self.last_ping_interval = now - self._last_ping
                self._last_ping = now
                if self._state is SessionState.OPEN:
                    self._frames.append(pong)
                    self.pongs_sent += 1
                continue
            self.last_data_at = now
            self._events.extend(self.decoder.decode(text))

    def _ping_deadline(self) -> float:
        return self._last_ping + self.config.ping_timeout

    def _data_deadline(self) -> float | None:
        timeout = self.config.data_timeout
        return None if timeout is None else self._last_frame + timeout

    def handle_timer(self, now: float) -> None:
        """A server silent past ``ping_timeout`` (or ``data_timeout``) -> FAILED."""
        if self._state is not SessionState.OPEN:
            return
        if now >= self._ping_deadline():
            self._stale("pong", now - self._last_ping)
            return
        data = self._data_deadline()
        if data is not None and now >= data:
            self._stale("data", now - self._last_frame)

    def _stale(self, kind: StaleKind, silent_for: float) -> None:
        self._events.append(
            Stale(kind=kind, silent_for=silent_for, connection_id=self.connection_id)
        )
        self._fail(DataTimeoutError(kind, silent_for))

    def subscribe(self, ids: Iterable[str], now: float | None) -> list[str]:
        """The sports socket has no subscriptions: nothing is added."""
        return []

    def unsubscribe(self, ids: Iterable[str]) -> list[str]:
        """The sports socket has no subscriptions: nothing is removed."""
        return []

    def refresh(self, ids: Iterable[str], now: float) -> None:
        """Nothing to refresh: a no-op."""

    def _open_deadline(self) -> float | None:
        """When the server's silence becomes a stale link."""
        deadline = self._ping_deadline()
        data = self._data_deadline()
        return deadline if data is None or deadline < data else data
