"""errorPages: ingress-nginx's custom-http-errors and default-backend annotations.

- `statuses`: the place intercepts those answers (`proxy_intercept_errors`, and nginx's own
  answers with `error_page`) and hands the request to a named location per status, which asks
  the error backend for `/` with X-Code and context headers; the client gets the error backend's
  answer, status included (`error_page ... =`).
- `no_endpoints`: a request meant for a Service without ready endpoints (known when rendering:
  endpoints are part of the configuration) goes as it came to the error backend, with X-Code
  503, instead of being answered 503 (actions.py). In a weighted split, only the share of such a
  Service does.

The context (namespace, route, Service and port) is set per place, since a named location is
shared by every place of the policy on a server; variables survive nginx's internal redirects.
"""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import Arg, Expr, Raw, Text
from wardgate.render import tls
from wardgate.render.emit import Directive, d
from wardgate.render.headers import proxy_list, value_arg, value_parts
from wardgate.render.plan import Plan
from wardgate.render.tables import Tables

# (header, variable) of the context the error backend gets, set by each place.
CONTEXT = (("X-Namespace", "$wg_ep_ns"), ("X-Ingress-Name", "$wg_ep_route"), ("X-Service-Name", "$wg_ep_svc"),
           ("X-Service-Port", "$wg_ep_port"))


def _service(plan: Plan, action: ir.Action | None) -> ir.Upstream | None:
    for b in action.backends if action else ():
        if b.upstream and b.weight > 0:
            return plan.upstreams.by_name[plan.upstreams.base[b.upstream]]
    return None


def _context(plan: Plan, action: ir.Action | None) -> list[Directive]:
    up = _service(plan, action)
    values = (action.source.namespace if action else "", action.source.name if action else "",
              up.service if up else "", str(up.service_port) if up and up.service_port else "")
    return [d("set", Raw(var), Text(value)) for (_, var), value in zip(CONTEXT, values, strict=True)]


def _headers(plan: Plan, tables: Tables, p: ir.Policy, code: int, original_uri: bool) -> list[Directive]:
    """The whole header list for the error backend: the Gateway's, the place's policy headers, the
    context."""
    headers: dict[str, tuple[str, Arg]] = {
        k.lower(): (k, v) for k, v in proxy_list(tables, p.request_headers, ("policy", p.id), plan.default_proxy)}
    extra: list[tuple[str, Arg]] = [("X-Code", str(code)), ("X-Format", Raw("$http_accept"))]
    if original_uri:
        extra.append(("X-Original-URI", Raw("$request_uri")))
    extra += [(name, Raw(var)) for name, var in CONTEXT]
    extra += [("Upgrade", ""), ("Connection", "")]
    assert p.error_pages is not None
    extra += [(name, value_arg(value_parts(v))) for name, v in p.error_pages.request_headers]
    for name, value in extra:
        headers[name.lower()] = (name, value)
    return [d("proxy_set_header", name, value) for name, value in headers.values()]


def _pass(plan: Plan, files: dict[str, str], upstream: str, uri: Raw | None) -> list[Directive]:
    up = plan.upstreams.by_name[upstream]
    out = tls.backend(files, up.tls, plan.opts.system_ca_file, "proxy") if up.tls is not None else []
    target = Raw(f"{'https' if up.tls is not None else 'http'}://{upstream}")
    return [*out, d("proxy_pass", Expr((target, uri)) if uri is not None else target)]


def _named(plan: Plan, tables: Tables, files: dict[str, str], p: ir.Policy, code: int) -> Directive:
    ep = p.error_pages
    assert ep is not None and ep.upstream is not None
    node = Directive("location", (Raw(f"@wg_error{p.id}_{code}"),), [])
    assert node.block is not None
    if plan.waf:
        node.block.append(d("modsecurity", Raw("off")))
    if plan.lua.on:
        node.block.append(d("set", Raw("$wg_lua"), ""))  # the checks ran before the error
    node.block += [d("proxy_intercept_errors", Raw("off")), *_headers(plan, tables, p, code, original_uri=True),
                   d("rewrite", Raw("^"), "/", Raw("break")), *_pass(plan, files, ep.upstream, None)]
    return node


def location(plan: Plan, tables: Tables, extra: dict[str, Directive], files: dict[str, str], p: ir.Policy,
             action: ir.Action | None) -> list[Directive]:
    """What a place of policy `p` writes for error pages; the named locations go to `extra`. Also
    a server whose every place applies `p` (action None), for the checks it runs itself."""
    ep = p.error_pages
    if ep is None or not _usable(plan, ep):
        return []
    out = _context(plan, action)
    if not ep.statuses:
        return out
    live = [b for b in action.backends if b.weight > 0] if action else []
    if action is not None and not action.grpc and not (
            falls_back(plan, p, action) and plan.upstreams.none_ready(live)):
        # (A place that falls back to the error backend passes its answers on as they are.)
        out.append(d("proxy_intercept_errors", Raw("on")))
    for code in ep.statuses:
        name = f"@wg_error{p.id}_{code}"
        if name not in extra:
            extra[name] = _named(plan, tables, files, p, code)
        out.append(d("error_page", code, Raw("="), Raw(name)))
    return out


def _usable(plan: Plan, ep: ir.ErrorPages) -> bool:
    """An error-page Service without ready endpoints can't answer: the answers stay as they are
    (a 503 for a route without endpoints too), rather than becoming nginx's 502."""
    return ep.upstream is not None and plan.upstreams.ready(ep.upstream)


def falls_back(plan: Plan, p: ir.Policy | None, action: ir.Action) -> bool:
    """Whether this place sends the requests meant for a Service without ready endpoints to the
    error backend (ingress-nginx's default-backend), rather than answering 503."""
    ep = p.error_pages if p else None
    return ep is not None and ep.no_endpoints and _usable(plan, ep) and not action.grpc


def fallback(plan: Plan, tables: Tables, files: dict[str, str], p: ir.Policy, internal: bool) -> list[Directive]:
    """The request as it came (method, path, body) to the error backend, with X-Code 503."""
    ep = p.error_pages
    assert ep is not None and ep.upstream is not None
    return [*_headers(plan, tables, p, 503, original_uri=False),
            *_pass(plan, files, ep.upstream, Raw("$request_uri") if internal else None)]
