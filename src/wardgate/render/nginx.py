"""IR -> nginx configuration files for one Gateway.

Routing model (see docs/architecture.md):
- one `server` per (port, hostname); nginx's hashed server_name lookup picks the virtual host;
- one `location` per distinct path: `= /x` for Exact, `= /p` + `/p/` for PathPrefix (element
  semantics), `~ ^(?:re)\\z` for RegularExpression, so only hosts with regex routes pay for regexes;
- inside a location the candidate matches are tried in Gateway API precedence order with
  rewrite-phase `if`s; a conditional match jumps to its action's internal location, the first
  unconditional one is served inline, and if none applies the answer is 404.
"""

from __future__ import annotations

import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace

from wardgate import ir
from wardgate.perf import no_gc_pauses
from wardgate.quoting import DOLLAR_VAR, END, MATCH_LIMIT, Arg, Expr, Raw, Text, header_variable, regex_escape
from wardgate.render import stream
from wardgate.render.emit import Directive, block, d, emit, entry, map_entry
from wardgate.render.policies import REQUEST_ID, WARDGATE_MODULE, PolicyRenderer, header_directives

INTERNAL_PREFIX = "/_wardgate/"
# A disabled ("0s") timeout: nginx has no "never", so the largest 32-bit millisecond count (24.8 days).
LONGEST_TIMEOUT_MS = 2**31 - 1
# nginx refuses new streams beyond twice this per read of a connection (Debian's backport of the
# CVE-2023-44487 fix), so it also bounds how many rapid resets reach backends per event loop turn.
HTTP2_MAX_STREAMS = 100
MODULES = ("ngx_http_headers_more_filter_module.so",)

LOG_FORMAT = (
    '{"time":"$time_iso8601","request_id":"$wardgate_request_id","remote_addr":"$remote_addr",'
    '"host":"$host","method":"$request_method","uri":"$request_uri","status":$status,'
    '"bytes_sent":$body_bytes_sent,"request_time":$request_time,"route":"$wg_route",'
    '"upstream_addr":"$upstream_addr","upstream_status":"$upstream_status",'
    '"upstream_time":"$upstream_response_time","client_ip":"$wg_client_ip","decision":"$wg_decision_log"}'
)


DEFAULT_PROXY_HEADERS: tuple[tuple[str, Raw], ...] = (
    ("Host", Raw("$http_host")),
    ("X-Forwarded-For", Raw("$proxy_add_x_forwarded_for")),
    ("X-Forwarded-Proto", Raw("$scheme")),
    ("X-Forwarded-Host", Raw("$host")),
    ("X-Request-Id", Raw(REQUEST_ID)),
    ("Upgrade", Raw("$http_upgrade")),
    ("Connection", Raw("$wg_connection")),
)
# For grpc_pass: Host becomes the backend's :authority (nginx would send the upstream's name).
# No Upgrade/Connection: HTTP/2 has no hop-by-hop headers.
DEFAULT_GRPC_HEADERS: tuple[tuple[str, Raw], ...] = tuple(
    (k, v) for k, v in DEFAULT_PROXY_HEADERS if k not in ("Upgrade", "Connection"))


def default_wardgate_module() -> str:
    """Where scripts/install.sh builds wardgate's nginx module: inside the virtual environment
    wardgate runs from; WARDGATE_NGINX_MODULE overrides."""
    return os.environ.get("WARDGATE_NGINX_MODULE") or os.path.join(sys.prefix, "lib", "nginx", "modules",
                                                                   WARDGATE_MODULE)


@dataclass(frozen=True)
class RenderOptions:
    listen_host: str = "0.0.0.0"
    port_offset: int = 0
    modules_dir: str = "/usr/lib/nginx/modules"
    worker_processes: int | None = None  # None: one per core
    worker_connections: int = 4096
    access_log: bool = True
    # Trust anchors for BackendTLSPolicy wellKnownCACertificates: System.
    system_ca_file: str = "/etc/ssl/certs/ca-certificates.crt"
    # Where modules that resolve paths against the working directory (ModSecurity's audit log)
    # write logs: the instance's absolute logs/ directory.
    log_dir: str = "logs"
    wardgate_module: str = field(default_factory=default_wardgate_module)


def R(text: str) -> Raw:
    return Raw(text)


def _cond(var: str, op: str, value: Arg) -> tuple[Arg, ...]:
    return (R("("), R(var), R(op), value, R(")"))


def _anchored(pattern: str) -> str:
    # \z, not $: PCRE's $ also matches before a final newline, and nginx decodes %0a into $uri.
    return MATCH_LIMIT + f"^(?:{pattern})" + END


class _Renderer:
    def __init__(self, gw: ir.Gateway, opts: RenderOptions) -> None:
        self.gw = gw
        self.opts = opts
        self.actions = {a.id: a for a in gw.actions}
        self.upstreams = {u.name: u for u in gw.upstreams}
        self.http_extra: list[Directive] = []  # maps and split_clients the servers need
        self.files: dict[str, str] = {}
        self._maps: dict[tuple[object, ...], str] = {}
        self._retry_upstreams: dict[tuple[str, int], str] = {}
        self.pol = PolicyRenderer(gw, opts.modules_dir, opts.log_dir)
        self._directs: set[tuple[int, int]] = set()  # direct-response locations of the current server

    # --- shared http-level helpers --------------------------------------------------------

    def _var(self, prefix: str) -> str:
        return f"{prefix}{len(self._maps)}"

    def _split(self, key: tuple[object, ...], shares: list[tuple[float, str]], salt: str = "") -> str:
        """A split_clients variable choosing among values by percentage. Splits with different
        `salt`s decide independently of each other for one request."""
        if key in self._maps:
            return self._maps[key]
        name = self._var("wg_s")
        self._maps[key] = name
        node = Directive("split_clients", (Expr((R("${" + REQUEST_ID[1:] + "}"), salt)), R("$" + name)), [])
        assert node.block is not None
        total = sum(w for w, _ in shares) or 1.0
        acc = 0.0
        for i, (weight, value) in enumerate(shares):
            pct = round(100.0 * weight / total, 2)
            if i == len(shares) - 1 or acc + pct >= 100.0:
                node.block.append(entry("*", value))
                break
            if pct > 0:
                node.block.append(entry(f"{pct:g}%", value))
            acc += pct
        self.http_extra.append(node)
        return name

    def _append_map(self, header: str, value: str) -> str:
        """$var = "<existing header>,<value>" or just value when the header is absent."""
        key = ("add", header.lower(), value)
        if key in self._maps:
            return self._maps[key]
        name = self._var("wg_h")
        self._maps[key] = name
        src = header_variable(header)
        node = Directive("map", (R(src), R("$" + name)), [
            entry("", Text(value)),
            d("default", Expr((R(src), "," + value))),
        ])
        self.http_extra.append(node)
        return name

    # --- actions ----------------------------------------------------------------------------

    def _proxy_headers(self, action: ir.Action, pid: int | None = None) -> list[Directive]:
        """proxy_set_header (grpc_set_header for gRPC) for an action that changes request headers
        (policy first, then the route's own filter, which wins for the same name).

        Without changes the http-level defaults apply. With any, nginx drops every inherited
        proxy_set_header, so the whole set is repeated here.
        """
        policy = self.pol.get(pid)
        ops = (policy.request_headers if policy else ir.HeaderOps()) + action.request_headers
        if not ops and not (action.rewrite and action.rewrite.hostname):
            return []
        defaults = DEFAULT_GRPC_HEADERS if action.grpc else DEFAULT_PROXY_HEADERS
        headers: dict[str, tuple[str, Arg]] = {k.lower(): (k, v) for k, v in defaults}
        if action.rewrite and action.rewrite.hostname:
            headers["host"] = ("Host", action.rewrite.hostname)
        for name, value in ops.set:
            headers[name.lower()] = (name, Text(value))
        adds: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for name, value in ops.add:
            adds[name.lower()].append((name, value))
        for low, items in adds.items():
            joined = ",".join(v for _, v in items)
            if low in headers and low in {n.lower() for n, _ in ops.set}:
                name, current = headers[low]
                base = current.value if isinstance(current, Text) else ""
                headers[low] = (name, Text(f"{base},{joined}"))
            else:
                headers[low] = (items[0][0], R("$" + self._append_map(items[0][0], joined)))
        for name in ops.remove:
            headers[name.lower()] = (name, "")
        directive = "grpc_set_header" if action.grpc else "proxy_set_header"
        return [d(directive, name, value) for name, value in headers.values()]

    def _path_expr(self, path_type: str | None, value: str | None, prefix: str | None) -> tuple[
            list[Directive], tuple[Raw | str, ...]]:
        """Directives computing the new path, and the path as Expr parts (query excluded)."""
        if path_type == "ReplaceFullPath" and value is not None:
            return [], (value,)
        if path_type == "ReplacePrefixMatch" and value is not None and prefix is not None:
            pattern = ("^(/.*)?" if prefix == "/" else f"^{regex_escape(prefix)}(/.*)?") + END
            stmts = [
                d("set", R("$wg_rest"), ""),
                Directive("if", _cond("$wg_rawpath", "~", pattern), [d("set", R("$wg_rest"), R("$1"))]),
            ]
            base = value.rstrip("/")
            stmts.append(d("set", R("$wg_path"), Expr((base, R("$wg_rest"))) if base else R("$wg_rest")))
            stmts.append(Directive("if", _cond("$wg_path", "=", ""), [d("set", R("$wg_path"), "/")]))
            return stmts, (R("$wg_path"),)
        return [], (R("$wg_rawpath"),)

    def _action_body(self, action: ir.Action, port: ir.Port, server_ref: list[Directive],
                     internal: bool = False, pid: int | None = None) -> list[Directive]:
        """The directives serving an action under policy `pid`. `internal`: in a location reached
        by an internal redirect, where nginx no longer has the client's URI and it must be passed
        explicitly."""
        out: list[Directive] = [*self.pol.location(pid), d("set", R("$wg_route"), Text(str(action.source))),
                                *self.pol.checks(pid)]
        out += header_directives(action.response_headers)
        if action.cors is not None:
            out += self._cors(action.cors)
        if action.direct_status is not None:
            out.append(d("return", action.direct_status))
            return out
        if action.redirect is not None:
            return out + self._redirect(action.redirect, port)
        path_stmts, path = (
            self._path_expr(action.rewrite.path_type, action.rewrite.path_value, action.rewrite.matched_prefix)
            if action.rewrite else ([], ())
        )
        out += path_stmts
        # Without a URI part nginx forwards the client's raw URI itself; a variable here would
        # make every location a runtime-evaluated proxy_pass (measured: 1.8x the memory and
        # 5x the `nginx -t` time at 10k routes).
        uri: Arg | None = Expr((*path, R("$is_args"), R("$args"))) if path else (
            R("$request_uri") if internal else None)
        backends = [b for b in action.backends if b.weight > 0]
        if action.retry is not None:
            out += self._retry(action.retry)
            backends = [replace(b, upstream=self._retry_upstream(b.upstream, action.retry.attempts + 1))
                        if b.upstream else b for b in backends]
        if len(backends) > 1 and any(b.request_headers or b.response_headers for b in backends):
            return out + self._per_backend(action, backends, port, server_ref, pid)
        if len(backends) == 1 and backends[0].upstream:
            target = backends[0].upstream
        else:
            var = self._split(("backends", action.id), [(float(b.weight), b.upstream or "") for b in backends])
            out.append(Directive("if", _cond("$" + var, "=", ""), [d("return", 503 if action.grpc else 500)]))
            target = "${" + var + "}"
        out += self._proxy_headers(action, pid)
        out += self._timeouts(action)
        for i, mirror in enumerate(action.mirrors):
            loc = f"{INTERNAL_PREFIX}m/{action.id}_{i}"
            out.append(d("mirror", loc))
            # An action served inline in several locations shares one mirror location.
            if not any(n.name == "location" and n.args[1:] == (loc,) for n in server_ref):
                server_ref.append(self._mirror_location(loc, mirror, action))
        scheme = "grpc" if action.grpc else "http"
        tls = self._backend_tls([b.upstream for b in backends if b.upstream])
        if tls is not None:
            scheme += "s"
            out += self._proxy_ssl(tls, "grpc" if action.grpc else "proxy")
        if action.grpc:
            return out + self._grpc_pass(f"{scheme}://{target}", internal)
        if uri is None and not target.startswith("$"):
            out.append(d("proxy_pass", R(f"{scheme}://{target}")))
        else:
            out.append(d("proxy_pass", Expr((R(f"{scheme}://{target}"), *(_expr_parts(uri) if uri else ())))))
        return out

    @staticmethod
    def _timeouts(action: ir.Action) -> list[Directive]:
        """backendRequest bounds each try; request bounds the whole exchange, retries included:
        nginx starts no further try once it has passed. 0 disables a timeout (the longest nginx has)."""

        def ms(seconds: float) -> Raw:
            return R(f"{max(1, min(LONGEST_TIMEOUT_MS, int(seconds * 1000))) if seconds else LONGEST_TIMEOUT_MS}ms")

        out: list[Directive] = []
        per_try = action.backend_timeout_s if action.backend_timeout_s is not None else action.request_timeout_s
        if per_try is not None:
            out += [d(name, ms(per_try)) for name in ("proxy_connect_timeout", "proxy_send_timeout",
                                                      "proxy_read_timeout")]
        if action.request_timeout_s:
            out.append(d("proxy_next_upstream_timeout", ms(action.request_timeout_s)))
        return out

    def _backend_tls(self, names: list[str]) -> ir.UpstreamTLS | None:
        """The TLS settings shared by these upstreams (retry copies map to their base)."""
        settings = {self.upstreams[re.sub(r"_r[0-9]+$", "", n)].tls for n in names}
        if len(settings) > 1:
            raise ValueError("the backends of one rule must all use TLS (BackendTLSPolicy) with the same "
                             "settings, or none")
        return settings.pop() if settings else None

    @staticmethod
    def _grpc_pass(url: str, internal: bool) -> list[Directive]:
        """grpc_pass has no URI part: it sends the request's current URI. After an internal
        redirect that is wardgate's own location, so put the client's path back first (`break`
        keeps the location; it comes last, after every rewrite-phase check)."""
        out = [d("rewrite", R("^"), R("$wg_rawpath"), R("break"))] if internal else []
        return [*out, d("grpc_pass", Expr((R(url),)) if "$" in url else R(url))]

    def _proxy_ssl(self, tls: ir.UpstreamTLS, module: str = "proxy") -> list[Directive]:
        """TLS to a backend: proxy_ssl_* for proxy_pass, grpc_ssl_* for grpc_pass."""
        out = [d(f"{module}_ssl_server_name", R("on")), d(f"{module}_ssl_name", tls.server_name),
               d(f"{module}_ssl_verify", R("on")), d(f"{module}_ssl_verify_depth", 4),
               d(f"{module}_ssl_session_reuse", R("on"))]
        if tls.ca_pem is not None and tls.ca_name is not None:
            path = f"certs/{tls.ca_name}.pem"
            self.files[path] = tls.ca_pem
            out.append(d(f"{module}_ssl_trusted_certificate", path))
        else:
            out.append(d(f"{module}_ssl_trusted_certificate", self.opts.system_ca_file))
        cert = tls.client_certificate
        if cert is not None:
            path = f"certs/{cert.name}.pem"
            self.files[path] = cert.cert_pem.rstrip("\n") + "\n" + cert.key_pem.rstrip("\n") + "\n"
            out += [d(f"{module}_ssl_certificate", path), d(f"{module}_ssl_certificate_key", path)]
        return out

    def _retry_upstream(self, upstream: str, tries: int) -> str:
        key = (upstream, tries)
        if key not in self._retry_upstreams:
            self._retry_upstreams[key] = f"{upstream}_r{tries}"
        return self._retry_upstreams[key]

    @staticmethod
    def _retry(retry: ir.Retry) -> list[Directive]:
        if retry.attempts == 0:
            return [d("proxy_next_upstream", R("off"))]
        conditions = [R("error"), R("timeout"), *(R(f"http_{c}") for c in sorted(retry.codes))]
        return [d("proxy_next_upstream", *conditions), d("proxy_next_upstream_tries", retry.attempts + 1)]

    def _value_map(self, src: str, value: Arg) -> str:
        """$var = value when $src is non-empty, else "" (add_header skips empty values)."""
        key = ("value", src, repr(value))
        if key not in self._maps:
            var = self._var("wg_v")
            self._maps[key] = var
            self.http_extra.append(Directive("map", (R(src), R("$" + var)), [entry("", ""), d("default", value)]))
        return "$" + self._maps[key]

    def _cors_origin(self, cors: ir.Cors) -> str:
        """$var = the request's Origin when the filter allows it, else ""."""
        key = ("cors-origin", cors.allow_origins)
        if key not in self._maps:
            var = self._var("wg_c")
            self._maps[key] = var
            node = Directive("map", (R("$http_origin"), R("$" + var)), [])
            assert node.block is not None
            if "*" in cors.allow_origins:
                node.block.append(d("default", R("$http_origin")))
            else:
                for origin in cors.allow_origins:
                    scheme, _, host = origin.partition("://")
                    host_rx = "[^/]+" + regex_escape(host[1:]) if host.startswith("*.") else regex_escape(host)
                    node.block.append(entry(f"~*^{regex_escape(scheme)}://{host_rx}" + END, R("$http_origin")))
                node.block.append(d("default", ""))
            self.http_extra.append(node)
        return "$" + self._maps[key]

    def _cors(self, cors: ir.Cors) -> list[Directive]:
        """Preflights are answered here: 204 with the CORS headers for an allowed origin, 403
        without them otherwise. Other requests from allowed origins get the headers."""
        origin = self._cors_origin(cors)
        out = [
            # $wg_preflight: "x" + the allowed origin ("x" alone: not allowed), empty if no preflight.
            d("set", R("$wg_preflight"), ""),
            Directive("if", _cond("$request_method", "=", R("OPTIONS")),
                      [d("set", R("$wg_preflight"), Expr(("x", R(origin))))]),
            Directive("if", _cond("$http_access_control_request_method", "=", ""),
                      [d("set", R("$wg_preflight"), "")]),
            Directive("if", _cond("$wg_preflight", "=", "x"), [d("return", 403)]),
            d("add_header", "Access-Control-Allow-Origin", R(origin), R("always")),
        ]
        if "*" not in cors.allow_origins:
            out.append(d("add_header", "Vary", "Origin", R("always")))
        if cors.allow_credentials:
            out.append(d("add_header", "Access-Control-Allow-Credentials", R(self._value_map(origin, "true")),
                         R("always")))
        if cors.expose_headers:
            out.append(d("add_header", "Access-Control-Expose-Headers",
                         R(self._value_map(origin, Text(", ".join(cors.expose_headers)))), R("always")))
        # "*" answers with what the preflight asked for, which is valid with credentials too.
        methods: Arg = (R("$http_access_control_request_method") if "*" in cors.allow_methods
                        else ", ".join(cors.allow_methods))
        out.append(d("add_header", "Access-Control-Allow-Methods", R(self._value_map("$wg_preflight", methods)),
                     R("always")))
        if cors.allow_headers:
            headers: Arg = (R("$http_access_control_request_headers") if "*" in cors.allow_headers
                            else Text(", ".join(cors.allow_headers)))
            out.append(d("add_header", "Access-Control-Allow-Headers",
                         R(self._value_map("$wg_preflight", headers)), R("always")))
        out.append(d("add_header", "Access-Control-Max-Age",
                     R(self._value_map("$wg_preflight", str(cors.max_age))), R("always")))
        out.append(Directive("if", (R("("), R("$wg_preflight"), R(")")), [d("return", 204)]))
        return out

    def _per_backend(self, action: ir.Action, backends: list[ir.WeightedBackend], port: ir.Port,
                     server_ref: list[Directive], pid: int | None) -> list[Directive]:
        """Backends with their own header filters: pick one, then jump to a location made for it."""
        var = self._split(("per-backend", action.id),
                          [(float(b.weight), str(i) if b.upstream else "") for i, b in enumerate(backends)])
        out = [Directive("if", _cond("$" + var, "=", ""), [d("return", 500)])]
        for i, b in enumerate(backends):
            if not b.upstream:
                continue
            loc = f"{INTERNAL_PREFIX}b/{action.id}_{i}"
            out.append(Directive("if", _cond("$" + var, "=", R(str(i))),
                                 [d("rewrite", R("^"), loc, R("last"))]))
            if any(n.name == "location" and n.args[1:] == (loc,) for n in server_ref):
                continue
            single = replace(action, backends=(replace(b, request_headers=ir.HeaderOps(),
                                                       response_headers=ir.HeaderOps()),),
                             request_headers=action.request_headers + b.request_headers,
                             response_headers=action.response_headers + b.response_headers)
            body = [d("internal"), *self._action_body(single, port, server_ref, internal=True, pid=pid)]
            server_ref.append(Directive("location", (R("="), loc), body))
        return out

    def _mirror_location(self, loc: str, mirror: ir.Mirror, action: ir.Action) -> Directive:
        node = Directive("location", (R("="), loc), [d("internal")])
        assert node.block is not None
        if mirror.percent < 100.0:
            # Salted by location: each mirror filter of a rule samples on its own.
            var = self._split(("mirror", loc), [(mirror.percent, "1"), (100.0 - mirror.percent, "")],
                              salt=loc)
            node.block.append(Directive("if", _cond("$" + var, "=", ""), [d("return", 204)]))
        node.block += self._proxy_headers(action)
        tls = self._backend_tls([mirror.upstream])
        if tls is not None:
            node.block += self._proxy_ssl(tls, "grpc" if action.grpc else "proxy")
        scheme = ("grpc" if action.grpc else "http") + ("s" if tls else "")
        if action.grpc:
            node.block += self._grpc_pass(f"{scheme}://{mirror.upstream}", internal=True)
            return node
        node.block.append(d("proxy_pass", Expr((R(f"{scheme}://{mirror.upstream}"), R("$request_uri")))))
        return node

    def _redirect(self, rd: ir.Redirect, port: ir.Port) -> list[Directive]:
        stmts, path = self._path_expr(rd.path_type, rd.path_value, rd.matched_prefix)
        scheme: Raw | str = rd.scheme or R("$scheme")
        host: Raw | str = rd.hostname or R("$host")
        parts: list[Raw | str] = [scheme, "://", host]
        if rd.port is not None:
            default = {"http": 80, "https": 443}.get(rd.scheme or "")
            if rd.scheme is None:
                default = 443 if port.protocol == "HTTPS" else 80
            if rd.port != default:
                parts.append(f":{rd.port}")
        elif rd.scheme is None:
            default = 443 if port.protocol == "HTTPS" else 80
            if port.port != default:
                parts.append(f":{port.port}")
        parts += [*path, R("$is_args"), R("$args")]
        return [*stmts, d("return", rd.status_code, Expr(tuple(parts)))]

    # --- locations --------------------------------------------------------------------------

    def _server(self, port: ir.Port, vhost: ir.VirtualHost, default: bool) -> Directive:
        srv = block("server")
        listen: list[Arg] = [R(f"unix:{stream.https_socket(port.port)}") if port.behind_stream
                             else R(f"{self._listen_addr()}:{port.port + self.opts.port_offset}")]
        if default:
            listen.append(R("default_server"))
        if port.protocol == "HTTPS":
            listen += [R("ssl"), R("http2")]
        elif port.http2:
            listen.append(R("http2"))  # h2c with prior knowledge, for GRPCRoutes (ir.Port.http2)
        if self.gw.client_ip.source == "proxy_protocol" or port.behind_stream:
            listen.append(R("proxy_protocol"))
        srv.add("listen", *listen)
        if port.behind_stream:
            # The stream module in front sends the client's address (after its own client-IP
            # rules) in the PROXY header; only that hop is trusted here, whatever the http level says.
            srv.add("set_real_ip_from", R("unix:"))
            srv.add("real_ip_header", R("proxy_protocol"))
        srv.add("server_name", vhost.hostname)
        # nginx routed on the request line's host when it has one; a Host header naming another
        # host would reach the backend (and its header matches, the WAF) under policies it never
        # passed. RFC 9112 3.2.2: the request-line authority wins, and clients must send the same.
        # (A plain comparison first: the regex map runs only when the two differ at all.)
        srv.block_append(Directive("if", _cond("$http_host", "!=", R("$host")), [
            d("set", R("$wg_reject"), R("$wg_host_mismatch"))]))
        if self.gw.reject_ambiguous_paths:
            # Policies judge nginx's normalised $uri, the backend gets the raw URI: refuse what a
            # backend could normalise differently (/api/..;/admin, /api/%2e%2e/admin).
            srv.block_append(Directive("if", (R("("), R("$wg_ambiguous_path"), R(")")), [
                d("set", R("$wg_reject"), "ambiguous-path")]))
        srv.block_append(Directive("if", (R("("), R("$wg_reject"), R(")")), [
            d("set", R("$wg_decision"), R("$wg_reject")), d("return", 400)]))
        certs = vhost.certificates or (port.default_certificates if default else ())
        if port.protocol == "HTTPS":
            self._tls(srv, port, vhost, certs)
            if certs and port.client_validation is not None:
                self._client_validation(srv, port.client_validation)
            if certs and len(port.listeners) > 1:
                # The TLS name chose another listener than the Host header: HTTP/2 connection
                # reuse or a confused client. RFC 9110 says 421, and the client retries.
                var = self._sni_listener(port)
                srv.block_append(Directive("if", _cond(var, "!=", Text(vhost.listener)), [d("return", 421)]))
        pids = [vhost.policy, *(pid for _, pid in vhost.action_policies)]
        if any(self.pol.uses_uri(pid) for pid in pids):
            # Checks may run after an internal redirect, where $uri is wardgate's: keep the client's.
            srv.add("set", R("$wg_uri"), R("$uri"))
        extra: list[Directive] = []
        self._directs = set()
        locations = self._locations(port, vhost, extra)
        assert srv.block is not None
        srv.block += locations + extra
        return srv

    def _client_validation(self, srv: Directive, cv: ir.ClientValidation) -> None:
        path = f"certs/{cv.name}.pem"
        self.files[path] = cv.ca_pem
        srv.add("ssl_client_certificate", path)
        srv.add("ssl_verify_depth", 4)
        if cv.insecure_fallback:
            srv.add("ssl_verify_client", R("optional_no_ca"))
            return
        srv.add("ssl_verify_client", R("on"))
        # nginx answers a missing or bad client certificate with an HTTP 400 (codes 495/496);
        # closing the connection instead (444) refuses it at the transport, as clients expect.
        srv.add("error_page", 495, 496, R("@wg_client_cert"))
        srv.block_append(Directive("location", (R("@wg_client_cert"),), [d("return", 444)]))

    def _sni_listener(self, port: ir.Port) -> str:
        """$var naming the listener that owns the connection's SNI name on this port."""
        key = ("sni", port.port)
        if key not in self._maps:
            var = self._var("wg_sni")
            self._maps[key] = var
            node = Directive("map", (R("$ssl_server_name"), R("$" + var)), [d("hostnames")])
            assert node.block is not None
            for host, name in port.listeners:
                # map values and `if` operands interpolate `$`: user-named listeners go in as Text.
                node.block.append(d("default", Text(name)) if not host else map_entry(host, Text(name)))
            self.http_extra.append(node)
        return "$" + self._maps[key]

    def _tls(self, srv: Directive, port: ir.Port, vhost: ir.VirtualHost,
             certs: tuple[ir.TLSCertificate, ...]) -> None:
        # Every server of the port, the certificate-less default one too: OpenSSL settles the
        # version with the default server's settings, before SNI switches servers.
        if port.tls_min_version != ir.ListenerTLS().min_version:
            srv.add("ssl_protocols", *_protocols(port.tls_min_version))
        if not certs:
            srv.add("ssl_reject_handshake", R("on"))
            return
        # One pair per key type: OpenSSL picks the one the client's signature algorithms allow.
        for cert in certs:
            path = f"certs/{cert.name}.pem"
            self.files[path] = cert.cert_pem.rstrip("\n") + "\n" + cert.key_pem.rstrip("\n") + "\n"
            srv.add("ssl_certificate", path)
            srv.add("ssl_certificate_key", path)
        # The cipher list, unlike the version, follows the server SNI selects.
        if vhost.tls.ciphers != ir.ListenerTLS().ciphers:
            srv.add("ssl_ciphers", R(":".join(vhost.tls.ciphers)))
        if vhost.hsts:
            # headers-more: also on error pages, replacing a backend's own value, and inherited
            # together with the locations' own more_set_headers.
            srv.add("more_set_headers", Text(f"Strict-Transport-Security: {vhost.hsts}"))

    def _listen_addr(self) -> str:
        host = self.opts.listen_host
        return f"[{host}]" if ":" in host else host

    def _locations(self, port: ir.Port, vhost: ir.VirtualHost, extra: list[Directive]) -> list[Directive]:
        matches = vhost.matches
        exact: dict[str, None] = {}
        # Direct responses are answered in an exact location of their own.
        for pid in {vhost.policy, *(pid for _, pid in vhost.action_policies)}:
            if pid is not None:
                for resp in self.pol.policies[pid].direct:
                    exact[resp.path] = None
        prefixes: dict[str, None] = {"/": None}
        regexes: dict[str, None] = {}
        for m in matches:
            if m.path.type == "Exact":
                exact[m.path.value] = None
            elif m.path.type == "PathPrefix":
                prefixes[m.path.value] = None
                if m.path.value != "/":
                    exact[m.path.value] = None
            else:
                regexes[m.path.value] = None
        used_actions: dict[int, None] = {}
        out: list[Directive] = []

        def location(args: tuple[Arg, ...], kind: str, value: str) -> Directive:
            body = self._dispatch(port, vhost, kind, value, used_actions, extra)
            return Directive("location", args, body)

        for value in exact:
            out.append(location((R("="), value), "exact", value))
        for value in prefixes:
            loc = value if value == "/" else value + "/"
            out.append(location((loc,), "prefix", value))
        for value in regexes:
            out.append(location((R("~"), _anchored(value)), "regex", value))
        policies = dict(vhost.action_policies)
        for action_id in used_actions:
            body = [d("internal"), *self._action_body(self.actions[action_id], port, extra, internal=True,
                                                      pid=policies.get(action_id))]
            out.append(Directive("location", (R("="), f"{INTERNAL_PREFIX}a/{action_id}"), body))
        return out

    def _direct_index(self, pid: int | None, kind: str, value: str) -> int | None:
        """Which direct response of policy `pid` answers this exact location, if any."""
        if pid is None or kind != "exact":
            return None
        return self.pol.policies[pid].direct_for(value)

    def _direct_jump(self, pid: int, index: int, extra: list[Directive]) -> str:
        """An internal location for a direct response reached by a conditional jump."""
        loc = f"{INTERNAL_PREFIX}d/{pid}/{index}"
        if (pid, index) not in self._directs:
            self._directs.add((pid, index))
            extra.append(self.pol.direct_location(pid, index, loc))
        return loc

    def _dispatch(self, port: ir.Port, vhost: ir.VirtualHost, kind: str, value: str,
                  used: dict[int, None], extra: list[Directive]) -> list[Directive]:
        out: list[Directive] = []
        policies = dict(vhost.action_policies)
        for m in vhost.matches:
            conds = self._path_conditions(kind, value, m)
            if conds is None:
                continue
            conds += self._request_conditions(m)
            pid = policies.get(m.action)
            index = self._direct_index(pid, kind, value)
            if not conds:
                if pid is not None and index is not None:  # answered right here
                    route = d("set", R("$wg_route"), Text(str(self.actions[m.action].source)))
                    return [*out, route, *self.pol.direct(pid, index)]
                if not (out and self.pol.waf_on(pid)):
                    return out + self._action_body(self.actions[m.action], port, extra, pid=pid)
                # This location may also jump elsewhere, and ModSecurity would keep its settings
                # for the whole request: serve the WAF route from its own internal location.
                used[m.action] = None
                return [*out, d("rewrite", R("^"), f"{INTERNAL_PREFIX}a/{m.action}", R("last"))]
            if pid is not None and index is not None:
                target = self._direct_jump(pid, index, extra)
            else:
                used[m.action] = None
                target = f"{INTERNAL_PREFIX}a/{m.action}"
            jump = d("rewrite", R("^"), target, R("last"))
            if len(conds) == 1:
                out.append(Directive("if", conds[0][1], [jump]))
                continue
            out.append(d("set", R("$wg_m"), R("1")))
            for negated, _ in conds:
                out.append(Directive("if", negated, [d("set", R("$wg_m"), R("0"))]))
            out.append(Directive("if", (R("("), R("$wg_m"), R(")")), [jump]))
        index = self._direct_index(vhost.policy, kind, value)
        if vhost.policy is not None and index is not None:
            return out + self.pol.direct(vhost.policy, index)
        return out + self.pol.location(vhost.policy, waf=False) + self.pol.checks(vhost.policy) + [
            d("set", R("$wg_decision"), "no-route"), d("return", 404)]

    @staticmethod
    def _path_conditions(kind: str, value: str, m: ir.Match) -> list[tuple[tuple[Arg, ...], tuple[Arg, ...]]] | None:
        """None: the match can't apply in this location. []: it always does. Else dynamic checks."""
        p = m.path
        if p.type == "RegularExpression":
            if kind == "regex" and p.value == value:
                return []
            rx = _anchored(p.value)
            return [(_cond("$uri", "!~", rx), _cond("$uri", "~", rx))]
        if p.type == "Exact":
            return [] if kind == "exact" and p.value == value else None
        covers = p.value == "/" or value == p.value or value.startswith(p.value + "/")
        if kind in ("exact", "prefix"):
            return [] if covers else None
        if p.value == "/":
            return []
        rx = f"^{regex_escape(p.value)}(?:/|{END})"
        return [(_cond("$uri", "!~", rx), _cond("$uri", "~", rx))]

    def _request_conditions(self, m: ir.Match) -> list[tuple[tuple[Arg, ...], tuple[Arg, ...]]]:
        """(negated, positive) condition pairs for method, headers and query parameters."""
        out: list[tuple[tuple[Arg, ...], tuple[Arg, ...]]] = []
        if m.method:
            out.append((_cond("$request_method", "!=", R(m.method)), _cond("$request_method", "=", R(m.method))))
        for h in m.headers:
            var = header_variable(h.name)
            if h.type == "Exact":
                out.append((_cond(var, "!=", Text(h.value)), _cond(var, "=", Text(h.value))))
            else:
                rx = _anchored(h.value)
                out.append((_cond(var, "!~", rx), _cond(var, "~", rx)))
        for q in m.query:
            var = self._query_var(q.name)
            if q.type == "Exact":
                out.append((_cond(var, "!=", Text(q.value)), _cond(var, "=", Text(q.value))))
            else:
                rx = _anchored(q.value)
                out.append((_cond(var, "!~", rx), _cond(var, "~", rx)))
        return out

    def _query_var(self, name: str) -> str:
        """The first value of a case-sensitive query parameter (nginx's $arg_ ignores case)."""
        key = ("query", name)
        if key not in self._maps:
            var = self._var("wg_q")
            self._maps[key] = var
            node = Directive("map", (R("$args"), R("$" + var)), [
                entry(f"~(?:^|&){regex_escape(name)}=(?<{var}v>[^&]*)", R(f"${var}v")),
                d("default", ""),
            ])
            self.http_extra.append(node)
        return "$" + self._maps[key]

    # --- the whole file -----------------------------------------------------------------------

    def render(self) -> dict[str, str]:
        servers: list[Directive] = []
        for port in self.gw.ports:
            has_catch_all = any(v.hostname == "" for v in port.vhosts)
            for vhost in port.vhosts:
                servers.append(self._server(port, vhost, default=vhost.hostname == ""))
            if not has_catch_all:
                servers.append(self._server(port, ir.VirtualHost("", (), policy=port.policy), default=True))
        by_name = {u.name: u for u in self.gw.upstreams}
        upstreams = [self._upstream(u) for u in self.gw.upstreams]
        upstreams += [self._upstream(by_name[base], name, copies)
                      for (base, copies), name in self._retry_upstreams.items()]
        stream_block = stream.StreamRenderer(self.gw, self._listen_addr(), self.opts.port_offset).render()
        main: list[Directive] = [d("load_module", f"{self.opts.modules_dir}/{m}")
                                 for m in (*MODULES, *self.pol.modules(),
                                           *((stream.MODULE,) if stream_block else ()))]
        main.append(d("load_module", self.opts.wardgate_module))  # last: see WARDGATE_MODULE
        workers = self.opts.worker_processes
        main += [
            d("worker_processes", workers if workers else R("auto")),
            # Compiled regexes for locations, maps and checks: pcre2's interpreter is several
            # times slower per match, and nginx leaves JIT off unless asked.
            d("pcre_jit", R("on")),
            d("pid", "run/nginx.pid"),
            d("error_log", "logs/error.log", R("notice")),
            Directive("events", (), [d("worker_connections", self.opts.worker_connections)]),
        ]
        http = block("http")
        assert http.block is not None
        http.block += [
            d("server_tokens", R("off")),
            d("sendfile", R("on")),
            d("tcp_nodelay", R("on")),
            d("keepalive_timeout", R("65s")),
            # Requests (HTTP/2 streams) per client connection: nginx's default. Each stream may
            # open a backend connection, so this bounds what one connection's rapid resets cost.
            d("keepalive_requests", 1000),
            d("http2_max_concurrent_streams", HTTP2_MAX_STREAMS),
            # One pool block per request: with 4k (the default) a proxied request allocated two more
            # blocks (2.1k instructions per request in malloc and free); it used about 12k anyway.
            d("request_pool_size", R("16k")),
            d("client_body_temp_path", "tmp/client_body"),
            d("proxy_temp_path", "tmp/proxy"),
            d("fastcgi_temp_path", "tmp/fastcgi"),
            d("uwsgi_temp_path", "tmp/uwsgi"),
            d("scgi_temp_path", "tmp/scgi"),
            d("server_names_hash_max_size", 131072),
            d("server_names_hash_bucket_size", 256),
            d("variables_hash_max_size", 8192),
            d("map_hash_bucket_size", 256),
            d("default_type", "application/octet-stream"),
            d("proxy_http_version", R("1.1")),
            d("proxy_buffering", R("on")),
            d("proxy_next_upstream", R("error"), R("timeout")),
            *(d("proxy_set_header", name, value) for name, value in DEFAULT_PROXY_HEADERS),
            *(d("grpc_set_header", name, value) for name, value in DEFAULT_GRPC_HEADERS),
            d("log_format", R("wg_json"), R("escape=json"), LOG_FORMAT),
            # Buffered: an unbuffered write per request cost 11% of proxy throughput (bench/).
            d("access_log", "logs/access.log", R("wg_json"), R("buffer=64k"), R("flush=1s"))
            if self.opts.access_log else d("access_log", R("off")),
            Directive("geo", (R("$" + DOLLAR_VAR),), [d("default", "$")]),
            Directive("map", (R("$http_upgrade"), R("$wg_connection")), [d("default", "upgrade"), entry("", "")]),
            # Set when a Host header names another host than the one nginx routed on ($host: the
            # request line's, lower-cased, without port or trailing dot). Absent Host is fine.
            Directive("map", (Expr((R("$host"), "|", R("$http_host"))), R("$wg_host_mismatch")), [
                entry(r"~*^([^|]*)\|\1\.?(?::[0-9]*)?\z", ""), entry(r"~^[^|]*\|\z", ""),
                d("default", "invalid-request")]),
            # Set for a raw path (before any `?`) with `;`, `\`, `#`, %2e, %2f, %5c or a dot segment.
            Directive("map", (R("$request_uri"), R("$wg_ambiguous_path")), [
                entry(r"~^[^?]*(?:[;\\#]|%(?:2[eEfF]|5[cC])|/\.\.?(?:[/?#]|\z))", "1"), d("default", "")]),
            Directive("map", (R("$request_uri"), R("$wg_rawpath")),
                      [entry("~^(?<wg_rawpath_p>[^?]*)", R("$wg_rawpath_p"))]),
            # Variables set only in some locations must exist everywhere. Keyed on a constant: a
            # map on $host lower-cases and hashes the host first (0.5k instructions per request).
            *(Directive("map", ("", R(var)), [d("default", "")])
              for var in ("$wg_route", "$wg_preflight", "$wg_decision", "$wg_waf", "$wg_uri", "$wg_reject")),
            # What the decision log says: the policy that answered; else, for answers no backend
            # gave: "waf" for a 403 on a WAF-enabled route, "request-limits" for nginx's 413 (body
            # size), "invalid-request" for its 400 (malformed); else "allow". Keyed on one
            # variable at a time, so an ordinary request costs two hash lookups: a regex map here
            # was 6% of plain routing's instructions, a map over "$wg_waf|$status|..." still 10%.
            Directive("map", (R("$wg_decision"), R("$wg_decision_log")), [
                entry("", R(self.pol.decision_fallback())), d("default", R("$wg_decision"))]),
            Directive("map", (R("$status"), R("$wg_decision_auto")), [
                d("default", "allow"), entry("400", R("$wg_decision_400")), entry("403", R("$wg_decision_403")),
                entry("413", R("$wg_decision_413"))]),
            *(Directive("map", (R("$upstream_status"), R(f"$wg_decision_{status}")), [
                entry("", decision), d("default", "allow")])
              for status, decision in (("400", "invalid-request"),)),
            Directive("map", (Expr((R("$wg_waf"), "|", R("$upstream_status"))), R("$wg_decision_403")), [
                entry("on|", "waf"), entry("cap|", "waf"), d("default", "allow")]),
            # ModSecurity's own 413 only where nginx has no body limit (policies.py, $wg_waf "cap").
            Directive("map", (Expr((R("$wg_waf"), "|", R("$upstream_status"))), R("$wg_decision_413")), [
                entry("|", "request-limits"), entry("on|", "request-limits"), entry("cap|", "waf-body-limit"),
                d("default", "allow")]),
        ]
        if any(p.protocol == "HTTPS" for p in self.gw.ports):
            http.block += tls_http_directives()
        http.block += self.pol.http_directives()
        http.block += self.http_extra + upstreams + servers
        main.append(http)
        if stream_block is not None:
            main.append(stream_block)
        self.files["nginx.conf"] = (f"# wardgate: Gateway {self.gw.key}. Generated; do not edit.\n"
                                    + emit(main))
        return self.files

    @staticmethod
    def _upstream(up: ir.Upstream, name: str | None = None, copies: int = 1) -> Directive:
        node = block("upstream", R(name or up.name))
        if up.endpoints:
            # nginx retries on the *next* peer only; listing every endpoint `copies` times lets a
            # retry policy try again even with a single pod.
            for ep in up.endpoints * copies:
                addr = f"[{ep.address}]" if ":" in ep.address else ep.address
                # Gateway API has no passive health checking: a slow answer must not eject a pod.
                node.add("server", R(f"{addr}:{ep.port}"), R("max_fails=0"))
            node.add("keepalive", 32)
        else:
            # No ready endpoint: nginx needs a server, so name one that is never tried.
            node.add("server", R("127.0.0.1:9"), R("down"))
        return node


def _protocols(min_version: str) -> tuple[Raw, ...]:
    return (R("TLSv1.3"),) if min_version == "1.3" else (R("TLSv1.2"), R("TLSv1.3"))


def tls_http_directives() -> list[Directive]:
    """http-level TLS defaults, inherited by every server, the catch-all default server too."""
    return [
        d("ssl_protocols", *_protocols(ir.ListenerTLS().min_version)),
        d("ssl_ciphers", R(":".join(ir.ListenerTLS().ciphers))),
        # Mozilla: let the client pick among suites that are all strong (it knows if it has AES).
        d("ssl_prefer_server_ciphers", R("off")),
        d("ssl_ecdh_curve", R("X25519:prime256v1:secp384r1")),
        # Resumption through a cache shared by the workers; tickets off, because their keys live
        # until the next reload and would undo forward secrecy for every session until then.
        d("ssl_session_cache", R("shared:wg_tls:10m")),
        d("ssl_session_timeout", R("1d")),
        d("ssl_session_tickets", R("off")),
    ]


def _expr_parts(arg: Arg) -> tuple[Raw | str, ...]:
    if isinstance(arg, Expr):
        return arg.parts
    if isinstance(arg, Raw):
        return (arg,)
    raise TypeError("expected an Expr or Raw")


@no_gc_pauses
def render(gw: ir.Gateway, opts: RenderOptions | None = None) -> dict[str, str]:
    """All files of the Gateway's nginx configuration, keyed by path relative to nginx.conf."""
    return _Renderer(gw, opts or RenderOptions()).render()
