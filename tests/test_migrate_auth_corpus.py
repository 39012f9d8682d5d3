"""The migration corpus's authentication, error-page and affinity cases, converted by ann_auth's
handlers and served by a real wardgate (nginx) with real backends: each request of the case must
get the answer ingress-nginx gave, except the differences listed in KNOWN (each one says why).

The Ingress -> HTTPRoute part is written here the simplest way (one route per Ingress, one rule
per backend); the converter proper (migrate/convert.py) is tested on its own.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from conftest import GW, Backend, Gateway, request, shared_corpus
from http_stubs import StubServer
from wardgate.migrate.ann_auth import CATALOG
from wardgate.migrate.contrib import Source

pytestmark = pytest.mark.timeout(180)

PREFIX = "nginx.ingress.kubernetes.io/"
# (case, request index, expectation key) -> why wardgate's answer differs there.
KNOWN = {
    ("auth-basic-with-cors", 0, "responseHeaders"): "Access-Control-Allow-Origin on a request without Origin: the "
                                                    "CORS conversion's business (ann_policy), not auth's",
    ("auth-url-external", 5, "status"): "this file's simple conversion has no rule for undefined paths, so "
                                        "wardgate's 404 comes first; convert.py gives them an IngressNginxCompat "
                                        "notFound rule after auth (test_migrate.py)",
    ("custom-http-errors-with-default-backend", 1, "upstreamPath"): "nginx keeps the query through `rewrite ^ / "
                                                                    "break` (the error backend gets /?x=1)",
    ("custom-http-errors-with-default-backend", 2, "backend"): "not observable here: this echo server answers "
                                                               "/status/NNN without a body (the status is checked)",
    ("custom-http-errors-with-default-backend", 4, "status"): "custom-http-errors without default-backend is not "
                                                              "converted (the controller's built-in 404 backend)",
    ("custom-http-errors-with-default-backend", 4, "backend"): "same",
    ("default-backend-annotation-no-endpoints", 0, "upstreamHeaders"): "X-Request-ID: wardgate sends its own id, "
                                                                       "never the client's",
}
CASES = ["auth-basic-with-cors", "auth-url-external", "affinity-cookie", "custom-http-errors-with-default-backend",
         "default-backend-annotation-no-endpoints"]


def _stub(name: str, spec: dict[str, Any]) -> StubServer:
    """The corpus's `mode: auth` and `statusFromRequestHeader` backends."""

    def answer(req: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        status, headers = 200, {}
        for rule in spec.get("rules", []):
            if rule.get("default") or all(req["headers"].get(k) == v for k, v in rule["whenHeader"].items()):
                status, headers = rule["status"], rule.get("headers", {})
                break
        if spec.get("statusFromRequestHeader"):
            status = int(req["headers"].get(spec["statusFromRequestHeader"]) or 200)
        body = json.dumps({"service": name, "path": req["path"], "method": req["method"],
                           "headers": {k: [v] for k, v in req["headers"].items()}}).encode()
        return status, {**headers, "Content-Type": "application/json"}, body

    return StubServer(answer)


@pytest.fixture
def stubs() -> Iterator[list[StubServer]]:
    made: list[StubServer] = []
    yield made
    for s in made:
        s.close()


def _no_endpoints(name: str, port: int) -> str:
    return textwrap.dedent(f"""\
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: default}}
        spec:
          ports: [{{name: http, port: {port}, targetPort: 3000}}]
        """)


def _convert(ing: dict[str, Any]) -> tuple[str, list[str]]:
    """An HTTPRoute and a SecurityPolicy for one Ingress, through ann_auth's handlers."""
    meta = ing["metadata"]
    anns = {k.removeprefix(PREFIX): v for k, v in (meta.get("annotations") or {}).items()}
    src = Source("case", f"Ingress default/{meta['name']}", "default", "nginx", anns, {})
    security: dict[str, Any] = {}
    rule_fields: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in anns.items():
        entry = CATALOG.get(key)
        if entry is None or entry.handler is None:
            continue
        c = entry.handler(key, value, src)
        security.update(c.security)
        rule_fields.update(c.rule)
        notes += [f"{f.item}: {f.status}" for f in c.findings]
    filters = [{"type": "CORS", "cors": {"allowOrigins": ["*"]}}] if anns.get("enable-cors") == "true" else []
    rules = []
    for r in ing["spec"]["rules"]:
        for p in r["http"]["paths"]:
            svc = p["backend"]["service"]
            rules.append({"matches": [{"path": {"type": "Exact" if p["pathType"] == "Exact" else "PathPrefix",
                                                "value": p["path"]}}],
                          "backendRefs": [{"name": svc["name"], "port": svc["port"]["number"]}],
                          "filters": filters, **rule_fields})
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": meta["name"], "namespace": "default"},
             "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [r["host"] for r in ing["spec"]["rules"]],
                      "rules": rules}}
    docs = [route]
    if security:
        docs.append({"apiVersion": "policy.wardgate.io/v1alpha1", "kind": "SecurityPolicy",
                     "metadata": {"name": meta["name"], "namespace": "default"},
                     "spec": {"targetRefs": [{"kind": "HTTPRoute", "name": meta["name"]}], **security}})
    return "".join("---\n" + yaml.safe_dump(d) for d in docs), notes


def _matches(want: Any, got: str | None) -> bool:
    if got is None:
        return False
    if isinstance(want, str):
        return got == want
    if "contains" in want:
        return all(part in got for part in want["contains"])
    if "present" in want:
        return True
    raise AssertionError(f"matcher {want} not handled")


@pytest.mark.parametrize("name", CASES)
def test_corpus_case_on_real_nginx(name: str, gateway: Gateway, backends: Callable[..., Backend],
                                   stubs: list[StubServer]) -> None:
    case = json.loads((shared_corpus("migration") / "cases" / f"{name}.json").read_text())
    docs = [d for d in yaml.safe_load_all(case["manifests"]) if d]
    parts = [GW]
    targets: dict[str, StubServer] = {}
    for svc, spec in case["backends"].items():
        if spec.get("mode") == "auth" or spec.get("statusFromRequestHeader"):
            stub = _stub(svc, spec)
            stubs.append(stub)
            targets[svc] = stub
            parts.append(stub.manifests(svc, port=spec["port"]))
        elif spec.get("replicas", 1) == 0:
            parts.append(_no_endpoints(svc, spec["port"]))
        else:
            b = backends(svc, replicas=spec.get("replicas", 1))
            parts.append(b.manifests(spec["port"]))
    parts += ["---\n" + yaml.safe_dump(d) for d in docs if d["kind"] == "Secret"]
    for ing in (d for d in docs if d["kind"] == "Ingress"):
        text, _ = _convert(ing)
        parts.append(text)
    gateway.write("case.yaml", *parts)
    gateway.reconcile()
    answers: list[Any] = []
    failures: list[str] = []
    for i, req in enumerate(r for r in case["requests"] if "method" in r):
        headers = dict(req.get("headers") or {})
        if "useCookiesFromRequest" in req:
            headers["Cookie"] = answers[req["useCookiesFromRequest"]].headers["set-cookie"].split(";")[0]
        body = req.get("body")
        r = request(f"http://{gateway.address()}:8080{req['path']}", host=req["host"], method=req["method"],
                    headers=headers, data=body.encode() if body is not None else None)
        answers.append(r)
        echoed = r.json if r.body[:1] == b"{" else None
        backend = None
        if echoed is not None:
            backend = echoed.get("service") if "service" in echoed and echoed["service"] in targets else \
                str(echoed.get("pod", "")).rsplit("-", 2)[0] or None
        for key, want in req["expect"].items():
            if (name, i, key) in KNOWN:
                continue
            got_headers = (echoed or {}).get("headers", {})
            ok = True
            if key == "status":
                ok = r.status == want
            elif key == "backend":
                ok = backend == want
            elif key == "upstreamPath":
                ok = echoed is not None and echoed["path"] == want
            elif key == "upstreamMethod":
                ok = echoed is not None and echoed["method"] == want
            elif key == "upstreamHeaders":
                ok = all(_matches(v, next((x[0] for k, x in got_headers.items() if k.lower() == h.lower()), None))
                         for h, v in want.items())
            elif key == "absentUpstreamHeaders":
                ok = not any(k.lower() == h.lower() for h in want for k in got_headers)
            elif key == "responseHeaders":
                ok = all(_matches(v, r.headers.get(h.lower())) for h, v in want.items())
            elif key == "absentResponseHeaders":
                ok = not any(h.lower() in r.headers for h in want)
            elif key == "sameInstanceAsRequest":
                ok = echoed is not None and echoed.get("pod") == answers[want].json.get("pod")
            elif key == "authRequest":
                asked = next(s for s in targets.values() if s.requests).requests[-1]
                ok = (asked["method"], asked["path"]) == (want["method"], want["path"]) and all(
                    asked["headers"].get(h) == v for h, v in want["headers"].items()) and \
                    bool(asked["body"]) == want["bodyForwarded"]
            if not ok:
                failures.append(f"request {i} ({req['method']} {req['host']}{req['path']}): {key} expected {want!r}, "
                                f"got status {r.status}, backend {backend}, body {r.body[:200]!r}")
    assert not failures, "\n".join(failures)
