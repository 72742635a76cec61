"""The fake server's ground-truth log (testing/server/log.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from polyfeed.testing import FakePolymarket
from ws_client import FAST, receive_text, subscribe


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def fake() -> AsyncIterator[FakePolymarket]:
    async with FakePolymarket(markets=2, seed=3, **FAST) as server:
        yield server


async def test_ground_truth_log_matches_what_the_client_received(
    fake: FakePolymarket, session: aiohttp.ClientSession
) -> None:
    yes = fake.markets[0].yes_token
    ws = await subscribe(session, fake, [yes])
    frames = [await receive_text(ws)]
    events = fake.step(6)
    mine = [e for e in events if yes in e.asset_ids and e.event_type != "best_bid_ask"]
    frames += [await receive_text(ws) for _ in mine]
    connection = fake.connections[0]
    await connection.flush()
    sent = fake.log.sent_to(connection.id)
    assert frames[0] == "[" + sent[0].raw.decode() + "]"
    assert frames[1:] == [e.raw.decode() for e in sent[1:]]
    assert [e.seq for e in sent[1:]] == [e.seq for e in mine]
    assert fake.log.withheld_from(connection.id) == []
    assert all(yes in e.asset_ids for e in fake.log.events_for(yes))
    assert fake.log.event(sent[0].seq) == sent[0]
    with pytest.raises(KeyError):
        fake.log.event(10_000)
    await ws.close()


async def test_bounded_log_keeps_the_newest_events() -> None:
    async with FakePolymarket(markets=1, max_log_events=10, **FAST) as fake:
        events = fake.step(30)
        assert len(fake.log) == 10
        assert fake.log.events == events[-10:]
