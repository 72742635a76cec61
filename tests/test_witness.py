"""SilenceWitness: a silent connection is checked after ``after`` seconds; a moved server book is
stale, proven; a quiet market never is; any sequence keeps the clock's invariants."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from polyfeed.core.witness import SilenceWitness, server_moved
from polyfeed.errors import ConfigError


def test_silence_is_checked_after_the_interval_on_the_most_active_assets() -> None:
    witness = SilenceWitness(2.0, sample=2)
    witness.heard("old", 100, "h1")
    witness.heard("busy", 300, "h2")
    witness.heard("mid", 200, "h3")
    witness.on_data(1.0)
    assert witness.next_deadline() == 3.0
    assert witness.due(2.9, ["old", "busy", "mid", "never"]) == []
    assert witness.due(3.0, ["old", "busy", "mid", "never"]) == ["busy", "mid"]
    assert witness.checking and witness.next_deadline() is None
    assert witness.due(3.5, ["busy"]) == []  # one check out at a time


def test_a_moved_book_is_stale_and_a_quiet_one_is_left_alone() -> None:
    witness = SilenceWitness(1.0)
    witness.heard("a", 100, "h")
    assert witness.due(1.0, ["a"]) == ["a"]
    assert witness.verdict(1.2, {"a": False}) == "quiet"
    assert witness.next_deadline() == 3.2  # a quiet connection is asked less often
    assert witness.due(3.2, ["a"]) == ["a"]
    assert witness.verdict(3.2, {"a": False}) == "quiet"
    assert witness.next_deadline() == 7.2
    witness.on_data(7.0)  # data: the normal clock again
    assert witness.next_deadline() == 8.0
    assert witness.due(8.0, ["a"]) == ["a"]
    assert witness.verdict(8.1, {"a": True}) == "stale"
    assert (witness.checks, witness.stale) == (3, 1)
    assert "stale=1" in repr(witness)


def test_no_answer_is_inconclusive_and_asked_again() -> None:
    witness = SilenceWitness(1.0)
    assert witness.due(1.0, ["a"]) == ["a"]
    assert witness.verdict(1.5, {"a": None}) == "inconclusive"
    assert witness.next_deadline() == 2.5
    assert witness.due(2.5, ["a"]) == ["a"]
    witness.postpone(2.6)
    assert witness.next_deadline() == 3.6


def test_a_new_socket_voids_the_check_in_flight() -> None:
    witness = SilenceWitness(1.0)
    assert witness.due(1.0, ["a"]) == ["a"]
    witness.reset(1.1)
    assert witness.verdict(1.2, {"a": True}) == "inconclusive"
    assert witness.next_deadline() == 2.1
    assert witness.stale == 0


def test_no_assets_means_no_check() -> None:
    witness = SilenceWitness(1.0)
    assert witness.due(1.0, []) == []
    assert witness.next_deadline() == 2.0 and not witness.checking


def test_server_moved_needs_a_later_timestamp_and_another_hash() -> None:
    assert server_moved((100, "h"), (101, "g")) is True
    assert server_moved((100, "h"), (101, "h")) is False
    assert server_moved((100, "h"), (100, "g")) is False
    assert server_moved((100, "h"), (99, "g")) is False
    assert server_moved(None, (101, "g")) is None


def test_heard_and_forget() -> None:
    witness = SilenceWitness(1.0)
    witness.heard("a", 5, "")  # no hash: nothing to compare with later
    assert witness.held("a") is None
    witness.heard("a", 5, "h")
    assert witness.held("a") == (5, "h")
    witness.forget(["a"])
    assert witness.held("a") is None


@pytest.mark.parametrize(("after", "sample"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_bad_settings_are_config_errors(after: float, sample: int) -> None:
    with pytest.raises(ConfigError):
        SilenceWitness(after, sample=sample)


class WitnessMachine(RuleBasedStateMachine):
    """Invariants: a check is due exactly ``after`` after the last data (or the last verdict),
    never earlier, never while one is out; only a moved answer is stale."""

    def __init__(self) -> None:
        super().__init__()
        self.after = 1.0
        self.witness = SilenceWitness(self.after)
        self.now = 0.0
        self.last_data = 0.0
        self.out = False
        self.stale = 0

    @rule(dt=st.floats(0.0, 3.0))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def data(self) -> None:
        self.witness.on_data(self.now)
        self.last_data = self.now

    @rule()
    def check(self) -> None:
        deadline = self.witness.next_deadline()
        asked = self.witness.due(self.now, ["a", "b"])
        if self.out or deadline is None or self.now < deadline:
            assert asked == []
        else:
            # Due only past the deadline, which the invariant keeps >= last data + after.
            assert asked == ["a", "b"]
            assert self.now - self.last_data >= self.after - 1e-9
            self.out = True

    @rule(answer=st.sampled_from([True, False, None]))
    def answer(self, answer: bool | None) -> None:
        verdict = self.witness.verdict(self.now, {"a": answer})
        if not self.out:
            assert verdict == "inconclusive"
            return
        self.out = False
        expected = {True: "stale", False: "quiet", None: "inconclusive"}[answer]
        assert verdict == expected
        self.stale += answer is True

    @rule()
    def reconnect(self) -> None:
        self.witness.reset(self.now)
        self.last_data = self.now
        self.out = False

    @invariant()
    def clock(self) -> None:
        assert self.witness.checking == self.out
        deadline = self.witness.next_deadline()
        if self.out:
            assert deadline is None
        else:
            assert deadline is not None and deadline >= self.last_data + self.after - 1e-9
        assert self.witness.stale == self.stale


TestWitnessMachine = WitnessMachine.TestCase
