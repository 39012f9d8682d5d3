"""TLS passthrough: TLSRoutes routed by SNI name through nginx's stream module, alone on a port and
sharing one with a terminating HTTPS listener; their status conditions."""

from __future__ import annotations

import json
import socket
import ssl
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme
import yaml

from conftest import Backend, Gateway, loopback_subnet
from policy_helpers import decision_log
from test_listeners import tls_secret
from wardgate.errors import InputError, Origin
from wardgate.model import parse_object
from wardgate.sources.files import RawObject
from wardgate.verify.echo import EchoIdentity, EchoServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def tls_backend(world_dir: Path) -> Iterator[Callable[[str, str], tuple[EchoServer, trustme.CA]]]:
    """tls_backend("svc", "sni.name"): a real TLS echo server with its own CA, on its own address."""
    started: list[EchoServer] = []

    def make(service: str, hostname: str) -> tuple[EchoServer, trustme.CA]:
        ca = trustme.CA()
        cert = ca.issue_cert(hostname)
        certfile = Path(tempfile.mkstemp(dir=world_dir, suffix=".pem")[1])
        cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
        srv = EchoServer(f"{loopback_subnet()}.1", 0, EchoIdentity(pod=f"{service}-abc12-00000"),
                         certfile=str(certfile), log=lambda _line: None).start()
        started.append(srv)
        return srv, ca

    yield make
    for srv in started:
        srv.stop()


def service(name: str, srv: EchoServer, port: int = 443) -> str:
    return textwrap.dedent(f"""\
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: default}}
        spec:
          ports: [{{name: tls, port: {port}, targetPort: {srv.port}}}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: {name}-1
          namespace: default
          labels: {{kubernetes.io/service-name: {name}}}
        addressType: IPv4
        ports: [{{name: tls, port: {srv.port}}}]
        endpoints: [{{addresses: [{srv.host}]}}]
        """)


def tls_route(name: str, hostnames: list[str], backend: str, *, section: str | None = None,
              version: str = "v1", namespace: str = "default", backend_ns: str | None = None) -> str:
    parent = {"name": "gw", "namespace": "default", **({"sectionName": section} if section else {})}
    ref = {"name": backend, "port": 443, **({"namespace": backend_ns} if backend_ns else {})}
    hosts = f"  hostnames: {json.dumps(hostnames)}\n" if hostnames else ""
    return (f"---\napiVersion: gateway.networking.k8s.io/{version}\nkind: TLSRoute\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
            f"  parentRefs: [{json.dumps(parent)}]\n{hosts}"
            f"  rules: [{{backendRefs: [{json.dumps(ref)}]}}]\n")


def shared_port(passthrough_host: str, ca: trustme.CA, web: Backend) -> str:
    """A Gateway with a passthrough listener and an HTTPS listener (web.example.com, routed to
    `web`) on port 8443."""
    return textwrap.dedent(f"""\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {{name: gw, namespace: default}}
        spec:
          gatewayClassName: wardgate
          listeners:
            - {{name: passthrough, protocol: TLS, port: 8443, hostname: "{passthrough_host}",
                tls: {{mode: Passthrough}}}}
            - name: web
              protocol: HTTPS
              port: 8443
              hostname: web.example.com
              tls: {{certificateRefs: [{{name: web-cert}}]}}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {{name: web, namespace: default}}
        spec:
          parentRefs: [{{name: gw, sectionName: web}}]
          rules: [{{backendRefs: [{{name: web, port: 80}}]}}]
        """) + tls_secret("web-cert", ca, "web.example.com") + web.manifests()


def handshake(addr: str, port: int, sni: str, ca: trustme.CA, source: str | None = None) -> dict[str, object]:
    """A TLS connection to addr:port with this SNI name, verified against `ca`, then one HTTP
    request: the peer certificate and the answer."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with socket.create_connection((addr, port), timeout=5, source_address=(source, 0) if source else None) as raw, \
            ctx.wrap_socket(raw, server_hostname=sni) as tls:
        cert = tls.getpeercert()
        tls.sendall(f"GET /who HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return {"cert": cert, "status": int(head.split()[1]), "body": json.loads(body)}


def refused(addr: str, port: int, sni: str) -> bool:
    """True when the gateway closes the connection before any TLS answer for this SNI name."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((addr, port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=sni):
            return False
    except (ssl.SSLError, ConnectionResetError, OSError):
        return True


def subject_names(cert: dict[str, object]) -> list[str]:
    return [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]  # type: ignore[attr-defined]


def conditions(status: dict[str, object]) -> dict[str, tuple[str, str]]:
    conds = status["conditions"]  # type: ignore[index]
    return {c["type"]: (c["status"], c["reason"]) for c in conds}  # type: ignore[union-attr]


def parent(gateway: Gateway, name: str) -> dict[str, tuple[str, str]]:
    return conditions(gateway.status("TLSRoute", name)["parents"][0])


def test_passthrough_by_sni_with_backend_certificate(gateway: Gateway, tls_backend: Callable[..., tuple[
        EchoServer, trustme.CA]]) -> None:
    alpha, alpha_ca = tls_backend("alpha", "alpha.example.com")
    wild, wild_ca = tls_backend("wild", "*.apps.example.com")
    gateway.write("gw.yaml", """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: default}
        spec:
          gatewayClassName: wardgate
          listeners:
            - name: tls
              protocol: TLS
              port: 8443
              tls: {mode: Passthrough}
        """, service("alpha", alpha), service("wild", wild),
        tls_route("alpha", ["alpha.example.com"], "alpha"),
        tls_route("wild", ["*.apps.example.com"], "wild", version="v1alpha2"))
    gateway.reconcile()
    addr = gateway.address()
    got = handshake(addr, 8443, "alpha.example.com", alpha_ca)
    # The client verified the backend's own certificate (its CA, its name): TLS went through untouched.
    assert subject_names(got["cert"]) == ["alpha.example.com"]  # type: ignore[arg-type]
    assert got["status"] == 200 and got["body"]["pod"] == "alpha-abc12-00000"  # type: ignore[index]
    got = handshake(addr, 8443, "x.apps.example.com", wild_ca)
    assert got["body"]["pod"] == "wild-abc12-00000"  # type: ignore[index]
    # Names no route claims, and no name at all, get their connection closed.
    assert refused(addr, 8443, "beta.example.com")
    assert refused(addr, 8443, "apps.example.com")  # *.apps.example.com does not cover its parent
    assert not refused(addr, 8443, "alpha.example.com")
    listener = gateway.status("Gateway", "gw")["listeners"][0]
    assert listener["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}]
    assert listener["attachedRoutes"] == 2
    assert conditions(listener)["Programmed"] == ("True", "Programmed")
    assert parent(gateway, "alpha") == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}


def test_shared_port_passthrough_and_terminating_https(gateway: Gateway, backends: Callable[..., Backend],
                                                       tls_backend: Callable[..., tuple[EchoServer, trustme.CA]]
                                                       ) -> None:
    pt, pt_ca = tls_backend("pt", "pt.example.com")
    web = backends("web")
    gw_ca = trustme.CA()
    gateway.write("gw.yaml", shared_port("*.example.com", gw_ca, web), service("pt", pt),
                  # web.example.com is also in this route, but the HTTPS listener owns that name.
                  tls_route("pt", ["pt.example.com", "web.example.com"], "pt"))
    gateway.reconcile()
    addr = gateway.address()
    got = handshake(addr, 8443, "pt.example.com", pt_ca)
    assert subject_names(got["cert"]) == ["pt.example.com"]  # type: ignore[arg-type]
    assert got["body"]["pod"] == "pt-abc12-00000"  # type: ignore[index]
    # The terminating host: the gateway's certificate, the HTTP route, and the client's own address
    # (a distinct loopback source) seen by the backend and the decision log.
    client_ip = f"{loopback_subnet()}.77"
    transport = httpx.HTTPTransport(http2=True, verify=_ctx(gw_ca), local_address=client_ip)

    def get(path: str) -> httpx.Response:
        with httpx.Client(transport=transport) as client:
            # Claims the client can't back: the backend must get the address the stream module saw.
            return client.get(f"https://{addr}:8443{path}", extensions={"sni_hostname": "web.example.com"},
                              headers={"Host": "web.example.com", "X-Real-IP": "203.0.113.66",
                                       "X-Forwarded-For": f"{client_ip}, 203.0.113.66"})

    r = get("/hello")
    assert r.status_code == 200, r.text
    assert r.http_version == "HTTP/2"
    assert r.json()["pod"].startswith("web-")
    assert r.json()["headers"]["X-Forwarded-For"] == [client_ip]
    assert r.json()["headers"]["X-Real-Ip"] == [client_ip]
    entry = decision_log(gateway, "/hello")[0]
    assert entry["remote_addr"] == client_ip and entry["client_ip"] == client_ip
    # A name the passthrough listener owns but no route claims is closed; another name too.
    assert refused(addr, 8443, "other.example.com")
    assert refused(addr, 8443, "nowhere.org")
    assert parent(gateway, "pt")["Accepted"] == ("True", "Accepted")
    listeners = {ls["name"]: ls for ls in gateway.status("Gateway", "gw")["listeners"]}
    assert conditions(listeners["web"])["Conflicted"] == ("False", "NoConflicts")
    assert conditions(listeners["passthrough"])["Programmed"] == ("True", "Programmed")
    # Trusting X-Forwarded-For from loopback proxies doesn't extend to this port: the HTTPS server
    # behind the stream module trusts only its PROXY header, so the client's header stays unbelieved.
    gateway.write("ctp.yaml", textwrap.dedent("""\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: ClientTrafficPolicy
        metadata: {name: xff, namespace: default}
        spec:
          targetRefs: [{kind: Gateway, name: gw}]
          clientIP: {source: XForwardedFor, trustedCIDRs: [127.0.0.0/8]}
        """))
    gateway.reconcile()
    r = get("/trusting")
    assert r.status_code == 200, r.text
    assert (r.json()["headers"]["X-Forwarded-For"], r.json()["headers"]["X-Real-Ip"]) == ([client_ip], [client_ip])


def _ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_restart_after_crash_clears_stale_sockets(gateway: Gateway, backends: Callable[..., Backend],
                                                  tls_backend: Callable[..., tuple[EchoServer, trustme.CA]]) -> None:
    """A master killed outright leaves its unix sockets behind; the restart must still bind them."""
    import os
    import signal

    pt, pt_ca = tls_backend("pt", "pt.example.com")
    web = backends("web")
    gw_ca = trustme.CA()
    gateway.write("gw.yaml", shared_port("pt.example.com", gw_ca, web), service("pt", pt),
                  tls_route("pt", ["pt.example.com"], "pt"))
    gateway.reconcile()
    inst = gateway.runner.instances["default/gw"]
    assert sorted(p.name for p in (inst.workdir / "run").glob("*.sock")) == ["https-8443.sock", "tls-8443.sock"]
    pid = inst.pid
    assert pid is not None
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    import time

    deadline = time.monotonic() + 5
    while inst.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert inst.ensure_running()
    addr = gateway.address()
    assert handshake(addr, 8443, "pt.example.com", pt_ca)["body"]["pod"] == "pt-abc12-00000"  # type: ignore[index]
    with httpx.Client(verify=_ctx(gw_ca)) as client:
        r = client.get(f"https://{addr}:8443/", headers={"Host": "web.example.com"},
                       extensions={"sni_hostname": "web.example.com"})
    assert r.status_code == 200


def _parse(doc: str) -> object:
    import yaml

    return parse_object(RawObject(yaml.safe_load(doc), Origin("routes.yaml", 0)))


@pytest.mark.parametrize(("version", "spec", "error"), [
    ("v1", "rules: [{backendRefs: [{name: s, port: 443}]}]", "spec.hostnames: at least one is required"),
    ("v1alpha3", "rules: [{backendRefs: [{name: s, port: 443}]}]", "spec.hostnames: at least one is required"),
    ("v1", "hostnames: [a.example.com]\n  rules: [{backendRefs: [{name: s, port: 443}]}, "
           "{backendRefs: [{name: s, port: 443}]}]", "exactly one rule"),
    ("v1", "hostnames: [10.0.0.1]\n  rules: [{backendRefs: [{name: s, port: 443}]}]", "is an IP address"),
    ("v1", "hostnames: [a.*.example.com]\n  rules: [{backendRefs: [{name: s, port: 443}]}]", "invalid hostname"),
    ("v1", "hostnames: [a.example.com]\n  rules: [{backendRefs: []}]",
     "spec.rules[0].backendRefs: List should have at least 1 item"),
    ("v1beta1", "hostnames: [a.example.com]\n  rules: [{backendRefs: [{name: s, port: 443}]}]",
     "unsupported apiVersion"),
])
def test_tlsroute_validation(version: str, spec: str, error: str) -> None:
    doc = (f"apiVersion: gateway.networking.k8s.io/{version}\nkind: TLSRoute\n"
           f"metadata: {{name: r, namespace: default}}\nspec:\n  parentRefs: [{{name: gw}}]\n  {spec}\n")
    with pytest.raises(InputError) as exc:
        _parse(doc)
    assert error in str(exc.value), str(exc.value)
    assert "TLSRoute default/r" in str(exc.value)


def test_tlsroute_versions_accepted() -> None:
    for version in ("v1", "v1alpha3", "v1alpha2"):
        route = _parse(f"apiVersion: gateway.networking.k8s.io/{version}\nkind: TLSRoute\n"
                       "metadata: {name: r}\nspec:\n  parentRefs: [{name: gw, sectionName: tls}]\n"
                       "  hostnames: ['*.example.com']\n"
                       "  rules: [{backendRefs: [{name: s, port: 443, weight: 2}]}]\n")
        assert route is not None and route.kind == "TLSRoute"  # type: ignore[attr-defined]
    # v1alpha2 had no hostnames requirement and allowed several rules.
    assert _parse("apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\nmetadata: {name: r}\n"
                  "spec: {rules: [{backendRefs: [{name: s, port: 443}]}, {backendRefs: [{name: t, port: 443}]}]}\n")


def test_tlsroute_status_conditions(gateway: Gateway, tls_backend: Callable[..., tuple[EchoServer, trustme.CA]]
                                    ) -> None:
    other, other_ca = tls_backend("other", "granted.example.com")
    gateway.write("gw.yaml", """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: default}
        spec:
          gatewayClassName: wardgate
          listeners:
            - {name: tls, protocol: TLS, port: 8443, hostname: "*.example.com", tls: {mode: Passthrough},
               allowedRoutes: {namespaces: {from: All}}}
            - {name: terminate, protocol: TLS, port: 9443, tls: {mode: Terminate, certificateRefs: [{name: x}]}}
            - {name: http, protocol: HTTP, port: 8080}
        ---
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: tls-routes, namespace: other}
        spec:
          from: [{group: gateway.networking.k8s.io, kind: TLSRoute, namespace: default}]
          to: [{group: "", kind: Service, name: other}]
        """, service("other", other).replace("namespace: default", "namespace: other"),
        tls_route("granted", ["granted.example.com"], "other", backend_ns="other"),
        tls_route("nogrant", ["nogrant.example.com"], "other", backend_ns="other", namespace="third"),
        tls_route("on-http", ["a.example.com"], "other", section="http"),
        tls_route("on-terminate", ["a.example.com"], "other", section="terminate"),
        tls_route("elsewhere", ["a.example.org"], "other", section="tls"))
    gateway.reconcile()
    assert parent(gateway, "granted") == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    got = handshake(gateway.address(), 8443, "granted.example.com", other_ca)
    assert got["body"]["pod"] == "other-abc12-00000"  # type: ignore[index]
    nogrant = conditions(gateway.status("TLSRoute", "nogrant", "third")["parents"][0])
    # Attached (the listener allows every namespace) but its backend is not permitted: refused.
    assert nogrant == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("False", "RefNotPermitted")}
    assert refused(gateway.address(), 8443, "nogrant.example.com")
    assert parent(gateway, "on-http")["Accepted"] == ("False", "UnsupportedValue")
    assert parent(gateway, "on-terminate")["Accepted"] == ("False", "NotAllowedByListeners")
    assert parent(gateway, "elsewhere")["Accepted"] == ("False", "NoMatchingListenerHostname")
    listeners = {ls["name"]: ls for ls in gateway.status("Gateway", "gw")["listeners"]}
    assert conditions(listeners["terminate"])["Accepted"] == ("False", "UnsupportedValue")
    assert listeners["tls"]["attachedRoutes"] == 2
    assert listeners["http"]["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
                                                   {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}]


def test_docs_example_translates_to_a_shared_port() -> None:
    """docs/tls-passthrough.md's example: valid, and one port routed by SNI in front of HTTPS."""
    from conftest import GATEWAY_CLASS, REPO
    from policy_helpers import doc_examples
    from wardgate.model import parse
    from wardgate.translate import translate

    text = doc_examples(REPO / "docs" / "tls-passthrough.md")["tls-passthrough"]
    raws = [RawObject(doc, Origin("example.yaml", i))
            for i, doc in enumerate(yaml.safe_load_all(GATEWAY_CLASS + "---\n" + text
                                                       + tls_secret("www-cert", trustme.CA(), "www.example.com")))]
    gw = translate(parse(raws)).gateways[0]
    (port,) = gw.passthrough
    assert port.port == 443 and port.terminate == ("www.example.com",)
    assert [r.hostname for r in port.routes] == ["vault.example.com", "*.db.example.com"]
    assert [b.weight for b in port.routes[0].backends] == [9, 1]
