"""SecurityPolicy, RateLimitPolicy and ClientTrafficPolicy through a real nginx, using the exact
examples of docs/policies.md."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from conftest import GW, Backend, Gateway, request
from policy_helpers import accepted, ancestors, decision_log, example, http, raw, rendered, setup
from wardgate.translate.policies import security_txt_body

pytestmark = pytest.mark.timeout(120)

Backends = Callable[..., Backend]


def get(gateway: Gateway, path: str, host: str = "example.com", **kw: object) -> object:
    return request(f"http://{gateway.address()}:8080{path}", host=host, **kw)  # type: ignore[arg-type]


def test_precedence_route_and_rule_override_gateway_field_by_field(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("precedence"))
    # other.example.com: only the Gateway level applies.
    r = get(gateway, "/", host="other.example.com", method="POST", data=b"x")
    assert (r.status, r.headers["allow"], r.headers["x-frame-options"]) == (405, "GET, HEAD", "DENY")
    # app: the route's list replaces the Gateway's; the Gateway's response header still applies.
    r = get(gateway, "/page", method="POST", data=b"x")
    assert (r.status, r.headers["x-frame-options"]) == (200, "DENY")
    assert get(gateway, "/page", method="DELETE").status == 405
    # rule "admin" of app: its own list.
    r = get(gateway, "/admin", method="POST", data=b"x")
    assert (r.status, r.headers["allow"]) == (405, "GET")
    assert get(gateway, "/admin").status == 200
    statuses = {a["ancestorRef"]["name"]: accepted(a) for a in ancestors(gateway, "SecurityPolicy", "app-admin")}
    assert statuses["gw"]["status"] == "True"


def test_headers_to_backend_and_client(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("headers"))
    r = get(gateway, "/", headers={"X-Bot-Class": "human", "X-Edge": "client", "X-Debug": "1",
                                   "X-Echo-Set-Header": "X-Robots-Tag:all,X-Powered-By:php"})
    sent = r.json["headers"]
    assert sent["X-Bot-Class"] == ["unverified"]
    assert sent["X-Edge"] == ["client,wardgate"]
    assert "X-Debug" not in sent
    # `set` replaces the backend's copy instead of adding a second one.
    assert r.all("X-Robots-Tag") == ["noindex, nofollow"]
    assert r.all("X-Gateway") == ["public"]
    assert r.all("X-Powered-By") == []
    # Also on answers the gateway gives itself.
    missing = get(gateway, "/x", host="unknown.example.com")
    assert missing.status == 404 and missing.headers["x-robots-tag"] == "noindex, nofollow"


def test_response_headers_only_on_their_statuses(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("header-statuses"))
    own = {"X-Echo-Set-Header": "Cache-Control:no-store"}

    def headers(path: str) -> dict[str, list[str]]:
        r = get(gateway, path, headers=own)
        names = ("Cache-Control", "X-Only-Success", "X-Not-Found", "X-Always")
        return {"status": [str(r.status)], **{n: r.all(n) for n in names if r.all(n)}}

    # nginx's add_header list; set with -s replaces the backend's value only on its statuses.
    assert headers("/ok") == {"status": ["200"], "Cache-Control": ["public, max-age=600"],
                              "X-Only-Success": ["yes"], "X-Always": ["yes"]}
    assert headers("/status/301") == {"status": ["301"], "Cache-Control": ["public, max-age=600"],
                                      "X-Only-Success": ["yes"], "X-Always": ["yes"]}
    assert headers("/status/304") == {"status": ["304"], "Cache-Control": ["no-store"],
                                      "X-Only-Success": ["yes"], "X-Always": ["yes"]}
    # Another list (a map on $status), with a per-request value.
    found = headers("/status/404")
    request_id = found.pop("X-Not-Found")
    assert found == {"status": ["404"], "Cache-Control": ["no-store"], "X-Always": ["yes"]}
    assert len(request_id) == 1 and len(request_id[0]) == 32
    assert headers("/status/503") == {"status": ["503"], "Cache-Control": ["no-store"], "X-Always": ["yes"]}
    assert headers("/status/202") == {"status": ["202"], "Cache-Control": ["no-store"], "X-Always": ["yes"]}


def test_allowed_methods_405_with_allow(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("methods"))
    assert get(gateway, "/").status == 200
    assert get(gateway, "/", method="HEAD").status == 200
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        r = get(gateway, "/", method=method, data=b"" if method in ("POST", "PUT") else None)
        assert (r.status, r.headers.get("allow")) == (405, "GET, HEAD"), method
    assert get(gateway, "/", host="other.example.com", method="DELETE").status == 200  # other route


def test_allowed_methods_405_without_allow_when_asked(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("methods-no-allow-header"))
    assert get(gateway, "/form", method="POST", data=b"x").status == 200
    for method in ("PUT", "DELETE", "HEAD", "OPTIONS"):  # HEAD: only the methods listed
        r = get(gateway, "/form", method=method, data=b"" if method == "PUT" else None)
        assert (method, r.status, r.headers.get("allow")) == (method, 405, None)
    assert decision_log(gateway, "/form", count=5)[-1]["decision"] == "method"
    # A backend's own 405 keeps its own Allow (the default would replace it with the list).
    r = get(gateway, "/status/405", headers={"X-Echo-Set-Header": "Allow:GET"})
    assert (r.status, r.all("Allow")) == (405, ["GET"])
    # The default: the gateway's Allow replaces the backend's.
    setup(gateway, backends, example("methods"))
    r = get(gateway, "/status/405", headers={"X-Echo-Set-Header": "Allow:GET"})
    assert (r.status, r.all("Allow")) == (405, ["GET, HEAD"])


def test_url_allowlist(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("allowlist"))
    expect = {"/": 200, "/api": 200, "/api/": 200, "/api/v1/users?id=3": 200, "/apix": 403,
              "/static/app1.css": 200, "/static/app1.js": 200, "/static/app1.cssx": 403,
              "/static/APP.css": 403, "/index.html": 403, "/admin": 403, "/%61pi/x": 200}
    got = {path: get(gateway, path).status for path in expect}
    assert got == expect
    log = decision_log(gateway, "/index.html")
    assert log[0]["decision"] == "url-allowlist" and log[0]["route"] == "default/app#1"


def test_security_txt_on_every_host(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("security-txt"))
    for host in ("example.com", "other.example.com", "unknown.example.com"):
        r = get(gateway, "/.well-known/security.txt", host=host)
        assert r.status == 200, host
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.body.decode() == (
            "Contact: mailto:security@example.com\n"
            "Contact: https://example.com/security\n"
            "Expires: 2030-01-01T00:00:00Z\n"
            "Encryption: https://example.com/pgp-key.txt\n"
            "Acknowledgments: https://example.com/hall-of-fame\n"
            "Preferred-Languages: en, de\n"
            "Canonical: https://example.com/.well-known/security.txt\n"
            "Policy: https://example.com/disclosure\n"
            "Hiring: https://example.com/jobs\n")
    assert get(gateway, "/.well-known/other.txt").status == 200  # the route's backend
    assert accepted(ancestors(gateway, "SecurityPolicy", "security-txt")[0])["reason"] == "Accepted"


def test_security_txt_expiry_rules(gateway: Gateway, backends: Backends) -> None:
    soon = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = example("security-txt").replace("2030-01-01T00:00:00Z", soon)
    setup(gateway, backends, policy)
    assert get(gateway, "/.well-known/security.txt").status == 200
    cond = accepted(ancestors(gateway, "SecurityPolicy", "security-txt")[0])
    assert cond["status"] == "True" and "days away" in cond["message"] and "renew" in cond["message"]
    # Expired: refused with the field named; the last accepted version keeps serving.
    gateway.write("policies.yaml", "---\n" + policy.replace(soon, "2020-01-01T00:00:00Z"))
    report = gateway.runner.reconcile()
    assert not report.ok
    assert any("spec.securityTxt.expires" in e and "in the past" in e and "policies.yaml" in e
               for e in report.errors), report.errors
    cond = accepted(ancestors(gateway, "SecurityPolicy", "security-txt")[0])
    assert (cond["status"], cond["reason"]) == ("False", "Invalid")
    assert "last accepted version stays in force" in cond["message"]
    assert soon.encode() in get(gateway, "/.well-known/security.txt").body


def test_direct_responses_inline_and_from_configmap(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("direct-responses"))
    r = get(gateway, "/robots.txt")
    assert (r.status, r.headers["content-type"], r.body) == (200, "text/plain", b"User-agent: *\nDisallow: /\n")
    r = get(gateway, "/gone")
    assert (r.status, r.headers["content-type"], r.json) == (410, "application/json", {"error": "this page is gone"})
    r = get(gateway, "/legal", host="other.example.com")
    assert (r.status, r.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert r.body == b"<html><body><h1>Legal</h1><p>Costs $0.</p></body></html>\n"
    assert get(gateway, "/robots.txt/x").status == 200  # exact paths only: this one is routed


def test_direct_response_bodies_keep_every_byte(gateway: Gateway, backends: Backends) -> None:
    # 64 KiB-ish with everything nginx's parser treats specially; longer than one config token.
    body = "".join(f'line {i}: "q" \'s\' $x ${{y}} \\n \\ {{b}}; #h\ttab é\n' for i in range(900))
    policy = f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: big, namespace: default}}
        data:
          body: {json.dumps(body)}
        ---
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {{name: big, namespace: default}}
        spec:
          targetRefs: [{{kind: Gateway, name: gw}}]
          directResponses:
            - {{path: /big, bodyFrom: {{configMapRef: {{name: big, key: body}}}}}}
            - {{path: /inline, body: {json.dumps(body[:3000])}}}
            - {{path: /missing, bodyFrom: {{configMapRef: {{name: nope, key: body}}}}}}
        """
    setup(gateway, backends, policy)
    assert get(gateway, "/big").body.decode() == body
    assert get(gateway, "/inline").body.decode() == body[:3000]
    assert get(gateway, "/missing").status == 500
    status = ancestors(gateway, "SecurityPolicy", "big")[0]
    resolved = next(c for c in status["conditions"] if c["type"] == "ResolvedRefs")
    assert resolved["status"] == "False" and "ConfigMap default/nope does not exist" in resolved["message"]


def test_duplicate_headers(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("duplicate-headers"))
    addr = gateway.address()

    def send(*headers: tuple[str, str]) -> tuple[int, dict[str, list[str]]]:
        r = raw(addr, http("GET", "/dup", list(headers)))
        return r.status, (r.json["headers"] if r.status == 200 else {})

    status, seen = send(("X-Foo", "one"), ("X-Foo", "two"))
    assert (status, seen["X-Foo"]) == (200, ["one"])  # default KeepFirst
    status, seen = send(("X-Tenant", "a"), ("x-tenant", "b"), ("X-Tenant", "c"))
    assert (status, seen["X-Tenant"]) == (200, ["c"])  # KeepLast, names case-insensitive
    assert send(("X-Forwarded-Host", "a"), ("X-Forwarded-Host", "b"))[0] == 400
    assert send(("Authorization", "Bearer a"), ("Authorization", "Bearer b"))[0] == 400  # singleton
    assert send(("Content-Type", "a/b"), ("Content-Type", "c/d"))[0] == 400
    status, seen = send(("Cookie", "a=1"), ("Cookie", "b=2"))
    assert status == 200 and seen["Cookie"] == ["a=1", "b=2"]  # only when listed
    status, seen = send(("X-Single", "1"))
    assert (status, seen["X-Single"]) == (200, ["1"])
    log = decision_log(gateway, "/dup", count=7)
    # nginx refuses a second Authorization line itself, before any policy runs.
    assert [e["decision"] for e in log if e["status"] == 400] == [
        "duplicate-header", "invalid-request", "duplicate-header"]


def test_rate_limit_per_minute_with_burst_and_headers(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("rate-limit"))
    results = [get(gateway, f"/rl?n={i}") for i in range(10)]
    statuses = [r.status for r in results]
    # 60/minute with burst 4: 5 at once, then one per second.
    assert statuses == [200] * 5 + [429] * 5, statuses
    assert [r.headers["ratelimit-remaining"] for r in results[:5]] == ["4", "3", "2", "1", "0"]
    assert all(r.headers["ratelimit-limit"] == "60" for r in results)
    rejected = results[5]
    assert rejected.headers["retry-after"] == "1" and rejected.headers["ratelimit-remaining"] == "0"
    assert get(gateway, "/", host="other.example.com").status == 200  # the other route is not limited
    time.sleep(1.1)
    assert get(gateway, "/rl?after").status == 200
    assert get(gateway, "/rl?again").status == 429
    assert {e["decision"] for e in decision_log(gateway, "/rl?n=9")} == {"rate-limit"}


def test_rate_limit_by_header_with_exempt_cidrs(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("rate-limit-by-header"), example("client-ip-hops"))

    def go(key: str | None, xff: str = "192.0.2.1") -> int:
        headers = {"X-Forwarded-For": xff} | ({"X-Api-Key": key} if key else {})
        return int(get(gateway, "/", headers=headers).status)

    # 2/second, no burst: one at once per key.
    assert [go("a"), go("a"), go("b"), go("b")] == [200, 503, 200, 503]
    r = get(gateway, "/", headers={"X-Api-Key": "a", "X-Forwarded-For": "192.0.2.1"})
    assert r.status == 503 and r.headers["retry-after"] == "1"
    # Without the header: counted per client IP (from X-Forwarded-For here).
    assert [go(None, "192.0.2.7"), go(None, "192.0.2.7"), go(None, "192.0.2.8")] == [200, 503, 200]
    # Exempt clients are never limited.
    assert [go("a", "10.99.3.4") for _ in range(5)] == [200] * 5
    assert {e["decision"] for e in decision_log(gateway, "/", count=13) if e["status"] == 503} == {"rate-limit"}
    # A per-second limit without RateLimit headers is nginx's own limit_req, no Lua.
    conf = rendered(gateway)
    assert "limit_req zone=" in conf and "rewrite_by_lua" not in conf


def test_native_rate_limit_leaves_backend_answers_alone(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, """\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: RateLimitPolicy
        metadata: {name: rps, namespace: default}
        spec:
          targetRefs: [{kind: HTTPRoute, name: app}]
          requests: 1
          unit: Second
          status: 429
        """)
    first = get(gateway, "/status/429")  # the backend's own 429: passed on as it is
    assert first.status == 429 and "retry-after" not in first.headers
    refused = get(gateway, "/status/429")
    assert refused.status == 429 and refused.headers["retry-after"] == "1"
    log = decision_log(gateway, "/status/429", count=2)
    assert [(e["decision"], e["upstream_status"]) for e in log] == [("allow", "429"), ("rate-limit", "")]


def test_rate_limit_budget_shared_with_a_waf_route_is_one_budget(gateway: Gateway, backends: Backends) -> None:
    """A Gateway-wide limit over a route with the WAF and one without: one counter (the Lua
    limiter for both, since ModSecurity would run before nginx's limit_req)."""
    setup(gateway, backends, """\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: RateLimitPolicy
        metadata: {name: gw-wide, namespace: default}
        spec:
          targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
          requests: 1
          unit: Second
          burst: 1
        ---
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: waf-other, namespace: default}
        spec:
          targetRefs: [{kind: HTTPRoute, name: other}]
          waf: {mode: Block}
        """)
    statuses = [get(gateway, "/", host=host).status
                for host in ("example.com", "other.example.com", "example.com")]
    assert statuses == [200, 200, 429]
    conf = rendered(gateway)
    assert "limit_req zone=" not in conf and "rewrite_by_lua" in conf


def test_rate_limit_per_route_per_hour(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("rate-limit-per-route"))
    first = raw(gateway.address(), http("GET", "/a", []), source="127.0.0.1")
    second = raw(gateway.address(), http("GET", "/b", []), source="127.0.0.2")  # another client, same budget
    assert (first.status, second.status) == (200, 429)
    assert 1100 <= int(second.header("Retry-After")[0]) <= 1200  # 3 per hour: one every 20 minutes


def test_ip_access_by_connection_address(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("ip-access"))
    addr = gateway.address()
    assert raw(addr, http("GET", "/", []), source="127.0.0.1").status == 200
    denied = raw(addr, http("GET", "/deny", []), source="127.66.0.5")
    assert denied.status == 403
    # Denied before anything else answers, direct responses included.
    assert raw(addr, http("DELETE", "/.well-known/security.txt", []), source="127.66.0.5").status == 403
    entry = decision_log(gateway, "/deny")[0]
    assert (entry["decision"], entry["client_ip"]) == ("ip-access", "127.66.0.5")


def test_ip_access_with_x_forwarded_for_hops(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("ip-access"), example("client-ip-hops"))

    def via(xff: str) -> int:
        return int(get(gateway, "/", headers={"X-Forwarded-For": xff}).status)

    assert via("10.1.2.3") == 200
    assert via("192.0.2.1") == 403  # not in the allow list
    assert via("127.66.1.1") == 403  # denied subnet of an allowed range
    assert via("10.1.2.3, 192.0.2.1") == 403  # one trusted hop: the last entry is the client
    assert via("192.0.2.1, 10.1.2.3") == 200  # the left entries are the client's to invent
    assert via("garbage") == 200  # unparsable: the connection address (127.x) is used


def test_client_ip_trusted_cidrs(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("client-ip-cidrs"), example("ip-access"))
    assert get(gateway, "/", headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.5"}).status == 403
    assert get(gateway, "/", headers={"X-Forwarded-For": "10.0.0.9, 127.0.0.5"}).status == 200
    get(gateway, "/cidrs", headers={"X-Forwarded-For": "10.0.0.9, 127.0.0.5"})
    assert decision_log(gateway, "/cidrs")[0]["client_ip"] == "10.0.0.9"


def test_client_ip_proxy_protocol(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("client-ip-proxy-protocol"))
    addr = gateway.address()
    proxied = b"PROXY TCP4 198.51.100.7 127.0.0.1 5555 8080\r\n" + http("GET", "/pp", [])
    assert raw(addr, proxied).status == 200
    assert decision_log(gateway, "/pp")[0]["client_ip"] == "198.51.100.7"
    assert raw(addr, http("GET", "/no-header", [])).status in (0, 400)  # PROXY header required


def test_request_limits(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("request-limits"))
    addr = gateway.address()
    assert raw(addr, http("POST", "/", [], b"x" * 1024)).status == 200
    assert raw(addr, http("POST", "/", [], b"x" * 1025)).status == 413
    assert raw(addr, http("GET", "/" + "a" * 255, [])).status == 200
    assert raw(addr, http("GET", "/" + "a" * 256, [])).status == 414
    assert raw(addr, http("GET", "/h", [("X-Big", "v" * 1500)])).status == 200
    assert raw(addr, http("GET", "/h", [("X-Big", "v" * 1000), ("X-Big2", "v" * 1100)])).status == 431
    decisions = {e["status"]: e["decision"] for e in decision_log(gateway, "/", count=6)}
    assert decisions[413] == decisions[414] == decisions[431] == "request-limits"


def test_invalid_policy_keeps_last_good_and_says_why(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("methods"))
    assert get(gateway, "/", method="DELETE").status == 405
    bad_regex = example("allowlist").replace("/static/[a-z0-9]+", "/static/[a-z")
    gateway.write("policies.yaml", "---\n" + example("methods").replace("[GET, HEAD]", "[GET, HEAD, FETCH]"),
                  "---\n" + bad_regex)
    report = gateway.runner.reconcile()
    assert not report.ok
    errors = "\n".join(report.errors)
    assert "policies.yaml" in errors and "SecurityPolicy default/read-only" in errors
    assert "spec.allowedMethods[2]" in errors
    assert "spec.urlAllowlist.paths[2]" in errors and "missing terminating ]" in errors
    # The last good version of read-only keeps applying; the broken new one is not applied.
    assert get(gateway, "/", method="DELETE").status == 405
    assert get(gateway, "/index.html").status == 200
    for name in ("read-only", "allowlist"):
        cond = accepted(ancestors(gateway, "SecurityPolicy", name)[0])
        assert (cond["status"], cond["reason"]) == ("False", "Invalid"), name
    bad_cidr = example("ip-access").replace("10.0.0.0/8", "10.0.0.1/8")
    gateway.write("policies.yaml", "---\n" + bad_cidr)
    report = gateway.runner.reconcile()
    assert any("spec.ipAccess.allow[1]" in e and "host bits set" in e for e in report.errors), report.errors


def test_target_not_found_and_conflicts(gateway: Gateway, backends: Backends) -> None:
    older = example("methods").replace("metadata: {name: read-only, namespace: default}",
                                       "metadata: {name: older, namespace: default, "
                                       "creationTimestamp: '2026-01-01T00:00:00Z'}")
    newer = example("methods").replace("[GET, HEAD]", "[GET]").replace(
        "metadata: {name: read-only, namespace: default}",
        "metadata: {name: newer, namespace: default, creationTimestamp: '2026-02-01T00:00:00Z'}")
    missing = example("methods").replace("name: app}", "name: nope}").replace("read-only", "lost")
    no_rule = example("precedence").split("---")[2].replace("sectionName: admin", "sectionName: nope")
    setup(gateway, backends, newer, older, missing, no_rule)
    assert get(gateway, "/", method="HEAD").status == 200  # the older policy's list applies
    cond = accepted(ancestors(gateway, "SecurityPolicy", "newer")[0])
    assert (cond["status"], cond["reason"]) == ("False", "Conflicted") and "older" in cond["message"]
    cond = accepted(ancestors(gateway, "SecurityPolicy", "lost")[0])
    assert (cond["status"], cond["reason"]) == ("False", "TargetNotFound")
    assert ancestors(gateway, "SecurityPolicy", "lost")[0]["ancestorRef"]["name"] == "nope"
    cond = accepted(ancestors(gateway, "SecurityPolicy", "app-admin")[0])
    assert cond["reason"] == "TargetNotFound" and "no rule named 'nope'" in cond["message"]


def test_client_traffic_policy_only_targets_gateways(gateway: Gateway, backends: Backends) -> None:
    wrong = example("client-ip-hops").replace("kind: Gateway, name: gw", "kind: HTTPRoute, name: app")
    setup(gateway, backends, wrong)
    cond = accepted(ancestors(gateway, "ClientTrafficPolicy", "behind-one-lb")[0])
    assert (cond["status"], cond["reason"]) == ("False", "Invalid")


def test_security_txt_body_format() -> None:
    from wardgate.model.policies import SecurityTxt

    txt = SecurityTxt.model_validate({"contact": ["tel:+1-201-555-0123"], "expires": "2031-05-06T07:08:09+02:00"})
    assert security_txt_body(txt) == "Contact: tel:+1-201-555-0123\nExpires: 2031-05-06T05:08:09Z\n"


def test_gateway_policy_covers_hosts_no_listener_accepts(gateway: Gateway, backends: Backends) -> None:
    only_example = GW.replace("- {name: http, protocol: HTTP, port: 8080}",
                              "- {name: http, protocol: HTTP, port: 8080, hostname: example.com}")
    app = backends("app2")
    gateway.write("gw.yaml", only_example + app.manifests())
    combined = example("headers") + "  ipAccess: {deny: [127.66.0.0/16]}\n"
    gateway.write("policies.yaml", "---\n" + combined)
    gateway.reconcile()
    r = raw(gateway.address(), http("GET", "/", [], host="unknown.example"), source="127.0.0.1")
    assert r.status == 404 and r.header("X-Robots-Tag") == ["noindex, nofollow"]
    assert raw(gateway.address(), http("GET", "/", [], host="unknown.example"), source="127.66.0.1").status == 403


def test_security_txt_expiring_while_serving_turns_invalid_and_keeps_serving(
        gateway: Gateway, backends: Backends) -> None:
    """Validity that depends on time is re-checked by the periodic resync, without a file change."""
    import threading

    expires = (datetime.now(UTC) + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    setup(gateway, backends, example("security-txt").replace("2030-01-01T00:00:00Z", expires))
    stop = threading.Event()
    serving = threading.Thread(target=gateway.runner.serve, args=(stop,),
                               kwargs={"admin_port": None, "poll_s": 0.2, "resync_s": 0.5})
    serving.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            cond = accepted(ancestors(gateway, "SecurityPolicy", "security-txt")[0])
            if cond["reason"] == "Invalid":
                break
            time.sleep(0.3)
        assert (cond["status"], cond["reason"]) == ("False", "Invalid") and "in the past" in cond["message"]
        assert get(gateway, "/.well-known/security.txt").status == 200  # the last accepted version
    finally:
        stop.set()
        serving.join(10)


def test_allowlist_regex_is_kept_verbatim_and_prefixes_normalised(gateway: Gateway, backends: Backends) -> None:
    policy = example("allowlist").replace("value: /api}", "value: /api/}").replace(
        '"/static/[a-z0-9]+\\\\.(css|js)"', '"/dir/"')
    setup(gateway, backends, policy)
    # A regex is the user's exact pattern (a trailing slash matters); a PathPrefix's does not.
    assert {p: get(gateway, p).status for p in ("/dir/", "/dir", "/api", "/api/x")} == {
        "/dir/": 200, "/dir": 403, "/api": 200, "/api/x": 200}
