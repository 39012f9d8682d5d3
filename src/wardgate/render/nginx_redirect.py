"""ingress-nginx's own redirects (IngressNginxCompat sslRedirect and redirect.hostname): the
Locations its Lua built, from nginx variables.

- The HTTPS redirect (lua_ingress.lua): `https://` + the Host header up to its first `:` (the
  request's host without a Host header) + the request URI as sent, one final `/` removed unless
  preserve-trailing-slash. With use-forwarded-headers the scheme deciding it is X-Forwarded-Proto
  when sent (only exactly `http` redirects), and the host X-Forwarded-Host's first entry.
- The www redirect (ngx_srv_redirect.lua): `<scheme>://<host>:<port>` + the request URI without
  one final `/`; the port is the one the server listens on (here the listener's), and with
  use-forwarded-headers X-Forwarded-Proto and X-Forwarded-Port replace scheme and port when sent.
nginx can't tell an empty header from a missing one: both count as not sent.
"""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import END, Expr, Raw
from wardgate.render.emit import Directive, d, entry
from wardgate.render.tables import Tables


def _map(tables: Tables, source: str, var: str, *entries: Directive) -> Raw:
    return tables.add(var, Directive("map", (Raw(source), Raw("$" + var)), list(entries)))


def request_uri(tables: Tables, preserve_trailing_slash: bool = False) -> Raw:
    """$request_uri, or without one final "/" (of the whole URI: `/a/?b=1` keeps its slash)."""
    if preserve_trailing_slash:
        return Raw("$request_uri")
    return _map(tables, "$request_uri", "wg_rd_uri", entry("~^(?<wg_rd_u>.*)/" + END, Raw("$wg_rd_u")),
                d("default", Raw("$request_uri")))


def _host(tables: Tables, forwarded: bool) -> Raw:
    # "host:port" -> "host"; no Host header (HTTP/1.0): the request's host.
    host = _map(tables, "$http_host", "wg_rd_host", entry("", Raw("$host")),
                entry("~^(?<wg_rd_h>[^:]*)", Raw("$wg_rd_h")))
    if not forwarded:
        return host
    return _map(tables, "$http_x_forwarded_host", "wg_rd_fhost", entry("", host),
                entry("~^(?<wg_rd_f>[^,:]*)", Raw("$wg_rd_f")))


def _plain(tables: Tables, port: ir.Port) -> Raw:
    """1 when X-Forwarded-Proto says http, or when it isn't sent on a plain-HTTP port."""
    plain = port.protocol == "HTTP"
    return _map(tables, "$http_x_forwarded_proto", f"wg_rd_plain{int(plain)}",
                *([entry("", "1")] if plain else []), entry("~^http" + END, "1"), d("default", ""))


def applies(rd: ir.SslRedirect, port: ir.Port) -> bool:
    """Whether the HTTPS redirect can answer a request on `port`."""
    return rd.forwarded or port.protocol == "HTTP"


def ssl(tables: Tables, rd: ir.SslRedirect, port: ir.Port) -> list[Directive]:
    """The HTTPS redirect at a place on `port`: nothing when it can't apply there, the `return`
    alone when it always does, else the `return` under a condition."""
    if not applies(rd, port):
        return []
    location = Expr(("https://", _host(tables, rd.forwarded), request_uri(tables, rd.preserve_trailing_slash)))
    answer = d("return", rd.status_code, location)
    if not rd.forwarded:
        return [answer]
    return [Directive("if", (Raw("("), _plain(tables, port), Raw(")")), [answer])]


def host_uri(tables: Tables, rd: ir.Redirect, port: ir.Port) -> list[Directive]:
    """The www redirect to rd.hostname, with the listener's port."""
    assert rd.hostname is not None
    scheme: Raw = Raw("$scheme")
    number: Raw | str = str(port.port)
    if rd.forwarded:
        scheme = _map(tables, "$http_x_forwarded_proto", "wg_rd_scheme", entry("", Raw("$scheme")),
                      d("default", Raw("$http_x_forwarded_proto")))
        number = _map(tables, "$http_x_forwarded_port", f"wg_rd_port{port.port}", entry("", number),
                      d("default", Raw("$http_x_forwarded_port")))
    return [d("return", rd.status_code, Expr((scheme, "://", rd.hostname, ":", number, request_uri(tables))))]


__all__ = ["applies", "host_uri", "request_uri", "ssl"]
