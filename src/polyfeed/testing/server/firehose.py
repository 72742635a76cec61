"""Firehose: a paced flood of realistic market messages, to load-test a client or a bot.

:func:`firehose` has the simulator generate ``messages`` steps and sends them to the subscribed
market sockets at ``rate`` messages per second. The messages are the simulator's own: every
``price_change`` carries both mirrored entries (the YES and NO tokens of its market), each with
the ``best_bid``/``best_ask`` and the 2026-scheme hash of the server's book after it, and the
market metadata the hash covers is served over REST (``/markets/{condition_id}``), so a client
can verify every hash. Messages are generated in small chunks right before they are sent
(generation is not free: ~60 µs a step), so the clients' books and the server's never drift
apart; the pace is kept per chunk of at most a millisecond's worth of messages.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from polyfeed.errors import ConfigError
from polyfeed.testing.server.app import FakePolymarket

__all__ = ["FirehoseResult", "firehose"]


@dataclass(frozen=True, slots=True)
class FirehoseResult:
    """What a firehose sent: messages generated, frames handed to transports, time taken."""

    messages: int
    frames: int
    seconds: float

    @property
    def rate(self) -> float:
        """Messages generated and sent per second over the whole run."""
        return self.messages / self.seconds if self.seconds > 0 else math.inf


async def firehose(fake: FakePolymarket, *, messages: int, rate: float = 0.0) -> FirehoseResult:
    """Send ``messages`` simulator steps to every subscribed market socket at ``rate``
    messages per second (``0``: as fast as the server generates them).

    Runs in the caller's task; cancel it to stop early. A client that falls behind is not
    waited for beyond the transports' flow control (see ``FakePolymarket.send_burst``).
    """
    if messages < 0 or rate < 0 or not math.isfinite(rate):
        raise ConfigError("firehose needs messages >= 0 and a finite rate >= 0")
    loop = asyncio.get_running_loop()
    chunk = max(1, int(rate / 1000)) if rate else 100
    started = loop.time()
    sent = frames = 0
    while sent < messages:
        if rate:
            due = started + sent / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        count = min(chunk, messages - sent)
        result = await fake.send_burst(fake.prepare_burst(count))
        sent += count
        frames += result.frames
    return FirehoseResult(sent, frames, loop.time() - started)
