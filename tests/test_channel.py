"""Every socket's session satisfies the ChannelSession protocol the runner and supervisor use."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from polyfeed.aio.clock import LoopClock
from polyfeed.aio.event_queue import EventQueue
from polyfeed.aio.supervisor import Supervisor
from polyfeed.config import StreamConfig
from polyfeed.core.backoff import Backoff
from polyfeed.core.channel import ChannelSession, SessionBase
from polyfeed.core.codec import FrameDecoder
from polyfeed.core.polybolt import PolyboltConfig, PolyboltSession, PolyboltSubscription
from polyfeed.core.rtds import RtdsConfig, RtdsSession, RtdsSubscription
from polyfeed.core.rtds_messages import RtdsDecoder
from polyfeed.core.session import Session, SessionState
from polyfeed.core.sports import SportsConfig, SportsDecoder, SportsSession
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.errors import ConfigError, DataTimeoutError, InvalidStateError
from polyfeed.metrics import ConnectionMetrics


def test_sessions_are_channel_sessions() -> None:
    # mypy checks the assignments structurally; the runtime check is that they construct.
    sessions: list[ChannelSession] = [
        Session("market", SubscriptionSet(["a"]), StreamConfig(), FrameDecoder("market")),
        RtdsSession(SubscriptionSet(), {}, RtdsConfig(), RtdsDecoder()),
        SportsSession(SportsConfig(), SportsDecoder()),
        PolyboltSession(SubscriptionSet(), {}, PolyboltConfig()),
    ]
    for session in sessions:
        assert session.next_deadline() is None
        assert session.failure is None


async def test_a_channel_without_a_session_factory_is_refused() -> None:
    cfg = StreamConfig()
    clock = LoopClock()

    def build(channel: str) -> Supervisor:
        return Supervisor(
            channel,
            "ws://127.0.0.1:1/x",
            SubscriptionSet(),
            cfg,
            clock,
            Backoff(cfg.backoff, random.Random(1).random),
            EventQueue(cfg.queue, clock.wall),
            ConnectionMetrics(clock.now()),
        )

    assert build("market").decoder is not None
    with pytest.raises(ConfigError, match="session_factory"):
        build("rtds")


# ---------------------------------------------------------------- stateful: every new session


RTDS_SPECS = {s.key: s for s in (RtdsSubscription("crypto_prices"), RtdsSubscription("comments"))}
PB_SPECS = {s.key: s for s in (PolyboltSubscription("price.crypto"),)}

FRAMES = {
    "rtds": [
        "PONG",
        '{"topic":"crypto_prices","type":"update","payload":{"symbol":"b","value":1}}',
        '{"topic":"comments","type":"comment_created","payload":{}}',
        '{"message":"invalid"}',
        "junk",
    ],
    "sports": ["ping", "PING", '{"slug":"a"}', "junk"],
    "polybolt": ['{"op":"pong"}', '{"channel":"price.crypto","seq":1,"payload":{}}', "junk"],
}


def rtds() -> ChannelSession:
    return RtdsSession(
        SubscriptionSet(RTDS_SPECS),
        RTDS_SPECS,
        RtdsConfig(ping_interval=1.0, pong_timeout=3.0, data_timeout=4.0, topic_timeout=2.0),
        RtdsDecoder(),
    )


def sports() -> ChannelSession:
    return SportsSession(SportsConfig(ping_timeout=2.0, data_timeout=3.0), SportsDecoder())


def polybolt() -> ChannelSession:
    return PolyboltSession(
        SubscriptionSet(PB_SPECS),
        PB_SPECS,
        PolyboltConfig(ping_interval=1.0, pong_timeout=3.0, data_timeout=4.0),
    )


def clob_market() -> ChannelSession:
    return Session("market", SubscriptionSet(["a"]), StreamConfig(), FrameDecoder("market"))


class SessionMachine(RuleBasedStateMachine):
    """The whole input alphabet of a ChannelSession, in any order, with a monotonic clock."""

    make: Callable[[], ChannelSession] = staticmethod(rtds)
    kind = "rtds"

    def __init__(self) -> None:
        super().__init__()
        self.session = type(self).make()
        self.now = 0.0
        self.open = False

    @rule(dt=st.floats(min_value=0.0, max_value=3.0))
    def advance(self, dt: float) -> None:
        self.now += dt

    @precondition(lambda self: not self.open)
    @rule()
    def connect(self) -> None:
        self.session.connected(self.now)
        self.open = True

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def receive(self, data: st.DataObject) -> None:
        frames = data.draw(st.lists(st.sampled_from(FRAMES[type(self).kind]), max_size=3))
        self.session.receive_frames(frames, self.now)

    @rule()
    def timer(self) -> None:
        self.session.handle_timer(self.now)
        deadline = self.session.next_deadline()
        assert deadline is None or deadline > self.now

    @rule()
    def abort(self) -> None:
        self.session.abort(DataTimeoutError("data", 0.0))

    @precondition(lambda self: self.open)
    @rule()
    def close(self) -> None:
        self.session.closed()
        self.open = False
        assert self.session.frames_to_send() == []
        assert self.session.next_deadline() is None

    @rule(data=st.data())
    def change_subscriptions(self, data: st.DataObject) -> None:
        if type(self).kind == "sports":
            return
        keys = list(RTDS_SPECS if type(self).kind == "rtds" else PB_SPECS)
        key = data.draw(st.sampled_from(keys))
        if data.draw(st.booleans()):
            self.session.subscribe([key], self.now)
        else:
            self.session.unsubscribe([key])

    @rule()
    def collect(self) -> None:
        self.session.frames_to_send()
        self.session.events()

    @invariant()
    def failure_means_no_deadline(self) -> None:
        if self.session.failure is not None and self.open:
            assert self.session.next_deadline() is None
        state = getattr(self.session, "state", None)
        assert isinstance(state, SessionState)
        assert (state in (SessionState.OPEN, SessionState.FAILED)) == self.open


class SportsMachine(SessionMachine):
    make = staticmethod(sports)
    kind = "sports"


class PolyboltMachine(SessionMachine):
    make = staticmethod(polybolt)
    kind = "polybolt"


TestRtdsSessionMachine = SessionMachine.TestCase
TestSportsSessionMachine = SportsMachine.TestCase
TestPolyboltSessionMachine = PolyboltMachine.TestCase
for case in (TestRtdsSessionMachine, TestSportsSessionMachine, TestPolyboltSessionMachine):
    case.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


# ---------------------------------------------------------------- the shared base


@pytest.mark.parametrize(
    ("make", "label", "name"),
    [
        (rtds, "rtds", "RtdsSession"),
        (sports, "sports", "SportsSession"),
        (polybolt, "polybolt", "PolyboltSession"),
        (clob_market, "market", "Session"),
    ],
)
def test_every_session_logs_its_transitions_and_names_itself_in_illegal_inputs(
    make: Callable[[], ChannelSession],
    label: str,
    name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = make()
    assert isinstance(session, SessionBase)
    with pytest.raises(InvalidStateError, match=name):
        session.receive_text("x", 0.0)
    caplog.set_level(logging.DEBUG, logger="polyfeed.session")
    session.connected(0.0)
    with pytest.raises(InvalidStateError, match=name):
        session.connected(0.0)
    session.abort(DataTimeoutError("data", 1.0))
    session.abort(DataTimeoutError("pong", 2.0))
    assert isinstance(session.failure, DataTimeoutError) and session.failure.kind == "data"
    session.closed()
    session.closed()
    assert [r.getMessage() for r in caplog.records if r.name == "polyfeed.session"] == [
        f"session {label} #0: NEW -> OPEN",
        f"session {label} #0: OPEN -> FAILED",
        f"session {label} #0: FAILED -> CLOSED",
    ]
    session.connected(3.0)
    assert session.failure is None and session.state is SessionState.OPEN


@pytest.mark.parametrize(("make", "what"), [(rtds, "RTDS"), (polybolt, "PolyBolt")])
def test_unknown_subscription_keys_are_refused_and_nothing_is_added(
    make: Callable[[], ChannelSession], what: str
) -> None:
    session = make()
    with pytest.raises(ConfigError, match=f"unknown {what} subscription keys: \\['nope'\\]"):
        session.subscribe([next(iter(RTDS_SPECS if what == "RTDS" else PB_SPECS)), "nope"], 0.0)
    assert session.frames_to_send() == []
