"""The WebSocket client and the round trip of a ``websocket`` case."""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from wardgate.verify.conformance.client import (
    REQUEST_TIMEOUT_S,
    Outgoing,
    RequestError,
    _header,
    _header_values,
    _join_host_port,
    _open,
    _split_host_port,
)
from wardgate.verify.echo import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WS_MAX_MESSAGE,
    WebSocketProtocolError,
    WebSocketReader,
    encode_ws_frame,
    parse_ws_close,
    websocket_accept,
    ws_close_payload,
)


class WebSocketHandshakeError(RequestError):
    """The server answered the opening handshake, but not with an acceptable 101."""

    def __init__(self, message: str, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.body = body


class WebSocketClosed(RequestError):
    """The server sent a close frame where a message was expected."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"the server closed the WebSocket (code {code}, reason {reason!r})")
        self.code = code
        self.reason = reason


_WS_MAX_HEADER_LINE = 65536
_WS_MAX_ERROR_BODY = 65536


class WebSocketClient:
    """A small RFC 6455 client over an open (plain or TLS) socket; no extensions, no subprotocols.

    ``connect()`` dials and runs the opening handshake; ``send_text``/``send_binary``/``ping`` send masked
    frames; ``receive()`` returns the next whole message, answering pings; ``close()`` runs the close
    handshake. Socket and protocol failures surface as ``RequestError``.
    """

    def __init__(self, sock: socket.socket, timeout_s: float = REQUEST_TIMEOUT_S,
                 max_message: int = WS_MAX_MESSAGE) -> None:
        sock.settimeout(timeout_s)
        self.sock = sock
        # One buffered reader for the handshake and the frames: bytes right after the 101 are not lost.
        self._fp = sock.makefile("rb")
        self._reader = WebSocketReader(self._fp.read, masked=False, max_message=max_message)
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.close_sent = False
        self.peer_close: tuple[int | None, str] | None = None
        self.server_closed_tcp = False

    @classmethod
    def connect(cls, host: str, port: int, path: str = "/", *, host_header: str | None = None,
                origin: str | None = None, headers: Sequence[tuple[str, str]] = (),
                timeout_s: float = REQUEST_TIMEOUT_S) -> WebSocketClient:
        """Dial ``ws://host:port`` (cleartext) and run the opening handshake for ``path``."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise RequestError(f"connect {host}:{port}: {exc}") from None
        client = cls(sock, timeout_s)
        try:
            client.handshake(path, host_header or _join_host_port(host, port), origin=origin, headers=headers)
        except BaseException:
            client.abort()
            raise
        return client

    def __enter__(self) -> WebSocketClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.abort()

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except WebSocketProtocolError as exc:
            self._fail(exc.code, exc.message)
            raise RequestError(f"{what}: the server broke the WebSocket protocol: {exc.message} "
                               f"(closed with {exc.code})") from None
        except EOFError as exc:
            raise RequestError(f"{what}: {exc}") from None
        except OSError as exc:
            raise RequestError(f"{what}: {type(exc).__name__}: {exc}") from None

    def handshake(self, path: str, host: str, *, origin: str | None = None,
                  headers: Sequence[tuple[str, str]] = ()) -> None:
        """Send the opening handshake (RFC 6455 §4.1) and check the server's 101 answer."""
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if origin is not None:
            lines.append(f"Origin: {origin}")
        lines += [f"{name}: {value}" for name, value in headers]
        if any(c in line for line in lines for c in "\r\n\0"):
            raise ValueError("CR, LF or NUL in the WebSocket handshake")
        with self._errors("WebSocket handshake"):
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
            status_line = self._fp.readline(_WS_MAX_HEADER_LINE + 1)
            if not status_line:
                raise RequestError("WebSocket handshake: the connection closed before a response")
            parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not (parts[1].isascii() and parts[1].isdigit()):
                raise RequestError(f"WebSocket handshake: malformed status line {status_line[:100]!r}")
            self.status = int(parts[1])
            try:
                message = http.client.parse_headers(self._fp)
            except http.client.HTTPException as exc:
                raise RequestError(f"WebSocket handshake: bad response headers: {exc}") from None
            self.headers = list(message.items())
            if self.status != 101:
                body = self._error_body()
                snippet = " ".join(body[:400].decode("utf-8", "replace").split())[:160]
                raise WebSocketHandshakeError(
                    f"expected 101 Switching Protocols, got {' '.join(parts)}" + (f" ({snippet!r})" if snippet else ""),
                    self.status, self.headers, body)
        problem = self._check_101(key)
        if problem:
            raise WebSocketHandshakeError(f"unacceptable 101 answer: {problem}", 101, self.headers, b"")

    def _error_body(self) -> bytes:
        length = _header(self.headers, "content-length") or ""
        if not (length.isascii() and length.isdigit()):
            return b""
        return self._fp.read(min(int(length), _WS_MAX_ERROR_BODY))

    def _check_101(self, key: str) -> str | None:
        def tokens(name: str) -> set[str]:
            return {t.strip().lower() for v in _header_values(self.headers, name) or [] for t in v.split(",")}

        if "websocket" not in tokens("upgrade"):
            return f"Upgrade is {_header(self.headers, 'upgrade')!r}, not websocket"
        if "upgrade" not in tokens("connection"):
            return f"Connection is {_header(self.headers, 'connection')!r}, without upgrade"
        accept = _header_values(self.headers, "sec-websocket-accept") or []
        if accept != [websocket_accept(key)]:
            return f"Sec-WebSocket-Accept is {accept}, expected {websocket_accept(key)!r}"
        for name in ("Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"):  # none was offered
            if _header(self.headers, name) is not None:
                return f"{name} {_header(self.headers, name)!r} was not asked for"
        return None

    def send(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        """One frame, masked with a fresh key as RFC 6455 §5.3 asks of clients."""
        with self._errors("WebSocket send"):
            self.sock.sendall(encode_ws_frame(opcode, payload, fin=fin, mask_key=os.urandom(4)))

    def send_text(self, text: str) -> None:
        self.send(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self.send(OP_BINARY, data)

    def ping(self, payload: bytes = b"") -> None:
        self.send(OP_PING, payload)

    def next_event(self) -> tuple[int, bytes]:
        """The next whole message or control frame, as it arrives; pings are not answered here."""
        with self._errors("WebSocket receive"):
            event = self._reader.next_event()
        if event is None:
            self.server_closed_tcp = True
            raise RequestError("WebSocket receive: the connection closed without a close frame")
        return event

    def receive(self) -> tuple[str, bytes]:
        """The next message as ("text" | "binary", payload); pings are answered and pongs skipped."""
        while True:
            opcode, payload = self.next_event()
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                code, reason = self._on_close(payload)
                raise WebSocketClosed(code, reason)
            elif opcode in (OP_TEXT, OP_BINARY):
                return ("text" if opcode == OP_TEXT else "binary"), payload

    def _on_close(self, payload: bytes) -> tuple[int | None, str]:
        with self._errors("WebSocket close"):
            self.peer_close = parse_ws_close(payload)
        if not self.close_sent:  # the server started the close handshake: answer with its code
            self.close_sent = True
            with contextlib.suppress(RequestError):
                self.send(OP_CLOSE, ws_close_payload(self.peer_close[0]))
        return self.peer_close

    def close(self, code: int = 1000, reason: str = "") -> tuple[int | None, str]:
        """Run the close handshake and return the server's (code, reason).

        Messages still arriving are dropped. Afterwards ``server_closed_tcp`` tells whether the server
        then closed the connection, as RFC 6455 §7.1.1 asks of it.
        """
        try:
            if not self.close_sent:
                self.close_sent = True
                self.send(OP_CLOSE, ws_close_payload(code, reason))
            while self.peer_close is None:
                opcode, payload = self.next_event()
                if opcode == OP_CLOSE:
                    self._on_close(payload)
            with contextlib.suppress(OSError):
                self.server_closed_tcp = self._fp.read(1) == b""
            return self.peer_close
        finally:
            self.abort()

    def _fail(self, code: int, reason: str) -> None:
        if not self.close_sent:
            self.close_sent = True
            with contextlib.suppress(OSError):
                self.sock.sendall(encode_ws_frame(OP_CLOSE, ws_close_payload(code, reason), mask_key=os.urandom(4)))

    def abort(self) -> None:
        """Drop the connection without a close handshake (after one, it just releases the socket)."""
        with contextlib.suppress(OSError):
            self._fp.close()
        with contextlib.suppress(OSError):
            self.sock.close()


def websocket_exchange(spec: Mapping[str, Any]) -> list[tuple[int, bytes, bool]]:
    """A case's ``websocket`` object -> [(opcode, payload, expect the echo)]; ValueError if it cannot be sent."""
    items = spec.get("exchange")
    if not isinstance(items, list) or not items:
        raise ValueError("the websocket object has no exchange")
    out: list[tuple[int, bytes, bool]] = []
    for i, item in enumerate(items):
        send = item.get("send") if isinstance(item, dict) else None
        if not isinstance(send, dict):
            raise ValueError(f"websocket exchange {i}: no 'send' object")
        kind, data = send.get("type"), send.get("data")
        if kind == "text" and isinstance(data, str):
            out.append((OP_TEXT, data.encode("utf-8"), bool(item.get("expectEcho", True))))
        elif kind == "binary" and isinstance(data, list) and all(
                isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in data):
            out.append((OP_BINARY, bytes(data), bool(item.get("expectEcho", True))))
        else:
            raise ValueError(f"websocket exchange {i}: cannot send {kind!r} data {str(data)[:60]!r}")
    return out


def _preview(data: bytes) -> str:
    return f"{len(data)} bytes {data[:40]!r}" + ("..." if len(data) > 40 else "")


def websocket_round_trip(out: Outgoing, exchange: Sequence[tuple[int, bytes, bool]], *,
                         origin: str | None = None, status_codes: Sequence[int] = (101,), port_offset: int = 0,
                         timeout_s: float = REQUEST_TIMEOUT_S) -> str | None:
    """One attempt of a ``websocket`` case, as the Go test does it (websocket.Dial, then Message.Send and
    Message.Receive for each item): None when the dial succeeds and every message comes back unchanged."""
    gateway_ip, _ = _split_host_port(out.authority)
    try:
        sock = _open(out, gateway_ip, port_offset, timeout_s)
    except RequestError as exc:
        return f"request error: {exc}"
    client = WebSocketClient(sock, timeout_s)
    try:
        try:
            client.handshake(out.path, out.host, origin=origin, headers=out.headers)
        except WebSocketHandshakeError as exc:
            return f"WebSocket handshake to {out.url} failed: {exc}"
        if 101 not in status_codes:
            return f"expected status {list(status_codes)}, got 101"
        for i, (opcode, data, expect_echo) in enumerate(exchange):
            client.send(opcode, data)
            if not expect_echo:
                continue
            kind, got = client.receive()
            want = "text" if opcode == OP_TEXT else "binary"
            if (kind, got) != (want, data):
                return f"message {i + 1}: sent {want} {_preview(data)}, got {kind} {_preview(got)} back"
        with contextlib.suppress(RequestError):
            client.close()  # Go closes without looking at how the close handshake went
        return None
    except RequestError as exc:
        return f"request error: {exc}"
    finally:
        client.abort()
