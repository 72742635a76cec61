"""OrderHeartbeat against the fake /v1/heartbeats endpoint, with scaled intervals."""

from __future__ import annotations

import asyncio

import pytest

from polyfeed.aio.heartbeat import OrderHeartbeat
from polyfeed.core.heartbeat import (
    HeartbeatAlarm,
    HeartbeatEvent,
    HeartbeatExpired,
    HeartbeatRecovered,
    OrderHeartbeatConfig,
)
from polyfeed.credentials import Credentials
from polyfeed.errors import ConfigError
from polyfeed.testing import FakePolymarket
from polyfeed.testing.server.sockets import SocketsConfig

FAST = OrderHeartbeatConfig(
    interval=0.05, window=0.5, alarm_margin=0.2, retry_delay=0.02, request_timeout=0.1
)
# A loaded 2-core machine can hold one answer back 100 ms: the long run gets room for that.
STEADY = OrderHeartbeatConfig(
    interval=0.05, window=1.5, alarm_margin=0.5, retry_delay=0.02, request_timeout=0.5
)


async def wait_for(condition: object, within: float = 3.0) -> None:
    assert callable(condition)
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest.mark.timeout(15)
async def test_a_sustained_run_keeps_one_chain_of_ids() -> None:
    async with FakePolymarket(sockets=SocketsConfig(heartbeat_window=1.5)) as fake:
        events: list[HeartbeatEvent] = []
        async with OrderHeartbeat(
            fake.credentials.client(), rest_url=fake.rest_url, config=STEADY, on_event=events.append
        ) as heartbeat:
            await wait_for(lambda: heartbeat.machine.beats_accepted >= 30)
            health = heartbeat.health()
        chain = fake.heartbeats.accepted_chain
        assert chain[0][0] == ""
        # Every beat sent the id the previous reply handed out: one unbroken chain.
        assert all(
            sent == previous for (sent, _), (_, previous) in zip(chain[1:], chain[:-1], strict=True)
        )
        assert fake.heartbeats.cancellations == []
        assert events == []
        # An id is refused only after a beat timed out that the server had accepted.
        assert health.state == "ok" and health.invalid_ids <= health.failures
        assert health.time_left is not None and 0.0 < health.time_left <= 1.5
        assert heartbeat.health().state == "stopped"


@pytest.mark.timeout(15)
async def test_an_invalid_id_is_recovered_with_the_id_the_server_names() -> None:
    async with (
        FakePolymarket(sockets=SocketsConfig(heartbeat_window=1.5)) as fake,
        OrderHeartbeat(
            fake.credentials.client(), rest_url=fake.rest_url, config=STEADY
        ) as heartbeat,
    ):
        await wait_for(lambda: heartbeat.machine.beats_accepted >= 3)
        fake.heartbeats.reject_next_id()
        expected = fake.heartbeats.expected
        await wait_for(lambda: heartbeat.machine.invalid_ids == 1)
        accepted = heartbeat.machine.beats_accepted
        await wait_for(lambda: heartbeat.machine.beats_accepted >= accepted + 3)
        refused = [b for b in fake.heartbeats.beats if b.status == 400]
        assert len(refused) == 1
        # The retry carried exactly the id the refusal named.
        assert expected in [sent for sent, _ in fake.heartbeats.accepted_chain]
        assert fake.heartbeats.cancellations == []
        assert heartbeat.health().state == "ok"


@pytest.mark.timeout(15)
async def test_a_stalled_endpoint_raises_the_alarm_before_the_window_closes() -> None:
    async with FakePolymarket(sockets=SocketsConfig(heartbeat_window=0.5)) as fake:
        events: list[HeartbeatEvent] = []
        loop = asyncio.get_running_loop()
        async with OrderHeartbeat(
            fake.credentials.client(), rest_url=fake.rest_url, config=FAST, on_event=events.append
        ) as heartbeat:
            await wait_for(lambda: heartbeat.machine.beats_accepted >= 3)
            fake.heartbeats.stall()
            await wait_for(lambda: any(isinstance(e, HeartbeatAlarm) for e in events))
            alarmed_at = loop.time()
            alarm = events[0]
            assert isinstance(alarm, HeartbeatAlarm)
            assert 0.0 < alarm.time_left <= 0.2 + 0.01
            health = heartbeat.health()
            assert health.state == "alarm" and health.time_left is not None
            assert health.time_left > 0  # raised while the orders were still standing
            assert fake.heartbeats.cancellations == []
            assert 'polyfeed_order_heartbeat_state{state="alarm"} 1' in (
                heartbeat.render_prometheus()
            )
            await wait_for(lambda: any(isinstance(e, HeartbeatExpired) for e in events))
            # The fake's switch fired too: the alarm came before the cancellation.
            await wait_for(lambda: fake.heartbeats.cancellations != [])
            assert fake.heartbeats.cancellations[0] >= alarmed_at
            fake.heartbeats.resume()
            await wait_for(lambda: any(isinstance(e, HeartbeatRecovered) for e in events))
            assert heartbeat.health().state == "ok"


def test_credentials_that_cannot_sign_are_refused() -> None:
    with pytest.raises(ConfigError):
        OrderHeartbeat(Credentials(api_key="k", secret="s", passphrase="p"))
