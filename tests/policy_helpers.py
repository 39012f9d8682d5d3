"""Shared pieces of the policy tests: the documented examples, an app to attach them to, raw
HTTP for what urllib can't send, and the decision log."""

from __future__ import annotations

import json
import re
import socket
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import GW, REPO, Backend, Gateway

DOCS = REPO / "docs" / "policies.md"

# Two routes on the test Gateway: `app` (rules "admin" and a catch-all) and `other`.
APP = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [example.com]
  rules:
    - name: admin
      matches: [{path: {type: PathPrefix, value: /admin}}]
      backendRefs: [{name: app, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: app, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [other.example.com]
  rules:
    - backendRefs: [{name: app, port: 80}]
"""


def doc_examples(path: Path = DOCS) -> dict[str, str]:
    """The `<!-- example: NAME -->` YAML blocks of a Markdown file, by name."""
    text = path.read_text()
    found = re.findall(r"<!-- example: ([a-z0-9-]+) -->\n```yaml\n(.*?)```", text, re.S)
    return dict(found)


def example(name: str) -> str:
    return doc_examples()[name]


def setup(gateway: Gateway, backends: Callable[..., Backend], *policies: str, ok: bool = True) -> Backend:
    app = backends("app")
    gateway.write("gw.yaml", GW + app.manifests() + APP)
    gateway.write("policies.yaml", *("---\n" + textwrap.dedent(p) for p in policies))
    if ok:
        gateway.reconcile()
    else:
        gateway.runner.reconcile()
    return app


@dataclass
class Raw:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def raw(address: str, data: bytes, port: int = 8080, source: str | None = None, timeout: float = 5.0) -> Raw:
    """Send bytes as they are (one request, Connection: close) and parse the answer."""
    with socket.create_connection((address, port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    resp = b"".join(chunks)
    if not resp:
        return Raw(0, [], b"")
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
    if any(k.lower() == "transfer-encoding" and v == "chunked" for k, v in headers):
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return Raw(int(lines[0].split()[1]), headers, body)  # type: ignore[arg-type]


def http(method: str, path: str, headers: list[tuple[str, str]], body: bytes | None = None,
         host: str = "example.com") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def decision_log(gateway: Gateway, marker: str, count: int = 1, key: str = "default/gw",
                 timeout: float = 5.0) -> list[dict[str, Any]]:
    """Decision-log entries whose uri contains `marker` (the log is flushed every second)."""
    inst = gateway.runner.instances[key]
    path = inst.workdir / "logs" / "access.log"
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if path.exists():
            found = [e for e in map(json.loads, path.read_text().splitlines()) if marker in e["uri"]]
            if len(found) >= count:
                return found
        time.sleep(0.2)
    raise AssertionError(f"{len(found)} decision-log entries for {marker!r}, expected {count}")


def rendered(gateway: Gateway, key: str = "default/gw") -> str:
    """The nginx.conf serving a Gateway now."""
    return str(gateway.runner.instances[key].current_conf.read_text())


def ancestors(gateway: Gateway, kind: str, name: str) -> list[dict[str, Any]]:
    return list(gateway.status(kind, name)["ancestors"])


def accepted(entry: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in entry["conditions"] if c["type"] == "Accepted")
