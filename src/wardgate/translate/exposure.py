"""What each Gateway exposes: every (listener, hostname, path, route) it serves, and findings.

Computed from a translation: the IR says what is served (after listener isolation, conflicts and
everything else translation decided), the attachments say which hostnames a route declared.
Findings:

- `multi-gateway`: a hostname served by more than one Gateway (directly, or through a wildcard or
  catch-all of another Gateway that covers it).
- `wildcard-broader`: a route hostname served through a wildcard listener whose `*` stands for
  more than one label there. Gateway API wildcards cover several labels (`*.example.com` accepts
  `shop.internal.example.com`), unlike DNS and certificate wildcards, which cover one.

The document: {"served": [{gateway, listener, hostname, path, route}],
"findings": [{kind, hostname, gateways, route, detail}]}. A hostname "*" means any hostname (a
listener and route without one); a path is None for TLS passthrough (TLSRoute, by SNI name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from wardgate import ir
from wardgate.keys import ObjectKey
from wardgate.translate.gateways import SNI_PROTOCOLS, GatewayPlan
from wardgate.translate.hostnames import covering_names, owner

if TYPE_CHECKING:
    from wardgate.translate import Translation
    from wardgate.translate.routes import AnyRoute, Attachment

ANY_HOST = "*"


@dataclass(frozen=True, order=True)
class Served:
    gateway: str
    listener: str
    hostname: str  # "" for any hostname
    path: str | None
    route: str

    def to_dict(self) -> dict[str, Any]:
        return {"gateway": self.gateway, "listener": self.listener, "hostname": self.hostname or ANY_HOST,
                "path": self.path, "route": self.route}


@dataclass(frozen=True, order=True)
class Finding:
    kind: Literal["multi-gateway", "wildcard-broader"]
    hostname: str
    gateways: tuple[str, ...]
    route: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "hostname": self.hostname or ANY_HOST, "gateways": list(self.gateways),
                "route": self.route, "detail": self.detail}


def path_text(path: ir.PathMatch) -> str:
    return f"{path.type} {path.value}"


def route_text(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}"


def served_by(gw: ir.Gateway, plan: GatewayPlan | None) -> list[Served]:
    """What one Gateway serves: each virtual host's matches, and each passthrough SNI route."""
    out: set[Served] = set()
    sources = {a.id: a.source for a in gw.actions}
    for port in gw.ports:
        for vh in port.vhosts:
            for m in vh.matches:
                src = sources[m.action]
                out.add(Served(str(gw.key), vh.listener, vh.hostname, path_text(m.path),
                               route_text(src.kind, src.namespace, src.name)))
    for pp in gw.passthrough:
        # The IR's SNI routes don't name their listener: the owner among the port's TLS/HTTPS ones.
        listeners = [p for p in (plan.listeners if plan else [])
                     if p.programmable and p.listener.protocol in SNI_PROTOCOLS and p.listener.port == pp.port]
        hosts = [p.listener.hostname or "" for p in listeners]
        for sni in pp.routes:
            i = owner(hosts, sni.hostname)
            name = listeners[i].name if i is not None else ""
            out.add(Served(str(gw.key), name, sni.hostname, None,
                           route_text("TLSRoute", sni.source.namespace, sni.source.name)))
    return sorted(out)


def spanned_labels(wildcard: str, host: str) -> int:
    """How many labels the `*` of a listener wildcard stands for when it accepts `host` (a route
    hostname, itself possibly a wildcard, which adds one label or more)."""
    if host == wildcard:
        return 1
    target = host[2:] if host.startswith("*.") else host
    head = target[: len(target) - len(wildcard) + 1]  # what precedes ".example.com"
    return head.count(".") + 1 + (1 if host.startswith("*.") else 0)


def _wildcard_findings(gw_key: str, attachments: Iterable[Attachment[AnyRoute]], served: set[tuple[str, str, str, str]]
                       ) -> list[Finding]:
    out: list[Finding] = []
    for a in attachments:
        wild = a.listener.listener.hostname or ""
        if not wild.startswith("*.") or not a.route.spec.hostnames:
            continue
        route = route_text(a.route.kind, a.route.namespace, a.route.name)
        for host in a.hostnames:
            if (gw_key, a.listener.name, host, route) not in served:
                continue  # another listener owns it, or the route lost it
            labels = spanned_labels(wild, host)
            if labels < 2:
                continue
            out.append(Finding(
                "wildcard-broader", host, (gw_key,), route,
                f"listener {a.listener.name} ({wild}) of Gateway {gw_key} serves {host} of {route}: its `*` "
                f"stands for {labels} labels here, where a DNS or certificate wildcard stands for one; "
                "give the listener a narrower hostname, or attach the route to a listener for that name"))
    return out


def _multi_gateway_findings(served: Sequence[Served]) -> list[Finding]:
    by_host: dict[str, list[Served]] = {}
    for s in served:
        by_host.setdefault(s.hostname, []).append(s)
    out: list[Finding] = []
    for host in by_host:
        # Everything that serves this name: itself, covering wildcards and catch-alls.
        entries = [s for name in covering_names(host) for s in by_host.get(name, [])]
        gateways = sorted({s.gateway for s in entries})
        if len(gateways) < 2:
            continue
        parts = []
        for gw in gateways:
            mine = sorted({(s.listener, s.hostname, s.route) for s in entries if s.gateway == gw})
            parts.append(f"Gateway {gw} (" + "; ".join(
                f"listener {lst} as {h or ANY_HOST}: {r}" for lst, h, r in mine) + ")")
        routes = ", ".join(sorted({s.route for s in entries}))
        out.append(Finding("multi-gateway", host, tuple(gateways), routes,
                           f"{host or 'any hostname'} is served by {len(gateways)} Gateways: " + ", ".join(parts)))
    return out


def exposure(gateways: Iterable[ir.Gateway], plans: Mapping[ObjectKey, GatewayPlan],
             attachments: Mapping[ObjectKey, Sequence[Attachment[AnyRoute]]]) -> dict[str, Any]:
    served: list[Served] = []
    findings: list[Finding] = []
    for gw in gateways:
        mine = served_by(gw, plans.get(gw.key))
        served += mine
        seen = {(s.gateway, s.listener, s.hostname, s.route) for s in mine}
        findings += _wildcard_findings(str(gw.key), attachments.get(gw.key, ()), seen)
    findings += _multi_gateway_findings(served)
    return {"served": [s.to_dict() for s in sorted(served)],
            "findings": [f.to_dict() for f in sorted(set(findings))]}


def exposure_of(tr: Translation) -> dict[str, Any]:
    return exposure(tr.gateways, tr.plans, tr.attachments)
