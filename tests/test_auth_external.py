"""SecurityPolicy externalAuth through a real nginx and a real auth service: what the service is
asked, how its answers decide (ingress-nginx's auth-url semantics), the signin redirect, and
references that fail closed."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import GW, Backend, Gateway, request
from http_stubs import StubServer
from policy_helpers import APP, ancestors, decision_log, example

pytestmark = pytest.mark.timeout(120)

Backends = Callable[..., Backend]

# Authorization value -> (status, headers) the auth service answers with; anything else: 401.
RULES: dict[str, tuple[int, dict[str, str]]] = {
    "Bearer good": (200, {"X-Auth-User": "alice", "X-Auth-Groups": "eng,ops", "Set-Cookie": "sso=fresh; Path=/"}),
    "Bearer forbidden": (403, {}),
    "Bearer broken": (302, {"Location": "https://idp.example.com/login"}),
    "Bearer down": (503, {}),
}
DENY = (401, {"WWW-Authenticate": 'Bearer realm="corp"'})


def _decide(req: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    status, headers = RULES.get(req["headers"].get("Authorization", ""), DENY)
    return status, headers, b""


@pytest.fixture
def auth_service() -> Iterator[StubServer]:
    svc = StubServer(_decide)
    yield svc
    svc.close()


def get(gateway: Gateway, path: str, token: str | None = None, host: str = "example.com", **kw: Any) -> Any:
    headers = dict(kw.pop("headers", None) or {})
    if token:
        headers["Authorization"] = token
    return request(f"http://{gateway.address()}:8080{path}", host=host, headers=headers, **kw)


def policy(spec: str, name: str = "sso", namespace: str = "default") -> str:
    return textwrap.dedent(f"""\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          targetRefs: [{{kind: HTTPRoute, name: app}}]
          externalAuth: {spec}
        """)


def start(gateway: Gateway, backends: Backends, *docs: str) -> Backend:
    app = backends("app")
    gateway.write("gw.yaml", GW + app.manifests() + APP)
    gateway.write("policies.yaml", *("---\n" + textwrap.dedent(d) for d in docs))
    gateway.reconcile()
    return app


AUTH_URL = policy("{backendRef: {name: auth, port: 80}, path: /verify, hostname: ext-auth.default.svc.cluster.local,"
                  " responseHeaders: [X-Auth-User, X-Auth-Groups]}")


def test_auth_answers_decide_like_ingress_nginx_auth_url(gateway: Gateway, backends: Backends,
                                                          auth_service: StubServer) -> None:
    start(gateway, backends, AUTH_URL, auth_service.manifests("auth"))
    r = get(gateway, "/app/data")
    assert (r.status, r.headers["www-authenticate"]) == (401, 'Bearer realm="corp"')
    ok = get(gateway, "/app/data", "Bearer good", headers={"X-Auth-User": "mallory", "X-Auth-Groups": "root"})
    assert ok.status == 200
    sent = ok.json["headers"]
    assert (sent["X-Auth-User"], sent["X-Auth-Groups"], sent["Authorization"]) == (["alice"], ["eng,ops"],
                                                                                    ["Bearer good"])
    assert ok.headers["set-cookie"] == "sso=fresh; Path=/"
    assert get(gateway, "/app/data", "Bearer forbidden").status == 403
    assert get(gateway, "/app/data", "Bearer broken").status == 500  # not 2xx, 401 or 403
    assert get(gateway, "/app/data", "Bearer down").status == 500
    # A header the answer lacks is removed, not left as the client sent it.
    RULES["Bearer partial"] = (200, {"X-Auth-User": "bob"})
    try:
        partial = get(gateway, "/x", "Bearer partial", headers={"X-Auth-Groups": "root"}).json["headers"]
    finally:
        del RULES["Bearer partial"]
    assert partial["X-Auth-User"] == ["bob"] and "X-Auth-Groups" not in partial
    # Other routes aren't asked.
    before = len(auth_service.requests)
    assert get(gateway, "/", host="other.example.com").status == 200
    assert len(auth_service.requests) == before
    assert decision_log(gateway, "/app/data")[0]["decision"] == "auth"


def test_what_the_auth_service_is_asked(gateway: Gateway, backends: Backends, auth_service: StubServer) -> None:
    """The corpus case auth-url-external: a bodiless GET with the client's headers and X-Original-*."""
    start(gateway, backends, AUTH_URL, auth_service.manifests("auth"))
    r = get(gateway, "/app/data?q=1", "Bearer good", method="POST", data=b"a=1",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": "s=1"})
    assert (r.status, r.json["method"], r.json["bodyLength"]) == (200, "POST", 3)
    asked = auth_service.last()
    assert (asked["method"], asked["path"], asked["body"]) == ("GET", "/verify", b"")
    h = asked["headers"]
    assert h["Host"] == "ext-auth.default.svc.cluster.local"
    assert h["X-Original-URL"] == "http://example.com/app/data?q=1"
    assert h["X-Original-Method"] == "POST"
    assert h["X-Auth-Request-Redirect"] == "/app/data?q=1"
    assert (h["Authorization"], h["Cookie"]) == ("Bearer good", "s=1")
    assert "Content-Length" not in h
    assert h["X-Real-IP"] == "127.0.0.1" and len(h["X-Request-Id"]) == 32
    assert h["X-Request-Id"] == r.json["headers"]["X-Request-Id"][0]  # one id for both


def test_documented_example_with_signin_redirect(gateway: Gateway, backends: Backends,
                                                 auth_service: StubServer) -> None:
    start(gateway, backends, example("external-auth"), auth_service.manifests("auth"))
    r = get(gateway, "/some/page?a=1&b=x y".replace(" ", "%20"))
    assert r.status == 302
    loc = urlsplit(r.headers["location"])
    assert (loc.scheme, loc.netloc, loc.path) == ("https", "login.example.com", "/start")
    assert parse_qs(loc.query) == {"rd": ["http://example.com/some/page?a=1&b=x%20y"]}
    asked = auth_service.last()
    assert (asked["path"], asked["headers"]["Host"]) == ("/verify?scope=app", "auth.example.internal")
    assert asked["headers"]["X-Sent-From"] == "wardgate" and asked["headers"]["X-Client-Address"] == "127.0.0.1"
    ok = get(gateway, "/some/page", "Bearer good")
    assert ok.status == 200 and ok.json["headers"]["X-Auth-User"] == ["alice"]
    assert get(gateway, "/x", "Bearer forbidden").status == 403  # only a 401 goes to signin


def test_signin_url_keeps_its_own_redirect_parameter(gateway: Gateway, backends: Backends,
                                                     auth_service: StubServer) -> None:
    start(gateway, backends, policy("{backendRef: {name: auth, port: 80}, signin: {url: '/oauth2/start?rd=/home'}}"),
          auth_service.manifests("auth"))
    r = get(gateway, "/x")
    assert (r.status, r.headers["location"]) == (302, "http://example.com:8080/oauth2/start?rd=/home")


def test_unusable_auth_service_fails_closed(gateway: Gateway, backends: Backends, auth_service: StubServer) -> None:
    start(gateway, backends, policy("{backendRef: {name: nowhere, port: 80}}"))
    assert get(gateway, "/x", "Bearer good").status == 500
    conds = {c["type"]: c for c in ancestors(gateway, "SecurityPolicy", "sso")[0]["conditions"]}
    assert conds["ResolvedRefs"]["status"] == "False"
    assert "Service default/nowhere not found" in conds["ResolvedRefs"]["message"]


def test_auth_service_in_another_namespace_needs_a_reference_grant(gateway: Gateway, backends: Backends,
                                                                   auth_service: StubServer) -> None:
    ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: idp}\n"
    cross = policy("{backendRef: {name: auth, namespace: idp, port: 80}}")
    start(gateway, backends, cross, ns, auth_service.manifests("auth", namespace="idp"))
    assert get(gateway, "/x", "Bearer good").status == 500
    assert "no ReferenceGrant in namespace idp" in json.dumps(ancestors(gateway, "SecurityPolicy", "sso"))
    grant = textwrap.dedent("""\
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: policies-to-auth, namespace: idp}
        spec:
          from: [{group: policy.wardgate.io, kind: SecurityPolicy, namespace: default}]
          to: [{group: "", kind: Service, name: auth}]
        """)
    gateway.write("grant.yaml", grant)
    gateway.reconcile()
    assert get(gateway, "/x", "Bearer good").status == 200
    assert get(gateway, "/x").status == 401
