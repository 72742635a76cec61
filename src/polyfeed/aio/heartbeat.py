"""``OrderHeartbeat``: keep Polymarket's order dead-man switch fed, and raise the alarm early.

**Off unless you turn it on.** Once the first heartbeat is accepted, Polymarket cancels every open
order of the API key when no valid heartbeat arrives for 10 s. Nothing in polyfeed starts this
on its own; use it only where cancelling all orders when your process stalls is what you want::

    async with polyfeed.OrderHeartbeat(credentials, on_event=print) as heartbeat:
        ...                                # place orders; heartbeat.health() at any time

It posts ``POST /v1/heartbeats`` every ``interval`` s with the id the last reply named (the
first beat sends ``""``), answers ``Invalid Heartbeat ID`` by retrying at once with the id the
server names, and raises :class:`~polyfeed.core.heartbeat.HeartbeatAlarm` ``alarm_margin`` s
before the window closes when beats stop being accepted (a stalled endpoint, a network
failure), then :class:`~polyfeed.core.heartbeat.HeartbeatExpired` when the window has closed.
The events go to ``on_event`` (called on the event loop; keep it short) and the log
(``polyfeed.heartbeat``: ERROR for alarm and expiry, WARNING for failures and recovery).
Leaving the ``async with`` stops the beats (the orders are then cancelled by the server when
the window ends: that is the switch working).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

import msgspec

from polyfeed.aio.clock import Clock, LoopClock, TimerHandle
from polyfeed.aio.rest import HEARTBEAT_PATH, RestClient
from polyfeed.config import DEFAULT_REST_URL
from polyfeed.core.heartbeat import (
    HeartbeatEvent,
    HeartbeatMachine,
    HeartbeatState,
    OrderHeartbeatConfig,
)
from polyfeed.credentials import Credentials
from polyfeed.errors import ConfigError, RestError, StreamClosedError

__all__ = ["HeartbeatHealth", "OrderHeartbeat"]

logger = logging.getLogger("polyfeed.heartbeat")


class HeartbeatHealth(msgspec.Struct, frozen=True, kw_only=True):
    """A point-in-time view of the order heartbeat.

    ``time_left``: seconds until the server cancels the orders (None before the first accepted
    beat); ``last_error``: why the last beat was not accepted (None when it was).
    """

    state: HeartbeatState
    time_left: float | None
    beats_sent: int
    beats_accepted: int
    invalid_ids: int
    failures: int
    alarms: int
    expiries: int
    last_error: str | None


class _Reply(msgspec.Struct):
    heartbeat_id: str | None = None
    error: str | None = None
    error_msg: str | None = None


_decode_reply = msgspec.json.Decoder(_Reply).decode


class OrderHeartbeat:
    """Polymarket's order-safety heartbeat for one API key (``credentials`` must sign L2
    requests: an ``address`` and a base64 secret)."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        rest_url: str = DEFAULT_REST_URL,
        config: OrderHeartbeatConfig | None = None,
        on_event: Callable[[HeartbeatEvent], None] | None = None,
        clock: Clock | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not credentials.can_sign:
            raise ConfigError("the order heartbeat needs credentials that sign (address, secret)")
        self._credentials = credentials
        self.rest_url = rest_url
        self.url = rest_url.rstrip("/") + HEARTBEAT_PATH
        self.config = config or OrderHeartbeatConfig()
        self.machine = HeartbeatMachine(self.config)
        self._on_event = on_event
        self.clock: Clock = clock or LoopClock()
        self._wall = wall
        self._runner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def __repr__(self) -> str:
        return f"<OrderHeartbeat {self.url} {self.machine!r}>"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Turn the heartbeat on: the first beat goes out at once. Call :meth:`aclose` after."""
        if self._closed:
            raise StreamClosedError("the order heartbeat is closed")
        if self._runner is not None:
            return
        self._runner = asyncio.get_running_loop().create_task(
            self._run(), name="polyfeed-order-heartbeat"
        )

    async def aclose(self) -> None:
        """Stop beating (the server cancels the orders when the window ends) and release."""
        self._closed = True
        runner = self._runner
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.wait([runner])
        self.machine.stop()

    def health(self) -> HeartbeatHealth:
        """State, time left before the orders are cancelled, and counters."""
        machine = self.machine
        return HeartbeatHealth(
            state=machine.state,
            time_left=machine.time_left(self.clock.now()),
            beats_sent=machine.beats_sent,
            beats_accepted=machine.beats_accepted,
            invalid_ids=machine.invalid_ids,
            failures=machine.failures,
            alarms=machine.alarms,
            expiries=machine.expiries,
            last_error=machine.last_error,
        )

    def render_prometheus(self) -> str:
        """The heartbeat's metrics in the Prometheus text format."""
        health = self.health()
        lines = [
            "# TYPE polyfeed_order_heartbeat_state gauge",
            *(
                f'polyfeed_order_heartbeat_state{{state="{state}"}} '
                f"{1 if health.state == state else 0}"
                for state in ("starting", "ok", "alarm", "expired", "stopped")
            ),
            "# TYPE polyfeed_order_heartbeat_seconds_left gauge",
            "polyfeed_order_heartbeat_seconds_left "
            f"{'NaN' if health.time_left is None else f'{health.time_left:.3f}'}",
        ]
        counters = {
            "beats_sent": health.beats_sent,
            "beats_accepted": health.beats_accepted,
            "invalid_ids": health.invalid_ids,
            "failures": health.failures,
            "alarms": health.alarms,
            "expiries": health.expiries,
        }
        for name, value in counters.items():
            lines.append(f"# TYPE polyfeed_order_heartbeat_{name}_total counter")
            lines.append(f"polyfeed_order_heartbeat_{name}_total {value}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        machine = self.machine
        clock = self.clock
        handle: TimerHandle | None = None
        rest = RestClient(self.rest_url, request_timeout=self.config.request_timeout)
        try:
            async with asyncio.TaskGroup() as group:
                machine.start(clock.now())
                while True:
                    now = clock.now()
                    machine.handle_timer(now)
                    self._deliver()
                    if machine.beat_due(now):
                        beat, heartbeat_id = machine.begin_beat(now)
                        group.create_task(self._beat(rest, beat, heartbeat_id))
                    deadline = machine.next_deadline()
                    handle = None if deadline is None else clock.call_at(deadline, self._wake.set)
                    await self._wake.wait()
                    self._wake.clear()
                    if handle is not None:
                        handle.cancel()
                        handle = None
        except Exception as exc:
            # Boundary: the heartbeat's own bug must not vanish; health() shows it stopped.
            logger.exception("order heartbeat crashed; orders will be cancelled by the server")
            machine.last_error = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            if handle is not None:
                handle.cancel()
            machine.stop()
            await rest.aclose()

    def _deliver(self) -> None:
        events = self.machine.events()
        if self._on_event is None:
            return
        for event in events:
            self._on_event(event)

    async def _beat(self, rest: RestClient, beat: int, heartbeat_id: str) -> None:
        try:
            status, payload = await rest.post_heartbeat(
                self._credentials, heartbeat_id, timestamp=int(self._wall())
            )
        except RestError as exc:
            self.machine.failed(beat, str(exc), self.clock.now())
            self._wake.set()
            return
        self._report(beat, status, payload)
        self._wake.set()

    def _report(self, beat: int, status: int, payload: bytes) -> None:
        now = self.clock.now()
        machine = self.machine
        reply: _Reply | None = None
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            reply = _decode_reply(payload)
        if status == 200 and reply is not None and reply.heartbeat_id is not None:
            machine.accepted(beat, reply.heartbeat_id, now)
            return
        message = None if reply is None else (reply.error or reply.error_msg)
        if (
            status == 400
            and reply is not None
            and reply.heartbeat_id is not None
            and message is not None
            and "invalid heartbeat id" in message.lower()
        ):
            machine.invalid_id(beat, reply.heartbeat_id, now)
            return
        detail = message or payload[:100].decode("utf-8", "replace")
        machine.failed(beat, f"HTTP {status}: {detail}", now)
