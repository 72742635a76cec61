"""One connection's task group: reader, ticker and writer live and die together."""

from __future__ import annotations

import asyncio

import pytest

from polyfeed.aio.clock import LoopClock
from polyfeed.aio.connection import Connection
from polyfeed.aio.event_queue import EventQueue
from polyfeed.config import HeartbeatConfig, QueueConfig, StreamConfig, WatchdogConfig
from polyfeed.core.codec import FrameDecoder
from polyfeed.core.session import Session, SessionState
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.errors import ConnectionClosedError, DataTimeoutError, OverflowDisconnectError
from polyfeed.metrics import ConnectionMetrics
from polyfeed.testing.memory import MemoryTransport

CONFIG = StreamConfig(
    heartbeat=HeartbeatConfig(interval=0.05, pong_timeout=0.2),
    watchdog=WatchdogConfig(data_timeout=0.15, confirm_timeout=5.0),
)


def make(
    queue_size: int = 100, policy: str = "drop_oldest"
) -> tuple[Connection[Session], MemoryTransport]:
    transport = MemoryTransport()
    clock = LoopClock()
    cfg = StreamConfig(
        heartbeat=CONFIG.heartbeat,
        watchdog=CONFIG.watchdog,
        queue=QueueConfig(maxsize=queue_size, overflow=policy),  # type: ignore[arg-type]
    )
    session = Session("market", SubscriptionSet(["a1"]), cfg, FrameDecoder("market"))
    queue = EventQueue(cfg.queue, clock.wall)
    connection = Connection(transport, session, clock, queue, ConnectionMetrics(clock.now()))
    return connection, transport


@pytest.mark.timeout(5)
async def test_peer_close_ends_the_group_with_the_close_reason() -> None:
    connection, transport = make()
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(connection.run())
        await transport.sent()
        transport.peer_close(1011, "restart")
    reason = run.result()
    assert isinstance(reason, ConnectionClosedError)
    assert reason.code == 1011
    assert not connection.session.opened


@pytest.mark.timeout(5)
async def test_stale_link_aborts_the_transport() -> None:
    connection, transport = make()
    reason = await connection.run()
    assert isinstance(reason, DataTimeoutError)
    assert transport.aborted
    assert transport.sent_frames[0].startswith('{"type":"market"')


@pytest.mark.timeout(5)
async def test_disconnect_policy_overflow_ends_the_connection() -> None:
    connection, transport = make(queue_size=5, policy="disconnect")
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(connection.run())
        for _ in range(20):
            transport.feed(
                '{"event_type":"last_trade_price","market":"m","asset_id":"a1",'
                '"price":"0.5","timestamp":"1700000000000"}'
            )
    assert isinstance(run.result(), OverflowDisconnectError)
    assert transport.aborted
    # The connection asked the session to give up (abort), it did not write its fields.
    assert connection.session.failure is run.result()
    assert connection.session.state is SessionState.CLOSED


@pytest.mark.timeout(5)
async def test_cancellation_is_not_lost_when_the_connection_ends_at_the_same_time() -> None:
    # Python 3.11's TaskGroup swallows a cancel that lands while it is already aborting.
    connection, transport = make()
    task = asyncio.create_task(connection.run())
    await transport.sent()
    transport.peer_drop()
    await asyncio.sleep(0)
    connection.stopping = True
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.timeout(5)
async def test_wake_flushes_live_subscriptions_to_the_writer() -> None:
    connection, transport = make()
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(connection.run())
        await transport.sent()
        connection.session.subscribe(["a2"], asyncio.get_running_loop().time())
        connection.wake()
        sent = await transport.sent()
        while sent == "PING":
            sent = await transport.sent()
        assert sent == '{"operation":"subscribe","assets_ids":["a2"]}'
        transport.peer_close(1000)
    assert isinstance(run.result(), ConnectionClosedError)


@pytest.mark.timeout(5)
async def test_a_bug_while_processing_frames_drops_the_connection_instead_of_eating_frames(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = MemoryTransport()
    clock = LoopClock()
    session = Session("market", SubscriptionSet(["a1"]), CONFIG, FrameDecoder("market"))
    queue = EventQueue(CONFIG.queue, clock.wall)

    def broken_observer(events: object) -> bool:
        raise RuntimeError("observer bug")

    connection = Connection(
        transport, session, clock, queue, ConnectionMetrics(clock.now()), emit=broken_observer
    )
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(connection.run())
        await transport.sent()
        transport.feed(
            '{"event_type":"last_trade_price","market":"m","asset_id":"a1",'
            '"price":"0.5","timestamp":"1700000000000"}'
        )
    reason = run.result()
    assert isinstance(reason, ConnectionClosedError)
    assert "internal error" in str(reason)
    assert transport.aborted
    assert session.failure is reason
    assert session.state is SessionState.CLOSED
    assert "processing received frames failed" in caplog.text
