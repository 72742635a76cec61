"""polyfeed.testing: a fake Polymarket server with fault injection, a fake clock, a pytest fixture.

Shipped and public, so users can test their own bots the way polyfeed tests itself::

    from polyfeed.testing import FakePolymarket, FaultPlan, StallData

    plan = FaultPlan({0: [StallData(after=1.0)]})
    async with FakePolymarket(markets=4, rate=50.0, faults=plan) as fake:
        ...  # connect to fake.market_url, fake.user_url (fake.credentials), fake.rest_url

pytest fixture ``fake_polymarket`` (function-scoped, async; needs pytest-asyncio): a started
``FakePolymarket(markets=2, rate=0.0, seed=0)``; options via
``@pytest.mark.fake_polymarket(markets=4, rate=10.0, ...)``. It is registered as the pytest plugin
``polyfeed`` (entry point ``polyfeed.testing.pytest_plugin``); without the entry point, add
``pytest_plugins = ["polyfeed.testing.pytest_plugin"]`` to your root ``conftest.py``.
"""

from __future__ import annotations

from polyfeed.testing.clock import FakeClock
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
