"""Gap bookkeeping for one logical stream, sans-I/O: wall-clock ``now`` is an argument.

An *outage* starts when data stops reaching the consumer because a connection ended (or an
attempt failed) and ends with the first frame of a later connection: that frame proves the
server processed the subscription sent before it, so events from then on reach us. The rules:

- one gap per outage, however many attempts fail inside it; its reason is what started it;
- no gap before the first connection that received a frame: a stream that never delivered
  anything has missed nothing the consumer could have had (a refused first handshake used to
  report a gap starting at the epoch);
- ``started`` is the wall time of the last data before the outage (or when that connection's
  first frame arrived, when it had no data); ``ended`` is never before ``started``, even if the
  wall clock stepped back.

The supervisor calls :meth:`GapTracker.first_frame` on each connection's first frame (it returns
the outage it closes, if any) and :meth:`GapTracker.lost` when a connection ends or an attempt
fails.
"""

from __future__ import annotations

import msgspec

__all__ = ["GapTracker", "Outage"]


class Outage(msgspec.Struct, frozen=True):
    """A closed outage: events between ``started`` and ``ended`` (wall seconds) may be missing."""

    started: float
    ended: float
    reason: str


class GapTracker:
    """Open and closed outages of one stream (see the module docstring for the rules)."""

    __slots__ = ("_live_since", "_open", "outages")

    def __init__(self) -> None:
        # When the first frame of the live connection arrived; None while none is live.
        self._live_since: float | None = None
        # The open outage: (started, reason).
        self._open: tuple[float, str] | None = None
        self.outages = 0
        """Outages closed so far (each reported as one gap)."""

    def __repr__(self) -> str:
        if self._open is not None:
            started, reason = self._open
            state = f"open since {started:.3f} ({reason})"
        elif self._live_since is not None:
            state = f"live since {self._live_since:.3f}"
        else:
            state = "never live"
        return f"GapTracker({state}, outages={self.outages})"

    @property
    def open_since(self) -> float | None:
        """When the open outage started; None when there is none."""
        return None if self._open is None else self._open[0]

    def first_frame(self, now: float) -> Outage | None:
        """A connection received its first frame at ``now``: close the open outage, if any."""
        self._live_since = now
        if self._open is None:
            return None
        started, reason = self._open
        self._open = None
        self.outages += 1
        return Outage(started=started, ended=max(started, now), reason=reason)

    def lost(self, reason: str, last_data: float | None, now: float) -> None:
        """A connection ended, or an attempt failed, at ``now`` because of ``reason``.

        ``last_data``: the wall time of the last data of the connection that ended (None when
        it had none, or when no connection was up). Opens an outage when a connection that
        received a frame was live; otherwise this is a failure inside an outage already open,
        or before the stream ever delivered anything, and changes nothing.
        """
        live_since, self._live_since = self._live_since, None
        if live_since is None:
            # An outage is open already (a live connection closes it), or nothing ever was live.
            return
        started = live_since if last_data is None else max(last_data, live_since)
        # A wall clock that stepped back must not put the start after the loss.
        self._open = (min(started, now), reason)
