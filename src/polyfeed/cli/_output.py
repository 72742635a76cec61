"""Writing to stdout/stderr without ever blocking the event loop.

A write to a pipe blocks once the reader falls behind (64 KiB on Linux). Done on the event loop,
that stops everything else the loop does: PINGs stop, and the socket is torn down for a missing
PONG. ``LineWriter`` writes from its own thread instead, fed by a small bounded queue: when the
reader is slow, ``write`` waits (without blocking the loop), so the consumer falls behind and the
stream's own bounded queue applies its overflow policy and reports the drop as a ``Gap``.

The thread writes with ``os.write`` on a duplicate of the file descriptor, never through Python's
buffered ``sys.stdout``: a daemon thread blocked inside a buffered writer would make interpreter
shutdown abort on the writer's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from types import TracebackType

_STOP = b""
"""The sentinel that ends the thread (a real line is never empty)."""


class OutputClosedError(Exception):
    """The reader of the output went away (``EPIPE``), or writing failed."""


class LineWriter:
    """Writes byte lines to a file descriptor from one thread; ``write`` never blocks the loop.

    ``maxsize`` lines may wait for the thread; beyond that ``write`` waits. Use as
    ``async with LineWriter(fd) as out``: leaving flushes what is queued for at most
    ``flush_timeout`` seconds, then gives up on a reader that does not read (the thread is a
    daemon and cannot delay the process's exit).
    """

    def __init__(self, fd: int, *, maxsize: int = 1024, flush_timeout: float = 0.5) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._fd = fd
        self._lines: queue.Queue[bytes] = queue.Queue(maxsize)
        self._space = asyncio.Event()
        self._finished = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.flush_timeout = flush_timeout
        self.error: OSError | None = None
        self.lines_written = 0
        self.waits = 0

    def __repr__(self) -> str:
        state = "running" if self._thread is not None and self._thread.is_alive() else "idle"
        if self.error is not None:
            state = f"failed ({self.error})"
        return (
            f"<LineWriter fd={self._fd} {state} queued={self._lines.qsize()} "
            f"written={self.lines_written} waits={self.waits}>"
        )

    async def __aenter__(self) -> LineWriter:
        self._loop = asyncio.get_running_loop()
        # The thread's own descriptor: whoever owns ``fd`` may close it while a write is stuck.
        self._thread = threading.Thread(
            target=self._run, args=(os.dup(self._fd),), name="polyfeed-output", daemon=True
        )
        self._thread.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def write(self, line: bytes) -> None:
        """Queue one non-empty line; waits (never blocking the loop) while the queue is full.

        Raises ``OutputClosedError`` once writing failed (the reader went away).
        """
        if line:
            await self._put(line)

    async def _put(self, line: bytes) -> None:
        while True:
            if self.error is not None:
                raise OutputClosedError(str(self.error)) from self.error
            try:
                self._lines.put_nowait(line)
            except queue.Full:
                self._space.clear()
                # The thread may have made room between the put and the clear: look again.
                if self._lines.full() and self.error is None:
                    self.waits += 1
                    await self._space.wait()
            else:
                return

    async def aclose(self) -> None:
        """Flush what is queued (bounded by ``flush_timeout``), then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._thread = None
        with contextlib.suppress(TimeoutError, OutputClosedError):
            async with asyncio.timeout(self.flush_timeout):
                await self._put(_STOP)
                await self._finished.wait()
        # If the flush timed out, the thread is stuck in a write nobody reads: it closes its
        # descriptor once the write returns, or, as a daemon, ends with the process.

    # ------------------------------------------------------------------ the thread

    def _notify(self, event: asyncio.Event) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(event.set)

    def _run(self, fd: int) -> None:
        lines = self._lines
        try:
            while True:
                batch = [lines.get()]
                # Everything queued goes out in one write: one syscall for many lines.
                while len(batch) < 4096:
                    try:
                        batch.append(lines.get_nowait())
                    except queue.Empty:
                        break
                self._notify(self._space)
                stop = batch[-1] == _STOP
                self._write_all(fd, b"".join(batch))
                self.lines_written += len(batch) - stop
                if stop:
                    return
        except OSError as exc:
            self.error = exc
            self._notify(self._space)
        finally:
            os.close(fd)
            self._notify(self._finished)

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
