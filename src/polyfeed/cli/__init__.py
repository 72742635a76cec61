"""The ``polyfeed`` command line (click + rich live only here).

Global options come before the command: ``polyfeed -v --log-format json stream ...``.
"""

from __future__ import annotations

import click

from polyfeed._version import __version__
from polyfeed.cli._logging import configure_logging, level_for
from polyfeed.cli.book import book
from polyfeed.cli.config_cmd import config_group
from polyfeed.cli.demo import demo
from polyfeed.cli.fake_server import fake_server
from polyfeed.cli.record import record
from polyfeed.cli.replay import replay
from polyfeed.cli.status import status
from polyfeed.cli.stream import stream
from polyfeed.native import build_name


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__,
    "-V",
    "--version",
    prog_name="polyfeed",
    message=f"%(prog)s, version %(version)s, {build_name()}",
)
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v: INFO, -vv: DEBUG).")
@click.option("-q", "--quiet", count=True, help="Less logging on stderr (-q: ERROR only).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log records on stderr as text lines or one JSON object per line.",
)
def main(verbose: int, quiet: int, log_format: str) -> None:
    """polyfeed: live Polymarket WebSocket data that keeps flowing."""
    configure_logging(level_for(verbose, quiet), log_format)


main.add_command(stream)
main.add_command(fake_server)
main.add_command(demo)
main.add_command(book)
main.add_command(record)
main.add_command(replay)
main.add_command(status)
main.add_command(config_group)
