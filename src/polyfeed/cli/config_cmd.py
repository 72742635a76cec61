"""``polyfeed config show``: the effective configuration, each value with its source.

Precedence, lowest first: profile defaults < TOML file (``--config`` or ``POLYFEED_CONFIG``) <
``POLYFEED_*`` environment variables < command-line flags. Credentials are never printed.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from polyfeed.config import PROFILES
from polyfeed.config_file import load
from polyfeed.errors import ConfigError


@click.group("config")
def config_group() -> None:
    """Inspect the configuration polyfeed would run with."""


@config_group.command("show")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML configuration file (default: $POLYFEED_CONFIG, else none).",
)
@click.option(
    "--profile",
    type=click.Choice(sorted(PROFILES)),
    default=None,
    help="Profile to start from (default: the file's or $POLYFEED_PROFILE, else dashboard).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "toml"]),
    default="table",
    show_default=True,
    help="A table with each value's source, or a TOML file to start from.",
)
def show(config_path: str | None, profile: str | None, output_format: str) -> None:
    """Print the effective configuration with each value's source, credentials redacted."""
    try:
        effective = load(config_path, profile=profile)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if output_format == "toml":
        click.echo(effective.to_toml(), nl=False)
        return
    table = Table(title="effective configuration", title_justify="left")
    for column in ("key", "value", "source"):
        table.add_column(column)
    for key, value, source in effective.rows():
        table.add_row(key, value, source)
    Console(highlight=False, width=120).print(table)
