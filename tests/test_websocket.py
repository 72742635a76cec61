"""core.websocket: the handshake, client frames checked against a plain byte-by-byte unmasking,
and the frame reader: the same messages and control events however the bytes are split into
reads, and every protocol violation a failure with its close code."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from polyfeed.core.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    Failure,
    FrameReader,
    HandshakeError,
    HandshakeResponse,
    Ping,
    accept_key,
    check_upgrade,
    close_payload,
    encode_frame,
    handshake_request,
    parse_handshake_response,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example


def server_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """A frame as a server sends it (never masked), length in its shortest form."""
    first = (0x80 if fin else 0) | rsv | opcode
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 1 << 16:
        return bytes((first, 126)) + length.to_bytes(2, "big") + payload
    return bytes((first, 127)) + length.to_bytes(8, "big") + payload


def unmask(frame: bytes) -> tuple[int, bytes]:
    """(first byte, payload) of one masked client frame, byte by byte as RFC 6455 5.3 says."""
    assert frame[1] & 0x80, "a client frame must be masked"
    length = frame[1] & 0x7F
    offset = 2
    if length == 126:
        length, offset = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, offset = int.from_bytes(frame[2:10], "big"), 10
    mask = frame[offset : offset + 4]
    body = frame[offset + 4 :]
    assert len(body) == length
    return frame[0], bytes(byte ^ mask[index % 4] for index, byte in enumerate(body))


def feed_in_reads(
    data: bytes, cuts: list[int], max_bytes: int = 1 << 20
) -> tuple[list[bytes], list[Any]]:
    reader = FrameReader(max_bytes)
    messages: list[bytes] = []
    controls: list[Any] = []
    start = 0
    for cut in [*sorted({min(max(cut, 0), len(data)) for cut in cuts}), len(data)]:
        if cut > start:
            controls.extend(reader.feed(data[start:cut], messages))
            start = cut
    return messages, controls


# ---------------------------------------------------------------- handshake


def test_accept_key_is_rfc_6455s_example() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_request_asks_to_upgrade_with_the_key() -> None:
    request = handshake_request("example.com:8080", "/ws/market?x=1", KEY, "polyfeed/1.0").decode(
        "ascii"
    )
    lines = request.split("\r\n")
    assert lines[0] == "GET /ws/market?x=1 HTTP/1.1"
    assert "Host: example.com:8080" in lines
    assert "User-Agent: polyfeed/1.0" in lines
    assert "Upgrade: websocket" in lines
    assert "Connection: Upgrade" in lines
    assert f"Sec-WebSocket-Key: {KEY}" in lines
    assert "Sec-WebSocket-Version: 13" in lines
    assert request.endswith("\r\n\r\n")
    assert "Sec-WebSocket-Extensions" not in request  # nothing offered: no compression


def upgrade_head(**headers: str) -> bytes:
    fields = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": accept_key(KEY),
        **headers,
    }
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value)
    return f"HTTP/1.1 101 Switching Protocols\r\n{lines}\r\n".encode("latin-1")


def test_a_response_head_is_parsed_once_complete_and_says_where_frames_begin() -> None:
    head = upgrade_head()
    frames = server_frame(OP_TEXT, b"hi")
    for cut in range(len(head)):
        assert parse_handshake_response(head[:cut]) is None
    parsed = parse_handshake_response(head + frames)
    assert parsed is not None
    response, end = parsed
    assert response.status == 101
    assert response.reason == "Switching Protocols"
    assert response.headers["sec-websocket-accept"] == accept_key(KEY)
    assert (head + frames)[end:] == frames
    check_upgrade(response, KEY)


@pytest.mark.parametrize(
    "head",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 abc Nope\r\n\r\n",
        b"HTTP/1.1 101 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 101 OK\r\n folded: header\r\n\r\n",
    ],
)
def test_a_head_that_is_not_http_is_a_handshake_error(head: bytes) -> None:
    with pytest.raises(HandshakeError):
        parse_handshake_response(head)


def test_a_head_that_never_ends_is_cut_off_at_64_kib() -> None:
    assert parse_handshake_response(b"HTTP/1.1 101 OK\r\nX: " + b"a" * 60_000) is None
    with pytest.raises(HandshakeError):
        parse_handshake_response(b"HTTP/1.1 101 OK\r\nX: " + b"a" * 70_000)


def test_a_status_without_reason_and_a_retry_after_header() -> None:
    parsed = parse_handshake_response(b"HTTP/1.1 429\r\nRetry-After: 3\r\n\r\n")
    assert parsed is not None
    assert parsed[0] == HandshakeResponse(429, "", {"retry-after": "3"})


@pytest.mark.parametrize(
    "headers",
    [
        {"Upgrade": ""},
        {"Connection": "keep-alive"},
        {"Sec-WebSocket-Accept": accept_key("another key")},
        {"Sec-WebSocket-Extensions": "permessage-deflate"},
    ],
)
def test_a_101_that_does_not_accept_this_upgrade_is_refused(headers: dict[str, str]) -> None:
    parsed = parse_handshake_response(upgrade_head(**headers))
    assert parsed is not None
    with pytest.raises(HandshakeError):
        check_upgrade(parsed[0], KEY)


def test_connection_header_tokens_are_a_list_in_any_case() -> None:
    parsed = parse_handshake_response(upgrade_head(Connection="keep-alive, UPGRADE"))
    assert parsed is not None
    check_upgrade(parsed[0], KEY)


# ---------------------------------------------------------------- client frames


@given(
    opcode=st.sampled_from([OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG]),
    payload=st.binary(max_size=300),
    mask=st.binary(min_size=4, max_size=4),
)
@example(opcode=OP_TEXT, payload=b"", mask=b"\x00\x01\x02\x03")
@example(opcode=OP_TEXT, payload=b"\x00" * 3, mask=b"\xff\xff\xff\xff")  # leading zero bytes
def test_encode_frame_masks_as_the_rfc_says(opcode: int, payload: bytes, mask: bytes) -> None:
    frame = encode_frame(opcode, payload, mask)
    first, body = unmask(frame)
    assert first == 0x80 | opcode
    assert body == payload


@pytest.mark.parametrize("length", [125, 126, 65_535, 65_536])
def test_encode_frame_uses_the_shortest_length_form(length: int) -> None:
    frame = encode_frame(OP_TEXT, b"a" * length, b"abcd")
    form = frame[1] & 0x7F
    assert form == (length if length < 126 else 126 if length < 65_536 else 127)
    assert unmask(frame)[1] == b"a" * length


def test_close_payload_is_the_code_and_a_reason_that_fits() -> None:
    assert close_payload(None) == b""
    assert close_payload(1000) == b"\x03\xe8"
    long = close_payload(1009, "\u2713" * 100)
    assert len(long) <= 125
    assert long[:2] == (1009).to_bytes(2, "big")


# ---------------------------------------------------------------- the reader

message_frames = st.lists(
    st.tuples(
        st.sampled_from(["text", "binary", "ping", "pong", "fragmented"]),
        st.binary(max_size=70_000).filter(lambda b: len(b) < 200 or len(b) > 60_000)
        | st.binary(max_size=200),
    ),
    max_size=12,
)


def wire_of(items: list[tuple[str, bytes]]) -> tuple[bytes, list[bytes], list[Any]]:
    """The bytes of these frames, and the messages and control events they must give."""
    wire = bytearray()
    messages: list[bytes] = []
    controls: list[Any] = []
    for kind, payload in items:
        if kind in ("ping", "pong"):
            payload = payload[:125]
            wire += server_frame(OP_PING if kind == "ping" else OP_PONG, payload)
            if kind == "ping":
                controls.append(Ping(payload))
        elif kind == "fragmented":
            third = len(payload) // 3
            wire += server_frame(OP_TEXT, payload[:third], fin=False)
            wire += server_frame(OP_PING, b"in between")  # control frames may interleave
            controls.append(Ping(b"in between"))
            wire += server_frame(OP_CONTINUATION, payload[third : 2 * third], fin=False)
            wire += server_frame(OP_CONTINUATION, payload[2 * third :])
            messages.append(payload)
        else:
            wire += server_frame(OP_TEXT if kind == "text" else OP_BINARY, payload)
            messages.append(payload)
    return bytes(wire), messages, controls


@given(items=message_frames, cuts=st.lists(st.integers(0, 300_000), max_size=20))
def test_the_same_messages_and_pings_whatever_the_read_boundaries(
    items: list[tuple[str, bytes]], cuts: list[int]
) -> None:
    wire, expected_messages, expected_controls = wire_of(items)
    messages, controls = feed_in_reads(wire, cuts)
    assert messages == expected_messages
    assert controls == expected_controls
    assert all(type(message) is bytes for message in messages)


def test_a_large_frame_over_many_small_reads_is_one_message_and_the_next_follows() -> None:
    payload = bytes(range(256)) * 4_000
    wire = server_frame(OP_TEXT, payload) + server_frame(OP_TEXT, b"next")
    messages, controls = feed_in_reads(wire, list(range(0, len(wire), 1_000)))
    assert messages == [payload, b"next"]
    assert controls == []


def test_a_read_ending_inside_a_frame_header_waits_for_the_rest() -> None:
    wire = server_frame(OP_TEXT, b"x" * 300) + server_frame(OP_TEXT, b"y" * 70_000)
    for cut in (1, 2, 3, 303, 304, 305, 310):
        messages, _ = feed_in_reads(wire, [cut])
        assert messages == [b"x" * 300, b"y" * 70_000], cut


def test_a_server_close_ends_the_reader_with_its_code_and_reason() -> None:
    reader = FrameReader(1 << 20)
    messages: list[bytes] = []
    wire = (
        server_frame(OP_TEXT, b"last")
        + server_frame(OP_CLOSE, close_payload(4001, "go away"))
        + server_frame(OP_TEXT, b"after the close")
    )
    assert reader.feed(wire, messages) == [Close(4001, "go away")]
    assert messages == [b"last"]
    assert reader.done
    assert reader.feed(server_frame(OP_TEXT, b"more"), messages) == []
    assert messages == [b"last"]
    assert "done=True" in repr(reader)


@pytest.mark.parametrize(
    ("payload", "event"),
    [
        (b"", Close(None, "")),
        (close_payload(1000), Close(1000, "")),
        (close_payload(3000, "app"), Close(3000, "app")),
        (close_payload(1012, "restart"), Close(1012, "restart")),
        (close_payload(1014), Close(1014, "")),
        ((1015).to_bytes(2, "big"), Failure(1002, "close code 1015 may not be sent")),
        (b"\x03", Failure(1002, "close frame with a one-byte payload")),
        ((1005).to_bytes(2, "big"), Failure(1002, "close code 1005 may not be sent")),
        ((999).to_bytes(2, "big"), Failure(1002, "close code 999 may not be sent")),
        ((2999).to_bytes(2, "big"), Failure(1002, "close code 2999 may not be sent")),
        ((5000).to_bytes(2, "big"), Failure(1002, "close code 5000 may not be sent")),
        ((1000).to_bytes(2, "big") + b"\xff", Failure(1007, "close reason is not UTF-8")),
    ],
)
def test_close_frames_are_judged_by_their_payload(payload: bytes, event: Any) -> None:
    assert FrameReader(1 << 20).feed(server_frame(OP_CLOSE, payload), []) == [event]


VIOLATIONS = {
    "masked": bytes((0x81, 0x80 | 2)) + b"mask" + b"hi",
    "reserved bit": server_frame(OP_TEXT, b"hi", rsv=0x40),
    "reserved data opcode": server_frame(0x3, b"hi"),
    "reserved control opcode": server_frame(0xB, b"hi"),
    "fragmented ping": server_frame(OP_PING, b"hi", fin=False),
    "long ping": server_frame(OP_PING, b"p" * 126),
    "lone continuation": server_frame(OP_CONTINUATION, b"hi"),
    "message inside a fragmented one": server_frame(OP_TEXT, b"a", fin=False)
    + server_frame(OP_TEXT, b"b"),
    "fragment inside a fragmented one": server_frame(OP_TEXT, b"a", fin=False)
    + server_frame(OP_BINARY, b"b", fin=False),
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_protocol_violations_fail_with_1002_and_end_the_reader(name: str) -> None:
    reader = FrameReader(1 << 20)
    messages: list[bytes] = []
    controls = reader.feed(VIOLATIONS[name] + server_frame(OP_TEXT, b"later"), messages)
    assert len(controls) == 1
    assert isinstance(controls[0], Failure)
    assert controls[0].code == 1002
    assert messages == []
    assert reader.done


def test_a_message_over_the_limit_fails_with_1009_before_its_payload_arrives() -> None:
    reader = FrameReader(1_000)
    wire = server_frame(OP_TEXT, b"x" * 1_001)
    assert reader.feed(wire[:4], []) == [Failure(1009, "message of 1001 bytes")]
    exact = FrameReader(1_000)
    messages: list[bytes] = []
    assert exact.feed(server_frame(OP_TEXT, b"x" * 1_000), messages) == []
    assert messages == [b"x" * 1_000]


def test_a_fragmented_message_over_the_limit_fails_with_1009() -> None:
    reader = FrameReader(1_000)
    wire = server_frame(OP_TEXT, b"x" * 600, fin=False) + server_frame(OP_CONTINUATION, b"y" * 600)
    assert reader.feed(wire, []) == [Failure(1009, "message of more than 1000 bytes")]


def test_a_huge_declared_length_on_a_control_frame_fails_without_waiting() -> None:
    reader = FrameReader(1_000)
    header = bytes((0x80 | OP_PING, 127)) + (1 << 40).to_bytes(8, "big")
    assert reader.feed(header, []) == [Failure(1009, f"frame of {1 << 40} bytes")]


@pytest.mark.parametrize("size", [10, 300, 70_000])
def test_a_frame_is_delivered_by_the_read_that_completes_it(size: int) -> None:
    wire = server_frame(OP_TEXT, b"z" * size)
    for cut in sorted({1, 2, 3, size // 2, len(wire) - 1}):
        reader = FrameReader(1 << 20)
        messages: list[bytes] = []
        assert reader.feed(wire[:cut], messages) == []
        assert messages == []
        reader.feed(wire[cut:], messages)
        assert messages == [b"z" * size], cut
        assert "buffered=0" in repr(reader)


def test_a_split_control_frame_is_answered_by_the_read_that_completes_it() -> None:
    wire = server_frame(OP_PING, b"p" * 100)
    for cut in (1, 2, 50, len(wire) - 1):
        reader = FrameReader(1 << 20)
        assert reader.feed(wire[:cut], []) == []
        assert reader.feed(wire[cut:], []) == [Ping(b"p" * 100)], cut
