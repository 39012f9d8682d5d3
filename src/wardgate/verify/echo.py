"""A stdlib-only echo backend answering like the Gateway API conformance echo server (echo-basic).

Every request is answered with a JSON description of what the backend received (raw request-target,
Host, Go-canonical header names, identity of the "pod", TLS details), so tests can assert on what the
gateway forwarded. Special paths: ``/health``, ``/status/NNN``, ``/retry/?uuid=..&succeedAfter=N``,
``?delay=<Go duration>`` on any echoed request, and ``/ws``: a WebSocket (RFC 6455) echo of text and
binary messages, like echo-basic's.

HTTP/1.x parsing is done here rather than with ``http.server`` because ``BaseHTTPRequestHandler``
rewrites a leading ``//`` in the request-target and the echoed path must be exactly what arrived.
"""

from __future__ import annotations

import argparse
import base64
import codecs
import contextlib
import email.utils
import hashlib
import http
import json
import os
import re
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs

__all__ = [
    "CASE_INSTANCE_HEADER",
    "CASE_SERVICE_HEADER",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "WS_MAX_MESSAGE",
    "AuthRule",
    "CaseBackend",
    "EchoIdentity",
    "EchoServer",
    "SeenRequest",
    "WebSocketFrame",
    "WebSocketProtocolError",
    "WebSocketReader",
    "encode_ws_frame",
    "main",
    "parse_go_duration",
    "parse_ws_close",
    "read_ws_frame",
    "websocket_accept",
    "ws_close_payload",
    "ws_mask",
]

_MAX_LINE = 65536
_MAX_HEADERS = 256
_READ_CHUNK = 65536
_SEEN_LIMIT = 10_000
_RETRY_LIMIT = 10_000
# Longer than nginx's default upstream keepalive_timeout (60 s), so nginx closes idle connections first
# and never reuses one we are about to drop; still bounds threads held by clients that just vanish.
_IDLE_TIMEOUT = 120.0
_POLL_INTERVAL = 0.1

_REASONS: dict[int, str] = {s.value: s.phrase for s in http.HTTPStatus}
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX_RE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_DURATION_PART_RE = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")  # Go accepts both micro signs
_DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# Go's tls.VersionName spelling, which is what echo-basic reports.
_TLS_VERSIONS = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}
# Headers X-Echo-Set-Header may not touch: they carry the message framing of this connection.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
_SNI_ATTR = "_wardgate_echo_sni"
_LINE_ENDS = (b"\r\n", b"\n")


@dataclass(frozen=True)
class EchoIdentity:
    """Who this backend claims to be; echoed as ``namespace``/``pod``/``service``/``ingress``."""

    namespace: str = ""
    pod: str = ""
    service: str = ""
    ingress: str = ""


# Migration-corpus mode (its FORMAT.md §3). Bodyless answers (HEAD, 204) still say who answered:
CASE_SERVICE_HEADER = "X-Echo-Service"
CASE_INSTANCE_HEADER = "X-Echo-Instance"
_CASE_STATUS_RE = re.compile(r"/status/(\d{3})(?=/|$)")
_CASE_DELAY_RE = re.compile(r"/delay/(\d{1,6})(?=/|$)")
_CASE_MAX_DELAY_S = 60.0


@dataclass(frozen=True)
class AuthRule:
    """One rule of an auth stub: matches when every header in ``when_header`` has exactly that value
    (names case-insensitive), or always when ``default``; answers ``status`` with ``headers``."""

    status: int
    when_header: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    default: bool = False

    def matches(self, received: dict[str, list[str]]) -> bool:
        if self.default:
            return True
        lowered = {name.lower(): values for name, values in received.items()}
        return bool(self.when_header) and all(lowered.get(name.lower()) == [value]
                                              for name, value in self.when_header)


@dataclass(frozen=True)
class CaseBackend:
    """How one pod of a migration-corpus backend answers (instead of echo-basic's way).

    Every answer carries the JSON echo ``{service, instance, method, path, host, headers,
    bodyLength}``. With ``auth_rules`` it is an auth stub (first matching rule wins); with
    ``status_header`` its status comes from that request header (like the custom-error-pages
    image's ``X-Code``); otherwise ``/status/<code>`` anywhere in the path sets the status and
    ``/delay/<ms>`` waits first.
    """

    service: str
    instance: str
    auth_rules: tuple[AuthRule, ...] = ()
    status_header: str | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SeenRequest:
    """A request a case backend received, for the harness's authRequest and upstreamHits checks."""

    method: str
    target: str
    headers: dict[str, list[str]]
    body_length: int
    at: float  # time.monotonic() on arrival


def parse_go_duration(text: str) -> float:
    """Parse a Go ``time.ParseDuration`` string (``1s``, ``500ms``, ``1m30s``, ``-1.5h``) into seconds."""
    s = text
    sign = 1.0
    if s and s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART_RE.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


_canonical_cache: dict[str, str] = {}


def go_canonical_header(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-foo-bar`` -> ``X-Foo-Bar``; invalid names unchanged."""
    canon = _canonical_cache.get(name)
    if canon is None:
        if _TOKEN_RE.fullmatch(name):
            canon = "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))
        else:
            canon = name
        # Names come from clients; cap the cache instead of letting it grow without bound.
        if len(_canonical_cache) >= 4096:
            _canonical_cache.clear()
        _canonical_cache[name] = canon
    return canon


def parse_set_header(value: str) -> list[tuple[str, str]]:
    """Decode ``X-Echo-Set-Header`` (``Name:Value`` pairs joined by ``,``) into response headers.

    Names keep their case; a repeated name (case-insensitively) gets its values appended with ``,``.
    """
    merged: dict[str, list[str]] = {}
    for pair in value.split(","):
        name, sep, val = pair.partition(":")
        name, val = name.strip(), val.strip()
        if not sep or not _TOKEN_RE.fullmatch(name) or _CTL_RE.search(val):
            continue
        key = name.lower()
        if key in _FRAMING:
            continue
        entry = merged.get(key)
        if entry is None:
            merged[key] = [name, val]
        else:
            entry[1] += "," + val
    return [(entry[0], entry[1]) for entry in merged.values()]


_date_cache: tuple[int, str] = (-1, "")


def _http_date() -> str:
    # formatdate is comparatively slow; one value per second is enough.
    global _date_cache
    now = int(time.time())
    cached = _date_cache
    if cached[0] != now:
        cached = (now, email.utils.formatdate(now, usegmt=True))
        _date_cache = cached
    return cached[1]


_stderr_lock = threading.Lock()


def _stderr_sink(line: str) -> None:
    # One write per line under a lock so lines from concurrent requests never interleave.
    with _stderr_lock:
        sys.stderr.write(line + "\n")


def _remember_sni(sslobj: Any, server_name: str | None, _ctx: ssl.SSLContext) -> None:
    # Runs during the handshake; the object is the server-side SSLSocket (its owner), read back later.
    setattr(sslobj, _SNI_ATTR, server_name or "")


def _tls_info(conn: ssl.SSLSocket) -> dict[str, object]:
    version = conn.version() or ""
    cipher = conn.cipher()
    der = conn.getpeercert(binary_form=True)
    # Python exposes only the leaf of the client chain (no get_verified_chain before 3.13).
    peers = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    return {
        "version": _TLS_VERSIONS.get(version, version),
        "serverName": getattr(conn, _SNI_ATTR, ""),
        "negotiatedProtocol": conn.selected_alpn_protocol() or "",
        "cipherSuite": cipher[0] if cipher else "",
        "peerCertificates": peers,
    }


def _first(query: dict[str, list[str]], key: str) -> str:
    values = query.get(key)
    return values[0] if values else ""


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# =============================================================================== WebSocket (RFC 6455)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
WS_MAX_MESSAGE = 1 << 20  # bigger messages are refused with close code 1009
OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_WS_DATA_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY})
_WS_CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})
_WS_MAX_CONTROL = 125
_WS_DRAIN_S = 2.0  # after failing a connection: how long to wait for the peer's close before dropping it
_WS_DRAIN_BYTES = 8 << 20


class WebSocketProtocolError(Exception):
    """The peer broke RFC 6455; ``code`` is the close status to fail the connection with (§7.4.1)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class WebSocketFrame:
    fin: bool
    opcode: int
    payload: bytes  # unmasked


def websocket_accept(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")


def ws_mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte masking ``key`` repeated (masking and unmasking are the same)."""
    n = len(payload)
    if len(key) != 4:
        raise ValueError("a masking key is 4 bytes")
    if not n:
        return b""
    # One big-integer XOR runs in C: a 1 MiB payload takes milliseconds instead of a per-byte loop.
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def encode_ws_frame(opcode: int, payload: bytes, *, fin: bool = True, mask_key: bytes | None = None) -> bytes:
    """One frame with the shortest length encoding; masked (as clients must send) when ``mask_key`` is given."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask_key is not None else 0
    n = len(payload)
    if n < 126:
        header = bytes((first, mask_bit | n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, n)
    if mask_key is None:
        return header + payload
    return header + mask_key + ws_mask(payload, mask_key)


def _read_exact(read: Callable[[int], bytes], n: int) -> bytes:
    data = read(n) if n else b""
    if len(data) != n:
        raise EOFError("connection closed in the middle of a WebSocket frame")
    return data


def read_ws_frame(read: Callable[[int], bytes], *, masked: bool, max_payload: int) -> WebSocketFrame | None:
    """Read one frame with ``read(n)`` (n bytes, fewer only at EOF); None at EOF before the frame starts.

    ``masked``: whether the peer must mask (a server reads masked client frames). A data frame longer
    than ``max_payload`` fails with 1009 before its payload is read. No extension is ever negotiated,
    so any RSV bit is an error.
    """
    head = read(2)
    if not head:
        return None
    if len(head) != 2:
        raise EOFError("connection closed in the middle of a WebSocket frame")
    fin, rsv, opcode = bool(head[0] & 0x80), head[0] & 0x70, head[0] & 0x0F
    has_mask, n = bool(head[1] & 0x80), head[1] & 0x7F
    if rsv:
        raise WebSocketProtocolError(1002, "reserved bits set but no extension was negotiated")
    if opcode not in _WS_DATA_OPCODES and opcode not in _WS_CONTROL_OPCODES:
        raise WebSocketProtocolError(1002, f"reserved opcode {opcode:#x}")
    if has_mask != masked:
        raise WebSocketProtocolError(
            1002, "client frames must be masked" if masked else "server frames must not be masked")
    if n == 126:
        n = struct.unpack("!H", _read_exact(read, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _read_exact(read, 8))[0]
        if n >> 63:
            raise WebSocketProtocolError(1002, "64-bit payload length with the most significant bit set")
    if opcode in _WS_CONTROL_OPCODES:
        if not fin:
            raise WebSocketProtocolError(1002, "fragmented control frame")
        if n > _WS_MAX_CONTROL:
            raise WebSocketProtocolError(1002, f"control frame payload of {n} bytes (at most 125)")
    elif n > max_payload:
        raise WebSocketProtocolError(1009, "message too big")
    key = _read_exact(read, 4) if has_mask else None
    payload = _read_exact(read, n)
    return WebSocketFrame(fin, opcode, ws_mask(payload, key) if key is not None else payload)


class WebSocketReader:
    """Frames -> events: whole text/binary messages (fragments joined) and control frames, in arrival order.

    Text is checked to be UTF-8 as it arrives (1007 on the first bad fragment); a message larger than
    ``max_message`` fails with 1009.
    """

    def __init__(self, read: Callable[[int], bytes], *, masked: bool, max_message: int = WS_MAX_MESSAGE) -> None:
        self._read = read
        self._masked = masked
        self._max = max_message
        self._opcode: int | None = None  # of the fragmented message being received
        self._parts: list[bytes] = []
        self._size = 0
        self._utf8: codecs.IncrementalDecoder | None = None

    def next_event(self) -> tuple[int, bytes] | None:
        """``(OP_TEXT | OP_BINARY, message)`` or ``(OP_CLOSE | OP_PING | OP_PONG, payload)``; None at EOF."""
        while True:
            frame = read_ws_frame(self._read, masked=self._masked, max_payload=self._max - self._size)
            if frame is None:
                if self._opcode is not None:
                    raise EOFError("connection closed inside a fragmented WebSocket message")
                return None
            if frame.opcode in _WS_CONTROL_OPCODES:
                return frame.opcode, frame.payload  # may arrive between the fragments of a message
            if frame.opcode == OP_CONTINUATION:
                if self._opcode is None:
                    raise WebSocketProtocolError(1002, "continuation frame without a message to continue")
            else:
                if self._opcode is not None:
                    raise WebSocketProtocolError(1002, "new message started before the fragmented one ended")
                self._opcode = frame.opcode
                self._utf8 = codecs.getincrementaldecoder("utf-8")() if frame.opcode == OP_TEXT else None
            if self._utf8 is not None:
                try:
                    self._utf8.decode(frame.payload, final=frame.fin)
                except UnicodeDecodeError:
                    raise WebSocketProtocolError(1007, "text message is not valid UTF-8") from None
            self._parts.append(frame.payload)
            self._size += len(frame.payload)
            if frame.fin:
                opcode, message = self._opcode, b"".join(self._parts)
                self._opcode, self._parts, self._size, self._utf8 = None, [], 0, None
                return opcode, message


def _valid_close_code(code: int) -> bool:
    # 1004-1006 and 1015 must never be sent; 1016-2999 are unassigned; 3000-4999 are for libraries/apps.
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def parse_ws_close(payload: bytes) -> tuple[int | None, str]:
    """A close frame's payload -> (status code or None when absent, reason)."""
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise WebSocketProtocolError(1002, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not _valid_close_code(code):
        raise WebSocketProtocolError(1002, f"invalid close code {code}")
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise WebSocketProtocolError(1007, "close reason is not valid UTF-8") from None


def ws_close_payload(code: int | None, reason: str = "") -> bytes:
    """The payload of a close frame; the reason is cut (at a character boundary) to fit in 125 bytes."""
    if code is None:
        return b""
    raw = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return struct.pack("!H", code) + raw


def _ws_handshake_error(
    method: str, proto: str, headers: dict[str, list[str]], conn_tokens: set[str]
) -> tuple[int, str, list[tuple[str, str]]] | None:
    """Why this is not a WebSocket opening handshake we accept (RFC 6455 §4.2.1), as an HTTP answer."""
    if method != "GET":
        return 405, "a WebSocket handshake is a GET", [("Allow", "GET")]
    if proto != "HTTP/1.1":
        return 400, "a WebSocket handshake needs HTTP/1.1", []
    upgrade = {t.strip().lower() for v in headers.get("Upgrade", []) for t in v.split(",")}
    if "websocket" not in upgrade or "upgrade" not in conn_tokens:
        return 426, "this endpoint speaks WebSocket only", [("Upgrade", "websocket")]
    if headers.get("Sec-Websocket-Version") != ["13"]:
        return 426, "unsupported Sec-WebSocket-Version", [("Sec-WebSocket-Version", "13")]
    keys = headers.get("Sec-Websocket-Key", [])
    try:
        valid_key = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
    except ValueError:  # binascii.Error
        valid_key = False
    if not valid_key:
        return 400, "Sec-WebSocket-Key must be one base64-encoded 16-byte value", []
    return None


class _EchoHandler(socketserver.StreamRequestHandler):
    timeout = _IDLE_TIMEOUT
    disable_nagle_algorithm = True
    server: _EchoTCPServer

    def setup(self) -> None:
        super().setup()
        self._registered = self.server.owner._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._unregister(self.connection)

    def handle(self) -> None:
        if not self._registered:
            return
        conn = self.connection
        tls: dict[str, object] | None = None
        if isinstance(conn, ssl.SSLSocket):
            try:
                conn.do_handshake()
            except (OSError, ValueError):
                return  # rejected client cert, plain HTTP on the TLS port, ...: just drop it
            tls = _tls_info(conn)
        try:
            while self._serve_one(tls):
                pass
        except _BadRequest as exc:
            self._respond(exc.status, exc.message.encode(), "text/plain; charset=utf-8", [], "close")

    def _serve_one(self, tls: dict[str, object] | None) -> bool:
        """Read and answer one request; return whether the connection stays open."""
        rfile = self.rfile
        line = rfile.readline(_MAX_LINE + 1)
        if line in _LINE_ENDS:  # RFC 9112 §2.2: tolerate an empty line before the request-line
            line = rfile.readline(_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            if len(line) > _MAX_LINE:
                raise _BadRequest(414, "request-line too long")
            return False  # EOF (possibly mid-line): the client is gone
        parts = line.decode("utf-8", "replace").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not parts[1] or not _TOKEN_RE.fullmatch(parts[0]):
            raise _BadRequest(400, "malformed request-line")
        method, target, proto = parts
        if proto not in ("HTTP/1.1", "HTTP/1.0"):
            raise _BadRequest(505 if proto.startswith("HTTP/") else 400, "unsupported protocol")

        host = ""
        seen_host = False
        te: str | None = None
        content_length: str | None = None
        conn_tokens = ""
        expect = ""
        set_header: str | None = None
        echoed: dict[str, list[str]] = {}
        count = 0
        while True:
            raw = rfile.readline(_MAX_LINE + 1)
            if raw in _LINE_ENDS:
                break
            if not raw.endswith(b"\n"):
                if len(raw) > _MAX_LINE:
                    raise _BadRequest(431, "header line too long")
                return False
            count += 1
            if count > _MAX_HEADERS:
                raise _BadRequest(431, "too many headers")
            name, sep, value = raw.decode("utf-8", "replace").rstrip("\r\n").partition(":")
            # A leading space (obs-fold) or a space before ':' fails the token check, as RFC 9112 asks.
            if not sep or not _TOKEN_RE.fullmatch(name):
                raise _BadRequest(400, "malformed header line")
            value = value.strip(" \t")
            lname = name.lower()
            # Like Go's net/http: Host and Transfer-Encoding are not part of the echoed header map.
            if lname == "host":
                if seen_host:
                    raise _BadRequest(400, "duplicate Host header")
                seen_host = True
                host = value
                continue
            if lname == "transfer-encoding":
                te = value if te is None else f"{te},{value}"
                continue
            if lname == "content-length":
                if content_length is not None and content_length != value:
                    raise _BadRequest(400, "conflicting Content-Length")
                content_length = value
            elif lname == "connection":
                conn_tokens += "," + value.lower()
            elif lname == "expect":
                expect = value.lower()
            elif lname == "x-echo-set-header" and set_header is None:
                set_header = value  # Go's Header.Get: the first one wins
            echoed.setdefault(go_canonical_header(name), []).append(value)

        tokens = {t.strip() for t in conn_tokens.split(",")} if conn_tokens else set()
        http10 = proto == "HTTP/1.0"
        close = "close" in tokens or (http10 and "keep-alive" not in tokens)
        conn_header = "close" if close else ("keep-alive" if http10 else None)
        continue_ok = not http10 and expect == "100-continue"

        if te is not None:
            codings = [c.strip().lower() for c in te.split(",") if c.strip()]
            if not codings or codings[-1] != "chunked":
                raise _BadRequest(400, "unsupported Transfer-Encoding")
            if content_length is not None:
                # RFC 9112 §6.3: both framings present smells like smuggling; answer, then close.
                close, conn_header = True, "close"
            if continue_ok:
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body_length = self._read_chunked()
        elif content_length is not None:
            if not (content_length.isascii() and content_length.isdigit()):
                raise _BadRequest(400, "invalid Content-Length")
            body_length = int(content_length)
            if body_length and continue_ok:
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if not self._discard(body_length):
                return False
        else:
            body_length = 0

        owner = self.server.owner
        owner._record(target)
        if owner.case is not None:
            self._case_answer(owner.case, method, target, host, echoed, body_length, conn_header, method == "HEAD")
            return not close
        extra = parse_set_header(set_header) if set_header else []
        head_only = method == "HEAD"
        path, _, query = target.partition("?")

        if path == "/ws":
            refused = _ws_handshake_error(method, proto, echoed, tokens)
            if refused is not None:
                status, message, headers = refused
                self._respond(status, message.encode(), "text/plain; charset=utf-8", headers, conn_header, head_only)
                return not close
            self._websocket(echoed["Sec-Websocket-Key"][0])
            return False  # the connection was WebSocket from the 101 on; it is over now
        if path == "/health":
            self._respond(200, b"OK", "text/plain; charset=utf-8", extra, conn_header, head_only)
            return not close
        if path.startswith("/status/"):
            code = path[len("/status/") :]
            if not (code.isascii() and code.isdigit() and 200 <= int(code) <= 599):
                raise _BadRequest(400, f"invalid status code {code!r}")
            self._respond(int(code), b"", None, extra, conn_header, head_only)
            return not close

        params: dict[str, list[str]] = {}
        # Parsing the query is skipped on the hot path unless a parameter we act on can be there.
        if query and ("delay=" in query or path.startswith("/retry/")):
            params = parse_qs(query, keep_blank_values=True)
        if path.startswith("/retry/"):
            failing = self._retry_status(params)
            if failing is not None:
                self._respond(failing, b"", None, extra, conn_header, head_only)
                return not close
        delay = _first(params, "delay")
        if delay:
            try:
                seconds = parse_go_duration(delay)
            except ValueError as exc:
                raise _BadRequest(400, str(exc)) from None
            if seconds > 0:
                time.sleep(seconds)

        payload: dict[str, object] = {
            "path": target,
            "host": host,
            "method": method,
            "proto": proto,
            "headers": dict(sorted(echoed.items())),  # Go marshals map keys sorted
            "namespace": owner.identity.namespace,
            "ingress": owner.identity.ingress,
            "service": owner.identity.service,
            "pod": owner.identity.pod,
            "httpPort": owner._port_text,
            "bodyLength": body_length,
        }
        if tls is not None:
            payload["tls"] = tls
        body = json.dumps(payload).encode() + b"\n"  # no indent: keeps json on its C encoder
        self._respond(200, body, "application/json", extra, conn_header, head_only)
        return not close

    def _case_answer(self, case: CaseBackend, method: str, target: str, host: str, echoed: dict[str, list[str]],
                     body_length: int, conn_header: str | None, head_only: bool) -> None:
        received = dict(echoed)
        if host:
            received["Host"] = [host]
        self.server.owner._remember(SeenRequest(method, target, received, body_length, time.monotonic()))
        path = target.partition("?")[0]
        status = 200
        extra: list[tuple[str, str]] = []
        if case.auth_rules:
            rule = next((r for r in case.auth_rules if r.matches(received)), None)
            if rule is not None:
                status, extra = rule.status, list(rule.headers)
        elif case.status_header is not None:
            wanted = next((v for n, v in received.items() if n.lower() == case.status_header.lower()), [])
            if len(wanted) == 1 and wanted[0].isascii() and wanted[0].isdigit() and 200 <= int(wanted[0]) <= 599:
                status = int(wanted[0])
        else:
            delay = _CASE_DELAY_RE.search(path)
            if delay is not None:
                time.sleep(min(int(delay.group(1)) / 1000.0, _CASE_MAX_DELAY_S))
            code = _CASE_STATUS_RE.search(path)
            if code is not None and 200 <= int(code.group(1)) <= 599:
                status = int(code.group(1))
        payload = {
            "service": case.service,
            "instance": case.instance,
            "method": method,
            "path": target,
            "host": host,
            "headers": dict(sorted(received.items())),
            "bodyLength": body_length,
        }
        headers = [(CASE_SERVICE_HEADER, case.service), (CASE_INSTANCE_HEADER, case.instance),
                   *case.extra_headers, *extra]
        self._respond(status, json.dumps(payload).encode() + b"\n", "application/json", headers, conn_header,
                      head_only, nosniff=False)

    def _websocket(self, key: str) -> None:
        """Answer the opening handshake with 101, then echo messages until the close handshake."""
        send = self.wfile.write  # unbuffered: one sendall per frame
        send(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                f"Date: {_http_date()}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {websocket_accept(key)}\r\n\r\n"
            ).encode("ascii")
        )
        # Frames are read through rfile: it may already hold bytes that arrived right after the handshake.
        reader = WebSocketReader(self.rfile.read, masked=True)
        while True:
            try:
                event = reader.next_event()
                if event is None:
                    return  # the peer left without a close frame
                opcode, payload = event
                if opcode == OP_CLOSE:
                    code, _reason = parse_ws_close(payload)
                    # Answer with the same status code; the server then closes TCP first (RFC 6455 §7.1.1).
                    send(encode_ws_frame(OP_CLOSE, ws_close_payload(code)))
                    return
            except WebSocketProtocolError as exc:
                self._ws_fail(exc.code, exc.message)
                return
            except TimeoutError:
                self._ws_fail(1001, "idle timeout")
                return
            except EOFError:
                return
            if opcode == OP_PING:
                send(encode_ws_frame(OP_PONG, payload))
            elif opcode != OP_PONG:  # unsolicited pongs are ignored; text and binary come back unchanged
                send(encode_ws_frame(opcode, payload))

    def _ws_fail(self, code: int, reason: str) -> None:
        """Fail the WebSocket connection (RFC 6455 §7.1.7): send a close frame, let the peer answer, drop it."""
        conn = self.connection
        try:
            self.wfile.write(encode_ws_frame(OP_CLOSE, ws_close_payload(code, reason)))
            socket.socket.shutdown(conn, socket.SHUT_WR)  # base class: a TLS connection stays readable
        except OSError:
            return
        # Closing with unread data (the rest of an oversized frame, say) would reset the connection, and the
        # peer could lose our close frame; so read and drop until the peer closes, for a bounded time and size.
        deadline = time.monotonic() + _WS_DRAIN_S
        budget = _WS_DRAIN_BYTES
        with contextlib.suppress(OSError):
            while budget > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                conn.settimeout(left)
                data = conn.recv(_READ_CHUNK)
                if not data:
                    break
                budget -= len(data)

    def _retry_status(self, params: dict[str, list[str]]) -> int | None:
        """Status to fail this /retry/ attempt with, or None once it should succeed."""
        uuid = _first(params, "uuid")
        if not uuid:
            raise _BadRequest(400, "retry: missing uuid")
        try:
            succeed_after = int(_first(params, "succeedAfter") or "0")
            code = int(_first(params, "responseCode") or "500")
            delay = parse_go_duration(_first(params, "delayRetry") or "0")
        except ValueError as exc:
            raise _BadRequest(400, f"retry: {exc}") from None
        if not 200 <= code <= 599:
            raise _BadRequest(400, f"retry: invalid responseCode {code}")
        if self.server.owner._attempt(uuid) > succeed_after:
            return None
        if delay > 0:
            time.sleep(delay)
        return code

    def _discard(self, n: int) -> bool:
        # The body is only counted, never kept: a 2 MB upload costs no memory beyond the read buffer.
        rfile = self.rfile
        while n > 0:
            chunk = rfile.read(min(n, _READ_CHUNK))
            if not chunk:
                return False
            n -= len(chunk)
        return True

    def _read_chunked(self) -> int:
        rfile = self.rfile
        total = 0
        while True:
            line = rfile.readline(_MAX_LINE + 1)
            if not line.endswith(b"\n"):
                raise _BadRequest(400, "truncated chunked body")
            size_text = line.split(b";", 1)[0].strip()
            if not _HEX_RE.fullmatch(size_text):
                raise _BadRequest(400, "invalid chunk size")
            size = int(size_text, 16)
            if size == 0:
                break
            if not self._discard(size) or rfile.readline(3) not in _LINE_ENDS:
                raise _BadRequest(400, "truncated chunk")
            total += size
        for _ in range(_MAX_HEADERS):  # trailer section, ignored
            line = rfile.readline(_MAX_LINE + 1)
            if line in _LINE_ENDS:
                return total
            if not line.endswith(b"\n"):
                break
        raise _BadRequest(400, "malformed trailer section")

    def _respond(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        extra: list[tuple[str, str]],
        conn_header: str | None,
        head_only: bool = False,
        nosniff: bool = True,
    ) -> None:
        headers: dict[str, tuple[str, str]] = {}
        if content_type is not None:
            headers["content-type"] = ("Content-Type", content_type)
        if nosniff:  # a case backend sends only what its case declares
            headers["x-content-type-options"] = ("X-Content-Type-Options", "nosniff")
        for name, value in extra:  # requested headers replace our defaults of the same name
            headers[name.lower()] = (name, value)
        out = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\nDate: {_http_date()}\r\n"]
        out.extend(f"{name}: {value}\r\n" for name, value in headers.values())
        # RFC 9110 §8.6: no Content-Length on 204; on 304 it would have to describe the 200 body.
        if status not in (204, 304):
            out.append(f"Content-Length: {len(body)}\r\n")
        if conn_header is not None:
            out.append(f"Connection: {conn_header}\r\n")
        out.append("\r\n")
        data = "".join(out).encode("utf-8")
        if not head_only and status not in (204, 304):
            data += body
        self.wfile.write(data)  # one sendall per response


class _EchoTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: EchoServer, context: ssl.SSLContext | None) -> None:
        self.owner = owner
        self.ssl_context = context
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _EchoHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self.ssl_context is None:
            return sock, addr
        try:
            # The handshake runs later in the connection's own thread so a slow client cannot stall accept().
            return self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr
        except OSError:
            sock.close()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Resets, timeouts and TLS failures are normal for a test backend; only report real bugs.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


def _make_ssl_context(certfile: str, keyfile: str | None, client_ca: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    ctx.set_alpn_protocols(["http/1.1"])
    if client_ca:
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.sni_callback = _remember_sni
    return ctx


class EchoServer:
    """A threaded HTTP/1.1 (optionally TLS) echo backend; ``start()`` serves it in a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        identity: EchoIdentity,
        *,
        certfile: str | None = None,
        keyfile: str | None = None,
        client_ca: str | None = None,
        log: Callable[[str], None] | None = None,
        case: CaseBackend | None = None,
    ) -> None:
        if (keyfile or client_ca) and not certfile:
            raise ValueError("keyfile and client_ca need certfile")
        self.identity = identity
        self.case = case
        self._received: deque[SeenRequest] = deque(maxlen=_SEEN_LIMIT)
        self._host = host
        self._port = port
        self._port_text = str(port)
        # Built here so a bad certificate path fails at construction, not on the first connection.
        self._ssl_context = _make_ssl_context(certfile, keyfile, client_ca) if certfile else None
        self._log = log if log is not None else _stderr_sink
        self._seen: deque[str] = deque(maxlen=_SEEN_LIMIT)
        self._seen_lock = threading.Lock()
        self._attempts: dict[str, int] = {}
        self._attempts_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._accepted = 0
        self._server: _EchoTCPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port once started (resolves port 0), else the requested one."""
        return self._port

    @property
    def tls(self) -> bool:
        return self._ssl_context is not None

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections this server has accepted (tells reused keep-alive connections from new ones)."""
        with self._conns_lock:
            return self._accepted

    @property
    def seen_paths(self) -> list[str]:
        """Snapshot of the last 10,000 logged request paths, oldest first."""
        with self._seen_lock:
            return list(self._seen)

    def start(self) -> EchoServer:
        if self._server is not None:
            raise RuntimeError("echo server already started")
        server = _EchoTCPServer((self._host, self._port), self, self._ssl_context)
        self._port = int(server.socket.getsockname()[1])
        self._port_text = str(self._port)
        with self._conns_lock:
            self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"echo-{self._host}:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._conns_lock:
            server, self._server = self._server, None
            conns = list(self._conns)
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        # Keep-alive connections would otherwise go on answering after stop(); wake their threads.
        for conn in conns:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)  # base class: don't tear down SSL state

    def __enter__(self) -> EchoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _register(self, conn: socket.socket) -> bool:
        with self._conns_lock:
            if self._server is None:
                return False  # accepted just as stop() ran
            self._conns.add(conn)
            self._accepted += 1
            return True

    def _unregister(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    @property
    def received(self) -> list[SeenRequest]:
        """What a case backend received (the last 10,000 requests), oldest first."""
        with self._seen_lock:
            return list(self._received)

    def _remember(self, seen: SeenRequest) -> None:
        with self._seen_lock:
            self._received.append(seen)

    def _record(self, path: str) -> None:
        with self._seen_lock:
            self._seen.append(path)
        self._log(f"Echoing back request made to {path} to client")

    def _attempt(self, uuid: str) -> int:
        with self._attempts_lock:
            n = self._attempts.pop(uuid, 0) + 1
            if len(self._attempts) >= _RETRY_LIMIT:
                del self._attempts[next(iter(self._attempts))]  # drop the least recently used uuid
            self._attempts[uuid] = n
            return n


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m wardgate.verify.echo",
        description="Echo backend answering like the Gateway API conformance echo server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    # Defaults follow echo-basic's environment variables so Deployment-style env works unchanged.
    parser.add_argument("--namespace", default=env("NAMESPACE", ""))
    parser.add_argument("--pod", default=env("POD_NAME", ""))
    parser.add_argument("--service", default=env("SERVICE_NAME", ""))
    parser.add_argument("--ingress", default=env("INGRESS_NAME", ""))
    parser.add_argument("--certfile", default=env("TLS_SERVER_CERT"))
    parser.add_argument("--keyfile", default=env("TLS_SERVER_PRIVKEY"))
    parser.add_argument("--client-ca", default=env("TLS_CLIENT_CACERTS"))
    parser.add_argument("--quiet", action="store_true", help="do not log a line per request (load tests)")
    args = parser.parse_args(argv)

    identity = EchoIdentity(
        namespace=args.namespace, pod=args.pod, service=args.service, ingress=args.ingress
    )
    log: Callable[[str], None] | None = (lambda _line: None) if args.quiet else None
    try:
        server = EchoServer(
            args.host,
            args.port,
            identity,
            certfile=args.certfile or None,
            keyfile=args.keyfile or None,
            client_ca=args.client_ca or None,
            log=log,
        ).start()
    except (OSError, ValueError) as exc:
        print(f"echo: cannot start on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1

    stopping = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():  # signal.signal only works there
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)
    scheme = "https" if server.tls else "http"
    print(f"echo: listening on {scheme}://{args.host}:{server.port}", file=sys.stderr, flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
