"""The ``Sink`` protocol and the recorder loop that feeds a stream into a sink without loss.

The recorder is a consumer of a stream like any other, so it never slows the reader: the
stream's bounded queue sits between them. Records wait in the recorder's own bounded buffer and
go to the sink in batches, one batch per ``batch_window`` seconds (or sooner when
``batch_max`` records are waiting). When the sink is slow or unavailable the buffer fills and the
recorder stops taking events (backpressure): the stream's queue absorbs the backlog and, if it
must overflow, reports what it dropped as a ``Gap``, which is recorded like every other event.
So every event is either recorded or inside a recorded gap. A full buffer and a failing sink are
alarmed (WARNING, and the :class:`RecorderMetrics` gauges and counters).

Every record carries the event's ``event_type``, its asset ids, the server timestamp (epoch ms,
as sent) when it has one, the local receive time (epoch seconds) and its JSON. A restart of the
recorder on the same target writes a ``Gap`` for the downtime (reason ``recorder not running``)
from the last time the previous run recorded until the first data event of the new run.

Stopping: :meth:`Recorder.request_stop` (the CLI calls it on SIGTERM/SIGINT) closes the source,
records what was still queued and writes every buffered record before :meth:`Recorder.run`
returns. Cancelling ``run`` instead is an abort: the sink is closed, buffered records are lost
(like ``kill -9``, at most one batch window of them).
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from polyfeed.aio.clock import Clock, LoopClock
from polyfeed.core.messages import Malformed, Notice, PriceChange, Unknown
from polyfeed.errors import (
    ConfigError,
    PolyfeedError,
    SinkUnavailableError,
    StreamClosedError,
)
from polyfeed.events import (
    BookInvalidated,
    BookResynced,
    Gap,
    MarketStreamEvent,
    Resubscribed,
    Stale,
    UserStreamEvent,
)

logger = logging.getLogger("polyfeed.record")

RESTART_GAP_REASON = "recorder not running"


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded event: what every sink writes.

    ``event_type`` is the wire tag (``book``, ``price_change``, ...), a lifecycle tag
    (``connected``, ``gap``, ``book_invalidated``, ...), or ``notice``/``unknown``/``malformed``.
    ``asset_id`` is the first of ``assets`` (None when the event concerns no asset);
    ``server_ts`` the server timestamp in epoch ms when the event has one; ``received`` the
    local wall-clock time (epoch seconds) at which the recorder took the event from the stream;
    ``json`` the event as JSON (``unknown``: the raw frame as received). ``gap`` is set for gaps.
    """

    event_type: str
    received: float
    json: bytes
    asset_id: str | None = None
    assets: tuple[str, ...] = ()
    market: str | None = None
    server_ts: int | None = None
    gap: Gap | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One run of a recorder: what it records and when it started (epoch seconds)."""

    channel: str
    ids: tuple[str, ...]
    started: float


@dataclass(frozen=True, slots=True)
class Resume:
    """What a sink knows of the previous run on the same target (for the downtime gap).

    ``last_seen`` is the latest time (epoch seconds) for which that run's data is complete:
    the earlier of its last receive time and its last server timestamp.
    """

    last_seen: float
    assets: tuple[str, ...]


class Sink(Protocol):
    """Where a recorder writes. Calls come from one task, never concurrently.

    ``open`` prepares the target and returns what it knows of a previous run (None for a fresh
    target). ``write`` stores a batch durably or raises: :class:`SinkUnavailableError` for a
    condition worth retrying (the batch is offered again), :class:`SinkError` otherwise.
    ``aclose`` records the run's end and releases everything; it is called once, also after a
    failure. No method may block the event loop.
    """

    name: str

    async def open(self, session: SessionInfo) -> Resume | None:
        """Prepare the target; what the previous run on it left (None when there was none)."""
        ...

    async def write(self, records: Sequence[Record]) -> None:
        """Store ``records`` durably (all or nothing)."""
        ...

    async def aclose(self, ended: float) -> None:
        """Mark the run ended at ``ended`` (epoch seconds) and release the target."""
        ...


# --------------------------------------------------------------------------- records <-> events

_encoder = msgspec.json.Encoder()


def _tagged_classes() -> dict[str, type[msgspec.Struct]]:
    classes: dict[str, type[msgspec.Struct]] = {}
    for union in (MarketStreamEvent, UserStreamEvent):
        for cls in typing.get_args(union):
            tag = cls.__struct_config__.tag
            if isinstance(tag, str):
                classes[tag] = cls
    return classes


_CLASSES = _tagged_classes()
_TAGS: dict[type, str] = {cls: tag for tag, cls in _CLASSES.items()}
_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    tag: msgspec.json.Decoder(cls) for tag, cls in _CLASSES.items()
}


class _NoticeBody(msgspec.Struct):
    text: str


class _MalformedBody(msgspec.Struct):
    reason: str
    excerpt: str


def _assets_of(event: object) -> tuple[str, ...]:
    if type(event) is PriceChange:
        entries = event.price_changes
        if len(entries) == 2:
            # The usual shape (both outcome tokens of a market): no set needed for two.
            first, second = entries[0].asset_id, entries[1].asset_id
            return (first,) if first == second else (first, second)
        return tuple(dict.fromkeys(entry.asset_id for entry in entries))
    single = getattr(event, "asset_id", None)
    if isinstance(single, str):
        return (single,)
    if isinstance(event, Stale | BookInvalidated | BookResynced):
        return tuple(event.asset_ids)
    if isinstance(event, Resubscribed):
        return tuple(event.assets)
    return ()


def to_record(event: object, received: float) -> Record:
    """The record of one event a stream yielded, received at ``received`` (epoch seconds)."""
    tag = _TAGS.get(type(event))
    if tag is None:
        match event:
            case Notice():
                return Record(event_type="notice", received=received, json=_encoder.encode(event))
            case Unknown(raw=raw):
                return Record(event_type="unknown", received=received, json=bytes(raw))
            case Malformed():
                return Record(
                    event_type="malformed", received=received, json=_encoder.encode(event)
                )
        raise TypeError(f"cannot record {type(event).__name__}: not a stream event")
    if type(event) is Gap:
        return Record(
            event_type="gap",
            received=received,
            json=_encoder.encode(event),
            asset_id=event.assets[0] if event.assets else None,
            assets=tuple(event.assets),
            gap=event,
        )
    assets = _assets_of(event)
    timestamp = getattr(event, "timestamp", None)
    market = getattr(event, "market", None)
    return Record(
        event_type=tag,
        received=received,
        json=_encoder.encode(event),
        asset_id=assets[0] if assets else None,
        assets=assets,
        market=market if isinstance(market, str) else None,
        server_ts=timestamp if type(timestamp) is int else None,
    )


def from_record(event_type: str, raw: bytes | str) -> MarketStreamEvent | UserStreamEvent:
    """The typed event a record holds (the inverse of :func:`to_record`).

    Raises ``msgspec.DecodeError`` for JSON that does not match its ``event_type``.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    decoder = _DECODERS.get(event_type)
    if decoder is not None:
        event: MarketStreamEvent | UserStreamEvent = decoder.decode(data)
        return event
    if event_type == "notice":
        return Notice(msgspec.json.decode(data, type=_NoticeBody).text)
    if event_type == "malformed":
        body = msgspec.json.decode(data, type=_MalformedBody)
        return Malformed(body.reason, body.excerpt)
    if event_type == "unknown":
        tag: str | None = None
        try:
            decoded = msgspec.json.decode(data)
        except msgspec.DecodeError:
            decoded = None
        if isinstance(decoded, dict) and isinstance(decoded.get("event_type"), str):
            tag = decoded["event_type"]
        return Unknown(tag, data)
    raise msgspec.DecodeError(f"unknown recorded event_type {event_type!r}")


# --------------------------------------------------------------------------- metrics


@dataclass(slots=True)
class RecorderMetrics:
    """Counters and gauges of one recorder (Prometheus names in :meth:`render_prometheus`)."""

    records_written: int = 0
    batches_written: int = 0
    gaps_written: int = 0
    sink_errors: int = 0
    backpressure_waits: int = 0
    records_lost: int = 0
    buffered: int = 0
    sink_stalled: bool = False
    write_seconds: float = 0.0
    last_error: str | None = field(default=None)

    def render_prometheus(self) -> str:
        """The metrics in the Prometheus text format."""
        samples = [
            ("recorder_records_written_total", "counter", self.records_written),
            ("recorder_batches_written_total", "counter", self.batches_written),
            ("recorder_gaps_written_total", "counter", self.gaps_written),
            ("recorder_sink_errors_total", "counter", self.sink_errors),
            ("recorder_backpressure_waits_total", "counter", self.backpressure_waits),
            ("recorder_records_lost_total", "counter", self.records_lost),
            ("recorder_write_seconds_total", "counter", self.write_seconds),
            ("recorder_buffered_records", "gauge", self.buffered),
            ("recorder_sink_stalled", "gauge", int(self.sink_stalled)),
        ]
        lines = []
        for name, kind, value in samples:
            lines.append(f"# TYPE polyfeed_{name} {kind}")
            lines.append(f"polyfeed_{name} {value}")
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the recorder


class RecordSource(Protocol):
    """What a recorder reads: an async iterator of stream events that can be closed."""

    def __aiter__(self) -> AsyncIterator[Any]:
        """The events."""
        ...

    async def aclose(self) -> None:
        """Stop producing; events already queued are still yielded, then iteration ends."""
        ...


class Recorder:
    """Feeds every event of ``source`` (a started stream) into ``sink``, in batches.

    ``batch_window``: seconds a record may wait before its batch is written (what ``kill -9``
    can lose at most). ``batch_max``: records per write. ``max_buffer``: records held for a slow
    sink before the recorder stops taking events from the stream. ``retry_base``/``retry_max``:
    the backoff between writes to an unavailable sink; ``stop_timeout``: how long a graceful
    stop keeps retrying an unavailable sink before it gives up (logged at ERROR, counted in
    ``records_lost``).
    """

    def __init__(
        self,
        source: RecordSource,
        sink: Sink,
        *,
        channel: str,
        ids: Sequence[str],
        batch_window: float = 1.0,
        batch_max: int = 5_000,
        max_buffer: int = 50_000,
        retry_base: float = 0.1,
        retry_max: float = 5.0,
        stop_timeout: float = 10.0,
        clock: Clock | None = None,
        metrics: RecorderMetrics | None = None,
    ) -> None:
        if not batch_window > 0:
            raise ConfigError("batch_window must be > 0 seconds")
        if batch_max < 1 or max_buffer < batch_max:
            raise ConfigError("need 1 <= batch_max <= max_buffer")
        self.source = source
        self.sink = sink
        self.channel = channel
        self.ids = tuple(ids)
        self.batch_window = batch_window
        self.batch_max = batch_max
        self.max_buffer = max_buffer
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.stop_timeout = stop_timeout
        self.clock: Clock = clock or LoopClock()
        self.metrics = metrics or RecorderMetrics()
        self._buffer: deque[Record] = deque()
        # When (monotonic) each buffered record was taken: its batch window runs from then.
        self._taken_at: deque[float] = deque()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._space = asyncio.Event()
        self._source_done = False
        self._stop_requested = False
        self._stop_deadline: float | None = None
        self._restart_gap: Resume | None = None
        self._behind = False
        self._source_error: PolyfeedError | None = None
        self._state = "idle"

    def __repr__(self) -> str:
        return (
            f"<Recorder {self._state} sink={self.sink.name} buffered={len(self._buffer)}"
            f"/{self.max_buffer} written={self.metrics.records_written} "
            f"stalled={self.metrics.sink_stalled}>"
        )

    def request_stop(self) -> None:
        """Stop gracefully: close the source, record what it still holds, write everything."""
        if self._stop_requested:
            return
        self._stop_requested = True
        self._stop_deadline = self.clock.now() + self.stop_timeout
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Record until the source ends or :meth:`request_stop`; the sink is closed on return.

        Raises :class:`SinkError` when the sink fails for good, and the source's own error (a
        stream's fatal ``PolyfeedError``) once everything taken before it is written; never an
        exception group. The source is not closed on an error: its owner closes it. A recorder
        runs once.
        """
        if self._state != "idle":
            raise StreamClosedError(f"a recorder runs once ({self._state})")
        session = SessionInfo(self.channel, self.ids, self.clock.wall())
        self._state = "opening"
        resume = await self.sink.open(session)
        if resume is not None:
            self._restart_gap = resume
        self._state = "recording"
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._write_loop(), name="polyfeed-record-writer")
                stop_watch = group.create_task(self._stop_watch(), name="polyfeed-record-stop")
                await self._consume()
                # The source ended by itself or after a stop: nothing is left to close.
                stop_watch.cancel()
        except BaseExceptionGroup as group_error:
            # Exception groups stop here: the caller gets the first error itself.
            raise _first_error(group_error) from None
        finally:
            self._state = "closed"
            await self.sink.aclose(self.clock.wall())
        if self._source_error is not None:
            raise self._source_error

    async def _stop_watch(self) -> None:
        await self._stop.wait()
        await self.source.aclose()

    async def _wake_wait(self) -> None:
        self._wake.clear()
        await self._wake.wait()

    async def _consume(self) -> None:
        wall = self.clock.wall
        try:
            async for event in self.source:
                # The batch window runs from here: a record that then waits for buffer space
                # (a sink outage) has spent that wait out of its window already.
                taken = self.clock.now()
                record = to_record(event, wall())
                if self._restart_gap is not None and not _is_lifecycle(record):
                    self._append(self._downtime_gap(self._restart_gap, record.received), taken)
                    self._restart_gap = None
                if len(self._buffer) >= self.max_buffer:
                    await self._wait_for_space()
                self._append(record, taken)
        except PolyfeedError as exc:
            # The stream failed for good: what it gave before is still written, then it raises.
            logger.error("recorder: the source failed: %s", exc)
            self._source_error = exc
        if self._restart_gap is not None:
            self._append(self._downtime_gap(self._restart_gap, wall()), self.clock.now())
            self._restart_gap = None
        self._source_done = True
        self._wake.set()

    def _downtime_gap(self, resume: Resume, ended: float) -> Record:
        assets = list(dict.fromkeys((*resume.assets, *self.ids)))
        gap = Gap(
            started=min(resume.last_seen, ended),
            ended=ended,
            assets=assets,
            reason=RESTART_GAP_REASON,
        )
        logger.info("recorder: downtime since %.3f recorded as a gap", resume.last_seen)
        return to_record(gap, ended)

    def _append(self, record: Record, taken: float) -> None:
        if not self._buffer:
            # The writer arms the batch window from this record.
            self._wake.set()
        self._buffer.append(record)
        self._taken_at.append(taken)
        self.metrics.buffered = len(self._buffer)
        if len(self._buffer) >= self.batch_max:
            self._wake.set()

    async def _wait_for_space(self) -> None:
        self.metrics.backpressure_waits += 1
        if not self._behind:
            # One WARNING per episode: it ends once the buffer is down to half.
            self._behind = True
            logger.warning(
                "recorder: sink %s is behind, buffer full (%d records): taking no events until "
                "it catches up; the stream's queue holds the backlog and reports any loss as a "
                "gap",
                self.sink.name,
                len(self._buffer),
            )
        while len(self._buffer) >= self.max_buffer:
            self._space.clear()
            await self._space.wait()

    async def _write_loop(self) -> None:
        while True:
            if not self._buffer:
                if self._source_done:
                    return
                await self._wake_wait()
                continue
            oldest = self._taken_at[0]
            deadline = oldest + self.batch_window
            if (
                len(self._buffer) < self.batch_max
                and not self._source_done
                and not self._stop_requested
                and self.clock.now() < deadline
            ):
                timer = self.clock.call_at(deadline, self._wake.set)
                try:
                    await self._wake_wait()
                finally:
                    timer.cancel()
                continue
            size = min(self.batch_max, len(self._buffer))
            batch = [self._buffer.popleft() for _ in range(size)]
            for _ in range(size):
                self._taken_at.popleft()
            self.metrics.buffered = len(self._buffer)
            if self._behind and len(self._buffer) <= self.max_buffer // 2:
                self._behind = False
                logger.warning("recorder: sink %s caught up", self.sink.name)
            self._space.set()
            await self._write(batch)

    async def _write(self, batch: list[Record]) -> None:
        attempt = 0
        while True:
            started = self.clock.now()
            try:
                await self.sink.write(batch)
            except SinkUnavailableError as exc:
                self.metrics.sink_errors += 1
                self.metrics.last_error = str(exc)
                if not self.metrics.sink_stalled:
                    self.metrics.sink_stalled = True
                    logger.warning(
                        "recorder: sink %s unavailable (%s): buffering, retrying",
                        self.sink.name,
                        exc,
                    )
                delay = min(self.retry_max, self.retry_base * 2**attempt)
                attempt += 1
                if self._stop_deadline is not None and self.clock.now() + delay > (
                    self._stop_deadline
                ):
                    self._give_up(batch, exc)
                    return
                await self.clock.sleep_until(self.clock.now() + delay)
                continue
            self.metrics.write_seconds += self.clock.now() - started
            self.metrics.records_written += len(batch)
            self.metrics.batches_written += 1
            self.metrics.gaps_written += sum(record.gap is not None for record in batch)
            if self.metrics.sink_stalled:
                self.metrics.sink_stalled = False
                logger.warning(
                    "recorder: sink %s is back after %d failures", self.sink.name, attempt
                )
            return

    def _give_up(self, batch: list[Record], exc: SinkUnavailableError) -> None:
        lost = [*batch, *self._buffer]
        self._buffer.clear()
        self._taken_at.clear()
        self.metrics.buffered = 0
        self.metrics.records_lost += len(lost)
        logger.error(
            "recorder: stopping with sink %s still unavailable (%s): %d records between %.3f "
            "and %.3f were not written",
            self.sink.name,
            exc,
            len(lost),
            lost[0].received,
            lost[-1].received,
        )


_LIFECYCLE_TAGS = frozenset(
    {
        "connected",
        "disconnected",
        "reconnecting",
        "stale",
        "resubscribed",
        "gap",
        "book_invalidated",
        "book_resynced",
    }
)


def _is_lifecycle(record: Record) -> bool:
    return record.event_type in _LIFECYCLE_TAGS


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of ``group`` that is not a cancellation (else the first leaf)."""
    leaves: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    for leaf in leaves:
        if not isinstance(leaf, asyncio.CancelledError):
            return leaf
    return leaves[0]
