"""Lifecycle events, delivered in the same stream as Polymarket's events.

They let a consumer tell a quiet market from a broken stream: every disconnect, stale detection,
replay and gap (a span in which events may have been missed) is announced. Times are wall-clock
epoch seconds, for writing out; intervals are seconds.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from polyfeed.core.messages import Malformed, MarketEvent, Notice, Unknown, UserEvent

StaleKind = Literal["data", "pong", "asset", "witness"]


class _Lifecycle(msgspec.Struct, frozen=True, tag_field="event_type", kw_only=True):
    """Base of lifecycle events."""


class Connected(_Lifecycle, frozen=True, tag="connected"):
    """A connection opened and its initial subscription was sent."""

    url: str
    attempt: int
    connection_id: int = 0


class Disconnected(_Lifecycle, frozen=True, tag="disconnected"):
    """A connection ended. ``code`` is the close code, None when no close frame came."""

    reason: str
    code: int | None = None
    connection_id: int = 0


class Reconnecting(_Lifecycle, frozen=True, tag="reconnecting"):
    """A reconnect is scheduled after ``delay`` seconds; ``error`` says why (the last error:
    refused, DNS failure, HTTP status, stale link, close code), so a mistyped host or port is
    named at the first attempt."""

    attempt: int
    delay: float
    connection_id: int = 0
    error: str = ""


class Stale(_Lifecycle, frozen=True, tag="stale"):
    """The watchdog found the link stale: no data, no PONG, or silent assets; ``witness``: the
    connection was silent while REST ``/book`` showed ``asset_ids``' books moved.

    ``unconfirmed``: assets the server has not confirmed (no snapshot, no event) within
    ``watchdog.confirm_timeout`` of subscribing; they are re-requested. ``abandoned``: those of
    them given up on for this connection after repeated requests. An id that stays unconfirmed
    is most likely wrong, or its market closed.
    """

    kind: StaleKind
    silent_for: float
    asset_ids: list[str] = []
    connection_id: int = 0
    unconfirmed: list[str] = []
    abandoned: list[str] = []


class Resubscribed(_Lifecycle, frozen=True, tag="resubscribed"):
    """Subscriptions were replayed (after a reconnect) or re-requested (unconfirmed assets)."""

    assets: list[str]
    connection_id: int = 0


class Gap(_Lifecycle, frozen=True, tag="gap"):
    """Events for ``assets`` between ``started`` and ``ended`` may be missing.

    ``dropped``: market/user events the consumer queue dropped. ``collapsed``: lifecycle events
    the consumer queue folded into this one summary gap because too many were queued for a
    stalled consumer (reason ``"lifecycle overflow"``); the books' current state is in
    ``stream.books``.
    """

    started: float
    ended: float
    assets: list[str]
    reason: str
    dropped: int = 0
    collapsed: int = 0


class BookInvalidated(_Lifecycle, frozen=True, tag="book_invalidated"):
    """The local books of ``asset_ids`` can no longer be trusted, all for ``reason``; resyncs
    follow. One event covers every book one cause invalidated (a reconnect: all of them)."""

    asset_ids: list[str]
    reason: str


class BookResynced(_Lifecycle, frozen=True, tag="book_resynced"):
    """The local books of ``asset_ids`` are synced again, all from ``source`` (``"snapshot"``
    or ``"rest"``)."""

    asset_ids: list[str]
    source: str = "snapshot"


# --------------------------------------------------------------------------- pool (issue 12)
# A market stream over many connections: per-asset liveness checks and connection replacement.

AssetAction = Literal["left_alone", "redrive", "replace", "inconclusive"]


class AssetChecked(_Lifecycle, frozen=True, tag="asset_checked"):
    """Assets silent for ``asset_timeout`` while their connection flowed were checked against
    REST ``/book``. ``action``: ``left_alone`` (the server's book did not move: a quiet
    market), ``redrive`` (it moved while we heard nothing: the subscription is re-requested
    alone), ``replace`` (``asset_retries`` redrives did not help: the connection is replaced),
    ``inconclusive`` (REST failed; checked again after ``asset_timeout``)."""

    asset_ids: list[str]
    action: AssetAction
    silent_for: float
    connection_id: int = 0
    pool_connection: int = 0


class ConnectionReplaced(_Lifecycle, frozen=True, tag="connection_replaced"):
    """A pool connection's socket is dropped and reopened (``Disconnected``, ``Gap`` and the
    replay follow) because ``reason``; ``asset_ids`` caused it."""

    pool_connection: int
    reason: str
    asset_ids: list[str]


RedundancyState = Literal["full", "degraded", "down"]


class Redundancy(_Lifecycle, frozen=True, tag="redundancy"):
    """With ``redundancy`` > 1, the legs carrying ``pool_connection``'s assets changed: ``full``
    (every leg up), ``degraded`` (a leg is down; the others carry every event, no ``Gap``, books
    stay valid), ``down`` (every leg down: ``Disconnected``, book invalidation and, once one is
    back, a ``Gap`` for the time all were down)."""

    state: RedundancyState
    legs_up: int
    legs: int
    pool_connection: int = 0


PoolLifecycleEvent = AssetChecked | ConnectionReplaced | Redundancy
"""Lifecycle events only a market stream over a pool yields."""


def is_lifecycle(item: object) -> bool:
    """True for polyfeed's own lifecycle events (coalesced, never silently dropped, by the
    consumer queue)."""
    return isinstance(item, _Lifecycle)


LifecycleEvent = (
    Connected
    | Disconnected
    | Reconnecting
    | Stale
    | Resubscribed
    | Gap
    | BookInvalidated
    | BookResynced
    | AssetChecked
    | ConnectionReplaced
    | Redundancy
)


# --------------------------------------------------------------------------- what a stream yields
# The unions a consumer matches on: every type ``async for`` over a stream can produce, so that
# ``match`` + ``assert_never`` is checked for exhaustiveness. ``Pong`` is not in them: the session
# consumes PONGs (heartbeat) and never queues one.

StreamLifecycleEvent = Connected | Disconnected | Reconnecting | Stale | Resubscribed | Gap
"""Lifecycle events of any stream (connection, staleness, replay, gaps)."""

MarketStreamEvent = (
    MarketEvent
    | Notice
    | Unknown
    | Malformed
    | StreamLifecycleEvent
    | BookInvalidated
    | BookResynced
    | PoolLifecycleEvent
)
"""Everything ``MarketStream`` yields: market events, server notices, undecodable or unknown
frames, and lifecycle events including the local books' ``BookInvalidated``/``BookResynced``."""

UserStreamEvent = UserEvent | Notice | Unknown | Malformed | StreamLifecycleEvent
"""Everything ``UserStream`` yields: orders and trades, notices, undecodable or unknown frames,
and lifecycle events."""
