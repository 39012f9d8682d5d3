"""IngressNginxCompat backendTLS (docs/compatibility.md): TLS to backends without verifying them,
as ingress-nginx's backend-protocol HTTPS/GRPCS, on real nginx with real TLS echo backends."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
import yaml
from pydantic import ValidationError

from conftest import GW, GW_HEAD, REPO, Gateway, loopback_subnet, request
from grpc_echo import GrpcClient, GrpcEchoServer, service_manifests
from policy_helpers import doc_examples
from test_grpcroute import OK
from wardgate.model.compat import IngressNginxCompatSpec
from wardgate.verify.echo import EchoIdentity, EchoServer

pytestmark = pytest.mark.timeout(180)

DOCS = REPO / "docs" / "compatibility.md"
COMPAT_REF = "{type: ExtensionRef, extensionRef: {group: policy.wardgate.io, kind: IngressNginxCompat, name: %s}}"


@pytest.fixture
def tls_pods(world_dir: Path) -> Iterator[tuple[trustme.CA, list[EchoServer]]]:
    """Two HTTPS echo pods (services secure-app and other) with a certificate for secure.internal
    from a CA of their own: nobody else trusts it."""
    ca = trustme.CA()
    ca.issue_cert("secure.internal").private_key_and_cert_chain_pem.write_to_path(str(world_dir / "pod.pem"))
    pods = []
    for i, svc in enumerate(("secure-app", "other")):
        pods.append(EchoServer(f"{loopback_subnet()}.{i + 1}", 8443, EchoIdentity("default", f"{svc}-abc12-00000"),
                               certfile=str(world_dir / "pod.pem"), keyfile=str(world_dir / "pod.pem"),
                               log=lambda _line: None).start())
    yield ca, pods
    for pod in pods:
        pod.stop()


def services(pods: list[EchoServer]) -> str:
    out = ""
    for svc, pod in zip(("secure-app", "other"), pods, strict=True):
        out += textwrap.dedent(f"""\
            ---
            apiVersion: v1
            kind: Service
            metadata: {{name: {svc}, namespace: default}}
            spec: {{ports: [{{name: https, port: 443, targetPort: 8443}}]}}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {{name: {svc}, namespace: default, labels: {{kubernetes.io/service-name: {svc}}}}}
            addressType: IPv4
            ports: [{{name: https, port: 8443}}]
            endpoints: [{{addresses: ["{pod.host}"]}}]
            """)
    return out


def policy(ca: trustme.CA, service: str) -> str:
    """A BackendTLSPolicy verifying `service` against `ca` for secure.internal."""
    cm = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "pods-ca", "namespace": "default"},
                         "data": {"ca.crt": ca.cert_pem.bytes().decode()}})
    return "---\n" + cm + textwrap.dedent(f"""\
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: BackendTLSPolicy
        metadata: {{name: {service}-tls, namespace: default}}
        spec:
          targetRefs: [{{group: "", kind: Service, name: {service}}}]
          validation:
            hostname: secure.internal
            caCertificateRefs: [{{group: "", kind: ConfigMap, name: pods-ca}}]
        """)


def get(gateway: Gateway, host: str, path: str = "/x") -> tuple[int, dict[str, object]]:
    r = request(f"http://{gateway.address()}:8080{path}", host=host)
    return r.status, (r.json if r.headers.get("content-type") == "application/json" else {})


PLAIN_ROUTE = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: plain, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [plain.example.com]
  rules: [{backendRefs: [{name: secure-app, port: 443}]}]
"""


def test_documented_example_reaches_tls_pods_without_verifying(
        gateway: Gateway, tls_pods: tuple[trustme.CA, list[EchoServer]]) -> None:
    _ca, pods = tls_pods
    gateway.write("world.yaml", GW, services(pods), doc_examples(DOCS)["backend-tls-unverified"], PLAIN_ROUTE)
    gateway.reconcile()
    for _ in range(3):  # kept-alive TLS connections are reused
        status, echo = get(gateway, "secure.example.com")
        assert status == 200 and echo["pod"] == "secure-app-abc12-00000" and echo["path"] == "/x"
        tls = echo["tls"]
        assert isinstance(tls, dict) and tls["serverName"] == ""  # no SNI, as ingress-nginx
        assert echo["headers"]["X-Forwarded-Proto"] == ["http"]  # type: ignore[index]
    # The same Service without the filter gets plaintext on its TLS port: nginx's 502.
    assert get(gateway, "plain.example.com")[0] == 502
    # The rendered location says what it does.
    conf = (gateway.runner.instances["default/gw"].current_conf.read_text())
    assert "proxy_ssl_verify off;" in conf and "proxy_ssl_server_name off;" in conf


TWO_RULES = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: secure, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [secure.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /one}}]
      filters: [REF]
      backendRefs: [{name: secure-app, port: 443}]
    - matches: [{path: {type: PathPrefix, value: /mixed}}]
      filters: [REF]
      backendRefs: [{name: secure-app, port: 443}, {name: other, port: 443}]
""".replace("REF", COMPAT_REF % "unverified")
UNVERIFIED = """\
---
apiVersion: policy.wardgate.io/v1alpha1
kind: IngressNginxCompat
metadata: {name: unverified, namespace: default}
spec: {backendTLS: {insecureSkipVerify: true}}
"""


def test_backend_tls_policy_wins_and_mixed_rules_answer_500(
        gateway: Gateway, tls_pods: tuple[trustme.CA, list[EchoServer]], caplog: pytest.LogCaptureFixture) -> None:
    ca, pods = tls_pods
    caplog.set_level(logging.WARNING, logger="wardgate")
    gateway.write("world.yaml", GW, services(pods), UNVERIFIED, TWO_RULES, policy(ca, "secure-app"))
    gateway.reconcile()
    # The BackendTLSPolicy verifies secure-app (its name goes out as SNI) despite the filter.
    status, echo = get(gateway, "secure.example.com", "/one")
    assert status == 200 and echo["tls"]["serverName"] == "secure.internal"  # type: ignore[index]
    # One rule can't reach a verified and an unverified backend: 500, and the route says why.
    assert get(gateway, "secure.example.com", "/mixed")[0] == 500
    assert "the backends of one rule must all be reached the same way" in caplog.text
    # A policy with a CA that didn't sign the pods' certificate: verification fails, nothing falls
    # back to the unverified connection.
    gateway.write("world.yaml", GW, services(pods), UNVERIFIED, TWO_RULES, policy(trustme.CA(), "secure-app"))
    gateway.reconcile()
    assert get(gateway, "secure.example.com", "/one")[0] == 502


def test_insecure_skip_verify_false_is_refused() -> None:
    with pytest.raises(ValidationError, match="omit backendTLS"):
        IngressNginxCompatSpec.model_validate({"backendTLS": {"insecureSkipVerify": False}})
    with pytest.raises(ValidationError):
        IngressNginxCompatSpec.model_validate({"backendTLS": {}})
    assert IngressNginxCompatSpec.model_validate({"backendTLS": {"insecureSkipVerify": True}}).backend_tls


GRPC_GW = GW_HEAD + "    - {name: grpc, protocol: HTTP, port: 8080}\n"


def test_grpcroute_rule_reaches_grpcs_pods_without_verifying(gateway: Gateway) -> None:
    """backend-protocol GRPCS: grpcs:// to a pod with a certificate nobody trusts."""
    ca = trustme.CA()
    cert = ca.issue_cert("grpc.internal")
    pod = GrpcEchoServer(f"{loopback_subnet()}.1", 50443, "secure-abc12-00000",
                         certificate=(cert.private_key_pem.bytes(),
                                      b"".join(b.bytes() for b in cert.cert_chain_pems))).start()
    try:
        def world(compat_spec: str) -> None:
            gateway.write("world.yaml", GRPC_GW, service_manifests("secure", [pod], port=443), textwrap.dedent(f"""\
                ---
                apiVersion: policy.wardgate.io/v1alpha1
                kind: IngressNginxCompat
                metadata: {{name: unverified, namespace: default}}
                spec: {compat_spec}
                ---
                apiVersion: gateway.networking.k8s.io/v1
                kind: GRPCRoute
                metadata: {{name: g, namespace: default}}
                spec:
                  parentRefs: [{{name: gw}}]
                  hostnames: [grpc.example.com]
                  rules:
                    - filters: [{COMPAT_REF % "unverified"}]
                      backendRefs: [{{name: secure, port: 443}}]
                """))
            gateway.reconcile()

        world("{backendTLS: {insecureSkipVerify: true}}")
        c = GrpcClient(f"{gateway.address()}:8080", "grpc.example.com", None)
        try:
            reply = c.call("/any.Service/Method")
            assert reply.code == OK, reply.details
            assert reply.pod == "secure"
        finally:
            c.close()
        # Path settings don't apply to a GRPCRoute rule: it answers with an error, not silently.
        world("{pathMatching: IngressNginx, backendTLS: {insecureSkipVerify: true}}")
        c = GrpcClient(f"{gateway.address()}:8080", "grpc.example.com", None)
        try:
            assert c.call("/any.Service/Method").code != OK
        finally:
            c.close()
    finally:
        pod.stop()
