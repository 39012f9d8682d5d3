"""Policy models and policy attachment without nginx: every validator's refusal (with the value
just inside each bound accepted), merging across levels key by key, and which policy a setting
(and its warnings, ConfigMaps) is credited to. Fast enough to run for every mutant (docs/testing.md)."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from conftest import GATEWAY_CLASS
from wardgate import ir
from wardgate.model import parse
from wardgate.model.policies import (
    ClientIP,
    ClientTrafficPolicySpec,
    Hsts,
    RateLimitPolicySpec,
    SecurityPolicySpec,
    SecurityTxt,
    merge_specs,
)
from wardgate.sources.files import load_text
from wardgate.translate import Options, Translation, translate
from wardgate.translate.policies import security_txt_body

GW_REF = [{"kind": "Gateway", "name": "gw"}]
FUTURE = "2099-01-01T00:00:00Z"


def security(**spec: Any) -> SecurityPolicySpec:
    return SecurityPolicySpec.model_validate({"targetRefs": GW_REF, **spec})


def rate(**spec: Any) -> RateLimitPolicySpec:
    return RateLimitPolicySpec.model_validate({"targetRefs": GW_REF, "requests": 10, "unit": "Minute", **spec})


def refused(make: Any, *args: Any, **spec: Any) -> str:
    with pytest.raises(ValidationError) as exc:
        make(*args, **spec)
    return str(exc.value)


# --- validators: each refusal, and the value next to it accepted ------------------------------


def test_ip_access_allow_and_deny_must_be_disjoint() -> None:
    assert "10.0.0.0/8 is in both allow and deny" in refused(
        security, ipAccess={"allow": ["10.0.0.0/8", "192.0.2.0/24"], "deny": ["10.0.0.0/8"]})
    ok = security(ipAccess={"allow": ["10.0.0.0/8"], "deny": ["10.1.0.0/16"]})
    assert ok.ip_access is not None and ok.ip_access.deny == ["10.1.0.0/16"]


@pytest.mark.parametrize(("cidr", "error"), [
    ("10.0.0.1/8", "invalid CIDR"),  # host bits set
    ("10.0.0.0/33", "invalid CIDR"),
    ("fe80::1%eth0/128", "zone"),
    ("not-an-address", "invalid CIDR"),
])
def test_bad_cidrs(cidr: str, error: str) -> None:
    assert error in refused(security, ipAccess={"allow": [cidr]})


def test_cidrs_are_normalised() -> None:
    spec = security(ipAccess={"allow": ["2001:DB8::/32", "10.0.0.0/8"]})
    assert spec.ip_access is not None and spec.ip_access.allow == ["2001:db8::/32", "10.0.0.0/8"]


def test_duplicate_header_names_are_refused_case_insensitively() -> None:
    assert "'x-tenant' is listed twice" in refused(security, duplicateHeaders={"headers": [
        {"name": "X-Tenant", "action": "KeepFirst"}, {"name": "x-tenant", "action": "Reject"}]})
    ok = security(duplicateHeaders={"headers": [{"name": "X-Tenant", "action": "KeepFirst"},
                                                {"name": "X-Other", "action": "Reject"}]})
    assert ok.duplicate_headers is not None and len(ok.duplicate_headers.headers) == 2


def test_direct_response_body_and_body_from_exclude_each_other() -> None:
    assert "set at most one of body and bodyFrom" in refused(security, directResponses=[
        {"path": "/x", "body": "hi", "bodyFrom": {"configMapRef": {"name": "c", "key": "k"}}}])
    assert security(directResponses=[{"path": "/x", "body": "hi"}]).direct_responses
    assert security(directResponses=[{"path": "/x", "bodyFrom": {"configMapRef": {"name": "c", "key": "k"}}}])


def test_direct_response_body_limits() -> None:
    assert security(directResponses=[{"path": "/x", "body": "a" * 65536}]).direct_responses
    assert "larger than 64 KiB" in refused(security, directResponses=[{"path": "/x", "body": "a" * 65537}])
    # Bytes, not characters: 21846 three-byte characters are 65538 bytes.
    assert "larger than 64 KiB" in refused(security, directResponses=[{"path": "/x", "body": "€" * 21846}])
    assert "NUL" in refused(security, directResponses=[{"path": "/x", "body": "a\x00b"}])


def test_duplicate_direct_response_paths_including_security_txt() -> None:
    assert "path /x has more than one direct response" in refused(security, directResponses=[
        {"path": "/x", "body": "a"}, {"path": "/x", "body": "b"}])
    txt = {"contact": ["mailto:s@example.com"], "expires": FUTURE}
    assert "path /.well-known/security.txt has more than one" in refused(
        security, securityTxt=txt, directResponses=[{"path": "/.well-known/security.txt", "body": "x"}])
    assert security(securityTxt=txt, directResponses=[{"path": "/x", "body": "a"}, {"path": "/y", "body": "b"}])


@pytest.mark.parametrize(("exclusion", "error"), [
    ({}, "an exclusion needs ruleIds, paths, or both"),
    ({"args": ["q"]}, "an exclusion needs ruleIds, paths, or both"),
    ({"args": ["q"], "paths": [{"type": "PathPrefix", "value": "/search"}]}, "args and requestHeaders need ruleIds"),
    ({"requestHeaders": ["x-a"], "paths": [{"type": "Exact", "value": "/a"}]}, "args and requestHeaders need ruleIds"),
    # `"` would end the ModSecurity operator's quoted argument, `%{` expand a macro (regex paths
    # are the ones whose grammar lets them through to _rule_safe).
    ({"paths": [{"type": "RegularExpression", "value": '/a"'}]}, 'must not contain " or %{'),
    ({"paths": [{"type": "RegularExpression", "value": "/a%{tx.x}"}]}, 'must not contain " or %{'),
    ({"ruleIds": [0]}, "greater than or equal to 1"),
    ({"ruleIds": [1000000000]}, "less than or equal to 999999999"),
])
def test_waf_exclusions_refused(exclusion: dict[str, Any], error: str) -> None:
    assert error in refused(security, waf={"exclusions": [exclusion]})


@pytest.mark.parametrize("exclusion", [
    {"ruleIds": [942100]},
    {"ruleIds": [1, 999999999], "args": ["q"], "requestHeaders": ["x-a"]},
    {"paths": [{"type": "RegularExpression", "value": "/a%b{1}"}]},  # % and { apart are fine
    {"ruleIds": [942100], "paths": [{"type": "Exact", "value": "/search"}]},
])
def test_waf_exclusions_accepted(exclusion: dict[str, Any]) -> None:
    assert security(waf={"exclusions": [exclusion]}).waf is not None


@pytest.mark.parametrize(("client_ip", "error"), [
    ({"source": "Connection", "trustedHops": 1}, "only apply to XForwardedFor and ProxyProtocol"),
    ({"source": "Connection", "trustedCIDRs": ["10.0.0.0/8"]}, "only apply to XForwardedFor and ProxyProtocol"),
    ({"source": "XForwardedFor"}, "exactly one of trustedHops and trustedCIDRs"),
    ({"source": "XForwardedFor", "trustedHops": 1, "trustedCIDRs": ["10.0.0.0/8"]}, "exactly one of"),
    ({"source": "ProxyProtocol", "trustedHops": 1}, "trustedHops does not apply to ProxyProtocol"),
    ({"source": "XForwardedFor", "trustedHops": 0}, "greater than or equal to 1"),
    ({"source": "XForwardedFor", "trustedHops": 17}, "less than or equal to 16"),
])
def test_client_ip_consistency(client_ip: dict[str, Any], error: str) -> None:
    assert error in refused(ClientIP.model_validate, client_ip)


@pytest.mark.parametrize("client_ip", [
    {}, {"source": "XForwardedFor", "trustedHops": 1}, {"source": "XForwardedFor", "trustedHops": 16},
    {"source": "XForwardedFor", "trustedCIDRs": ["10.0.0.0/8"]}, {"source": "ProxyProtocol"},
    {"source": "ProxyProtocol", "trustedCIDRs": ["10.0.0.0/8"]},
])
def test_client_ip_accepted(client_ip: dict[str, Any]) -> None:
    ClientTrafficPolicySpec.model_validate({"targetRefs": GW_REF, "clientIP": client_ip})


def test_security_txt_expiry_needs_a_zone_and_the_future() -> None:
    assert "must carry a time zone" in refused(SecurityTxt.model_validate,
                                               {"contact": ["mailto:a@b"], "expires": "2099-01-01T00:00:00"})
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    assert "is in the past" in refused(SecurityTxt.model_validate, {"contact": ["mailto:a@b"], "expires": past})
    soon = datetime.now(UTC) + timedelta(minutes=5)
    assert SecurityTxt.model_validate({"contact": ["mailto:a@b"], "expires": soon.isoformat()}).expires == soon


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("contact", ["https://example.com/report"], True),
    ("contact", ["mailto:security@example.com"], True),
    ("contact", ["tel:+1-555-0100"], True),
    ("contact", ["http://example.com/report"], False),
    ("contact", ["mailto:"], False),
    ("contact", ["https://example.com/a b"], False),
    ("contact", [], False),
    ("canonical", ["https://example.com/.well-known/security.txt"], True),
    ("canonical", ["mailto:a@example.com"], False),
    ("encryption", ["openpgp4fpr:5f2de5521c63a801ab59ccb603d49de44b29100f"], True),
    ("encryption", ["dns:5d2d3ceb7abe552344276d47d36a8175b7aeb250a9bf0bf00e850cd23ecf2e43._openpgpkey.example.com"],
     True),
    ("policy", ["ftp://example.com/p"], False),
    ("hiring", ["https://example.com/jobs"], True),
    ("preferredLanguages", ["en", "de-CH"], True),
    ("preferredLanguages", ["en_US"], False),
])
def test_security_txt_fields(field: str, value: list[str], ok: bool) -> None:
    doc = {"contact": ["mailto:a@example.com"], "expires": FUTURE, field: value}
    if ok:
        SecurityTxt.model_validate(doc)
    else:
        refused(SecurityTxt.model_validate, doc)


def test_security_txt_body() -> None:
    txt = SecurityTxt.model_validate({
        "contact": ["mailto:a@example.com", "https://example.com/r"],
        "expires": "2099-01-01T02:00:00+02:00", "encryption": ["https://example.com/k"],
        "acknowledgments": ["https://example.com/thanks"], "preferredLanguages": ["en", "fr"],
        "canonical": ["https://example.com/.well-known/security.txt"], "policy": ["https://example.com/p"],
        "hiring": ["https://example.com/jobs"]})
    assert security_txt_body(txt) == textwrap.dedent("""\
        Contact: mailto:a@example.com
        Contact: https://example.com/r
        Expires: 2099-01-01T00:00:00Z
        Encryption: https://example.com/k
        Acknowledgments: https://example.com/thanks
        Preferred-Languages: en, fr
        Canonical: https://example.com/.well-known/security.txt
        Policy: https://example.com/p
        Hiring: https://example.com/jobs
        """)
    bare = SecurityTxt.model_validate({"contact": ["tel:+1"], "expires": FUTURE})
    assert security_txt_body(bare) == "Contact: tel:+1\nExpires: 2099-01-01T00:00:00Z\n"


def test_security_txt_expires_in_utc_whatever_the_hosts_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        bare = SecurityTxt.model_validate({"contact": ["tel:+1"], "expires": "2099-01-01T00:00:00Z"})
        assert security_txt_body(bare) == "Contact: tel:+1\nExpires: 2099-01-01T00:00:00Z\n"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(("hsts", "header"), [
    ({}, "max-age=31536000; includeSubDomains"),
    ({"enabled": False}, ""),
    ({"includeSubDomains": False, "maxAge": 0}, "max-age=0"),
    ({"preload": True}, "max-age=31536000; includeSubDomains; preload"),
    ({"preload": True, "maxAge": 63072000}, "max-age=63072000; includeSubDomains; preload"),
])
def test_hsts_header(hsts: dict[str, Any], header: str) -> None:
    assert Hsts.model_validate(hsts).header() == header


@pytest.mark.parametrize("hsts", [{"preload": True, "maxAge": 31535999},
                                  {"preload": True, "includeSubDomains": False}])
def test_hsts_preload_needs_a_year_and_subdomains(hsts: dict[str, Any]) -> None:
    assert "preload needs maxAge of at least 31536000" in refused(Hsts.model_validate, hsts)


@pytest.mark.parametrize(("limits", "ok"), [
    ({"maxURLLength": 16}, True), ({"maxURLLength": 15}, False),
    ({"maxURLLength": 65536}, True), ({"maxURLLength": 65537}, False),
    ({"maxHeaderSize": 256}, True), ({"maxHeaderSize": 255}, False), ({"maxHeaderSize": "1Ki"}, True),
    ({"maxBodySize": 0}, True), ({"maxBodySize": 2**40}, True), ({"maxBodySize": 2**40 + 1}, False),
    ({"maxBodySize": True}, False), ({"maxBodySize": "12Q"}, False), ({"maxBodySize": "-1"}, False),
])
def test_request_limit_bounds(limits: dict[str, Any], ok: bool) -> None:
    if ok:
        security(requestLimits=limits)
    else:
        refused(security, requestLimits=limits)


@pytest.mark.parametrize(("text", "size"), [
    ("512", 512), (512, 512), ("1k", 1000), ("1M", 10**6), ("1G", 10**9),
    ("1Ki", 1024), ("1Mi", 2**20), ("1Gi", 2**30), ("0", 0),
])
def test_byte_quantities(text: str | int, size: int) -> None:
    limits = security(requestLimits={"maxBodySize": text}).request_limits
    assert limits is not None and limits.max_body_size == size


@pytest.mark.parametrize(("spec", "ok"), [
    ({}, True),
    ({"key": {"type": "Header", "header": "x-api-key"}}, True),
    ({"key": {"type": "Header"}}, False),
    ({"key": {"type": "ClientIP", "header": "x-api-key"}}, False),
    ({"key": {"type": "Route", "header": "x-api-key"}}, False),
    ({"requests": 0}, False), ({"requests": 1}, True), ({"requests": 1_000_000_000}, True),
    ({"requests": 1_000_000_001}, False), ({"burst": 1_000_000}, True), ({"burst": 1_000_001}, False),
    ({"burst": -1}, False), ({"status": 399}, False), ({"status": 400}, True), ({"status": 599}, True),
    ({"status": 600}, False), ({"unit": "Day"}, False),
])
def test_rate_limit_validation(spec: dict[str, Any], ok: bool) -> None:
    if ok:
        rate(**spec)
    else:
        refused(rate, **spec)


@pytest.mark.parametrize(("spec", "ok"), [
    ({"urlAllowlist": {"paths": [{"type": "Exact", "value": "/"}], "status": 400}}, True),
    ({"urlAllowlist": {"paths": [{"type": "Exact", "value": "/"}], "status": 399}}, False),
    ({"urlAllowlist": {"paths": [{"type": "Exact", "value": "/"}], "status": 600}}, False),
    ({"urlAllowlist": {"paths": []}}, False),
    ({"allowedMethods": []}, False),
    ({"directResponses": [{"path": "/x", "status": 200}]}, True),
    ({"directResponses": [{"path": "/x", "status": 199}]}, False),
    ({"directResponses": [{"path": "/x", "contentType": "text/html; charset=utf-8"}]}, True),
    ({"directResponses": [{"path": "/x", "contentType": "text/html\nX: y"}]}, False),
    ({"waf": {"paranoiaLevel": 4, "anomalyThreshold": 10000}}, True),
    ({"waf": {"paranoiaLevel": 5}}, False),
    ({"waf": {"anomalyThreshold": 0}}, False),
    ({"methodNotAllowed": {"allowHeader": False}}, True),
    ({"responseHeaders": {"add": [{"name": "X", "value": "v", "statuses": [100, 599]}]}}, True),
    ({"responseHeaders": {"set": [{"name": "X", "value": "v", "statuses": [99]}]}}, False),
    ({"responseHeaders": {"add": [{"name": "X", "value": "v", "statuses": [600]}]}}, False),
    ({"responseHeaders": {"add": [{"name": "X", "value": "v", "statuses": []}]}}, False),
    ({"responseHeaders": {"add": [{"name": "X", "value": "v", "statuses": list(range(200, 265))}]}}, False),
])
def test_security_policy_bounds(spec: dict[str, Any], ok: bool) -> None:
    if ok:
        security(**spec)
    else:
        refused(security, **spec)


# --- merging ---------------------------------------------------------------------------------


def test_merge_specs_merges_nested_objects_key_by_key() -> None:
    base = security(waf={"mode": "DetectOnly", "paranoiaLevel": 3},
                    requestLimits={"maxBodySize": "1Ki", "maxURLLength": 100}, allowedMethods=["GET"],
                    hsts={"maxAge": 60, "includeSubDomains": False})
    over = security(waf={"anomalyThreshold": 20}, requestLimits={"maxHeaderSize": 512},
                    allowedMethods=["POST"], hsts={"maxAge": 120})
    merged = merge_specs(base, over)
    assert merged.waf is not None and (merged.waf.mode, merged.waf.paranoia_level, merged.waf.anomaly_threshold) \
        == ("DetectOnly", 3, 20)
    assert merged.request_limits is not None
    assert (merged.request_limits.max_body_size, merged.request_limits.max_url_length,
            merged.request_limits.max_header_size) == (1024, 100, 512)
    assert merged.allowed_methods == ["POST"]  # lists replace
    assert merged.hsts is not None and merged.hsts.header() == "max-age=120"
    # Unset on `over`: inherited as is; set on `over` only: taken.
    assert merge_specs(base, security()).waf == base.waf
    assert merge_specs(security(), over).waf == over.waf
    assert merge_specs(base, over).target_refs == base.target_refs


def test_merge_specs_replaces_lists_of_objects_and_keeps_base_target_refs() -> None:
    base = security(waf={"exclusions": [{"ruleIds": [1]}, {"ruleIds": [2]}]})
    over = SecurityPolicySpec.model_validate({"targetRefs": [{"kind": "HTTPRoute", "name": "r"}],
                                              "waf": {"exclusions": [{"ruleIds": [3]}]}})
    merged = merge_specs(base, over)
    assert merged.waf is not None and [e.rule_ids for e in merged.waf.exclusions] == [[3]]
    assert merged.target_refs[0].kind == "Gateway"


# --- through translation: levels, credit, status ------------------------------------------


def objects(text: str) -> Translation:
    return translate(parse(load_text(text, "m.yaml")), Options(now="2026-01-01T00:00:00Z"))


SETUP = GATEWAY_CLASS + """
---
apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: wardgate
  listeners:
    - {name: web, protocol: HTTP, port: 8080, allowedRoutes: {namespaces: {from: All}}}
    - {name: admin, protocol: HTTP, port: 8081, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: web}]
  hostnames: [app.example.com]
  rules:
    - name: login
      matches: [{path: {type: Exact, value: /login}}]
      backendRefs: [{name: app, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: app, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: apps}
spec: {ports: [{name: http, port: 80}]}
"""


def policy_doc(kind: str, namespace: str, name: str, target: dict[str, Any], spec: str,
               created: str = "2025-01-01T00:00:00Z") -> str:
    return (f"\n---\napiVersion: policy.wardgate.io/v1alpha1\nkind: {kind}\n"
            f"metadata: {{name: {name}, namespace: {namespace}, creationTimestamp: '{created}'}}\n"
            f"spec:\n  targetRefs: [{json.dumps(target)}]\n" + textwrap.indent(textwrap.dedent(spec), "  "))


GATEWAY = {"kind": "Gateway", "name": "gw"}
ROUTE = {"kind": "HTTPRoute", "name": "app"}


def policies_by_path(tr: Translation) -> dict[tuple[int, str], ir.Policy | None]:
    """(port, path) -> the policy that applies where that match is served."""
    gw = tr.gateways[0]
    out: dict[tuple[int, str], ir.Policy | None] = {}
    for port in gw.ports:
        for vh in port.vhosts:
            per_action = dict(vh.action_policies)
            for m in vh.matches:
                pid = per_action.get(m.action)
                out[(port.port, m.path.value)] = gw.policies[pid] if pid is not None else None
            out[(port.port, "")] = gw.policies[vh.policy] if vh.policy is not None else None
    return out


def status_of(tr: Translation, kind: str, ns: str, name: str) -> list[dict[str, Any]]:
    return next(s.to_dict()["status"] for s in tr.statuses if s.key == (kind, ns, name))["ancestors"]  # type: ignore[no-any-return]


def test_levels_merge_field_by_field_down_to_the_rule() -> None:
    tr = objects(SETUP
                 + policy_doc("SecurityPolicy", "infra", "gw-wide", GATEWAY, """\
                     allowedMethods: [GET]
                     waf: {mode: DetectOnly, paranoiaLevel: 2}
                     requestLimits: {maxURLLength: 100}
                     """)
                 + policy_doc("SecurityPolicy", "infra", "web", {**GATEWAY, "sectionName": "web"}, """\
                     requestLimits: {maxBodySize: 1Ki}
                     """)
                 + policy_doc("SecurityPolicy", "apps", "route", ROUTE, """\
                     waf: {anomalyThreshold: 9}
                     """)
                 + policy_doc("SecurityPolicy", "apps", "login", {**ROUTE, "sectionName": "login"}, """\
                     allowedMethods: [POST]
                     """))
    pols = policies_by_path(tr)
    login, root = pols[(8080, "/login")], pols[(8080, "/")]
    assert login is not None and root is not None
    assert login.allowed_methods == ("POST",) and root.allowed_methods == ("GET",)
    for p in (login, root):
        # CRS's methods and ModSecurity's body limit follow the merged allowedMethods and maxBodySize.
        assert p.waf == ir.Waf("DetectOnly", 2, 9, methods=p.allowed_methods, body_limit=1024)
        assert (p.max_url_length, p.max_body_bytes) == (100, 1024)
    admin = pols[(8081, "")]  # the other listener: Gateway level only
    assert admin is not None and admin.max_body_bytes is None
    assert admin.waf == ir.Waf("DetectOnly", 2, 5, methods=("GET",), body_limit=ir.NGINX_BODY_LIMIT)
    for ns, name in (("infra", "gw-wide"), ("infra", "web"), ("apps", "route"), ("apps", "login")):
        anc = status_of(tr, "SecurityPolicy", ns, name)
        assert [a["conditions"][0]["reason"] for a in anc] == ["Accepted"], (name, anc)
        assert anc[0]["ancestorRef"]["name"] == "gw" and anc[0]["ancestorRef"]["namespace"] == "infra"
    assert status_of(tr, "SecurityPolicy", "infra", "web")[0]["ancestorRef"]["sectionName"] == "web"


def test_statuses_listed_twice_are_refused() -> None:
    assert "status 404 is listed twice" in refused(
        security, responseHeaders={"set": [{"name": "X", "value": "v", "statuses": [404, 410, 404]}]})


def test_method_answer_hsts_and_header_statuses_per_place() -> None:
    tr = objects(SETUP
                 + policy_doc("SecurityPolicy", "infra", "gw-wide", GATEWAY, """\
                     methodNotAllowed: {allowHeader: false}
                     hsts: {includeSubDomains: false}
                     responseHeaders:
                       add: [{name: X-A, value: a, statuses: [410, 200, 404]}]
                     """)
                 + policy_doc("SecurityPolicy", "apps", "route", ROUTE, """\
                     hsts: {enabled: false}
                     """)
                 + policy_doc("SecurityPolicy", "apps", "login", {**ROUTE, "sectionName": "login"}, """\
                     allowedMethods: [POST]
                     hsts: {enabled: true, maxAge: 5}
                     """))
    pols = policies_by_path(tr)
    login, root, host = pols[(8080, "/login")], pols[(8080, "/")], pols[(8080, "")]
    assert login is not None and root is not None and host is not None
    # The Gateway's allowHeader reaches the rule's own method list.
    assert (login.allowed_methods, login.allow_header) == (("POST",), False)
    assert root.allow_header and host.allow_header  # no method list: the flag is moot, policies stay alike
    # hsts key by key, the more specific level winning; the host's own places keep None (the host's).
    assert (login.hsts, root.hsts, host.hsts) == ("max-age=5", "", None)
    assert host.response_headers.add == (("X-A", ir.OnStatuses("a", (200, 404, 410))),)


def test_security_txt_warning_and_configmap_are_credited_to_the_policy_that_set_them() -> None:
    """A route-level policy that sets other fields must not take the Gateway policy's
    security.txt expiry warning, nor make its bodyFrom ConfigMap be looked up in the route's
    namespace."""
    soon = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cm = ("\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bodies, namespace: {ns}}}\n"
          "data: {{robots: {body}}}\n")
    tr = objects(SETUP + cm.format(ns="infra", body="'Disallow: /infra'") + cm.format(ns="apps", body="'apps'")
                 + policy_doc("SecurityPolicy", "infra", "gw-wide", GATEWAY, f"""\
                     securityTxt: {{contact: ['mailto:s@example.com'], expires: '{soon}'}}
                     directResponses:
                       - {{path: /robots.txt, bodyFrom: {{configMapRef: {{name: bodies, key: robots}}}}}}
                     """)
                 + policy_doc("SecurityPolicy", "apps", "route", ROUTE, """\
                     allowedMethods: [GET]
                     """))
    pol = policies_by_path(tr)[(8080, "/")]
    assert pol is not None
    assert {d.path: d.body for d in pol.direct}["/robots.txt"] == "Disallow: /infra"
    warnings = [p for p in tr.problems if "securityTxt.expires" in p.message]
    assert warnings and {(p.namespace, p.name) for p in warnings} == {("infra", "gw-wide")}
    assert "renew it" in status_of(tr, "SecurityPolicy", "infra", "gw-wide")[0]["conditions"][0]["message"]
    assert "renew it" not in status_of(tr, "SecurityPolicy", "apps", "route")[0]["conditions"][0]["message"]


def test_missing_configmap_answers_500_and_is_reported_on_the_setter() -> None:
    tr = objects(SETUP
                 + policy_doc("SecurityPolicy", "infra", "gw-wide", GATEWAY, """\
                     directResponses:
                       - {path: /robots.txt, bodyFrom: {configMapRef: {name: nope, key: robots}}}
                     """)
                 + policy_doc("SecurityPolicy", "apps", "route", ROUTE, "allowedMethods: [GET]\n"))
    pol = policies_by_path(tr)[(8080, "/")]
    assert pol is not None and pol.direct == (ir.DirectResponse("/robots.txt", 500, "text/plain", ""),)
    problem = next(p for p in tr.problems if "ConfigMap" in p.message)
    assert (problem.namespace, problem.name, problem.field) == ("infra", "gw-wide", "spec.directResponses[0].bodyFrom")
    assert "ConfigMap infra/nope does not exist; /robots.txt answers 500" in problem.message
    conds = status_of(tr, "SecurityPolicy", "infra", "gw-wide")[0]["conditions"]
    assert [(c["type"], c["status"]) for c in conds] == [("Accepted", "True"), ("ResolvedRefs", "False")]


def test_conflicts_oldest_wins_and_target_not_found() -> None:
    tr = objects(SETUP
                 + policy_doc("SecurityPolicy", "infra", "young", GATEWAY, "allowedMethods: [PUT]\n",
                              "2025-06-01T00:00:00Z")
                 + policy_doc("SecurityPolicy", "infra", "old", GATEWAY, "allowedMethods: [GET]\n",
                              "2025-01-01T00:00:00Z")
                 + policy_doc("SecurityPolicy", "infra", "nolistener", {**GATEWAY, "sectionName": "nope"},
                              "allowedMethods: [GET]\n")
                 + policy_doc("SecurityPolicy", "apps", "norule", {**ROUTE, "sectionName": "nope"},
                              "allowedMethods: [GET]\n")
                 + policy_doc("RateLimitPolicy", "apps", "noroute", {"kind": "HTTPRoute", "name": "ghost"},
                              "requests: 1\nunit: Second\n")
                 + policy_doc("ClientTrafficPolicy", "infra", "ctp", {**GATEWAY, "sectionName": "web"},
                              "clientIP: {source: Connection}\n"))
    root = policies_by_path(tr)[(8080, "/")]
    assert root is not None and root.allowed_methods == ("GET",)
    young = status_of(tr, "SecurityPolicy", "infra", "young")[0]["conditions"][0]
    assert (young["status"], young["reason"]) == ("False", "Conflicted")
    # Several policies on one target merge by field (issue 12): every field of this one is set by the older.
    assert "spec.allowedMethods comes from SecurityPolicy infra/old" in young["message"]
    assert "is older" in young["message"]
    expect = {("SecurityPolicy", "infra", "nolistener"): "Gateway infra/gw has no listener named 'nope'",
              ("SecurityPolicy", "apps", "norule"): "HTTPRoute apps/app has no rule named 'nope'",
              ("RateLimitPolicy", "apps", "noroute"): "HTTPRoute apps/ghost does not exist",
              ("ClientTrafficPolicy", "infra", "ctp"): "ClientTrafficPolicy applies to a whole Gateway"}
    for (kind, ns, name), message in expect.items():
        cond = status_of(tr, kind, ns, name)[0]["conditions"][0]
        assert cond["status"] == "False" and message in cond["message"], (name, cond)
        assert any(p.name == name and message in p.message for p in tr.problems)


def test_rate_limits_buckets_and_client_ip() -> None:
    tr = objects(SETUP
                 + policy_doc("RateLimitPolicy", "infra", "gw-rl", GATEWAY, """\
                     requests: 100
                     unit: Hour
                     burst: 5
                     key: {type: Header, header: X-Api-Key}
                     exemptCIDRs: [10.0.0.0/8]
                     status: 503
                     rateLimitHeaders: true
                     """)
                 + policy_doc("RateLimitPolicy", "apps", "login-rl", {**ROUTE, "sectionName": "login"}, """\
                     requests: 10
                     unit: Minute
                     """)
                 + policy_doc("ClientTrafficPolicy", "infra", "ctp", GATEWAY, """\
                     clientIP: {source: XForwardedFor, trustedCIDRs: [192.0.2.0/24]}
                     path: {ambiguous: Allow}
                     """))
    pols = policies_by_path(tr)
    root, login, admin = pols[(8080, "/")], pols[(8080, "/login")], pols[(8081, "")]
    assert root is not None and login is not None and admin is not None
    assert root.rate_limit is not None and login.rate_limit is not None and admin.rate_limit is not None
    r = root.rate_limit
    assert (r.requests, r.period_s, r.burst, r.key, r.header, r.exempt, r.status, r.headers) == \
        (100, 3600, 5, "header", "x-api-key", ("10.0.0.0/8",), 503, True)
    assert (login.rate_limit.requests, login.rate_limit.period_s, login.rate_limit.burst) == (10, 60, 5)
    assert admin.rate_limit.bucket == r.bucket != login.rate_limit.bucket
    gw = tr.gateways[0]
    assert gw.client_ip == ir.ClientIP("xff", None, ("192.0.2.0/24",))
    assert gw.reject_ambiguous_paths is False


def test_duplicate_headers_reject_singletons_unless_listed() -> None:
    tr = objects(SETUP + policy_doc("SecurityPolicy", "infra", "dup", GATEWAY, """\
        duplicateHeaders:
          default: KeepLast
          headers: [{name: Authorization, action: KeepFirst}, {name: X-Tenant, action: Allow}]
        """))
    pol = policies_by_path(tr)[(8080, "/")]
    assert pol is not None and pol.duplicate_default == "last"
    assert pol.duplicate_headers == (("authorization", "first"), ("content-length", "reject"),
                                     ("content-type", "reject"), ("host", "reject"), ("x-tenant", "allow"))


def test_messages_name_the_problem() -> None:
    """What a user reads: each refusal's own words (and the 2048-character bound of security.txt
    values, at 2048 and 2049)."""
    assert "expected a size such as 512, 64Ki or 1Mi" in refused(security, requestLimits={"maxBodySize": True})
    assert "invalid size '12Q': expected a number with an optional Ki, Mi, Gi, k, M or G suffix" in refused(
        security, requestLimits={"maxBodySize": "12Q"})
    assert "body must not contain NUL characters" in refused(security, directResponses=[{"path": "/x",
                                                                                         "body": "\x00"}])
    base = {"contact": ["mailto:a@example.com"], "expires": FUTURE}
    for field, prefix in (("contact", "https://example.com/"), ("canonical", "https://example.com/")):
        longest = prefix + "a" * (2048 - len(prefix))
        SecurityTxt.model_validate({**base, field: [longest]})
        assert "security.txt value is longer than 2048 characters" in refused(
            SecurityTxt.model_validate, {**base, field: [longest + "a"]})
    assert "'ftp://x' must be an https:, mailto: or tel: URI (RFC 9116 2.5.3)" in refused(
        SecurityTxt.model_validate, {**base, "contact": ["ftp://x"]})
    assert "'mailto:a@b' must be an https URI (RFC 9116)" in refused(
        SecurityTxt.model_validate, {**base, "policy": ["mailto:a@b"]})


def value_errors(make: Any, *args: Any, **spec: Any) -> list[str]:
    """Each refusal's message as pydantic reports it, whole."""
    with pytest.raises(ValidationError) as exc:
        make(*args, **spec)
    return [e["msg"] for e in exc.value.errors()]


@pytest.mark.parametrize(("media_type", "error"), [
    ("application/json", "is parsed as JSON and allowed already"),
    ("application/csp-report", "is parsed as JSON and allowed already"),
    ("application/vnd.api+json", "is parsed as JSON and allowed already"),
    ("multipart/form-data", "has a body parser of its own"),
    ("multipart/mixed", "has a body parser of its own"),
    ("text/xml", "has a body parser of its own"),
    ("application/soap+xml", "has a body parser of its own"),
    ("application/x-www-form-urlencoded", "has a body parser of its own"),
])
def test_uninspected_types_are_only_types_no_parser_reads(media_type: str, error: str) -> None:
    assert value_errors(security, waf={"allowUninspectedContentTypes": [media_type]}) == [
        f"Value error, {media_type} {error}; list only types the WAF cannot parse"]


@pytest.mark.parametrize("media_type", ["text/plain", "application/octet-stream", "application/x-ndjson",
                                        "application/jsonl", "text/xml-ish", "application/multipart"])
def test_uninspected_types_accepted(media_type: str) -> None:
    spec = security(waf={"allowUninspectedContentTypes": [media_type]})
    assert spec.waf is not None and spec.waf.allow_uninspected_content_types == [media_type]


def test_value_refusals_word_for_word() -> None:
    assert value_errors(security, requestLimits={"maxBodySize": True}) == [
        "Value error, expected a size such as 512, 64Ki or 1Mi"]
    assert value_errors(security, directResponses=[{"path": "/x", "body": "a\x00"}]) == [
        "Value error, body must not contain NUL characters"]
    assert value_errors(security, directResponses=[{"path": "/x", "body": "a" * 65537}]) == [
        "Value error, body is larger than 64 KiB"]


def test_same_target_oldest_setter_wins_each_field_across_three() -> None:
    from wardgate.model.policies import combine_same_target
    first = security(allowedMethods=["GET"])
    second = security(hsts={"maxAge": 1})
    third = security(allowedMethods=["PUT"], ipAccess={"deny": ["10.0.0.0/8"]})
    combined = combine_same_target([first, second, third])
    assert combined.allowed_methods == ["GET"]  # the first's, though the second does not set it
    assert combined.hsts is not None and combined.hsts.max_age == 1
    assert combined.ip_access is not None and combined.ip_access.deny == ["10.0.0.0/8"]


def test_merge_specs_takes_a_header_filter_the_base_lacks() -> None:
    over = security(responseHeaders={"set": [{"name": "X-A", "value": "1"}]})
    merged = merge_specs(security(allowedMethods=["GET"]), over)
    assert merged.response_headers == over.response_headers and merged.allowed_methods == ["GET"]
