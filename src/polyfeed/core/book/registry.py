"""The books of many assets: one message applied to every book it concerns."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Final, assert_never

from mypy_extensions import mypyc_attr

from polyfeed.core.book.options import BookOptions, BookVerdict
from polyfeed.core.book.order_book import OrderBook, entry_fields
from polyfeed.core.book.resync import SnapshotSide
from polyfeed.core.book_hash import HashScheme
from polyfeed.core.messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    MarketEvent,
    MarketResolved,
    NewMarket,
    PriceChange,
    TickSizeChange,
)

__all__ = ["BookRegistry", "Books"]

# Compiled, a class imported from an interpreted module is a dict lookup at each use, a Final
# is a C static read once.
_PRICE_CHANGE: Final = PriceChange
_BOOK_UPDATES: Final = (PriceChange, LastTradePrice, TickSizeChange, BestBidAsk)


# Compiled (setup.py), a class is closed to Python subclasses unless it says otherwise; the
# book keeper's tests subclass this one to crash its timers.
@mypyc_attr(allow_interpreted_subclasses=True)
class BookRegistry(Mapping[str, OrderBook]):
    """The books of many assets: applies whole messages to every book they concern.

    A ``book`` snapshot for an unknown asset adds a book (the subscription is the caller's
    business), unless :meth:`remove` removed that asset since it was last added: a snapshot
    still in flight after an unsubscribe does not bring the book back. Deltas and trades for
    unknown assets are ignored. Market metadata given for a
    condition id is kept and handed to books of that market when they learn their market.
    """

    def __init__(
        self,
        options: BookOptions | None = None,
        hash_scheme: HashScheme = HashScheme.V2026,
        *,
        batched: bool = False,
    ) -> None:
        """``batched=True``: the books check their hash at :meth:`end_batch` and at least every
        ``options.verify_every`` messages instead of every ``hash_check_every``-th message (see
        :class:`BookOptions`); the caller must then call :meth:`end_batch` after each batch."""
        self.options = options if options is not None else BookOptions()
        # The batched books with a message whose hash is not checked yet.
        self._batch: list[OrderBook] | None = [] if batched else None
        # Books that were not quiet at the end of a call since take_deadline() last ran: the
        # only ones whose deadline can have changed. A set: bounded by the books, never drained
        # by a caller that does not ask.
        self._restless: set[SnapshotSide] = set()
        self._scheme = hash_scheme
        self._books: dict[str, OrderBook] = {}
        # Assets removed (unsubscribed) and not added since: their late snapshots are ignored.
        self._removed: set[str] = set()
        self._market_info: dict[str, tuple[str | None, str | None, bool | None]] = {}
        # The assets whose book learned each market here: set_market_info reaches them without a
        # pass over every book (5,000 markets' metadata over 10,000 books was 50 M steps).
        self._assets_of_market: dict[str, set[str]] = {}

    def __getitem__(self, asset_id: str) -> OrderBook:
        return self._books[asset_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._books)

    def __len__(self) -> int:
        return len(self._books)

    def __repr__(self) -> str:
        synced = sum(1 for book in self._books.values() if book.synced)
        return (
            f"BookRegistry(books={len(self._books)}, synced={synced}, "
            f"removed={len(self._removed)}, scheme={self._scheme.name})"
        )

    def add(self, asset_id: str, market: str | None = None) -> OrderBook:
        """The book of ``asset_id``, created (unsynced) if needed."""
        self._removed.discard(asset_id)
        book = self._books.get(asset_id)
        if book is None:
            book = OrderBook(
                asset_id,
                market,
                hash_scheme=self._scheme,
                options=self.options,
                batch=self._batch,
                restless=self._restless,
            )
            self._books[asset_id] = book
            if market is not None:
                self._assets_of_market.setdefault(market, set()).add(asset_id)
                self._hand_market_info(book)
        return book

    def remove(self, asset_id: str) -> None:
        """Forget a book (unsubscribed); its snapshots are ignored until :meth:`add`."""
        self._books.pop(asset_id, None)
        self._removed.add(asset_id)

    def set_market_info(
        self,
        market: str,
        *,
        min_order_size: str | None = None,
        tick_size: str | None = None,
        neg_risk: bool | None = None,
    ) -> None:
        """Metadata of a market (condition id) for every book of it, present and future."""
        self._market_info[market] = (min_order_size, tick_size, neg_risk)
        books = self._books
        for asset in self._assets_of_market.get(market, ()):
            book = books.get(asset)
            if book is not None and book.market == market:
                book.set_market_info(min_order_size, tick_size, neg_risk)

    def _learn_market(self, book: OrderBook, market: str) -> None:
        book.market = market
        self._assets_of_market.setdefault(market, set()).add(book.asset_id)
        self._hand_market_info(book)

    def _hand_market_info(self, book: OrderBook) -> None:
        info = self._market_info.get(book.market or "")
        if info is not None:
            book.set_market_info(*info)

    def apply_run(
        self,
        events: Sequence[object],
        start: int,
        now: float | None,
        caused: list[tuple[int, list[BookVerdict]]],
    ) -> int:
        """:meth:`apply` the events from ``start`` on while they are book updates
        (``price_change``, ``last_trade_price``, ``tick_size_change``, ``best_bid_ask``); the
        non-``ok`` verdicts of ``events[i]`` are appended to ``caused`` as ``(i, verdicts)``.

        Returns the index of the first event that is not a book update (``len(events)`` when
        there is none), for the caller to handle before it calls again past it. A batch is
        nearly all updates: this keeps its loop in the compiled module (``setup.py``)."""
        index = start
        count = len(events)
        while index < count:
            event = events[index]
            if not isinstance(event, _BOOK_UPDATES):
                return index
            # Not a local bind of the method: compiled, that would be a generic call per event.
            verdicts = self.apply(event, now)
            if verdicts:
                caused.append((index, verdicts))
            index += 1
        return count

    def apply(self, event: MarketEvent, now: float | None = None) -> list[BookVerdict]:
        """Apply one event to every book it concerns; returns only the non-``ok`` verdicts."""
        books = self._books
        verdicts: list[BookVerdict] = []
        if type(event) is _PRICE_CHANGE:
            entries = event.price_changes
            count = len(entries)
            if count == 1 or (count == 2 and entries[0].asset_id != entries[1].asset_id):
                # Each entry the only one of its book: one token's change, or a binary market's
                # mirrored pair (nearly every message).
                for entry in entries:
                    fields = entry_fields(entry)
                    book = books.get(fields[0])
                    if book is not None:
                        if book.market is None:
                            self._learn_market(book, event.market)
                        verdict = book.apply_fields(event, entry, fields, now)
                        # The book's shared ok verdict first: compiled, reading a field of a
                        # msgspec Struct is a generic attribute lookup.
                        if verdict is not book._ok and verdict.action != "ok":
                            verdicts.append(verdict)
                return verdicts
        match event:
            case PriceChange():
                touched: list[OrderBook] = []
                for entry in event.price_changes:
                    book = books.get(entry.asset_id)
                    if book is not None and book not in touched:
                        if book.market is None:
                            self._learn_market(book, event.market)
                        touched.append(book)
                for book in touched:
                    verdict = book.apply(event, now)
                    if verdict.action != "ok":
                        verdicts.append(verdict)
            case Book():
                book = books.get(event.asset_id)
                if book is None:
                    if event.asset_id in self._removed:
                        return verdicts
                    book = self.add(event.asset_id, event.market)
                elif book.market is None:
                    self._learn_market(book, event.market)
                verdict = book.apply(event, now)
                if verdict.action != "ok":
                    verdicts.append(verdict)
                self._learn_scheme(book)
            case LastTradePrice() | TickSizeChange() | BestBidAsk():
                book = books.get(event.asset_id)
                if book is not None:
                    verdict = book.apply(event, now)
                    if verdict.action != "ok":
                        verdicts.append(verdict)
            case NewMarket() | MarketResolved():
                pass
            case _:
                assert_never(event)
        return verdicts

    def end_batch(self, now: float | None = None) -> list[BookVerdict]:
        """:meth:`OrderBook.end_batch` on every book that left a message unchecked since the last
        call; one verdict per such book, ``ok`` ones included (their deadlines may have moved).
        """
        batch = self._batch
        if not batch:
            return []
        # A book appends itself again after each check inside the batch: once is enough here.
        books = dict.fromkeys(batch)
        batch.clear()
        return [book.end_batch(now) for book in books]

    def _learn_scheme(self, book: OrderBook) -> None:
        # New books start with the scheme the last detection found.
        if book.scheme_detected:
            self._scheme = book.hash_scheme

    def reconcile(self, rest_book: Book, now: float | None = None) -> BookVerdict:
        """:meth:`OrderBook.reconcile` on the asset's book (ok/"unknown asset" if absent)."""
        book = self._books.get(rest_book.asset_id)
        if book is None:
            return BookVerdict(rest_book.asset_id, "ok", "unknown asset")
        return book.reconcile(rest_book, now)

    def complete_resync(
        self, snapshot: Book, *, resync_id: int | None = None, now: float | None = None
    ) -> BookVerdict:
        """:meth:`OrderBook.complete_resync` on the asset's book (ok/"unknown asset" if absent)."""
        book = self._books.get(snapshot.asset_id)
        if book is None:
            return BookVerdict(snapshot.asset_id, "ok", "unknown asset")
        if book.market is None:
            self._learn_market(book, snapshot.market)
        verdict = book.complete_resync(snapshot, resync_id=resync_id, now=now)
        self._learn_scheme(book)
        return verdict

    def invalidate_all(self, reason: str) -> list[BookVerdict]:
        """Invalidate every book (reconnect, dropped frames); returns the ``invalidated`` ones."""
        verdicts = [book.invalidate(reason) for book in self._books.values()]
        return [verdict for verdict in verdicts if verdict.action != "ok"]

    def needing_resync(self) -> list[str]:
        """Assets whose book is unsynced with no resync in flight."""
        return [asset for asset, book in self._books.items() if book.needs_resync]

    def take_deadline(self) -> float | None:
        """The earliest :meth:`OrderBook.next_deadline` of the books that ended a call not quiet
        (in doubt, in a hash run, holding a delta, awaiting a REST comparison) since the last
        call; None if none has a deadline. A book whose deadline can have moved is among them:
        a quiet book has none, and leaving quiet records it."""
        restless = self._restless
        if not restless:
            return None
        books = list(restless)
        restless.clear()
        deadlines = [d for book in books if (d := book.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def next_deadline(self) -> float | None:
        """The earliest :meth:`OrderBook.next_deadline` over all books."""
        deadlines = [d for book in self._books.values() if (d := book.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> list[BookVerdict]:
        """:meth:`OrderBook.handle_timer` on every book; returns the non-``ok`` verdicts."""
        verdicts = [book.handle_timer(now) for book in self._books.values()]
        return [verdict for verdict in verdicts if verdict.action != "ok"]


Books = BookRegistry
