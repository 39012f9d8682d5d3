"""Gateway API routing through a real nginx to real echo backends."""

from __future__ import annotations

import textwrap
import time
from collections import Counter
from collections.abc import Callable

import pytest

from conftest import GW, Backend, Gateway, request
from policy_helpers import decision_log

pytestmark = pytest.mark.timeout(120)

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
"""


def setup(gateway: Gateway, backends: Callable[..., Backend], spec: str, *names: str) -> dict[str, Backend]:
    """The Gateway, echo backends named `names`, and HTTPRoute r whose spec (after parentRefs) is `spec`."""
    made = {n: backends(n) for n in names}
    gateway.write("gw.yaml", GW + "".join(b.manifests() for b in made.values()))
    gateway.write("route.yaml", ROUTE + textwrap.indent(textwrap.dedent(spec), "  "))
    gateway.reconcile()
    return made


def url(gateway: Gateway, path: str) -> str:
    return f"http://{gateway.address()}:8080{path}"


def pod(gateway: Gateway, path: str, **kw: object) -> str | int:
    r = request(url(gateway, path), host="example.com", **kw)  # type: ignore[arg-type]
    return str(r.json["pod"]).split("-")[0] if r.status == 200 else r.status


def test_path_precedence_exact_prefix_regex_and_404(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    setup(gateway, backends, """\
          hostnames: [example.com]
          rules:
            - matches: [{path: {type: PathPrefix, value: /api}}]
              backendRefs: [{name: prefix, port: 80}]
            - matches: [{path: {type: Exact, value: /api/exact}}]
              backendRefs: [{name: exact, port: 80}]
            - matches: [{path: {type: RegularExpression, value: "/files/[0-9]+\\\\.txt"}}]
              backendRefs: [{name: regex, port: 80}]
            - matches: [{path: {type: PathPrefix, value: /api/v2/}}]
              backendRefs: [{name: longer, port: 80}]
        """, "prefix", "exact", "regex", "longer")
    assert pod(gateway, "/api") == "prefix"
    assert pod(gateway, "/api/") == "prefix"
    assert pod(gateway, "/api/x") == "prefix"
    assert pod(gateway, "/api/exact") == "exact"
    assert pod(gateway, "/api/exact/more") == "prefix"
    assert pod(gateway, "/api/v2") == "longer"  # trailing slash in a prefix changes nothing
    assert pod(gateway, "/api/v2/x") == "longer"
    assert pod(gateway, "/apix") == 404  # prefixes match whole path elements
    assert pod(gateway, "/files/12.txt") == "regex"
    assert pod(gateway, "/files/12.txtx") == 404  # regexes match the whole path
    assert pod(gateway, "/other") == 404
    # Host not in the route's hostnames: no virtual host matches.
    assert request(url(gateway, "/api"), host="other.com").status == 404


def test_header_method_query_matches_and_fallthrough(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    setup(gateway, backends, """\
          rules:
            - matches:
                - path: {type: PathPrefix, value: /}
                  headers: [{name: X-Env, value: canary}]
              backendRefs: [{name: canary, port: 80}]
            - matches:
                - path: {type: PathPrefix, value: /}
                  method: POST
              backendRefs: [{name: post, port: 80}]
            - matches:
                - path: {type: PathPrefix, value: /}
                  queryParams: [{name: v, type: RegularExpression, value: "[0-9]+"}]
              backendRefs: [{name: query, port: 80}]
            - matches: [{path: {type: PathPrefix, value: /}}]
              backendRefs: [{name: default, port: 80}]
        """, "canary", "post", "query", "default")
    assert pod(gateway, "/x", headers={"X-Env": "canary"}) == "canary"
    assert pod(gateway, "/x", headers={"x-env": "canary"}) == "canary"  # header names ignore case
    assert pod(gateway, "/x", headers={"X-Env": "Canary"}) == "default"  # values don't
    assert pod(gateway, "/x", method="POST", data=b"{}") == "post"
    assert pod(gateway, "/x?v=12") == "query"
    assert pod(gateway, "/x?v=12a") == "default"
    assert pod(gateway, "/x?V=12") == "default"  # query names are case-sensitive
    assert pod(gateway, "/x") == "default"


def test_filters_headers_rewrite_redirect(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    setup(gateway, backends, """\
          rules:
            - matches: [{path: {type: PathPrefix, value: /old}}]
              filters:
                - type: RequestRedirect
                  requestRedirect: {scheme: https, hostname: new.example.com, statusCode: 301,
                                    path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
            - matches: [{path: {type: PathPrefix, value: /strip}}]
              filters:
                - type: URLRewrite
                  urlRewrite: {hostname: internal.local, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
                - type: RequestHeaderModifier
                  requestHeaderModifier:
                    set: [{name: X-Set, value: "a $literal; value"}]
                    add: [{name: X-Add, value: added}]
                    remove: [X-Drop]
                - type: ResponseHeaderModifier
                  responseHeaderModifier:
                    set: [{name: X-Resp, value: "set \\"quoted\\""}]
                    add: [{name: X-Multi, value: two}]
                    remove: [X-Content-Type-Options]
              backendRefs: [{name: app, port: 80}]
        """, "app")
    r = request(url(gateway, "/old/page?q=1"), host="example.com")
    assert r.status == 301
    assert r.headers["location"] == "https://new.example.com/new/page?q=1"

    r = request(url(gateway, "/strip/a/b?x=y"), host="example.com",
                headers={"X-Add": "orig", "X-Drop": "gone", "X-Set": "old"})
    assert r.status == 200
    echo = r.json
    assert echo["path"] == "/a/b?x=y"
    assert echo["host"] == "internal.local"
    assert echo["headers"]["X-Set"] == ["a $literal; value"]
    assert echo["headers"]["X-Add"] == ["orig,added"]
    assert "X-Drop" not in echo["headers"]
    assert r.headers["x-resp"] == 'set "quoted"'
    assert "x-content-type-options" not in r.headers
    assert request(url(gateway, "/strip"), host="example.com").json["path"] == "/"


def test_weights_and_invalid_backends(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    setup(gateway, backends, """\
          rules:
            - matches: [{path: {type: PathPrefix, value: /split}}]
              backendRefs: [{name: a, port: 80, weight: 3}, {name: b, port: 80, weight: 1}]
            - matches: [{path: {type: PathPrefix, value: /missing}}]
              backendRefs: [{name: does-not-exist, port: 80}]
            - matches: [{path: {type: PathPrefix, value: /none}}]
        """, "a", "b")
    seen = Counter(pod(gateway, "/split") for _ in range(200))
    assert set(seen) == {"a", "b"}
    assert 0.6 <= seen["a"] / 200 <= 0.9
    assert pod(gateway, "/missing") == 500
    assert pod(gateway, "/none") == 500
    parent = gateway.status("HTTPRoute", "r")["parents"][0]
    refs = next(c for c in parent["conditions"] if c["type"] == "ResolvedRefs")
    assert (refs["status"], refs["reason"]) == ("False", "BackendNotFound")
    assert "does-not-exist" in refs["message"]


def unready(service: str, live: Backend) -> str:
    """Service `service` whose only endpoint is a live echo server that is not ready (so a
    request wrongly sent there would get 200)."""
    srv = live.servers[0]
    return textwrap.dedent(f"""\
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {service}, namespace: default}}
        spec:
          ports: [{{name: http, port: 80, targetPort: {srv.port}}}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {{name: {service}-1, namespace: default, labels: {{kubernetes.io/service-name: {service}}}}}
        addressType: IPv4
        ports: [{{name: http, port: {srv.port}}}]
        endpoints: [{{addresses: [{srv.host}], conditions: {{ready: false}}}}]
        """)


def test_backends_without_ready_endpoints_answer_503(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """Gateway API (HTTPRouteRule.backendRefs): requests for a Service without ready endpoints
    SHOULD get 503, and then the rules for invalid backends' 500 apply: in a split, that backend's
    share gets it. nginx answered 502 ("no live upstreams")."""
    a = backends("a")
    gateway.write("gw.yaml", GW + a.manifests() + unready("down", a))
    gateway.write("route.yaml", ROUTE + textwrap.indent(textwrap.dedent("""\
        rules:
          - matches: [{path: {type: PathPrefix, value: /down}}]
            backendRefs: [{name: down, port: 80}]
          - matches: [{path: {type: PathPrefix, value: /split}}]
            backendRefs: [{name: a, port: 80, weight: 1}, {name: down, port: 80, weight: 1}]
          - matches: [{path: {type: PathPrefix, value: /retry}}]
            retry: {codes: [503], attempts: 2}
            sessionPersistence: {sessionName: s, type: Cookie}
            backendRefs: [{name: down, port: 80}]
          - matches: [{path: {type: PathPrefix, value: /mixed}}]
            backendRefs: [{name: down, port: 80}, {name: does-not-exist, port: 80}]
        """), "  "))
    gateway.reconcile()
    assert pod(gateway, "/down") == 503
    assert pod(gateway, "/retry") == 503
    split = Counter(pod(gateway, "/split") for _ in range(200))
    assert set(split) == {"a", 503} and 0.3 <= split[503] / 200 <= 0.7, split
    mixed = Counter(pod(gateway, "/mixed") for _ in range(100))
    assert set(mixed) == {500, 503}, mixed  # the invalid backend's share keeps its 500
    entry = decision_log(gateway, "/down")[0]
    assert (entry["status"], entry["decision"], entry["upstream_addr"]) == (503, "no-endpoints", "")
    assert {e["decision"] for e in decision_log(gateway, "/split", count=200) if e["status"] == 503} == {
        "no-endpoints"}


def test_timeout_gives_504(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    setup(gateway, backends, """\
          rules:
            - backendRefs: [{name: app, port: 80}]
              timeouts: {request: 300ms}
        """, "app")
    assert pod(gateway, "/?delay=1s") == 504
    assert pod(gateway, "/?delay=10ms") == "app"


def test_backend_gets_the_raw_request_uri(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    setup(gateway, backends, """\
          rules:
            - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: X-V, value: "2"}]}]
              backendRefs: [{name: app, port: 80}]
            - matches: [{path: {type: PathPrefix, value: /api}}]
              backendRefs: [{name: app, port: 80}]
        """, "app")
    # (Paths with %2F, dot segments or `;` get 400 by default: tests/test_security_paths.py.)
    for path in ("/api/a%3Fb?x=%20y&z", "/api//double/dot", "/api/%7Euser"):
        # Served inline (no header) and through an internal jump (header): the same raw URI.
        assert request(url(gateway, path), host="example.com").json["path"] == path
        assert request(url(gateway, path), host="example.com", headers={"X-V": "2"}).json["path"] == path


def test_cors_filter(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    setup(gateway, backends, """\
          rules:
            - filters:
                - type: CORS
                  cors:
                    allowOrigins: ["https://app.example.com", "https://*.partner.org"]
                    allowMethods: [GET, POST]
                    allowHeaders: [X-Token]
                    exposeHeaders: [X-Trace]
                    allowCredentials: true
                    maxAge: 600
              backendRefs: [{name: app, port: 80}]
        """, "app")
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-token"}
    r = request(url(gateway, "/api"), host="example.com", method="OPTIONS",
                headers={"Origin": "https://a.b.partner.org", **preflight})
    assert r.status == 204
    assert r.headers["access-control-allow-origin"] == "https://a.b.partner.org"
    assert r.headers["access-control-allow-methods"] == "GET, POST"
    assert r.headers["access-control-allow-headers"] == "X-Token"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert r.headers["access-control-max-age"] == "600"
    assert r.headers["vary"] == "Origin"
    denied = request(url(gateway, "/api"), host="example.com", method="OPTIONS",
                     headers={"Origin": "https://evil.example", **preflight})
    assert denied.status == 403
    assert "access-control-allow-origin" not in denied.headers
    # Actual requests reach the backend; only allowed origins get the headers.
    ok = request(url(gateway, "/api"), host="example.com", headers={"Origin": "https://app.example.com"})
    assert ok.status == 200 and ok.json["path"] == "/api"
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert ok.headers["access-control-expose-headers"] == "X-Trace"
    assert "access-control-allow-methods" not in ok.headers  # preflight-only
    other = request(url(gateway, "/api"), host="example.com", headers={"Origin": "https://evil.example"})
    assert other.status == 200
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-credentials" not in other.headers
    # A plain OPTIONS (no Access-Control-Request-Method) is not a preflight: the backend answers.
    assert request(url(gateway, "/api"), host="example.com", method="OPTIONS").json["method"] == "OPTIONS"


def test_retry_policy(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    setup(gateway, backends, """\
          rules:
            - matches: [{path: {type: PathPrefix, value: /retry}, headers: [{name: X-Retry, value: "yes"}]}]
              retry: {codes: [503], attempts: 2}
              backendRefs: [{name: app, port: 80}]
            - matches: [{path: {type: PathPrefix, value: /retry}}]
              backendRefs: [{name: app, port: 80}]
        """, "app")
    def status(uuid: str, fail: int, code: int, **kw: object) -> int:
        path = f"/retry/?uuid={uuid}&succeedAfter={fail}&responseCode={code}"
        return request(url(gateway, path), host="x", **kw).status  # type: ignore[arg-type]

    retry = {"X-Retry": "yes"}
    # The echo backend fails the first `succeedAfter` attempts of a uuid with `responseCode`.
    assert status("a", 2, 503, headers=retry) == 200  # two retries are enough
    assert status("b", 3, 503, headers=retry) == 503  # three failures are not
    assert status("c", 1, 500, headers=retry) == 500  # 500 is not in the policy's codes
    assert status("d", 1, 503) == 503  # the rule without a policy doesn't retry


def test_backend_request_timeout_and_retries_within_the_request_timeout(
        gateway: Gateway, backends: Callable[..., Backend]) -> None:
    made = setup(gateway, backends, """\
          rules:
            - matches: [{headers: [{name: X-Rule, value: bounded}]}]
              retry: {codes: [503], attempts: 5}
              timeouts: {request: 1500ms, backendRequest: 1s}
              backendRefs: [{name: app, port: 80}]
            - matches: [{headers: [{name: X-Rule, value: per-try}]}]
              retry: {codes: [503], attempts: 2}
              timeouts: {request: 20s, backendRequest: 500ms}
              backendRefs: [{name: app, port: 80}]
            - matches: [{headers: [{name: X-Rule, value: backend-only}]}]
              timeouts: {backendRequest: 300ms}
              backendRefs: [{name: app, port: 80}]
        """, "app")
    echo = made["app"].servers[0]

    def tries(marker: str) -> int:
        return sum(1 for p in echo.seen_paths if marker in p)

    # Each try is cut after backendRequest (1s) and retried, but no try starts once the request
    # timeout (1.5s) has passed: at most two of the six tries the policy allows.
    r = request(url(gateway, "/slow?delay=5s&n=bounded-1"), host="x", headers={"X-Rule": "bounded"}, timeout=15)
    assert r.status == 504
    assert 1 <= tries("n=bounded-1") <= 2
    # A try that outlives backendRequest is retried, and the retry answers within the request timeout.
    r = request(url(gateway, "/retry/?uuid=per-try-1&succeedAfter=1&responseCode=503&delayRetry=3s"), host="x",
                headers={"X-Rule": "per-try"}, timeout=15)
    assert r.status == 200
    assert tries("uuid=per-try-1") == 2
    # backendRequest alone bounds the one try.
    assert request(url(gateway, "/?delay=2s"), host="x", headers={"X-Rule": "backend-only"}).status == 504
    assert request(url(gateway, "/?delay=10ms"), host="x", headers={"X-Rule": "backend-only"}).status == 200


def test_several_mirrors_and_mirror_percentages(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    made = setup(gateway, backends, """\
          rules:
            - matches: [{path: {type: PathPrefix, value: /all}}]
              filters:
                - {type: RequestMirror, requestMirror: {backendRef: {name: m1, port: 80}}}
                - {type: RequestMirror, requestMirror: {backendRef: {name: m2, port: 80}}}
              backendRefs: [{name: app, port: 80}]
            - matches: [{path: {type: PathPrefix, value: /some}}]
              filters:
                - {type: RequestMirror, requestMirror: {backendRef: {name: half, port: 80}, percent: 50}}
                - type: RequestMirror
                  requestMirror: {backendRef: {name: quarter, port: 80}, fraction: {numerator: 1, denominator: 4}}
              backendRefs: [{name: app, port: 80}]
        """, "app", "m1", "m2", "half", "quarter")

    def seen(name: str, prefix: str) -> set[str]:
        return {p for p in made[name].servers[0].seen_paths if p.startswith(prefix)}

    def settled(names: list[str], prefix: str) -> dict[str, set[str]]:
        """Mirrored requests may trail the responses: wait (bounded) until the counts stop moving."""
        last: dict[str, set[str]] = {}
        for _ in range(50):
            now = {n: seen(n, prefix) for n in names}
            if now == last:
                return now
            last = now
            time.sleep(0.2)
        return last

    for i in range(5):
        assert pod(gateway, f"/all/{i}") == "app"
    copies = settled(["m1", "m2"], "/all/")
    # Every request reaches both mirrors, and the client only ever sees the primary backend.
    assert copies["m1"] == copies["m2"] == {f"/all/{i}" for i in range(5)}
    n = 400
    for i in range(n):
        assert pod(gateway, f"/some/{i}") == "app"
    got = settled(["half", "quarter"], "/some/")
    half, quarter = len(got["half"]), len(got["quarter"])
    # Binomial bounds at about five standard deviations: 50% and 25% of the requests.
    assert 150 <= half <= 250, half
    assert 57 <= quarter <= 143, quarter
    # The two filters sample independently: about half of the quarter's requests are also in the half.
    both = len(got["half"] & got["quarter"])
    assert both < 0.8 * quarter, (both, quarter)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_status_codes(gateway: Gateway, backends: Callable[..., Backend], code: int) -> None:
    setup(gateway, backends, f"""\
          rules:
            - matches: [{{path: {{type: PathPrefix, value: /moved}}}}]
              filters: [{{type: RequestRedirect, requestRedirect: {{path: {{type: ReplaceFullPath,
                           replaceFullPath: /here}}, statusCode: {code}}}}}]
            - backendRefs: [{{name: app, port: 80}}]
        """, "app")
    r = request(url(gateway, "/moved/x?q=1"), host="example.com", method="POST", data=b"body")
    assert r.status == code
    assert r.headers["location"] == "http://example.com:8080/here?q=1"


def test_redirect_status_code_outside_the_enum_is_refused(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    setup(gateway, backends, """\
          rules: [{backendRefs: [{name: app, port: 80}]}]
        """, "app")
    gateway.write("bad.yaml", """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: bad, namespace: default}
        spec:
          parentRefs: [{name: gw}]
          hostnames: [bad.example.com]
          rules: [{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 304}}]}]
        """)
    report = gateway.runner.reconcile()
    assert any("bad" in e and "statusCode" in e for e in report.errors), report.errors
    assert pod(gateway, "/") == "app"  # the valid route keeps serving
