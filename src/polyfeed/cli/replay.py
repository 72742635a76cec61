"""``polyfeed replay``: a recording's events as NDJSON on stdout, in the ``polyfeed stream`` format.

The lines are the ones ``polyfeed stream`` writes for the same events, so a consumer that reads
the live output reads a replay unchanged. Output goes through a ``LineWriter`` thread (never a
blocking write on the event loop); a reader that goes away (``| head``) ends the replay.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from polyfeed.cli._output import LineWriter, OutputClosedError
from polyfeed.cli._run import run_until_signal
from polyfeed.cli.stream import encode_event
from polyfeed.errors import PolyfeedError
from polyfeed.replay import Replay


async def _replay_main(replay: Replay) -> int:
    async with LineWriter(sys.stdout.fileno()) as out:
        try:
            async with replay:
                async for event in replay:
                    await out.write(encode_event(event))
        except OutputClosedError:
            return 0
        except PolyfeedError as exc:
            click.echo(f"polyfeed: error: {exc}", err=True)
            return 1
    return 0


@click.command()
@click.option("--asset", "assets", multiple=True, help="Only events about this asset (repeat).")
@click.option(
    "--since",
    type=float,
    default=None,
    help="From this receive time, epoch s (default: the start).",
)
@click.option(
    "--until", type=float, default=None, help="Up to this receive time, epoch s (default: the end)."
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Pace by the receive times (1: real time, 10: ten times faster); default: no pacing.",
)
@click.argument("recording", type=click.Path(path_type=Path))
def replay(
    assets: tuple[str, ...],
    since: float | None,
    until: float | None,
    speed: float | None,
    recording: Path,
) -> None:
    """Play RECORDING (a ``polyfeed record`` SQLite file or Parquet folder) as NDJSON on stdout."""
    try:
        player = Replay(
            recording,
            assets=assets or None,
            since=since,
            until=until,
            speed=speed,
            books=False,
        )
    except PolyfeedError as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(run_until_signal(_replay_main(player)))
