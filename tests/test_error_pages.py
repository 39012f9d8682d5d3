"""SecurityPolicy errorPages through a real nginx with a real error-page service that answers with
the status in X-Code (like ingress-nginx's custom-error-pages image): intercepted backend and
gateway answers, the context headers, and noEndpoints (ingress-nginx's default-backend)."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GW, Backend, Gateway, loopback_subnet, request
from http_stubs import StubServer
from policy_helpers import APP, ancestors, example
from wardgate.dataplane.nginx import NginxInstance

pytestmark = pytest.mark.timeout(120)

Backends = Callable[..., Backend]


def _error_page(req: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Answers with the status in X-Code (200 without one) and a JSON body of what it got."""
    body = json.dumps({"errorPage": True, "method": req["method"], "path": req["path"],
                       "headers": req["headers"]}).encode()
    return int(req["headers"].get("X-Code") or 200), {"Content-Type": "application/json"}, body


@pytest.fixture
def error_pages() -> Iterator[StubServer]:
    svc = StubServer(_error_page)
    yield svc
    svc.close()


def get(gateway: Gateway, path: str, host: str = "example.com", **kw: Any) -> Any:
    return request(f"http://{gateway.address()}:8080{path}", host=host, **kw)


def start(gateway: Gateway, backends: Backends, *docs: str, app_manifests: str | None = None,
          routes: str = APP) -> Backend:
    app = backends("app")
    gateway.write("gw.yaml", GW + (app_manifests if app_manifests is not None else app.manifests()) + routes)
    gateway.write("policies.yaml", *("---\n" + textwrap.dedent(d) for d in docs))
    gateway.reconcile()
    return app


def test_listed_statuses_come_from_the_error_page_service(gateway: Gateway, backends: Backends,
                                                         error_pages: StubServer) -> None:
    """The corpus case custom-http-errors-with-default-backend."""
    start(gateway, backends, example("error-pages"), error_pages.manifests("error-pages"))
    r = get(gateway, "/status/404", headers={"Accept": "text/html"})
    assert r.status == 404 and r.json["errorPage"]
    h = r.json["headers"]
    assert (r.json["method"], r.json["path"]) == ("GET", "/")
    assert {k: h[k] for k in ("X-Code", "X-Format", "X-Original-URI", "X-Namespace", "X-Ingress-Name",
                              "X-Service-Name", "X-Service-Port")} == {
        "X-Code": "404", "X-Format": "text/html", "X-Original-URI": "/status/404", "X-Namespace": "default",
        "X-Ingress-Name": "shop", "X-Service-Name": "app", "X-Service-Port": "80"}  # requestHeaders win
    assert h["Host"] == h["X-Error-Host"] == "example.com" and len(h["X-Request-Id"]) == 32
    r = get(gateway, "/status/503?x=1")
    assert r.status == 503 and r.json["headers"]["X-Original-URI"] == "/status/503?x=1"
    assert r.json["path"] == "/?x=1"  # nginx keeps the query through `rewrite ^ / break`, as ingress-nginx did
    assert get(gateway, "/status/500").status == 500  # not listed: the backend's own answer
    ok = get(gateway, "/ok")
    assert ok.status == 200 and "errorPage" not in ok.json
    # Another route, without the policy, keeps its backend's 404.
    other = get(gateway, "/status/404", host="other.example.com")
    assert other.status == 404 and other.body == b""


def test_gateway_answers_are_replaced_too(gateway: Gateway, backends: Backends, error_pages: StubServer) -> None:
    policy = """\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: errors, namespace: default}
        spec:
          targetRefs: [{kind: Gateway, name: gw}]
          allowedMethods: [GET]
          errorPages:
            backendRef: {name: error-pages, port: 80}
            statuses: [404, 405]
        """
    start(gateway, backends, policy, error_pages.manifests("error-pages"))
    r = get(gateway, "/", method="DELETE")
    assert (r.status, r.json["headers"]["X-Code"], r.json["method"]) == (405, "405", "DELETE")
    # A host no route serves: wardgate's own 404, replaced, without route context.
    r = get(gateway, "/nothing", host="unknown.example.com")
    assert r.status == 404 and r.json["headers"]["X-Code"] == "404"
    assert "X-Ingress-Name" not in r.json["headers"] and "X-Service-Name" not in r.json["headers"]


def test_no_endpoints_goes_to_the_error_page_service_as_it_came(gateway: Gateway, backends: Backends,
                                                                error_pages: StubServer) -> None:
    """The corpus case default-backend-annotation-no-endpoints."""
    app = backends("app")
    policy = """\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: fallback, namespace: default}
        spec:
          targetRefs: [{kind: HTTPRoute, name: app}]
          errorPages: {backendRef: {name: error-pages}, noEndpoints: true, statuses: [503]}  # its first port
        """
    start(gateway, backends, policy, error_pages.manifests("error-pages"), app_manifests=no_endpoints("app"))
    r = get(gateway, "/alma/armud?x=1", method="POST", data=b"abc")
    assert r.status == 503 and r.json["errorPage"]  # the status the error-page service chose
    # ... and only once: its 503 is not intercepted again (statuses lists 503).
    assert (r.json["method"], r.json["path"]) == ("POST", "/alma/armud?x=1")
    h = r.json["headers"]
    assert (h["X-Code"], h["X-Ingress-Name"], h["X-Service-Name"], h["X-Service-Port"], h["X-Namespace"]) == (
        "503", "app", "app", "80", "default")
    # No policy there: 503, as Gateway API asks for a Service without ready endpoints.
    assert get(gateway, "/", host="other.example.com").status == 503
    # Endpoints appear: the route's backend serves again (the server is rendered anew).
    gateway.write("gw.yaml", GW + app.manifests() + APP)
    gateway.reconcile()
    back = get(gateway, "/alma/armud")
    assert back.status == 200 and "errorPage" not in back.json


# The app route's catch-all rule split evenly with Service `down`.
SPLIT = APP.replace("backendRefs: [{name: app, port: 80}]\n---", "backendRefs: [{name: app, port: 80, weight: 1}, "
                    "{name: down, port: 80, weight: 1}]\n---")
FALLBACK = """\
    apiVersion: policy.wardgate.io/v1alpha1
    kind: SecurityPolicy
    metadata: {name: fallback, namespace: default}
    spec:
      targetRefs: [{kind: HTTPRoute, name: app}]
      errorPages: {backendRef: {name: error-pages, port: 80}, noEndpoints: true}
    """


def no_endpoints(name: str) -> str:
    """Service `name` without an EndpointSlice (scaled to zero)."""
    return textwrap.dedent(f"""\
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: default}}
        spec:
          ports: [{{name: http, port: 80, targetPort: 3000}}]
        """)


def test_no_endpoints_in_a_split_sends_only_that_share_to_the_error_page_service(
        gateway: Gateway, backends: Backends, error_pages: StubServer) -> None:
    start(gateway, backends, FALLBACK, error_pages.manifests("error-pages"), no_endpoints("down"), routes=SPLIT)
    answers = [get(gateway, "/x?n=1", method="POST", data=b"abc") for _ in range(60)]
    fell_back = [r for r in answers if r.status == 503]
    assert all(r.status == 200 and "errorPage" not in r.json for r in answers if r not in fell_back)
    assert 10 <= len(fell_back) <= 50, len(fell_back)
    for r in fell_back:
        assert (r.json["method"], r.json["path"], r.json["headers"]["X-Code"]) == ("POST", "/x?n=1", "503")
        assert r.json["headers"]["X-Service-Name"] == "down"  # the Service that had no endpoint


def test_the_503_for_no_endpoints_is_replaced_like_any_listed_status(
        gateway: Gateway, backends: Backends, error_pages: StubServer) -> None:
    start(gateway, backends, FALLBACK.replace("noEndpoints: true", "statuses: [503]"),
          error_pages.manifests("error-pages"), no_endpoints("down"), routes=SPLIT)
    answers = [get(gateway, "/x?n=1") for _ in range(40)]
    replaced = [r for r in answers if r.status != 200]
    assert replaced and all(r.status == 503 and r.json["errorPage"] for r in replaced)
    assert {(r.json["path"], r.json["headers"]["X-Code"]) for r in replaced} == {("/?n=1", "503")}


def test_error_page_service_without_endpoints_leaves_answers_alone(gateway: Gateway, backends: Backends) -> None:
    """Its answers would be nginx's 502: the route's own answers stay, the 503 for a Service
    without endpoints included."""
    start(gateway, backends, FALLBACK.replace("noEndpoints: true", "noEndpoints: true, statuses: [404, 503]"),
          no_endpoints("error-pages"), no_endpoints("down"), routes=SPLIT)
    statuses = Counter(get(gateway, "/status/404").status for _ in range(40))
    assert set(statuses) == {404, 503}, statuses


def test_unusable_error_page_service_leaves_answers_alone(gateway: Gateway, backends: Backends) -> None:
    policy = """\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: errors, namespace: default}
        spec:
          targetRefs: [{kind: HTTPRoute, name: app}]
          errorPages: {backendRef: {name: missing, port: 80}, statuses: [404]}
        """
    start(gateway, backends, policy)
    assert get(gateway, "/status/404").status == 404
    conds = {c["type"]: c for c in ancestors(gateway, "SecurityPolicy", "errors")[0]["conditions"]}
    assert conds["ResolvedRefs"]["status"] == "False"
    assert "answers are passed on as they are" in conds["ResolvedRefs"]["message"]


# ingress-nginx's custom-http-errors as nginx.tmpl writes it (the route's location, and the
# CUSTOM_ERRORS template's named location), run by a stock nginx. upstream_balancer stands for
# ingress-nginx's Lua-balanced upstream of the same name: its balancer_by_lua only picks the peer.
INGRESS_NGINX_ERRORS = """\
worker_processes 1;
error_log logs/error.log;
pid run/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path tmp/client_body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
    upstream upstream_balancer { server %(errors)s; }
    server {
        listen %(addr)s:80;
        location / {
            proxy_intercept_errors on;
            error_page 404 = @custom_upstream-default-backend_404;
            error_page 503 = @custom_upstream-default-backend_503;
            proxy_pass http://%(app)s;
        }
        location @custom_upstream-default-backend_404 {
            internal;
            proxy_intercept_errors off;
            proxy_set_header X-Code 404;
            proxy_set_header X-Original-URI $request_uri;
            rewrite (.*) / break;
            proxy_pass http://upstream_balancer;
        }
        location @custom_upstream-default-backend_503 {
            internal;
            proxy_intercept_errors off;
            proxy_set_header X-Code 503;
            proxy_set_header X-Original-URI $request_uri;
            rewrite (.*) / break;
            proxy_pass http://upstream_balancer;
        }
    }
}
"""


def test_error_backend_gets_the_path_ingress_nginx_sends(gateway: Gateway, backends: Backends,
                                                         error_pages: StubServer, world_dir: Path) -> None:
    """ingress-nginx's error location rewrites the path to `/` without a `?`, so nginx keeps the
    query string, and proxy_pass without a URI sends it: `GET /status/503?x=1` reaches the error
    backend as `/?x=1` (not `/`, as the corpus case custom-http-errors-with-default-backend states;
    docs/migration.md, "Corpus cases that fail and why"). wardgate sends the same."""
    app = start(gateway, backends, example("error-pages"), error_pages.manifests("error-pages"))
    ref_addr = loopback_subnet() + ".1"
    ref = NginxInstance("ingress-nginx", world_dir / "ingress-nginx")
    try:
        applied = ref.apply({"nginx.conf": INGRESS_NGINX_ERRORS % {
            "addr": ref_addr, "errors": f"{error_pages.host}:{error_pages.port}",
            "app": f"{app.servers[0].host}:{app.servers[0].port}"}})
        assert applied.ok, applied.error
        for path, code, sent in (("/status/503?x=1", 503, "/?x=1"), ("/status/404?a=b&c=%20d", 404, "/?a=b&c=%20d"),
                                 ("/status/503", 503, "/")):
            ours = get(gateway, path)
            theirs = request(f"http://{ref_addr}{path}", host="example.com")
            assert (theirs.status, theirs.json["path"], theirs.json["headers"]["X-Original-URI"]) == (code, sent, path)
            assert (ours.status, ours.json["path"], ours.json["headers"]["X-Original-URI"]) == (code, sent, path)
    finally:
        ref.stop()


def test_not_found_rules_404_goes_to_the_error_page_service(gateway: Gateway, backends: Backends,
                                                            error_pages: StubServer) -> None:
    """ingress-nginx's implicit `location /` of a host with custom-http-errors 404: its default
    backend's 404 goes to the error backend; an IngressNginxCompat notFound rule's 404 does too."""
    route = textwrap.dedent("""\
        ---
        apiVersion: policy.wardgate.io/v1alpha1
        kind: IngressNginxCompat
        metadata: {name: not-found, namespace: default}
        spec: {notFound: true}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: app, namespace: default}
        spec:
          parentRefs: [{name: gw}]
          hostnames: [example.com]
          rules:
            - matches: [{path: {type: PathPrefix, value: /app}}]
              backendRefs: [{name: app, port: 80}]
            - filters: [{type: ExtensionRef, extensionRef: {group: policy.wardgate.io, kind: IngressNginxCompat,
                                                            name: not-found}}]
        """)
    app = backends("app")
    gateway.write("gw.yaml", GW + app.manifests() + route)
    gateway.write("policies.yaml", "---\n" + example("error-pages"), error_pages.manifests("error-pages"))
    gateway.reconcile()
    r = get(gateway, "/elsewhere?q=1")
    assert (r.status, r.json["path"], r.json["headers"]["X-Code"]) == (404, "/?q=1", "404")
    assert r.json["headers"]["X-Original-URI"] == "/elsewhere?q=1"
    assert get(gateway, "/app/x").status == 200
