"""`wardgate diff` against two real local Gateways that differ in known ways."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Backend, Gateway
from wardgate.errors import InputError
from wardgate.verify.migration_diff import Outcome, compare, load_requests, parse_target

# "old" and "new" serve the same host; new adds a header on /app, redirects /moved and lacks /gone.
GATEWAYS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: old, namespace: default}
spec:
  gatewayClassName: wardgate
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: new, namespace: default}
spec:
  gatewayClassName: wardgate
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: old, namespace: default}
spec:
  parentRefs: [{name: old}]
  hostnames: [shop.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /app}}, {path: {type: PathPrefix, value: /gone}}]
    backendRefs: [{name: app, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: new, namespace: default}
spec:
  parentRefs: [{name: new}]
  hostnames: [shop.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /app}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: X-Frame-Options, value: DENY}]}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: Exact, value: /moved}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /app}, statusCode: 301}
"""

# JSON lines and ingress-nginx access-log lines (its default log-format-upstream), mixed.
LOG_TAIL = "[default-app-80] [] 10.0.0.7:8080 12 0.004 200 6a2c"
REQUESTS = "\n".join([
    "# a comment, then a blank line",
    "",
    '{"method": "GET", "path": "/app/x?y=1", "host": "shop.example", "headers": {"Accept": "text/html"}}',
    '10.1.2.3 - - [02/Dec/2026:10:00:00 +0000] "GET /moved HTTP/1.1" 404 146 "-" "curl/8.5.0" 75 0.000 '
    "[default-app-80] [] - - - - 5f1b",
    '10.1.2.3 - alice [02/Dec/2026:10:00:01 +0000] "POST /gone HTTP/1.1" 200 12 "https://shop.example/" '
    f'"Mozilla/5.0 (X11)" 210 0.004 {LOG_TAIL}',
    '{"path": "/nothing", "host": "shop.example"}',
    '10.1.2.3 - - [02/Dec/2026:10:00:02 +0000] "\\x16\\x03\\x01\\x00" 400 150 "-" "-" 0 0.001 [] [] - - - - 7d3e',
    "",
])


@pytest.fixture
def two_gateways(gateway: Gateway, backends: Callable[..., Backend]) -> tuple[str, str]:
    gateway.write("gateways.yaml", GATEWAYS, backends("app").manifests())
    gateway.reconcile()
    return f"http://{gateway.address('default/old')}:8080", f"http://{gateway.address('default/new')}:8080"


def diff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wardgate", "diff", *args], capture_output=True, text=True,
                          timeout=60)


def test_diff_reports_what_differs(two_gateways: tuple[str, str], tmp_path: Path) -> None:
    old, new = two_gateways
    requests = tmp_path / "requests.txt"
    requests.write_text(REQUESTS)
    report = tmp_path / "diff.json"
    r = diff("--old", old, "--new", new, "--requests", str(requests), "--host", "shop.example")
    assert r.returncode == 1 and f"skipped {requests}:5: POST may change state" in r.stderr
    assert r.stdout.splitlines()[-1].startswith("3 request(s): 2 differ, 1 same")
    r = diff("--old", old, "--new", new, "--requests", str(requests), "--host", "shop.example", "--all-methods",
             "--json", str(report))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    app = next(line for line in lines if "/app/x?y=1" in line)
    assert "X-Frame-Options (absent) -> 'DENY'" in app
    assert "body sha256" in app  # the echo's body carries each request's own X-Request-Id
    moved = next(line for line in lines if "/moved" in line)
    assert moved.startswith(f"DIFF {requests}:4 GET shop.example/moved: status 404 -> 301; "
                            "Location (absent) -> 'http://shop.example:8080/app'; body sha256 "), moved
    gone = next(line for line in lines if "/gone" in line)
    assert "status 200 -> 404" in gone and "POST" in gone
    assert not any("/nothing" in line for line in lines)  # the same 404 page from both
    assert lines[-1].startswith("4 request(s): 3 differ, 1 same")
    assert "skipped" in r.stderr and f"{requests}:7" in r.stderr
    doc = json.loads(report.read_text())
    assert doc["differ"] == 3
    moved_doc = next(d for d in doc["differences"] if d["request"]["path"] == "/moved")
    assert moved_doc["old"]["status"] == "404" and moved_doc["new"]["status"] == "301"
    assert moved_doc["new"]["headers"]["Location"].endswith("/app")


def test_same_gateway_twice_has_no_difference(two_gateways: tuple[str, str], tmp_path: Path) -> None:
    old, _new = two_gateways
    requests = tmp_path / "requests.jsonl"
    requests.write_text('{"path": "/app/a", "host": "shop.example"}\n{"path": "/zzz", "host": "shop.example"}\n')
    r = diff("--old", old, "--new", old, "--requests", str(requests), "--ignore-body")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].startswith("2 request(s): 0 differ, 2 same")
    # Only the headers asked for are compared (Location always).
    _, new = two_gateways
    r = diff("--old", old, "--new", new, "--requests", str(requests), "--ignore-body", "--header", "Content-Type")
    assert r.returncode == 0, r.stdout


def test_bad_input_names_the_line(tmp_path: Path) -> None:
    requests = tmp_path / "bad.txt"
    requests.write_text('{"path": "/ok", "host": "a"}\n{"path": "/x y"}\nnot a log line\n{"path": "/nohost"}\n')
    r = diff("--old", "http://127.0.0.1:1", "--new", "http://127.0.0.1:2", "--requests", str(requests))
    assert r.returncode == 2
    assert f"{requests}: line 2: path must be a request-target without spaces" in r.stderr
    assert f"{requests}: line 3: neither a JSON object nor a line of ingress-nginx's default access log" in r.stderr
    assert f"{requests}: line 4: no host" in r.stderr
    r = diff("--old", "ftp://x", "--new", "http://127.0.0.1", "--requests", str(requests))
    assert r.returncode == 2 and "http://HOST[:PORT]" in r.stderr


def test_access_log_lines_are_unescaped(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text('1.2.3.4 - - [t] "GET /a%20b?q=\\x22x\\x22 HTTP/1.1" 200 1 "-" "agent \\x22q\\x22" 1 0.1 [u] [] '
                   "- - - - id\n")
    (request,), skipped = load_requests(log, "h.example")
    assert (request.method, request.path, request.host, skipped) == ("GET", '/a%20b?q="x"', "h.example", [])
    assert request.headers == (("User-Agent", 'agent "q"'),)


def test_compare_and_targets() -> None:
    a = Outcome("200", {"Location": None, "X": "1"}, "aa" * 32)
    assert compare(a, Outcome("200", {"Location": None, "X": "1"}, "aa" * 32), True) == []
    assert compare(a, Outcome("302", {"Location": "/l", "X": "1"}, "bb" * 32), True) == [
        "status 200 -> 302", "Location (absent) -> '/l'", "body sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb"]
    assert compare(a, Outcome("200", {"Location": None, "X": "1"}, "bb" * 32), False) == []
    assert compare(Outcome("error: reset"), Outcome("error: refused"), True) == []
    assert compare(Outcome("error: reset"), a, True)[0] == "status error: reset -> 200"
    assert parse_target("https://10.0.0.5:8443").endpoint.port == 8443
    assert parse_target("http://gw.example").endpoint.port == 80
    with pytest.raises(InputError):
        parse_target("http://gw.example/prefix")
