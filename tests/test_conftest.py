"""conftest.py: the captures helper (skip on a developer's machine, fail under CI=true) and the
collector pause."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

import conftest
from conftest import collector_paused, require_captures, running_in_ci


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("false", False), ("0", False), ("", False)],
)
def test_running_in_ci_reads_the_ci_variable(value: str, expected: bool) -> None:
    assert running_in_ci({"CI": value}) is expected
    assert running_in_ci({}) is False


def test_present_captures_are_returned(tmp_path: Path) -> None:
    assert require_captures(tmp_path, {"CI": "true"}) == tmp_path
    assert require_captures(tmp_path, {}) == tmp_path


def test_missing_captures_skip_outside_ci(tmp_path: Path) -> None:
    missing = tmp_path / "shared" / "fixtures" / "polymarket"
    with pytest.raises(pytest.skip.Exception, match="captures not found"):
        require_captures(missing, {})


def test_missing_captures_fail_under_ci_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "shared" / "fixtures" / "polymarket"
    with pytest.raises(pytest.fail.Exception) as info:
        require_captures(missing, {"CI": "true"})
    message = str(info.value)
    assert "\n" not in message
    assert str(missing) in message
    assert message.startswith("CI=true and Polymarket captures not found at ")
    assert info.value.pytrace is False


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), (None, "skip")])
def test_the_fixtures_dir_fixture_goes_through_the_helper(
    ci: str | None,
    outcome: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setattr(conftest, "FIXTURES", tmp_path / "absent")
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    outcomes = {"fail": pytest.fail.Exception, "skip": pytest.skip.Exception}
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as info:
        request.getfixturevalue("fixtures_dir")
    assert info.type is outcomes[outcome]
    assert str(tmp_path / "absent") in str(info.value)


def test_collector_paused_pauses_the_collector_and_restores_its_state() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused(collect_first=False):
        assert not gc.isenabled()
        raise RuntimeError("inside")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a collector paused before stays paused
    finally:
        gc.enable()
