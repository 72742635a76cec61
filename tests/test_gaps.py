"""GapTracker: one gap per outage, none before the first live connection, started <= ended."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from polyfeed.core.gaps import GapTracker, Outage


def test_no_gap_before_the_first_live_connection() -> None:
    # Issue 7, defect 7: a refused first handshake used to yield Gap(started=0.0, ...).
    gaps = GapTracker()
    gaps.lost("http_503", None, 1_000.0)
    gaps.lost("connect", None, 1_001.0)
    assert gaps.open_since is None
    assert gaps.first_frame(1_002.0) is None
    assert gaps.outages == 0


def test_one_gap_per_outage_from_the_last_data_to_the_next_first_frame() -> None:
    gaps = GapTracker()
    assert gaps.first_frame(100.0) is None
    gaps.lost("closed_1012", 150.0, 151.0)
    assert gaps.open_since == 150.0
    # More failures inside the same outage change nothing.
    gaps.lost("http_503", None, 152.0)
    gaps.lost("dropped", None, 153.0)
    assert gaps.first_frame(154.0) == Outage(started=150.0, ended=154.0, reason="closed_1012")
    assert gaps.first_frame(155.0) is None, "closed once"
    assert gaps.outages == 1


def test_a_connection_without_data_starts_its_outage_at_its_first_frame() -> None:
    gaps = GapTracker()
    gaps.first_frame(10.0)  # PONG only, say
    gaps.lost("stale_data", None, 70.0)
    assert gaps.first_frame(71.0) == Outage(started=10.0, ended=71.0, reason="stale_data")


def test_wall_clock_stepping_back_never_makes_ended_before_started() -> None:
    gaps = GapTracker()
    gaps.first_frame(100.0)
    gaps.lost("dropped", 120.0, 90.0)  # the wall clock stepped back 31 s
    outage = gaps.first_frame(85.0)
    assert outage is not None
    assert outage.started <= outage.ended


def test_repr_shows_the_state() -> None:
    gaps = GapTracker()
    assert repr(gaps) == "GapTracker(never live, outages=0)"
    gaps.first_frame(1.0)
    assert repr(gaps) == "GapTracker(live since 1.000, outages=0)"
    gaps.lost("dropped", 2.0, 3.0)
    assert repr(gaps) == "GapTracker(open since 2.000 (dropped), outages=0)"


class GapMachine(RuleBasedStateMachine):
    """Connections that open, deliver and end, and attempts that fail, in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.gaps = GapTracker()
        self.now = 1_000.0
        self.socket = False  # a connection is open
        self.live = False  # ... and received its first frame
        self.last_data: float | None = None
        self.first_live: float | None = None
        self.outage_open = False  # the model: a live connection was lost since the last gap
        self.outage_reason: str | None = None
        self.outages: list[Outage] = []

    @rule(dt=st.floats(0.0, 100.0), back=st.floats(0.0, 5.0))
    def time_passes(self, dt: float, back: float) -> None:
        # Mostly forward; a wall clock may also step back a little (NTP).
        self.now += dt - back

    @precondition(lambda self: not self.socket)
    @rule(reason=st.sampled_from(["http_503", "connect", "http_429"]))
    def attempt_fails(self, reason: str) -> None:
        self.gaps.lost(reason, None, self.now)

    @precondition(lambda self: not self.socket)
    @rule()
    def connection_opens(self) -> None:
        self.socket = True
        self.live = False
        self.last_data = None

    @precondition(lambda self: self.socket and not self.live)
    @rule()
    def first_frame(self) -> None:
        self.live = True
        if self.first_live is None:
            self.first_live = self.now
        outage = self.gaps.first_frame(self.now)
        if self.outage_open:
            assert outage is not None
            assert outage.reason == self.outage_reason
            self.outages.append(outage)
            self.outage_open = False
        else:
            assert outage is None

    @precondition(lambda self: self.live)
    @rule()
    def data(self) -> None:
        self.last_data = self.now

    @precondition(lambda self: self.socket)
    @rule(reason=st.sampled_from(["dropped", "closed_1012", "stale_data"]))
    def connection_ends(self, reason: str) -> None:
        self.gaps.lost(reason, self.last_data, self.now)
        if self.live and not self.outage_open:
            self.outage_open = True
            self.outage_reason = reason
        self.socket = False
        self.live = False

    @invariant()
    def one_gap_per_outage_never_before_the_first_connection(self) -> None:
        assert self.gaps.outages == len(self.outages)
        assert (self.gaps.open_since is not None) == self.outage_open
        if self.first_live is None:
            assert not self.outages and self.gaps.open_since is None
        for outage in self.outages:
            assert outage.started <= outage.ended


GapMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestGapMachine = GapMachine.TestCase
