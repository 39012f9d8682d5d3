"""A raw HTTP/1.1 client for replaying requests exactly as written.

The request-target goes on the wire byte for byte (``//a``, ``/../``, ``%2e`` are never
normalised), the Host header may differ from where the connection goes (and carry a port), SNI is
the Host without its port, any certificate is accepted, redirects are never followed, and one
connection can carry several requests (keep-alive). Used by `wardgate verify migration` and
`wardgate diff`.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

TIMEOUT_S = 10.0


class ClientError(Exception):
    """The exchange failed below HTTP: connect, TLS, a reset before any response, a timeout."""


@dataclass(frozen=True)
class Endpoint:
    address: str  # an IP address or name to connect to
    port: int
    tls: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    elapsed_ms: float
    closed: bool  # the server ended the connection after this response

    def header(self, name: str) -> str | None:
        """All values of a header joined with ", " (RFC 9110 §5.3), or None when absent."""
        values = header_values(self.headers, name)
        return ", ".join(values) if values else None


def header_values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    lname = name.lower()
    return [v for n, v in headers if n.lower() == lname]


def server_name(host: str | None) -> str | None:
    """SNI for a Host header value: the name without its port; None for an IP address or no host."""
    if not host:
        return None
    name = host
    if name.startswith("["):
        return None  # an IPv6 literal: no SNI
    if name.count(":") == 1:
        name = name.partition(":")[0]
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name or None
    return None


_TLS: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    global _TLS
    if _TLS is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # The gateways under test serve self-signed and default certificates: what is compared is HTTP.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        _TLS = ctx
    return _TLS


def encode_request(method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes | None) -> bytes:
    """The request's bytes: the request-line as given, the headers in order, Content-Length for a body."""
    for part in (method, target):
        if not part or any(c in part for c in " \r\n\0"):
            raise ClientError(f"cannot send {part!r} in a request-line")
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers:
        if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
            raise ClientError(f"cannot send header {name!r}")
        lines.append(f"{name}: {value}")
    if body is not None and not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    return head + (body or b"")


class _Stale(Exception):
    pass


class Connection:
    """One client connection; ``send`` reconnects when the server closed the previous one."""

    def __init__(self, endpoint: Endpoint, sni: str | None = None, timeout_s: float = TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self.sni = sni
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self.connections_opened = 0

    def open(self) -> None:
        if self._sock is not None:
            return
        ep = self.endpoint
        try:
            sock = socket.create_connection((ep.address, ep.port), timeout=self.timeout_s)
        except OSError as exc:
            raise ClientError(f"connect {ep.address}:{ep.port}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ep.tls:
            try:
                sock = _tls_context().wrap_socket(sock, server_hostname=self.sni)
            except (OSError, ValueError) as exc:
                sock.close()
                raise ClientError(f"TLS handshake with {ep.address}:{ep.port}: {exc}") from None
        self._sock = sock
        self.connections_opened += 1

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(self, method: str, target: str, headers: Sequence[tuple[str, str]],
             body: bytes | None = None) -> Reply:
        data = encode_request(method, target, headers, body)
        try:
            return self._exchange(method, data, reused=self._sock is not None)
        except _Stale:
            # An idle keep-alive connection the server had closed before reading the request: send it
            # again on a new one, as browsers do.
            return self._exchange(method, data, reused=False)

    def _exchange(self, method: str, data: bytes, *, reused: bool) -> Reply:
        self.open()
        sock = self._sock
        assert sock is not None
        started = time.monotonic()
        # The server may answer early (413) and close: its response is still worth reading.
        with contextlib.suppress(OSError):
            sock.sendall(data)
        resp = http.client.HTTPResponse(sock, method=method)
        try:
            resp.begin()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            if reused and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                raise _Stale from None
            raise ClientError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
        elapsed = (time.monotonic() - started) * 1000.0
        closed = bool(resp.will_close)
        if closed:
            self.close()
        return Reply(resp.status, list(resp.getheaders()), body, elapsed, closed)


def exchange(endpoint: Endpoint, method: str, target: str, headers: Sequence[tuple[str, str]],
             body: bytes | None = None, *, sni: str | None = None, timeout_s: float = TIMEOUT_S) -> Reply:
    """One request on a connection of its own."""
    with Connection(endpoint, sni, timeout_s) as conn:
        return conn.send(method, target, headers, body)
