"""Requests of the migration corpus's cases (../shared/migration/FORMAT.md), sent to a real
gateway and checked against what ingress-nginx answers. Echo backends are named by Service:
their pod names are `<service>-abc12-<n>` (conftest's backends fixture)."""

from __future__ import annotations

import http.client
import json
import re
import ssl
from typing import Any

from conftest import shared_corpus

# Expectation keys checked here; any other (beside notes) fails, so nothing is skipped silently.
CHECKED = {"status", "backend", "upstreamPath", "location", "upstreamHeaders", "absentUpstreamHeaders",
           "responseHeaders", "absentResponseHeaders"}
NOTES = {"confidence", "note", "verifiedBy"}


def case_file(case_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_corpus("migration") / "cases" / f"{case_id}.json").read_text())
    return data


class _Https(http.client.HTTPSConnection):
    """HTTPS to an address, with the request's host as SNI name (certificates not verified)."""

    def __init__(self, address: str, sni: str) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        super().__init__(address, 443, timeout=5, context=ctx)
        self._sni, self._ctx = sni, ctx

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._ctx.wrap_socket(self.sock, server_hostname=self._sni)


def send(address: str, req: dict[str, Any], port: int = 80) -> tuple[int, dict[str, str], bytes]:
    """One request as the case states it (raw path, Host header, scheme)."""
    host = req["host"]
    conn = _Https(address, host.split(":")[0]) if req.get("scheme") == "https" \
        else http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.putrequest(req["method"], req["path"], skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for name, value in req.get("headers", {}).items():
            conn.putheader(name, value)
        body = b"x" * req["bodyBytes"] if req.get("bodyBytes") else None
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def check(address: str, case_id: str) -> list[str]:
    """Every request of the case against its expectations; the mismatches, described."""
    failures = []
    for i, req in enumerate(case_file(case_id)["requests"]):
        if "expect" not in req:
            continue
        exp = req["expect"]
        unknown = set(exp) - CHECKED - NOTES
        assert not unknown, f"{case_id} request {i}: expectations not checked here: {unknown}"
        status, headers, body = send(address, req)
        echo = json.loads(body) if headers.get("content-type") == "application/json" else None
        problems = []
        if exp.get("status") != status:
            problems.append(f"status {status}")
        if echo is None and exp.get("backend") is not None and req["path"] != "/health":
            problems.append("no echo answer")  # the echo server answers /health itself
        if echo is not None:
            svc = re.sub(r"-abc12-[0-9]{5}$", "", echo["pod"])
            backend = f"{echo['namespace']}/{svc}" if "/" in str(exp.get("backend")) else svc
            if exp.get("backend", backend) != backend:
                problems.append(f"backend {backend}")
            if exp.get("upstreamPath", echo["path"]) != echo["path"]:
                problems.append(f"upstream path {echo['path']!r}")
        if "location" in exp and headers.get("location") != exp["location"]:
            problems.append(f"Location {headers.get('location')!r}")
        upstream = {k.lower(): v for k, v in (echo or {}).get("headers", {}).items()}
        for name, value in exp.get("upstreamHeaders", {}).items():
            got = ([echo["host"]] if echo else None) if name.lower() == "host" else upstream.get(name.lower())
            if got != [value]:
                problems.append(f"upstream {name}: {got}")
        for name in exp.get("absentUpstreamHeaders", []):
            if name.lower() in upstream:
                problems.append(f"upstream {name} present")
        for name, value in exp.get("responseHeaders", {}).items():
            if headers.get(name.lower()) != value:
                problems.append(f"response {name}: {headers.get(name.lower())!r}")
        for name in exp.get("absentResponseHeaders", []):
            if name.lower() in headers:
                problems.append(f"response {name} present")
        if problems:
            failures.append(f"{case_id} #{i} {req.get('scheme', 'http')} {req['method']} {req['host']}{req['path']}: "
                            + ", ".join(problems))
    return failures
