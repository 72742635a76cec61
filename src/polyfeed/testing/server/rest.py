"""CLOB REST, Gamma and the credential check of the fake server, as the live ones answer.

- ``GET /book?token_id=``, ``POST /books`` — book summaries with the server's hash;
- ``GET /markets`` (cursor pages of 500, ``LTE=`` at the end), ``GET /markets/{condition_id}``;
- ``GET /gamma/markets`` — Gamma-style discovery (``outcomes``, ``outcomePrices`` and
  ``clobTokenIds`` are JSON-encoded strings, protocol.md §7);
- ``GET /auth/api-keys`` — CLOB L2 authentication (``POLY_ADDRESS``, ``POLY_SIGNATURE``,
  ``POLY_TIMESTAMP``, ``POLY_API_KEY``, ``POLY_PASSPHRASE``) checked against the accepted
  credentials: 200 ``{"apiKeys": [key]}`` or 401 ``{"error": "Unauthorized/Invalid api key"}``.
  Every answer is recorded in ``FakePolymarket.auth_checks``.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from polyfeed.testing.market_sim import BookView, SimMarket
from polyfeed.testing.server.auth import AuthCheck, check_l2_headers

if TYPE_CHECKING:
    from polyfeed.testing.server.app import FakePolymarket

__all__ = ["RestApi"]

_UNAUTHORIZED = {"error": "Unauthorized/Invalid api key"}


EVENT_SIZE = 3
"""Markets per simulated Gamma event."""


class RestApi:
    """The REST and Gamma routes of one :class:`FakePolymarket`, answered from its simulator."""

    def __init__(self, server: FakePolymarket) -> None:
        self._server = server
        self._sim = server.sim

    def routes(self) -> list[web.RouteDef]:
        """Every REST route, for ``app.add_routes``."""
        return [
            web.get("/book", self._rest_book),
            web.post("/books", self._rest_books),
            web.get("/markets", self._rest_markets),
            web.get("/markets/{condition_id}", self._rest_market),
            web.get("/gamma/markets", self._gamma_markets),
            web.get("/gamma/events", self._gamma_events),
            web.get("/auth/api-keys", self._api_keys),
        ]

    def __repr__(self) -> str:
        return f"RestApi(url={self._server.rest_url}, markets={len(self._sim.markets)})"

    async def _api_keys(self, request: web.Request) -> web.StreamResponse:
        server = self._server
        credentials = server.credentials
        body = await request.text()
        reason = check_l2_headers(
            request.headers, credentials, request.method, request.rel_url.path, body
        )
        server.auth_checks.append(
            AuthCheck(
                at=server.wall(),
                method=request.method,
                path=request.rel_url.path,
                accepted=not reason,
                reason=reason,
            )
        )
        if reason:
            return web.json_response(_UNAUTHORIZED, status=401)
        return _json({"apiKeys": [credentials.api_key]})

    async def _rest_book(self, request: web.Request) -> web.StreamResponse:
        token_id = request.query.get("token_id", "")
        if not token_id:
            return web.json_response({"error": "Invalid token id"}, status=400)
        if not self._sim.knows(token_id):
            return web.json_response(
                {"error": "No orderbook exists for the requested token id"}, status=404
            )
        return _json(self._sim.rest_summary(token_id))

    async def _rest_books(self, request: web.Request) -> web.StreamResponse:
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError:
            return web.json_response({"error": "Invalid payload"}, status=400)
        if not isinstance(body, list) or not all(
            isinstance(item, dict) and isinstance(item.get("token_id"), str) for item in body
        ):
            return web.json_response({"error": "Invalid payload"}, status=400)
        return _json(
            [self._sim.rest_summary(i["token_id"]) for i in body if self._sim.knows(i["token_id"])]
        )

    def _clob_market(self, market: SimMarket) -> dict[str, Any]:
        tokens = []
        for token_id, outcome in ((market.yes_token, "Yes"), (market.no_token, "No")):
            book = self._sim.book(token_id)
            tokens.append(
                {"token_id": token_id, "outcome": outcome, "price": _mid(book), "winner": False}
            )
        return {
            "enable_order_book": True,
            "active": True,
            "closed": False,
            "archived": False,
            "accepting_orders": True,
            "minimum_order_size": _decimal_number(self._sim.min_order_size),
            "minimum_tick_size": _decimal_number(self._sim.tick_size(market.yes_token)),
            "condition_id": market.condition_id,
            "question": market.question,
            "market_slug": market.slug,
            "neg_risk": self._sim.neg_risk,
            "tokens": tokens,
        }

    async def _rest_market(self, request: web.Request) -> web.StreamResponse:
        market = self._sim.market(request.match_info["condition_id"])
        if market is None:
            return web.json_response({"error": "market not found"}, status=404)
        return _json(self._clob_market(market))

    async def _rest_markets(self, request: web.Request) -> web.StreamResponse:
        cursor = request.query.get("next_cursor", "")
        try:
            offset = int(base64.b64decode(cursor).decode()) if cursor else 0
        except ValueError:
            return web.json_response({"error": "invalid next_cursor"}, status=400)
        limit = 500
        page = self._sim.markets[offset : offset + limit]
        end = offset + len(page) >= len(self._sim.markets)
        next_cursor = "LTE=" if end else base64.b64encode(str(offset + limit).encode()).decode()
        return _json(
            {
                "limit": limit,
                "count": len(page),
                "next_cursor": next_cursor,
                "data": [self._clob_market(m) for m in page],
            }
        )

    def _gamma_market(self, index: int, market: SimMarket) -> dict[str, Any]:
        prices = [_mid(self._sim.book(t)) for t in market.tokens]
        # Gamma sends these three as JSON-encoded strings (protocol.md §7).
        return {
            "id": str(index + 1),
            "question": market.question,
            "conditionId": market.condition_id,
            "slug": market.slug,
            "outcomes": json.dumps(["Yes", "No"]),
            "outcomePrices": json.dumps([str(p) for p in prices]),
            "clobTokenIds": json.dumps(list(market.tokens)),
            "active": True,
            "closed": False,
            "enableOrderBook": True,
            "acceptingOrders": True,
            "orderPriceMinTickSize": _decimal_number(self._sim.tick_size(market.yes_token)),
            "orderMinSize": _decimal_number(self._sim.min_order_size),
            "negRisk": self._sim.neg_risk,
        }

    async def _gamma_markets(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        try:
            limit = int(query.get("limit", "100"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return web.json_response({"error": "limit and offset must be integers"}, status=400)
        markets = list(enumerate(self._sim.markets))
        if query.get("closed") == "true" or query.get("active") == "false":
            markets = []  # every simulated market is active and open
        wanted = query.getall("condition_ids", [])
        if wanted:
            markets = [(i, m) for i, m in markets if m.condition_id in wanted]
        slugs = query.getall("slug", [])
        if slugs:
            markets = [(i, m) for i, m in markets if m.slug in slugs]
        page = markets[offset : offset + max(0, limit)]
        return _json([self._gamma_market(i, m) for i, m in page])

    async def _gamma_events(self, request: web.Request) -> web.StreamResponse:
        # Events group EVENT_SIZE consecutive markets: simulated-event-0 holds markets 0..2.
        query = request.query
        try:
            limit = int(query.get("limit", "100"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return web.json_response({"error": "limit and offset must be integers"}, status=400)
        markets = self._sim.markets
        events = []
        for number, start in enumerate(range(0, len(markets), EVENT_SIZE)):
            slug = f"simulated-event-{number}"
            members = range(start, min(start + EVENT_SIZE, len(markets)))
            events.append(
                {
                    "id": str(number + 1),
                    "slug": slug,
                    "title": f"Simulated event #{number}",
                    "active": True,
                    "closed": False,
                    "markets": [self._gamma_market(i, markets[i]) for i in members],
                }
            )
        slugs = query.getall("slug", [])
        if slugs:
            events = [e for e in events if e["slug"] in slugs]
        return _json(events[offset : offset + max(0, limit)])


def _json(body: Any) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


def _mid(book: BookView) -> float:
    if book.best_bid and book.best_ask:
        return float((Decimal(book.best_bid) + Decimal(book.best_ask)) / 2)
    return 0.5


def _decimal_number(text: str) -> float:
    # Gamma and CLOB /markets send these as JSON numbers.
    return float(Decimal(text))
