"""The credentials the fake server accepts, and its check of CLOB L2 request headers.

The fake accepts one set of :class:`ApiCredentials` (``FakePolymarket.credentials``): on
``/ws/user`` the subscription's ``auth`` object must equal :meth:`ApiCredentials.auth`, and on
``GET /auth/api-keys`` the L2 headers must be signed with its secret (:func:`check_l2_headers`).
Assigning other credentials to ``FakePolymarket.credentials`` while it runs models a revoked key:
clients holding the old ones are then rejected on both.

Secrets never appear in a repr, a check result or a response.
"""

from __future__ import annotations

import base64
import hmac
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from polyfeed.credentials import Credentials, l2_signature
from polyfeed.errors import ConfigError

__all__ = ["L2_HEADERS", "ApiCredentials", "AuthCheck", "check_l2_headers"]

L2_HEADERS: Final = (
    "POLY_ADDRESS",
    "POLY_SIGNATURE",
    "POLY_TIMESTAMP",
    "POLY_API_KEY",
    "POLY_PASSPHRASE",
)


@dataclass(frozen=True, slots=True)
class ApiCredentials:
    """CLOB L2 API credentials the fake accepts; the repr hides them.

    ``secret`` is URL-safe base64 (as Polymarket issues them) so requests can be signed with it;
    ``address`` is the wallet the key belongs to (``POLY_ADDRESS``, compared case-insensitively).
    """

    api_key: str
    secret: str
    passphrase: str
    address: str = "0x" + "0" * 40

    @classmethod
    def generate(cls, rng: random.Random) -> ApiCredentials:
        """Credentials shaped like Polymarket's (a UUID key, a URL-safe base64 secret, a hex
        passphrase, a wallet address), drawn from ``rng``."""
        digits = f"{rng.getrandbits(128):032x}"
        api_key = f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-a{digits[17:20]}-{digits[20:]}"
        return cls(
            api_key=api_key,
            secret=base64.urlsafe_b64encode(rng.randbytes(32)).decode(),
            passphrase=rng.randbytes(32).hex(),
            address="0x" + rng.randbytes(20).hex(),
        )

    def auth(self) -> dict[str, str]:
        """The ``auth`` object of a user subscription."""
        return {"apiKey": self.api_key, "secret": self.secret, "passphrase": self.passphrase}

    def client(self) -> Credentials:
        """The same credentials as a client's :class:`polyfeed.credentials.Credentials`."""
        return Credentials(
            api_key=self.api_key,
            secret=self.secret,
            passphrase=self.passphrase,
            address=self.address,
        )

    def __repr__(self) -> str:
        return f"ApiCredentials(api_key='{self.api_key[:4]}…', secret=***, passphrase=***)"


@dataclass(frozen=True, slots=True)
class AuthCheck:
    """One authenticated REST request the fake answered: when (wall seconds), the route, whether
    the headers were accepted, and why not (a header name or a rule, never a value)."""

    at: float
    method: str
    path: str
    accepted: bool
    reason: str = ""


def check_l2_headers(
    headers: Mapping[str, str],
    credentials: ApiCredentials,
    method: str,
    path: str,
    body: str = "",
) -> str:
    """Why the request's L2 headers do not authenticate as ``credentials``; ``""`` when they do.

    The signature must be :func:`polyfeed.credentials.l2_signature` over the request's timestamp,
    method, path (no query) and body, keyed by the accepted secret. The timestamp's age is not
    checked: the fake's clock may be a test's fake one.
    """
    missing = [name for name in L2_HEADERS if not headers.get(name)]
    if missing:
        return f"missing header {missing[0]}"
    if not _same(headers["POLY_API_KEY"], credentials.api_key):
        return "unknown api key"
    if not _same(headers["POLY_PASSPHRASE"], credentials.passphrase):
        return "wrong passphrase"
    if headers["POLY_ADDRESS"].lower() != credentials.address.lower():
        return "address does not own the api key"
    timestamp = headers["POLY_TIMESTAMP"]
    if not timestamp.isdigit():
        return "POLY_TIMESTAMP is not an integer"
    try:
        expected = l2_signature(credentials.secret, int(timestamp), method, path, body)
    except ConfigError:
        return "the accepted secret cannot sign (not base64)"
    if not _same(headers["POLY_SIGNATURE"], expected):
        return "bad signature"
    return ""


def _same(given: str, accepted: str) -> bool:
    # Constant time, as a real server compares secrets; bytes, because a header may hold any text.
    return hmac.compare_digest(given.encode(), accepted.encode())
