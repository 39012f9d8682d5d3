"""How policies combine (docs/policies.md "Attaching a policy"), through a real nginx: header
operations merge by name across Gateway / listener / route / rule, a route policy applies only on
the parents its parentRefs name, and several SecurityPolicies on one target add up by field."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from conftest import GW_HEAD, Backend, Gateway, request
from policy_helpers import accepted, ancestors, example, setup
from wardgate.errors import InputError
from wardgate.model import parse
from wardgate.model.gatewayapi import HTTPHeaderFilter
from wardgate.model.policies import (
    RateLimitPolicySpec,
    SecurityPolicySpec,
    combine_same_target,
    merge_header_filters,
    merge_specs,
)
from wardgate.sources.files import RawObject

pytestmark = pytest.mark.timeout(120)

Backends = Callable[..., Backend]


def get(gateway: Gateway, path: str, host: str = "example.com", key: str = "default/gw",
        **kw: object) -> object:
    return request(f"http://{gateway.address(key)}:8080{path}", host=host, **kw)  # type: ignore[arg-type]


def with_age(policy: str, name: str, when: str) -> str:
    return policy.replace(f"metadata: {{name: {name}, namespace: default}}",
                          f"metadata: {{name: {name}, namespace: default, creationTimestamp: '{when}'}}")


# --- header operations merge by name ----------------------------------------------------------


def test_headers_merge_by_name_across_gateway_listener_route_and_rule(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("headers-merge"))
    sent = {"X-Debug": "1", "X-Internal": "secret", "X-Env": "client",
            "X-Echo-Set-Header": "X-Powered-By:php,Server-Timing:db;dur=3,X-Frame-Options:SAMEORIGIN"}

    # Another route: the Gateway's and the listener's operations, the listener winning for X-Level
    # only. The Gateway's X-Frame-Options stays (the listener's `set` used to replace its whole list).
    r = get(gateway, "/", host="other.example.com", headers=sent)
    seen = r.json["headers"]
    assert seen["X-Env"] == ["prod"] and seen["X-Level"] == ["gateway"] and seen["X-Listener"] == ["http"]
    assert "X-Debug" not in seen and "X-Internal" not in seen
    assert r.all("X-Frame-Options") == ["DENY"] and r.all("X-Level") == ["listener"]
    assert r.all("X-Powered-By") == [] and r.all("Server-Timing") == []

    # Route app: its set of X-Debug undoes the Gateway's remove; its remove of X-Frame-Options
    # undoes the Gateway's set; the Gateway's other removals still apply.
    r = get(gateway, "/page", headers=sent)
    seen = r.json["headers"]
    assert seen["X-Debug"] == ["on"] and seen["X-Env"] == ["prod"] and seen["X-Listener"] == ["http"]
    assert "X-Internal" not in seen
    assert r.all("X-Frame-Options") == [] and r.all("X-Level") == ["route"]
    assert r.all("Server-Timing") == ["app"] and r.all("X-Powered-By") == []

    # Rule admin of app: all four levels.
    r = get(gateway, "/admin", headers=sent)
    seen = r.json["headers"]
    assert "X-Env" not in seen and "X-Internal" not in seen
    assert seen["X-Debug"] == ["on"] and seen["X-Level"] == ["gateway"] and seen["X-Listener"] == ["http"]
    assert r.all("X-Level") == ["rule"] and r.all("Cache-Control") == ["no-store"]
    assert r.all("Server-Timing") == ["app"] and r.all("X-Frame-Options") == [] and r.all("X-Powered-By") == []


def test_header_filter_merge_rules() -> None:
    def hf(**kw: object) -> HTTPHeaderFilter:
        return HTTPHeaderFilter.model_validate(kw)

    base = hf(set=[{"name": "X-A", "value": "1"}, {"name": "X-B", "value": "1"}],
              add=[{"name": "X-C", "value": "1"}], remove=["X-D", "X-E"])
    over = hf(set=[{"name": "x-d", "value": "2"}], add=[{"name": "X-C", "value": "2"}], remove=["x-a", "X-F"])
    got = merge_header_filters(base, over)
    assert [(h.name, h.value) for h in got.set] == [("X-B", "1"), ("x-d", "2")]
    assert [(h.name, h.value) for h in got.add] == [("X-C", "2")]
    assert got.remove == ["X-E", "x-a", "X-F"]
    # Through merge_specs, only when the more specific level sets the filter at all.
    spec = {"targetRefs": [{"kind": "Gateway", "name": "gw"}]}
    gw = SecurityPolicySpec.model_validate({**spec, "responseHeaders": base.model_dump(by_alias=True)})
    route = SecurityPolicySpec.model_validate({**spec, "allowedMethods": ["GET"]})
    assert merge_specs(gw, route).response_headers == base


def test_rate_limit_key_is_replaced_whole() -> None:
    def rl(**kw: object) -> RateLimitPolicySpec:
        return RateLimitPolicySpec.model_validate({"targetRefs": [{"kind": "Gateway", "name": "gw"}],
                                                   "requests": 1, "unit": "Second", **kw})

    merged = merge_specs(rl(key={"type": "Header", "header": "X-Api-Key"}, burst=3), rl(key={"type": "Route"}))
    assert (merged.key.type, merged.key.header, merged.burst) == ("Route", None, 3)


def test_same_target_fields_come_whole_from_the_oldest_setter() -> None:
    def sp(**kw: object) -> SecurityPolicySpec:
        return SecurityPolicySpec.model_validate({"targetRefs": [{"kind": "Gateway", "name": "gw"}], **kw})

    older = sp(waf={"mode": "DetectOnly"}, allowedMethods=["GET"])
    newer = sp(waf={"paranoiaLevel": 3}, ipAccess={"deny": ["10.0.0.0/8"]})
    combined = combine_same_target([older, newer])
    assert combined.waf.mode == "DetectOnly" and combined.waf.paranoia_level == 1  # not merged key by key
    assert combined.ip_access.deny == ["10.0.0.0/8"] and combined.allowed_methods == ["GET"]
    # So that a more specific level's merge sees every field as set here.
    assert combined.model_fields_set == {"target_refs", "waf", "allowed_methods", "ip_access"}


# --- parentRefs: a route policy on some of its Gateways -------------------------------------------

TWO_GATEWAYS = "\n---\n".join(
    GW_HEAD.replace("name: gw,", f"name: {name},") + "    - {name: http, protocol: HTTP, port: 8080}\n"
    for name in ("public", "internal"))

SHOP = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: default}
spec:
  parentRefs: [{name: public}, {name: internal}]
  hostnames: [shop.example.com]
  rules:
    - name: login
      matches: [{path: {type: PathPrefix, value: /login}}]
      backendRefs: [{name: app, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: app, port: 80}]
"""


def two_gateways(gateway: Gateway, backends: Backends, *policies: str, ok: bool = True) -> None:
    app = backends("app")
    gateway.write("gw.yaml", TWO_GATEWAYS, app.manifests(), SHOP)
    gateway.write("policies.yaml", *("---\n" + p for p in policies))
    if ok:
        gateway.reconcile()
    else:
        gateway.runner.reconcile()


def test_route_policy_scoped_to_one_parent_does_not_apply_on_the_other(gateway: Gateway, backends: Backends) -> None:
    two_gateways(gateway, backends, example("parent-refs"))

    def shop(gw: str, path: str, method: str = "GET") -> int:
        return int(get(gateway, path, host="shop.example.com", key=f"default/{gw}", method=method).status)

    # Public: the method list and the login limit (1 per minute, no burst) apply.
    assert shop("public", "/cart", "DELETE") == 405
    assert shop("public", "/cart", "PUT") == 405
    assert [shop("public", "/login") for _ in range(3)] == [200, 429, 429]
    # Internal: the same route, none of it.
    assert shop("internal", "/cart", "DELETE") == 200
    assert shop("internal", "/cart", "PUT") == 200
    assert [shop("internal", "/login") for _ in range(3)] == [200, 200, 200]

    # Status: one ancestor each, the parent the policy applies on; none for "internal".
    sec = ancestors(gateway, "SecurityPolicy", "shop-public")
    assert [(a["ancestorRef"]["name"], a["ancestorRef"]["sectionName"], accepted(a)["status"]) for a in sec] == [
        ("public", "http", "True")]
    rl = ancestors(gateway, "RateLimitPolicy", "shop-login-public")
    assert [(a["ancestorRef"]["name"], a["ancestorRef"]["sectionName"], accepted(a)["status"]) for a in rl] == [
        ("public", "http", "True")]


def test_parent_refs_that_are_not_parents_are_reported(gateway: Gateway, backends: Backends) -> None:
    policy = example("parent-refs").split("---")[0].replace(
        "parentRefs: [{name: public, namespace: default, sectionName: http}]",
        "parentRefs: [{name: internal, sectionName: https}, {name: nope}]")
    two_gateways(gateway, backends, policy, ok=False)
    entries = {a["ancestorRef"]["name"]: accepted(a) for a in ancestors(gateway, "SecurityPolicy", "shop-public")}
    assert set(entries) == {"internal", "nope"}
    for name, where in (("internal", "Gateway default/internal listener https"), ("nope", "Gateway default/nope")):
        assert (entries[name]["status"], entries[name]["reason"]) == ("False", "TargetNotFound")
        assert entries[name]["message"] == f"spec.parentRefs: HTTPRoute default/shop is not attached to {where}"
    # It applies nowhere.
    assert get(gateway, "/", host="shop.example.com", key="default/public", method="DELETE").status == 200
    assert get(gateway, "/", host="shop.example.com", key="default/internal", method="DELETE").status == 200


def test_parent_refs_only_with_route_targets() -> None:
    def problems(doc: dict[str, object]) -> list[str]:
        with pytest.raises(InputError) as err:
            parse([RawObject(doc, None)])  # type: ignore[arg-type]
        return [f"{p.field}: {p.message}" for p in err.value.problems]

    doc = yaml.safe_load(example("parent-refs").split("---")[0])
    doc["spec"]["targetRefs"].append({"kind": "Gateway", "name": "public"})
    found = problems(doc)
    assert any(p.startswith("spec") and "every targetRef must then be an HTTPRoute" in p for p in found), found
    doc["spec"]["targetRefs"].pop()
    doc["spec"]["parentRefs"] = [{"name": "public"}, {"name": "public"}]
    found = problems(doc)
    assert any(p.startswith("spec") and "lists public twice" in p for p in found), found
    doc["spec"]["parentRefs"] = [{"name": "Public!"}]
    found = problems(doc)
    assert any(p.startswith("spec.parentRefs[0].name") for p in found), found


def test_rate_limits_scoped_to_different_parents_do_not_conflict(gateway: Gateway, backends: Backends) -> None:
    public = example("parent-refs").split("---")[1]
    internal = public.replace("shop-login-public", "shop-login-internal").replace(
        "parentRefs: [{name: public, namespace: default, sectionName: http}]", "parentRefs: [{name: internal}]"
    ) + "  burst: 1\n"
    two_gateways(gateway, backends, public, internal)
    for name, gw in (("shop-login-public", "public"), ("shop-login-internal", "internal")):
        entries = ancestors(gateway, "RateLimitPolicy", name)
        assert [(a["ancestorRef"]["name"], accepted(a)["reason"]) for a in entries] == [(gw, "Accepted")], name

    def login(gw: str) -> int:
        return int(get(gateway, "/login", host="shop.example.com", key=f"default/{gw}").status)

    assert [login("public") for _ in range(2)] == [200, 429]
    assert [login("internal") for _ in range(2)] == [200, 200]  # its own limit: burst 1
    assert login("internal") == 429


# --- several policies on one target -------------------------------------------------------------


def test_two_security_policies_with_disjoint_fields_both_apply(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("by-concern"))
    txt = get(gateway, "/.well-known/security.txt")
    assert txt.status == 200 and b"Contact: mailto:security@example.com" in txt.body
    assert txt.headers["x-frame-options"] == "DENY"
    r = get(gateway, "/page")
    assert r.status == 200 and r.headers["x-frame-options"] == "DENY"
    assert get(gateway, "/page?q=<script>alert(1)</script>").status == 403  # the security team's WAF
    for name in ("security-team", "app-team"):
        entry = ancestors(gateway, "SecurityPolicy", name)[0]
        assert [(c["type"], c["status"], c["reason"]) for c in entry["conditions"]] == [
            ("Accepted", "True", "Accepted")], name


def test_same_field_conflict_names_the_field(gateway: Gateway, backends: Backends) -> None:
    security, app = example("by-concern").split("---")
    older = with_age(security, "security-team", "2026-01-01T00:00:00Z")
    # The app team also sets securityTxt (and its own headers): the older security.txt wins.
    newer = with_age(app, "app-team", "2026-02-01T00:00:00Z") + """\
  securityTxt:
    contact: ["mailto:app@example.com"]
    expires: "2030-01-01T00:00:00Z"
"""
    # A third sets only the WAF: every field it sets conflicts.
    waf_only = with_age(app.replace("app-team", "waf-trial").split("  responseHeaders:")[0]
                        + "  waf: {mode: DetectOnly}\n", "waf-trial", "2026-03-01T00:00:00Z")
    setup(gateway, backends, newer, waf_only, older)

    txt = get(gateway, "/.well-known/security.txt")
    assert b"security@example.com" in txt.body and b"app@example.com" not in txt.body
    assert txt.headers["x-frame-options"] == "DENY"  # the app team's other field applies
    assert get(gateway, "/page?q=<script>alert(1)</script>").status == 403  # Block, not DetectOnly

    entry = ancestors(gateway, "SecurityPolicy", "app-team")[0]
    conds = {c["type"]: c for c in entry["conditions"]}
    assert (conds["Accepted"]["status"], conds["Accepted"]["reason"]) == ("True", "Accepted")
    partial = conds["PartiallyEnforced"]
    assert (partial["status"], partial["reason"]) == ("True", "Conflicted")
    assert partial["message"] == (
        "spec.responseHeaders apply; spec.securityTxt comes from SecurityPolicy default/security-team, which "
        "also sets it on Gateway default/gw and is older")
    assert "spec.securityTxt" in conds["Accepted"]["message"]

    cond = accepted(ancestors(gateway, "SecurityPolicy", "waf-trial")[0])
    assert (cond["status"], cond["reason"]) == ("False", "Conflicted")
    assert "spec.waf comes from SecurityPolicy default/security-team" in cond["message"]

    entry = ancestors(gateway, "SecurityPolicy", "security-team")[0]
    assert [c["type"] for c in entry["conditions"]] == ["Accepted"] and accepted(entry)["status"] == "True"


def test_two_rate_limits_on_one_target_the_older_applies_whole(gateway: Gateway, backends: Backends) -> None:
    base = example("rate-limit-per-route")
    older = with_age(base.replace("requests: 3", "requests: 1").replace("unit: Hour", "unit: Minute"),
                     "whole-route", "2026-01-01T00:00:00Z")
    newer = with_age(base.replace("whole-route", "burst-only") + "  burst: 5\n", "burst-only",
                     "2026-02-01T00:00:00Z")
    setup(gateway, backends, newer, older)
    assert [get(gateway, f"/r{i}").status for i in range(3)] == [200, 429, 429]  # no burst from the newer one
    cond = accepted(ancestors(gateway, "RateLimitPolicy", "burst-only")[0])
    assert (cond["status"], cond["reason"]) == ("False", "Conflicted")
    assert "default/whole-route" in cond["message"] and "applies whole" in cond["message"]


def test_two_client_traffic_policies_with_disjoint_fields_both_apply(gateway: Gateway, backends: Backends) -> None:
    # A network team says where the client IP comes from; an app team lets matrix parameters through.
    setup(gateway, backends, example("client-ip-hops"), example("raw-paths"), example("ip-access"))
    assert get(gateway, "/cart;jsessionid=1", headers={"X-Forwarded-For": "10.1.2.3"}).status == 200
    assert get(gateway, "/cart", headers={"X-Forwarded-For": "192.0.2.1"}).status == 403  # the XFF address
    for name in ("behind-one-lb", "raw-paths"):
        assert accepted(ancestors(gateway, "ClientTrafficPolicy", name)[0])["reason"] == "Accepted", name
