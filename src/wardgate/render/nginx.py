"""IR -> nginx configuration files for one Gateway: plan, then emit.

    plan.make_plan(gw)          the immutable Plan (each feature module plans its own part)
    routing.server(plan, ...)   one server block from the plan and its virtual host, memoized
    this module                 main and http levels around the servers, then the text

See docs/architecture.md for the layout and what each module owns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wardgate import ir
from wardgate.keys import ObjectKey
from wardgate.perf import no_gc_pauses
from wardgate.quoting import DOLLAR_VAR, Raw
from wardgate.render import (
    accesslog,
    concurrency,
    headers,
    ipaccess,
    lua,
    policies,
    ratelimit,
    routing,
    stream,
    tls,
    upstreams,
    waf,
)
from wardgate.render.emit import Directive, block, d, emit, entry
from wardgate.render.headers import DEFAULT_GRPC_HEADERS, DEFAULT_PROXY_HEADERS, proxy_directives
from wardgate.render.module import REQUEST_ID, WARDGATE_MODULE, default_wardgate_module
from wardgate.render.plan import Plan, RenderOptions, make_plan
from wardgate.render.tables import Table, Tables

__all__ = ["DEFAULT_GRPC_HEADERS", "DEFAULT_PROXY_HEADERS", "LOG_FIELDS", "REQUEST_ID", "WARDGATE_MODULE",
           "RenderOptions", "default_wardgate_module", "render"]

LOG_FIELDS = accesslog.LOG_FIELDS
# nginx refuses new streams beyond twice this per read of a connection (Debian's backport of the
# CVE-2023-44487 fix), so it also bounds how many rapid resets reach backends per event loop turn.
HTTP2_MAX_STREAMS = 100
MODULES = ("ngx_http_headers_more_filter_module.so",)
R = Raw

@dataclass(frozen=True)
class _Rendered:
    """A server's text and what it needs at http level, with everything it was rendered from."""

    inputs: tuple[Any, ...]  # port settings, the virtual host, its actions and policies
    text: str
    tables: tuple[Table, ...]
    files: tuple[tuple[str, str], ...]


# Per Gateway: the plan-wide inputs of its last render, and its servers by (port, hostname). An
# unchanged virtual host (the same objects, or equal ones) under an unchanged plan is not rendered
# again: an incremental reconcile re-renders only what an edit touched.
_MEMO: dict[ObjectKey, tuple[tuple[Any, ...], dict[tuple[int, str], _Rendered]]] = {}


def _plan_inputs(plan: Plan) -> tuple[Any, ...]:
    """What every server's text depends on besides its own virtual host."""
    return (plan.opts, plan.gw.client_ip.source, plan.waf, plan.shared, plan.proxy_headers, plan.grpc_headers,
            plan.default_proxy, plan.default_grpc,
            plan.direct.content_type, plan.lua.ids, tuple(plan.rate.zones.items()),
            # Whether an upstream has endpoints decides errorPages.noEndpoints in its places.
            tuple((u.name, u.tls, bool(u.endpoints), u.service, u.service_port)
                  for u in plan.upstreams.by_name.values()))


def _inputs(plan: Plan, port: ir.Port, vhost: ir.VirtualHost) -> tuple[Any, ...]:
    by_action = dict(vhost.action_policies)
    pids = {*by_action.values()}
    if vhost.policy is not None:
        pids.add(vhost.policy)
    return (port.port, port.protocol, port.default_certificates, port.listeners, port.client_validation,
            port.http2, port.tls_min_version, port.behind_stream, vhost,
            *(plan.actions[m.action] for m in vhost.matches), *(plan.policies[i] for i in sorted(pids)))


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    # Identity first: cheap, and the usual case when translation reuses unchanged objects.
    return (len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))) or a == b


def _servers(plan: Plan, tables: Tables, files: dict[str, str]) -> str:
    shared = _plan_inputs(plan)
    last_shared, last = _MEMO.get(plan.gw.key, ((), {}))
    if not _same(shared, last_shared):
        last = {}
    fresh: dict[tuple[int, str], _Rendered] = {}
    out: list[str] = []
    for port in plan.gw.ports:
        vhosts = list(port.vhosts)
        if not any(v.hostname == "" for v in vhosts):
            vhosts.append(ir.VirtualHost("", (), policy=port.policy))
        for vhost in vhosts:
            inputs = _inputs(plan, port, vhost)
            done = last.get((port.port, vhost.hostname))
            if done is None or not _same(done.inputs, inputs):
                res = routing.server(plan, port, vhost, vhost.hostname == "")
                done = _Rendered(inputs, emit([res.node], 1), res.tables, res.files)
            fresh[(port.port, vhost.hostname)] = done
            out.append(done.text)
            tables.merge(done.tables)
            files.update(done.files)
    _MEMO[plan.gw.key] = (shared, fresh)
    return "".join(out)


def _http_base(plan: Plan) -> list[Directive]:
    return [
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
        # Only direct responses are written with it (proxied answers keep the backend's type).
        d("default_type", plan.direct.content_type),
        d("proxy_http_version", R("1.1")),
        d("proxy_buffering", R("on")),
        d("proxy_next_upstream", R("error"), R("timeout")),
        *proxy_directives(plan.proxy_headers),
        *proxy_directives(plan.grpc_headers, grpc=True),
        *accesslog.http_directives(plan.opts.access_log,
                                   auth=any(p.basic_auth or p.external_auth for p in plan.policies.values()),
                                   not_found=any(a.not_found for a in plan.actions.values())),
        Directive("geo", (R("$" + DOLLAR_VAR),), [d("default", "$")]),
        # 400 before any location for a Host header naming another host than the one nginx
        # routed on ($host: the request line's, lower-cased, without port or trailing dot; absent
        # Host is fine), and for an ambiguous raw path (policies judge nginx's normalised $uri,
        # the backend gets the raw URI) unless a ClientTrafficPolicy allows them.
        d("wardgate_request_checks", R("host"), *((R("ambiguous_paths"),) if plan.gw.reject_ambiguous_paths else ())),
        Directive("map", (R("$request_uri"), R("$wg_rawpath")),
                  [entry("~^(?<wg_rawpath_p>[^?]*)", R("$wg_rawpath_p"))]),
        # Variables set only in some locations must exist everywhere, empty where nothing set
        # them (wardgate's module: cheaper than a map per variable).
        d("wardgate_empty", *(R(v) for v in ("$wg_route", "$wg_preflight", "$wg_decision", "$wg_waf", "$wg_uri"))),
    ]


def _main(plan: Plan, has_stream: bool) -> list[Directive]:
    mods = (*MODULES, *(lua.MODULES if plan.lua.on else ()), *((waf.MODULE,) if plan.waf else ()),
            *((stream.MODULE,) if has_stream else ()))
    workers = plan.opts.worker_processes
    return [
        *(d("load_module", f"{plan.opts.modules_dir}/{m}") for m in mods),
        d("load_module", plan.opts.wardgate_module),  # last: see module.WARDGATE_MODULE
        d("worker_processes", workers if workers else R("auto")),
        # Compiled regexes for locations, maps and checks: pcre2's interpreter is several
        # times slower per match, and nginx leaves JIT off unless asked.
        d("pcre_jit", R("on")),
        d("pid", "run/nginx.pid"),
        d("error_log", "logs/error.log", R("notice")),
        Directive("events", (), [d("worker_connections", plan.opts.worker_connections)]),
    ]


def emit_plan(plan: Plan) -> dict[str, str]:
    files: dict[str, str] = dict(plan.basic.files)
    tables = Tables()
    tables.merge(plan.tables)
    tables.merge(plan.lua.tables)
    tables.merge(plan.direct.tables)
    servers = _servers(plan, tables, files)
    http = block("http")
    assert http.block is not None
    http.block += _http_base(plan)
    shared = plan.policy(plan.shared)
    if shared is not None:
        # What every place of the Gateway shares: once, inherited by every location.
        http.block += policies.shared_directives(plan, shared)
    if any(p.protocol == "HTTPS" for p in plan.gw.ports):
        http.block += tls.http_directives()
    http.block += ipaccess.http_directives(plan.gw.client_ip)
    http.block += headers.http_directives(plan.gw.backend_headers)
    http.block += ratelimit.http_directives(plan.rate)
    http.block += concurrency.http_directives(plan.concurrency)
    http.block += lua.http_directives(plan.lua)
    if plan.waf:
        http.block += waf.http_directives(plan.opts.log_dir, accesslog.AUDIT_LOG)
    http.block += tables.items.values()
    http.block += upstreams.http_directives(plan.upstreams)
    stream_block = stream.StreamRenderer(plan.gw, routing.listen_addr(plan), plan.opts.port_offset).render()
    text = emit([*_main(plan, stream_block is not None), http])
    assert text.endswith("}\n")
    text = text[:-2] + servers + "}\n"  # the servers, emitted (and memoized) one by one, close the http block
    if stream_block is not None:
        text += emit([stream_block])
    files["nginx.conf"] = f"# wardgate: Gateway {plan.gw.key}. Generated; do not edit.\n" + text
    return files


@no_gc_pauses
def render(gw: ir.Gateway, opts: RenderOptions | None = None) -> dict[str, str]:
    """All files of the Gateway's nginx configuration, keyed by path relative to nginx.conf."""
    return emit_plan(make_plan(gw, opts or RenderOptions()))
