"""Which connection carries which asset, sans-I/O: placement, compaction and sharding.

A pool spreads its assets over connections ("slots") of at most ``capacity`` assets each. The
rules :class:`Placement` keeps, whatever is added, removed or moved:

- every desired asset is on exactly one slot, and no slot holds more than ``capacity``;
- new assets fill the existing slots with room first (oldest slot first), then open new ones:
  a live subscribe never needs a new socket while an open one has room;
- a slot that loses its last asset is reported empty (the pool closes it);
- :meth:`Placement.compaction` plans moves that empty the sparsest slots into the others, only
  when the assets then fit on fewer slots and at least one slot is below the ``sparse`` fill.

A market's two tokens may sit on different slots, and the server sends a ``price_change`` with
both tokens' entries to a socket subscribed to either one: :func:`carried` keeps of a slot's
events only what concerns the assets it carries, so every entry reaches the books and the
consumer once, from its own slot (from two, a stale copy from the slower socket would undo a
newer level).

Sharding splits a universe of token ids over N processes without a coordinator:
:func:`shard_of` is a stable hash (blake2b of the token id, never Python's salted ``hash``), so
every process computes the same answer and shards ``0..N-1`` cover each id exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import msgspec

from polyfeed.core.messages import BestBidAsk, Book, LastTradePrice, PriceChange, TickSizeChange
from polyfeed.errors import ConfigError

__all__ = ["Move", "Placement", "Shard", "carried", "parse_shard", "shard_of"]


class Move(msgspec.Struct, frozen=True):
    """Move ``assets`` from slot ``source`` to slot ``target`` (subscribe there, then drop here)."""

    assets: tuple[str, ...]
    source: int
    target: int


class Placement:
    """Assets by slot and slot by asset; slot ids are never reused."""

    __slots__ = ("_next_slot", "_owner", "_slots", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError(f"capacity must be >= 1, got {capacity!r}")
        self.capacity = capacity
        self._slots: dict[int, set[str]] = {}
        self._owner: dict[str, int] = {}
        self._next_slot = 1

    def __repr__(self) -> str:
        return (
            f"<Placement assets={len(self._owner)} slots={len(self._slots)} "
            f"capacity={self.capacity}>"
        )

    def __len__(self) -> int:
        return len(self._owner)

    def __contains__(self, asset: object) -> bool:
        return asset in self._owner

    @property
    def slots(self) -> dict[int, frozenset[str]]:
        """Each slot's assets (a copy), oldest slot first."""
        return {slot: frozenset(assets) for slot, assets in self._slots.items()}

    def slot_of(self, asset: str) -> int | None:
        """The slot carrying ``asset``, None when it is not placed."""
        return self._owner.get(asset)

    def assets_of(self, slot: int) -> frozenset[str]:
        """The assets of ``slot`` (empty for an unknown or closed slot)."""
        return frozenset(self._slots.get(slot, ()))

    def add(self, assets: Iterable[str]) -> dict[int, list[str]]:
        """Place the new ones among ``assets``; returns the new assets per slot, in order.

        A slot in the result that did not exist before is new (the pool opens a connection).
        """
        placed: dict[int, list[str]] = {}
        room = [slot for slot, held in self._slots.items() if len(held) < self.capacity]
        for asset in dict.fromkeys(assets):
            if asset in self._owner:
                continue
            while room and len(self._slots[room[0]]) >= self.capacity:
                room.pop(0)
            if room:
                slot = room[0]
            else:
                slot = self._new_slot()
                room.append(slot)
            self._slots[slot].add(asset)
            self._owner[asset] = slot
            placed.setdefault(slot, []).append(asset)
        return placed

    def _new_slot(self) -> int:
        slot = self._next_slot
        self._next_slot += 1
        self._slots[slot] = set()
        return slot

    def remove(self, assets: Iterable[str]) -> dict[int, list[str]]:
        """Drop the placed ones among ``assets``; returns the removed assets per slot.

        Slots left empty are dropped too (see :meth:`empty_after`).
        """
        removed: dict[int, list[str]] = {}
        for asset in dict.fromkeys(assets):
            slot = self._owner.pop(asset, None)
            if slot is None:
                continue
            self._slots[slot].discard(asset)
            removed.setdefault(slot, []).append(asset)
        for slot in removed:
            if not self._slots[slot]:
                del self._slots[slot]
        return removed

    def compaction(self, sparse: float) -> list[Move]:
        """Plan (and apply here) moves that empty sparse slots into others with room.

        Nothing moves unless the assets fit on fewer slots than are open and the emptiest slot
        holds fewer than ``sparse * capacity`` assets. Slots are emptied sparsest first, each
        only when all its assets fit on the remaining slots, so a move never half-empties one.
        """
        if not 0 <= sparse <= 1:
            raise ConfigError(f"sparse must be a fraction in [0, 1], got {sparse!r}")
        moves: list[Move] = []
        while True:
            needed = -(-len(self._owner) // self.capacity)
            if len(self._slots) <= needed:
                return moves
            source = min(self._slots, key=lambda s: (len(self._slots[s]), -s))
            if len(self._slots[source]) >= sparse * self.capacity:
                return moves
            pending = sorted(self._slots[source])
            targets = sorted(
                (s for s in self._slots if s != source),
                key=lambda s: (-len(self._slots[s]), s),
            )
            if sum(self.capacity - len(self._slots[s]) for s in targets) < len(pending):
                return moves
            for target in targets:
                free = self.capacity - len(self._slots[target])
                if free <= 0 or not pending:
                    continue
                batch, pending = pending[:free], pending[free:]
                for asset in batch:
                    self._slots[target].add(asset)
                    self._owner[asset] = target
                moves.append(Move(tuple(batch), source, target))
            del self._slots[source]


class Shard(msgspec.Struct, frozen=True):
    """Shard ``index`` of ``count`` (``--shard I/N``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard must be I/N with 0 <= I < N, got {self.index}/{self.count}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def keeps(self, token_id: str) -> bool:
        """Whether ``token_id`` belongs to this shard."""
        return shard_of(token_id, self.count) == self.index

    def select(self, token_ids: Iterable[str]) -> list[str]:
        """The ids of this shard, in the given order."""
        return [token for token in token_ids if self.keeps(token)]


def shard_of(token_id: str, count: int) -> int:
    """The shard ``0..count-1`` of a token id: blake2b, the same in every process and machine."""
    if count < 1:
        raise ConfigError(f"shard count must be >= 1, got {count!r}")
    digest = hashlib.blake2b(token_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(text: str) -> Shard:
    """``"I/N"`` -> :class:`Shard` (raises ConfigError on anything else)."""
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ConfigError(f"shard must look like I/N (for example 0/4), got {text!r}")
    return Shard(int(index), int(count))


_PER_ASSET = (Book, LastTradePrice, TickSizeChange, BestBidAsk)


def carried(events: Sequence[object], assets: frozenset[str]) -> Sequence[object]:
    """``events`` without what concerns assets outside ``assets`` (one slot's): a ``price_change``
    keeps only those entries (dropped when none is left), a per-asset event of another asset is
    dropped; everything else passes. ``events`` itself when nothing had to go."""
    kept: list[object] | None = None
    for index, event in enumerate(events):
        cls = type(event)
        if cls is PriceChange:
            assert isinstance(event, PriceChange)
            for entry in event.price_changes:
                if entry.asset_id not in assets:
                    break
            else:
                if kept is not None:
                    kept.append(event)
                continue
            if kept is None:
                kept = list(events[:index])
            mine = tuple(entry for entry in event.price_changes if entry.asset_id in assets)
            if mine:
                kept.append(msgspec.structs.replace(event, price_changes=mine))
        elif isinstance(event, _PER_ASSET) and event.asset_id not in assets:
            if kept is None:
                kept = list(events[:index])
        elif kept is not None:
            kept.append(event)
    return events if kept is None else kept
