"""Off-grid deltas held after a tick size change.

Against a synced book with a known grid, a nonzero level off the tick grid is suspicious: the
server may have applied a tick change we have not seen yet, or rejected the order. Such deltas
are held, not applied, and put the book in doubt. A later tick change that puts them on the grid
applies them; a hash that reproduces only with them applied proves the server took them; a hash
match without them proves it did not (they are dropped); a snapshot drops them too.
"""

from __future__ import annotations

from collections.abc import Callable

from polyfeed.core.book.levels import APPLIED, Levels
from polyfeed.core.book.numbers import price_key
from polyfeed.core.messages import PriceChangeEntry

__all__ = ["HeldDeltas"]


class HeldDeltas:
    """The entries a book holds back, oldest first (each is well formed)."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[PriceChangeEntry] = []

    def __len__(self) -> int:
        return len(self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __repr__(self) -> str:
        return f"HeldDeltas({len(self.entries)})"

    def hold(self, entry: PriceChangeEntry) -> None:
        """Keep an off-grid entry back."""
        self.entries.append(entry)

    def clear(self) -> None:
        """Drop every held entry (a snapshot or a hash match made them moot)."""
        self.entries.clear()

    def release_on_grid(self, levels: Levels, tick: int) -> None:
        """Apply the entries that a new tick (price key units) puts on the grid."""
        still: list[PriceChangeEntry] = []
        for entry in self.entries:
            if price_key(entry.price) % tick:
                still.append(entry)
            else:
                levels.set(entry.side, entry.price, entry.size, 0)
        self.entries = still

    def apply_if(self, levels: Levels, proves: Callable[[], bool]) -> bool:
        """Apply every held entry if (and only if) ``proves()`` then holds; else undo them."""
        undo = []
        for entry in self.entries:
            before = levels.before(entry)
            if levels.set(entry.side, entry.price, entry.size, 0) == APPLIED:
                undo.append(before)
        if proves():
            self.entries.clear()
            return True
        for item in reversed(undo):
            levels.restore(item)
        return False
