"""``python -m polyfeed`` and the ``polyfeed`` command: the CLI, or one line naming the extra."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command line; without the ``cli`` extra, say how to install it and exit 1."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(
            f"polyfeed: the command line needs the 'cli' extra ({exc.name} is missing): "
            "pip install 'polyfeed[cli]'\n"
        )
        raise SystemExit(1) from None
    from polyfeed.cli import main as cli_main

    cli_main(prog_name="polyfeed")


if __name__ == "__main__":
    main()
