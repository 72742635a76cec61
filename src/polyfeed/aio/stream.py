"""The public async API: ``MarketStream`` and ``UserStream``.

Each stream owns one long-lived TaskGroup holding its supervisor. Events (Polymarket's typed
events and lifecycle events) come out of one bounded queue, in wire order::

    async with polyfeed.MarketStream(["<token_id>"], profile="hft") as stream:
        async for event in stream:
            ...
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from polyfeed.aio.book_keeper import BookKeeper
from polyfeed.aio.clock import Clock, LoopClock
from polyfeed.aio.event_queue import EventQueue
from polyfeed.aio.rest import RestClient
from polyfeed.aio.supervisor import Connector, Supervisor
from polyfeed.aio.transport import connect
from polyfeed.config import StreamConfig
from polyfeed.core.backoff import Backoff
from polyfeed.core.book import BookOptions, BookRegistry, BookVerdict, ResyncLimiter
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.credentials import Credentials
from polyfeed.errors import ConfigError, PolyfeedError, StreamClosedError
from polyfeed.metrics import ConnectionMetrics

logger = logging.getLogger("polyfeed")

StreamState = Literal["idle", "connecting", "open", "backoff", "closed", "failed"]


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """A point-in-time view of a stream, cheap to take."""

    state: StreamState
    connected: bool
    seconds_since_last_message: float | None
    uptime_ratio: float
    reconnects: int
    subscribed: int
    confirmed: int
    queued_events: int
    dropped_events: int
    backoff_seconds: float
    pong_rtt_seconds: float | None
    error: str | None = None


class _Stream:
    """Shared machinery of the market and user streams."""

    _channel: Literal["market", "user"]

    def __init__(
        self,
        ids: Iterable[str],
        *,
        url: str,
        config: StreamConfig,
        credentials: Credentials | None = None,
        clock: Clock | None = None,
        rng: Callable[[], float] | None = None,
        connector: Connector = connect,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or LoopClock()
        self._ids = list(dict.fromkeys(ids))
        self._url = url
        self._credentials = credentials
        self._rng = rng or random.Random().random
        self._connector = connector
        self._group: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._queue: EventQueue | None = None
        self._supervisor: Supervisor | None = None
        self._metrics: ConnectionMetrics | None = None
        self._subscriptions = SubscriptionSet(
            self._ids, confirm_timeout=config.watchdog.confirm_timeout
        )
        self._closed = False
        self._fatal: PolyfeedError | None = None

    def __repr__(self) -> str:
        sup = self._supervisor
        state = self._state()
        return (
            f"<{type(self).__name__} {state} subscriptions={len(self._subscriptions.desired)} "
            f"supervisor={sup!r} queue={self._queue!r}>"
        )

    def _state(self) -> StreamState:
        if self._fatal is not None:
            return "failed"
        if self._closed:
            return "closed"
        if self._supervisor is None:
            return "idle"
        return self._supervisor.state

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> _Stream:
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
        """Start connecting in the background (``async with`` does this)."""
        if self._closed:
            raise StreamClosedError("stream is closed")
        if self._group is not None:
            return
        now = self.clock.now()
        self._metrics = ConnectionMetrics(now)
        self._queue = EventQueue(self.config.queue, self.clock.wall)
        self._supervisor = Supervisor(
            self._channel,
            self._url,
            self._subscriptions,
            self.config,
            self.clock,
            Backoff(self.config.backoff, self._rng),
            self._queue,
            self._metrics,
            credentials=self._credentials,
            connector=self._connector,
        )
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._task = self._group.create_task(self._supervise(), name="polyfeed-supervisor")
        self._started(self._group, self._supervisor)

    def _started(self, group: asyncio.TaskGroup, supervisor: Supervisor) -> None:
        """Hook for subclasses: more long-lived work in the stream's group."""

    def _stopping(self) -> None:
        """Hook for subclasses: cancel their tasks before the group is awaited."""

    async def _stopped(self) -> None:
        """Hook for subclasses: release resources after every task ended."""

    async def _supervise(self) -> None:
        assert self._supervisor is not None
        assert self._queue is not None
        try:
            await self._supervisor.run()
        except PolyfeedError as exc:
            # Boundary: a fatal error ends the stream; the consumer gets it from the iterator.
            logger.error("%s stream stopped: %s", self._channel, exc)
            self._fatal = exc
            self._supervisor.state = "closed"
            self._queue.close(exc)
        except Exception as exc:
            logger.exception("%s stream crashed", self._channel)
            self._fatal = PolyfeedError(f"internal error: {type(exc).__name__}: {exc}")
            self._queue.close(self._fatal)

    async def aclose(self) -> None:
        """Stop the stream: close the socket politely (bounded by ``close_timeout``), end tasks.

        Returns within about ``close_timeout`` seconds whatever the server does.
        """
        if self._closed:
            return
        self._closed = True
        if self._supervisor is not None:
            self._supervisor.request_stop()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._stopping()
        if self._group is not None:
            group, self._group = self._group, None
            await group.__aexit__(None, None, None)
        await self._stopped()
        if self._queue is not None:
            self._queue.close(self._fatal)
        if self._supervisor is not None:
            self._supervisor.state = "closed"
        logger.info("%s stream closed", self._channel)

    async def stop(self) -> None:
        """The seed design's name for :meth:`aclose`."""
        await self.aclose()

    # ------------------------------------------------------------------ consuming

    def __aiter__(self) -> _Stream:
        return self

    def __anext__(self) -> Awaitable[Any]:
        queue = self._queue
        if queue is None:
            return self._start_and_get()
        # No coroutine of our own per event: the queue's awaitable is handed out as is.
        return queue.get()

    async def _start_and_get(self) -> Any:
        await self.start()
        assert self._queue is not None
        return await self._queue.get()

    async def run(self, on_event: Callable[[Any], Awaitable[None] | None]) -> None:
        """Call ``on_event`` for every event until the stream closes (callback form).

        The callback runs on the consumer side of the queue, never on the reader, so a slow
        callback cannot delay heartbeats.
        """
        async for event in self:
            result = on_event(event)
            if inspect.isawaitable(result):
                await result

    # ------------------------------------------------------------------ control

    async def subscribe(self, ids: Iterable[str]) -> list[str]:
        """Subscribe more ids live (no reconnect); returns the ids that were new."""
        self._check_open()
        wanted = _validate_ids(ids)
        if self._supervisor is None:
            added = self._subscriptions.add(wanted, None)
            self._subscribed(added)
            return added
        added = self._supervisor.subscribe(wanted)
        self._subscribed(added)
        if added:
            logger.info("%s: subscribed %d more", self._channel, len(added))
        return added

    async def unsubscribe(self, ids: Iterable[str]) -> list[str]:
        """Unsubscribe ids live; returns the ids that were subscribed."""
        self._check_open()
        wanted = _validate_ids(ids)
        if self._supervisor is None:
            removed = self._subscriptions.remove(wanted)
            self._unsubscribed(removed)
            return removed
        removed = self._supervisor.unsubscribe(wanted)
        self._unsubscribed(removed)
        if removed:
            logger.info("%s: unsubscribed %d", self._channel, len(removed))
        return removed

    def _subscribed(self, ids: list[str]) -> None:
        """Hook for subclasses: ids newly subscribed."""

    def _unsubscribed(self, ids: list[str]) -> None:
        """Hook for subclasses: ids no longer subscribed."""

    def _check_open(self) -> None:
        if self._closed:
            raise StreamClosedError("stream is closed")

    @property
    def subscriptions(self) -> frozenset[str]:
        """The desired subscription set."""
        return self._subscriptions.desired

    @property
    def metrics(self) -> ConnectionMetrics:
        """Connection metrics (counters, gauges, Prometheus rendering)."""
        if self._metrics is None:
            self._metrics = ConnectionMetrics(self.clock.now())
        return self._metrics

    def health(self) -> Health:
        """State, freshness and counters right now."""
        metrics = self.metrics
        now = self.clock.now()
        queue = self._queue
        return Health(
            state=self._state(),
            connected=metrics.connected_since is not None,
            seconds_since_last_message=metrics.seconds_since_last_message(now),
            uptime_ratio=metrics.uptime_ratio(now),
            reconnects=sum(metrics.reconnects_by_reason.values()),
            subscribed=len(self._subscriptions.desired),
            confirmed=len(self._subscriptions.confirmed),
            queued_events=len(queue) if queue is not None else 0,
            dropped_events=queue.dropped if queue is not None else 0,
            backoff_seconds=metrics.backoff_seconds,
            pong_rtt_seconds=metrics.pong_rtt_seconds,
            error=str(self._fatal) if self._fatal is not None else None,
        )


def _validate_ids(ids: Iterable[str]) -> list[str]:
    if isinstance(ids, str):
        raise ConfigError("pass a list of ids, not a single string")
    out = list(dict.fromkeys(ids))
    for item in out:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"invalid id {item!r}: ids are non-empty strings")
    return out


def _resolve_config(profile: str, config: StreamConfig | None) -> StreamConfig:
    return config if config is not None else StreamConfig.from_profile(profile)


class MarketStream(_Stream):
    """The public market channel for a set of asset (token) ids.

    With ``books=True`` (the default) the stream keeps a verified local order book per asset in
    :attr:`books`, applied on the reader side (a slow consumer never delays them) and resynced
    on any doubt; ``reconcile_every`` (seconds) adds a periodic REST ``/book`` comparison.
    REST calls go to ``rest_url``; when only ``url`` is given, to the same host (the fake server
    serves both), else to Polymarket's CLOB.
    """

    _channel = "market"

    def __init__(
        self,
        assets: Iterable[str] = (),
        *,
        url: str | None = None,
        profile: str = "dashboard",
        config: StreamConfig | None = None,
        books: bool = True,
        rest_url: str | None = None,
        book_options: BookOptions | None = None,
        resync_limiter: ResyncLimiter | None = None,
        reconcile_every: float | None = None,
        clock: Clock | None = None,
        rng: Callable[[], float] | None = None,
        connector: Connector = connect,
    ) -> None:
        cfg = _resolve_config(profile, config)
        super().__init__(
            _validate_ids(assets),
            url=url or cfg.endpoints.market_url,
            config=cfg,
            clock=clock,
            rng=rng,
            connector=connector,
        )
        if rest_url is None:
            rest_url = _same_host_http(url) if url is not None else cfg.endpoints.rest_url
        self.rest_url = rest_url
        self._books = BookRegistry(book_options) if books else None
        if self._books is not None:
            for asset in self._ids:
                self._books.add(asset)
        self._limiter = resync_limiter or ResyncLimiter()
        if reconcile_every is not None and not reconcile_every > 0:
            raise ConfigError("reconcile_every must be > 0 seconds or None")
        self._reconcile_every = reconcile_every
        self._rest: RestClient | None = None
        self._keeper: BookKeeper | None = None
        self._timers: asyncio.Task[None] | None = None
        self._reconciler: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MarketStream:
        await self.start()
        return self

    @property
    def books(self) -> BookRegistry:
        """The local order books, by asset id (``stream.books[asset].best_bid``)."""
        if self._books is None:
            raise ConfigError("this stream was created with books=False")
        return self._books

    @property
    def book_keeper(self) -> BookKeeper | None:
        """The component that resyncs the books (counters, state), None before start."""
        return self._keeper

    async def resync(self, assets: Iterable[str] | None = None) -> None:
        """Invalidate and resync these books (all when None): REST ``/book``, else a fresh
        snapshot on the socket. ``BookInvalidated``/``BookResynced`` follow in the stream."""
        keeper = self._require_keeper()
        keeper.invalidate(list(self.books if assets is None else assets), "resync requested")

    async def reconcile(self, assets: Iterable[str] | None = None) -> dict[str, BookVerdict]:
        """Compare books with REST ``/book`` now (rate-limited); mismatching ones resync.

        Returns each asset's verdict (``ok`` with reason ``match``, ``pending`` or
        ``inconclusive``; ``invalidated`` on a mismatch). Raises ``RestError`` when REST fails.
        """
        keeper = self._require_keeper()
        return await keeper.reconcile(list(self.books if assets is None else assets))

    def _require_keeper(self) -> BookKeeper:
        if self._keeper is None:
            raise StreamClosedError("books are kept only while the stream runs (books=True)")
        return self._keeper

    def _started(self, group: asyncio.TaskGroup, supervisor: Supervisor) -> None:
        if self._books is None:
            return
        self._rest = RestClient(self.rest_url, request_timeout=self.config.connect_timeout)

        def spawn(  # keeper contract
            factory: Callable[[], Coroutine[Any, Any, None]], name: str
        ) -> asyncio.Task[None] | None:
            if self._closed:
                return None
            return group.create_task(factory(), name=name)

        self._keeper = BookKeeper(
            self._books,
            clock=self.clock,
            rest=self._rest,
            limiter=self._limiter,
            spawn=spawn,
            emit=supervisor.queue.put_many,
            refresh=supervisor.refresh,
            reconcile_every=self._reconcile_every,  # keeper contract
        )
        supervisor.observer = self._keeper
        # keeper contract: one task for all of the keeper's maintenance.
        self._timers = group.create_task(self._keeper.run(), name="polyfeed-book-maintenance")

    def _stopping(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel_tasks()
        for task in (self._timers, self._reconciler):
            if task is not None:
                task.cancel()

    async def _stopped(self) -> None:
        if self._rest is not None:
            await self._rest.aclose()

    def _subscribed(self, ids: list[str]) -> None:
        if self._books is not None:
            for asset in ids:
                self._books.add(asset)

    def _unsubscribed(self, ids: list[str]) -> None:
        if self._books is not None:
            for asset in ids:
                self._books.remove(asset)


def _same_host_http(url: str) -> str:
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


class UserStream(_Stream):
    """The authenticated user channel (orders and trades of the API key).

    ``markets`` are condition ids (None: every market of the key). Credentials default to the
    environment (``POLYMARKET_API_KEY``, ``POLYMARKET_API_SECRET``, ``POLYMARKET_API_PASSPHRASE``).
    """

    _channel = "user"

    def __init__(
        self,
        markets: Iterable[str] | None = None,
        *,
        credentials: Credentials | None = None,
        url: str | None = None,
        profile: str = "dashboard",
        config: StreamConfig | None = None,
        clock: Clock | None = None,
        rng: Callable[[], float] | None = None,
        connector: Connector = connect,
    ) -> None:
        cfg = _resolve_config(profile, config)
        super().__init__(
            _validate_ids(markets or ()),
            url=url or cfg.endpoints.user_url,
            config=cfg,
            credentials=credentials or Credentials.from_env(),
            clock=clock,
            rng=rng,
            connector=connector,
        )

    async def __aenter__(self) -> UserStream:
        await self.start()
        return self
