"""Declarative fault script for :class:`polyfeed.testing.FakePolymarket`.

A fault is a frozen dataclass; a :class:`FaultPlan` says which faults apply to which connection
attempt (0-based count of connections to a path: ``"market"`` = ``/ws/market``, ``"user"`` =
``/ws/user``) plus faults for every attempt. The server reads the plan when a handshake arrives;
``FakePolymarket.inject`` applies a fault to a live connection.

Timing fields, common to the faults that have them:

- ``after``: seconds after the WebSocket opened (or after ``inject`` for live injection);
- ``after_messages``: the number of data messages (events; a snapshot array of n books is n)
  handed to that connection since the fault was armed (at the open, or by ``inject``). When both
  are given, both must be reached. Checked between messages; the fault fires as soon as the
  count is reached (a ``CloseWith(after_messages=2)`` closes right after the second message).

Per-asset faults name token ids on ``/ws/market`` and condition ids on ``/ws/user`` (the
subscription keys of that channel).

What each fault does, and what the ground-truth log records:

====================== =============================================================================
StallData              data stops (``duration`` s or for good), PONG goes on; log: withheld "stall"
StopPong               text PING is no longer answered; data goes on
CloseWith              a close frame with ``code``/``reason`` (after the frames already queued)
DropTcp                the TCP connection is aborted: no close frame (clients see 1006)
Hang                   the socket accepts and reads bytes, answers nothing (no PONG, no protocol
                       pong, no close reply) and sends nothing; ``during_handshake`` hangs the
                       HTTP upgrade itself (injected live, protocol pings and close frames are
                       still answered by aiohttp)
RefuseHandshake        an HTTP ``status`` answer instead of the upgrade, ``Retry-After`` when given
IgnoreSubscription     the assets are accepted but get no snapshot and no data; withheld "ignore"
ForgetSubscriptions    the server drops every subscription of the socket (PONG goes on); a later
                       subscribe counts as new and gets a snapshot; log: withheld "forget"
Malformed              one malformed JSON frame (``text``)
UnknownEvent           one well-formed event of an unknown ``event_type``
HugeFrame              one frame of about ``size_bytes`` (an unknown event with padding)
SlowDrip               every frame (PONG too) is sent ``delay`` s late
Duplicate              the next ``count`` data messages are sent twice
SilenceAsset           that asset gets nothing; in a two-token ``price_change`` its entries are cut
                       out (log: "partial") or the message withheld ("silence")
DropMessage            the next ``count`` ``price_change`` messages (with ``asset_id`` when given)
                       are not sent; log: withheld "drop"
====================== =============================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from polyfeed.errors import ConfigError

__all__ = [
    "CloseWith",
    "DropMessage",
    "DropTcp",
    "Duplicate",
    "Fault",
    "FaultPlan",
    "ForgetSubscriptions",
    "Hang",
    "HugeFrame",
    "IgnoreSubscription",
    "Malformed",
    "Path",
    "RefuseHandshake",
    "SilenceAsset",
    "SlowDrip",
    "StallData",
    "StopPong",
    "UnknownEvent",
]

Path = Literal["market", "user"]


def _check_timing(after: float, after_messages: int | None) -> None:
    if after < 0:
        raise ConfigError(f"fault 'after' must be >= 0, got {after}")
    if after_messages is not None and after_messages < 0:
        raise ConfigError(f"fault 'after_messages' must be >= 0, got {after_messages}")


@dataclass(frozen=True, slots=True)
class StallData:
    """Stop sending data (PONG continues) for ``duration`` seconds, or for good when None."""

    after: float = 0.0
    after_messages: int | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        _check_timing(self.after, self.after_messages)


@dataclass(frozen=True, slots=True)
class StopPong:
    """Stop answering text ``PING``; data keeps flowing."""

    after: float = 0.0
    after_messages: int | None = None

    def __post_init__(self) -> None:
        _check_timing(self.after, self.after_messages)


@dataclass(frozen=True, slots=True)
class CloseWith:
    """Close the WebSocket with ``code`` and ``reason``."""

    code: int = 1011
    reason: str = ""
    after: float = 0.0
    after_messages: int | None = None

    def __post_init__(self) -> None:
        _check_timing(self.after, self.after_messages)
        if not 1000 <= self.code <= 4999:
            raise ConfigError(f"invalid close code {self.code}")


@dataclass(frozen=True, slots=True)
class DropTcp:
    """Abort the TCP connection without a close frame (the client sees code 1006)."""

    after: float = 0.0
    after_messages: int | None = None

    def __post_init__(self) -> None:
        _check_timing(self.after, self.after_messages)


@dataclass(frozen=True, slots=True)
class Hang:
    """Accept and read, answer nothing, send nothing; or hang the HTTP upgrade itself."""

    during_handshake: bool = False


@dataclass(frozen=True, slots=True)
class RefuseHandshake:
    """Answer the upgrade request with HTTP ``status`` (and ``Retry-After`` when given)."""

    status: int = 503
    retry_after: float | None = None
    body: str = ""

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ConfigError(f"RefuseHandshake status must be 4xx/5xx, got {self.status}")


@dataclass(frozen=True, slots=True)
class IgnoreSubscription:
    """Accept these assets (all when empty) but send no snapshot and no data for them."""

    asset_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ForgetSubscriptions:
    """The server silently forgets every subscription of the socket; PONG continues."""

    after: float = 0.0
    after_messages: int | None = None

    def __post_init__(self) -> None:
        _check_timing(self.after, self.after_messages)


@dataclass(frozen=True, slots=True)
class Malformed:
    """Send one malformed JSON frame."""

    after: float = 0.0
    after_messages: int | None = None
    text: str = '{"event_type": "price_change", "market": "0x'

    def __post_init__(self) -> None:
        _check_timing(self.after, self.after_messages)


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """Send one well-formed event whose ``event_type`` no client knows."""

    after: float = 0.0
    after_messages: int | None = None
    event_type: str = "settlement_preview"

    def __post_init__(self) -> None:
        _check_timing(self.after, self.after_messages)


@dataclass(frozen=True, slots=True)
class HugeFrame:
    """Send one frame of about ``size_bytes`` bytes (valid JSON, unknown event with padding)."""

    size_bytes: int = 1 << 20
    after: float = 0.0
    after_messages: int | None = None

    def __post_init__(self) -> None:
        _check_timing(self.after, self.after_messages)
        if self.size_bytes < 64:
            raise ConfigError("HugeFrame size_bytes must be >= 64")


@dataclass(frozen=True, slots=True)
class SlowDrip:
    """Delay every frame sent on the connection by ``delay`` seconds."""

    delay: float = 0.05

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ConfigError("SlowDrip delay must be >= 0")


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Send the next ``count`` data messages (for ``asset_id`` when given) twice."""

    count: int = 1
    asset_id: str | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError("Duplicate count must be >= 1")


@dataclass(frozen=True, slots=True)
class SilenceAsset:
    """This asset gets no data on the connection while the others flow.

    ``until_unsubscribed``: a dead subscription that a redrive cures: the silence ends when the
    client unsubscribes the asset (and subscribes it again); otherwise it lasts the connection.
    """

    asset_id: str
    until_unsubscribed: bool = False


@dataclass(frozen=True, slots=True)
class DropMessage:
    """Skip the next ``count`` ``price_change`` messages (containing ``asset_id`` when given)."""

    asset_id: str | None = None
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError("DropMessage count must be >= 1")


Fault = (
    StallData
    | StopPong
    | CloseWith
    | DropTcp
    | Hang
    | RefuseHandshake
    | IgnoreSubscription
    | ForgetSubscriptions
    | Malformed
    | UnknownEvent
    | HugeFrame
    | SlowDrip
    | Duplicate
    | SilenceAsset
    | DropMessage
)

_PATHS: tuple[Path, ...] = ("market", "user")


def _check_path(path: str) -> Path:
    if path == "market":
        return "market"
    if path == "user":
        return "user"
    raise ConfigError(f"unknown path {path!r}; use 'market' or 'user'")


class FaultPlan:
    """Which faults hit which connection attempt, per path; mutable while the server runs.

    ``FaultPlan({0: [StallData()], 2: [DropTcp(after=0.5)]}, every=[SlowDrip(0.01)])`` scripts
    the market channel; ``user=``/``user_every=`` script ``/ws/user``.
    """

    def __init__(
        self,
        market: Mapping[int, Iterable[Fault]] | None = None,
        *,
        every: Iterable[Fault] = (),
        user: Mapping[int, Iterable[Fault]] | None = None,
        user_every: Iterable[Fault] = (),
    ) -> None:
        self._by_attempt: dict[tuple[Path, int], list[Fault]] = {}
        self._every: dict[Path, list[Fault]] = {"market": list(every), "user": list(user_every)}
        for path, mapping in (("market", market), ("user", user)):
            for attempt, faults in (mapping or {}).items():
                for fault in faults:
                    self.add(attempt, fault, path=_check_path(path))

    def add(self, attempt: int, fault: Fault, *, path: Path = "market") -> None:
        """Script ``fault`` for connection attempt ``attempt`` (0-based) on ``path``."""
        if attempt < 0:
            raise ConfigError(f"attempt must be >= 0, got {attempt}")
        self._by_attempt.setdefault((_check_path(path), attempt), []).append(fault)

    def add_every(self, fault: Fault, *, path: Path = "market") -> None:
        """Script ``fault`` for every later connection attempt on ``path``."""
        self._every[_check_path(path)].append(fault)

    def clear(self, path: Path | None = None) -> None:
        """Remove every scripted fault (of ``path``, or of both paths)."""
        for each in _PATHS if path is None else (_check_path(path),):
            self._every[each].clear()
            for key in [k for k in self._by_attempt if k[0] == each]:
                del self._by_attempt[key]

    def for_attempt(self, attempt: int, path: Path = "market") -> tuple[Fault, ...]:
        """The faults of attempt ``attempt`` on ``path``: the every-attempt ones first."""
        path = _check_path(path)
        return (*self._every[path], *self._by_attempt.get((path, attempt), ()))

    def __bool__(self) -> bool:
        return any(self._every.values()) or any(self._by_attempt.values())

    def __repr__(self) -> str:
        scripted = {
            f"{p}#{a}": [type(f).__name__ for f in fs] for (p, a), fs in self._by_attempt.items()
        }
        every = {p: [type(f).__name__ for f in fs] for p, fs in self._every.items() if fs}
        return f"FaultPlan(by_attempt={scripted}, every={every})"
