"""CLOB L2 API credentials for the user channel, never shown in reprs, logs or errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from polyfeed.errors import ConfigError

__all__ = ["ENV_API_KEY", "ENV_API_PASSPHRASE", "ENV_API_SECRET", "Credentials"]

ENV_API_KEY: Final = "POLYMARKET_API_KEY"
ENV_API_SECRET: Final = "POLYMARKET_API_SECRET"
ENV_API_PASSPHRASE: Final = "POLYMARKET_API_PASSPHRASE"

# Showing a few leading characters of the key lets an operator tell keys apart; short values are
# not shown at all, because a 4-character prefix of a 6-character value is most of it.
_SHOWN_KEY_CHARS: Final = 4
_MIN_KEY_LEN_TO_SHOW: Final = 12


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """The API key, secret and passphrase sent in the user channel's first frame.

    ``repr``/``str`` show at most the first 4 characters of ``api_key`` and never the secret or
    passphrase. Validation errors name the field, never its value.
    """

    api_key: str
    secret: str
    passphrase: str

    def __post_init__(self) -> None:
        for field_name in ("api_key", "secret", "passphrase"):
            value = getattr(self, field_name)
            if not isinstance(value, str):
                raise ConfigError(
                    f"Credentials.{field_name} must be a string, not {type(value).__name__}"
                )
            if not value.strip():
                raise ConfigError(f"Credentials.{field_name} is empty")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read ``POLYMARKET_API_KEY``, ``POLYMARKET_API_SECRET`` and ``POLYMARKET_API_PASSPHRASE``.

        Raises :class:`~polyfeed.errors.ConfigError` naming every missing or empty variable.
        """
        env = os.environ if environ is None else environ
        names = (ENV_API_KEY, ENV_API_SECRET, ENV_API_PASSPHRASE)
        missing = [name for name in names if name not in env]
        empty = [name for name in names if name in env and not env[name].strip()]
        problems = []
        if missing:
            problems.append(f"missing environment variable(s): {', '.join(missing)}")
        if empty:
            problems.append(f"empty environment variable(s): {', '.join(empty)}")
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(
            api_key=env[ENV_API_KEY], secret=env[ENV_API_SECRET], passphrase=env[ENV_API_PASSPHRASE]
        )

    def __repr__(self) -> str:
        if len(self.api_key) >= _MIN_KEY_LEN_TO_SHOW:
            shown = f"'{self.api_key[:_SHOWN_KEY_CHARS]}…'"
        else:
            shown = "<redacted>"
        return f"Credentials(api_key={shown}, secret=<redacted>, passphrase=<redacted>)"

    __str__ = __repr__
