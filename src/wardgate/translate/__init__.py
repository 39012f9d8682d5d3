"""Resources -> IR and status, with Gateway API semantics. Never writes nginx syntax."""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field, fields
from typing import Any

from wardgate import CONTROLLER_NAME, ir
from wardgate.errors import Problem
from wardgate.keys import ObjectKey
from wardgate.model import ResourceSet
from wardgate.model.gatewayapi import GROUP, Gateway, GatewayClass, HTTPRoute, TLSRoute
from wardgate.perf import no_gc_pauses
from wardgate.translate.backendtls import PolicyResult
from wardgate.translate.build import GatewayBuilder, RuleKey, RuleMemo, VhostMemo
from wardgate.translate.conditions import ObjectStatus, condition
from wardgate.translate.gateways import GatewayPlan, ListenerPlan, gateway_status, plan_gateway
from wardgate.translate.index import Index, Read
from wardgate.translate.passthrough import add_passthrough
from wardgate.translate.policies import PolicyAttachment, PolicyResolver, apply_policies
from wardgate.translate.routes import (
    Attachment,
    Route,
    RouteResult,
    RouteT,
    attach_route,
    reject_kind_conflicts,
)

log = logging.getLogger("wardgate")


@dataclass(frozen=True)
class Options:
    controller_name: str = CONTROLLER_NAME
    # What Gateways report in status.addresses (standalone: the address nginx listens on).
    addresses: tuple[str, ...] = ("127.0.0.1",)
    now: str | None = None


@dataclass
class Translation:
    gateways: list[ir.Gateway] = field(default_factory=list)
    plans: dict[ObjectKey, GatewayPlan] = field(default_factory=dict)
    statuses: list[ObjectStatus] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Gateways whose translation failed (a bug, reported as a problem): whoever serves them keeps
    # their last good configuration instead of treating them as gone.
    failed: set[ObjectKey] = field(default_factory=set)
    # Per Gateway: every route's attachment to a listener, with the hostnames it gets there
    # (HTTPRoute, GRPCRoute and TLSRoute), for the exposure report.
    attachments: dict[ObjectKey, list[Attachment[Any]]] = field(default_factory=dict)


# What one Gateway's IR is built from, besides the index: its plan, and per attachment the route
# (compared by identity: typed objects are immutable and parsed again only when they change),
# the listener and the hostnames it serves there.
_Signature = tuple[tuple[object, ...], tuple[tuple[object, ...], ...]]


@dataclass
class _Built:
    """One Gateway's IR before policies are applied, with what it was made from."""

    signature: _Signature
    reads: list[Read]
    gateway: ir.Gateway
    problems: list[Problem]
    # BackendTLSPolicies its routes reach, for their ancestor status.
    policies: dict[ObjectKey, PolicyResult]
    # Per rule and per virtual host, for the next build after an edit (GatewayBuilder).
    rules: dict[RuleKey, RuleMemo]
    vhosts: dict[tuple[str, str], VhostMemo]


class TranslationCache:
    """Per Gateway, the IR built last time, reused when nothing it was built from changed.

    Exact by construction: building records every index table read (Services, EndpointSlices,
    Secrets, ConfigMaps, ReferenceGrants, BackendTLSPolicies, Namespaces), and the memo is used
    only if each read sees the very same objects now, the plan is equal and the attachments are
    the same routes on the same listeners and hostnames. Policies are applied afresh every time
    (they also write policy status and can depend on the date).
    """

    def __init__(self) -> None:
        self.built: dict[ObjectKey, _Built] = {}
        self.hits = 0
        self.misses = 0


def _signature(plan: GatewayPlan, attachments: list[Attachment[Route]],
               tls: list[Attachment[TLSRoute]]) -> _Signature:
    def listener(lp: ListenerPlan) -> tuple[object, ...]:
        return tuple(getattr(lp, f.name) for f in fields(lp) if f.name != "attached")

    head = (*(getattr(plan, f.name) for f in fields(plan) if f.name != "listeners"),
            *(listener(lp) for lp in plan.listeners))
    both: list[Attachment[Any]] = [*attachments, *tls]
    atts = tuple((a.route, a.listener.name, tuple(a.hostnames)) for a in both)
    return head, atts


def _same_signature(a: _Signature, b: _Signature) -> bool:
    return a[0] == b[0] and len(a[1]) == len(b[1]) and all(
        x[0] is y[0] and x[1:] == y[1:] for x, y in zip(a[1], b[1], strict=True))


def _build(plan: GatewayPlan, index: Index, attachments: list[Attachment[Route]],
           tls: list[Attachment[TLSRoute]], cache: TranslationCache | None) -> _Built:
    """The Gateway's IR without policies: from the cache when its inputs are unchanged."""
    key = plan.gateway.key
    signature = _signature(plan, attachments, tls)
    old = cache.built.get(key) if cache is not None else None
    if cache is not None and old is not None and _same_signature(old.signature, signature) \
            and index.unchanged(old.reads):
        cache.hits += 1
        return old
    if cache is None:
        builder = GatewayBuilder(plan, index)
        view = index
    else:
        view, reads = index.recording()
        # Rules of routes that didn't change are reused when the plan is the same.
        same_plan = old is not None and old.signature[0] == signature[0]
        builder = GatewayBuilder(plan, view, reads=reads, memo=old.rules if old and same_plan else {},
                                 unchanged=index.unchanged, vhost_memo=old.vhosts if old and same_plan else {})
    gw_ir, problems = add_passthrough(builder.build(attachments), plan, tls, view)
    built = _Built(signature, builder.reads or [], gw_ir, problems + builder.problems, builder.policies,
                   builder.rules, builder.vhosts)
    if cache is not None:
        cache.misses += 1
        cache.built[key] = built
    return built


def _class_status(gc: GatewayClass, now: str) -> ObjectStatus:
    gen = gc.metadata.generation
    if gc.spec.parameters_ref is not None:
        ref = gc.spec.parameters_ref
        accepted = condition("Accepted", False, "InvalidParameters",
                             f"spec.parametersRef {ref.group}/{ref.kind} {ref.name}: no parameters of this "
                             "kind are supported", gen, now)
    else:
        accepted = condition("Accepted", True, "Accepted", "GatewayClass is accepted by wardgate", gen, now)
    supported = condition("SupportedVersion", True, "SupportedVersion",
                          "Gateway API v1 standard channel", gen, now)
    return ObjectStatus("GatewayClass", "", gc.name, gen, {"conditions": [accepted, supported]})


def _attach(routes: list[RouteT], out: Translation, index: Index, controller: str, now: str
            ) -> list[RouteResult[RouteT]]:
    """Attach routes of one kind to the planned Gateways; their status goes to `out`."""
    results = []
    for route in routes:
        res = attach_route(route, out.plans, index, controller, now)
        results.append(res)
        if res.parents:
            out.statuses.append(ObjectStatus(route.kind, route.namespace, route.name,
                                             route.metadata.generation, {"parents": res.parents}))
    return results


@no_gc_pauses
def translate(rs: ResourceSet, options: Options | None = None, cache: TranslationCache | None = None
              ) -> Translation:
    """`cache`: what a previous translation built, reused for Gateways whose inputs are unchanged
    (and updated); without one every Gateway is built."""
    opts = options or Options()
    now = opts.now or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = Translation()
    index = Index(rs)
    classes = {gc.name: gc for gc in rs.gateway_classes if gc.spec.controller_name == opts.controller_name}
    for gc in classes.values():
        out.statuses.append(_class_status(gc, now))
    known_classes = {gc.name for gc in rs.gateway_classes}
    gateways: list[Gateway] = []
    for gw in rs.gateways:
        if gw.spec.gateway_class_name in classes:
            gateways.append(gw)
        elif gw.spec.gateway_class_name not in known_classes:
            out.problems.append(Problem(
                f"GatewayClass {gw.spec.gateway_class_name!r} is not defined in the inputs; "
                "the Gateway is not served", gw.origin, "Gateway", gw.namespace, gw.name,
                "spec.gatewayClassName"))
    for gw in gateways:
        try:
            out.plans[gw.key] = plan_gateway(gw, index)
        except Exception as exc:  # a bug in one Gateway's translation must not stop the others
            _failed(out, gw, exc)
    routes: list[Route] = [*rs.http_routes, *rs.grpc_routes]
    # Status entries share the parents' dicts, so the conflict resolution below shows in them.
    results = _attach(routes, out, index, opts.controller_name, now)
    reject_kind_conflicts(results, now)
    tls_results = _attach(rs.tls_routes, out, index, opts.controller_name, now)
    route_parents: dict[ObjectKey, dict[ObjectKey, set[str]]] = {}
    for res in results:
        for gw_key, atts in res.attachments.items():
            # Policies target HTTPRoutes only (a GRPCRoute gets its Gateway's and listener's).
            if atts and isinstance(res.route, HTTPRoute):
                route_parents.setdefault(res.route.key, {}).setdefault(gw_key, set()).update(
                    a.listener.name for a in atts)
    policies = PolicyAttachment(rs, index, out.plans, route_parents, opts.controller_name, now)
    ancestors: dict[ObjectKey, list[tuple[ObjectKey, PolicyResult]]] = {}
    for key, plan in out.plans.items():
        attachments = [a for res in results for a in res.attachments.get(key, [])]
        tls = [a for res in tls_results for a in res.attachments.get(key, [])]
        out.attachments[key] = [*attachments, *tls]
        if plan.accepted:
            try:
                built = _build(plan, index, attachments, tls, cache)
                out.problems.extend(built.problems)
                out.gateways.append(apply_policies(built.gateway, PolicyResolver(policies, key)))
                for pkey, result in built.policies.items():
                    ancestors.setdefault(pkey, []).append((key, result))
            except Exception as exc:  # as above: this Gateway keeps its last good configuration
                _failed(out, plan.gateway, exc)
        out.statuses.append(gateway_status(plan, list(opts.addresses), now))
    if cache is not None:  # Gateways that are gone, or not accepted now
        for gone in set(cache.built) - {g.key for g in out.gateways}:
            del cache.built[gone]
    out.statuses += _backend_tls_statuses(ancestors, opts.controller_name, now)
    out.statuses += policies.statuses()
    out.problems += policies.problems
    return out


def _failed(out: Translation, gw: Gateway, exc: Exception) -> None:
    # The exception's type only: its text could quote Secret or ConfigMap data.
    log.error("translating Gateway %s failed (%s); its last good configuration keeps serving:\n%s",
              gw.ref(), type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
    out.failed.add(gw.key)
    out.problems.append(Problem(f"internal error translating this Gateway ({type(exc).__name__}); its last "
                                "good configuration keeps serving", gw.origin, "Gateway", gw.namespace, gw.name))


def _backend_tls_statuses(ancestors: dict[ObjectKey, list[tuple[ObjectKey, PolicyResult]]],
                          controller: str, now: str) -> list[ObjectStatus]:
    """status.ancestors of each BackendTLSPolicy: one entry per Gateway whose routes reach it."""
    out = []
    for entries in ancestors.values():
        policy = entries[0][1].policy
        gen = policy.metadata.generation
        items = []
        for (_, gw_ns, gw_name), result in sorted(entries, key=lambda e: e[0]):
            ok = result.tls is not None
            items.append({
                "ancestorRef": {"group": GROUP, "kind": "Gateway", "namespace": gw_ns, "name": gw_name},
                "controllerName": controller,
                "conditions": [
                    condition("Accepted", ok, "Accepted" if ok else "Invalid", result.message, gen, now),
                    condition("ResolvedRefs", ok, "ResolvedRefs" if ok else result.reason, result.message, gen, now),
                ],
            })
        out.append(ObjectStatus("BackendTLSPolicy", policy.namespace, policy.name, gen, {"ancestors": items}))
    return out


__all__ = ["ObjectStatus", "Options", "Translation", "TranslationCache", "translate"]
