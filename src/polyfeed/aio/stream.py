"""The public async API: ``MarketStream`` and ``UserStream``.

A stream is used inside ``async with``, which owns everything it starts::

    async with polyfeed.MarketStream(["<token_id>"], profile="hft") as stream:
        async for event in stream:          # polyfeed.MarketStreamEvent
            ...

Ownership: ``start()`` creates ONE runner task that the stream owns; the runner holds the
stream's TaskGroup in its own ``async with`` (supervisor, book maintenance, resyncs), and
``aclose()`` cancels the runner and waits for it. Iterating a stream that was not started raises
``StreamNotStartedError`` instead of starting one lazily: an ``async for`` cannot run cleanup at
``break`` (an abandoned async iterator is finalized later, by the garbage collector, in a task
nobody owns), so a lazily started stream would leave its tasks and socket running. Where no
``async with`` is wanted, ``await stream.run(on_event)`` owns start and close itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, Self, TypeVar, cast

import msgspec

from polyfeed.aio.book_keeper import BookKeeper
from polyfeed.aio.clock import Clock, LoopClock
from polyfeed.aio.event_queue import EventQueue, QueueIterator
from polyfeed.aio.pool import ConnectionHealth, ConnectionPool
from polyfeed.aio.redundant import RedundantPool
from polyfeed.aio.rest import RestClient, credentials_check
from polyfeed.aio.supervisor import Connector, EndingPolicy, SessionFactory, Supervisor
from polyfeed.aio.transport import connect
from polyfeed.config import Endpoints, StreamConfig
from polyfeed.core.backoff import Backoff
from polyfeed.core.book import BookOptions, BookRegistry, BookVerdict, ResyncLimiter
from polyfeed.core.placement import Shard, parse_shard
from polyfeed.core.subscriptions import SubscriptionSet
from polyfeed.credentials import Credentials
from polyfeed.errors import ConfigError, PolyfeedError, StreamClosedError, StreamNotStartedError
from polyfeed.events import MarketStreamEvent, UserStreamEvent
from polyfeed.metrics import ConnectionMetrics, PoolMetrics

logger = logging.getLogger("polyfeed")

StreamState = Literal["idle", "connecting", "open", "backoff", "closed", "failed"]

EventT = TypeVar("EventT")

TaskFactory = Callable[[], Coroutine[Any, Any, None]]


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """A point-in-time view of a stream, cheap to take (counters read, nothing scanned).

    ``maintenance_restarts`` counts crashes of the book keeper's maintenance loops (each restarted
    with backoff); ``maintenance_error`` is the last such crash, None when there was none.
    ``connections``: each connection of a market stream (assets, state, last message age,
    reconnects); the top-level fields are the totals (``state`` is the worst connection's).
    """

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
    maintenance_restarts: int = 0
    maintenance_error: str | None = None
    connections: list[ConnectionHealth] = []


class _Driver(Protocol):
    """What runs a stream's connections: one supervisor, or a pool of them."""

    @property
    def state(self) -> StreamState: ...

    queue: EventQueue

    async def run(self) -> None: ...

    def request_stop(self) -> None: ...

    def subscribe(self, ids: list[str]) -> list[str]: ...

    def unsubscribe(self, ids: list[str]) -> list[str]: ...

    def refresh(self, ids: list[str]) -> None: ...


class _Stream(Generic[EventT]):
    """Shared machinery of the market and user streams."""

    _channel: str

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
        self.url = url
        self.clock: Clock = clock or LoopClock()
        self._ids = list(dict.fromkeys(ids))
        self._credentials = credentials
        self._rng = rng or random.Random().random
        self._connector = connector
        self._runner: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._queue: EventQueue | None = None
        self._driver: _Driver | None = None
        self._metrics: ConnectionMetrics | None = None
        self._subscriptions = SubscriptionSet(
            self._ids, confirm_timeout=config.watchdog.confirm_timeout
        )
        # The stream's own status; the supervisor's state is only read, never written.
        self._stopping = False
        self._closed = False
        self._fatal: PolyfeedError | None = None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self._state()} "
            f"subscriptions={len(self._subscriptions.desired)} tasks={len(self._tasks)} "
            f"driver={self._driver!r} queue={self._queue!r}>"
        )

    def _state(self) -> StreamState:
        if self._fatal is not None:
            return "failed"
        if self._closed:
            return "closed"
        if self._driver is None:
            return "idle"
        return self._driver.state

    # ------------------------------------------------------------------ lifecycle

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
        """Start connecting in the background (``async with`` does this).

        Whoever calls ``start()`` must call :meth:`aclose`; ``async with`` does both.
        """
        if self._closed:
            raise StreamClosedError("stream is closed")
        if self._runner is not None:
            return
        self._metrics = self.metrics
        queue = self._queue = EventQueue(self.config.queue, self.clock.wall, now=self.clock.now)
        driver = self._driver = self._make_driver(queue)
        ready = asyncio.Event()
        # The one task the stream owns: aclose() cancels it and waits for it to end.
        self._runner = asyncio.get_running_loop().create_task(
            self._run(driver, queue, ready), name=f"polyfeed-{self._channel}-stream"
        )
        try:
            # Once the runner holds its group, work can be spawned into it (resync() at once).
            await ready.wait()
        except BaseException:
            await self.aclose()
            raise

    def _make_driver(self, queue: EventQueue) -> _Driver:
        """One supervisor over the stream's subscriptions (a market stream: a pool)."""
        return Supervisor(
            self._channel,
            self.url,
            self._subscriptions,
            self.config,
            self.clock,
            Backoff(self.config.backoff, self._rng),
            queue,
            self.metrics,
            credentials=self._credentials,
            connector=self._connector,
            credentials_check=credentials_check(
                self.config.endpoints.rest_url,
                self._credentials,
                request_timeout=self.config.connect_timeout,
            ),
            session_factory=self._session_factory(),
            ending_policy=self._ending_policy(),
        )

    async def _run(self, driver: _Driver, queue: EventQueue, ready: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._start_background(driver)
                ready.set()
                await self._supervise(driver)
                # The supervisor gave up (a fatal error): nothing is left for the rest to serve.
                self._stopping = True
                for task in list(self._tasks):
                    task.cancel()
        except Exception as exc:
            # Boundary: no exception group leaves the stream; the consumer gets one error.
            logger.exception("%s stream crashed", self._channel)
            self._fatal = PolyfeedError(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._group = None
            self._stopping = True
            ready.set()
            queue.close(self._fatal)
            await self._release()

    async def _supervise(self, driver: _Driver) -> None:
        try:
            await driver.run()
        except PolyfeedError as exc:
            # Boundary: a fatal error ends the stream; the consumer gets it from the iterator.
            logger.error("%s stream stopped: %s", self._channel, exc)
            self._fatal = exc
        except Exception as exc:
            logger.exception("%s stream crashed", self._channel)
            self._fatal = PolyfeedError(f"internal error: {type(exc).__name__}: {exc}")

    def _spawn(self, factory: TaskFactory, name: str) -> asyncio.Task[None] | None:
        """Run ``factory()`` as a task in the stream's group; None (factory not called) when
        the stream is stopping, so no coroutine is created that nothing would await."""
        group = self._group
        if group is None or self._stopping:
            return None
        task = group.create_task(factory(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _session_factory(self) -> SessionFactory | None:
        """Hook for subclasses: the socket's own session (None: the CLOB session)."""
        return None

    def _ending_policy(self) -> EndingPolicy | None:
        """Hook for subclasses: the socket's close-code rules (None: backoff alone)."""
        return None

    def _start_background(self, driver: _Driver) -> None:
        """Hook for subclasses: more long-lived work, spawned with :meth:`_spawn`."""

    async def _release(self) -> None:
        """Hook for subclasses: release resources after every task ended."""

    async def aclose(self) -> None:
        """Stop the stream: close the socket politely (bounded by ``close_timeout``), end tasks.

        Returns within about ``close_timeout`` seconds whatever the server does. Never raises
        the stream's errors (the iterator does). Idempotent: a second call returns once the
        first one has finished.
        """
        if self._closed:
            if self._runner is not None and not self._runner.done():
                await asyncio.wait([self._runner])
            return
        self._closed = True
        runner = self._runner
        if runner is not None:
            self._stopping = True
            if self._driver is not None:
                self._driver.request_stop()
            runner.cancel()
            # wait() rather than await: the runner's cancellation is ours, not the caller's.
            await asyncio.wait([runner])
        if self._queue is not None:
            self._queue.close(self._fatal)
        logger.info("%s stream closed", self._channel)

    async def stop(self) -> None:
        """The seed design's name for :meth:`aclose`."""
        await self.aclose()

    # ------------------------------------------------------------------ consuming

    def __aiter__(self) -> AsyncIterator[EventT]:
        self._require_started()
        assert self._queue is not None
        # The queue's own iterator: a step of `async for` runs no frame of this module.
        return cast(AsyncIterator[EventT], QueueIterator(self._queue))

    def __anext__(self) -> Awaitable[EventT]:
        queue = self._queue
        if queue is None:
            self._require_started()
        assert queue is not None
        # No coroutine of our own per event: the queue's awaitable is handed out as is (and no
        # cast() call: a function call per event).
        return queue.get()

    def _require_started(self) -> None:
        if self._queue is None:
            if self._closed:
                raise StreamClosedError("stream is closed")
            raise StreamNotStartedError(
                f"iterate a {type(self).__name__} inside `async with` (or between start() and "
                "aclose()), or use `await stream.run(on_event)`: something must own its tasks "
                "and socket"
            )

    async def run(self, on_event: Callable[[EventT], Awaitable[None] | None]) -> None:
        """Call ``on_event`` for every event until the stream closes (callback form).

        On a stream that was not started, ``run`` owns it: it starts the stream and closes it
        when it returns or raises. The callback runs on the consumer side of the queue, never on
        the reader, so a slow callback cannot delay heartbeats.
        """
        if self._runner is None and not self._closed:
            async with self:
                await self._consume(on_event)
        else:
            await self._consume(on_event)

    async def _consume(self, on_event: Callable[[EventT], Awaitable[None] | None]) -> None:
        async for event in self:
            result = on_event(event)
            if inspect.isawaitable(result):
                await result

    # ------------------------------------------------------------------ control

    async def subscribe(self, ids: Iterable[str]) -> list[str]:
        """Subscribe more ids live (no reconnect); returns the ids that were new."""
        self._check_open()
        wanted = _validate_ids(ids)
        if self._driver is None:
            added = self._subscriptions.add(wanted, None)
            self._subscribed(added)
            return added
        added = self._driver.subscribe(wanted)
        self._subscribed(added)
        if added:
            logger.info("%s: subscribed %d more", self._channel, len(added))
        return added

    async def unsubscribe(self, ids: Iterable[str]) -> list[str]:
        """Unsubscribe ids live; returns the ids that were subscribed."""
        self._check_open()
        wanted = _validate_ids(ids)
        if self._driver is None:
            removed = self._subscriptions.remove(wanted)
            self._unsubscribed(removed)
            return removed
        removed = self._driver.unsubscribe(wanted)
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
            self._metrics = ConnectionMetrics(self.clock.now(), clock=self.clock.now)
        return self._metrics

    def _maintenance(self) -> tuple[int, str | None]:
        """Restarts and last crash of background maintenance (the book keeper's)."""
        return 0, None

    def _subscription_counts(self) -> tuple[int, int]:
        """(desired, confirmed) right now."""
        return len(self._subscriptions.desired), len(self._subscriptions.confirmed)

    def _connections(self) -> list[ConnectionHealth]:
        """Per-connection health (a market stream's pool)."""
        return []

    def health(self) -> Health:
        """State, freshness and counters right now."""
        metrics = self.metrics
        now = self.clock.now()
        queue = self._queue
        restarts, maintenance_error = self._maintenance()
        subscribed, confirmed = self._subscription_counts()
        return Health(
            state=self._state(),
            connected=metrics.connected_since is not None,
            seconds_since_last_message=metrics.seconds_since_last_message(now),
            uptime_ratio=metrics.uptime_ratio(now),
            reconnects=sum(metrics.reconnects_by_reason.values()),
            subscribed=subscribed,
            confirmed=confirmed,
            queued_events=len(queue) if queue is not None else 0,
            dropped_events=queue.dropped if queue is not None else 0,
            backoff_seconds=metrics.backoff_seconds,
            pong_rtt_seconds=metrics.pong_rtt_seconds,
            error=str(self._fatal) if self._fatal is not None else None,
            maintenance_restarts=restarts,
            maintenance_error=maintenance_error,
            connections=self._connections(),
        )


def _validate_ids(ids: Iterable[str]) -> list[str]:
    if isinstance(ids, str):
        raise ConfigError("pass a list of ids, not a single string")
    out = list(dict.fromkeys(ids))
    for item in out:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"invalid id {item!r}: ids are non-empty strings")
    return out


def _resolve_config(
    profile: str, config: StreamConfig | None, endpoints: Endpoints | None
) -> StreamConfig:
    resolved = config if config is not None else StreamConfig.from_profile(profile)
    if endpoints is not None:
        resolved = dataclasses.replace(resolved, endpoints=endpoints)
    return resolved


class MarketStream(_Stream[MarketStreamEvent]):
    """The public market channel for a set of asset (token) ids.

    Iteration yields :data:`polyfeed.MarketStreamEvent`. With ``books=True`` (the default) the
    stream keeps a verified local order book per asset in :attr:`books`, applied on the reader
    side (a slow consumer never delays them) and resynced on any doubt; ``reconcile_every``
    (seconds) adds a periodic REST ``/book`` comparison. The books are *batched*: each one's hash
    is checked at the end of every socket read that changed it (right after the consumer took
    that read's events, before any later read is applied; before they are queued with
    ``BookOptions(verify_before_handoff=True)``) and at least every ``BookOptions.verify_every``
    messages of its asset within a read; the top-of-book check runs on every message, before the
    message is queued.

    Where it connects: ``endpoints`` (default ``config.endpoints``, Polymarket's) gives every
    URL; ``url`` overrides the WebSocket URL and ``rest_url`` the CLOB REST URL. The REST URL is
    never derived from ``url``: ``MarketStream(ids, endpoints=fake.endpoints)`` points a stream at
    ``polyfeed.testing.FakePolymarket`` with one argument.

    Many assets: they are spread over as many connections as needed, at most
    ``config.max_assets_per_connection`` each (default 200), behind this one stream: one
    iterator, one :attr:`books`, one :meth:`health` (``health().connections`` shows each one).
    Handshakes are paced by ``config.pool`` (slower after a 429); a connection that drops
    reconnects alone, and its ``Gap`` names only its assets. ``shard`` (``"I/N"``) keeps only the
    ids of shard I of N (a stable hash of the token id), so N processes split a universe exactly
    once.

    Zero-gap failover: with ``redundancy=2`` (or 3) every asset is carried by that many
    connections, opened and reconnected at different times, and their events are merged exactly
    (:mod:`polyfeed.core.merge`): each event is seen once, in order per market, from whichever
    connection was first. When one of them stalls, closes, drops or hangs, the others carry on:
    no event lost, no ``Gap``, no book invalidated; ``Redundancy(state="degraded")`` says so until
    it is back (``full``). A ``Gap`` is reported only for time when all of them were down.
    """

    _channel = "market"

    def __init__(
        self,
        assets: Iterable[str] = (),
        *,
        url: str | None = None,
        endpoints: Endpoints | None = None,
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
        shard: Shard | str | None = None,
        redundancy: int = 1,
    ) -> None:
        cfg = _resolve_config(profile, config, endpoints)
        if not 1 <= redundancy <= 3:
            raise ConfigError(
                f"redundancy must be 1, 2 or 3 connections per asset, got {redundancy!r}"
            )
        self.redundancy = redundancy
        self.shard = parse_shard(shard) if isinstance(shard, str) else shard
        wanted = _validate_ids(assets)
        if self.shard is not None:
            wanted = self.shard.select(wanted)
        self._pool: ConnectionPool | None = None
        super().__init__(
            wanted,
            url=url or cfg.endpoints.market_url,
            config=cfg,
            clock=clock,
            rng=rng,
            connector=connector,
        )
        self.rest_url = rest_url or cfg.endpoints.rest_url
        self._books = BookRegistry(book_options, batched=True) if books else None
        if self._books is not None:
            for asset in self._ids:
                self._books.add(asset)
        self._limiter = resync_limiter or ResyncLimiter()
        if reconcile_every is not None and not reconcile_every > 0:
            raise ConfigError("reconcile_every must be > 0 seconds or None")
        self._reconcile_every = reconcile_every
        self._rest: RestClient | None = None
        self._keeper: BookKeeper | None = None

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
        if self._keeper is None or self._stopping:
            raise StreamClosedError("books are kept only while the stream runs (books=True)")
        return self._keeper

    def _make_driver(self, queue: EventQueue) -> _Driver:
        metrics = self.metrics
        assert isinstance(metrics, PoolMetrics)
        desired = self._subscriptions.desired
        # The order given, not a set's: a market's two tokens, given side by side (as discovery
        # lists them), land on one connection and its messages arrive once.
        ordered = [a for a in self._ids if a in desired]
        ordered += sorted(desired.difference(ordered))
        options: dict[str, Any] = {
            "url": self.url,
            "config": self.config,
            "clock": self.clock,
            "rng": self._rng,
            "queue": queue,
            "metrics": metrics,
            "connector": self._connector,
        }
        pool: ConnectionPool
        if self.redundancy > 1:
            pool = RedundantPool(ordered, redundancy=self.redundancy, **options)
        else:
            pool = ConnectionPool(ordered, **options)
        self._pool = pool
        return pool

    def _start_background(self, driver: _Driver) -> None:
        pool = self._pool
        assert pool is not None
        if self._books is None and pool.asset_timeout is None and pool.witness_after is None:
            return
        endpoints = self.config.endpoints
        self._rest = RestClient(
            self.rest_url, endpoints.gamma_url, request_timeout=self.config.connect_timeout
        )
        # Silent assets are checked against REST /book before they are redriven.
        pool.rest = self._rest
        pool.books = self._books
        pool.limiter = self._limiter
        if self._books is None:
            return
        keeper = self._keeper = BookKeeper(
            self._books,
            clock=self.clock,
            rest=self._rest,
            limiter=self._limiter,
            spawn=self._spawn,
            emit=pool.queue.put_many,
            refresh=pool.refresh,
            reconcile_every=self._reconcile_every,
        )
        pool.observer = keeper
        self.metrics.maintenance = keeper
        # One task for all of the keeper's maintenance (timers, periodic reconcile, restarts).
        self._spawn(keeper.run, "polyfeed-book-maintenance")

    @property
    def subscriptions(self) -> frozenset[str]:
        """The desired subscription set (every connection's)."""
        if self._pool is not None:
            return self._pool.desired
        return self._subscriptions.desired

    @property
    def metrics(self) -> PoolMetrics:
        """Metrics: the totals, and each connection's (``metrics.connections``)."""
        if self._metrics is None:
            self._metrics = PoolMetrics(
                self.clock.now(),
                None if self.shard is None else str(self.shard),
                clock=self.clock.now,
            )
        assert isinstance(self._metrics, PoolMetrics)
        return self._metrics

    @property
    def pool(self) -> ConnectionPool | None:
        """The connections of the stream (placement, pacing), None before start."""
        return self._pool

    def _subscription_counts(self) -> tuple[int, int]:
        if self._pool is None:
            return super()._subscription_counts()
        return len(self._pool.desired), self._pool.confirmed

    def _connections(self) -> list[ConnectionHealth]:
        return [] if self._pool is None else self._pool.connections()

    async def subscribe(self, ids: Iterable[str]) -> list[str]:
        """Subscribe more ids live (no reconnect); returns the ids that were new.

        New ids go to connections with room (``max_assets_per_connection``), else to new
        connections. With a ``shard``, ids of other shards are ignored (not returned).
        """
        wanted = _validate_ids(ids)
        if self.shard is not None:
            wanted = self.shard.select(wanted)
        return await super().subscribe(wanted)

    def _maintenance(self) -> tuple[int, str | None]:
        keeper = self._keeper
        if keeper is None:
            return 0, None
        return keeper.maintenance_restarts, keeper.maintenance_error

    async def _release(self) -> None:
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


class UserStream(_Stream[UserStreamEvent]):
    """The authenticated user channel (orders and trades of the API key).

    Iteration yields :data:`polyfeed.UserStreamEvent`. ``markets`` are condition ids (None: every
    market of the key). Credentials default to the environment (``POLYMARKET_API_KEY``,
    ``POLYMARKET_API_SECRET``, ``POLYMARKET_API_PASSPHRASE``). The WebSocket URL is ``url``, else
    ``endpoints.user_url`` (default ``config.endpoints``, Polymarket's).
    """

    _channel = "user"

    def __init__(
        self,
        markets: Iterable[str] | None = None,
        *,
        credentials: Credentials | None = None,
        url: str | None = None,
        endpoints: Endpoints | None = None,
        profile: str = "dashboard",
        config: StreamConfig | None = None,
        clock: Clock | None = None,
        rng: Callable[[], float] | None = None,
        connector: Connector = connect,
    ) -> None:
        cfg = _resolve_config(profile, config, endpoints)
        super().__init__(
            _validate_ids(markets or ()),
            url=url or cfg.endpoints.user_url,
            config=cfg,
            credentials=credentials or Credentials.from_env(),
            clock=clock,
            rng=rng,
            connector=connector,
        )
