"""``LineWriter``: output from a thread, so that a slow reader never blocks the event loop."""

from __future__ import annotations

import asyncio
import os

import pytest

from polyfeed.cli._output import LineWriter, OutputClosedError


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.timeout(10)
async def test_lines_arrive_in_order_and_leaving_flushes_them() -> None:
    read_end, write_end = os.pipe()
    try:
        async with LineWriter(write_end) as out:
            for index in range(1000):
                await out.write(b"%d\n" % index)
        os.close(write_end)
        assert read_all(read_end).splitlines() == [b"%d" % i for i in range(1000)]
        assert out.lines_written == 1000
        assert "LineWriter" in repr(out)
    finally:
        os.close(read_end)


@pytest.mark.timeout(10)
async def test_a_reader_that_never_reads_makes_write_wait_without_blocking_the_loop() -> None:
    read_end, write_end = os.pipe()
    loop = asyncio.get_running_loop()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    line = b"x" * 1000 + b"\n"
    try:
        async with asyncio.TaskGroup() as group:
            ticker = group.create_task(tick())
            out = LineWriter(write_end, maxsize=8, flush_timeout=0.2)
            async with out:
                # 1 MB: far more than the pipe (64 KiB) and the queue hold.
                writes = group.create_task(_write_many(out, line, 1000))
                await asyncio.sleep(0.3)
                assert not writes.done()
                assert out.waits >= 1
                writes.cancel()
                started = loop.time()
            # Leaving gives up on a reader that does not read, after ``flush_timeout``.
            assert loop.time() - started < 1.0
            ticker.cancel()
        assert ticks >= 5
    finally:
        os.close(write_end)
        os.close(read_end)


async def _write_many(out: LineWriter, line: bytes, count: int) -> None:
    for _ in range(count):
        await out.write(line)


@pytest.mark.timeout(10)
async def test_a_reader_that_went_away_ends_writing_with_output_closed() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        async with LineWriter(write_end) as out:
            with pytest.raises(OutputClosedError):
                async with asyncio.timeout(5):
                    while True:
                        await out.write(b"line\n")
                        await asyncio.sleep(0)
        assert isinstance(out.error, BrokenPipeError)
    finally:
        os.close(write_end)


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        LineWriter(1, maxsize=0)
