"""CLOB L2 API credentials for the user channel, never shown in reprs, logs or errors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from polyfeed.errors import ConfigError

__all__ = [
    "ENV_ADDRESS",
    "ENV_API_KEY",
    "ENV_API_PASSPHRASE",
    "ENV_API_SECRET",
    "Credentials",
    "l2_signature",
]

ENV_API_KEY: Final = "POLYMARKET_API_KEY"
ENV_API_SECRET: Final = "POLYMARKET_API_SECRET"
ENV_API_PASSPHRASE: Final = "POLYMARKET_API_PASSPHRASE"
# Optional: the wallet address the key belongs to. With it, an authenticated REST call (CLOB L2
# headers) can confirm a suspected credential rejection; without it only the socket can tell.
ENV_ADDRESS: Final = "POLYMARKET_ADDRESS"

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
    address: str | None = None

    def __post_init__(self) -> None:
        for field_name in ("api_key", "secret", "passphrase"):
            value = getattr(self, field_name)
            if not isinstance(value, str):
                raise ConfigError(
                    f"Credentials.{field_name} must be a string, not {type(value).__name__}"
                )
            if not value.strip():
                raise ConfigError(f"Credentials.{field_name} is empty")
        if self.address is not None and (
            not isinstance(self.address, str) or not self.address.strip()
        ):
            raise ConfigError("Credentials.address must be a non-empty string or None")

    @property
    def can_sign(self) -> bool:
        """Whether these credentials can make an authenticated CLOB REST call (L2 headers)."""
        if self.address is None:
            return False
        try:
            _decode_secret(self.secret)
        except ConfigError:
            return False
        return True

    def l2_headers(self, timestamp: int, method: str, path: str, body: str = "") -> dict[str, str]:
        """CLOB L2 authentication headers for one request (``timestamp`` in wall seconds).

        Raises :class:`~polyfeed.errors.ConfigError` when there is no address or the secret is
        not base64 (such credentials cannot sign; see :attr:`can_sign`).
        """
        if self.address is None:
            raise ConfigError("Credentials.address is needed to sign a REST request")
        return {
            "POLY_ADDRESS": self.address,
            "POLY_SIGNATURE": l2_signature(self.secret, timestamp, method, path, body),
            "POLY_TIMESTAMP": str(timestamp),
            "POLY_API_KEY": self.api_key,
            "POLY_PASSPHRASE": self.passphrase,
        }

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
        address = env.get(ENV_ADDRESS, "").strip() or None
        return cls(
            api_key=env[ENV_API_KEY],
            secret=env[ENV_API_SECRET],
            passphrase=env[ENV_API_PASSPHRASE],
            address=address,
        )

    def __repr__(self) -> str:
        if len(self.api_key) >= _MIN_KEY_LEN_TO_SHOW:
            shown = f"'{self.api_key[:_SHOWN_KEY_CHARS]}…'"
        else:
            shown = "<redacted>"
        return f"Credentials(api_key={shown}, secret=<redacted>, passphrase=<redacted>)"

    __str__ = __repr__


def _decode_secret(secret: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(secret.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        # The value is never echoed: it is a secret, even when malformed.
        raise ConfigError("Credentials.secret is not URL-safe base64; it cannot sign") from None


def l2_signature(secret: str, timestamp: int, method: str, path: str, body: str = "") -> str:
    """Polymarket's CLOB L2 HMAC: SHA-256 over ``timestamp + method + path + body``.

    The key is the URL-safe-base64-decoded secret; the digest is URL-safe base64. This is the
    scheme of Polymarket's own clients (``build_hmac_signature``); the fake server checks with it.
    """
    key = _decode_secret(secret)
    message = f"{timestamp}{method.upper()}{path}{body}".encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
