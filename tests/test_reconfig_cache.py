"""A reconcile reuses what it built before only when nothing it was built from changed.

Each test keeps the route in a file of its own and edits one dependency in another file, so the
route object is the very same between the two reconciles and only the dependency can tell the
runner that the Gateway's configuration must change. Behaviour is checked through real nginx.
"""

from __future__ import annotations

import ssl
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
import yaml

from conftest import GW, GW_HEAD, Backend, Gateway, loopback_subnet, request
from test_listeners import tls_secret
from test_tls import get, handshake
from wardgate.verify.echo import EchoIdentity, EchoServer

pytestmark = pytest.mark.timeout(120)


def route(name: str = "app", namespace: str = "default", service: str = "app",
          service_namespace: str | None = None, host: str = "example.com", gateway: str = "gw") -> str:
    ns = f", namespace: {service_namespace}" if service_namespace else ""
    return f"""\
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          parentRefs: [{{name: {gateway}, namespace: default}}]
          hostnames: [{host}]
          rules: [{{backendRefs: [{{name: {service}{ns}, port: 80}}]}}]
        """


def service(name: str = "app", namespace: str = "default", port: int = 80, target: int = 3000) -> str:
    return f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: {namespace}}}
        spec: {{ports: [{{name: http, port: {port}, targetPort: {target}}}]}}
        """


def endpoints(backend: Backend, name: str = "app") -> str:
    addresses = ", ".join(s.host for s in backend.servers)
    return f"""\
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {{name: {name}-1, namespace: {backend.namespace}, labels: {{kubernetes.io/service-name: {name}}}}}
        addressType: IPv4
        ports: [{{name: http, port: {backend.servers[0].port}}}]
        endpoints: [{{addresses: [{addresses}]}}]
        """


def pod(gateway: Gateway, host: str = "example.com", key: str = "default/gw") -> str | int:
    """The echo pod that answered, or the status when no backend did."""
    r = request(f"http://{gateway.address(key)}:8080/", host=host)
    return str(r.json["pod"]) if r.status == 200 else r.status


def test_an_endpointslice_edit_changes_the_backend_answering(gateway: Gateway,
                                                             backends: Callable[..., Backend]) -> None:
    a, b = backends("app"), backends("app")
    gateway.write("gw.yaml", GW, "---\n", service())
    gateway.write("route.yaml", route())
    gateway.write("slice.yaml", endpoints(a))
    gateway.reconcile()
    assert pod(gateway) == a.servers[0].identity.pod
    gateway.write("slice.yaml", endpoints(b))
    gateway.reconcile()
    assert pod(gateway) == b.servers[0].identity.pod
    (gateway.dir / "slice.yaml").unlink()  # no endpoints at all: the gateway answers 503 itself
    gateway.reconcile()
    assert pod(gateway) == 503


def test_a_service_edit_is_picked_up(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    a = backends("app")
    gateway.write("gw.yaml", GW, "---\n", endpoints(a))
    gateway.write("route.yaml", route())
    gateway.write("svc.yaml", service())
    gateway.reconcile()
    assert pod(gateway) == a.servers[0].identity.pod
    gateway.write("svc.yaml", service(port=81))  # the route's port 80 is gone: the rule answers 500
    gateway.reconcile()
    assert pod(gateway) == 500
    gateway.write("svc.yaml", service())
    gateway.reconcile()
    assert pod(gateway) == a.servers[0].identity.pod


def test_a_reference_grant_is_picked_up(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    other = backends("app", namespace="backend")
    gateway.write("gw.yaml", GW, "---\n", service(namespace="backend"), "---\n", endpoints(other))
    gateway.write("route.yaml", route(service_namespace="backend"))
    gateway.reconcile()
    assert pod(gateway) == 500  # a cross-namespace reference without a grant
    gateway.write("zz-grant.yaml", """\
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: routes, namespace: backend}
        spec:
          from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
          to: [{group: "", kind: Service}]
        """)
    gateway.reconcile()
    assert pod(gateway) == other.servers[0].identity.pod
    (gateway.dir / "zz-grant.yaml").unlink()
    gateway.reconcile()
    assert pod(gateway) == 500


def test_namespace_labels_are_picked_up(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    app = backends("app", namespace="apps")
    gateway.write("gw.yaml", GW_HEAD + "    - {name: http, protocol: HTTP, port: 8080, allowedRoutes: "
                  "{namespaces: {from: Selector, selector: {matchLabels: {team: web}}}}}\n",
                  "---\n", service(namespace="apps"), "---\n", endpoints(app))
    gateway.write("route.yaml", route(namespace="apps"))

    def labels(team: str) -> None:
        gateway.write("ns.yaml", f"""\
            apiVersion: v1
            kind: Namespace
            metadata: {{name: apps, labels: {{team: {team}}}}}
            """)
        gateway.reconcile()

    labels("web")
    assert pod(gateway) == app.servers[0].identity.pod
    labels("batch")  # the route is no longer allowed on the listener
    assert pod(gateway) == 404
    labels("web")
    assert pod(gateway) == app.servers[0].identity.pod


def test_a_policy_and_its_config_map_are_picked_up(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    app = backends("app")
    gateway.write("gw.yaml", GW, "---\n", service(), "---\n", endpoints(app))
    gateway.write("route.yaml", route())

    def policy(value: str) -> None:
        gateway.write("policy.yaml", f"""\
            apiVersion: policy.wardgate.io/v1alpha1
            kind: SecurityPolicy
            metadata: {{name: p, namespace: default}}
            spec:
              targetRefs: [{{kind: HTTPRoute, name: app}}]
              responseHeaders: {{set: [{{name: X-Policy, value: {value}}}]}}
              directResponses: [{{path: /legal, bodyFrom: {{configMapRef: {{name: legal, key: body}}}}}}]
            """)

    def config_map(body: str) -> None:
        gateway.write("cm.yaml", yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "legal", "namespace": "default"},
                                                 "data": {"body": body}}))

    policy("one")
    config_map("first text")
    gateway.reconcile()
    base = f"http://{gateway.address()}:8080"
    assert request(f"{base}/", host="example.com").headers["x-policy"] == "one"
    assert request(f"{base}/legal", host="example.com").body == b"first text"
    policy("two")
    gateway.reconcile()
    assert request(f"{base}/", host="example.com").headers["x-policy"] == "two"
    config_map("second text")
    gateway.reconcile()
    assert request(f"{base}/legal", host="example.com").body == b"second text"


def test_a_listener_secret_edit_changes_the_certificate_served(gateway: Gateway, backends: Callable[..., Backend]
                                                               ) -> None:
    first, second = trustme.CA(), trustme.CA()
    app = backends("app")
    gateway.write("gw.yaml", GW_HEAD + "    - {name: https, protocol: HTTPS, port: 8443, "
                  "tls: {certificateRefs: [{name: cert}]}}\n",
                  "---\n", service(), "---\n", endpoints(app))
    gateway.write("route.yaml", route())

    def trusting(ca: trustme.CA) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        return ctx

    for ca, other in ((first, second), (second, first)):
        gateway.write("secret.yaml", tls_secret("cert", ca, "example.com"))
        gateway.reconcile()
        with handshake(gateway.address(), 8443, trusting(ca), host="example.com") as sock:
            assert get(sock, host="example.com")[0] == 200
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(gateway.address(), 8443, trusting(other), host="example.com").close()


def test_a_backend_ca_config_map_edit_is_picked_up(gateway: Gateway, world_dir: Path) -> None:
    backend_ca, wrong_ca = trustme.CA(), trustme.CA()
    backend_ca.issue_cert("app.internal").private_key_and_cert_chain_pem.write_to_path(str(world_dir / "s.pem"))
    net = loopback_subnet()
    echo = EchoServer(f"{net}.1", 8443, EchoIdentity("default", "app-abc12-00000"), certfile=str(world_dir / "s.pem"),
                      keyfile=str(world_dir / "s.pem"), log=lambda _line: None).start()
    try:
        gateway.write("gw.yaml", GW, f"""\
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: BackendTLSPolicy
            metadata: {{name: app-tls, namespace: default}}
            spec:
              targetRefs: [{{group: "", kind: Service, name: app}}]
              validation: {{hostname: app.internal, caCertificateRefs: [{{group: "", kind: ConfigMap, name: ca}}]}}
            ---
            apiVersion: v1
            kind: Service
            metadata: {{name: app, namespace: default}}
            spec: {{ports: [{{name: https, port: 80, targetPort: 8443}}]}}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {{name: app, namespace: default, labels: {{kubernetes.io/service-name: app}}}}
            addressType: IPv4
            ports: [{{name: https, port: 8443}}]
            endpoints: [{{addresses: ["{net}.1"]}}]
            """)
        gateway.write("route.yaml", route())

        def ca_map(ca: trustme.CA) -> None:
            gateway.write("ca.yaml", yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                                     "metadata": {"name": "ca", "namespace": "default"},
                                                     "data": {"ca.crt": ca.cert_pem.bytes().decode()}}))
            gateway.reconcile()

        ca_map(backend_ca)
        assert pod(gateway) == "app-abc12-00000"
        ca_map(wrong_ca)  # nginx no longer trusts the backend's certificate
        assert pod(gateway) == 502
        ca_map(backend_ca)
        assert pod(gateway) == "app-abc12-00000"
    finally:
        echo.stop()


def test_an_edit_to_one_gateways_route_leaves_the_other_gateway_alone(gateway: Gateway,
                                                                       backends: Callable[..., Backend]) -> None:
    app = backends("app")
    other_gw = GW.replace("name: gw,", "name: other,")
    gateway.write("gw.yaml", GW, "---\n", other_gw, "---\n", service(), "---\n", endpoints(app))
    gateway.write("route.yaml", route())
    gateway.write("other.yaml", route(name="other", gateway="other", host="other.example.com"))
    gateway.reconcile()
    runner = gateway.runner
    before = runner.instances["default/other"].generation, runner.instances["default/gw"].generation
    gateway.write("route.yaml", route(host="new.example.com"))
    gateway.reconcile()
    assert pod(gateway, host="new.example.com") == app.servers[0].identity.pod
    assert pod(gateway, host="other.example.com", key="default/other") == app.servers[0].identity.pod
    assert runner.instances["default/gw"].generation == before[1] + 1
    assert runner.instances["default/other"].generation == before[0]  # not rendered nor reloaded
    assert runner._translated.hits >= 1  # the other Gateway's IR was reused
    # An edit to the Service both use reaches both.
    gateway.write("gw.yaml", GW, "---\n", other_gw, "---\n", service(port=81), "---\n", endpoints(app))
    gateway.reconcile()
    assert pod(gateway, host="new.example.com") == 500
    assert pod(gateway, host="other.example.com", key="default/other") == 500


def test_a_symlinked_manifest_is_read_again_when_its_target_changes(gateway: Gateway,
                                                                   backends: Callable[..., Backend]) -> None:
    """A Kubernetes ConfigMap volume: each file is a symlink through `..data`, which is swapped to
    a new directory on update, leaving the symlink itself (and often the size) unchanged."""
    a, b = backends("a"), backends("b")
    gateway.write("gw.yaml", GW, "---\n", service("a"), "---\n", endpoints(a, "a"), "---\n", service("b"), "---\n",
                  endpoints(b, "b"))
    for version, svc in (("..v1", "a"), ("..v2", "b")):
        (gateway.dir / version).mkdir()
        (gateway.dir / version / "route.yaml").write_text(textwrap.dedent(route(service=svc)))
    (gateway.dir / "..data").symlink_to("..v1")
    (gateway.dir / "route.yaml").symlink_to("..data/route.yaml")
    gateway.reconcile()
    assert pod(gateway) == a.servers[0].identity.pod
    (gateway.dir / "..tmp").symlink_to("..v2")
    (gateway.dir / "..tmp").replace(gateway.dir / "..data")
    gateway.reconcile()
    assert pod(gateway) == b.servers[0].identity.pod


def test_rules_of_unchanged_routes_are_reused_even_when_ids_and_upstreams_shift(
        gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """An edit to one route builds that route's rules only; the others' actions are reused, with
    their ids and upstream names renumbered when the edit shifted them. The IR must equal a
    translation without any cache, and every route must still reach its own backend."""
    from wardgate.model import parse
    from wardgate.sources import load_paths
    from wardgate.translate import Options, translate

    apps = {name: backends(name) for name in ("a", "b", "c")}
    gateway.write("gw.yaml", GW, *(part for n, b in apps.items() for part in ("---\n", service(n), "---\n",
                                                                             endpoints(b, n))))
    for i, svc in enumerate("abc"):
        gateway.write(f"r{i}.yaml", route(name=f"r{i}", service=svc, host=f"r{i}.example.com"))
    gateway.reconcile()
    runner = gateway.runner

    def check(expect: dict[str, str]) -> None:
        fresh = translate(parse(load_paths([gateway.dir])), Options(addresses=(gateway.address(),)))
        assert runner.translation is not None
        assert runner.translation.gateways == fresh.gateways
        for host, svc in expect.items():
            assert pod(gateway, host=host) == apps[svc].servers[0].identity.pod

    check({"r0.example.com": "a", "r1.example.com": "b", "r2.example.com": "c"})
    first = {a.source.name: a for a in runner.translation.gateways[0].actions}  # type: ignore[union-attr]
    # r0 now sends to c first and has a second rule: r1's and r2's action ids and upstream names
    # (numbered in first-use order) all move.
    gateway.write("r0.yaml", route(name="r0", service="c", host="r0.example.com").replace(
        "rules: [{backendRefs: [{name: c, port: 80}]}]",
        "rules: [{backendRefs: [{name: c, port: 80}]}, "
        "{matches: [{path: {type: PathPrefix, value: /x}}], backendRefs: [{name: a, port: 80}]}]"))
    gateway.reconcile()
    check({"r0.example.com": "c", "r1.example.com": "b", "r2.example.com": "c"})
    now = {a.source.name: a for a in runner.translation.gateways[0].actions}  # type: ignore[union-attr]
    vhosts = {v.hostname: v for p in runner.translation.gateways[0].ports for v in p.vhosts}  # type: ignore[union-attr]
    assert now["r1"].id != first["r1"].id and now["r1"].backends != first["r1"].backends
    assert runner.translation.gateways[0].upstreams != ()  # type: ignore[union-attr]
    # An edit nothing shifts: the other routes' actions are the very same objects.
    gateway.write("r0.yaml", route(name="r0", service="c", host="r0.example.com").replace(
        "rules: [{backendRefs: [{name: c, port: 80}]}]",
        "rules: [{backendRefs: [{name: c, port: 80}]}, "
        "{matches: [{path: {type: PathPrefix, value: /y}}], backendRefs: [{name: a, port: 80}]}]"))
    gateway.reconcile()
    check({"r0.example.com": "c", "r1.example.com": "b", "r2.example.com": "c"})
    again = {a.source.name: a for a in runner.translation.gateways[0].actions}  # type: ignore[union-attr]
    assert again["r1"] is now["r1"] and again["r2"] is now["r2"]
    # and so are the other virtual hosts' matches
    for v in (v for p in runner.translation.gateways[0].ports for v in p.vhosts):  # type: ignore[union-attr]
        if v.hostname in ("r1.example.com", "r2.example.com"):
            assert all(x is y for x, y in zip(v.matches, vhosts[v.hostname].matches, strict=True))
    # An endpoint edit reaches the rules that read it, reused or not.
    d = backends("b")
    gateway.write("gw.yaml", GW, *(part for n, b in apps.items() for part in (
        "---\n", service(n), "---\n", endpoints(d if n == "b" else b, n))))
    gateway.reconcile()
    apps["b"] = d
    check({"r0.example.com": "c", "r1.example.com": "b", "r2.example.com": "c"})


COMPAT_REF = "{type: ExtensionRef, extensionRef: {group: policy.wardgate.io, kind: IngressNginxCompat, name: paths}}"


def compat_paths(spec: str) -> str:
    return f"""\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: IngressNginxCompat
        metadata: {{name: paths, namespace: default}}
        spec: {spec}
        """


def test_a_compat_path_route_built_from_the_cache_equals_a_fresh_translation(
        gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """IngressNginxCompat rules add slash-redirect actions while matches are ranked and take
    their paths from the compat object: after an edit to another route (which shifts action ids)
    and after an edit to the compat object alone (the route file untouched), the IR equals a
    translation without any cache, and nginx answers as the compat object now says."""
    from wardgate.model import parse
    from wardgate.sources import load_paths
    from wardgate.translate import Options, translate

    apps = {name: backends(name) for name in ("a", "b")}
    gateway.write("gw.yaml", GW, *(part for n, b in apps.items() for part in ("---\n", service(n), "---\n",
                                                                             endpoints(b, n))))
    gateway.write("compat.yaml", compat_paths("{pathMatching: IngressNginx}"))
    gateway.write("r0.yaml", route(name="r0", service="a", host="r0.example.com"))
    gateway.write("docs.yaml", f"""\
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {{name: docs, namespace: default}}
        spec:
          parentRefs: [{{name: gw, namespace: default}}]
          hostnames: [docs.example.com]
          rules:
            - matches: [{{path: {{type: PathPrefix, value: /docs/}}}}]
              filters: [{COMPAT_REF}]
              backendRefs: [{{name: b, port: 80}}]
            - matches: [{{path: {{type: PathPrefix, value: /plain}}}}]
              backendRefs: [{{name: a, port: 80}}]
        """)
    gateway.reconcile()
    runner = gateway.runner

    def check() -> None:
        fresh = translate(parse(load_paths([gateway.dir])), Options(addresses=(gateway.address(),)))
        assert runner.translation is not None
        assert runner.translation.gateways == fresh.gateways

    def docs(path: str) -> tuple[int, str]:
        r = request(f"http://{gateway.address()}:8080{path}", host="docs.example.com")
        return r.status, str(r.json["pod"]) if r.status == 200 else r.headers.get("location", "")

    b_pod, a_pod = apps["b"].servers[0].identity.pod, apps["a"].servers[0].identity.pod
    check()
    assert docs("/docs") == (301, "http://docs.example.com:8080/docs/")
    assert docs("/docs/x") == (200, b_pod) and docs("/plain") == (200, a_pod)
    # Another route gains a rule built before the docs route's: every later action id moves.
    gateway.write("r0.yaml", route(name="r0", service="b", host="r0.example.com").replace(
        "rules: [{backendRefs: [{name: b, port: 80}]}]",
        "rules: [{backendRefs: [{name: b, port: 80}]}, "
        "{matches: [{path: {type: PathPrefix, value: /x}}], backendRefs: [{name: a, port: 80}]}]"))
    gateway.reconcile()
    check()
    assert docs("/docs") == (301, "http://docs.example.com:8080/docs/")
    assert docs("/docs/x") == (200, b_pod) and docs("/plain") == (200, a_pod)
    # Only the compat object changes: Gateway API paths (no slash redirect) and a redirect.
    gateway.write("compat.yaml", compat_paths('{redirect: {location: "https://new.example.com/x", statusCode: 308}}'))
    gateway.reconcile()
    check()
    assert docs("/docs") == (308, "https://new.example.com/x") and docs("/docs/y")[0] == 308
    assert docs("/plain") == (200, a_pod)
