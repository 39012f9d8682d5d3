"""The status checks: Gateway API conditions judged like the Go suite's helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wardgate import CONTROLLER_NAME
from wardgate.verify.conformance.corpus import Json


def _conditions(obj: Mapping[str, Any] | None) -> list[Json]:
    if not obj:
        return []
    conds = obj.get("conditions")
    return [c for c in conds if isinstance(c, dict)] if isinstance(conds, list) else []


def _has_condition(conds: Sequence[Mapping[str, Any]], ctype: str, status: str | None,
                   reason: str | None) -> bool:
    return any(c.get("type") == ctype and (not status or c.get("status") == status)
               and (not reason or c.get("reason") == reason) for c in conds)


def _show(conds: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{c.get('type')}={c.get('status')}/{c.get('reason')}" for c in conds) or "no conditions"


def _want(c: Mapping[str, Any]) -> str:
    return f"{c.get('type') or c.get('condition')}={c.get('status') or '*'}/{c.get('reason') or '*'}"


class _Status:
    """One snapshot of ``Runner.status()`` indexed by (kind, namespace, name)."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.objects: dict[tuple[str, str, str], Json] = {}
        for obj in doc.get("objects") or []:
            key = (str(obj.get("kind")), str(obj.get("namespace") or ""), str(obj.get("name")))
            self.objects[key] = obj
        self.errors = [str(e) for e in doc.get("errors") or []]

    def get(self, kind: str, namespace: str | None, name: str) -> Json | None:
        return self.objects.get((kind, namespace or "", name))

    def of_kind(self, kind: str) -> list[Json]:
        return [o for (k, _, _), o in self.objects.items() if k == kind]


def _stale(obj: Mapping[str, Any], conds: Sequence[Mapping[str, Any]]) -> str | None:
    gen = obj.get("generation")
    if not conds:
        return "no conditions"
    for c in conds:
        if c.get("observedGeneration") != gen:
            return (f"condition {c.get('type')} has observedGeneration {c.get('observedGeneration')}, "
                    f"metadata.generation is {gen}")
    return None


def _all_conditions(obj: Mapping[str, Any]) -> list[Json]:
    st = obj.get("status") or {}
    if obj.get("kind") == "HTTPRoute" or "parents" in st:
        return [c for p in st.get("parents") or [] for c in _conditions(p)]
    out = _conditions(st)
    for listener in st.get("listeners") or []:
        out += _conditions(listener)
    return out


def _ref_matches_gateway(parent_ref: Mapping[str, Any], route_ns: str, gw_ns: str, gw_name: str) -> bool:
    return (parent_ref.get("name") == gw_name
            and (parent_ref.get("namespace") or route_ns) == gw_ns
            and (parent_ref.get("kind") or "Gateway") == "Gateway"
            and (parent_ref.get("group") or "gateway.networking.k8s.io") == "gateway.networking.k8s.io")


def _obj_name(check: Mapping[str, Any]) -> str:
    ns = check.get("namespace")
    return f"{check.get('kind')} {ns + '/' if ns else ''}{check.get('name')}"


def evaluate_status_check(check: Mapping[str, Any], snapshot: Mapping[str, Any],
                          state: dict[str, Any] | None = None) -> str | None:
    """One poll of a statusCheck (FORMAT.md table) against ``Runner.status()``: None = satisfied."""
    st = _Status(snapshot)
    state = state if state is not None else {}
    kind = str(check.get("check"))
    fn = _CHECKS.get(kind)
    if fn is None:
        return f"status check {kind!r} is not implemented by the harness"
    return fn(check, st, state)


def _check_gateway_and_routes(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    ns, name = str(check.get("namespace") or ""), str(check.get("name"))
    gw = st.get("Gateway", ns, name)
    if gw is None:
        return f"Gateway {ns}/{name} has no status"
    status = gw.get("status") or {}
    if not [a for a in status.get("addresses") or [] if a.get("value")]:
        return f"Gateway {ns}/{name} has no address"
    wanted = check.get("listeners")
    listeners = {str(ls.get("name")): ls for ls in status.get("listeners") or []}
    for lname in (wanted or list(listeners)):
        ls = listeners.get(str(lname))
        if ls is None:
            return f"Gateway {ns}/{name} has no status for listener {lname}"
        for ctype in ("ResolvedRefs", "Accepted", "Programmed"):
            if not _has_condition(_conditions(ls), ctype, "True", None):
                return f"listener {lname} of Gateway {ns}/{name} is not {ctype}: {_show(_conditions(ls))}"
    route_kind = str(check.get("routeKind") or "HTTPRoute")
    for ref in check.get("routes") or []:
        rns, rname = str(ref.get("namespace") or ""), str(ref.get("name"))
        route = st.get(route_kind, rns, rname)
        if route is None:
            return f"{route_kind} {rns}/{rname} has no status"
        parents = [p for p in (route.get("status") or {}).get("parents") or []
                   if _ref_matches_gateway(p.get("parentRef") or {}, rns, ns, name)]
        for section in (wanted or [None]):
            found = [p for p in parents if section is None or (p.get("parentRef") or {}).get("sectionName") == section]
            if not found:
                where = f" listener {section}" if section else ""
                return f"{route_kind} {rns}/{rname} has no parent status for Gateway {ns}/{name}{where}"
            if not any(p.get("controllerName") == CONTROLLER_NAME
                       and _has_condition(_conditions(p), "Accepted", "True", "Accepted") for p in found):
                return (f"{route_kind} {rns}/{rname} is not Accepted by Gateway {ns}/{name}: "
                        f"{'; '.join(_show(_conditions(p)) for p in found)}")
    return None


def _check_route_condition(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    ns, name = str(check.get("namespace") or ""), str(check.get("name"))
    route = st.get(str(check.get("kind") or "HTTPRoute"), ns, name)
    if route is None:
        return f"{_obj_name(check)} has no status"
    parent = check.get("parent") or {}
    pname, pns = str(parent.get("name")), str(parent.get("namespace") or "")
    parents = (route.get("status") or {}).get("parents") or []
    for p in parents:  # Go: every parent's conditions must be for the latest generation
        stale = _stale(route, _conditions(p))
        if stale:
            return f"{_obj_name(check)}: {stale}"
    matching = [p for p in parents if (p.get("parentRef") or {}).get("name") == pname
                and (p.get("parentRef") or {}).get("namespace") in (None, "", pns)]
    if not matching:
        return f"{_obj_name(check)} has no parent status for {pns}/{pname}"
    ctype = str(check.get("condition"))
    if any(_has_condition(_conditions(p), ctype, check.get("status"), check.get("reason")) for p in matching):
        return None
    return (f"{_obj_name(check)} parent {pns}/{pname}: want {_want(check)}, have "
            f"{'; '.join(_show(_conditions(p)) for p in matching)}")


def _check_no_accepted_parents(check: Mapping[str, Any], st: _Status, state: dict[str, Any]) -> str | None:
    route = st.get(str(check.get("kind") or "HTTPRoute"), check.get("namespace"), str(check.get("name")))
    if route is None:
        return f"{_obj_name(check)} has no status"
    parents = (route.get("status") or {}).get("parents") or []
    if not parents:
        # Go tells "correctly empty" from "not written yet" by seeing it empty on two polls.
        state["empty_polls"] = state.get("empty_polls", 0) + 1
        return None if state["empty_polls"] >= 2 else "status.parents is empty (waiting for a second poll)"
    state["empty_polls"] = 0
    if len(parents) > 1:
        return f"{_obj_name(check)} has {len(parents)} parents, expected none or one not Accepted"
    if _has_condition(_conditions(parents[0]), "Accepted", "False", None):
        return None
    return f"{_obj_name(check)} parent is not Accepted=False: {_show(_conditions(parents[0]))}"


def _parent_matches(want: Mapping[str, Any], got: Mapping[str, Any], namespace_required: bool) -> bool:
    wref, gref = want.get("parentRef") or {}, got.get("parentRef") or {}
    controller = str(want.get("controllerName") or "").replace("{GATEWAY_CONTROLLER_NAME}", CONTROLLER_NAME)
    if controller != got.get("controllerName"):
        return False
    for key in ("group", "kind", "name", "sectionName", "port"):
        if wref.get(key) != gref.get(key):
            return False
    if wref.get("namespace") != gref.get("namespace") and (namespace_required or gref.get("namespace")):
        return False
    have = _conditions(got)
    return all(_has_condition(have, str(c.get("type")), c.get("status"), c.get("reason"))
               for c in _conditions(want))


def _check_route_parents(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    route = st.get(str(check.get("kind") or "HTTPRoute"), check.get("namespace"), str(check.get("name")))
    if route is None:
        return f"{_obj_name(check)} has no status"
    got = list((route.get("status") or {}).get("parents") or [])
    want = list(check.get("parents") or [])
    if len(got) != len(want):
        return f"{_obj_name(check)} has {len(got)} parents, expected {len(want)}"
    required = bool(check.get("namespaceRequired"))
    # Order-insensitive: the order of status.parents carries no meaning.
    for w in want:
        idx = next((i for i, g in enumerate(got) if _parent_matches(w, g, required)), None)
        if idx is None:
            return f"{_obj_name(check)} has no parent status matching {json.dumps(w, sort_keys=True)}"
        got.pop(idx)
    return None


def _check_latest(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    obj = st.get(str(check.get("kind")), check.get("namespace"), str(check.get("name")))
    if obj is None:
        return f"{_obj_name(check)} has no status"
    stale = _stale(obj, _all_conditions(obj))
    return f"{_obj_name(check)}: {stale}" if stale else None


def _check_gateway_condition(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gw = st.get("Gateway", check.get("namespace"), str(check.get("name")))
    if gw is None:
        return f"{_obj_name(check)} has no status"
    conds = _conditions(gw.get("status"))
    stale = _stale(gw, conds)
    if stale:
        return f"{_obj_name(check)}: {stale}"
    if _has_condition(conds, str(check.get("condition")), check.get("status"), check.get("reason")):
        return None
    return f"{_obj_name(check)}: want {_want(check)}, have {_show(conds)}"


def _check_gateway_listeners(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gw = st.get("Gateway", check.get("namespace"), str(check.get("name")))
    if gw is None:
        return f"{_obj_name(check)} has no status"
    actual = (gw.get("status") or {}).get("listeners") or []
    want = check.get("listeners") or []
    if len(actual) != len(want):
        return f"{_obj_name(check)} has {len(actual)} listener statuses, expected {len(want)}"
    by_name = {str(ls.get("name")): ls for ls in actual}
    for w in want:
        ls = by_name.get(str(w.get("name")))
        if ls is None:
            return f"{_obj_name(check)} has no status for listener {w.get('name')}"
        kinds = {((k.get("group") or "gateway.networking.k8s.io"), k.get("kind"))
                 for k in ls.get("supportedKinds") or []}
        want_kinds = {((k.get("group") or "gateway.networking.k8s.io"), k.get("kind"))
                      for k in w.get("supportedKinds") or []}
        if not want_kinds and kinds:
            return f"listener {w.get('name')}: expected no supportedKinds, got {sorted(map(str, kinds))}"
        if not want_kinds <= kinds:
            return (f"listener {w.get('name')}: supportedKinds {sorted(map(str, kinds))} "
                    f"lack {sorted(map(str, want_kinds - kinds))}")
        if "attachedRoutes" in w and ls.get("attachedRoutes") != w.get("attachedRoutes"):
            return (f"listener {w.get('name')}: attachedRoutes {ls.get('attachedRoutes')}, "
                    f"expected {w.get('attachedRoutes')}")
        missing = _missing_condition(ls, w.get("conditions") or [], f"listener {w.get('name')}")
        if missing:
            return missing
    return None


def _check_listener_conditions(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gw = st.get("Gateway", check.get("namespace"), str(check.get("name")))
    if gw is None:
        return f"{_obj_name(check)} has no status"
    lname = str(check.get("listener"))
    ls = next((x for x in (gw.get("status") or {}).get("listeners") or [] if x.get("name") == lname), None)
    if ls is None:
        return f"{_obj_name(check)} has no status for listener {lname}"
    return _missing_condition(ls, check.get("conditions") or [], f"listener {lname}")


def _missing_condition(listener: Mapping[str, Any], wanted: list[Any], label: str) -> str | None:
    """The first wanted condition the listener status lacks, described; None if it has them all."""
    have = _conditions(listener)
    for c in wanted:
        if not _has_condition(have, str(c.get("type")), c.get("status"), c.get("reason")):
            return f"{label}: want {_want(c)}, have {_show(have)}"
    return None


def _check_zero_routes(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gw = st.get("Gateway", check.get("namespace"), str(check.get("name")))
    if gw is None:
        return f"{_obj_name(check)} has no status"
    listeners = (gw.get("status") or {}).get("listeners") or []
    if not listeners or (len(listeners) == 1 and listeners[0].get("attachedRoutes") == 0):
        return None
    return f"{_obj_name(check)}: attachedRoutes {[ls.get('attachedRoutes') for ls in listeners]}, expected 0"


def _check_address(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gw = st.get("Gateway", check.get("namespace"), str(check.get("name")))
    if gw is None:
        return f"{_obj_name(check)} has no status"
    for a in (gw.get("status") or {}).get("addresses") or []:
        if a.get("type") in ("IPAddress", "Hostname") and a.get("value"):
            return None
    return f"{_obj_name(check)} has no IPAddress/Hostname address in status"


def _check_gwc_accepted(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gwc = st.get("GatewayClass", None, str(check.get("name")))
    if gwc is None:
        return f"GatewayClass {check.get('name')} has no status"
    conds = _conditions(gwc.get("status"))
    if _has_condition(conds, str(check.get("condition") or "Accepted"), check.get("status"), check.get("reason")):
        return None
    return f"GatewayClass {check.get('name')}: want {_want(check)}, have {_show(conds)}"


def _check_btls_accepted(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    policy = st.get("BackendTLSPolicy", check.get("namespace"), str(check.get("name")))
    if policy is None:
        return f"{_obj_name(check)} has no status (wardgate does not report BackendTLSPolicy)"
    parent = check.get("parent") or {}
    for anc in (policy.get("status") or {}).get("ancestors") or []:
        ref = anc.get("ancestorRef") or {}
        if ref.get("name") == parent.get("name") and (ref.get("namespace") or policy.get("namespace")) == (
                parent.get("namespace") or policy.get("namespace")):
            if _has_condition(_conditions(anc), "Accepted", "True", check.get("reason")):
                return None
            return f"{_obj_name(check)} ancestor {parent.get('name')}: {_show(_conditions(anc))}"
    return f"{_obj_name(check)} has no ancestor status for {parent.get('namespace')}/{parent.get('name')}"


def _check_namespaces_ready(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    # Pods are always ready here (they are in-process echo servers), so only Gateways can hold this up.
    for ns in check.get("namespaces") or []:
        for gw in st.of_kind("Gateway"):
            if gw.get("namespace") != ns:
                continue
            conds = _conditions(gw.get("status"))
            if not _has_condition(conds, "Programmed", "True", None):
                return f"Gateway {ns}/{gw.get('name')} is not Programmed: {_show(conds)}"
    return None


_CHECKS: dict[str, Callable[[Mapping[str, Any], _Status, dict[str, Any]], str | None]] = {
    "GatewayAndHTTPRoutesMustBeAccepted": _check_gateway_and_routes,
    "GatewayAndRoutesMustBeAccepted": _check_gateway_and_routes,
    "HTTPRouteMustHaveResolvedRefsConditionsTrue": _check_route_condition,
    "HTTPRouteMustHaveCondition": _check_route_condition,
    "HTTPRouteMustHaveNoAcceptedParents": _check_no_accepted_parents,
    "HTTPRouteMustHaveParents": _check_route_parents,
    "HTTPRouteMustHaveLatestConditions": _check_latest,
    "GatewayMustHaveLatestConditions": _check_latest,
    "GatewayClassMustHaveLatestConditions": _check_latest,
    "GatewayMustHaveCondition": _check_gateway_condition,
    "GatewayStatusMustHaveListeners": _check_gateway_listeners,
    "GatewayListenerMustHaveConditions": _check_listener_conditions,
    "GatewayMustHaveZeroRoutes": _check_zero_routes,
    "GatewayMustHaveAddress": _check_address,
    "GWCMustHaveAcceptedConditionAny": _check_gwc_accepted,
    "BackendTLSPolicyMustHaveAcceptedConditionTrue": _check_btls_accepted,
    "NamespacesMustBeReady": _check_namespaces_ready,
}
