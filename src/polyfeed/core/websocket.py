"""Sans-I/O WebSocket client framing (RFC 6455): the opening handshake and the frames.

No extension is offered (no permessage-deflate) and no subprotocol, so a server frame is a plain
header and payload. Why polyfeed frames its own sockets instead of using aiohttp's reader: at
Polymarket's burst rates aiohttp hands over every frame as a message tuple, queued in a second
tuple and fetched by one coroutine call each. On a process reading 50 full sockets at once that
put ~40,000 tracked objects in flight per loop turn, which the garbage collector promoted to its
oldest generation and then scanned with the whole heap (``benchmarks/README.md``, Pool). Here a
read's data frames become ``bytes`` slices appended to the caller's list (not tracked by the
collector), in one call per socket read.

The I/O layer feeds :class:`FrameReader` what the socket read and acts on the control events it
returns (answer a ping, reply to a close); :func:`encode_frame` builds the masked client frames.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final, NamedTuple

__all__ = [
    "ControlEvent",
    "MAX_CONTROL_PAYLOAD",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Close",
    "Failure",
    "FrameReader",
    "HandshakeError",
    "HandshakeResponse",
    "Ping",
    "accept_key",
    "check_upgrade",
    "close_payload",
    "encode_frame",
    "handshake_request",
    "parse_handshake_response",
]

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
MAX_CONTROL_PAYLOAD: Final = 125

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEADER_BYTES: Final = 64 * 1024
# Close codes a peer may send: RFC 6455 7.4.1 and IANA's registry (1012 service restart, 1013 try
# again later, 1014 bad gateway); 1004-1006 and 1015 are never on the wire.
_SENDABLE_CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


class HandshakeError(ValueError):
    """The server's handshake answer is not HTTP, or a 101 that is not a valid WebSocket one.

    Internal to the transport, which maps it to ``ConnectError``.
    """


class HandshakeResponse(NamedTuple):
    """The server's answer to the opening handshake (header names lowercased)."""

    status: int
    reason: str
    headers: dict[str, str]


class Ping(NamedTuple):
    """The server pinged: answer with a pong carrying ``payload``."""

    payload: bytes


class Close(NamedTuple):
    """The server sent a close frame (``code`` None when it carried none)."""

    code: int | None
    reason: str


class Failure(NamedTuple):
    """The server broke the protocol (or a frame is too large): close with ``code``, stop."""

    code: int
    reason: str


ControlEvent = Ping | Close | Failure


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``Sec-WebSocket-Key: key``."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def handshake_request(host: str, target: str, key: str, user_agent: str) -> bytes:
    """The opening handshake: a GET of ``target`` on ``host`` (``host[:port]``) asking to
    upgrade, with the client's random 16-byte ``key`` (base64). A ``User-Agent`` is sent because
    CDN bot filters in front of WebSocket servers may refuse requests without one."""
    return (
        f"GET {target} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"User-Agent: {user_agent}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode("ascii")


def parse_handshake_response(data: bytes) -> tuple[HandshakeResponse, int] | None:
    """The response head in ``data`` and where it ends; None while it is incomplete.

    Raises ``HandshakeError`` for a head that is not HTTP/1.1 or grows past 64 KiB.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > _MAX_HEADER_BYTES:
            raise HandshakeError("handshake response head larger than 64 KiB")
        return None
    head = data[:end].decode("latin-1")
    status_line, *lines = head.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HandshakeError(f"not an HTTP response: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HandshakeError(f"bad header line in handshake response: {line[:80]!r}")
        headers[name.lower()] = value.strip()
    reason = parts[2] if len(parts) == 3 else ""
    return HandshakeResponse(int(parts[1]), reason, headers), end + 4


def check_upgrade(response: HandshakeResponse, key: str) -> None:
    """Raise ``HandshakeError`` unless a 101 ``response`` accepts the upgrade for ``key``."""
    headers = response.headers
    if headers.get("upgrade", "").lower() != "websocket":
        raise HandshakeError("101 response without 'Upgrade: websocket'")
    if "upgrade" not in {
        token.strip().lower() for token in headers.get("connection", "").split(",")
    }:
        raise HandshakeError("101 response without 'Connection: Upgrade'")
    if headers.get("sec-websocket-accept") != accept_key(key):
        raise HandshakeError("101 response with a wrong Sec-WebSocket-Accept")
    if headers.get("sec-websocket-extensions"):
        raise HandshakeError("the server chose an extension that was not offered")


def encode_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """One final client frame: ``payload`` masked with the 4 random bytes ``mask``."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    if not length:
        return header + mask
    # XOR of the whole payload as one integer: C speed, no per-byte Python loop.
    repeated = (mask * (length // 4 + 1))[:length]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
    return header + mask + masked.to_bytes(length, "little")


def close_payload(code: int | None, reason: str = "") -> bytes:
    """The payload of a close frame (empty for no code); the reason is cut to fit 125 bytes."""
    if code is None:
        return b""
    return code.to_bytes(2, "big") + reason.encode("utf-8")[: MAX_CONTROL_PAYLOAD - 2]


class FrameReader:
    """Splits the bytes a server sends into messages and control events.

    :meth:`feed` appends each complete data message (text or binary, as ``bytes``, reassembled
    from fragments) to the caller's list and returns the control events in order. A server pong
    is dropped (polyfeed sends no protocol pings). After a ``Close`` or ``Failure`` the reader
    ignores anything more.
    """

    __slots__ = ("_fragments", "_fragments_size", "_need", "_partial", "done", "max_message_bytes")

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.done = False
        # Bytes of an incomplete frame, and how many it needs before parsing is worth trying.
        self._partial = bytearray()
        self._need = 0
        # A fragmented message in progress (None: none).
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0

    def __repr__(self) -> str:
        fragments = "none" if self._fragments is None else len(self._fragments)
        return (
            f"<FrameReader buffered={len(self._partial)} need={self._need} "
            f"fragments={fragments} done={self.done}>"
        )

    def feed(self, data: bytes, messages: list[bytes]) -> list[ControlEvent]:
        """Parse ``data`` (what one read returned); data messages go to ``messages``."""
        controls: list[ControlEvent] = []
        if self.done:
            return controls
        pos = 0
        partial = self._partial
        if partial:
            need = self._need
            if not need:
                # The last read ended inside a frame header (a few bytes): parse both as one.
                partial += data
                data = bytes(partial)
                partial.clear()
            elif len(partial) + len(data) < need:
                # A large frame arrives over many reads: parse it once all of it is here.
                partial += data
                return controls
            else:
                # Complete the pending frame with the bytes it lacks and parse it alone, then
                # the rest of this read where it lies: a read is never copied whole.
                pos = need - len(partial)
                partial += memoryview(data)[:pos]
                whole = bytes(partial)
                partial.clear()
                self._parse(whole, 0, messages, controls)
                if self.done:
                    return controls
        end = self._parse(data, pos, messages, controls)
        if end < len(data) and not self.done:
            partial += memoryview(data)[end:]
        return controls

    def _parse(
        self, data: bytes, pos: int, messages: list[bytes], controls: list[ControlEvent]
    ) -> int:
        """Parse the complete frames of ``data`` from ``pos``; where the first incomplete one
        starts (``_need``: its size, 0 while its header is incomplete)."""
        append = messages.append
        max_bytes = self.max_message_bytes
        fragmented = self._fragments is not None
        end = len(data)
        need = 0
        while end - pos >= 2:
            first = data[pos]
            length = data[pos + 1]
            if length < 126:
                start = pos + 2
            elif length == 126:
                start = pos + 4
                if start > end:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
            elif length == 127:
                start = pos + 10
                if start > end:
                    break
                length = int.from_bytes(data[pos + 2 : start], "big")
            else:
                # The mask bit: a server must never mask (RFC 6455 5.1).
                self._fail(controls, 1002, "masked frame from the server")
                return pos
            stop = start + length
            # 0x81 and 0x82: a final text or binary frame, no reserved bit: nearly every frame.
            if first in (0x81, 0x82) and not fragmented:
                if length > max_bytes:
                    self._fail(controls, 1009, f"message of {length} bytes")
                    return pos
                if stop > end:
                    need = stop - pos
                    break
                append(data[start:stop])
                pos = stop
                continue
            if stop > end:
                if length > max_bytes:
                    self._fail(controls, 1009, f"frame of {length} bytes")
                    return pos
                need = stop - pos
                break
            event = self._frame(first, data[start:stop], messages)
            pos = stop
            fragmented = self._fragments is not None
            if event is not None:
                controls.append(event)
                if type(event) is not Ping:
                    self.done = True
                    return pos
        self._need = need
        return pos

    def _fail(self, controls: list[ControlEvent], code: int, reason: str) -> None:
        self.done = True
        self._partial.clear()
        controls.append(Failure(code, reason))

    def _frame(self, first: int, payload: bytes, messages: list[bytes]) -> ControlEvent | None:
        """Any frame but a final unfragmented data frame with its payload."""
        if first & 0x70:
            return Failure(1002, "reserved bits set (no extension was negotiated)")
        fin = first & 0x80
        opcode = first & 0x0F
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > MAX_CONTROL_PAYLOAD:
                return Failure(1002, "fragmented or oversized control frame")
            if opcode == OP_PING:
                return Ping(payload)
            if opcode == OP_PONG:
                return None
            if opcode == OP_CLOSE:
                return _close_event(payload)
            return Failure(1002, f"reserved opcode {opcode:#x}")
        if opcode == OP_CONTINUATION:
            if self._fragments is None:
                return Failure(1002, "continuation frame without a message")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments is not None:
                return Failure(1002, "new message inside a fragmented one")
            self._fragments = []
            self._fragments_size = 0
        else:
            return Failure(1002, f"reserved opcode {opcode:#x}")
        self._fragments_size += len(payload)
        if self._fragments_size > self.max_message_bytes:
            return Failure(1009, f"message of more than {self.max_message_bytes} bytes")
        self._fragments.append(payload)
        if fin:
            messages.append(b"".join(self._fragments))
            self._fragments = None
            self._fragments_size = 0
        return None


def _close_event(payload: bytes) -> Close | Failure:
    if not payload:
        return Close(None, "")
    if len(payload) == 1:
        return Failure(1002, "close frame with a one-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if code not in _SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
        return Failure(1002, f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return Failure(1007, "close reason is not UTF-8")
    return Close(code, reason)
