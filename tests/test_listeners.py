"""Listeners: hostnames and isolation, HTTPS with HTTP/2, and the status conditions."""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trustme
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import Backend, Gateway, loopback_subnet, request
from wardgate.verify.echo import EchoIdentity, EchoServer

pytestmark = pytest.mark.timeout(120)


def tls_secret(name: str, ca: trustme.CA, *hosts: str, namespace: str = "default",
               key_type: trustme.KeyType = trustme.KeyType.ECDSA) -> str:
    cert = ca.issue_cert(*hosts, key_type=key_type)
    crt = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    key = cert.private_key_pem.bytes()
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {namespace}}}
type: kubernetes.io/tls
data:
  tls.crt: {base64.b64encode(crt).decode()}
  tls.key: {base64.b64encode(key).decode()}
"""


def test_listener_isolation_and_hostname_intersection(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    exact, wild, any_ = backends("exact"), backends("wild"), backends("any")
    gateway.write("gw.yaml", """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: default}
        spec:
          gatewayClassName: wardgate
          listeners:
            - {name: exact, protocol: HTTP, port: 8080, hostname: foo.example.com}
            - {name: wild, protocol: HTTP, port: 8080, hostname: "*.example.com"}
            - {name: any, protocol: HTTP, port: 8080}
        """, exact.manifests(), wild.manifests(), any_.manifests())
    gateway.write("routes.yaml", """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: exact, namespace: default}
        spec:
          parentRefs: [{name: gw, sectionName: exact}]
          rules: [{backendRefs: [{name: exact, port: 80}]}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: wild, namespace: default}
        spec:
          parentRefs: [{name: gw, sectionName: wild}]
          rules: [{backendRefs: [{name: wild, port: 80}]}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: any, namespace: default}
        spec:
          parentRefs: [{name: gw, sectionName: any}]
          hostnames: [foo.example.com, other.org]
          rules: [{backendRefs: [{name: any, port: 80}]}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: mismatch, namespace: default}
        spec:
          parentRefs: [{name: gw, sectionName: exact}]
          hostnames: [bar.example.com]
          rules: [{backendRefs: [{name: exact, port: 80}]}]
        """)
    gateway.reconcile()
    base = f"http://{gateway.address()}:8080/"

    def who(host: str) -> str | int:
        r = request(base, host=host)
        return str(r.json["pod"]).split("-")[0] if r.status == 200 else r.status

    assert who("foo.example.com") == "exact"  # the most specific listener owns its hostname
    assert who("a.example.com") == "wild"
    assert who("a.b.example.com") == "wild"  # wildcards cover several labels
    assert who("other.org") == "any"
    assert who("example.org") == 404
    parent = gateway.status("HTTPRoute", "mismatch")["parents"][0]
    accepted = next(c for c in parent["conditions"] if c["type"] == "Accepted")
    assert (accepted["status"], accepted["reason"]) == ("False", "NoMatchingListenerHostname")
    listeners = {ls["name"]: ls for ls in gateway.status("Gateway", "gw")["listeners"]}
    assert listeners["exact"]["attachedRoutes"] == 1
    assert listeners["any"]["attachedRoutes"] == 1


def test_https_listener_http2_and_bad_certificate(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    ca = trustme.CA()
    app = backends("app")
    gateway.write("gw.yaml", """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: default}
        spec:
          gatewayClassName: wardgate
          listeners:
            - name: https
              protocol: HTTPS
              port: 8443
              hostname: secure.example.com
              tls: {certificateRefs: [{name: good-cert}]}
            - name: broken
              protocol: HTTPS
              port: 8443
              hostname: broken.example.com
              tls: {certificateRefs: [{name: missing-cert}]}
            - name: elsewhere
              protocol: HTTPS
              port: 8443
              hostname: other.example.com
              tls: {certificateRefs: [{name: good-cert, namespace: certs}]}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: app, namespace: default}
        spec:
          parentRefs: [{name: gw}]
          rules: [{backendRefs: [{name: app, port: 80}]}]
        """, tls_secret("good-cert", ca, "secure.example.com"), app.manifests())
    gateway.reconcile()
    addr = gateway.address()
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    transport = httpx.HTTPTransport(http2=True, verify=ctx)
    with httpx.Client(transport=transport) as client:
        r = client.get(f"https://{addr}:8443/x", headers={"Host": "secure.example.com"},
                       extensions={"sni_hostname": "secure.example.com"})
    assert r.status_code == 200
    assert r.http_version == "HTTP/2"
    assert r.json()["path"] == "/x"
    assert r.json()["host"] == "secure.example.com"
    # Unknown SNI names get no certificate at all.
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=ctx) as client:
        client.get(f"https://{addr}:8443/", headers={"Host": "nobody.example.com"},
                   extensions={"sni_hostname": "nobody.example.com"})
    listeners = {ls["name"]: ls for ls in gateway.status("Gateway", "gw")["listeners"]}

    def cond(name: str, type_: str) -> tuple[str, str]:
        c = next(c for c in listeners[name]["conditions"] if c["type"] == type_)
        return c["status"], c["reason"]

    assert cond("https", "Programmed") == ("True", "Programmed")
    assert cond("broken", "ResolvedRefs") == ("False", "InvalidCertificateRef")
    assert cond("broken", "Programmed") == ("False", "Invalid")
    assert cond("elsewhere", "ResolvedRefs") == ("False", "RefNotPermitted")
    gw_accepted = gateway.status("Gateway", "gw")["conditions"][0]
    assert (gw_accepted["status"], gw_accepted["reason"]) == ("True", "ListenersNotValid")


def test_parent_ref_port_attaches_to_the_listeners_on_that_port(gateway: Gateway,
                                                                 backends: Callable[..., Backend]) -> None:
    on_port, on_b = backends("onport"), backends("onb")
    gateway.write("gw.yaml", """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: default}
        spec:
          gatewayClassName: wardgate
          listeners:
            - {name: a, protocol: HTTP, port: 8080}
            - {name: b, protocol: HTTP, port: 8081, hostname: b.example.com}
            - {name: c, protocol: HTTP, port: 8081, hostname: c.example.com}
            - name: closed
              protocol: HTTP
              port: 8082
              allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: none}}}}
        """, on_port.manifests(), on_b.manifests())

    def route(name: str, parent: str, backend: str = "onport", path: str = "/") -> str:
        return f"""
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {{name: {name}, namespace: default}}
            spec:
              parentRefs: [{parent}]
              rules:
                - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
                  backendRefs: [{{name: {backend}, port: 80}}]
            """

    gateway.write("routes.yaml",
                  route("port", "{name: gw, port: 8081}"),
                  route("port-and-section", "{name: gw, port: 8081, sectionName: b}", "onb", "/b-only"),
                  route("no-port", "{name: gw, port: 9999}", path="/nothing"),
                  route("section-elsewhere", "{name: gw, port: 8081, sectionName: a}", path="/nothing"),
                  route("not-allowed", "{name: gw, port: 8082}", path="/nothing"))
    gateway.reconcile()
    addr = gateway.address()

    def who(port: int, host: str, path: str = "/") -> str | int:
        r = request(f"http://{addr}:{port}{path}", host=host)
        return str(r.json["pod"]).split("-")[0] if r.status == 200 else r.status

    # Both listeners on 8081 serve the route; the listener on 8080 does not.
    assert who(8081, "b.example.com") == who(8081, "c.example.com") == "onport"
    assert who(8080, "b.example.com") == 404
    # Port and sectionName together: only the listener matching both.
    assert who(8081, "b.example.com", "/b-only/x") == "onb"
    assert who(8081, "c.example.com", "/b-only/x") == "onport"

    def accepted(name: str) -> tuple[str, str, int | None]:
        parent = gateway.status("HTTPRoute", name)["parents"][0]
        c = next(c for c in parent["conditions"] if c["type"] == "Accepted")
        return c["status"], c["reason"], parent["parentRef"].get("port")

    assert accepted("port") == ("True", "Accepted", 8081)
    assert accepted("port-and-section") == ("True", "Accepted", 8081)
    assert accepted("no-port") == ("False", "NoMatchingParent", 9999)
    assert accepted("section-elsewhere") == ("False", "NoMatchingParent", 8081)
    assert accepted("not-allowed") == ("False", "NotAllowedByListeners", 8082)
    attached = {ls["name"]: ls["attachedRoutes"] for ls in gateway.status("Gateway", "gw")["listeners"]}
    assert attached == {"a": 0, "b": 2, "c": 1, "closed": 0}


def _served_key_type(addr: str, cas: list[trustme.CA], cipher: str | None, host: str = "multi.example.com") -> str:
    """The key type of the certificate the gateway serves to a client that only offers `cipher`
    (TLS 1.2: the cipher suite names the key type), or with TLS 1.3 defaults when None."""
    ctx = ssl.create_default_context()
    for ca in cas:
        ca.configure_trust(ctx)
    if cipher is not None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(cipher)
    with socket.create_connection((addr, 8443), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    key = x509.load_der_x509_certificate(der).public_key()
    return "RSA" if isinstance(key, rsa.RSAPublicKey) else "ECDSA" if isinstance(key, ec.EllipticCurvePublicKey) \
        else type(key).__name__


def test_several_certificates_per_listener(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    rsa_ca, ec_ca = trustme.CA(key_type=trustme.KeyType.RSA), trustme.CA()
    app = backends("app")
    gateway.write("gw.yaml", """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: default}
        spec:
          gatewayClassName: wardgate
          listeners:
            - name: multi
              protocol: HTTPS
              port: 8443
              hostname: multi.example.com
              tls: {certificateRefs: [{name: rsa-cert}, {name: ec-cert}]}
            - name: twice
              protocol: HTTPS
              port: 8443
              hostname: twice.example.com
              tls: {certificateRefs: [{name: ec-cert}, {name: ec-cert-2}]}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: app, namespace: default}
        spec:
          parentRefs: [{name: gw}]
          rules: [{backendRefs: [{name: app, port: 80}]}]
        """, tls_secret("rsa-cert", rsa_ca, "multi.example.com", key_type=trustme.KeyType.RSA),
                  tls_secret("ec-cert", ec_ca, "multi.example.com", "twice.example.com"),
                  tls_secret("ec-cert-2", ec_ca, "twice.example.com"), app.manifests())
    gateway.reconcile()
    addr = gateway.address()
    both = [rsa_ca, ec_ca]
    # A TLS 1.2 client that only speaks ECDSA suites gets the ECDSA certificate, an RSA-only one the RSA
    # certificate: both are served on the one listener.
    assert _served_key_type(addr, both, "ECDHE-ECDSA-AES128-GCM-SHA256") == "ECDSA"
    assert _served_key_type(addr, both, "ECDHE-RSA-AES128-GCM-SHA256") == "RSA"
    assert _served_key_type(addr, both, None) in ("RSA", "ECDSA")
    with pytest.raises(ssl.SSLError):  # the RSA certificate is really rsa_ca's
        _served_key_type(addr, [ec_ca], "ECDHE-RSA-AES128-GCM-SHA256")
    ctx = ssl.create_default_context()
    for ca in both:
        ca.configure_trust(ctx)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    with httpx.Client(verify=ctx) as client:
        r = client.get(f"https://{addr}:8443/rsa", headers={"Host": "multi.example.com"},
                       extensions={"sni_hostname": "multi.example.com"})
    assert (r.status_code, r.json()["path"]) == (200, "/rsa")
    # Two certificates of one key type: each name gets the first that covers it (docs/tls.md), so
    # one covering no name of its own is never served, which the condition says.
    twice = next(ls for ls in gateway.status("Gateway", "gw")["listeners"] if ls["name"] == "twice")
    resolved = next(c for c in twice["conditions"] if c["type"] == "ResolvedRefs")
    assert (resolved["status"], resolved["reason"]) == ("True", "ResolvedRefs")
    assert "never served" in resolved["message"] and "tls.certificateRefs[1] (Secret default/ec-cert-2)" \
        in resolved["message"]
    assert _served_key_type(addr, both, "ECDHE-ECDSA-AES128-GCM-SHA256", "twice.example.com") == "ECDSA"


def test_cross_namespace_rules(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    app = backends("app", namespace="apps")
    gateway.write("gw.yaml", """\
        apiVersion: v1
        kind: Namespace
        metadata: {name: apps, labels: {team: web}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: other}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: default}
        spec:
          gatewayClassName: wardgate
          listeners:
            - name: http
              protocol: HTTP
              port: 8080
              allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: web}}}}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: app, namespace: apps}
        spec:
          parentRefs: [{name: gw, namespace: default}]
          rules: [{backendRefs: [{name: app, port: 80}]}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: stranger, namespace: other}
        spec:
          parentRefs: [{name: gw, namespace: default}]
          hostnames: [stranger.example.com]
          rules: [{backendRefs: [{name: app, namespace: apps, port: 80}]}]
        """, app.manifests())
    gateway.reconcile()
    assert request(f"http://{gateway.address()}:8080/", host="a.example.com").json["namespace"] == "apps"
    st = gateway.status("HTTPRoute", "stranger", "other")["parents"][0]["conditions"]
    assert [(c["type"], c["status"], c["reason"]) for c in st] == [
        ("Accepted", "False", "NotAllowedByListeners"), ("ResolvedRefs", "False", "RefNotPermitted")]


@pytest.mark.parametrize("mode", ["AllowValidOnly", "AllowInsecureFallback"])
def test_client_certificate_validation(gateway: Gateway, backends: Callable[..., Backend], mode: str) -> None:
    server_ca, client_ca, other_ca = trustme.CA(), trustme.CA(), trustme.CA()
    app = backends("app")
    config_map = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "clients-ca", "namespace": "default"},
                                 "data": {"ca.crt": client_ca.cert_pem.bytes().decode()}})
    gateway.write("gw.yaml", config_map, f"""\
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {{name: gw, namespace: default}}
        spec:
          gatewayClassName: wardgate
          tls:
            frontend:
              default:
                validation:
                  mode: {mode}
                  caCertificateRefs: [{{kind: ConfigMap, group: "", name: clients-ca}}]
          listeners:
            - name: https
              protocol: HTTPS
              port: 8443
              tls: {{certificateRefs: [{{name: server-cert}}]}}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {{name: app, namespace: default}}
        spec:
          parentRefs: [{{name: gw}}]
          rules: [{{backendRefs: [{{name: app, port: 80}}]}}]
        """, tls_secret("server-cert", server_ca, "secure.example.com"), app.manifests())
    gateway.reconcile()

    def get(client: trustme.CA | None) -> int:
        ctx = ssl.create_default_context()
        server_ca.configure_trust(ctx)
        if client is not None:
            client.issue_cert("client@example.com").configure_cert(ctx)
        with httpx.Client(verify=ctx) as c:
            return c.get(f"https://{gateway.address()}:8443/", headers={"Host": "secure.example.com"},
                         extensions={"sni_hostname": "secure.example.com"}).status_code

    assert get(client_ca) == 200
    if mode == "AllowValidOnly":
        # Refused at the transport: the connection closes without an HTTP answer.
        for client in (None, other_ca):
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
                get(client)
    else:
        assert get(None) == 200
        assert get(other_ca) == 200
        conds = {c["type"]: c["status"] for c in gateway.status("Gateway", "gw")["conditions"]}
        assert conds["InsecureFrontendValidationMode"] == "True"


def test_backend_tls_policy_and_gateway_client_certificate(gateway: Gateway, world_dir: Path) -> None:
    backend_ca, client_ca, wrong_ca = trustme.CA(), trustme.CA(), trustme.CA()
    server = backend_ca.issue_cert("app.internal")
    server.private_key_and_cert_chain_pem.write_to_path(str(world_dir / "server.pem"))
    client_ca.cert_pem.write_to_path(str(world_dir / "clients-ca.pem"))
    net = loopback_subnet()
    echo = EchoServer(f"{net}.1", 8443, EchoIdentity("default", "app-abc12-00000"),
                      certfile=str(world_dir / "server.pem"), keyfile=str(world_dir / "server.pem"),
                      client_ca=str(world_dir / "clients-ca.pem"), log=lambda _line: None).start()
    try:
        def config_map(name: str, ca: trustme.CA) -> str:
            return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": name, "namespace": "default"},
                                   "data": {"ca.crt": ca.cert_pem.bytes().decode()}})

        def write(ca_map: str) -> None:
            gateway.write("gw.yaml", config_map("backend-ca", backend_ca), "---\n" + config_map("wrong-ca", wrong_ca),
                          f"""\
                ---
                apiVersion: gateway.networking.k8s.io/v1
                kind: Gateway
                metadata: {{name: gw, namespace: default}}
                spec:
                  gatewayClassName: wardgate
                  tls: {{backend: {{clientCertificateRef: {{name: gw-client}}}}}}
                  listeners: [{{name: http, protocol: HTTP, port: 8080}}]
                ---
                apiVersion: gateway.networking.k8s.io/v1
                kind: HTTPRoute
                metadata: {{name: app, namespace: default}}
                spec:
                  parentRefs: [{{name: gw}}]
                  rules: [{{backendRefs: [{{name: app, port: 443}}]}}]
                ---
                apiVersion: gateway.networking.k8s.io/v1
                kind: BackendTLSPolicy
                metadata: {{name: app-tls, namespace: default}}
                spec:
                  targetRefs: [{{group: "", kind: Service, name: app}}]
                  validation:
                    hostname: app.internal
                    caCertificateRefs: [{{group: "", kind: ConfigMap, name: {ca_map}}}]
                ---
                apiVersion: v1
                kind: Service
                metadata: {{name: app, namespace: default}}
                spec: {{ports: [{{name: https, port: 443, targetPort: 8443}}]}}
                ---
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {{name: app, namespace: default, labels: {{kubernetes.io/service-name: app}}}}
                addressType: IPv4
                ports: [{{name: https, port: 8443}}]
                endpoints: [{{addresses: ["{net}.1"]}}]
                """, tls_secret("gw-client", client_ca, "gateway.example.com"))
            gateway.reconcile()

        write("backend-ca")
        r = request(f"http://{gateway.address()}:8080/x", host="example.com")
        assert r.status == 200
        assert r.json["tls"]["serverName"] == "app.internal"  # SNI from the policy's hostname
        assert len(r.json["tls"]["peerCertificates"]) == 1  # the Gateway's client certificate
        ancestors = gateway.status("BackendTLSPolicy", "app-tls")["ancestors"]
        assert ancestors[0]["ancestorRef"]["name"] == "gw"
        assert ancestors[0]["conditions"][0]["status"] == "True"
        # A CA that didn't sign the backend's certificate: nginx refuses the upstream (502).
        write("wrong-ca")
        assert request(f"http://{gateway.address()}:8080/x", host="example.com").status == 502
    finally:
        echo.stop()
