"""Tests of the decimal grammar and price keys (polyfeed.core.book.numbers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from book_support import JUNK, ref_price_valid, ref_size_valid
from polyfeed import native
from polyfeed.core.book import numbers
from polyfeed.core.book.levels import MALFORMED_ENTRY, Levels
from polyfeed.core.book.numbers import (
    MALFORMED,
    POSITIVE,
    TICK_KEYS,
    ZERO,
    is_decimal,
    is_optional_price,
    parse_price,
    price_decimal,
    scan_size_kind,
    server_top,
    size_kind,
    tick_key,
)

_TEXT = st.one_of(
    st.text(max_size=8), st.sampled_from(JUNK), st.from_regex(r"[0-9]{0,4}\.?[0-9]{0,4}")
)


@given(_TEXT)
def test_size_grammar_matches_the_reference(text: str) -> None:
    kind = size_kind(text)
    assert (kind != MALFORMED) is ref_size_valid(text)
    if kind != MALFORMED:
        assert (kind == ZERO) is (text == "" or Decimal(text) == 0)
    assert is_decimal(text) is (text != "" and ref_size_valid(text))


_SIZE_LIKE = st.one_of(
    _TEXT,
    st.text(alphabet="0123456789.", max_size=50),  # around MAX_DECIMAL_LENGTH
    # Digits outside ASCII: superscript two, Arabic-Indic three, fullwidth zero.
    st.text(alphabet=st.sampled_from("0.19 a-\u00b2\u0663\uff10"), max_size=6),
)


@given(_SIZE_LIKE)
def test_the_compiled_builds_scan_of_a_size_is_size_kind(text: str) -> None:
    # The hot path takes scan_size_kind when compiled and size_kind when not: one grammar.
    assert scan_size_kind(text) == size_kind(text)


def test_the_module_knows_which_build_runs_it() -> None:
    assert numbers.COMPILED is native.COMPILED


@given(_TEXT)
def test_levels_set_judges_a_size_by_size_kind(text: str) -> None:
    levels = Levels()
    levels.set("BUY", "0.5", "7", 0)
    status = levels.set("BUY", "0.5", text, 0)
    assert (status == MALFORMED_ENTRY) is (size_kind(text) == MALFORMED)
    present = [level.size for level in levels.best_first(True)]
    expected = {MALFORMED: ["7"], ZERO: [], POSITIVE: [text]}[size_kind(text)]
    assert present == expected


@given(_TEXT)
def test_price_grammar_matches_the_reference(text: str) -> None:
    try:
        key, value = parse_price(text)
    except ValueError:
        assert not ref_price_valid(text)
    else:
        assert ref_price_valid(text)
        assert value == Decimal(text)
        assert key == Decimal(text).scaleb(6)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-0.5", "+0.5", "1e-2", " 0.5", "0.5_0"])
def test_decimal_accepts_what_the_grammar_refuses(text: str) -> None:
    # Python's Decimal parses every one of these; a book must not.
    Decimal(text)
    with pytest.raises(ValueError):
        parse_price(text)
    assert size_kind(text) == MALFORMED


def test_price_helpers() -> None:
    assert parse_price("0.5") == (500_000, Decimal("0.5"))
    assert parse_price("0.50")[0] == parse_price("0.5")[0]
    with pytest.raises(ValueError, match="more than 6 decimals"):
        parse_price("0.1234567")
    assert price_decimal(parse_price("0.25")[0]) == Decimal("0.25")
    assert price_decimal(123) == Decimal("0.000123")
    assert server_top(None) is None and server_top("") is None and server_top("0") is None
    assert server_top("0.4") == 400_000
    with pytest.raises(ValueError):
        server_top("x")


# --------------------------------------------------------------------------- issue 8, items 1-2

_ISSUE_SIZES = ["1abc", "1,000", "9-", "\u00b2", "1e400", "1_0", "5 ", "abc", "-5", "NaN"]
_ISSUE_PRICES = [
    "0",
    " 0.5",
    "+0.5",
    "0.4_2",
    "\u0660.\u0665",  # ARABIC-INDIC DIGITS ZERO and FIVE: str.isdigit() says yes
    "1e999990",
    "1e999999",
    "1",
    "1.0",
    "0.000",
]
_HUGE = [
    "1e999990",
    "1" * 1_000_000,
    "0." + "0" * 999_990 + "1",
    "9" * 40 + "e999999",
]


@pytest.mark.parametrize("size", _ISSUE_SIZES)
def test_the_issue_sizes_are_malformed(size: str) -> None:
    assert size_kind(size) == MALFORMED
    assert not is_decimal(size)


@pytest.mark.parametrize("price", _ISSUE_PRICES)
def test_the_issue_prices_are_refused(price: str) -> None:
    with pytest.raises(ValueError):
        parse_price(price)
    assert not ref_price_valid(price)


@pytest.mark.parametrize("text", _HUGE)
def test_the_grammar_costs_no_more_than_the_length_of_the_text(text: str) -> None:
    # Decimal("1e999990").scaleb(6) alone took ~24 s; the grammar must refuse before Decimal.
    started = time.perf_counter()
    for _ in range(10):
        assert size_kind(text) == MALFORMED
        with pytest.raises(ValueError):
            parse_price(text)
        with pytest.raises(ValueError):
            tick_key(text)
        assert not is_optional_price(text)
    assert time.perf_counter() - started < 0.5


def _ref_tick(text: str) -> bool:
    return ref_price_valid(text) and Decimal(text) in {
        Decimal("0.1"),
        Decimal("0.01"),
        Decimal("0.001"),
        Decimal("0.0001"),
    }


@given(st.one_of(_TEXT, st.sampled_from(["0.1", "0.01", "0.010", "0.001", "0.0001", ".01"])))
def test_a_tick_size_is_one_of_polymarkets(text: str) -> None:
    try:
        key = tick_key(text)
    except ValueError:
        assert not _ref_tick(text)
    else:
        assert _ref_tick(text)
        assert key in TICK_KEYS and key == Decimal(text).scaleb(6)


@pytest.mark.parametrize("text", ["1e100002", "0.05", "0.5", "0.00001", "0", "1", "0.02"])
def test_tick_sizes_outside_the_known_set_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        tick_key(text)


@given(st.one_of(st.none(), _TEXT, st.sampled_from(_ISSUE_PRICES)))
def test_server_prices_are_prices_or_zero_for_none(text: str | None) -> None:
    # best_bid/best_ask/last_trade_price: "0" (any spelling) or "" means none (real captures).
    none = text is None or text == "" or (ref_size_valid(text) and Decimal(text) == 0)
    assert is_optional_price(text) is (none or ref_price_valid(text or ""))
    if none:
        assert server_top(text) is None
    elif ref_price_valid(text or ""):
        assert server_top(text) == Decimal(text or "").scaleb(6)
    else:
        with pytest.raises(ValueError):
            server_top(text)


def _outcome(fn: Callable[[str], object], text: str) -> object:
    try:
        return fn(text)
    except ValueError:
        return ValueError


@given(st.one_of(_TEXT, st.integers(0, 10**6).map(lambda k: f"0.{k:06d}"), st.just("1.0")))
def test_server_top_and_is_optional_price_answer_alike_with_and_without_the_price_cache(
    text: str,
) -> None:
    # Both answer from PRICES first when the text was parsed before: the cache may only save
    # the parse, never change the answer.
    saved = dict(numbers.PRICES)
    numbers.PRICES.clear()
    try:
        cold = (_outcome(server_top, text), _outcome(is_optional_price, text))
    finally:
        numbers.PRICES.update(saved)
    _outcome(parse_price, text)  # cached now, if it is a price
    assert (_outcome(server_top, text), _outcome(is_optional_price, text)) == cold
