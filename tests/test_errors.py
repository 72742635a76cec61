"""errors: the documented tree is the real hierarchy; transient flags; data; no credential leaks."""

from __future__ import annotations

import re

import pytest

import polyfeed.errors as errors_module
from polyfeed.credentials import Credentials
from polyfeed.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    ConnectionClosedError,
    DataTimeoutError,
    FatalError,
    HandshakeRejectedError,
    InvalidStateError,
    OverflowDisconnectError,
    PolyfeedError,
    RestError,
    RetriesExhaustedError,
    ServerUnavailableError,
    StreamClosedError,
    TransientError,
)

TREE_LINE = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z][A-Za-z]+)\s")


def documented_tree() -> dict[str, str | None]:
    """class name -> documented parent name, parsed from the module docstring's tree."""
    doc = errors_module.__doc__
    assert doc is not None
    block = doc.split("::", 1)[1].strip("\n").split("\n\n", 1)[0]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = TREE_LINE.match(line.strip("\n")[4:] if line.startswith("    ") else line)
        assert match, f"unparsable tree line {line!r}"
        depth = len(match["indent"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match["name"]] = stack[-1][1] if stack else None
        stack.append((depth, match["name"]))
    return parents


def test_docstring_tree_matches_the_classes() -> None:
    parents = documented_tree()
    assert parents["PolyfeedError"] is None
    assert parents["ConnectError"] == "TransientError"
    assert parents["AuthenticationError"] == "FatalError"
    for name, parent in parents.items():
        cls = getattr(errors_module, name)
        if parent is None:
            assert cls.__bases__ == (Exception,)
            continue
        parent_cls = getattr(errors_module, parent)
        assert parent_cls in cls.__bases__, f"{name} should derive from {parent}"
        # No polyfeed base other than the documented one.
        assert [b for b in cls.__bases__ if issubclass(b, PolyfeedError)] == [parent_cls]


def test_every_exported_error_is_in_the_tree() -> None:
    assert set(errors_module.__all__) == set(documented_tree())


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectError("ws://x", "refused"), True),
        (ServerUnavailableError(503), True),
        (ConnectionClosedError(1006), True),
        (DataTimeoutError("data", 60.0), True),
        (OverflowDisconnectError(10), True),
        (AuthenticationError(401, 1), False),
        (HandshakeRejectedError(404, "ws://x"), False),
        (RetriesExhaustedError(3, None), False),
        (ConfigError("bad"), False),
        (StreamClosedError("closed"), False),
        (InvalidStateError("Session", "OPEN", "connected"), False),
        (RestError(None, "http://x/book"), True),
        (RestError(429, "http://x/book"), True),
        (RestError(503, "http://x/book"), True),
        (RestError(404, "http://x/book"), False),
    ],
)
def test_transient_flag(error: PolyfeedError, transient: bool) -> None:
    assert error.transient is transient
    assert isinstance(error, TransientError) is (transient and not isinstance(error, RestError))
    if isinstance(error, TransientError | FatalError):
        assert isinstance(error, TransientError) != isinstance(error, FatalError)


def test_error_data_attributes() -> None:
    connect = ConnectError("ws://host/ws/market", "refused")
    assert (connect.url, connect.detail) == ("ws://host/ws/market", "refused")
    assert "refused" in str(connect)

    unavailable = ServerUnavailableError(429, 3.0)
    assert (unavailable.status, unavailable.retry_after) == (429, 3.0)
    assert "429" in str(unavailable)
    assert "3s" in str(unavailable)
    assert ServerUnavailableError(503).retry_after is None

    closed = ConnectionClosedError(4001, "bye")
    assert (closed.code, closed.reason) == (4001, "bye")
    assert "4001" in str(closed)
    assert "bye" in str(closed)
    dropped = ConnectionClosedError(None)
    assert dropped.code is None
    assert "no close frame" in str(dropped)

    stale = DataTimeoutError("asset", 12.5, ("a", "b"))
    assert (stale.kind, stale.silent_for, stale.asset_ids) == ("asset", 12.5, ("a", "b"))
    assert "12.500" in str(stale)
    assert DataTimeoutError("pong", 1.0).asset_ids == ()

    assert OverflowDisconnectError(100).capacity == 100

    auth = AuthenticationError(403, 2)
    assert (auth.status, auth.attempts) == (403, 2)
    assert "403" in str(auth)
    assert AuthenticationError(None, 3).status is None

    rejected = HandshakeRejectedError(404, "ws://host/ws/")
    assert (rejected.status, rejected.url) == (404, "ws://host/ws/")

    last = ConnectionClosedError(1006)
    exhausted = RetriesExhaustedError(5, last)
    assert (exhausted.attempts, exhausted.last_error) == (5, last)
    assert "5" in str(exhausted)

    rest = RestError(500, "https://clob/book", "oops")
    assert (rest.status, rest.url) == (500, "https://clob/book")
    assert "oops" in str(rest)


def test_invalid_state_error_names_machine_state_and_input() -> None:
    error = InvalidStateError("Session", "CLOSED", "receive")
    assert (error.machine, error.state, error.event) == ("Session", "CLOSED", "receive")
    assert str(error) == "Session: 'receive' is not allowed in state CLOSED"
    assert isinstance(error, RuntimeError)


def test_config_error_is_also_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError):
        raise ConfigError("bad")


def test_credentials_never_leak_into_errors() -> None:
    secret = "very-secret-value-42"
    passphrase = "very-private-passphrase"
    creds = Credentials(api_key="0123456789abcdef-key", secret=secret, passphrase=passphrase)
    built = [
        ConfigError(f"bad credentials {creds}"),
        ConfigError(f"bad credentials {creds!r}"),
        AuthenticationError(401, 3),
        AuthenticationError(None, 1),
        RetriesExhaustedError(3, ConfigError(f"{creds}")),
        ConnectionClosedError(None, f"auth with {creds!r} dropped"),
    ]
    for error in built:
        for text in (str(error), repr(error), repr(error.args), repr(vars(error))):
            assert secret not in text
            assert passphrase not in text
            assert creds.api_key not in text
    # Credential validation names the field, never the value.
    with pytest.raises(ConfigError) as caught:
        Credentials(api_key=secret, secret=" ", passphrase=passphrase)
    assert secret not in str(caught.value)
    assert passphrase not in str(caught.value)
