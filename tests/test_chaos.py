"""Chaos: a seeded random fault schedule over 20 assets against the real client.

At the end every asset's latest book equals the server's, every event in the server's
ground-truth log was either delivered or lies inside a reported gap, and nothing raised.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any

import pytest

from polyfeed import (
    BackoffConfig,
    Book,
    Gap,
    HeartbeatConfig,
    MarketStream,
    PriceChange,
    StreamConfig,
    WatchdogConfig,
)
from polyfeed.testing import (
    CloseWith,
    DropTcp,
    Duplicate,
    FakePolymarket,
    Fault,
    FaultPlan,
    ForgetSubscriptions,
    Hang,
    Malformed,
    RefuseHandshake,
    SlowDrip,
    StallData,
    UnknownEvent,
)

CONFIG = StreamConfig(
    heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.3),
    watchdog=WatchdogConfig(data_timeout=0.5, confirm_timeout=2.0),
    backoff=BackoffConfig(base=0.02, max_delay=0.1, jitter=0.02, stable_for=0.5),
)


def random_fault(rng: random.Random) -> Fault:
    after = rng.uniform(0.05, 0.6)
    choices: list[Fault] = [
        StallData(after=after),
        CloseWith(code=rng.choice([1000, 1001, 1011, 4000]), after=after),
        DropTcp(after=after),
        Hang(),
        ForgetSubscriptions(after=after),
        RefuseHandshake(status=rng.choice([429, 503]), retry_after=rng.choice([None, 0.05])),
        Duplicate(count=rng.randint(1, 5)),
        Malformed(after=after),
        UnknownEvent(after=after),
        SlowDrip(delay=0.01),
    ]
    return rng.choice(choices)


def schedule(seed: int, attempts: int) -> tuple[FaultPlan, list[Fault]]:
    rng = random.Random(seed)
    faults = [random_fault(rng) for _ in range(attempts)]
    plan = FaultPlan()
    for attempt, fault in enumerate(faults):
        plan.add(attempt, fault)
        if not isinstance(fault, RefuseHandshake | Hang | StallData | DropTcp | CloseWith):
            # Faults that do not end the connection get a close after them, so the schedule
            # moves on to the next attempt.
            plan.add(attempt, CloseWith(code=1012, after=0.7))
    return plan, faults


class ClientBooks:
    """What a consumer reconstructs from the stream: snapshot replaces, change sets a level."""

    def __init__(self) -> None:
        self.bids: dict[str, dict[str, str]] = {}
        self.asks: dict[str, dict[str, str]] = {}

    def apply(self, event: Any) -> None:
        if isinstance(event, Book):
            self.bids[event.asset_id] = {lv.price: lv.size for lv in event.bids}
            self.asks[event.asset_id] = {lv.price: lv.size for lv in event.asks}
        elif isinstance(event, PriceChange):
            for entry in event.price_changes:
                side = self.bids if entry.side == "BUY" else self.asks
                levels = side.setdefault(entry.asset_id, {})
                if Decimal(entry.size) == 0:
                    levels.pop(entry.price, None)
                else:
                    levels[entry.price] = entry.size


def received_key(event: Any) -> tuple[str, str, int] | None:
    if isinstance(event, Book | PriceChange):
        return None
    timestamp = getattr(event, "timestamp", None)
    market = getattr(event, "market", None)
    if timestamp is None or market is None:
        return None
    tag = type(event).__struct_config__.tag  # the wire event_type
    return (str(tag), market, int(timestamp))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [1, 2])
async def test_chaos_books_converge_and_nothing_is_lost_unreported(seed: int) -> None:
    attempts = 8
    plan, faults = schedule(seed, attempts)
    books = ClientBooks()
    gaps: list[Gap] = []
    received: set[tuple[str, str, int]] = set()
    first_snapshot: list[int] = []
    async with FakePolymarket(markets=10, seed=seed, faults=plan, ping_grace=2.0) as fake:
        assets = list(fake.asset_ids)
        assert len(assets) == 20

        async def order_flow() -> None:
            while True:
                fake.step(1)
                await asyncio.sleep(0.01)

        async with MarketStream(assets, endpoints=fake.endpoints, config=CONFIG) as stream:
            flow_task: asyncio.Task[None] | None = None
            async with asyncio.TaskGroup() as group:
                flow_task = group.create_task(order_flow())

                async def consume() -> None:
                    async for event in stream:
                        books.apply(event)
                        if isinstance(event, Book) and not first_snapshot:
                            first_snapshot.append(event.timestamp)
                        if isinstance(event, Gap):
                            gaps.append(event)
                        elif isinstance(event, PriceChange):
                            received.add(("price_change", event.market, event.timestamp))
                        else:
                            key = received_key(event)
                            if key is not None:
                                received.add(key)

                consumer = group.create_task(consume())
                # Run until the schedule is used up and a clean connection has carried data.
                async with asyncio.timeout(40):
                    await fake.wait_for_connection(attempts + 1)
                    await asyncio.sleep(1.0)
                flow_task.cancel()
                # Let the server hand over everything it queued, and the client read it.
                for connection in fake.open_connections("market"):
                    await connection.flush()
                await asyncio.sleep(0.2)
                consumer.cancel()
            health = stream.health()

        # 1. Every asset's latest book equals the server's.
        for asset in assets:
            server = fake.book(asset)
            assert books.bids[asset] == dict(server.bids), asset
            assert books.asks[asset] == dict(server.asks), asset

        # 2. Every market event the server generated was delivered or lies in a reported gap.
        unexplained = []
        for logged in fake.log.events:
            if logged.origin != "market" or logged.event_type in ("book", "best_bid_ask"):
                continue  # best_bid_ask goes only to custom-feature subscriptions
            if int(logged.timestamp) <= first_snapshot[0]:
                continue  # before our first subscription was processed: not ours to receive
            key = (logged.event_type, logged.market, int(logged.timestamp))
            if key in received:
                continue
            ts = int(logged.timestamp) / 1000.0
            if any(
                g.started - 0.005 <= ts <= g.ended + 0.005 and set(logged.asset_ids) & set(g.assets)
                for g in gaps
            ):
                continue
            unexplained.append(logged)
        assert unexplained == [], f"{len(unexplained)} events lost without a gap; faults={faults}"

        # 3. Nothing raised, the stream recovered every time, and it said so.
        assert health.state == "open"
        assert health.connected
        assert stream.health().state == "closed"
        assert stream.metrics.connects_total >= attempts - sum(
            isinstance(f, RefuseHandshake) for f in faults
        )
        assert gaps, "faults that cost data must be reported as gaps"
