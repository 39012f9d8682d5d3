"""Where the client address comes from (check 1) and ipAccess (check 2): geo tables on it."""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import END, Expr, Raw
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
    """$wg_client_ip and, for trusted proxies, nginx's realip settings; $wg_xff, the
    X-Forwarded-For a backend gets."""
    out: list[Directive] = []
    if cip.source == "xff" and cip.hops:
        # The Nth address from the right of X-Forwarded-For; the connection's if there are fewer.
        rx = r"(?:^|,)\s*(?<wg_xff_ip>[0-9A-Fa-f:.]+)\s*" + "(?:,[^,]*)" * (cip.hops - 1) + END
        out.append(Directive("map", (Raw("$http_x_forwarded_for"), Raw("$wg_client_ip")), [
            entry("~" + rx, Raw("$wg_xff_ip")), d("default", Raw("$remote_addr"))]))
        return out + _forwarded_for(cip)
    if cip.source in ("xff", "proxy_protocol"):
        trusted = cip.trusted or (("0.0.0.0/0", "::/0") if cip.source == "proxy_protocol" else ())
        out += [d("set_real_ip_from", c) for c in trusted]
        out.append(d("real_ip_header", Raw("X-Forwarded-For" if cip.source == "xff" else "proxy_protocol")))
        out.append(d("real_ip_recursive", Raw("on")))
    # realip (when trusted) has made $remote_addr the client's: the module's alias reads it
    # without a map's key and value evaluation per request.
    out.append(d("wardgate_alias", Raw("$wg_client_ip"), Raw("$remote_addr")))
    return out + _forwarded_for(cip)


def _forwarded_for(cip: ir.ClientIP) -> list[Directive]:
    """$wg_peer: the address this request came from (realip keeps it in $realip_remote_addr when
    it rewrites $remote_addr; behind wardgate's own stream module that is the unix socket, whose
    PROXY header gave $remote_addr). $wg_xff: "append" adds it to the client's header; "replace"
    keeps only the chain ClientIP trusts, from the decided client address to it."""
    peer_src = "$remote_addr" if cip.source == "proxy_protocol" else "$realip_remote_addr"
    out = [Directive("map", (Raw(peer_src), Raw("$wg_peer")), [
        entry("unix:", Raw("$remote_addr")), d("default", Raw(peer_src))])]
    xff = Raw("$http_x_forwarded_for")
    if cip.forwarded_for == "append":
        out.append(Directive("map", (xff, Raw("$wg_xff")), [
            entry("", Raw("$wg_peer")), d("default", Expr((xff, ", ", Raw("$wg_peer"))))]))
    elif cip.source == "xff" and cip.hops:
        # The entries from the Nth from the right on, as $wg_client_ip picks it; the connection
        # address alone when that is the client.
        rx = r"(?:^|,)\s*(?<wg_xff_chain>[0-9A-Fa-f:.]+\s*" + "(?:,[^,]*)" * (cip.hops - 1) + ")" + END
        out.append(Directive("map", (xff, Raw("$wg_xff")), [
            entry("~" + rx, Expr((Raw("$wg_xff_chain"), ", ", Raw("$wg_peer")))), d("default", Raw("$wg_peer"))]))
    elif cip.source == "xff":
        # realip took $remote_addr from X-Forwarded-For (it differs from the peer): keep the header
        # from the last entry equal to it on, all trusted hops, then add the peer. Unchanged, or
        # behind the stream module (peer "unix:"), the header wasn't believed.
        key = Expr((Raw("$remote_addr"), "|", Raw("$realip_remote_addr"), "|", xff))
        out.append(Directive("map", (key, Raw("$wg_xff")), [
            entry(r"~^(?<wg_xa>[^|]*)\|\k<wg_xa>\|", Raw("$remote_addr")),
            entry(r"~^[^|]*\|unix:\|", Raw("$remote_addr")),
            entry(r"~^(?<wg_xb>[^|]*)\|[^|]*\|(?:.*,)?\s*(?<wg_xff_chain>\k<wg_xb>\s*(?:,.*)?)" + END,
                  Expr((Raw("$wg_xff_chain"), ", ", Raw("$wg_peer")))),
            d("default", Expr((Raw("$remote_addr"), ", ", Raw("$wg_peer"))))]))
    else:
        # Connection or PROXY protocol: the client address is all anyone vouches for
        # ($wg_client_ip, an alias of $remote_addr here: read directly, one alias fewer).
        out.append(d("wardgate_alias", Raw("$wg_xff"), Raw("$remote_addr")))
    return out
