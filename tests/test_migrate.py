"""`wardgate migrate` (docs/migration.md): class mapping, routes, report, determinism, bad input,
and the migrated output run through the real pipeline."""

from __future__ import annotations

import json
import random
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from conftest import REPO, Backend, Gateway, request
from http_stubs import StubServer
from test_listeners import tls_secret
from wardgate.migrate import MigrateOptions, migrate
from wardgate.migrate.output import dump
from wardgate.model import parse
from wardgate.sources.files import load_text
from wardgate.translate import translate

CASES = REPO.parent / "shared" / "migration" / "cases"


def case_manifests(case: str) -> str:
    path = CASES / f"{case}.json"
    if not path.exists():
        pytest.skip(f"corpus case {case} not available")
    return str(json.loads(path.read_text())["manifests"])


def ingress(name: str, host: str | None = "app.example.com", *, ns: str = "default", cls: str | None = "nginx",
            paths: list[tuple[str, str, str, int]] | None = None, annotations: dict[str, str] | None = None,
            tls: list[dict[str, Any]] | None = None, default_backend: tuple[str, int] | None = None) -> str:
    spec: dict[str, Any] = {}
    if cls:
        spec["ingressClassName"] = cls
    if default_backend:
        spec["defaultBackend"] = {"service": {"name": default_backend[0], "port": {"number": default_backend[1]}}}
    if paths is not None or host is not None:
        rule: dict[str, Any] = {"http": {"paths": [
            {"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"number": port}}}}
            for p, t, s, port in (paths or [("/", "Prefix", "app", 80)])]}}
        if host:
            rule["host"] = host
        spec["rules"] = [rule]
    if tls:
        spec["tls"] = tls
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    return yaml.safe_dump({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
                           "spec": spec}, sort_keys=False)


NGINX_CLASS = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
"""

SNIPPETS_ALLOWED = """
apiVersion: v1
kind: ConfigMap
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
data: {allow-snippet-annotations: "true", annotations-risk-level: Critical}
"""


def run(*docs: str, options: MigrateOptions | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    objs = load_text("---\n".join(docs), "input.yaml")
    res = migrate(objs, options)
    return res.objects, res.report.to_dict()


def of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def pipeline_problems(objects: list[dict[str, Any]], extra: str = "") -> list[str]:
    """Parse + translate the output (what `wardgate validate` does); the problems it reports,
    except missing Services (the tests' inputs have none)."""
    raws = load_text("---\n".join(yaml.safe_dump(o) for o in objects), "out.yaml")
    rs = parse(raws + (load_text(extra, "extra.yaml") if extra else []))
    return [str(p) for p in translate(rs).problems if not re.search(r"Service \S+ not found", str(p))]


# ---------------------------------------------------------------------------------------------


def test_plain_ingress_becomes_gateway_and_route() -> None:
    objects, report = run(NGINX_CLASS, ingress("web", paths=[("/api", "Prefix", "api", 80),
                                                            ("/health", "Exact", "api", 8080)]))
    gw = named(objects, "Gateway", "nginx")
    assert gw["metadata"]["namespace"] == "ingress-nginx"
    assert gw["spec"]["gatewayClassName"] == "wardgate"
    assert [(listener["name"], listener["port"]) for listener in gw["spec"]["listeners"]] == [("http", 80)]
    route = named(objects, "HTTPRoute", "app.example.com")
    assert route["metadata"]["annotations"]["wardgate.io/migrated-from"] == "Ingress default/web"
    assert route["spec"]["hostnames"] == ["app.example.com"]
    assert route["spec"]["parentRefs"] == [{"name": "nginx", "namespace": "ingress-nginx", "sectionName": "http"}]
    rules = route["spec"]["rules"]
    assert [r["matches"] for r in rules] == [[{"path": {"type": "PathPrefix", "value": "/api"}}],
                                             [{"path": {"type": "Exact", "value": "/health"}}]]
    assert [r["backendRefs"] for r in rules] == [[{"name": "api", "port": 80}], [{"name": "api", "port": 8080}]]
    assert all(r["name"].startswith("web-") for r in rules)
    assert report["configMaps"]["nginx"]["configMap"] == "ingress-nginx/ingress-nginx-controller"
    assert "Helm" in report["configMaps"]["nginx"]["how"]
    assert all("wardgate.io/migrated-from" in o["metadata"]["annotations"] for o in objects)
    assert pipeline_problems(objects) == []


def test_output_is_deterministic_whatever_the_input_order() -> None:
    docs = [NGINX_CLASS] + [ingress(f"app{i}", f"h{i % 3}.example.com",
                                    paths=[(f"/p{i}", "Prefix", f"svc{i}", 80)]) for i in range(12)]
    first = migrate(load_text("---\n".join(docs), "in.yaml")).yaml()
    assert migrate(load_text("---\n".join(docs), "in.yaml")).yaml() == first
    shuffled = docs[:]
    random.Random(7).shuffle(shuffled)
    assert migrate(load_text("---\n".join(shuffled), "in.yaml")).yaml() == first


def test_first_ingress_keeps_a_path_ingress_nginx_order() -> None:
    """Without timestamps the lexically greater namespace/name comes first; with them, the oldest."""
    a = ingress("a-late", paths=[("/x", "Prefix", "a", 80)])
    z = ingress("z-early", paths=[("/x", "Prefix", "z", 80)])
    objects, report = run(NGINX_CLASS, a, z)
    rules = named(objects, "HTTPRoute", "app.example.com")["spec"]["rules"]
    assert [r["backendRefs"][0]["name"] for r in rules] == ["z"]
    dropped = [f for f in report["findings"] if f["object"] == "Ingress default/a-late"]
    assert dropped[0]["item"] == "spec.rules[0].http.paths[0]" and "already defined" in dropped[0]["detail"]
    aged = a.replace("namespace: default", "namespace: default\n  creationTimestamp: '2024-01-01T00:00:00Z'")
    zaged = z.replace("namespace: default", "namespace: default\n  creationTimestamp: '2025-01-01T00:00:00Z'")
    objects, _ = run(NGINX_CLASS, aged, zaged)
    rules = named(objects, "HTTPRoute", "app.example.com")["spec"]["rules"]
    assert [r["backendRefs"][0]["name"] for r in rules] == ["a"]


def test_three_classes_three_gateways() -> None:
    objects, report = run(case_manifests("wc-class-isolation"))
    gws = {f"{g['metadata']['namespace']}/{g['metadata']['name']}" for g in of(objects, "Gateway")}
    assert gws == {"ingress-nginx-internal/internal", "ingress-nginx-public/public",
                   "ingress-nginx-phishing/phishing-simulation"}
    assert report["configMaps"]["internal"]["configMap"] == "ingress-nginx-internal/ingress-nginx-internal-controller"
    assert report["configMaps"]["internal"]["found"] is True
    parents = {r["metadata"]["namespace"] + "/" + r["metadata"]["name"]: r["spec"]["parentRefs"][0]["name"]
               for r in of(objects, "HTTPRoute")}
    # no class -> the default IngressClass (public); the legacy annotation still works
    assert parents == {"web/status.northwind.example": "public", "intranet/status.northwind.example": "internal",
                       "intranet/legacy.corp.northwind.internal": "internal",
                       "web/noclass.northwind.example": "public"}
    wrong = [f for f in report["findings"] if f["object"] == "Ingress phishsim/wrong-class"]
    assert wrong[0]["status"] == "not-converted" and wrong[0]["item"] == "spec.ingressClassName"
    assert pipeline_problems(objects) == []


def test_class_on_two_gateways_is_one_route_with_two_parents() -> None:
    opts = MigrateOptions(gateways=(("nginx", "edge", "public"), ("nginx", "corp", "internal")))
    objects, report = run(NGINX_CLASS, ingress("web"), options=opts)
    routes = of(objects, "HTTPRoute")
    assert len(routes) == 1
    assert routes[0]["spec"]["parentRefs"] == [
        {"name": "public", "namespace": "edge", "sectionName": "http"},
        {"name": "internal", "namespace": "corp", "sectionName": "http"}]
    assert {g["metadata"]["namespace"] for g in of(objects, "Gateway")} == {"edge", "corp"}
    assert report["gateways"]["nginx"]["how"] == "--gateway"
    assert pipeline_problems(objects) == []


def test_two_classes_on_one_gateway() -> None:
    classes = NGINX_CLASS + "---\n" + NGINX_CLASS.replace("name: nginx", "name: other").replace(
        "k8s.io/ingress-nginx", "k8s.io/ingress-nginx-other")
    opts = MigrateOptions(gateways=(("nginx", "gw", "shared"), ("other", "gw", "shared")))
    objects, _ = run(classes, ingress("a", "a.example.com"), ingress("b", "b.example.com", cls="other"),
                     options=opts)
    gws = of(objects, "Gateway")
    assert len(gws) == 1
    assert gws[0]["metadata"]["annotations"]["wardgate.io/migrated-from"] == "IngressClass nginx, IngressClass other"
    assert pipeline_problems(objects) == []


def test_configmap_from_deployment_args_and_option() -> None:
    deployment = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: ctl, namespace: edge}
spec:
  template:
    spec:
      containers:
        - name: controller
          args: [/nginx-ingress-controller, --controller-class=k8s.io/ingress-nginx,
                 "--configmap=$(POD_NAMESPACE)/edge-config"]
"""
    objects, report = run(NGINX_CLASS, deployment, ingress("web"))
    assert report["configMaps"]["nginx"]["configMap"] == "edge/edge-config"
    assert "Deployment edge/ctl" in report["configMaps"]["nginx"]["how"]
    assert named(objects, "Gateway", "nginx")["metadata"]["namespace"] == "edge"
    _, report = run(NGINX_CLASS, deployment, ingress("web"),
                    options=MigrateOptions(configmaps=(("nginx", "x", "y"),)))
    assert report["configMaps"]["nginx"]["configMap"] == "x/y"
    assert report["configMaps"]["nginx"]["how"].startswith("--configmap")


def test_tls_hosts_get_https_listeners_redirect_and_reference_grants() -> None:
    tls = [{"hosts": ["app.example.com"], "secretName": "app-cert"}]
    objects, _ = run(NGINX_CLASS, ingress("web", tls=tls))
    gw = named(objects, "Gateway", "nginx")
    https = gw["spec"]["listeners"][1]
    assert https == {"name": "https-app-example-com", "protocol": "HTTPS", "port": 443,
                     "hostname": "app.example.com",
                     "tls": {"certificateRefs": [{"name": "app-cert", "namespace": "default"}]},
                     "allowedRoutes": {"namespaces": {"from": "All"}}}
    grant = of(objects, "ReferenceGrant")[0]
    assert grant["metadata"]["namespace"] == "default"
    assert grant["spec"]["from"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                      "namespace": "ingress-nginx"}]
    assert grant["spec"]["to"] == [{"group": "", "kind": "Secret", "name": "app-cert"}]
    # One route on both listeners: its rules redirect plain HTTP (IngressNginxCompat sslRedirect)
    main = named(objects, "HTTPRoute", "app.example.com")
    assert [p["sectionName"] for p in main["spec"]["parentRefs"]] == ["http", "https-app-example-com"]
    rule = main["spec"]["rules"][0]
    assert rule["backendRefs"] == [{"name": "app", "port": 80}]
    compat = named(objects, "IngressNginxCompat", rule["filters"][0]["extensionRef"]["name"])
    assert compat["spec"] == {"sslRedirect": {"statusCode": 308}}
    assert [r["metadata"]["name"] for r in of(objects, "HTTPRoute")] == ["app.example.com"]
    # (the corpus test below runs TLS hosts with real certificates through the pipeline)


def test_https_redirect_forms() -> None:
    """The IngressNginxCompat of each rule: sslRedirect with the ConfigMap's code, forwarded headers
    and trailing slash; none on no-tls-redirect-locations paths or where the Ingress redirects
    itself; from-to-www-redirect's redirect.hostname; a finding when https isn't served."""
    config = """
apiVersion: v1
kind: ConfigMap
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
data: {use-forwarded-headers: "true", http-redirect-code: "301", preserve-trailing-slash: "true",
       no-tls-redirect-locations: "/.well-known/acme-challenge, /health"}
"""
    tls = [{"hosts": ["app.example.com", "www.app.example.com"], "secretName": "app-cert"}]
    objects, report = run(
        NGINX_CLASS, config,
        ingress("web", paths=[("/", "Prefix", "app", 80), ("/health", "Exact", "app", 80),
                              ("/.well-known/acme-challenge/x", "Exact", "solver", 80)], tls=tls,
                annotations={"nginx.ingress.kubernetes.io/from-to-www-redirect": "true"}),
        ingress("moved", "moved.example.com", tls=[{"hosts": ["moved.example.com"], "secretName": "c"}],
                annotations={"nginx.ingress.kubernetes.io/permanent-redirect": "https://new.example.com"}),
        ingress("forced", "forced.example.com", annotations={"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}))

    def compat_of(route: str) -> dict[str, Any]:
        out = {}
        for rule in named(objects, "HTTPRoute", route)["spec"]["rules"]:
            ref = next((f["extensionRef"]["name"] for f in rule.get("filters", [])
                        if f["type"] == "ExtensionRef"), None)
            path = rule["matches"][0]["path"]["value"]
            out[path] = named(objects, "IngressNginxCompat", ref)["spec"] if ref else None
        return out

    ssl = {"sslRedirect": {"statusCode": 301, "preserveTrailingSlash": True, "forwardedHeaders": True}}
    assert compat_of("app.example.com") == {"/": ssl, "/health": None, "/.well-known/acme-challenge/x": None}
    assert compat_of("www.app.example.com") == {"/": {"redirect": {
        "hostname": "app.example.com", "statusCode": 301, "forwardedHeaders": True}}}
    # the Ingress's own redirect on both listeners: ingress-nginx's `return` ran before its https redirect
    moved = named(objects, "HTTPRoute", "moved.example.com")
    assert [p["sectionName"] for p in moved["spec"]["parentRefs"]] == ["http", "https-moved-example-com"]
    assert compat_of("moved.example.com") == {"/": {"redirect": {"location": "https://new.example.com",
                                                                 "statusCode": 301}}}
    assert compat_of("forced.example.com") == {"/": ssl}
    found = {(f["object"], f["item"]): f["status"] for f in report["findings"]}
    assert found[("Ingress default/forced", "force-ssl-redirect (https target)")] == "converted-with-difference"
    assert found[("Ingress default/web", "ssl-redirect (default)")] == "exact"
    assert found[("Ingress default/web", "from-to-www-redirect")] == "exact"
    assert not any(f["item"].startswith("ssl-redirect") for f in report["findings"]
                   if f["object"] == "Ingress default/moved")
    assert pipeline_problems(objects) == []


def test_ssl_redirect_false_serves_both_listeners() -> None:
    tls = [{"hosts": ["app.example.com"], "secretName": "app-cert"}]
    objects, _ = run(NGINX_CLASS, ingress("web", tls=tls,
                                          annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "false"}))
    routes = of(objects, "HTTPRoute")
    assert len(routes) == 1
    assert [p["sectionName"] for p in routes[0]["spec"]["parentRefs"]] == ["http", "https-app-example-com"]


def test_default_backend_catch_all_and_host_rules() -> None:
    objects, _ = run(NGINX_CLASS, ingress("catch", host=None, default_backend=("fallback", 80)),
                     ingress("with-default", "x.example.com", paths=[("/api", "Prefix", "api", 80)],
                             default_backend=("other", 8080)))
    catch = named(objects, "HTTPRoute", "catch-all")
    assert "hostnames" not in catch["spec"]
    assert catch["spec"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert catch["spec"]["rules"][0]["backendRefs"] == [{"name": "fallback", "port": 80}]
    host = named(objects, "HTTPRoute", "x.example.com")["spec"]["rules"]
    assert host[-1]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert host[-1]["backendRefs"] == [{"name": "other", "port": 8080}]
    assert pipeline_problems(objects) == []


def test_port_names_resolve_through_the_service() -> None:
    service = """
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {ports: [{name: web, port: 8081}]}
"""
    doc = ingress("web").replace("number: 80", "name: web").replace("name: app", "name: api")
    objects, report = run(NGINX_CLASS, service, doc)
    assert named(objects, "HTTPRoute", "app.example.com")["spec"]["rules"][0]["backendRefs"] == [
        {"name": "api", "port": 8081}]
    objects, report = run(NGINX_CLASS, doc)
    assert not of(objects, "HTTPRoute")
    f = report["findings"][0]
    assert (f["object"], f["item"], f["status"]) == (
        "Ingress default/web", "spec.rules[0].http.paths[0].backend.service.port.name", "not-converted")


def test_bad_input_names_file_object_and_field_and_the_rest_converts() -> None:
    bad_path = ingress("broken", "b.example.com").replace("pathType: Prefix", "pathType: Regex")
    bad_value = ingress("redirects", "r.example.com",
                        annotations={"nginx.ingress.kubernetes.io/permanent-redirect": "not a url",
                                     "nginx.ingress.kubernetes.io/ssl-redirect": "maybe",
                                     "nginx.ingress.kubernetes.io/no-such-annotation": "1"})
    not_a_map = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: worse}\nspec: {rules: 7}\n"
    objects, report = run(NGINX_CLASS, bad_path, bad_value, not_a_map, ingress("good", "g.example.com"))
    found = {(f["file"], f["object"], f["item"], f["status"]) for f in report["findings"]}
    assert ("input.yaml[doc 1]", "Ingress default/broken", "spec.rules[0].http.paths[0].pathType",
            "not-converted") in found
    assert ("input.yaml[doc 2]", "Ingress default/redirects", "permanent-redirect", "not-converted") in found
    assert ("input.yaml[doc 2]", "Ingress default/redirects", "ssl-redirect", "not-converted") in found
    assert ("input.yaml[doc 2]", "Ingress default/redirects", "no-such-annotation", "unknown") in found
    assert ("input.yaml[doc 3]", "Ingress default/worse", "spec.rules", "not-converted") in found
    hosts = {r["spec"]["hostnames"][0] for r in of(objects, "HTTPRoute")}
    assert hosts == {"g.example.com", "r.example.com"}
    assert pipeline_problems(objects) == []


def test_report_summary_and_strict(tmp_path: Path) -> None:
    src = tmp_path / "in.yaml"
    src.write_text("---\n".join([NGINX_CLASS, ingress("web", annotations={
        "nginx.ingress.kubernetes.io/upstream-vhost": "internal.example",
        "nginx.ingress.kubernetes.io/made-up": "x"})]))
    cmd = [sys.executable, "-m", "wardgate", "migrate", "-f", str(src), "--report", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stderr)
    # Gateway-wide: the ClientTrafficPolicy forwards ambiguous paths and sends ingress-nginx's
    # upstream headers; without --default-certificate, HTTPS for hosts without TLS is a difference.
    assert doc["summary"]["byStatus"] == {"exact": 3, "converted-with-difference": 1, "not-converted": 0,
                                          "unknown": 1}
    assert doc["summary"]["byClass"] == {"nginx": {"exact": 3, "converted-with-difference": 1, "unknown": 1}}
    assert doc["summary"]["byAnnotation"] == {"made-up": {"unknown": 1}, "path.ambiguous": {"exact": 1},
                                              "backendHeaders": {"exact": 1}, "upstream-vhost": {"exact": 1},
                                              "--default-ssl-certificate": {"converted-with-difference": 1}}
    out = list(yaml.safe_load_all(done.stdout))
    assert {o["kind"] for o in out} == {"GatewayClass", "Gateway", "HTTPRoute", "SecurityPolicy",
                                        "ClientTrafficPolicy"}
    strict = subprocess.run([*cmd, "--strict"], capture_output=True, text=True, timeout=60)
    assert strict.returncode == 1
    # -o DIR: one file per namespace plus the report; stdin with -f -
    outdir = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "wardgate", "migrate", "-f", "-", "-o", str(outdir)],
                          input=src.read_text(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in outdir.iterdir()) == ["_cluster.yaml", "default.yaml", "ingress-nginx.yaml",
                                                       "report.json", "report.txt"]
    assert "made-up" in (outdir / "report.txt").read_text()
    yamls = [a for p in sorted(outdir.glob("*.yaml")) for a in ("-f", str(p))]
    val = subprocess.run([sys.executable, "-m", "wardgate", "validate", *yamls],
                         capture_output=True, text=True, timeout=60)
    assert val.returncode == 0 and "1 gateway(s) to serve" in val.stdout, val.stderr


@pytest.mark.parametrize("case", sorted(p.stem for p in CASES.glob("*.json")) if CASES.exists() else [])
def test_every_corpus_case_migrates_to_valid_output(case: str) -> None:
    """The migrated corpus parses and translates without a problem (the pipeline accepts it)."""
    manifests = case_manifests(case)
    objects = load_text(manifests, case)
    res = migrate(objects)
    rs = parse(load_text(res.yaml(), "out.yaml") + objects)
    assert [str(p) for p in translate(rs).problems] == []


# ---------------------------------------------------------------------------------------------
# The migrated output on a real gateway


def https_get(addr: str, host: str, path: str, ca: trustme.CA, headers: dict[str, str] | None = None
              ) -> tuple[int, dict[str, str], bytes]:
    """One HTTPS request with SNI `host`: status, lower-cased headers, body."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with socket.create_connection((addr, 443), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=host) as s:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if hdrs.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return int(lines[0].split()[1]), hdrs, body


def test_migrated_output_serves_on_a_real_gateway(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    ca = trustme.CA()
    svc = {name: backends(name) for name in ("api", "web", "canary", "fallback")}
    shop_tls = [{"hosts": ["shop.example.com"], "secretName": "shop-cert"}]
    source = "---\n".join([
        NGINX_CLASS,
        ingress("shop", "shop.example.com", paths=[("/api", "Prefix", "api", 80), ("/exact", "Exact", "web", 80)],
                tls=shop_tls, annotations={"nginx.ingress.kubernetes.io/upstream-vhost": "internal.shop"}),
        ingress("shop-canary", "shop.example.com", paths=[("/api", "Prefix", "canary", 80)],
                annotations={"nginx.ingress.kubernetes.io/canary": "true",
                             "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary"}),
        ingress("plain", "plain.example.com", paths=[("/", "Prefix", "web", 80)]),
        ingress("catch", host=None, default_backend=("fallback", 80)),
    ])
    result = migrate(load_text(source, "ingresses.yaml"))
    assert result.objects[0]["kind"] == "GatewayClass"  # the fixture has its own
    gateway.write("migrated.yaml", dump(result.objects[1:]))
    gateway.write("world.yaml", *(b.manifests() for b in svc.values()), tls_secret("shop-cert", ca, "shop.example.com"))
    gateway.reconcile()
    addr = gateway.address("ingress-nginx/nginx")

    def pod(body: bytes) -> str:
        return str(json.loads(body)["pod"]).split("-")[0]

    # ssl-redirect: plain HTTP to a TLS host redirects with 308
    r = request(f"http://{addr}/api/x?q=1", host="shop.example.com")
    assert (r.status, r.headers["location"]) == (308, "https://shop.example.com/api/x?q=1")
    status, headers, body = https_get(addr, "shop.example.com", "/api/x", ca)
    assert (status, pod(body)) == (200, "api")
    echoed = json.loads(body)
    assert echoed["host"] == "internal.shop"  # upstream-vhost
    assert echoed["headers"]["X-Forwarded-Port"] == ["443"]
    assert echoed["headers"]["X-Scheme"] == ["https"]
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    # the canary gets header-selected traffic, with the mainline's configuration
    status, _, body = https_get(addr, "shop.example.com", "/api/x", ca, {"X-Canary": "always"})
    assert (status, pod(body), json.loads(body)["host"]) == (200, "canary", "internal.shop")
    status, _, body = https_get(addr, "shop.example.com", "/api/x", ca, {"X-Canary": "never"})
    assert pod(body) == "api"
    assert https_get(addr, "shop.example.com", "/exact", ca)[0] == 200
    assert https_get(addr, "shop.example.com", "/exact/", ca)[0] == 404
    # a host without TLS is served on HTTP; its undefined paths are 404, not the catch-all's
    r = request(f"http://{addr}/anything", host="plain.example.com")
    assert (r.status, pod(r.body)) == (200, "web")
    assert json.loads(r.body)["headers"]["X-Forwarded-Port"] == ["80"]
    r = request(f"http://{addr}/x", host="unknown.example.org")
    assert (r.status, pod(r.body)) == (200, "fallback")
    assert request(f"http://{addr}/other", host="shop.example.com").status == 308


def test_canary_weight_cookie_and_header_rules() -> None:
    main = ingress("main", paths=[("/", "Prefix", "stable", 80)])
    canary = ingress("main-canary", paths=[("/", "Prefix", "canary", 80)], annotations={
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
        "nginx.ingress.kubernetes.io/canary-by-cookie": "beta",
        "nginx.ingress.kubernetes.io/canary-weight": "30",
        "nginx.ingress.kubernetes.io/upstream-vhost": "ignored.example"})
    objects, report = run(NGINX_CLASS, main, canary)
    rules = named(objects, "HTTPRoute", "app.example.com")["spec"]["rules"]
    # header always/never, cookie always/never, then the weighted split; all the mainline's rules
    assert [r.get("matches", [{}])[0].get("headers") for r in rules] == [
        None,
        [{"name": "X-Canary", "value": "always"}], [{"name": "X-Canary", "value": "never"}],
        [{"type": "RegularExpression", "name": "Cookie", "value": r"(?:.*;\s*)?beta=always(?:;.*)?"}],
        [{"type": "RegularExpression", "name": "Cookie", "value": r"(?:.*;\s*)?beta=never(?:;.*)?"}]]
    assert rules[0]["backendRefs"] == [{"name": "stable", "port": 80, "weight": 70},
                                       {"name": "canary", "port": 80, "weight": 30}]
    assert [r["backendRefs"][0]["name"] for r in rules[1:]] == ["canary", "stable", "canary", "stable"]
    assert all(r["name"].startswith("main-") for r in rules)
    ignored = next(f for f in report["findings"] if f["item"] == "upstream-vhost")
    assert ignored["status"] == "exact" and "canary" in ignored["detail"]
    assert not any("URLRewrite" in str(r) for r in rules)
    assert pipeline_problems(objects) == []


def test_ssl_passthrough_and_grpc_routes() -> None:
    tls = [{"hosts": ["app.example.com"], "secretName": "app-cert"}]
    objects, report = run(
        NGINX_CLASS,
        ingress("vault", "vault.example.com", paths=[("/", "Prefix", "vault", 8200)],
                annotations={"nginx.ingress.kubernetes.io/ssl-passthrough": "true"}),
        ingress("rpc", paths=[("/", "Prefix", "rpc", 9000), ("/pkg.Svc/Get", "Prefix", "rpc2", 9000)], tls=tls,
                annotations={"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"}))
    listeners = {x["name"]: x for x in named(objects, "Gateway", "nginx")["spec"]["listeners"]}
    assert listeners["tls-vault-example-com"]["tls"] == {"mode": "Passthrough"}
    tlsroute = of(objects, "TLSRoute")[0]
    assert tlsroute["spec"]["hostnames"] == ["vault.example.com"]
    assert tlsroute["spec"]["rules"] == [{"backendRefs": [{"name": "vault", "port": 8200}]}]
    grpc = of(objects, "GRPCRoute")[0]
    assert [p["sectionName"] for p in grpc["spec"]["parentRefs"]] == ["https-app-example-com"]
    assert [r.get("matches") for r in grpc["spec"]["rules"]] == [
        None, [{"method": {"service": "pkg.Svc", "method": "Get"}}]]
    # the HTTP listener only redirects; no HTTPRoute serves the gRPC paths on HTTPS
    assert [r["metadata"]["name"] for r in of(objects, "HTTPRoute") if r["spec"]["hostnames"] == ["app.example.com"]
            ] == ["app.example.com-http"]
    assert next(f for f in report["findings"] if f["item"] == "backend-protocol")["status"] == \
        "converted-with-difference"
    assert pipeline_problems(objects) == []


def test_grpc_paths_of_a_host_with_http_paths_stay_in_its_httproute_as_grpc() -> None:
    """ingress-nginx served gRPC and HTTP paths of one host in one server; Gateway API refuses a
    GRPCRoute beside an HTTPRoute of the same hostname on a listener. The gRPC paths stay rules of
    the host's HTTPRoute with IngressNginxCompat backendProtocol GRPC (grpc_pass; with GRPCS also
    unverified TLS), which test_grpcroute.py serves through real nginx."""
    tls = [{"hosts": ["app.example.com"], "secretName": "app-cert"}]
    objects, report = run(
        NGINX_CLASS,
        ingress("web", paths=[("/", "Prefix", "web", 80)], tls=tls),
        ingress("rpc", paths=[("/pkg.Svc", "Prefix", "rpc", 9000)], tls=tls,
                annotations={"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"}),
        ingress("rpcs", paths=[("/pkg.Secure", "Prefix", "rpcs", 9443)], tls=tls,
                annotations={"nginx.ingress.kubernetes.io/backend-protocol": "GRPCS"}))
    assert of(objects, "GRPCRoute") == []
    route = named(objects, "HTTPRoute", "app.example.com")
    compat = {o["metadata"]["name"]: o["spec"] for o in of(objects, "IngressNginxCompat")}

    def spec_of(backend: str) -> dict[str, Any]:
        rule = next(r for r in route["spec"]["rules"] if r["backendRefs"][0]["name"] == backend)
        return compat[next(f["extensionRef"]["name"] for f in rule["filters"] if f["type"] == "ExtensionRef")]

    assert spec_of("rpc")["backendProtocol"] == "GRPC" and "backendTLS" not in spec_of("rpc")
    assert (spec_of("rpcs")["backendProtocol"], spec_of("rpcs")["backendTLS"]) == ("GRPC", {"insecureSkipVerify": True})
    assert "backendProtocol" not in spec_of("web")
    found = {f["object"]: f for f in report["findings"] if f["item"] == "backend-protocol"}
    assert found["Ingress default/rpc"]["status"] == "exact"
    assert "stay rules of its HTTPRoute" in found["Ingress default/rpc"]["detail"]
    assert "BackendTLSPolicy" in found["Ingress default/rpcs"]["detail"]
    assert pipeline_problems(objects) == []


def test_backend_protocol_https_and_grpcs_keep_unverified_tls() -> None:
    """backend-protocol HTTPS / GRPCS: TLS to the pods without verification, as ingress-nginx, through
    IngressNginxCompat backendTLS (HTTPRoute and GRPCRoute rules); the report recommends verifying."""
    tls = [{"hosts": ["rpc.example.com"], "secretName": "rpc-cert"}]
    objects, report = run(
        NGINX_CLASS,
        ingress("web", "web.example.com", paths=[("/", "Prefix", "web", 443)],
                annotations={"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}),
        ingress("rpc", "rpc.example.com", paths=[("/", "Prefix", "rpc", 9443)], tls=tls,
                annotations={"nginx.ingress.kubernetes.io/backend-protocol": "GRPCS"}))
    specs = {o["metadata"]["name"]: o["spec"] for o in of(objects, "IngressNginxCompat")}
    # (the other one is the https redirect of the gRPC host's paths on plain HTTP)
    assert sorted(specs.values(), key=str) == [{"backendTLS": {"insecureSkipVerify": True}},
                                               {"sslRedirect": {"statusCode": 308}}]
    compat = [name for name, spec in specs.items() if "backendTLS" in spec]

    def refs(rule: dict[str, Any]) -> list[str]:
        return [f["extensionRef"]["name"] for f in rule.get("filters", []) if f["type"] == "ExtensionRef"]

    web = named(objects, "HTTPRoute", "web.example.com")
    assert [refs(r) for r in web["spec"]["rules"]] == [compat]
    grpc = named(objects, "GRPCRoute", "rpc.example.com")
    assert [refs(r) for r in grpc["spec"]["rules"]] == [compat]
    found = {f["object"]: f for f in report["findings"] if f["item"] == "backend-protocol"}
    assert found["Ingress default/web"]["status"] == "exact"
    assert found["Ingress default/rpc"]["status"] == "converted-with-difference"  # gRPC on HTTPS only
    assert all("BackendTLSPolicy" in f["detail"] for f in found.values())
    assert not any("don't exist on a GRPCRoute" in f["detail"] for f in report["findings"])
    assert pipeline_problems(objects) == []


def test_extra_rules_from_a_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules a source adds (Contribution.rules): a gateway-answered one on every listener
    with its own policy, only the host's first server-level one, and a copy of the covering rule."""
    from wardgate.migrate import catalog
    from wardgate.migrate.contrib import CatalogEntry, Contribution, ExtraRule

    def handler(key: str, value: str, source: Any) -> Contribution:
        c = Contribution()
        if key == "server-snippet":
            rule = ExtraRule(matches=[{"path": {"type": "Exact", "value": f"/{value}.txt"}}], filters=[],
                                   security={"directResponses": [{"path": f"/{value}.txt", "body": value}]},
                                   backend="none", within_ingress_paths=False)
        else:
            rule = ExtraRule(matches=[{"path": {"type": "Exact", "value": "/old"}}],
                                   filters=[{"type": "URLRewrite", "urlRewrite": {"path": {
                                       "type": "ReplaceFullPath", "replaceFullPath": "/new"}}}],
                                   security={}, backend="ingress", within_ingress_paths=True)
        c.rules = [rule]
        return c

    real = catalog.lookup
    monkeypatch.setattr(catalog, "lookup", lambda key: CatalogEntry("test", handler)
                        if key in ("server-snippet", "configuration-snippet") else real(key))
    tls = [{"hosts": ["app.example.com"], "secretName": "app-cert"}]
    first = ingress("z-first", paths=[("/", "Prefix", "web", 80)], tls=tls, annotations={
        "nginx.ingress.kubernetes.io/server-snippet": "security",
        "nginx.ingress.kubernetes.io/configuration-snippet": "x",
        "nginx.ingress.kubernetes.io/upstream-vhost": "web.internal"})
    second = ingress("a-second", paths=[("/api", "Prefix", "api", 80)], annotations={
        "nginx.ingress.kubernetes.io/server-snippet": "robots"})
    # Snippet annotations are Critical: ingress-nginx serves these Ingresses only when its
    # ConfigMap allows that risk level.
    objects, report = run(NGINX_CLASS, SNIPPETS_ALLOWED, first, second)
    route = named(objects, "HTTPRoute", "app.example.com")
    assert [p["sectionName"] for p in route["spec"]["parentRefs"]] == ["http", "https-app-example-com"]
    https = route["spec"]["rules"]
    answered = next(r for r in https if r["matches"][0]["path"]["value"] == "/security.txt")
    # answered on both listeners, without the https redirect (a server-snippet location had none)
    assert "backendRefs" not in answered and "filters" not in answered
    assert not any(r["matches"][0]["path"]["value"] == "/robots.txt" for r in https)
    assert any(f["object"] == "Ingress default/a-second" and f["item"] == "server-snippet" and
               "one server-snippet per host" in f["detail"] for f in report["findings"])
    copy = next(r for r in https if r["matches"][0]["path"]["value"] == "/old")
    assert copy["backendRefs"] == [{"name": "web", "port": 80}]
    assert [f["type"] for f in copy["filters"]] == ["URLRewrite", "ExtensionRef"]  # with the https redirect
    assert copy["filters"][0]["urlRewrite"] == {"hostname": "web.internal",
                                                "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}}
    # the answered rule's own policy; the Ingress's policies don't target it
    targets = sorted((t["name"], t["sectionName"]) for o in of(objects, "SecurityPolicy")
                     if o["spec"].get("directResponses") for t in o["spec"]["targetRefs"])
    assert targets == [("app.example.com", answered["name"])]
    assert pipeline_problems(objects) == []


def test_default_certificate_serves_every_host_on_https() -> None:
    deployment = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: ctl, namespace: ingress-nginx}
spec:
  template:
    spec:
      containers:
        - name: controller
          args: [/nginx-ingress-controller, --default-ssl-certificate=certs/wildcard]
"""
    tls = [{"hosts": ["own.example.com"], "secretName": "own-cert"}]
    objects, _ = run(NGINX_CLASS, deployment, ingress("plain"), ingress("own", "own.example.com", tls=tls),
                     ingress("catch", host=None, default_backend=("fallback", 80)))
    listeners = named(objects, "Gateway", "nginx")["spec"]["listeners"]
    assert listeners[1] == {"name": "https", "protocol": "HTTPS", "port": 443,
                            "tls": {"certificateRefs": [{"name": "wildcard", "namespace": "certs"}]},
                            "allowedRoutes": {"namespaces": {"from": "All"}}}
    sections = {r["metadata"]["name"]: [p["sectionName"] for p in r["spec"]["parentRefs"]]
                for r in of(objects, "HTTPRoute")}
    # hosts beside the catch-all route get their own listeners on both ports (isolation)
    assert sections == {"app.example.com": ["http-app-example-com", "https-app-example-com"],
                        "catch-all": ["http", "https"],
                        "own.example.com": ["http-own-example-com", "https-own-example-com"]}
    grants = {(g["metadata"]["namespace"], t["name"]) for g in of(objects, "ReferenceGrant") for t in g["spec"]["to"]}
    assert grants == {("certs", "wildcard"), ("default", "own-cert")}
    # the option wins over the Deployment's flag
    objects, _ = run(NGINX_CLASS, deployment, ingress("plain"),
                     options=MigrateOptions(default_certificate=("ingress-nginx", "fake")))
    assert named(objects, "Gateway", "nginx")["spec"]["listeners"][1]["tls"] == {
        "certificateRefs": [{"name": "fake"}]}


def test_redirect_with_an_nginx_variable_leaves_the_ingress_out() -> None:
    objects, report = run(NGINX_CLASS, ingress("moved", "moved.example.com", annotations={
        "nginx.ingress.kubernetes.io/permanent-redirect": "https://new.example.com$request_uri"}),
        ingress("ok", "ok.example.com"))
    assert [r["spec"]["hostnames"] for r in of(objects, "HTTPRoute")] == [["ok.example.com"]]
    found = {(f["item"], f["status"]) for f in report["findings"] if f["object"] == "Ingress default/moved"}
    assert found == {("permanent-redirect", "exact"), ("(ingress)", "exact")}


def test_hostless_rules_and_catch_all_default_backend_share_the_any_host_route() -> None:
    objects, _ = run(NGINX_CLASS, ingress("z-rules", host=None, paths=[("/api", "Prefix", "api", 80)]),
                     ingress("a-catch", host=None, default_backend=("fallback", 80)))
    rules = named(objects, "HTTPRoute", "catch-all")["spec"]["rules"]
    assert [(r["matches"][0]["path"]["value"], r["backendRefs"][0]["name"]) for r in rules] == [
        ("/api", "api"), ("/", "fallback")]


def test_undefined_paths_get_the_first_ingress_policies_on_a_real_gateway(
        gateway: Gateway, backends: Callable[..., Backend], monkeypatch: pytest.MonkeyPatch) -> None:
    """ingress-nginx's 404 for a host's undefined paths comes from its `location /`, which carries
    the host's first Ingress's annotations: an allowlist refuses there too, headers are added."""
    from wardgate.migrate import catalog
    from wardgate.migrate.contrib import CatalogEntry, Contribution

    def handler(key: str, value: str, source: Any) -> Contribution:
        if key == "test-allow":
            return Contribution(security={"ipAccess": {"allow": [value]}})
        return Contribution(filters=[{"type": "ResponseHeaderModifier",
                                      "responseHeaderModifier": {"set": [{"name": "X-Robots-Tag", "value": value}]}}])

    real = catalog.lookup
    monkeypatch.setattr(catalog, "lookup", lambda key: CatalogEntry("test", handler)
                        if key in ("test-allow", "test-header") else real(key))
    web = backends("web")
    source = "---\n".join([
        NGINX_CLASS,
        ingress("closed", "closed.example.com", paths=[("/app", "Prefix", "web", 80)],
                annotations={"nginx.ingress.kubernetes.io/test-allow": "10.0.0.0/8"}),
        ingress("open", "open.example.com", paths=[("/app", "Prefix", "web", 80)],
                annotations={"nginx.ingress.kubernetes.io/test-allow": "127.0.0.0/8",
                             "nginx.ingress.kubernetes.io/test-header": "noindex"}),
    ])
    result = migrate(load_text(source, "ingresses.yaml"))
    gateway.write("migrated.yaml", dump(result.objects[1:]))
    gateway.write("world.yaml", web.manifests())
    gateway.reconcile()
    addr = gateway.address("ingress-nginx/nginx")
    assert request(f"http://{addr}/app", host="closed.example.com").status == 403
    assert request(f"http://{addr}/elsewhere", host="closed.example.com").status == 403
    r = request(f"http://{addr}/app", host="open.example.com")
    assert (r.status, r.headers.get("x-robots-tag")) == (200, "noindex")
    r = request(f"http://{addr}/elsewhere", host="open.example.com")
    assert (r.status, r.headers.get("x-robots-tag")) == (404, "noindex")
    assert request(f"http://{addr}/elsewhere", host="unknown.example.com").status == 404


def test_undefined_paths_authenticate_and_count_first_on_a_real_gateway(
        gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """ingress-nginx's `location /` of a host answers 404 from its default backend, so auth-url and
    the rate limit of the host's first Ingress run first: 401 without credentials, and the 404s
    count against the limit (corpus case auth-url-external, request 5)."""
    auth = StubServer(lambda req: (200, {}, b"") if req["headers"].get("Authorization") == "Bearer good"
                      else (401, {"WWW-Authenticate": 'Bearer realm="corp"'}, b""))
    try:
        web = backends("web")
        source = "---\n".join([NGINX_CLASS, ingress("authed", "authed.example.com", paths=[
            ("/app", "Prefix", "web", 80)], annotations={
                "nginx.ingress.kubernetes.io/auth-url": "http://ext-auth.default.svc.cluster.local/verify",
                "nginx.ingress.kubernetes.io/limit-rpm": "1",
                "nginx.ingress.kubernetes.io/limit-burst-multiplier": "2"})])
        result = migrate(load_text(source, "ingresses.yaml"))
        gateway.write("migrated.yaml", dump(result.objects[1:]))
        gateway.write("world.yaml", web.manifests(), auth.manifests("ext-auth"))
        gateway.reconcile()
        addr = gateway.address("ingress-nginx/nginx")

        def status(path: str, token: str | None = None) -> int:
            headers = {"Authorization": token} if token else {}
            return request(f"http://{addr}{path}", host="authed.example.com", headers=headers).status

        assert status("/app/x", "Bearer good") == 200
        assert status("/elsewhere") == 401
        assert auth.last()["path"] == "/verify"
        # the Ingress's limit (burst 2, so 3 at once) counts /app, the 401 and the 404s, as on
        # ingress-nginx's `location /`
        assert [status("/elsewhere", "Bearer good") for _ in range(2)] == [404, 503]
    finally:
        auth.close()


def _one_path(path: str = "/", ptype: str = "Prefix", backend: str = "{service: {name: a, port: {number: 80}}}",
              host: str = "a.example.com") -> str:
    entry = f"{{path: {path}, pathType: {ptype}, backend: {backend}}}"
    return f"{{rules: [{{host: '{host}', http: {{paths: [{entry}]}}}}]}}"


@pytest.mark.parametrize("spec", [
    _one_path(host="A.EXAMPLE.COM"),
    _one_path(backend="{service: {name: a, port: {number: '80'}}}"),
    _one_path(backend="{service: {name: a, port: {number: 70000}}}"),
    _one_path(backend="{resource: {kind: X, name: y}}"),
    _one_path(path="rel"),
    _one_path(path='"/\\x01"'),
    "{rules: [{host: 'a.example.com', http: {paths: [null, 7, {pathType: Exact}]}}]}",
    "{rules: 'all of them'}",
    "{rules: [{host: ['x']}]}",
    "{tls: [{hosts: 'a.example.com', secretName: 7}], rules: []}",
    "{defaultBackend: {service: {name: 'Bad_Name', port: {number: 80}}}}",
    "{ingressClassName: 7}",
    "[1, 2, 3]",
])
def test_malformed_ingresses_are_findings_never_crashes(spec: str) -> None:
    doc = ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bad, namespace: default}\n"
           f"spec: {spec}\n")
    objects, report = run(NGINX_CLASS, doc, ingress("good", "good.example.com"))
    bad = [f for f in report["findings"] if f["object"] == "Ingress default/bad"]
    assert bad and all(f["status"] in ("not-converted", "exact") and f["item"] for f in bad), bad
    assert any(r["spec"]["hostnames"] == ["good.example.com"] for r in of(objects, "HTTPRoute"))
    assert pipeline_problems(objects) == []


@pytest.mark.parametrize("meta", ["{name: Bad_Name}", "{name: ok, namespace: 'a/b'}", "{name: ok, annotations: [x]}",
                                  "{name: ok, annotations: {nginx.ingress.kubernetes.io/ssl-redirect: true}}", "7"])
def test_malformed_metadata_is_a_finding(meta: str) -> None:
    doc = f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {meta}\nspec: {{}}\n"
    objects, report = run(NGINX_CLASS, doc, ingress("good", "good.example.com"))
    assert any(f["status"] == "not-converted" and f["file"] == "input.yaml[doc 1]" for f in report["findings"])
    assert len(of(objects, "HTTPRoute")) == 1


def test_backend_headers_follow_ingress_nginx_and_its_settings() -> None:
    """Every Gateway's ClientTrafficPolicy sends what ingress-nginx's template sends upstream; the
    report names the controller settings that made ingress-nginx send something else."""
    objects, report = run(NGINX_CLASS, ingress("web"))
    ctp = named(objects, "ClientTrafficPolicy", "nginx")
    assert ctp["spec"]["backendHeaders"] == {"requestID": "Preserve", "forwardedHost": "HostHeader",
                                             "originalForwarded": True}
    assert ctp["metadata"]["annotations"]["wardgate.io/migrated-from"]  # never empty
    found = [f for f in report["findings"] if f["item"] == "backendHeaders"]
    assert [f["status"] for f in found] == ["exact"]
    cm = """
apiVersion: v1
kind: ConfigMap
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
data: {generate-request-id: "false", use-forwarded-headers: "true", forwarded-for-header: X-Real-Client}
"""
    _, report = run(NGINX_CLASS, cm, ingress("web"))
    found = [f for f in report["findings"] if f["item"] == "backendHeaders"]
    assert [f["status"] for f in found] == ["converted-with-difference"]
    for part in ("generate-request-id is false", "use-forwarded-headers", "forwarded-for-header 'X-Real-Client'"):
        assert part in found[0]["detail"]


def test_policies_of_a_host_shared_across_namespaces_keep_their_services(
        gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """Ingresses of namespaces a and b share a host: its HTTPRoute lands in one of them, and so do the
    Ingresses' SecurityPolicies. The auth and error-page Services stay the Ingress's own namespace's
    (with a ReferenceGrant for the policy); a basic-auth Secret can't follow, which the report says.
    Before, the moved policy named Services of its new namespace: every request answered 500."""
    auth = StubServer(lambda req: (403 if req["headers"].get("Authorization") == "Bearer no" else 200, {}, b""))
    try:
        web, admin, errors = backends("web", namespace="a"), backends("admin", namespace="b"), \
            backends("errors", namespace="a")
        source = "---\n".join([
            NGINX_CLASS,
            ingress("one", "shop.example.com", ns="a", paths=[("/", "Prefix", "web", 80)], annotations={
                "nginx.ingress.kubernetes.io/auth-url": "http://auth.a.svc.cluster.local/check",
                "nginx.ingress.kubernetes.io/custom-http-errors": "404",
                "nginx.ingress.kubernetes.io/default-backend": "errors"}),
            ingress("two", "shop.example.com", ns="b", paths=[("/admin", "Prefix", "admin", 80)]),
            ingress("three", "basic.example.com", ns="a", paths=[("/", "Prefix", "web", 80)], annotations={
                "nginx.ingress.kubernetes.io/auth-type": "basic",
                "nginx.ingress.kubernetes.io/auth-secret": "users"}),
            ingress("four", "basic.example.com", ns="b", paths=[("/b", "Prefix", "admin", 80)]),
        ])
        result = migrate(load_text(source, "ingresses.yaml"))
        policies = {o["metadata"]["name"]: o for o in result.objects if o["kind"] == "SecurityPolicy"}
        route_ns = {o["metadata"]["name"]: o["metadata"]["namespace"] for o in result.objects
                    if o["kind"] == "HTTPRoute"}
        moved = [p for p in policies.values() if p["spec"].get("externalAuth")]
        assert len(moved) == 1 and moved[0]["metadata"]["namespace"] == route_ns["shop.example.com"]
        policy_ns = moved[0]["metadata"]["namespace"]
        assert policy_ns == "b", "the test needs the route (and so the policy) outside the Ingress's namespace"
        assert moved[0]["spec"]["externalAuth"]["backendRef"]["namespace"] == "a"
        assert moved[0]["spec"]["errorPages"]["backendRef"]["namespace"] == "a"
        grants = [o for o in result.objects if o["kind"] == "ReferenceGrant" and o["metadata"]["namespace"] == "a"
                  and o["spec"]["from"][0]["kind"] == "SecurityPolicy"]
        assert grants and grants[0]["spec"]["from"] == [{"group": "policy.wardgate.io", "kind": "SecurityPolicy",
                                                       "namespace": "b"}]
        assert {t["name"] for t in grants[0]["spec"]["to"]} == {"auth", "errors"}
        # the basic-auth Secret: one finding for auth-type, saying what to do
        basic = [f for f in result.report.findings if f.obj == "Ingress a/three" and f.item == "auth-type"]
        assert len(basic) == 1 and basic[0].status == "converted-with-difference"
        assert "copy Secret a/users to namespace b" in basic[0].detail

        gateway.write("migrated.yaml", dump(result.objects[1:]))
        gateway.write("world.yaml", web.manifests(), admin.manifests(), errors.manifests(),
                      auth.manifests("auth", namespace="a"))
        gateway.reconcile()
        addr = gateway.address("ingress-nginx/nginx")
        ok = request(f"http://{addr}/page", host="shop.example.com")
        assert (ok.status, json.loads(ok.body)["namespace"]) == (200, "a")
        assert auth.requests and auth.requests[-1]["path"] == "/check"
        assert request(f"http://{addr}/page", host="shop.example.com",
                       headers={"Authorization": "Bearer no"}).status == 403
        assert request(f"http://{addr}/admin", host="shop.example.com").status == 200
    finally:
        auth.close()


def test_an_auth_service_in_another_namespace_gets_its_reference_grant() -> None:
    source = "---\n".join([NGINX_CLASS, ingress("web", "app.example.com", ns="shop", annotations={
        "nginx.ingress.kubernetes.io/auth-url": "http://oauth2-proxy.sso.svc.cluster.local:4180/oauth2/auth"})])
    result = migrate(load_text(source, "in.yaml"))
    pol = next(o for o in result.objects if o["kind"] == "SecurityPolicy" and o["spec"].get("externalAuth"))
    assert pol["metadata"]["namespace"] == "shop"
    assert pol["spec"]["externalAuth"]["backendRef"] == {"name": "oauth2-proxy", "namespace": "sso", "port": 4180}
    grant = next(o for o in result.objects if o["kind"] == "ReferenceGrant" and o["metadata"]["namespace"] == "sso")
    assert grant["spec"] == {"from": [{"group": "policy.wardgate.io", "kind": "SecurityPolicy", "namespace": "shop"}],
                             "to": [{"group": "", "kind": "Service", "name": "oauth2-proxy"}]}
    rs = parse(load_text(result.yaml(), "out.yaml") + load_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: oauth2-proxy, namespace: sso}\nspec: {ports: [{port: 4180}]}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: app, namespace: shop}\nspec: {ports: [{port: 80}]}\n",
        "svc.yaml"))
    assert [str(p) for p in translate(rs).problems] == []


def test_tls_hosts_beyond_the_listener_limit_share_a_listener_that_picks_by_tls_name(
        gateway: Gateway, backends: Callable[..., Backend], monkeypatch: pytest.MonkeyPatch) -> None:
    """A class with more TLS hosts than a Gateway has listeners (64; 4 here): the first get a
    listener each, the rest share the HTTPS listener without hostname, carrying their
    certificates, and each host is served with its own certificate (ingress-nginx's SNI choice).
    A host whose Secret is not in the input is left off that listener: one missing certificate
    would stop all of them."""
    monkeypatch.setattr(sys.modules["wardgate.migrate.convert"], "MAX_LISTENERS", 4)
    ca = trustme.CA()
    web = backends("web")
    hosts = [f"h{i}.example.com" for i in range(1, 6)]
    source = "---\n".join([NGINX_CLASS, *(
        ingress(f"i{i}", host, paths=[("/", "Prefix", "web", 80)], tls=[{"hosts": [host], "secretName": f"cert-{i}"}])
        for i, host in enumerate(hosts, 1)), *(tls_secret(f"cert-{i}", ca, h) for i, h in enumerate(hosts[:4], 1))])
    result = migrate(load_text(source, "ingresses.yaml"))
    gw = next(o for o in result.objects if o["kind"] == "Gateway")
    listeners = {ls["name"]: ls for ls in gw["spec"]["listeners"]}
    assert len(listeners) == 4
    assert [ls.get("hostname") for ls in gw["spec"]["listeners"]] == [None, "h1.example.com", "h2.example.com", None]
    assert listeners["https"]["tls"]["certificateRefs"] == [{"name": "cert-3", "namespace": "default"},
                                                            {"name": "cert-4", "namespace": "default"}]
    spec_tls = {f.obj: f for f in result.report.findings if f.item == "spec.tls"}
    shared = spec_tls["Ingress default/i3"]
    assert shared.status == "exact" and "by the TLS name" in shared.detail
    assert spec_tls["Ingress default/i5"].status == "not-converted"
    assert "Secret default/cert-5 is not in the input" in spec_tls["Ingress default/i5"].detail

    gateway.write("migrated.yaml", dump(result.objects[1:]))
    gateway.write("world.yaml", web.manifests(), *(tls_secret(f"cert-{i}", ca, h) for i, h in enumerate(hosts[:4], 1)))
    gateway.reconcile()
    addr = gateway.address("ingress-nginx/nginx")
    for host in hosts[:4]:
        status, _, body = https_get(addr, host, "/", ca)  # the client checks the certificate's name
        assert (status, json.loads(body)["pod"].split("-")[0]) == (200, "web"), host
