"""The reconnect loop: connect, run, classify the ending, back off, replay subscriptions.

Transient endings (closes, drops, stale links, 429/5xx, refused connections) are retried for ever
by default with capped exponential backoff and jitter; the backoff resets only once a connection
stayed healthy for ``stable_for``. Fatal endings (a rejected handshake, bad config, rejected
credentials, ``max_attempts`` reached) stop the loop and raise.

Rejected credentials on the user channel look like a reset without a close frame before the
first frame; a close frame (a server restart: 1001, 1011, 1012) never counts. A suspected
rejection is confirmed with the optional ``credentials_check`` (one authenticated REST call:
valid -> transient, invalid -> fatal at once); without one, or when it is inconclusive, more
than ``auth_retries`` consecutive suspected rejections are fatal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, Protocol

from polyfeed.aio.clock import Clock
from polyfeed.aio.connection import Connection
from polyfeed.aio.event_queue import EventQueue
from polyfeed.aio.rest import CredentialsCheck
from polyfeed.aio.transport import Transport, connect
from polyfeed.config import StreamConfig
from polyfeed.core.backoff import Backoff
from polyfeed.core.channel import ChannelSession
from polyfeed.core.codec import FrameDecoder
from polyfeed.core.gaps import GapTracker
from polyfeed.core.session import Channel, Session
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.credentials import Credentials
from polyfeed.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionClosedError,
    DataTimeoutError,
    InvalidStateError,
    ServerUnavailableError,
    TransientError,
)
from polyfeed.events import Connected, Disconnected, Gap, Reconnecting, Resubscribed
from polyfeed.metrics import ConnectionMetrics

logger = logging.getLogger("polyfeed.supervisor")

Connector = Callable[..., Awaitable[Transport]]

SessionFactory = Callable[[int], ChannelSession]
"""Builds the protocol session of connection number ``n`` (1, 2, ...) of a stream."""

EndingPolicy = Callable[[TransientError], float]
"""A socket's rule for how a connection's end shapes the next attempt: the least delay before
it (seconds; 0 leaves the backoff alone), or a :class:`~polyfeed.errors.FatalError` raised."""


class EventObserver(Protocol):
    """Sees every event before the consumer queue (on the reader), and may add events after.

    The order book keeper is one: it applies market events to the local books and appends
    ``BookInvalidated``/``BookResynced`` where they happen.
    """

    def observe(self, events: Sequence[object]) -> Sequence[object]:
        """The events to enqueue (``events`` itself when nothing is added)."""
        ...


State = Literal["idle", "connecting", "open", "backoff", "closed"]

# The supervisor's life: idle -> connecting -> open | backoff -> ... -> closed (final), and
# closed from anywhere (a fatal error, or shutdown). Anything else is a bug and raises.
_TRANSITIONS: dict[State, frozenset[State]] = {
    "idle": frozenset({"connecting", "closed"}),
    "connecting": frozenset({"open", "backoff", "closed"}),
    "open": frozenset({"backoff", "closed"}),
    "backoff": frozenset({"connecting", "closed"}),
    "closed": frozenset(),
}


def reason_slug(error: BaseException) -> str:
    """A short, label-safe name for why a connection ended (metrics, logs)."""
    if isinstance(error, DataTimeoutError):
        return f"stale_{error.kind}"
    if isinstance(error, ConnectionClosedError):
        return "dropped" if error.code is None else f"closed_{error.code}"
    if isinstance(error, ServerUnavailableError):
        return f"http_{error.status}"
    if isinstance(error, AuthenticationError):
        return "auth"
    return type(error).__name__.removesuffix("Error").lower()


class Supervisor:
    """Keeps one logical connection alive across physical ones.

    ``channel`` names the socket (``market``, ``user``, ``rtds``, ``sports``, ...). Without a
    ``session_factory`` it must be ``market`` or ``user`` and every connection gets a CLOB
    :class:`~polyfeed.core.session.Session`; other sockets pass a factory for their own pure
    session (:class:`~polyfeed.core.channel.ChannelSession`). Backoff, gaps, metrics and the
    lifecycle events are the same for every socket.
    """

    def __init__(
        self,
        channel: str,
        url: str,
        subscriptions: SubscriptionSet,
        config: StreamConfig,
        clock: Clock,
        backoff: Backoff,
        queue: EventQueue,
        metrics: ConnectionMetrics,
        *,
        credentials: Credentials | None = None,
        connector: Connector = connect,
        observer: EventObserver | None = None,
        credentials_check: CredentialsCheck | None = None,
        session_factory: SessionFactory | None = None,
        ending_policy: EndingPolicy | None = None,
    ) -> None:
        self.channel = channel
        self.url = url
        self.subscriptions = subscriptions
        self.config = config
        self.clock = clock
        self.backoff = backoff
        self.queue = queue
        self.metrics = metrics
        self.connection: Connection[ChannelSession] | None = None
        self._state: State = "idle"
        self.connections_opened = 0
        self.attempts = 0
        self._credentials = credentials
        self._connector = connector
        self._credentials_check = credentials_check
        self._auth_failures = 0
        self.observer = observer
        self.stopping = False
        self.gaps = GapTracker()
        self.decoder: FrameDecoder | None = None
        if session_factory is None:
            session_factory = self._clob_session_factory()
        self._session_factory = session_factory
        self._ending_policy = ending_policy

    def _clob_session_factory(self) -> SessionFactory:
        channel: Channel
        if self.channel == "market":
            channel = "market"
        elif self.channel == "user":
            channel = "user"
        else:
            raise ConfigError(f"channel {self.channel!r} needs a session_factory")
        decoder = self.decoder = FrameDecoder(channel)
        self.metrics.decode_stats = decoder.stats

        def factory(connection_id: int) -> ChannelSession:
            return Session(
                channel,
                self.subscriptions,
                self.config,
                decoder,
                credentials=self._credentials,
                connection_id=connection_id,
            )

        return factory

    @property
    def state(self) -> State:
        """Where the reconnect loop stands; only the supervisor's own loop changes it."""
        return self._state

    def _set_state(self, state: State) -> None:
        old = self._state
        if state == old:
            return
        if state not in _TRANSITIONS[old]:
            raise InvalidStateError("Supervisor", old, state)
        logger.debug("%s supervisor: %s -> %s", self.channel, old, state)
        self._state = state

    def refresh(self, ids: list[str]) -> None:
        """Request fresh snapshots of these assets on the live socket (no-op when offline)."""
        connection = self.connection
        if connection is not None:
            connection.session.refresh(ids, self.clock.now())
            connection.wake()

    def request_stop(self) -> None:
        """The stream is closing: the cancellation that follows must not be lost."""
        self.stopping = True
        if self.connection is not None:
            self.connection.stopping = True

    def emit(self, events: Sequence[object]) -> bool:
        """Hand events to the observer, then the queue; False asks for a disconnect."""
        if self.observer is not None:
            events = self.observer.observe(events)
        return self.queue.put_many(events)

    def __repr__(self) -> str:
        return (
            f"<Supervisor {self.channel} {self._state} url={self.url} "
            f"connections={self.connections_opened} backoff_attempt={self.backoff.attempt}>"
        )

    def _wall_of(self, mono: float) -> float:
        return self.clock.wall() - (self.clock.now() - mono)

    def subscribe(self, ids: list[str]) -> list[str]:
        """Add assets (markets on the user channel); live when connected."""
        connection = self.connection
        if connection is None:
            return self.subscriptions.add(ids, None)
        added = connection.session.subscribe(ids, self.clock.now())
        connection.wake()
        return added

    def unsubscribe(self, ids: list[str]) -> list[str]:
        """Remove assets (markets on the user channel); live when connected."""
        connection = self.connection
        if connection is None:
            return self.subscriptions.remove(ids)
        removed = connection.session.unsubscribe(ids)
        connection.wake()
        return removed

    async def run(self) -> None:
        """Connect and reconnect until cancelled; raises only fatal errors.

        The supervisor is ``closed`` once this returns or raises; it runs once (a second
        ``run`` raises :class:`~polyfeed.errors.InvalidStateError`).
        """
        if self._state != "idle":
            raise InvalidStateError("Supervisor", self._state, "run")
        try:
            await self._reconnect_loop()
        finally:
            self._set_state("closed")

    async def _reconnect_loop(self) -> None:
        while True:
            if self.stopping:
                raise asyncio.CancelledError
            self._set_state("connecting")
            self.attempts += 1
            error: TransientError | AuthenticationError
            retry_after = 0.0
            try:
                transport = await self._connector(
                    self.url,
                    connect_timeout=self.config.connect_timeout,
                    max_frame_bytes=self.config.max_frame_bytes,
                    auth_attempt=self._auth_failures + 1,
                )
            except AuthenticationError as exc:
                self._auth_failures += 1
                if self._auth_failures > self.config.backoff.auth_retries:
                    raise AuthenticationError(exc.status, self._auth_failures) from None
                error = exc
                logger.warning("credentials rejected (HTTP %s); retrying", exc.status)
                self.metrics.on_attempt_failed(reason_slug(exc))
            except ServerUnavailableError as exc:
                error = exc
                retry_after = exc.retry_after or 0.0
                self.metrics.on_attempt_failed(reason_slug(exc))
            except TransientError as exc:
                error = exc
                self.metrics.on_attempt_failed(reason_slug(exc))
            else:
                error, session = await self._run_connection(transport)
                await self._check_user_auth(session, error)
                if self._ending_policy is not None:
                    retry_after = self._ending_policy(error)
            self._set_state("backoff")
            delay = self.backoff.next_delay(at_least=retry_after, last_error=error)
            self.metrics.backoff_seconds = delay
            level = logging.WARNING if self.backoff.attempt > 5 else logging.INFO
            logger.log(
                level,
                "%s: reconnect attempt %d in %.2fs (%s)",
                self.channel,
                self.backoff.attempt,
                delay,
                error,
            )
            self.emit([Reconnecting(attempt=self.backoff.attempt, delay=delay, error=str(error))])
            await self.clock.sleep_until(self.clock.now() + delay)
            # ``disconnect`` policy: a new connection into a queue still nearly full would
            # overflow at once; reconnect once the consumer has drained it to the low-water mark.
            await self.queue.drained()

    def _first_frame(self) -> None:
        # The first frame on a new socket (a PONG or data) proves the server has processed the
        # subscription sent before it: events from then on reach us, earlier ones may not have.
        outage = self.gaps.first_frame(self.clock.wall())
        if outage is None:
            return
        self.emit(
            [
                Gap(
                    started=outage.started,
                    ended=outage.ended,
                    assets=sorted(self.subscriptions.desired),
                    reason=outage.reason,
                )
            ]
        )

    async def _run_connection(self, transport: Transport) -> tuple[TransientError, ChannelSession]:
        self.connections_opened += 1
        connection_id = self.connections_opened
        session = self._session_factory(connection_id)
        connection: Connection[ChannelSession] = Connection(
            transport,
            session,
            self.clock,
            self.queue,
            self.metrics,
            emit=self.emit,
            on_first_frame=self._first_frame,
        )
        now = self.clock.now()
        self.backoff.connected(now)
        self.metrics.on_connected(now)
        self._set_state("open")
        replay = sorted(self.subscriptions.desired)
        logger.info(
            "%s: connected to %s (connection #%d, %d subscriptions)",
            self.channel,
            self.url,
            connection_id,
            len(replay),
        )
        lifecycle: list[object] = [
            Connected(url=self.url, attempt=self.attempts, connection_id=connection_id)
        ]
        if connection_id > 1 and replay:
            lifecycle.append(Resubscribed(assets=replay, connection_id=connection_id))
        self.emit(lifecycle)
        self.connection = connection
        connection.stopping = self.stopping
        try:
            error = await connection.run()
        except BaseException:
            # Shutdown (cancellation): a bounded polite close, then release.
            self.connection = None
            await transport.close(self.config.close_timeout)
            raise
        self.connection = None
        await transport.release()
        last_data = session.last_data_at
        slug = reason_slug(error)
        self.gaps.lost(
            slug, None if last_data is None else self._wall_of(last_data), self.clock.wall()
        )
        now = self.clock.now()
        # Any frame after the subscription (a PONG too) shows the link worked: if this was the
        # first failure since the last reset, the next attempt gets the fast retry.
        self.backoff.disconnected(now, delivered=session.frames_received > 0)
        self.metrics.on_disconnected(now, slug)
        code = error.code if isinstance(error, ConnectionClosedError) else None
        logger.warning("%s: connection #%d ended: %s", self.channel, connection_id, error)
        self.emit([Disconnected(reason=str(error), code=code, connection_id=connection_id)])
        return error, session

    async def _check_user_auth(self, session: ChannelSession, error: TransientError) -> None:
        """Classify how a user socket ended: a credential rejection is fatal, anything else not.

        Polymarket rejects bad credentials by resetting the socket right after the subscribe:
        no close frame, and nothing received before it (the first PING goes out with the
        subscription, so a healthy socket answers PONG within a round trip). Only that counts
        as a suspected rejection; a close frame (1001, 1011, 1012 on a server restart) is a
        server speaking normally, and clears the count like any frame received.

        A suspected rejection is confirmed with the credentials check when there is one (one
        authenticated REST call): valid -> transient, invalid -> AuthenticationError at once.
        Without a check, or when it is inconclusive, more than ``auth_retries`` consecutive
        suspected rejections are fatal.
        """
        if self.channel != "user":
            return
        suspected = (
            session.frames_received == 0
            and isinstance(error, ConnectionClosedError)
            and error.code is None
        )
        if not suspected:
            self._auth_failures = 0
            return
        self._auth_failures += 1
        verdict = None if self._credentials_check is None else await self._credentials_check()
        if verdict is True:
            logger.info("%s: socket reset before its first frame; credentials valid", self.channel)
            self._auth_failures = 0
        elif verdict is False or self._auth_failures > self.config.backoff.auth_retries:
            raise AuthenticationError(None, self._auth_failures)
