"""SecurityPolicy ingressNginxCORS: ingress-nginx's CORS block, as its nginx.tmpl behaves.

A rewrite-phase flag: "1" when the request's Origin is allowed (always for "*"), with "o"
appended for OPTIONS. Allowed requests get every CORS header (headers-more, replacing the
backend's; others keep the backend's own); allowed OPTIONS requests are answered 204 here.
Origins match case-insensitively and are anchored at the end only, as ingress-nginx's regex.
"""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import END, Expr, Raw, Text, header_variable, regex_escape
from wardgate.render.emit import Directive, d, entry
from wardgate.render.tables import Tables, var_name

FLAG = "$wg_nc"


def _origin_regex(origin: str) -> str:
    # ingress-nginx quotes the origin and turns its first "*" into one DNS label.
    return "(" + regex_escape(origin).replace(r"\*", "[A-Za-z0-9-]+", 1) + ")"


def _flag(tables: Tables, cors: ir.NginxCors, pid: int) -> Raw | str:
    if cors.origins == ("*",):
        return "1"
    var = var_name("wg_nco", pid)
    pattern = "~*(?:" + "|".join(_origin_regex(o) for o in cors.origins) + ")" + END
    return tables.add(var, Directive("map", (Raw("$http_origin"), Raw("$" + var)), [
        entry(pattern, "1"), d("default", "")]))


def _header(tables: Tables, name: str, value: Raw | Text | str, key: tuple[object, ...]) -> Directive:
    """more_set_headers of `name`: `value` for allowed origins, else the backend's own (none for
    the gateway's answers)."""
    var = var_name("wg_ncv", *key)
    own = Raw(header_variable(name, "upstream_http"))
    node = Directive("map", (Raw(FLAG), Raw("$" + var)), [entry("", own), entry("o", own), d("default", value)])
    return d("more_set_headers", Expr((f"{name}: ", tables.add(var, node))))


def directives(tables: Tables, cors: ir.NginxCors, pid: int) -> list[Directive]:
    values: list[tuple[str, Raw | Text | str]] = [
        ("Access-Control-Allow-Origin", "*" if cors.origins == ("*",) else Raw("$http_origin"))]
    if cors.credentials:
        values.append(("Access-Control-Allow-Credentials", "true"))
    values += [("Access-Control-Allow-Methods", Text(cors.methods)),
               ("Access-Control-Allow-Headers", Text(cors.headers))]
    if cors.expose:
        values.append(("Access-Control-Expose-Headers", Text(cors.expose)))
    values.append(("Access-Control-Max-Age", str(cors.max_age)))
    return [
        d("set", Raw(FLAG), _flag(tables, cors, pid)),
        Directive("if", (Raw("("), Raw("$request_method"), Raw("="), "OPTIONS", Raw(")")),
                  [d("set", Raw(FLAG), Expr((Raw("${wg_nc}"), "o")))]),
        *(_header(tables, name, value, (pid, i)) for i, (name, value) in enumerate(values)),
        # nginx drops Content-Type from a 204 itself; ingress-nginx also sends Content-Length: 0.
        Directive("if", (Raw("("), Raw(FLAG), Raw("="), "1o", Raw(")")),
                  [d("more_set_headers", "Content-Length: 0"), d("return", 204)]),
    ]
