"""The exposure report (`wardgate exposure`, `/status` key `exposure`): what each Gateway serves,
hostnames served by several Gateways, and routes reached through a wildcard broader than their
hostname (a public `*.example.com` listener also serves `shop.internal.example.com`)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import GATEWAY_CLASS, REPO, Backend, Gateway, loopback_subnet, request
from wardgate.dataplane.admin import AdminServer
from wardgate.model import parse
from wardgate.runner import Runner, RunnerOptions
from wardgate.sources import load_paths
from wardgate.translate import translate
from wardgate.translate.exposure import exposure_of, spanned_labels

SERVED_KEYS = {"gateway", "listener", "hostname", "path", "route"}
FINDING_KEYS = {"kind", "hostname", "gateways", "route", "detail"}


def gateway(name: str, *listeners: str, namespace: str = "infra") -> str:
    body = "".join(f"    - {item}\n" for item in listeners)
    return (f"---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\n"
            f"spec:\n  gatewayClassName: wardgate\n  listeners:\n{body}")


def http_route(name: str, parents: list[dict[str, Any]], hostnames: list[str], path: str = "/",
               service: str = "shop", namespace: str = "apps", kind: str = "HTTPRoute") -> str:
    hosts = f"  hostnames: {json.dumps(hostnames)}\n" if hostnames else ""
    return (f"---\napiVersion: gateway.networking.k8s.io/v1\nkind: {kind}\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\n"
            f"spec:\n  parentRefs: {json.dumps(parents)}\n{hosts}"
            f"  rules:\n    - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n"
            f"      backendRefs: [{{name: {service}, port: 80}}]\n")


def service(name: str = "shop", namespace: str = "apps") -> str:
    return f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n" \
           "spec: {ports: [{name: http, port: 80}]}\n"


ALL = "allowedRoutes: {namespaces: {from: All}}"
PUBLIC = gateway("public", f'{{name: web, protocol: HTTP, port: 8080, hostname: "*.example.com", {ALL}}}')
INTERNAL = gateway("internal", f'{{name: staff, protocol: HTTP, port: 8081, hostname: "*.internal.example.com", '
                               f'{ALL}}}')
BOTH = [{"name": "public", "namespace": "infra"}, {"name": "internal", "namespace": "infra"}]
# The case: an internal app's route names both Gateways; the public listener's wildcard
# accepts its hostname although it is two labels deeper.
WILDCARD_CASE = GATEWAY_CLASS + PUBLIC + INTERNAL + service() + \
    http_route("admin", BOTH, ["shop.internal.example.com"], "/admin")


def exposure_cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wardgate", "exposure", "-f", str(path), *args],
                          capture_output=True, text=True, timeout=60)


def report(tmp_path: Path, text: str) -> dict[str, Any]:
    (tmp_path / "m.yaml").write_text(text)
    return exposure_of(translate(parse(load_paths([tmp_path]))))


def kinds(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["kind"], f["hostname"]) for f in doc["findings"]]


def test_cli_flags_wildcard_broader_with_exact_json_schema(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(WILDCARD_CASE)
    r = exposure_cli(tmp_path, "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"served", "findings"}
    assert all(set(s) == SERVED_KEYS for s in doc["served"])
    assert all(set(f) == FINDING_KEYS for f in doc["findings"])
    assert {"gateway": "infra/public", "listener": "web", "hostname": "shop.internal.example.com",
            "path": "PathPrefix /admin", "route": "HTTPRoute apps/admin"} in doc["served"]
    broader = [f for f in doc["findings"] if f["kind"] == "wildcard-broader"]
    assert len(broader) == 1, doc["findings"]
    f = broader[0]
    assert (f["hostname"], f["gateways"], f["route"]) == ("shop.internal.example.com", ["infra/public"],
                                                          "HTTPRoute apps/admin")
    assert "*.example.com" in f["detail"] and "2 labels" in f["detail"]
    # The same hostname on the internal Gateway is intended there; on two Gateways it is flagged too.
    multi = [f for f in doc["findings"] if f["kind"] == "multi-gateway"]
    assert [(m["hostname"], m["gateways"]) for m in multi] == [
        ("shop.internal.example.com", ["infra/internal", "infra/public"])]
    table = exposure_cli(tmp_path).stdout
    assert "wildcard-broader: shop.internal.example.com" in table
    assert "infra/public" in table and "PathPrefix /admin" in table


def test_single_label_wildcard_and_clean_setup_have_no_findings(tmp_path: Path) -> None:
    """A route for `www.example.com` on `*.example.com` is what the wildcard is for; an internal
    route attached only to the internal Gateway is not exposed elsewhere."""
    doc = report(tmp_path, GATEWAY_CLASS + PUBLIC + INTERNAL + service()
                 + http_route("www", [{"name": "public", "namespace": "infra"}], ["www.example.com"])
                 + http_route("wiki", [{"name": "internal", "namespace": "infra"}], ["wiki.internal.example.com"]))
    assert doc["findings"] == []
    assert [(s["gateway"], s["hostname"]) for s in doc["served"]] == [
        ("infra/internal", "wiki.internal.example.com"), ("infra/public", "www.example.com")]


def test_more_specific_listener_owns_the_name(tmp_path: Path) -> None:
    """Listener isolation: with a `*.internal.example.com` listener on the same Gateway, the public
    wildcard does not serve the internal name, so nothing is reached through it."""
    gw = gateway("public", f'{{name: web, protocol: HTTP, port: 8080, hostname: "*.example.com", {ALL}}}',
                 f'{{name: deep, protocol: HTTP, port: 8080, hostname: "*.internal.example.com", {ALL}}}')
    doc = report(tmp_path, GATEWAY_CLASS + gw + service()
                 + http_route("admin", [{"name": "public", "namespace": "infra"}], ["shop.internal.example.com"]))
    assert doc["findings"] == []
    assert [(s["listener"], s["hostname"]) for s in doc["served"]] == [("deep", "shop.internal.example.com")]


def test_route_wildcard_under_listener_wildcard(tmp_path: Path) -> None:
    doc = report(tmp_path, GATEWAY_CLASS + PUBLIC + service()
                 + http_route("tenants", [{"name": "public", "namespace": "infra"}], ["*.tenants.example.com"]))
    assert kinds(doc) == [("wildcard-broader", "*.tenants.example.com")]


def test_multi_gateway_exact_and_through_a_wildcard(tmp_path: Path) -> None:
    """Two Gateways serving one name, and a third Gateway's wildcard route covering it."""
    a = gateway("a", f"{{name: l, protocol: HTTP, port: 8080, {ALL}}}")
    b = gateway("b", f"{{name: l, protocol: HTTP, port: 8081, {ALL}}}")
    c = gateway("c", f"{{name: l, protocol: HTTP, port: 8082, {ALL}}}")
    doc = report(tmp_path, GATEWAY_CLASS + a + b + c + service()
                 + http_route("shop", [{"name": "a", "namespace": "infra"}, {"name": "b", "namespace": "infra"}],
                              ["shop.example.com"])
                 + http_route("all", [{"name": "c", "namespace": "infra"}], ["*.example.com"])
                 + http_route("docs", [{"name": "a", "namespace": "infra"}], ["docs.example.org"]))
    multi = {f["hostname"]: f for f in doc["findings"] if f["kind"] == "multi-gateway"}
    assert set(multi) == {"shop.example.com"}, doc["findings"]
    assert multi["shop.example.com"]["gateways"] == ["infra/a", "infra/b", "infra/c"]
    assert multi["shop.example.com"]["route"] == "HTTPRoute apps/all, HTTPRoute apps/shop"
    assert "Gateway infra/c (listener l as *.example.com: HTTPRoute apps/all)" in multi["shop.example.com"]["detail"]
    assert all(f["kind"] == "multi-gateway" for f in doc["findings"])


def test_grpc_and_tls_passthrough_routes_are_served(tmp_path: Path) -> None:
    gw = gateway("edge", f'{{name: grpc, protocol: HTTP, port: 50051, hostname: "*.example.com", {ALL}}}',
                 f'{{name: tls, protocol: TLS, port: 8443, hostname: "*.example.com", tls: {{mode: Passthrough}}, '
                 f"{ALL}}}")
    grpc = textwrap.dedent("""\
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: GRPCRoute
        metadata: {name: greeter, namespace: apps}
        spec:
          parentRefs: [{name: edge, namespace: infra}]
          hostnames: [grpc.example.com]
          rules: [{matches: [{method: {service: helloworld.Greeter}}], backendRefs: [{name: grpc, port: 80}]}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: TLSRoute
        metadata: {name: vault, namespace: apps}
        spec:
          parentRefs: [{name: edge, namespace: infra}]
          hostnames: [vault.secure.example.com]
          rules: [{backendRefs: [{name: vault, port: 80}]}]
        """)
    grpc_svc = "---\napiVersion: v1\nkind: Service\nmetadata: {name: grpc, namespace: apps}\n" \
               "spec: {ports: [{name: grpc, port: 80, appProtocol: kubernetes.io/h2c}]}\n"
    doc = report(tmp_path, GATEWAY_CLASS + gw + grpc + grpc_svc + service("vault"))
    assert {"gateway": "infra/edge", "listener": "grpc", "hostname": "grpc.example.com",
            "path": "PathPrefix /helloworld.Greeter", "route": "GRPCRoute apps/greeter"} in doc["served"]
    assert {"gateway": "infra/edge", "listener": "tls", "hostname": "vault.secure.example.com",
            "path": None, "route": "TLSRoute apps/vault"} in doc["served"]
    # The passthrough name is two labels under the TLS listener's wildcard.
    assert kinds(doc) == [("wildcard-broader", "vault.secure.example.com")]
    assert "TLSRoute apps/vault" in doc["findings"][0]["route"]


def test_spanned_labels() -> None:
    assert spanned_labels("*.example.com", "a.example.com") == 1
    assert spanned_labels("*.example.com", "a.b.example.com") == 2
    assert spanned_labels("*.example.com", "a.b.c.example.com") == 3
    assert spanned_labels("*.example.com", "*.example.com") == 1
    assert spanned_labels("*.example.com", "*.b.example.com") == 2


def test_three_gateways_example_has_no_findings() -> None:
    """The example's shop route is on two Gateways under two different names (shop.example.com on
    public, shop.internal.example on internal): nothing is served by two Gateways, and the internal
    wildcard covers one label."""
    r = exposure_cli(REPO / "examples" / "three-gateways", "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["findings"] == []
    hosts = {(s["gateway"], s["hostname"]) for s in doc["served"]}
    assert hosts == {("infra/public", "shop.example.com"), ("infra/internal", "shop.internal.example"),
                     ("infra/internal", "wiki.internal.example"), ("infra/phishing", "payroll.phish-sim.example")}


def test_running_gateway_serves_the_flagged_name_and_status_reports_it(
        gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """Through real nginx: the public Gateway does answer for shop.internal.example.com, and the
    admin `/status` document's `exposure` says so."""
    shop = backends("shop", namespace="apps")
    gateway.write("m.yaml", PUBLIC, INTERNAL, shop.manifests(),
                  http_route("admin", BOTH, ["shop.internal.example.com"], "/admin"))
    gateway.reconcile()
    resp = request(f"http://{gateway.address('infra/public')}:8080/admin/users", host="shop.internal.example.com")
    assert resp.status == 200 and resp.json["pod"].startswith("shop-")
    admin = AdminServer("127.0.0.1", 0, gateway.runner.status, gateway.runner.states)
    admin.start()
    try:
        with urllib.request.urlopen(f"{admin.url}/status", timeout=5) as r:
            doc = json.loads(r.read())
    finally:
        admin.stop()
    assert set(doc["exposure"]) == {"served", "findings"}
    assert ("wildcard-broader", "shop.internal.example.com") in kinds(doc["exposure"])
    assert doc["exposure"] == exposure_of(gateway.runner.translation)  # type: ignore[arg-type]


def test_status_shows_each_listeners_address_and_port(world_dir: Path) -> None:
    """--address-pool and --port-offset: where each listener was bound, in /status and the table."""
    manifests = world_dir / "m"
    manifests.mkdir()
    (manifests / "m.yaml").write_text(GATEWAY_CLASS + PUBLIC + INTERNAL)
    runner = Runner([manifests], world_dir / "state", RunnerOptions(worker_processes=1, port_offset=1000,
                                                                     address_pool=loopback_subnet() + ".0/24"))
    admin = AdminServer("127.0.0.1", 0, runner.status, runner.states)
    admin.start()
    try:
        assert runner.reconcile().ok
        pub, internal = runner.address_of("infra/public"), runner.address_of("infra/internal")
        assert pub != internal
        doc = runner.status()
        assert doc["gateways"]["infra/public"]["listeners"] == [
            {"name": "web", "protocol": "HTTP", "address": pub, "port": 9080, "declaredPort": 8080}]
        assert doc["gateways"]["infra/internal"]["listeners"][0]["port"] == 9081
        assert request(f"http://{pub}:9080/", host="www.example.com").status == 404  # nginx is there
        r = subprocess.run([sys.executable, "-m", "wardgate", "status", "--admin", admin.url],
                           capture_output=True, text=True, timeout=60)
        assert f"attachedRoutes=0 on {pub}:9080" in r.stdout, r.stdout
        assert f"attachedRoutes=0 on {internal}:9081" in r.stdout
    finally:
        admin.stop()
        runner.stop()
