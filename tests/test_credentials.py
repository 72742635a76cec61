"""Credentials: validation, environment loading, and that secrets never leak into text."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from polyfeed.credentials import (
    ENV_API_KEY,
    ENV_API_PASSPHRASE,
    ENV_API_SECRET,
    Credentials,
)
from polyfeed.errors import ConfigError

API_KEY = "4f1c2a9e-7b3d-4e5f-9a8b-0c1d2e3f4a5b"
SECRET = "c2VjcmV0LXZhbHVlLWRvLW5vdC1sZWFr"
PASSPHRASE = "pass-phrase-do-not-leak"


def _env(**overrides: str | None) -> dict[str, str]:
    env = {ENV_API_KEY: API_KEY, ENV_API_SECRET: SECRET, ENV_API_PASSPHRASE: PASSPHRASE}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _assert_no_secret(text: str) -> None:
    assert SECRET not in text
    assert PASSPHRASE not in text
    assert API_KEY not in text
    assert API_KEY[4:12] not in text


def test_fields_and_equality() -> None:
    creds = Credentials(api_key=API_KEY, secret=SECRET, passphrase=PASSPHRASE)
    assert (creds.api_key, creds.secret, creds.passphrase) == (API_KEY, SECRET, PASSPHRASE)
    assert creds == Credentials(API_KEY, SECRET, PASSPHRASE)
    assert creds != Credentials(API_KEY, SECRET + "x", PASSPHRASE)


def test_frozen() -> None:
    creds = Credentials(API_KEY, SECRET, PASSPHRASE)
    with pytest.raises(dataclasses.FrozenInstanceError) as info:
        creds.secret = "other"  # type: ignore[misc]
    _assert_no_secret(str(info.value))


def test_repr_and_str_are_redacted() -> None:
    creds = Credentials(API_KEY, SECRET, PASSPHRASE)
    expected = "Credentials(api_key='4f1c…', secret=<redacted>, passphrase=<redacted>)"
    assert repr(creds) == expected
    assert str(creds) == expected
    assert f"{creds}" == expected
    assert f"{creds!r}" == expected
    assert expected in repr([creds])
    assert expected in repr({"c": creds})
    for text in (repr(creds), str(creds), repr([creds])):
        _assert_no_secret(text)


def test_short_api_key_is_not_shown_at_all() -> None:
    creds = Credentials("abcdef", SECRET, PASSPHRASE)
    assert "abcd" not in repr(creds)
    assert (
        repr(creds) == "Credentials(api_key=<redacted>, secret=<redacted>, passphrase=<redacted>)"
    )


@pytest.mark.parametrize("field", ["api_key", "secret", "passphrase"])
@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_field_rejected_naming_the_field(field: str, bad: str) -> None:
    values = {"api_key": API_KEY, "secret": SECRET, "passphrase": PASSPHRASE, field: bad}
    with pytest.raises(ConfigError, match=field) as info:
        Credentials(**values)
    _assert_no_secret(str(info.value))
    _assert_no_secret(repr(info.value))


def test_non_string_field_rejected() -> None:
    with pytest.raises(ConfigError, match="secret must be a string"):
        Credentials(API_KEY, 12345, PASSPHRASE)  # type: ignore[arg-type]


def test_from_env_mapping() -> None:
    creds = Credentials.from_env(_env())
    assert creds == Credentials(API_KEY, SECRET, PASSPHRASE)


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _env().items():
        monkeypatch.setenv(name, value)
    assert Credentials.from_env() == Credentials(API_KEY, SECRET, PASSPHRASE)


@pytest.mark.parametrize("missing", [ENV_API_KEY, ENV_API_SECRET, ENV_API_PASSPHRASE])
def test_from_env_missing_variable_is_named(missing: str) -> None:
    with pytest.raises(ConfigError) as info:
        Credentials.from_env(_env(**{missing: None}))
    message = str(info.value)
    assert missing in message
    assert "missing" in message
    others = {ENV_API_KEY, ENV_API_SECRET, ENV_API_PASSPHRASE} - {missing}
    assert not any(name in message for name in others)
    _assert_no_secret(message)
    _assert_no_secret(repr(info.value))


def test_from_env_all_missing_names_all() -> None:
    with pytest.raises(ConfigError) as info:
        Credentials.from_env({})
    for name in (ENV_API_KEY, ENV_API_SECRET, ENV_API_PASSPHRASE):
        assert name in str(info.value)


def test_from_env_empty_variable_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        Credentials.from_env(_env(**{ENV_API_SECRET: "  "}))
    assert ENV_API_SECRET in str(info.value)
    assert "empty" in str(info.value)
    _assert_no_secret(str(info.value))


def test_error_context_does_not_carry_values() -> None:
    with pytest.raises(ConfigError) as info:
        Credentials(API_KEY, SECRET, "")
    # No chained exception or attribute could leak the other fields.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    _assert_no_secret(" ".join(map(str, info.value.args)))


def test_pickle_round_trip_keeps_values() -> None:
    creds = Credentials(API_KEY, SECRET, PASSPHRASE)
    assert pickle.loads(pickle.dumps(creds)) == creds


def test_l2_headers_sign_timestamp_method_path_and_body_with_the_decoded_secret() -> None:
    import base64
    import hashlib
    import hmac

    secret = base64.urlsafe_b64encode(b"k" * 32).decode()
    creds = Credentials(api_key="key-0123456789", secret=secret, passphrase="pp", address="0xabc")
    headers = creds.l2_headers(1700000000, "get", "/auth/api-keys")
    expected = base64.urlsafe_b64encode(
        hmac.new(b"k" * 32, b"1700000000GET/auth/api-keys", hashlib.sha256).digest()
    ).decode()
    assert headers == {
        "POLY_ADDRESS": "0xabc",
        "POLY_SIGNATURE": expected,
        "POLY_TIMESTAMP": "1700000000",
        "POLY_API_KEY": "key-0123456789",
        "POLY_PASSPHRASE": "pp",
    }
    assert creds.can_sign


def test_credentials_without_address_or_with_a_non_base64_secret_cannot_sign() -> None:
    from polyfeed.errors import ConfigError

    unsigned = Credentials(api_key="key-0123456789", secret="s3cr3t!!~", passphrase="pp")
    assert not unsigned.can_sign
    bad_secret = Credentials(
        api_key="key-0123456789", secret="s3cr3t!!~", passphrase="pp", address="0x1"
    )
    assert not bad_secret.can_sign
    with pytest.raises(ConfigError) as info:
        bad_secret.l2_headers(1, "GET", "/auth/api-keys")
    assert "s3cr3t" not in str(info.value)


def test_from_env_reads_the_optional_address() -> None:
    env = {
        "POLYMARKET_API_KEY": "k",
        "POLYMARKET_API_SECRET": "s",
        "POLYMARKET_API_PASSPHRASE": "p",
        "POLYMARKET_ADDRESS": "0xdef",
    }
    assert Credentials.from_env(env).address == "0xdef"
    del env["POLYMARKET_ADDRESS"]
    assert Credentials.from_env(env).address is None
