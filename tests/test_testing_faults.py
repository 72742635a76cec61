"""The fault declarations and the plan (testing/faults.py); what each fault does on a socket is
tested in test_testing_server_fault_state.py."""

from __future__ import annotations

from typing import Any

import pytest

from polyfeed.errors import ConfigError
from polyfeed.testing import (
    CloseWith,
    DropMessage,
    DropTcp,
    Duplicate,
    FaultPlan,
    HugeFrame,
    RefuseHandshake,
    SlowDrip,
    StallData,
    StopPong,
)


def test_plan_orders_every_attempt_faults_first_and_is_mutable() -> None:
    stall, drop = StallData(), DropTcp(after=0.5)
    plan = FaultPlan({0: [stall]}, every=[SlowDrip(0.01)], user={1: [StopPong()]})
    assert plan.for_attempt(0) == (SlowDrip(0.01), stall)
    assert plan.for_attempt(1) == (SlowDrip(0.01),)
    assert plan.for_attempt(1, "user") == (StopPong(),)
    plan.add(1, drop)
    plan.add_every(Duplicate(), path="user")
    assert plan.for_attempt(1) == (SlowDrip(0.01), drop)
    assert plan.for_attempt(0, "user") == (Duplicate(),)
    assert "market#0" in repr(plan) and "StallData" in repr(plan)
    plan.clear("market")
    assert plan.for_attempt(0) == () and plan
    plan.clear()
    assert not plan


@pytest.mark.parametrize(
    "build",
    [
        lambda: StallData(after=-1.0),
        lambda: CloseWith(code=999),
        lambda: DropTcp(after_messages=-1),
        lambda: RefuseHandshake(status=200),
        lambda: HugeFrame(size_bytes=10),
        lambda: SlowDrip(-0.1),
        lambda: Duplicate(count=0),
        lambda: DropMessage(count=0),
        lambda: FaultPlan({-1: [StallData()]}),
        lambda: FaultPlan().add(0, StallData(), path="sports"),  # type: ignore[arg-type]
    ],
)
def test_bad_faults_raise_config_error(build: Any) -> None:
    with pytest.raises(ConfigError):
        build()


def test_faults_are_frozen_values() -> None:
    fault = CloseWith(4000, "x")
    with pytest.raises(AttributeError):
        fault.code = 1000  # type: ignore[misc]
    assert fault == CloseWith(4000, "x") and hash(fault) == hash(CloseWith(4000, "x"))
