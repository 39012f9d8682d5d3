"""A policy at one place: which of its directives a location writes, given what the server
and http levels already hold.

Order of checks for one request (docs/policies.md):
1. client IP (realip / X-Forwarded-For / PROXY protocol), 2. ipAccess 403, 3. allowedMethods 405,
4. urlAllowlist, 5. direct responses, 6. URL 414 / header 431 limits, 7. duplicate headers 400,
8. rate limit, 9. concurrent requests, 10. WAF 403, 11. body size 413, then the proxy.
2-4 are rewrite-phase `if`s (2-3 at server level when every place of the server shares them);
6-8 are the Lua entry at the end of the rewrite phase (lua.py), or limit_req (ratelimit.py);
9 is limit_conn (concurrency.py, preaccess); 10 is ModSecurity, which decides in its request-body
phase (preaccess; CRS blocks there); 11 is nginx reading the body.
"""

from __future__ import annotations

from wardgate import ir
from wardgate.render import (
    allowlist,
    basicauth,
    concurrency,
    duplicates,
    errorpages,
    extauth,
    headers,
    ipaccess,
    lua,
    methods,
    nginx_cors,
    ratelimit,
    requestlimits,
    tls,
    waf,
)
from wardgate.render.emit import Directive
from wardgate.render.paths import path_regex
from wardgate.render.plan import Plan
from wardgate.render.tables import Tables

__all__ = ["checks", "location", "path_regex", "server_checks", "shared_directives"]


def shared_directives(plan: Plan, p: ir.Policy) -> list[Directive]:
    """What every place of a scope can inherit: headers-more response headers (they add up
    across levels), the body limit and the module's duplicate-header check."""
    out = [methods.allow_header(p.allowed_methods)] if p.allowed_methods and p.allow_header else []
    return (out + headers.response(p.response_headers, adds=False) + requestlimits.body_size(p.max_body_bytes)
            + duplicates.directives(p, p.id in plan.lua.ids))


def server_checks(tables: Tables, plan: Plan, p: ir.Policy, checks: bool = True) -> list[Directive]:
    """Checks 2-3 (unless `checks` is False) and the Lua entry of the policy every place of a
    server shares, at server level."""
    out: list[Directive] = []
    if checks and (p.ip_allow or p.ip_deny):
        out.append(ipaccess.check(tables, p))
    if checks and p.allowed_methods:
        out.append(methods.check(tables, p.allowed_methods, p.id))
    return out + lua.place(plan.lua, p.id)


def checks(tables: Tables, p: ir.Policy | None, hoisted: bool, allowlist_check: bool = True,
           redirect: list[Directive] | None = None) -> list[Directive]:
    """Rewrite-phase checks 2-4 at a place, in order, without those the server runs, and
    ingress-nginx's CORS after ipAccess. Direct responses skip the URL allowlist (their paths are
    the policy's own) and that CORS (ingress-nginx's snippet locations had none).

    `redirect`: ingress-nginx's HTTPS redirect, which its rewrite phase ran after its CORS block
    and the snippets' `if`/`return`s and before its access checks: then ingressNginxCORS,
    allowedMethods and urlAllowlist come first, the redirect, and ipAccess (unless the redirect
    always answers)."""
    if p is None:
        return list(redirect or [])
    ip: list[Directive] = []
    if not hoisted and (p.ip_allow or p.ip_deny):
        ip.append(ipaccess.check(tables, p))
    rest: list[Directive] = []
    if p.nginx_cors is not None and allowlist_check:
        rest += nginx_cors.directives(tables, p.nginx_cors, p.id)
    if not hoisted and p.allowed_methods:
        rest.append(methods.check(tables, p.allowed_methods, p.id))
    if p.allowlist and allowlist_check:
        rest.append(allowlist.check(p))
    if redirect is None:
        return ip + rest
    return rest + redirect + ([] if redirect and redirect[-1].name == "return" else ip)


def location(tables: Tables, plan: Plan, p: ir.Policy | None, inherited: int | None, server: int | None,
             extra: dict[str, Directive], files: dict[str, str], action: ir.Action | None = None,
             with_waf: bool = True, hsts: str | None = None) -> list[Directive]:
    """Location-level directives of policy `p` at a place: response headers, body size, Lua entry,
    limit_req, WAF, authentication. `inherited`: the policy whose shared directives the place
    inherits (http or server level); `server`: the one whose checks and Lua entry the server runs.
    `extra`, `files`: the server's internal locations and files (the auth service's location);
    `action`: what the place serves (None: the 404 for requests no route serves); `hsts`: the
    server's Strict-Transport-Security (None on plain HTTP), which a route-level one may change.

    `with_waf=False` for places that may pass the request on by an internal redirect: ModSecurity
    keeps the settings of the first location that turned it on, so only the place that finally
    serves a request may.
    """
    if p is None:
        return []
    out = errorpages.location(plan, tables, extra, files, p, action)  # `set`s first: before any answer
    out += tls.place_hsts(hsts, p)
    out += shared_directives(plan, p) if p.id != inherited else []
    out += headers.response(p.response_headers, shared=False, tables=tables, origin=("policy", p.id))
    if p.id != server:
        out += lua.place(plan.lua, p.id)
    out += ratelimit.location(tables, plan.rate, p)
    out += concurrency.location(tables, p)
    if plan.waf and with_waf:
        out += waf.location(p)
    return out + basicauth.location(p) + extauth.location(plan, extra, files, p)
