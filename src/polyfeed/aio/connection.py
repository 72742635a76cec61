"""One connection: reader, ticker and writer in one TaskGroup; they live and die together.

- reader: drains the socket into the session and the consumer queue; never waits on consumers;
- ticker: sleeps until the session's next deadline (heartbeat, PONG, data, confirmations) and
  aborts the socket the moment the session declares it stale;
- writer: sends queued frames in order.

``run()`` returns why the connection ended (a transient error); fatal errors and cancellation
propagate.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from polyfeed.aio.clock import Clock, TimerHandle
from polyfeed.aio.event_queue import EventQueue
from polyfeed.aio.transport import Transport
from polyfeed.core.channel import ChannelSession
from polyfeed.errors import ConnectionClosedError, OverflowDisconnectError, TransientError
from polyfeed.events import Stale
from polyfeed.metrics import ConnectionMetrics

logger = logging.getLogger("polyfeed.connection")

SessionT = TypeVar("SessionT", bound=ChannelSession)


class _Ended(Exception):
    """Internal: carries the reason a connection task stopped the group."""

    def __init__(self, reason: TransientError) -> None:
        super().__init__(str(reason))
        self.reason = reason


class Connection(Generic[SessionT]):
    """A live connection: the session plus the three tasks that drive it.

    The session is any socket's protocol state machine (:class:`~polyfeed.core.channel.
    ChannelSession`): the CLOB channels, RTDS, sports, PolyBolt.
    """

    def __init__(
        self,
        transport: Transport,
        session: SessionT,
        clock: Clock,
        queue: EventQueue,
        metrics: ConnectionMetrics,
        emit: Callable[[Sequence[object]], bool] | None = None,
        on_first_frame: Callable[[], None] | None = None,
    ) -> None:
        self.transport = transport
        self.session = session
        self.clock = clock
        self.queue = queue
        self._emit = emit or queue.put_many
        self._on_first_frame = on_first_frame
        self.metrics = metrics
        self._outbox: deque[str] = deque()
        self._outbox_ready = asyncio.Event()
        self._tick = asyncio.Event()
        self.ended: TransientError | None = None
        self.stopping = False
        self.frames_sent = 0
        self._pending: list[str | bytes] = []
        self._batch_scheduled = False

    def __repr__(self) -> str:
        state = f"ended ({self.ended})" if self.ended else "running"
        return f"<Connection #{self.session.connection_id} {state} sent={self.frames_sent}>"

    async def run(self) -> TransientError:
        """Drive the connection until it ends; returns the transient reason."""
        task = asyncio.current_task()
        cancels_before = task.cancelling() if task is not None else 0
        self.session.connected(self.clock.now())
        self._pump()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._reader(), name="polyfeed-reader")
                group.create_task(self._ticker(), name="polyfeed-ticker")
                group.create_task(self._writer(), name="polyfeed-writer")
        except* _Ended as ended:
            first = ended.exceptions[0]
            assert isinstance(first, _Ended)
            self.ended = first.reason
        finally:
            # Frames read just before the end still reach the consumer, ahead of Disconnected.
            self._process_batch()
            self.session.closed()
        if self.stopping:
            # Python 3.11's TaskGroup swallows a cancellation that arrives while it is already
            # aborting (a task ended the connection just as the stream was closed): shutdown
            # must not be lost, or aclose() would wait for ever.
            raise asyncio.CancelledError
        if task is not None:
            # ... and a child ending the group can leave a stale cancel request on this task.
            while task.cancelling() > cancels_before:
                task.uncancel()
        assert self.ended is not None
        return self.ended

    def wake(self) -> None:
        """Session state changed outside the reader (subscribe/unsubscribe): flush and re-plan."""
        self._pump()
        self._tick.set()

    def _pump(self, *, from_timer: bool = False) -> None:
        session = self.session
        if not session.has_output:
            return
        frames = session.frames_to_send()
        if frames:
            self._outbox.extend(frames)
            self._outbox_ready.set()
        events = session.events()
        if events:
            # Only timers declare a link stale: the reader's hot path skips this scan.
            for event in events if from_timer else ():
                if isinstance(event, Stale) and event.unconfirmed:
                    self.metrics.stale_by_kind["unconfirmed"] += 1
                    logger.warning(
                        "connection #%d: the server has not confirmed %s within %.0fs%s; "
                        "the id may be wrong or the market closed",
                        session.connection_id,
                        ", ".join(event.unconfirmed),
                        event.silent_for,
                        f" (given up on: {', '.join(event.abandoned)})" if event.abandoned else "",
                    )
                elif isinstance(event, Stale):
                    self.metrics.stale_by_kind[event.kind] += 1
                    logger.warning(
                        "stale connection #%d: no %s for %.3fs%s",
                        session.connection_id,
                        event.kind,
                        event.silent_for,
                        f" ({len(event.asset_ids)} assets)" if event.asset_ids else "",
                    )
            if not self._emit(events) and session.failure is None:
                # The ``disconnect`` policy: the ticker tears the connection down.
                session.abort(OverflowDisconnectError(self.queue.config.maxsize))
                self._tick.set()
            self.metrics.dropped_events_total = self.queue.dropped

    async def _reader(self) -> None:
        try:
            await self.transport.read_frames(self._pending, self._schedule_batch)
        except TransientError as exc:
            self._process_batch()
            raise _Ended(exc) from None

    def _schedule_batch(self) -> None:
        # Everything read before the batch's turn comes joins it: a burst costs one clock read,
        # one session call and one queue hand-off. The connections feeding the queue take turns
        # (FeederTurns), so the consumer runs between the batches of a many-socket burst.
        if not self._batch_scheduled:
            self._batch_scheduled = True
            self.queue.turns.schedule(self._process_batch)

    def _process_batch(self) -> int:
        """Process the frames read so far; returns how many."""
        self._batch_scheduled = False
        frames = self._pending
        count = len(frames)
        if not count:
            return 0
        session = self.session
        now = self.clock.now()
        try:
            if self._on_first_frame is not None:
                first, self._on_first_frame = self._on_first_frame, None
                first()
            if len(frames) == 1:
                session.receive_text(frames[0], now)
            else:
                session.receive_frames(frames, now)
            metrics = self.metrics
            metrics.messages_received_total += len(frames)
            metrics.last_message_at = now
            self._pump()
        except Exception:
            # Boundary: this runs as a loop callback, outside the task group. A bug in event
            # handling (an observer, say) must neither vanish into the loop's log nor replay
            # the same frames: drop the socket, and the reconnect reports the gap and resyncs.
            logger.exception("processing received frames failed; reconnecting")
            session.abort(ConnectionClosedError(None, "internal error processing frames"))
            self._tick.set()
        finally:
            frames.clear()
        return count

    async def _ticker(self) -> None:
        session = self.session
        clock = self.clock
        tick = self._tick
        handle: TimerHandle | None = None
        try:
            while True:
                session.handle_timer(clock.now())
                self._pump(from_timer=True)
                self.metrics.pong_rtt_seconds = session.last_pong_rtt
                if session.failure is not None:
                    # A stale peer will not complete a close handshake: drop the TCP at once.
                    self.transport.abort()
                    raise _Ended(session.failure)
                deadline = session.next_deadline()
                handle = clock.call_at(deadline, tick.set) if deadline is not None else None
                await tick.wait()
                tick.clear()
                if handle is not None:
                    handle.cancel()
                    handle = None
        finally:
            if handle is not None:
                handle.cancel()

    async def _writer(self) -> None:
        outbox = self._outbox
        ready = self._outbox_ready
        try:
            while True:
                while outbox:
                    text = outbox.popleft()
                    await self.transport.send_text(text)
                    self.frames_sent += 1
                    if logger.isEnabledFor(logging.DEBUG):
                        logger.debug("sent %s", "PING" if text == "PING" else _redact(text))
                ready.clear()
                await ready.wait()
        except TransientError as exc:
            raise _Ended(exc) from None


def _redact(frame: str) -> str:
    # The user subscription carries credentials: never log a frame that has an auth object.
    return "<user subscription (credentials redacted)>" if '"auth"' in frame else frame[:200]
