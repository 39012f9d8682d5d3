"""What a backend receives about the client, through a real nginx and a real echo backend: the
client address headers as ClientTrafficPolicy decides them (never the client's claims), httpoxy,
`valueFrom` header values, and route filters winning over policy headers by name."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable

import pytest
import trustme
from pydantic import ValidationError

from conftest import Backend, Gateway
from policy_helpers import Raw, decision_log, example, http, raw, setup
from test_tls import HOST, _client, handshake, https, serve
from wardgate.model.policies import SecurityPolicySpec

pytestmark = pytest.mark.timeout(120)

Backends = Callable[..., Backend]
FORGED = [("X-Real-IP", "203.0.113.66"), ("X-Forwarded-For", "203.0.113.66"), ("Proxy", "http://evil:3128/")]


def received(gateway: Gateway, source: str, headers: list[tuple[str, str]], path: str = "/",
             data: bytes | None = None) -> dict[str, list[str]]:
    """The headers the echo backend got (names lower case) for one request from `source`."""
    payload = http("GET", path, headers) if data is None else data
    r = raw(gateway.address(), payload, source=source)
    assert r.status == 200, (r.status, r.body[:200])
    return {k.lower(): v for k, v in r.json["headers"].items()} | {"host": [r.json["host"]]}


def test_default_headers_name_the_connection_not_the_client_claims(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends)
    got = received(gateway, "127.0.0.7", [*FORGED, ("X-Forwarded-Host", "evil.example"),
                                          ("X-Forwarded-Proto", "https"), ("X-Request-Id", "forged-id")])
    assert got["x-real-ip"] == ["127.0.0.7"]
    # wardgate's own request id; the client's forwarding claims are not passed on under any name
    assert len(got["x-request-id"][0]) == 32 and got["x-request-id"] != ["forged-id"]
    assert not {"x-original-forwarded-for", "x-original-forwarded-host"} & set(got)
    assert got["x-forwarded-for"] == ["127.0.0.7"]
    assert "proxy" not in got  # httpoxy
    assert got["x-forwarded-host"] == ["example.com"]
    assert got["x-forwarded-proto"] == ["http"]
    assert got["host"] == ["example.com"]
    # Also when the request changes headers (every proxy_set_header is then written per location).
    setup(gateway, backends, example("headers"))
    got = received(gateway, "127.0.0.8", FORGED)
    assert (got["x-real-ip"], got["x-forwarded-for"], "proxy" in got) == (["127.0.0.8"], ["127.0.0.8"], False)
    assert got["x-bot-class"] == ["unverified"]


def test_forwarded_proto_host_and_port_describe_the_clients_connection(
        gateway: Gateway, backends: Backends, rsa_ca: trustme.CA) -> None:
    """X-Forwarded-Proto, -Host and -Port: the scheme, routed host and port of the connection the
    client made to wardgate, whatever the client claims under those names."""
    addr = serve(gateway, backends, rsa_ca, [https("https", HOST), "{name: http, protocol: HTTP, port: 8080}"],
                 [HOST])
    forged = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Port", "443")]
    got = received(gateway, "127.0.0.7", forged, data=http("GET", "/", forged, host="Secure.Example.COM:8080"))
    assert (got["x-forwarded-proto"], got["x-forwarded-host"], got["x-forwarded-port"]) == (
        ["http"], [HOST], ["8080"])
    assert got["host"] == ["Secure.Example.COM:8080"]  # passed on as sent
    with handshake(addr, 8443, _client(rsa_ca)) as sock:
        sock.sendall(http("GET", "/", [("X-Forwarded-Proto", "http"), ("X-Forwarded-Host", "evil.example"),
                                       ("X-Forwarded-Port", "80")], host=HOST))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    seen = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    assert (seen["x-forwarded-proto"], seen["x-forwarded-host"], seen["x-forwarded-port"]) == (
        ["https"], [HOST], ["8443"])


TRUSTED = """\
apiVersion: policy.wardgate.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: trusted-proxies, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: gw}]
  clientIP:
    source: XForwardedFor
    trustedCIDRs: [127.0.0.2/32, 10.0.0.0/8]
"""


def test_trusted_proxy_chain(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, TRUSTED)
    # From a trusted proxy: the client is the rightmost untrusted entry; the backend gets the chain
    # from it on (the trusted hops), then the proxy itself; the client's invented entries are gone.
    got = received(gateway, "127.0.0.2", [("X-Real-IP", "203.0.113.66"),
                                          ("X-Forwarded-For", "203.0.113.66, 198.51.100.9, 10.1.1.1"),
                                          ("Proxy", "x")], path="/trusted")
    assert got["x-real-ip"] == ["198.51.100.9"]
    assert got["x-forwarded-for"] == ["198.51.100.9, 10.1.1.1, 127.0.0.2"]
    assert "proxy" not in got
    assert decision_log(gateway, "/trusted")[0]["client_ip"] == "198.51.100.9"
    # From an untrusted peer the header is not believed, even when it starts with the peer's own
    # address (the chain must not be found by searching the client's header).
    got = received(gateway, "127.0.0.9", [("X-Real-IP", "6.6.6.6"), ("X-Forwarded-For", "127.0.0.9, 6.6.6.6")])
    assert (got["x-real-ip"], got["x-forwarded-for"]) == (["127.0.0.9"], ["127.0.0.9"])
    # Two X-Forwarded-For headers read as one list, as realip reads them.
    got = received(gateway, "127.0.0.2", [("X-Forwarded-For", "203.0.113.66"), ("X-Forwarded-For", "198.51.100.9")])
    assert (got["x-real-ip"], got["x-forwarded-for"]) == (["198.51.100.9"], ["198.51.100.9, 127.0.0.2"])
    # No header from a trusted proxy: the proxy is the client.
    got = received(gateway, "127.0.0.2", [])
    assert (got["x-real-ip"], got["x-forwarded-for"]) == (["127.0.0.2"], ["127.0.0.2"])


def test_trusted_hops_chain(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("client-ip-hops"))  # trustedHops: 1
    got = received(gateway, "127.0.0.4", [("X-Real-IP", "6.6.6.6"), ("X-Forwarded-For", "6.6.6.6, 198.51.100.9")])
    assert got["x-real-ip"] == ["198.51.100.9"]
    assert got["x-forwarded-for"] == ["198.51.100.9, 127.0.0.4"]
    got = received(gateway, "127.0.0.4", [("X-Forwarded-For", "garbage")])  # unparsable: the connection
    assert (got["x-real-ip"], got["x-forwarded-for"]) == (["127.0.0.4"], ["127.0.0.4"])


def test_proxy_protocol_client(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("client-ip-proxy-protocol"))
    proxied = b"PROXY TCP4 198.51.100.7 127.0.0.1 5555 8080\r\n" + http("GET", "/", FORGED)
    got = received(gateway, "127.0.0.5", [], data=proxied)
    assert (got["x-real-ip"], got["x-forwarded-for"]) == (["198.51.100.7"], ["198.51.100.7"])
    assert "proxy" not in got


def test_forwarded_for_append(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("client-ip-append"))  # trusted 127.0.0.0/8, Append
    got = received(gateway, "127.0.0.3", [("X-Forwarded-For", "203.0.113.66, 198.51.100.9")])
    # The whole header as sent, plus the connection's address (not the decided client's, which
    # nginx's $proxy_add_x_forwarded_for would append once realip has rewritten $remote_addr).
    assert got["x-forwarded-for"] == ["203.0.113.66, 198.51.100.9, 127.0.0.3"]
    assert got["x-real-ip"] == ["198.51.100.9"]
    got = received(gateway, "127.0.0.3", [])
    assert (got["x-real-ip"], got["x-forwarded-for"]) == (["127.0.0.3"], ["127.0.0.3"])


def test_value_from(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("header-values"))
    r = raw(gateway.address(), http("GET", "/", [("X-Client-IP", "6.6.6.6"), ("X-Hops", "10.0.0.1")]),
            source="127.0.0.6")
    got = {k.lower(): v for k, v in r.json["headers"].items()}
    assert got["x-client-ip"] == ["127.0.0.6"]
    assert got["x-hops"] == ["10.0.0.1,127.0.0.6"]
    assert got["x-original-host"] == ["example.com"]
    assert got["x-original-scheme"] == ["http"]
    assert got["x-price"] == ["$5"]  # a `$` in a value stays text
    # The response carries the id the backend got.
    assert r.header("X-Request-Id") == got["x-request-id"]
    assert len(got["x-request-id"][0]) == 32
    assert r.header("X-Served-For") == ["127.0.0.6"]


def test_value_from_is_a_fixed_list(gateway: Gateway, backends: Backends) -> None:
    bad = textwrap.dedent("""\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: bad, namespace: default}
        spec:
          targetRefs: [{kind: Gateway, name: gw}]
          requestHeaders:
            set: [{name: X-A, valueFrom: "$remote_addr"}]
        """)
    setup(gateway, backends, bad, ok=False)
    status = gateway.status("SecurityPolicy", "bad")
    text = str(status)
    assert "valueFrom" in text and "ClientIP" in text


ROUTE_VS_POLICY = """\
---
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {name: strip, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: gw}]
  requestHeaders:
    remove: [X-Foo, X-Baz]
    set: [{name: X-Bar, value: policy}]
  responseHeaders:
    remove: [X-Resp]
    set: [{name: X-Resp-Policy, value: policy}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: filtered, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [filtered.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /one}}]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: X-Foo, value: route}]
            remove: [X-Bar]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set: [{name: X-Resp, value: route}]
            remove: [X-Resp-Policy]
      backendRefs: [{name: app, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /two}}]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            remove: [X-Qux]
      backendRefs:
        - name: app
          port: 80
          filters:
            - type: RequestHeaderModifier
              requestHeaderModifier: {set: [{name: X-Qux, value: b1}, {name: X-Baz, value: b1}]}
        - name: app
          port: 80
          filters:
            - type: RequestHeaderModifier
              requestHeaderModifier: {set: [{name: X-Qux, value: b2}, {name: X-Baz, value: b2}]}
"""


def test_route_filter_wins_over_policy_by_name(gateway: Gateway, backends: Backends) -> None:
    """Policy first, then the rule's filter, then the backendRef's: the later one decides a name."""
    setup(gateway, backends, ROUTE_VS_POLICY)

    def via(path: str) -> dict[str, list[str]]:
        r = raw(gateway.address(), http("GET", path, [("X-Foo", "client"), ("X-Baz", "client")],
                                        host="filtered.example.com"))
        assert r.status == 200, r.status
        responses.append(r)
        return {k.lower(): v for k, v in r.json["headers"].items()}

    responses: list[Raw] = []
    got = via("/one")
    # Response headers likewise: the route's set beats the policy's remove, and its remove the set.
    assert (responses[-1].header("X-Resp"), responses[-1].header("X-Resp-Policy")) == (["route"], [])
    assert got["x-foo"] == ["route"]  # the policy's remove lost to the route's set
    assert "x-bar" not in got  # the route's remove beat the policy's set
    assert "x-baz" not in got  # a name the route doesn't mention: the policy's remove holds
    for _ in range(6):
        got = via("/two")
        # The backendRef's set beats the rule's remove and the policy's remove.
        assert got["x-qux"] in (["b1"], ["b2"]) and got["x-baz"] == got["x-qux"]
        assert got["x-bar"] == ["policy"]



@pytest.mark.parametrize("header", [
    {"name": "X-A", "value": "1", "valueFrom": "ClientIP"},  # both
    {"name": "X-A"},  # neither
    {"name": "X-A", "valueFrom": "$remote_addr"},  # not in the list
    {"name": "X-A", "valueFrom": "clientip"},  # the list is case-sensitive, like every enum here
])
def test_value_from_validation(header: dict[str, str]) -> None:
    spec = {"targetRefs": [{"kind": "Gateway", "name": "gw"}], "responseHeaders": {"add": [header]}}
    with pytest.raises(ValidationError):
        SecurityPolicySpec.model_validate(spec)
    ok = {"name": "X-A", "valueFrom": "RequestID"}
    SecurityPolicySpec.model_validate({**spec, "responseHeaders": {"add": [ok]}})


ROUTE_HEADERS = """\
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {name: other-headers, namespace: default}
spec:
  targetRefs: [{kind: HTTPRoute, name: other}]
  requestHeaders:
    set: [{name: X-Other, value: "1"}]
"""


def test_backend_headers_as_ingress_nginx(gateway: Gateway, backends: Backends) -> None:
    """ClientTrafficPolicy backendHeaders (docs/policies.md): the client's X-Request-Id kept, the
    Host header as X-Forwarded-Host, the client's X-Forwarded-For/-Host as X-Original-*; also in a
    location that writes its whole header list (a route-level policy)."""
    setup(gateway, backends, example("backend-headers"), ROUTE_HEADERS)
    for host, marker in (("example.com", "/kept"), ("other.example.com", "/kept-other")):
        r = raw(gateway.address(), http("GET", marker, [
            ("X-Request-Id", "my-req-id-123"), ("X-Forwarded-For", "198.51.100.7"),
            ("X-Forwarded-Host", "evil.example.net")], host=host + ":8080"), source="127.0.0.7")
        got = {k.lower(): v for k, v in r.json["headers"].items()}
        assert got["x-request-id"] == ["my-req-id-123"]
        assert got["x-forwarded-host"] == [host + ":8080"]
        assert got["x-original-forwarded-for"] == ["198.51.100.7"]
        assert got["x-original-forwarded-host"] == ["evil.example.net"]
        # still wardgate's own: the client address and scheme
        assert (got["x-forwarded-for"], got["x-real-ip"], got["x-forwarded-proto"]) == (
            ["127.0.0.7"], ["127.0.0.7"], ["http"])
        assert ("x-other" in got) == (host == "other.example.com")
        # the decision log keeps wardgate's own id
        logged = decision_log(gateway, marker)[0]["request_id"]
        assert len(logged) == 32 and logged != "my-req-id-123"
    # Nothing sent: a generated id, the Host header as X-Forwarded-Host, no X-Original-* headers.
    got = received(gateway, "127.0.0.7", [], path="/fresh")
    assert len(got["x-request-id"][0]) == 32
    assert got["x-forwarded-host"] == ["example.com"]
    assert not {"x-original-forwarded-for", "x-original-forwarded-host"} & set(got)
    # An empty X-Request-Id is not kept.
    got = received(gateway, "127.0.0.7", [("X-Request-Id", "")], path="/empty")
    assert len(got["x-request-id"][0]) == 32
