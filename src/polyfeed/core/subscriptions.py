"""Desired versus confirmed subscriptions, sans-I/O: ``now`` is an argument.

Polymarket keeps no subscriptions across connections (every SDK replays one initial frame with
the full set after a reconnect) and acknowledges none: an asset counts as confirmed by its first
event (NautilusTrader treats the first ``book`` / ``last_trade_price`` that way). An asset still
unconfirmed ``confirm_timeout`` s after it was requested is *overdue*; the caller re-requests it
with unsubscribe *then* subscribe, because the server ignores a duplicate subscribe and would
send no fresh snapshot.

``desired`` survives reconnects; ``confirmed`` and the request clocks belong to one connection.
Request clocks are kept in request order, which is time order as long as ``now`` is monotonic,
so the earliest deadline and the overdue prefix cost O(1) and O(overdue).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from polyfeed.errors import ConfigError

__all__ = ["SubscriptionSet", "SubscriptionStats", "chunk"]

_REPR_IDS = 4


class SubscriptionStats(msgspec.Struct, frozen=True):
    """Counters since the set was made: replays (connections), confirmations, re-requests."""

    replays: int = 0
    confirmations: int = 0
    redrives: int = 0


class SubscriptionSet:
    """The assets a stream wants, and which of them the current connection has confirmed."""

    __slots__ = (
        "_attempts",
        "_confirmations",
        "_confirmed",
        "_connected",
        "_desired",
        "_desired_frozen",
        "_redrives",
        "_replays",
        "_requested",
        "confirm_timeout",
    )

    def __init__(self, asset_ids: Iterable[str] = (), *, confirm_timeout: float = 30.0) -> None:
        if not confirm_timeout > 0:
            raise ConfigError(f"confirm_timeout must be > 0, got {confirm_timeout!r}")
        self.confirm_timeout = confirm_timeout
        # dicts as ordered sets: the initial frame lists assets in the order they were added.
        self._desired: dict[str, None] = dict.fromkeys(asset_ids)
        self._desired_frozen: frozenset[str] | None = None
        self._confirmed: set[str] = set()
        # pending asset -> when it was (re)requested on this connection; request order.
        self._requested: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._connected = False
        self._replays = 0
        self._confirmations = 0
        self._redrives = 0

    def __repr__(self) -> str:
        desired = len(self._desired)
        shown = list(self._desired) if desired <= _REPR_IDS else desired
        return (
            f"SubscriptionSet(desired={shown}, confirmed={len(self._confirmed)}, "
            f"pending={desired - len(self._confirmed)}, connected={self._connected}, "
            f"redrives={self._redrives})"
        )

    def __len__(self) -> int:
        return len(self._desired)

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self._desired

    # ------------------------------------------------------------------ views

    @property
    def desired(self) -> frozenset[str]:
        """Every asset the stream wants (cached until the next add/remove)."""
        frozen = self._desired_frozen
        if frozen is None:
            frozen = self._desired_frozen = frozenset(self._desired)
        return frozen

    @property
    def confirmed(self) -> frozenset[str]:
        """Desired assets that had an event on the current connection."""
        return frozenset(self._confirmed)

    @property
    def pending(self) -> frozenset[str]:
        """Desired assets not (yet) confirmed: ``desired - confirmed``."""
        return self.desired - self._confirmed

    @property
    def connected(self) -> bool:
        """True between :meth:`on_connected` and :meth:`on_disconnected`."""
        return self._connected

    @property
    def stats(self) -> SubscriptionStats:
        """A snapshot of the counters."""
        return SubscriptionStats(self._replays, self._confirmations, self._redrives)

    def ordered(self) -> list[str]:
        """Every desired asset once, in the order it was first added."""
        return list(self._desired)

    def attempts(self, asset_id: str) -> int:
        """How often a pending asset was requested on this connection (0: not pending)."""
        return self._attempts.get(asset_id, 0)

    # ------------------------------------------------------------------ changes

    def add(self, ids: Iterable[str], now: float | None) -> list[str]:
        """Make ``ids`` desired; return the newly desired ones (deduplicated, in order).

        While connected the caller subscribes them live and must pass ``now`` to start their
        confirmation clocks (ConfigError otherwise: an unclocked request could never be found
        overdue). While disconnected ``now`` is ignored (may be None): they go out in the next
        initial frame.
        """
        if self._connected and now is None:
            raise ConfigError("SubscriptionSet.add needs `now` while connected")
        desired = self._desired
        added: list[str] = []
        for asset_id in ids:
            if asset_id not in desired:
                desired[asset_id] = None
                added.append(asset_id)
        if added:
            self._desired_frozen = None
            if self._connected:
                assert now is not None
                for asset_id in added:
                    self._requested[asset_id] = now
                    self._attempts[asset_id] = 1
        return added

    def remove(self, ids: Iterable[str]) -> list[str]:
        """Stop wanting ``ids``; return those that were desired (deduplicated, in order)."""
        desired = self._desired
        removed: list[str] = []
        for asset_id in ids:
            if asset_id in desired:
                del desired[asset_id]
                self._confirmed.discard(asset_id)
                self._requested.pop(asset_id, None)
                self._attempts.pop(asset_id, None)
                removed.append(asset_id)
        if removed:
            self._desired_frozen = None
        return removed

    def on_connected(self, now: float) -> list[str]:
        """A new connection: nothing is confirmed, everything is requested at ``now``.

        Returns every desired asset exactly once, in insertion order, for the initial frame.
        """
        self._connected = True
        self._replays += 1
        self._confirmed.clear()
        ids = list(self._desired)
        self._requested = dict.fromkeys(ids, now)
        self._attempts = dict.fromkeys(ids, 1)
        return ids

    def on_disconnected(self) -> None:
        """The connection ended: confirmations and request clocks go with it."""
        self._connected = False
        self._confirmed.clear()
        self._requested.clear()
        self._attempts.clear()

    @property
    def all_confirmed(self) -> bool:
        """Every desired asset is confirmed on this connection (a cheap hot-path check)."""
        return len(self._confirmed) >= len(self._desired)

    def confirm(self, asset_id: str, now: float) -> bool:
        """An event for ``asset_id`` arrived; True when it newly confirms a pending asset.

        Events for confirmed or undesired assets, or while disconnected, return False. Hot
        path: for an already confirmed asset, one set lookup.
        """
        confirmed = self._confirmed
        if asset_id in confirmed or asset_id not in self._desired or not self._connected:
            return False
        self._requested.pop(asset_id, None)
        self._attempts.pop(asset_id, None)
        confirmed.add(asset_id)
        self._confirmations += 1
        return True

    def overdue(self, now: float) -> list[str]:
        """Pending assets requested ``confirm_timeout`` s or more before ``now``, oldest first.

        They stay overdue until confirmed, removed or :meth:`redriven`.
        """
        timeout = self.confirm_timeout
        out: list[str] = []
        for asset_id, requested_at in self._requested.items():
            if requested_at + timeout > now:
                break
            out.append(asset_id)
        return out

    def redriven(self, ids: Iterable[str], now: float) -> None:
        """The caller re-requested these pending assets at ``now``: restart their clocks.

        Confirmed or undesired ids, and any while disconnected, are ignored.
        """
        if not self._connected:
            return
        requested = self._requested
        attempts = self._attempts
        for asset_id in ids:
            if asset_id in requested:
                # Re-inserting moves the asset to the end, keeping request order = time order.
                del requested[asset_id]
            elif asset_id in self._confirmed or asset_id not in self._desired:
                continue
            requested[asset_id] = now
            attempts[asset_id] = attempts.get(asset_id, 0) + 1
            self._redrives += 1

    def stop_waiting(self, ids: Iterable[str]) -> None:
        """Stop the confirmation clocks of these pending assets for the rest of the connection.

        They stay desired and pending (replayed on the next connection) but are no longer
        overdue: for assets the server never answers (an unknown or expired token id looks the
        same as an ignored subscription), re-requesting for ever would only add load.
        """
        requested = self._requested
        for asset_id in ids:
            requested.pop(asset_id, None)

    def next_deadline(self) -> float | None:
        """When the oldest pending request becomes overdue; None if nothing is pending."""
        for requested_at in self._requested.values():
            return requested_at + self.confirm_timeout
        return None


def chunk(ids: Sequence[str], size: int) -> list[list[str]]:
    """Split ``ids`` into consecutive lists of at most ``size`` (for sharding over sockets)."""
    if size < 1:
        raise ConfigError(f"chunk size must be >= 1, got {size!r}")
    return [list(ids[start : start + size]) for start in range(0, len(ids), size)]
