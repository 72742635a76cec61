"""What the connection runner and the supervisor need from a socket's protocol state machine.

Every Polymarket socket (the CLOB market and user channels, RTDS, sports, PolyBolt) has its own
pure session; the one reconnect loop (:class:`polyfeed.aio.supervisor.Supervisor`) and the one
connection runner (:class:`polyfeed.aio.connection.Connection`) drive any of them through this
protocol. :class:`polyfeed.core.session.Session` (the CLOB channels) is the reference
implementation; its module docstring gives the state transitions every session follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from polyfeed.errors import TransientError

__all__ = ["ChannelSession"]


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
