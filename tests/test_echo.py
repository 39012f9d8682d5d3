"""Tests for the conformance-style echo backend, over real sockets."""

from __future__ import annotations

import http.client
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
    EchoIdentity,
    EchoServer,
    go_canonical_header,
    parse_go_duration,
    parse_set_header,
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
