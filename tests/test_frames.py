"""Outbound frames: exact text for every builder, argument validation, secrets not in errors."""

from __future__ import annotations

import json

import pytest

from polyfeed.core.frames import (
    PING,
    market_operation,
    market_subscribe,
    user_operation,
    user_subscribe,
)
from polyfeed.credentials import Credentials
from polyfeed.errors import ConfigError

CREDS = Credentials(
    api_key="4f1c2a9e-7b3d-4e5f-9a8b-0c1d2e3f4a5b",
    secret="c2VjcmV0LXZhbHVl",
    passphrase="pass-phrase",
)


def test_ping_is_the_text_frame() -> None:
    assert PING == "PING"


def test_market_subscribe_defaults() -> None:
    assert market_subscribe(["111", "222"]) == (
        '{"type":"market","assets_ids":["111","222"],'
        '"initial_dump":true,"custom_feature_enabled":false}'
    )


def test_market_subscribe_all_options() -> None:
    text = market_subscribe(
        (a for a in ["1"]), initial_dump=False, custom_feature_enabled=True, level=2
    )
    assert text == (
        '{"type":"market","assets_ids":["1"],"initial_dump":false,'
        '"custom_feature_enabled":true,"level":2}'
    )


def test_market_subscribe_discovery_only() -> None:
    assert market_subscribe([], custom_feature_enabled=True) == (
        '{"type":"market","assets_ids":[],"initial_dump":true,"custom_feature_enabled":true}'
    )


@pytest.mark.parametrize("level", [0, 4, -1, True])
def test_market_subscribe_bad_level(level: int) -> None:
    with pytest.raises(ConfigError, match="level"):
        market_subscribe(["1"], level=level)


def test_single_string_is_rejected_not_split() -> None:
    with pytest.raises(ConfigError, match="single string"):
        market_subscribe("12345")
    with pytest.raises(ConfigError, match="single string"):
        user_operation("subscribe", "0xabc")


@pytest.mark.parametrize("bad", [[""], [123], [None]])
def test_bad_ids_rejected(bad: list[object]) -> None:
    with pytest.raises(ConfigError, match="non-empty strings"):
        market_operation("subscribe", bad)  # type: ignore[arg-type]


def test_escaping_is_json_correct() -> None:
    text = market_operation("subscribe", ['a"b\\c\n'])
    assert text == '{"operation":"subscribe","assets_ids":["a\\"b\\\\c\\n"]}'
    assert json.loads(text)["assets_ids"] == ['a"b\\c\n']


def test_user_subscribe_all_markets() -> None:
    assert user_subscribe(CREDS) == (
        '{"type":"user","auth":{"apiKey":"4f1c2a9e-7b3d-4e5f-9a8b-0c1d2e3f4a5b",'
        '"secret":"c2VjcmV0LXZhbHVl","passphrase":"pass-phrase"}}'
    )


def test_user_subscribe_with_markets() -> None:
    assert user_subscribe(CREDS, ["0xaa", "0xbb"]) == (
        '{"type":"user","auth":{"apiKey":"4f1c2a9e-7b3d-4e5f-9a8b-0c1d2e3f4a5b",'
        '"secret":"c2VjcmV0LXZhbHVl","passphrase":"pass-phrase"},"markets":["0xaa","0xbb"]}'
    )


def test_user_subscribe_error_does_not_leak_credentials() -> None:
    with pytest.raises(ConfigError) as info:
        user_subscribe(CREDS, "0xaa")
    for secret in (CREDS.secret, CREDS.passphrase, CREDS.api_key):
        assert secret not in str(info.value)
        assert secret not in repr(info.value)


def test_market_operation() -> None:
    assert market_operation("subscribe", ["1", "2"]) == (
        '{"operation":"subscribe","assets_ids":["1","2"]}'
    )
    assert (
        market_operation("unsubscribe", ["1"]) == '{"operation":"unsubscribe","assets_ids":["1"]}'
    )
    assert market_operation("subscribe", ["1"], custom_feature_enabled=True) == (
        '{"operation":"subscribe","assets_ids":["1"],"custom_feature_enabled":true}'
    )
    assert market_operation("subscribe", ["1"], custom_feature_enabled=False) == (
        '{"operation":"subscribe","assets_ids":["1"],"custom_feature_enabled":false}'
    )


def test_user_operation() -> None:
    assert user_operation("subscribe", ["0xaa"]) == '{"operation":"subscribe","markets":["0xaa"]}'
    assert user_operation("unsubscribe", []) == '{"operation":"unsubscribe","markets":[]}'


@pytest.mark.parametrize("operation", ["SUBSCRIBE", "add", ""])
def test_bad_operation(operation: str) -> None:
    with pytest.raises(ConfigError, match="operation"):
        market_operation(operation, ["1"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="operation"):
        user_operation(operation, ["0xaa"])  # type: ignore[arg-type]


def test_frames_are_str() -> None:
    for frame in (
        market_subscribe(["1"]),
        user_subscribe(CREDS),
        market_operation("subscribe", ["1"]),
        user_operation("subscribe", ["0xaa"]),
    ):
        assert isinstance(frame, str)
        assert isinstance(json.loads(frame), dict)
