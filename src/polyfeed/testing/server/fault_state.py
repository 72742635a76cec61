"""Fault application: what the faults applied to one connection do to what it sends.

:class:`FaultState` belongs to one :class:`~polyfeed.testing.server.connection.FakeConnection`.
It arms each fault (static ones at once, timed ones by a timer or a message count), decides for
every generated message what goes out (:meth:`FaultState.admit`), and records in the ground-truth
log what it kept back. It acts on the socket only through the connection's methods. The faults
themselves are declared in :mod:`polyfeed.testing.faults`.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, assert_never

import msgspec

from polyfeed.errors import ConfigError
from polyfeed.testing.faults import (
    CloseWith,
    DropMessage,
    DropTcp,
    Duplicate,
    Fault,
    ForgetSubscriptions,
    Hang,
    HugeFrame,
    IgnoreSubscription,
    Malformed,
    RefuseHandshake,
    SilenceAsset,
    SlowDrip,
    StallData,
    StopPong,
    UnknownEvent,
)
from polyfeed.testing.server.log import Delivery, LoggedEvent, Outcome

if TYPE_CHECKING:
    from collections.abc import Sequence

    from polyfeed.testing.server.connection import FakeConnection

__all__ = ["FaultState"]


class _Armed:
    """A triggered fault's runtime state: ready by time, waiting for its message count."""

    __slots__ = ("base", "fault", "fired", "time_ready")

    def __init__(self, fault: Fault, time_ready: bool, base: int) -> None:
        self.fault = fault
        self.time_ready = time_ready
        self.fired = False
        # Messages already sent when armed: after_messages counts from here.
        self.base = base

    def __repr__(self) -> str:
        return (
            f"_Armed({type(self.fault).__name__}, time_ready={self.time_ready}, "
            f"base={self.base}, fired={self.fired})"
        )

    def due(self, data_sent: int) -> bool:
        after_messages = getattr(self.fault, "after_messages", None)
        return self.time_ready and (
            after_messages is None or data_sent - self.base >= after_messages
        )


class _Countdown:
    """A fault that hits the next ``remaining`` messages (with ``asset_id``, when given)."""

    __slots__ = ("asset_id", "remaining")

    def __init__(self, asset_id: str | None, remaining: int) -> None:
        self.asset_id = asset_id
        self.remaining = remaining

    def __repr__(self) -> str:
        return f"_Countdown(asset_id={self.asset_id!r}, remaining={self.remaining})"


class FaultState:
    """The runtime state of the faults applied to one connection.

    Read by the connection: ``hung`` (answer nothing), ``pong_enabled``, ``slow_delay``,
    ``active`` (some fault filters data: messages go through :meth:`admit`) and
    ``has_message_triggers``.
    """

    def __init__(self, connection: FakeConnection, faults: Sequence[Fault]) -> None:
        self._connection = connection
        self.hung = any(isinstance(f, Hang) for f in faults)
        self.pong_enabled = True
        self.slow_delay = 0.0
        self.active = False
        self._stall_until = 0.0
        self._ignore_all = False
        self._ignored: set[str] = set()
        self._silenced: set[str] = set()
        self._cured_by_unsubscribe: set[str] = set()
        self._forgotten: set[str] = set()
        self._drops: list[_Countdown] = []
        self._duplicates: list[_Countdown] = []
        self._message_triggers: list[_Armed] = []

    @property
    def has_message_triggers(self) -> bool:
        """Whether a fault waits for a message count."""
        return bool(self._message_triggers)

    def resubscribed(self, key: str) -> None:
        """``key`` was subscribed or unsubscribed again: a forgotten subscription is over."""
        self._forgotten.discard(key)

    def unsubscribed(self, key: str) -> None:
        """The client unsubscribed ``key``: a silence that lasts until then is over."""
        if key in self._cured_by_unsubscribe:
            self._cured_by_unsubscribe.discard(key)
            self._silenced.discard(key)
            self._refresh_active()

    def __repr__(self) -> str:
        return (
            f"FaultState(connection={self._connection.id}, hung={self.hung}, "
            f"pong={self.pong_enabled}, active={self.active}, "
            f"waiting={len(self._message_triggers)})"
        )

    # ------------------------------------------------------------------ arming and firing

    def arm(self, fault: Fault) -> None:
        """Apply a fault now: static ones at once, timed ones via a timer or message count."""
        connection = self._connection
        if fault not in connection.faults:
            connection.faults.append(fault)
        match fault:
            case (
                StallData()
                | StopPong()
                | CloseWith()
                | DropTcp()
                | ForgetSubscriptions()
                | Malformed()
                | UnknownEvent()
                | HugeFrame()
            ):
                armed = _Armed(fault, time_ready=fault.after <= 0, base=connection.data_sent)
                if fault.after_messages is not None:
                    self._message_triggers.append(armed)
                if not armed.time_ready:
                    connection._spawn(self._fault_timer(armed, fault.after))
                elif armed.due(connection.data_sent):
                    self._fire(armed)
            case Hang():
                self.hung = True
                connection._go_silent()
            case RefuseHandshake():
                pass  # handled at the handshake
            case IgnoreSubscription(asset_ids=asset_ids):
                if asset_ids:
                    self._ignored.update(asset_ids)
                else:
                    self._ignore_all = True
            case SlowDrip(delay=delay):
                self.slow_delay = delay
            case Duplicate(count=count, asset_id=asset_id):
                self._duplicates.append(_Countdown(asset_id, count))
            case SilenceAsset(asset_id=asset_id, until_unsubscribed=until_unsubscribed):
                self._silenced.add(asset_id)
                if until_unsubscribed:
                    self._cured_by_unsubscribe.add(asset_id)
            case DropMessage(asset_id=asset_id, count=count):
                self._drops.append(_Countdown(asset_id, count))
            case _:
                assert_never(fault)
        self._refresh_active()

    def check_message_triggers(self) -> None:
        """Fire every fault whose message count (and time) was reached."""
        for armed in list(self._message_triggers):
            if armed.due(self._connection.data_sent):
                self._fire(armed)

    async def _fault_timer(self, armed: _Armed, after: float) -> None:
        await asyncio.sleep(after)
        armed.time_ready = True
        if armed.due(self._connection.data_sent):
            self._fire(armed)

    def _refresh_active(self) -> None:
        self.active = bool(
            self._message_triggers
            or self._stall_until
            or self._ignore_all
            or self._ignored
            or self._silenced
            or self._forgotten
            or self._drops
            or self._duplicates
        )

    def _fire(self, armed: _Armed) -> None:
        if armed.fired:
            return
        armed.fired = True
        if armed in self._message_triggers:
            self._message_triggers.remove(armed)
        connection = self._connection
        fault = armed.fault
        match fault:
            case StallData(duration=duration):
                now = asyncio.get_running_loop().time()
                self._stall_until = math.inf if duration is None else now + duration
            case StopPong():
                self.pong_enabled = False
            case CloseWith(code=code, reason=reason):
                connection._close_after_queued(code, reason)
            case DropTcp(after_messages=after_messages):
                if after_messages is None:
                    connection._abort_transport("DropTcp fault")
                else:
                    # After exactly that many messages: behind the frames already queued.
                    connection._abort_after_queued("DropTcp fault")
            case ForgetSubscriptions():
                self._forgotten |= connection._forget_subscriptions()
            case Malformed(text=text):
                connection._send_fault_frame("malformed", text.encode())
            case UnknownEvent(event_type=event_type):
                server = connection._server
                payload = {
                    "event_type": event_type,
                    "market": server.markets[0].condition_id,
                    "timestamp": str(int(server.wall() * 1000)),
                    "detail": "an event type this client version does not know",
                }
                connection._send_fault_frame(event_type, msgspec.json.encode(payload))
            case HugeFrame(size_bytes=size_bytes):
                head = b'{"event_type":"huge_frame","padding":"'
                data = head + b"x" * max(0, size_bytes - len(head) - 2) + b'"}'
                connection._send_fault_frame("huge_frame", data)
            case _:
                raise ConfigError(f"{type(fault).__name__} is not a timed fault")
        self._refresh_active()

    # ------------------------------------------------------------------ data

    def _withhold(
        self, event: LoggedEvent, reason: str, keys: tuple[str, ...], outcome: Outcome = "withheld"
    ) -> None:
        self._connection._server.log._record_withheld(
            Delivery(
                seq=event.seq,
                connection_id=self._connection.id,
                outcome=outcome,
                reason=reason,
                asset_ids=keys,
            )
        )

    def admit(self, event: LoggedEvent) -> tuple[bytes, int] | None:
        """(data to send, copies) of one message, or None when nothing goes out (logged)."""
        connection = self._connection
        if self._message_triggers:
            self.check_message_triggers()
            if not connection._accepting:
                return None
        keys = event.asset_ids if connection.path == "market" else (event.market,)
        mine = tuple(k for k in keys if connection.all_markets or k in connection.subscribed)
        if not mine:
            lost = tuple(k for k in keys if k in self._forgotten)
            if lost:
                self._withhold(event, "forget", lost)
            return None
        if self._stall_until and asyncio.get_running_loop().time() < self._stall_until:
            self._withhold(event, "stall", mine)
            return None
        blocked: dict[str, str] = {}
        for key in mine:
            if key in self._silenced:
                blocked[key] = "silence"
            elif self._ignore_all or key in self._ignored:
                blocked[key] = "ignore"
        if len(blocked) == len(mine):
            self._withhold(event, next(iter(blocked.values())), mine)
            return None
        if event.event_type == "price_change" and self._take(self._drops, keys):
            self._withhold(event, "drop", mine)
            return None
        data = event.raw
        if blocked:
            payload = msgspec.json.decode(event.raw)
            payload["price_changes"] = [
                entry
                for entry in payload.get("price_changes", [])
                if entry.get("asset_id") not in blocked
            ]
            data = msgspec.json.encode(payload)
            self._withhold(event, next(iter(blocked.values())), tuple(blocked), "partial")
        copies = 2 if self._take(self._duplicates, keys) else 1
        return data, copies

    @staticmethod
    def _take(rules: list[_Countdown], keys: tuple[str, ...]) -> bool:
        """Use up one message of the first rule that matches ``keys``; whether one matched."""
        for rule in rules:
            if rule.asset_id is None or rule.asset_id in keys:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    rules.remove(rule)
                return True
        return False
