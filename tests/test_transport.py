"""transport: Retry-After parsing, and connect()/receive_text()/read_frames() against a tiny
aiohttp server on 127.0.0.1 (port 0) that refuses handshakes or scripts frames and drops, and
against raw TCP servers that answer what no WebSocket server library would send."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import trustme
from aiohttp import web

from polyfeed.aio import transport as transport_module
from polyfeed.aio.transport import USER_AGENT, SocketTransport, connect, parse_retry_after
from polyfeed.core.websocket import accept_key
from polyfeed.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    ConnectionClosedError,
    HandshakeRejectedError,
    ServerUnavailableError,
)

CLOSED_WITH = web.AppKey("closed_with", list)
Server = tuple[str, web.Application]  # the `server` fixture: base ws:// URL, the app
NOW = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT


# ---------------------------------------------------------------- parse_retry_after


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:20:00 GMT", 0.0),  # a date in the past: retry now
        ("Wed, 21 Oct 2015 07:29:00 -0000", 60.0),  # no zone info: UTC, not local time
        ("Wed, 21 Oct 2015 09:29:00 +0200", 60.0),
    ],
)
def test_parse_retry_after_valid(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now_wall=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "garbage", "3 seconds", "0x10", "-5", "-0.5", "inf", "nan", "1e400",
     "Infinity", "Wed, 99 Oct 2015", "\u0661\u0662"],
)  # fmt: skip
def test_parse_retry_after_rejects_garbage_negative_and_non_finite(value: str | None) -> None:
    # An infinite Retry-After would park the reconnect loop for ever (backoff honours it
    # beyond max_delay), so anything but plain delta-seconds or an HTTP date is ignored.
    assert parse_retry_after(value, now_wall=NOW) is None


def test_parse_retry_after_zoneless_date_is_utc_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "XYZ+05")  # POSIX: five hours behind UTC, no tzdata needed
    time.tzset()
    try:
        assert parse_retry_after("Wed, 21 Oct 2015 07:29:00 -0000", now_wall=NOW) == 60.0
    finally:
        monkeypatch.undo()
        time.tzset()


def test_parse_retry_after_date_uses_the_wall_clock_by_default() -> None:
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    seconds = parse_retry_after(in_a_minute)
    assert seconds is not None
    assert 55.0 <= seconds <= 61.0
    assert math.isfinite(seconds)


# ---------------------------------------------------------------- a tiny server


async def ws_handler(request: web.Request) -> web.StreamResponse:
    mode = request.match_info["mode"]
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    match mode:
        case "frames":
            await ws.send_str("hello")
            await ws.send_bytes("h\u00e9llo \u2713".encode())
            await ws.send_bytes(b"\xff bad utf-8")
            await ws.close(code=4001, message=b"go away")
        case "close1000":
            await ws.close(code=1000, message=b"")
        case "abort":
            await ws.send_str("last words")
            await asyncio.sleep(0.01)
            assert request.transport is not None
            request.transport.abort()
        case "tcp_close":
            await ws.send_str("last words")
            await asyncio.sleep(0.01)
            assert request.transport is not None
            request.transport.close()
        case "big":
            await ws.send_str("x" * 4096)
            await asyncio.sleep(0.5)
        case "echo":
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await ws.send_str(f"echo:{msg.data}")
            request.app[CLOSED_WITH].append(ws.close_code)
        case _:
            await ws.close(code=1011)
    return ws


async def status_handler(request: web.Request) -> web.StreamResponse:
    status = int(request.match_info["status"])
    headers = {}
    if "retry_after" in request.query:
        headers["Retry-After"] = request.query["retry_after"]
    return web.Response(status=status, headers=headers, text="no")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    app = web.Application()
    app[CLOSED_WITH] = []
    app.router.add_get("/ws/{mode}", ws_handler)
    app.router.add_get("/status/{status}", status_handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sockets = site._server.sockets  # type: ignore[union-attr]
    port = sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()


def text(frame: str | bytes) -> str:
    """A received frame as text: the transport may hand over raw UTF-8 bytes (the decoder reads
    them directly) or ``str``; either way the content must be what the server sent."""
    return frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame


async def receive(transport: SocketTransport) -> str:
    return text(await asyncio.wait_for(transport.receive_text(), 2.0))


async def open_ws(
    url: str,
    *,
    connect_timeout: float = 2.0,
    max_frame_bytes: int = 1 << 20,
    auth_attempt: int = 1,
) -> SocketTransport:
    return await connect(
        url,
        connect_timeout=connect_timeout,
        max_frame_bytes=max_frame_bytes,
        auth_attempt=auth_attempt,
    )


# ---------------------------------------------------------------- handshake errors


@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_are_authentication_errors(server: Server, status: int) -> None:
    base, _ = server
    with pytest.raises(AuthenticationError) as caught:
        await open_ws(f"{base}/status/{status}", auth_attempt=2)
    assert caught.value.status == status
    assert caught.value.attempts == 2
    assert not caught.value.transient


async def test_404_is_a_rejected_handshake(server: Server) -> None:
    base, _ = server
    with pytest.raises(HandshakeRejectedError) as caught:
        await open_ws(f"{base}/status/404")
    assert caught.value.status == 404
    assert caught.value.url == f"{base}/status/404"
    assert not caught.value.transient


async def test_429_with_retry_after_is_server_unavailable(
    server: Server,
) -> None:
    base, _ = server
    with pytest.raises(ServerUnavailableError) as caught:
        await open_ws(f"{base}/status/429?retry_after=3")
    assert caught.value.status == 429
    assert caught.value.retry_after == 3.0
    assert caught.value.transient


@pytest.mark.parametrize(("status", "header"), [(503, None), (500, "garbage"), (502, "inf")])
async def test_5xx_is_server_unavailable(server: Server, status: int, header: str | None) -> None:
    base, _ = server
    query = f"?retry_after={header}" if header else ""
    with pytest.raises(ServerUnavailableError) as caught:
        await open_ws(f"{base}/status/{status}{query}")
    assert caught.value.status == status
    assert caught.value.retry_after is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_port_is_a_connect_error() -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws/market"
    with pytest.raises(ConnectError) as caught:
        await open_ws(url)
    assert caught.value.url == url
    assert caught.value.transient


async def test_a_server_that_never_answers_the_handshake_times_out_as_connect_error() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectError):
            await open_ws(f"ws://127.0.0.1:{port}/ws/market", connect_timeout=0.1)
    finally:
        for writer in accepted:
            writer.close()
        tcp.close()
        await tcp.wait_closed()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/ws/market", "https://x/ws", "127.0.0.1:80", "", "ws://", "ws://[::1"],
)
async def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        await open_ws(url)


# ---------------------------------------------------------------- frames and endings


async def test_receive_text_delivers_text_and_binary_frames_and_maps_the_close_code(
    server: Server,
) -> None:
    base, _ = server
    transport = await open_ws(f"{base}/ws/frames")
    try:
        assert await receive(transport) == "hello"
        assert await receive(transport) == "h\u00e9llo \u2713"
        assert await receive(transport) == "\ufffd bad utf-8"
        with pytest.raises(ConnectionClosedError) as caught:
            await transport.receive_text()
        assert caught.value.code == 4001
        assert caught.value.reason == "go away"
    finally:
        await transport.release()


async def test_normal_close_keeps_code_1000(server: Server) -> None:
    base, _ = server
    transport = await open_ws(f"{base}/ws/close1000")
    try:
        with pytest.raises(ConnectionClosedError) as caught:
            await transport.receive_text()
        assert caught.value.code == 1000
    finally:
        await transport.release()


@pytest.mark.parametrize("mode", ["abort", "tcp_close"])
async def test_tcp_drop_without_close_frame_has_no_code(server: Server, mode: str) -> None:
    base, _ = server
    transport = await open_ws(f"{base}/ws/{mode}")
    try:
        assert await receive(transport) == "last words"
        with pytest.raises(ConnectionClosedError) as caught:
            await asyncio.wait_for(transport.receive_text(), 2.0)
        assert caught.value.code is None
    finally:
        await transport.release()


async def test_frame_over_the_size_limit_closes_with_1009(
    server: Server,
) -> None:
    base, _ = server
    transport = await open_ws(f"{base}/ws/big", max_frame_bytes=1024)
    try:
        with pytest.raises(ConnectionClosedError) as caught:
            await asyncio.wait_for(transport.receive_text(), 2.0)
        assert caught.value.code == 1009
    finally:
        await transport.release()


async def test_send_receive_and_polite_close(server: Server) -> None:
    base, app = server
    # The scheme is case-insensitive, like every URL scheme.
    transport = await open_ws(f"{base}/ws/echo".replace("ws://", "WS://"))
    try:
        assert "open" in repr(transport)
        assert "<_ClientProtocol open inbox=0 close_sent=False" in repr(transport._protocol)
        await transport.send_text("PING")
        assert await receive(transport) == "echo:PING"
        await transport.close(0.5)
        assert "closed" in repr(transport)
        for _ in range(50):
            if app[CLOSED_WITH]:
                break
            await asyncio.sleep(0.01)
        assert app[CLOSED_WITH] == [1000]
    finally:
        await transport.release()  # idempotent after close


async def test_abort_ends_the_socket_and_sending_after_it_fails(
    server: Server,
) -> None:
    base, _ = server
    transport = await open_ws(f"{base}/ws/echo")
    try:
        transport.abort()
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(transport.receive_text(), 2.0)
        with pytest.raises(ConnectionClosedError):
            await transport.send_text("PING")
    finally:
        await transport.release()
        await transport.release()


async def wait_for_server_close(app: web.Application) -> list[int | None]:
    for _ in range(100):
        if app[CLOSED_WITH]:
            break
        await asyncio.sleep(0.01)
    closed_with: list[int | None] = app[CLOSED_WITH]
    return closed_with


async def test_abort_drops_tcp_without_a_close_frame(server: Server) -> None:
    base, app = server
    transport = await open_ws(f"{base}/ws/echo")
    try:
        await transport.send_text("PING")
        assert await receive(transport) == "echo:PING"
        transport.abort()
        # The server saw the TCP connection end, not a close handshake (that would be 1000).
        assert await wait_for_server_close(app) == [1006]
    finally:
        await transport.release()


async def test_read_frames_takes_what_came_before_and_every_frame_after_until_the_end(
    server: Server,
) -> None:
    base, _ = server
    transport = await open_ws(f"{base}/ws/frames")
    sink: list[str | bytes] = []
    firsts: list[int] = []
    try:
        # The frames may already sit in the inbox (aiohttp's server sends at once): they move
        # to the sink in order, and the first frame into the empty sink is announced once.
        with pytest.raises(ConnectionClosedError) as caught:
            await asyncio.wait_for(
                transport.read_frames(sink, lambda: firsts.append(len(sink))), 2.0
            )
        assert [text(frame) for frame in sink] == ["hello", "h\u00e9llo \u2713", "\ufffd bad utf-8"]
        assert firsts[:1] == [1] or firsts[:1] == [3]
        assert caught.value.code == 4001
        assert caught.value.reason == "go away"
    finally:
        await transport.release()


# ---------------------------------------------------------------- TLS and raw servers


async def test_wss_connects_over_tls_checking_the_certificate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    app = web.Application()
    app[CLOSED_WITH] = []
    app.router.add_get("/ws/{mode}", ws_handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"wss://127.0.0.1:{port}/ws/echo"
    try:
        # The system's CAs do not know this test authority: the certificate is checked.
        with pytest.raises(ConnectError):
            await open_ws(url)
        client_context = ssl.create_default_context()
        authority.configure_trust(client_context)
        monkeypatch.setattr(transport_module, "_tls_context", lambda: client_context)
        transport = await open_ws(url)
        try:
            await transport.send_text("PING")
            assert await receive(transport) == "echo:PING"
        finally:
            await transport.close(0.5)
    finally:
        await runner.cleanup()


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 that runs ``handler`` per connection; yields its ws:// base."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    tcp = await asyncio.start_server(run, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        tcp.close()
        await tcp.wait_closed()


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Answer a client's opening handshake with a valid 101; returns the request's head."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
    )
    return head


def unmasked(frame: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of one masked client frame with a short payload."""
    length = frame[1] & 0x7F
    mask = frame[2:6]
    payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(frame[6 : 6 + length]))
    return frame[0] & 0x0F, payload


@contextlib.asynccontextmanager
async def raw_socket(handler: RawHandler) -> AsyncIterator[SocketTransport]:
    """A client socket to a ``raw_server`` running ``handler``; released at the end."""
    async with raw_server(handler) as base:
        transport = await open_ws(f"{base}/x")
        try:
            yield transport
        finally:
            await transport.release()


async def read_until_closed(
    transport: SocketTransport,
) -> tuple[list[str | bytes], ConnectionClosedError]:
    """Every frame ``read_frames`` hands on, and the error it ends with."""
    sink: list[str | bytes] = []
    with pytest.raises(ConnectionClosedError) as caught:
        await asyncio.wait_for(transport.read_frames(sink, lambda: None), 2.0)
    return sink, caught.value


async def test_a_server_ping_is_answered_with_its_payload_and_frames_of_the_101_read_kept() -> None:
    answers: list[tuple[int, bytes]] = []

    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await accept(reader, writer))
        # A frame in the same write as the 101, then a ping: the client answers the ping.
        writer.write(b"\x81\x05first\x89\x04beat")
        await writer.drain()
        answers.append(unmasked(await reader.readexactly(2 + 4 + 4)))
        writer.write(b"\x81\x06second\x88\x02\x03\xe8")
        await writer.drain()
        answers.append(unmasked(await reader.readexactly(2 + 4 + 2)))

    async with raw_socket(handler) as transport:
        sink, ended = await read_until_closed(transport)
        assert sink == [b"first", b"second"]
        assert ended.code == 1000
        assert answers == [(0xA, b"beat"), (0x8, b"\x03\xe8")]  # pong, then the close echo
    request = heads[0].decode("latin-1").split("\r\n")
    assert request[0] == "GET /x HTTP/1.1"
    assert f"User-Agent: {USER_AGENT}" in request
    assert USER_AGENT.startswith("polyfeed/")


@pytest.mark.parametrize(
    "answer",
    [
        b"this is not http\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: wrong\r\n\r\n",
        b"HTTP/1.1 101 Switching",  # then the server hangs up mid-head
    ],
)
async def test_a_broken_handshake_answer_is_a_connect_error(answer: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()

    async with raw_server(handler) as base:
        with pytest.raises(ConnectError):
            await open_ws(f"{base}/x")


async def test_a_protocol_violation_closes_with_1002_and_ends_the_socket() -> None:
    answers: list[tuple[int, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        writer.write(b"\x81\x02ok\xc1\x02no")  # the second frame sets a reserved bit
        await writer.drain()
        answers.append(unmasked(await reader.readexactly(2 + 4 + 2)))

    async with raw_socket(handler) as transport:
        sink, ended = await read_until_closed(transport)
        assert sink == [b"ok"]
        assert ended.code == 1002
        assert answers == [(0x8, b"\x03\xea")]
        with pytest.raises(ConnectionClosedError):
            await transport.send_text("PING")
