"""wardgate's nginx module (module/) through a real nginx: duplicate headers without Lua, in more
shapes than the documented example covers, and $wardgate_request_id in the backend header, the
decision log and ModSecurity's audit log."""

from __future__ import annotations

import json
import re
import socket
import time
from collections import Counter
from collections.abc import Callable
from http.client import HTTPConnection
from pathlib import Path

import pytest

from conftest import GW, Backend, Gateway
from policy_helpers import decision_log, example, http, raw, rendered, setup
from test_waf import SQLI, audit_entries
from wardgate.dataplane import NginxInstance
from wardgate.render import accesslog
from wardgate.render.module import default_wardgate_module

pytestmark = pytest.mark.timeout(180)

Backends = Callable[..., Backend]
HEX32 = re.compile(r"[0-9a-f]{32}")


# Passes the client's X-Forwarded-For on (the default sends only the client address), so the
# backend shows which copy of a duplicated one was kept.
APPEND = """\
apiVersion: policy.wardgate.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: append, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: gw}]
  clientIP: {forwardedFor: Append}
"""


def send(gateway: Gateway, *headers: tuple[str, str], path: str = "/dup") -> tuple[int, dict[str, list[str]]]:
    r = raw(gateway.address(), http("GET", path, list(headers)))
    return r.status, (r.json["headers"] if r.status == 200 else {})


def test_duplicate_headers_only_policy_renders_no_lua(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("duplicate-headers"))
    conf = rendered(gateway)
    assert "lua" not in conf  # neither the module nor a *_by_lua directive
    assert re.search(r'wardgate_duplicate_headers first .*"x-tenant=last"', conf)
    assert 'load_module "' in conf and "ngx_http_wardgate_module.so" in conf


def test_duplicate_headers_in_the_module(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("duplicate-headers"), APPEND)  # default KeepFirst, X-Tenant KeepLast
    # Headers nginx itself knows (it keeps pointers to them) are deduplicated like any other.
    status, seen = send(gateway, ("User-Agent", "first"), ("Accept", "a/a"), ("User-Agent", "second"),
                        ("Accept", "b/b"))
    assert (status, seen["User-Agent"], seen["Accept"]) == (200, ["first"], ["a/a"])
    # X-Forwarded-For: nginx appends the client to the kept copy only.
    status, seen = send(gateway, ("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-For", "192.0.2.2"))
    assert status == 200 and seen["X-Forwarded-For"] == ["192.0.2.1, 127.0.0.1"]
    # KeepLast: the last copy's value, interleaved with other headers.
    status, seen = send(gateway, ("X-A", "1"), ("X-Tenant", "t1"), ("X-B", "2"), ("X-Tenant", "t2"),
                        ("X-C", "3"), ("X-Tenant", "t3"), ("X-D", "4"))
    assert status == 200 and seen["X-Tenant"] == ["t3"]
    assert [seen[k] for k in ("X-A", "X-B", "X-C", "X-D")] == [["1"], ["2"], ["3"], ["4"]]
    # Many header lines (sorted instead of compared pairwise): the same answers.
    many = [(f"X-H{i}", f"v{i}") for i in range(60)] + [(f"X-H{i}", f"w{i}") for i in range(0, 60, 3)]
    status, seen = send(gateway, *many, ("X-Tenant", "a"), ("X-Tenant", "b"))
    assert status == 200
    assert all(seen[f"X-H{i}"] == [f"v{i}"] for i in range(60)), seen
    assert seen["X-Tenant"] == ["b"]
    assert send(gateway, *many, ("X-Forwarded-Host", "a"), ("X-Forwarded-Host", "b"))[0] == 400
    # Cookie only follows an explicit entry, also among many lines.
    status, seen = send(gateway, *many, ("Cookie", "a=1"), ("Cookie", "b=2"))
    assert status == 200 and seen["Cookie"] == ["a=1", "b=2"]
    log = decision_log(gateway, "/dup", count=6)
    assert [e["decision"] for e in log if e["status"] == 400] == ["duplicate-header"]


LUA_TOO = """\
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {name: duplicates, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: gw}]
  requestLimits: {maxURLLength: 4096}
  duplicateHeaders:
    default: KeepFirst
    headers: [{name: X-Tenant, action: KeepLast}]
"""


def test_duplicate_headers_with_other_lua_checks(gateway: Gateway, backends: Backends) -> None:
    """With request limits on the same policy the check stays in Lua (to keep the order of checks):
    the same answers, also for headers nginx keeps pointers to."""
    setup(gateway, backends, LUA_TOO, APPEND)
    assert "wardgate_duplicate_headers" not in rendered(gateway)
    status, seen = send(gateway, ("User-Agent", "first"), ("Accept", "a/a"), ("User-Agent", "second"),
                        ("Accept", "b/b"), ("X-Tenant", "t1"), ("X-Tenant", "t2"))
    assert (status, seen["User-Agent"], seen["Accept"], seen["X-Tenant"]) == (200, ["first"], ["a/a"], ["t2"])
    status, seen = send(gateway, ("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-For", "192.0.2.2"))
    assert status == 200 and seen["X-Forwarded-For"] == ["192.0.2.1, 127.0.0.1"]
    assert send(gateway, ("Content-Type", "a/b"), ("Content-Type", "c/d"))[0] == 400


def test_duplicate_headers_keep_alive_requests(gateway: Gateway, backends: Backends) -> None:
    """Several requests on one connection: each request's list is its own (nothing carried over)."""
    setup(gateway, backends, example("duplicate-headers"))
    conn = HTTPConnection(gateway.address(), 8080, timeout=5)
    try:
        for i in range(5):
            conn.putrequest("GET", f"/dup?n={i}", skip_host=True)
            for name, value in (("Host", "example.com"), ("X-Foo", f"a{i}"), ("X-Foo", f"b{i}")):
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200
            assert f'"X-Foo": ["a{i}"]' in body.decode()
    finally:
        conn.close()


def test_request_id_in_backend_log_and_waf_audit(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("waf-detect-only"))  # the request passes and is audited
    r = raw(gateway.address(), http("GET", SQLI + "&marker=rid", []))
    assert r.status == 200
    sent = r.json["headers"]["X-Request-Id"]
    assert len(sent) == 1 and HEX32.fullmatch(sent[0]), sent
    entry = decision_log(gateway, "marker=rid")[0]
    assert entry["request_id"] == sent[0]
    audit = [a for a in audit_entries(gateway) if a["transaction"]["unique_id"] == sent[0]]
    assert len(audit) == 1


def test_request_ids_unique_over_many_requests(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends)
    n = 600
    conn = HTTPConnection(gateway.address(), 8080, timeout=5)
    ids = []
    try:
        for i in range(n):
            conn.request("GET", f"/uniq?n={i}", headers={"Host": "example.com"})
            resp = conn.getresponse()
            ids.append(resp.read())
    finally:
        conn.close()
    log = decision_log(gateway, "/uniq", count=n)
    logged = [e["request_id"] for e in log]
    assert len(set(logged)) == n
    assert all(HEX32.fullmatch(i) for i in logged)
    # Each log line's id is the one the backend got for that request.
    by_uri = {e["uri"]: e["request_id"] for e in log}
    got = {json.loads(b)["path"]: json.loads(b)["headers"]["X-Request-Id"][0] for b in ids}
    assert got == by_uri


def test_split_clients_on_request_id_stays_uniform(gateway: Gateway, backends: Backends) -> None:
    """Weighted backends are chosen by split_clients over the request id (MurmurHash2 of it): ids
    from a counter must still spread like random ones."""
    a, b = backends("a"), backends("b")
    gateway.write("gw.yaml", GW + a.manifests() + b.manifests() + """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [example.com]
  rules:
    - backendRefs: [{name: a, port: 80, weight: 1}, {name: b, port: 80, weight: 1}]
""")
    gateway.reconcile()
    n = 1000
    order: list[str] = []
    conn = HTTPConnection(gateway.address(), 8080, timeout=5)
    try:
        for i in range(n):
            conn.request("GET", f"/?n={i}", headers={"Host": "example.com"})
            resp = conn.getresponse()
            order.append(str(json.loads(resp.read())["pod"]).split("-")[0])
    finally:
        conn.close()
    seen = Counter(order)
    # 50/50 over 1000 requests: sd 16, so 420..580 is 5 sd either way.
    assert 420 <= seen["a"] <= 580, seen
    # Consecutive ids are not grouped: runs of one backend stay short, as with random ids (the
    # longest of 1000 fair coin flips is about 10; 25 or more has odds of about 3e-5).
    longest = max(len(m.group(0)) for m in re.finditer(r"a+|b+", "".join(x[0] for x in order)))
    assert longest < 25, longest


# --- the decision log's line -----------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_log_line_is_what_nginx_log_format_writes(world_dir: Path, backends: Backends) -> None:
    """`wardgate_log_json` against nginx's own log_format escape=json with the same fields, for
    the same requests (both logs written by one nginx): odd bytes in the URI and Host, retries,
    an internal redirect between upstreams, answers no backend gave, HTTP/1.0 without Host."""
    live = backends("live").servers[0]
    dead = _free_port()  # nothing listens there: connection refused, nginx tries the next
    port = _free_port()
    fields = [f for f in accesslog.FIELDS if f[0] != accesslog.DECISION_FIELD]
    nginx_format = "{" + ",".join(f'"{k}":"{v}"' if q else f'"{k}":{v}' for k, v, q in fields) + "}"
    module_fields = " ".join(f"{k}={v}" if q else f"{k}:{v}" for k, v, q in fields)
    conf = f"""load_module "{default_wardgate_module()}";
worker_processes 1;
pid run/nginx.pid;
error_log logs/error.log;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    wardgate_empty $wg_route;
    wardgate_alias $wg_client_ip $remote_addr;
    wardgate_log_json $wg_log_json {module_fields};
    log_format nginx_json escape=json '{nginx_format}';
    log_format module_json escape=none $wg_log_json;
    upstream retried {{ server 127.0.0.1:{dead}; server {live.host}:{live.port} backup; }}
    upstream dead {{ server 127.0.0.1:{dead}; }}
    server {{
        listen 127.0.0.1:{port};
        access_log logs/nginx.log nginx_json;
        access_log logs/module.log module_json;
        location / {{ set $wg_route "default/r#0"; proxy_pass http://{live.host}:{live.port}; }}
        location /retry {{ proxy_pass http://retried; }}
        location /redirected {{ proxy_pass http://dead; error_page 502 = @after; }}
        location @after {{ proxy_pass http://{live.host}:{live.port}; }}
        location /direct {{ return 200 "x"; }}
    }}
}}
"""
    inst = NginxInstance("log", world_dir / "nginx")
    try:
        assert inst.apply({"nginx.conf": conf}).ok, inst.last_error
        requests = [
            b"GET /plain?a=1 HTTP/1.1\r\nHost: example.com\r\n",
            b'GET /q"uote/back\\slash?x="\\ HTTP/1.1\r\nHost: example.com\r\n',
            b"GET /caf\xc3\xa9/%22%5c HTTP/1.1\r\nHost: Example.COM.:8080\r\n",
            b"GET /nul%00 HTTP/1.1\r\nHost: example.com\r\n",
            b"GET /retry HTTP/1.1\r\nHost: example.com\r\n",
            b"GET /redirected HTTP/1.1\r\nHost: example.com\r\n",
            b"HEAD /direct HTTP/1.1\r\nHost: example.com\r\n",
            b"GET /direct HTTP/1.0\r\n",
            b"GET /bad\x01 HTTP/1.1\r\nHost: example.com\r\n",
        ]
        for req in requests:
            raw("127.0.0.1", req + b"Connection: close\r\n\r\n", port=port)
        logs = inst.workdir / "logs"
        assert wait_for_lines(logs / "module.log", len(requests))
        ours = [json.loads(line) for line in (logs / "module.log").read_text().splitlines()]
        theirs = [json.loads(line) for line in (logs / "nginx.log").read_text().splitlines()]
        assert ours == theirs
        by_uri = {e["uri"]: e for e in ours}
        assert by_uri['/q"uote/back\\slash?x="\\']["status"] == 200
        assert by_uri["/retry"]["upstream_addr"] == f"127.0.0.1:{dead}, {live.host}:{live.port}"
        assert by_uri["/retry"]["upstream_status"] == "502, 200"
        assert by_uri["/redirected"]["upstream_addr"] == f"127.0.0.1:{dead} : {live.host}:{live.port}"
        assert by_uri["/direct"]["upstream_addr"] == "" and isinstance(by_uri["/direct"]["request_time"], float)
        assert by_uri["/caf\u00e9/%22%5c"]["host"] == "example.com"  # $host, not the header
    finally:
        inst.stop()


def wait_for_lines(path: Path, n: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(("field", "why"), [
    ("status=$status", "a number: write name:$variable"),
    ("uri:$request_uri", "a string: write name=$variable"),
    ('"na me=$host"', "invalid field name"),
    ("host", "expected name=$variable or name:$variable"),
])
def test_log_json_fields_are_checked_at_load(world_dir: Path, field: str, why: str) -> None:
    conf = f"""load_module "{default_wardgate_module()}";
pid run/nginx.pid;
error_log logs/error.log;
events {{ worker_connections 16; }}
http {{
    wardgate_log_json $wg_log_json time=$time_iso8601 {field};
    server {{ listen 127.0.0.1:{_free_port()}; return 200; }}
}}
"""
    inst = NginxInstance("bad-log", world_dir / "nginx")
    try:
        res = inst.apply({"nginx.conf": conf})
        assert not res.ok and why in (res.error or ""), res.error
    finally:
        inst.stop()
