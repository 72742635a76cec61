"""Lifecycle events: tagged JSON on ``event_type``, round trips, no clash with wire event tags."""

from __future__ import annotations

import json
from typing import get_args

import msgspec
import pytest

from polyfeed.core.messages import Book, MarketEvent, UserEvent
from polyfeed.events import (
    AssetChecked,
    BookInvalidated,
    BookResynced,
    Connected,
    ConnectionReplaced,
    Disconnected,
    Gap,
    LifecycleEvent,
    Reconnecting,
    Redundancy,
    Resubscribed,
    Stale,
    is_lifecycle,
)

EXAMPLES = [
    (Connected(url="wss://x/ws/market", attempt=3, connection_id=2), "connected"),
    (Disconnected(reason="closed", code=1006, connection_id=2), "disconnected"),
    (Disconnected(reason="dropped"), "disconnected"),
    (Reconnecting(attempt=4, delay=2.5), "reconnecting"),
    (Stale(kind="data", silent_for=60.0), "stale"),
    (Stale(kind="asset", silent_for=30.0, asset_ids=["a", "b"], connection_id=1), "stale"),
    (Resubscribed(assets=["a"], connection_id=5), "resubscribed"),
    (
        Gap(started=1.7e9, ended=1.7e9 + 3.25, assets=["a"], reason="stale_data", dropped=4),
        "gap",
    ),
    (BookInvalidated(asset_ids=["a"], reason="crossed"), "book_invalidated"),
    (BookInvalidated(asset_ids=["a", "b"], reason="reconnect"), "book_invalidated"),
    (BookResynced(asset_ids=["a", "b"], source="rest"), "book_resynced"),
    (
        Gap(
            started=1.7e9,
            ended=1.7e9 + 9.0,
            assets=["a", "b"],
            reason="lifecycle overflow",
            dropped=3,
            collapsed=120,
        ),
        "gap",
    ),
    (
        AssetChecked(
            asset_ids=["a"], action="redrive", silent_for=31.0, connection_id=2, pool_connection=4
        ),
        "asset_checked",
    ),
    (
        ConnectionReplaced(pool_connection=4, reason="silent after 2 redrives", asset_ids=["a"]),
        "connection_replaced",
    ),
    (Redundancy(state="degraded", legs_up=1, legs=2, pool_connection=0), "redundancy"),
]


@pytest.mark.parametrize(("event", "tag"), EXAMPLES)
def test_encodes_with_its_event_type_and_round_trips(event: LifecycleEvent, tag: str) -> None:
    data = msgspec.json.encode(event)
    as_json = json.loads(data)
    assert as_json["event_type"] == tag
    assert msgspec.json.decode(data, type=LifecycleEvent) == event
    assert msgspec.json.decode(data, type=type(event)) == event
    assert is_lifecycle(event)


def test_every_lifecycle_class_is_in_the_union_and_has_an_example() -> None:
    union = set(get_args(LifecycleEvent))
    assert union == {type(event) for event, _ in EXAMPLES}
    tags = [cls.__struct_config__.tag for cls in union]
    assert len(tags) == len(set(tags))


def test_lifecycle_tags_do_not_clash_with_wire_event_tags() -> None:
    lifecycle = {cls.__struct_config__.tag for cls in get_args(LifecycleEvent)}
    wire = {cls.__struct_config__.tag for cls in (*get_args(MarketEvent), *get_args(UserEvent))}
    assert not lifecycle & wire


def test_a_mixed_recording_decodes_back_into_the_right_types() -> None:
    book = Book(market="0xm", asset_id="a", timestamp=1, bids=[], asks=[])
    recording = [EXAMPLES[0][0], book, EXAMPLES[7][0]]
    data = msgspec.json.encode(recording)
    decoded = msgspec.json.decode(data, type=list[LifecycleEvent | MarketEvent])
    assert decoded == recording


def test_events_are_frozen_and_wire_events_are_not_lifecycle() -> None:
    event = Stale(kind="pong", silent_for=30.0)
    with pytest.raises(AttributeError):
        event.kind = "data"  # type: ignore[misc]
    assert not is_lifecycle(Book(market="m", asset_id="a", timestamp=1, bids=[], asks=[]))
    assert not is_lifecycle("PONG")


def test_stale_kind_is_validated_on_decode() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            b'{"event_type": "stale", "kind": "weird", "silent_for": 1}', type=LifecycleEvent
        )


def test_default_lists_are_not_shared() -> None:
    first = Stale(kind="data", silent_for=1.0)
    second = Stale(kind="data", silent_for=1.0)
    first.asset_ids.append("x")
    assert second.asset_ids == []


def test_a_gap_recorded_before_collapsed_existed_decodes_with_zero() -> None:
    data = b'{"event_type": "gap", "started": 1, "ended": 2, "assets": ["a"], "reason": "r"}'
    gap = msgspec.json.decode(data, type=LifecycleEvent)
    assert gap == Gap(started=1, ended=2, assets=["a"], reason="r", dropped=0, collapsed=0)
