"""CLOB REST (``/book``, ``/books``, ``/markets/{condition_id}``), Gamma market discovery, and
the authenticated credential check (``/auth/api-keys``).

The only module that makes HTTP calls. Responses are decoded into the same typed ``Book`` as the
WebSocket snapshot, so a REST book and a WS book compare field by field.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from polyfeed.core.messages import Book
from polyfeed.credentials import Credentials
from polyfeed.errors import RestError

logger = logging.getLogger("polyfeed.rest")

_T = TypeVar("_T")

HEARTBEAT_PATH = "/v1/heartbeats"
API_KEYS_PATH = "/auth/api-keys"
"""The CLOB route that lists the caller's API keys; any valid L2-signed request gets 200."""

CredentialsCheck = Callable[[], Awaitable[bool | None]]
"""Confirms a suspected credential rejection: True valid, False rejected, None inconclusive."""


class MarketToken(msgspec.Struct, frozen=True):
    """One outcome token of a CLOB market."""

    token_id: str
    outcome: str = ""


class MarketInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The metadata of a CLOB market that the book hash needs.

    The API sends the sizes as JSON numbers; they are kept as the shortest exact decimal
    string (``5`` -> ``"5"``, ``0.001`` -> ``"0.001"``), the form the book hash covers.
    """

    condition_id: str
    tokens: list[MarketToken] = []
    minimum_order_size: str | None = None
    minimum_tick_size: str | None = None
    neg_risk: bool | None = None


class _RawMarketInfo(msgspec.Struct, kw_only=True):
    condition_id: str
    tokens: list[MarketToken] = []
    minimum_order_size: str | float | None = None
    minimum_tick_size: str | float | None = None
    neg_risk: bool | None = None


def decimal_text(value: str | float | None) -> str | None:
    """The shortest exact decimal text of a JSON number (``5.0`` -> ``"5"``); strings as is."""
    if value is None or isinstance(value, str):
        return value
    text = format(Decimal(repr(value)).normalize(), "f")
    return text


class GammaMarket(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A Gamma ``/markets`` entry (only the fields polyfeed uses)."""

    condition_id: str
    clob_token_ids: list[str] = []
    outcomes: list[str] = []
    question: str | None = None
    slug: str | None = None
    active: bool | None = None
    closed: bool | None = None
    neg_risk: bool | None = None
    order_price_min_tick_size: str | None = None
    order_min_size: str | None = None


class _RawGammaMarket(msgspec.Struct, kw_only=True, rename="camel"):
    condition_id: str
    # Gamma sends these two lists as JSON-encoded strings ("[\"id1\", \"id2\"]").
    clob_token_ids: str | list[str] | None = None
    outcomes: str | list[str] | None = None
    question: str | None = None
    slug: str | None = None
    active: bool | None = None
    closed: bool | None = None
    neg_risk: bool | None = None
    order_price_min_tick_size: str | float | None = None
    order_min_size: str | float | None = None


def _string_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    try:
        decoded = msgspec.json.decode(value, type=list[str])
    except (msgspec.ValidationError, msgspec.DecodeError):
        return []
    return decoded


def _gamma_market(item: _RawGammaMarket) -> GammaMarket:
    return GammaMarket(
        condition_id=item.condition_id,
        clob_token_ids=_string_list(item.clob_token_ids),
        outcomes=_string_list(item.outcomes),
        question=item.question,
        slug=item.slug,
        active=item.active,
        closed=item.closed,
        neg_risk=item.neg_risk,
        order_price_min_tick_size=decimal_text(item.order_price_min_tick_size),
        order_min_size=decimal_text(item.order_min_size),
    )


def parse_gamma_markets(payload: bytes) -> list[GammaMarket]:
    """Gamma ``/markets`` JSON (a list) into ``GammaMarket``s; raises msgspec errors."""
    return [_gamma_market(item) for item in _gamma_decoder.decode(payload)]


class GammaEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A Gamma ``/events`` entry: an event and its markets."""

    slug: str | None = None
    title: str | None = None
    markets: list[GammaMarket] = []


class _RawGammaEvent(msgspec.Struct, kw_only=True):
    slug: str | None = None
    title: str | None = None
    markets: list[_RawGammaMarket] = []


_book_decoder = msgspec.json.Decoder(Book, strict=False)
_books_decoder = msgspec.json.Decoder(list[Book], strict=False)
_market_decoder = msgspec.json.Decoder(_RawMarketInfo, strict=False)
_gamma_decoder = msgspec.json.Decoder(list[_RawGammaMarket], strict=False)
_gamma_events_decoder = msgspec.json.Decoder(list[_RawGammaEvent], strict=False)


class RestClient:
    """A small async client for the CLOB and Gamma REST APIs."""

    def __init__(
        self,
        rest_url: str,
        gamma_url: str | None = None,
        *,
        request_timeout: float = 10.0,
    ) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.gamma_url = (gamma_url or rest_url).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0
        self.failures = 0

    def __repr__(self) -> str:
        return f"<RestClient {self.rest_url} requests={self.requests} failures={self.failures}>"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _request(self, method: str, url: str, body: bytes | None = None) -> bytes:
        self.requests += 1
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            async with self._client().request(method, url, data=body, headers=headers) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    self.failures += 1
                    raise RestError(resp.status, url, payload[:200].decode("utf-8", "replace"))
                return payload
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.failures += 1
            raise RestError(None, url, str(exc) or type(exc).__name__) from None

    def _decode(self, decoder: msgspec.json.Decoder[_T], payload: bytes, url: str) -> _T:
        try:
            return decoder.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self.failures += 1
            raise RestError(200, url, f"unexpected response: {exc}") from None

    async def book(self, token_id: str) -> Book:
        """``GET /book?token_id=`` as a typed ``Book`` (with the market metadata fields)."""
        url = f"{self.rest_url}/book?token_id={quote(token_id)}"
        return self._decode(_book_decoder, await self._request("GET", url), url)

    async def books(self, token_ids: list[str]) -> list[Book]:
        """``POST /books`` for several tokens at once."""
        url = f"{self.rest_url}/books"
        body = msgspec.json.encode([{"token_id": token} for token in token_ids])
        return self._decode(_books_decoder, await self._request("POST", url, body), url)

    async def market(self, condition_id: str) -> MarketInfo:
        """``GET /markets/{condition_id}``: tokens, minimum order size and tick, neg_risk."""
        url = f"{self.rest_url}/markets/{quote(condition_id)}"
        raw = self._decode(_market_decoder, await self._request("GET", url), url)
        return MarketInfo(
            condition_id=raw.condition_id,
            tokens=raw.tokens,
            minimum_order_size=decimal_text(raw.minimum_order_size),
            minimum_tick_size=decimal_text(raw.minimum_tick_size),
            neg_risk=raw.neg_risk,
        )

    async def gamma_markets(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        active: bool = True,
        slugs: Sequence[str] = (),
        condition_ids: Sequence[str] = (),
    ) -> list[GammaMarket]:
        """Gamma ``/markets`` (active, not closed), with the JSON-in-string lists decoded;
        ``slugs`` / ``condition_ids`` select those markets."""
        flag = "true" if active else "false"
        url = f"{self.gamma_url}/markets?active={flag}&closed=false&limit={limit}&offset={offset}"
        url += "".join(f"&slug={quote(slug)}" for slug in slugs)
        url += "".join(f"&condition_ids={quote(c)}" for c in condition_ids)
        payload = await self._request("GET", url)
        try:
            return parse_gamma_markets(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self.failures += 1
            raise RestError(200, url, f"unexpected response: {exc}") from None

    async def gamma_events(self, slugs: Sequence[str]) -> list[GammaEvent]:
        """Gamma ``/events`` with these slugs, each with its markets (lists decoded)."""
        url = f"{self.gamma_url}/events?limit={max(1, len(slugs))}"
        url += "".join(f"&slug={quote(slug)}" for slug in slugs)
        payload = await self._request("GET", url)
        try:
            raw = _gamma_events_decoder.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self.failures += 1
            raise RestError(200, url, f"unexpected response: {exc}") from None
        return [
            GammaEvent(
                slug=event.slug,
                title=event.title,
                markets=[_gamma_market(m) for m in event.markets],
            )
            for event in raw
        ]

    async def check_credentials(
        self, credentials: Credentials, *, timestamp: int | None = None
    ) -> bool | None:
        """Whether the CLOB accepts ``credentials``: ``GET /auth/api-keys`` with L2 headers.

        True on 200, False on 401/403 (the key, secret or passphrase is rejected), None when
        the answer proves nothing: a network error, a timeout, 429, 5xx or any other status,
        or credentials that cannot sign (no address; see ``Credentials.can_sign``). Never
        raises for those. ``timestamp`` (wall seconds) defaults to now.
        """
        if not credentials.can_sign:
            return None
        url = f"{self.rest_url}{API_KEYS_PATH}"
        when = int(time.time()) if timestamp is None else timestamp
        headers = credentials.l2_headers(when, "GET", API_KEYS_PATH)
        self.requests += 1
        try:
            async with self._client().get(url, headers=headers) as resp:
                await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.failures += 1
            logger.info("credential check inconclusive: %s", str(exc) or type(exc).__name__)
            return None
        if status == 200:
            return True
        self.failures += 1
        if status in (401, 403):
            return False
        logger.info("credential check inconclusive: HTTP %d", status)
        return None

    async def post_heartbeat(
        self, credentials: Credentials, heartbeat_id: str, *, timestamp: int
    ) -> tuple[int, bytes]:
        """``POST /v1/heartbeats`` (L2-signed) with ``heartbeat_id``: the status and body as
        answered, whatever the status (the order heartbeat reads 400 replies). Raises
        :class:`~polyfeed.errors.RestError` (status None) on a network error or timeout."""
        url = f"{self.rest_url}{HEARTBEAT_PATH}"
        body = msgspec.json.encode({"heartbeat_id": heartbeat_id}).decode()
        headers = credentials.l2_headers(timestamp, "POST", HEARTBEAT_PATH, body)
        headers["Content-Type"] = "application/json"
        self.requests += 1
        try:
            async with self._client().post(url, data=body, headers=headers) as resp:
                return resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.failures += 1
            raise RestError(None, url, str(exc) or type(exc).__name__) from None

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def credentials_check(
    rest_url: str, credentials: Credentials | None, *, request_timeout: float = 10.0
) -> CredentialsCheck | None:
    """A :data:`CredentialsCheck` against ``rest_url`` for the supervisor; None if they cannot sign.

    Each call opens a short-lived client, makes one request and closes it: checks are rare (a
    suspected rejection), so no session is kept open between them.
    """
    if credentials is None or not credentials.can_sign:
        return None

    async def check() -> bool | None:
        client = RestClient(rest_url, request_timeout=request_timeout)
        try:
            return await client.check_credentials(credentials)
        finally:
            await client.aclose()

    return check
