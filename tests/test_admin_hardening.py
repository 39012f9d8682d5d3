"""The admin endpoints against whoever can reach them: slow and idle clients, foreign Host headers
(DNS rebinding); and nginx's logs, which hold request data, are not readable by others."""

from __future__ import annotations

import contextlib
import select
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from conftest import Backend, Gateway, request
from test_runner import gw
from wardgate.dataplane import AdminServer

pytestmark = pytest.mark.timeout(120)


@contextlib.contextmanager
def admin(**kwargs: object) -> Iterator[AdminServer]:
    with AdminServer("127.0.0.1", 0, lambda: {"objects": []}, lambda: ([], 0), **kwargs) as server:  # type: ignore[arg-type]
        yield server


def raw(server: AdminServer, head: bytes) -> bytes:
    """Send a request head, read the whole answer (the server closes: HTTP/1.0)."""
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(head)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def get(server: AdminServer, host: str | None, path: str = "/healthz") -> int:
    head = f"GET {path} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "") + "\r\n"
    return int(raw(server, head.encode()).split(b" ", 2)[1])


def closed_by_peer(sock: socket.socket) -> bool:
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(65536) == b""  # a 408-style answer would also end in EOF next
    except OSError:
        return True


def test_a_slow_client_is_cut_off_and_others_are_served_meanwhile() -> None:
    with admin() as server:  # the default read timeout, 5 s
        slow = socket.create_connection((server.host, server.port), timeout=5)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        cut_off = False
        served_meanwhile = False
        for _ in range(80):  # a byte every 0.25 s for 20 s, far longer than the timeout
            try:
                slow.sendall(b"a")
            except OSError:
                cut_off = True
                break
            if closed_by_peer(slow):
                cut_off = True
                break
            if not served_meanwhile:
                served_meanwhile = get(server, "localhost") == 200
            time.sleep(0.25)
        slow.close()
        assert served_meanwhile
        assert cut_off, "the server kept reading a request that never ended"


def test_idle_connections_beyond_the_cap_are_refused_without_threads() -> None:
    with admin() as server:  # at most 16 connections at once
        server.read_timeout_s = 60.0  # so the idle ones hold their slots throughout
        before = threading.active_count()
        idle = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(40)]
        try:
            refused = 0
            for s in idle:
                if select.select([s], [], [], 1.0)[0] and s.recv(4096).startswith(b"HTTP/1.0 503 "):
                    refused += 1
            assert refused == 24  # the first 16 hold the slots
            assert threading.active_count() <= before + 16
            assert get(server, "localhost") == 503  # refused at once, not queued behind them
        finally:
            for s in idle:
                s.close()
        # Closed idle connections give their slots back.
        deadline = time.monotonic() + 10
        while get(server, "localhost") != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get(server, "localhost") == 200


def test_foreign_host_headers_are_refused() -> None:
    with admin() as server:
        assert get(server, "evil.example") == 421
        assert get(server, f"evil.example:{server.port}", "/status") == 421
        assert get(server, "127.0.0.1.evil.example") == 421
        for host in (f"127.0.0.1:{server.port}", "localhost", f"LOCALHOST.:{server.port}", "[::1]:9901"):
            assert get(server, host, "/status") == 200, host
        assert get(server, None) == 200  # HTTP/1.0 without Host: no browser sends that
        assert raw(server, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n") \
            .startswith(b"HTTP/1.0 400 ")


def test_allowed_hosts_are_configurable() -> None:
    with admin(allowed_hosts=("metrics.internal",)) as server:
        assert get(server, "metrics.internal:9901", "/metrics") == 200
        assert get(server, "evil.example", "/metrics") == 421


WAF = """\
---
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {name: waf, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: gw}]
  waf: {mode: Block}
"""


def test_nginx_logs_are_not_readable_by_others(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    app = backends("app")
    gateway.write("gw.yaml", gw("gw", 8080), app.manifests(), WAF)
    logs = gateway.runner.state_dir / "gateways" / "default_gw" / "logs"
    logs.mkdir(parents=True)
    (logs / "access.log").write_text("")  # left by an older wardgate, 0644
    (logs / "access.log").chmod(0o644)
    gateway.reconcile()
    assert request(f"http://{gateway.address()}:8080/", host="example.com").status == 200
    assert request(f"http://{gateway.address()}:8080/?q=<script>alert(1)</script>", host="example.com").status == 403
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in logs.iterdir()}
    assert {"access.log", "error.log", "nginx.stderr", "waf-audit.log"} <= set(modes)
    assert all(mode == 0o640 for mode in modes.values()), {k: oct(v) for k, v in modes.items()}
