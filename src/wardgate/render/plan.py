"""The planning pass: IR -> an immutable Plan of everything more than one server refers to.

Each feature module plans its own part (rate-limit zones, Lua configuration, direct-response
bodies, upstream copies); this module adds what is hoisted: the policy every place of the Gateway
shares (its headers and body limit go to http level) and, per server, the policy all of its places
share (its checks and Lua entry go to server level). Emitting (nginx.py, routing.py) reads the
plan and never changes it, so nothing depends on the order servers are written in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from wardgate import ir
from wardgate.render import affinity, basicauth, concurrency, direct, lua, ratelimit, upstreams, waf
from wardgate.render.headers import ProxyHeaders, default_headers, proxy_list
from wardgate.render.module import default_wardgate_module
from wardgate.render.tables import Table, Tables


@dataclass(frozen=True)
class RenderOptions:
    listen_host: str = "0.0.0.0"
    port_offset: int = 0
    modules_dir: str = "/usr/lib/nginx/modules"
    worker_processes: int | None = None  # None: one per core
    worker_connections: int = 4096
    access_log: bool = True
    # Trust anchors for BackendTLSPolicy wellKnownCACertificates: System.
    system_ca_file: str = "/etc/ssl/certs/ca-certificates.crt"
    # Where modules that resolve paths against the working directory (ModSecurity's audit log)
    # write logs: the instance's absolute logs/ directory.
    log_dir: str = "logs"
    wardgate_module: str = field(default_factory=default_wardgate_module)


def server_policies(vhost: ir.VirtualHost) -> set[int | None]:
    """The policies the places of a server apply: routes' actions and the host's own (requests no
    route serves, direct responses)."""
    by_action = dict(vhost.action_policies)
    return {vhost.policy, *(by_action.get(m.action) for m in vhost.matches)}


def shared_policy(vhost: ir.VirtualHost) -> int | None:
    """The policy every place of this server applies, if there is one."""
    pids = server_policies(vhost)
    return pids.pop() if len(pids) == 1 else None


@dataclass(frozen=True)
class Plan:
    gw: ir.Gateway
    opts: RenderOptions
    actions: Mapping[int, ir.Action]
    policies: Mapping[int, ir.Policy]
    upstreams: upstreams.UpstreamPlan
    rate: ratelimit.RatePlan
    lua: lua.LuaPlan
    direct: direct.DirectPlan
    basic: basicauth.BasicAuthPlan  # the htpasswd files nginx's workers read
    waf: bool  # some place has the WAF on: CRS is loaded
    concurrency: bool  # some place limits concurrent requests: the limit_conn zone is declared
    # The policy every place of the Gateway applies: its response headers (headers-more part),
    # body limit and request headers are written once at http level.
    shared: int | None
    proxy_headers: ProxyHeaders  # the http-level proxy_set_header list
    grpc_headers: ProxyHeaders
    # What every proxied request carries before any policy or filter (ClientTrafficPolicy
    # backendHeaders): the base of every place's list.
    default_proxy: ProxyHeaders
    default_grpc: ProxyHeaders
    tables: tuple[Table, ...]  # http-level tables the plan itself needs

    def policy(self, pid: int | None) -> ir.Policy | None:
        return self.policies.get(pid) if pid is not None else None

    def header_defaults(self, grpc: bool) -> ProxyHeaders:
        return self.default_grpc if grpc else self.default_proxy


def _servers(gw: ir.Gateway) -> list[ir.VirtualHost]:
    """Every server's virtual host, the catch-all added for ports without one."""
    out: list[ir.VirtualHost] = []
    for port in gw.ports:
        out += port.vhosts
        if not any(v.hostname == "" for v in port.vhosts):
            out.append(ir.VirtualHost("", (), policy=port.policy))
    return out


def make_plan(gw: ir.Gateway, opts: RenderOptions) -> Plan:
    policies = {p.id: p for p in gw.policies}
    vhosts = _servers(gw)
    per_server = [server_policies(v) for v in vhosts]
    used = frozenset(pid for pids in per_server for pid in pids if pid is not None)
    rate = ratelimit.plan(gw.policies, used)
    everywhere = set().union(*per_server) if per_server else set()
    shared = everywhere.pop() if len(everywhere) == 1 else None
    p = policies.get(shared) if shared is not None else None
    if p is not None and any(v.hsts for v in vhosts) and any(
            n.lower() == "strict-transport-security" for n in (*(k for k, _ in p.response_headers.set),
                                                                 *p.response_headers.remove)):
        # http-level headers run before the server's HSTS, which would then win over the policy.
        shared, p = None, None
    tables = Tables()
    for a in gw.actions:  # the keys sessionPersistence's upstream copies hash on
        if a.session is not None:
            affinity.key_tables(tables, a.session)
    ops = p.request_headers if p else ir.HeaderOps()
    default_proxy = default_headers(gw.backend_headers)
    default_grpc = default_headers(gw.backend_headers, grpc=True)
    proxy = proxy_list(tables, ops, ("policy", shared), default_proxy)
    grpc = proxy_list(tables, ops, ("policy", shared), default_grpc)
    return Plan(
        gw=gw, opts=opts, actions={a.id: a for a in gw.actions}, policies=policies,
        upstreams=upstreams.plan(gw), rate=rate, lua=lua.plan(gw.policies, used, rate),
        direct=direct.plan(gw.policies, used), basic=basicauth.plan(gw.policies, used),
        waf=any(waf.enabled(policies[i]) for i in used),
        concurrency=concurrency.used(gw.policies, used),
        shared=shared, proxy_headers=proxy, grpc_headers=grpc, default_proxy=default_proxy,
        default_grpc=default_grpc, tables=tables.frozen(),
    )
