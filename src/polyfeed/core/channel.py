"""What the connection runner and the supervisor need from a socket's protocol state machine.

Every Polymarket socket (the CLOB market and user channels, RTDS, sports, PolyBolt) has its own
pure session; the one reconnect loop (:class:`polyfeed.aio.supervisor.Supervisor`) and the one
connection runner (:class:`polyfeed.aio.connection.Connection`) drive any of them through this
protocol. :class:`polyfeed.core.session.Session` (the CLOB channels) is the reference
implementation; its module docstring gives the state transitions every session follows.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Generic, Protocol, TypeVar

from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.core.watchdog import Watchdog
from polyfeed.errors import ConfigError, DataTimeoutError, InvalidStateError, TransientError
from polyfeed.events import LifecycleEvent, Stale

__all__ = ["ChannelSession", "SessionBase", "SessionState", "WatchedSession"]

logger = logging.getLogger("polyfeed.session")


class ChannelSession(Protocol):
    """One connection's protocol state: inputs with ``now``, outputs collected by the runner."""

    @property
    def connection_id(self) -> int:
        """Which physical connection of the stream this is (1, 2, ...)."""
        ...

    @property
    def failure(self) -> TransientError | None:
        """Why the socket must be given up; None while it is healthy."""
        ...

    @property
    def frames_received(self) -> int:
        """Frames read on this connection (any frame: proof the link worked)."""
        ...

    @property
    def last_data_at(self) -> float | None:
        """When the last data frame arrived (the start of a gap); None when none did."""
        ...

    @property
    def last_pong_rtt(self) -> float | None:
        """The last heartbeat round trip in seconds, None when unknown."""
        ...

    @property
    def has_output(self) -> bool:
        """Whether frames or events wait to be collected."""
        ...

    def connected(self, now: float) -> None:
        """The socket is open: queue the initial frames and start the clocks."""
        ...

    def receive_text(self, text: str | bytes, now: float) -> None:
        """One text frame arrived at ``now``."""
        ...

    def receive_frames(self, frames: Sequence[str | bytes], now: float) -> None:
        """Several text frames arrived at ``now``."""
        ...

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at ``now``; afterwards ``next_deadline()`` is None or later."""
        ...

    def abort(self, reason: TransientError) -> None:
        """The I/O layer must give the socket up for ``reason``."""
        ...

    def closed(self) -> None:
        """The socket is gone."""
        ...

    def next_deadline(self) -> float | None:
        """The earliest time at which ``handle_timer`` has work to do."""
        ...

    def frames_to_send(self) -> list[str]:
        """Text frames to send, in order; the queue is emptied."""
        ...

    def events(self) -> Sequence[object]:
        """Events for the consumer, in wire order; the queue is emptied."""
        ...

    def subscribe(self, ids: Iterable[str], now: float | None) -> list[str]:
        """Add to the desired set (live on an open socket); returns what was new."""
        ...

    def unsubscribe(self, ids: Iterable[str]) -> list[str]:
        """Remove from the desired set (live on an open socket); returns what was removed."""
        ...

    def refresh(self, ids: Iterable[str], now: float) -> None:
        """Ask for fresh snapshots of these ids where the socket can (else a no-op)."""
        ...


class SessionState(enum.Enum):
    """Where one connection stands (see :mod:`polyfeed.core.session` for the transitions)."""

    NEW = "new"
    OPEN = "open"
    FAILED = "failed"
    CLOSED = "closed"


EventT = TypeVar("EventT")


class SessionBase(Generic[EventT]):
    """The state machine every socket's session shares: NEW -> OPEN -> FAILED -> CLOSED.

    ``EventT`` is the socket's own events; the queue also carries lifecycle events. A subclass
    names itself in ``_label`` (the DEBUG transition log) and ``_class_name``
    (:class:`~polyfeed.errors.InvalidStateError`), calls :meth:`_open` at the end of its
    ``connected`` and queues into ``_frames`` and ``_events``; :meth:`_open_deadline` and
    :meth:`_on_closed` are its hooks into :meth:`next_deadline` and :meth:`closed`.
    """

    _label: str
    _class_name: ClassVar[str]

    def __init__(self, connection_id: int) -> None:
        self.connection_id = connection_id
        self._state = SessionState.NEW
        self._failure: TransientError | None = None
        self._frames: list[str] = []
        self._events: list[EventT | LifecycleEvent] = []
        self.frames_received = 0
        self.last_data_at: float | None = None

    @property
    def state(self) -> SessionState:
        """The connection state; only the session's inputs change it."""
        return self._state

    def _set_state(self, state: SessionState) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "session %s #%d: %s -> %s",
                self._label,
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
    def opened(self) -> bool:
        """True while a socket is attached: OPEN or FAILED."""
        return self._state is SessionState.OPEN or self._state is SessionState.FAILED

    @property
    def has_output(self) -> bool:
        """Whether frames or events wait to be collected (cheap; for the reader's hot path)."""
        return bool(self._frames or self._events)

    def _check_connectable(self) -> None:
        """``connected`` needs a session without a socket (NEW or CLOSED); clears ``failure``."""
        if self.opened:
            raise InvalidStateError(self._class_name, self._state.name, "connected")
        self._failure = None

    def _check_receiving(self) -> None:
        # FAILED still receives: frames read just before the socket was aborted are real data.
        if not self.opened:
            raise InvalidStateError(self._class_name, self._state.name, "receive")

    def _open(self) -> None:
        self._set_state(SessionState.OPEN)

    def receive_text(self, text: str | bytes, now: float) -> None:
        """A text frame arrived at ``now`` (OPEN or FAILED; otherwise InvalidStateError)."""
        self.receive_frames((text,), now)

    def receive_frames(self, frames: Sequence[str | bytes], now: float) -> None:
        """Several text frames arrived at ``now``."""
        raise NotImplementedError

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

    def closed(self) -> None:
        """The socket is gone (for whatever reason): OPEN or FAILED -> CLOSED.

        Frames not yet sent are dropped: they belong to the dead socket, and a queued ping or
        request sent ahead of the next connection's initial frames could be refused (the CLOB
        answers ``1008``). ``failure`` stays readable; a no-op while NEW or CLOSED.
        """
        if not self.opened:
            return
        self._set_state(SessionState.CLOSED)
        self._frames.clear()
        self._on_closed()

    def _on_closed(self) -> None:
        """What else a subclass lets go of with the socket."""

    def next_deadline(self) -> float | None:
        """The earliest time at which ``handle_timer`` has work to do; None unless OPEN."""
        if self._state is not SessionState.OPEN:
            return None
        return self._open_deadline()

    def _open_deadline(self) -> float | None:
        """The next deadline of an OPEN session."""
        return None

    def frames_to_send(self) -> list[str]:
        """Text frames to send, in order; the queue is emptied."""
        out, self._frames = self._frames, []
        return out

    def events(self) -> list[EventT | LifecycleEvent]:
        """Events for the consumer, in wire order; the queue is emptied."""
        out, self._events = self._events, []
        return out


SpecT = TypeVar("SpecT")


class WatchedSession(SessionBase[EventT], Generic[EventT, SpecT]):
    """A session whose liveness is the shared :class:`~polyfeed.core.watchdog.Watchdog`'s and
    whose subscriptions are keys of ``specs`` (RTDS, PolyBolt).

    ``subscriptions`` holds subscription keys and outlives the connection; ``specs`` maps each
    key to its subscription (the stream owns both). ``_what`` names the socket in errors.
    """

    _what: ClassVar[str]

    def __init__(
        self,
        subscriptions: SubscriptionSet,
        specs: Mapping[str, SpecT],
        watchdog: Watchdog,
        connection_id: int,
    ) -> None:
        super().__init__(connection_id)
        self.subscriptions = subscriptions
        self.specs = specs
        self.watchdog = watchdog

    @property
    def last_pong_rtt(self) -> float | None:
        """Seconds from the oldest then-unanswered ping to the last pong; None before one."""
        return self.watchdog.last_pong_rtt

    def _known(self, ids: Iterable[str]) -> list[str]:
        """``ids`` as a list, every one a key of ``specs`` (else ConfigError)."""
        keys = list(ids)
        unknown = [k for k in keys if k not in self.specs]
        if unknown:
            raise ConfigError(f"unknown {self._what} subscription keys: {unknown}")
        return keys

    def _watch(self, now: float, ping: str) -> None:
        """The timer of an OPEN session: a watchdog verdict -> ``Stale`` and FAILED, else
        ``ping`` queued when due."""
        watchdog = self.watchdog
        verdict = watchdog.check(now)
        if verdict is not None:
            self._events.append(
                Stale(
                    kind=verdict.kind,
                    silent_for=verdict.silent_for,
                    asset_ids=list(verdict.asset_ids),
                    connection_id=self.connection_id,
                )
            )
            # A silent subscription is a stall like a silent socket: the server does not resume it.
            self._fail(DataTimeoutError(verdict.kind, verdict.silent_for, verdict.asset_ids))
            return
        if watchdog.ping_due(now):
            self._frames.append(ping)
            watchdog.on_ping_sent(now)

    def _on_closed(self) -> None:
        self.watchdog.stop()
        self.subscriptions.on_disconnected()

    def _open_deadline(self) -> float | None:
        return self.watchdog.next_deadline()
