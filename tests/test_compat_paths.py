"""ingress-nginx path semantics through IngressNginxCompat (docs/compatibility.md), on real nginx.

Each test serves hand-written HTTPRoutes (and IngressNginxCompat filters) equivalent to some cases
of the migration corpus (../shared/migration/cases), then sends every request of those cases and
checks the result ingress-nginx gives, as the case file states it: status, backend, the path
the backend got, Location, upstream headers. Each case's Services live in a namespace named after
the case, so cases sharing a Service name don't collide.
"""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import GW, REPO, Backend, Gateway, loopback_subnet
from http_stubs import StubServer
from migration_cases import case_file, check, send
from policy_helpers import decision_log, doc_examples
from test_policy_docs import field_paths, used_paths
from wardgate.dataplane.nginx import NginxInstance
from wardgate.model import parse
from wardgate.model.compat import IngressNginxCompatSpec
from wardgate.sources.files import load_text
from wardgate.translate import translate

pytestmark = pytest.mark.timeout(180)

# Port 80, so redirects carry no port, as in the corpus; routes from every case's namespace.
GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: wardgate
  listeners:
    - {name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: All}}}
"""
CLASS = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: wardgate}\n" \
        "spec: {controllerName: wardgate.io/gateway-controller}\n---\n"
COMPAT_REF = "{type: ExtensionRef, extensionRef: {group: policy.wardgate.io, kind: IngressNginxCompat, name: %s}}"


def compat(ns: str, name: str, spec: str) -> str:
    return f"---\napiVersion: policy.wardgate.io/v1alpha1\nkind: IngressNginxCompat\n" \
           f"metadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"


def route(ns: str, name: str, host: str | None, rules: str) -> str:
    hosts = f"  hostnames: [{host}]\n" if host else ""
    return (f"---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, "
            f"namespace: {ns}}}\nspec:\n  parentRefs: [{{name: gw, namespace: default}}]\n{hosts}  rules:\n"
            + textwrap.indent(textwrap.dedent(rules), "    "))


def rule(path_type: str, value: str, backend: str, *filters: str) -> str:
    out = f"- matches: [{{path: {{type: {path_type}, value: {json.dumps(value)}}}}}]\n"
    if filters:
        out += "  filters:\n" + "".join(f"    - {f}\n" for f in filters)
    return out + f"  backendRefs: [{{name: {backend}, port: 80}}]\n"


def serve(gateway: Gateway, backends: Callable[..., Backend], cases: dict[str, str]) -> None:
    """The Gateway, each case's echo backends (in the case's namespace) and manifests."""
    parts = [GATEWAY]
    for case_id, manifests in cases.items():
        parts.append(f"---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {case_id}}}\n")
        for svc in case_file(case_id)["backends"]:
            parts.append(backends(svc, namespace=case_id).manifests())
        parts.append(manifests)
    gateway.write("world.yaml", *parts)
    gateway.reconcile()


def run(gateway: Gateway, backends: Callable[..., Backend], cases: dict[str, str]) -> None:
    serve(gateway, backends, cases)
    failures = [f for case_id in cases for f in check(gateway.address(), case_id)]
    assert not failures, "\n".join(failures)


# --- cases with Gateway API's own semantics (no compatibility filter needed) ----------------------

def test_plain_prefix_exact_and_defaults(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    ns = "path-prefix-element-match"
    cases = {ns: route(ns, "r", "path-prefix.example.com", rule("PathPrefix", "/aaa", "app"))}
    ns = "path-exact-basic"
    cases[ns] = route(ns, "r", "path-exact.example.com", rule("Exact", "/exact", "app"))
    ns = "path-exact-and-prefix-same-path"
    cases[ns] = route(ns, "r", "path-exact-prefix.example.com",
                      rule("Exact", "/exact", "exact-svc") + rule("PathPrefix", "/exact", "prefix-svc"))
    ns = "path-case-sensitive-without-regex"
    cases[ns] = route(ns, "r", "path-case.example.com", rule("PathPrefix", "/Api", "app"))
    ns = "path-longest-prefix-wins"
    cases[ns] = route(ns, "r", "path-longest.example.com", rule("PathPrefix", "/", "svc-root")
                      + rule("PathPrefix", "/api", "svc-api") + rule("PathPrefix", "/api/v2", "svc-v2"))
    ns = "path-unmatched-404-default-backend"
    cases[ns] = route(ns, "r", "path-unmatched.example.com", rule("PathPrefix", "/app", "app"))
    ns = "rewrite-target-equal-to-path-noop"  # rewrite-target equal to the path: nothing to do
    cases[ns] = route(ns, "r", "rewrite-noop.example.com",
                      rule("PathPrefix", "/", "web") + rule("PathPrefix", "/api", "api"))
    run(gateway, backends, cases)


def test_url_normalisation_needs_ambiguous_paths_allowed(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """ingress-nginx routes /public/../api on the normalised path and forwards it raw; wardgate
    refuses such paths unless the Gateway's ClientTrafficPolicy allows them."""
    ns = "path-url-normalization"
    cases = {ns: route(ns, "r", "path-normalize.example.com",
                       rule("PathPrefix", "/api", "api") + rule("PathPrefix", "/public", "public"))
             + "---\napiVersion: policy.wardgate.io/v1alpha1\nkind: ClientTrafficPolicy\n"
               "metadata: {name: raw-paths, namespace: default}\n"
               "spec: {targetRefs: [{kind: Gateway, name: gw}], path: {ambiguous: Allow}}\n"}
    run(gateway, backends, cases)


# --- pathMatching: IngressNginx ---------------------------------------------------------------------

def test_character_prefix_and_trailing_slash_redirect(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    ns = "path-implementation-specific-char-prefix"
    cases = {ns: compat(ns, "nginx", "{pathMatching: IngressNginx}")
             + route(ns, "r", "path-implspecific.example.com", rule("PathPrefix", "/foo", "app", COMPAT_REF % "nginx"))}
    ns = "path-prefix-trailing-slash-redirect"
    cases[ns] = compat(ns, "nginx", "{pathMatching: IngressNginx}") + route(
        ns, "r", "path-trailing-slash.example.com", rule("PathPrefix", "/foo/", "app", COMPAT_REF % "nginx"))
    run(gateway, backends, cases)


def test_regex_paths_case_insensitive_start_anchored_first_match(
        gateway: Gateway, backends: Callable[..., Backend]) -> None:
    ref = COMPAT_REF % "nginx"
    nginx = "{pathMatching: IngressNginx}"
    ns = "regex-case-insensitive-start-anchored"
    cases = {ns: compat(ns, "nginx", nginx)
             + route(ns, "r", "regex-basic.example.com", rule("RegularExpression", "/api/v[0-9]+", "app", ref))}
    # use-regex on one Ingress makes every path of the host a regex; the other host keeps Exact.
    ns = "regex-applies-to-all-paths-of-host"
    cases[ns] = compat(ns, "nginx", nginx) + route(ns, "regex", "regex-host.example.com",
                                                   rule("RegularExpression", "/v[0-9]+/items", "items", ref)) \
        + route(ns, "plain", "regex-host.example.com", rule("RegularExpression", "/health", "health", ref)
                + rule("RegularExpression", "/static", "static", ref)) \
        + route(ns, "plain-other", "regex-host-other.example.com", rule("Exact", "/health", "health"))
    # The longer regex is tried first and wins, even over a literal path; on the second host a
    # capture rewrite (/foo/bar/(.+) -> /$1) beside Prefix /foo/bar and /foo/bar/.
    ns = "regex-first-match-not-longest"
    cases[ns] = compat(ns, "nginx", nginx) + compat(ns, "rewrite", "{pathMatching: IngressNginx, rewriteTarget: /$1}") \
        + route(ns, "order", "regex-order.example.com", rule("RegularExpression", "/foo/bar/bar", "svc-literal", ref)
                + rule("RegularExpression", "/foo/bar/[A-Z0-9]{3}", "svc-regex", ref)) \
        + route(ns, "priority", "regex-priority.example.com",
                rule("RegularExpression", "/foo/bar", "service1", ref)
                + rule("RegularExpression", "/foo/bar/", "service2", ref)
                + rule("RegularExpression", "/foo/bar/(.+)", "service3", COMPAT_REF % "rewrite"))
    run(gateway, backends, cases)


def test_rewrite_target_captures_static_and_x_forwarded_prefix(
        gateway: Gateway, backends: Callable[..., Backend]) -> None:
    nginx = "{pathMatching: IngressNginx}"
    ns = "rewrite-target-capture-groups"
    cases = {ns: compat(ns, "rw", "{pathMatching: IngressNginx, rewriteTarget: /$2}")
             + route(ns, "r", "rewrite-capture.example.com",
                     rule("RegularExpression", "/something(/|$)(.*)", "http-svc", COMPAT_REF % "rw"))}
    ns = "rewrite-target-static-replaces-whole-uri"
    cases[ns] = compat(ns, "rw", "{pathMatching: IngressNginx, rewriteTarget: /}") + route(
        ns, "r", "rewrite-static.example.com", rule("RegularExpression", "/something", "app", COMPAT_REF % "rw"))
    ns = "rewrite-target-implies-regex-other-ingress"
    cases[ns] = compat(ns, "nginx", nginx) \
        + compat(ns, "rw", "{pathMatching: IngressNginx, rewriteTarget: /new/backend}") \
        + route(ns, "one", "rewrite-implies-regex.example.com",
                rule("RegularExpression", "/.well-known/acme/challenge", "acme", COMPAT_REF % "nginx")
                + rule("RegularExpression", "/", "app", COMPAT_REF % "rw")) \
        + route(ns, "two", "rewrite-implies-regex2.example.com",
                rule("RegularExpression", "/foo", "foo-svc", COMPAT_REF % "nginx")
                + rule("RegularExpression", "/foo.+", "regex-svc", COMPAT_REF % "rw"))
    # X-Forwarded-Prefix goes only with a rewrite: a RequestHeaderModifier on the rewriting rules.
    ns = "x-forwarded-prefix"
    xfp = "{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Forwarded-Prefix, value: %s}]}}"
    cases[ns] = compat(ns, "foo", "{pathMatching: IngressNginx, rewriteTarget: /foo}") \
        + compat(ns, "capture", "{pathMatching: IngressNginx, rewriteTarget: /$2}") \
        + route(ns, "xfp", "xfp.example.com", rule("RegularExpression", "/", "app", COMPAT_REF % "foo",
                                                  xfp % "/test/value")) \
        + route(ns, "xfp-app", "xfp-app.example.com", rule("RegularExpression", "/app(/|$)(.*)", "app",
                                                          COMPAT_REF % "capture", xfp % "/app")) \
        + route(ns, "xfp-norewrite", "xfp-norewrite.example.com", rule("PathPrefix", "/", "app"))
    run(gateway, backends, cases)


# --- the same requests through an ingress-nginx-style configuration ----------------------------------

# Locations as ingress-nginx's template writes them (buildLocation, buildProxyPass): a host in regex
# mode, and a host with Prefix, ImplementationSpecific and Exact paths.
REFERENCE = """\
worker_processes 1;
error_log logs/error.log;
pid run/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path tmp/client_body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
    port_in_redirect off;
    server {
        listen %(addr)s:80;
        server_name regex.example.com;
        location ~* "^/something(/|$)(.*)" { rewrite "(?i)/something(/|$)(.*)" /$2 break; proxy_pass http://%(a)s; }
        location ~* "^/foo/bar/[A-Z0-9]{3}" { proxy_pass http://%(b)s; }
        location ~* "^/foo/bar/bar" { proxy_pass http://%(c)s; }
        location ~* "^/static/" { proxy_pass http://%(d)s; }
        location ~* "^/static" { proxy_pass http://%(d)s; }
        location ~* "^/x.y|/alt" { rewrite "(?i)/x.y|/alt" /got/$1 break; proxy_pass http://%(e)s; }
        location ~* "^/" { return 404; }
    }
    server {
        listen %(addr)s:80;
        server_name plain.example.com;
        location "/foo" { proxy_pass http://%(a)s; }
        location "/foo/bar/" { proxy_pass http://%(b)s; }
        location = "/foo/bar" { proxy_pass http://%(b)s; }
        location "/dir/" { proxy_pass http://%(c)s; }
        location = "/dir/" { proxy_pass http://%(c)s; }
        location = "/exact/" { proxy_pass http://%(d)s; }
        location "/fo" { proxy_pass http://%(e)s; }
        location "/" { return 404; }
    }
}
"""

EQUIVALENT = """\
---
apiVersion: policy.wardgate.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: raw-paths, namespace: default}
spec: {targetRefs: [{kind: Gateway, name: gw}], path: {ambiguous: Allow}}
""" + compat("default", "nginx", "{pathMatching: IngressNginx}") \
    + compat("default", "capture", "{pathMatching: IngressNginx, rewriteTarget: /$2}") \
    + compat("default", "alt", "{pathMatching: IngressNginx, rewriteTarget: /got/$1}") \
    + route("default", "regex", "regex.example.com",
            rule("RegularExpression", "/something(/|$)(.*)", "a", COMPAT_REF % "capture")
            + rule("RegularExpression", "/foo/bar/bar", "c", COMPAT_REF % "nginx")
            + rule("RegularExpression", "/static", "d", COMPAT_REF % "nginx")
            + rule("RegularExpression", "/x.y|/alt", "e", COMPAT_REF % "alt")
            + rule("RegularExpression", "/foo/bar/[A-Z0-9]{3}", "b", COMPAT_REF % "nginx")) \
    + route("default", "plain", "plain.example.com",
            rule("PathPrefix", "/foo", "a", COMPAT_REF % "nginx") + rule("PathPrefix", "/foo/bar", "b")
            + rule("PathPrefix", "/dir/", "c", COMPAT_REF % "nginx")
            + rule("Exact", "/exact/", "d", COMPAT_REF % "nginx")
            + rule("PathPrefix", "/fo", "e", COMPAT_REF % "nginx"))

PROBES = {
    "regex.example.com": [
        "/something", "/something/", "/something/new?x=1&y=2", "/SOMETHING/New", "/somethingelse",
        "/something/a%20b", "/something/a%2Fb", "/something/a+b", "/something/%C3%A9?x=%20", "/something/a%3Fb",
        "/something/a%25b", "/something//x", "//something/x", "/something/./x", "/something/../something/y",
        "/foo/bar/bar", "/foo/bar/ba", "/foo/bar/XYZ9", "/FOO/BAR/BAR", "/static", "/static/", "/STATICx/y",
        "/xay", "/x/y", "/z/alt/q", "/alt", "/other", "/", "/%73tatic",
    ],
    "plain.example.com": [
        "/foo", "/foox", "/FOO", "/fo", "/f", "/foo/bar", "/foo/bar?q=1", "/foo/bar/", "/foo/bar/x", "/foo/barx",
        "/dir", "/dir?x=1&y", "/dir/", "/dir/x", "/DIR/", "/exact", "/exact?a", "/exact/", "/exact/x", "/",
        "/%66oo", "//foo", "/fo%6f/bar/", "/dir/../foo",
    ],
}


def observe(address: str, host: str, path: str) -> tuple[object, ...]:
    status, headers, body = send(address, {"method": "GET", "host": host, "path": path})
    if headers.get("content-type") == "application/json":
        echo = json.loads(body)
        return status, echo["pod"].split("-")[0], echo["path"]
    return status, headers.get("location")


def test_same_answers_as_ingress_nginx_locations(gateway: Gateway, backends: Callable[..., Backend],
                                                 world_dir: Path) -> None:
    """Tricky paths (encodings, dot segments, double slashes, case, alternation) through the
    locations ingress-nginx writes and through the equivalent HTTPRoutes: the same answers."""
    made = {n: backends(n) for n in "abcde"}
    gateway.write("world.yaml", GATEWAY, *(b.manifests() for b in made.values()), EQUIVALENT)
    gateway.reconcile()
    ref_addr = loopback_subnet() + ".1"
    upstreams = {n: f"{b.servers[0].host}:{b.servers[0].port}" for n, b in made.items()}
    ref = NginxInstance("reference", world_dir / "reference")
    try:
        applied = ref.apply({"nginx.conf": REFERENCE % {"addr": ref_addr, **upstreams}})
        assert applied.ok, applied.error
        differ = []
        for host, paths in PROBES.items():
            for path in paths:
                want, got = observe(ref_addr, host, path), observe(gateway.address(), host, path)
                if want != got:
                    differ.append(f"{host}{path}: ingress-nginx {want}, wardgate {got}")
        assert not differ, "\n".join(differ)
    finally:
        ref.stop()


def test_app_root_redirect_keeps_host_port_drops_query(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """app-root: `/` only, 302 to $scheme://$http_host/app1 without the query string, also on the
    HTTP side of a TLS host, where every other path redirects to HTTPS."""
    case = case_file("app-root")
    secret = next(d for d in yaml.safe_load_all(case["manifests"]) if d and d.get("kind") == "Secret")
    app = backends("app")
    root = compat("default", "app-root", "{redirect: {location: /app1, statusCode: 302}}")
    redirect_rule = "- matches: [{path: {type: Exact, value: /}}]\n  filters: [%s]\n" % (COMPAT_REF % "app-root")

    def parents(*sections: str) -> str:
        return "  parentRefs: [" + ", ".join(f"{{name: gw, sectionName: {s}}}" for s in sections) + "]\n"

    routes = route("default", "approot", "approot.example.com", redirect_rule + rule("PathPrefix", "/", "app")) \
        + route("default", "approot-tls", "approot-tls.example.com", redirect_rule + rule("PathPrefix", "/", "app")
                ).replace("  parentRefs: [{name: gw, namespace: default}]\n", parents("https")) \
        + route("default", "approot-tls-http", "approot-tls.example.com", redirect_rule
                + "- filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 308}}]\n"
                ).replace("  parentRefs: [{name: gw, namespace: default}]\n", parents("http"))
    gateway.write("world.yaml", GATEWAY.replace("    - {name: http,", "    - {name: https, protocol: HTTPS, "
                                                "port: 443, hostname: approot-tls.example.com, tls: {certificateRefs: "
                                                "[{name: tls-approot}]}}\n    - {name: http,"),
                  "---\n" + yaml.safe_dump(secret), app.manifests(), root, routes)
    gateway.reconcile()
    failures = check(gateway.address(), "app-root")
    assert not failures, "\n".join(failures)


# --- ingress-nginx's own redirects: sslRedirect, redirect.hostname -----------------------------------

# A Gateway on 80 and 443 (any certificate: the client doesn't verify), routes on both listeners.
TLS_GATEWAY = GATEWAY.replace("    - {name: http,", "    - {name: https, protocol: HTTPS, port: 443, tls: "
                              "{certificateRefs: [{name: tls-ssl-default}]}}\n    - {name: http,")


def tls_world(gateway: Gateway, *parts: str) -> None:
    case = case_file("ssl-redirect-default-tls-host")
    secret = next(d for d in yaml.safe_load_all(case["manifests"]) if d and d.get("kind") == "Secret")
    gateway.write("world.yaml", TLS_GATEWAY, "---\n" + yaml.safe_dump(secret), *parts)
    gateway.reconcile()


def answer(gateway: Gateway, host: str, path: str, method: str = "GET", scheme: str = "http",
           **extra: Any) -> tuple[object, ...]:
    """status and Location, or status and the echo's pod (as `backend`)."""
    status, headers, body = send(gateway.address(), {"method": method, "host": host, "path": path,
                                                     "scheme": scheme, **extra})
    if headers.get("content-type") == "application/json":
        return status, json.loads(body)["pod"].split("-")[0]
    return status, headers.get("location")


def test_ssl_redirect_builds_the_location_as_ingress_nginx(gateway: Gateway,
                                                           backends: Callable[..., Backend]) -> None:
    """lua_ingress.lua's redirect: the Host header without its port, the request URI as sent less
    one final "/" (of the whole URI), the query kept; X-Forwarded-Proto not trusted by default."""
    app = backends("app")
    ref = COMPAT_REF % "https"
    tls_world(gateway, app.manifests(), compat("default", "https", "{sslRedirect: {statusCode: 308}}"),
              compat("default", "keep", "{sslRedirect: {statusCode: 302, preserveTrailingSlash: true}}"),
              route("default", "ssl", "ssl.example.com", rule("PathPrefix", "/", "app", ref)),
              route("default", "keep", "keep.example.com", rule("PathPrefix", "/", "app", COMPAT_REF % "keep")))
    host = "ssl.example.com"
    assert answer(gateway, host, "/") == (308, "https://ssl.example.com")
    assert answer(gateway, host, "/dir/") == (308, "https://ssl.example.com/dir")
    assert answer(gateway, host, "/path/?a=1") == (308, "https://ssl.example.com/path/?a=1")
    assert answer(gateway, host, "/path/?a=/") == (308, "https://ssl.example.com/path/?a=")
    assert answer(gateway, host, "/dir//") == (308, "https://ssl.example.com/dir/")
    assert answer(gateway, host, "/a%20b/") == (308, "https://ssl.example.com/a%20b")
    assert answer(gateway, host, "/submit", "POST") == (308, "https://ssl.example.com/submit")
    assert answer(gateway, host + ":8080", "/x") == (308, "https://ssl.example.com/x")
    assert answer(gateway, "SSL.Example.COM", "/x") == (308, "https://SSL.Example.COM/x")
    assert answer(gateway, host, "/x", headers={"X-Forwarded-Proto": "https",
                                                 "X-Forwarded-Host": "other.example.com"}) == \
        (308, "https://ssl.example.com/x")
    assert answer(gateway, host, "/page", scheme="https") == (200, "app")
    assert answer(gateway, "keep.example.com", "/dir/") == (302, "https://keep.example.com/dir/")
    assert answer(gateway, "keep.example.com", "/") == (302, "https://keep.example.com/")


def test_ssl_redirect_trusting_forwarded_headers(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """use-forwarded-headers: X-Forwarded-Proto decides (only exactly `http` redirects, on either
    listener), X-Forwarded-Host's first entry up to a `:` is the host."""
    app = backends("app")
    tls_world(gateway, app.manifests(), compat("default", "fwd", "{sslRedirect: {forwardedHeaders: true}}"),
              route("default", "fwd", "fwd.example.com", rule("PathPrefix", "/", "app", COMPAT_REF % "fwd")))
    host = "fwd.example.com"

    def xf(**values: str) -> dict[str, Any]:
        return {"headers": {f"X-Forwarded-{k}": v for k, v in values.items()}}

    assert answer(gateway, host, "/x/") == (308, "https://fwd.example.com/x")
    assert answer(gateway, host, "/x", **xf(Proto="https")) == (200, "app")
    assert answer(gateway, host, "/x", **xf(Proto="HTTP")) == (200, "app")
    assert answer(gateway, host, "/x", **xf(Proto="http")) == (308, "https://fwd.example.com/x")
    assert answer(gateway, host, "/x", scheme="https") == (200, "app")
    assert answer(gateway, host, "/x?q", scheme="https", **xf(Proto="http", Host="a.example.com:8443, b")) == \
        (308, "https://a.example.com/x?q")
    assert answer(gateway, host, "/x", **xf(Host="c.example.com")) == (308, "https://c.example.com/x")


def test_ssl_redirect_answers_between_rewrite_and_access_checks(gateway: Gateway,
                                                                backends: Callable[..., Backend]) -> None:
    """ingress-nginx redirected at the end of its rewrite phase: after the location's body size
    limit (413), its CORS block and snippet `if`s (allowedMethods), before its IP allowlist (403)
    and rate limits, which HTTPS requests meet in wardgate's own order. The policy is the
    Gateway's, so every place of the host shares it: the server level must not check it."""
    app = backends("app")
    policy = """\
        ---
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: lan-only, namespace: default}
        spec:
          targetRefs: [{kind: Gateway, name: gw}]
          ipAccess: {allow: [10.0.0.0/8]}
          requestLimits: {maxBodySize: 1Ki}
          allowedMethods: [GET, HEAD, POST, OPTIONS]
          ingressNginxCORS: {allowOrigins: ["https://a.example.com"]}
        """
    tls_world(gateway, app.manifests(), policy, compat("default", "https", "{sslRedirect: {}}"),
              route("default", "ssl", "ssl.example.com", rule("PathPrefix", "/", "app", COMPAT_REF % "https")))
    host, origin = "ssl.example.com", {"Origin": "https://a.example.com"}
    assert answer(gateway, host, "/") == (308, "https://ssl.example.com")
    assert answer(gateway, host, "/upload", "POST", bodyBytes=2048)[0] == 413
    assert answer(gateway, host, "/upload", "POST", bodyBytes=100) == (308, "https://ssl.example.com/upload")
    assert answer(gateway, host, "/x", "DELETE")[0] == 405
    assert answer(gateway, host, "/x", "OPTIONS", headers=origin)[0] == 204
    status, headers, _ = send(gateway.address(), {"method": "GET", "host": host, "path": "/x", "headers": origin})
    assert (status, headers["access-control-allow-origin"]) == (308, "https://a.example.com")
    assert answer(gateway, host, "/", scheme="https")[0] == 403
    assert answer(gateway, host, "/x", "OPTIONS", scheme="https", headers=origin)[0] == 403


def test_host_redirect_writes_the_port_as_ingress_nginx(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """from-to-www-redirect (ngx_srv_redirect.lua): the request's scheme, the host, always the
    listener's port, the request URI less one final "/"; forwarded scheme and port when trusted."""
    tls_world(gateway, compat("default", "apex", "{redirect: {hostname: apex.example.com, statusCode: 308}}"),
              compat("default", "fwd", "{redirect: {hostname: apex.example.com, statusCode: 301, "
                                       "forwardedHeaders: true}}"),
              route("default", "www", "www.apex.example.com",
                    "- filters: [%s]\n" % (COMPAT_REF % "apex")),
              route("default", "www-fwd", "www.fwd.example.com", "- filters: [%s]\n" % (COMPAT_REF % "fwd")))
    host = "www.apex.example.com"
    assert answer(gateway, host, "/foo?x=1") == (308, "http://apex.example.com:80/foo?x=1")
    assert answer(gateway, host, "/") == (308, "http://apex.example.com:80")
    assert answer(gateway, host + ":8080", "/a/?b") == (308, "http://apex.example.com:80/a/?b")
    assert answer(gateway, host, "/form", "POST") == (308, "http://apex.example.com:80/form")
    assert answer(gateway, host, "/", scheme="https") == (308, "https://apex.example.com:443")
    assert answer(gateway, host, "/p", headers={"X-Forwarded-Proto": "https"}) == (308, "http://apex.example.com:80/p")
    host = "www.fwd.example.com"
    assert answer(gateway, host, "/p/") == (301, "http://apex.example.com:80/p")
    assert answer(gateway, host, "/p", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443"}) == \
        (301, "https://apex.example.com:8443/p")


def test_redirect_forms_are_validated() -> None:
    for spec, message in (({"redirect": {"location": "/a", "hostname": "b.example.com"}}, "one of location"),
                          ({"redirect": {"statusCode": 301}}, "one of location"),
                          ({"redirect": {"location": "/a", "forwardedHeaders": True}}, "hostname redirect only"),
                          ({"redirect": {"hostname": "*.example.com"}}, "hostname"),
                          ({"redirect": {"location": "/a"}, "sslRedirect": {}}, "can't be used together"),
                          ({"sslRedirect": {"statusCode": 200}}, "statusCode")):
        with pytest.raises(ValueError, match=message):
            IngressNginxCompatSpec.model_validate(spec)


# --- the documented examples (docs/compatibility.md) ---------------------------------------------

DOCS = REPO / "docs" / "compatibility.md"


def get(gateway: Gateway, host: str, path: str,
        headers: dict[str, str] | None = None) -> tuple[int, str, str, dict[str, str]]:
    """status, backend, upstream path (or Location), upstream headers, through the :8080 listener."""
    status, headers, body = send(gateway.address(), {"method": "GET", "host": host, "path": path,
                                                     "headers": headers or {}}, port=8080)
    if headers.get("content-type") != "application/json":
        return status, "", headers.get("location", ""), {}
    echo = json.loads(body)
    return status, echo["pod"].split("-")[0], echo["path"], {k.lower(): v[0] for k, v in echo["headers"].items()}


def test_documented_examples(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    examples = doc_examples(DOCS)
    made = [backends(n) for n in ("api", "static", "foo", "docs", "app")]
    gateway.write("world.yaml", GW, *(b.manifests() for b in made))
    docs: dict[tuple[str, str], str] = {}  # the examples share their IngressNginxCompat objects
    for name in ("nginx-regex-paths", "nginx-prefix-paths", "capture-rewrite", "app-root", "www-redirect",
                 "ssl-redirect"):
        for doc in yaml.safe_load_all(examples[name]):
            docs.setdefault((doc["kind"], doc["metadata"]["name"]), "---\n" + yaml.safe_dump(doc))
    gateway.write("examples.yaml", *docs.values())
    gateway.reconcile()
    host = "regex.example.com"
    assert get(gateway, host, "/API/V2/users")[:3] == (200, "api", "/API/V2/users")
    assert get(gateway, host, "/api/v1x")[:2] == (200, "api")
    assert get(gateway, host, "/x/api/v1")[0] == 404
    assert get(gateway, host, "/STATIC/a.css")[:2] == (200, "static")
    assert get(gateway, host, "/staticfiles/app.js")[:2] == (200, "static")
    host = "prefix.example.com"
    for path in ("/foo", "/foo/bar", "/foobar"):
        assert get(gateway, host, path)[:2] == (200, "foo")
    assert get(gateway, host, "/Foo")[0] == 404
    assert get(gateway, host, "/docs/x")[:2] == (200, "docs")
    # the listener's port is in the Location (ingress-nginx's are on 80 and 443)
    assert get(gateway, host, "/docs?v=2")[:3] == (301, "", "http://prefix.example.com:8080/docs/?v=2")
    host = "rewrite.example.com"
    assert get(gateway, host, "/app")[:3] == (200, "app", "/")
    status, backend, path, upstream = get(gateway, host, "/app/page?x=1")
    assert (status, backend, path, upstream["x-forwarded-prefix"]) == (200, "app", "/page?x=1", "/app")
    assert get(gateway, host, "/APP/Page")[2] == "/Page"
    assert get(gateway, host, "/application")[0] == 404
    host = "approot.example.com"
    assert get(gateway, host + ":8080", "/?utm=x")[:3] == (302, "", "http://approot.example.com:8080/app1")
    assert get(gateway, host, "/other")[:3] == (200, "app", "/other")
    host = "www.example.com"
    assert get(gateway, host, "/foo?x=1")[:3] == (308, "", "http://example.com:8080/foo?x=1")
    assert get(gateway, host, "/")[:3] == (308, "", "http://example.com:8080")
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}
    assert get(gateway, host, "/foo?x=1", forwarded)[:3] == (308, "", "https://example.com:443/foo?x=1")
    host = "shop.example.com"
    assert get(gateway, host, "/")[:3] == (308, "", "https://shop.example.com")
    assert get(gateway, host + ":8080", "/cart/?id=1")[:3] == (308, "", "https://shop.example.com/cart/?id=1")


def test_not_found_answers_after_the_rules_checks(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """notFound: the rule's 404 comes where a backend's would, after authentication (access
    phase) and rate limits (preaccess), with the rule's response headers, logged as no-route. A
    rewrite-phase 404 (a urlAllowlist matching nothing) answers before both."""
    auth = StubServer(lambda req: (200, {}, b"") if req["headers"].get("Authorization") == "Bearer good"
                      else (401, {"WWW-Authenticate": 'Bearer realm="corp"'}, b""))
    try:
        app = backends("app")
        limits = textwrap.dedent("""\
            ---
            apiVersion: policy.wardgate.io/v1alpha1
            kind: RateLimitPolicy
            metadata: {name: portal-limit, namespace: default}
            spec:
              targetRefs: [{kind: HTTPRoute, name: portal, sectionName: elsewhere}]
              requests: 1
              unit: Minute
              burst: 2
            """)
        gateway.write("world.yaml", GW, app.manifests(), auth.manifests("auth"),
                      "---\n" + doc_examples(DOCS)["not-found"],
                      limits)
        gateway.reconcile()

        def go(path: str, token: str | None = None, host: str = "portal.example.com") -> tuple[int, dict[str, str]]:
            req = {"method": "GET", "host": host, "path": path, "headers": {"Authorization": token} if token else {}}
            status, headers, _ = send(gateway.address(), req, port=8080)
            return status, headers

        assert go("/app/x", "Bearer good")[0] == 200
        status, headers = go("/nf-unknown")
        assert (status, headers.get("www-authenticate")) == (401, 'Bearer realm="corp"')
        status, headers = go("/nf-unknown?token", "Bearer good")
        assert (status, headers.get("x-robots-tag")) == (404, "noindex")
        assert decision_log(gateway, "/nf-unknown?token")[0]["decision"] == "no-route"
        assert decision_log(gateway, "/nf-unknown")[0]["decision"] == "auth"
        # the limit (burst + 1 = 3 at once) counts the 401 and the 404s: the 4th request is refused
        assert [go("/nf-more", "Bearer good")[0] for _ in range(2)] == [404, 429]
        assert decision_log(gateway, "/nf-more", 2)[1]["decision"] == "rate-limit"
        assert go("/app/x", "Bearer good")[0] == 200  # the limit is the notFound rule's only
    finally:
        auth.close()


def test_not_found_refuses_what_it_cant_do_and_warns_about_unused_backends() -> None:
    with pytest.raises(ValueError, match="notFound can't be used with rewriteTarget or redirect"):
        IngressNginxCompatSpec.model_validate({"notFound": True, "rewriteTarget": "/x"})
    world = CLASS + GATEWAY + compat("default", "nf", "{notFound: true}") + route(
        "default", "r", "nf.example.com", rule("PathPrefix", "/a", "app", COMPAT_REF % "nf")
        + "- matches: [{path: {type: PathPrefix, value: /b}}]\n  filters:\n    - " + COMPAT_REF % "nf"
        + "\n    - {type: RequestRedirect, requestRedirect: {hostname: x.example.com}}\n")
    problems = [str(p) for p in translate(parse(load_text(world, "world.yaml"))).problems]
    assert any("spec.rules[0].backendRefs" in p and "not used" in p for p in problems), problems
    assert any("spec.rules[1]" in p and "notFound can't be used together" in p for p in problems), problems


def test_every_compat_field_is_in_a_documented_example() -> None:
    used: set[str] = set()
    for text in doc_examples(DOCS).values():
        for doc in yaml.safe_load_all(text):
            if doc and doc["kind"] == "IngressNginxCompat":
                used |= used_paths(doc["spec"])
    assert field_paths(IngressNginxCompatSpec) - used == set()


# --- errors ---------------------------------------------------------------------------------------

def test_unresolved_compat_filters_answer_500_and_say_why(gateway: Gateway, backends: Callable[..., Backend],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wardgate")
    app = backends("app")
    other = "{type: ExtensionRef, extensionRef: {group: example.com, kind: Mystery, name: x}}"
    gateway.write("world.yaml", GATEWAY, app.manifests(), compat("default", "nginx", "{pathMatching: IngressNginx}"),
                  route("default", "missing", "missing.example.com",
                        rule("PathPrefix", "/", "app", COMPAT_REF % "nope")),
                  route("default", "two", "two.example.com",
                        rule("PathPrefix", "/", "app", COMPAT_REF % "nginx", COMPAT_REF % "nginx")),
                  route("default", "unknown", "unknown.example.com", rule("PathPrefix", "/", "app", other)))
    gateway.reconcile()
    for host in ("missing", "two", "unknown"):
        assert send(gateway.address(), {"method": "GET", "host": f"{host}.example.com", "path": "/x"})[0] == 500

    def refs(name: str) -> dict[str, str]:
        parent = gateway.status("HTTPRoute", name)["parents"][0]
        return dict(next(c for c in parent["conditions"] if c["type"] == "ResolvedRefs"))

    assert (refs("missing")["reason"], refs("unknown")["reason"]) == ("BackendNotFound", "InvalidKind")
    assert "IngressNginxCompat default/nope not found" in refs("missing")["message"]
    assert "spec.rules[0].filters[1].extensionRef: a rule may name one IngressNginxCompat" in caplog.text


def test_invalid_compat_object_is_refused_with_its_field(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    app = backends("app")
    gateway.write("world.yaml", GATEWAY, app.manifests(),
                  compat("default", "bad", "{pathMatching: IngressNginx, rewriteTarget: /$host}"),
                  route("default", "r", "bad.example.com",
                        rule("RegularExpression", "/(.*)", "app", COMPAT_REF % "bad")))
    report = gateway.runner.reconcile()
    assert not report.ok
    assert any("IngressNginxCompat default/bad" in e and "spec.rewriteTarget" in e for e in report.errors), \
        report.errors


def test_precedence_beside_gateway_api_matches(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """Exact first; Gateway API's regexes, then ingress-nginx's; prefixes by their nginx location's
    length, Gateway API's PathPrefix /p counting as `/p/` (docs/compatibility.md)."""
    made = [backends(n) for n in ("e", "s", "r", "p", "c", "x")]
    ref = COMPAT_REF % "nginx"
    gateway.write("world.yaml", GATEWAY, *(b.manifests() for b in made),
                  compat("default", "nginx", "{pathMatching: IngressNginx}"),
                  route("default", "mix", "mix.example.com",
                        rule("RegularExpression", "/a", "r", ref) + rule("Exact", "/a/exact", "e")
                        + rule("RegularExpression", "/a/std-[0-9]+", "s") + rule("PathPrefix", "/b/c", "c", ref)
                        + rule("PathPrefix", "/b", "p") + rule("PathPrefix", "/bx", "x", ref)))
    gateway.reconcile()
    want = {"/a/exact": "e", "/a/std-12": "s", "/a/std-x": "r", "/A/anything": "r", "/b/c/d": "c", "/b/cc": "c",
            "/b/x": "p", "/b": "p", "/bx1": "x"}
    got = {}
    for path in want:
        status, _, body = send(gateway.address(), {"method": "GET", "host": "mix.example.com", "path": path})
        got[path] = json.loads(body)["pod"].split("-")[0] if status == 200 else status
    assert got == want


def test_editing_only_the_compat_object_takes_effect(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """The translation memo notices an IngressNginxCompat change though no route changed."""
    app = backends("app")
    gateway.write("world.yaml", GATEWAY, app.manifests(), route(
        "default", "r", "edit.example.com", rule("RegularExpression", "/app(/|$)(.*)", "app", COMPAT_REF % "rw")))
    for target, want in (("/$2", "/x?q=1"), ("/v2/$2", "/v2/x?q=1")):
        spec = "{pathMatching: IngressNginx, rewriteTarget: " + target + "}"
        gateway.write("compat.yaml", compat("default", "rw", spec))
        gateway.reconcile()
        _, _, body = send(gateway.address(), {"method": "GET", "host": "edit.example.com", "path": "/app/x?q=1"})
        assert json.loads(body)["path"] == want
