"""`wardgate diff`: replay the same requests against the old and the new gateway and say what differs.

Requests come from a file that is either JSON lines (``{"method", "path", "host", "headers",
"body"}``, see docs/migration.md) or an access log in ingress-nginx's default ``log-format-upstream``
(``$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"
"$http_user_agent" ...``): method, request-target, Referer and User-Agent come from the log line.
That format has no Host, so ``--host`` supplies it. Both kinds of line may be mixed.

Compared per request: status, Location, chosen response headers and a SHA-256 of the body.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wardgate.errors import InputError, Origin, Problem
from wardgate.verify.migration_client import ClientError, Endpoint, Reply, exchange, server_name

# Response headers compared unless --header names others: the ones a migration most often changes.
DEFAULT_HEADERS = (
    "Content-Type", "Cache-Control", "Strict-Transport-Security", "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
    "WWW-Authenticate", "X-Frame-Options", "X-Content-Type-Options", "Content-Security-Policy", "X-Robots-Tag",
)
# Replayed unless asked otherwise: the others may change state, and every request is sent twice.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_LINE = 1 << 20
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
# ingress-nginx's default log-format-upstream, up to $http_user_agent; the rest of the line is not needed.
ACCESS_LOG = re.compile(r"^(\S+) - (\S+) \[([^\]]*)\] " + _QUOTED + r" (\d{3}) (\d+) " + _QUOTED + " " + _QUOTED)
_REQUEST_LINE = re.compile(r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP/\d\.\d$")
_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})|\\(.)")


@dataclass(frozen=True)
class ReplayRequest:
    where: str  # file:line
    method: str
    path: str
    host: str | None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass(frozen=True)
class Target:
    url: str
    endpoint: Endpoint


@dataclass
class Outcome:
    status: str  # the status code, or "error: ..." when the exchange failed
    headers: dict[str, str | None] = field(default_factory=dict)  # Location first, then the compared ones
    body_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "headers": self.headers, "bodySha256": self.body_sha256}


@dataclass
class Difference:
    request: ReplayRequest
    old: Outcome
    new: Outcome
    what: list[str]

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {"request": {"where": r.where, "method": r.method, "path": r.path, "host": r.host},
                "differs": self.what, "old": self.old.to_json(), "new": self.new.to_json()}


def parse_target(url: str) -> Target:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError([Problem(f"{url!r}: give the gateway as http://HOST[:PORT] or https://HOST[:PORT]")])
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InputError([Problem(f"{url!r}: only scheme, host and port are used; paths come from the requests")])
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InputError([Problem(f"{url!r}: {exc}")]) from None
    return Target(url, Endpoint(parts.hostname, port, tls=parts.scheme == "https"))


def _unescape(text: str) -> str:
    """Undo nginx's log escaping (`\\xHH` for `"`, `\\` and unprintable bytes) back to the bytes sent."""
    raw = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        raw += text[pos:m.start()].encode("utf-8")
        raw += bytes([int(m.group(1), 16)]) if m.group(1) else m.group(2).encode("utf-8")
        pos = m.end()
    raw += text[pos:].encode("utf-8")
    # Bytes that are not UTF-8 survive as surrogates, which the client writes back as those bytes.
    return bytes(raw).decode("utf-8", "surrogateescape")


def _from_json(doc: Any, where: str, default_host: str | None) -> ReplayRequest:
    if not isinstance(doc, dict):
        raise ValueError("a JSON line must be an object")
    unknown = sorted(set(doc) - {"method", "path", "host", "headers", "body"})
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}")
    method, path = doc.get("method", "GET"), doc.get("path")
    if not isinstance(method, str) or not _REQUEST_LINE.match(f"{method} / HTTP/1.1"):
        raise ValueError(f"method {method!r} is not an HTTP method")
    if not isinstance(path, str) or not path or any(c in path for c in " \r\n\0"):
        raise ValueError("path must be a request-target without spaces, e.g. \"/a?b=1\"")
    raw_headers = doc.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise ValueError("headers must be an object {name: value}")
    headers = tuple((str(k), str(v)) for k, v in raw_headers.items() if str(k).lower() != "host")
    host = doc.get("host") or next((str(v) for k, v in raw_headers.items() if str(k).lower() == "host"), None)
    body = doc.get("body")
    if body is not None and not isinstance(body, str):
        raise ValueError("body must be a string")
    return ReplayRequest(where, method, path, str(host) if host else default_host, headers,
                         body.encode("utf-8") if body is not None else None)


def _from_log(m: re.Match[str], where: str, default_host: str | None) -> ReplayRequest | None:
    """One access-log line; None for a line whose request could not be replayed (`-`, garbage)."""
    line = _REQUEST_LINE.match(_unescape(m.group(4)))
    if line is None:
        return None
    headers = []
    for name, value in (("Referer", m.group(7)), ("User-Agent", m.group(8))):
        if value != "-":
            headers.append((name, _unescape(value)))
    return ReplayRequest(where, line.group(1), line.group(2), default_host, tuple(headers))


def load_requests(path: Path, default_host: str | None = None) -> tuple[list[ReplayRequest], list[str]]:
    """The requests of a file, and the lines skipped (an access-log request that is not HTTP)."""
    problems: list[Problem] = []
    requests: list[ReplayRequest] = []
    skipped: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
        raise InputError([Problem(f"cannot read the requests: {why}", Origin(str(path), None))]) from None
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{n}"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            if len(stripped) > MAX_LINE:
                raise ValueError(f"line longer than {MAX_LINE} characters")
            if stripped.startswith("{"):
                try:
                    doc = json.loads(stripped)
                except ValueError as exc:
                    raise ValueError(f"not JSON: {exc}") from None
                request: ReplayRequest | None = _from_json(doc, where, default_host)
            else:
                m = ACCESS_LOG.match(stripped)
                if m is None:
                    raise ValueError("neither a JSON object nor a line of ingress-nginx's default access log")
                request = _from_log(m, where, default_host)
                if request is None:
                    skipped.append(where)
                    continue
            assert request is not None
            if request.host is None:
                raise ValueError("no host: the line has none (ingress-nginx's default log never has one); "
                                 "give --host")
            requests.append(request)
        except ValueError as exc:
            problems.append(Problem(f"line {n}: {exc}", Origin(str(path), None)))
    if problems:
        raise InputError(problems)
    return requests, skipped


def observe(target: Target, request: ReplayRequest, header_names: Sequence[str], timeout_s: float) -> Outcome:
    headers = [("Host", request.host or target.endpoint.address), *request.headers]
    try:
        reply: Reply = exchange(target.endpoint, request.method, request.path, headers, request.body,
                                sni=server_name(request.host), timeout_s=timeout_s)
    except ClientError as exc:
        return Outcome(f"error: {exc}")
    seen = {"Location": reply.header("Location")}
    for name in header_names:
        seen[name] = reply.header(name)
    return Outcome(str(reply.status), seen, hashlib.sha256(reply.body).hexdigest())


def compare(old: Outcome, new: Outcome, bodies: bool) -> list[str]:
    what = []
    # Two transport errors are the same outcome, whatever the wording of each.
    if old.status != new.status and not (old.status.startswith("error") and new.status.startswith("error")):
        what.append(f"status {old.status} -> {new.status}")
    for name in old.headers.keys() | new.headers.keys():
        a, b = old.headers.get(name), new.headers.get(name)
        if a != b:
            what.append(f"{name} {_show(a)} -> {_show(b)}")
    if bodies and old.body_sha256 != new.body_sha256 and old.body_sha256 and new.body_sha256:
        what.append(f"body sha256 {old.body_sha256[:12]} -> {new.body_sha256[:12]}")
    return sorted(what, key=lambda w: (not w.startswith("status"), not w.startswith("Location"), w))


def _show(value: str | None) -> str:
    return "(absent)" if value is None else repr(value)


def run_diff(old: Target, new: Target, requests: Sequence[ReplayRequest], *, header_names: Sequence[str],
             bodies: bool = True, workers: int = 1, timeout_s: float = 10.0,
             out: Callable[[str], None] = print) -> dict[str, Any]:
    """Send every request to the old gateway, then to the new one; print each difference."""

    def one(request: ReplayRequest) -> Difference | None:
        before = observe(old, request, header_names, timeout_s)
        after = observe(new, request, header_names, timeout_s)
        what = compare(before, after, bodies)
        return Difference(request, before, after, what) if what else None

    if workers > 1:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, requests))
    else:
        results = [one(r) for r in requests]
    differences = [d for d in results if d is not None]
    for d in differences:
        r = d.request
        out(f"DIFF {r.where} {r.method} {r.host}{r.path}: {'; '.join(d.what)}")
    out(f"{len(requests)} request(s): {len(differences)} differ, {len(requests) - len(differences)} same "
        f"(old {old.url}, new {new.url})")
    return {"old": old.url, "new": new.url, "requests": len(requests), "differ": len(differences),
            "differences": [d.to_json() for d in differences]}


__all__ = ["DEFAULT_HEADERS", "SAFE_METHODS", "ReplayRequest", "Target", "load_requests", "parse_target", "run_diff"]
