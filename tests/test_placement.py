"""Placement, compaction and sharding: invariants under any sequence of operations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from polyfeed.core.messages import LastTradePrice, NewMarket, PriceChange, PriceChangeEntry
from polyfeed.core.placement import Placement, Shard, carried, parse_shard, shard_of
from polyfeed.errors import ConfigError

ASSETS = st.lists(st.integers(0, 60).map(lambda n: f"a{n}"), max_size=25)


class PlacementMachine(RuleBasedStateMachine):
    """Every desired asset on exactly one slot, none over capacity, whatever happens."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity = 4
        self.placement = Placement(self.capacity)
        self.desired: set[str] = set()
        self.slots_seen: set[int] = set()

    @rule(assets=ASSETS)
    def add(self, assets: list[str]) -> None:
        before = self.placement.slots
        with_room = [s for s, held in before.items() if len(held) < self.capacity]
        placed = self.placement.add(assets)
        new = set(assets) - self.desired
        assert sorted(a for got in placed.values() for a in got) == sorted(new)
        opened = [s for s in placed if s not in before]
        if opened:
            # A new connection only once every open one is full.
            assert all(len(self.placement.assets_of(s)) == self.capacity for s in with_room)
            assert not self.slots_seen & set(opened), "slot ids are never reused"
        self.slots_seen |= set(placed)
        self.desired |= new

    @rule(assets=ASSETS)
    def remove(self, assets: list[str]) -> None:
        removed = self.placement.remove(assets)
        gone = set(assets) & self.desired
        assert sorted(a for got in removed.values() for a in got) == sorted(gone)
        self.desired -= gone
        for slot in removed:
            assert slot not in self.placement.slots or self.placement.assets_of(slot)

    @rule(sparse=st.sampled_from([0.0, 0.25, 0.5, 1.0]))
    def compact(self, sparse: float) -> None:
        before = self.placement.slots
        moves = self.placement.compaction(sparse)
        after = self.placement.slots
        assert set(after) <= set(before)
        for move in moves:
            assert move.source in before and move.source not in after
            assert move.target in after
            assert set(move.assets) <= before[move.source]
        if moves:
            assert len(after) < len(before)

    @invariant()
    def exactly_once_within_capacity(self) -> None:
        slots = self.placement.slots
        union: list[str] = [a for held in slots.values() for a in held]
        assert len(union) == len(set(union))
        assert set(union) == self.desired
        assert all(0 < len(held) <= self.capacity for held in slots.values())
        for slot, held in slots.items():
            for asset in held:
                assert self.placement.slot_of(asset) == slot


TestPlacementMachine = PlacementMachine.TestCase


def test_assets_spread_at_most_capacity_per_slot() -> None:
    placement = Placement(200)
    placed = placement.add(f"t{n}" for n in range(1000))
    assert [len(v) for v in placed.values()] == [200] * 5


def test_compaction_empties_the_sparsest_slot_into_the_others() -> None:
    placement = Placement(4)
    placement.add(f"t{n}" for n in range(12))
    placement.remove(["t0", "t1", "t4", "t5", "t6"])
    moves = placement.compaction(sparse=0.75)
    assert [(m.source, m.target) for m in moves] == [(2, 1)]
    assert placement.slots == {
        1: frozenset({"t2", "t3", "t7"}),
        3: frozenset({"t8", "t9", "t10", "t11"}),
    }


def test_compaction_leaves_well_filled_slots_alone() -> None:
    placement = Placement(4)
    placement.add(f"t{n}" for n in range(8))
    placement.remove(["t0", "t4"])
    assert placement.compaction(sparse=0.5) == []
    assert len(placement.slots) == 2


@given(st.lists(st.text(min_size=1, max_size=20), unique=True, max_size=200), st.integers(1, 9))
def test_shards_cover_the_universe_exactly_once(tokens: list[str], count: int) -> None:
    covered = [Shard(i, count).select(tokens) for i in range(count)]
    flat = [t for part in covered for t in part]
    assert sorted(flat) == sorted(tokens)
    for index, part in enumerate(covered):
        assert all(shard_of(t, count) == index for t in part)


def test_shard_of_is_stable_across_processes() -> None:
    # Pinned values: blake2b, never the per-process salted hash().
    assert [shard_of(f"{n}", 7) for n in range(8)] == [shard_of(f"{n}", 7) for n in range(8)]
    assert shard_of("0", 1) == 0
    assert Shard(1, 2).keeps("1") == (shard_of("1", 2) == 1)


def test_parse_shard() -> None:
    assert parse_shard("1/4") == Shard(1, 4)
    assert str(parse_shard("0/2")) == "0/2"
    for bad in ("4/4", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


_ASSETS = ["a", "b", "c", "d"]


def _entry(asset: str, size: str) -> PriceChangeEntry:
    return PriceChangeEntry(asset_id=asset, price="0.5", size=size, side="BUY", hash="h")


_EVENTS = st.lists(
    st.one_of(
        st.builds(
            lambda entries, ts: PriceChange(market="m", timestamp=ts, price_changes=entries),
            st.lists(
                st.builds(_entry, st.sampled_from(_ASSETS), st.integers(1, 9).map(str)),
                min_size=1,
                max_size=3,
            ),
            st.integers(1, 10**6),
        ),
        st.builds(
            lambda asset: LastTradePrice(
                market="m", asset_id=asset, price="0.5", side="BUY", size="1", timestamp=1
            ),
            st.sampled_from(_ASSETS),
        ),
        st.just(NewMarket(id="1", question="q", market="m", slug="s", timestamp=1)),
    ),
    max_size=12,
)


@given(events=_EVENTS, owner=st.lists(st.integers(0, 2), min_size=4, max_size=4))
def test_carried_gives_each_entry_to_the_slot_of_its_asset_once(
    events: list[object], owner: list[int]
) -> None:
    slots = {
        slot: frozenset(a for a, o in zip(_ASSETS, owner, strict=True) if o == slot)
        for slot in range(3)
    }

    def entries(items: object) -> list[tuple[int, str, str]]:
        return [
            (e.timestamp, x.asset_id, x.size)
            for e in items  # type: ignore[attr-defined]
            if isinstance(e, PriceChange)
            for x in e.price_changes
        ]

    kept = {slot: carried(events, assets) for slot, assets in slots.items()}
    # Every entry on the slot of its asset, once; nothing else anywhere.
    assert sorted(x for slot in kept.values() for x in entries(slot)) == sorted(entries(events))
    for slot, items in kept.items():
        assert all(asset in slots[slot] for _, asset, _ in entries(items))
        # Per-asset events only on their slot; the rest on every slot, in order.
        assert [e for e in items if not isinstance(e, PriceChange | LastTradePrice)] == [
            e for e in events if not isinstance(e, PriceChange | LastTradePrice)
        ]
        assert all(e.asset_id in slots[slot] for e in items if isinstance(e, LastTradePrice))
        assert not any(isinstance(e, PriceChange) and not e.price_changes for e in items)
    assert carried(events, frozenset(_ASSETS)) is events  # nothing to drop: no copy
