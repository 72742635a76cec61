"""Running a coroutine under SIGINT/SIGTERM with a clean, bounded shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any


async def _until_signal(main: Coroutine[Any, Any, int]) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stopped = False

    def on_signal() -> None:
        nonlocal stopped
        stopped = True
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await main
    except asyncio.CancelledError:
        if not stopped:
            raise
        # A signal is a request to stop, not a failure: the streams closed in their finally blocks.
        task.uncancel()
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_until_signal(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main``; SIGINT/SIGTERM cancel it and the exit status is 0."""
    return asyncio.run(_until_signal(main))
