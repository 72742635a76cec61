"""Human wording of lifecycle events, shared by the terminal commands."""

from __future__ import annotations

from polyfeed.core.polybolt import PolyboltGap
from polyfeed.events import (
    AssetChecked,
    BookInvalidated,
    BookResynced,
    Connected,
    ConnectionReplaced,
    Disconnected,
    Gap,
    Reconnecting,
    Redundancy,
    Resubscribed,
    Stale,
)


def short_id(asset_id: str) -> str:
    """A 77-digit token id shortened for a terminal (``123456…654321``)."""
    return asset_id if len(asset_id) <= 14 else f"{asset_id[:6]}…{asset_id[-6:]}"


def describe_event(event: object) -> str | None:
    """One line for a lifecycle event; None for market and user events."""
    match event:
        case Stale(unconfirmed=[_, *_] as unconfirmed, abandoned=abandoned, silent_for=waited):
            ids = ", ".join(unconfirmed)
            action = "gave up on them for this connection" if abandoned else "re-requested"
            return (
                f"WARNING: the server has not confirmed {len(unconfirmed)} asset(s) within "
                f"{waited:g}s ({action}): {ids}; the id may be wrong or the market closed"
            )
        case Stale(kind=kind, silent_for=silent_for):
            return f"STALE ({kind}): nothing for {silent_for:.2f}s while the socket was open"
        case Disconnected(reason=reason, code=code):
            how = "no close frame" if code is None else f"close code {code}"
            return f"disconnected: {reason} ({how})"
        case Reconnecting(attempt=attempt, delay=delay, error=error):
            why = f" after: {error}" if error else ""
            return f"reconnecting: attempt {attempt} in {delay:.2f}s{why}"
        case Connected(attempt=attempt, connection_id=connection_id):
            return f"connected (connection #{connection_id}, attempt {attempt})"
        case Resubscribed(assets=assets):
            return f"resubscribed {len(assets)} asset(s)"
        case Gap(
            started=started,
            ended=ended,
            assets=assets,
            reason=reason,
            dropped=dropped,
            collapsed=collapsed,
        ):
            extra = f", {dropped} dropped" if dropped else ""
            if collapsed:
                extra += f", {collapsed} lifecycle events collapsed"
            return (
                f"GAP of {ended - started:.2f}s on {len(assets)} asset(s) ({reason}{extra}): "
                "events in it may be missing"
            )
        case BookInvalidated(asset_ids=assets, reason=reason):
            return f"{_books(assets)} invalidated: {reason}"
        case BookResynced(asset_ids=assets, source=source):
            return f"{_books(assets)} resynced from {source}"
        case PolyboltGap(channel=channel, missing=missing, seq=seq, reason=reason):
            return f"GAP on {channel}: {missing} frame(s) lost before seq {seq} ({reason})"
        case Redundancy(state=state, legs_up=up, legs=legs, pool_connection=slot):
            return f"redundancy {state}: {up}/{legs} legs up (connection {slot})"
        case AssetChecked(asset_ids=assets, action=action, silent_for=silent, pool_connection=slot):
            what = _ASSET_ACTIONS[action]
            return (
                f"{len(assets)} asset(s) silent for {silent:.1f}s on connection {slot} checked "
                f"over REST: {what}"
            )
        case ConnectionReplaced(pool_connection=slot, reason=reason, asset_ids=assets):
            return f"connection {slot} replaced ({reason}; {len(assets)} asset(s))"
    return None


_ASSET_ACTIONS = {
    "left_alone": "the server's book did not move (a quiet market), left alone",
    "redrive": "the server's book moved, subscription re-requested",
    "replace": "re-requests did not help, connection replaced",
    "inconclusive": "REST failed, checked again later",
}


def _books(assets: list[str]) -> str:
    if len(assets) == 1:
        return f"book {short_id(assets[0])}"
    return f"{len(assets)} books"
