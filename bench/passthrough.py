"""Suite `passthrough`: what sharing a port with TLS passthrough costs terminating HTTPS traffic.

Two wardgate Gateways in the same run, pinned like the dataplane suite (proxy on CPU 0, wrk and
the backend on CPU 1), both serving GET / over HTTPS (keep-alive, 50 connections) to the bench
backend through one HTTPRoute:
- `https`: an HTTPS listener alone on its port (nginx's http server terminates TLS);
- `shared`: the same HTTPS listener plus a TLS passthrough listener on the same port, so nginx's
  stream module reads the SNI name first and hands the connection to the http server over a unix
  socket with the PROXY protocol.
The figure is the ratio shared ÷ https of req/s and of proxy CPU µs per request (all nginx
processes: the stream hop runs in the same worker).
"""

from __future__ import annotations

import base64
import http.client
import ssl
import time
from pathlib import Path
from typing import Any

from bench import manifests
from bench.common import (
    BACKEND_MARK,
    BENCH_HOST,
    LOAD_CPU,
    Settings,
    affinity,
    ensure_debs,
    log,
    measure_quietest,
    ratio,
    run_wrk,
    scratch,
    start_backend,
    summarize,
    tree,
    wait_until,
)
from bench.targets import ROUTE, Wardgate

PASSTHROUGH_HOST = "pt.example.com"


def _secret(name: str) -> str:
    import trustme

    cert = trustme.CA().issue_cert(BENCH_HOST)
    crt = b"".join(b.bytes() for b in cert.cert_chain_pems)
    key = cert.private_key_pem.bytes()
    return (f"---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\n"
            f"type: kubernetes.io/tls\ndata: {{tls.crt: {base64.b64encode(crt).decode()}, "
            f"tls.key: {base64.b64encode(key).decode()}}}\n")


class HttpsAlone(Wardgate):
    name = "https"
    label = "HTTPS listener alone on its port"
    shared = False

    def _manifests(self, workdir: Path, backend_port: int) -> Path:
        files = super()._manifests(workdir, backend_port)
        # The listener without a hostname takes every SNI name: wrk sends the address as its name.
        listeners = [f"{{name: https, protocol: HTTPS, port: {self.port}, "
                     "tls: {certificateRefs: [{name: bench-cert}]}}"]
        if self.shared:
            listeners.append(f"{{name: pt, protocol: TLS, port: {self.port}, hostname: {PASSTHROUGH_HOST}, "
                             "tls: {mode: Passthrough}}")
        base = manifests.base(self.port, backend_port).replace(
            f"listeners: [{{name: http, protocol: HTTP, port: {self.port}}}]", f"listeners: [{', '.join(listeners)}]")
        (files / "base.yaml").write_text(base + _secret("bench-cert"))
        if self.shared:  # a passthrough route to the backend's port (never used by the load)
            (files / "tls.yaml").write_text(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\n"
                "metadata: {name: pt, namespace: default}\n"
                f"spec: {{parentRefs: [{{name: {manifests.GATEWAY}}}], hostnames: [{PASSTHROUGH_HOST}], "
                f"rules: [{{backendRefs: [{{name: {manifests.SERVICE}, port: 80}}]}}]}}\n")
        return files

    def check(self) -> None:
        def ok() -> bool:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=3, context=ctx)
            try:
                conn.request("GET", "/", headers={"Host": BENCH_HOST})
                resp = conn.getresponse()
                resp.read()
                return resp.status == 200 and resp.getheader(BACKEND_MARK) is not None
            except OSError:
                return False
            finally:
                conn.close()

        if not wait_until(ok, 20):
            raise RuntimeError(f"{self.name}: https://{BENCH_HOST} does not reach the backend")
        if self.shared and "ssl_preread" not in (self.nginx_conf() or ""):
            raise RuntimeError(f"{self.name}: the port is not fronted by the stream module")


class HttpsShared(HttpsAlone):
    name = "shared"
    label = "HTTPS listener sharing its port with a TLS passthrough listener (stream hop)"
    shared = True


def run(settings: Settings) -> dict[str, Any]:
    t_start = time.monotonic()
    tools = ensure_debs(["wrk", "libnginx-mod-stream", "libnginx-mod-http-headers-more-filter"])
    for pkg, err in tools.items():
        if err:
            raise RuntimeError(f"{pkg} is required: {err}")
    doc: dict[str, Any] = {
        "suite": "passthrough",
        "mode": "quick" if settings.quick else "full",
        "settings": {"runs": settings.runs, "duration_s": settings.duration_s,
                     "wrk": f"-t{settings.threads} -c{settings.connections} --latency, keep-alive, "
                            f"https GET / Host: {BENCH_HOST}",
                     "pinning": "proxy on CPU 0, wrk and backend on CPU 1"},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "targets": {},
    }
    targets = [HttpsAlone(), HttpsShared()]
    results: dict[str, dict[str, Any]] = {t.name: {"label": t.label, "runs": []} for t in targets}
    with scratch("passthrough") as root:
        backend, backend_port = start_backend(root)
        started: list[Wardgate] = []
        try:
            doc["backend"] = {"cpu": LOAD_CPU, "affinity": affinity(tree(backend.pid))}
            for t in targets:
                t.start(root, backend_port)
                started.append(t)
                t.check()
                results[t.name].update(t.describe())
            backend_pids = tree(backend.pid)
            for t in targets:
                run_wrk(t.port, BENCH_HOST, "/", settings.warmup_s, settings, scheme="https")
            for r in range(settings.runs):
                for t in targets if r % 2 == 0 else targets[::-1]:  # alternate the order between runs
                    res = measure_quietest(t.pids, t.port, BENCH_HOST, "/", settings, backend_pids=backend_pids,
                                           scheme="https")
                    res["run"] = r
                    results[t.name]["runs"].append(res)
                    log(f"passthrough run {r + 1}/{settings.runs} {t.name}: {res['rps']:.0f} req/s, "
                        f"p99 {res['p99_ms']} ms, {res['cpu_us_per_req']} µs/req")
        finally:
            for t in started:
                t.stop()
            backend.stop()
    for entry in results.values():
        if entry["runs"]:
            entry["median"] = summarize(entry["runs"])
    alone, shared = results["https"].get("median"), results["shared"].get("median")
    if alone and shared:
        doc["shared_vs_alone"] = {
            "rps_ratio": _round(ratio(shared["rps"], alone["rps"])),
            "cpu_us_per_req_ratio": _round(ratio(shared["cpu_us_per_req"], alone["cpu_us_per_req"])),
            "cpu_us_per_req_added": _round(shared["cpu_us_per_req"] - alone["cpu_us_per_req"]),
            "p99_ratio": _round(ratio(shared["p99_ms"], alone["p99_ms"])),
        }
    doc["targets"] = results
    doc["route"] = ROUTE
    doc["wall_s"] = round(time.monotonic() - t_start, 1)
    return doc


def _round(v: float | None) -> float | None:
    return round(v, 3) if v is not None else None
