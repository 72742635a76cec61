"""AssetLiveness: a silent asset is checked, a quiet market left alone, a dead one redriven,
then its connection replaced; any sequence keeps the invariants."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from polyfeed.core.liveness import AssetLiveness, book_moved
from polyfeed.errors import ConfigError

ASSET = st.sampled_from(["a", "b", "c", "d"])


class LivenessMachine(RuleBasedStateMachine):
    """A model: the last event time per asset, and which assets are being checked."""

    def __init__(self) -> None:
        super().__init__()
        self.timeout = 1.0
        self.live = AssetLiveness(self.timeout, retries=2)
        self.now = 0.0
        self.heard: dict[str, float] = {}
        self.checking: set[str] = set()
        self.redrives: dict[str, int] = {}
        self.seen: set[str] = set()

    @rule(assets=st.lists(ASSET, max_size=3))
    def track(self, assets: list[str]) -> None:
        self.live.track(assets, self.now)
        for asset in assets:
            self.heard.setdefault(asset, self.now)

    @rule(assets=st.lists(ASSET, max_size=2))
    def untrack(self, assets: list[str]) -> None:
        self.live.untrack(assets)
        for asset in assets:
            self.heard.pop(asset, None)
            self.checking.discard(asset)
            self.redrives.pop(asset, None)
            self.seen.discard(asset)

    @rule(advance=st.floats(0, 2))
    def time_passes(self, advance: float) -> None:
        self.now += advance

    @rule(asset=ASSET, ts=st.integers(0, 5))
    def event(self, asset: str, ts: int) -> None:
        self.live.on_event(asset, self.now, (ts, f"h{ts}"))
        if asset in self.heard:
            self.heard[asset] = self.now
            self.seen.add(asset)
            self.checking.discard(asset)
            self.redrives.pop(asset, None)

    @rule(flowing=st.booleans())
    def tick(self, flowing: bool) -> None:
        due = self.live.due(self.now, flowing=flowing)
        if not flowing:
            assert due == []
        for asset in due:
            # Never one heard from within the timeout, never one already being checked.
            assert asset in self.heard
            assert asset not in self.checking
            assert self.now - self.heard[asset] >= self.timeout - 1e-9
        self.checking.update(due)
        deadline = self.live.next_deadline()
        assert deadline is None or deadline > self.now

    @precondition(lambda self: bool(self.checking))
    @rule(data=st.data(), answer=st.sampled_from(["same", "moved", "failed"]))
    def answer(self, data: st.DataObject, answer: str) -> None:
        asset = data.draw(st.sampled_from(sorted(self.checking)))
        self.checking.discard(asset)
        seen = self.live.seen(asset)
        assert (seen is not None) == (asset in self.seen)
        moved = {"same": False, "moved": True, "failed": None}[answer]
        action = self.live.checked(asset, self.now, moved)
        if answer == "same":
            assert action == "left_alone"  # a quiet market is never flagged
            return
        if answer == "failed":
            assert action == "inconclusive"
            return
        count = self.redrives.get(asset, 0) + 1
        if count > 2:
            assert action == "replace"
            self.redrives.pop(asset, None)
        else:
            assert action == "redrive"
            self.redrives[asset] = count

    @invariant()
    def deadline_is_the_earliest_check(self) -> None:
        deadline = self.live.next_deadline()
        watched = set(self.heard) - self.checking
        if not watched:
            assert deadline is None
        else:
            assert deadline is not None


TestLivenessMachine = LivenessMachine.TestCase


def test_a_quiet_market_is_left_alone_and_a_dead_subscription_redriven_then_replaced() -> None:
    live = AssetLiveness(10.0, retries=1)
    live.track(["quiet", "dead"], 0.0)
    live.on_event("quiet", 1.0, (1000, "q"))
    live.on_event("dead", 1.0, (1000, "d"))
    assert live.due(10.5, flowing=True) == []
    assert live.due(11.0, flowing=True) == ["quiet", "dead"]
    assert live.silent_for("dead", 11.0) == 10.0
    assert live.checked("quiet", 11.2, moved=False) == "left_alone"
    assert live.checked("dead", 11.2, moved=False) == "left_alone"
    assert live.due(21.2, flowing=True) == ["quiet", "dead"]
    assert live.checked("dead", 21.3, moved=True) == "redrive"
    assert live.attempts("dead") == 1
    assert live.checked("quiet", 21.3, moved=None) == "inconclusive"
    assert live.due(31.3, flowing=True) == ["dead", "quiet"]
    assert live.checked("dead", 31.3, moved=True) == "replace"
    assert live.attempts("dead") == 0


def test_an_event_clears_the_redrives_and_a_stalled_connection_postpones() -> None:
    live = AssetLiveness(1.0, retries=3)
    live.track(["a"], 0.0)
    assert live.due(1.0, flowing=False) == []
    assert live.next_deadline() == 2.0
    assert live.due(2.0, flowing=True) == ["a"]
    assert live.checked("a", 2.0, moved=True) == "redrive"
    live.on_event("a", 2.5)
    assert live.attempts("a") == 0
    assert live.checked("a", 2.6, moved=True) == "left_alone"  # not checking any more
    live.reset(3.0)
    assert live.next_deadline() == 4.0


def test_book_moved_needs_a_later_timestamp_and_another_hash() -> None:
    assert book_moved(None, (1, "h"))
    assert book_moved((1, "h"), (2, "g"))
    assert not book_moved((1, "h"), (2, "h"))
    assert not book_moved((2, "h"), (2, "g"))
    assert not book_moved((3, "h"), (2, "g"))


def test_invalid_settings() -> None:
    with pytest.raises(ConfigError):
        AssetLiveness(0, retries=1)
    with pytest.raises(ConfigError):
        AssetLiveness(1, retries=-1)
