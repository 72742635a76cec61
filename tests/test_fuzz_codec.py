"""Fuzz target for the frame decoder: mutations of the real Polymarket captures.

Every real market- and user-channel capture (compact, as the server sends it) is mutated by
byte flips, truncations, splices with other captures, swaps of numbers for hostile ones
(``1e400``, ``NaN``, ``1e999999``, 30-digit integers, ...) and array wrapping, a few at a time.
For every mutant the decoder must: never raise; return at most ``MAX_ITEMS_PER_FRAME + 1`` items;
keep every excerpt bounded; give events whose fields all have their declared types (a strict
round trip through msgspec); count every item once; and give the same items on the fast path as
on the plain one.

The normal suite runs a short pass (a few seconds). A long run raises the example count::

    POLYFEED_FUZZ_EXAMPLES=200000 .venv/bin/python -m pytest -q tests/test_fuzz_codec.py

(about 3 minutes per 100,000 examples on one core; hypothesis prints any failing mutant,
shrunk, which belongs in tests/test_codec.py as a regression case).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, require_captures
from polyfeed.core.codec import (
    EXCERPT_CHARS,
    MAX_ITEMS_PER_FRAME,
    REASON_CHARS,
    UNKNOWN_RAW_BYTES,
    FrameDecoder,
)
from polyfeed.core.messages import (
    Malformed,
    Notice,
    Pong,
    PriceChange,
    Unknown,
    WireItem,
)

EXAMPLES = int(os.environ.get("POLYFEED_FUZZ_EXAMPLES", "400"))

# Captures of WebSocket messages (REST, Gamma and RTDS files are other parsers' inputs).
_WS_FOLDERS = ("nautilus_trader", "nautilus_trader_py_ws", "polypy")
_NOT_WS = ("clob_", "gamma_", "rtds_")


def _load_seeds(root: Path) -> list[bytes]:
    seeds: list[bytes] = []
    for folder in _WS_FOLDERS:
        for path in sorted((root / folder).glob("*.json")) if root.is_dir() else []:
            if path.name.startswith(_NOT_WS):
                continue
            seeds.append(json.dumps(json.loads(path.read_bytes()), separators=(",", ":")).encode())
    return seeds or [b'{"event_type":"book"}']


SEEDS = _load_seeds(FIXTURES)

HOSTILE_NUMBERS = (
    b"1e400",
    b"-1e400",
    b"1e999999",
    b"NaN",
    b"Infinity",
    b"-0",
    b"99999999999999999999999999999",
    b"0.4_2",
    b'"1e400"',
    b'"NaN"',
    b'"\xd9\xa1"',
    b'"1,000"',
    b'""',
    b"null",
    b"[]",
    b"{}",
    b"true",
)
_NUMBER = re.compile(rb'-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|"\d[\d.]*"')


@st.composite
def _mutant(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "splice", "number", "wrap", "insert"]))
        if kind == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "splice":
            other = draw(st.sampled_from(SEEDS))
            start = draw(st.integers(0, len(other)))
            piece = other[start : start + draw(st.integers(0, 200))]
            at = draw(st.integers(0, len(data)))
            end = at + draw(st.integers(0, 50))
            data = data[:at] + piece + data[end:]
        elif kind == "number":
            spans = [match.span() for match in _NUMBER.finditer(data)]
            if spans:
                start, end = draw(st.sampled_from(spans))
                data = data[:start] + draw(st.sampled_from(HOSTILE_NUMBERS)) + data[end:]
        elif kind == "wrap":
            other = draw(st.sampled_from(SEEDS))
            data = b"[" + data + b"," + other + b"]"
        else:
            at = draw(st.integers(0, len(data)))
            token = draw(st.sampled_from([b"[", b"]", b"{", b"}", b",", b'"', b"\\", b" ", b":"]))
            data = data[:at] + token + data[at:]
    return data


def _check_typed(item: WireItem) -> None:
    match item:
        case Malformed(reason=reason, excerpt=excerpt):
            assert len(reason) <= REASON_CHARS
            assert len(excerpt) <= EXCERPT_CHARS
        case Notice(text=text):
            assert len(text) <= EXCERPT_CHARS
        case Unknown(event_type=event_type, raw=raw, truncated=truncated):
            assert event_type is None or len(event_type) <= EXCERPT_CHARS
            assert len(raw) <= UNKNOWN_RAW_BYTES
            assert not truncated or len(raw) == UNKNOWN_RAW_BYTES
        case Pong():
            pass
        case _:
            # An event: every field holds its declared type (strict, no coercion).
            again: Any = msgspec.convert(msgspec.to_builtins(item), type(item), strict=True)
            assert again == item
            if isinstance(item, PriceChange):
                assert item.price_changes


# The suite's 60 s per-test timeout grows with a long run (~550 examples a second).
@pytest.mark.timeout(60 + EXAMPLES // 100)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=_mutant(), channel=st.sampled_from(["market", "user"]), as_text=st.booleans())
def test_mutated_captures(data: bytes, channel: str, as_text: bool) -> None:
    require_captures(FIXTURES)
    frame: str | bytes = data.decode("utf-8", "surrogateescape") if as_text else data
    decoder = FrameDecoder(channel)  # type: ignore[arg-type]
    items = decoder.decode(frame)
    assert len(items) <= MAX_ITEMS_PER_FRAME + 1
    assert decoder.stats.items == len(items)
    assert decoder.decode_plain(frame) == items
    assert decoder.decode_many([frame, frame]) == items + items
    for item in items:
        _check_typed(item)


def test_seeds_are_the_real_captures() -> None:
    root = require_captures(FIXTURES)
    assert len(_load_seeds(root)) >= 40
    # Unmutated, every seed decodes without a Malformed item.
    for seed in _load_seeds(root):
        items = FrameDecoder("market").decode(seed) + FrameDecoder("user").decode(seed)
        assert not any(isinstance(item, Malformed) for item in items), seed[:80]
