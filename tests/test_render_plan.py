"""Render as plan + emit: what hoisting shared checks must keep, through real nginx, and the
memoized per-server output."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import GATEWAY_CLASS, GW, Backend, Gateway, request
from policy_helpers import decision_log, example, setup
from test_golden import APP_BACKEND, CASES
from wardgate.model import parse
from wardgate.render import nginx
from wardgate.render.nginx import RenderOptions, render
from wardgate.sources.files import load_paths
from wardgate.translate import Options, translate

pytestmark = pytest.mark.timeout(120)

# One route, two rules on "/": a header match (served by a jump to an internal location) and a
# catch-all served inline, under one Lua rate limit (rateLimitHeaders needs the Lua limiter).
JUMP_ROUTE = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}, headers: [{name: X-Variant, value: b}]}]
      backendRefs: [{name: app, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: app, port: 80}]
---
apiVersion: policy.wardgate.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: limit, namespace: default}
spec:
  targetRefs: [{kind: HTTPRoute, name: app}]
  requests: 60
  unit: Minute
  burst: 9
  rateLimitHeaders: true
"""


def test_lua_checks_count_a_jumping_request_once(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    app = backends("app")
    gateway.write("gw.yaml", GW + app.manifests() + JUMP_ROUTE)
    gateway.reconcile()
    url = f"http://{gateway.address()}:8080/"
    remaining = []
    for headers in ({"X-Variant": "b"}, {"X-Variant": "b"}, {}, {"X-Variant": "b"}):
        r = request(url, host="example.com", headers=headers)
        assert r.status == 200
        remaining.append(int(r.headers["ratelimit-remaining"]))
    # burst 9: ten at once, one fewer per request, whichever rule served it.
    assert remaining == [9, 8, 7, 6]


def _gateways(source: Path | str, tmp: Path) -> list[object]:
    if isinstance(source, str):
        path = tmp / "in.yaml"
        path.write_text(source)
        source = path
    return list(translate(parse(load_paths([source])), Options(now="2026-01-01T00:00:00Z")).gateways)


def _cold(gw: object) -> dict[str, str]:
    nginx._MEMO.clear()
    return render(gw, RenderOptions(listen_host="127.0.0.1"))  # type: ignore[arg-type]


@pytest.mark.parametrize("case", ["route-filters", "tls", "policy-precedence", "policy-security-txt",
                                  "example-three-gateways"])
def test_memoized_render_equals_a_fresh_one(case: str, tmp_path: Path) -> None:
    for gw in _gateways(CASES[case], tmp_path):
        cold = _cold(gw)
        assert render(gw, RenderOptions(listen_host="127.0.0.1")) == cold  # type: ignore[arg-type]
        # Equal but new objects (a reconcile that translated everything again) hit the memo too.
        copy = dataclasses.replace(gw, ports=tuple(dataclasses.replace(p) for p in gw.ports))  # type: ignore
        assert render(copy, RenderOptions(listen_host="127.0.0.1")) == cold
        # One virtual host changed: the memoized render is the fresh render of the new IR.
        port = gw.ports[0]  # type: ignore[attr-defined]
        if port.vhosts:
            edited = dataclasses.replace(port.vhosts[0], hsts="max-age=5")
            ports = (dataclasses.replace(port, vhosts=(edited, *port.vhosts[1:])), *gw.ports[1:])  # type: ignore
            changed = dataclasses.replace(gw, ports=ports)  # type: ignore[type-var]
            warm = render(changed, RenderOptions(listen_host="127.0.0.1"))
            assert warm == _cold(changed)


@pytest.mark.parametrize("limits", ["{maxBodySize: 1Mi}", "{maxBodySize: 1Mi, maxURLLength: 2048}"])
def test_gateway_wide_policy_is_written_once(tmp_path: Path, limits: str) -> None:
    """The seed policy on a whole Gateway: its headers, body limit, duplicate-header check (the
    module's, or in Lua with the URL limit) are not repeated per location, and its security.txt
    body is written once."""
    routes = "".join(f"""\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r{i}, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [r{i}.example.com]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /p}}}}]
      backendRefs: [{{name: app, port: 80}}]
""" for i in range(5))
    policy = """\
---
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {name: seed, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  requestHeaders: {set: [{name: X-Bot-Class, value: unverified}]}
  responseHeaders: {set: [{name: X-Robots-Tag, value: noindex}]}
  allowedMethods: [GET, HEAD]
  securityTxt: {contact: ["mailto:security@example.com"], expires: "2030-01-01T00:00:00Z"}
  duplicateHeaders: {default: KeepFirst}
  requestLimits: LIMITS
"""
    (gw,) = _gateways(GATEWAY_CLASS + "---\n" + GW + APP_BACKEND + routes + policy.replace("LIMITS", limits),
                      tmp_path)
    conf = _cold(gw)["nginx.conf"]
    lua = "maxURLLength" in limits
    for once in ('"X-Robots-Tag: noindex"', 'proxy_set_header "X-Bot-Class" "unverified"', "client_max_body_size",
                 "rewrite_by_lua_block {" if lua else "wardgate_duplicate_headers", "mailto:security@example.com"):
        assert conf.count(once) == 1, once
    assert ("ngx_http_lua_module" in conf) == lua


def test_decision_log_names_direct_responses(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    """Direct-response locations set no decision; the log still tells them from proxied answers
    and from the checks that refused a request on the same path."""
    setup(gateway, backends, example("security-txt"), example("methods"))
    base = f"http://{gateway.address()}:8080"
    assert request(f"{base}/.well-known/security.txt?m=direct", host="example.com").status == 200
    assert request(f"{base}/.well-known/security.txt?m=refused", host="example.com", method="DELETE").status == 405
    assert request(f"{base}/page?m=proxied", host="example.com").status == 200
    decided = {e["uri"].split("m=")[1]: e["decision"] for e in decision_log(gateway, "?m=", count=3)}
    assert decided == {"direct": "direct-response", "refused": "method", "proxied": "allow"}
