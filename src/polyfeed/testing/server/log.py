"""The fake server's ground truth: every message it generated, and per connection what went out.

Tests assert against it that nothing was lost without being reported: :class:`GroundTruthLog`
numbers each generated message (:class:`LoggedEvent`) and records, per connection, which
sequence numbers were handed to the transport and which a fault withheld (:class:`Delivery`).
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any, Literal

import msgspec

from polyfeed.testing.market_sim import SimMessage

__all__ = ["Delivery", "GroundTruthLog", "LoggedEvent", "Origin", "Outcome"]

Origin = Literal["market", "user", "snapshot", "fault", "raw"]
Outcome = Literal["partial", "withheld"]


class LoggedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One message the server generated, numbered in generation order.

    ``origin``: ``market`` (order flow, broadcast), ``user`` (user channel), ``snapshot`` (a
    ``book`` made for one connection), ``fault`` (a frame a fault sent), ``raw`` (``send_raw``).
    ``target`` is the connection id for per-connection messages.
    """

    seq: int
    origin: Origin
    event_type: str
    market: str
    asset_ids: tuple[str, ...]
    timestamp: str
    raw: bytes
    target: int | None = None

    def json(self) -> Any:
        """The decoded JSON (raises for a malformed fault frame)."""
        return msgspec.json.decode(self.raw)


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A message a fault kept (wholly or partly) from a connection.

    ``outcome`` ``withheld``: not sent at all; ``partial``: sent without the entries of
    ``asset_ids``. ``reason``: ``stall``, ``ignore``, ``silence``, ``drop`` or ``forget``.
    """

    seq: int
    connection_id: int
    outcome: Outcome
    reason: str
    asset_ids: tuple[str, ...]


class GroundTruthLog:
    """Every generated message and, per connection, what was sent and what was withheld.

    "Sent" means handed to the connection's transport (in send order; a duplicated message
    appears twice). ``max_events`` bounds memory for long runs (oldest dropped).
    """

    def __init__(self, max_events: int | None = None) -> None:
        self._events: deque[LoggedEvent] = deque(maxlen=max_events)
        self._next_seq = 1
        self._sent: dict[int, deque[int]] = {}
        self._withheld: dict[int, deque[Delivery]] = {}
        self._max = max_events

    def __len__(self) -> int:
        return len(self._events)

    @property
    def events(self) -> list[LoggedEvent]:
        """All retained events, in generation order."""
        return list(self._events)

    def event(self, seq: int) -> LoggedEvent:
        """The event numbered ``seq`` (KeyError when unknown or trimmed)."""
        if self._events:
            index = seq - self._events[0].seq
            if 0 <= index < len(self._events):
                return self._events[index]
        raise KeyError(seq)

    def events_for(self, asset_id: str, *, origin: Origin | None = None) -> list[LoggedEvent]:
        """Events about ``asset_id`` (or about condition id ``asset_id``), optionally by origin."""
        return [
            e
            for e in self._events
            if (asset_id in e.asset_ids or e.market == asset_id)
            and (origin is None or e.origin == origin)
        ]

    def sent_seqs(self, connection_id: int) -> list[int]:
        """Sequence numbers handed to the connection's transport, in send order."""
        return list(self._sent.get(connection_id, ()))

    def sent_to(self, connection_id: int) -> list[LoggedEvent]:
        """Events handed to the connection's transport, in send order (trimmed ones skipped)."""
        out = []
        for seq in self._sent.get(connection_id, ()):
            with contextlib.suppress(KeyError):
                out.append(self.event(seq))
        return out

    def withheld_from(self, connection_id: int) -> list[Delivery]:
        """What faults kept from the connection (withheld or partial), in order."""
        return list(self._withheld.get(connection_id, ()))

    def missed_by(self, connection_id: int, asset_id: str | None = None) -> list[LoggedEvent]:
        """Events whose data (for ``asset_id``, when given) a fault kept from the connection."""
        out = []
        for delivery in self._withheld.get(connection_id, ()):
            if asset_id is not None and asset_id not in delivery.asset_ids:
                continue
            with contextlib.suppress(KeyError):
                out.append(self.event(delivery.seq))
        return out

    def _append(
        self,
        origin: Origin,
        event_type: str,
        market: str,
        asset_ids: tuple[str, ...],
        timestamp: str,
        raw: bytes,
        target: int | None = None,
    ) -> LoggedEvent:
        event = LoggedEvent(
            seq=self._next_seq,
            origin=origin,
            event_type=event_type,
            market=market,
            asset_ids=asset_ids,
            timestamp=timestamp,
            raw=raw,
            target=target,
        )
        self._next_seq += 1
        self._events.append(event)
        return event

    def _append_message(
        self, message: SimMessage, origin: Origin, target: int | None = None
    ) -> LoggedEvent:
        return self._append(
            origin,
            message.event_type,
            message.market,
            message.asset_ids,
            message.timestamp,
            message.raw,
            target,
        )

    def _record_sent(self, connection_id: int, seqs: tuple[int, ...]) -> None:
        sent = self._sent.get(connection_id)
        if sent is None:
            sent = self._sent[connection_id] = deque(maxlen=self._max)
        sent.extend(seqs)

    def _record_withheld(self, delivery: Delivery) -> None:
        withheld = self._withheld.get(delivery.connection_id)
        if withheld is None:
            withheld = self._withheld[delivery.connection_id] = deque(maxlen=self._max)
        withheld.append(delivery)

    def __repr__(self) -> str:
        withheld = sum(len(d) for d in self._withheld.values())
        return (
            f"GroundTruthLog(events={len(self._events)}, next_seq={self._next_seq}, "
            f"connections={len(self._sent)}, withheld={withheld})"
        )
