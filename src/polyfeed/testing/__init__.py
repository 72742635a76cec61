"""polyfeed.testing: a fake Polymarket server with fault injection, a fake clock, a pytest fixture.

Shipped and public, so users can test their own bots the way polyfeed tests itself::

    from polyfeed.testing import FakePolymarket, FaultPlan, StallData

    plan = FaultPlan({0: [StallData(after=1.0)]})
    async with FakePolymarket(markets=4, rate=50.0, faults=plan) as fake:
        ...  # connect to fake.market_url, fake.user_url (fake.credentials), fake.rest_url

Driving it without timers: ``rate=0`` and ``fake.step(n)`` (order flow), ``fake.step_user(n)``,
``await fake.send_raw(text)``, ``fake.inject(fault)``, ``await fake.disconnect(...)``. Ground
truth: ``fake.log`` (``sent_to``, ``withheld_from``, ``missed_by``, ``events_for``) and
``fake.books``.

Credentials: ``fake.credentials`` are the ones ``/ws/user`` and ``GET /auth/api-keys`` (CLOB L2
headers) accept; ``fake.credentials.client()`` is a signing-capable ``polyfeed.Credentials``.
Assign other ``ApiCredentials`` to revoke them: the user socket then resets without a close frame
and the route answers 401, as Polymarket does. ``fake.auth_checks`` records each route call. A
server restart on the user socket is ``FaultPlan(user={0: [CloseWith(1012)]})``.

Benchmarks: ``burst = fake.prepare_burst(n)`` generates and JSON-encodes n steps up front (about
60-80 us a step); ``await fake.send_burst(burst)`` then queues them all to every subscribed socket
and returns a ``BurstResult`` (frames, bytes, seconds) once all are on the wire — about 100k
price_change frames/s over loopback on a 2-core box. ``await fake.burst(n)`` does both. The
background ``rate`` flow generates live and tops out at a few thousand messages/s.

pytest fixture ``fake_polymarket`` (function-scoped, async; needs pytest-asyncio): a started
``FakePolymarket(markets=2, rate=0.0, seed=0)``; options via
``@pytest.mark.fake_polymarket(markets=4, rate=10.0, ...)``. It is registered as the pytest plugin
``polyfeed`` (entry point ``polyfeed.testing.pytest_plugin``); without the entry point, add
``pytest_plugins = ["polyfeed.testing.pytest_plugin"]`` to your root ``conftest.py``.
"""

from __future__ import annotations

from polyfeed.testing.clock import FakeClock, FakeTimer
from polyfeed.testing.faults import (
    CloseWith,
    DropMessage,
    DropTcp,
    Duplicate,
    Fault,
    FaultPlan,
    ForgetSubscriptions,
    Hang,
    HugeFrame,
    IgnoreSubscription,
    Malformed,
    RefuseHandshake,
    SilenceAsset,
    SlowDrip,
    StallData,
    StopPong,
    UnknownEvent,
)
from polyfeed.testing.market_sim import BookView, MarketSimulator, SimMarket, SimMessage
from polyfeed.testing.server import (
    ApiCredentials,
    AuthCheck,
    BurstResult,
    CloseInfo,
    Delivery,
    FakeConnection,
    FakePolymarket,
    GroundTruthLog,
    LoggedEvent,
    PreparedBurst,
)

__all__ = [
    "ApiCredentials",
    "AuthCheck",
    "BookView",
    "BurstResult",
    "CloseInfo",
    "CloseWith",
    "Delivery",
    "DropMessage",
    "DropTcp",
    "Duplicate",
    "FakeClock",
    "FakeConnection",
    "FakePolymarket",
    "FakeTimer",
    "Fault",
    "FaultPlan",
    "ForgetSubscriptions",
    "GroundTruthLog",
    "Hang",
    "HugeFrame",
    "IgnoreSubscription",
    "LoggedEvent",
    "Malformed",
    "MarketSimulator",
    "PreparedBurst",
    "RefuseHandshake",
    "SilenceAsset",
    "SimMarket",
    "SimMessage",
    "SlowDrip",
    "StallData",
    "StopPong",
    "UnknownEvent",
]
