"""Market discovery over Gamma: market slugs, event slugs and condition ids -> token ids.

``Discovery.resolve`` turns what a user names into the token ids a ``MarketStream`` subscribes;
``--all-active`` pages through every active, open market (``page_size`` per request until a
short page). ``Discovery.follow`` keeps a running stream in line with the same query: new
markets are subscribed, markets no longer listed (resolved, closed) unsubscribed. Every HTTP
call goes through :class:`~polyfeed.aio.rest.RestClient`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

import msgspec

from polyfeed.aio.clock import Clock
from polyfeed.aio.rest import GammaMarket, RestClient
from polyfeed.core.placement import Shard
from polyfeed.errors import ConfigError, RestError

logger = logging.getLogger("polyfeed.discovery")

__all__ = ["Discovery", "MarketQuery"]


class MarketQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What to stream: markets by slug, events by slug, markets by condition id, or every
    active market; ``shard`` keeps only its share of the token ids."""

    markets: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    condition_ids: tuple[str, ...] = ()
    all_active: bool = False
    shard: Shard | None = None

    @property
    def empty(self) -> bool:
        """Whether the query names nothing."""
        return not (self.markets or self.events or self.condition_ids or self.all_active)


class Subscriber(Protocol):
    """What :meth:`Discovery.follow` drives (a ``MarketStream``)."""

    @property
    def subscriptions(self) -> frozenset[str]: ...

    async def subscribe(self, ids: Iterable[str]) -> list[str]: ...

    async def unsubscribe(self, ids: Iterable[str]) -> list[str]: ...


class Discovery:
    """Resolves a :class:`MarketQuery` to token ids with Gamma."""

    def __init__(self, rest: RestClient, *, page_size: int = 500) -> None:
        if page_size < 1:
            raise ConfigError(f"page_size must be >= 1, got {page_size!r}")
        self.rest = rest
        self.page_size = page_size
        self.pages = 0

    def __repr__(self) -> str:
        return f"<Discovery gamma={self.rest.gamma_url} pages={self.pages}>"

    async def markets(self, query: MarketQuery) -> list[GammaMarket]:
        """The query's markets, each once, in the order found.

        Raises ``ConfigError`` for a slug or condition id Gamma does not know (a typo must not
        stream nothing in silence) and ``RestError`` when Gamma fails.
        """
        found: dict[str, GammaMarket] = {}
        if query.markets:
            listed = await self.rest.gamma_markets(
                slugs=query.markets, limit=max(len(query.markets), 1)
            )
            _require(query.markets, {m.slug for m in listed}, "market slug")
            found.update((m.condition_id, m) for m in listed)
        if query.events:
            events = await self.rest.gamma_events(query.events)
            _require(query.events, {e.slug for e in events}, "event slug")
            for event in events:
                found.update((m.condition_id, m) for m in event.markets)
        if query.condition_ids:
            listed = await self.rest.gamma_markets(
                condition_ids=query.condition_ids, limit=max(len(query.condition_ids), 1)
            )
            _require(query.condition_ids, {m.condition_id for m in listed}, "condition id")
            found.update((m.condition_id, m) for m in listed)
        if query.all_active:
            for market in await self.all_active():
                found.setdefault(market.condition_id, market)
        return list(found.values())

    async def all_active(self) -> list[GammaMarket]:
        """Every active, open market: pages of ``page_size`` until a short page."""
        out: list[GammaMarket] = []
        offset = 0
        while True:
            page = await self.rest.gamma_markets(limit=self.page_size, offset=offset)
            self.pages += 1
            out.extend(page)
            if len(page) < self.page_size:
                return out
            offset += len(page)

    async def resolve(self, query: MarketQuery) -> list[str]:
        """The query's token ids (closed markets and markets without a book skipped)."""
        tokens = token_ids(await self.markets(query))
        return tokens if query.shard is None else query.shard.select(tokens)

    async def follow(
        self, stream: Subscriber, query: MarketQuery, *, every: float, clock: Clock
    ) -> None:
        """Every ``every`` s, subscribe the query's new token ids and unsubscribe the ones it
        no longer lists (resolved or closed markets); runs until cancelled. A failed refresh is
        logged and retried at the next turn."""
        if not every > 0:
            raise ConfigError(f"refresh interval must be > 0, got {every!r}")
        while True:
            await clock.sleep_until(clock.now() + every)
            try:
                wanted = set(await self.resolve(query))
            except (ConfigError, RestError) as exc:
                logger.warning("discovery refresh failed: %s", exc)
                continue
            current = stream.subscriptions
            added = await stream.subscribe(sorted(wanted - current))
            removed = await stream.unsubscribe(sorted(current - wanted))
            if added or removed:
                logger.info("discovery: %d new tokens, %d dropped", len(added), len(removed))


def token_ids(markets: Sequence[GammaMarket]) -> list[str]:
    """The token ids of open markets, each once, in order."""
    out: dict[str, None] = {}
    for market in markets:
        if market.closed:
            continue
        for token in market.clob_token_ids:
            out.setdefault(token)
    return list(out)


def _require(asked: Sequence[str], found: set[str | None], what: str) -> None:
    missing = [name for name in asked if name not in found]
    if missing:
        raise ConfigError(f"unknown {what}: {', '.join(missing)}")
