"""Ingresses -> Gateways, HTTPRoutes, ReferenceGrants and wardgate policies.

The shape of the output, following ingress-nginx's model of one nginx `server` per host:
- one Gateway per class (or as `--gateway` says): an HTTP listener on 80 without hostname, and an
  HTTPS listener on 443 per TLS host with that host's certificate;
- one HTTPRoute per (set of Gateways, host) holding every Ingress path of that host in
  ingress-nginx's order (the first Ingress to define a path keeps it), one named rule per path group
  of an Ingress so policies can target an Ingress's rules by sectionName;
- a host with TLS redirects plain HTTP to HTTPS (ssl-redirect, on by default): its routes are then
  one on the HTTPS listener(s) and one on the HTTP listener whose rules redirect;
- annotations become filters and rule fields on that Ingress's rules, a SecurityPolicy and a
  RateLimitPolicy per Ingress targeting its rules, and ClientTrafficPolicy fields on the Gateway.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from wardgate.migrate import ann_routing, catalog, configmap
from wardgate.migrate.ann_routing import Canary, Routing
from wardgate.migrate.classes import ClassInfo, GatewayRef, class_of, is_ingress_nginx, plan_classes
from wardgate.migrate.contrib import Contribution, Source
from wardgate.migrate.ingress import (
    PREFIX,
    Backend,
    Ingress,
    Inputs,
    apply_order,
)
from wardgate.migrate.paths import AMBIGUOUS_DETAIL, AMBIGUOUS_PATHS, COMPAT_API, convert_path, host_context
from wardgate.migrate.report import STATUSES, Finding, Status

GATEWAY_API = "gateway.networking.k8s.io/v1"
GROUP = "gateway.networking.k8s.io"
POLICY_API = "policy.wardgate.io/v1alpha1"
FROM = "wardgate.io/migrated-from"
CONTROLLER_NAME = "wardgate.io/gateway-controller"
MAX_RULES = 16  # HTTPRoute spec.rules maxItems
MAX_TARGETS = 16  # policy targetRefs maxItems
MAX_LISTENERS = 64  # Gateway spec.listeners maxItems
MAX_CERTIFICATE_REFS = 64  # listener tls.certificateRefs maxItems
POLICY_GROUP = "policy.wardgate.io"
COMPAT_KIND = "IngressNginxCompat"
GRPC_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror")
_GRPC_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*")


@dataclass(frozen=True)
class MigrateOptions:
    # (class, namespace, name) from `--gateway CLASS=NS/NAME`, several per class allowed.
    gateways: tuple[tuple[str, str, str], ...] = ()
    # (class, namespace, name) from `--configmap CLASS=NS/NAME`.
    configmaps: tuple[tuple[str, str, str], ...] = ()
    gateway_class: str = "wardgate"
    # (namespace, name) of the Secret ingress-nginx served hosts without their own certificate
    # with (`--default-certificate`, its --default-ssl-certificate): an HTTPS listener without
    # hostname then serves every host on 443, as ingress-nginx did.
    default_certificate: tuple[str, str] | None = None


@dataclass
class Conversion:
    objects: list[dict[str, Any]]
    findings: list[Finding]
    classes: dict[str, ClassInfo]


def _sanitize(text: str, limit: int = 63) -> str:
    """A DNS label from any name: lower case, [-a-z0-9], no leading/trailing '-'."""
    out = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return (out[:limit].rstrip("-")) or "x"


def _meta(name: str, namespace: str | None, sources: Iterable[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["annotations"] = {FROM: ", ".join(dict.fromkeys(sources))}
    return meta


# ---------------------------------------------------------------------------------------------
# Merging contributions field by field


_ATOMS = (str, int, float, bool, type(None))


def _copy(value: Any) -> Any:
    """copy.deepcopy for the JSON-shaped data contributions hold, several times faster (it was a
    tenth of the conversion of 5,000 Ingresses); anything else still goes through deepcopy."""
    kind = type(value)
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


def _merge(dst: dict[str, Any], src: Mapping[str, Any], owners: dict[str, str], owner: str,
           path: str = "") -> list[tuple[str, str]]:
    """Merge `src` into `dst`; nested mappings key by key. Returns (field, earlier owner) for each
    field both set differently (the earlier value is kept)."""
    conflicts: list[tuple[str, str]] = []
    for k, v in src.items():
        where = f"{path}.{k}" if path else k
        if k not in dst and isinstance(v, Mapping):
            dst[k] = {}
            conflicts += _merge(dst[k], v, owners, owner, where)
        elif k not in dst:
            dst[k] = _copy(v)
            owners[where] = owner
            if _named_list(v):
                owners.update({f"{where}.{h['name'].lower()}": owner for h in v})
        elif isinstance(dst[k], dict) and isinstance(v, Mapping):
            conflicts += _merge(dst[k], v, owners, owner, where)
        elif k in ("set", "add") and _named_list(dst[k]) and _named_list(v):
            # header operations add up by name (requestHeaders, responseHeaders, header filters)
            for h in v:
                name = f"{where}.{h['name'].lower()}"
                prior = next((x for x in dst[k] if x["name"].lower() == h["name"].lower()), None)
                if prior is None or (k == "add" and prior != h):
                    dst[k].append(_copy(h))
                    owners.setdefault(name, owner)
                elif prior != h:
                    conflicts.append((f"{where} {h['name']}", owners.get(name, "?")))
        elif k == "remove" and isinstance(dst[k], list) and isinstance(v, list):
            dst[k] += [x for x in v if x not in dst[k]]
        elif dst[k] != v:
            conflicts.append((where, owners.get(where, "?")))
    return conflicts


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, dict) and isinstance(x.get("name"), str) for x in value)


def _merge_filters(dst: list[dict[str, Any]], src: Iterable[Mapping[str, Any]], owners: dict[str, str],
                   owner: str) -> list[tuple[str, str]]:
    """Filters of one type merge into one (header modifiers add up); conflicts as in _merge."""
    conflicts: list[tuple[str, str]] = []
    for f in src:
        ftype = str(f.get("type"))
        same = next((d for d in dst if d.get("type") == ftype), None)
        if same is None or ftype in ("ExtensionRef", "RequestMirror"):
            dst.append(_copy(dict(f)))
            owners[f"filters.{ftype}"] = owner
            continue
        conflicts += _merge(same, f, owners, owner, f"filters.{ftype}")
    return conflicts


@dataclass
class IngressPlan:
    """What one Ingress's annotations add, merged."""

    ing: Ingress
    cls: ClassInfo
    routing: Routing
    contrib: Contribution = field(default_factory=Contribution)
    owners: dict[str, str] = field(default_factory=dict)
    # (annotation, ExtraRule): rules a source adds beside the Ingress's paths (Contribution.rules)
    extra_rules: list[tuple[str, Any]] = field(default_factory=list)
    ignored: str = ""  # why ingress-nginx never serves this Ingress (Contribution.ignore_ingress)


def _conflict_findings(ing: Ingress, key: str, conflicts: list[tuple[str, str]], cls: str) -> list[Finding]:
    return [Finding(ing.file, ing.ref, key, "converted-with-difference",
                    f"{where} is also set by {other}; {other}'s value is kept", cls)
            for where, other in conflicts]


def add_contribution(plan: IngressPlan, key: str, c: Contribution) -> list[Finding]:
    """Merge one annotation's contribution into the Ingress's; the conflicts as findings."""
    t = plan.contrib
    conflicts = _merge_filters(t.filters, c.filters, plan.owners, key)
    for name, mine, theirs in (("rule", t.rule, c.rule), ("security", t.security, c.security),
                               ("rateLimit", t.rate_limit, c.rate_limit),
                               ("clientTraffic", t.client_traffic, c.client_traffic)):
        conflicts += _merge(mine, theirs, plan.owners, key, name)
    return _conflict_findings(plan.ing, key, conflicts, plan.cls.name)


def dispatch(ing: Ingress, cls: ClassInfo, config: Mapping[str, str],
             config_maps: Mapping[str, Mapping[str, str]]) -> tuple[IngressPlan, list[Finding]]:
    """Every ingress-nginx annotation of the Ingress through the catalog: one finding each.
    `config_maps` ("ns/name" -> data) lets handlers read the ConfigMaps annotations name."""
    anns = ing.nginx_annotations
    source = Source(ing.file, ing.ref, ing.namespace, cls.name, anns, config, config_maps)
    findings: list[Finding] = []
    try:
        routing = ann_routing.routing(source)
    except ValueError as exc:  # the handlers report the same value; routing falls back to defaults
        findings.append(Finding(ing.file, ing.ref, "(routing)", "not-converted", str(exc), cls.name))
        routing = Routing()
    plan = IngressPlan(ing, cls, routing)
    # Annotations above the risk level, blocked words: ingress-nginx leaves the Ingress out.
    plan.ignored = str(configmap.admission(anns, config) or "")
    canary = routing.canary is not None
    for key in sorted(anns):
        value = anns[key]
        entry = catalog.lookup(key)
        if entry is None:
            findings.append(Finding(ing.file, ing.ref, key, "unknown",
                                    "not an ingress-nginx annotation migrate knows (a typo, or newer than v1.15?)",
                                    cls.name))
            continue
        if canary and not ann_routing.applies_on_canary(key):
            findings.append(Finding(ing.file, ing.ref, key, "exact",
                                    "ignored on a canary Ingress: canary traffic gets the mainline's configuration, "
                                    "as in ingress-nginx", cls.name))
            continue
        if entry.owner is not None:
            if entry.owner in anns:
                findings.append(Finding(ing.file, ing.ref, key, "exact", f"converted with {entry.owner}", cls.name))
            else:
                findings.append(Finding(ing.file, ing.ref, key, "exact",
                                        f"no effect without {entry.owner}, as in ingress-nginx", cls.name))
            continue
        if entry.handler is None:
            findings.append(Finding(ing.file, ing.ref, key, "not-converted", entry.becomes, cls.name))
            continue
        try:
            c = entry.handler(key, value, source)
        except ann_routing.IngressRejected as exc:
            findings.append(Finding(ing.file, ing.ref, key, "exact", str(exc), cls.name))
            plan.ignored = plan.ignored or f"{key} fails ingress-nginx's annotation validation"
            continue
        except ValueError as exc:
            findings.append(Finding(ing.file, ing.ref, key, "not-converted",
                                    f"invalid value: {exc}; not applied", cls.name))
            continue
        own = [f for f in c.findings if f.item == key or f.item.startswith(f"{key} ")]
        findings += c.findings
        if not own:
            findings.append(Finding(ing.file, ing.ref, key, "exact", entry.becomes, cls.name))
        findings += add_contribution(plan, key, c)
        plan.extra_rules += [(key, x) for x in c.rules]
        plan.ignored = plan.ignored or c.ignore_ingress
    return plan, findings


# ---------------------------------------------------------------------------------------------
# Routes


@dataclass
class Rule:
    """One HTTPRoute rule under construction."""

    name: str
    owner: IngressPlan  # the Ingress whose configuration (filters, policies) it carries
    matches: list[dict[str, Any]]
    backend_refs: list[dict[str, Any]]
    filters: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # timeouts, ...
    ssl_redirect: bool = False  # plain-HTTP requests redirect to HTTPS (IngressNginxCompat sslRedirect)
    redirect_code: int = 308
    # Whether the owner's policies apply (not to server-level redirects: app-root, www aliases).
    targets: bool = True
    # Only on the HTTP listener, where it redirects (the implicit `location /` of a TLS host).
    redirect_only: bool = False
    grpc: bool = False  # backend-protocol GRPC: served by a GRPCRoute

    def compat_spec(self) -> dict[str, Any]:
        """IngressNginxCompat fields that filters carry inline ("_compat": a redirect as nginx's
        `return`): written as one IngressNginxCompat the rule names."""
        spec: dict[str, Any] = {}
        for f in self.filters:
            spec.update(f.get("_compat") or {})
        return spec

    def redirects(self) -> bool:
        return any(f.get("type") == "RequestRedirect" for f in self.filters) or "redirect" in self.compat_spec()

    def https_redirect(self) -> bool:
        """Whether plain HTTP redirects to HTTPS here: ingress-nginx's Lua redirect, unless the
        rule answers with a redirect of its own (a location's `return` ran first)."""
        return self.ssl_redirect and not self.redirects()

    def to_dict(self, *, redirect: bool = False, compat_ref: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "matches": self.matches}
        if redirect:  # the HTTP-only redirect route: nothing but the IngressNginxCompat
            out["filters"] = [{"type": "ExtensionRef", "extensionRef": {
                "group": POLICY_GROUP, "kind": COMPAT_KIND, "name": compat_ref}}]
            return out
        filters = [f for f in self.filters if "_compat" not in f]
        if compat_ref is not None:  # the one IngressNginxCompat of the rule replaces the others
            filters = [f for f in filters if (f.get("extensionRef") or {}).get("kind") != COMPAT_KIND]
            filters.append({"type": "ExtensionRef", "extensionRef": {
                "group": POLICY_GROUP, "kind": COMPAT_KIND, "name": compat_ref}})
        if filters:
            out["filters"] = filters
        if self.backend_refs and not self.redirects():
            out["backendRefs"] = self.backend_refs
            # ingress-nginx tries a request up to 3 times on connection errors and timeouts
            # (proxy-next-upstream "error timeout", proxy-next-upstream-tries 3), the same pod
            # again when it has only one; nginx never retries a non-idempotent request.
            out["retry"] = {"attempts": 2}
        out.update(self.extra)
        return out

    def grpc_compat_spec(self) -> dict[str, Any]:
        """The IngressNginxCompat fields a GRPCRoute rule takes (backendTLS: backend-protocol GRPCS)."""
        return {k: v for k, v in self.compat_spec().items() if k == "backendTLS"}

    def to_grpc(self, compat_ref: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        methods = [m["grpc"] for m in self.matches if m.get("grpc")]
        if methods:
            out["matches"] = [{"method": m} for m in methods]
        filters = [f for f in self.filters if f.get("type") in GRPC_FILTERS]
        if compat_ref is not None:
            filters.append({"type": "ExtensionRef", "extensionRef": {
                "group": POLICY_GROUP, "kind": COMPAT_KIND, "name": compat_ref}})
        if filters:
            out["filters"] = filters
        out["backendRefs"] = self.backend_refs
        return out


@dataclass
class HostRoute:
    """The Ingress paths of one host on one set of Gateways."""

    host: str
    gateways: tuple[GatewayRef, ...]
    namespace: str  # the first Ingress's
    plans: list[IngressPlan] = field(default_factory=list)  # non-canary, in ingress-nginx's order
    canaries: list[IngressPlan] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    tls: dict[GatewayRef, tuple[str, str]] = field(default_factory=dict)  # -> secret (ns, name)
    name: str = ""
    # ssl-passthrough: the Ingress and backendRef of the TLSRoute for this host
    passthrough: tuple[IngressPlan, dict[str, Any]] | None = None


class Converter:
    def __init__(self, inputs: Inputs, options: MigrateOptions) -> None:
        self.inputs = inputs
        self.options = options
        self.findings: list[Finding] = list(inputs.findings)
        self.objects: list[dict[str, Any]] = []
        # (to ns, from ns, from kind, to kind, from group) -> names
        self.grants: dict[tuple[str, str, str, str, str], set[str]] = {}
        self.listener_names: dict[tuple[GatewayRef, str], str] = {}  # (gateway, host) -> HTTPS listener
        self.http_listeners: dict[tuple[GatewayRef, str], str] = {}  # (gateway, host) -> own HTTP listener
        self.passthrough_listeners: dict[tuple[GatewayRef, str], str] = {}  # (gateway, host) -> TLS listener
        self.route_rules: dict[str, list[tuple[str, str, str]]] = {}  # ingress ref -> (ns, route, rule)
        self.cm_cache: dict[str, Contribution | None] = {}
        self.config_maps = {f"{ns}/{name}": cm.data for (ns, name), cm in inputs.configmaps.items()}
        self.default_redirects: set[str] = set()  # Ingresses reported for the default ssl-redirect
        self.compat_objects: dict[tuple[str, str], dict[str, Any]] = {}
        # (namespace, name) -> IngressNginxCompat spec and the Ingresses whose paths name it
        # (filled by paths' conversions: mig-compat)
        self.compat: dict[tuple[str, str], tuple[dict[str, Any], list[str]]] = {}
        self.default_https: set[GatewayRef] = set()  # Gateways with an HTTPS listener for any host
        self.canaried: dict[tuple[str, str], str] = {}  # (host, path) -> its canary Ingress
        # SecurityPolicies for single rules (an ExtraRule's own `security`): (owner, rule, spec)
        self.rule_policies: list[tuple[IngressPlan, Rule, dict[str, Any]]] = []
        self.rule_routes: dict[int, list[tuple[str, str]]] = {}  # id(rule) -> [(namespace, route)]

    # -- classes -------------------------------------------------------------------------------

    def served(self) -> list[tuple[Ingress, str]]:
        """The Ingresses some ingress-nginx controller serves, with their class, in order."""
        known = {c for c, _, _ in self.options.gateways} | {c for c, _, _ in self.options.configmaps}
        out: list[tuple[Ingress, str]] = []
        for ing in apply_order(self.inputs.ingresses):
            cls, why = class_of(ing, self.inputs.classes)
            if cls is None:
                self.findings.append(Finding(ing.file, ing.ref, "spec.ingressClassName", "not-converted",
                                             f"{why}; not migrated"))
                continue
            ic = self.inputs.classes.get(cls)
            if ic is None and self.inputs.classes and cls not in known:
                self.findings.append(Finding(ing.file, ing.ref, "spec.ingressClassName", "not-converted",
                                             f"class {cls!r} ({why}) has no IngressClass in the input: no controller "
                                             "serves it; not migrated (name it with --gateway to migrate it)", cls))
                continue
            if ic is not None and not is_ingress_nginx(ic.controller, self.inputs) and cls not in known:
                self.findings.append(Finding(ing.file, ing.ref, "spec.ingressClassName", "not-converted",
                                             f"class {cls!r} belongs to controller {ic.controller!r}, not "
                                             "ingress-nginx; not migrated", cls))
                continue
            out.append((ing, cls))
        return out

    # -- backends ------------------------------------------------------------------------------

    def backend_ref(self, b: Backend, ing: Ingress, route_ns: str, where: str) -> dict[str, Any] | None:
        port = b.port_number
        svc = self.inputs.services.get((ing.namespace, b.service))
        if port is None:
            sp = next((p for p in svc.ports if p.name == b.port_name), None) if svc else None
            if sp is None:
                self.findings.append(Finding(
                    ing.file, ing.ref, f"{where}.service.port.name", "not-converted",
                    f"port name {b.port_name!r} of Service {ing.namespace}/{b.service} can't be resolved "
                    f"({'no such port' if svc else 'the Service is not in the input'}); give Services with -f",
                    None))
                return None
            port = sp.port
        ref: dict[str, Any] = {"name": b.service}
        if ing.namespace != route_ns:
            ref["namespace"] = ing.namespace
            self.grant(ing.namespace, route_ns, "HTTPRoute", "Service", b.service)
        ref["port"] = port
        return ref

    def grant(self, to_ns: str, from_ns: str, from_kind: str, to_kind: str, name: str, from_group: str = GROUP) -> None:
        self.grants.setdefault((to_ns, from_ns, from_kind, to_kind, from_group), set()).add(name)

    def policy_spec(self, spec: Mapping[str, Any], ns: str, p: IngressPlan) -> dict[str, Any]:
        """A copy of an Ingress's SecurityPolicy fields for a policy in namespace `ns`, which is the
        route's: another one than the Ingress's when Ingresses of several namespaces share a host.
        The Services the policy names stay the Ingress's (with a ReferenceGrant where needed);
        a Secret can't be named across namespaces, so that is a finding."""
        out: dict[str, Any] = _copy(spec)
        for part in ("externalAuth", "errorPages"):
            ref = out.get(part, {}).get("backendRef")
            if ref is None:
                continue
            ref_ns = ref.get("namespace") or p.ing.namespace
            if ref_ns == ns:
                ref.pop("namespace", None)
            else:
                ref["namespace"] = ref_ns
                self.grant(ref_ns, ns, "SecurityPolicy", "Service", ref["name"], POLICY_GROUP)
        secret = out.get("basicAuth", {}).get("secretRef", {}).get("name")
        if secret is not None and ns != p.ing.namespace:
            self.amend(p.ing, "auth-type",
                       f"the host's HTTPRoute, and so this Ingress's SecurityPolicy, is in namespace {ns} (Ingresses "
                       f"of several namespaces share the host), and basicAuth.secretRef can only name a Secret there: "
                       f"copy Secret {p.ing.namespace}/{secret} to namespace {ns}; until then every request on these "
                       "rules answers 500")
        return out

    def restate(self, ing: Ingress, item: str, status: Status, detail: str) -> None:
        """Replace an annotation's finding (each item has exactly one), when the conversion changed
        after its handler ran."""
        n = next((n for n, f in enumerate(self.findings) if f.obj == ing.ref and f.item == item), None)
        if n is not None:
            self.findings[n] = replace(self.findings[n], status=status, detail=detail)

    def amend(self, ing: Ingress, item: str, difference: str,
              worst: Status = "converted-with-difference") -> None:
        """Add a difference found late to an annotation's finding: its status becomes `worst`
        unless it already is worse."""
        f = next((f for f in self.findings if f.obj == ing.ref and f.item == item), None)
        if f is not None and difference not in f.detail:
            self.restate(ing, item, max(f.status, worst, key=STATUSES.index), f"{f.detail}; {difference}")

    # -- the conversion ------------------------------------------------------------------------

    def run(self) -> Conversion:
        served = self.served()
        # Every ingress-nginx class becomes a Gateway, even without Ingresses: its entry point
        # answered 404 to everything, and so will the Gateway.
        every = [c.name for c in self.inputs.classes.values() if is_ingress_nginx(c.controller, self.inputs)]
        plan = plan_classes(self.inputs, [c for _, c in served] + every, gateway_opts=self.options.gateways,
                            configmap_opts=self.options.configmaps,
                            default_certificate=self.options.default_certificate)
        self.findings += plan.findings
        classes = plan.classes
        plans: list[IngressPlan] = []
        for ing, cls in served:
            info = classes[cls]
            p, fs = dispatch(ing, info, class_config(info), self.config_maps)
            self.findings += fs
            if p.ignored:
                self.findings.append(Finding(ing.file, ing.ref, "(ingress)", "exact",
                                             f"not migrated: ingress-nginx never serves it ({p.ignored})", cls))
                continue
            plans.append(p)
        routes = self.group(plans)
        for r in routes:
            self.build_rules(r)
        routes += self.www_aliases(routes)
        self.name_routes(routes)
        gateways = self.emit_gateways(routes, classes)
        self.emit_routes(routes)
        # The paths' IngressNginxCompat objects that rules still name (a rule with a redirect names
        # one of its own, folding the path's in).
        named = {(o["metadata"]["namespace"], f["extensionRef"]["name"]) for o in self.objects
                 if o["kind"] == "HTTPRoute" for rl in o["spec"]["rules"] for f in rl.get("filters", [])
                 if f.get("type") == "ExtensionRef" and f["extensionRef"].get("kind") == COMPAT_KIND}
        for (ns, name), (spec, sources) in sorted(self.compat.items()):
            if (ns, name) in named:
                self.objects.append({"apiVersion": COMPAT_API, "kind": COMPAT_KIND,
                                     "metadata": _meta(name, ns, sources), "spec": spec})
        self.emit_policies(routes, plans, classes, gateways)
        self.emit_grants()
        if gateways:
            self.objects.insert(0, {"apiVersion": GATEWAY_API, "kind": "GatewayClass",
                                    "metadata": _meta(self.options.gateway_class, None,
                                                      ["wardgate migrate"]),
                                    "spec": {"controllerName": CONTROLLER_NAME}})
        return Conversion(self.objects, self.findings, classes)

    def group(self, plans: list[IngressPlan]) -> list[HostRoute]:
        """HostRoutes in ingress-nginx's order of their first Ingress."""
        routes: dict[tuple[tuple[GatewayRef, ...], str], HostRoute] = {}
        catch_all: dict[tuple[GatewayRef, ...], IngressPlan] = {}
        for p in plans:
            gws = p.cls.gateways
            if not p.ing.rules:
                if p.ing.default_backend is None:
                    self.findings.append(Finding(p.ing.file, p.ing.ref, "spec", "not-converted",
                                                 "no rules and no defaultBackend: nothing to serve", p.cls.name))
                elif p.routing.canary is not None:
                    self.findings.append(Finding(p.ing.file, p.ing.ref, "spec.defaultBackend", "exact",
                                                 "a canary without rules has no mainline; not served, as in "
                                                 "ingress-nginx", p.cls.name))
                elif gws in catch_all:
                    self.findings.append(Finding(
                        p.ing.file, p.ing.ref, "spec.defaultBackend", "exact",
                        f"{catch_all[gws].ing.ref} already is the default backend for unknown hosts (the first "
                        "in ingress-nginx's order wins); ignored, as in ingress-nginx", p.cls.name))
                else:
                    catch_all[gws] = p
                    key = (gws, "")
                    routes.setdefault(key, HostRoute("", gws, p.ing.namespace)).plans.append(p)
                continue
            for host in p.ing.hosts:
                r = routes.setdefault((gws, host), HostRoute(host, gws, p.ing.namespace))
                (r.canaries if p.routing.canary is not None else r.plans).append(p)
        out = []
        for r in routes.values():
            if not r.plans:  # only canaries
                for c in r.canaries:
                    self.findings.append(Finding(c.ing.file, c.ing.ref, "canary", "exact",
                                                 f"host {r.host or '(any)'} has no mainline Ingress: the canary is not "
                                                 "served, as in ingress-nginx", c.cls.name))
                continue
            r.namespace = r.plans[0].ing.namespace
            out.append(r)
        return out

    def host_paths(self, r: HostRoute) -> list[tuple[str, str, Mapping[str, str]]]:
        """(path, pathType, annotations) of the host's paths that serve, first definitions only."""
        seen: set[tuple[str, str]] = set()
        out: list[tuple[str, str, Mapping[str, str]]] = []
        for p in r.plans:
            for rule in p.ing.rules:
                for path in rule.paths if rule.host == r.host else ():
                    key = (path.path, "Exact" if path.path_type == "Exact" else "Prefix")
                    if key not in seen:
                        seen.add(key)
                        out.append((path.path, path.path_type, p.ing.nginx_annotations))
        return out

    def build_rules(self, r: HostRoute) -> None:
        ctx = host_context(self.host_paths(r))
        seen: dict[tuple[str, str], Ingress] = {}
        by_path: dict[str, Rule] = {}  # path -> the rule serving it (for canaries)
        counter: dict[str, int] = {}
        has_root = False
        for p in r.plans:
            ing = p.ing
            groups: dict[tuple[Any, ...], Rule] = {}
            for rule in ing.rules:
                if rule.host != r.host:
                    continue
                for path in rule.paths:
                    key = (path.path, "Exact" if path.path_type == "Exact" else "Prefix")
                    if key in seen:
                        self.findings.append(Finding(
                            ing.file, ing.ref, path.field, "exact",
                            f"host {r.host or '(any)'} path {path.path!r} is already defined by {seen[key].ref} "
                            "(first in ingress-nginx's order); ignored, as in ingress-nginx", p.cls.name))
                        continue
                    conv = convert_path(path.path, path.path_type, ctx, ing.nginx_annotations)
                    if conv.detail:
                        self.findings.append(Finding(ing.file, ing.ref, path.field, conv.status, conv.detail,
                                                     p.cls.name))
                    ref = self.backend_ref(path.backend, ing, r.namespace, f"{path.field}.backend")
                    if ref is None:
                        continue
                    seen[key] = ing
                    if key[1] == "Prefix" and path.path == "/":
                        has_root = True
                    for part in (conv, *conv.also):
                        if not part.matches:
                            continue
                        exempt = not p.routing.redirects_path(path.path)  # no-tls-redirect-locations
                        gkey = (repr(ref), repr(part.extra), repr(part.filters), exempt)
                        rl = groups.get(gkey)
                        if rl is None:
                            rl = self.new_rule(p, counter, [], [ref], r)
                            rl.ssl_redirect = rl.ssl_redirect and not exempt
                            rl.extra.update(_copy(part.extra))
                            _merge_filters(rl.filters, part.filters, {}, "paths")
                            groups[gkey] = rl
                            r.rules.append(rl)
                        rl.matches += part.matches
                        by_path[path.path] = rl
                        for name, spec in part.compat.items():
                            self.compat.setdefault((r.namespace, name), (spec, []))[1].append(ing.ref)
        self.place_extra_rules(r, counter)
        grpc_rules = [rl for rl in r.rules if rl.owner.routing.backend_protocol in ("GRPC", "GRPCS")]
        if grpc_rules and len(grpc_rules) < len(r.rules) and r.host and self.host_has_tls(r):
            # gRPC paths beside HTTP ones: ingress-nginx served both in one server, Gateway API
            # refuses a GRPCRoute beside an HTTPRoute of one hostname, so they stay path rules of
            # the host's HTTPRoute, proxied as gRPC (grpc_pass) like ingress-nginx's locations.
            for rl in grpc_rules:
                rl.filters.append({"_compat": {"backendProtocol": "GRPC"}})
            for p in {rl.owner.ing.ref: rl.owner for rl in grpc_rules}.values():
                tls = ("; TLS to the pods without checking their certificates (IngressNginxCompat backendTLS), as "
                       "ingress-nginx did: verify them with a BackendTLSPolicy" if p.routing.backend_protocol == "GRPCS"
                       else "")
                self.restate(p.ing, "backend-protocol", "exact",
                             f"host {r.host} also has HTTP paths: these paths stay rules of its HTTPRoute, proxied as "
                             "gRPC (IngressNginxCompat backendProtocol: GRPC, nginx's grpc_pass) as in ingress-nginx's "
                             "one server; Gateway API refuses a GRPCRoute beside an HTTPRoute of one hostname" + tls)
        else:
            for rl in grpc_rules:
                self.grpc_matches(r, rl)
        pt = next((p for p in r.plans if p.routing.ssl_passthrough), None)
        if pt is not None and r.host:
            path = next(x for rule in pt.ing.rules if rule.host == r.host for x in rule.paths)
            ref = self.backend_ref(path.backend, pt.ing, pt.ing.namespace, f"{path.field}.backend")
            if ref is not None:
                r.passthrough = (pt, ref)
        # The host's implicit `location /` (ingress-nginx creates it with the first Ingress's
        # annotations and its spec.defaultBackend, else the 404 default backend).
        first = r.plans[0]
        if not r.host:
            # the server for any host: its `location /` is the defaultBackend-only Ingress's
            first = next((p for p in r.plans if not p.ing.rules), first)
        if not has_root:
            db = first.ing.default_backend
            redirects = any(f.get("type") == "RequestRedirect" or "redirect" in (f.get("_compat") or {})
                            for f in first.contrib.filters)
            if db is not None:
                ref = self.backend_ref(db, first.ing, r.namespace, "spec.defaultBackend")
                if ref is not None:
                    r.rules.append(self.new_rule(first, counter, [{"path": {"type": "PathPrefix", "value": "/"}}],
                                                 [ref], r))
            elif redirects:
                r.rules.append(self.new_rule(first, counter, [{"path": {"type": "PathPrefix", "value": "/"}}], [], r))
            elif r.host and self.has_route_policies(first):
                # ingress-nginx's 404 for undefined paths comes from the host's `location /`, with
                # the first Ingress's annotations (allowlists, auth, rate limits, headers), from the
                # default backend: after every check. A rule of that Ingress answering 404 once its
                # policies have passed (IngressNginxCompat notFound), which redirects to https on
                # plain HTTP like the Ingress's paths.
                rl = self.new_rule(first, counter, [{"path": {"type": "PathPrefix", "value": "/"}}], [], r)
                rl.filters.append({"_compat": {"notFound": True}})
                r.rules.append(rl)
            elif first.routing.ssl_redirect_for(self.host_has_tls(r)):
                # undefined paths redirect to https too (ingress-nginx's `location /` of the host)
                rl = self.new_rule(first, counter, [{"path": {"type": "PathPrefix", "value": "/"}}], [], r)
                rl.redirect_only = rl.ssl_redirect = True
                r.rules.append(rl)
        for c in r.canaries:
            self.merge_canary(r, c, by_path, counter)
        for p in r.plans:
            anns = p.ing.nginx_annotations
            if r.host and "ssl-redirect" not in anns and "force-ssl-redirect" not in anns \
                    and any(rl.owner is p and rl.https_redirect() for rl in r.rules) \
                    and p.ing.ref not in self.default_redirects:
                self.default_redirects.add(p.ing.ref)
                status, detail = ann_routing.ssl_redirect_detail(f"(host {r.host} has TLS)", p.routing,
                                                                 p.ing.nginx_annotations)
                self.findings.append(Finding(p.ing.file, p.ing.ref, "ssl-redirect (default)", status, detail,
                                             p.cls.name))
        root = next((p for p in r.plans if p.routing.app_root), None)
        if root is not None and root.routing.app_root:
            # A server-level `if ($uri = /)`: before any location, so it wins over an Exact "/" path.
            for rl in r.rules:
                rl.matches = [m for m in rl.matches if m["path"] != {"type": "Exact", "value": "/"}]
            r.rules = [rl for rl in r.rules if rl.matches]
            rl = self.new_rule(root, counter, [{"path": {"type": "Exact", "value": "/"}}], [], r)
            rl.filters = [ann_routing.redirect_filter(root.routing.app_root, 302, path_only=True)]
            rl.extra, rl.ssl_redirect, rl.targets = {}, False, False
            r.rules.insert(0, rl)

    def www_aliases(self, routes: list[HostRoute]) -> list[HostRoute]:
        """from-to-www-redirect: a route for the other name (www. added or removed) redirecting
        to the host, unless some Ingress defines that name itself."""
        have = {(r.gateways, r.host) for r in routes}
        out: list[HostRoute] = []
        for r in routes:
            p = next((p for p in r.plans if p.routing.from_to_www), None)
            if p is None or not r.host or r.host.startswith("*."):
                continue
            alias = r.host[4:] if r.host.startswith("www.") else f"www.{r.host}"
            if (r.gateways, alias) in have:
                continue
            have.add((r.gateways, alias))
            a = HostRoute(alias, r.gateways, r.namespace, plans=[p])
            rl = self.new_rule(p, {}, [{"path": {"type": "PathPrefix", "value": "/"}}], [], a)
            rl.name = _sanitize(f"to-{r.host}", 63)
            rl.filters = [p.routing.www_redirect_filter(r.host)]
            rl.extra, rl.ssl_redirect, rl.targets = {}, False, False
            a.rules.append(rl)
            out.append(a)
        return out

    def place_extra_rules(self, r: HostRoute, counter: dict[str, int]) -> None:
        """Rules sources add beside the Ingresses' paths (a snippet's `location = /x { return ...; }`
        or `rewrite`): answered by the gateway, or a copy of the Ingress rule covering them."""
        server_level: set[str] = set()
        for p in r.plans:
            own = [rl for rl in r.rules if rl.owner is p]
            for key, extra in p.extra_rules:
                if key in SERVER_LEVEL:
                    if key in server_level:
                        self.findings.append(Finding(
                            p.ing.file, p.ing.ref, key, "exact",
                            f"ignored for host {r.host or '(any)'}: ingress-nginx applies one {key} per host, the "
                            "first Ingress's (in its order)", p.cls.name))
                        continue
                    server_level.add(key)
                matches = [dict(m) for m in extra.matches]
                cover = [_covering(m, own) for m in matches]
                if extra.within_ingress_paths or extra.backend == "ingress":
                    matches = [m for m, c in zip(matches, cover, strict=True) if c is not None]
                    cover = [c for c in cover if c is not None]
                if not matches:
                    continue
                if extra.backend == "ingress":
                    base = cover[0]
                    assert base is not None
                    rl = self.new_rule(p, counter, matches, _copy(base.backend_refs), r)
                    rl.filters = _copy(base.filters)
                    conflicts = _merge_filters(rl.filters, extra.filters, dict(p.owners), key)
                    self.findings += _conflict_findings(p.ing, key, conflicts, p.cls.name)
                    rl.extra = _copy(base.extra)
                else:
                    rl = self.new_rule(p, counter, matches, [], r)
                    rl.filters, rl.extra = _copy(list(extra.filters)), {}
                    rl.ssl_redirect, rl.targets = False, False
                    if extra.security:
                        self.rule_policies.append((p, rl, dict(extra.security)))
                r.rules.insert(0, rl)

    def grpc_matches(self, r: HostRoute, rl: Rule) -> None:
        """backend-protocol GRPC: the rule's paths as gRPC method matches ("/" is every method)."""
        ing = rl.owner.ing
        rl.grpc = True
        for m in rl.matches:
            value = m["path"]["value"]
            parts = [x for x in value.split("/") if x]
            if m["path"]["type"] == "RegularExpression" or len(parts) > 2 or (
                    parts and (not _GRPC_NAME.fullmatch(parts[0]) or (len(parts) == 2 and "." in parts[1]))):
                self.findings.append(Finding(ing.file, ing.ref, "backend-protocol", "not-converted",
                                             f"path {value!r} is not '/', '/<service>' or '/<service>/<method>': "
                                             "it can't be a GRPCRoute match and is not served", rl.owner.cls.name))
                m["grpc"] = None
                continue
            m["grpc"] = {"service": parts[0], **({"method": parts[1]} if len(parts) == 2 else {})} if parts else {}
        dropped = sorted({str(f.get("type")) for f in rl.filters
                          if f.get("type") not in GRPC_FILTERS and "_compat" not in f})
        if dropped:
            self.findings.append(Finding(ing.file, ing.ref, "backend-protocol", "not-converted",
                                         f"filters {', '.join(dropped)} don't exist on a GRPCRoute; not applied",
                                         rl.owner.cls.name))
        if not r.host or not self.host_has_tls(r):
            self.findings.append(Finding(ing.file, ing.ref, "backend-protocol", "not-converted",
                                         f"host {r.host or '(any)'} has no TLS: gRPC would need cleartext HTTP/2 on "
                                         "the whole HTTP port; not served", rl.owner.cls.name))

    @staticmethod
    def has_route_policies(p: IngressPlan) -> bool:
        """Whether the Ingress changes what a 404 of its host looks like (who gets it, its headers)."""
        return bool(p.contrib.security or p.contrib.rate_limit or
                    any(f.get("type") == "ResponseHeaderModifier" for f in p.contrib.filters))

    def new_rule(self, p: IngressPlan, counter: dict[str, int], matches: list[dict[str, Any]],
                 refs: list[dict[str, Any]], r: HostRoute) -> Rule:
        base = _sanitize(p.ing.name if p.ing.namespace == r.namespace else f"{p.ing.namespace}-{p.ing.name}", 56)
        counter[base] = counter.get(base, 0) + 1
        rule = Rule(f"{base}-{counter[base]}", p, matches, refs)
        # Shallow copies: nothing below mutates a filter in place (merges deep-copy first), and
        # migrate() unshares the output.
        rule.filters = list(p.contrib.filters)
        rule.extra = dict(p.contrib.rule)
        rule.ssl_redirect = p.routing.ssl_redirect_for(self.host_has_tls(r))
        rule.redirect_code = p.routing.redirect_code
        return rule

    @staticmethod
    def host_has_tls(r: HostRoute) -> bool:
        """Whether ingress-nginx's server for the host has a certificate from some Ingress."""
        return bool(r.host) and any(t.secret_name is not None and (r.host in t.hosts or _wild(t.hosts, r.host))
                                    for p in r.plans for t in p.ing.tls)

    def merge_canary(self, r: HostRoute, c: IngressPlan, by_path: dict[str, Rule], counter: dict[str, int]) -> None:
        canary = c.routing.canary
        assert canary is not None
        for rule in c.ing.rules:
            if rule.host != r.host:
                continue
            for path in rule.paths:
                main = by_path.get(path.path)
                if main is None:
                    self.findings.append(Finding(c.ing.file, c.ing.ref, path.field, "exact",
                                                 f"no mainline Ingress serves {r.host or '(any)'}{path.path}: the "
                                                 "canary path is not served, as in ingress-nginx", c.cls.name))
                    continue
                if (r.host, path.path) in self.canaried:
                    self.findings.append(Finding(
                        c.ing.file, c.ing.ref, path.field, "exact",
                        f"{self.canaried[(r.host, path.path)]} already is the canary of "
                        f"{r.host or '(any)'}{path.path}: ingress-nginx merges one canary per path; ignored",
                        c.cls.name))
                    continue
                ref = self.backend_ref(path.backend, c.ing, r.namespace, f"{path.field}.backend")
                if ref is None:
                    continue
                self.canaried[(r.host, path.path)] = c.ing.ref
                self.apply_canary(r, main, canary, ref, c, counter, path.path)

    def apply_canary(self, r: HostRoute, main: Rule, canary: Canary, ref: dict[str, Any], c: IngressPlan,
                     counter: dict[str, int], path: str) -> None:
        """Canary traffic uses the mainline's configuration: the extra rules copy the main rule's
        filters and belong to the mainline Ingress (its policies target them)."""
        base_matches = [m for m in main.matches if m["path"]["value"] == path] or main.matches
        index = r.rules.index(main)
        extra: list[Rule] = []

        def add(headers: list[dict[str, Any]], refs: list[dict[str, Any]]) -> None:
            rl = self.new_rule(main.owner, counter, [{**m, "headers": headers} for m in base_matches], refs, r)
            rl.filters, rl.extra = list(main.filters), dict(main.extra)
            rl.ssl_redirect, rl.redirect_code = main.ssl_redirect, main.redirect_code
            extra.append(rl)

        for headers, to_canary in canary.header_matches():
            add(headers, [ref] if to_canary else list(main.backend_refs))
        index += 1
        r.rules[index:index] = extra
        if canary.weight is not None and main.backend_refs and canary.weight > 0:
            if len(base_matches) < len(main.matches):
                # the weight applies to this path only: split it off the main rule
                main.matches = [m for m in main.matches if m not in base_matches]
                rl = self.new_rule(main.owner, counter, base_matches, list(main.backend_refs), r)
                rl.filters, rl.extra = list(main.filters), dict(main.extra)
                rl.ssl_redirect, rl.redirect_code = main.ssl_redirect, main.redirect_code
                r.rules.insert(index + len(extra), rl)
                main = rl
            total = canary.weight_total
            w = min(canary.weight, total)
            if w >= total:
                main.backend_refs = [ref]
            else:
                main.backend_refs = [{**main.backend_refs[0], "weight": total - w}, {**ref, "weight": w}]

    def name_routes(self, routes: list[HostRoute]) -> None:
        used: dict[tuple[str, str], int] = {}
        for r in routes:
            base = ("catch-all" if not r.host else r.host.replace("*", "wildcard"))[:200]
            key = (r.namespace, base)
            used[key] = used.get(key, 0) + 1
            r.name = base if used[key] == 1 else f"{base}-{used[key]}"

    # -- Gateways ------------------------------------------------------------------------------

    def emit_gateways(self, routes: list[HostRoute], classes: dict[str, ClassInfo]) -> dict[GatewayRef, list[str]]:
        """One Gateway per GatewayRef any class maps to; returns gateway -> its classes."""
        gws: dict[GatewayRef, list[str]] = {}
        for info in classes.values():
            for g in info.gateways:
                gws.setdefault(g, []).append(info.name)
        # TLS hosts per gateway: the first Ingress (in order) with a certificate for the host wins.
        tls: dict[GatewayRef, dict[str, tuple[str, str, IngressPlan]]] = {g: {} for g in gws}
        for r in routes:
            if not r.host:
                continue
            for p in r.plans:
                for t in p.ing.tls:
                    if r.host not in t.hosts and not _wild(t.hosts, r.host):
                        continue
                    if t.secret_name is None:
                        self.findings.append(Finding(
                            p.ing.file, p.ing.ref, f"{t.field}.secretName", "not-converted",
                            f"no secretName: ingress-nginx served {r.host} with its default certificate; "
                            "give the host a certificate Secret", p.cls.name))
                        continue
                    for g in r.gateways:
                        prior = tls[g].get(r.host)
                        if prior is None:
                            tls[g][r.host] = (p.ing.namespace, t.secret_name, p)
                            r.tls[g] = (p.ing.namespace, t.secret_name)
                        elif prior[:2] != (p.ing.namespace, t.secret_name):
                            self.findings.append(Finding(
                                p.ing.file, p.ing.ref, f"{t.field}.secretName", "exact",
                                f"host {r.host} already has certificate {prior[0]}/{prior[1]} from "
                                f"{prior[2].ing.ref} (first in ingress-nginx's order); ignored, as in ingress-nginx",
                                p.cls.name))
                    if (p.ing.namespace, t.secret_name) not in self.inputs.secrets and self.inputs.secrets:
                        self.findings.append(Finding(
                            p.ing.file, p.ing.ref, f"{t.field}.secretName", "converted-with-difference",
                            f"Secret {p.ing.namespace}/{t.secret_name} is not in the input; the listener for "
                            f"{r.host} refuses TLS until it exists (ingress-nginx used its default certificate)",
                            p.cls.name))
        # With a route for any host (rules without host, a defaultBackend-only Ingress), each named
        # host gets its own HTTP listener: listener isolation keeps the catch-all's rules from
        # serving a named host's unknown paths, which ingress-nginx answers with 404.
        isolate: dict[GatewayRef, list[HostRoute]] = {g: [] for g in gws}
        for g in gws:
            if any(not r.host and g in r.gateways for r in routes):
                isolate[g] = sorted({r.host: r for r in routes if r.host and g in r.gateways}.values(),
                                    key=lambda r: r.host)
        out: dict[GatewayRef, list[str]] = {}
        for g in sorted(gws, key=str):
            listeners: list[dict[str, Any]] = [
                {"name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": {"namespaces": {"from": "All"}}}]
            names: set[str] = {"http"}
            default_listener: dict[str, Any] = {}
            cert_of = next((classes[c].default_certificate for c in sorted(gws[g]) if classes[c].default_certificate),
                           None)
            if cert_of is not None:
                default_cert: dict[str, Any] = {"name": cert_of[1]}
                if cert_of[0] != g.namespace:
                    default_cert["namespace"] = cert_of[0]
                    self.grant(cert_of[0], g.namespace, "Gateway", "Secret", cert_of[1])
                default_listener = {"name": "https", "protocol": "HTTPS", "port": 443,
                                    "tls": {"certificateRefs": [default_cert]},
                                    "allowedRoutes": {"namespaces": {"from": "All"}}}
                listeners.append(default_listener)
                names.add("https")
                self.default_https.add(g)
            else:
                self.findings.append(Finding(
                    "", f"Gateway {g}", "--default-ssl-certificate", "converted-with-difference",
                    "ingress-nginx answered HTTPS for every host, with its default certificate for hosts without "
                    "one of their own (a self-signed one unless --default-ssl-certificate named one) and 404 for "
                    "unknown hosts; the Gateway serves HTTPS only for hosts with spec.tls, other names are refused "
                    "at the TLS handshake (at the connection when no host has TLS). Give that certificate's Secret "
                    "with --default-certificate NS/NAME for an HTTPS listener for any host (read from the "
                    "controller Deployment's --default-ssl-certificate when it is in the input)", gws[g][0]))
            for r in isolate[g]:
                if len(listeners) >= MAX_LISTENERS:
                    p = r.plans[0]
                    self.findings.append(Finding(
                        p.ing.file, p.ing.ref, "spec.rules", "converted-with-difference",
                        f"Gateway {g} already has {MAX_LISTENERS} listeners (the Gateway API limit): host {r.host} "
                        "shares the HTTP listener with the route for any host, whose rules then also serve this "
                        "host's undefined paths (ingress-nginx answered 404)", p.cls.name))
                    continue
                name = _listener_name(r.host, names, "http-")
                listeners.append({"name": name, "protocol": "HTTP", "port": 80, "hostname": r.host,
                                  "allowedRoutes": {"namespaces": {"from": "All"}}})
                self.http_listeners[(g, r.host)] = name
                if g in self.default_https and r.host not in tls[g] and r.passthrough is None \
                        and len(listeners) < MAX_LISTENERS:
                    # the same isolation on 443, with the default certificate
                    name = _listener_name(r.host, names)
                    listeners.append({**default_listener, "name": name, "hostname": r.host})
                    self.listener_names[(g, r.host)] = name
            for r in sorted((r for r in routes if r.passthrough is not None and g in r.gateways),
                            key=lambda r: r.host):
                name = _listener_name(r.host, names, "tls-")
                listeners.append({"name": name, "protocol": "TLS", "port": 443, "hostname": r.host,
                                  "tls": {"mode": "Passthrough"}, "allowedRoutes": {"namespaces": {"from": "All"}}})
                self.passthrough_listeners[(g, r.host)] = name
                tls[g].pop(r.host, None)  # the backend terminates TLS: no certificate here
            hosts = sorted(tls[g])
            # A listener each while the Gateway has room (keeping one for the shared listener when
            # some won't fit); the rest share a listener without hostname, which picks each host's
            # certificate by the TLS name, as ingress-nginx did.
            room = MAX_LISTENERS - len(listeners) - (1 if len(hosts) > MAX_LISTENERS - len(listeners)
                                                      and not default_listener else 0)
            for host in hosts[:max(room, 0)]:
                ns, secret, p = tls[g][host]
                name = _listener_name(host, names)
                listeners.append({"name": name, "protocol": "HTTPS", "port": 443, "hostname": host,
                                  "tls": {"certificateRefs": [self.certificate_ref(g, ns, secret)]},
                                  "allowedRoutes": {"namespaces": {"from": "All"}}})
                self.listener_names[(g, host)] = name
            if hosts[max(room, 0):]:
                if not default_listener:
                    default_listener = {"name": "https", "protocol": "HTTPS", "port": 443,
                                        "tls": {"certificateRefs": []},
                                        "allowedRoutes": {"namespaces": {"from": "All"}}}
                    listeners.append(default_listener)
                    names.add("https")
                self.share_https_listener(g, hosts[max(room, 0):], tls[g], default_listener)
            cls_names = sorted(gws[g])
            self.objects.append({"apiVersion": GATEWAY_API, "kind": "Gateway",
                                 "metadata": _meta(g.name, g.namespace, [f"IngressClass {c}" for c in cls_names]),
                                 "spec": {"gatewayClassName": self.options.gateway_class, "listeners": listeners}})
            out[g] = cls_names
        return out

    def certificate_ref(self, g: GatewayRef, ns: str, secret: str) -> dict[str, Any]:
        cert: dict[str, Any] = {"name": secret}
        if ns != g.namespace:
            cert["namespace"] = ns
            self.grant(ns, g.namespace, "Gateway", "Secret", secret)
        return cert

    def share_https_listener(self, g: GatewayRef, hosts: list[str], tls: dict[str, tuple[str, str, IngressPlan]],
                             listener: dict[str, Any]) -> None:
        """TLS hosts beyond a Gateway's listeners: on its HTTPS listener without hostname, their
        certificates added to its own (up to the Gateway API's 64)."""
        refs: list[dict[str, Any]] = listener["tls"]["certificateRefs"]
        for host in hosts:
            ns, secret, p = tls[host]
            if self.inputs.secrets and (ns, secret) not in self.inputs.secrets:
                self.findings.append(Finding(
                    p.ing.file, p.ing.ref, "spec.tls", "not-converted",
                    f"Gateway {g} has {MAX_LISTENERS} listeners (the Gateway API limit), so {host} would share its "
                    f"HTTPS listener without hostname, where a missing certificate stops every host; Secret "
                    f"{ns}/{secret} is not in the input, so {host} is left off: give it with -f", p.cls.name))
                continue
            cert = self.certificate_ref(g, ns, secret)
            if cert not in refs:
                if len(refs) >= MAX_CERTIFICATE_REFS:
                    self.findings.append(Finding(
                        p.ing.file, p.ing.ref, "spec.tls", "not-converted",
                        f"Gateway {g} has {MAX_LISTENERS} listeners and its shared HTTPS listener "
                        f"{MAX_CERTIFICATE_REFS} certificates (the Gateway API limits); no HTTPS for {host}: map "
                        "some classes to another Gateway with --gateway", p.cls.name))
                    continue
                refs.append(cert)
            self.listener_names[(g, host)] = listener["name"]
            self.findings.append(Finding(
                p.ing.file, p.ing.ref, "spec.tls", "exact",
                f"Gateway {g} has {MAX_LISTENERS} listeners (the Gateway API limit): {host} is served by its HTTPS "
                f"listener {listener['name']!r} without hostname, which gives each host the certificate that "
                "covers it by the TLS name, as ingress-nginx did", p.cls.name))

    # -- HTTPRoutes ----------------------------------------------------------------------------

    def emit_routes(self, routes: list[HostRoute]) -> None:
        for r in routes:
            sources = [p.ing.ref for p in r.plans] + [c.ing.ref for c in r.canaries]
            tls_gws = [g for g in r.gateways if (g, r.host) in self.listener_names or
                       (g in self.default_https and (g, r.host) not in self.passthrough_listeners)]
            plain = [{"name": g.name, **({"namespace": g.namespace} if g.namespace != r.namespace else {}),
                      "sectionName": self.http_listeners.get((g, r.host), "http")} for g in r.gateways]
            secure = [{"name": g.name, **({"namespace": g.namespace} if g.namespace != r.namespace else {}),
                       "sectionName": self.listener_names.get((g, r.host), "https")} for g in tls_gws]
            if not secure:
                self.https_target_findings(r)
            # The rules serve both listeners (their sslRedirect answers plain HTTP); rules that only
            # redirect plain HTTP have a route of their own there.
            self.emit_route(r, r.name, plain + secure, sources, redirect=False)
            self.emit_route(r, f"{r.name}-http", plain, sources, redirect=True)
            grpc = [rl for rl in r.rules if rl.grpc and any(m.get("grpc") is not None for m in rl.matches)]
            if grpc and secure and any(not (rl.redirect_only or rl.grpc) for rl in r.rules):
                # ingress-nginx served both in one server; Gateway API refuses a GRPCRoute beside an
                # HTTPRoute of the same hostname on a listener (wardgate too, as the spec says).
                for ing in {rl.owner.ing.ref: rl.owner.ing for rl in grpc}.values():
                    self.amend(ing, "backend-protocol",
                               f"host {r.host} also has HTTP paths, and Gateway API doesn't let a GRPCRoute share a "
                               "hostname with an HTTPRoute on a listener: its gRPC paths are not served; give the "
                               "gRPC service a hostname of its own", "not-converted")
                grpc = []
            if grpc and secure:
                self.objects.append({"apiVersion": GATEWAY_API, "kind": "GRPCRoute",
                                     "metadata": _meta(r.name, r.namespace, sources),
                                     "spec": {"parentRefs": secure, "hostnames": [r.host],
                                              "rules": [rl.to_grpc(self.compat_object(r.namespace, spec, rl)
                                                                   if (spec := rl.grpc_compat_spec()) else None)
                                                        for rl in grpc[:MAX_RULES]]}})
            if r.passthrough is not None:
                pt, ref = r.passthrough
                parents = [{"name": g.name, **({"namespace": g.namespace} if g.namespace != pt.ing.namespace else {}),
                            "sectionName": self.passthrough_listeners[(g, r.host)]}
                           for g in r.gateways if (g, r.host) in self.passthrough_listeners]
                self.objects.append({"apiVersion": GATEWAY_API, "kind": "TLSRoute",
                                     "metadata": _meta(r.name, pt.ing.namespace, [pt.ing.ref]),
                                     "spec": {"parentRefs": parents, "hostnames": [r.host],
                                              "rules": [{"backendRefs": [ref]}]}})

    def https_target_findings(self, r: HostRoute) -> None:
        """force-ssl-redirect to a host the Gateway serves no HTTPS for."""
        owners = {id(rl.owner): rl.owner for rl in r.rules if rl.https_redirect()}
        for p in owners.values():
            self.findings.append(Finding(
                p.ing.file, p.ing.ref, "force-ssl-redirect (https target)", "converted-with-difference",
                f"host {r.host or '(any)'} has no certificate, so its Gateway has no HTTPS listener for it: plain HTTP "
                "redirects to an https:// URL that is not served (ingress-nginx answered it with its default "
                "certificate); give the host a certificate (spec.tls) or use --default-certificate", p.cls.name))

    def compat_object(self, namespace: str, spec: dict[str, Any], rl: Rule) -> str:
        """The IngressNginxCompat holding `spec` in `namespace` (one per distinct spec)."""
        text = json.dumps(spec, sort_keys=True)
        name = "ingress-nginx-" + hashlib.sha256(text.encode()).hexdigest()[:12]
        if (namespace, name) not in self.compat_objects:
            self.compat_objects[(namespace, name)] = {
                "apiVersion": POLICY_API, "kind": COMPAT_KIND, "metadata": _meta(name, namespace, []),
                "spec": spec}
            self.objects.append(self.compat_objects[(namespace, name)])
        sources = self.compat_objects[(namespace, name)]["metadata"]["annotations"]
        refs = [x for x in sources[FROM].split(", ") if x] + [rl.owner.ing.ref]
        sources[FROM] = ", ".join(sorted(set(refs)))
        return name

    def rule_compat(self, r: HostRoute, rl: Rule, redirect_only: bool) -> dict[str, Any]:
        """The one IngressNginxCompat spec of a rule: its filters' fields, those of the objects its
        path filters name, and its https redirect. `redirect_only`: for the HTTP-only route,
        where the rule just redirects (its path matching kept)."""
        spec = {} if redirect_only else rl.compat_spec()
        for f in rl.filters:
            named = (f.get("extensionRef") or {})
            if named.get("kind") == COMPAT_KIND and (r.namespace, named.get("name")) in self.compat:
                spec = {**self.compat[(r.namespace, named["name"])][0], **spec}
        if redirect_only:
            spec = {k: v for k, v in spec.items() if k == "pathMatching"}
        if "redirect" in spec:
            spec.pop("rewriteTarget", None)  # nginx's `return` answers before any rewrite
        if rl.https_redirect():
            spec["sslRedirect"] = rl.owner.routing.ssl_redirect_spec()
        return spec

    def emit_route(self, r: HostRoute, name: str, parents: list[dict[str, Any]], sources: list[str],
                   *, redirect: bool) -> None:
        if not parents:
            return
        # gRPC rules are the GRPCRoute's; on the HTTP listener they only redirect
        mine = [rl for rl in r.rules
                if ((rl.https_redirect() and (rl.redirect_only or rl.grpc)) if redirect else
                    not (rl.redirect_only or rl.grpc))]
        chunks = [mine[i:i + MAX_RULES] for i in range(0, len(mine), MAX_RULES)]
        for n, chunk in enumerate(chunks):
            rname = name if n == 0 else f"{name}-{n + 1}"
            spec: dict[str, Any] = {"parentRefs": parents}
            if r.host:
                spec["hostnames"] = [r.host]
            rules = []
            for rl in chunk:
                cspec = self.rule_compat(r, rl, redirect)
                ref = self.compat_object(r.namespace, cspec, rl) if cspec else None
                rules.append(rl.to_dict(redirect=redirect, compat_ref=ref))
                if not redirect:
                    self.rule_routes.setdefault(id(rl), []).append((r.namespace, rname))
                    if rl.targets:
                        self.route_rules.setdefault(rl.owner.ing.ref, []).append((r.namespace, rname, rl.name))
            spec["rules"] = rules
            self.objects.append({"apiVersion": GATEWAY_API, "kind": "HTTPRoute",
                                 "metadata": _meta(rname, r.namespace, sources), "spec": spec})

    # -- policies ------------------------------------------------------------------------------

    def emit_policies(self, routes: list[HostRoute], plans: list[IngressPlan], classes: dict[str, ClassInfo],
                      gateways: dict[GatewayRef, list[str]]) -> None:
        for p in plans:
            targets = self.route_rules.get(p.ing.ref, [])
            by_ns: dict[str, list[tuple[str, str]]] = {}
            for ns, route, rule in targets:
                by_ns.setdefault(ns, []).append((route, rule))
            for ns, refs in sorted(by_ns.items()):
                base = _sanitize(p.ing.name if ns == p.ing.namespace else f"{p.ing.namespace}-{p.ing.name}", 240)
                for kind, spec in (("SecurityPolicy", p.contrib.security), ("RateLimitPolicy", p.contrib.rate_limit)):
                    if not spec:
                        continue
                    chunks = [refs[i:i + MAX_TARGETS] for i in range(0, len(refs), MAX_TARGETS)]
                    if kind == "RateLimitPolicy" and len(chunks) > 1:
                        self.findings.append(Finding(
                            p.ing.file, p.ing.ref, "(rate limit)", "converted-with-difference",
                            f"more than {MAX_TARGETS} rules: the limit is split over {len(chunks)} policies, each "
                            "counting separately (ingress-nginx counted the whole Ingress in one zone)", p.cls.name))
                    for n, chunk in enumerate(chunks):
                        name = base if n == 0 else f"{base}-{n + 1}"
                        self.objects.append({
                            "apiVersion": POLICY_API, "kind": kind, "metadata": _meta(name, ns, [p.ing.ref]),
                            "spec": {"targetRefs": [{"group": GROUP, "kind": "HTTPRoute", "name": route,
                                                     "sectionName": rule} for route, rule in chunk],
                                     **(self.policy_spec(spec, ns, p) if kind == "SecurityPolicy" else _copy(spec))}})
        for p, rl, spec in self.rule_policies:
            for ns, route in self.rule_routes.get(id(rl), []):
                self.objects.append({
                    "apiVersion": POLICY_API, "kind": "SecurityPolicy",
                    "metadata": _meta(_sanitize(f"{route}-{rl.name}", 240), ns, [p.ing.ref]),
                    "spec": {"targetRefs": [{"group": GROUP, "kind": "HTTPRoute", "name": route,
                                             "sectionName": rl.name}], **self.policy_spec(spec, ns, p)}})
        # ClientTrafficPolicy and Gateway-wide settings: from the classes' ConfigMaps and Ingresses.
        for g, cls_names in gateways.items():
            # ingress-nginx routes on the normalised path and forwards ambiguous paths raw.
            ctp: dict[str, Any] = _copy(AMBIGUOUS_PATHS)
            owners: dict[str, str] = {"path.ambiguous": "ingress-nginx's defaults"}
            sources: list[str] = []
            self.findings.append(Finding("", f"Gateway {g}", "path.ambiguous", "exact", AMBIGUOUS_DETAIL,
                                         cls_names[0] if cls_names else None))
            # What ingress-nginx's template sends every backend and wardgate sends only when asked.
            ctp.update(_copy(BACKEND_HEADERS))
            owners.update({f"backendHeaders.{k}": "ingress-nginx's defaults"
                           for k in BACKEND_HEADERS["backendHeaders"]})
            notes = sorted({n for c in cls_names for n in _backend_header_notes(class_config(classes[c]))})
            self.findings.append(Finding("", f"Gateway {g}", "backendHeaders",
                                         "converted-with-difference" if notes else "exact",
                                         "; ".join([BACKEND_HEADERS_DETAIL, *notes]),
                                         cls_names[0] if cls_names else None))
            # ingress-nginx's upstream headers wardgate doesn't send by itself (X-Forwarded-Port:
            # the listener's port, 443 set per HTTPS listener below).
            # ingress-nginx's template also clears the Server response header.
            sec: dict[str, Any] = {"requestHeaders": {"set": [
                {"name": "X-Forwarded-Port", "value": "80"},
                {"name": "X-Forwarded-Scheme", "valueFrom": "Scheme"},
                {"name": "X-Scheme", "valueFrom": "Scheme"}]}, "responseHeaders": {"remove": ["Server"]}}
            sec_owners: dict[str, str] = {f"requestHeaders.set.{h}": "ingress-nginx's defaults"
                                          for h in ("x-forwarded-port", "x-forwarded-scheme", "x-scheme")}
            for cname in cls_names:
                info = classes[cname]
                c = self.configmap_contribution(info)
                if c is None:
                    continue
                src = f"ConfigMap {info.configmap[0]}/{info.configmap[1]}" if info.configmap else f"class {cname}"
                for where, other in _merge(ctp, c.client_traffic, owners, src) + _merge(sec, c.security, sec_owners,
                                                                                       src):
                    cm = self.inputs.configmaps.get(info.configmap) if info.configmap else None
                    self.findings.append(Finding(cm.file if cm else "", src, where, "converted-with-difference",
                                                 f"Gateway {g} serves several classes: {where} differs from "
                                                 f"{other}'s; {other}'s value is kept", cname))
                if c.client_traffic or c.security:
                    sources.append(src)
            for p in plans:
                if g in p.cls.gateways and p.contrib.client_traffic:
                    for where, other in _merge(ctp, p.contrib.client_traffic, owners, p.ing.ref):
                        self.findings.append(Finding(p.ing.file, p.ing.ref, where, "converted-with-difference",
                                                     f"Gateway {g}: {where} is also set by {other}; "
                                                     f"{other}'s value is kept", p.cls.name))
                    sources.append(p.ing.ref)
            target = [{"group": GROUP, "kind": "Gateway", "name": g.name}]
            if ctp:
                self.objects.append({"apiVersion": POLICY_API, "kind": "ClientTrafficPolicy",
                                     "metadata": _meta(g.name, g.namespace,
                                                       sources or [f"IngressClass {c}" for c in cls_names]),
                                     "spec": {"targetRefs": target, **ctp}})
            self.objects.append({"apiVersion": POLICY_API, "kind": "SecurityPolicy",
                                 "metadata": _meta(f"{g.name}-gateway", g.namespace,
                                                   sources or [f"IngressClass {c}" for c in cls_names]),
                                 "spec": {"targetRefs": target, **sec}})
            https = sorted({name for (gw, _host), name in self.listener_names.items() if gw == g} |
                           ({"https"} if g in self.default_https else set()))
            for n, part in enumerate(https[i:i + MAX_TARGETS] for i in range(0, len(https), MAX_TARGETS)):
                self.objects.append({
                    "apiVersion": POLICY_API, "kind": "SecurityPolicy",
                    "metadata": _meta(f"{g.name}-https" + (f"-{n + 1}" if n else ""), g.namespace,
                                      [f"IngressClass {c}" for c in cls_names]),
                    "spec": {"targetRefs": [{"group": GROUP, "kind": "Gateway", "name": g.name, "sectionName": h}
                                            for h in part],
                             "requestHeaders": {"set": [{"name": "X-Forwarded-Port", "value": "443"}]}}})

    def configmap_contribution(self, info: ClassInfo) -> Contribution | None:
        """The class's controller settings, from its ConfigMap's data ({} without one:
        ingress-nginx's defaults may still differ from wardgate's)."""
        if info.name in self.cm_cache:
            return self.cm_cache[info.name]
        cm = self.inputs.configmaps.get(info.configmap) if info.configmap else None
        if cm is not None:
            source = Source(cm.file, f"ConfigMap {cm.namespace}/{cm.name}", cm.namespace, info.name, {},
                            class_config(info), self.config_maps)
        else:
            where = f"ConfigMap {info.configmap[0]}/{info.configmap[1]}" if info.configmap else f"class {info.name}"
            source = Source("", f"{where} (not in the input: defaults)", "", info.name, {}, class_config(info),
                            self.config_maps)
        c = configmap.config_contributions(dict(info.config), source)
        self.findings += c.findings
        self.cm_cache[info.name] = c
        return c

    def emit_grants(self) -> None:
        for (to_ns, from_ns, from_kind, to_kind, from_group), names in sorted(self.grants.items()):
            kinds = from_kind.removesuffix("y") + "ies" if from_kind.endswith("y") else from_kind + "s"
            name = f"from-{from_ns}-{kinds.lower()}-to-{to_kind.lower()}s"[:253]
            self.objects.append({
                "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                "metadata": _meta(name, to_ns, [f"{kinds} in {from_ns}"]),
                "spec": {"from": [{"group": from_group, "kind": from_kind, "namespace": from_ns}],
                         "to": [{"group": "", "kind": to_kind, "name": n} for n in sorted(names)]}})


# Annotations nginx applies once per server (host): the first Ingress of the host provides them.
SERVER_LEVEL = frozenset({"server-snippet"})


def _covering(match: Mapping[str, Any], rules: Sequence[Rule]) -> Rule | None:
    """The rule whose path match covers an Exact/PathPrefix match most specifically, as nginx's
    location for that path would be chosen (None for regex matches or no cover)."""
    path = match.get("path") or {}
    if path.get("type") not in ("Exact", "PathPrefix"):
        return None
    value = str(path.get("value", "/"))
    best: tuple[int, Rule] | None = None
    for rl in rules:
        for m in rl.matches:
            mp = m.get("path") or {}
            v = str(mp.get("value", ""))
            if mp.get("type") == "Exact":
                ok = path.get("type") == "Exact" and v == value
            elif mp.get("type") == "PathPrefix":
                ok = value == v or value.startswith(v.rstrip("/") + "/")
            else:
                ok = False
            if ok and (best is None or len(v) + (mp.get("type") == "Exact") > best[0]):
                best = (len(v) + (mp.get("type") == "Exact"), rl)
    return best[1] if best else None


# ClientTrafficPolicy backendHeaders as ingress-nginx's nginx.tmpl: X-Request-ID $req_id (the
# client's, else generated), X-Forwarded-Host $best_http_host ($http_host), X-Original-Forwarded-For
# and -Host the client's own headers.
BACKEND_HEADERS: dict[str, dict[str, Any]] = {
    "backendHeaders": {"requestID": "Preserve", "forwardedHost": "HostHeader", "originalForwarded": True}}
BACKEND_HEADERS_DETAIL = (
    "ClientTrafficPolicy backendHeaders: backends get the client's X-Request-ID when it sent one (else the "
    "gateway's id), the Host header as sent in X-Forwarded-Host, and the client's X-Forwarded-For and "
    "X-Forwarded-Host as X-Original-Forwarded-For and -Host, as ingress-nginx sent them (wardgate's defaults "
    "replace the id, send the routed host and drop the client's claims: set requestID: Replace, forwardedHost: "
    "RoutedHost, originalForwarded: false once no backend reads them, docs/policies.md)")


def _backend_header_notes(cfg: Mapping[str, str]) -> list[str]:
    """Where a class's controller settings made ingress-nginx send other headers than backendHeaders'."""
    def on(key: str, default: bool) -> bool:
        try:
            return ann_routing.parse_bool(cfg[key], key) if key in cfg else default
        except ValueError:
            return default

    notes = []
    if not on("generate-request-id", True):
        notes.append("generate-request-id is false: ingress-nginx sent no X-Request-ID when the client sent "
                     "none, wardgate sends its own")
    if on("use-forwarded-headers", False):
        notes.append("use-forwarded-headers: ingress-nginx sent the client's X-Forwarded-Host (its first value) as "
                     "Host and X-Forwarded-Host, wardgate the Host header")
    for key, header in (("forwarded-for-header", "X-Forwarded-For"), ("forwarded-host-header", "X-Forwarded-Host")):
        value = cfg.get(key, header).strip()
        if value.lower() != header.lower():
            notes.append(f"{key} {value!r}: ingress-nginx sent the client's {value} as X-Original-{header}, "
                         f"wardgate its {header}")
    return notes


def class_config(info: ClassInfo) -> dict[str, str]:
    """The configuration the class's controller ran with: the ConfigMap's data over ingress-nginx's
    defaults."""
    return dict(configmap.effective(info.config))


def _wild(hosts: Sequence[str], host: str) -> bool:
    """A TLS entry `*.example.com` covers `a.example.com` (one label), as nginx's certificate
    selection in ingress-nginx does."""
    return any(h.startswith("*.") and host.endswith(h[1:]) and "." not in host[: -len(h) + 1] for h in hosts)


def _listener_name(host: str, used: set[str], prefix: str = "https-") -> str:
    base = prefix + _sanitize(host.replace("*", "wildcard"), 240)
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}-{n}"
    used.add(name)
    return name


def convert(inputs: Inputs, options: MigrateOptions) -> Conversion:
    return Converter(inputs, options).run()


__all__ = ["PREFIX", "Conversion", "MigrateOptions", "convert"]
