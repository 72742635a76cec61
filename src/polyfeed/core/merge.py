"""Exact merge of redundant legs (A/B feed arbitration), sans-I/O: ``now`` is an argument.

With redundancy every asset is carried by two (or more) connections, the *legs*. Polymarket's
market messages carry no sequence number, so a message is recognised on both legs by its
identity (:func:`message_key`): its market, its type, its timestamp and a digest of its whole
content (which holds the asset ids, the book hash or the per-entry ``price_change`` hashes, the
trade's price/size/side). Content must be part of it: the messages of one multi-message run share
timestamp and hash and differ only in their entries.

Positions, not sets: per market (the *scope*; order per market implies order per asset) the
merger numbers the messages it emitted and remembers the last ``window`` of them. Each leg has a
pointer: the position of the last emitted message it delivered. A message from a leg is

- a duplicate when the same key was emitted at a position after the leg's pointer (the first
  such one: two identical messages in a row are two messages, matched in turn);
- emitted at once when the leg is at the head (its pointer is the newest position) or when no
  other leg is in step on the scope;
- otherwise held: the leg reconnected (:meth:`LegMerger.reset`) or shows a hole, and what it
  says first may be its own (the snapshot a new socket gets) or may run ahead of a slower leg.
  A held message is dropped when the leg's next duplicate shows where it stands (it was the
  leg's own), released in the leg's order right after its match when the leader delivers it
  later, and released in order when no other leg is in step any more (the leader reconnected
  too, or was removed), or when more than ``hold`` are held (the leader is not coming).

So while one leg is live and in step, a leg that lost a stretch never reorders or duplicates
what the consumer sees, and the consumer never waits for a slow leg. Memory per scope: at most
``window`` keys plus ``hold`` held messages per leg.

:class:`LegOutages` tracks which legs are up: the stream is ``degraded`` while one is down and
owes a ``Gap`` only for the time every leg was down.

Key digests are 128-bit BLAKE2b of the canonical msgspec encoding: two distinct messages share
a key only if they are identical in every field (which the matching counts as two messages) or
by a 2**-64 birthday chance within one scope's window.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from polyfeed.core.gaps import Outage
from polyfeed.core.messages import MarketEvent
from polyfeed.errors import ConfigError

__all__ = [
    "LegMerger",
    "LegOutages",
    "LegStats",
    "MessageKey",
    "RedundancyChange",
    "RedundancyState",
    "message_key",
]

MessageKey = tuple[str, str, int, bytes]
"""(market, event type, timestamp, content digest) of one market message."""

_encoder = msgspec.json.Encoder()


def message_key(event: MarketEvent) -> MessageKey:
    """The identity of a market message, equal on every leg that carries it."""
    digest = hashlib.blake2b(_encoder.encode(event), digest_size=16).digest()
    return (event.market, type(event).__name__, event.timestamp, digest)


@dataclass(slots=True)
class LegStats:
    """One leg's part in the merge: how often it was first and by how much."""

    delivered: int = 0
    first: int = 0
    duplicates: int = 0
    held: int = 0
    dropped_own: int = 0
    lead_total: float = 0.0
    lead_max: float = 0.0
    resets: int = 0

    @property
    def lead_mean(self) -> float:
        """Mean seconds this leg was ahead when it was first and the other leg caught up."""
        return self.lead_total / self.first if self.first else 0.0


@dataclass(slots=True)
class _Scope:
    """One market's emitted window and the legs' positions in it."""

    head: int = -1
    keys: deque[tuple[int, MessageKey, float, Hashable]] = field(default_factory=deque)
    # Usually one position per key; a list (not a deque: ~600 bytes each) keeps a full window
    # of a busy market near 100 kB.
    positions: dict[MessageKey, list[int]] = field(default_factory=dict)
    pointers: dict[Hashable, int] = field(default_factory=dict)
    in_step: set[Hashable] = field(default_factory=set)
    held: dict[Hashable, list[tuple[MessageKey, MarketEvent]]] = field(default_factory=dict)


class LegMerger:
    """Merges the market messages of several legs into one exact, ordered stream.

    :meth:`offer` takes one message of one leg and returns what to hand to the consumer now
    (nothing for a duplicate or a held message; possibly several when held ones are released).
    """

    __slots__ = ("_legs", "_reset", "_scopes", "emitted", "hold", "stats", "window")

    def __init__(self, legs: Iterable[Hashable], *, window: int = 512, hold: int = 256) -> None:
        if window < 1:
            raise ConfigError(f"merge window must be >= 1, got {window!r}")
        if hold < 0:
            raise ConfigError(f"merge hold must be >= 0, got {hold!r}")
        self.window = window
        self.hold = hold
        self._legs: list[Hashable] = list(legs)
        if len(self._legs) < 2 or len(set(self._legs)) != len(self._legs):
            raise ConfigError(f"a merge needs two or more distinct legs, got {self._legs!r}")
        self._scopes: dict[str, _Scope] = {}
        # Legs that ever reconnected start out of step on markets first seen afterwards: what
        # they say first there may be their own snapshot.
        self._reset: set[Hashable] = set()
        self.stats: dict[Hashable, LegStats] = {leg: LegStats() for leg in self._legs}
        self.emitted = 0

    def __repr__(self) -> str:
        held = sum(len(h) for s in self._scopes.values() for h in s.held.values())
        return (
            f"<LegMerger legs={len(self._legs)} scopes={len(self._scopes)} "
            f"emitted={self.emitted} held={held} window={self.window}>"
        )

    @property
    def legs(self) -> list[Hashable]:
        """The legs, in the order given."""
        return list(self._legs)

    def held_count(self) -> int:
        """Messages held back in all scopes and legs."""
        return sum(len(h) for s in self._scopes.values() for h in s.held.values())

    def offer(self, leg: Hashable, event: MarketEvent, now: float) -> list[MarketEvent]:
        """One message of ``leg`` arrived at ``now``; returns the messages to emit now."""
        stats = self.stats[leg]
        stats.delivered += 1
        key = message_key(event)
        scope = self._scopes.get(key[0])
        if scope is None:
            scope = self._scopes[key[0]] = _Scope(in_step=set(self._legs) - self._reset)
        pointer = scope.pointers.get(leg, -1)
        for position in scope.positions.get(key, ()):
            if position > pointer:
                self._duplicate(scope, leg, position, now)
                return []
        if leg in scope.in_step and pointer == scope.head:
            return self._emit(scope, leg, key, event, now)
        if not (scope.in_step - {leg}):
            scope.in_step.add(leg)
            return self._emit(scope, leg, key, event, now)
        # Behind the head with a message nobody emitted: our own, or ahead of a slower leader.
        scope.in_step.discard(leg)
        held = scope.held.setdefault(leg, [])
        held.append((key, event))
        stats.held += 1
        if len(held) > self.hold:
            return self._release(scope, leg, now)
        return []

    def reset(self, leg: Hashable, now: float) -> list[MarketEvent]:
        """``leg`` lost its socket at ``now`` (what it sends next follows a hole): it is out of
        step on every scope. Returns what other legs held that no leg in step can confirm any
        more (they lead from here)."""
        self.stats[leg].resets += 1
        self._reset.add(leg)
        out: list[MarketEvent] = []
        for scope in self._scopes.values():
            scope.in_step.discard(leg)
            scope.held.pop(leg, None)
            if not scope.in_step:
                out.extend(self._release_all(scope, now))
        return out

    def remove(self, leg: Hashable, now: float) -> list[MarketEvent]:
        """``leg`` is gone for good; like :meth:`reset`, and it no longer counts."""
        out = self.reset(leg, now)
        self._legs.remove(leg)
        self._reset.discard(leg)
        for scope in self._scopes.values():
            scope.pointers.pop(leg, None)
        return out

    def add(self, leg: Hashable) -> None:
        """A new leg joins, out of step until its first duplicate."""
        if leg in self._legs:
            raise ConfigError(f"leg {leg!r} is already merged")
        self._legs.append(leg)
        self._reset.add(leg)
        self.stats.setdefault(leg, LegStats())

    def forget(self, market: str) -> None:
        """Drop one scope's memory (its assets were unsubscribed)."""
        self._scopes.pop(market, None)

    # ------------------------------------------------------------------ internals

    def _duplicate(self, scope: _Scope, leg: Hashable, position: int, now: float) -> None:
        stats = self.stats[leg]
        stats.duplicates += 1
        scope.pointers[leg] = position
        scope.in_step.add(leg)
        held = scope.held.pop(leg, None)
        if held:
            # Held before a duplicate: the leg's own messages (a snapshot after reconnecting).
            stats.dropped_own += len(held)
        first = scope.keys[position - scope.keys[0][0]]
        lead = now - first[2]
        first_stats = self.stats.get(first[3])
        if first_stats is not None and first[3] != leg and lead > 0:
            first_stats.lead_total += lead
            first_stats.lead_max = max(first_stats.lead_max, lead)

    def _emit(
        self, scope: _Scope, leg: Hashable, key: MessageKey, event: MarketEvent, now: float
    ) -> list[MarketEvent]:
        out = [event]
        self._append(scope, leg, key, now)
        self._match_held(scope, leg, key, now, out)
        return out

    def _append(self, scope: _Scope, leg: Hashable, key: MessageKey, now: float) -> None:
        scope.head += 1
        position = scope.head
        scope.keys.append((position, key, now, leg))
        scope.positions.setdefault(key, []).append(position)
        scope.pointers[leg] = position
        self.stats[leg].first += 1
        self.emitted += 1
        if len(scope.keys) > self.window:
            _, old, _, _ = scope.keys.popleft()
            positions = scope.positions[old]
            del positions[0]
            if not positions:
                del scope.positions[old]

    def _match_held(
        self, scope: _Scope, leader: Hashable, key: MessageKey, now: float, out: list[MarketEvent]
    ) -> None:
        """The leader emitted ``key``: a leg holding it is in step there; what it held before
        was its own, what it held after follows in its order."""
        for leg, held in list(scope.held.items()):
            if leg == leader:
                continue
            index = next((i for i, (k, _) in enumerate(held) if k == key), None)
            if index is None:
                continue
            del scope.held[leg]
            stats = self.stats[leg]
            stats.dropped_own += index
            stats.duplicates += 1
            scope.pointers[leg] = scope.head
            scope.in_step.add(leg)
            for later_key, later in held[index + 1 :]:
                out.append(later)
                self._append(scope, leg, later_key, now)

    def _release(self, scope: _Scope, leg: Hashable, now: float) -> list[MarketEvent]:
        held = scope.held.pop(leg, [])
        scope.in_step.add(leg)
        out: list[MarketEvent] = []
        for key, event in held:
            out.append(event)
            self._append(scope, leg, key, now)
        return out

    def _release_all(self, scope: _Scope, now: float) -> list[MarketEvent]:
        # No leg is in step: the first leg holding anything leads from here.
        out: list[MarketEvent] = []
        for leg in list(scope.held):
            if scope.in_step:
                break
            out.extend(self._release(scope, leg, now))
        return out


# --------------------------------------------------------------------------- leg outages

RedundancyState = Literal["connecting", "full", "degraded", "down"]


@dataclass(frozen=True, slots=True)
class RedundancyChange:
    """The redundant group changed state. ``outage``: set when leaving ``down``, the time every
    leg was down (the only time a ``Gap`` is owed)."""

    state: RedundancyState
    legs_up: int
    legs: int
    outage: Outage | None = None


class LegOutages:
    """Which legs of one redundant group are up, sans-I/O.

    ``connecting`` until a leg is first up (no gap is owed before: nothing was missed), then
    ``full`` (every leg up), ``degraded`` (some up: no event is lost, the stream runs on one
    leg) or ``down`` (none up: events are missed). Leaving ``down`` reports the outage, from the
    moment the last leg went down to the moment the first came back.
    """

    __slots__ = ("_down_reason", "_down_since", "_legs", "_up", "state")

    def __init__(self, legs: Iterable[Hashable]) -> None:
        self._legs = frozenset(legs)
        if len(self._legs) < 2:
            raise ConfigError("a redundant group needs two or more legs")
        self._up: set[Hashable] = set()
        self._down_since = 0.0
        self._down_reason = ""
        self.state: RedundancyState = "connecting"

    def __repr__(self) -> str:
        return f"<LegOutages {self.state} up={len(self._up)}/{len(self._legs)}>"

    @property
    def up_legs(self) -> frozenset[Hashable]:
        """The legs up now."""
        return frozenset(self._up)

    def up(self, leg: Hashable, now: float) -> RedundancyChange | None:
        """``leg`` delivers again (its first frame) at ``now``; the change, if any."""
        self._check(leg)
        if leg in self._up:
            return None
        self._up.add(leg)
        outage = None
        if self.state == "down":
            outage = Outage(self._down_since, max(now, self._down_since), self._down_reason)
        return self._set("full" if self._up == self._legs else "degraded", outage)

    def down(self, leg: Hashable, now: float, reason: str) -> RedundancyChange | None:
        """``leg`` lost its connection at ``now`` because ``reason``; the change, if any."""
        self._check(leg)
        if leg not in self._up:
            return None
        self._up.discard(leg)
        if self._up:
            return self._set("degraded", None)
        self._down_since = now
        self._down_reason = reason
        return self._set("down", None)

    def _check(self, leg: Hashable) -> None:
        if leg not in self._legs:
            raise ConfigError(f"unknown leg {leg!r}")

    def _set(self, state: RedundancyState, outage: Outage | None) -> RedundancyChange | None:
        if state == self.state and outage is None:
            return None
        self.state = state
        return RedundancyChange(state, len(self._up), len(self._legs), outage)
