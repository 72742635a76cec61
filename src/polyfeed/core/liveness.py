"""Per-asset liveness of one connection, sans-I/O: ``now`` is an argument.

One asset can go silent while the rest of its socket flows (a dead subscription). Silence alone
proves nothing (a quiet market is silent too), so a silent asset is checked against the server's
book over REST before anything is done:

=============  ==========================================================================
watched        events arrive; ``timeout`` s without one (while the connection flows) ->
               checking (the I/O layer asks REST ``/book``)
checking       :meth:`AssetLiveness.checked` with whether the server's book moved:
               no -> watched (a quiet market, left alone);
               yes -> redriven, or, after ``retries`` redrives in a row, the connection
               is replaced; unknown (REST failed) -> watched (checked again after
               ``timeout``)
=============  ==========================================================================

Any event of the asset returns it to ``watched`` with its redrive count cleared. While the
connection does not flow (reconnecting, stalled), nothing is checked: the connection's own
watchdog owns that case.

Whether the server's book moved is best told by comparing its levels with the local book's
(the I/O layer does, when the stream keeps books). Without a local book, :func:`book_moved`
compares the (timestamp, hash) last heard with the server's: a later timestamp *and* another
hash. That is weaker: Polymarket's hash covers the timestamp, which both tokens of a market
share, so a quiet token whose sibling traded looks moved (one needless redrive).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from polyfeed.errors import ConfigError
from polyfeed.events import AssetAction

__all__ = ["AssetLiveness", "LivenessAction", "book_moved"]

LivenessAction = AssetAction
"""What a REST check decided for a silent asset (``left_alone``, ``redrive``, ``replace``,
``inconclusive``)."""


class AssetLiveness:
    """The liveness clocks of one connection's assets."""

    __slots__ = ("_attempts", "_checking", "_due", "_heard", "_seen", "retries", "timeout")

    def __init__(self, timeout: float, retries: int) -> None:
        if not timeout > 0:
            raise ConfigError(f"asset_timeout must be > 0, got {timeout!r}")
        if retries < 0:
            raise ConfigError(f"asset_retries must be >= 0, got {retries!r}")
        self.timeout = timeout
        self.retries = retries
        # When each watched asset is due a check; insertion order is due order, because every
        # update sets now + timeout with a non-decreasing now and moves the asset to the end.
        self._due: OrderedDict[str, float] = OrderedDict()
        self._heard: dict[str, float] = {}
        self._seen: dict[str, tuple[int, str]] = {}
        self._attempts: dict[str, int] = {}
        self._checking: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"<AssetLiveness assets={len(self._heard)} checking={len(self._checking)} "
            f"redriven={len(self._attempts)} timeout={self.timeout:g}s>"
        )

    def __contains__(self, asset: object) -> bool:
        return asset in self._heard

    def track(self, assets: Iterable[str], now: float) -> None:
        """Start watching these assets (their clock starts at ``now``)."""
        for asset in assets:
            if asset not in self._heard:
                self._heard[asset] = now
                self._due[asset] = now + self.timeout

    def untrack(self, assets: Iterable[str]) -> None:
        """Stop watching these assets."""
        for asset in assets:
            self._heard.pop(asset, None)
            self._due.pop(asset, None)
            self._seen.pop(asset, None)
            self._attempts.pop(asset, None)
            self._checking.discard(asset)

    def on_event(self, asset: str, now: float, book: tuple[int, str] | None = None) -> None:
        """An event of ``asset`` arrived at ``now``; ``book``: the (timestamp, hash) it left."""
        if asset not in self._heard:
            return
        self._heard[asset] = now
        due = self._due
        due[asset] = now + self.timeout
        due.move_to_end(asset)
        if book is not None:
            self._seen[asset] = book
        if self._attempts:
            self._attempts.pop(asset, None)
        if self._checking:
            self._checking.discard(asset)

    def due(self, now: float, *, flowing: bool) -> list[str]:
        """Assets to check now (they move to ``checking``).

        ``flowing``: the connection delivers data. When it does not, every overdue check is
        postponed by one ``timeout`` instead.
        """
        out: list[str] = []
        due = self._due
        while due:
            asset, at = next(iter(due.items()))
            if at > now:
                break
            del due[asset]
            if flowing:
                self._checking.add(asset)
                out.append(asset)
            else:
                due[asset] = now + self.timeout
        return out

    def silent_for(self, asset: str, now: float) -> float:
        """Seconds since the asset's last event (or since it was tracked)."""
        return max(0.0, now - self._heard.get(asset, now))

    def attempts(self, asset: str) -> int:
        """Redrives in a row without an event since."""
        return self._attempts.get(asset, 0)

    def seen(self, asset: str) -> tuple[int, str] | None:
        """The (timestamp, hash) of the asset's last book or price change heard."""
        return self._seen.get(asset)

    def checked(self, asset: str, now: float, moved: bool | None) -> LivenessAction:
        """The REST answer for a checking asset: whether the server's book moved while we heard
        nothing (None: unknown, REST failed). Returns what to do; the asset is watched again
        from ``now``."""
        if asset not in self._checking:
            return "left_alone"  # an event came meanwhile, or it was dropped
        self._checking.discard(asset)
        self._due[asset] = now + self.timeout
        if moved is None:
            return "inconclusive"
        if not moved:
            return "left_alone"
        attempts = self._attempts.get(asset, 0) + 1
        if attempts > self.retries:
            self._attempts.pop(asset, None)
            return "replace"
        self._attempts[asset] = attempts
        return "redrive"

    def reset(self, now: float) -> None:
        """A new socket: every clock restarts at ``now`` and pending checks are void."""
        self._checking.clear()
        self._attempts.clear()
        for asset in self._heard:
            self._heard[asset] = now
        self._due = OrderedDict((asset, now + self.timeout) for asset in self._heard)

    def next_deadline(self) -> float | None:
        """When the next check is due; None when nothing is watched."""
        for at in self._due.values():
            return at
        return None


def book_moved(seen: tuple[int, str] | None, server: tuple[int, str]) -> bool:
    """Whether the server's book (timestamp, hash) moved past the one last heard (never heard
    one: moved)."""
    return seen is None or (server[0] > seen[0] and server[1] != seen[1])
