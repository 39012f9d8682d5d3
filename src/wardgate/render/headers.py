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
from wardgate.render.emit import Directive, d, entry
from wardgate.render.module import REQUEST_ID
from wardgate.render.tables import Tables, var_name

DEFAULT_PROXY_HEADERS: tuple[tuple[str, Raw | str], ...] = (
    ("Host", Raw("$http_host")),
    # The client address and chain as ClientTrafficPolicy decides them (ipaccess.http_directives):
    # never what the client claims.
    ("X-Forwarded-For", Raw("$wg_xff")),
    ("X-Forwarded-Proto", Raw("$scheme")),
    ("X-Forwarded-Host", Raw("$host")),
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

# SecurityPolicy `valueFrom`: the only variables a header value can name, fixed here; no user
# text ever becomes a variable name.
REQUEST_VALUES: dict[ir.RequestValueKind, str] = {
    "client_ip": "${wg_client_ip}", "request_id": "${" + REQUEST_ID[1:] + "}", "host": "${host}",
    "scheme": "${scheme}"}


def value_parts(value: ir.HeaderValue) -> tuple[Raw | str, ...]:
    """A header value as Expr parts: user text, or the fixed variable of a per-request value."""
    return (value,) if isinstance(value, str) else (Raw(REQUEST_VALUES[value.kind]),)


def value_arg(parts: tuple[Raw | str, ...]) -> Arg:
    """One argument from Expr parts: plain Text when they are all user text."""
    if all(isinstance(p, str) for p in parts):
        return Text("".join(p for p in parts if isinstance(p, str)))
    return Expr(parts)


def response(ops: ir.HeaderOps, adds: bool = True, shared: bool = True) -> list[Directive]:
    """Response header changes. `set` uses headers-more, which replaces a backend's copy (and
    works on every status); `add` appends. `shared=False` leaves out the headers-more part (written
    at an enclosing level), `adds=False` the add_header part."""
    out: list[Directive] = []
    if shared:
        out += [d("more_set_headers", value_arg((f"{name}: ", *value_parts(value)))) for name, value in ops.set]
    if adds:
        out += [d("add_header", name, value_arg(value_parts(value)), Raw("always")) for name, value in ops.add]
    if shared:
        out += [d("more_clear_headers", name) for name in ops.remove]
    return out


def _append(tables: Tables, header: str, value: tuple[Raw | str, ...], key: tuple[object, ...]) -> Raw:
    """$var = "<existing header>,<value>", or just value when the header is absent."""
    src = header_variable(header)
    var = var_name("wg_h", *key)
    return tables.add(var, Directive("map", (Raw(src), Raw("$" + var)), [
        entry("", value_arg(value)), d("default", Expr((Raw(src), ",", *value)))]))


def proxy_list(tables: Tables, ops: ir.HeaderOps, origin: tuple[object, ...], grpc: bool = False,
               host: str | None = None) -> ProxyHeaders:
    """The whole request header list of a place: the defaults, changed by `ops` (policy first,
    then the route's own filter, which wins for the same name) and a rewritten Host. `origin`
    (IR ids) names the maps of appended values."""
    defaults = DEFAULT_GRPC_HEADERS if grpc else DEFAULT_PROXY_HEADERS
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
