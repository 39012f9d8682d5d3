"""Servers and locations: one `server` per (port, hostname), one `location` per distinct path.

- `= /x` for Exact, `= /p` + `/p/` for PathPrefix (element semantics), `~ ^(?:re)\\z` for
  RegularExpression, so only hosts with regex routes pay for regexes;
- inside a location the candidate matches are tried in Gateway API precedence order with
  rewrite-phase `if`s; a conditional match jumps to its action's internal location, the first
  unconditional one is served inline, and if none applies the answer is 404.
A server is rendered from the plan and its own virtual host only (see nginx.py's memo).
"""

from __future__ import annotations

from dataclasses import dataclass

from wardgate import ir
from wardgate.quoting import Arg, Raw, Text, header_variable, regex_escape
from wardgate.render import (
    actions,
    allowlist,
    direct,
    errorpages,
    headers,
    nginx_redirect,
    policies,
    rewrite,
    stream,
    tls,
    waf,
)
from wardgate.render.actions import INTERNAL_PREFIX, ServerCtx
from wardgate.render.emit import Directive, block, d, entry
from wardgate.render.headers import proxy_directives, proxy_list
from wardgate.render.paths import anchored, match_regex
from wardgate.render.plan import Plan, shared_policy
from wardgate.render.tables import Table, Tables, var_name

Cond = tuple[tuple[Arg, ...], tuple[Arg, ...]]  # (negated, positive)


@dataclass(frozen=True)
class ServerOut:
    node: Directive
    tables: tuple[Table, ...]
    files: tuple[tuple[str, str], ...]


def _cond(var: Arg, op: str, value: Arg) -> tuple[Arg, ...]:
    return (Raw("("), var, Raw(op), value, Raw(")"))


def listen_addr(plan: Plan) -> str:
    host = plan.opts.listen_host
    return f"[{host}]" if ":" in host else host


def server(plan: Plan, port: ir.Port, vhost: ir.VirtualHost, default: bool) -> ServerOut:
    shared = shared_policy(vhost)
    p = plan.policy(shared)
    srv = block("server")
    assert srv.block is not None
    listen: list[Arg] = [Raw(f"unix:{stream.https_socket(port.port)}") if port.behind_stream
                         else Raw(f"{listen_addr(plan)}:{port.port + plan.opts.port_offset}")]
    if default:
        listen.append(Raw("default_server"))
    if port.protocol == "HTTPS":
        listen += [Raw("ssl"), Raw("http2")]
    elif port.http2:
        listen.append(Raw("http2"))  # h2c with prior knowledge, for GRPCRoutes (ir.Port.http2)
    if plan.gw.client_ip.source == "proxy_protocol" or port.behind_stream:
        listen.append(Raw("proxy_protocol"))
    srv.add("listen", *listen)
    if port.behind_stream:
        # The stream module in front sends the client's address (after its own client-IP
        # rules) in the PROXY header; only that hop is trusted here, whatever the http level says.
        srv.add("set_real_ip_from", Raw("unix:"))
        srv.add("real_ip_header", Raw("proxy_protocol"))
    srv.add("server_name", vhost.hostname)
    # nginx routed on the request line's host when it has one; a Host header naming another
    # host would reach the backend (and its header matches, the WAF) under policies it never
    # passed. RFC 9112 3.2.2: the request-line authority wins, and clients must send the same.
    # wardgate's module refuses those, and ambiguous paths, before any location
    # (`wardgate_request_checks`, http level: nginx.py).
    tables = Tables()
    proxy, grpc_headers = plan.proxy_headers, plan.grpc_headers
    if p is not None and shared != plan.shared:
        proxy = proxy_list(tables, p.request_headers, ("policy", shared), plan.default_proxy)
        grpc_headers = proxy_list(tables, p.request_headers, ("policy", shared), plan.default_grpc)
    ctx = ServerCtx(plan, port, shared, proxy, grpc_headers, tables,
                    hsts=vhost.hsts if port.protocol == "HTTPS" else None)
    ctx.hoist_checks = not any(a.ssl_redirect and nginx_redirect.applies(a.ssl_redirect, port)
                               for a in _actions(plan, vhost))
    certs = vhost.certificates or (port.default_certificates if default else ())
    if port.protocol == "HTTPS":
        srv.block += tls.server(ctx.files, port, vhost, certs)
        if certs and port.client_validation is not None:
            srv.block += tls.client_validation(ctx.files, port.client_validation)
        if certs and len(port.listeners) > 1:
            srv.block.append(tls.sni_listener_check(ctx.tables, port, vhost))
    pids = [vhost.policy, *(pid for _, pid in vhost.action_policies)]
    if any((q := plan.policy(pid)) is not None and q.allowlist for pid in pids) or \
            rewrite.server_needs_uri(_actions(plan, vhost)):
        srv.block += allowlist.server_directives()
    if p is not None:
        # What every place of this server shares, once for all of them.
        if shared != plan.shared:
            srv.block += policies.shared_directives(plan, p)
            if proxy != plan.proxy_headers:
                srv.block += proxy_directives(proxy)
            if grpc_headers != plan.grpc_headers and any(a.grpc for a in _actions(plan, vhost)):
                srv.block += proxy_directives(grpc_headers, grpc=True)
        if ctx.hoist_checks and (p.ip_allow or p.ip_deny or p.allowed_methods):
            # Those checks answer before any location: their statuses need the error pages here.
            srv.block += errorpages.location(plan, ctx.tables, ctx.extra, ctx.files, p, None)
        srv.block += policies.server_checks(ctx.tables, plan, p, checks=ctx.hoist_checks)
    srv.block += _locations(ctx, vhost)
    srv.block += ctx.extra.values()
    return ServerOut(srv, ctx.tables.frozen(), tuple(ctx.files.items()))


def _actions(plan: Plan, vhost: ir.VirtualHost) -> list[ir.Action]:
    return [plan.actions[m.action] for m in vhost.matches]


def _locations(ctx: ServerCtx, vhost: ir.VirtualHost) -> list[Directive]:
    exact: dict[str, None] = {}
    # Direct responses are answered in an exact location of their own.
    for pid in {vhost.policy, *(pid for _, pid in vhost.action_policies)}:
        p = ctx.plan.policy(pid)
        if p is not None:
            for resp in p.direct:
                exact[resp.path] = None
    # Prefix locations by their nginx string: "/p/" for PathPrefix /p, the value itself for an
    # NginxPrefix; regex locations by their pattern.
    prefixes: dict[str, None] = {"/": None}
    regexes: dict[str, None] = {}
    for m in vhost.matches:
        if m.path.type == "Exact":
            exact[m.path.value] = None
        elif m.path.type == "PathPrefix":
            prefixes["/" if m.path.value == "/" else m.path.value + "/"] = None
            if m.path.value != "/":
                exact[m.path.value] = None
        elif m.path.type == "NginxPrefix":
            prefixes[m.path.value] = None
        else:
            regexes[match_regex(m.path)] = None
    used: dict[int, None] = {}
    out: list[Directive] = []
    for value in exact:
        out.append(Directive("location", (Raw("="), value), _dispatch(ctx, vhost, "exact", value, used)))
    for value in prefixes:
        out.append(Directive("location", (value,), _dispatch(ctx, vhost, "prefix", value, used)))
    tried: set[str] = set()  # nginx tries regex locations in order: a request here missed these
    for rx in regexes:
        out.append(Directive("location", (Raw("~"), rx), _dispatch(ctx, vhost, "regex", rx, used, tried)))
        tried.add(rx)
    by_action = dict(vhost.action_policies)
    for action_id in used:
        node = Directive("location", (Raw("="), f"{INTERNAL_PREFIX}a/{action_id}"), [])
        node.block = [d("internal"), *actions.body(ctx, ctx.plan.actions[action_id], internal=True,
                                                   pid=by_action.get(action_id))]
        out.append(node)
    return out


def _direct_index(ctx: ServerCtx, pid: int | None, kind: str, value: str) -> int | None:
    """Which direct response of policy `pid` answers this exact location, if any."""
    p = ctx.plan.policy(pid)
    return p.direct_for(value) if p is not None and kind == "exact" else None


def _direct(ctx: ServerCtx, pid: int, index: int) -> list[Directive]:
    p = ctx.plan.policies[pid]
    # The place's response headers (those the server doesn't add already); no body limit.
    head = tls.place_hsts(ctx.hsts, p)
    head += [] if pid == ctx.shared else [x for x in policies.shared_directives(ctx.plan, p)
                                          if x.name not in ("client_max_body_size", "wardgate_duplicate_headers")]
    head += headers.response(p.response_headers, shared=False, tables=ctx.tables, origin=("policy", pid))
    if ctx.plan.waf:
        head.append(d("modsecurity", Raw("off")))
    return direct.body(ctx.plan.direct, p, index, head,
                       policies.checks(ctx.tables, p, hoisted=ctx.hoisted(pid), allowlist_check=False))


def _dispatch(ctx: ServerCtx, vhost: ir.VirtualHost, kind: str, value: str, used: dict[int, None],
              tried: set[str] | None = None) -> list[Directive]:
    out: list[Directive] = []
    by_action = dict(vhost.action_policies)
    plan = ctx.plan
    for m in vhost.matches:
        conds = _path_conditions(kind, value, m)
        if conds is None or (tried and m.path.type in ("RegularExpression", "NginxRegex")
                             and match_regex(m.path) in tried):
            continue
        conds += _request_conditions(ctx, m)
        pid = by_action.get(m.action)
        index = _direct_index(ctx, pid, kind, value)
        if not conds:
            if pid is not None and index is not None:  # answered right here
                route = d("set", Raw("$wg_route"), Text(str(plan.actions[m.action].source)))
                return [*out, route, *_direct(ctx, pid, index)]
            p = plan.policy(pid)
            if not (out and p is not None and waf.enabled(p)):
                return out + actions.body(ctx, plan.actions[m.action], pid=pid)
            # This location may also jump elsewhere, and ModSecurity would keep its settings
            # for the whole request: serve the WAF route from its own internal location.
            used[m.action] = None
            return [*out, d("rewrite", Raw("^"), f"{INTERNAL_PREFIX}a/{m.action}", Raw("last"))]
        if pid is not None and index is not None:
            target = f"{INTERNAL_PREFIX}d/{pid}/{index}"
            if target not in ctx.extra:
                ctx.extra[target] = Directive("location", (Raw("="), target),
                                              [d("internal"), *_direct(ctx, pid, index)])
        else:
            used[m.action] = None
            target = f"{INTERNAL_PREFIX}a/{m.action}"
        jump = d("rewrite", Raw("^"), target, Raw("last"))
        if len(conds) == 1:
            out.append(Directive("if", conds[0][1], [jump]))
            continue
        out.append(d("set", Raw("$wg_m"), Raw("1")))
        for negated, _ in conds:
            out.append(Directive("if", negated, [d("set", Raw("$wg_m"), Raw("0"))]))
        out.append(Directive("if", (Raw("("), Raw("$wg_m"), Raw(")")), [jump]))
    index = _direct_index(ctx, vhost.policy, kind, value)
    if vhost.policy is not None and index is not None:
        return out + _direct(ctx, vhost.policy, index)
    p = plan.policy(vhost.policy)
    return [*out, *policies.location(ctx.tables, plan, p, ctx.shared, ctx.shared, ctx.extra, ctx.files,
                                     with_waf=False, hsts=ctx.hsts),
            *policies.checks(ctx.tables, p, hoisted=ctx.hoisted(vhost.policy)),
            d("set", Raw("$wg_decision"), "no-route"), d("return", 404)]


def _path_conditions(kind: str, value: str, m: ir.Match) -> list[Cond] | None:
    """None: the match can't apply in this location. []: it always does. Else dynamic checks.

    `value` is the location's: the exact path, the prefix location's string, or the regex. A
    prefix location gets only requests no longer prefix location and no exact one takes, so a
    prefix match applies there always or never."""
    p = m.path
    if p.type == "Exact":
        return [] if kind == "exact" and p.value == value else None
    rx = match_regex(p)
    if p.type in ("RegularExpression", "NginxRegex"):
        if kind == "regex" and rx == value:
            return []
        if kind == "prefix":
            return None  # nginx tried every regex location before settling on a prefix one
    elif p.value == "/":
        return []
    elif kind == "exact":
        covers = value.startswith(p.value) if p.type == "NginxPrefix" else (
            value == p.value or value.startswith(p.value + "/"))
        return [] if covers else None
    elif kind == "prefix":
        return [] if value.startswith(p.value if p.type == "NginxPrefix" else p.value + "/") else None
    return [(_cond(Raw("$uri"), "!~", rx), _cond(Raw("$uri"), "~", rx))]


def _value_cond(var: Arg, type_: str, value: str) -> Cond:
    if type_ == "Exact":
        return (_cond(var, "!=", Text(value)), _cond(var, "=", Text(value)))
    rx = anchored(value)
    return (_cond(var, "!~", rx), _cond(var, "~", rx))


def _request_conditions(ctx: ServerCtx, m: ir.Match) -> list[Cond]:
    """(negated, positive) condition pairs for method, headers and query parameters."""
    out: list[Cond] = []
    if m.method:
        method = Raw(m.method)
        out.append((_cond(Raw("$request_method"), "!=", method), _cond(Raw("$request_method"), "=", method)))
    out += [_value_cond(Raw(header_variable(h.name)), h.type, h.value) for h in m.headers]
    out += [_value_cond(_query_var(ctx, q.name, (m.action, m.order, i)), q.type, q.value)
            for i, q in enumerate(m.query)]
    return out


def _query_var(ctx: ServerCtx, name: str, key: tuple[object, ...]) -> Raw:
    """The first value of a case-sensitive query parameter (nginx's $arg_ ignores case)."""
    var = var_name("wg_q", *key)
    return ctx.tables.add(var, Directive("map", (Raw("$args"), Raw("$" + var)), [
        entry(f"~(?:^|&){regex_escape(name)}=(?<{var}v>[^&]*)", Raw(f"${var}v")), d("default", "")]))
