"""The proxies under test, each routing Host: bench.example.com to the bench backend, 1 CPU, 1 worker.

- limit: a hand-written minimal nginx reverse proxy (what nginx itself can do: no access log,
  upstream keep-alive, Host passed through, anything else 404);
- plain: wardgate standalone (Runner, the same code path as `wardgate run`) with one HTTPRoute;
- plain_nolog: the same rendered config with wardgate's JSON access log turned off
  (RenderOptions(access_log=False)): not a headline, it tells what the access log costs;
- caddy and haproxy: the same Host-based route in their own configuration languages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from bench import manifests
from bench.common import (
    BENCH_HOST,
    PROXY_CPU,
    NginxProc,
    Proc,
    affinity,
    free_port,
    nginx_prelude,
    nginx_temp_paths,
    pin,
    probe,
    reaches_backend,
    tree,
    wait_until,
)


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


class LimitNginx(ProcTarget):
    name = "limit"
    label = "hand-written minimal nginx proxy (the limit)"

    def start(self, root: Path, backend_port: int) -> None:
        workdir = root / "limit"
        workdir.mkdir(mode=0o755)
        self.port = free_port()
        conf = nginx_prelude(workdir) + "worker_processes 1;\nhttp {\n" + nginx_temp_paths(workdir) + f"""\
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


class Caddy(ProcTarget):
    name = "caddy"
    label = "Caddy reverse_proxy"

    def start(self, root: Path, backend_port: int) -> None:
        workdir = root / "caddy"
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
\treverse_proxy 127.0.0.1:{backend_port}
}}
http://:{self.port} {{
\tbind 127.0.0.1
\trespond 404
}}
""")
        env = {**os.environ, "HOME": str(workdir), "XDG_DATA_HOME": str(workdir / "data"),
               "XDG_CONFIG_HOME": str(workdir / "config"), "GOMAXPROCS": "1"}
        self.proc = Proc(self.name, ["caddy", "run", "--config", str(conf), "--adapter", "caddyfile"],
                         workdir / "caddy.out", cpu=PROXY_CPU, env=env, cwd=workdir)


class HAProxy(ProcTarget):
    name = "haproxy"
    label = "HAProxy, Host ACL to a backend"

    def start(self, root: Path, backend_port: int) -> None:
        workdir = root / "haproxy"
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
    server app 127.0.0.1:{backend_port}

backend be_404
    http-request return status 404
""")
        check = Proc("haproxy-check", ["haproxy", "-c", "-f", str(conf)], workdir / "check.out")
        check.popen.wait(30)
        check.stop()
        if check.popen.returncode != 0:
            raise RuntimeError(f"haproxy -c failed: {check.output()}")
        self.proc = Proc(self.name, ["haproxy", "-db", "-f", str(conf)], workdir / "haproxy.out", cpu=PROXY_CPU)


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
        (files / "route.yaml").write_text(manifests.route("bench", BENCH_HOST, "/"))
        return files

    def _instance(self) -> Any:
        return self.runner.instances.get(f"default/{manifests.GATEWAY}") if self.runner else None

    def pids(self) -> set[int]:
        inst = self._instance()
        return tree(inst.pid) if inst is not None else set()

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()


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
