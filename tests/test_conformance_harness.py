"""The conformance harness: its comparison rules (pure), and real runs against nginx."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from wardgate.verify.conformance import (
    ConformanceOptions,
    Outgoing,
    RoundTrip,
    add_query_param,
    await_convergence,
    compare_round_trip,
    evaluate_status_check,
    fill_addresses,
    go_hostname_matches,
    parse_redirect,
    run_conformance,
    websocket_exchange,
    websocket_round_trip,
)
from wardgate.verify.conformance_mutations import (
    MutationError,
    apply_mutation,
    parse_mutation,
)
from wardgate.verify.echo import (
    OP_BINARY,
    OP_TEXT,
    EchoIdentity,
    EchoServer,
    WebSocketProtocolError,
    WebSocketReader,
    encode_ws_frame,
)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
URL = "http://127.0.100.1/"
NS = "gateway-conformance-infra"


def echo(status: int = 200, resp_headers: list[tuple[str, str]] | None = None, url: str = URL,
         **body: Any) -> RoundTrip:
    """A response as the echo backend (behind a gateway) would send it."""
    payload = {"path": "/", "host": "127.0.100.1", "method": "GET", "namespace": NS,
               "pod": "infra-backend-v1-abc12-def34", "headers": {}}
    payload.update(body)
    return RoundTrip(status, [("Content-Type", "application/json"), *(resp_headers or [])],
                     json.dumps(payload).encode(), url)


def req(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"host": None, "method": "GET", "path": "/", "headers": None}
    base.update(kw)
    return base


def exp(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"statusCodes": [200], "backend": None, "namespace": NS, "request": None,
                            "response": None, "redirect": None}
    base.update(kw)
    return base


# ----------------------------------------------------------------------------- comparison rules


def test_status_must_be_listed_and_408_504_short_circuit() -> None:
    assert "expected status [200], got 404" in (compare_round_trip(req(), exp(), echo(404), URL) or "")
    assert compare_round_trip(req(), exp(statusCodes=[404]), echo(404), URL) is None
    # 504 passes on a 408/504 expectation without looking at anything else.
    assert compare_round_trip(req(), exp(statusCodes=[408], backend="nope"),
                              RoundTrip(504, [], b"", URL), URL) is None
    # Non-2xx statuses that are listed pass without checking backend or namespace.
    assert compare_round_trip(req(), exp(statusCodes=[500], backend="x", namespace="y"),
                              RoundTrip(500, [], b"", URL), URL) is None


def test_backend_is_a_prefix_and_namespace_must_equal() -> None:
    assert compare_round_trip(req(), exp(backend="infra-backend-v1"), echo(), URL) is None
    assert "start with 'infra-backend-v2'" in (compare_round_trip(req(), exp(backend="infra-backend-v2"),
                                                                  echo(), URL) or "")
    assert "namespace" in (compare_round_trip(req(), exp(namespace=None), echo(), URL) or "")
    assert compare_round_trip(req(), exp(namespace=None), echo(namespace=""), URL) is None


def test_expected_request_defaults_to_the_request() -> None:
    # Path is compared exactly, including the raw query.
    assert compare_round_trip(req(path="/a?b=c"), exp(), echo(path="/a?b=c"), URL) is None
    assert "expected path '/a?b=c'" in (compare_round_trip(req(path="/a?b=c"), exp(), echo(path="/a"), URL) or "")
    # A given Host must be echoed as received.
    assert "expected host" in (compare_round_trip(req(host="example.org"), exp(), echo(), URL) or "")
    # An explicit ExpectedRequest wins over the request; a null method means GET.
    er = {"host": None, "method": None, "path": "/rewritten", "headers": None, "absentHeaders": None}
    assert compare_round_trip(req(path="/orig"), exp(request=er), echo(path="/rewritten"), URL) is None
    assert "method" in (compare_round_trip(req(method="POST", path="/"), exp(), echo(method="GET"), URL) or "")


def test_non_json_answer_only_carries_the_method() -> None:
    plain = RoundTrip(200, [("Content-Type", "text/plain")], b"hi", URL)
    assert "expected path '/'" in (compare_round_trip(req(), exp(), plain, URL) or "")
    # Only "application/json" exactly is parsed: a charset parameter makes it plain.
    charset = RoundTrip(200, [("Content-Type", "application/json; charset=utf-8")], b"{}", URL)
    assert "expected path" in (compare_round_trip(req(), exp(), charset, URL) or "")
    cors = {"host": None, "method": None, "path": "", "headers": None, "absentHeaders": None}
    assert compare_round_trip(req(), exp(statusCodes=[200, 204], namespace=None, request=cors),
                              RoundTrip(204, [], b"", URL), URL) is None


def test_request_headers_are_joined_with_commas_case_insensitively() -> None:
    rt = echo(headers={"X-Multi": ["a", "b"], "Version": ["one"]})
    assert compare_round_trip(req(headers={"version": "one"}), exp(), rt, URL) is None
    er = {"path": "/", "headers": {"x-multi": "a,b"}}
    assert compare_round_trip(req(), exp(request=er), rt, URL) is None
    er = {"path": "/", "headers": {"X-Multi": "a"}}
    assert "got 'a,b'" in (compare_round_trip(req(), exp(request=er), rt, URL) or "")
    er = {"path": "/", "headers": {"X-Missing": "1"}}
    assert "to be set" in (compare_round_trip(req(), exp(request=er), rt, URL) or "")


def test_response_headers_valid_values_and_whitespace() -> None:
    rt = echo(resp_headers=[("X-Out", "a, b"), ("x-out", "c"), ("X-Choice", "v2")])
    ok = {"headers": {"x-out": "a, b,c"}}
    assert compare_round_trip(req(), exp(response=ok), rt, URL) is None
    assert "X-Out" in (compare_round_trip(req(), exp(response={"headers": {"X-Out": "a,b,c"}}), rt, URL) or "")
    assert compare_round_trip(req(), exp(response={"headers": {"X-Out": "a,b,c"}, "ignoreWhitespace": True}),
                              rt, URL) is None
    assert compare_round_trip(req(), exp(response={"validHeaderValues": {"X-Choice": ["v1", "v2"]}}),
                              rt, URL) is None
    assert "not one of" in (compare_round_trip(req(), exp(response={"validHeaderValues": {"X-Choice": ["v1"]}}),
                                               rt, URL) or "")


def test_absent_headers_in_response_and_at_the_backend() -> None:
    rt = echo(resp_headers=[("X-Gone", "1")], headers={"X-Removed": ["v"]})
    assert "should be absent" in (compare_round_trip(req(), exp(response={"absentHeaders": ["x-gone"]}),
                                                     rt, URL) or "")
    assert compare_round_trip(req(), exp(response={"absentHeaders": ["X-Other"]}), rt, URL) is None
    er = {"path": "/", "absentHeaders": ["x-removed"]}
    assert "should not reach the backend" in (compare_round_trip(req(), exp(request=er), rt, URL) or "")


def test_redirect_location_parsing() -> None:
    assert parse_redirect("http://127.0.0.1/a/b?x=1", "/c") == ("http", "127.0.0.1", "", "/c")
    assert parse_redirect("http://127.0.0.1/a/b", "https://Example.org:8443/p%20q") == (
        "https", "Example.org", "8443", "/p q")
    assert parse_redirect("http://[::1]:8080/", "http://[::1]:9090/x") == ("http", "::1", "9090", "/x")


def test_redirect_expectations_and_defaults() -> None:
    def redirect(location: str, status: int = 302) -> RoundTrip:
        return RoundTrip(status, [("Location", location)], b"", "http://127.0.100.1/orig?q=1")

    def check(location: str, **want: Any) -> str | None:
        r = {"scheme": None, "host": None, "port": None, "path": None, **want}
        return compare_round_trip(req(path="/orig?q=1", unfollowRedirect=True),
                                  exp(statusCodes=[302], redirect=r), redirect(location), "http://127.0.100.1/orig?q=1")

    assert check("http://example.org/orig", host="example.org") is None
    assert check("http://example.org:80/orig") is None  # default port may be explicit
    assert "default port" in (check("http://example.org:8080/orig") or "")
    assert check("http://example.org:8083/orig", port="8083") is None
    assert "scheme" in (check("https://example.org/orig") or "")
    assert check("https://example.org:443/orig", scheme="https") is None
    assert "path" in (check("/other") or "")  # default path = the request's path, without the query
    assert check("/other", path="/other") is None
    assert "host" in (check("http://other.org/orig", host="example.org") or "")
    # A redirect status without a redirect expectation passes on the status alone.
    assert compare_round_trip(req(), exp(statusCodes=[301]), redirect("/x", 301), URL) is None


def test_sni_and_client_certificate_at_the_backend() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    rt = echo(tls={"serverName": "abc.example.com", "peerCertificates": [pem]})
    request = req(host="abc.example.com", sni="abc.example.com", clientCert="secret:ns/c#tls.crt")
    rt_host = echo(host="abc.example.com", tls={"serverName": "abc.example.com", "peerCertificates": [pem]})
    assert compare_round_trip(request, exp(), rt_host, URL, lambda _ref: pem.encode()) is None
    other = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"
    assert "client certificate" in (compare_round_trip(request, exp(), rt_host, URL,
                                                       lambda _ref: other.encode()) or "")
    assert "SNI" in (compare_round_trip(req(sni="x.example.com"), exp(), rt, URL) or "")


def test_go_hostname_rules() -> None:
    cert = {"subjectAltName": (("DNS", "*"), ("DNS", "*.org"), ("DNS", "*.wildcard.org"), ("IP Address", "10.0.0.1"))}
    assert go_hostname_matches(cert, "example.org")
    assert go_hostname_matches(cert, "third-example.wildcard.org")
    assert go_hostname_matches(cert, "EXAMPLE.org")
    assert not go_hostname_matches(cert, "a.b.example.org")
    assert not go_hostname_matches({"subjectAltName": (("DNS", "*"),)}, "localhost")
    assert go_hostname_matches(cert, "10.0.0.1")
    assert not go_hostname_matches(cert, "10.0.0.2")


def test_request_id_is_added_like_go_url_values() -> None:
    assert add_query_param("/mirror", "gateway-api-conformance-request-id", "u1") == (
        "/mirror?gateway-api-conformance-request-id=u1")
    assert add_query_param("/m?z=1&a=b c", "id", "x") == "/m?a=b+c&id=x&z=1"


def test_await_convergence_needs_consecutive_passes() -> None:
    results = iter([None, "boom", None, None, None])
    calls: list[int] = []

    def attempt() -> str | None:
        calls.append(1)
        return next(results)

    assert await_convergence(attempt, timeout_s=5, delay_s=0) is None
    assert len(calls) == 5
    failing = await_convergence(lambda: "nope", timeout_s=0.05, delay_s=0.01)
    assert failing is not None and "last failure: nope" in failing


# ----------------------------------------------------------------------------- status checks


def _snapshot(route_parents: list[dict[str, Any]], listener_conds: list[dict[str, Any]],
              generation: int = 1) -> dict[str, Any]:
    def cond(t: str, s: str = "True", r: str | None = None, g: int = generation) -> dict[str, Any]:
        return {"type": t, "status": s, "reason": r or t, "observedGeneration": g}

    return {"objects": [
        {"kind": "Gateway", "namespace": NS, "name": "gw", "generation": 1, "status": {
            "addresses": [{"type": "IPAddress", "value": "127.0.100.1"}],
            "conditions": [cond("Accepted", g=1), cond("Programmed", g=1)],
            "listeners": [{"name": "http", "attachedRoutes": 1, "conditions": listener_conds,
                           "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]}]}},
        {"kind": "HTTPRoute", "namespace": NS, "name": "r", "generation": generation,
         "status": {"parents": route_parents}},
    ]}


def _cond(t: str, s: str = "True", r: str | None = None, g: int = 1) -> dict[str, Any]:
    return {"type": t, "status": s, "reason": r or t, "observedGeneration": g}


def test_gateway_and_routes_must_be_accepted() -> None:
    listener_ok = [_cond("Accepted"), _cond("ResolvedRefs"), _cond("Programmed")]
    parent = {"parentRef": {"name": "gw"}, "controllerName": "wardgate.io/gateway-controller",
              "conditions": [_cond("Accepted"), _cond("ResolvedRefs")]}
    check = {"check": "GatewayAndHTTPRoutesMustBeAccepted", "kind": "Gateway", "namespace": NS, "name": "gw",
             "listeners": None, "routeKind": "HTTPRoute", "routes": [{"namespace": NS, "name": "r"}]}
    assert evaluate_status_check(check, _snapshot([parent], listener_ok)) is None
    assert "not Programmed" in (evaluate_status_check(check, _snapshot([parent], listener_ok[:2])) or "")
    rejected = {**parent, "conditions": [_cond("Accepted", "False", "NotAllowedByListeners")]}
    assert "not Accepted" in (evaluate_status_check(check, _snapshot([rejected], listener_ok)) or "")
    other = {**parent, "parentRef": {"name": "gw", "namespace": "elsewhere"}}
    assert "no parent status" in (evaluate_status_check(check, _snapshot([other], listener_ok)) or "")
    named = {**check, "listeners": ["http"]}
    assert "listener http" in (evaluate_status_check(named, _snapshot([parent], listener_ok)) or "")


def test_route_condition_needs_latest_generation() -> None:
    parent = {"parentRef": {"name": "gw", "namespace": NS}, "conditions": [_cond("ResolvedRefs", g=1)]}
    check = {"check": "HTTPRouteMustHaveResolvedRefsConditionsTrue", "kind": "HTTPRoute", "namespace": NS,
             "name": "r", "parent": {"namespace": NS, "name": "gw"}, "condition": "ResolvedRefs",
             "status": "True", "reason": "ResolvedRefs"}
    assert evaluate_status_check(check, _snapshot([parent], [])) is None
    assert "observedGeneration" in (evaluate_status_check(check, _snapshot([parent], [], generation=2)) or "")
    latest = {"check": "HTTPRouteMustHaveLatestConditions", "kind": "HTTPRoute", "namespace": NS, "name": "r"}
    assert evaluate_status_check(latest, _snapshot([parent], [])) is None
    assert evaluate_status_check(latest, _snapshot([parent], [], generation=2)) is not None


def test_no_accepted_parents_needs_two_empty_polls() -> None:
    check = {"check": "HTTPRouteMustHaveNoAcceptedParents", "kind": "HTTPRoute", "namespace": NS, "name": "r"}
    state: dict[str, Any] = {}
    assert evaluate_status_check(check, _snapshot([], []), state) is not None
    assert evaluate_status_check(check, _snapshot([], []), state) is None
    refused = {"parentRef": {"name": "gw"}, "conditions": [_cond("Accepted", "False", "NotAllowedByListeners")]}
    assert evaluate_status_check(check, _snapshot([refused], [])) is None
    assert evaluate_status_check(check, _snapshot([refused, refused], [])) is not None


def test_gateway_status_must_have_listeners() -> None:
    conds = [_cond("Accepted"), _cond("ResolvedRefs")]
    check = {"check": "GatewayStatusMustHaveListeners", "kind": "Gateway", "namespace": NS, "name": "gw",
             "listeners": [{"name": "http", "supportedKinds": [{"kind": "HTTPRoute"}],
                            "conditions": [{"type": "Accepted", "status": "True", "reason": None}],
                            "attachedRoutes": 1}]}
    assert evaluate_status_check(check, _snapshot([], conds)) is None
    wrong = json.loads(json.dumps(check))
    wrong["listeners"][0]["attachedRoutes"] = 2
    assert "attachedRoutes" in (evaluate_status_check(wrong, _snapshot([], conds)) or "")
    wrong["listeners"][0].update(attachedRoutes=1, supportedKinds=[])
    assert "expected no supportedKinds" in (evaluate_status_check(wrong, _snapshot([], conds)) or "")


# ----------------------------------------------------------------------------- mutations


def test_mutations_from_their_descriptions() -> None:
    docs: list[Any] = [
        {"kind": "HTTPRoute", "metadata": {"name": "r", "namespace": NS},
         "spec": {"rules": [{"backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}]}},
        {"kind": "GatewayClass", "metadata": {"name": "c"}, "spec": {"description": "old"}},
        {"kind": "Gateway", "metadata": {"name": "g", "namespace": NS}, "spec": {"listeners": []}},
        {"kind": "ReferenceGrant", "metadata": {"name": "rg", "namespace": "other"}},
    ]

    def mutation(action: str, description: str, **target: str) -> dict[str, Any]:
        return {"check": "Mutation", "action": action, "index": 1, "description": description, "target": target}

    apply_mutation(docs, parse_mutation(mutation(
        "Patch", "merge-patch spec.rules[0].backendRefs[0].name = infra-backend-v2",
        kind="HTTPRoute", namespace=NS, name="r")))
    assert docs[0]["spec"]["rules"][0]["backendRefs"][0]["name"] == "infra-backend-v2"
    apply_mutation(docs, parse_mutation(mutation("Patch", 'set spec.description = "new"', kind="GatewayClass",
                                                 name="c")))
    assert docs[1]["spec"]["description"] == "new"
    apply_mutation(docs, parse_mutation(mutation(
        "Patch", "append listener {name: alternate, hostname: foo.com, port: 80, protocol: HTTP, "
        "allowedRoutes.namespaces.from: All}", kind="Gateway", namespace=NS, name="g")))
    assert docs[2]["spec"]["listeners"] == [{"name": "alternate", "hostname": "foo.com", "port": 80,
                                             "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]
    apply_mutation(docs, parse_mutation(mutation("Delete", "delete it", kind="ReferenceGrant", namespace="other",
                                                 name="rg")))
    assert [d["kind"] for d in docs] == ["HTTPRoute", "GatewayClass", "Gateway"]
    with pytest.raises(MutationError):
        parse_mutation(mutation("Patch", "remove the unusable address", kind="Gateway", namespace=NS, name="g"))
    with pytest.raises(MutationError):
        apply_mutation(docs, parse_mutation(mutation("Delete", "x", kind="ReferenceGrant", namespace="o", name="z")))


# ----------------------------------------------------------------------------- real runs



@pytest.mark.timeout(300)
def test_core_tests_pass_on_the_shared_corpus(conformance_corpus: Path) -> None:
    names = ["HTTPRouteSimpleSameNamespace", "HTTPRouteExactPathMatching", "HTTPRouteHeaderMatching"]
    lines: list[str] = []
    doc = run_conformance(ConformanceOptions(corpus=conformance_corpus, only=names), out=lines.append)
    assert {t["name"]: t["result"] for t in doc["tests"]} == dict.fromkeys(names, "pass"), lines
    assert doc["summary"] == {"pass": 3, "fail": 0, "skip": 0}
    assert all(t["core"] and t["reason"] is None and t["failed_case"] is None for t in doc["tests"])
    assert lines[-1].startswith("conformance summary: 3 pass, 0 fail, 0 skip")


def _tiny_case(name: str, backend: str, **extra: Any) -> dict[str, Any]:
    return {"index": 0, "name": name, "mode": "eventuallyConsistent",
            "gateway": {"namespace": NS, "name": "same-namespace", "listeners": None, "port": 80, "scheme": "http"},
            "request": {"host": None, "method": "GET", "path": "/tiny", "headers": {"X-Tiny": "1"},
                        "protocol": None, "unfollowRedirect": False},
            "expected": {"statusCodes": [200], "backend": backend, "namespace": NS, "request": None,
                         "response": None, "redirect": None, "backendSetResponseHeaders": {"X-From-Backend": "yes"},
                         "mirroredTo": None},
            **extra}


def _tiny_test(name: str, cases: list[dict[str, Any]], checks: list[dict[str, Any]],
               features: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "description": "tiny", "features": features or ["Gateway", "HTTPRoute"], "core": True,
            "provisional": False, "parallel": False, "manifests": ["tests/Tiny.yaml"],
            "gateway": {"namespace": NS, "name": "same-namespace"},
            "routes": [{"namespace": NS, "name": "tiny"}], "cases": cases, "statusChecks": checks,
            "manual": False, "notes": None}


TINY_ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: tiny
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /tiny
    backendRefs:
    - name: infra-backend-v2
      port: 8080
"""


@pytest.mark.timeout(300)
def test_any_corpus_directory_works(tmp_path: Path, conformance_corpus: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "base").mkdir(parents=True)
    (corpus / "tests").mkdir()
    shutil.copy(conformance_corpus / "base" / "manifests.yaml", corpus / "base" / "manifests.yaml")
    (corpus / "tests" / "Tiny.yaml").write_text(TINY_ROUTE)
    accepted = {"check": "GatewayAndHTTPRoutesMustBeAccepted", "kind": "Gateway", "namespace": NS,
                "name": "same-namespace", "listeners": None, "routeKind": "HTTPRoute",
                "routes": [{"namespace": NS, "name": "tiny"}]}
    patch = {"check": "Mutation", "action": "Patch", "index": 1, "target": {"kind": "HTTPRoute", "namespace": NS,
                                                                             "name": "tiny"},
             "description": "merge-patch spec.rules[0].backendRefs[0].name = infra-backend-v1"}
    latest = {"check": "HTTPRouteMustHaveLatestConditions", "kind": "HTTPRoute", "namespace": NS, "name": "tiny"}
    response = {"headers": {"X-From-Backend": "yes"}}
    tests = {
        "TinyRoute": _tiny_test("TinyRoute", [_tiny_case("reaches v2", "infra-backend-v2")], [accepted]),
        "TinyWrongBackend": _tiny_test("TinyWrongBackend", [_tiny_case("expects v1", "infra-backend-v1")],
                                       [accepted]),
        "TinyUnclaimed": _tiny_test("TinyUnclaimed", [], [accepted], ["Gateway", "HTTPRoute", "TinyFeature"]),
        "TinyMutation": _tiny_test("TinyMutation", [
            _tiny_case("before", "infra-backend-v2", expected={**_tiny_case("", "")["expected"],
                                                                "backend": "infra-backend-v2", "response": response}),
            _tiny_case("after", "infra-backend-v1", afterMutation=1),
        ], [accepted, latest, patch, latest]),
    }
    entries: list[dict[str, Any]] = []
    for name, test in tests.items():
        (corpus / "tests" / f"{name}.json").write_text(json.dumps(test))
        entries.append({"name": name, "core": True, "provisional": False, "features": test["features"],
                               "cases": len(test["cases"]), "statusChecks": len(test["statusChecks"]),
                               "manual": False, "file": f"tests/{name}.json"})
    (corpus / "index.json").write_text(json.dumps({"tag": "test", "commit": "0", "tests": entries}))

    lines: list[str] = []
    doc = run_conformance(ConformanceOptions(corpus=corpus, workdir=tmp_path / "work", case_timeout_s=3),
                          out=lines.append)
    results = {t["name"]: t for t in doc["tests"]}
    assert list(results) == list(tests)
    assert results["TinyRoute"] == {"name": "TinyRoute", "core": True, "result": "pass", "reason": None,
                                    "failed_case": None}
    wrong = results["TinyWrongBackend"]
    assert wrong["result"] == "fail" and wrong["failed_case"] == "expects v1"
    assert "start with 'infra-backend-v1'" in wrong["reason"]
    assert results["TinyUnclaimed"]["result"] == "skip"
    assert "TinyFeature" in results["TinyUnclaimed"]["reason"]
    assert results["TinyMutation"]["result"] == "pass", results["TinyMutation"]
    assert doc["summary"] == {"pass": 2, "fail": 1, "skip": 1}
    assert "FAIL TinyWrongBackend: " in "\n".join(lines)
    # The test's manifests are gone from the working directory once the run is over.
    assert not list((tmp_path / "work" / "manifests" / "tests").glob("*"))


# ----------------------------------------------------------------------------- websocket cases

def test_websocket_exchange_is_read_from_the_case() -> None:
    spec = {"exchange": [{"send": {"type": "text", "data": "Websocket Support!"}, "expectEcho": True},
                         {"send": {"type": "binary", "data": [1, 2, 3, 4, 5, 6, 7]}, "expectEcho": True},
                         {"send": {"type": "text", "data": "fire and forget"}, "expectEcho": False}]}
    assert websocket_exchange(spec) == [(OP_TEXT, b"Websocket Support!", True),
                                        (OP_BINARY, bytes([1, 2, 3, 4, 5, 6, 7]), True),
                                        (OP_TEXT, b"fire and forget", False)]
    bad: dict[str, Any]
    for bad in ({}, {"exchange": []}, {"exchange": [{"send": {"type": "ping", "data": ""}}]},
                {"exchange": [{"send": {"type": "binary", "data": [256]}}]}, {"exchange": ["text"]}):
        with pytest.raises(ValueError):
            websocket_exchange(bad)


def test_websocket_exchange_of_the_shared_case(conformance_corpus: Path) -> None:
    case = json.loads((conformance_corpus / "tests" / "HTTPRouteBackendProtocolWebSocket.json").read_text())["cases"][0]
    assert case["mode"] == "websocket"
    assert websocket_exchange(case["websocket"]) == [(OP_TEXT, b"Websocket Support!", True),
                                                     (OP_BINARY, bytes([1, 2, 3, 4, 5, 6, 7]), True)]


def _ws_out(port: int, path: str = "/ws") -> Outgoing:
    return Outgoing(method="GET", scheme="http", authority=f"127.0.0.1:{port}", path=path,
                    host=f"127.0.0.1:{port}", headers=[])


@pytest.fixture
def echo_backend() -> Iterator[EchoServer]:
    server = EchoServer("127.0.0.1", 0, EchoIdentity(pod="infra-backend-v1-abc12-00000"),
                        log=lambda _line: None).start()
    yield server
    server.stop()


def test_websocket_round_trip_against_the_echo_backend(echo_backend: EchoServer) -> None:
    exchange = [(OP_TEXT, b"Websocket Support!", True), (OP_BINARY, bytes([1, 2, 3, 4, 5, 6, 7]), True),
                (OP_BINARY, os.urandom(70_000), True)]
    port = echo_backend.port
    assert websocket_round_trip(_ws_out(port), exchange, origin="ws://gateway/T/case") is None
    assert echo_backend.seen_paths == ["/ws"]

    problem = websocket_round_trip(_ws_out(port, "/not-ws"), exchange)
    assert problem is not None and "expected 101 Switching Protocols, got HTTP/1.1 200 OK" in problem
    assert '"path": "/not-ws"' in problem  # the body of the answer is quoted
    problem = websocket_round_trip(_ws_out(port), exchange, status_codes=[200])
    assert problem == "expected status [200], got 101"

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free = unused.getsockname()[1]
    problem = websocket_round_trip(_ws_out(free), exchange, timeout_s=2)
    assert problem is not None and problem.startswith("request error: connect 127.0.0.1:")


def _bad_ws_server(mode: str) -> tuple[socket.socket, threading.Thread]:
    """A one-connection WebSocket server that gets the echo wrong in the way ``mode`` says."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        # The client gives up (and may reset the connection) as soon as it sees the mistake.
        with conn, conn.makefile("rb") as fp, contextlib.suppress(OSError, EOFError, WebSocketProtocolError):
            key = ""
            while (line := fp.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "sec-websocket-key":
                    key = value.strip()
            digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
            accept = base64.b64encode(digest if mode != "bad-accept" else digest[::-1]).decode()
            conn.sendall(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode())
            reader = WebSocketReader(fp.read, masked=True)
            event = reader.next_event()
            while event is not None:
                opcode, payload = event
                if mode == "as-text":
                    conn.sendall(encode_ws_frame(OP_TEXT, payload))
                elif mode == "masked":
                    conn.sendall(encode_ws_frame(opcode, payload, mask_key=b"abcd"))
                else:
                    conn.sendall(encode_ws_frame(opcode, payload[::-1]))
                event = reader.next_event()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize(("mode", "expected"), [
    ("as-text", "message 2: sent binary 7 bytes b'\\x01\\x02\\x03\\x04\\x05\\x06\\x07', got text 7 bytes"),
    ("reversed", "message 1: sent text 18 bytes b'Websocket Support!', got text 18 bytes b'!troppuS tekcosbeW' back"),
    ("masked", "server frames must not be masked"),
    ("bad-accept", "unacceptable 101 answer: Sec-WebSocket-Accept"),
])
def test_websocket_round_trip_catches_wrong_echoes(mode: str, expected: str) -> None:
    listener, thread = _bad_ws_server(mode)
    try:
        exchange = [(OP_TEXT, b"Websocket Support!", True), (OP_BINARY, bytes([1, 2, 3, 4, 5, 6, 7]), True)]
        problem = websocket_round_trip(_ws_out(listener.getsockname()[1]), exchange, timeout_s=5)
        assert problem is not None and expected in problem, problem
    finally:
        listener.close()
        thread.join(timeout=5)


@pytest.mark.timeout(300)
def test_websocket_conformance_test_runs_and_passes(conformance_corpus: Path) -> None:
    lines: list[str] = []
    doc = run_conformance(ConformanceOptions(corpus=conformance_corpus, only=["HTTPRouteBackendProtocolWebSocket"]),
                          out=lines.append)
    assert doc["tests"] == [{"name": "HTTPRouteBackendProtocolWebSocket", "core": False, "result": "pass",
                             "reason": None, "failed_case": None}], lines


# ------------------------------------------------------------- format parts the shared corpus leaves out

SELF_BASE = """\
apiVersion: v1
kind: Namespace
metadata: {name: gateway-conformance-infra}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: same-namespace, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v2, namespace: gateway-conformance-infra}
spec:
  selector: {app: infra-backend-v2}
  ports: [{name: first-port, protocol: TCP, port: 8080, targetPort: 3000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: infra-backend-v2, namespace: gateway-conformance-infra}
spec:
  replicas: 1
  selector: {matchLabels: {app: infra-backend-v2}}
  template:
    metadata: {labels: {app: infra-backend-v2}}
    spec:
      containers:
        - name: echo
          image: registry.k8s.io/gateway-api/echo-basic:v1.5.1
          env:
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - {name: NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
"""

PLACEHOLDER_GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: static, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  addresses:
    - value: PLACEHOLDER_UNUSABLE_ADDRS
    - value: PLACEHOLDER_USABLE_ADDRS
  listeners: [{name: http, port: 8080, protocol: HTTP}]
"""


def test_response_protocol_is_compared() -> None:
    response = {"protocol": "HTTP/2.0"}
    assert compare_round_trip(req(), exp(response=response), echo(), URL) == (
        "expected response protocol 'HTTP/2.0', got 'HTTP/1.1'")
    h2 = echo()
    h2.protocol = "HTTP/2.0"
    assert compare_round_trip(req(), exp(response=response), h2, URL) is None


def test_address_placeholders_are_filled_like_the_go_applier() -> None:
    docs: list[Any] = [yaml.safe_load(PLACEHOLDER_GATEWAY), {"kind": "HTTPRoute", "spec": {}}]
    assert fill_addresses(docs, ["127.0.0.9", "gw.example"], ["192.0.2.1"])
    assert docs[0]["spec"]["addresses"] == [
        {"type": "IPAddress", "value": "192.0.2.1"},
        {"type": "IPAddress", "value": "127.0.0.9"}, {"type": "Hostname", "value": "gw.example"}]
    assert not fill_addresses(docs, ["127.0.0.9"], [])  # nothing left to fill


@pytest.mark.timeout(300)
def test_a_self_contained_corpus_runs_the_format_parts_no_shared_test_uses(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "base").mkdir(parents=True)
    (corpus / "tests").mkdir()
    (corpus / "base" / "manifests.yaml").write_text(SELF_BASE)
    (corpus / "tests" / "Tiny.yaml").write_text(TINY_ROUTE)
    (corpus / "tests" / "Static.yaml").write_text(PLACEHOLDER_GATEWAY)
    accepted = {"check": "GatewayAndHTTPRoutesMustBeAccepted", "kind": "Gateway", "namespace": NS,
                "name": "same-namespace", "listeners": None, "routeKind": "HTTPRoute",
                "routes": [{"namespace": NS, "name": "tiny"}]}

    def with_protocol(protocol: str) -> dict[str, Any]:
        case = _tiny_case(f"answered over {protocol}", "infra-backend-v2")
        case["expected"]["response"] = {"protocol": protocol}
        return case

    static = _tiny_test("Static", [], [{"check": "GatewayMustHaveCondition", "kind": "Gateway", "namespace": NS,
                                        "name": "static", "condition": "Accepted", "status": None,
                                        "reason": None}])
    static["manifests"] = ["tests/Static.yaml"]
    tests = {
        "ProtocolHTTP11": _tiny_test("ProtocolHTTP11", [with_protocol("HTTP/1.1")], [accepted]),
        "ProtocolHTTP2": _tiny_test("ProtocolHTTP2", [with_protocol("HTTP/2.0")], [accepted]),
        "Static": static,
        "FutureMode": _tiny_test("FutureMode", [{**_tiny_case("streams", "infra-backend-v2"), "mode": "grpcStream"}],
                                 [accepted]),
    }
    entries = []
    for name, test in tests.items():
        (corpus / "tests" / f"{name}.json").write_text(json.dumps(test))
        entries.append({"name": name, "core": True, "features": test["features"], "file": f"tests/{name}.json"})
    (corpus / "index.json").write_text(json.dumps({"tag": "test", "commit": "0", "tests": entries}))

    lines: list[str] = []
    doc = run_conformance(ConformanceOptions(corpus=corpus, workdir=tmp_path / "work", case_timeout_s=3),
                          out=lines.append)
    results = {t["name"]: t for t in doc["tests"]}
    assert results["ProtocolHTTP11"]["result"] == "pass", results["ProtocolHTTP11"]
    assert results["ProtocolHTTP2"]["result"] == "fail"
    assert "expected response protocol 'HTTP/2.0', got 'HTTP/1.1'" in results["ProtocolHTTP2"]["reason"]
    # A test that cannot run names the part of the format it needs.
    assert results["Static"]["result"] == "skip"
    assert "PLACEHOLDER_UNUSABLE_ADDRS" in results["Static"]["reason"]
    assert "--unusable-address" in results["Static"]["reason"]
    assert results["FutureMode"]["result"] == "skip"
    assert "mode 'grpcStream' is not in FORMAT.md's case modes" in results["FutureMode"]["reason"]
    # The report says what is claimed and how each profile did.
    assert "HTTPRouteBackendTimeout" in doc["features"]
    assert doc["profile"] == {"core": {"pass": 1, "total": 4}, "extended": {"pass": 0, "total": 0}}
    assert any(line.startswith("features claimed: ") for line in lines)
    # With addresses supplied, the same test runs.
    doc = run_conformance(ConformanceOptions(corpus=corpus, only=["Static"], workdir=tmp_path / "work2",
                                             usable_addresses=["127.0.0.9"], unusable_addresses=["192.0.2.1"]),
                          out=lines.append)
    assert doc["tests"][0]["result"] == "pass", doc["tests"][0]
