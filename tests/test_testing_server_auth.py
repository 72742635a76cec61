"""The fake server's credentials and its CLOB L2 header check (testing/server/auth.py)."""

from __future__ import annotations

import base64
import random

import pytest

from polyfeed.credentials import l2_signature
from polyfeed.testing import ApiCredentials
from polyfeed.testing.server.auth import L2_HEADERS, check_l2_headers

ACCEPTED = ApiCredentials.generate(random.Random(7))
TIMESTAMP = 1_767_225_600


def signed(credentials: ApiCredentials = ACCEPTED, path: str = "/auth/api-keys") -> dict[str, str]:
    return credentials.client().l2_headers(TIMESTAMP, "GET", path)


def test_generated_credentials_are_shaped_like_polymarkets_and_reproducible() -> None:
    again = ApiCredentials.generate(random.Random(7))
    assert again == ACCEPTED
    assert len(ACCEPTED.api_key) == 36 and ACCEPTED.api_key.count("-") == 4
    assert len(base64.urlsafe_b64decode(ACCEPTED.secret)) == 32
    assert ACCEPTED.address.startswith("0x") and len(ACCEPTED.address) == 42
    assert ACCEPTED.client().can_sign
    assert ACCEPTED.client().api_key == ACCEPTED.api_key


def test_repr_hides_the_secrets() -> None:
    text = repr(ACCEPTED)
    assert ACCEPTED.secret not in text and ACCEPTED.passphrase not in text
    assert ACCEPTED.api_key not in text


def test_headers_signed_with_the_accepted_secret_pass() -> None:
    assert check_l2_headers(signed(), ACCEPTED, "GET", "/auth/api-keys") == ""
    lower = {**signed(), "POLY_ADDRESS": ACCEPTED.address.upper().replace("0X", "0x")}
    assert check_l2_headers(lower, ACCEPTED, "GET", "/auth/api-keys") == ""


def test_the_signature_covers_method_path_and_body() -> None:
    headers = signed()
    assert check_l2_headers(headers, ACCEPTED, "POST", "/auth/api-keys") == "bad signature"
    assert check_l2_headers(headers, ACCEPTED, "GET", "/auth/api-key") == "bad signature"
    assert check_l2_headers(headers, ACCEPTED, "GET", "/auth/api-keys", "{}") == "bad signature"


@pytest.mark.parametrize("name", L2_HEADERS)
def test_a_missing_header_is_named(name: str) -> None:
    headers = signed()
    del headers[name]
    assert check_l2_headers(headers, ACCEPTED, "GET", "/auth/api-keys") == f"missing header {name}"


def test_other_credentials_are_rejected_for_each_reason_without_echoing_values() -> None:
    other = ApiCredentials.generate(random.Random(8))
    path = "/auth/api-keys"
    cases = {
        "unknown api key": {**signed(), "POLY_API_KEY": other.api_key},
        "wrong passphrase": {**signed(), "POLY_PASSPHRASE": other.passphrase},
        "address does not own the api key": {**signed(), "POLY_ADDRESS": other.address},
        "POLY_TIMESTAMP is not an integer": {**signed(), "POLY_TIMESTAMP": "soon"},
        "bad signature": {
            **signed(),
            "POLY_SIGNATURE": l2_signature(other.secret, TIMESTAMP, "GET", path),
        },
    }
    for reason, headers in cases.items():
        result = check_l2_headers(headers, ACCEPTED, "GET", path)
        assert result == reason
        for secret in (ACCEPTED.secret, ACCEPTED.passphrase, other.secret, other.passphrase):
            assert secret not in result


def test_non_ascii_header_values_are_rejected_not_raised() -> None:
    headers = {**signed(), "POLY_SIGNATURE": "signé", "POLY_API_KEY": ACCEPTED.api_key}
    assert check_l2_headers(headers, ACCEPTED, "GET", "/auth/api-keys") == "bad signature"
    key = {**signed(), "POLY_API_KEY": "clé"}
    assert check_l2_headers(key, ACCEPTED, "GET", "/auth/api-keys") == "unknown api key"


def test_an_accepted_secret_that_is_not_base64_cannot_sign() -> None:
    plain = ApiCredentials(api_key="k", secret="not base64!", passphrase="p", address="0xab")
    headers = {
        "POLY_ADDRESS": "0xab",
        "POLY_SIGNATURE": "x",
        "POLY_TIMESTAMP": "1",
        "POLY_API_KEY": "k",
        "POLY_PASSPHRASE": "p",
    }
    assert "cannot sign" in check_l2_headers(headers, plain, "GET", "/auth/api-keys")
