"""The CORS filter: preflights answered in the rewrite phase, headers for allowed origins."""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import END, Arg, Expr, Raw, Text, regex_escape
from wardgate.render.emit import Directive, d, entry
from wardgate.render.tables import Tables, var_name


def _origin(tables: Tables, cors: ir.Cors, action: int) -> Raw:
    """$var = the request's Origin when the filter allows it, else ""."""
    var = var_name("wg_c", action)
    node = Directive("map", (Raw("$http_origin"), Raw("$" + var)), [])
    assert node.block is not None
    if "*" in cors.allow_origins:
        node.block.append(d("default", Raw("$http_origin")))
    else:
        for origin in cors.allow_origins:
            scheme, _, host = origin.partition("://")
            host_rx = "[^/]+" + regex_escape(host[1:]) if host.startswith("*.") else regex_escape(host)
            node.block.append(entry(f"~*^{regex_escape(scheme)}://{host_rx}" + END, Raw("$http_origin")))
        node.block.append(d("default", ""))
    return tables.add(var, node)


def _when(tables: Tables, src: str, value: Arg, key: tuple[object, ...]) -> Raw:
    """$var = value when $src is non-empty, else "" (add_header skips empty values)."""
    var = var_name("wg_v", *key)
    return tables.add(var, Directive("map", (Raw(src), Raw("$" + var)), [entry("", ""), d("default", value)]))


def _cond(*parts: Arg) -> tuple[Arg, ...]:
    return (Raw("("), *parts, Raw(")"))


def directives(tables: Tables, cors: ir.Cors, action: int) -> list[Directive]:
    """Preflights are answered here: 204 with the CORS headers for an allowed origin, 403
    without them otherwise. Other requests from allowed origins get the headers."""
    origin = _origin(tables, cors, action)
    out = [
        # $wg_preflight: "x" + the allowed origin ("x" alone: not allowed), empty if no preflight.
        d("set", Raw("$wg_preflight"), ""),
        Directive("if", _cond(Raw("$request_method"), Raw("="), Raw("OPTIONS")),
                  [d("set", Raw("$wg_preflight"), Expr(("x", origin)))]),
        Directive("if", _cond(Raw("$http_access_control_request_method"), Raw("="), ""),
                  [d("set", Raw("$wg_preflight"), "")]),
        Directive("if", _cond(Raw("$wg_preflight"), Raw("="), "x"), [d("return", 403)]),
        d("add_header", "Access-Control-Allow-Origin", origin, Raw("always")),
    ]
    if "*" not in cors.allow_origins:
        out.append(d("add_header", "Vary", "Origin", Raw("always")))
    # (header, sent when this is non-empty, value)
    when: list[tuple[str, str, Arg]] = []
    if cors.allow_credentials:
        when.append(("Access-Control-Allow-Credentials", origin.text, "true"))
    if cors.expose_headers:
        when.append(("Access-Control-Expose-Headers", origin.text, Text(", ".join(cors.expose_headers))))
    # "*" answers with what the preflight asked for, which is valid with credentials too.
    when.append(("Access-Control-Allow-Methods", "$wg_preflight",
                 Raw("$http_access_control_request_method") if "*" in cors.allow_methods
                 else ", ".join(cors.allow_methods)))
    if cors.allow_headers:
        when.append(("Access-Control-Allow-Headers", "$wg_preflight",
                     Raw("$http_access_control_request_headers") if "*" in cors.allow_headers
                     else Text(", ".join(cors.allow_headers))))
    when.append(("Access-Control-Max-Age", "$wg_preflight", str(cors.max_age)))
    out += [d("add_header", name, _when(tables, src, value, (action, name)), Raw("always"))
            for name, src, value in when]
    out.append(Directive("if", (Raw("("), Raw("$wg_preflight"), Raw(")")), [d("return", 204)]))
    return out
