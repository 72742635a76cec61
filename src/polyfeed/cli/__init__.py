"""The ``polyfeed`` command line (click + rich live only here)."""

from __future__ import annotations

import click

from polyfeed.cli.book import book
from polyfeed.cli.demo import demo
from polyfeed.cli.fake_server import fake_server
from polyfeed.cli.record import record
from polyfeed.cli.replay import replay
from polyfeed.cli.stream import stream


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v: INFO, -vv: DEBUG).")
def main(verbose: int) -> None:
    """polyfeed: live Polymarket WebSocket data that keeps flowing."""
    import logging

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


main.add_command(stream)
main.add_command(fake_server)
main.add_command(demo)
main.add_command(book)
main.add_command(record)
main.add_command(replay)
