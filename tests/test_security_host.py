"""Issue 9, item 1: the host nginx routes on is the host every later stage sees.

nginx picks the server block (and so the policies) from the host of an absolute-form request
line (`DELETE http://app.test/x HTTP/1.1`), while the Host header can name another host. wardgate
answers 400 when they disagree (RFC 9112 3.2.2: the request-line authority wins, and a client
must send a Host identical to it), so the backend, redirects, X-Forwarded-Host, the decision log
and the WAF all see one host. HTTP/2: nginx 1.22 refuses `:authority` together with `host`.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import pytest
import trustme

from conftest import GW, Backend, Gateway
from policy_helpers import decision_log, raw
from test_listeners import tls_secret

pytestmark = pytest.mark.timeout(120)

ROUTES = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [public.test]
  rules: [{backendRefs: [{name: app, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: open, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [app.test]
  rules: [{backendRefs: [{name: app, port: 80}]}]
"""

# Each policy refuses the attack request (DELETE /admin/x from loopback) on public.test.
POLICIES = {
    "allowedMethods": "allowedMethods: [GET]",
    "ipAccess": "ipAccess: {allow: [10.0.0.0/8]}",
    "urlAllowlist": "urlAllowlist: {paths: [{type: PathPrefix, value: /pub}]}",
}


def _setup(gateway: Gateway, backends: Callable[..., Backend], policy: str) -> str:
    app = backends("app")
    gateway.write("gw.yaml", GW, app.manifests(), ROUTES, f"""
        ---
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {{name: public-only, namespace: default}}
        spec:
          targetRefs: [{{kind: HTTPRoute, name: public}}]
          {policy}
        """)
    gateway.reconcile()
    return gateway.address()


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_absolute_form_request_line_cannot_borrow_another_hosts_policies(
        gateway: Gateway, backends: Callable[..., Backend], policy: str) -> None:
    addr = _setup(gateway, backends, POLICIES[policy])
    # The policy works for an ordinary request to public.test.
    plain = raw(addr, b"DELETE /admin/x HTTP/1.1\r\nHost: public.test\r\nConnection: close\r\n\r\n")
    assert plain.status in (403, 404, 405), plain
    # The attack: routed as app.test (no policies), Host header public.test.
    attack = raw(addr, b"DELETE http://app.test/admin/x?marker=absform HTTP/1.1\r\nHost: public.test\r\n"
                       b"Connection: close\r\n\r\n")
    assert attack.status == 400, (attack.status, attack.body[:200])
    assert b'"pod"' not in attack.body, "the backend answered"
    entry = decision_log(gateway, "marker=absform")[0]
    assert (entry["status"], entry["host"], entry["decision"]) == (400, "app.test", "invalid-request")
    assert entry["upstream_addr"] == ""


def test_absolute_form_with_an_agreeing_host_is_served_as_that_host(
        gateway: Gateway, backends: Callable[..., Backend]) -> None:
    addr = _setup(gateway, backends, POLICIES["allowedMethods"])
    # Case, a trailing dot and a port don't make hosts disagree; the backend gets the Host as sent.
    ok = raw(addr, b"GET http://APP.test:8080/x HTTP/1.1\r\nHost: app.TEST.:8080\r\nConnection: close\r\n\r\n")
    assert ok.status == 200
    assert (ok.json["host"], ok.json["path"]) == ("app.TEST.:8080", "/x")
    assert ok.json["headers"]["X-Forwarded-Host"] == ["app.test"]
    # An empty port is still the same host; anything after it but digits is another.
    assert raw(addr, b"GET /x HTTP/1.1\r\nHost: app.test:\r\nConnection: close\r\n\r\n").status == 200
    assert raw(addr, b"GET http://app.test/x HTTP/1.1\r\nHost: app.test.evil\r\nConnection: close\r\n\r\n"
               ).status == 400
    assert raw(addr, b"GET http://app.test/x HTTP/1.1\r\nHost: app.tes\r\nConnection: close\r\n\r\n"
               ).status == 400
    # And the policy of the host the request line names applies.
    denied = raw(addr, b"DELETE http://public.test/x HTTP/1.1\r\nHost: public.test\r\nConnection: close\r\n\r\n")
    assert denied.status == 405
    # An HTTP/1.0 request without Host is served by the host of its request line (and reaches the
    # backend without Host, as before: no other host is claimed).
    old = raw(addr, b"GET http://app.test/y HTTP/1.0\r\n\r\n")
    assert old.status == 200 and (old.json["path"], old.json["host"]) == ("/y", "")


def _h2(addr: str, ca: trustme.CA, headers: list[tuple[str, str]]) -> int:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((addr, 8443), timeout=5) as plain, \
            ctx.wrap_socket(plain, server_hostname="public.test") as sock:
        assert sock.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False))
        conn.initiate_connection()
        conn.send_headers(1, headers, end_stream=True)
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            assert data, "connection closed without an answer"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    return int(dict(event.headers)[":status"])
            sock.sendall(conn.data_to_send())


def test_http2_authority_and_a_different_host_header_are_refused(
        gateway: Gateway, backends: Callable[..., Backend]) -> None:
    ca = trustme.CA()
    app = backends("app")
    listeners = """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: default}
        spec:
          gatewayClassName: wardgate
          listeners:
            - {name: https, protocol: HTTPS, port: 8443, tls: {certificateRefs: [{name: cert}]}}
        """
    gateway.write("gw.yaml", listeners, tls_secret("cert", ca, "public.test", "app.test"), app.manifests(),
                  ROUTES, """
        ---
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: public-only, namespace: default}
        spec:
          targetRefs: [{kind: HTTPRoute, name: public}]
          allowedMethods: [GET]
        """)
    gateway.reconcile()
    addr = gateway.address()
    base = [(":method", "DELETE"), (":scheme", "https"), (":path", "/x")]
    assert _h2(addr, ca, [*base, (":authority", "public.test")]) == 405
    assert _h2(addr, ca, [*base, (":authority", "app.test")]) == 200
    assert _h2(addr, ca, [*base, (":authority", "app.test"), ("host", "public.test")]) == 400
    assert _h2(addr, ca, [*base, ("host", "public.test")]) == 405
