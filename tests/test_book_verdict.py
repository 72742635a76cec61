"""BookVerdict: a frozen, hashable value on both builds (it once lost ``frozen`` compiled)."""

from __future__ import annotations

import pytest

from polyfeed.core.book import BookVerdict
from polyfeed.core.book.options import BookVerdict as ReExported


def test_a_verdict_is_frozen_hashable_and_compares_by_value() -> None:
    verdict = BookVerdict("a", "invalidated", "crossed book")
    with pytest.raises(AttributeError):
        verdict.action = "ok"  # type: ignore[misc]
    assert hash(verdict) == hash(BookVerdict("a", "invalidated", "crossed book"))
    assert verdict == BookVerdict("a", "invalidated", "crossed book")
    assert verdict != BookVerdict("a", "ok")
    assert BookVerdict("a", "ok").reason == ""
    assert ReExported is BookVerdict
