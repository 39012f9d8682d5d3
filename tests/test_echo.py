"""Tests for the conformance-style echo backend, over real sockets."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from wardgate.verify.echo import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WS_MAX_MESSAGE,
    EchoIdentity,
    EchoServer,
    WebSocketProtocolError,
    WebSocketReader,
    encode_ws_frame,
    go_canonical_header,
    parse_go_duration,
    parse_set_header,
    parse_ws_close,
    websocket_accept,
    ws_close_payload,
    ws_mask,
)

IDENTITY = EchoIdentity(namespace="gateway-conformance-infra", pod="infra-backend-v1-abc", service="svc")


@pytest.fixture
def logged() -> list[str]:
    return []


@pytest.fixture
def echo(logged: list[str]) -> Iterator[EchoServer]:
    server = EchoServer("127.0.0.1", 0, IDENTITY, log=logged.append).start()
    try:
        yield server
    finally:
        server.stop()


def _get(
    server: EchoServer, path: str, headers: list[tuple[str, str]] | None = None, method: str = "GET"
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        # putrequest/putheader send names and the target verbatim (no case or path normalisation).
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers or []:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


def _raw_exchange(sock: socket.socket, request: bytes, method: str = "GET") -> tuple[int, Any, bytes]:
    sock.sendall(request)
    resp = http.client.HTTPResponse(sock, method=method)
    resp.begin()
    return resp.status, resp.headers, resp.read()


def test_echo_fields_raw_path_and_canonical_headers(echo: EchoServer, logged: list[str]) -> None:
    resp, body = _get(
        echo,
        "//a/b?x=1",
        [("x-foo-bar", "1"), ("X-Multi", "a"), ("x-multi", "b"), ("X-Echo-Set-Header", "")],
    )
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    assert resp.getheader("X-Content-Type-Options") == "nosniff"
    data = json.loads(body)
    assert data["path"] == "//a/b?x=1"
    assert data["host"] == f"127.0.0.1:{echo.port}"
    assert data["method"] == "GET"
    assert data["proto"] == "HTTP/1.1"
    assert data["httpPort"] == str(echo.port)
    assert (data["namespace"], data["pod"], data["service"], data["ingress"]) == (
        "gateway-conformance-infra",
        "infra-backend-v1-abc",
        "svc",
        "",
    )
    assert data["headers"]["X-Foo-Bar"] == ["1"]
    assert data["headers"]["X-Multi"] == ["a", "b"]
    assert data["headers"]["X-Echo-Set-Header"] == [""]
    assert "Host" not in data["headers"]
    assert "tls" not in data
    assert data["bodyLength"] == 0
    assert logged == ["Echoing back request made to //a/b?x=1 to client"]
    assert echo.seen_paths == ["//a/b?x=1"]


def test_go_canonical_header_names() -> None:
    assert go_canonical_header("x-foo-bar") == "X-Foo-Bar"
    assert go_canonical_header("CONTENT-TYPE") == "Content-Type"
    assert go_canonical_header("x--y") == "X--Y"
    assert go_canonical_header("bad header") == "bad header"  # Go leaves invalid names alone


def test_set_header_parsing() -> None:
    assert parse_set_header("") == []
    assert parse_set_header("X-Header-Set:foo, my-Case: v ,x-header-set:bar") == [
        ("X-Header-Set", "foo,bar"),
        ("my-Case", "v"),
    ]
    assert parse_set_header("Content-Length:5,Connection:close,nocolon") == []


def test_echo_set_header_response(echo: EchoServer) -> None:
    resp, _ = _get(echo, "/", [("X-Echo-Set-Header", "X-Header-Set:foo,x-dup:1,X-DUP:2,my-Case:v")])
    names = dict(resp.getheaders())
    assert names["X-Header-Set"] == "foo"
    assert names["x-dup"] == "1,2"
    assert names["my-Case"] == "v"
    assert names["X-Content-Type-Options"] == "nosniff"

    resp, _ = _get(echo, "/", [("X-Echo-Set-Header", "")])
    assert {n.lower() for n, _ in resp.getheaders()} == {
        "date",
        "content-type",
        "x-content-type-options",
        "content-length",
    }


def test_status_health_and_head(echo: EchoServer) -> None:
    resp, body = _get(echo, "/status/418")
    assert (resp.status, body, resp.getheader("Content-Length")) == (418, b"", "0")
    resp, body = _get(echo, "/status/204")
    assert (resp.status, body, resp.getheader("Content-Length")) == (204, b"", None)
    resp, body = _get(echo, "/status/abc")
    assert resp.status == 400
    resp, body = _get(echo, "/health")
    assert (resp.status, body) == (200, b"OK")
    resp, body = _get(echo, "/x", method="HEAD")
    assert resp.status == 200 and body == b"" and int(resp.getheader("Content-Length") or 0) > 0


def test_go_durations() -> None:
    assert parse_go_duration("1s") == 1.0
    assert parse_go_duration("500ms") == pytest.approx(0.5)
    assert parse_go_duration("1.5s") == 1.5
    assert parse_go_duration("1m30s") == 90.0
    assert parse_go_duration("0") == 0.0
    assert parse_go_duration("-2h") == -7200.0
    for bad in ("", "1", "s", "1x", "1.5", "+"):
        with pytest.raises(ValueError):
            parse_go_duration(bad)


def test_delay(echo: EchoServer) -> None:
    start = time.monotonic()
    resp, body = _get(echo, "/slow?delay=200ms")
    elapsed = time.monotonic() - start
    assert resp.status == 200 and json.loads(body)["path"] == "/slow?delay=200ms"
    assert elapsed >= 0.2
    resp, _ = _get(echo, "/slow?delay=soon")
    assert resp.status == 400


def test_keep_alive_two_requests_one_connection(echo: EchoServer) -> None:
    conn = http.client.HTTPConnection(echo.host, echo.port, timeout=5)
    try:
        conn.request("GET", "/one")
        first = conn.getresponse()
        assert json.loads(first.read())["path"] == "/one"
        sock = conn.sock
        assert sock is not None
        conn.request("GET", "/two")
        second = conn.getresponse()
        assert json.loads(second.read())["path"] == "/two"
        assert conn.sock is sock  # reused, not reconnected
        assert echo.connections_accepted == 1
    finally:
        conn.close()


def test_pipelined_and_connection_close(echo: EchoServer) -> None:
    with socket.create_connection((echo.host, echo.port), timeout=5) as sock:
        sock.sendall(
            b"GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
        )
        received = b""
        while chunk := sock.recv(65536):  # ends only because the server closes after Connection: close
            received += chunk
    first, second = received.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert b'"path": "/p1"' in first and b"Connection:" not in first
    assert b'"path": "/p2"' in second and b"Connection: close\r\n" in second


def test_large_post_body(echo: EchoServer) -> None:
    payload = os.urandom(2 * 1024 * 1024)
    conn = http.client.HTTPConnection(echo.host, echo.port, timeout=10)
    try:
        conn.request("POST", "/upload", body=payload)
        data = json.loads(conn.getresponse().read())
        assert data["method"] == "POST"
        assert data["bodyLength"] == len(payload)
        assert data["headers"]["Content-Length"] == [str(len(payload))]

        # Chunked upload on the same connection: body must be consumed so the next request parses.
        chunks = (payload[i : i + 300_000] for i in range(0, len(payload), 300_000))
        conn.request("PUT", "/chunked", body=chunks, encode_chunked=True)
        data = json.loads(conn.getresponse().read())
        assert data["bodyLength"] == len(payload)
        assert "Transfer-Encoding" not in data["headers"]
    finally:
        conn.close()


def test_expect_100_continue(echo: EchoServer) -> None:
    with socket.create_connection((echo.host, echo.port), timeout=5) as sock:
        sock.sendall(b"POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        interim = sock.recv(64)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        status, _, body = _raw_exchange(sock, b"abc")
        assert status == 200 and json.loads(body)["bodyLength"] == 3


def test_malformed_requests_get_400(echo: EchoServer) -> None:
    for request in (
        b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ):
        with socket.create_connection((echo.host, echo.port), timeout=5) as sock:
            status, headers, _ = _raw_exchange(sock, request)
            assert status == 400, request
            assert headers["Connection"] == "close"


def test_retry_fails_first_attempts(echo: EchoServer) -> None:
    path = "/retry/x?responseCode=503&succeedAfter=2&uuid=u-1"
    assert [_get(echo, path)[0].status for _ in range(3)] == [503, 503, 200]
    assert _get(echo, "/retry/x?succeedAfter=1&uuid=u-2")[0].status == 500
    assert _get(echo, "/retry/x?succeedAfter=1&uuid=u-2")[0].status == 200


def test_concurrent_requests_and_loopback_alias() -> None:
    server = EchoServer("127.0.10.3", 0, EchoIdentity(pod="web-1"), log=lambda _line: None).start()
    try:
        assert server.host == "127.0.10.3" and server.port > 0
        results: list[str] = []
        lock = threading.Lock()

        def worker(i: int) -> None:
            conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
            for j in range(10):
                conn.request("GET", f"/c/{i}/{j}")
                pod = json.loads(conn.getresponse().read())["pod"]
                with lock:
                    results.append(pod)
            conn.close()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["web-1"] * 200
        assert len(server.seen_paths) == 200
    finally:
        server.stop()


def test_stop_closes_keep_alive_connections() -> None:
    server = EchoServer("127.0.0.1", 0, IDENTITY, log=lambda _line: None).start()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("GET", "/")
    conn.getresponse().read()
    server.stop()
    with pytest.raises(OSError):
        conn.request("GET", "/again")
        conn.getresponse()
    conn.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_request(port: int, ctx: ssl.SSLContext, sni: str) -> dict[str, Any]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as sock,
    ):
        status, _, body = _raw_exchange(sock, f"GET /tls HTTP/1.1\r\nHost: {sni}\r\n\r\n".encode())
        assert status == 200
        result: dict[str, Any] = json.loads(body)
        return result


def test_tls_reports_server_name(ca: trustme.CA, tmp_path: Path) -> None:
    cert = ca.issue_cert("echo.example.test")
    certfile = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    server = EchoServer("127.0.0.1", 0, IDENTITY, certfile=str(certfile), log=lambda _line: None).start()
    try:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        ctx.set_alpn_protocols(["http/1.1"])
        data = _tls_request(server.port, ctx, "echo.example.test")
        tls = data["tls"]
        assert tls["serverName"] == "echo.example.test"
        assert tls["version"].startswith("TLS 1.")
        assert tls["negotiatedProtocol"] == "http/1.1"
        assert tls["cipherSuite"]
        assert tls["peerCertificates"] == []
        assert data["host"] == "echo.example.test"
    finally:
        server.stop()


def test_mutual_tls(ca: trustme.CA, tmp_path: Path) -> None:
    cert = ca.issue_cert("echo.example.test")
    certfile, cafile = tmp_path / "server.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    ca.cert_pem.write_to_path(str(cafile))
    server = EchoServer(
        "127.0.0.1", 0, IDENTITY, certfile=str(certfile), client_ca=str(cafile), log=lambda _line: None
    ).start()
    try:
        client = ca.issue_cert("client.example.test")
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        client.configure_cert(ctx)
        data = _tls_request(server.port, ctx, "echo.example.test")
        assert data["tls"]["peerCertificates"] == [client.cert_chain_pems[0].bytes().decode()]

        anonymous = ssl.create_default_context()
        ca.configure_trust(anonymous)
        with pytest.raises(OSError):  # TLS 1.3 reports the missing cert on the first read
            _tls_request(server.port, anonymous, "echo.example.test")
    finally:
        server.stop()


def test_main_runs_until_sigterm() -> None:
    args = ["--port", "0", "--namespace", "default", "--pod", "web-1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "wardgate.verify.echo", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert "listening on http://127.0.0.1:" in banner
        port = int(banner.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/m?q=1")
        data = json.loads(conn.getresponse().read())
        conn.close()
        assert (data["namespace"], data["pod"], data["path"]) == ("default", "web-1", "/m?q=1")
        assert proc.stderr.readline().strip() == "Echoing back request made to /m?q=1 to client"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------- WebSocket (/ws)

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3: the sample key and its accept value
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
MASK = bytes.fromhex("37fa213d")  # the masking key of the RFC 6455 §5.7 examples


def _handshake(key: str = RFC_KEY, extra: str = "", target: str = "/ws") -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: echo.test\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


class _WsPeer:
    """The client side, frame by frame: raw sends, and events read with the module's own reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fp = sock.makefile("rb")
        sock.sendall(_handshake())
        status = self.fp.readline()
        headers = http.client.parse_headers(self.fp)
        assert status.startswith(b"HTTP/1.1 101 "), status
        assert headers["Sec-WebSocket-Accept"] == RFC_ACCEPT
        self.reader = WebSocketReader(self.fp.read, masked=False, max_message=4 * WS_MAX_MESSAGE)

    def send(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        self.sock.sendall(encode_ws_frame(opcode, payload, fin=fin, mask_key=os.urandom(4)))

    def event(self) -> tuple[int, bytes] | None:
        return self.reader.next_event()

    def echo(self, opcode: int, payload: bytes) -> None:
        self.send(opcode, payload)
        assert self.event() == (opcode, payload)

    def expect_close(self, code: int) -> str:
        """The server's close frame carries ``code``; the server then closes the connection."""
        event = self.event()
        assert event is not None and event[0] == OP_CLOSE, event
        got, reason = parse_ws_close(event[1])
        assert got == code, (got, reason)
        assert self.fp.read(1) == b""
        return reason

    def close(self) -> None:
        self.fp.close()
        self.sock.close()


@pytest.fixture
def ws(echo: EchoServer) -> Iterator[_WsPeer]:
    peer = _WsPeer(socket.create_connection((echo.host, echo.port), timeout=5))
    try:
        yield peer
    finally:
        peer.close()


def test_websocket_codec_matches_the_rfc_examples() -> None:
    assert websocket_accept(RFC_KEY) == RFC_ACCEPT
    hello = b"Hello"
    # RFC 6455 §5.7, byte for byte.
    assert encode_ws_frame(OP_TEXT, hello) == bytes.fromhex("810548656c6c6f")
    assert encode_ws_frame(OP_TEXT, hello, mask_key=MASK) == bytes.fromhex("818537fa213d7f9f4d5158")
    assert encode_ws_frame(OP_TEXT, b"Hel", fin=False) == bytes.fromhex("010348656c")
    assert encode_ws_frame(OP_CONTINUATION, b"lo") == bytes.fromhex("80026c6f")
    assert encode_ws_frame(OP_PING, hello) == bytes.fromhex("890548656c6c6f")
    assert encode_ws_frame(OP_PONG, hello, mask_key=MASK) == bytes.fromhex("8a8537fa213d7f9f4d5158")
    assert encode_ws_frame(OP_BINARY, bytes(256))[:4] == bytes.fromhex("827e0100")
    assert encode_ws_frame(OP_BINARY, bytes(65536))[:10] == bytes.fromhex("827f0000000000010000")
    # Length boundaries: 7-bit up to 125, 16-bit from 126 up to 65535, 64-bit from 65536.
    for n, header_len in ((125, 2), (126, 4), (65535, 4), (65536, 10)):
        assert len(encode_ws_frame(OP_BINARY, bytes(n))) == n + header_len
    data = os.urandom(70_001)
    assert ws_mask(ws_mask(data, MASK), MASK) == data
    assert ws_mask(b"", MASK) == b""

    # A fragmented text message with a ping between its fragments, then a 16-bit and a 64-bit binary.
    big = os.urandom(70_000)
    stream = io.BytesIO(
        bytes.fromhex("010348656c") + bytes.fromhex("890548656c6c6f") + bytes.fromhex("80026c6f")
        + encode_ws_frame(OP_BINARY, big[:300]) + encode_ws_frame(OP_BINARY, big)
    )
    reader = WebSocketReader(stream.read, masked=False)
    assert reader.next_event() == (OP_PING, hello)
    assert reader.next_event() == (OP_TEXT, hello)
    assert reader.next_event() == (OP_BINARY, big[:300])
    assert reader.next_event() == (OP_BINARY, big)
    assert reader.next_event() is None
    masked = WebSocketReader(io.BytesIO(bytes.fromhex("818537fa213d7f9f4d5158")).read, masked=True)
    assert masked.next_event() == (OP_TEXT, hello)
    with pytest.raises(EOFError):  # truncated in the middle of a frame
        WebSocketReader(io.BytesIO(bytes.fromhex("8105486565")).read, masked=False).next_event()

    assert parse_ws_close(b"") == (None, "")
    assert parse_ws_close(ws_close_payload(1000, "bye")) == (1000, "bye")
    assert parse_ws_close(ws_close_payload(4321)) == (4321, "")
    # The reason is cut to fit a control frame without splitting a character.
    long_reason = ws_close_payload(1001, "é" * 100)
    assert len(long_reason) <= 125 and parse_ws_close(long_reason)[1] == "é" * 61
    for payload, code in ((b"\x03", 1002), (b"\x03\xed", 1002), (b"\x03\xee", 1002), (b"\x07\xd0", 1002),
                          (b"\x03\xe8\xff", 1007)):
        with pytest.raises(WebSocketProtocolError) as exc:
            parse_ws_close(payload)
        assert exc.value.code == code, payload


def test_websocket_raw_handshake_echo_and_close(echo: EchoServer, logged: list[str]) -> None:
    with socket.create_connection((echo.host, echo.port), timeout=5) as sock:
        # The RFC's masked "Hello" right behind the handshake, in the same segment.
        sock.sendall(_handshake() + bytes.fromhex("818537fa213d7f9f4d5158"))
        fp = sock.makefile("rb")
        assert fp.readline() == b"HTTP/1.1 101 Switching Protocols\r\n"
        headers = http.client.parse_headers(fp)
        assert headers["Upgrade"] == "websocket"
        assert headers["Connection"] == "Upgrade"
        assert headers["Sec-WebSocket-Accept"] == RFC_ACCEPT
        assert "Sec-WebSocket-Extensions" not in headers and "Content-Length" not in headers
        assert fp.read(7) == bytes.fromhex("810548656c6c6f")  # echoed unmasked
        sock.sendall(encode_ws_frame(OP_CLOSE, ws_close_payload(1000, "done"), mask_key=MASK))
        assert fp.read(4) == bytes.fromhex("880203e8")  # the same code back, then the server closes
        assert fp.read(1) == b""
        fp.close()
    assert "Echoing back request made to /ws to client" in logged


def test_websocket_echoes_every_length_fragments_and_pings(ws: _WsPeer) -> None:
    for n in (0, 1, 125, 126, 65535, 65536):
        ws.echo(OP_BINARY, os.urandom(n))
    ws.echo(OP_BINARY, os.urandom(70 * 1024))  # 70 KB: a 64-bit length
    ws.echo(OP_TEXT, "grüße, 世界 🎉".encode())
    ws.echo(OP_TEXT, ("x" * 300).encode())
    ws.echo(OP_TEXT, b"")

    ws.send(OP_PING, b"are you there")
    assert ws.event() == (OP_PONG, b"are you there")
    ws.send(OP_PONG, b"unsolicited")  # ignored
    ws.send(OP_PING, b"")
    assert ws.event() == (OP_PONG, b"")

    # Fragments come back as one message; the ping between them is answered first.
    text = "Hello wörld".encode()
    ws.send(OP_TEXT, text[:3], fin=False)
    ws.send(OP_PING, b"p")
    ws.send(OP_CONTINUATION, text[3:8], fin=False)  # ends inside the two bytes of "ö": fine across fragments
    ws.send(OP_CONTINUATION, text[8:])
    assert ws.event() == (OP_PONG, b"p")
    assert ws.event() == (OP_TEXT, text)

    # Exactly the limit is allowed, in fragments or in one frame.
    blob = os.urandom(WS_MAX_MESSAGE)
    for i in range(4):
        part = blob[i * len(blob) // 4 : (i + 1) * len(blob) // 4]
        ws.send(OP_BINARY if i == 0 else OP_CONTINUATION, part, fin=i == 3)
    assert ws.event() == (OP_BINARY, blob)
    ws.echo(OP_BINARY, blob)

    ws.send(OP_CLOSE, ws_close_payload(4000, "app close"))
    assert ws.expect_close(4000) == ""


def test_websocket_close_without_code_and_server_stop(echo: EchoServer, ws: _WsPeer) -> None:
    ws.send(OP_CLOSE, b"")
    event = ws.event()
    assert event == (OP_CLOSE, b"")
    assert ws.fp.read(1) == b""

    other = _WsPeer(socket.create_connection((echo.host, echo.port), timeout=5))
    try:
        other.echo(OP_TEXT, b"before stop")
        echo.stop()
        assert other.event() is None  # stop() ends open WebSocket connections too
    finally:
        other.close()


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        pytest.param([encode_ws_frame(OP_TEXT, b"unmasked")], 1002, id="unmasked"),
        pytest.param([bytes.fromhex("c180") + MASK], 1002, id="rsv1"),
        pytest.param([bytes.fromhex("8380") + MASK], 1002, id="reserved-opcode"),
        pytest.param([encode_ws_frame(OP_CONTINUATION, b"x", mask_key=MASK)], 1002, id="lone-continuation"),
        pytest.param([encode_ws_frame(OP_TEXT, b"a", fin=False, mask_key=MASK),
                      encode_ws_frame(OP_TEXT, b"b", mask_key=MASK)], 1002, id="interrupted-fragments"),
        pytest.param([encode_ws_frame(OP_PING, b"x", fin=False, mask_key=MASK)], 1002, id="fragmented-ping"),
        pytest.param([encode_ws_frame(OP_PING, bytes(126), mask_key=MASK)], 1002, id="long-ping"),
        pytest.param([bytes.fromhex("82ff8000000000000000") + MASK], 1002, id="64-bit-msb"),
        pytest.param([encode_ws_frame(OP_TEXT, b"\xff", mask_key=MASK)], 1007, id="bad-utf8"),
        pytest.param([encode_ws_frame(OP_TEXT, b"\xe2\x82", fin=False, mask_key=MASK),
                      encode_ws_frame(OP_CONTINUATION, b"(", mask_key=MASK)], 1007, id="bad-utf8-fragments"),
        pytest.param([encode_ws_frame(OP_TEXT, b"\xed\xa0\x80", mask_key=MASK)], 1007, id="surrogate"),
        pytest.param([encode_ws_frame(OP_CLOSE, b"\x03", mask_key=MASK)], 1002, id="close-1-byte"),
        pytest.param([encode_ws_frame(OP_CLOSE, b"\x03\xed", mask_key=MASK)], 1002, id="close-1005"),
        pytest.param([encode_ws_frame(OP_CLOSE, b"\x03\xe8\xc3", mask_key=MASK)], 1007, id="close-bad-reason"),
    ],
)
def test_websocket_protocol_errors_close_the_connection(ws: _WsPeer, frames: list[bytes], code: int) -> None:
    ws.echo(OP_TEXT, b"ok")
    ws.sock.sendall(b"".join(frames))
    reason = ws.expect_close(code)
    assert reason  # says what was wrong


def test_websocket_message_size_is_bounded(echo: EchoServer, ws: _WsPeer) -> None:
    # One frame over the limit: refused from its header, the rest is read and dropped, then 1009.
    ws.send(OP_BINARY, os.urandom(WS_MAX_MESSAGE + 1))
    assert ws.expect_close(1009) == "message too big"

    # The same reached by fragments.
    frag = _WsPeer(socket.create_connection((echo.host, echo.port), timeout=5))
    try:
        frag.send(OP_TEXT, b"a" * (WS_MAX_MESSAGE // 2 + 1), fin=False)
        frag.send(OP_CONTINUATION, b"a" * (WS_MAX_MESSAGE // 2))
        frag.expect_close(1009)
    finally:
        frag.close()


def test_websocket_handshake_rejections_keep_http_working(echo: EchoServer) -> None:
    base = "Host: echo.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    key = f"Sec-WebSocket-Key: {RFC_KEY}\r\n"
    cases: list[tuple[bytes, int, tuple[str, str] | None]] = [
        (f"POST /ws HTTP/1.1\r\n{base}{key}Content-Length: 0\r\n\r\n".encode(), 405, ("Allow", "GET")),
        (f"GET /ws HTTP/1.1\r\nHost: echo.test\r\n{key}\r\n".encode(), 426, ("Upgrade", "websocket")),
        (f"GET /ws HTTP/1.1\r\n{base.replace('Connection: Upgrade', 'Connection: keep-alive')}{key}\r\n".encode(),
         426, ("Upgrade", "websocket")),
        (f"GET /ws HTTP/1.1\r\n{base.replace(': 13', ': 8')}{key}\r\n".encode(), 426, ("Sec-WebSocket-Version", "13")),
        (f"GET /ws HTTP/1.1\r\n{base}\r\n".encode(), 400, None),
        (f"GET /ws HTTP/1.1\r\n{base}Sec-WebSocket-Key: c2hvcnQ=\r\n\r\n".encode(), 400, None),
        (f"GET /ws HTTP/1.1\r\n{base}{key}{key}\r\n".encode(), 400, None),
    ]
    with socket.create_connection((echo.host, echo.port), timeout=5) as sock:
        for request, status, header in cases:
            got, headers, body = _raw_exchange(sock, request)
            assert got == status, (request, body)
            if header is not None:
                assert headers[header[0]] == header[1]
        # Every refusal was an ordinary HTTP answer: the same connection still serves requests.
        got, _, body = _raw_exchange(sock, b"GET /after HTTP/1.1\r\nHost: echo.test\r\n\r\n")
        assert got == 200 and json.loads(body)["path"] == "/after"
    with socket.create_connection((echo.host, echo.port), timeout=5) as sock:
        got, _, _ = _raw_exchange(sock, _handshake().replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        assert got == 400


def test_websocket_over_tls(ca: trustme.CA, tmp_path: Path) -> None:
    cert = ca.issue_cert("echo.example.test")
    certfile = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    server = EchoServer("127.0.0.1", 0, IDENTITY, certfile=str(certfile), log=lambda _line: None).start()
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            peer = _WsPeer(ctx.wrap_socket(raw, server_hostname="echo.example.test"))
            try:
                peer.echo(OP_BINARY, os.urandom(70 * 1024))
                peer.send(OP_TEXT, b"\xc3", fin=True)  # invalid UTF-8: the failure path over TLS
                peer.expect_close(1007)
            finally:
                peer.close()
    finally:
        server.stop()
