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

import dataclasses
import sys
from typing import Any

import click
import msgspec
from click.core import ParameterSource

from polyfeed.aio.polybolt_stream import DEFAULT_POLYBOLT_URL, PolyboltStream
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
) -> AnyStream:
    """The stream ``polyfeed stream`` runs for these arguments (raises ConfigError)."""
    options = options or SocketOptions()
    topics = topics or []
    match channel:
        case "market":
            return MarketStream(ids, url=url, rest_url=rest_url, config=config)
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
) -> int:
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
                    async for event in stream:
                        await out.write(encode_event(event))
                        if view is not None:
                            view.note(event)
                            continue
                        status = status_line(event)
                        if status is not None:
                            await err.write(status)
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
    ids: tuple[str, ...],
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    show_dashboard: bool = False,
    config_path: str | None = None,
) -> None:
    """Stream ASSET_OR_MARKET ids as NDJSON on stdout (status on stderr); Ctrl-C stops cleanly."""
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
        if channel == "market" and not ids:
            raise click.UsageError("give at least one asset id")
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
        chosen = build_stream(
            channel, url, rest_url, config, list(ids), credentials, list(topics), options
        )
    except PolyfeedError as exc:
        raise click.UsageError(str(exc)) from None
    code = run_until_signal(
        _stream_main(chosen, address(metrics_host, metrics_port), channel, show_dashboard)
    )
    sys.exit(code)
