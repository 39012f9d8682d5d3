"""TLS passthrough: TLSRoutes on Passthrough listeners become SNI-routed ports of the IR."""

from __future__ import annotations

from dataclasses import replace

from wardgate import ir
from wardgate.errors import Problem
from wardgate.model.gatewayapi import TLSRoute
from wardgate.translate.gateways import SNI_PROTOCOLS, GatewayPlan, ListenerPlan
from wardgate.translate.hostnames import owner, specificity
from wardgate.translate.index import Index
from wardgate.translate.routes import Attachment, Backend, BackendError, resolve_backend


def _age(route: TLSRoute) -> tuple[str, int, str, str]:
    return (route.metadata.creation_timestamp or "", route.seq, route.namespace, route.name)


class _Builder:
    def __init__(self, index: Index) -> None:
        self.index = index
        self.upstreams: dict[tuple[str, str, int], ir.Upstream] = {}
        self.problems: list[Problem] = []

    def warn(self, route: TLSRoute, path: str | None, message: str) -> None:
        self.problems.append(Problem(message, route.origin, "TLSRoute", route.namespace, route.name, path))

    def backends(self, route: TLSRoute) -> tuple[ir.WeightedBackend, ...]:
        """Every rule's backendRefs (v1 has one rule; v1alpha2 rules have no matches to tell
        theirs apart), weighted; an invalid one keeps its share, which is refused."""
        out: list[ir.WeightedBackend] = []
        for r, rule in enumerate(route.spec.rules):
            for i, ref in enumerate(rule.backend_refs):
                if ref.weight == 0:
                    continue
                res = resolve_backend(ref, route, self.index, f"spec.rules[{r}].backendRefs[{i}]")
                if isinstance(res, BackendError):
                    self.warn(route, res.field, f"{res.detail}; its share of connections is refused")
                    out.append(ir.WeightedBackend(None, ref.weight))
                    continue
                out.append(ir.WeightedBackend(self.upstream(res), ref.weight))
        return tuple(out)

    def upstream(self, b: Backend) -> str:
        key = (b.namespace, b.service, b.port)
        up = self.upstreams.get(key)
        if up is None:
            up = self.upstreams[key] = ir.Upstream(f"wg_t{len(self.upstreams)}", b.endpoints)
        return up.name

    def port(self, port: int, listeners: list[ListenerPlan], attachments: list[Attachment[TLSRoute]]
             ) -> ir.PassthroughPort:
        hosts = [p.listener.hostname or "" for p in listeners]
        https = [p for p in listeners if p.listener.protocol == "HTTPS"]
        routes: dict[str, ir.SniRoute] = {}
        winners: dict[str, TLSRoute] = {}
        for a in sorted(attachments, key=lambda a: _age(a.route)):
            backends: tuple[ir.WeightedBackend, ...] | None = None
            for host in a.hostnames:
                i = owner(hosts, host)
                if i is None or listeners[i] is not a.listener:
                    continue  # a more specific listener on this port owns the name
                if host in winners:
                    if winners[host] is not a.route:
                        self.warn(a.route, "spec.hostnames",
                                  f"{host or 'any name'} on port {port} is already routed by "
                                  f"TLSRoute {winners[host].namespace}/{winners[host].name} (older); "
                                  "this route does not get it")
                    continue
                if backends is None:
                    backends = self.backends(a.route)
                winners[host] = a.route
                routes[host] = ir.SniRoute(host, backends, ir.RouteRef(a.route.namespace, a.route.name, 0))
        tls_hosts = [p.listener.hostname for p in listeners if p.listener.protocol == "TLS" and p.listener.hostname]
        return ir.PassthroughPort(
            port,
            tuple(routes[h] for h in sorted(routes, key=lambda h: (specificity(h), h))),
            tuple(sorted(p.listener.hostname for p in https if p.listener.hostname)),
            any(not p.listener.hostname for p in https),
            tuple(sorted(h for h in tls_hosts if h not in routes)),
        )


def add_passthrough(gw: ir.Gateway, plan: GatewayPlan, attachments: list[Attachment[TLSRoute]],
                    index: Index) -> tuple[ir.Gateway, list[Problem]]:
    """The Gateway with its passthrough ports; HTTPS ports that share one are marked as reached
    through the stream module."""
    ports: dict[int, list[ListenerPlan]] = {}
    for p in plan.listeners:
        if p.programmable and p.listener.protocol in SNI_PROTOCOLS:
            ports.setdefault(p.listener.port, []).append(p)
    builder = _Builder(index)
    out: list[ir.PassthroughPort] = []
    for port, listeners in sorted(ports.items()):
        if any(p.listener.protocol == "TLS" for p in listeners):
            ids = {id(p) for p in listeners}
            mine = [a for a in attachments if id(a.listener) in ids]
            out.append(builder.port(port, listeners, mine))
    if not out:
        return gw, builder.problems
    shared = {p.port for p in out}
    http_ports = tuple(replace(p, behind_stream=True) if p.port in shared else p for p in gw.ports)
    return replace(gw, ports=http_ports, passthrough=tuple(out),
                   stream_upstreams=tuple(builder.upstreams.values())), builder.problems
