"""The order-safety heartbeat (Polymarket's dead-man switch) as a pure state machine.

``POST /v1/heartbeats`` with ``{"heartbeat_id": <id>}`` must reach the CLOB at least every
``window`` s (10 s), or **every open order of the API key is cancelled**. The first beat sends
``""``; each reply names the id to send next, so the ids form a chain. A beat with a stale id is
answered 400 ``Invalid Heartbeat ID`` together with the id the server expects: the machine
retries at once with that id.

The I/O layer asks :meth:`HeartbeatMachine.beat_due` / :meth:`HeartbeatMachine.begin_beat`,
posts, and reports the outcome (:meth:`~HeartbeatMachine.accepted`,
:meth:`~HeartbeatMachine.invalid_id`, :meth:`~HeartbeatMachine.failed`); it sleeps until
:meth:`~HeartbeatMachine.next_deadline` and calls :meth:`~HeartbeatMachine.handle_timer`.

States (one value, :attr:`HeartbeatMachine.state`):

=========  =====================================================================================
idle       made, not started                                       ``start`` -> starting
starting   first beat not yet accepted (no orders protected yet)   accepted -> ok
ok         last beat accepted less than ``window - alarm_margin`` s ago
alarm      no beat accepted for ``window - alarm_margin`` s: orders are about to be cancelled
expired    no beat accepted for ``window`` s: the server has cancelled the orders
stopped    ``stop``; final
=========  =====================================================================================

An accepted beat returns ``alarm``/``expired`` to ``ok``. Each move into ``alarm``, ``expired``
or back to ``ok`` from them emits one :class:`HeartbeatAlarm` / :class:`HeartbeatExpired` /
:class:`HeartbeatRecovered`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import msgspec

from polyfeed.errors import ConfigError, InvalidStateError

__all__ = [
    "HeartbeatAlarm",
    "OrderHeartbeatConfig",
    "HeartbeatEvent",
    "HeartbeatExpired",
    "HeartbeatMachine",
    "HeartbeatRecovered",
    "HeartbeatState",
]

logger = logging.getLogger("polyfeed.heartbeat")

HeartbeatState = Literal["idle", "starting", "ok", "alarm", "expired", "stopped"]


@dataclass(frozen=True, slots=True)
class OrderHeartbeatConfig:
    """Timing of the order heartbeat (seconds).

    ``interval``: time between beats (Polymarket: ~5 s). ``window``: the server's cancellation
    window (10 s). ``alarm_margin``: the alarm goes off this long before the window closes.
    ``retry_delay``: wait after a failed beat (network error, 5xx) before the next try.
    ``request_timeout``: a beat without an answer for this long counts as failed.
    """

    interval: float = 5.0
    window: float = 10.0
    alarm_margin: float = 3.0
    retry_delay: float = 0.5
    request_timeout: float = 2.0

    def __post_init__(self) -> None:
        for name in ("interval", "window", "alarm_margin", "retry_delay", "request_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"heartbeat {name} must be > 0, got {value!r}")
        if not self.interval + self.request_timeout < self.window - self.alarm_margin:
            raise ConfigError(
                "heartbeat interval + request_timeout must be shorter than window - alarm_margin:"
                " one slow beat must not raise the alarm"
            )


class _Event(msgspec.Struct, frozen=True, tag_field="event_type", kw_only=True):
    """Base of the heartbeat's events."""


class HeartbeatAlarm(_Event, frozen=True, tag="heartbeat_alarm"):
    """No beat accepted for a while: the orders will be cancelled in ``time_left`` s."""

    time_left: float
    reason: str


class HeartbeatExpired(_Event, frozen=True, tag="heartbeat_expired"):
    """The window passed without an accepted beat: the server has cancelled the orders."""

    silent_for: float
    reason: str


class HeartbeatRecovered(_Event, frozen=True, tag="heartbeat_recovered"):
    """A beat was accepted again after an alarm or an expiry."""

    silent_for: float


HeartbeatEvent = HeartbeatAlarm | HeartbeatExpired | HeartbeatRecovered


class HeartbeatMachine:
    """The heartbeat's state: which id to send, when, and whether the orders are at risk."""

    def __init__(self, config: OrderHeartbeatConfig | None = None) -> None:
        self.config = config or OrderHeartbeatConfig()
        self._state: HeartbeatState = "idle"
        self.heartbeat_id = ""
        self._next_beat = 0.0
        self._in_flight_since: float | None = None
        self.last_accepted_at: float | None = None
        self._started_at = 0.0
        self.last_error: str | None = None
        self.beats_sent = 0
        self.beats_accepted = 0
        self.invalid_ids = 0
        self.failures = 0
        self.alarms = 0
        self.expiries = 0
        self._events: list[HeartbeatEvent] = []

    def __repr__(self) -> str:
        return (
            f"<HeartbeatMachine {self._state} sent={self.beats_sent} "
            f"accepted={self.beats_accepted} invalid_ids={self.invalid_ids} "
            f"failures={self.failures} alarms={self.alarms}>"
        )

    @property
    def state(self) -> HeartbeatState:
        """Where the heartbeat stands (module docstring)."""
        return self._state

    def _set_state(self, state: HeartbeatState) -> None:
        logger.debug("order heartbeat: %s -> %s", self._state, state)
        self._state = state

    @property
    def in_flight(self) -> bool:
        """Whether a beat was sent and its outcome not yet reported."""
        return self._in_flight_since is not None

    def _require_running(self, what: str) -> None:
        if self._state == "idle" or self._state == "stopped":
            raise InvalidStateError("HeartbeatMachine", self._state, what)

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> None:
        """Begin: the first beat (id ``""``) is due at once. idle -> starting."""
        if self._state != "idle":
            raise InvalidStateError("HeartbeatMachine", self._state, "start")
        self._started_at = now
        self._next_beat = now
        self._set_state("starting")

    def beat_due(self, now: float) -> bool:
        """Whether a beat should be posted now (none is in flight and its time has come)."""
        running = self._state != "idle" and self._state != "stopped"
        return running and self._in_flight_since is None and now >= self._next_beat

    def begin_beat(self, now: float) -> tuple[int, str]:
        """A beat is being posted at ``now``: its number (to report its outcome) and the id."""
        self._require_running("begin_beat")
        if self._in_flight_since is not None:
            raise InvalidStateError("HeartbeatMachine", "beat in flight", "begin_beat")
        self._in_flight_since = now
        self.beats_sent += 1
        return self.beats_sent, self.heartbeat_id

    def _finish_beat(self, beat: int) -> float | None:
        # An answer to a beat already given up (timed out) or after stop() is ignored: the
        # chain continues from the id that beat was sent with.
        sent = self._in_flight_since
        if sent is None or beat != self.beats_sent:
            return None
        self._in_flight_since = None
        return sent

    def accepted(self, beat: int, next_id: str, now: float) -> bool:
        """The server accepted beat ``beat`` and named the next id; the next beat is due
        ``interval`` s after this one was sent. False (ignored) for a stale beat."""
        sent = self._finish_beat(beat)
        if sent is None:
            return False
        self.beats_accepted += 1
        previous = self.last_accepted_at
        self.heartbeat_id = next_id
        self.last_accepted_at = now
        self.last_error = None
        self._next_beat = max(sent + self.config.interval, now)
        if self._state in ("alarm", "expired"):
            silent = now - (previous if previous is not None else self._started_at)
            self._events.append(HeartbeatRecovered(silent_for=silent))
            logger.warning("order heartbeat recovered after %.3fs", silent)
        self._set_state("ok")
        return True

    def invalid_id(self, beat: int, expected_id: str, now: float) -> bool:
        """The server refused the id and named the one it expects: retry at once with it.
        False (ignored) for a stale beat."""
        if self._finish_beat(beat) is None:
            return False
        self.invalid_ids += 1
        self.heartbeat_id = expected_id
        self.last_error = "invalid heartbeat id"
        self._next_beat = now
        logger.info("order heartbeat id refused; retrying with the id the server named")
        return True

    def failed(self, beat: int, reason: str, now: float) -> bool:
        """The beat failed (network, 5xx, unexpected answer): retry after ``retry_delay`` with
        the same id. False (ignored) for a stale beat."""
        if self._finish_beat(beat) is None:
            return False
        self._fail(reason, now)
        return True

    def _fail(self, reason: str, now: float) -> None:
        self.failures += 1
        self.last_error = reason
        self._next_beat = now + self.config.retry_delay
        logger.warning("order heartbeat failed: %s", reason)

    def handle_timer(self, now: float) -> None:
        """Give up a beat past ``request_timeout``; raise the alarm or declare expiry when due.

        Afterwards :meth:`next_deadline` is None or later than ``now``, unless a beat is due
        now (:meth:`beat_due`).
        """
        if self._state == "idle" or self._state == "stopped":
            return
        sent = self._in_flight_since
        if sent is not None and now >= sent + self.config.request_timeout:
            self._in_flight_since = None
            self._fail(f"no answer within {self.config.request_timeout}s", now)
        if self._state not in ("ok", "alarm", "starting"):
            return
        base = self.last_accepted_at
        if base is None:
            # Nothing is protected before the first accepted beat: no alarm, no expiry.
            return
        silent = now - base
        reason = self.last_error or ("beat in flight" if self.in_flight else "no beat accepted")
        if silent >= self.config.window:
            self.expiries += 1
            self._events.append(HeartbeatExpired(silent_for=silent, reason=reason))
            logger.error(
                "order heartbeat expired after %.3fs (%s): open orders are cancelled",
                silent,
                reason,
            )
            self._set_state("expired")
        elif self._state == "ok" and silent >= self.config.window - self.config.alarm_margin:
            self.alarms += 1
            time_left = self.config.window - silent
            self._events.append(HeartbeatAlarm(time_left=time_left, reason=reason))
            logger.error(
                "order heartbeat ALARM: no beat accepted for %.3fs; orders cancelled in %.3fs (%s)",
                silent,
                time_left,
                reason,
            )
            self._set_state("alarm")

    def stop(self) -> None:
        """The heartbeat is turned off (orders will be cancelled at the window's end). Final."""
        if self._state != "stopped":
            self._in_flight_since = None
            self._set_state("stopped")

    # ------------------------------------------------------------------ outputs

    def time_left(self, now: float) -> float | None:
        """Seconds until the server cancels the orders (may be negative); None before the
        first accepted beat or once stopped."""
        if self.last_accepted_at is None or self._state == "stopped":
            return None
        return self.last_accepted_at + self.config.window - now

    def next_deadline(self) -> float | None:
        """The earliest time something is due: a beat, a beat's timeout, the alarm, expiry."""
        if self._state == "idle" or self._state == "stopped":
            return None
        candidates: list[float] = []
        if self._in_flight_since is None:
            candidates.append(self._next_beat)
        else:
            candidates.append(self._in_flight_since + self.config.request_timeout)
        base = self.last_accepted_at
        if base is not None:
            if self._state == "ok":
                candidates.append(base + self.config.window - self.config.alarm_margin)
            if self._state in ("ok", "alarm"):
                candidates.append(base + self.config.window)
        return min(candidates)

    def events(self) -> list[HeartbeatEvent]:
        """Alarm, expiry and recovery events since the last call; the queue is emptied."""
        out, self._events = self._events, []
        return out
