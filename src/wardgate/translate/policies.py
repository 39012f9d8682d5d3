"""Policy attachment (GEP-713): which wardgate policies apply where, merged, and their status.

Levels, least to most specific: Gateway, Gateway listener (sectionName), HTTPRoute, HTTPRoute
rule (sectionName = rule name). The most specific level wins, each field by its merge rule
(`merge_specs`). A policy on routes may name the parents it applies on (`spec.parentRefs`).
Several policies of one kind on the same target (and parent): each spec field comes from the
oldest that sets it (creationTimestamp, then namespace/name, as GEP-713 says); a policy that
loses some of its fields is PartiallyEnforced, one that loses all of them Conflicted.
RateLimitPolicy is one limit: there the oldest policy wins whole.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from wardgate import ir, quoting
from wardgate.errors import Problem
from wardgate.keys import ObjectKey
from wardgate.model import ResourceSet
from wardgate.model.gatewayapi import GROUP, HTTPPathMatch
from wardgate.model.policies import (
    POLICY_KINDS,
    SECURITY_TXT_PATH,
    SINGLETON_HEADERS,
    ClientTrafficPolicySpec,
    Policy,
    PolicyHeader,
    PolicyHeaderFilter,
    PolicyTargetRef,
    RateLimitPolicySpec,
    ResponseHeader,
    ResponseHeaderFilter,
    SecurityPolicySpec,
    SecurityTxt,
    combine_same_target,
    merge_specs,
)
from wardgate.translate import auth
from wardgate.translate.compat import normalize_prefix
from wardgate.translate.conditions import ObjectStatus, Reason, condition
from wardgate.translate.gateways import GatewayPlan
from wardgate.translate.index import Index

PERIODS = {"Second": 1, "Minute": 60, "Hour": 3600}
DUPLICATE_ACTIONS: dict[str, ir.DuplicateAction] = {
    "Allow": "allow", "Reject": "reject", "KeepFirst": "first", "KeepLast": "last"}
EXPIRY_WARNING_DAYS = 30

# (kind, namespace, name, sectionName or "")
TargetKey = tuple[str, str, str, str]
# The listeners of one Gateway a policy applies on: all of them, some, or none.
Scope = Literal["all"] | frozenset[str] | None
# Kinds whose settings only make sense together: the oldest policy on a target wins whole.
ATOMIC_KINDS = frozenset({"RateLimitPolicy"})


def _age(p: Policy) -> tuple[str, str, str]:
    return (p.metadata.creation_timestamp or "", p.namespace, p.name)


def scope_on(pol: Policy, gateway: ObjectKey) -> Scope:
    """Where on `gateway` a policy applies, as its spec.parentRefs say (all listeners without)."""
    refs = getattr(pol.spec, "parent_refs", None)
    if refs is None:
        return "all"
    listeners: set[str] = set()
    for ref in refs:
        if ObjectKey("Gateway", ref.namespace or pol.namespace, ref.name) != gateway:
            continue
        if ref.section_name is None:
            return "all"
        listeners.add(ref.section_name)
    return frozenset(listeners) or None


def _overlap(a: Scope, b: Scope) -> bool:
    if a is None or b is None:
        return False
    return a == "all" or b == "all" or bool(a & b)


def _fields(pol: Policy) -> list[str]:
    """The spec fields a policy sets (what it says, not where it applies), in declaration order."""
    spec = type(pol.spec)
    return [name for name in spec.model_fields
            if name in pol.spec.model_fields_set and name not in ("target_refs", "parent_refs")]


def _spec_path(pol: Policy, name: str) -> str:
    return "spec." + (type(pol.spec).model_fields[name].alias or name)


def _target(key: TargetKey) -> str:
    return f"{key[0]} {key[1]}/{key[2]}{'/' + key[3] if key[3] else ''}"


def security_txt_body(txt: SecurityTxt) -> str:
    """The RFC 9116 file: one `Field: value` line per value."""
    lines = [f"Contact: {c}" for c in txt.contact]
    lines.append("Expires: " + txt.expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    lines += [f"Encryption: {v}" for v in txt.encryption]
    lines += [f"Acknowledgments: {v}" for v in txt.acknowledgments]
    if txt.preferred_languages:
        lines.append("Preferred-Languages: " + ", ".join(txt.preferred_languages))
    lines += [f"Canonical: {v}" for v in txt.canonical]
    lines += [f"Policy: {v}" for v in txt.policy]
    lines += [f"Hiring: {v}" for v in txt.hiring]
    return "\n".join(lines) + "\n"


@dataclass
class _Ancestor:
    ref: dict[str, Any]
    accepted: bool
    reason: Reason
    message: str
    unresolved: str | None = None  # ResolvedRefs=False: why (a direct response's ConfigMap)
    superseded: str | None = None  # PartiallyEnforced: the fields an older policy provides instead


@dataclass
class PolicyAttachment:
    """Every policy's targets resolved once per translation."""

    rs: ResourceSet
    index: Index
    plans: dict[ObjectKey, GatewayPlan]
    # route key -> Gateway key -> names of the listeners it is attached to
    route_parents: dict[ObjectKey, dict[ObjectKey, set[str]]]
    controller: str
    now: str
    problems: list[Problem] = field(default_factory=list)
    # kind -> target -> the policies attached to it, oldest first
    attached: dict[str, dict[TargetKey, list[Policy]]] = field(default_factory=dict)
    _ancestors: dict[ObjectKey, list[_Ancestor]] = field(default_factory=dict)
    _notes: dict[ObjectKey, list[str]] = field(default_factory=dict)
    _policies: dict[ObjectKey, Policy] = field(default_factory=dict)
    _reported: set[Problem] = field(default_factory=set)

    def __post_init__(self) -> None:
        for kind, cls in POLICY_KINDS.items():
            attached: dict[TargetKey, list[Policy]] = {}
            self.attached[kind] = attached
            for pol in sorted(self.rs.of(cls), key=_age):
                self._policies[pol.key] = pol
                for ref in pol.spec.target_refs:
                    key = self._resolve(kind, pol, ref)
                    if key is not None and not any(p is pol for p in attached.get(key, ())):
                        attached.setdefault(key, []).append(pol)
            for key, pols in attached.items():
                for i, pol in enumerate(pols):
                    for gateway, ref, scope in self._ancestors_of(key, pol):
                        rivals = [q for q in pols[:i] if _overlap(scope_on(q, gateway), scope)]
                        self._add(pol, self._judge(kind, key, pol, rivals, ref))

    def _judge(self, kind: str, key: TargetKey, pol: Policy, rivals: list[Policy], ref: dict[str, Any]) -> _Ancestor:
        """`pol`'s status on one ancestor, given the older policies that apply there too."""
        if not rivals:
            return _Ancestor(ref, True, "Accepted", "Accepted")
        first = rivals[0]
        if kind in ATOMIC_KINDS:
            return _Ancestor(ref, False, "Conflicted", f"{kind} {first.namespace}/{first.name} targets the same "
                                                       f"{_target(key)} and is older; a {kind} applies whole")
        lost: dict[str, Policy] = {}
        mine = _fields(pol)
        for name in mine:
            owner = next((q for q in rivals if name in q.spec.model_fields_set), None)
            if owner is not None:
                lost[name] = owner
        if not lost:
            return _Ancestor(ref, True, "Accepted", "Accepted")
        detail = "; ".join(
            f"{_spec_path(pol, name)} comes from {kind} {owner.namespace}/{owner.name}, which also sets it on "
            f"{_target(key)} and is older" for name, owner in lost.items())
        if len(lost) == len(mine):
            return _Ancestor(ref, False, "Conflicted", f"every field conflicts: {detail}")
        kept = ", ".join(_spec_path(pol, name) for name in mine if name not in lost)
        return _Ancestor(ref, True, "Accepted", f"Accepted; {kept} apply; field conflict: {detail}",
                         superseded=f"{kept} apply; {detail}")

    # --- targets ------------------------------------------------------------------------------

    def _ancestors_of(self, key: TargetKey, pol: Policy) -> list[tuple[ObjectKey, dict[str, Any], Scope]]:
        """(Gateway, ancestorRef, listeners) for each ancestor `pol` applies on through `key`: the
        Gateway for a Gateway target; each parent it applies on for a route target (with a
        sectionName when its parentRefs name listeners)."""
        kind, ns, name, section = key
        if kind == "Gateway":
            ref: dict[str, Any] = {"group": GROUP, "kind": "Gateway", "namespace": ns, "name": name}
            if section:
                ref["sectionName"] = section
            return [(ObjectKey("Gateway", ns, name), ref, "all")]
        out: list[tuple[ObjectKey, dict[str, Any], Scope]] = []
        for gateway, listeners in sorted(self.route_parents.get(ObjectKey("HTTPRoute", ns, name), {}).items()):
            base = {"group": GROUP, "kind": "Gateway", "namespace": gateway.namespace, "name": gateway.name}
            scope = scope_on(pol, gateway)
            if scope == "all":
                out.append((gateway, base, scope))
            elif scope is not None:
                out += [(gateway, {**base, "sectionName": lst}, frozenset({lst}))
                        for lst in sorted(scope) if lst in listeners]
        return out

    def _check_parent_refs(self, pol: Policy, route: ObjectKey) -> bool:
        """Report each of `pol`'s parentRefs the route is not attached through; whether any is."""
        refs = getattr(pol.spec, "parent_refs", None)
        if refs is None:
            return True
        parents = self.route_parents.get(route, {})
        ok = False
        for ref in refs:
            gateway = ObjectKey("Gateway", ref.namespace or pol.namespace, ref.name)
            if gateway not in self.plans and any(g.key == gateway for g in self.rs.gateways):
                continue  # another controller's Gateway: not ours to report on
            listeners = parents.get(gateway)
            if listeners is not None and (ref.section_name is None or ref.section_name in listeners):
                ok = True
                continue
            anc: dict[str, Any] = {"group": GROUP, "kind": "Gateway", "namespace": gateway.namespace,
                                   "name": gateway.name}
            where = f"Gateway {gateway.namespace}/{gateway.name}"
            if ref.section_name:
                anc["sectionName"] = ref.section_name
                where += f" listener {ref.section_name}"
            self._add(pol, _Ancestor(anc, False, "TargetNotFound",
                                     f"spec.parentRefs: HTTPRoute {route.namespace}/{route.name} is not attached "
                                     f"to {where}"))
        return ok

    def _resolve(self, kind: str, pol: Policy, ref: PolicyTargetRef) -> TargetKey | None:
        ns = pol.namespace
        ref_dict: dict[str, Any] = {"group": ref.group, "kind": ref.kind, "namespace": ns, "name": ref.name}
        if ref.section_name:
            ref_dict["sectionName"] = ref.section_name
        where = f"{ref.kind} {ns}/{ref.name}"
        if kind == "ClientTrafficPolicy" and (ref.kind != "Gateway" or ref.section_name):
            self._add(pol, _Ancestor(ref_dict, False, "Invalid",
                                     "ClientTrafficPolicy applies to a whole Gateway: target a Gateway without "
                                     "sectionName"))
            return None
        if ref.kind == "Gateway":
            plan = self.plans.get(ObjectKey("Gateway", ns, ref.name))
            if plan is None:
                if any(g.key == ObjectKey("Gateway", ns, ref.name) for g in self.rs.gateways):
                    return None  # another controller's Gateway: not ours to report on
                self._add(pol, _Ancestor(ref_dict, False, "TargetNotFound", f"{where} does not exist"))
                return None
            if ref.section_name and ref.section_name not in {lp.name for lp in plan.listeners}:
                self._add(pol, _Ancestor(ref_dict, False, "TargetNotFound",
                                         f"{where} has no listener named {ref.section_name!r}"))
                return None
            return ("Gateway", ns, ref.name, ref.section_name or "")
        route = self.index.route(ns, ref.name)
        if route is None:
            self._add(pol, _Ancestor(ref_dict, False, "TargetNotFound", f"{where} does not exist"))
            return None
        if ref.section_name and ref.section_name not in {r.name for r in route.spec.rules}:
            self._add(pol, _Ancestor(ref_dict, False, "TargetNotFound",
                                     f"{where} has no rule named {ref.section_name!r}"))
            return None
        if not self.route_parents.get(ObjectKey("HTTPRoute", ns, ref.name)):
            self._add(pol, _Ancestor(ref_dict, False, "TargetNotFound",
                                     f"{where} is not attached to any Gateway of this controller"))
            return None
        if not self._check_parent_refs(pol, ObjectKey("HTTPRoute", ns, ref.name)):
            return None
        return ("HTTPRoute", ns, ref.name, ref.section_name or "")

    def _add(self, pol: Policy, anc: _Ancestor) -> None:
        self._ancestors.setdefault(pol.key, []).append(anc)
        if not anc.accepted:  # also a warning in logs, `wardgate validate` and /status
            self.report(pol, f"not applied here ({anc.reason}): {anc.message}", "spec.targetRefs")

    def report(self, pol: Policy, message: str, field: str | None = None) -> None:
        """A problem of `pol`, once: the same one is found on every Gateway, listener and route
        the policy reaches."""
        problem = Problem(message, pol.origin, pol.kind, pol.namespace, pol.name, field)
        if problem not in self._reported:
            self._reported.add(problem)
            self.problems.append(problem)

    def note(self, pol: Policy, message: str) -> None:
        """A warning shown in the policy's Accepted message (and in `wardgate status`)."""
        notes = self._notes.setdefault(pol.key, [])
        if message not in notes:
            notes.append(message)
            self.report(pol, message)

    # --- effective settings -------------------------------------------------------------------

    @property
    def route_level(self) -> bool:
        """Whether any Security or RateLimit policy targets a listener or a route."""
        return any(key[0] == "HTTPRoute" or key[3] for kind in ("SecurityPolicy", "RateLimitPolicy")
                   for key in self.attached[kind])

    def chain(self, kind: str, gateway: ObjectKey, listener: str,
              route: ObjectKey | None = None, rule: str | None = None) -> list[list[Policy]]:
        """The policies of `kind` that apply, by level, least specific first; oldest first within
        a level (only the oldest for an atomic kind)."""
        attached = self.attached[kind]
        if not attached:
            return []
        keys: list[TargetKey] = [(*gateway, ""), (*gateway, listener)]
        if route is not None:
            keys.append((*route, ""))
            if rule:
                keys.append((*route, rule))
        levels = []
        for key in keys:
            # A policy on a Gateway has no parentRefs: scope_on gives "all".
            level = [p for p in attached.get(key, ()) if _applies(scope_on(p, gateway), listener)]
            if level:
                levels.append(level[:1] if kind in ATOMIC_KINDS else level)
        return levels

    def combined(self, kind: str, key: TargetKey) -> Any:
        """The spec the policies on `key` add up to (None without any)."""
        pols = self.attached[kind].get(key)
        return merged([pols]) if pols else None

    # --- status -------------------------------------------------------------------------------

    def statuses(self) -> list[ObjectStatus]:
        out: dict[ObjectKey, ObjectStatus] = {}
        for key, pol in self._policies.items():
            gen = pol.metadata.generation
            notes = self._notes.get(key, [])
            items = []
            for anc in _one_per_ancestor(self._ancestors.get(key, [])):
                message = anc.message
                if anc.accepted and notes:
                    message += "; warnings: " + "; ".join(notes)
                conds = [condition("Accepted", anc.accepted, anc.reason, message, gen, self.now)]
                if anc.accepted and anc.superseded:
                    conds.append(condition("PartiallyEnforced", True, "Conflicted", anc.superseded, gen, self.now))
                if anc.unresolved is not None:
                    conds.append(condition("ResolvedRefs", False, "InvalidRef", anc.unresolved, gen, self.now))
                items.append({"ancestorRef": anc.ref, "controllerName": self.controller, "conditions": conds})
            out[key] = ObjectStatus(pol.kind, pol.namespace, pol.name, gen, {"ancestors": items})
        # A refused update: say so, even while the last accepted version keeps applying.
        for raw, problems in self.rs.rejected:
            data = raw.data
            kind = str(data.get("kind", ""))
            if kind not in POLICY_KINDS or not str(data.get("apiVersion", "")).startswith("policy.wardgate.io/"):
                continue
            meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
            assert isinstance(meta, dict)
            ns, name = str(meta.get("namespace") or "default"), str(meta.get("name", ""))
            raw_gen = meta.get("generation")
            gen = raw_gen if isinstance(raw_gen, int) and raw_gen > 0 else 1
            kept = ObjectKey(kind, ns, name) in self._policies
            message = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems)
            message += ("; the last accepted version stays in force" if kept else "; the policy is not applied")
            refs = []
            spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
            assert isinstance(spec, dict)
            for ref in spec.get("targetRefs") or [{}]:
                if isinstance(ref, dict):
                    refs.append({"group": ref.get("group", GROUP), "kind": ref.get("kind", ""), "namespace": ns,
                                 "name": ref.get("name", ""),
                                 **({"sectionName": ref["sectionName"]} if ref.get("sectionName") else {})})
            items = [{"ancestorRef": r, "controllerName": self.controller,
                      "conditions": [condition("Accepted", False, "Invalid", message, gen, self.now)]}
                     for r in refs]
            out[ObjectKey(kind, ns, name)] = ObjectStatus(kind, ns, name, gen, {"ancestors": items})
        return list(out.values())

    def set_unresolved(self, pol: Policy, message: str) -> None:
        """ResolvedRefs=False where `pol` applies; the first reference that fails is reported."""
        for anc in self._ancestors.get(pol.key, []):
            if anc.accepted and anc.unresolved is None:
                anc.unresolved = message


def _hsts(chain: list[list[Policy]]) -> str | None:
    """The Strict-Transport-Security header these levels set ("" for off), None if none sets hsts."""
    if not any("hsts" in p.spec.model_fields_set for level in chain for p in level):
        return None
    spec: SecurityPolicySpec = merged(chain)
    return spec.hsts.header() if spec.hsts is not None else ""


def _applies(scope: Scope, listener: str) -> bool:
    return scope == "all" or (scope is not None and listener in scope)


def merged(levels: list[list[Policy]]) -> Any:
    """The effective spec: each level's policies combined (oldest wins per field), then levels
    merged, the more specific on top."""
    spec: Any = None
    for level in levels:
        here = combine_same_target([p.spec for p in level])
        spec = here if spec is None else merge_specs(spec, here)
    return spec


def _one_per_ancestor(entries: list[_Ancestor]) -> list[_Ancestor]:
    """One entry per ancestor (a policy targeting two rules of a route reaches its Gateways
    twice): accepted if it applies through any target, with every other outcome in the message."""
    by_ref: dict[str, _Ancestor] = {}
    for anc in entries:
        key = repr(sorted(anc.ref.items()))
        have = by_ref.get(key)
        if have is None:
            by_ref[key] = replace(anc, ref=dict(anc.ref))
            continue
        first, second = (have, anc) if have.accepted or not anc.accepted else (anc, have)
        # "Accepted" once: what the second entry adds follows the first's message.
        extra = second.message.removeprefix("Accepted; ") if first.accepted else second.message
        message = first.message if extra in first.message else f"{first.message}; {extra}"
        superseded = "; ".join(dict.fromkeys(s for s in (first.superseded, second.superseded) if s)) or None
        by_ref[key] = _Ancestor(first.ref, first.accepted, first.reason, message,
                                first.unresolved or second.unresolved, superseded)
    return list(by_ref.values())


# SecurityPolicy valueFrom -> the IR's per-request values (render maps each to one fixed variable).
_VALUE_FROM: dict[str, ir.RequestValueKind] = {
    "ClientIP": "client_ip", "RequestID": "request_id", "Host": "host", "Scheme": "scheme"}


def _header_value(h: PolicyHeader) -> ir.HeaderValue:
    value: ir.PlainValue
    if h.value_from is not None:
        value = ir.RequestValue(_VALUE_FROM[h.value_from])
    else:
        assert h.value is not None  # the model requires exactly one
        value = h.value
    if isinstance(h, ResponseHeader) and h.statuses is not None:
        return ir.OnStatuses(value, tuple(sorted(h.statuses)))
    return value


def policy_header_ops(f: PolicyHeaderFilter | ResponseHeaderFilter | None) -> ir.HeaderOps:
    if f is None:
        return ir.HeaderOps()
    return ir.HeaderOps(
        set=tuple((h.name, _header_value(h)) for h in f.set),
        add=tuple((h.name, _header_value(h)) for h in f.add),
        remove=tuple(f.remove),
    )


def waf_body_limit(max_body: int | None) -> int:
    """ModSecurity's body limits follow nginx's, which answers first (413, `request-limits`):
    maxBodySize, nginx's default without one. Without a limit (0) nginx streams any size, but
    ModSecurity holds the body in memory, so it stops at WAF_BODY_CAP (413, `waf-body-limit`)."""
    if max_body is None:
        return ir.NGINX_BODY_LIMIT
    return max_body if max_body > 0 else ir.WAF_BODY_CAP


def _path(p: HTTPPathMatch) -> ir.PathMatch:
    return ir.PathMatch(p.type, normalize_prefix(p.value) if p.type == "PathPrefix" else p.value)


@dataclass
class PolicyResolver:
    """Effective ir.Policy per (listener, route, rule) of one Gateway, interned by value."""

    attachment: PolicyAttachment
    gateway: ObjectKey
    policies: dict[ir.Policy, int] = field(default_factory=dict)
    # Upstreams of the Services policies send requests to (auth services, error pages).
    services: auth.PolicyServices = field(default_factory=auth.PolicyServices)
    _cache: dict[tuple[object, ...], int | None] = field(default_factory=dict)

    def policy(self, listener: str, route: ObjectKey | None = None, rule: str | None = None) -> int | None:
        key = (listener, route, rule)
        if key in self._cache:
            return self._cache[key]
        sec = self.attachment.chain("SecurityPolicy", self.gateway, listener, route, rule)
        rl = self.attachment.chain("RateLimitPolicy", self.gateway, listener, route, rule)
        result: int | None = None
        if sec or rl:
            built = self._build(sec, rl)
            if route is not None and sec:
                built = replace(built, hsts=self._place_hsts(listener, sec))
            result = self.policies.setdefault(built, len(self.policies))
        self._cache[key] = result
        return result

    def hsts(self, listener: str) -> str | None:
        """Strict-Transport-Security as the Gateway- and listener-level policies set it ("" for
        off); None when none sets it: the host's value, on every answer of the host."""
        return _hsts(self.attachment.chain("SecurityPolicy", self.gateway, listener))

    def _place_hsts(self, listener: str, chain: list[list[Policy]]) -> str | None:
        """A route's or rule's own Strict-Transport-Security, merged key by key over the host's,
        when a route-level policy sets `hsts`; None leaves the host's."""
        host = len(self.attachment.chain("SecurityPolicy", self.gateway, listener))
        return _hsts(chain) if _hsts(chain[host:]) is not None else None

    def ordered(self) -> tuple[ir.Policy, ...]:
        return tuple(replace(p, id=i) for p, i in sorted(self.policies.items(), key=lambda kv: kv[1]))

    def _setter(self, chain: list[list[Policy]], name: str) -> Policy:
        """The policy whose spec field `name` is in effect: the oldest that sets it at the most
        specific level that does."""
        return next(pol for level in reversed(chain) for pol in level if name in pol.spec.model_fields_set)

    def _build(self, sec: list[list[Policy]], rl: list[list[Policy]]) -> ir.Policy:
        out = ir.Policy(id=0)
        if sec:
            s: SecurityPolicySpec = merged(sec)
            out = replace(
                out,
                request_headers=policy_header_ops(s.request_headers),
                response_headers=policy_header_ops(s.response_headers),
                allowed_methods=tuple(dict.fromkeys(s.allowed_methods or ())),
                # Only means something with a method list: policies that differ in nothing else stay one.
                allow_header=not s.allowed_methods or s.method_not_allowed is None
                or s.method_not_allowed.allow_header,
                allowlist=tuple(_path(p) for p in s.url_allowlist.paths) if s.url_allowlist else (),
                allowlist_status=s.url_allowlist.status if s.url_allowlist else 404,
                direct=self._direct(s, sec),
            )
            if s.duplicate_headers is not None:
                dh = s.duplicate_headers
                listed = {h.name.lower(): DUPLICATE_ACTIONS[h.action] for h in dh.headers}
                for name in SINGLETON_HEADERS:
                    listed.setdefault(name.lower(), "reject")
                out = replace(out, duplicate_default=DUPLICATE_ACTIONS[dh.default],
                              duplicate_headers=tuple(sorted(listed.items())))
            if s.ip_access is not None:
                out = replace(out, ip_allow=tuple(s.ip_access.allow), ip_deny=tuple(s.ip_access.deny))
            if s.request_limits is not None:
                lim = s.request_limits
                out = replace(out, max_body_bytes=lim.max_body_size, max_url_length=lim.max_url_length,
                              max_header_bytes=lim.max_header_size)
            if s.concurrent_requests is not None:
                cr = s.concurrent_requests
                # One budget per policy that sets it: a Gateway-wide limit counts a client's requests
                # on every route it covers together, a route's own limit counts them apart.
                setter = self._setter(sec, "concurrent_requests")
                ident = repr((setter.namespace, setter.name, cr.model_dump()))
                out = replace(out, concurrency=ir.Concurrency(
                    "c" + hashlib.sha256(ident.encode()).hexdigest()[:12], cr.limit, cr.status,
                    tuple(cr.exempt_cidrs)))
            if s.ingress_nginx_cors is not None:
                c = s.ingress_nginx_cors
                out = replace(out, nginx_cors=ir.NginxCors(tuple(c.allow_origins), c.allow_methods, c.allow_headers,
                                                           c.expose_headers, c.allow_credentials, c.max_age))
            if s.waf is not None:
                w = s.waf
                out = replace(out, waf=ir.Waf(w.mode, w.paranoia_level, w.anomaly_threshold, tuple(
                    ir.WafExclusion(tuple(e.rule_ids), tuple(e.args), tuple(e.request_headers),
                                    tuple(_path(p) for p in e.paths)) for e in w.exclusions),
                    methods=out.allowed_methods or ir.STANDARD_METHODS,
                    uninspected_types=tuple(dict.fromkeys(w.allow_uninspected_content_types)),
                    body_limit=waf_body_limit(out.max_body_bytes)))
            out = self._access(s, sec, out)
        if rl:
            r: RateLimitPolicySpec = merged(rl)
            # One budget per distinct (policies, settings): a Gateway-wide limit is shared by every
            # route it covers; a route that changes any field gets its own.
            ident = repr(([(p.namespace, p.name) for level in rl for p in level],
                          r.model_dump(exclude={"target_refs", "parent_refs"})))
            bucket = "b" + hashlib.sha256(ident.encode()).hexdigest()[:12]
            key = {"ClientIP": "ip", "Header": "header", "Route": "route"}[r.key.type]
            out = replace(out, rate_limit=ir.RateLimit(
                bucket, r.requests, PERIODS[r.unit], r.burst, key,  # type: ignore[arg-type]
                r.key.header.lower() if r.key.header else None, tuple(r.exempt_cidrs), r.status,
                r.rate_limit_headers))
        return out

    def _access(self, s: SecurityPolicySpec, chain: list[list[Policy]], out: ir.Policy) -> ir.Policy:
        """basicAuth, externalAuth and errorPages: their Secret and Services resolved, problems
        reported on the policy that set each."""
        index = self.attachment.index
        for name in ("basic_auth", "external_auth", "error_pages"):
            value = getattr(s, name)
            if value is None:
                continue
            setter = self._setter(chain, name)
            found = auth.Resolved()
            if name == "basic_auth":
                basic = auth.basic_auth(value, setter, index.secret(setter.namespace, value.secret_ref.name), found)
                # Credentials stay at the gateway, as with ingress-nginx.
                out = replace(out, basic_auth=basic,
                              request_headers=out.request_headers + ir.HeaderOps(remove=("Authorization",)))
            elif name == "external_auth":
                ext = auth.external_auth(value, setter, index, self.services, found, _header_value)
                # The auth service's answer wins over the client's headers of the same names.
                copied = ir.HeaderOps(set=tuple((h, ir.RequestValue("auth_response", h)) for h in ext.response_headers))
                out = replace(out, external_auth=ext, request_headers=out.request_headers + copied)
            else:
                out = replace(out, error_pages=auth.error_pages(value, setter, index, self.services, found,
                                                                _header_value))
            for where, message in found.problems:
                self.attachment.set_unresolved(setter, f"{where}: {message}")
                problem = Problem(message, setter.origin, setter.kind, setter.namespace, setter.name, where)
                if problem not in self.attachment.problems:  # one policy can apply at many places
                    self.attachment.problems.append(problem)
            for warning in found.warnings:
                self.attachment.note(setter, warning)
        return out

    def _direct(self, s: SecurityPolicySpec, chain: list[list[Policy]]) -> tuple[ir.DirectResponse, ...]:
        out: list[ir.DirectResponse] = []
        if s.security_txt is not None:
            txt = s.security_txt
            setter = self._setter(chain, "security_txt")
            left = (txt.expires - datetime.now(UTC)).total_seconds() / 86400
            if left < EXPIRY_WARNING_DAYS:
                self.attachment.note(setter, f"securityTxt.expires is {max(left, 0):.0f} days away "
                                             f"({txt.expires.isoformat()}): renew it")
            out.append(ir.DirectResponse(SECURITY_TXT_PATH, 200, "text/plain; charset=utf-8",
                                         security_txt_body(txt)))
        for i, resp in enumerate(s.direct_responses or []):
            body = resp.body or ""
            if resp.body_from is not None:
                setter = self._setter(chain, "direct_responses")
                ref = resp.body_from.config_map_ref
                cm = self.attachment.index.config_map(setter.namespace, ref.name)
                value = cm.data.get(ref.key) if cm is not None else None
                where = f"spec.directResponses[{i}].bodyFrom"
                # A body nginx can't hold is this policy's problem, not the whole Gateway's.
                unusable = quoting.check_body(value) if value is not None else None
                if value is None or unusable:
                    what = f"ConfigMap {setter.namespace}/{ref.name}" + (
                        f" data.{ref.key} {unusable}" if unusable else
                        " has no key " + repr(ref.key) if cm else " does not exist")
                    self.attachment.set_unresolved(setter, f"{where}: {what}; {resp.path} answers 500")
                    self.attachment.report(setter, f"{what}; {resp.path} answers 500", where)
                    out.append(ir.DirectResponse(resp.path, 500, "text/plain", ""))
                    continue
                body = value
            out.append(ir.DirectResponse(resp.path, resp.status, resp.content_type, body))
        return tuple(out)


def client_ip(attachment: PolicyAttachment, gateway: ObjectKey) -> ir.ClientIP:
    spec = attachment.combined("ClientTrafficPolicy", (*gateway, ""))
    if not isinstance(spec, ClientTrafficPolicySpec):
        return ir.ClientIP()
    c = spec.client_ip
    source = {"Connection": "connection", "XForwardedFor": "xff", "ProxyProtocol": "proxy_protocol"}[c.source]
    forwarded_for = {"Replace": "replace", "Append": "append"}[c.forwarded_for]
    return ir.ClientIP(source, c.trusted_hops, tuple(c.trusted_cidrs), forwarded_for)  # type: ignore[arg-type]


def reject_ambiguous_paths(attachment: PolicyAttachment, gateway: ObjectKey) -> bool:
    spec = attachment.combined("ClientTrafficPolicy", (*gateway, ""))
    return not isinstance(spec, ClientTrafficPolicySpec) or spec.path.ambiguous == "Reject"


def backend_headers(attachment: PolicyAttachment, gateway: ObjectKey) -> ir.BackendHeaders:
    spec = attachment.combined("ClientTrafficPolicy", (*gateway, ""))
    if not isinstance(spec, ClientTrafficPolicySpec):
        return ir.BackendHeaders()
    b = spec.backend_headers
    return ir.BackendHeaders(b.request_id == "Preserve",
                             "host_header" if b.forwarded_host == "HostHeader" else "routed_host",
                             b.original_forwarded)


def apply_policies(gw: ir.Gateway, resolver: PolicyResolver) -> ir.Gateway:
    """The Gateway with each virtual host's policy ids (and HSTS) filled in."""
    cip = client_ip(resolver.attachment, gw.key)
    reject = reject_ambiguous_paths(resolver.attachment, gw.key)
    headers = backend_headers(resolver.attachment, gw.key)
    if resolver.policy("") is None and not resolver.attachment.route_level:
        # No policy anywhere on this Gateway: skip the walk over every virtual host (10k routes).
        if (cip, reject, headers) == (gw.client_ip, gw.reject_ambiguous_paths, gw.backend_headers):
            return gw
        return replace(gw, client_ip=cip, reject_ambiguous_paths=reject, backend_headers=headers)
    actions = {a.id: a for a in gw.actions}
    ports = []
    for port in gw.ports:
        vhosts = []
        for vh in port.vhosts:
            per_action: dict[int, int] = {}
            for m in vh.matches:
                if m.action in per_action:
                    continue
                src = actions[m.action].source
                # Policies target HTTPRoutes: an action of a same-named GRPCRoute gets none of theirs.
                route = src.key if src.kind == "HTTPRoute" else None
                pid = resolver.policy(vh.listener, route, src.rule_name if route else None)
                if pid is not None:
                    per_action[m.action] = pid
            hsts = resolver.hsts(vh.listener) if port.protocol == "HTTPS" else None
            vhosts.append(replace(vh, policy=resolver.policy(vh.listener),
                                  action_policies=tuple(sorted(per_action.items())),
                                  hsts=vh.hsts if hsts is None else hsts))
        ports.append(replace(port, vhosts=tuple(vhosts), policy=resolver.policy("")))
    return replace(gw, ports=tuple(ports), policies=resolver.ordered(), client_ip=cip,
                   reject_ambiguous_paths=reject, backend_headers=headers,
                   upstreams=gw.upstreams + tuple(resolver.services.upstreams.values()))


__all__ = ["PolicyAttachment", "PolicyResolver", "apply_policies", "security_txt_body"]
