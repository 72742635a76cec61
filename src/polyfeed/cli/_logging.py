"""Logging for the commands: one stderr handler, text or one JSON object per line."""

from __future__ import annotations

import logging
import sys

import msgspec

_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (epoch seconds), ``level``, ``logger``, ``message``."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (exception text under ``exc_info``)."""
        body: dict[str, object] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exc_info"] = self.formatException(record.exc_info)
        return _encoder.encode(body).decode()


def level_for(verbose: int, quiet: int) -> int:
    """WARNING by default; each ``-v`` one level more detail, each ``-q`` one level less."""
    steps = min(verbose, 2) - min(quiet, 2)
    return logging.WARNING - 10 * steps


def configure_logging(level: int, log_format: str) -> None:
    """Replace the root logger's handlers with one on stderr in ``log_format`` (text|json)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
