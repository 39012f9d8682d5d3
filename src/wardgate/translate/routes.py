"""HTTPRoute and GRPCRoute attachment to listeners, and backend reference resolution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from wardgate import ir
from wardgate.keys import ObjectKey
from wardgate.model.core import Service, ServicePort
from wardgate.model.gatewayapi import (
    GROUP,
    BackendObjectReference,
    GRPCRoute,
    GRPCRouteRule,
    HTTPRoute,
    HTTPRouteRule,
    ParentReference,
    TLSRoute,
    TLSRouteRule,
)
from wardgate.translate import backendtls
from wardgate.translate.backendtls import PolicyResult, policy_for
from wardgate.translate.compat import NONE, RuleCompat, extension_ref_problem, rule_compat
from wardgate.translate.conditions import Reason, condition
from wardgate.translate.gateways import GatewayPlan, ListenerPlan
from wardgate.translate.hostnames import hostnames_overlap, intersect
from wardgate.translate.index import Index

# appProtocol values the data plane can speak to a backend.
APP_PROTOCOLS: dict[str | None, ir.BackendProtocol] = {
    None: "http", "http": "http", "HTTP": "http", "kubernetes.io/http": "http",
    "kubernetes.io/ws": "ws", "kubernetes.io/wss": "ws",
}
# What a GRPCRoute backend may declare: gRPC is HTTP/2, in clear text unless a BackendTLSPolicy
# applies (then grpcs). No appProtocol: assumed from the route kind, as the spec allows.
GRPC_APP_PROTOCOLS: dict[str | None, ir.BackendProtocol] = {
    None: "h2c", "kubernetes.io/h2c": "h2c", "grpc": "h2c", "h2c": "h2c",
}

Route = HTTPRoute | GRPCRoute  # the HTTP-served kinds
AnyRoute = HTTPRoute | GRPCRoute | TLSRoute


@dataclass(frozen=True)
class Backend:
    """A resolved Service port: the data the IR upstream is made from."""

    namespace: str
    service: str
    port: int
    endpoints: tuple[ir.Endpoint, ...]
    protocol: ir.BackendProtocol
    # The BackendTLSPolicy that applies, if any; `tls` is None when that policy is invalid,
    # and then the backend must not be used at all (never fall back to plain text).
    policy: PolicyResult | None = None

    @property
    def tls(self) -> ir.UpstreamTLS | None:
        return self.policy.tls if self.policy else None


@dataclass(frozen=True)
class BackendError:
    reason: Reason
    field: str
    detail: str

    @property
    def message(self) -> str:
        return f"{self.field}: {self.detail}"


RouteT = TypeVar("RouteT", bound="AnyRoute")


@dataclass
class Attachment(Generic[RouteT]):
    route: RouteT
    listener: ListenerPlan
    hostnames: list[str]


@dataclass
class RouteResult(Generic[RouteT]):
    route: RouteT
    parents: list[dict[str, Any]] = field(default_factory=list)
    attachments: dict[ObjectKey, list[Attachment[RouteT]]] = field(default_factory=dict)


def _endpoints(index: Index, svc: Service, sp: ServicePort) -> tuple[ir.Endpoint, ...]:
    key = (svc.namespace, svc.name, sp.port)
    cached = index.endpoint_cache.get(key)
    if cached is None:
        cached = index.endpoint_cache[key] = _collect_endpoints(index, svc, sp)
    else:
        # Read the slices again all the same: a recording index logs it, so each rule's
        # reads (translate/build.py: RuleMemo) name everything its endpoints came from.
        index.slices.get(svc.key)
    return cached


def _collect_endpoints(index: Index, svc: Service, sp: ServicePort) -> tuple[ir.Endpoint, ...]:
    out: list[ir.Endpoint] = []
    for es in index.slices.get(svc.key, []):
        port = next((p.port for p in es.ports if (p.name or "") == (sp.name or "") and p.port), None)
        if port is None and len(es.ports) == 1 and len(svc.spec.ports) == 1:
            port = es.ports[0].port
        if port is None:
            continue
        for ep in es.endpoints:
            if ep.conditions.ready is False:
                continue
            out.extend(ir.Endpoint(a, port) for a in ep.addresses)
    return tuple(dict.fromkeys(out))


def resolve_backend(
    ref: BackendObjectReference, route: AnyRoute, index: Index, field_path: str, *, grpc: bool | None = None
) -> Backend | BackendError:
    """The Service port a backendRef names. A TLSRoute's backends get the TLS stream as it came:
    appProtocol and BackendTLSPolicy don't apply. `grpc`: the rule speaks gRPC to it (default: a
    GRPCRoute's rules do; an HTTPRoute rule with IngressNginxCompat backendProtocol GRPC too)."""
    return resolve_service(ref, _referrer(route), index, field_path,
                           grpc=isinstance(route, GRPCRoute) if grpc is None else grpc,
                           raw=isinstance(route, TLSRoute))


def speaks_grpc(route: AnyRoute, compat: RuleCompat) -> bool:
    """Whether a rule's backends are spoken to in gRPC (grpc_pass): a GRPCRoute's, or an HTTPRoute
    rule's whose IngressNginxCompat says backendProtocol GRPC."""
    return isinstance(route, GRPCRoute) or compat.grpc_backend


def _referrer(route: AnyRoute) -> tuple[str, str, str]:
    return GROUP, route.kind, route.namespace


def resolve_service(ref: BackendObjectReference, referrer: tuple[str, str, str], index: Index, field_path: str,
                    *, grpc: bool = False, raw: bool = False) -> Backend | BackendError:
    """The Service port `ref` names for `referrer` (group, kind, namespace): a route, or a policy
    that sends requests to a Service of its own. Another namespace needs a ReferenceGrant."""
    found = _service_port(ref, referrer, index, field_path, grpc=grpc, raw=raw)
    if isinstance(found, BackendError):
        return found
    ns, svc, sp, protocol = found
    assert ref.port is not None  # _service_port refused a ref without one
    if raw:
        return Backend(ns, ref.name, ref.port, _endpoints(index, svc, sp), "http")
    policy = policy_for(index, ns, ref.name, sp)
    return Backend(ns, ref.name, ref.port, _endpoints(index, svc, sp), protocol,
                   backendtls.resolve(policy, index) if policy else None)


def _service_port(ref: BackendObjectReference, referrer: tuple[str, str, str], index: Index, field_path: str,
                  *, grpc: bool = False, raw: bool = False
                  ) -> tuple[str, Service, ServicePort, ir.BackendProtocol] | BackendError:
    """What a backendRef resolves to short of endpoints and TLS (which give no errors): its
    namespace, Service, port and protocol, or why it does not resolve."""
    from_group, from_kind, from_ns = referrer
    ns = ref.namespace or from_ns
    if ref.group not in ("", "core") or ref.kind != "Service":
        return BackendError("InvalidKind", field_path,
                            f"{ref.group or 'core'}/{ref.kind} is not a supported backend kind (core Service is)")
    if ns != from_ns and not index.grant_allows(from_group, from_kind, from_ns, "", "Service", ns, ref.name):
        return BackendError("RefNotPermitted", field_path,
                            f"no ReferenceGrant in namespace {ns} allows a reference to "
                            f"Service {ref.name}")
    svc = index.service(ns, ref.name)
    if svc is None:
        return BackendError("BackendNotFound", field_path, f"Service {ns}/{ref.name} not found")
    if ref.port is None:
        return BackendError("UnsupportedValue", field_path, "port is required for a Service backend")
    sp = next((p for p in svc.spec.ports if p.port == ref.port), None)
    if sp is None:
        return BackendError("BackendNotFound", field_path, f"Service {ns}/{ref.name} has no port {ref.port}")
    if raw:
        return ns, svc, sp, "http"
    protocol = (GRPC_APP_PROTOCOLS if grpc else APP_PROTOCOLS).get(sp.app_protocol)
    if protocol is None:
        return BackendError("UnsupportedProtocol", field_path, f"appProtocol {sp.app_protocol} is not supported")
    return ns, svc, sp, protocol


def resolved_refs(route: AnyRoute, index: Index) -> tuple[bool, Reason, str]:
    """The route's ResolvedRefs condition: the first problem found, in document order."""
    rules: Sequence[HTTPRouteRule | GRPCRouteRule | TLSRouteRule] = route.spec.rules
    for r, rule in enumerate(rules):
        refs: list[tuple[BackendObjectReference, str]] = [
            (b, f"spec.rules[{r}].backendRefs[{i}]") for i, b in enumerate(rule.backend_refs)
        ]
        for f, flt in enumerate(getattr(rule, "filters", [])):
            if flt.request_mirror is not None:
                refs.append((flt.request_mirror.backend_ref,
                             f"spec.rules[{r}].filters[{f}].requestMirror.backendRef"))
            if flt.type == "ExtensionRef" and flt.extension_ref is not None:
                problem = extension_ref_problem(route.namespace, flt.extension_ref, index)
                if problem is not None:
                    return False, problem[0], f"spec.rules[{r}].filters[{f}].extensionRef: {problem[1]}"
        grpc = speaks_grpc(route, rule_compat(route.namespace, rule, "", index) if isinstance(rule, HTTPRouteRule)
                           else NONE)
        for ref, path in refs:
            res = _service_port(ref, _referrer(route), index, path, grpc=grpc, raw=isinstance(route, TLSRoute))
            if isinstance(res, BackendError):
                return False, res.reason, res.message
    return True, "ResolvedRefs", "All references are resolved"


def _parent_ref(ref: ParentReference, route: AnyRoute) -> dict[str, Any]:
    out: dict[str, Any] = {"group": ref.group, "kind": ref.kind, "name": ref.name}
    if ref.namespace is not None:
        out["namespace"] = ref.namespace
    if ref.section_name is not None:
        out["sectionName"] = ref.section_name
    if ref.port is not None:
        out["port"] = ref.port
    return out


def _allowed(listener: ListenerPlan, route: AnyRoute, gw_ns: str, index: Index) -> bool:
    """The listener's allowedRoutes admit this route (its kind and namespace)."""
    if (GROUP, route.kind) not in listener.supported_kinds:
        return False
    ns = listener.listener.allowed_routes.namespaces
    if ns.from_ == "All":
        return True
    if ns.from_ == "Same":
        return route.namespace == gw_ns
    return ns.selector is not None and ns.selector.matches(index.namespace_labels(route.namespace))


def select_listeners(ref: ParentReference, plan: GatewayPlan, route: AnyRoute, index: Index
                     ) -> tuple[list[tuple[ListenerPlan, list[str]]], Reason, str]:
    """The listeners of `plan` a parentRef attaches the route to, with the hostnames served
    through each, and the Accepted reason and message."""
    candidates = plan.listeners
    if ref.section_name is not None:
        candidates = [p for p in candidates if p.name == ref.section_name]
    if ref.port is not None:
        candidates = [p for p in candidates if p.listener.port == ref.port]
    if not plan.accepted:
        return [], "NoMatchingParent", "the Gateway is not accepted"
    if not candidates:
        return [], "NoMatchingParent", "no listener matches the parentRef's sectionName and port"
    if isinstance(route, TLSRoute) and not any(p.listener.protocol == "TLS" for p in candidates):
        # The TLSRoute spec names this reason for a parent with no TLS listener.
        return [], "UnsupportedValue", "a TLSRoute attaches only to listeners with protocol TLS"
    usable = [p for p in candidates if p.attachable]
    allowed = [p for p in usable if _allowed(p, route, plan.gateway.namespace, index)]
    if not allowed:
        return [], "NotAllowedByListeners", "no listener allows this route (namespace or kind)"
    selected = [(p, hosts) for p in allowed if (hosts := intersect(p.listener.hostname, list(route.spec.hostnames)))]
    if not selected:
        return [], "NoMatchingListenerHostname", "no listener hostname intersects the route's hostnames"
    return selected, "Accepted", "Route is accepted"


def attach_route(
    route: RouteT, plans: dict[ObjectKey, GatewayPlan], index: Index, controller: str, now: str
) -> RouteResult[RouteT]:
    result = RouteResult(route)
    gen = route.metadata.generation
    refs_ok, refs_reason, refs_msg = resolved_refs(route, index)
    for ref in route.spec.parent_refs:
        if ref.group != GROUP or ref.kind != "Gateway":
            continue
        key = ObjectKey("Gateway", ref.namespace or route.namespace, ref.name)
        plan = plans.get(key)
        if plan is None:
            continue  # not one of ours: another controller reports on it
        selected, reason, message = select_listeners(ref, plan, route, index)
        attached = [Attachment(route, p, hosts) for p, hosts in selected]
        ok = bool(attached)
        for a in attached:
            a.listener.attached += 1
        if attached:
            result.attachments.setdefault(key, []).extend(attached)
        result.parents.append({
            "parentRef": _parent_ref(ref, route),
            "controllerName": controller,
            "conditions": [
                condition("Accepted", ok, reason, message, gen, now),
                condition("ResolvedRefs", refs_ok, refs_reason, refs_msg, gen, now),
            ],
        })
    return result


def reject_kind_conflicts(results: list[RouteResult[Route]], now: str) -> None:
    """An HTTPRoute and a GRPCRoute on one listener with overlapping hostnames: the spec accepts
    only the older (creationTimestamp, then namespace/name); the other loses that listener, and a
    parentRef left with no listener gets Accepted=False."""
    by_listener: dict[tuple[ObjectKey, str], list[tuple[RouteResult[Route], Attachment[Route]]]] = {}
    for res in results:
        for gw_key, atts in res.attachments.items():
            for a in atts:
                by_listener.setdefault((gw_key, a.listener.name), []).append((res, a))

    def age(entry: tuple[RouteResult[Route], Attachment[Route]]) -> tuple[str, str, str]:
        route = entry[1].route
        return (route.metadata.creation_timestamp or "", route.namespace, route.name)

    for (gw_key, _name), entries in by_listener.items():
        if len({type(a.route) for _, a in entries}) < 2:
            continue  # one kind only: nothing to resolve (the common case, kept linear)
        kept: dict[type, list[Attachment[Route]]] = {HTTPRoute: [], GRPCRoute: []}
        for res, a in sorted(entries, key=age):
            other = GRPCRoute if isinstance(a.route, HTTPRoute) else HTTPRoute
            winner = next((b.route for b in kept[other] if hostnames_overlap(a.hostnames, b.hostnames)), None)
            if winner is None:
                kept[type(a.route)].append(a)
            else:
                _lose(res, gw_key, a, winner, now)


def _lose(res: RouteResult[Route], gw_key: ObjectKey, a: Attachment[Route], winner: Route, now: str) -> None:
    res.attachments[gw_key].remove(a)
    a.listener.attached -= 1
    for parent in res.parents:
        ref = parent["parentRef"]
        if ObjectKey("Gateway", ref.get("namespace") or res.route.namespace, ref["name"]) != gw_key \
                or not _covers(ref, a):
            continue
        if any(_covers(ref, x) for x in res.attachments[gw_key]):
            continue  # still attached through another listener
        parent["conditions"][0] = replace(
            parent["conditions"][0], status="False", reason="HostnameConflict", lastTransitionTime=now,
            message=f"{winner.kind} {winner.namespace}/{winner.name} is older and serves overlapping hostnames "
                    f"on listener {a.listener.name}; an HTTPRoute and a GRPCRoute can't share a hostname there")


def _covers(ref: dict[str, Any], a: Attachment[Route]) -> bool:
    """Does this parentRef (by sectionName and port) still reach attachment `a`'s listener?"""
    return (ref.get("sectionName") in (None, a.listener.name)
            and ref.get("port") in (None, a.listener.listener.port))
