"""The HTTP client: HTTP/1.1, HTTPS and HTTP/2 round trips to the gateway, following redirects like Go."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from wardgate.verify.conformance.certificates import go_hostname_matches

REQUEST_TIMEOUT_S = 10.0
MAX_REDIRECTS = 10
FOLLOWED_REDIRECTS = frozenset({301, 302, 303, 307, 308})  # what Go's http.Client follows


class RequestError(Exception):
    """The round trip failed below HTTP: connect, TLS, protocol, timeout."""


@dataclass(frozen=True)
class TlsSettings:
    server_name: str
    ca_pem: bytes
    client_cert_file: str | None = None
    client_key_file: str | None = None


@dataclass
class Outgoing:
    method: str
    scheme: str  # "http" / "https"
    authority: str  # the URL's host[:port]: the gateway address
    path: str  # path + "?" + raw query, exactly as sent
    host: str  # Host header / :authority
    headers: list[tuple[str, str]]
    protocol: str | None = None  # None, HTTPS, H2, H2C_PRIOR_KNOWLEDGE
    follow_redirects: bool = True
    tls: TlsSettings | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


@dataclass
class RoundTrip:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    url: str  # the URL of the request that produced this response (after redirects)
    protocol: str = "HTTP/1.1"


_ctx_cache: dict[tuple[bytes, str | None, str | None, tuple[str, ...]], ssl.SSLContext] = {}
_ctx_lock = threading.Lock()


def _ssl_context(tls: TlsSettings, alpn: tuple[str, ...]) -> ssl.SSLContext:
    key = (tls.ca_pem, tls.client_cert_file, tls.client_key_file, alpn)
    with _ctx_lock:
        ctx = _ctx_cache.get(key)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False  # checked with Go's rules after the handshake
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=tls.ca_pem.decode())
            if tls.client_cert_file:
                ctx.load_cert_chain(tls.client_cert_file, tls.client_key_file)
            ctx.set_alpn_protocols(list(alpn))
            _ctx_cache[key] = ctx
        return ctx


def _split_host_port(authority: str) -> tuple[str, str]:
    """``host[:port]`` -> (host without brackets, port or "")."""
    if authority.startswith("["):
        end = authority.find("]")
        host, rest = authority[1:end], authority[end + 1:]
        return host, rest[1:] if rest.startswith(":") else ""
    if authority.count(":") == 1:
        host, _, port = authority.partition(":")
        return host, port
    return authority, ""


def _join_host_port(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def _connect_address(authority: str, scheme: str, gateway_ip: str, port_offset: int) -> tuple[str, int]:
    host, port_text = _split_host_port(authority)
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        # There is no cluster DNS: names (a redirect to http://example.org/) resolve to the gateway.
        return gateway_ip, port + port_offset
    if not ip.is_loopback:
        raise RequestError(f"refusing to connect to non-loopback address {host}")
    return host, port + port_offset


def _open(out: Outgoing, gateway_ip: str, port_offset: int, timeout_s: float) -> socket.socket:
    addr = _connect_address(out.authority, out.scheme, gateway_ip, port_offset)
    try:
        sock = socket.create_connection(addr, timeout=timeout_s)
    except OSError as exc:
        raise RequestError(f"connect {addr[0]}:{addr[1]}: {exc}") from None
    if out.scheme != "https":
        return sock
    if out.tls is None:
        sock.close()
        raise RequestError("https request without TLS settings (no trust anchor)")
    alpn = ("h2",) if out.protocol == "H2" else ("http/1.1",)
    try:
        ctx = _ssl_context(out.tls, alpn)
        tls_sock = ctx.wrap_socket(sock, server_hostname=out.tls.server_name or None)
    except (OSError, ValueError) as exc:
        sock.close()
        raise RequestError(f"TLS handshake: {exc}") from None
    if not go_hostname_matches(tls_sock.getpeercert() or {}, out.tls.server_name):
        tls_sock.close()
        raise RequestError(f"x509: certificate is not valid for {out.tls.server_name!r}")
    if out.protocol == "H2" and tls_sock.selected_alpn_protocol() != "h2":
        tls_sock.close()
        raise RequestError(f"server did not negotiate h2 (ALPN {tls_sock.selected_alpn_protocol()!r})")
    return tls_sock


def _h1_exchange(sock: socket.socket, out: Outgoing) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection("harness.invalid")
    conn.sock = sock
    try:
        conn.putrequest(out.method, out.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", out.host)
        conn.putheader("User-Agent", "Go-http-client/1.1")
        for name, value in out.headers:
            conn.putheader(name, value)
        conn.putheader("Connection", "close")  # Go sends it when keep-alives are disabled
        conn.putheader("Accept-Encoding", "gzip")  # Go's transport adds it and decodes transparently
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, list(resp.getheaders()), body
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise RequestError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()


def _h2_exchange(sock: socket.socket, out: Outgoing, timeout_s: float) -> tuple[int, list[tuple[str, str]], bytes]:
    try:
        import h2.config
        import h2.connection
        import h2.events
        import h2.exceptions
    except ImportError:
        raise RequestError("HTTP/2 requests need the 'h2' package") from None
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    headers = [(":method", out.method), (":scheme", out.scheme), (":authority", out.host),
               (":path", out.path), ("user-agent", "Go-http-client/2.0"), ("accept-encoding", "gzip")]
    headers += [(name.lower(), value) for name, value in out.headers]
    status = 0
    resp_headers: list[tuple[str, str]] = []
    body = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, headers, end_stream=True)
        sock.sendall(conn.data_to_send())
        while True:
            if time.monotonic() > deadline:
                raise RequestError("HTTP/2 response timed out")
            data = sock.recv(65536)
            if not data:
                raise RequestError("connection closed before the HTTP/2 response ended")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    for name, value in event.headers or []:
                        n, v = (name.decode() if isinstance(name, bytes) else name,
                                value.decode() if isinstance(value, bytes) else value)
                        if n == ":status":
                            status = int(v)
                        elif not n.startswith(":"):
                            resp_headers.append((n, v))
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                    body += event.data or b""
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    raise RequestError(f"HTTP/2 stream reset (error code {event.error_code})")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    if not status:
                        raise RequestError(f"HTTP/2 GOAWAY (error code {event.error_code})")
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    return status, resp_headers, bytes(body)
            pending = conn.data_to_send()
            if pending:
                sock.sendall(pending)
    except (OSError, h2.exceptions.H2Error, ValueError) as exc:
        raise RequestError(f"HTTP/2: {type(exc).__name__}: {exc}") from None


def _one_exchange(out: Outgoing, gateway_ip: str, port_offset: int, timeout_s: float) -> RoundTrip:
    sock = _open(out, gateway_ip, port_offset, timeout_s)
    try:
        if out.protocol in ("H2", "H2C_PRIOR_KNOWLEDGE"):
            status, headers, body = _h2_exchange(sock, out, timeout_s)
            proto = "HTTP/2.0"
        else:
            status, headers, body = _h1_exchange(sock, out)
            proto = "HTTP/1.1"
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    if (_header(headers, "content-encoding") or "").lower() == "gzip":
        # Go decompresses what it asked gzip for, and drops the two headers that described the wire form.
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise RequestError(f"bad gzip body: {exc}") from None
        headers = [(n, v) for n, v in headers if n.lower() not in ("content-encoding", "content-length")]
    return RoundTrip(status, headers, body, out.url, proto)


def send(out: Outgoing, port_offset: int = 0, timeout_s: float = REQUEST_TIMEOUT_S) -> RoundTrip:
    """One request the way the Go suite's round tripper makes it: a fresh connection, Go's redirects."""
    if out.protocol == "websocket":
        raise RequestError("websocket requests are made by websocket_round_trip, not send()")
    gateway_ip, _ = _split_host_port(out.authority)
    original_host = out.host
    current = out
    for hop in range(MAX_REDIRECTS + 1):
        rt = _one_exchange(current, gateway_ip, port_offset, timeout_s)
        location = _header(rt.headers, "location")
        if not out.follow_redirects or rt.status not in FOLLOWED_REDIRECTS or not location:
            return rt
        if hop == MAX_REDIRECTS:
            raise RequestError(f"stopped after {MAX_REDIRECTS} redirects")
        target = urllib.parse.urljoin(current.url, location)
        parts = urllib.parse.urlsplit(target)
        if parts.scheme not in ("http", "https"):
            raise RequestError(f"redirect to unsupported URL {target!r}")
        method = current.method
        if rt.status in (301, 302, 303) and method not in ("GET", "HEAD"):
            method = "GET"
        # Go keeps a custom Host only across relative redirects; an absolute one sets Host from the URL.
        relative = not urllib.parse.urlsplit(location).netloc
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        current = Outgoing(method, parts.scheme, parts.netloc, path,
                           original_host if relative else parts.netloc, current.headers, current.protocol,
                           True, current.tls)
    raise RequestError("unreachable")  # pragma: no cover


def _header_values(headers: Sequence[tuple[str, str]], name: str) -> list[str] | None:
    lname = name.lower()
    values = [v for n, v in headers if n.lower() == lname]
    return values or None


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    values = _header_values(headers, name)
    return values[0] if values else None
