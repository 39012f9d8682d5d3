"""SecurityPolicy ingressNginxCORS (docs/policies.md#ingress-nginx-cors) on real nginx, against
the answers the migration corpus records for ingress-nginx (cases cors-defaults,
cors-allow-origin-list, cors-custom-methods-headers-credentials)."""

from __future__ import annotations

from collections.abc import Callable

from conftest import Backend, Gateway, request
from policy_helpers import example, setup

Backends = Callable[..., Backend]

DEFAULT_HEADERS = ("DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,"
                   "Range,Authorization")


def go(gateway: Gateway, method: str = "GET", path: str = "/api/x", host: str = "example.com",
       **headers: str) -> object:
    return request(f"http://{gateway.address()}:8080{path}", host=host, method=method,
                   headers={k.replace("_", "-"): v for k, v in headers.items()})


def cors_headers(r: object) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("access-control-")}  # type: ignore[attr-defined]


def test_defaults_answer_everyone_with_star(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, """\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: cors, namespace: default}
        spec:
          targetRefs: [{kind: HTTPRoute, name: app}]
          ingressNginxCORS: {}
        """)
    full = {"access-control-allow-origin": "*", "access-control-allow-credentials": "true",
            "access-control-allow-methods": "GET, PUT, POST, DELETE, PATCH, OPTIONS",
            "access-control-allow-headers": DEFAULT_HEADERS, "access-control-max-age": "1728000"}
    r = go(gateway)  # no Origin at all
    assert (r.status, cors_headers(r)) == (200, full) and b'"pod"' in r.body
    assert cors_headers(go(gateway, "POST", Origin="https://any.example.org")) == full  # not echoed: *
    for headers in ({"Origin": "https://any.example.org", "Access-Control-Request-Method": "PUT"}, {}):
        r = go(gateway, "OPTIONS", **headers)  # any OPTIONS, preflight or not
        assert (r.status, cors_headers(r), r.body) == (204, full, b"")
        assert r.headers.get("content-length") == "0" and "content-type" not in r.headers
    # Backend errors carry them too; the other route has none.
    assert cors_headers(go(gateway, path="/status/500")) == full
    assert cors_headers(go(gateway, host="other.example.com")) == {}


def test_origin_list_and_custom_values(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("ingress-nginx-cors"))
    custom = {"access-control-allow-methods": "GET, POST",
              "access-control-allow-headers": "X-Custom-Header, Content-Type",
              "access-control-expose-headers": "X-Total-Count", "access-control-max-age": "600"}
    for origin in ("https://app.example.com", "HTTPS://APP.EXAMPLE.COM", "https://a.example.org",
                   "xhttps://app.example.com"):  # the regex is anchored at the end only, as ingress-nginx's
        r = go(gateway, Origin=origin)
        assert (r.status, cors_headers(r)) == (200, {"access-control-allow-origin": origin, **custom}), origin
        r = go(gateway, "OPTIONS", Origin=origin, Access_Control_Request_Method="POST")
        assert (r.status, cors_headers(r)) == (204, {"access-control-allow-origin": origin, **custom})
    for origin in ("https://evil.example.com", "https://a.b.example.org", "https://app.example.com:8443"):
        assert cors_headers(go(gateway, Origin=origin)) == {}, origin
        # Another origin's preflight goes to the backend, without CORS headers.
        r = go(gateway, "OPTIONS", Origin=origin, Access_Control_Request_Method="POST")
        assert (r.status, cors_headers(r)) == (200, {}) and b'"method":"OPTIONS"' in r.body.replace(b" ", b"")
    # Methods are advertised, not enforced.
    assert go(gateway, "PUT", Origin="https://app.example.com").status == 200
