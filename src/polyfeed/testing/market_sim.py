"""Simulated Polymarket markets: YES/NO token pairs with mirrored books and seeded order flow.

Pure: no asyncio, no network, no ``time``. Randomness is a seeded ``random.Random`` and the wall
clock is an injected function, so a simulator built with the same arguments produces the same
messages byte for byte.

Wire facts the simulator reproduces (see protocol.md §3):

- Prices and sizes are exact decimal strings without trailing zeros (``"0.5"``, ``"800"``),
  computed from integers, never from floats.
- Books are sent in live wire order: bids ascending, asks descending (best level last).
- The NO book mirrors the YES book: a YES bid at ``p`` is a NO ask at ``1 - p`` with the same
  size, so every ``price_change`` carries one entry per token of the market.
- ``hash`` (in ``book``, in each ``price_change`` entry and in the REST summary) is
  :func:`polyfeed.core.book_hash.book_hash` with scheme ``V2026`` over that asset's book
  *after* the change, stamped with the message's timestamp, ``min_order_size``, the asset's
  current ``tick_size``, ``neg_risk`` and ``last_trade_price`` — the asset's last trade price
  string, ``""`` until the first simulated trade.
- Timestamps are epoch-millisecond strings, strictly increasing per market: every message gets
  ``max(wall_ms, previous + 1)``, so under bursts they run ahead of the wall clock. The one
  exception is a run (below), whose messages share one timestamp.
- A trade emits ``last_trade_price`` for both tokens (YES at ``p``, NO at ``1 - p``) and then
  the ``price_change`` that takes the liquidity, whose hashes already include the new trade
  price. ``trade_print_after_change=True`` reverses the order, reproducing the live quirk where
  a hash only verifies with a ``last_trade_price`` received later (protocol.md §3.7, F14).
- ``tick_size_change`` (off unless ``tick_size_change_probability`` > 0) only ever refines a
  market's tick (0.01 -> 0.001), so existing levels stay on the grid.
- Polymarket can split one matching event over several ``price_change`` messages that share one
  timestamp, and every entry of such a *run* carries the hash (and ``best_bid``/``best_ask``) of
  the book after the whole run. A fraction ``run_probability`` of the order-flow steps that are
  not trades becomes such a run of 2 to ``max_run_messages`` messages, one level change each
  (off by default in the simulator; ``FakePolymarket`` turns it on, ``run_probability=0.1``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

import msgspec

from polyfeed.core.book_hash import HashScheme, book_hash
from polyfeed.errors import ConfigError

__all__ = [
    "BookView",
    "MarketSimulator",
    "SimMarket",
    "SimMessage",
    "format_price",
    "format_size",
]

# Internal price unit: 0.0001, the finest tick Polymarket uses. Prices are ints of this unit.
_UNITS_PER_ONE = 10_000
_PRICE_EXPONENT = -4
# Sizes are ints of 0.01 shares.
_SIZE_EXPONENT = -2

Level = tuple[str, str]


def _format_scaled(value: int, exponent: int) -> str:
    text = format(Decimal(value).scaleb(exponent).normalize(), "f")
    return text


# Every price on the finest grid, formatted once: formatting dominated the cost of a step.
_PRICE_TEXT: list[str] = [
    _format_scaled(units, _PRICE_EXPONENT) for units in range(_UNITS_PER_ONE + 1)
]


def format_price(units: int) -> str:
    """The wire string for a price given in units of 0.0001 (``5000`` -> ``"0.5"``)."""
    return _PRICE_TEXT[units]


def format_size(cents: int) -> str:
    """The wire string for a size given in hundredths of a share (``80000`` -> ``"800"``)."""
    return _format_scaled(cents, _SIZE_EXPONENT)


def _tick_units(tick_size: str) -> int:
    scaled = Decimal(tick_size).scaleb(-_PRICE_EXPONENT)
    if scaled != scaled.to_integral_value() or not 0 < scaled < _UNITS_PER_ONE:
        raise ConfigError(f"unsupported tick size {tick_size!r}")
    return int(scaled)


class SimMarket(msgspec.Struct, frozen=True, kw_only=True):
    """One simulated binary market: its condition id and its YES/NO token ids."""

    condition_id: str
    question: str
    slug: str
    yes_token: str
    no_token: str

    @property
    def tokens(self) -> tuple[str, str]:
        """``(yes_token, no_token)``."""
        return (self.yes_token, self.no_token)


class BookView(msgspec.Struct, frozen=True, kw_only=True):
    """An asset's current server book, levels in wire order (bids ascending, asks descending)."""

    market: str
    asset_id: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    tick_size: str
    min_order_size: str
    neg_risk: bool
    last_trade_price: str
    timestamp: str
    hash: str

    @property
    def best_bid(self) -> str:
        """Best bid price string, ``""`` when the side is empty."""
        return self.bids[-1][0] if self.bids else ""

    @property
    def best_ask(self) -> str:
        """Best ask price string, ``""`` when the side is empty."""
        return self.asks[-1][0] if self.asks else ""


class SimMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One generated wire message: its JSON text (``raw``) and what it is about."""

    event_type: str
    market: str
    asset_ids: tuple[str, ...]
    timestamp: str
    payload: dict[str, Any]
    raw: bytes


_encode = msgspec.json.Encoder().encode


def _message(
    event_type: str, market: str, asset_ids: tuple[str, ...], payload: dict[str, Any]
) -> SimMessage:
    return SimMessage(
        event_type=event_type,
        market=market,
        asset_ids=asset_ids,
        timestamp=payload["timestamp"],
        payload=payload,
        raw=_encode(payload),
    )


class _MarketState:
    """The YES book of one market (the NO book is derived by mirroring) plus its clocks."""

    __slots__ = (
        "asks",
        "bids",
        "info",
        "last_trade",
        "tick_text",
        "tick_units",
        "timestamp_ms",
        "user_queue",
    )

    def __init__(self, info: SimMarket, tick_size: str) -> None:
        self.info = info
        self.tick_units = _tick_units(tick_size)
        self.tick_text = tick_size
        # YES book: price units -> (size cents, size text); the text is cached because
        # formatting dominates the cost of a step.
        self.bids: dict[int, tuple[int, str]] = {}
        self.asks: dict[int, tuple[int, str]] = {}
        # YES last trade price in units; None until the first trade.
        self.last_trade: int | None = None
        self.timestamp_ms = 0
        self.user_queue: list[dict[str, Any]] = []


class MarketSimulator:
    """Seeded simulated markets with order flow; every message is ready-encoded JSON.

    ``step()`` produces one ``price_change``, or a run of them sharing one timestamp (plus,
    sometimes, trade prints, a tick size change and — always generated, delivered only to
    custom-feature subscribers — ``best_bid_ask`` events when the top of book moved).
    """

    def __init__(
        self,
        markets: int = 4,
        *,
        seed: int = 0,
        wall: Callable[[], float],
        tick_size: str = "0.01",
        min_order_size: str = "5",
        neg_risk: bool = False,
        min_levels: int = 10,
        max_levels: int = 30,
        trade_probability: float = 0.1,
        tick_size_change_probability: float = 0.0,
        trade_print_after_change: bool = False,
        run_probability: float = 0.0,
        max_run_messages: int = 3,
    ) -> None:
        if markets < 1:
            raise ConfigError(f"markets must be >= 1, got {markets}")
        if not 1 <= min_levels <= max_levels:
            raise ConfigError("need 1 <= min_levels <= max_levels")
        if not 0.0 <= run_probability <= 1.0 or max_run_messages < 2:
            raise ConfigError("need 0 <= run_probability <= 1 and max_run_messages >= 2")
        self._rng = random.Random(seed)
        self._wall = wall
        self.min_order_size = min_order_size
        self.neg_risk = neg_risk
        self.min_levels = min_levels
        self.max_levels = max_levels
        self.trade_probability = trade_probability
        self.tick_size_change_probability = tick_size_change_probability
        self.trade_print_after_change = trade_print_after_change
        self.run_probability = run_probability
        self.max_run_messages = max_run_messages
        self._states: dict[str, _MarketState] = {}
        self._asset_market: dict[str, _MarketState] = {}
        self._round_robin = 0
        self._order_counter = 0
        for index in range(markets):
            info = SimMarket(
                condition_id="0x" + self._rng.getrandbits(256).to_bytes(32, "big").hex(),
                question=f"Will simulated event #{index} happen?",
                slug=f"simulated-market-{index}",
                yes_token=str(self._rng.getrandbits(255)),
                no_token=str(self._rng.getrandbits(255)),
            )
            state = _MarketState(info, tick_size)
            self._seed_book(state)
            self._states[info.condition_id] = state
            self._asset_market[info.yes_token] = state
            self._asset_market[info.no_token] = state
        self.markets: tuple[SimMarket, ...] = tuple(s.info for s in self._states.values())
        self.asset_ids: tuple[str, ...] = tuple(t for m in self.markets for t in m.tokens)

    # ------------------------------------------------------------------ lookup

    def market(self, condition_id: str) -> SimMarket | None:
        """The market with this condition id, or None."""
        state = self._states.get(condition_id)
        return state.info if state is not None else None

    def market_of(self, asset_id: str) -> SimMarket | None:
        """The market a token belongs to, or None for an unknown token."""
        state = self._asset_market.get(asset_id)
        return state.info if state is not None else None

    def knows(self, asset_id: str) -> bool:
        """Whether ``asset_id`` is one of the simulated tokens."""
        return asset_id in self._asset_market

    def tick_size(self, asset_id: str) -> str:
        """The asset's current tick size string."""
        return self._asset_market[asset_id].tick_text

    # ------------------------------------------------------------------ books

    def _stamp(self, state: _MarketState) -> str:
        wall_ms = int(self._wall() * 1000)
        state.timestamp_ms = max(wall_ms, state.timestamp_ms + 1)
        return str(state.timestamp_ms)

    def _levels(self, state: _MarketState, asset_id: str) -> tuple[list[Level], list[Level]]:
        """(bids ascending, asks descending) of the asset in wire strings."""
        bids, asks = state.bids, state.asks
        text = _PRICE_TEXT
        if asset_id == state.info.yes_token:
            return (
                [(text[p], bids[p][1]) for p in sorted(bids)],
                [(text[p], asks[p][1]) for p in sorted(asks, reverse=True)],
            )
        # NO bids are YES asks at 1-p: ascending NO price is descending YES price.
        one = _UNITS_PER_ONE
        return (
            [(text[one - p], asks[p][1]) for p in sorted(asks, reverse=True)],
            [(text[one - p], bids[p][1]) for p in sorted(bids)],
        )

    def _last_trade_text(self, state: _MarketState, asset_id: str) -> str:
        if state.last_trade is None:
            return ""
        if asset_id == state.info.yes_token:
            return format_price(state.last_trade)
        return format_price(_UNITS_PER_ONE - state.last_trade)

    def _best(self, state: _MarketState, asset_id: str) -> tuple[str, str]:
        bids, asks = state.bids, state.asks
        if asset_id == state.info.yes_token:
            return (
                format_price(max(bids)) if bids else "",
                format_price(min(asks)) if asks else "",
            )
        return (
            format_price(_UNITS_PER_ONE - min(asks)) if asks else "",
            format_price(_UNITS_PER_ONE - max(bids)) if bids else "",
        )

    def _hash(
        self,
        state: _MarketState,
        asset_id: str,
        timestamp: str,
        levels: tuple[list[Level], list[Level]],
    ) -> str:
        return book_hash(
            market=state.info.condition_id,
            asset_id=asset_id,
            timestamp=timestamp,
            bids=levels[0],
            asks=levels[1],
            scheme=HashScheme.V2026,
            min_order_size=self.min_order_size,
            tick_size=state.tick_text,
            neg_risk=self.neg_risk,
            last_trade_price=self._last_trade_text(state, asset_id),
        )

    def book(self, asset_id: str) -> BookView:
        """The asset's current book, stamped with the market's latest timestamp (no new stamp)."""
        state = self._asset_market[asset_id]
        timestamp = str(state.timestamp_ms)
        levels = self._levels(state, asset_id)
        return BookView(
            market=state.info.condition_id,
            asset_id=asset_id,
            bids=tuple(levels[0]),
            asks=tuple(levels[1]),
            tick_size=state.tick_text,
            min_order_size=self.min_order_size,
            neg_risk=self.neg_risk,
            last_trade_price=self._last_trade_text(state, asset_id),
            timestamp=timestamp,
            hash=self._hash(state, asset_id, timestamp, levels),
        )

    def snapshot(self, asset_id: str) -> SimMessage:
        """A WS ``book`` message for the asset with a fresh timestamp and its hash."""
        state = self._asset_market[asset_id]
        timestamp = self._stamp(state)
        levels = self._levels(state, asset_id)
        # Key order of a live capture (nautilus ws_book_snapshot_captured.json).
        payload = {
            "market": state.info.condition_id,
            "asset_id": asset_id,
            "timestamp": timestamp,
            "hash": self._hash(state, asset_id, timestamp, levels),
            "bids": [{"price": p, "size": s} for p, s in levels[0]],
            "asks": [{"price": p, "size": s} for p, s in levels[1]],
            "tick_size": state.tick_text,
            "event_type": "book",
            "last_trade_price": self._last_trade_text(state, asset_id),
        }
        return _message("book", state.info.condition_id, (asset_id,), payload)

    def rest_summary(self, asset_id: str) -> dict[str, Any]:
        """The REST ``GET /book`` body: the V2026 hash preimage fields in preimage order."""
        view = self.book(asset_id)
        return {
            "market": view.market,
            "asset_id": view.asset_id,
            "timestamp": view.timestamp,
            "hash": view.hash,
            "bids": [{"price": p, "size": s} for p, s in view.bids],
            "asks": [{"price": p, "size": s} for p, s in view.asks],
            "min_order_size": view.min_order_size,
            "tick_size": view.tick_size,
            "neg_risk": view.neg_risk,
            "last_trade_price": view.last_trade_price,
        }

    # ------------------------------------------------------------------ flow

    def _random_size(self) -> tuple[int, str]:
        # 5 .. 5000 shares, in cents; mostly small, like live books.
        cents = int(
            self._rng.choice((500, 1000, 2500, 10000, 50000)) * self._rng.uniform(1.0, 10.0)
        )
        return cents, format_size(cents)

    def _seed_book(self, state: _MarketState) -> None:
        tick = state.tick_units
        ticks_in_one = _UNITS_PER_ONE // tick
        mid = self._rng.randint(ticks_in_one // 5, ticks_in_one * 4 // 5)
        spread = self._rng.randint(1, 3)
        best_bid, best_ask = mid - 1, mid - 1 + spread
        depth = (self.min_levels + self.max_levels) // 2
        price = best_bid
        while len(state.bids) < depth and price >= 1:
            state.bids[price * tick] = self._random_size()
            price -= self._rng.choice((1, 1, 1, 2))
        price = best_ask
        while len(state.asks) < depth and price < ticks_in_one:
            state.asks[price * tick] = self._random_size()
            price += self._rng.choice((1, 1, 1, 2))

    def _pick_market(self, condition_id: str | None) -> _MarketState:
        if condition_id is not None:
            try:
                return self._states[condition_id]
            except KeyError:
                raise ConfigError(f"unknown market {condition_id!r}") from None
        states = self.markets
        info = states[self._round_robin % len(states)]
        self._round_robin += 1
        return self._states[info.condition_id]

    def _free_price(self, state: _MarketState, is_bid: bool) -> int | None:
        tick = state.tick_units
        span = self.max_levels + 5
        if is_bid:
            top = (min(state.asks) if state.asks else _UNITS_PER_ONE) - tick
            candidates = [top - i * tick for i in range(span)]
            book = state.bids
        else:
            bottom = (max(state.bids) if state.bids else 0) + tick
            candidates = [bottom + i * tick for i in range(span)]
            book = state.asks
        free = [p for p in candidates if 0 < p < _UNITS_PER_ONE and p not in book]
        return self._rng.choice(free) if free else None

    def _level_change(self, state: _MarketState) -> tuple[bool, int, str]:
        """Mutate the YES book once: (is_bid, price units, new size text; "0" = removed)."""
        is_bid = self._rng.random() < 0.5
        book = state.bids if is_bid else state.asks
        count = len(book)
        if count >= self.max_levels:
            actions: tuple[str, ...] = ("modify", "remove")
        elif count <= self.min_levels:
            actions = ("add", "modify") if count else ("add",)
        else:
            actions = ("add", "modify", "remove")
        action = self._rng.choice(actions)
        if action == "add":
            price = self._free_price(state, is_bid)
            if price is None:
                action = "modify"
            else:
                size = book[price] = self._random_size()
                return is_bid, price, size[1]
        price = self._rng.choice(list(book))
        if action == "remove":
            del book[price]
            return is_bid, price, "0"
        size = book[price] = self._random_size()
        return is_bid, price, size[1]

    def _trade(self, state: _MarketState) -> tuple[bool, int, str, int, str] | None:
        """A taker takes (part of) a YES top level: (is_bid, price, new size, qty, taker side).

        None when no side can trade without emptying below ``min_levels``.
        """
        taker_buys = self._rng.random() < 0.5
        for buys in (taker_buys, not taker_buys):
            book = state.asks if buys else state.bids
            if not book:
                continue
            price = min(book) if buys else max(book)
            size = book[price][0]
            quantity = self._rng.randint(1, size)
            if len(book) <= self.min_levels:
                # Keep the side at min_levels: only a partial fill is allowed here.
                quantity = min(quantity, size - 1)
            if quantity <= 0:
                continue
            remaining = size - quantity
            if remaining:
                book[price] = (remaining, format_size(remaining))
            else:
                del book[price]
            state.last_trade = price
            taker_side = "BUY" if buys else "SELL"
            return (not buys), price, format_size(remaining), quantity, taker_side
        return None

    def _price_changes(
        self, state: _MarketState, changes: list[tuple[bool, int, str]]
    ) -> list[SimMessage]:
        """One ``price_change`` per YES change (already applied), all stamped alike.

        Every entry carries the hash and top of book after the last change: one change is an
        ordinary message, several are a run.
        """
        info = state.info
        timestamp = self._stamp(state)
        after: dict[str, tuple[str, str, str]] = {}
        for asset_id in info.tokens:
            levels = self._levels(state, asset_id)
            after[asset_id] = (
                self._hash(state, asset_id, timestamp, levels),
                levels[0][-1][0] if levels[0] else "",
                levels[1][-1][0] if levels[1] else "",
            )
        messages = []
        for is_bid, price, size_text in changes:
            entries = []
            for asset_id, entry_price, entry_bid in (
                (info.yes_token, price, is_bid),
                (info.no_token, _UNITS_PER_ONE - price, not is_bid),
            ):
                book_hash_after, best_bid, best_ask = after[asset_id]
                entries.append(
                    {
                        "asset_id": asset_id,
                        "price": format_price(entry_price),
                        "size": size_text,
                        "side": "BUY" if entry_bid else "SELL",
                        "hash": book_hash_after,
                        "best_bid": best_bid,
                        "best_ask": best_ask,
                    }
                )
            payload = {
                "event_type": "price_change",
                "market": info.condition_id,
                "timestamp": timestamp,
                "price_changes": entries,
            }
            messages.append(_message("price_change", info.condition_id, info.tokens, payload))
        return messages

    def _trade_prints(
        self, state: _MarketState, quantity: int, taker_side: str
    ) -> list[SimMessage]:
        info = state.info
        assert state.last_trade is not None
        prints = []
        for asset_id, price, side in (
            (info.yes_token, state.last_trade, taker_side),
            (
                info.no_token,
                _UNITS_PER_ONE - state.last_trade,
                "SELL" if taker_side == "BUY" else "BUY",
            ),
        ):
            payload = {
                "event_type": "last_trade_price",
                "market": info.condition_id,
                "asset_id": asset_id,
                "price": format_price(price),
                "size": format_size(quantity),
                "side": side,
                "fee_rate_bps": "0",
                "timestamp": self._stamp(state),
                "transaction_hash": "0x" + self._rng.getrandbits(256).to_bytes(32, "big").hex(),
            }
            prints.append(_message("last_trade_price", info.condition_id, (asset_id,), payload))
        return prints

    def _tick_size_change(self, state: _MarketState) -> list[SimMessage]:
        old, new = state.tick_text, "0.001"
        if _tick_units(old) <= _tick_units(new):
            return []
        state.tick_units = _tick_units(new)
        state.tick_text = new
        messages = []
        for asset_id in state.info.tokens:
            payload = {
                "event_type": "tick_size_change",
                "market": state.info.condition_id,
                "asset_id": asset_id,
                "old_tick_size": old,
                "new_tick_size": new,
                "timestamp": self._stamp(state),
            }
            messages.append(
                _message("tick_size_change", state.info.condition_id, (asset_id,), payload)
            )
        return messages

    def _best_bid_asks(
        self, state: _MarketState, before: dict[str, tuple[str, str]]
    ) -> list[SimMessage]:
        messages = []
        for asset_id in state.info.tokens:
            best = self._best(state, asset_id)
            if best == before[asset_id] or not best[0] or not best[1]:
                continue
            spread = format(Decimal(best[1]) - Decimal(best[0]), "f")
            payload = {
                "event_type": "best_bid_ask",
                "market": state.info.condition_id,
                "asset_id": asset_id,
                "best_bid": best[0],
                "best_ask": best[1],
                "spread": spread,
                "timestamp": self._stamp(state),
            }
            messages.append(_message("best_bid_ask", state.info.condition_id, (asset_id,), payload))
        return messages

    def step(self, condition_id: str | None = None) -> list[SimMessage]:
        """One order-flow step on a market (round-robin when None).

        One ``price_change``, or (with ``run_probability``, for steps that are not trades) a run
        of several sharing one timestamp and the final hash. Around it, in wire order: an
        optional ``tick_size_change`` pair, trade prints when the step is a trade, and
        ``best_bid_ask`` for each token whose top of book moved.
        """
        state = self._pick_market(condition_id)
        out: list[SimMessage] = []
        if (
            self.tick_size_change_probability
            and self._rng.random() < self.tick_size_change_probability
        ):
            out.extend(self._tick_size_change(state))
        before = {a: self._best(state, a) for a in state.info.tokens}
        trade = self._trade(state) if self._rng.random() < self.trade_probability else None
        if trade is not None:
            is_bid, price, size, quantity, taker_side = trade
            prints = self._trade_prints(state, quantity, taker_side)
            changes = self._price_changes(state, [(is_bid, price, size)])
            if self.trade_print_after_change:
                out.extend(changes)
                out.extend(prints)
            else:
                out.extend(prints)
                out.extend(changes)
        else:
            count = 1
            if self.run_probability and self._rng.random() < self.run_probability:
                count = self._rng.randint(2, self.max_run_messages)
            level_changes = [self._level_change(state) for _ in range(count)]
            out.extend(self._price_changes(state, level_changes))
        out.extend(self._best_bid_asks(state, before))
        return out

    # ------------------------------------------------------------------ user channel

    def user_step(self, owner: str, condition_id: str | None = None) -> SimMessage:
        """The next user-channel event (``order`` or ``trade``) of ``owner`` on a market.

        Each market runs a small lifecycle: order PLACEMENT, UPDATE (partial fill), trade
        MATCHED -> MINED -> CONFIRMED, CANCELLATION of the rest; then a new order.
        """
        state = self._pick_market(condition_id)
        if not state.user_queue:
            state.user_queue = self._user_lifecycle(state, owner)
        payload = state.user_queue.pop(0)
        payload["timestamp"] = self._stamp(state)
        return _message(
            payload["event_type"], state.info.condition_id, (payload["asset_id"],), payload
        )

    def _user_lifecycle(self, state: _MarketState, owner: str) -> list[dict[str, Any]]:
        info = state.info
        self._order_counter += 1
        order_id = "0x" + self._rng.getrandbits(256).to_bytes(32, "big").hex()
        trade_id = f"{self._rng.getrandbits(128):032x}"
        maker = "0x" + self._rng.getrandbits(160).to_bytes(20, "big").hex()
        side: Literal["BUY", "SELL"] = self._rng.choice(("BUY", "SELL"))
        if side == "BUY":
            price = format_price(max(state.bids) if state.bids else _UNITS_PER_ONE // 2)
        else:
            price = format_price(min(state.asks) if state.asks else _UNITS_PER_ONE // 2)
        original = self._rng.randint(5, 100)
        matched = self._rng.randint(1, original)
        created = str(int(self._wall()))

        def order(kind: str, status: str, size_matched: int) -> dict[str, Any]:
            return {
                "event_type": "order",
                "type": kind,
                "id": order_id,
                "owner": owner,
                "order_owner": owner,
                "market": info.condition_id,
                "asset_id": info.yes_token,
                "side": side,
                "price": price,
                "original_size": str(original),
                "size_matched": str(size_matched),
                "outcome": "Yes",
                "associate_trades": [trade_id] if size_matched else None,
                "order_type": "GTC",
                "status": status,
                "created_at": created,
                "expiration": "0",
                "maker_address": maker,
                "timestamp": "",
            }

        def trade(status: str) -> dict[str, Any]:
            return {
                "event_type": "trade",
                "type": "TRADE",
                "id": trade_id,
                "taker_order_id": "0x" + "0" * 64,
                "market": info.condition_id,
                "asset_id": info.yes_token,
                "side": "SELL" if side == "BUY" else "BUY",
                "size": str(matched),
                "price": price,
                "fee_rate_bps": "0",
                "status": status,
                "matchtime": created,
                "last_update": created,
                "outcome": "Yes",
                "owner": owner,
                "trade_owner": owner,
                "maker_address": maker,
                "transaction_hash": "",
                "bucket_index": 0,
                "trader_side": "MAKER",
                "maker_orders": [
                    {
                        "order_id": order_id,
                        "owner": owner,
                        "maker_address": maker,
                        "matched_amount": str(matched),
                        "price": price,
                        "fee_rate_bps": "0",
                        "asset_id": info.yes_token,
                        "outcome": "Yes",
                        "side": side,
                    }
                ],
                "timestamp": "",
            }

        return [
            order("PLACEMENT", "LIVE", 0),
            order("UPDATE", "LIVE", matched),
            trade("MATCHED"),
            trade("MINED"),
            trade("CONFIRMED"),
            order("CANCELLATION", "CANCELED", matched),
        ]

    def __repr__(self) -> str:
        return (
            f"MarketSimulator(markets={len(self.markets)}, assets={len(self.asset_ids)}, "
            f"steps={self._round_robin}, trade_probability={self.trade_probability}, "
            f"run_probability={self.run_probability})"
        )
