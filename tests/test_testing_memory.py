"""The in-memory transport pair (testing/memory.py): the test plays the server, no sockets."""

from __future__ import annotations

import asyncio

import pytest

from polyfeed.aio.transport import Transport
from polyfeed.errors import ConnectionClosedError
from polyfeed.testing.memory import MemoryConnector, MemoryTransport


async def test_memory_transport_is_a_transport() -> None:
    # Checked by mypy: the lifecycle tests stand it in for the real transport.
    transport: Transport = MemoryTransport()
    assert isinstance(transport, MemoryTransport)


async def test_frames_flow_both_ways_in_order() -> None:
    transport = MemoryTransport()
    await transport.send_text('{"type": "market"}')
    await transport.send_text("PING")
    assert await transport.sent() == '{"type": "market"}'
    assert await transport.sent() == "PING"
    assert transport.sent_frames == ['{"type": "market"}', "PING"]
    transport.feed("PONG")
    transport.feed("[]")
    assert [await transport.receive_text(), await transport.receive_text()] == ["PONG", "[]"]


async def test_read_frames_fills_the_sink_until_the_scripted_end() -> None:
    transport = MemoryTransport()
    firsts: list[int] = []
    sink: list[str | bytes] = []
    for text in ("a", "b", "c"):
        transport.feed(text)
    transport.peer_close(1012, "restart")
    with pytest.raises(ConnectionClosedError) as info:
        await transport.read_frames(sink, lambda: firsts.append(len(sink)))
    assert sink == ["a", "b", "c"]
    assert firsts == [0]  # called once, before the first frame is stored
    assert (info.value.code, info.value.reason) == (1012, "restart")


@pytest.mark.parametrize(
    ("end", "code"),
    [("peer_close", 1001), ("peer_drop", None), ("abort", None)],
)
async def test_every_end_repeats_for_later_reads(end: str, code: int | None) -> None:
    transport = MemoryTransport()
    if end == "peer_close":
        transport.peer_close(1001)
    elif end == "peer_drop":
        transport.peer_drop()
    else:
        transport.abort()
    for _ in range(2):
        with pytest.raises(ConnectionClosedError) as info:
            await transport.receive_text()
        assert info.value.code == code
    assert transport.aborted is (end == "abort")


async def test_polite_close_refuses_later_sends_and_releases() -> None:
    transport = MemoryTransport()
    await transport.close(grace=0.1)
    assert transport.closed_politely and transport.released
    with pytest.raises(ConnectionClosedError):
        await transport.send_text("PING")
    with pytest.raises(ConnectionClosedError) as info:
        await transport.receive_text()
    assert info.value.code == 1000
    assert repr(transport) == "<MemoryTransport closed sent=0>"


async def test_abort_refuses_later_sends() -> None:
    transport = MemoryTransport()
    transport.abort()
    with pytest.raises(ConnectionClosedError):
        await transport.send_text("PING")
    await transport.release()
    assert transport.released
    assert repr(transport) == "<MemoryTransport aborted sent=0>"


async def test_connector_scripts_each_attempt_and_waits_for_transports() -> None:
    async def refuse_the_first(index: int) -> None:
        if index == 0:
            raise ConnectionClosedError(None, "refused")

    connector = MemoryConnector(refuse_the_first)
    with pytest.raises(ConnectionClosedError):
        await connector("memory://one")
    async with asyncio.TaskGroup() as group:
        waiter = group.create_task(connector.wait_for(1))
        await asyncio.sleep(0)
        transport = await connector("memory://two", heartbeat=None)
    assert waiter.result() is transport
    assert transport.url == "memory://two"
    assert connector.attempts == 2 and connector.transports == [transport]
    assert repr(connector) == "<MemoryConnector attempts=2 transports=1>"
