"""A small real HTTP backend for tests whose backend must decide its answer (an auth service, an
error-page service): it records every request and answers what `answer` returns."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conftest import Backend, loopback_subnet

# A recorded request -> (status, response headers, body).
Answer = Callable[[dict[str, Any]], tuple[int, dict[str, str], bytes]]


class StubServer:
    def __init__(self, answer: Answer) -> None:
        self.requests: list[dict[str, Any]] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                req = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                       "body": self.rfile.read(length) if length else b""}
                seen.append(req)
                status, headers, body = answer(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.host = loopback_subnet() + ".1"
        self.server = ThreadingHTTPServer((self.host, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def last(self) -> dict[str, Any]:
        return self.requests[-1]

    def manifests(self, name: str, namespace: str = "default", port: int = 80) -> str:
        """A Service `name` and the EndpointSlice that points it here."""
        return Backend(name, namespace, [self]).manifests(port)  # type: ignore[list-item]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
