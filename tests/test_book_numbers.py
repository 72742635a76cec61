"""Tests of the decimal grammar and price keys (polyfeed.core.book.numbers)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from book_support import JUNK, ref_price_valid, ref_size_valid
from polyfeed.core.book.levels import MALFORMED_ENTRY, Levels
from polyfeed.core.book.numbers import (
    MALFORMED,
    POSITIVE,
    ZERO,
    is_decimal,
    parse_price,
    price_decimal,
    server_top,
    size_kind,
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


@given(_TEXT)
def test_the_inlined_size_check_of_levels_set_is_size_kind(text: str) -> None:
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
