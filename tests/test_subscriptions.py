"""SubscriptionSet: replay, live add/remove, confirmation by first event, overdue, redrive."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from polyfeed.core.subscriptions import SubscriptionSet, SubscriptionStats, chunk
from polyfeed.errors import ConfigError


def test_initial_ids_are_deduplicated_and_kept_in_order() -> None:
    subs = SubscriptionSet(["b", "a", "b", "c"])
    assert subs.ordered() == ["b", "a", "c"]
    assert subs.desired == {"a", "b", "c"}
    assert subs.confirmed == frozenset()
    assert subs.pending == {"a", "b", "c"}
    assert len(subs) == 3
    assert "a" in subs
    assert "z" not in subs
    assert not subs.connected


def test_replay_after_reconnect_lists_every_desired_asset_exactly_once() -> None:
    subs = SubscriptionSet(["a", "b"])
    assert subs.on_connected(0.0) == ["a", "b"]
    assert subs.confirm("a", 1.0)
    subs.add(["c", "a"], 2.0)
    subs.remove(["b"])
    subs.on_disconnected()
    subs.add(["d", "c", "d"], None)
    subs.remove(["zz"])
    assert subs.on_connected(10.0) == ["a", "c", "d"]
    assert subs.confirmed == frozenset()
    assert subs.pending == {"a", "c", "d"}
    assert subs.stats == SubscriptionStats(replays=2, confirmations=1, redrives=0)


def test_add_returns_only_newly_desired_ids_deduplicated_in_order() -> None:
    subs = SubscriptionSet(["a"])
    assert subs.add(["c", "a", "b", "c"], None) == ["c", "b"]
    assert subs.add([], None) == []
    assert subs.ordered() == ["a", "c", "b"]


def test_live_add_starts_a_confirmation_clock() -> None:
    subs = SubscriptionSet(["a"], confirm_timeout=30)
    subs.on_connected(0.0)
    assert subs.add(["b"], 10.0) == ["b"]
    assert subs.attempts("b") == 1
    assert subs.overdue(30.0) == ["a"]
    assert subs.overdue(40.0) == ["a", "b"]


def test_add_while_disconnected_starts_no_clock() -> None:
    subs = SubscriptionSet(confirm_timeout=30)
    subs.add(["a"], None)
    subs.add(["b"], 5.0)  # `now` is ignored while disconnected
    assert subs.next_deadline() is None
    assert subs.overdue(1e9) == []
    assert subs.attempts("a") == 0


def test_add_while_connected_needs_now() -> None:
    subs = SubscriptionSet()
    subs.on_connected(0.0)
    with pytest.raises(ConfigError):
        subs.add(["a"], None)
    assert subs.desired == frozenset()


def test_remove_returns_the_ids_actually_removed() -> None:
    subs = SubscriptionSet(["a", "b", "c"])
    subs.on_connected(0.0)
    subs.confirm("a", 1.0)
    assert subs.remove(["a", "x", "b", "a"]) == ["a", "b"]
    assert subs.desired == {"c"}
    assert subs.confirmed == frozenset()
    assert not subs.confirm("a", 2.0)
    assert subs.overdue(1e9) == ["c"]


def test_confirmation_by_first_event() -> None:
    subs = SubscriptionSet(["a", "b"])
    assert not subs.confirm("a", 0.0)  # not connected: nothing to confirm
    subs.on_connected(0.0)
    assert subs.confirm("a", 1.0)
    assert not subs.confirm("a", 2.0)  # only the first event confirms
    assert not subs.confirm("x", 2.0)  # not desired
    assert subs.confirmed == {"a"}
    assert subs.pending == {"b"}
    assert subs.attempts("a") == 0
    assert subs.stats.confirmations == 1


def test_disconnect_drops_confirmations_and_clocks() -> None:
    subs = SubscriptionSet(["a", "b"])
    subs.on_connected(0.0)
    subs.confirm("a", 1.0)
    subs.on_disconnected()
    assert not subs.connected
    assert subs.confirmed == frozenset()
    assert subs.pending == {"a", "b"}
    assert subs.next_deadline() is None
    assert subs.overdue(1e9) == []


def test_overdue_is_exact() -> None:
    subs = SubscriptionSet(["a", "b"], confirm_timeout=30)
    subs.on_connected(100.0)
    assert subs.next_deadline() == 130.0
    assert subs.overdue(129.999) == []
    assert subs.overdue(130.0) == ["a", "b"]
    subs.confirm("b", 131.0)
    assert subs.overdue(131.0) == ["a"]


def test_overdue_lists_oldest_first_and_next_deadline_follows_the_oldest() -> None:
    subs = SubscriptionSet(["a"], confirm_timeout=10)
    subs.on_connected(0.0)
    subs.add(["b"], 3.0)
    subs.add(["c"], 6.0)
    assert subs.overdue(13.0) == ["a", "b"]
    subs.confirm("a", 13.0)
    assert subs.next_deadline() == 13.0
    subs.confirm("b", 13.0)
    assert subs.next_deadline() == 16.0
    subs.confirm("c", 13.0)
    assert subs.next_deadline() is None


def test_redrive_restarts_clocks_and_counts_attempts() -> None:
    subs = SubscriptionSet(["a", "b", "c"], confirm_timeout=30)
    subs.on_connected(0.0)
    subs.confirm("c", 1.0)
    assert subs.overdue(30.0) == ["a", "b"]
    subs.redriven(["a", "c", "x"], 30.0)  # c is confirmed, x not desired: ignored
    assert subs.attempts("a") == 2
    assert subs.attempts("c") == 0
    assert subs.overdue(30.0) == ["b"]
    assert subs.next_deadline() == 30.0
    subs.redriven(["b"], 31.0)
    assert subs.next_deadline() == 60.0
    assert subs.overdue(60.0) == ["a"]
    assert subs.overdue(61.0) == ["a", "b"]
    subs.redriven(["a"], 61.0)
    assert subs.attempts("a") == 3
    assert subs.stats == SubscriptionStats(replays=1, confirmations=1, redrives=3)
    assert subs.confirm("a", 62.0)


def test_reconnect_resets_attempts() -> None:
    subs = SubscriptionSet(["a"], confirm_timeout=5)
    subs.on_connected(0.0)
    subs.redriven(["a"], 5.0)
    subs.on_disconnected()
    subs.on_connected(20.0)
    assert subs.attempts("a") == 1
    assert subs.next_deadline() == 25.0


def test_desired_is_cached_until_changed() -> None:
    subs = SubscriptionSet(["a"])
    first = subs.desired
    assert subs.desired is first
    subs.add(["b"], None)
    assert subs.desired == {"a", "b"}
    cached = subs.desired
    subs.remove(["zz"])
    assert subs.desired is cached
    subs.remove(["a"])
    assert subs.desired == {"b"}


def test_confirm_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        SubscriptionSet(confirm_timeout=0)


def test_repr_shows_counts_and_ids_only_when_few() -> None:
    subs = SubscriptionSet(["a", "b"])
    subs.on_connected(0.0)
    subs.confirm("a", 1.0)
    assert repr(subs) == (
        "SubscriptionSet(desired=['a', 'b'], confirmed=1, pending=1, connected=True, redrives=0)"
    )
    many = SubscriptionSet(str(i) for i in range(1000))
    assert repr(many) == (
        "SubscriptionSet(desired=1000, confirmed=0, pending=1000, connected=False, redrives=0)"
    )


def test_chunk() -> None:
    assert chunk(["a", "b", "c", "d", "e"], 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert chunk(["a", "b"], 200) == [["a", "b"]]
    assert chunk([], 3) == []
    with pytest.raises(ConfigError):
        chunk(["a"], 0)


# ---------------------------------------------------------------- model-based

ASSETS = st.sampled_from([f"asset-{i}" for i in range(8)])
ID_LISTS = st.lists(ASSETS, max_size=5)


class SubscriptionMachine(RuleBasedStateMachine):
    """Random add/remove/connect/disconnect/confirm/redrive/time steps against a plain model."""

    @initialize(ids=ID_LISTS)
    def start(self, ids: list[str]) -> None:
        self.subs = SubscriptionSet(ids, confirm_timeout=5.0)
        self.desired = list(dict.fromkeys(ids))
        self.confirmed: set[str] = set()
        self.requested: dict[str, float] = {}
        self.connected = False
        self.now = 0.0

    @rule(dt=st.sampled_from([0.0, 1.0, 2.0, 5.0]) | st.floats(0, 10))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(ids=ID_LISTS, live=st.booleans())
    def add(self, ids: list[str], live: bool) -> None:
        expected = [a for a in dict.fromkeys(ids) if a not in self.desired]
        # `now` is required while connected, ignored (may be None) while disconnected.
        now = self.now if live or self.connected else None
        assert self.subs.add(ids, now) == expected
        self.desired += expected
        if self.connected:
            self.requested.update(dict.fromkeys(expected, self.now))

    @rule(ids=ID_LISTS)
    def remove(self, ids: list[str]) -> None:
        expected = [a for a in dict.fromkeys(ids) if a in self.desired]
        assert self.subs.remove(ids) == expected
        self.desired = [a for a in self.desired if a not in expected]
        self.confirmed -= set(expected)
        for asset in expected:
            self.requested.pop(asset, None)

    @rule(disconnect_first=st.booleans())
    def connect(self, disconnect_first: bool) -> None:
        if disconnect_first:
            self.subs.on_disconnected()
        replay = self.subs.on_connected(self.now)
        assert replay == self.desired
        assert len(replay) == len(set(replay))
        self.connected = True
        self.confirmed = set()
        self.requested = dict.fromkeys(self.desired, self.now)

    @rule()
    def disconnect(self) -> None:
        self.subs.on_disconnected()
        self.connected = False
        self.confirmed = set()
        self.requested = {}

    @rule(asset=ASSETS)
    def confirm(self, asset: str) -> None:
        newly = self.subs.confirm(asset, self.now)
        assert newly == (self.connected and asset in self.desired and asset not in self.confirmed)
        if newly:
            self.requested.pop(asset, None)
            self.confirmed.add(asset)

    @precondition(lambda self: self.connected)
    @rule()
    def redrive_overdue(self) -> None:
        overdue = self.subs.overdue(self.now)
        assert set(overdue) == {a for a, t in self.requested.items() if t + 5.0 <= self.now}
        self.subs.redriven(overdue, self.now)
        for asset in overdue:
            self.requested[asset] = self.now
        assert self.subs.overdue(self.now) == []

    @rule(ids=ID_LISTS)
    def redrive_some(self, ids: list[str]) -> None:
        """The watchdog's silent-asset verdict redrives pending assets before they are overdue."""
        self.subs.redriven(ids, self.now)
        for asset in ids:
            if self.connected and asset in self.desired and asset not in self.confirmed:
                self.requested[asset] = self.now

    @invariant()
    def sets_agree_with_the_model(self) -> None:
        subs = self.subs
        assert subs.desired == set(self.desired)
        assert subs.ordered() == self.desired
        assert subs.confirmed == self.confirmed
        assert subs.confirmed <= subs.desired
        assert subs.pending == subs.desired - subs.confirmed
        assert subs.connected == self.connected
        assert set(self.requested) == (subs.pending if self.connected else set())
        if not self.connected:
            assert subs.confirmed == frozenset()
            assert subs.next_deadline() is None

    @invariant()
    def deadline_is_the_oldest_request(self) -> None:
        expected = min(self.requested.values(), default=None)
        deadline = self.subs.next_deadline()
        if expected is None:
            assert deadline is None
        else:
            assert deadline == expected + 5.0
            assert self.subs.overdue(deadline)
            assert not self.subs.overdue(deadline - 1e-6)


TestSubscriptionMachine = SubscriptionMachine.TestCase
TestSubscriptionMachine.settings = settings(max_examples=200, stateful_step_count=40)


def test_stop_waiting_keeps_the_asset_pending_without_a_deadline() -> None:
    subs = SubscriptionSet(["a", "b"], confirm_timeout=10.0)
    subs.on_connected(0.0)
    assert subs.overdue(10.0) == ["a", "b"]
    subs.stop_waiting(["b"])
    assert subs.overdue(10.0) == ["a"]
    assert subs.pending == frozenset({"a", "b"})
    subs.confirm("a", 11.0)
    assert subs.next_deadline() is None
    assert subs.on_connected(20.0) == ["a", "b"]
    assert subs.overdue(30.0) == ["a", "b"]
