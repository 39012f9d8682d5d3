"""IR passthrough ports -> nginx's stream block: TLS routed by SNI name with ssl_preread.

A port with only TLS listeners: one stream server reads the ClientHello's SNI name and proxies
the connection, still encrypted, to the route's upstream; an unknown name gets its connection
closed. A port shared with HTTPS listeners: the stream server owns the port and sends names of
the HTTPS listeners to the HTTP server over a unix socket with the PROXY protocol (so the HTTP
side still sees the client's address), and passthrough names through a second unix socket to an
inner stream server that strips the PROXY header and proxies them on (a stream server sends the
PROXY header to all of its upstreams or none).
"""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import Expr, Raw
from wardgate.render.emit import Directive, block, d, entry

MODULE = "ngx_stream_module.so"
# Connections nothing routes: an upstream whose only server is down, so nginx closes them.
REJECT = "wg_reject"
# Relative to the nginx prefix, which is also its working directory (dataplane/nginx.py).
RUN_DIR = "run"


def https_socket(port: int) -> str:
    """The unix socket where an HTTPS port behind the stream module listens."""
    return f"{RUN_DIR}/https-{port}.sock"


def _passthrough_socket(port: int) -> str:
    return f"{RUN_DIR}/tls-{port}.sock"


def _upstream(name: str, servers: list[str]) -> Directive:
    node = block("upstream", Raw(name))
    for s in servers:
        node.add("server", Raw(s))
    if not servers:
        node.add("server", Raw("127.0.0.1:9"), Raw("down"))
    return node


class StreamRenderer:
    def __init__(self, gw: ir.Gateway, listen_addr: str, port_offset: int) -> None:
        self.gw = gw
        self.listen_addr = listen_addr
        self.port_offset = port_offset
        self.extra: list[Directive] = []
        self._splits: dict[tuple[ir.WeightedBackend, ...], Raw] = {}

    def _target(self, backends: tuple[ir.WeightedBackend, ...]) -> Raw:
        """The upstream name, or a split_clients variable choosing one by weight."""
        live = [b for b in backends if b.weight > 0]
        if len(live) == 1:
            return Raw(live[0].upstream or REJECT)
        if backends in self._splits:  # one route's hostnames share its split
            return self._splits[backends]
        var = f"wg_ts{len(self._splits)}"
        self._splits[backends] = Raw("$" + var)
        node = Directive("split_clients", (Expr((Raw("$remote_addr"), ":", Raw("$remote_port"), Raw("$msec"))),
                                           Raw("$" + var)), [])
        assert node.block is not None
        total = sum(b.weight for b in live) or 1
        acc = 0.0
        for i, b in enumerate(live):
            pct = round(100.0 * b.weight / total, 2)
            if i == len(live) - 1 or acc + pct >= 100.0:
                node.block.append(entry("*", Raw(b.upstream or REJECT)))
                break
            if pct > 0:
                node.block.append(entry(f"{pct:g}%", Raw(b.upstream or REJECT)))
            acc += pct
        self.extra.append(node)
        return Raw("$" + var)

    def _listen(self, port: int) -> Directive:
        args: list[Raw] = [Raw(f"{self.listen_addr}:{port + self.port_offset}")]
        if self.gw.client_ip.source == "proxy_protocol":
            args.append(Raw("proxy_protocol"))
        return d("listen", *args)

    def _real_ip(self) -> list[Directive]:
        """With PROXY protocol from a load balancer in front, the address it declares is the
        client's (stream realip), and that is what the HTTP server is told in turn."""
        cip = self.gw.client_ip
        if cip.source != "proxy_protocol":
            return []
        return [d("set_real_ip_from", c) for c in cip.trusted or ("0.0.0.0/0", "::/0")]

    def _port(self, pp: ir.PassthroughPort) -> list[Directive]:
        sni = f"wg_sni{pp.port}"
        term = f"wg_term{pp.port}"
        shared = bool(pp.terminate or pp.terminate_default)
        default: Raw = Raw(term) if pp.terminate_default else Raw(REJECT)
        node = Directive("map", (Raw("$ssl_preread_server_name"), Raw("$" + sni)), [d("hostnames")])
        assert node.block is not None
        for route in pp.routes:
            target = self._target(route.backends)
            if route.hostname:
                node.block.append(entry(route.hostname, target))
            else:
                default = target
        node.block += [entry(h, Raw(term)) for h in pp.terminate]
        node.block += [entry(h, Raw(REJECT)) for h in pp.reject]
        node.block.insert(1, d("default", default))
        out = [node]
        preread = [d("ssl_preread", Raw("on"))]
        if not shared:
            out.append(Directive("server", (), [self._listen(pp.port), *self._real_ip(), *preread,
                                                d("proxy_pass", Raw("$" + sni))]))
            return out
        front = f"wg_front{pp.port}"
        inner = f"wg_pt{pp.port}"
        out += [
            Directive("map", (Raw("$" + sni), Raw("$" + front)), [
                d("default", Raw(inner)), entry(Raw(term), Raw(term)), entry(Raw(REJECT), Raw(REJECT))]),
            _upstream(term, ["unix:" + https_socket(pp.port)]),
            _upstream(inner, ["unix:" + _passthrough_socket(pp.port)]),
            Directive("server", (), [self._listen(pp.port), *self._real_ip(), *preread,
                                     d("proxy_protocol", Raw("on")), d("proxy_pass", Raw("$" + front))]),
            # Passthrough names: drop the PROXY header, read the SNI name again, proxy on.
            Directive("server", (), [d("listen", Raw("unix:" + _passthrough_socket(pp.port)), Raw("proxy_protocol")),
                                     *preread, d("proxy_pass", Raw("$" + sni))]),
        ]
        return out

    def render(self) -> Directive | None:
        if not self.gw.passthrough:
            return None
        body: list[Directive] = [d("tcp_nodelay", Raw("on"))]
        servers: list[Directive] = []
        for pp in self.gw.passthrough:
            servers += self._port(pp)
        body += self.extra
        for up in self.gw.stream_upstreams:
            addrs = [f"[{e.address}]:{e.port}" if ":" in e.address else f"{e.address}:{e.port}"
                     for e in up.endpoints]
            body.append(_upstream(up.name, addrs))
        body.append(_upstream(REJECT, []))
        return Directive("stream", (), body + servers)
