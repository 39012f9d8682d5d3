"""Policy status without nginx: every ancestor entry, condition and message a user reads for the
outcomes docs/policies.md ("Status") lists, and which policy each warning and problem names.
Compared whole, so a changed word, reason or ancestorRef fails. Fast enough to run for every
mutant (docs/testing.md)."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import GATEWAY_CLASS, REPO
from wardgate import ir
from wardgate.model import parse, parse_keeping
from wardgate.sources.files import load_text
from wardgate.translate import Options, Translation, translate
from wardgate.translate.policies import waf_body_limit

NOW = "2026-01-01T00:00:00Z"
SECRET = "\n".join((REPO / "tests" / "golden" / "tls.in.yaml").read_text().splitlines()[6:14])

WORLD = GATEWAY_CLASS + f"""\
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: other}}
spec: {{controllerName: example.com/other}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: foreign, namespace: default}}
spec:
  gatewayClassName: other
  listeners: [{{name: http, protocol: HTTP, port: 8080}}]
---
{SECRET}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: public, namespace: default}}
spec:
  gatewayClassName: wardgate
  listeners:
    - {{name: http, protocol: HTTP, port: 8080}}
    - {{name: https, protocol: HTTPS, port: 8443, tls: {{certificateRefs: [{{name: example-tls}}]}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: internal, namespace: default}}
spec:
  gatewayClassName: wardgate
  listeners:
    - {{name: http, protocol: HTTP, port: 8080}}
    - {{name: admin, protocol: HTTP, port: 8081}}
---
apiVersion: v1
kind: Service
metadata: {{name: app, namespace: default}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: default}}
spec:
  parentRefs: [{{name: public}}, {{name: internal, sectionName: http}}]
  hostnames: [shop.example.com]
  rules:
    - name: login
      matches: [{{path: {{type: Exact, value: /login}}}}]
      backendRefs: [{{name: app, port: 80}}]
    - name: cart
      matches: [{{path: {{type: PathPrefix, value: /cart}}}}]
      backendRefs: [{{name: app, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /}}}}]
      backendRefs: [{{name: app, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: lonely, namespace: default}}
spec:
  parentRefs: [{{name: foreign}}]
  rules: [{{backendRefs: [{{name: app, port: 80}}]}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: bodies, namespace: default}}
data: {{robots: "Disallow: /", bad: "a\\u0001b"}}
"""


def policy(kind: str, name: str, targets: list[dict[str, Any]], spec: str, created: str = "2025-01-01T00:00:00Z",
           generation: int | None = None) -> str:
    """A policy in namespace default ("" as `created`: without a creationTimestamp)."""
    meta = f", creationTimestamp: '{created}'" if created else ""
    meta += f", generation: {generation}" if generation is not None else ""
    return (f"\n---\napiVersion: policy.wardgate.io/v1alpha1\nkind: {kind}\n"
            f"metadata: {{name: {name}, namespace: default{meta}}}\n"
            f"spec:\n  targetRefs: {json.dumps(targets)}\n" + textwrap.indent(textwrap.dedent(spec), "  "))


def summary(tr: Translation, kind: str, name: str) -> list[tuple[str, list[tuple[str, str, str, str, int]]]]:
    """(ancestorRef as group/kind/namespace/name[/sectionName],
    [(type, status, reason, message, observedGeneration)])."""
    status = next(s.to_dict()["status"] for s in tr.statuses if s.key == (kind, "default", name))
    out = []
    for anc in status["ancestors"]:
        ref = anc["ancestorRef"]
        assert anc["controllerName"] == "wardgate.io/gateway-controller"
        where = "/".join([ref["group"], ref["kind"], ref["namespace"], ref["name"]]
                         + ([ref["sectionName"]] if "sectionName" in ref else []))
        assert set(ref) <= {"group", "kind", "namespace", "name", "sectionName"}
        assert {c["lastTransitionTime"] for c in anc["conditions"]} == {NOW}
        out.append((where, [(c["type"], c["status"], c["reason"], c["message"], c["observedGeneration"])
                            for c in anc["conditions"]]))
    return out




def gateway_ref(name: str, section: str | None = None) -> dict[str, str]:
    return {"kind": "Gateway", "name": name, **({"sectionName": section} if section else {})}


def route_ref(name: str, section: str | None = None) -> dict[str, str]:
    return {"kind": "HTTPRoute", "name": name, **({"sectionName": section} if section else {})}


def objects(text: str) -> Translation:
    return translate(parse(load_text(text, "m.yaml")), Options(now=NOW))


G = "gateway.networking.k8s.io/Gateway/default/"
ACCEPTED = ("Accepted", "True", "Accepted", "Accepted", 1)
LOGIN_OLD = "SecurityPolicy default/login-old, which also sets it on HTTPRoute default/shop/login and is older"
SOON = datetime.now(UTC) + timedelta(hours=5)


def scenario() -> Translation:
    expires = SOON.strftime("%Y-%m-%dT%H:%M:%SZ")
    return objects(WORLD + "".join([
        policy("SecurityPolicy", "gw-hsts", [gateway_ref("public")], "hsts: {maxAge: 600, includeSubDomains: false}\n"),
        policy("SecurityPolicy", "route-hsts", [route_ref("shop")], "hsts: {maxAge: 60}\n"),
        policy("SecurityPolicy", "scoped", [route_ref("shop")], """\
            parentRefs:
              - {name: public, sectionName: https}
              - {name: internal, sectionName: admin}
              - {name: foreign}
              - {name: ghost, namespace: elsewhere}
            allowedMethods: [GET]
            """),
        # Names sort the other way round from their ages: age decides.
        policy("SecurityPolicy", "login-old", [route_ref("shop", "login")], "waf: {mode: DetectOnly}\n"
               "allowedMethods: [POST]\n", "2025-01-01T00:00:00Z"),
        policy("SecurityPolicy", "login-new", [route_ref("shop", "login")], "allowedMethods: [PUT]\n"
               "ipAccess: {deny: [10.0.0.0/8]}\n", "2025-02-01T00:00:00Z"),
        policy("SecurityPolicy", "login-newest", [route_ref("shop", "login")], "waf: {paranoiaLevel: 2}\n",
               "2025-03-01T00:00:00Z"),
        policy("SecurityPolicy", "two-rules", [route_ref("shop", "login"), route_ref("shop", "cart")],
               "ipAccess: {allow: [192.0.2.0/24]}\n", "2025-04-01T00:00:00Z"),
        policy("RateLimitPolicy", "rl-old", [gateway_ref("internal", "http")], "requests: 5\nunit: Second\n"),
        policy("RateLimitPolicy", "rl-new", [gateway_ref("internal", "http")], "requests: 9\nunit: Second\n"
               "burst: 7\n", "2025-02-01T00:00:00Z"),
        policy("ClientTrafficPolicy", "ctp-route", [route_ref("shop")], "clientIP: {source: Connection}\n"),
        policy("SecurityPolicy", "ghost-gw", [gateway_ref("ghost")], "allowedMethods: [GET]\n"),
        policy("SecurityPolicy", "foreign-gw", [gateway_ref("foreign")], "allowedMethods: [GET]\n"),
        policy("SecurityPolicy", "lonely", [route_ref("lonely")], "allowedMethods: [GET]\n"),
        policy("SecurityPolicy", "norule", [route_ref("shop", "nope")], "allowedMethods: [GET]\n"),
        policy("SecurityPolicy", "bodies", [gateway_ref("internal")], f"""\
            securityTxt: {{contact: ['mailto:s@example.com'], expires: '{expires}'}}
            directResponses:
              - {{path: /nokey, bodyFrom: {{configMapRef: {{name: bodies, key: nokey}}}}}}
              - {{path: /bad, bodyFrom: {{configMapRef: {{name: bodies, key: bad}}}}}}
              - {{path: /good, bodyFrom: {{configMapRef: {{name: bodies, key: robots}}}}}}
              - {{path: /empty, status: 204}}
            """),
        # Without a creationTimestamp a policy counts as older than any with one.
        policy("SecurityPolicy", "dated", [gateway_ref("internal", "admin")], "allowedMethods: [GET]\n"),
        policy("SecurityPolicy", "undated", [gateway_ref("internal", "admin")], "allowedMethods: [HEAD]\n", ""),
    ]))


def test_every_status_outcome_word_for_word() -> None:
    tr = scenario()
    expect = {
        ("SecurityPolicy", "gw-hsts"): [(G + "public", [ACCEPTED])],
        ("SecurityPolicy", "route-hsts"): [
            (G + gw, [("Accepted", "True", "Accepted", "Accepted", 1)])
            for gw in ("internal", "public")],
        ("SecurityPolicy", "scoped"): [
            (G + "internal/admin", [("Accepted", "False", "TargetNotFound", "spec.parentRefs: HTTPRoute default/shop "
                                     "is not attached to Gateway default/internal listener admin", 1)]),
            ("gateway.networking.k8s.io/Gateway/elsewhere/ghost", [
                ("Accepted", "False", "TargetNotFound", "spec.parentRefs: HTTPRoute default/shop is not attached to "
                 "Gateway elsewhere/ghost", 1)]),
            (G + "public/https", [ACCEPTED])],  # the foreign Gateway: not ours to report on
        ("SecurityPolicy", "login-old"): [(G + "internal", [ACCEPTED]), (G + "public", [ACCEPTED])],
        ("SecurityPolicy", "login-new"): [
            (G + gw, [("Accepted", "True", "Accepted", "Accepted; spec.ipAccess apply; field conflict: "
                       f"spec.allowedMethods comes from {LOGIN_OLD}", 1),
                      ("PartiallyEnforced", "True", "Conflicted",
                       f"spec.ipAccess apply; spec.allowedMethods comes from {LOGIN_OLD}", 1)])
            for gw in ("internal", "public")],
        ("SecurityPolicy", "login-newest"): [
            (G + gw, [("Accepted", "False", "Conflicted", f"every field conflicts: spec.waf comes from {LOGIN_OLD}",
                       1)])
            for gw in ("internal", "public")],
        # Accepted through rule cart; what happens on rule login follows in the message.
        ("SecurityPolicy", "two-rules"): [
            (G + gw, [("Accepted", "True", "Accepted", "Accepted; every field conflicts: spec.ipAccess comes from "
                       "SecurityPolicy default/login-new, which also sets it on HTTPRoute default/shop/login and is "
                       "older", 1)])
            for gw in ("internal", "public")],
        ("RateLimitPolicy", "rl-old"): [(G + "internal/http", [ACCEPTED])],
        ("RateLimitPolicy", "rl-new"): [(G + "internal/http", [
            ("Accepted", "False", "Conflicted", "RateLimitPolicy default/rl-old targets the same Gateway "
             "default/internal/http and is older; a RateLimitPolicy applies whole", 1)])],
        ("ClientTrafficPolicy", "ctp-route"): [("gateway.networking.k8s.io/HTTPRoute/default/shop", [
            ("Accepted", "False", "Invalid", "ClientTrafficPolicy applies to a whole Gateway: target a Gateway "
             "without sectionName", 1)])],
        ("SecurityPolicy", "ghost-gw"): [(G + "ghost", [
            ("Accepted", "False", "TargetNotFound", "Gateway default/ghost does not exist", 1)])],
        ("SecurityPolicy", "foreign-gw"): [],
        ("SecurityPolicy", "lonely"): [("gateway.networking.k8s.io/HTTPRoute/default/lonely", [
            ("Accepted", "False", "TargetNotFound", "HTTPRoute default/lonely is not attached to any Gateway of this "
             "controller", 1)])],
        ("SecurityPolicy", "norule"): [("gateway.networking.k8s.io/HTTPRoute/default/shop/nope", [
            ("Accepted", "False", "TargetNotFound", "HTTPRoute default/shop has no rule named 'nope'", 1)])],
        ("SecurityPolicy", "bodies"): [(G + "internal", [
            ("Accepted", "True", "Accepted", "Accepted; warnings: securityTxt.expires is 0 days away "
             f"({SOON.replace(microsecond=0).isoformat()}): renew it", 1),
            ("ResolvedRefs", "False", "InvalidRef", "spec.directResponses[0].bodyFrom: ConfigMap default/bodies has "
             "no key 'nokey'; /nokey answers 500", 1)])],
        ("SecurityPolicy", "undated"): [(G + "internal/admin", [ACCEPTED])],
        ("SecurityPolicy", "dated"): [(G + "internal/admin", [
            ("Accepted", "False", "Conflicted", "every field conflicts: spec.allowedMethods comes from SecurityPolicy "
             "default/undated, which also sets it on Gateway default/internal/admin and is older", 1)])],
    }
    got = {(s.kind, s.name): summary(tr, s.kind, s.name) for s in tr.statuses if s.kind in
           ("SecurityPolicy", "RateLimitPolicy", "ClientTrafficPolicy")}
    assert set(got) == set(expect)
    for key, want in expect.items():
        assert got[key] == want, key


def test_each_problem_once_on_the_policy_that_has_it() -> None:
    """A policy reaches several Gateways, listeners and routes: its problems are reported once."""
    tr = scenario()
    got = [(p.origin.file if p.origin else None, p.kind, p.namespace, p.name, p.field, p.message)
           for p in tr.problems if p.kind and p.kind.endswith("Policy")]
    targets = "spec.targetRefs"
    expect = [
        ("SecurityPolicy", "ghost-gw", targets, "not applied here (TargetNotFound): Gateway default/ghost does not "
         "exist"),
        ("SecurityPolicy", "lonely", targets, "not applied here (TargetNotFound): HTTPRoute default/lonely is not "
         "attached to any Gateway of this controller"),
        ("SecurityPolicy", "scoped", targets, "not applied here (TargetNotFound): spec.parentRefs: HTTPRoute "
         "default/shop is not attached to Gateway default/internal listener admin"),
        ("SecurityPolicy", "scoped", targets, "not applied here (TargetNotFound): spec.parentRefs: HTTPRoute "
         "default/shop is not attached to Gateway elsewhere/ghost"),
        ("SecurityPolicy", "login-newest", targets, "not applied here (Conflicted): every field conflicts: spec.waf "
         f"comes from {LOGIN_OLD}"),
        ("SecurityPolicy", "two-rules", targets, "not applied here (Conflicted): every field conflicts: spec.ipAccess "
         "comes from SecurityPolicy default/login-new, which also sets it on HTTPRoute default/shop/login and is "
         "older"),
        ("SecurityPolicy", "dated", targets, "not applied here (Conflicted): every field conflicts: "
         "spec.allowedMethods comes from SecurityPolicy default/undated, which also sets it on Gateway "
         "default/internal/admin and is older"),
        ("RateLimitPolicy", "rl-new", targets, "not applied here (Conflicted): RateLimitPolicy default/rl-old targets "
         "the same Gateway default/internal/http and is older; a RateLimitPolicy applies whole"),
        ("ClientTrafficPolicy", "ctp-route", targets, "not applied here (Invalid): ClientTrafficPolicy applies to a "
         "whole Gateway: target a Gateway without sectionName"),
        ("SecurityPolicy", "norule", targets, "not applied here (TargetNotFound): HTTPRoute default/shop has no "
         "rule named 'nope'"),
        ("SecurityPolicy", "bodies", None, "securityTxt.expires is 0 days away "
         f"({SOON.replace(microsecond=0).isoformat()}): renew it"),
        ("SecurityPolicy", "bodies", "spec.directResponses[0].bodyFrom", "ConfigMap default/bodies has no key "
         "'nokey'; /nokey answers 500"),
        ("SecurityPolicy", "bodies", "spec.directResponses[1].bodyFrom", "ConfigMap default/bodies data.bad contains "
         "a control character at offset 1 (only tab and line breaks); /bad answers 500"),
    ]
    assert sorted(got, key=repr) == sorted((("m.yaml", kind, "default", name, fld, msg)
                                            for kind, name, fld, msg in expect), key=repr)


def effective(tr: Translation) -> dict[tuple[str, str, str], ir.Policy | None]:
    """(Gateway, listener, path) -> the policy where that match is served ("" : the listener's own)."""
    out: dict[tuple[str, str, str], ir.Policy | None] = {}
    for gw in tr.gateways:
        for port in gw.ports:
            for vh in port.vhosts:
                per_action = dict(vh.action_policies)
                for m in vh.matches:
                    pid = per_action.get(m.action)
                    out[(gw.key.name, vh.listener, m.path.value)] = gw.policies[pid] if pid is not None else None
                out[(gw.key.name, vh.listener, "")] = gw.policies[vh.policy] if vh.policy is not None else None
    return out


def test_what_applies_where_matches_the_status() -> None:
    tr = scenario()
    pols = effective(tr)

    def get(gw: str, listener: str, path: str) -> ir.Policy:
        pol = pols[(gw, listener, path)]
        assert pol is not None, (gw, listener, path)
        return pol

    # "scoped" (GET) applies on public/https only; rule login's oldest policy wins allowedMethods
    # there, the next one adds ipAccess; two-rules' ipAccess applies on rule cart.
    assert get("public", "https", "/").allowed_methods == ("GET",)
    assert get("public", "http", "/").allowed_methods == ()
    assert get("internal", "http", "/").allowed_methods == ()
    for gw, listener in (("public", "http"), ("public", "https"), ("internal", "http")):
        login = get(gw, listener, "/login")
        assert (login.allowed_methods, login.ip_deny, login.ip_allow) == (("POST",), ("10.0.0.0/8",), ())
        assert login.waf is not None and (login.waf.mode, login.waf.paranoia) == ("DetectOnly", 1)
        assert get(gw, listener, "/cart").ip_allow == ("192.0.2.0/24",)
    assert get("public", "https", "/cart").allowed_methods == ("GET",)
    # A RateLimitPolicy applies whole: rl-new's burst does not join rl-old's limit.
    for path in ("", "/", "/login"):
        rl = get("internal", "http", path).rate_limit
        assert rl is not None and (rl.requests, rl.period_s, rl.burst) == (5, 1, 0)
    assert get("internal", "admin", "").rate_limit is None
    assert get("internal", "admin", "").allowed_methods == ("HEAD",)  # undated wins
    # Direct responses: a missing key or unusable body answers 500, the others as set.
    direct = {d.path: (d.status, d.content_type, d.body) for d in get("internal", "admin", "").direct}
    assert direct == {
        "/.well-known/security.txt": (200, "text/plain; charset=utf-8", "Contact: mailto:s@example.com\nExpires: "
                                      + SOON.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "\n"),
        "/nokey": (500, "text/plain", ""), "/bad": (500, "text/plain", ""),
        "/good": (200, "text/plain", "Disallow: /"), "/empty": (204, "text/plain", "")}
    # HSTS: the Gateway's value on its HTTPS listener; the route's is ignored; none over HTTP.
    hsts = {(gw.key.name, vh.listener): vh.hsts for gw in tr.gateways for port in gw.ports for vh in port.vhosts}
    assert hsts == {("public", "http"): "", ("public", "https"): "max-age=600", ("internal", "http"): "",
                    ("internal", "admin"): ""}


def test_refused_updates_say_what_stays_in_force() -> None:
    """A refused policy is Invalid on each of its targets, naming the field; its last accepted
    version, if any, keeps applying."""
    first = parse(load_text(WORLD + policy("SecurityPolicy", "broken", [gateway_ref("public")],
                                           "allowedMethods: [GET]\n"), "v1.yaml"))
    update = WORLD + policy(
        "SecurityPolicy", "broken", [gateway_ref("public"), {**gateway_ref("internal", "admin"),
                                                             "group": "gateway.networking.k8s.io"}],
        "allowedMethods: [GET]\nrequestLimits: {maxBodySize: 12Q}\n", generation=3) + """
---
apiVersion: policy.wardgate.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: fresh}
spec: {targetRefs: [{kind: HTTPRoute, name: shop, sectionName: login}], requests: 0, unit: Minute}
---
apiVersion: policy.wardgate.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: zero, namespace: default, generation: 0}
spec: {requests: 1, unit: Minute}
"""
    # A refused object of another kind comes first: the refused policies after it are still reported.
    update = update.replace(WORLD, WORLD.replace("hostnames: [shop.example.com]", "hostnames: [Shop]") + """
---
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {name: elsewhere, namespace: other}
spec:
  targetRefs: [{group: example.com, kind: Gateway, name: x}]
  allowedMethods: [get]
""")
    rs, _ = parse_keeping(load_text(update, "v2.yaml"), {o.key: o for o in first.objects})
    assert sorted(r.data["metadata"]["name"] for r, _ in rs.rejected) == ["broken", "elsewhere", "fresh", "shop",
                                                                           "zero"]
    tr = translate(rs, Options(now=NOW))
    kept = ("spec.requestLimits.maxBodySize: invalid size '12Q': expected a number with an optional Ki, Mi, Gi, k, "
            "M or G suffix; the last accepted version stays in force")
    assert summary(tr, "SecurityPolicy", "broken") == [
        (G + "public", [("Accepted", "False", "Invalid", kept, 3)]),
        (G + "internal/admin", [("Accepted", "False", "Invalid", kept, 3)])]
    assert next(s for s in tr.statuses if s.key == ("SecurityPolicy", "default", "broken")).generation == 3
    assert summary(tr, "RateLimitPolicy", "fresh") == [("gateway.networking.k8s.io/HTTPRoute/default/shop/login", [
        ("Accepted", "False", "Invalid", "spec.requests: Input should be greater than or equal to 1; the policy is "
         "not applied", 1)])]
    assert summary(tr, "RateLimitPolicy", "zero") == [("gateway.networking.k8s.io//default/", [
        ("Accepted", "False", "Invalid", "spec.targetRefs: Field required; the policy is not applied", 1)])]
    status = next(s.to_dict()["status"] for s in tr.statuses if s.key == ("SecurityPolicy", "other", "elsewhere"))
    assert [a["ancestorRef"] for a in status["ancestors"]] == [
        {"group": "example.com", "kind": "Gateway", "namespace": "other", "name": "x"}]
    assert status["ancestors"][0]["conditions"][0]["message"].startswith(
        "spec.targetRefs[0].group: Input should be 'gateway.networking.k8s.io'; spec.allowedMethods[0]: ")
    # The last accepted version of "broken" still applies.
    assert effective(tr)[("public", "http", "/")] is not None
    assert effective(tr)[("public", "http", "/")].allowed_methods == ("GET",)  # type: ignore[union-attr]


MULTI = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: multi, namespace: default}
spec:
  parentRefs: [{name: public}, {name: internal}]
  hostnames: [multi.example.com]
  rules:
    - name: two
      matches: [{path: {type: Exact, value: /a}}, {path: {type: Exact, value: /b}}]
      backendRefs: [{name: app, port: 80}]
    - name: other
      matches: [{path: {type: PathPrefix, value: /c}}]
      backendRefs: [{name: app, port: 80}]
"""


def scoped_scenario() -> Translation:
    expires = SOON.strftime("%Y-%m-%dT%H:%M:%SZ")
    day = "2025-01-0{}T00:00:00Z".format
    return objects(WORLD + MULTI + "".join([
        # RateLimitPolicies on one route conflict only where their parentRefs overlap.
        policy("RateLimitPolicy", "rl-public-http", [route_ref("multi")],
               "parentRefs: [{name: public, sectionName: http}]\nrequests: 1\nunit: Second\n", day(1)),
        policy("RateLimitPolicy", "rl-public-https", [route_ref("multi")],
               "parentRefs: [{name: public, sectionName: https}]\nrequests: 2\nunit: Second\n", day(2)),
        policy("RateLimitPolicy", "rl-internal", [route_ref("multi")],
               "parentRefs: [{name: public, sectionName: https}, {name: internal}]\nrequests: 3\nunit: Second\n",
               day(3)),
        policy("RateLimitPolicy", "rl-both-http", [route_ref("multi")], "parentRefs: [{name: public, sectionName: "
               "http}, {name: internal, sectionName: http}]\nrequests: 4\nunit: Second\n", day(4)),
        policy("RateLimitPolicy", "rl-everywhere", [route_ref("multi")], "requests: 5\nunit: Second\n", day(5)),
        # Both name the same parent and set different fields: parentRefs is not a field that conflicts.
        policy("SecurityPolicy", "sp-methods", [route_ref("multi")], "parentRefs: [{name: public}]\n"
               "allowedMethods: [GET]\n", day(1)),
        policy("SecurityPolicy", "sp-limits", [route_ref("multi")], "parentRefs: [{name: public}]\n"
               "requestLimits: {maxURLLength: 100}\n", day(2)),
        policy("SecurityPolicy", "gw-a", [gateway_ref("public")], "allowedMethods: [GET]\n"
               "ipAccess: {deny: [10.0.0.0/8]}\n", day(1)),
        policy("SecurityPolicy", "gw-b", [gateway_ref("public")], "allowedMethods: [PUT]\n"
               "ipAccess: {allow: [10.1.0.0/16]}\nrequestLimits: {maxURLLength: 99}\nhsts: {maxAge: 5}\n", day(2)),
        policy("SecurityPolicy", "twice", [gateway_ref("internal"), gateway_ref("internal")],
               "allowedMethods: [GET]\n"),
        policy("SecurityPolicy", "other-rule", [route_ref("multi", "other")], "requestLimits: {maxBodySize: 1}\n"),
        policy("SecurityPolicy", "two-owner", [route_ref("multi", "two")], "ipAccess: {deny: [10.0.0.0/8]}\n"
               "directResponses: [{path: /y, body: owner}]\n"),
        policy("SecurityPolicy", "both-rules", [route_ref("multi", "two"), route_ref("multi", "other")], f"""\
            ipAccess: {{allow: [10.2.0.0/16]}}
            hsts: {{maxAge: 7}}
            securityTxt: {{contact: ['mailto:s@example.com'], expires: '{expires}'}}
            """, day(6)),
        policy("SecurityPolicy", "unresolved", [route_ref("multi", "two"), route_ref("multi", "other")],
               "directResponses: [{path: /z, bodyFrom: {configMapRef: {name: none, key: k}}}]\n", day(7)),
        policy("SecurityPolicy", "https-hsts", [gateway_ref("public", "https")], "hsts: {maxAge: 9}\n"),
        policy("SecurityPolicy", "allow", [gateway_ref("internal", "admin")], "urlAllowlist: {paths: [{type: "
               "PathPrefix, value: /api/}, {type: Exact, value: /x/}]}\nwaf: {exclusions: [{paths: [{type: "
               "PathPrefix, value: /up/}]}]}\n"),
        policy("ClientTrafficPolicy", "ctp-a", [gateway_ref("internal")], "clientIP: {source: Connection}\n", day(1)),
        policy("ClientTrafficPolicy", "ctp-b", [gateway_ref("internal")], "path: {ambiguous: Allow}\n"
               "clientIP: {source: Connection}\n", day(2)),
    ]))


def test_scoped_and_combined_policies_word_for_word() -> None:
    tr = scoped_scenario()

    def conflicted(older: str) -> tuple[str, str, str, str, int]:
        return ("Accepted", "False", "Conflicted", f"RateLimitPolicy default/{older} targets the same HTTPRoute "
                "default/multi and is older; a RateLimitPolicy applies whole", 1)

    gw_a = "SecurityPolicy default/gw-a, which also sets it on Gateway default/public and is older"
    lost = f"spec.allowedMethods comes from {gw_a}; spec.ipAccess comes from {gw_a}"
    both = ("spec.securityTxt, spec.hsts apply; spec.ipAccess comes from SecurityPolicy default/two-owner, which also "
            "sets it on HTTPRoute default/multi/two and is older")
    warnings = ("warnings: securityTxt.expires is 0 days away "
                f"({SOON.replace(microsecond=0).isoformat()}): renew it")
    ctp = ("spec.clientIP comes from ClientTrafficPolicy default/ctp-a, which also sets it on Gateway default/internal "
           "and is older")
    expect = {
        ("RateLimitPolicy", "rl-public-http"): [(G + "public/http", [ACCEPTED])],
        ("RateLimitPolicy", "rl-public-https"): [(G + "public/https", [ACCEPTED])],
        ("RateLimitPolicy", "rl-internal"): [(G + "internal", [ACCEPTED]),
                                             (G + "public/https", [conflicted("rl-public-https")])],
        ("RateLimitPolicy", "rl-both-http"): [(G + "internal/http", [conflicted("rl-internal")]),
                                              (G + "public/http", [conflicted("rl-public-http")])],
        ("RateLimitPolicy", "rl-everywhere"): [(G + "internal", [conflicted("rl-internal")]),
                                               (G + "public", [conflicted("rl-public-http")])],
        ("SecurityPolicy", "sp-methods"): [(G + "public", [ACCEPTED])],
        ("SecurityPolicy", "sp-limits"): [(G + "public", [ACCEPTED])],
        ("SecurityPolicy", "gw-a"): [(G + "public", [ACCEPTED])],
        ("SecurityPolicy", "gw-b"): [(G + "public", [
            ("Accepted", "True", "Accepted", f"Accepted; spec.requestLimits, spec.hsts apply; field conflict: {lost}",
             1),
            ("PartiallyEnforced", "True", "Conflicted", f"spec.requestLimits, spec.hsts apply; {lost}", 1)])],
        ("SecurityPolicy", "twice"): [(G + "internal", [ACCEPTED])],
        ("SecurityPolicy", "other-rule"): [(G + "internal", [ACCEPTED]), (G + "public", [ACCEPTED])],
        ("SecurityPolicy", "two-owner"): [(G + "internal", [ACCEPTED]), (G + "public", [ACCEPTED])],
        # Partly enforced on rule two, whole on rule other: one entry per Gateway, "Accepted" once.
        ("SecurityPolicy", "both-rules"): [(G + gw, [
            ("Accepted", "True", "Accepted", f"Accepted; {both.replace(' apply;', ' apply; field conflict:')}; "
             f"{warnings}", 1),
            ("PartiallyEnforced", "True", "Conflicted", both, 1)]) for gw in ("internal", "public")],
        # Conflicted on rule two, where the ConfigMap is not looked up; on rule other it is missing.
        ("SecurityPolicy", "unresolved"): [(G + gw, [
            ("Accepted", "True", "Accepted", "Accepted; every field conflicts: spec.directResponses comes from "
             "SecurityPolicy default/two-owner, which also sets it on HTTPRoute default/multi/two and is older", 1),
            ("ResolvedRefs", "False", "InvalidRef", "spec.directResponses[0].bodyFrom: ConfigMap default/none does "
             "not exist; /z answers 500", 1)]) for gw in ("internal", "public")],
        ("SecurityPolicy", "https-hsts"): [(G + "public/https", [ACCEPTED])],
        ("SecurityPolicy", "allow"): [(G + "internal/admin", [ACCEPTED])],
        ("ClientTrafficPolicy", "ctp-a"): [(G + "internal", [ACCEPTED])],
        ("ClientTrafficPolicy", "ctp-b"): [(G + "internal", [
            ("Accepted", "True", "Accepted", f"Accepted; spec.path apply; field conflict: {ctp}", 1),
            ("PartiallyEnforced", "True", "Conflicted", f"spec.path apply; {ctp}", 1)])],
    }
    got = {(s.kind, s.name): summary(tr, s.kind, s.name) for s in tr.statuses if s.kind.endswith("Policy")}
    assert set(got) == set(expect)
    for key, want in expect.items():
        assert got[key] == want, key

    pols = effective(tr)

    def get(gw: str, listener: str, path: str) -> ir.Policy:
        pol = pols[(gw, listener, path)]
        assert pol is not None, (gw, listener, path)
        return pol

    for (gw, listener), requests in {("public", "http"): 1, ("public", "https"): 2, ("internal", "http"): 3,
                                     ("internal", "admin"): 3}.items():
        for path in ("/a", "/b", "/c"):  # every match of rule two, and rule other after it
            rl = get(gw, listener, path).rate_limit
            assert rl is not None and rl.requests == requests, (gw, listener, path)
    for listener in ("http", "https"):
        assert (get("public", listener, "/a").allowed_methods, get("public", listener, "/a").max_url_length) == (
            ("GET",), 100)
        assert get("public", listener, "/").max_url_length == 99
        assert get("public", listener, "/c").max_body_bytes == 1
    admin = get("internal", "admin", "")
    assert admin.allowlist == (ir.PathMatch("PathPrefix", "/api"), ir.PathMatch("Exact", "/x/"))
    assert admin.waf is not None and admin.waf.exclusions[0].paths == (ir.PathMatch("PathPrefix", "/up"),)
    internal = next(gw for gw in tr.gateways if gw.key.name == "internal")
    assert internal.reject_ambiguous_paths is False  # ctp-b's path applies
    hsts = {(gw.key.name, vh.listener): vh.hsts for gw in tr.gateways for port in gw.ports for vh in port.vhosts}
    assert hsts[("public", "https")] == "max-age=9; includeSubDomains"  # the listener's over the Gateway's


def test_waf_body_limit_follows_max_body_size() -> None:
    assert waf_body_limit(None) == ir.NGINX_BODY_LIMIT  # nginx's default applies first
    assert waf_body_limit(0) == ir.WAF_BODY_CAP  # no nginx limit: ModSecurity still holds the body in memory
    assert waf_body_limit(1) == 1 and waf_body_limit(5 << 20) == 5 << 20
