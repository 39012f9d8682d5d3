"""HTTPRoute sessionPersistence (GEP-1619) through a real nginx and three real echo pods: a new
client gets a cookie, the cookie keeps it on one pod, sessions spread over the pods, and only a
part of them move when a pod goes away (consistent hashing, ingress-nginx's balanced affinity)."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import trustme

from conftest import GW, Backend, Gateway, request
from test_tls import _client, gateway_yaml, handshake, https, tls_secret
from test_tls import get as tls_get

pytestmark = pytest.mark.timeout(120)

Backends = Callable[..., Backend]


def route(session: str, matches: str = "[{path: {type: PathPrefix, value: /app}}]",
          backend_refs: str = "[{name: app, port: 80}]") -> str:
    return textwrap.dedent(f"""\
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {{name: app, namespace: default}}
        spec:
          parentRefs: [{{name: gw}}]
          hostnames: [affinity.example.com]
          rules:
            - matches: {matches}
              backendRefs: {backend_refs}
              sessionPersistence: {session}
        """)


def get(gateway: Gateway, path: str, cookie: str | None = None, **kw: Any) -> Any:
    headers = {"Cookie": cookie} if cookie else {}
    return request(f"http://{gateway.address()}:8080{path}", host="affinity.example.com", headers=headers, **kw)


def cookie_of(r: Any, name: str = "SERVERID") -> str:
    value = r.headers["set-cookie"].split(";")[0]
    assert value.startswith(name + "=")
    return value


def test_the_cookie_keeps_a_client_on_one_pod(gateway: Gateway, backends: Backends) -> None:
    """The corpus case affinity-cookie."""
    app = backends("app", replicas=3)
    gateway.write("gw.yaml", GW + app.manifests() + route("{sessionName: SERVERID}"))
    gateway.reconcile()
    first = get(gateway, "/app/x")
    assert first.status == 200
    attrs = [a.strip() for a in first.headers["set-cookie"].split(";")]
    assert attrs[0].startswith("SERVERID=") and len(attrs[0]) == len("SERVERID=") + 32
    assert attrs[1:] == ["Path=/app", "HttpOnly"]
    cookie = cookie_of(first)
    for _ in range(10):
        again = get(gateway, "/app/y", cookie=f"other=1; {cookie}; x=y")
        assert again.json["pod"] == first.json["pod"]
        assert "set-cookie" not in again.headers
    # A cookie of a similar name is not the session (names are case-sensitive).
    assert "set-cookie" in get(gateway, "/app/y", cookie="serverid=" + cookie.split("=")[1]).headers
    # Sessions spread over every pod, each one staying put.
    pods: Counter[str] = Counter()
    for _ in range(60):
        c = cookie_of(get(gateway, "/app/z"))
        pod = get(gateway, "/app/z", cookie=c).json["pod"]
        assert get(gateway, "/app/z", cookie=c).json["pod"] == pod
        pods[pod] += 1
    assert len(pods) == 3 and min(pods.values()) >= 5, pods


def test_only_a_share_of_sessions_moves_when_a_pod_goes(gateway: Gateway, backends: Backends) -> None:
    app = backends("app", replicas=3)
    gateway.write("gw.yaml", GW + app.manifests() + route("{sessionName: SERVERID}"))
    gateway.reconcile()
    cookies = [cookie_of(get(gateway, "/app")) for _ in range(60)]
    before = {c: get(gateway, "/app", cookie=c).json["pod"] for c in cookies}
    gone = app.servers[2].identity.pod
    two = Backend(app.service, app.namespace, app.servers[:2])
    gateway.write("gw.yaml", GW + two.manifests() + route("{sessionName: SERVERID}"))
    gateway.reconcile()
    after = {c: get(gateway, "/app", cookie=c).json["pod"] for c in cookies}
    assert gone not in after.values()
    # Sessions of the remaining pods stay where they were; only the gone pod's move.
    assert all(after[c] == before[c] for c in cookies if before[c] != gone)
    assert any(before[c] == gone for c in cookies)


def test_permanent_cookie_carries_max_age_and_weighted_backends_stay_sticky(gateway: Gateway,
                                                                           backends: Backends) -> None:
    app, canary = backends("app", replicas=2), backends("canary", replicas=2)
    session = "{sessionName: sticky, absoluteTimeout: 1h30m, cookieConfig: {lifetimeType: Permanent}}"
    refs = "[{name: app, port: 80, weight: 50}, {name: canary, port: 80, weight: 50}]"
    gateway.write("gw.yaml", GW + app.manifests() + canary.manifests() + route(session, backend_refs=refs))
    gateway.reconcile()
    first = get(gateway, "/app/a")
    attrs = [a.strip() for a in first.headers["set-cookie"].split(";")]
    assert attrs[1:] == ["Path=/app", "Max-Age=5400", "HttpOnly"]
    services: Counter[str] = Counter()
    for _ in range(40):
        c = cookie_of(get(gateway, "/app/a"), "sticky")
        seen = {(r.json["namespace"], r.json["pod"]) for r in (get(gateway, "/app/b", cookie=c) for _ in range(4))}
        assert len(seen) == 1  # same backendRef and same pod
        services[next(iter(seen))[1].split("-")[0]] += 1
    assert set(services) == {"app", "canary"}, services


def test_header_sessions_and_cookie_path_of_several_matches(gateway: Gateway, backends: Backends) -> None:
    app = backends("app", replicas=3)
    gateway.write("gw.yaml", GW + app.manifests() + route(
        "{sessionName: X-Session, type: Header}",
        matches="[{path: {type: PathPrefix, value: /api/v1}}, {path: {type: Exact, value: /api/v2/x}}]"))
    gateway.reconcile()
    first = get(gateway, "/api/v1/users")
    session = first.headers["x-session"]
    assert len(session) == 32 and "set-cookie" not in first.headers
    for path in ("/api/v1/a", "/api/v2/x"):
        r = request(f"http://{gateway.address()}:8080{path}", host="affinity.example.com",
                    headers={"X-Session": session})
        assert r.json["pod"] == first.json["pod"] and "x-session" not in r.headers


def test_secure_cookie_over_https(gateway: Gateway, backends: Backends) -> None:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    app = backends("app", replicas=2)
    gateway.write("gw.yaml", gateway_yaml(https("https", "affinity.example.com")),
                  tls_secret("cert", ca, "affinity.example.com"), app.manifests(),
                  route("{sessionName: SERVERID}", matches="[{path: {type: PathPrefix, value: /}}]"))
    gateway.reconcile()
    sock = handshake(gateway.address(), 8443, _client(ca), "affinity.example.com")
    status, headers = tls_get(sock, "affinity.example.com", "/x")
    sock.close()
    assert status == 200
    assert [a.strip() for a in headers["set-cookie"].split(";")][1:] == ["Path=/", "HttpOnly", "Secure"]


def test_unsupported_parts_are_reported(gateway: Gateway, backends: Backends, caplog: pytest.LogCaptureFixture
                                        ) -> None:
    app = backends("app")
    gateway.write("gw.yaml", GW + app.manifests() + route("{sessionName: s, idleTimeout: 10m, absoluteTimeout: 1h}"))
    gateway.reconcile()
    assert "sessionPersistence.idleTimeout: idleTimeout is not supported" in caplog.text
    assert "sessionPersistence.absoluteTimeout: absoluteTimeout is only carried" in caplog.text
    r = get(gateway, "/app")
    assert r.status == 200 and "Max-Age" not in r.headers["set-cookie"]  # a session cookie still works


@pytest.mark.parametrize("session, error", [
    ({"cookieConfig": {"lifetimeType": "Permanent"}}, "AbsoluteTimeout must be specified"),
    ({"sessionName": "a;b"}, "a cookie name wardgate can read back"),
    ({"sessionName": "X Session", "type": "Header"}, "invalid header name"),
    ({"type": "Query"}, "type"),
])
def test_session_persistence_validation(session: dict[str, Any], error: str) -> None:
    from pydantic import ValidationError

    from wardgate.model.gatewayapi import HTTPRouteRule

    with pytest.raises(ValidationError, match=error):
        HTTPRouteRule.model_validate({"sessionPersistence": session})
