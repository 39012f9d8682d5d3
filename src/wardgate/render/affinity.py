"""sessionPersistence (GEP-1619) with open-source nginx: consistent hashing of a session key.

A rule's upstream gets a copy with `hash $key consistent` (upstreams.py), where the key is the
session cookie's (or header's) value, or this request's id when the client has none; the response
to such a request sets the cookie (header) to that id. So the same cookie reaches the same
endpoint, and when endpoints come or go only the sessions of the moved part of the hash ring move
(ingress-nginx's default `affinity-mode: balanced`, which hashed a random key with resty.chash).
Several weighted backendRefs are split on the same key, so a session also keeps its backend.
No Lua, no shared state: every instance (and every reload) maps a key the same way.
"""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import Expr, Raw, header_variable, regex_escape
from wardgate.render.emit import Directive, d, entry
from wardgate.render.module import REQUEST_ID
from wardgate.render.tables import Tables, var_name


def key_var(sp: ir.SessionPersistence) -> str:
    """The variable (no `$`) upstreams hash on for this session name."""
    return var_name("wg_sk", sp.type, sp.name)


def _value(tables: Tables, sp: ir.SessionPersistence) -> Raw:
    """The session's value in this request, "" without one."""
    if sp.type == "Header":
        return Raw(header_variable(sp.name))
    var = var_name("wg_sv", sp.name)
    # Cookie names are case-sensitive (RFC 6265), unlike nginx's $cookie_.
    return tables.add(var, Directive("map", (Raw("$http_cookie"), Raw("$" + var)), [
        entry(f"~(?:^|;)[ \\t]*{regex_escape(sp.name)}=([^;]*)", Raw("$1")), d("default", "")]))


def key_tables(tables: Tables, sp: ir.SessionPersistence) -> None:
    """The key the rule's upstream copy hashes on (http level, like the upstream)."""
    value = _value(tables, sp)
    tables.add(key_var(sp), Directive("map", (value, Raw("$" + key_var(sp))), [
        entry("", Raw(REQUEST_ID)), d("default", value)]))


def location(tables: Tables, sp: ir.SessionPersistence, https: bool) -> list[Directive]:
    """A new session for a request without one: Set-Cookie (or the header) with its key."""
    key_tables(tables, sp)
    new: tuple[Raw | str, ...] = (Raw("${" + REQUEST_ID[1:] + "}"),)
    if sp.type == "Cookie":
        attrs = f"; Path={sp.path}" + (f"; Max-Age={sp.max_age}" if sp.max_age else "") + "; HttpOnly"
        new = (f"{sp.name}=", *new, attrs + ("; Secure" if https else ""))
    var = var_name("wg_sn", sp, https)
    tables.add(var, Directive("map", (_value(tables, sp), Raw("$" + var)), [
        entry("", Expr(new)), d("default", "")]))
    # `always`: a session starts whatever the status; an empty value adds no header.
    return [d("add_header", "Set-Cookie" if sp.type == "Cookie" else sp.name, Raw("$" + var), Raw("always"))]
