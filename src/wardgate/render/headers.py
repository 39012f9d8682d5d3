"""Request and response header changes (route filters and policies).

Inheritance decides where they go. Response headers use headers-more, whose directives add up
across levels (the enclosing level's run first), so a policy's `set`/`remove` shared by every place
of a scope is written once at that level. `add_header` and `proxy_set_header` are replaced as a
whole by a location that declares any, so they are written where they differ from what the
location would inherit, and then in full.
"""

from __future__ import annotations

from collections import defaultdict

from wardgate import ir
from wardgate.quoting import Arg, Expr, Raw, Text, header_variable
from wardgate.render.emit import Directive, d, entry, map_entry
from wardgate.render.module import REQUEST_ID
from wardgate.render.tables import Tables, var_name

DEFAULT_PROXY_HEADERS: tuple[tuple[str, Raw | str], ...] = (
    ("Host", Raw("$http_host")),
    # The client address and chain as ClientTrafficPolicy decides them (ipaccess.http_directives):
    # never what the client claims.
    ("X-Forwarded-For", Raw("$wg_xff")),
    ("X-Forwarded-Proto", Raw("$scheme")),
    ("X-Forwarded-Host", Raw("$host")),
    # The port the client connected to, as ingress-nginx sent it: never the client's claim.
    ("X-Forwarded-Port", Raw("$server_port")),
    ("X-Real-IP", Raw("$wg_client_ip")),
    ("X-Request-Id", Raw(REQUEST_ID)),
    ("Proxy", ""),  # httpoxy: CGI-style backends would read it as their outgoing proxy
    # wardgate's module: the request's Upgrade header, and "upgrade" when it has one (else empty,
    # so no Connection header: upstream keep-alive).
    ("Upgrade", Raw("$wardgate_upgrade")),
    ("Connection", Raw("$wardgate_connection")),
)
# For grpc_pass: Host becomes the backend's :authority (nginx would send the upstream's name).
# No Upgrade/Connection: HTTP/2 has no hop-by-hop headers.
DEFAULT_GRPC_HEADERS: tuple[tuple[str, Raw | str], ...] = tuple(
    (k, v) for k, v in DEFAULT_PROXY_HEADERS if k not in ("Upgrade", "Connection"))

ProxyHeaders = tuple[tuple[str, Arg], ...]

# ClientTrafficPolicy backendHeaders: the variables http_directives defines, and the client's own
# forwarding headers passed on under other names (empty ones are not sent: nginx skips them).
_REQUEST_ID_KEPT = Raw("$wg_request_id")
_FORWARDED_HOST_SENT = Raw("$wg_forwarded_host")
_ORIGINAL_FORWARDED: tuple[tuple[str, Raw | str], ...] = (
    ("X-Original-Forwarded-For", Raw("$http_x_forwarded_for")),
    ("X-Original-Forwarded-Host", Raw("$http_x_forwarded_host")))


def default_headers(bh: ir.BackendHeaders, grpc: bool = False) -> ProxyHeaders:
    """The headers every proxied request carries on this Gateway: the defaults, or, with
    ClientTrafficPolicy backendHeaders, their variants (the same tuple object when unchanged)."""
    base = DEFAULT_GRPC_HEADERS if grpc else DEFAULT_PROXY_HEADERS
    if bh == ir.BackendHeaders():
        return base
    out: list[tuple[str, Raw | str]] = []
    for name, value in base:
        if name == "X-Request-Id" and bh.preserve_request_id:
            value = _REQUEST_ID_KEPT
        elif name == "X-Forwarded-Host" and bh.forwarded_host == "host_header":
            value = _FORWARDED_HOST_SENT
        out.append((name, value))
        if name == "X-Request-Id" and bh.original_forwarded:
            out += _ORIGINAL_FORWARDED
    return tuple(out)


def http_directives(bh: ir.BackendHeaders) -> list[Directive]:
    """The maps default_headers' variants name."""
    out: list[Directive] = []
    if bh.preserve_request_id:
        # The client's X-Request-Id when it sent a non-empty one (ingress-nginx's $req_id).
        out.append(Directive("map", (Raw("$http_x_request_id"), _REQUEST_ID_KEPT), [
            entry("", Raw(REQUEST_ID)), d("default", Raw("$http_x_request_id"))]))
    if bh.forwarded_host == "host_header":
        # The Host header as sent (the server already refused one naming another host than the
        # one routed on); the routed host when there is none (HTTP/1.0).
        out.append(Directive("map", (Raw("$http_host"), _FORWARDED_HOST_SENT), [
            entry("", Raw("$host")), d("default", Raw("$http_host"))]))
    return out

# SecurityPolicy `valueFrom`: the only variables a header value can name, fixed here; no user
# text ever becomes a variable name.
REQUEST_VALUES: dict[str, str] = {
    "client_ip": "${wg_client_ip}", "request_id": "${" + REQUEST_ID[1:] + "}", "host": "${host}",
    "scheme": "${scheme}"}


def value_parts(value: ir.HeaderValue) -> tuple[Raw | str, ...]:
    """A header value as Expr parts: user text, or the fixed variable of a per-request value."""
    if isinstance(value, ir.OnStatuses):
        # Only response headers have statuses, and `response` takes them off first.
        raise ValueError("a header value with statuses outside the response headers")
    if isinstance(value, str):
        return (value,)
    if value.kind == "auth_response":  # set by auth_request_set (extauth.py) where it is used
        return (Raw("${" + auth_response_var(value.name) + "}"),)
    return (Raw(REQUEST_VALUES[value.kind]),)


def auth_response_var(name: str) -> str:
    """The variable holding header `name` of the auth service's answer (names are case-blind)."""
    return var_name("wg_ah", name.lower())


def _statuses(value: ir.HeaderValue) -> tuple[ir.PlainValue, tuple[int, ...] | None]:
    if isinstance(value, ir.OnStatuses):
        return value.value, value.statuses
    return value, None


def _set(name: str, value: ir.HeaderValue) -> Directive:
    plain, statuses = _statuses(value)
    only = (Raw("-s"), Text(" ".join(map(str, statuses)))) if statuses else ()
    return d("more_set_headers", *only, value_arg((f"{name}: ", *value_parts(plain))))


def _add(name: str, value: ir.HeaderValue, place: tuple[Tables, tuple[object, ...]] | None) -> Directive:
    """add_header: `always` on every status; nginx's own status list without it; any other list
    through a map on $status whose value is empty (nothing added) for the other statuses, named
    after `place` (tables, IR key) like every table."""
    plain, statuses = _statuses(value)
    arg = value_arg(value_parts(plain))
    if statuses is None:
        return d("add_header", name, arg, Raw("always"))
    if statuses == ir.ADD_HEADER_STATUSES:
        return d("add_header", name, arg)
    if place is None:
        raise ValueError("a response header with its own statuses needs the http-level tables")
    tables, key = place
    var = var_name("wg_hs", *key)
    ref = tables.add(var, Directive("map", (Raw("$status"), Raw("$" + var)), [
        *(map_entry(str(s), arg) for s in statuses), d("default", "")]))
    return d("add_header", name, ref, Raw("always"))


def value_arg(parts: tuple[Raw | str, ...]) -> Arg:
    """One argument from Expr parts: plain Text when they are all user text."""
    if all(isinstance(p, str) for p in parts):
        return Text("".join(p for p in parts if isinstance(p, str)))
    return Expr(parts)


def response(ops: ir.HeaderOps, adds: bool = True, shared: bool = True, tables: Tables | None = None,
             origin: tuple[object, ...] = ()) -> list[Directive]:
    """Response header changes. `set` uses headers-more, which replaces a backend's copy (and
    works on every status, or only on its `statuses` with `-s`); `add` appends. `shared=False`
    leaves out the headers-more part (written at an enclosing level), `adds=False` the add_header
    part. `tables` and `origin` (IR ids) hold and name an add's map on $status."""
    out: list[Directive] = []
    if shared:
        out += [_set(name, value) for name, value in ops.set]
    if adds:
        out += [_add(name, value, (tables, (*origin, i)) if tables is not None else None)
                for i, (name, value) in enumerate(ops.add)]
    if shared:
        out += [d("more_clear_headers", name) for name in ops.remove]
    return out


def _append(tables: Tables, header: str, value: tuple[Raw | str, ...], key: tuple[object, ...]) -> Raw:
    """$var = "<existing header>,<value>", or just value when the header is absent."""
    src = header_variable(header)
    var = var_name("wg_h", *key)
    return tables.add(var, Directive("map", (Raw(src), Raw("$" + var)), [
        entry("", value_arg(value)), d("default", Expr((Raw(src), ",", *value)))]))


def proxy_list(tables: Tables, ops: ir.HeaderOps, origin: tuple[object, ...], defaults: ProxyHeaders,
               host: str | None = None) -> ProxyHeaders:
    """The whole request header list of a place: the Gateway's `defaults` (default_headers),
    changed by `ops` (policy first, then the route's own filter, which wins for the same name) and
    a rewritten Host. `origin` (IR ids) names the maps of appended values."""
    if not ops and not host:
        return defaults
    headers: dict[str, tuple[str, Arg]] = {k.lower(): (k, v) for k, v in defaults}
    if host:
        headers["host"] = ("Host", host)
    for name, value in ops.set:
        headers[name.lower()] = (name, value_arg(value_parts(value)))
    set_values = {n.lower(): (n, v) for n, v in ops.set}
    adds: dict[str, list[tuple[str, ir.HeaderValue]]] = defaultdict(list)
    for name, value in ops.add:
        adds[name.lower()].append((name, value))
    for i, (low, items) in enumerate(adds.items()):
        joined: tuple[Raw | str, ...] = ()
        for j, (_, value) in enumerate(items):
            joined += ((",",) if j else ()) + value_parts(value)
        if low in set_values:
            name, base = set_values[low]
            headers[low] = (name, value_arg((*value_parts(base), ",", *joined)))
        else:
            headers[low] = (items[0][0], _append(tables, items[0][0], joined, (*origin, i)))
    for name in ops.remove:
        headers[name.lower()] = (name, "")
    return tuple(headers.values())


def proxy_directives(headers: ProxyHeaders, grpc: bool = False) -> list[Directive]:
    directive = "grpc_set_header" if grpc else "proxy_set_header"
    return [d(directive, name, value) for name, value in headers]
