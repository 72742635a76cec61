"""``python -m polyfeed`` and the ``polyfeed`` command: the CLI, or one line naming the extra."""

from __future__ import annotations

import importlib.util
import sys

CLI_EXTRA = ("click", "rich")


def missing_cli_package() -> str | None:
    """The first package of the ``cli`` extra that is not installed, None when all are."""
    for name in CLI_EXTRA:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def main() -> None:
    """Run the command line; without the ``cli`` extra, say how to install it and exit 1."""
    missing = missing_cli_package()
    if missing is not None:
        sys.stderr.write(
            f"polyfeed: the command line needs the 'cli' extra ({missing} is missing): "
            "pip install 'polyfeed[cli]'\n"
        )
        raise SystemExit(1)
    from polyfeed.cli import main as cli_main

    cli_main(prog_name="polyfeed")


if __name__ == "__main__":
    main()
