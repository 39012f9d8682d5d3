"""Where the client address comes from (check 1) and ipAccess (check 2): geo tables on it."""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import END, Raw
from wardgate.render.emit import Directive, d, entry
from wardgate.render.tables import Tables, var_name


def geo(tables: Tables, allow: tuple[str, ...], deny: tuple[str, ...], key: tuple[object, ...]) -> Raw:
    """$var that is 1 for a client to refuse: not in `allow` (when given) or in `deny`."""
    var = var_name("wg_ip", *key)
    node = Directive("geo", (Raw("$wg_client_ip"), Raw("$" + var)), [d("default", 1 if allow else 0)])
    assert node.block is not None
    node.block += [entry(c, 0) for c in allow] + [entry(c, 1) for c in deny]
    return tables.add(var, node)


def check(tables: Tables, p: ir.Policy) -> Directive:
    return Directive("if", (Raw("("), geo(tables, p.ip_allow, p.ip_deny, ("access", p.id)), Raw(")")), [
        d("set", Raw("$wg_decision"), "ip-access"), d("return", 403)])


def http_directives(cip: ir.ClientIP) -> list[Directive]:
    """$wg_client_ip and, for trusted proxies, nginx's realip settings."""
    out: list[Directive] = []
    if cip.source == "xff" and cip.hops:
        # The Nth address from the right of X-Forwarded-For; the connection's if there are fewer.
        rx = r"(?:^|,)\s*(?<wg_xff_ip>[0-9A-Fa-f:.]+)\s*" + "(?:,[^,]*)" * (cip.hops - 1) + END
        out.append(Directive("map", (Raw("$http_x_forwarded_for"), Raw("$wg_client_ip")), [
            entry("~" + rx, Raw("$wg_xff_ip")), d("default", Raw("$remote_addr"))]))
        return out
    if cip.source in ("xff", "proxy_protocol"):
        trusted = cip.trusted or (("0.0.0.0/0", "::/0") if cip.source == "proxy_protocol" else ())
        out += [d("set_real_ip_from", c) for c in trusted]
        out.append(d("real_ip_header", Raw("X-Forwarded-For" if cip.source == "xff" else "proxy_protocol")))
        out.append(d("real_ip_recursive", Raw("on")))
    out.append(Directive("map", (Raw("$remote_addr"), Raw("$wg_client_ip")), [d("default", Raw("$remote_addr"))]))
    return out
