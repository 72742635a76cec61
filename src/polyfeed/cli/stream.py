"""``polyfeed stream``: every event as one JSON object per line on stdout."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click
import msgspec

from polyfeed.aio.stream import MarketStream, UserStream
from polyfeed.cli._run import run_until_signal
from polyfeed.config import PROFILES, BackoffConfig, HeartbeatConfig, StreamConfig
from polyfeed.core.messages import Malformed, Notice, Pong, Unknown
from polyfeed.credentials import Credentials
from polyfeed.errors import PolyfeedError

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
) -> StreamConfig:
    """A StreamConfig from a profile and command-line overrides (raises ConfigError)."""
    config = StreamConfig.from_profile(profile)
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
        config = dataclasses.replace(
            config, backoff=BackoffConfig(base=base, max_delay=cap, jitter=bo.jitter)
        )
    return config


async def _stream_main(
    channel: str,
    url: str | None,
    config: StreamConfig,
    ids: list[str],
    credentials: Credentials | None,
) -> int:
    out = sys.stdout.buffer
    err = sys.stderr
    stream: MarketStream | UserStream
    if channel == "market":
        stream = MarketStream(ids, url=url, config=config)
    else:
        stream = UserStream(ids or None, credentials=credentials, url=url, config=config)
    try:
        async with stream:
            async for event in stream:
                out.write(encode_event(event))
                out.flush()
                kind = type(event).__name__
                if kind in ("Connected", "Disconnected", "Reconnecting", "Stale", "Gap"):
                    print(f"polyfeed: {kind.lower()}: {event}", file=err)
    except PolyfeedError as exc:
        print(f"polyfeed: error: {exc}", file=err)
        return 1
    return 0


@click.command()
@click.option("--channel", type=click.Choice(["market", "user"]), default="market")
@click.option("--url", default=None, help="WebSocket URL (default: Polymarket's).")
@click.option("--profile", type=click.Choice(sorted(PROFILES)), default="dashboard")
@click.option("--data-timeout", type=float, default=None, help="Seconds without data = stale.")
@click.option("--heartbeat", type=float, default=None, help="Seconds between text PINGs.")
@click.option("--pong-timeout", type=float, default=None, help="Seconds without PONG = dead.")
@click.option("--backoff-base", type=float, default=None)
@click.option("--backoff-max", type=float, default=None)
@click.argument("ids", nargs=-1)
def stream(
    channel: str,
    url: str | None,
    profile: str,
    data_timeout: float | None,
    heartbeat: float | None,
    pong_timeout: float | None,
    backoff_base: float | None,
    backoff_max: float | None,
    ids: tuple[str, ...],
) -> None:
    """Stream ASSET_OR_MARKET ids as NDJSON on stdout (status on stderr); Ctrl-C stops cleanly."""
    try:
        config = build_config(
            profile, data_timeout, heartbeat, pong_timeout, backoff_base, backoff_max
        )
        if channel == "market" and not ids:
            raise click.UsageError("give at least one asset id")
        if url is not None and not url.startswith(("ws://", "wss://")):
            raise click.UsageError(f"--url must be a ws:// or wss:// URL, got {url!r}")
        credentials = Credentials.from_env() if channel == "user" else None
    except PolyfeedError as exc:
        raise click.UsageError(str(exc)) from None
    code = run_until_signal(_stream_main(channel, url, config, list(ids), credentials))
    sys.exit(code)
