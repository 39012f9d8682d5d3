"""externalAuth: nginx's auth_request (access phase, like basicAuth), as ingress-nginx's auth-url.

The place that serves a request names an internal location per policy and server; nginx sends a
subrequest there, which proxies a bodiless request to the auth service. 2xx lets the request
through, 401 and 403 are the client's answer (WWW-Authenticate of a 401 included), anything else
is 500. Headers of the auth service's answer listed in `response_headers` replace the client's in
the backend's request (`auth_request_set`, then the place's proxy_set_header list, through the
policy's request headers: translate/policies.py). Its Set-Cookie reaches the client on success.
"""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import Arg, Expr, Raw, header_variable
from wardgate.render import tls
from wardgate.render.emit import Directive, d
from wardgate.render.headers import DEFAULT_PROXY_HEADERS, auth_response_var, value_arg, value_parts
from wardgate.render.module import REQUEST_ID
from wardgate.render.plan import Plan

PREFIX = "/_wardgate/auth/"
COOKIE = "$wg_auth_cookie"


def _upstream_var(name: str) -> Raw:
    return Raw(header_variable(name, "upstream_http"))


def _headers(ea: ir.ExternalAuth) -> list[tuple[str, Arg]]:
    """What the auth service gets besides the client's own headers: the request it is asked
    about, where the client is, and no body."""
    out: dict[str, tuple[str, Arg]] = {k.lower(): (k, v) for k, v in DEFAULT_PROXY_HEADERS}
    for name, value in (
        ("Host", ea.host),
        ("X-Original-URL", Expr((Raw("$scheme"), "://", Raw("$http_host"), Raw("$request_uri")))),
        ("X-Original-Method", Raw("$request_method")),
        ("X-Auth-Request-Redirect", Raw("$request_uri")),
        ("X-Request-Id", Raw(REQUEST_ID)),
        ("Content-Length", ""),
        ("Upgrade", ""),
        ("Connection", ""),  # keep-alive to the auth service
    ):
        out[name.lower()] = (name, value)
    for name, hv in ea.request_headers:
        out[name.lower()] = (name, value_arg(value_parts(hv)))
    return list(out.values())


def _auth_location(plan: Plan, files: dict[str, str], path: str, ea: ir.ExternalAuth) -> Directive:
    assert ea.upstream is not None
    node = Directive("location", (Raw("="), path), [d("internal")])
    assert node.block is not None
    if plan.waf:
        node.block.append(d("modsecurity", Raw("off")))
    # A subrequest: the rewrite-phase checks (and the Lua entry, which returns in subrequests)
    # already ran for the request it asks about.
    node.block.append(d("proxy_pass_request_body", Raw("off")))
    node.block += [d("proxy_set_header", name, value) for name, value in _headers(ea)]
    if ea.method != "GET":
        node.block.append(d("proxy_method", Raw(ea.method)))
    up = plan.upstreams.by_name[ea.upstream]
    scheme = "https" if up.tls is not None else "http"
    if up.tls is not None:
        node.block += tls.backend(files, up.tls, plan.opts.system_ca_file, "proxy")
    node.block.append(d("proxy_pass", Expr((Raw(f"{scheme}://{ea.upstream}"), ea.path))))
    return node


def _signin_location(name: str, ea: ir.ExternalAuth) -> Directive:
    """A 401 from the auth service becomes a 302 to the signin URL, with the request's URL in
    `signin_param` unless the URL already carries that parameter (ingress-nginx's rule)."""
    assert ea.signin is not None
    query = ea.signin.partition("?")[2]
    params = [p.partition("=")[0] for p in query.split("&")] if query else []
    target: tuple[Raw | str, ...] = (ea.signin,)
    if ea.signin_param not in params:
        target = (ea.signin, "&" if query else "?", f"{ea.signin_param}=", Raw("$scheme"), "://",
                  Raw("$http_host"), Raw("$wardgate_escaped_request_uri"))
    return Directive("location", (Raw(name),), [
        d("add_header", "Set-Cookie", Raw(COOKIE)),
        d("return", 302, Expr(target))])


def location(plan: Plan, extra: dict[str, Directive], files: dict[str, str], p: ir.Policy) -> list[Directive]:
    """What a place of policy `p` writes; the auth (and signin) locations go to `extra`."""
    ea = p.external_auth
    if ea is None:
        return []
    if ea.upstream is None:
        return [d("return", 500)]  # fail closed
    path = f"{PREFIX}{p.id}"
    if path not in extra:
        extra[path] = _auth_location(plan, files, path, ea)
    out = [d("auth_request", path)]
    out += [d("auth_request_set", Raw("$" + auth_response_var(h)), _upstream_var(h)) for h in ea.response_headers]
    out += [d("auth_request_set", Raw(COOKIE), Raw("$upstream_http_set_cookie")),
            d("add_header", "Set-Cookie", Raw(COOKIE))]
    if ea.signin is not None:
        name = f"@wg_signin{p.id}"
        if name not in extra:
            extra[name] = _signin_location(name, ea)
        out.append(d("error_page", 401, Raw("="), Raw(name)))
    return out
