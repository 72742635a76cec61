"""The RTDS decoder: real captures decode to typed events; everything else is kept, untyped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyfeed.core.rtds_messages import (
    RtdsActivity,
    RtdsClobMessage,
    RtdsComment,
    RtdsDecoder,
    RtdsMalformed,
    RtdsPong,
    RtdsPrice,
    RtdsPriceHistory,
    RtdsRaw,
    RtdsServerMessage,
)


@pytest.mark.parametrize(
    "name",
    [
        "rtds_crypto_prices_update.json",
        "rtds_crypto_twap_sixty_update.json",
        "rtds_equity_prices_update.json",
    ],
)
def test_captured_price_updates_decode_typed(fixtures_dir: Path, name: str) -> None:
    text = (fixtures_dir / "nautilus_trader" / name).read_text()
    item = RtdsDecoder().decode(text)
    assert isinstance(item, RtdsPrice)
    payload = json.loads(text)["payload"]
    assert (item.symbol, item.value) == (payload["symbol"], payload["value"])
    assert item.full_accuracy_value == payload["full_accuracy_value"]


@pytest.mark.parametrize(
    "name", ["rtds_crypto_prices_subscribe.json", "rtds_equity_prices_subscribe.json"]
)
def test_captured_subscribe_history_decodes_typed(fixtures_dir: Path, name: str) -> None:
    text = (fixtures_dir / "nautilus_trader" / name).read_text()
    item = RtdsDecoder().decode(text)
    assert isinstance(item, RtdsPriceHistory)
    assert [p.value for p in item.points] == [
        p["value"] for p in json.loads(text)["payload"]["data"]
    ]


def envelope(topic: str, kind: str, payload: object) -> str:
    return json.dumps({"topic": topic, "type": kind, "timestamp": 5, "payload": payload})


def test_activity_and_comments_are_typed_with_payload_kept() -> None:
    decoder = RtdsDecoder()
    trade = {
        "asset": "t1",
        "conditionId": "0xc",
        "side": "BUY",
        "price": 0.5,
        "size": 3,
        "eventSlug": "e",
        "transactionHash": "0xh",
        "extra": 1,
    }
    activity = decoder.decode(envelope("activity", "orders_matched", trade))
    assert isinstance(activity, RtdsActivity)
    assert (activity.condition_id, activity.event_slug, activity.price) == ("0xc", "e", 0.5)
    assert (activity.asset, activity.side, activity.size, activity.transaction_hash) == (
        "t1",
        "BUY",
        3.0,
        "0xh",
    )
    assert (activity.slug, activity.outcome, activity.timestamp) == (None, None, 5)
    assert activity.payload["extra"] == 1
    comment = decoder.decode(
        envelope(
            "comments",
            "comment_created",
            {"id": 7, "body": "hi", "parentEntityID": 100, "parentEntityType": "Event"},
        )
    )
    assert isinstance(comment, RtdsComment)
    assert (comment.id, comment.parent_entity_id, comment.parent_entity_type) == ("7", 100, "Event")


def test_clob_topics_and_other_topics_and_bad_shapes() -> None:
    decoder = RtdsDecoder()
    clob = decoder.decode(envelope("clob_market", "price_change", {"m": "0xc", "pc": []}))
    assert isinstance(clob, RtdsClobMessage) and clob.payload == {"m": "0xc", "pc": []}
    other = decoder.decode(envelope("rfq", "request_created", {"x": 1}))
    assert isinstance(other, RtdsRaw) and other.payload == {"x": 1}
    # A main topic whose payload has an unexpected shape still reaches the consumer, untyped.
    odd = decoder.decode(envelope("crypto_prices", "update", {"symbol": "btcusdt"}))
    assert isinstance(odd, RtdsRaw) and odd.topic == "crypto_prices"
    assert decoder.raw == 2


def test_text_frames_server_messages_and_garbage() -> None:
    decoder = RtdsDecoder()
    assert isinstance(decoder.decode("PONG"), RtdsPong)
    assert isinstance(decoder.decode(b"pong"), RtdsPong)
    refusal = decoder.decode('{"message": "invalid Subscription.Filters"}')
    assert isinstance(refusal, RtdsServerMessage)
    assert refusal.message == "invalid Subscription.Filters"
    bad = decoder.decode("not json")
    assert isinstance(bad, RtdsMalformed)
    assert isinstance(decoder.decode("{}"), RtdsMalformed)
    assert decoder.malformed == 2
    assert "malformed=2" in repr(decoder)
