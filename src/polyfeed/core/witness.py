"""A REST witness for a silent connection, sans-I/O: ``now`` is an argument.

A silent stall (PONGs flow, data stopped) is otherwise found only when ``data_timeout`` expires.
Silence alone proves nothing: a quiet market is silent too. So when a connection has carried no
market event for ``after`` seconds, the I/O layer asks REST ``/book`` for a few of its assets
(the ``sample`` whose markets were most recently active, within the REST budget) and hands the
answers back:

==============  ===========================================================================
verdict         when
==============  ===========================================================================
``stale``       some server book moved past what we hold: a later timestamp *and* another
                hash (and other levels, where a local book can tell): data we should have had
                did not come. The connection is stale, proven; replace it at once.
``quiet``       every answered book is still the one we hold: a quiet market, left alone
                (asked again after 2, 4, then at most 8 times ``after`` while the silence
                lasts, so quiet connections cost little REST budget).
``inconclusive`` no answer (REST failed, budget spent): asked again after ``after``.
==============  ===========================================================================

Any market event on the connection ends the silence (the next check is ``after`` later), and a
new socket (:meth:`SilenceWitness.reset`) starts over: its replayed snapshots are data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from polyfeed.errors import ConfigError

__all__ = ["SilenceWitness", "WitnessVerdict", "server_moved"]

WitnessVerdict = Literal["stale", "quiet", "inconclusive"]

# A quiet connection is asked again after 2, 4, 8, 8, ... times ``after``.
_QUIET_BACKOFF_CAP = 8


def server_moved(held: tuple[int, str] | None, server: tuple[int, str]) -> bool | None:
    """Whether the server's book (timestamp, hash) moved past the one we hold: a later timestamp
    and another hash. None when we hold none (nothing to compare with)."""
    if held is None:
        return None
    return server[0] > held[0] and server[1] != held[1]


class SilenceWitness:
    """The silence clock of one connection and what its assets last said."""

    __slots__ = (
        "_checking",
        "_held",
        "_last_data",
        "_next",
        "_quiet",
        "after",
        "checks",
        "sample",
        "stale",
    )

    def __init__(self, after: float, *, sample: int = 3, now: float = 0.0) -> None:
        if not after > 0:
            raise ConfigError(f"witness_after must be > 0, got {after!r}")
        if sample < 1:
            raise ConfigError(f"witness sample must be >= 1, got {sample!r}")
        self.after = after
        self.sample = sample
        self._last_data = now
        self._next = now + after
        self._checking = False
        self._quiet = 0  # quiet verdicts since the last data
        # asset -> (timestamp, hash) of the last book or price change heard
        self._held: dict[str, tuple[int, str]] = {}
        self.checks = 0
        self.stale = 0

    def __repr__(self) -> str:
        return (
            f"<SilenceWitness after={self.after:g}s assets={len(self._held)} "
            f"checking={self._checking} checks={self.checks} stale={self.stale}>"
        )

    @property
    def checking(self) -> bool:
        """A REST check is out (its verdict not in yet)."""
        return self._checking

    def on_data(self, now: float) -> None:
        """A market event arrived on the connection: the silence ends."""
        self._last_data = now
        self._quiet = 0
        if not self._checking:
            self._next = now + self.after

    def heard(self, asset: str, timestamp: int, book_hash: str) -> None:
        """The asset's book is now (timestamp, hash) as far as this connection told us."""
        if book_hash:
            self._held[asset] = (timestamp, book_hash)

    def held(self, asset: str) -> tuple[int, str] | None:
        """The (timestamp, hash) of the asset's book last heard on this connection."""
        return self._held.get(asset)

    def forget(self, assets: Iterable[str]) -> None:
        """These assets left the connection."""
        for asset in assets:
            self._held.pop(asset, None)

    def reset(self, now: float) -> None:
        """A new socket: the silence clock restarts; a check in flight is void."""
        self._checking = False
        self.on_data(now)

    def silent_for(self, now: float) -> float:
        """Seconds since the connection's last market event (or its start)."""
        return max(0.0, now - self._last_data)

    def next_deadline(self) -> float | None:
        """When a check is due; None while one is out."""
        return None if self._checking else self._next

    def due(self, now: float, assets: Iterable[str]) -> list[str]:
        """The assets to ask REST about now (the check is then out), or [] when none is due.

        The most recently active of ``assets`` (latest timestamp heard) first: a market that
        traded lately is the one whose silence means most. Assets never heard come last.
        """
        if self._checking or now < self._next:
            return []
        held = self._held
        ranked = sorted(assets, key=lambda a: held[a][0] if a in held else -1, reverse=True)
        picked = ranked[: self.sample]
        if not picked:
            self._next = now + self.after
            return []
        self._checking = True
        self.checks += 1
        return picked

    def postpone(self, now: float) -> None:
        """No check now after all (REST budget spent, not connected): try after ``after``."""
        self._checking = False
        self._next = now + self.after

    def verdict(self, now: float, moved: Mapping[str, bool | None]) -> WitnessVerdict:
        """The REST answers of the check: for each asset asked, whether the server's book moved
        past what we hold (None: unknown)."""
        if not self._checking:
            return "inconclusive"  # a new socket came meanwhile: the check is void
        self._checking = False
        self._next = max(now, self._last_data) + self.after
        if any(moved.values()):
            self.stale += 1
            return "stale"
        if any(value is False for value in moved.values()):
            self._quiet += 1
            self._next = now + self.after * min(2**self._quiet, _QUIET_BACKOFF_CAP)
            return "quiet"
        return "inconclusive"
