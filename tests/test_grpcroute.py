"""GRPCRoute through a real nginx to real gRPC backends (grpcio), with a real gRPC client."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import trustme
import yaml

from conftest import GW_HEAD, REPO, Gateway, loopback_subnet, request
from grpc_echo import GrpcClient, GrpcEchoServer, service_manifests
from test_listeners import tls_secret

pytestmark = pytest.mark.timeout(180)

OK = grpc.StatusCode.OK


def gateway_yaml(listeners: str) -> str:
    return GW_HEAD + textwrap.indent(textwrap.dedent(listeners), "    ")


def grpc_route(spec: str, name: str = "g", extra_meta: str = "") -> str:
    return (f"---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n"
            f"metadata: {{name: {name}, namespace: default{extra_meta}}}\nspec:\n"
            + textwrap.indent(textwrap.dedent(spec), "  "))


@pytest.fixture
def grpc_backends() -> Iterator[Callable[..., str]]:
    """grpc_backends("svc", replicas=1, ...) starts real gRPC echo servers and returns the
    manifests of their Service (port 50051) and EndpointSlice."""
    started: list[GrpcEchoServer] = []

    def make(name: str, replicas: int = 1, **kw: object) -> str:
        net = loopback_subnet()
        servers = [GrpcEchoServer(f"{net}.{i + 1}", 50051, f"{name}-abc12-{i:05d}").start() for i in range(replicas)]
        started.extend(servers)
        return service_manifests(name, servers, **kw)  # type: ignore[arg-type]

    yield make
    for srv in started:
        srv.stop()


def client(gateway: Gateway, authority: str = "grpc.example.com", port: int = 8080,
           root_ca: bytes | None = None, key: str = "default/gw") -> GrpcClient:
    return GrpcClient(f"{gateway.address(key)}:{port}", authority, root_ca)


def parent(gateway: Gateway, kind: str, name: str) -> dict[str, str]:
    """Condition type -> "status/reason" of the route's first parent."""
    conds = gateway.status(kind, name)["parents"][0]["conditions"]
    return {c["type"]: f"{c['status']}/{c['reason']}" for c in conds}


def test_service_and_method_matching_on_cleartext_h2c(gateway: Gateway,
                                                      grpc_backends: Callable[..., str]) -> None:
    gateway.write("gw.yaml", gateway_yaml("- {name: grpc, protocol: HTTP, port: 8080}"),
                  *(grpc_backends(n) for n in ("exact", "service", "regex", "method")),
                  grpc_route("""\
                      parentRefs: [{name: gw}]
                      hostnames: [grpc.example.com]
                      rules:
                        - matches: [{method: {service: grpc.test.Echo}}]
                          backendRefs: [{name: service, port: 50051}]
                        - matches: [{method: {type: Exact, service: grpc.test.Echo, method: Hello}}]
                          backendRefs: [{name: exact, port: 50051}]
                        - matches: [{method: {type: RegularExpression, service: 'grpc\\.rx\\.[A-Z]+', method: 'Get.*'}}]
                          backendRefs: [{name: regex, port: 50051}]
                        - matches: [{method: {method: Ping}}]
                          backendRefs: [{name: method, port: 50051}]
                      """))
    gateway.reconcile()
    c = client(gateway)
    try:
        hello = c.call("/grpc.test.Echo/Hello")
        assert hello.pod == "exact"
        assert hello.body is not None and hello.body["method"] == "/grpc.test.Echo/Hello"
        assert hello.body["authority"] == "grpc.example.com"  # the client's :authority reaches the backend
        assert c.call("/grpc.test.Echo/Other").pod == "service"
        # More characters in the service win over a method-only match.
        assert c.call("/grpc.test.Echo/Ping").pod == "service"
        assert c.call("/other.Svc/Ping").pod == "method"
        assert c.call("/grpc.rx.AB/GetThing").pod == "regex"
        assert c.call("/grpc.rx.ab/GetThing").code == grpc.StatusCode.UNIMPLEMENTED  # regexes are case-sensitive
        assert c.call("/grpc.rx.AB/Put").code == grpc.StatusCode.UNIMPLEMENTED  # the whole method must match
        assert c.call("/grpc.test.Echox/Other").code == grpc.StatusCode.UNIMPLEMENTED  # services are whole
        assert c.call("/nothing.Here/At").code == grpc.StatusCode.UNIMPLEMENTED
    finally:
        c.close()
    assert client(gateway, authority="other.example.com").call("/grpc.test.Echo/Hello").code == \
        grpc.StatusCode.UNIMPLEMENTED  # no route for that host
    assert parent(gateway, "GRPCRoute", "g") == {"Accepted": "True/Accepted", "ResolvedRefs": "True/ResolvedRefs"}
    listener = gateway.status("Gateway", "gw")["listeners"][0]
    assert {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"} in listener["supportedKinds"]
    assert listener["attachedRoutes"] == 1
    # The documented consequence of h2c on nginx 1.22: that port speaks HTTP/2 only.
    conn = http.client.HTTPConnection(gateway.address(), 8080, timeout=5)
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("GET", "/", headers={"Host": "grpc.example.com"})
        conn.getresponse()
    conn.close()


def test_header_matches_and_header_filters(gateway: Gateway, grpc_backends: Callable[..., str]) -> None:
    gateway.write("gw.yaml", gateway_yaml("- {name: grpc, protocol: HTTP, port: 8080}"),
                  *(grpc_backends(n) for n in ("stable", "canary", "versioned")),
                  grpc_route("""\
                      parentRefs: [{name: gw}]
                      rules:
                        - matches: [{method: {service: shop.Cart}}]
                          backendRefs: [{name: stable, port: 50051}]
                        - matches:
                            - method: {service: shop.Cart}
                              headers: [{name: x-env, value: canary}]
                          filters:
                            - type: RequestHeaderModifier
                              requestHeaderModifier:
                                set: [{name: x-route, value: canary}]
                                add: [{name: x-added, value: "yes"}]
                                remove: [x-strip]
                            - type: ResponseHeaderModifier
                              responseHeaderModifier:
                                set: [{name: x-served-by, value: canary-rule}]
                          backendRefs: [{name: canary, port: 50051}]
                        - matches:
                            - method: {service: shop.Cart}
                              headers: [{name: x-version, type: RegularExpression, value: "v[0-9]+"}]
                          backendRefs: [{name: versioned, port: 50051}]
                      """))
    gateway.reconcile()
    c = client(gateway)
    try:
        plain = c.call("/shop.Cart/Add", {"x-strip": "keep-me"})
        assert plain.pod == "stable"
        assert plain.body is not None and plain.body["metadata"].get("x-strip") == "keep-me"
        assert "x-served-by" not in plain.initial_metadata
        canary = c.call("/shop.Cart/Add", {"x-env": "canary", "x-strip": "drop-me", "x-added": "client"})
        assert canary.pod == "canary"
        assert canary.body is not None
        md = canary.body["metadata"]
        assert canary.body["method"] == "/shop.Cart/Add"  # the client's path, also after the header jump
        assert md.get("x-route") == "canary"
        assert md.get("x-added") == "client,yes"
        assert "x-strip" not in md
        assert canary.initial_metadata.get("x-served-by") == "canary-rule"  # response header in initial metadata
        assert c.call("/shop.Cart/Add", {"x-version": "v12"}).pod == "versioned"
        assert c.call("/shop.Cart/Add", {"x-version": "v12x"}).pod == "stable"  # the whole value must match
        assert c.call("/shop.Other/Add", {"x-env": "canary"}).code == grpc.StatusCode.UNIMPLEMENTED
    finally:
        c.close()


def test_weighted_backends_backend_filters_and_invalid_backends(gateway: Gateway,
                                                                grpc_backends: Callable[..., str]) -> None:
    gateway.write("gw.yaml", gateway_yaml("- {name: grpc, protocol: HTTP, port: 8080}"),
                  grpc_backends("heavy"), grpc_backends("light"),
                  grpc_route("""\
                      parentRefs: [{name: gw}]
                      rules:
                        - matches: [{method: {service: w.Split}}]
                          backendRefs:
                            - name: heavy
                              port: 50051
                              weight: 3
                              filters:
                                - type: RequestHeaderModifier
                                  requestHeaderModifier: {set: [{name: x-backend, value: heavy}]}
                            - {name: light, port: 50051, weight: 1}
                        - matches: [{method: {service: w.Missing}}]
                          backendRefs: [{name: does-not-exist, port: 50051}]
                        - matches: [{method: {service: w.Down}}]
                          backendRefs: [{name: down, port: 50051}]
                      """),
                  textwrap.dedent("""\
                      ---
                      apiVersion: v1
                      kind: Service
                      metadata: {name: down, namespace: default}
                      spec:
                        ports: [{name: grpc, port: 50051, appProtocol: kubernetes.io/h2c}]
                      """))
    gateway.reconcile()
    c = client(gateway)
    try:
        replies = [c.call("/w.Split/Go") for _ in range(200)]
        counts = Counter(r.pod for r in replies)
        assert set(counts) == {"heavy", "light"}, counts
        assert 110 <= counts["heavy"] <= 185, counts  # 3:1 expected 150; loose bounds
        for r in replies:
            assert r.body is not None
            assert (r.body["metadata"].get("x-backend") == "heavy") == (r.pod == "heavy")
            assert r.body["method"] == "/w.Split/Go"
        # A backend that doesn't exist: gRPC clients get UNAVAILABLE, as the spec asks.
        assert c.call("/w.Missing/Go").code == grpc.StatusCode.UNAVAILABLE
        # A Service without ready endpoints: HTTP 503 (UNAVAILABLE), not nginx's 502.
        down = c.call("/w.Down/Go")
        assert down.code == grpc.StatusCode.UNAVAILABLE and "503" in down.details, down.details
    finally:
        c.close()
    assert parent(gateway, "GRPCRoute", "g")["ResolvedRefs"] == "False/BackendNotFound"


def test_request_mirror(gateway: Gateway, grpc_backends: Callable[..., str]) -> None:
    net = loopback_subnet()
    shadow = GrpcEchoServer(f"{net}.1", 50051, "shadow-abc12-00000").start()
    try:
        gateway.write("gw.yaml", gateway_yaml("- {name: grpc, protocol: HTTP, port: 8080}"),
                      grpc_backends("main"), service_manifests("shadow", [shadow]),
                      grpc_route("""\
                          parentRefs: [{name: gw}]
                          rules:
                            - matches: [{method: {service: m.Svc}, headers: [{name: x-mirror, value: "on"}]}]
                              filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 50051}}}]
                              backendRefs: [{name: main, port: 50051}]
                          """))
        gateway.reconcile()
        c = client(gateway)
        try:
            reply = c.call("/m.Svc/Copy", {"x-mirror": "on"}, body=b"payload")
            assert reply.pod == "main"
            assert reply.body is not None and reply.body["body"] == "payload"
        finally:
            c.close()
        for _ in range(50):  # the mirror is sent in the background
            if shadow.calls:
                break
            time.sleep(0.1)
        assert [m for m, _ in shadow.calls] == ["/m.Svc/Copy"]  # the client's path, not wardgate's location
    finally:
        shadow.stop()


def test_https_listener_with_grpcs_backend_and_http_route_beside(gateway: Gateway, world_dir: Path,
                                                                 backends: Callable[..., object]) -> None:
    """gRPC over TLS (ALPN h2) from the client, TLS again to the backend (BackendTLSPolicy ->
    grpcs), and an HTTPRoute on another hostname of the same listener still served to HTTP/1.1."""
    front_ca, backend_ca = trustme.CA(), trustme.CA()
    server_cert = backend_ca.issue_cert("grpc.internal")
    net = loopback_subnet()
    tls_backend = GrpcEchoServer(f"{net}.1", 50443, "secure-abc12-00000",
                                 certificate=(server_cert.private_key_pem.bytes(),
                                              b"".join(b.bytes() for b in server_cert.cert_chain_pems))).start()
    web = backends("web")
    try:
        ca_map = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "backend-ca", "namespace": "default"},
                                 "data": {"ca.crt": backend_ca.cert_pem.bytes().decode()}})
        gateway.write("gw.yaml", gateway_yaml("""\
            - name: https
              protocol: HTTPS
              port: 8443
              tls: {certificateRefs: [{name: front}]}
            """), tls_secret("front", front_ca, "grpc.example.com", "www.example.com"), "---\n" + ca_map,
            service_manifests("secure", [tls_backend], port=443), web.manifests(),  # type: ignore[attr-defined]
            grpc_route("""\
                parentRefs: [{name: gw}]
                hostnames: [grpc.example.com]
                rules: [{backendRefs: [{name: secure, port: 443}]}]
                """), """\
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: BackendTLSPolicy
            metadata: {name: secure-tls, namespace: default}
            spec:
              targetRefs: [{group: "", kind: Service, name: secure}]
              validation:
                hostname: grpc.internal
                caCertificateRefs: [{group: "", kind: ConfigMap, name: backend-ca}]
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: web, namespace: default}
            spec:
              parentRefs: [{name: gw}]
              hostnames: [www.example.com]
              rules: [{backendRefs: [{name: web, port: 80}]}]
            """)
        gateway.reconcile()
        c = client(gateway, port=8443, root_ca=front_ca.cert_pem.bytes())
        try:
            reply = c.call("/any.Service/Method")
            assert reply.code == OK, reply.details
            assert reply.pod == "secure"
            assert reply.body is not None and reply.body["method"] == "/any.Service/Method"
        finally:
            c.close()
        ctx = ssl.create_default_context(cadata=front_ca.cert_pem.bytes().decode())
        with socket.create_connection((gateway.address(), 8443), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="www.example.com") as tls:
            assert tls.selected_alpn_protocol() is None  # no ALPN asked: plain HTTP/1.1
            tls.sendall(b"GET /x HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
            head = tls.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 "), head[:100]  # HTTP/1.1 on the HTTPS listener is untouched
        assert parent(gateway, "GRPCRoute", "g")["Accepted"] == "True/Accepted"
        ancestors = gateway.status("BackendTLSPolicy", "secure-tls")["ancestors"]
        assert ancestors[0]["conditions"][0]["status"] == "True"
    finally:
        tls_backend.stop()


def test_status_kinds_conflicts_and_reference_grants(gateway: Gateway, grpc_backends: Callable[..., str]) -> None:
    other_ns = grpc_backends("remote", namespace="other")
    gateway.write("gw.yaml", gateway_yaml("""\
        - {name: http, protocol: HTTP, port: 8080}
        - name: http-only
          protocol: HTTP
          port: 8081
          allowedRoutes: {kinds: [{kind: HTTPRoute}]}
        - name: grpc-only
          protocol: HTTP
          port: 8082
          allowedRoutes: {kinds: [{kind: GRPCRoute}]}
        """), grpc_backends("local"), grpc_backends("h1", app_protocol="http"), other_ns, """\
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: other}
        """,
        grpc_route("""\
            parentRefs: [{name: gw, sectionName: http-only}]
            rules: [{backendRefs: [{name: local, port: 50051}]}]
            """, name="refused"),
        grpc_route("""\
            parentRefs: [{name: gw, sectionName: http}]
            hostnames: [shared.example.com]
            rules: [{backendRefs: [{name: local, port: 50051}]}]
            """, name="older-grpc", extra_meta=", creationTimestamp: '2026-01-01T00:00:00Z'"),
        """\
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: newer-http, namespace: default, creationTimestamp: '2026-02-01T00:00:00Z'}
        spec:
          parentRefs: [{name: gw, sectionName: http}]
          hostnames: ["*.example.com"]
          rules: [{backendRefs: [{name: local, port: 50051}]}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: elsewhere, namespace: default, creationTimestamp: '2026-02-01T00:00:00Z'}
        spec:
          parentRefs: [{name: gw, sectionName: http}]
          hostnames: [www.example.org]
          rules: [{backendRefs: [{name: local, port: 50051}]}]
        """,
        grpc_route("""\
            parentRefs: [{name: gw, sectionName: grpc-only}]
            rules:
              - matches: [{method: {service: remote.A}}]
                backendRefs: [{name: remote, namespace: other, port: 50051}]
            """, name="cross-ns"),
        grpc_route("""\
            parentRefs: [{name: gw, sectionName: grpc-only}]
            hostnames: [h1.example.com]
            rules: [{backendRefs: [{name: h1, port: 50051}]}]
            """, name="wrong-protocol"),
        """\
        ---
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: only-httproutes, namespace: other}
        spec:
          from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
          to: [{group: "", kind: Service}]
        """)
    gateway.reconcile()
    assert parent(gateway, "GRPCRoute", "refused")["Accepted"] == "False/NotAllowedByListeners"
    assert parent(gateway, "GRPCRoute", "older-grpc")["Accepted"] == "True/Accepted"
    assert parent(gateway, "HTTPRoute", "newer-http")["Accepted"] == "False/HostnameConflict"
    assert parent(gateway, "HTTPRoute", "elsewhere")["Accepted"] == "True/Accepted"  # no overlap: both kinds fine
    # A ReferenceGrant for HTTPRoutes doesn't let a GRPCRoute in.
    assert parent(gateway, "GRPCRoute", "cross-ns")["ResolvedRefs"] == "False/RefNotPermitted"
    assert parent(gateway, "GRPCRoute", "wrong-protocol")["ResolvedRefs"] == "False/UnsupportedProtocol"
    listeners = {ls["name"]: ls for ls in gateway.status("Gateway", "gw")["listeners"]}
    kinds = {name: [k["kind"] for k in ls["supportedKinds"]] for name, ls in listeners.items()}
    assert kinds == {"http": ["HTTPRoute", "GRPCRoute"], "http-only": ["HTTPRoute"], "grpc-only": ["GRPCRoute"]}
    assert listeners["http"]["attachedRoutes"] == 2  # older-grpc and elsewhere; newer-http lost
    assert listeners["grpc-only"]["attachedRoutes"] == 2
    # The HTTPRoute that lost is not served; the gRPC one is.
    c = client(gateway, authority="shared.example.com")
    try:
        assert c.call("/a.B/C").pod == "local"
    finally:
        c.close()
    # With a grant for GRPCRoutes the cross-namespace backend resolves and serves.
    gateway.write("grant.yaml", """\
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: grpcroutes, namespace: other}
        spec:
          from: [{group: gateway.networking.k8s.io, kind: GRPCRoute, namespace: default}]
          to: [{group: "", kind: Service, name: remote}]
        """)
    gateway.reconcile()
    assert parent(gateway, "GRPCRoute", "cross-ns")["ResolvedRefs"] == "True/ResolvedRefs"
    c = client(gateway, authority="any.example.net", port=8082)
    try:
        assert c.call("/remote.A/Go").pod == "remote"
    finally:
        c.close()
    # The port serving only HTTPRoutes stays HTTP/1.1.
    assert request(f"http://{gateway.address()}:8081/", host="x.example.com").status == 404


def test_example_grpcroute(gateway: Gateway, grpc_backends: Callable[..., str]) -> None:
    """examples/grpc/grpcroute.yaml as shipped, its EndpointSlice pointed at a real gRPC backend."""
    text = (REPO / "examples" / "grpc" / "grpcroute.yaml").read_text()
    net = loopback_subnet()
    servers = [GrpcEchoServer(f"{net}.{i}", 50051, f"greeter-{v}-abc12-00000").start()
               for i, v in ((1, "v1"), (2, "v2"))]
    try:
        for i, srv in enumerate(servers, 1):
            text = text.replace(f"10.0.0.{i}", srv.host)
        assert all(s.host in text for s in servers)
        # The fixture already defines the GatewayClass.
        docs = [d for d in text.split("\n---\n") if "kind: GatewayClass" not in d]
        gateway.write("example.yaml", "\n---\n".join(docs))
        gateway.reconcile()
        c = client(gateway, authority="grpc.example.com", port=50051, key="default/grpc")
        try:
            hello = c.call("/helloworld.Greeter/SayHello")
            assert hello.code == OK, hello.details
            assert hello.initial_metadata.get("x-gateway") == "wardgate"
            pods = Counter(str(c.call("/helloworld.Greeter/SayHello").body["pod"]).split("-")[1]  # type: ignore[index]
                           for _ in range(60))
            assert set(pods) == {"v1", "v2"}, pods
            assert c.call("/helloworld.Greeter/SayHello", {"x-canary": "true"}).body["pod"].startswith(  # type: ignore[index]
                "greeter-v2")
            assert c.call("/helloworld.Other/X").code == grpc.StatusCode.UNIMPLEMENTED
        finally:
            c.close()
        assert parent(gateway, "GRPCRoute", "greeter")["Accepted"] == "True/Accepted"
    finally:
        for srv in servers:
            srv.stop()


def test_httproute_policy_does_not_reach_a_same_named_grpcroute(gateway: Gateway, grpc_backends: Callable[..., str],
                                                                backends: Callable[..., object]) -> None:
    """Policies target HTTPRoutes by name: a GRPCRoute called the same gets only the Gateway's
    policy, never the HTTPRoute's (here one that would widen the allowed methods to POST)."""
    web = backends("web")
    gateway.write("gw.yaml", gateway_yaml("- {name: http, protocol: HTTP, port: 8080}"), grpc_backends("api"),
                  web.manifests(),  # type: ignore[attr-defined]
                  grpc_route("""\
                      parentRefs: [{name: gw}]
                      hostnames: [grpc.example.com]
                      rules: [{backendRefs: [{name: api, port: 50051}]}]
                      """, name="app"), """\
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: app, namespace: default}
        spec:
          parentRefs: [{name: gw}]
          hostnames: [www.example.com]
          rules: [{backendRefs: [{name: web, port: 80}]}]
        ---
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: gateway-reads, namespace: default}
        spec:
          targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
          allowedMethods: [GET, HEAD]
        ---
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: app-writes, namespace: default}
        spec:
          targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: app}]
          allowedMethods: [GET, HEAD, POST]
          responseHeaders: {set: [{name: x-app-policy, value: applied}]}
        """)
    gateway.reconcile()
    c = client(gateway)
    try:
        reply = c.call("/a.B/C")  # gRPC is POST: the Gateway's policy refuses it
        assert reply.code != OK
        assert "x-app-policy" not in reply.initial_metadata
    finally:
        c.close()
    # The HTTPRoute itself does get its policy (on a port that now speaks h2c, so via HTTP/2).
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-D", "-", "--http2-prior-knowledge", "-X", "POST",
                        "-H", "Host: www.example.com", f"http://{gateway.address()}:8080/x"],
                       capture_output=True, text=True, timeout=10)
    assert " 200" in r.stdout.splitlines()[0] and "x-app-policy: applied" in r.stdout, r.stdout


def test_backend_gets_client_address_headers_not_the_client_claims(gateway: Gateway,
                                                                   grpc_backends: Callable[..., str]) -> None:
    gateway.write("gw.yaml", gateway_yaml("- {name: grpc, protocol: HTTP, port: 8080}"), grpc_backends("svc"),
                  grpc_route("""\
                      parentRefs: [{name: gw}]
                      hostnames: [grpc.example.com]
                      rules:
                        - backendRefs: [{name: svc, port: 50051}]
                      """))
    gateway.reconcile()
    c = client(gateway)
    try:
        r = c.call("/grpc.test.Echo/Hello", {"x-real-ip": "203.0.113.66", "x-forwarded-for": "203.0.113.66",
                                              "proxy": "http://evil:3128/"})
    finally:
        c.close()
    # As an HTTP backend does (tests/test_backend_headers.py): never the client's claims, no httpoxy.
    assert r.body is not None
    md = r.body["metadata"]
    # The gRPC client connects from 127.0.0.1 (the gateway is on another 127.x address).
    assert (md.get("x-real-ip"), md.get("x-forwarded-for"), "proxy" in md) == ("127.0.0.1", "127.0.0.1", False)


def test_httproute_rule_with_backend_protocol_grpc_beside_http_paths(
        gateway: Gateway, grpc_backends: Callable[..., str], backends: Callable[..., object]) -> None:
    """docs/compatibility.md's backend-protocol-grpc example: one host, one HTTPRoute, a gRPC path
    proxied with grpc_pass (ingress-nginx's backend-protocol GRPC) and the host's HTTP paths served
    to HTTP/1.1, on an HTTPS listener. A GRPCRoute there would be refused beside the HTTPRoute."""
    from policy_helpers import doc_examples

    ca = trustme.CA()
    web = backends("shop-web")
    gateway.write("gw.yaml", gateway_yaml("""\
        - name: https
          protocol: HTTPS
          port: 8443
          tls: {certificateRefs: [{name: front}]}
        """), tls_secret("front", ca, "shop.example.com"), grpc_backends("shop-grpc"),
        web.manifests(), "---\n" + doc_examples(REPO / "docs" / "compatibility.md")["backend-protocol-grpc"])  # type: ignore[attr-defined]
    gateway.reconcile()
    assert parent(gateway, "HTTPRoute", "shop") == {"Accepted": "True/Accepted", "ResolvedRefs": "True/ResolvedRefs"}
    c = client(gateway, "shop.example.com", port=8443, root_ca=ca.cert_pem.bytes())
    try:
        reply = c.call("/grpc.test.Echo/Hello")
        assert reply.code == OK, reply.details
        assert reply.body is not None and str(reply.body["pod"]).startswith("shop-grpc-")
        assert reply.body["method"] == "/grpc.test.Echo/Hello"
        # other paths of the host are the HTTP backend's, not gRPC
        assert c.call("/other.Svc/Get").code != OK
    finally:
        c.close()
    ctx = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    with socket.create_connection((gateway.address(), 8443), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="shop.example.com") as tls:
        tls.sendall(b"GET /cart HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n")
        head = tls.recv(65536)
    assert head.startswith(b"HTTP/1.1 200 ") and b"shop-web" in head, head[:300]
