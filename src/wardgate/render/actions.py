"""What a matched rule does at the place that serves it: proxy (or grpc) pass with its request
headers, timeouts, retries, backend TLS, mirrors and weighted or per-backend splits; redirects and
path rewrites; CORS; the gateway's own answers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from wardgate import ir
from wardgate.quoting import Arg, Expr, Raw, Text
from wardgate.render import affinity, cors, errorpages, grpc, headers, nginx_redirect, policies, rewrite, tls
from wardgate.render.emit import Directive, d, entry
from wardgate.render.headers import ProxyHeaders
from wardgate.render.module import REQUEST_ID
from wardgate.render.paths import prefix_rest
from wardgate.render.plan import Plan
from wardgate.render.tables import Tables, var_name

INTERNAL_PREFIX = "/_wardgate/"
# The 404 of a rule that serves nothing (IngressNginxCompat notFound), answered where a backend's
# would come from: after the access phase (authentication, rate limits, which a rewrite-phase
# `return` skips). try_files looks for a file that can't exist (/dev/null is no directory) and
# answers its `=404` in nginx's precontent phase.
NOT_FOUND = [d("root", "/dev/null"), d("try_files", "/.wardgate-not-found", Raw("=404"))]
NO_ENDPOINTS = "no-endpoints"  # the decision log's name for that answer
# The split value of a backend without ready endpoints (upstream names are wg_...).
_EMPTY = "-"
# A disabled ("0s") timeout: nginx has no "never", so the largest 32-bit millisecond count (24.8 days).
LONGEST_TIMEOUT_MS = 2**31 - 1


@dataclass
class ServerCtx:
    """What rendering one server collects: http-level tables, files, and internal locations (by
    path: an action served from several locations shares them). Read-only otherwise."""

    plan: Plan
    port: ir.Port
    shared: int | None  # the policy every place of the server applies (hoisted to server level)
    proxy_headers: ProxyHeaders  # what a location inherits
    grpc_headers: ProxyHeaders
    tables: Tables = field(default_factory=Tables)
    files: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Directive] = field(default_factory=dict)
    bodies: dict[tuple[int, bool, int | None], list[Directive]] = field(default_factory=dict)
    hsts: str | None = None  # the server's Strict-Transport-Security; None on plain HTTP
    # False when some place answers an HTTPS redirect before its policy's checks, which the
    # server level would then run too early.
    hoist_checks: bool = True

    def hoisted(self, pid: int | None) -> bool:
        """Whether the server level runs policy `pid`'s ipAccess and allowedMethods checks."""
        return self.hoist_checks and pid == self.shared


def _cond(var: Arg, op: str, value: Arg) -> tuple[Arg, ...]:
    return (Raw("("), var, Raw(op), value, Raw(")"))


def split(tables: Tables, key: tuple[object, ...], shares: list[tuple[float, str]], salt: str = "",
          by: str = REQUEST_ID[1:]) -> str:
    """A split_clients variable choosing among values by percentage, per request (or per value
    of variable `by`: a session key). Splits with different `salt`s decide independently of each
    other for one request."""
    name = var_name("wg_s", key, salt) if by == REQUEST_ID[1:] else var_name("wg_s", key, salt, by)
    node = Directive("split_clients", (Expr((Raw("${" + by + "}"), salt)), Raw("$" + name)), [])
    assert node.block is not None
    total = sum(w for w, _ in shares) or 1.0
    acc = 0.0
    for i, (weight, value) in enumerate(shares):
        pct = round(100.0 * weight / total, 2)
        if i == len(shares) - 1 or acc + pct >= 100.0:
            node.block.append(entry("*", value))
            break
        if pct > 0:
            node.block.append(entry(f"{pct:g}%", value))
        acc += pct
    tables.add(name, node)
    return name


def _request_headers(ctx: ServerCtx, action: ir.Action, pid: int | None) -> list[Directive]:
    """The place's request header list when it differs from the one it inherits (nginx drops
    every inherited proxy_set_header of a location that declares one, so it comes whole)."""
    p = ctx.plan.policy(pid)
    host = action.rewrite.hostname if action.rewrite else None
    inherited = ctx.grpc_headers if action.grpc else ctx.proxy_headers
    if not host and not action.request_headers and (p is None or not p.request_headers):
        defaults = ctx.plan.header_defaults(action.grpc)
        return [] if inherited is defaults or inherited == defaults else headers.proxy_directives(defaults, action.grpc)
    ops = (p.request_headers if p else ir.HeaderOps()) + action.request_headers
    wanted = headers.proxy_list(ctx.tables, ops, ("place", pid, action.id), ctx.plan.header_defaults(action.grpc),
                                host)
    return [] if wanted == inherited else headers.proxy_directives(wanted, action.grpc)


def path_expr(path_type: str | None, value: str | None, prefix: str | None) -> tuple[
        list[Directive], tuple[Raw | str, ...]]:
    """Directives computing the new path, and the path as Expr parts (query excluded)."""
    if path_type == "ReplaceFullPath" and value is not None:
        return [], (value,)
    if path_type == "ReplacePrefixMatch" and value is not None and prefix is not None:
        stmts = [
            d("set", Raw("$wg_rest"), ""),
            Directive("if", _cond(Raw("$wg_rawpath"), "~", prefix_rest(prefix)),
                      [d("set", Raw("$wg_rest"), Raw("$1"))]),
        ]
        base = value.rstrip("/")
        stmts.append(d("set", Raw("$wg_path"), Expr((base, Raw("$wg_rest"))) if base else Raw("$wg_rest")))
        stmts.append(Directive("if", _cond(Raw("$wg_path"), "=", ""), [d("set", Raw("$wg_path"), "/")]))
        return stmts, (Raw("$wg_path"),)
    return [], (Raw("$wg_rawpath"),)


def redirect(tables: Tables, rd: ir.Redirect, port: ir.Port) -> list[Directive]:
    if rd.path_type == "HostURI":
        return nginx_redirect.host_uri(tables, rd, port)
    if rd.path_type == "Location" and rd.path_value is not None:
        # nginx's `return` as ingress-nginx writes it: the URL, or $scheme://$http_host<path>.
        url = rd.path_value
        where = Text(url) if not url.startswith("/") else Expr((Raw("$scheme"), "://", Raw("$http_host"), url))
        return [d("return", rd.status_code, where)]
    stmts, path = path_expr(rd.path_type, rd.path_value, rd.matched_prefix)
    scheme: Raw | str = rd.scheme or Raw("$scheme")
    host: Raw | str = rd.hostname or Raw("$host")
    parts: list[Raw | str] = [scheme, "://", host]
    default = 443 if port.protocol == "HTTPS" else 80
    if rd.port is not None:
        if rd.scheme is not None:
            default = {"http": 80, "https": 443}.get(rd.scheme, 0)
        if rd.port != default:
            parts.append(f":{rd.port}")
    elif rd.scheme is None and port.port != default:
        parts.append(f":{port.port}")
    parts += [*path, Raw("$is_args"), Raw("$args")]
    return [*stmts, d("return", rd.status_code, Expr(tuple(parts)))]


def timeouts(action: ir.Action) -> list[Directive]:
    """backendRequest bounds each try; request bounds the whole exchange, retries included:
    nginx starts no further try once it has passed. 0 disables a timeout (the longest nginx has)."""

    def ms(seconds: float) -> Raw:
        return Raw(f"{max(1, min(LONGEST_TIMEOUT_MS, int(seconds * 1000))) if seconds else LONGEST_TIMEOUT_MS}ms")

    out: list[Directive] = []
    per_try = action.backend_timeout_s if action.backend_timeout_s is not None else action.request_timeout_s
    if per_try is not None:
        out += [d(name, ms(per_try)) for name in ("proxy_connect_timeout", "proxy_send_timeout", "proxy_read_timeout")]
    if action.request_timeout_s:
        out.append(d("proxy_next_upstream_timeout", ms(action.request_timeout_s)))
    return out


def _retry(retry: ir.Retry) -> list[Directive]:
    if retry.attempts == 0:
        return [d("proxy_next_upstream", Raw("off"))]
    conditions = [Raw("error"), Raw("timeout"), *(Raw(f"http_{c}") for c in sorted(retry.codes))]
    return [d("proxy_next_upstream", *conditions), d("proxy_next_upstream_tries", retry.attempts + 1)]


def _backend_tls(plan: Plan, names: list[str]) -> ir.UpstreamTLS | None:
    """The TLS settings shared by these upstreams (retry copies have their base's)."""
    if len(names) == 1:
        return plan.upstreams.tls(names[0])
    settings = {plan.upstreams.tls(n) for n in names}
    if len(settings) > 1:
        raise ValueError("the backends of one rule must all use TLS (BackendTLSPolicy) with the same "
                         "settings, or none")
    return settings.pop() if settings else None


def body(ctx: ServerCtx, action: ir.Action, internal: bool = False, pid: int | None = None) -> list[Directive]:
    """The directives serving an action under policy `pid`. `internal`: in a location reached
    by an internal redirect, where nginx no longer has the client's URI and it must be passed
    explicitly. (A PathPrefix rule is served inline in two locations: built once per server.)"""
    key = (action.id, internal, pid)
    if key not in ctx.bodies:
        ctx.bodies[key] = _body(ctx, action, internal, pid)
    return ctx.bodies[key]


def _body(ctx: ServerCtx, action: ir.Action, internal: bool, pid: int | None) -> list[Directive]:
    plan = ctx.plan
    p = plan.policy(pid)
    # ingress-nginx's HTTPS redirect: between its rewrite-phase checks and its access checks
    # (policies.checks); where it always answers, nothing after it runs (no WAF).
    ssl = nginx_redirect.ssl(ctx.tables, action.ssl_redirect, ctx.port) if action.ssl_redirect else None
    always = bool(ssl) and ssl is not None and ssl[0].name == "return"
    out: list[Directive] = [*policies.location(ctx.tables, plan, p, ctx.shared, ctx.shared, ctx.extra, ctx.files,
                                               action, hsts=ctx.hsts, with_waf=not always),
                            d("set", Raw("$wg_route"), Text(str(action.source))),
                            *policies.checks(ctx.tables, p, hoisted=ctx.hoisted(pid), redirect=ssl or None)]
    if always:
        return out + headers.response(action.response_headers)
    if action.response_headers:
        out += headers.response(action.response_headers)
    if action.cors is not None:
        out += cors.directives(ctx.tables, action.cors, action.id)
    if action.direct_status is not None:
        return [*out, d("return", action.direct_status)]
    if action.not_found:
        return out + NOT_FOUND
    if action.redirect is not None:
        return out + redirect(ctx.tables, action.redirect, ctx.port)
    regex_rewrite = rewrite.applies(action)
    path: tuple[Raw | str, ...]
    if action.rewrite is not None and not regex_rewrite:
        path_stmts, path = path_expr(action.rewrite.path_type, action.rewrite.path_value,
                                     action.rewrite.matched_prefix)
    else:
        path_stmts, path = [], ()
    out += path_stmts
    # Without a URI part nginx forwards the client's raw URI itself (or, after a regex rewrite,
    # the new path); a variable here would make every location a runtime-evaluated proxy_pass
    # (measured: 1.8x the memory and 5x the `nginx -t` time at 10k routes).
    uri: Expr | Raw | None = Expr((*path, Raw("$is_args"), Raw("$args"))) if path else (
        Raw("$request_uri") if internal and not regex_rewrite else None)
    backends = [b for b in action.backends if b.weight > 0]
    if plan.upstreams.none_ready(backends):
        if p is not None and errorpages.falls_back(plan, p, action):
            return out + errorpages.fallback(plan, ctx.tables, ctx.files, p, internal)
        return out + _no_endpoints()
    if action.retry is not None:
        out += _retry(action.retry)
    sticky = affinity.key_var(action.session) if action.session else ""
    if action.retry is not None or sticky:
        tries = action.retry.attempts + 1 if action.retry else 1
        backends = [replace(b, upstream=plan.upstreams.for_tries(b.upstream, tries, sticky)) if b.upstream else b
                    for b in backends]
    if action.session is not None:
        out += affinity.location(ctx.tables, action.session, ctx.port.protocol == "HTTPS")
    empty = any(_split_value(plan, b) == _EMPTY for b in backends)
    if len(backends) > 1 and (any(b.request_headers or b.response_headers for b in backends)
                              or (empty and errorpages.falls_back(plan, p, action))):
        # (Each backend gets a location of its own: one without endpoints, the error-page fallback.)
        return out + _per_backend(ctx, action, backends, pid)
    if len(backends) == 1 and backends[0].upstream:
        target = backends[0].upstream
    else:
        var = split(ctx.tables, ("backends", action.id),
                    [(float(b.weight), _split_value(plan, b)) for b in backends],
                    by=sticky or REQUEST_ID[1:])
        out.append(Directive("if", _cond(Raw("$" + var), "=", ""), [d("return", 503 if action.grpc else 500)]))
        if empty:
            out.append(Directive("if", _cond(Raw("$" + var), "=", _EMPTY), _no_endpoints()))
        target = "${" + var + "}"
    out += _request_headers(ctx, action, pid)
    out += timeouts(action)
    for i, mirror in enumerate(action.mirrors):
        loc = f"{INTERNAL_PREFIX}m/{action.id}_{i}"
        out.append(d("mirror", loc))
        if loc not in ctx.extra:
            ctx.extra[loc] = _mirror_location(ctx, loc, mirror, action)
    if regex_rewrite:
        out.append(rewrite.directive(ctx.tables, action))
    scheme = "grpc" if action.grpc else "http"
    backend_tls = _backend_tls(plan, [b.upstream for b in backends if b.upstream])
    if backend_tls is not None:
        scheme += "s"
        out += tls.backend(ctx.files, backend_tls, plan.opts.system_ca_file, "grpc" if action.grpc else "proxy")
    if action.grpc:
        return out + grpc.grpc_pass(f"{scheme}://{target}", internal)
    if uri is None and not target.startswith("$"):
        return [*out, d("proxy_pass", Raw(f"{scheme}://{target}"))]
    tail = (uri.parts if isinstance(uri, Expr) else (uri,)) if uri is not None else ()
    return [*out, d("proxy_pass", Expr((Raw(f"{scheme}://{target}"), *tail)))]


def _split_value(plan: Plan, b: ir.WeightedBackend) -> str:
    """What a backend split picks for `b`: its upstream; "" (500) for an invalid backendRef,
    _EMPTY (503) for a Service without ready endpoints."""
    if not b.upstream:
        return ""
    return b.upstream if plan.upstreams.ready(b.upstream) else _EMPTY


def _no_endpoints() -> list[Directive]:
    """The answer for requests to a Service without ready endpoints: 503, as Gateway API asks
    (HTTPRouteRule.backendRefs; gRPC clients read it as UNAVAILABLE), and as ingress-nginx gave."""
    return [d("set", Raw("$wg_decision"), NO_ENDPOINTS), d("return", 503)]


def _per_backend(ctx: ServerCtx, action: ir.Action, backends: list[ir.WeightedBackend],
                 pid: int | None) -> list[Directive]:
    """Backends with their own header filters: pick one, then jump to a location made for it."""
    var = split(ctx.tables, ("per-backend", action.id),
                [(float(b.weight), str(i) if b.upstream else "") for i, b in enumerate(backends)],
                by=affinity.key_var(action.session) if action.session else REQUEST_ID[1:])
    out = [Directive("if", _cond(Raw("$" + var), "=", ""), [d("return", 503 if action.grpc else 500)])]
    for i, b in enumerate(backends):
        if not b.upstream:
            continue
        loc = f"{INTERNAL_PREFIX}b/{action.id}_{i}"
        out.append(Directive("if", _cond(Raw("$" + var), "=", Raw(str(i))), [d("rewrite", Raw("^"), loc, Raw("last"))]))
        if loc in ctx.extra:
            continue
        # The copy's upstream is already the retry copy: no second retry rewrite.
        single = replace(action, backends=(replace(b, request_headers=ir.HeaderOps(),
                                                   response_headers=ir.HeaderOps()),),
                         request_headers=action.request_headers + b.request_headers,
                         response_headers=action.response_headers + b.response_headers, retry=None)
        node = Directive("location", (Raw("="), loc), [])
        ctx.extra[loc] = node
        node.block = [d("internal"), *(_retry(action.retry) if action.retry else []),
                      *_body(ctx, single, internal=True, pid=pid)]  # not cached: one per backend
    return out


def _mirror_location(ctx: ServerCtx, loc: str, mirror: ir.Mirror, action: ir.Action) -> Directive:
    node = Directive("location", (Raw("="), loc), [d("internal")])
    assert node.block is not None
    if mirror.percent < 100.0:
        # Salted by location: each mirror filter of a rule samples on its own.
        var = split(ctx.tables, ("mirror", loc), [(mirror.percent, "1"), (100.0 - mirror.percent, "")], salt=loc)
        node.block.append(Directive("if", _cond(Raw("$" + var), "=", ""), [d("return", 204)]))
    # Mirrors carry the route's request headers, not the policy's.
    wanted = headers.proxy_list(ctx.tables, action.request_headers, ("mirror", action.id),
                                ctx.plan.header_defaults(action.grpc),
                                action.rewrite.hostname if action.rewrite else None)
    if wanted != (ctx.grpc_headers if action.grpc else ctx.proxy_headers):
        node.block += headers.proxy_directives(wanted, action.grpc)
    backend_tls = _backend_tls(ctx.plan, [mirror.upstream])
    if backend_tls is not None:
        node.block += tls.backend(ctx.files, backend_tls, ctx.plan.opts.system_ca_file,
                                  "grpc" if action.grpc else "proxy")
    scheme = ("grpc" if action.grpc else "http") + ("s" if backend_tls else "")
    if action.grpc:
        node.block += grpc.grpc_pass(f"{scheme}://{mirror.upstream}", internal=True)
        return node
    node.block.append(d("proxy_pass", Expr((Raw(f"{scheme}://{mirror.upstream}"), Raw("$request_uri")))))
    return node

