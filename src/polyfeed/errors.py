"""polyfeed's exceptions: one hierarchy, transient vs fatal explicit.

::

    PolyfeedError                     base; ``transient`` says whether a retry can help
    ├── ConfigError                   fatal: a bad setting, URL or argument
    ├── StreamClosedError             fatal: the stream was closed (aclose, shutdown)
    ├── StreamNotStartedError         a stream was iterated outside ``async with`` (a usage error)
    ├── InvalidStateError             a bug: an input a state machine refuses in its state
    ├── RestError                     a REST call failed (status, url); transient on 429/5xx
    ├── SinkError                     fatal: a recording sink failed (bad target, schema)
    │   └── SinkUnavailableError      transient: the sink cannot take writes now (server down)
    ├── TransientError                the supervisor retries these with backoff
    │   ├── ConnectError              TCP/TLS connect refused, reset or timed out
    │   ├── ServerUnavailableError    handshake answered 429 / 5xx (status, retry_after)
    │   ├── ConnectionClosedError     the socket closed (close code, reason)
    │   ├── DataTimeoutError          stale link: no data, no PONG, silent asset (kind)
    │   └── OverflowDisconnectError   the consumer fell behind under the ``disconnect`` policy
    └── FatalError                    the supervisor stops and raises these to the caller
        ├── AuthenticationError       401/403 or credentials rejected (status, attempts)
        ├── HandshakeRejectedError    any other 4xx handshake answer, e.g. a wrong path (status)
        ├── ClosedByPolicyError       the server closed for a policy violation (PolyBolt 4008)
        └── RetriesExhaustedError     ``max_attempts`` reached (attempts, last_error)

Credentials never appear in messages, ``repr`` or attributes of these exceptions.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ClosedByPolicyError",
    "ConfigError",
    "ConnectError",
    "ConnectionClosedError",
    "DataTimeoutError",
    "FatalError",
    "HandshakeRejectedError",
    "InvalidStateError",
    "OverflowDisconnectError",
    "PolyfeedError",
    "RestError",
    "RetriesExhaustedError",
    "ServerUnavailableError",
    "StreamClosedError",
    "SinkError",
    "SinkUnavailableError",
    "StreamNotStartedError",
    "TransientError",
]


class PolyfeedError(Exception):
    """Base of every polyfeed error."""

    transient: bool = False


class ConfigError(PolyfeedError, ValueError):
    """A setting, URL or argument is invalid. Fatal."""


class StreamClosedError(PolyfeedError):
    """The stream was closed; no further events or operations."""


class StreamNotStartedError(PolyfeedError, RuntimeError):
    """A stream was iterated before it was started: use ``async with stream:`` (or ``start()``
    and ``aclose()``), so that something owns its tasks and socket."""


class InvalidStateError(PolyfeedError, RuntimeError):
    """A state machine got an input its current state does not accept (a caller's bug).

    ``machine`` names the object, ``state`` its state and ``event`` the refused input.
    """

    def __init__(self, machine: str, state: str, event: str) -> None:
        super().__init__(f"{machine}: {event!r} is not allowed in state {state}")
        self.machine = machine
        self.state = state
        self.event = event


class SinkError(PolyfeedError):
    """A recording sink failed in a way a retry cannot fix (bad target, schema mismatch). Fatal."""


class SinkUnavailableError(SinkError):
    """A sink cannot take writes right now (server down, disk busy); the recorder retries."""

    transient = True


class RestError(PolyfeedError):
    """A REST call failed. ``status`` is None for network errors; ``transient`` says retry-able."""

    def __init__(self, status: int | None, url: str, detail: str = "") -> None:
        what = f"HTTP {status}" if status is not None else "network error"
        super().__init__(f"REST {url}: {what}{': ' + detail if detail else ''}")
        self.status = status
        self.url = url
        self.transient = status is None or status == 429 or status >= 500


class TransientError(PolyfeedError):
    """A failure a reconnect with backoff may cure."""

    transient = True


class ConnectError(TransientError):
    """The TCP/TLS connection could not be opened (refused, reset, timed out)."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"cannot connect to {url}: {detail}")
        self.url = url
        self.detail = detail


class ServerUnavailableError(TransientError):
    """The handshake was answered 429 or 5xx; ``retry_after`` (seconds) when the server said."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        hint = f", retry after {retry_after:g}s" if retry_after is not None else ""
        super().__init__(f"server unavailable: HTTP {status}{hint}")
        self.status = status
        self.retry_after = retry_after


class ConnectionClosedError(TransientError):
    """The WebSocket closed. ``code`` is None when TCP dropped without a close frame."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        what = f"code {code}" if code is not None else "no close frame"
        super().__init__(f"connection closed ({what}){': ' + reason if reason else ''}")
        self.code = code
        self.reason = reason


class DataTimeoutError(TransientError):
    """The link went stale: ``kind`` is ``data``, ``pong`` or ``asset``."""

    def __init__(self, kind: str, silent_for: float, asset_ids: tuple[str, ...] = ()) -> None:
        super().__init__(f"stale connection: no {kind} for {silent_for:.3f}s")
        self.kind = kind
        self.silent_for = silent_for
        self.asset_ids = asset_ids


class OverflowDisconnectError(TransientError):
    """The consumer queue overflowed under the ``disconnect`` overflow policy."""

    def __init__(self, capacity: int) -> None:
        super().__init__(f"consumer queue full ({capacity} items); reconnecting")
        self.capacity = capacity


class FatalError(PolyfeedError):
    """A failure that retrying will not cure; the stream stops."""


class AuthenticationError(FatalError):
    """Credentials were rejected: HTTP 401/403 on the handshake, or the user socket was reset.

    Polymarket rejects credentials by resetting the user socket (no close frame) before its
    first frame; that is fatal once the CLOB REST check confirms it, or after ``auth_retries``
    retries when no check can be made. ``status`` is None for a reset.
    """

    def __init__(self, status: int | None, attempts: int) -> None:
        what = f"HTTP {status}" if status is not None else "socket dropped after auth"
        super().__init__(f"authentication rejected ({what}) after {attempts} attempt(s)")
        self.status = status
        self.attempts = attempts


class HandshakeRejectedError(FatalError):
    """The handshake was answered with a 4xx other than 401/403/429 (e.g. 404: wrong path)."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(f"handshake rejected: HTTP {status} from {url}")
        self.status = status
        self.url = url


class ClosedByPolicyError(FatalError):
    """The server closed the socket for a policy violation (PolyBolt close code 4008): the
    same client would violate it again, so reconnecting in a loop is not an option."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed by server policy (code {code}){': ' + reason if reason else ''}")
        self.code = code
        self.reason = reason


class RetriesExhaustedError(FatalError):
    """``max_attempts`` connection attempts failed."""

    def __init__(self, attempts: int, last_error: BaseException | None) -> None:
        super().__init__(f"gave up after {attempts} attempt(s): {last_error}")
        self.attempts = attempts
        self.last_error = last_error
