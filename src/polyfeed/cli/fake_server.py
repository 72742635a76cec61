"""``polyfeed fake-server``: run the fake Polymarket server until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click
import msgspec

from polyfeed.cli._run import run_until_signal
from polyfeed.testing.server import FakePolymarket

# A long-running server must not keep every message it ever generated.
_LOG_LIMIT = 100_000


def describe(fake: FakePolymarket) -> dict[str, Any]:
    """What a client needs to connect: URLs, the fake credentials, markets and token ids."""
    return {
        "market_url": fake.market_url,
        "user_url": fake.user_url,
        "rest_url": fake.rest_url,
        "gamma_url": fake.gamma_url,
        "credentials": {
            "api_key": fake.credentials.api_key,
            "secret": fake.credentials.secret,
            "passphrase": fake.credentials.passphrase,
        },
        "markets": [
            {"condition_id": m.condition_id, "yes": m.yes_token, "no": m.no_token}
            for m in fake.markets
        ],
        "asset_ids": list(fake.asset_ids),
        "run_probability": fake.sim.run_probability,
        "stream_args": stream_args(fake),
    }


def stream_args(fake: FakePolymarket) -> list[str]:
    """The ``polyfeed stream`` options that point it (discovery included) at this server."""
    return ["--url", fake.market_url, "--rest-url", fake.rest_url, "--gamma-url", fake.gamma_url]


def _print_human(fake: FakePolymarket) -> None:
    click.echo(
        f"polyfeed fake Polymarket server: {len(fake.markets)} markets, "
        f"{fake.rate:g} price_change/s per market, {fake.user_rate:g} user events/s, "
        f"runs (several price_change of one event) on {fake.sim.run_probability:.0%} of steps"
    )
    click.echo(f"  market WS  {fake.market_url}")
    click.echo(f"  user WS    {fake.user_url}")
    click.echo(f"  CLOB REST  {fake.rest_url}")
    click.echo(f"  Gamma      {fake.gamma_url}")
    click.echo(f"  stream it: polyfeed stream {' '.join(stream_args(fake))} --all-active")
    # These credentials are made up by the fake and only valid against it.
    credentials = fake.credentials
    click.echo(
        f"  fake user credentials: api_key={credentials.api_key} secret={credentials.secret} "
        f"passphrase={credentials.passphrase}"
    )
    for market in fake.markets:
        click.echo(f"  market {market.condition_id}")
        click.echo(f"    YES {market.yes_token}")
        click.echo(f"    NO  {market.no_token}")
    click.echo("Ctrl-C to stop.")


async def _serve(options: dict[str, Any], as_json: bool) -> int:
    async with FakePolymarket(max_log_events=_LOG_LIMIT, **options) as fake:
        if as_json:
            sys.stdout.write(msgspec.json.encode(describe(fake)).decode() + "\n")
        else:
            _print_human(fake)
        sys.stdout.flush()
        await asyncio.Event().wait()
    return 0


@click.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port; 0 picks a free one.",
)
@click.option(
    "--markets",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Simulated markets (two tokens each).",
)
@click.option(
    "--rate",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="price_change messages per second per market.",
)
@click.option(
    "--user-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="User-channel order/trade events per second.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Simulation seed.")
@click.option(
    "--ping-grace",
    default=15.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Close sockets that send no text PING for this long (seconds).",
)
@click.option(
    "--run-probability",
    default=0.1,
    show_default=True,
    type=click.FloatRange(min=0, max=1),
    help="Share of order-flow steps sent, as the real server does, as a run of several "
    "price_change messages sharing one timestamp and the final hash (0: one per step).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print URLs, credentials and ids as one JSON line."
)
def fake_server(
    host: str,
    port: int,
    markets: int,
    rate: float,
    user_rate: float,
    seed: int,
    ping_grace: float,
    run_probability: float,
    as_json: bool,
) -> None:
    """Run a fake Polymarket server (market/user WebSockets, CLOB REST, Gamma) until stopped."""
    options = {
        "host": host,
        "port": port,
        "markets": markets,
        "rate": rate,
        "user_rate": user_rate,
        "seed": seed,
        "ping_grace": ping_grace,
        "run_probability": run_probability,
    }
    try:
        code = run_until_signal(_serve(options, as_json))
    except OSError as exc:
        # A busy port, an address not on this machine, a host name that does not resolve.
        reason = (exc.strerror or str(exc)).rsplit(": ", 1)[-1]
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}") from None
    sys.exit(code)
