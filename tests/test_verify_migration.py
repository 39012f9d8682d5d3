"""`wardgate verify migration`: the harness end to end on real Gateways and echo backends, its
echo backend modes (migration corpus FORMAT.md §3) and its expectation matchers (§5)."""

from __future__ import annotations

import base64
import http.client
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from conftest import REPO
from wardgate.sources import load_text
from wardgate.verify.echo import AuthRule, CaseBackend, EchoIdentity, EchoServer, SeenRequest
from wardgate.verify.migration import (
    DEFAULT_CERTIFICATE,
    MigrationVerifyOptions,
    case_files,
    gateways_by_class,
    run_migrate,
    run_migration_verify,
    stamp_creation,
)
from wardgate.verify.migration_client import ClientError, Connection, Endpoint, Reply, encode_request, server_name
from wardgate.verify.migration_expect import (
    CaseFormatError,
    Observed,
    check_aggregate,
    check_single,
    echo_of,
    match_header,
)

FIXTURES = REPO / "tests" / "fixtures" / "migration"


# ============================================================================ matchers (§5)

def reply(status: int = 200, headers: list[tuple[str, str]] | None = None, body: bytes = b"",
          elapsed_ms: float = 5.0) -> Reply:
    return Reply(status, headers or [], body, elapsed_ms, False)


def echoed(service: str = "app", instance: str = "app-0", **fields: Any) -> Observed:
    doc = {"service": service, "instance": instance, "method": "GET", "path": "/", "host": "h",
           "headers": {"X-Real-Ip": ["10.0.0.1"], "X-Forwarded-For": ["10.0.0.1"]}, "bodyLength": 0, **fields}
    return Observed(reply(body=json.dumps(doc).encode()), echo=doc)


def no_earlier(_i: int) -> Observed | None:
    return None


def test_header_matchers() -> None:
    def lookup(name: str) -> list[str]:
        return {"x-real-ip": ["1.2.3.4"]}.get(name.lower(), [])

    assert match_header("A", "v", ["v"], lookup) is None
    assert match_header("A", "v, w", ["v", "w"], lookup) is None  # repeated headers combine as RFC 9110 says
    assert "expected 'v'" in str(match_header("A", "v", ["x"], lookup))
    assert "absent" in str(match_header("A", "v", [], lookup))
    assert match_header("A", {"regex": "^[0-9a-f]{4}$"}, ["beef"], lookup) is None
    assert "match" in str(match_header("A", {"regex": "^[0-9a-f]{4}$"}, ["beefy"], lookup))
    assert match_header("A", {"present": True}, ["x"], lookup) is None
    assert match_header("A", {"present": True}, [], lookup) is not None
    assert match_header("A", {"present": False}, [], lookup) is None
    assert match_header("C", {"contains": ["SERVERID=", "HttpOnly"]}, ["SERVERID=1; Path=/; HttpOnly"], lookup) is None
    assert "HttpOnly" in str(match_header("C", {"contains": ["SERVERID=", "HttpOnly"]}, ["SERVERID=1"], lookup))
    assert match_header("X-Forwarded-For", {"equalsHeader": "X-Real-IP"}, ["1.2.3.4"], lookup) is None
    assert "1.2.3.4" in str(match_header("X-Forwarded-For", {"equalsHeader": "X-Real-IP"}, ["9.9.9.9"], lookup))
    assert "absent" in str(match_header("X", {"equalsHeader": "Missing"}, ["9.9.9.9"], lookup))
    with pytest.raises(CaseFormatError, match="matcher"):
        match_header("A", {"startsWith": "x"}, ["x"], lookup)
    with pytest.raises(CaseFormatError, match="regex"):
        match_header("A", {"regex": "("}, ["x"], lookup)


def test_single_expectations_pass_and_say_what_differs() -> None:
    obs = echoed(path="/a?b=1", method="POST", headers={"X-Real-Ip": ["10.0.0.1"], "X-Forwarded-For": ["10.0.0.1"],
                                                         "Host": ["shop.example"]})
    obs.reply = reply(201, [("Location", "/next"), ("X-Frame-Options", "DENY")], obs.reply.body if obs.reply else b"")
    good = {"status": 201, "backend": "app", "upstreamPath": "/a?b=1", "upstreamMethod": "POST",
            "upstreamHeaders": {"host": "shop.example", "X-Forwarded-For": {"equalsHeader": "X-Real-IP"}},
            "absentUpstreamHeaders": ["Proxy"], "responseHeaders": {"x-frame-options": "DENY"},
            "absentResponseHeaders": ["Server"], "location": "/next", "bodyContains": '"service": "app"',
            "confidence": "code", "note": "informative keys are not checked"}
    assert check_single(good, obs, no_earlier) == []
    bad = {"status": 200, "backend": None, "upstreamPath": "/a", "upstreamHeaders": {"Host": "other"},
           "absentResponseHeaders": ["Location"], "location": "/elsewhere", "bodyContains": "nope"}
    problems = check_single(bad, obs, no_earlier)
    assert problems == [
        "status 201, expected 200",
        "backend app, expected null",
        "upstreamPath '/a?b=1', expected '/a'",
        "upstream: Host is 'shop.example', expected 'other'",
        "response: Location is present ('/next')",
        "Location /next, expected /elsewhere",
        problems[-1],
    ]
    assert problems[-1].startswith("body does not contain 'nope'")


def test_proxy_answers_have_no_backend_and_no_upstream() -> None:
    obs = Observed(reply(404, body=b"<html>404</html>"), echo=None)
    assert check_single({"status": 404, "backend": None}, obs, no_earlier) == []
    assert check_single({"upstreamPath": "/"}, obs, no_earlier) == [
        "upstreamPath: no echo backend answered, expected '/'"]
    assert check_single({"absentUpstreamHeaders": ["X"]}, obs, no_earlier) == [
        "upstream headers: no echo backend answered with the request it received"]
    failed = Observed(None, "connect 127.0.0.1:80: refused")
    assert check_single({"status": 200}, failed, no_earlier) == ["no response: connect 127.0.0.1:80: refused"]


def test_unknown_expectation_keys_are_errors_not_passes() -> None:
    with pytest.raises(CaseFormatError, match="upstreamPaht"):
        check_single({"upstreamPaht": "/"}, echoed(), no_earlier)


def test_timing_hits_instances_and_auth_request() -> None:
    seen = SeenRequest("GET", "/verify", {"Host": ["auth.local"], "X-Original-Method": ["POST"]}, 0, 1.0)
    obs = echoed(instance="app-1")
    obs.reply = reply(200, body=obs.reply.body if obs.reply else b"", elapsed_ms=320)
    obs.received = {"app": [SeenRequest("GET", "/", {}, 0, 1.1)], "ext-auth": [seen]}
    earlier = {0: echoed(instance="app-1"), 1: echoed(instance="app-2"), 2: Observed(reply(503))}
    expect = {"minElapsedMs": 300, "upstreamHits": {"app": 1, "ext-auth": 1}, "sameInstanceAsRequest": 0,
              "authRequest": {"method": "GET", "path": "/verify", "headers": {"X-Original-Method": "POST"},
                              "bodyForwarded": False}}
    assert check_single(expect, obs, earlier.get, ["ext-auth"]) == []
    assert check_single({"minElapsedMs": 400, "upstreamHits": {"app": 3}, "sameInstanceAsRequest": 1}, obs,
                        earlier.get) == ["answered after 320 ms, expected at least 400 ms",
                                         "backend app was hit 1 time(s), expected 3",
                                         "instance app-1, expected app-2 (as request #1)"]
    assert check_single({"sameInstanceAsRequest": 2}, obs, earlier.get) == [
        "request #2 reached no backend instance to compare with"]
    assert check_single({"authRequest": {"method": "POST", "bodyForwarded": True}}, obs, earlier.get,
                        ["ext-auth"]) == ["authRequest method 'GET', expected 'POST'",
                                          "authRequest received 0 body bytes, expected a body"]
    assert check_single({"authRequest": {"method": "GET"}}, obs, earlier.get, []) == [
        "authRequest: the auth backend received no request"]


def test_aggregate_expectations() -> None:
    ok = [echoed() for _ in range(3)]
    limited = [Observed(reply(503)) for _ in range(2)]
    runs = ok + limited
    seq = {"sequence": [{"count": 3, "status": 200, "backend": "app"}, {"count": 2, "status": 503, "backend": None}]}
    assert check_aggregate(seq, runs, "sequential") == []
    short = {"sequence": [{"count": 4, "status": 200}, {"count": 1, "status": 503}]}
    assert check_aggregate(short, runs, "sequential") == [
        "sequence: response 4 status 503, expected 200 (200 x3, 503 x2)"]
    assert check_aggregate({"sequence": [{"count": 3, "status": 200}]}, runs, "sequential") == [
        "sequence covers 3 responses, 5 were sent"]
    assert check_aggregate({"counts": {"200": 3, "503": 2}}, runs, "concurrent") == []
    assert check_aggregate({"counts": {"200": 5}}, runs, "concurrent") == [
        "status counts {'200': 3, '503': 2}, expected {'200': 5}"]
    assert check_aggregate({"allStatus": 200, "backendShare": {"app": [0.5, 0.7]}}, runs, "sequential") == [
        "2 of 5 responses were not 200 (e.g. 503)"]
    assert check_aggregate({"backendShare": {"app": [0.7, 1.0]}}, runs, "sequential") == [
        "backend app answered 0.60 of the requests, expected 0.7..1.0"]


def test_echo_of_recognises_only_case_backends() -> None:
    body = json.dumps({"service": "app", "instance": "app-0"}).encode()
    assert echo_of(reply(body=body), ["app"]) == {"service": "app", "instance": "app-0"}
    assert echo_of(reply(body=body), ["other"]) is None
    assert echo_of(reply(body=b"{not json"), ["app"]) is None
    head = reply(headers=[("X-Echo-Service", "app"), ("X-Echo-Instance", "app-1")])
    assert echo_of(head, ["app"]) == {"service": "app", "instance": "app-1"}


# ============================================================================ client, corpus, classes

def test_client_sends_request_targets_and_hosts_verbatim() -> None:
    data = encode_request("GET", "/public/../a//b?x=%2e", [("Host", "h.example:8080")], b"abc")
    assert data == b"GET /public/../a//b?x=%2e HTTP/1.1\r\nHost: h.example:8080\r\nContent-Length: 3\r\n\r\nabc"
    with pytest.raises(ClientError):
        encode_request("GET", "/a b", [], None)
    with pytest.raises(ClientError):
        encode_request("GET", "/", [("X", "a\r\nInjected: 1")], None)
    assert server_name("shop.example:8443") == "shop.example"
    assert server_name("127.0.0.1") is None
    assert server_name(None) is None


def test_case_files_accepts_the_root_or_its_cases_folder(tmp_path: Path) -> None:
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "b.json").write_text("{}")
    (tmp_path / "cases" / "a.json").write_text("{}")
    assert [p.name for p in case_files(tmp_path)] == ["a.json", "b.json"]
    assert case_files(tmp_path / "cases") == case_files(tmp_path)


def test_stamps_keep_document_order() -> None:
    from wardgate.sources import load_text

    raws = load_text("kind: Ingress\nmetadata: {name: a}\n---\nkind: Ingress\nmetadata: {name: b, "
                     "creationTimestamp: '2020-01-01T00:00:00Z'}\n---\nkind: Ingress\nmetadata: {name: c}\n", "t")
    stamp_creation(raws)
    stamps = [r.data["metadata"]["creationTimestamp"] for r in raws]
    assert stamps == ["2026-01-01T00:00:00Z", "2020-01-01T00:00:00Z", "2026-01-01T00:00:04Z"]


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


CLASSES = _docs("""
kind: IngressClass
metadata: {name: internal}
---
kind: IngressClass
metadata: {name: public, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
---
kind: Ingress
metadata: {name: wiki, namespace: intranet}
spec: {ingressClassName: internal}
---
kind: Ingress
metadata: {name: shop, namespace: web}
---
kind: Ingress
metadata: {name: status-int, namespace: web, annotations: {kubernetes.io/ingress.class: internal}}
""")


def test_gateways_by_class_follows_the_routes_of_each_class() -> None:
    migrated = _docs("""
kind: Gateway
metadata: {name: gw-a, namespace: edge}
---
kind: Gateway
metadata: {name: gw-b, namespace: edge}
---
kind: HTTPRoute
metadata: {name: wiki, namespace: intranet, annotations: {wardgate.io/migrated-from: Ingress intranet/wiki}}
spec: {parentRefs: [{name: gw-a, namespace: edge}]}
---
kind: HTTPRoute
metadata:
  name: shop
  namespace: web
  annotations: {wardgate.io/migrated-from: "Ingress web/shop, Ingress web/status-int"}
spec: {parentRefs: [{name: gw-b, namespace: edge}, {name: gw-a, namespace: edge}]}
---
kind: HTTPRoute
metadata: {name: shop2, namespace: web, annotations: {wardgate.io/migrated-from: Ingress web/shop}}
spec: {parentRefs: [{name: gw-b, namespace: edge}]}
""")
    mapping, default = gateways_by_class(migrated, CLASSES)
    # The class-less Ingress belongs to the default class; a route with two parents counts least.
    assert mapping == {"internal": "edge/gw-a", "public": "edge/gw-b"}
    assert default == "edge/gw-b"
    # What migrate's result says wins, then annotations, then names.
    named = _docs("""
kind: Gateway
metadata: {name: internal, namespace: x}
---
kind: Gateway
metadata: {name: other, namespace: x, annotations: {wardgate.io/ingress-class: public}}
""")
    assert gateways_by_class(named, CLASSES) == ({"internal": "x/internal", "public": "x/other"}, "x/other")
    assert gateways_by_class(named, CLASSES, {"internal": "x/other"})[0]["internal"] == "x/other"


DEFAULT_CERT_CASE = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: known, namespace: default}
spec:
  ingressClassName: nginx
  rules:
  - host: known.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
"""
CONTROLLER = """\
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
spec:
  template:
    spec:
      containers:
      - name: controller
        args: [/nginx-ingress-controller, --default-ssl-certificate=ingress-nginx/wildcard]
"""


def test_harness_plays_ingress_nginx_default_certificate() -> None:
    """ingress-nginx always serves 443: the harness migrates with its own certificate as
    --default-certificate (an HTTPS listener for any host), unless the controller names one."""
    def https(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        gw = next(o for o in objects if o["kind"] == "Gateway")
        return [ls for ls in gw["spec"]["listeners"] if ls["protocol"] == "HTTPS"]

    objects, _ = run_migrate(load_text(DEFAULT_CERT_CASE, "case"))
    ns, name = DEFAULT_CERTIFICATE
    assert [(ls["name"], ls.get("hostname"), ls["tls"]["certificateRefs"]) for ls in https(objects)] == [
        ("https", None, [{"name": name, "namespace": ns}])]
    grant = next(o for o in objects if o["kind"] == "ReferenceGrant")
    assert grant["metadata"]["namespace"] == ns and grant["spec"]["to"] == [{"group": "", "kind": "Secret",
                                                                              "name": name}]
    objects, _ = run_migrate(load_text(DEFAULT_CERT_CASE + CONTROLLER, "case"))
    assert [ls["tls"]["certificateRefs"] for ls in https(objects)] == [[{"name": "wildcard"}]]
    assert https(run_migrate(load_text(DEFAULT_CERT_CASE, "case"), None)[0]) == []


# ============================================================================ echo backends (§3)

@pytest.fixture
def case_echo() -> Iterator[Any]:
    servers: list[EchoServer] = []

    def start(case: CaseBackend, **kw: Any) -> EchoServer:
        server = EchoServer("127.0.0.1", 0, EchoIdentity(service=case.service), log=lambda _l: None, case=case,
                            **kw).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


def _get(server: EchoServer, method: str, target: str, headers: dict[str, str] | None = None,
         body: bytes | None = None, tls: bool = False) -> Reply:
    items = [("Host", "svc.example"), *(headers or {}).items()]
    return Connection(Endpoint(server.host, server.port, tls)).send(method, target, items, body)


def test_case_echo_reports_the_request_as_received(case_echo: Any) -> None:
    server = case_echo(CaseBackend("web/app", "web-app-1", extra_headers=(("X-Extra", "1"),)))
    r = _get(server, "POST", "//a/../b?x=%2e", {"X-Dup": "1"}, b"hello")
    doc = json.loads(r.body)
    assert r.status == 200
    assert doc == {"service": "web/app", "instance": "web-app-1", "method": "POST", "path": "//a/../b?x=%2e",
                   "host": "svc.example", "headers": {"Content-Length": ["5"], "Host": ["svc.example"],
                                                      "X-Dup": ["1"]}, "bodyLength": 5}
    assert r.header("X-Extra") == "1" and r.header("X-Echo-Instance") == "web-app-1"
    assert r.header("X-Content-Type-Options") is None  # only what the case declares
    assert [(s.method, s.target, s.body_length) for s in server.received] == [("POST", "//a/../b?x=%2e", 5)]
    head = _get(server, "HEAD", "/x")
    assert head.body == b"" and head.header("X-Echo-Service") == "web/app"


def test_case_echo_status_and_delay_anywhere_in_the_path(case_echo: Any) -> None:
    server = case_echo(CaseBackend("app", "app-0"))
    r = _get(server, "GET", "/api/status/503?x=1")
    assert r.status == 503 and json.loads(r.body)["service"] == "app"
    assert _get(server, "GET", "/status/5030").status == 200  # not a status segment
    started = time.monotonic()
    assert _get(server, "GET", "/x/delay/300/status/404").status == 404
    assert time.monotonic() - started >= 0.3


def test_case_echo_auth_rules_and_status_header(case_echo: Any) -> None:
    rules = (AuthRule(200, (("Authorization", "Bearer good"),), (("X-Auth-User", "alice"),)),
             AuthRule(403, (("Authorization", "Bearer bad"),)),
             AuthRule(401, headers=(("WWW-Authenticate", 'Bearer realm="x"'),), default=True))
    auth = case_echo(CaseBackend("ext-auth", "ext-auth-0", auth_rules=rules))
    ok = _get(auth, "GET", "/verify", {"authorization": "Bearer good"})
    assert ok.status == 200 and ok.header("X-Auth-User") == "alice"
    assert _get(auth, "GET", "/verify", {"Authorization": "Bearer bad"}).status == 403
    denied = _get(auth, "GET", "/status/200", {"Authorization": "Bearer other"})
    assert denied.status == 401 and denied.header("WWW-Authenticate") == 'Bearer realm="x"'
    assert auth.received[-1].headers["Authorization"] == ["Bearer other"]
    pages = case_echo(CaseBackend("error-pages", "error-pages-0", status_header="X-Code"))
    assert _get(pages, "GET", "/", {"X-Code": "503"}).status == 503
    assert _get(pages, "GET", "/status/404").status == 200  # the header decides, not the path


def test_case_echo_serves_https(case_echo: Any, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("echo.test")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "k.pem"))
    server = case_echo(CaseBackend("secure", "secure-0"), certfile=str(tmp_path / "c.pem"),
                       keyfile=str(tmp_path / "k.pem"))
    assert json.loads(_get(server, "GET", "/", tls=True).body)["service"] == "secure"
    with pytest.raises(http.client.RemoteDisconnected):  # plain HTTP on the TLS port is dropped
        conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
        conn.request("GET", "/")
        conn.getresponse()


def test_connection_keeps_alive_and_reconnects() -> None:
    server = EchoServer("127.0.0.1", 0, EchoIdentity(), log=lambda _l: None, case=CaseBackend("a", "a-0")).start()
    try:
        conn = Connection(Endpoint(server.host, server.port))
        for _ in range(3):
            assert conn.send("GET", "/", [("Host", "x")]).status == 200
        assert conn.connections_opened == 1 and server.connections_accepted == 1
        assert conn.send("GET", "/", [("Host", "x"), ("Connection", "close")]).closed
        assert conn.send("GET", "/", [("Host", "x")]).status == 200
        assert conn.connections_opened == 2
        conn.close()
    finally:
        server.stop()
    with pytest.raises(ClientError, match="connect"):
        Connection(Endpoint("127.0.0.1", _free_port())).send("GET", "/", [("Host", "x")])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ============================================================================ end to end

def _tls_secret(name: str, namespace: str, host: str) -> str:
    cert = trustme.CA().issue_cert(host)
    data = {"tls.crt": base64.b64encode(cert.cert_chain_pems[0].bytes()).decode(),
            "tls.key": base64.b64encode(cert.private_key_pem.bytes()).decode()}
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                           "metadata": {"name": name, "namespace": namespace}, "data": data})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture cases plus: the TLS Secret two-classes needs, the rate-limit case twice (the
    second passes only if state is fresh), a case with a wrong expectation, one whose migrated
    output is invalid, one with a field of the wrong type and a malformed one."""
    root = tmp_path_factory.mktemp("migration-corpus")
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True)
    cases, migrated = root / "cases", root / "migrated"
    two = json.loads((cases / "two-classes.json").read_text())
    two["manifests"] += "---\n" + _tls_secret("b-tls", "outer", "b.example.test")
    (cases / "two-classes.json").write_text(json.dumps(two))
    again = json.loads((cases / "rate-limit.json").read_text())
    again["id"] = "rate-limit-again"
    (cases / "rate-limit-again.json").write_text(json.dumps(again))
    shutil.copy(migrated / "rate-limit.yaml", migrated / "rate-limit-again.yaml")
    wrong = json.loads((cases / "basic-routing.json").read_text())
    wrong["id"] = "wrong-expectation"
    wrong["requests"][1]["expect"]["status"] = 200
    (cases / "wrong-expectation.json").write_text(json.dumps(wrong))
    shutil.copy(migrated / "basic-routing.yaml", migrated / "wrong-expectation.yaml")
    # Its HTTPRoute default/basic is invalid: the case fails naming it, whatever its requests get.
    broken = json.loads((cases / "basic-routing.json").read_text())
    broken["id"] = "basic-routing2"
    (cases / "basic-routing2.json").write_text(json.dumps(broken))
    (migrated / "basic-routing2.yaml").write_text(
        (migrated / "basic-routing.yaml").read_text().replace("value: /exact}", "value: exact}"))
    bad = json.loads((cases / "rate-limit.json").read_text())
    bad["id"] = "bad-field"
    bad["requests"][0]["repeat"] = "many"
    (cases / "bad-field.json").write_text(json.dumps(bad))
    shutil.copy(migrated / "rate-limit.yaml", migrated / "bad-field.yaml")
    (cases / "malformed.json").write_text(json.dumps({"id": "malformed", "manifests": "", "requests": {}}))
    docs = (REPO / "docs" / "migration-cases.md").read_text()
    for marker, target in (("case", cases / "docs-example.json"), ("migrated", migrated / "docs-example.yaml")):
        m = re.search(rf"<!-- {marker}: docs-example -->\n```\w+\n(.*?)```", docs, re.DOTALL)
        assert m is not None, marker
        target.write_text(m.group(1))
    return root


def test_fixture_cases_run_end_to_end(corpus: Path) -> None:
    lines: list[str] = []
    started = time.monotonic()
    doc = run_migration_verify(MigrationVerifyOptions(cases=corpus / "cases", migrated=corpus / "migrated"),
                               out=lines.append)
    took = time.monotonic() - started
    results = {c["id"]: c for c in doc["cases"]}
    for case_id in ("basic-routing", "two-classes", "rate-limit", "rate-limit-again", "docs-example"):
        assert results[case_id]["result"] == "pass", results[case_id]
    wrong = results["wrong-expectation"]
    assert wrong["result"] == "fail"
    assert wrong["failed_request"] == "requests[1] GET http://basic.example.test/appx"
    assert wrong["reason"] == "status 404, expected 200"
    broken = results["basic-routing2"]
    assert broken["result"] == "fail" and broken["reason"].startswith("wardgate refuses the migrated objects: "
                                                                      "basic-routing2:migrated[doc 1]: "
                                                                      "HTTPRoute default/basic"), broken
    assert results["bad-field"]["result"] == "error"
    assert "wrong type or value: ValueError" in results["bad-field"]["reason"]
    malformed = results["malformed"]
    assert malformed["result"] == "error" and "'requests' must be a list" in malformed["reason"]
    assert doc["summary"] == {"pass": 5, "fail": 2, "error": 2, "seconds": doc["summary"]["seconds"]}
    assert lines[-1].startswith("9 case(s): 5 pass, 2 fail, 2 error (56% pass)")
    assert any(line.startswith("FAIL  wrong-expectation") and "requests[1]" in line for line in lines)
    assert took < 60


def test_cli_exit_code_json_and_only(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "wardgate", "verify", "migration", "--cases", str(corpus),
                        "--migrated", str(corpus / "migrated"), "--only", "rate-limit", "--only", "malformed",
                        "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr  # a case in error fails the run
    doc = json.loads(out.read_text())
    assert [(c["id"], c["result"]) for c in doc["cases"]] == [("malformed", "error"), ("rate-limit", "pass")]
    assert set(doc["cases"][0]) >= {"id", "result", "reason", "failed_request"}
    r = subprocess.run([sys.executable, "-m", "wardgate", "verify", "migration", "--cases", str(corpus),
                        "--migrated", str(corpus / "migrated"), "--only", "rate-limit", "--only", "malformed",
                        "--min-pass", "50"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "wardgate", "verify", "migration", "--cases", str(corpus),
                        "--only", "no-such-case"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no case no-such-case" in r.stderr


# ============================================================================ the shared corpus

@pytest.fixture(scope="module")
def corpus_run(migration_corpus: Path) -> dict[str, Any]:
    """`wardgate verify migration` on the shared corpus, once for the tests below."""
    return run_migration_verify(MigrationVerifyOptions(cases=migration_corpus), out=lambda _line: None)


@pytest.mark.timeout(900)
def test_migration_corpus_runs_every_case(corpus_run: dict[str, Any]) -> None:
    """Every case is judged (none in error: the harness understands the whole corpus), in the time
    CI allows."""
    errors = {c["id"]: c["reason"] for c in corpus_run["cases"] if c["result"] == "error"}
    assert errors == {}
    assert len(corpus_run["cases"]) >= 60
    assert corpus_run["summary"]["seconds"] < 180


@pytest.mark.timeout(900)
def test_migration_corpus_passes(corpus_run: dict[str, Any]) -> None:
    """Issue 13's acceptance: at least 95% of the cases pass, and docs/migration.md explains every
    case that does not (by its id in backquotes)."""
    total = len(corpus_run["cases"])
    not_passed = {c["id"]: c["reason"] for c in corpus_run["cases"] if c["result"] != "pass"}
    assert corpus_run["summary"]["pass"] / total >= 0.95, not_passed
    guide = REPO / "docs" / "migration.md"
    explained = guide.read_text() if guide.exists() else ""
    assert [case for case in not_passed if f"`{case}`" not in explained] == []
