"""Client-facing TLS through real nginx: versions with SNI, forward-secret suites only, sessions,
listener tls.options, and HSTS."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import pytest
import trustme
import yaml

from conftest import REPO, Backend, Gateway
from policy_helpers import example
from test_listeners import tls_secret as _tls_secret
from wardgate import ir, quoting
from wardgate.translate.gateways import parse_tls_options

pytestmark = pytest.mark.timeout(120)

HOST = "secure.example.com"


def tls_secret(name: str, ca: trustme.CA, *hosts: str) -> str:
    # RSA: the one kind of certificate for which plain-RSA key exchange (TLS_RSA_*) is possible.
    return _tls_secret(name, ca, *hosts, key_type=trustme.KeyType.RSA)


def _client(ca: trustme.CA, *, version: ssl.TLSVersion | None = None, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if ciphers is not None or (version is not None and version < ssl.TLSVersion.TLSv1_2):
        # Level 0: the client must be willing to offer what the server should refuse.
        ctx.set_ciphers((ciphers or "ALL") + ":@SECLEVEL=0")
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def handshake(addr: str, port: int, ctx: ssl.SSLContext, host: str = HOST,
              session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection((addr, port), timeout=5)
    try:
        return ctx.wrap_socket(raw, server_hostname=host, session=session)
    except BaseException:
        raw.close()
        raise


def get(sock: ssl.SSLSocket, host: str = HOST, path: str = "/") -> tuple[int, dict[str, str]]:
    """One HTTP/1.1 request on an established TLS connection: status and lower-cased headers."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(head[0].split()[1]), headers


def refused(addr: str, port: int, ctx: ssl.SSLContext, host: str = HOST) -> str:
    """The OpenSSL reason a handshake failed with ("" if it succeeded)."""
    try:
        handshake(addr, port, ctx, host).close()
    except ssl.SSLError as exc:
        return exc.reason or str(exc)
    except (ConnectionResetError, OSError) as exc:
        return f"connection error: {exc}"
    return ""


def tls12_suites() -> list[str]:
    """Every TLS 1.2 suite this machine's OpenSSL can offer as a client, weak ones included."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]


def gateway_yaml(*listeners: str) -> str:
    return "\n".join([
        "apiVersion: gateway.networking.k8s.io/v1",
        "kind: Gateway",
        "metadata: {name: gw, namespace: default}",
        "spec:",
        "  gatewayClassName: wardgate",
        "  listeners:",
        *(f"    - {item}" for item in listeners),
    ]) + "\n"


def route_yaml() -> str:
    return """
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
"""


def https(name: str, host: str, port: int = 8443, cert: str = "cert", options: str = "") -> str:
    opts = f", options: {{{options}}}" if options else ""
    return (f"{{name: {name}, protocol: HTTPS, port: {port}, hostname: {host}, "
            f"tls: {{certificateRefs: [{{name: {cert}}}]{opts}}}}}")


def serve(gateway: Gateway, backends: Callable[..., Backend], ca: trustme.CA, listeners: list[str],
          hosts: list[str], *extra: str) -> str:
    """The Gateway with these listeners, one certificate for `hosts`, and a route to an echo backend."""
    app = backends("app")
    gateway.write("gw.yaml", gateway_yaml(*listeners), tls_secret("cert", ca, *hosts), app.manifests(), route_yaml(),
                  *extra)
    gateway.reconcile()
    return gateway.address()


def listener_condition(gateway: Gateway, name: str, type_: str = "Accepted") -> tuple[str, str, str]:
    listeners = {ls["name"]: ls for ls in gateway.status("Gateway", "gw")["listeners"]}
    c = next(c for c in listeners[name]["conditions"] if c["type"] == type_)
    return c["status"], c["reason"], c["message"]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1")
def test_tls13_with_sni_and_only_forward_secret_aead_suites(gateway: Gateway, backends: Callable[..., Backend],
                                                            rsa_ca: trustme.CA) -> None:
    addr = serve(gateway, backends, rsa_ca, [https("https", HOST)], [HOST])

    # TLS 1.3 with SNI: the catch-all default server (no certificate) used to pin TLS 1.0-1.2.
    with handshake(addr, 8443, _client(rsa_ca, version=ssl.TLSVersion.TLSv1_3)) as tls13:
        assert tls13.version() == "TLSv1.3"
        assert get(tls13)[0] == 200
    with handshake(addr, 8443, _client(rsa_ca)) as best:
        assert best.version() == "TLSv1.3"  # what an ordinary client now negotiates

    # TLS 1.2: try every suite OpenSSL has, one at a time. Only the ECDHE AEAD suites of Mozilla's
    # intermediate profile that suit an RSA certificate may be accepted: no TLS_RSA_* (no forward
    # secrecy), no CBC (LUCKY13), no CAMELLIA or ARIA.
    accepted = {name for name in tls12_suites()
                if not refused(addr, 8443, _client(rsa_ca, version=ssl.TLSVersion.TLSv1_2, ciphers=name))}
    assert accepted == {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"}
    assert accepted <= set(ir.INTERMEDIATE_CIPHERS)

    # TLS 1.0 and 1.1 are refused as such (alert 70, protocol_version), not by a cipher accident.
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        assert refused(addr, 8443, _client(rsa_ca, version=old)) == "TLSV1_ALERT_PROTOCOL_VERSION"


def test_sessions_resume_from_the_shared_cache_without_tickets(gateway: Gateway, backends: Callable[..., Backend],
                                                               rsa_ca: trustme.CA) -> None:
    addr = serve(gateway, backends, rsa_ca, [https("https", HOST)], [HOST])
    ctx = _client(rsa_ca, version=ssl.TLSVersion.TLSv1_2)
    with handshake(addr, 8443, ctx) as first:
        assert get(first)[0] == 200
        session = first.session
    assert session is not None
    # No ticket: its key would live until the next reload, so recorded traffic stays decryptable.
    assert not session.has_ticket
    with handshake(addr, 8443, ctx, session=session) as again:
        assert again.session_reused  # the server-side cache, shared by the workers
        assert get(again)[0] == 200


def test_listener_tls_options(gateway: Gateway, backends: Callable[..., Backend], rsa_ca: trustme.CA) -> None:
    hosts = ["default.example.com", "narrow.example.com", "modern.example.com", "unknown.example.com",
             "weak.example.com", "syntax.example.com", "mixed.example.com"]
    addr = serve(gateway, backends, rsa_ca, [
        https("default", hosts[0]),
        https("narrow", hosts[1], options='"wardgate.io/ciphers": "ECDHE-RSA-AES256-GCM-SHA384"'),
        https("modern", hosts[2], port=9443, options='"wardgate.io/tls-profile": modern'),
        https("unknown", hosts[3], options='"wardgate.io/tls-versions": "1.2"'),
        https("weak", hosts[4], options='"wardgate.io/ciphers": "ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256"'),
        https("syntax", hosts[5], options='"wardgate.io/ciphers": "HIGH:!aNULL"'),
        # Its port already negotiates TLS 1.2 for the other listeners: refused, not silently changed.
        https("mixed", hosts[6], options='"wardgate.io/min-version": "1.3"'),
    ], hosts)

    only128 = _client(rsa_ca, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    only256 = _client(rsa_ca, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES256-GCM-SHA384")
    # The cipher list follows the SNI name, even on a shared port.
    assert refused(addr, 8443, only128, hosts[0]) == ""
    assert refused(addr, 8443, only128, hosts[1]) == "SSLV3_ALERT_HANDSHAKE_FAILURE"
    with handshake(addr, 8443, only256, hosts[1]) as narrow:
        assert narrow.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"
        assert get(narrow, hosts[1])[0] == 200
    # modern: TLS 1.3 only.
    assert refused(addr, 9443, _client(rsa_ca, version=ssl.TLSVersion.TLSv1_2), hosts[2]) \
        == "TLSV1_ALERT_PROTOCOL_VERSION"
    with handshake(addr, 9443, _client(rsa_ca), hosts[2]) as modern:
        assert modern.version() == "TLSv1.3"
        assert get(modern, hosts[2])[0] == 200

    # Bad options: the listener is not accepted, its status names the option, and nothing of it
    # reaches nginx (no certificate is served for its name); the other listeners keep serving.
    expected = {
        "unknown": "tls.options[wardgate.io/tls-versions]: unknown option",
        "weak": "tls.options[wardgate.io/ciphers]: AES128-GCM-SHA256 is not forward-secret",
        "syntax": "tls.options[wardgate.io/ciphers]: invalid cipher name 'HIGH'",
        "mixed": "tls.options[wardgate.io/min-version]: TLS 1.3 differs from listener default's TLS 1.2 on port 8443",
    }
    for name, message in expected.items():
        status, reason, text = listener_condition(gateway, name)
        assert (status, reason) == ("False", "UnsupportedValue"), name
        assert text.startswith(message), text
        assert listener_condition(gateway, name, "Programmed")[0] == "False"
        host = hosts[["default", "narrow", "modern", "unknown", "weak", "syntax", "mixed"].index(name)]
        assert refused(addr, 8443, _client(rsa_ca), host) == "TLSV1_UNRECOGNIZED_NAME"
    assert listener_condition(gateway, "default")[0] == "True"


def test_tls_option_grammar() -> None:
    assert parse_tls_options({}) == ir.ListenerTLS()
    assert parse_tls_options({"wardgate.io/min-version": "1.3"}).min_version == "1.3"
    for bad in ("", "ALL", "ECDHE-RSA-AES128-GCM-SHA256:", "!aNULL", "ECDHE+AESGCM", "-ECDHE-RSA", "ecdhe-rsa-x",
                "ECDHE-RSA-AES128-GCM-SHA256 ", "A-B\nC-D", "X-Y;include", "A-B:A-B"):
        with pytest.raises(ValueError):
            quoting.check_cipher_names(bad)
    with pytest.raises(ValueError, match=r"not a TLS 1\.2 cipher suite OpenSSL knows"):
        parse_tls_options({"wardgate.io/ciphers": "ECDHE-RSA-NOPE-GCM-SHA256"})
    with pytest.raises(ValueError, match=r"TLS 1\.3 only"):
        parse_tls_options({"wardgate.io/tls-profile": "modern", "wardgate.io/ciphers": "ECDHE-RSA-AES128-GCM-SHA256"})
    with pytest.raises(ValueError, match=r"modern profile is TLS 1\.3 only"):
        parse_tls_options({"wardgate.io/tls-profile": "modern", "wardgate.io/min-version": "1.2"})
    with pytest.raises(ValueError, match=r"min-version\]: must be"):
        parse_tls_options({"wardgate.io/min-version": "1.1"})


def test_hsts_default_on_https_configurable_and_never_over_http(gateway: Gateway, backends: Callable[..., Backend],
                                                                rsa_ca: trustme.CA) -> None:
    hosts = ["default.example.com", "preload.example.com", "legacy.example.com"]
    addr = serve(gateway, backends, rsa_ca, [
        https("default", hosts[0]), https("https", hosts[1]), https("legacy", hosts[2]),
        "{name: http, protocol: HTTP, port: 8080}",
    ], hosts, "---\n" + example("hsts"), "---\n" + example("hsts-off"))

    def hsts(host: str, path: str = "/") -> str | None:
        with handshake(addr, 8443, _client(rsa_ca), host) as sock:
            return get(sock, host, path)[1].get("strict-transport-security")

    # ingress-nginx's default, on every response of an HTTPS host, errors too.
    assert hsts(hosts[0]) == "max-age=31536000; includeSubDomains"
    assert hsts(hosts[0], "/status/500") == "max-age=31536000; includeSubDomains"
    assert hsts(hosts[1]) == "max-age=63072000; includeSubDomains; preload"
    assert hsts(hosts[2]) is None
    with socket.create_connection((addr, 8080), timeout=5) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: default.example.com\r\nConnection: close\r\n\r\n")
        assert b"strict-transport-security" not in plain.recv(65536).lower()


RULES_HOST = "rules.example.com"
HSTS_RULES = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
    - name: admin
      matches: [{path: {type: PathPrefix, value: /admin}}]
      backendRefs: [{name: app, port: 80}]
    - name: txt
      matches: [{path: {type: Exact, value: /.well-known/security.txt}}]
      backendRefs: [{name: app, port: 80}]
    - backendRefs: [{name: app, port: 80}]
---
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {name: listener, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: gw, sectionName: https}]
  hsts: {includeSubDomains: false}
---
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {name: route, namespace: default}
spec:
  targetRefs: [{kind: HTTPRoute, name: app}]
  hsts: {maxAge: 600}
---
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {name: txt, namespace: default}
spec:
  targetRefs: [{kind: HTTPRoute, name: app, sectionName: txt}]
  hsts: {enabled: false}
  allowedMethods: [GET]
  directResponses: [{path: /.well-known/security.txt, body: "Contact: mailto:security@example.com\\n"}]
"""


def test_hsts_per_route_and_rule_the_more_specific_level_wins(gateway: Gateway, backends: Callable[..., Backend],
                                                              rsa_ca: trustme.CA) -> None:
    app = backends("app")
    gateway.write("gw.yaml", gateway_yaml(https("https", RULES_HOST), "{name: http, protocol: HTTP, port: 8080}"),
                  tls_secret("cert", rsa_ca, RULES_HOST), app.manifests(), HSTS_RULES,
                  "---\n" + example("hsts-rule-off"))
    gateway.reconcile()
    addr = gateway.address()

    def answer(path: str, method: str = "GET", headers: str = "", port: int = 8443) -> tuple[int, str | None, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {RULES_HOST}\r\nConnection: close\r\n{headers}\r\n".encode()
        plain = socket.create_connection((addr, port), timeout=5)
        with (_client(rsa_ca).wrap_socket(plain, server_hostname=RULES_HOST) if port == 8443 else plain) as sock:
            sock.sendall(head)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        top, _, body = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        fields = (x.partition(":") for x in lines[1:])
        sts = [v.strip() for k, _, v in fields if k.lower() == "strict-transport-security"]
        assert len(sts) <= 1, sts
        return int(lines[0].split()[1]), (sts[0] if sts else None), body

    # The route's maxAge over the listener's includeSubDomains: false, key by key; proxied and errors.
    assert answer("/")[:2] == (200, "max-age=600")
    assert answer("/status/503")[:2] == (503, "max-age=600")
    # Rule admin (the documented example): none of the gateway's; the backend's own passes unchanged.
    assert answer("/admin")[:2] == (200, None)
    own = "X-Echo-Set-Header: Strict-Transport-Security:max-age=7\r\n"
    assert answer("/admin/x", headers=own)[:2] == (200, "max-age=7")
    assert answer("/", headers=own)[:2] == (200, "max-age=600")  # replaced where the gateway sends one
    # Rule txt: its direct response and its 405 carry none (an ingress-nginx snippet location's answers).
    status, sts, body = answer("/.well-known/security.txt")
    assert (status, sts, body) == (200, None, b"Contact: mailto:security@example.com\n")
    assert answer("/.well-known/security.txt", "DELETE")[:2] == (405, None)
    # Answers no route gives keep the host's value (the listener's); plain HTTP never has any.
    assert answer("/a/%2e%2e/b")[:2] == (400, "max-age=31536000")
    assert answer("/", port=8080)[:2] == (200, None)
    assert answer("/.well-known/security.txt", port=8080)[:2] == (200, None)


def test_tls_doc_example_options_are_valid() -> None:
    text = (REPO / "docs" / "tls.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    listeners = yaml.safe_load(block)["spec"]["listeners"]
    parsed = {ls["name"]: parse_tls_options(ls["tls"]["options"]) for ls in listeners}
    assert parsed["shop"].ciphers == ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384")
    assert parsed["api"].min_version == "1.3"


def _served_names(sock: ssl.SSLSocket) -> set[str]:
    cert = sock.getpeercert()
    assert cert is not None
    return {value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}


def test_several_certificates_of_one_key_type_are_chosen_by_the_tls_name(
        gateway: Gateway, backends: Callable[..., Backend], rsa_ca: trustme.CA) -> None:
    """One listener without hostname, three RSA certificates (what `wardgate migrate` writes for a
    class with more TLS hosts than a Gateway has listeners): each host gets the certificate whose
    names cover it, a wildcard one for its names, and the first one for names none covers. A
    certificate that could never be served is said to be so in the listener's condition."""
    app = backends("app")
    routes = "".join(f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{host}]
  rules: [{{backendRefs: [{{name: app, port: 80}}]}}]
""" for name, host in (("a", "a.example.com"), ("b", "b.example.com"), ("w", "x.wild.example.com")))
    listener = ("{name: https, protocol: HTTPS, port: 8443, tls: {certificateRefs: "
                "[{name: cert-a}, {name: cert-b}, {name: cert-w}]}}")
    gateway.write("gw.yaml", gateway_yaml(listener), tls_secret("cert-a", rsa_ca, "a.example.com"),
                  tls_secret("cert-b", rsa_ca, "b.example.com", "b2.example.com"),
                  tls_secret("cert-w", rsa_ca, "*.wild.example.com"), app.manifests(), routes)
    gateway.reconcile()
    addr = gateway.address()
    assert listener_condition(gateway, "https", "ResolvedRefs")[0] == "True"
    for host, names in (("a.example.com", {"a.example.com"}), ("b.example.com", {"b.example.com", "b2.example.com"}),
                        ("x.wild.example.com", {"*.wild.example.com"})):
        with handshake(addr, 8443, _client(rsa_ca), host) as tls:  # verifies the name too
            assert _served_names(tls) == names, host
            assert get(tls, host)[0] == 200
    # a name no certificate covers: the first one (the client's name check fails, as it should)
    ctx = _client(rsa_ca)
    ctx.check_hostname = False
    with handshake(addr, 8443, ctx, "other.example.com") as tls:
        assert _served_names(tls) == {"a.example.com"}

    # a certificate covering only names an earlier one covers (the same wildcard copied into several
    # namespaces) is never served, which the condition says; the listener serves on
    listener = ("{name: https, protocol: HTTPS, port: 8443, tls: {certificateRefs: "
                "[{name: cert-a}, {name: cert-b}, {name: cert-b-again}]}}")
    gateway.write("gw.yaml", gateway_yaml(listener), tls_secret("cert-a", rsa_ca, "a.example.com"),
                  tls_secret("cert-b", rsa_ca, "b.example.com"), tls_secret("cert-b-again", rsa_ca, "b.example.com"),
                  app.manifests(), routes)
    gateway.reconcile()
    status, reason, message = listener_condition(gateway, "https", "ResolvedRefs")
    assert (status, reason) == ("True", "ResolvedRefs")
    assert message == ("All references are resolved; never served, as earlier certificates of their key type cover "
                       "all their names: tls.certificateRefs[2] (Secret default/cert-b-again)")
    with handshake(addr, 8443, _client(rsa_ca), "b.example.com") as tls:
        assert _served_names(tls) == {"b.example.com"} and get(tls, "b.example.com")[0] == 200
