"""``polyfeed stream``: every event as one JSON object per line on stdout.

Output never blocks the event loop: lines go to a ``LineWriter`` thread through a small bounded
queue. A slow reader of stdout makes this command a slow consumer of the stream, like any other:
heartbeats go on, the stream's bounded queue applies its overflow policy (``--queue-size``), and
what was dropped is reported in the output as a ``gap`` line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Coroutine
from typing import Any

import click
import msgspec

from polyfeed.aio.discovery import Discovery, MarketQuery
from polyfeed.aio.rest import RestClient
from polyfeed.aio.stream import MarketStream, UserStream
from polyfeed.cli._output import LineWriter, OutputClosedError
from polyfeed.cli._run import run_until_signal
from polyfeed.config import PROFILES, HeartbeatConfig, StreamConfig
from polyfeed.core.messages import Malformed, Notice, Pong, Unknown
from polyfeed.core.placement import parse_shard
from polyfeed.credentials import Credentials
from polyfeed.errors import PolyfeedError
from polyfeed.events import Connected, Disconnected, Gap, Reconnecting, Stale

_encoder = msgspec.json.Encoder()


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
) -> StreamConfig:
    """A StreamConfig from a profile and command-line overrides (raises ConfigError)."""
    config = StreamConfig.from_profile(profile)
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
    if isinstance(event, Connected | Disconnected | Reconnecting | Stale | Gap):
        return f"polyfeed: {type(event).__name__.lower()}: {event}\n".encode()
    return None


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """The market channel's discovery options: what to resolve over Gamma, and how often to
    refresh it (None: once)."""

    query: MarketQuery
    gamma_url: str | None = None
    refresh: float | None = None


async def _pump(stream: MarketStream | UserStream, out: LineWriter, err: LineWriter) -> None:
    async for event in stream:
        await out.write(encode_event(event))
        status = status_line(event)
        if status is not None:
            await err.write(status)


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


async def _stream_main(
    channel: str,
    url: str | None,
    rest_url: str | None,
    config: StreamConfig,
    ids: list[str],
    credentials: Credentials | None,
    selection: Selection | None = None,
    redundancy: int = 1,
) -> int:
    discovery: Discovery | None = None
    rest: RestClient | None = None
    if selection is not None:
        try:
            ids, discovery, rest = await _discover(selection, ids, config, rest_url)
        except PolyfeedError as exc:
            sys.stderr.write(f"polyfeed: error: {exc}\n")
            return 1
    try:
        return await _stream_ids(
            channel, url, rest_url, config, ids, credentials, selection, discovery, redundancy
        )
    finally:
        if rest is not None:
            await rest.aclose()


async def _stream_ids(
    channel: str,
    url: str | None,
    rest_url: str | None,
    config: StreamConfig,
    ids: list[str],
    credentials: Credentials | None,
    selection: Selection | None,
    discovery: Discovery | None,
    redundancy: int = 1,
) -> int:
    stream: MarketStream | UserStream
    if channel == "market":
        shard = selection.query.shard if selection is not None else None
        stream = MarketStream(
            ids,
            url=url,
            rest_url=rest_url,
            config=config,
            shard=shard,
            redundancy=redundancy,
        )
    else:
        stream = UserStream(ids or None, credentials=credentials, url=url, config=config)
    error: str | None = None
    async with (
        LineWriter(sys.stdout.fileno()) as out,
        LineWriter(sys.stderr.fileno(), maxsize=64) as err,
    ):
        try:
            async with stream:
                pump = _pump(stream, out, err)
                if (
                    discovery is not None
                    and selection is not None
                    and selection.refresh is not None
                    and isinstance(stream, MarketStream)
                ):
                    follow = discovery.follow(
                        stream, selection.query, every=selection.refresh, clock=stream.clock
                    )
                    await _alongside(pump, follow)
                else:
                    await pump
        except OutputClosedError:
            # The reader of stdout went away (``| head``): a normal way to stop.
            return 0
        except PolyfeedError as exc:
            error = str(exc)
        if error is not None:
            await err.write(f"polyfeed: error: {error}\n".encode())
            return 1
    return 0


@click.command()
@click.option("--channel", type=click.Choice(["market", "user"]), default="market")
@click.option("--url", default=None, help="WebSocket URL (default: Polymarket's).")
@click.option(
    "--rest-url",
    default=None,
    help="CLOB REST URL for the market channel's book checks (default: Polymarket's).",
)
@click.option("--profile", type=click.Choice(sorted(PROFILES)), default="dashboard")
@click.option("--data-timeout", type=float, default=None, help="Seconds without data = stale.")
@click.option("--heartbeat", type=float, default=None, help="Seconds between text PINGs.")
@click.option("--pong-timeout", type=float, default=None, help="Seconds without PONG = dead.")
@click.option("--backoff-base", type=float, default=None)
@click.option("--backoff-max", type=float, default=None)
@click.option(
    "--queue-size",
    type=click.IntRange(min=1),
    default=None,
    help="Events buffered for a slow stdout reader before the oldest are dropped (a gap line).",
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
    help="I/N: keep the token ids whose stable hash falls in shard I of N (N processes).",
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
    help="Seconds between discovery refreshes: new markets subscribed, resolved ones dropped.",
)
@click.argument("ids", nargs=-1)
def stream(
    channel: str,
    url: str | None,
    rest_url: str | None,
    profile: str,
    data_timeout: float | None,
    heartbeat: float | None,
    pong_timeout: float | None,
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
) -> None:
    """Stream ASSET_OR_MARKET ids as NDJSON on stdout (status on stderr); Ctrl-C stops cleanly.

    On the market channel, ``--market``, ``--event``, ``--condition-id`` and ``--all-active``
    find token ids over Gamma (``--gamma-url``); ``--shard I/N`` keeps one shard of them.
    """
    try:
        config = build_config(
            profile, data_timeout, heartbeat, pong_timeout, backoff_base, backoff_max, queue_size
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
        if channel != "market" and redundancy != 1:
            raise click.UsageError("--redundancy applies to the market channel only")
        if refresh is not None and query.empty:
            raise click.UsageError("--refresh needs --market, --event or --all-active")
        if gamma_url is not None and not gamma_url.startswith(("http://", "https://")):
            raise click.UsageError(
                f"--gamma-url must be an http:// or https:// URL, got {gamma_url!r}"
            )
        if url is not None and not url.startswith(("ws://", "wss://")):
            raise click.UsageError(f"--url must be a ws:// or wss:// URL, got {url!r}")
        if rest_url is not None and not rest_url.startswith(("http://", "https://")):
            raise click.UsageError(
                f"--rest-url must be an http:// or https:// URL, got {rest_url!r}"
            )
        credentials = Credentials.from_env() if channel == "user" else None
    except PolyfeedError as exc:
        raise click.UsageError(str(exc)) from None
    code = run_until_signal(
        _stream_main(
            channel,
            url,
            rest_url,
            config,
            list(ids),
            credentials,
            selection if channel == "market" else None,
            redundancy,
        )
    )
    sys.exit(code)
