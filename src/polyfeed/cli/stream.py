"""``polyfeed stream``: every event as one JSON object per line on stdout.

``--channel`` picks the socket: ``market`` and ``user`` (the CLOB, ids as arguments), ``rtds``
(``--topic TOPIC[:TYPE]``, repeatable), ``polybolt`` (``--topic CHANNEL``, repeatable) and
``sports`` (no topics). The NDJSON contract is the same for all: one object per line, each with
an ``event_type``; status lines on stderr; exit 0 on a signal, 1 on a fatal error.

Output never blocks the event loop: lines go to a ``LineWriter`` thread through a small bounded
queue. A slow reader of stdout makes this command a slow consumer of the stream, like any other:
heartbeats go on, the stream's bounded queue applies its overflow policy (``--queue-size``), and
what was dropped is reported in the output as a ``gap`` line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import click
import msgspec
from click.core import ParameterSource

from polyfeed.aio.discovery import Discovery, MarketQuery
from polyfeed.aio.polybolt_stream import DEFAULT_POLYBOLT_URL, PolyboltStream
from polyfeed.aio.rest import RestClient
from polyfeed.aio.rtds_stream import DEFAULT_RTDS_URL, RtdsStream
from polyfeed.aio.sports_stream import DEFAULT_SPORTS_URL, SportsStream
from polyfeed.aio.stream import MarketStream, UserStream
from polyfeed.cli._format import describe_event
from polyfeed.cli._metrics import (
    MetricsAddress,
    address,
    announcement,
    metrics_options,
    serving_metrics,
)
from polyfeed.cli._output import LineWriter, OutputClosedError
from polyfeed.cli._run import run_until_signal
from polyfeed.cli.dashboard import Dashboard, showing
from polyfeed.config import PROFILES, HeartbeatConfig, StreamConfig
from polyfeed.config_file import load as load_config
from polyfeed.core.messages import Malformed, Notice, Pong, Unknown
from polyfeed.core.placement import Shard, parse_shard
from polyfeed.core.polybolt import PolyboltConfig, PolyboltGap, PolyboltSubscription
from polyfeed.core.rtds import RtdsConfig, RtdsSubscription
from polyfeed.core.sports import SportsConfig
from polyfeed.credentials import Credentials
from polyfeed.errors import PolyfeedError
from polyfeed.events import Connected, Disconnected, Gap, Reconnecting, Stale

_encoder = msgspec.json.Encoder()

DASHBOARD_BOOKS = 5


def encode_event(event: object) -> bytes:
    """One NDJSON line for an event; every line has an ``event_type``."""
    match event:
        case Unknown(event_type=event_type, raw=raw):
            body: Any = {"event_type": "unknown", "original_event_type": event_type}
            body["raw"] = raw.decode("utf-8", errors="replace")
        case Notice(text=text):
            body = {"event_type": "notice", "text": text}
        case Malformed(reason=reason, excerpt=excerpt):
            body = {"event_type": "malformed", "reason": reason, "excerpt": excerpt}
        case Pong():
            body = {"event_type": "pong"}
        case _:
            return _encoder.encode(event) + b"\n"
    return _encoder.encode(body) + b"\n"


def build_config(
    profile: str,
    data_timeout: float | None,
    heartbeat: float | None,
    pong_timeout: float | None,
    backoff_base: float | None,
    backoff_max: float | None,
    queue_size: int | None = None,
    start: StreamConfig | None = None,
) -> StreamConfig:
    """A StreamConfig from a profile (or ``start``, the file and environment's configuration)
    and command-line overrides (raises ConfigError)."""
    config = start if start is not None else StreamConfig.from_profile(profile)
    if queue_size is not None:
        config = dataclasses.replace(
            config, queue=dataclasses.replace(config.queue, maxsize=queue_size)
        )
    if data_timeout is not None:
        config = dataclasses.replace(
            config, watchdog=dataclasses.replace(config.watchdog, data_timeout=data_timeout)
        )
    if heartbeat is not None or pong_timeout is not None:
        hb = config.heartbeat
        interval = heartbeat if heartbeat is not None else hb.interval
        timeout = pong_timeout if pong_timeout is not None else max(hb.pong_timeout, 3 * interval)
        config = dataclasses.replace(config, heartbeat=HeartbeatConfig(interval, timeout))
    if backoff_base is not None or backoff_max is not None:
        bo = config.backoff
        base = backoff_base if backoff_base is not None else bo.base
        cap = backoff_max if backoff_max is not None else max(bo.max_delay, base)
        # replace, not a fresh BackoffConfig: the other settings (first retry, stable_for,
        # max_attempts, auth_retries) keep the profile's values.
        config = dataclasses.replace(
            config, backoff=dataclasses.replace(bo, base=base, max_delay=cap)
        )
    return config


def status_line(event: object) -> bytes | None:
    """The stderr line for a lifecycle event worth a human's attention, else None."""
    if isinstance(event, Connected | Disconnected | Reconnecting | Stale | Gap | PolyboltGap):
        return f"polyfeed: {describe_event(event)}\n".encode()
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class SocketOptions:
    """The timing flags as given (None: the socket's default), for the non-CLOB sockets."""

    heartbeat: float | None = None
    pong_timeout: float | None = None
    data_timeout: float | None = None
    topic_timeout: float | None = None


def _given(**values: float | None) -> dict[str, float]:
    return {name: value for name, value in values.items() if value is not None}


def rtds_config(options: SocketOptions) -> RtdsConfig:
    """``--heartbeat`` is the PING interval, ``--topic-timeout`` the per-topic deadline."""
    return RtdsConfig(
        **_given(
            ping_interval=options.heartbeat,
            pong_timeout=options.pong_timeout,
            data_timeout=options.data_timeout,
            topic_timeout=options.topic_timeout,
        )
    )


def polybolt_config(options: SocketOptions) -> PolyboltConfig:
    """``--heartbeat`` is the ``{"op":"ping"}`` interval."""
    return PolyboltConfig(
        **_given(
            ping_interval=options.heartbeat,
            pong_timeout=options.pong_timeout,
            data_timeout=options.data_timeout,
        )
    )


def sports_config(options: SocketOptions) -> SportsConfig:
    """``--pong-timeout`` is how long the server may go without pinging."""
    return SportsConfig(
        **_given(ping_timeout=options.pong_timeout, data_timeout=options.data_timeout)
    )


AnyStream = MarketStream | UserStream | RtdsStream | PolyboltStream | SportsStream


def build_stream(
    channel: str,
    url: str | None,
    rest_url: str | None,
    config: StreamConfig,
    ids: list[str],
    credentials: Credentials | None,
    topics: list[str] | None = None,
    options: SocketOptions | None = None,
    shard: Shard | None = None,
    redundancy: int = 1,
) -> AnyStream:
    """The stream ``polyfeed stream`` runs for these arguments (raises ConfigError).

    ``shard`` and ``redundancy`` apply to the market channel (its connection pool).
    """
    options = options or SocketOptions()
    topics = topics or []
    match channel:
        case "market":
            return MarketStream(
                ids,
                url=url,
                rest_url=rest_url,
                config=config,
                shard=shard,
                redundancy=redundancy,
            )
        case "user":
            return UserStream(ids or None, credentials=credentials, url=url, config=config)
        case "rtds":
            return RtdsStream(
                [RtdsSubscription.parse(t) for t in topics],
                url=url or DEFAULT_RTDS_URL,
                rtds=rtds_config(options),
                config=config,
            )
        case "polybolt":
            return PolyboltStream(
                [PolyboltSubscription(t) for t in topics],
                credentials=credentials,
                url=url or DEFAULT_POLYBOLT_URL,
                polybolt=polybolt_config(options),
                config=config,
            )
        case "sports":
            return SportsStream(
                url=url or DEFAULT_SPORTS_URL, sports=sports_config(options), config=config
            )
    raise click.UsageError(f"unknown channel {channel!r}")


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """The market channel's discovery options: what to resolve over Gamma, and how often to
    refresh it (None: once)."""

    query: MarketQuery
    gamma_url: str | None = None
    refresh: float | None = None


async def _alongside(main: Coroutine[Any, Any, None], side: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` with ``side`` beside it in one TaskGroup; ``side`` ends when ``main`` does.

    Boundary: the first error comes out as itself, never as a group (the caller matches on it).
    """
    try:
        async with asyncio.TaskGroup() as group:
            side_task = group.create_task(side, name="polyfeed-discovery")
            try:
                await main
            finally:
                side_task.cancel()
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None


async def _discover(
    selection: Selection, ids: list[str], config: StreamConfig, rest_url: str | None
) -> tuple[list[str], Discovery | None, RestClient | None]:
    """Token ids: those given plus the discovered ones, in the selection's shard."""
    if selection.query.empty:
        shard = selection.query.shard
        return (ids if shard is None else shard.select(ids)), None, None
    rest = RestClient(
        rest_url or config.endpoints.rest_url,
        selection.gamma_url or config.endpoints.gamma_url,
        request_timeout=config.connect_timeout,
    )
    try:
        discovery = Discovery(rest)
        found = await discovery.resolve(selection.query)
    except BaseException:
        await rest.aclose()
        raise
    return list(dict.fromkeys([*ids, *found])), discovery, rest


async def _discover_then_stream(
    selection: Selection,
    ids: list[str],
    config: StreamConfig,
    rest_url: str | None,
    build: Callable[[list[str]], AnyStream],
    metrics: MetricsAddress | None = None,
    dashboard: bool = False,
) -> int:
    """The market channel with discovery: resolve the selection over Gamma, then stream the
    ids found (and, with ``selection.refresh``, keep the stream in line with Gamma)."""
    try:
        ids, discovery, rest = await _discover(selection, ids, config, rest_url)
    except PolyfeedError as exc:
        sys.stderr.write(f"polyfeed: error: {exc}\n")
        return 1
    try:
        try:
            stream = build(ids)
        except PolyfeedError as exc:
            sys.stderr.write(f"polyfeed: error: {exc}\n")
            return 1
        follow: Callable[[], Coroutine[Any, Any, None]] | None = None
        if discovery is not None and selection.refresh is not None:
            assert isinstance(stream, MarketStream)
            market, every, found = stream, selection.refresh, discovery

            def follow() -> Coroutine[Any, Any, None]:
                return found.follow(market, selection.query, every=every, clock=market.clock)

        return await _stream_main(stream, metrics, "market", dashboard, follow)
    finally:
        if rest is not None:
            await rest.aclose()


async def _pump(
    stream: AnyStream, out: LineWriter, err: LineWriter, view: Dashboard | None
) -> None:
    async for event in stream:
        await out.write(encode_event(event))
        if view is not None:
            view.note(event)
            continue
        status = status_line(event)
        if status is not None:
            await err.write(status)


def _dashboard_for(stream: AnyStream, name: str) -> Dashboard:
    if isinstance(stream, MarketStream):
        ids = sorted(stream.subscriptions)[:DASHBOARD_BOOKS]
        return Dashboard({name: stream}, books=stream.books, book_ids=ids)
    return Dashboard({name: stream})


async def _stream_main(
    stream: AnyStream,
    metrics: MetricsAddress | None = None,
    name: str = "market",
    dashboard: bool = False,
    side: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> int:
    """Run ``stream`` to stdout (and ``side``, e.g. discovery's follow, beside it)."""
    error: str | None = None
    # The dashboard repaints stderr: status lines would tear it, and it shows them itself.
    view = _dashboard_for(stream, name) if dashboard else None
    async with (
        LineWriter(sys.stdout.fileno()) as out,
        LineWriter(sys.stderr.fileno(), maxsize=64) as err,
    ):
        try:
            async with serving_metrics({name: stream}, metrics) as server, stream:
                if server is not None:
                    await err.write(announcement(server).encode())
                async with showing(view):
                    pump = _pump(stream, out, err, view)
                    if side is None:
                        await pump
                    else:
                        await _alongside(pump, side())
        except OutputClosedError:
            # The reader of stdout went away (``| head``): a normal way to stop.
            return 0
        except PolyfeedError as exc:
            error = str(exc)
        if error is not None:
            await err.write(f"polyfeed: error: {error}\n".encode())
            return 1
    return 0


CHANNELS = ["market", "user", "rtds", "polybolt", "sports"]


@click.command()
@click.option(
    "--channel",
    type=click.Choice(CHANNELS),
    default="market",
    show_default=True,
    help="Which socket to stream.",
)
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="rtds: TOPIC[:TYPE] (e.g. crypto_prices:update); polybolt: CHANNEL (price.crypto). "
    "Repeatable.",
)
@click.option(
    "--auth",
    is_flag=True,
    default=False,
    help="polybolt: authenticate with the POLYMARKET_API_* credentials.",
)
@click.option("--url", default=None, help="WebSocket URL (default: Polymarket's).")
@click.option(
    "--rest-url",
    default=None,
    help="CLOB REST URL for the market channel's book checks (default: Polymarket's).",
)
@click.option(
    "--profile",
    type=click.Choice(sorted(PROFILES)),
    default="dashboard",
    show_default=True,
    help="Timing preset; the flags below override single values.",
)
@click.option(
    "--data-timeout",
    type=float,
    default=None,
    help="Seconds without data = stale (default: the profile's).",
)
@click.option(
    "--heartbeat",
    type=float,
    default=None,
    help="Seconds between our PINGs, not sports (default: the profile's).",
)
@click.option(
    "--pong-timeout",
    type=float,
    default=None,
    help="Seconds without PONG = dead; sports: without the server's ping (default: the profile's).",
)
@click.option(
    "--topic-timeout",
    type=float,
    default=None,
    help="rtds: seconds one topic may be silent (default: RTDS's).",
)
@click.option(
    "--backoff-base",
    type=float,
    default=None,
    help="First reconnect delay in seconds (default: the profile's).",
)
@click.option(
    "--backoff-max",
    type=float,
    default=None,
    help="Longest reconnect delay in seconds (default: the profile's).",
)
@click.option(
    "--queue-size",
    type=click.IntRange(min=1),
    default=None,
    help="Events buffered for a slow stdout reader before the oldest are dropped (a gap line; "
    "default: the profile's).",
)
@click.option(
    "--dashboard",
    "show_dashboard",
    is_flag=True,
    default=False,
    help="A live dashboard on stderr (state, events/s, reconnects, books) instead of "
    "status lines; the NDJSON still goes to stdout.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML configuration file (default: $POLYFEED_CONFIG, else none). Precedence: "
    "profile < file < POLYFEED_* variables < flags; see `polyfeed config show`.",
)
@click.option("--market", "markets", multiple=True, help="A market slug (Gamma); repeatable.")
@click.option("--event", "events", multiple=True, help="An event slug (Gamma); repeatable.")
@click.option(
    "--condition-id", "condition_ids", multiple=True, help="A market's condition id; repeatable."
)
@click.option("--all-active", is_flag=True, help="Every active market (pages through Gamma).")
@click.option(
    "--shard",
    default=None,
    help="I/N: keep the token ids whose stable hash falls in shard I of N (N processes; "
    "default: every id).",
)
@click.option(
    "--max-per-connection",
    type=click.IntRange(min=1),
    default=None,
    help="Assets per WebSocket (default 200); more assets open more connections.",
)
@click.option(
    "--redundancy",
    type=click.IntRange(min=1, max=3),
    default=1,
    show_default=True,
    help="Connections carrying each asset (market channel); 2: zero-gap failover, merged exactly.",
)
@click.option("--gamma-url", default=None, help="Gamma URL for discovery (default: Polymarket's).")
@click.option(
    "--refresh",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds between discovery refreshes: new markets subscribed, resolved ones dropped "
    "(default: discover once).",
)
@metrics_options
@click.argument("ids", nargs=-1)
def stream(
    channel: str,
    topics: tuple[str, ...],
    auth: bool,
    url: str | None,
    rest_url: str | None,
    profile: str,
    data_timeout: float | None,
    heartbeat: float | None,
    pong_timeout: float | None,
    topic_timeout: float | None,
    backoff_base: float | None,
    backoff_max: float | None,
    queue_size: int | None,
    markets: tuple[str, ...],
    events: tuple[str, ...],
    condition_ids: tuple[str, ...],
    all_active: bool,
    shard: str | None,
    max_per_connection: int | None,
    redundancy: int,
    gamma_url: str | None,
    refresh: float | None,
    ids: tuple[str, ...],
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    show_dashboard: bool = False,
    config_path: str | None = None,
) -> None:
    """Stream ASSET_OR_MARKET ids as NDJSON on stdout (status on stderr); Ctrl-C stops cleanly.

    On the market channel, ``--market``, ``--event``, ``--condition-id`` and ``--all-active``
    find token ids over Gamma (``--gamma-url``); ``--shard I/N`` keeps one shard of them.
    """
    clob = channel in ("market", "user")
    given = click.get_current_context().get_parameter_source("profile")
    try:
        effective = load_config(
            config_path, profile=None if given is ParameterSource.DEFAULT else profile
        )
        config = build_config(
            profile,
            data_timeout if clob else None,
            heartbeat if clob else None,
            pong_timeout if clob else None,
            backoff_base,
            backoff_max,
            queue_size,
            effective.config,
        )
        if max_per_connection is not None:
            config = dataclasses.replace(config, max_assets_per_connection=max_per_connection)
        query = MarketQuery(
            markets=markets,
            events=events,
            condition_ids=condition_ids,
            all_active=all_active,
            shard=None if shard is None else parse_shard(shard),
        )
        selection = Selection(query=query, gamma_url=gamma_url, refresh=refresh)
        if channel == "market" and not ids and query.empty:
            raise click.UsageError(
                "give at least one asset id, or --market/--event/--condition-id/--all-active"
            )
        if channel != "market" and not (query.empty and shard is None):
            raise click.UsageError("discovery and --shard apply to the market channel only")
        if channel != "market" and max_per_connection is not None:
            raise click.UsageError("--max-per-connection applies to the market channel only")
        if channel != "market" and redundancy != 1:
            raise click.UsageError("--redundancy applies to the market channel only")
        if refresh is not None and query.empty:
            raise click.UsageError("--refresh needs --market, --event or --all-active")
        if gamma_url is not None and not gamma_url.startswith(("http://", "https://")):
            raise click.UsageError(
                f"--gamma-url must be an http:// or https:// URL, got {gamma_url!r}"
            )
        if not clob and ids:
            raise click.UsageError(f"--channel {channel} takes no ids (use --topic)")
        if channel in ("rtds", "polybolt") and not topics:
            raise click.UsageError(f"--channel {channel} needs at least one --topic")
        if topics and channel not in ("rtds", "polybolt"):
            raise click.UsageError("--topic is for --channel rtds or polybolt")
        if url is not None and not url.startswith(("ws://", "wss://")):
            raise click.UsageError(f"--url must be a ws:// or wss:// URL, got {url!r}")
        if url is not None and clob:
            # The other CLOB channel's URL would fail later in a misleading way (a user
            # subscription on the market socket looks like rejected credentials).
            other = "user" if channel == "market" else "market"
            if url.rstrip("/").endswith(f"/ws/{other}"):
                raise click.UsageError(
                    f"--url {url} is the {other} channel's URL; --channel {channel} needs "
                    f"the .../ws/{channel} URL"
                )
        if rest_url is not None and not rest_url.startswith(("http://", "https://")):
            raise click.UsageError(
                f"--rest-url must be an http:// or https:// URL, got {rest_url!r}"
            )
        wants_credentials = channel == "user" or (channel == "polybolt" and auth)
        credentials = Credentials.from_env() if wants_credentials else None
        options = SocketOptions(heartbeat, pong_timeout, data_timeout, topic_timeout)

        def build(chosen_ids: list[str]) -> AnyStream:
            return build_stream(
                channel,
                url,
                rest_url,
                config,
                chosen_ids,
                credentials,
                list(topics),
                options,
                shard=query.shard,
                redundancy=redundancy,
            )

        metrics = address(metrics_host, metrics_port)
        if channel == "market" and not query.empty:
            # Discovery needs the network: the stream is built once the ids are known.
            run = _discover_then_stream(
                selection, list(ids), config, rest_url, build, metrics, show_dashboard
            )
        else:
            run = _stream_main(build(list(ids)), metrics, channel, show_dashboard)
    except PolyfeedError as exc:
        raise click.UsageError(str(exc)) from None
    code = run_until_signal(run)
    sys.exit(code)
