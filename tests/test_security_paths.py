"""Issue 9, items 5, 6, 8 and 10 through real nginx and the real control plane:

- 5: PCRE's `$` matches before a final newline; every generated pattern ends with `\\z`, so a
  `%0a` suffix matches no path feature it would not match without it;
- 6: regexes with nested unbounded quantifiers are refused on the object, the rest keeps serving;
- 8: listener hostnames that are map keywords (`include`, `default`, ...) are plain map keys;
- 10: request paths a backend could read differently from nginx (path parameters, encoded dots,
  slashes and backslashes, dot segments, a fragment) get 400 unless a ClientTrafficPolicy opts out.
"""

from __future__ import annotations

import ssl
import textwrap
from collections.abc import Callable

import httpx
import pytest
import trustme

from conftest import GW, Backend, Gateway
from policy_helpers import decision_log, example, http, raw, rendered, setup
from test_listeners import tls_secret

pytestmark = pytest.mark.timeout(300)

Backends = Callable[..., Backend]
NL = "%0a"


def get(gateway: Gateway, path: str, host: str = "example.com", headers: list[tuple[str, str]] | None = None) -> int:
    return raw(gateway.address(), http("GET", path, headers or [], host=host)).status


def _routes(gateway: Gateway, backends: Backends, rules: str, extra: str = "") -> None:
    app = backends("app")
    gateway.write("gw.yaml", GW, app.manifests(), """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: app, namespace: default}
        spec:
          parentRefs: [{name: gw}]
          hostnames: [example.com]
          rules:\n""" + textwrap.indent(textwrap.dedent(rules), "            "), extra)
    gateway.reconcile()


# --- item 5: `$` is not the end --------------------------------------------------------------


def test_newline_suffix_matches_no_route_path(gateway: Gateway, backends: Backends) -> None:
    _routes(gateway, backends, """\
            - matches: [{path: {type: RegularExpression, value: "/rx/[a-z]+"}}]
              backendRefs: [{name: app, port: 80}]
            # A regex that itself allows a trailing blank, conditional on a header: without the
            # header a request falls through to the PathPrefix rule, checked there by a regex.
            - matches: [{path: {type: RegularExpression, value: "/pre\\\\s?"}, headers: [{name: X-R, value: "1"}]}]
              backendRefs: [{name: app, port: 80}]
            - matches: [{path: {type: PathPrefix, value: /pre}}]
              backendRefs: [{name: app, port: 80}]
            - matches: [{path: {type: Exact, value: /exact}}]
              backendRefs: [{name: app, port: 80}]
        """)
    for path in ("/rx/abc", "/pre", "/exact"):
        assert get(gateway, path) == 200, path
        assert get(gateway, path + NL) == 404, path + NL
    assert get(gateway, "/pre/x" + NL) == 200  # under the prefix, like any other character
    assert get(gateway, "/pre" + NL, headers=[("X-R", "1")]) == 200  # the user's own regex allows it


def test_newline_suffix_does_not_pass_the_url_allowlist(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, """
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: allow, namespace: default}
        spec:
          targetRefs: [{kind: Gateway, name: gw}]
          urlAllowlist:
            paths:
              - {type: Exact, value: /api}
              - {type: PathPrefix, value: /pp}
              - {type: RegularExpression, value: "/rx/[0-9]+"}
            status: 403
        """)
    for path in ("/api", "/pp", "/rx/12"):
        assert get(gateway, path) == 200, path
        assert get(gateway, path + NL + "?marker=nl") == 403, path + NL
    assert get(gateway, "/pp/x" + NL) == 200  # under the prefix: allowed, as nginx's /pp/ location serves it
    assert decision_log(gateway, "marker=nl", count=3)[0]["decision"] == "url-allowlist"


def test_newline_suffix_does_not_reach_a_waf_path_exclusion(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, """
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: waf, namespace: default}
        spec:
          targetRefs: [{kind: HTTPRoute, name: app}]
          waf:
            exclusions:
              - paths: [{type: PathPrefix, value: /upload}]
              - paths: [{type: Exact, value: /exact}]
              - paths: [{type: RegularExpression, value: "/rx/[a-z]+"}]
        """)
    xss = "?q=%3Cscript%3Ealert(1)%3C/script%3E"
    for path in ("/upload", "/exact", "/rx/abc"):
        assert get(gateway, path + xss) == 200, path  # excluded: the WAF is off there
        assert get(gateway, path + NL + xss) == 403, path + NL
    assert get(gateway, "/upload/x" + NL + xss) == 200  # under the prefix
    assert get(gateway, "/elsewhere" + xss) == 403


# --- item 10: raw versus normalised path ---------------------------------------------------------

AMBIGUOUS = ["/api/..;/admin", "/api;x=1/admin", "/api/%2e%2e/admin", "/api/%2E./admin", "/api/.%2e/admin",
             "/api%2fadmin", "/api%2Fadmin", "/api%5cadmin", "/api%5C..%5Cadmin", "/api\\..\\admin",
             "/api/../admin", "/api/./admin", "/api/..", "/api#/../admin", "/api/.", "/api/..?q=1", "/api/.?q"]
FINE = ["/api/x", "/api/a.b/c..d/.e", "/api/x?p=..;%2e%2F%5c", "/api/%41%7e", "/api/x..", "/api/...", "/api/.x/..y"]


def test_ambiguous_paths_are_refused_by_default(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, """
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: allow, namespace: default}
        spec:
          targetRefs: [{kind: Gateway, name: gw}]
          urlAllowlist: {paths: [{type: PathPrefix, value: /api}]}
        """)
    addr = gateway.address()
    for path in AMBIGUOUS:
        resp = raw(addr, http("GET", path + ("&" if "?" in path else "?") + "marker=amb", []))
        assert resp.status == 400, (path, resp.status, resp.body[:120])
        assert b'"pod"' not in resp.body
    entries = decision_log(gateway, "marker=amb", count=len(AMBIGUOUS) - 1)  # "#..." hides the marker
    assert {e["decision"] for e in entries} == {"ambiguous-path"}
    for path in FINE:
        resp = raw(addr, http("GET", path, []))
        assert resp.status == 200, (path, resp.status)
        assert resp.json["path"] == path


def test_ambiguous_paths_pass_raw_with_the_opt_out(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("raw-paths"))
    addr = gateway.address()
    for path in AMBIGUOUS:
        resp = raw(addr, http("GET", path, []))
        assert resp.status == 200, (path, resp.status)
        assert resp.json["path"] == path  # the raw request target, as before


# --- item 6: ReDoS -------------------------------------------------------------------------------


def test_nested_quantifier_regex_is_an_error_on_its_object_only(gateway: Gateway, backends: Backends) -> None:
    app = backends("app")
    good = """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: good, namespace: default}
        spec:
          parentRefs: [{name: gw}]
          hostnames: [good.test]
          rules: [{backendRefs: [{name: app, port: 80}]}]
        """
    gateway.write("gw.yaml", GW, app.manifests(), good)
    gateway.reconcile()
    gateway.write("bad.yaml", """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: bad, namespace: default}
        spec:
          parentRefs: [{name: gw}]
          hostnames: [bad.test]
          rules:
            - matches: [{path: {type: RegularExpression, value: "/x/(a+)+"}}]
              backendRefs: [{name: app, port: 80}]
        ---
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: bad-allowlist, namespace: default}
        spec:
          targetRefs: [{kind: Gateway, name: gw}]
          urlAllowlist: {paths: [{type: RegularExpression, value: "/(.*a){20}"}]}
        """)
    report = gateway.runner.reconcile()
    errors = [str(e) for e in report.errors]
    route_err = [e for e in errors if "bad" in e and "spec.rules[0].matches[0].path" in e]
    policy_err = [e for e in errors if "bad-allowlist" in e and "spec.urlAllowlist.paths[0]" in e]
    assert route_err and "nested" in route_err[0], errors
    assert policy_err and "nested" in policy_err[0], errors
    assert "(a+)+" not in rendered(gateway) and "{20}" not in rendered(gateway)
    assert get(gateway, "/x/aaaa", host="good.test") == 200  # the rest keeps serving
    assert get(gateway, "/x/aaaa", host="bad.test") == 404


# --- item 8: map keys ------------------------------------------------------------------------------


def test_listener_hostnames_that_are_map_keywords(gateway: Gateway, backends: Backends) -> None:
    ca = trustme.CA()
    names = ["include", "default", "hostnames", "volatile", "*.w.test"]
    app = backends("app")
    listeners = "".join(
        f"\n            - {{name: l{i}, protocol: HTTPS, port: 8443, hostname: \"{h}\","
        f" tls: {{certificateRefs: [{{name: c{i}}}]}}}}" for i, h in enumerate(names))
    secrets = [tls_secret(f"c{i}", ca, h) for i, h in enumerate(names)]
    gateway.write("gw.yaml", f"""
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {{name: gw, namespace: default}}
        spec:
          gatewayClassName: wardgate
          listeners:{listeners}
        """, *secrets, app.manifests(), """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: app, namespace: default}
        spec:
          parentRefs: [{name: gw}]
          rules: [{backendRefs: [{name: app, port: 80}]}]
        """)
    gateway.reconcile()
    addr = gateway.address()
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)

    def get_tls(sni: str, host: str) -> httpx.Response:
        with httpx.Client(verify=ctx) as client:  # one connection per TLS name
            return client.get(f"https://{addr}:8443/x", headers={"Host": host}, extensions={"sni_hostname": sni})

    for i, host in enumerate(names):
        sni = host.replace("*", "a")
        r = get_tls(sni, sni)
        assert r.status_code == 200, (host, r.status_code)
        assert r.json()["host"] == sni
        # The TLS name picks the listener: another listener's Host is misdirected (421).
        other = names[(i + 1) % len(names)].replace("*", "a")
        assert get_tls(sni, other).status_code == 421, (host, other)
