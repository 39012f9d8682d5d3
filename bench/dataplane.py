"""Suite `dataplane`: the same request mix through each proxy, pinned, against one fast backend.

Per target: req/s, p50, p99, and the proxy's own CPU µs per request (the primary figure), with
ratios to the hand-written nginx limit: req/s ratio and CPU efficiency (limit µs/req ÷ target's).
Targets with the seed policies (wardgate, Caddy, HAProxy) are probed policy by policy first
(bench/targets.py: policy_checks); the request measured is the same GET / for every target.
The nginx targets are then counted once under callgrind (bench/instructions.py): user-space
instructions per request, the noise-free view of what their configurations cost.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from bench import instructions
from bench.common import (
    BENCH_HOST,
    LOAD_CPU,
    Settings,
    affinity,
    ensure_debs,
    log,
    measure_quietest,
    median,
    ratio,
    run_wrk,
    scratch,
    start_backend,
    summarize,
    tree,
)
from bench.targets import (
    Caddy,
    CaddyPolicies,
    HAProxy,
    HAProxyPolicies,
    LimitNginx,
    Target,
    Traefik,
    TraefikPolicies,
    Wardgate,
    WardgateNoLog,
    WardgatePolicies,
)

# target -> the Debian package it needs besides nginx
NEEDS = {"caddy": "caddy", "caddy_policies": "caddy", "haproxy": "haproxy", "haproxy_policies": "haproxy"}


def run(settings: Settings) -> dict[str, Any]:
    t_start = time.monotonic()
    tools = ensure_debs(["wrk", "caddy", "haproxy", "libnginx-mod-http-lua", "libnginx-mod-http-headers-more-filter",
                         "valgrind"])
    if tools.get("wrk"):
        raise RuntimeError(f"wrk is required: {tools['wrk']}")
    doc: dict[str, Any] = {
        "suite": "dataplane",
        "mode": "quick" if settings.quick else "full",
        "settings": {"runs": settings.runs, "duration_s": settings.duration_s, "warmup_s": settings.warmup_s,
                     "wrk": f"-t{settings.threads} -c{settings.connections} --latency, keep-alive, "
                            f"GET / Host: {BENCH_HOST}",
                     "pinning": "proxy on CPU 0 (taskset / sched_setaffinity), wrk and backend on CPU 1",
                     "primary": "cpu_us_per_req = (utime+stime of all proxy processes) / requests"},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "targets": {},
    }
    targets: list[Target] = [LimitNginx(), Wardgate(), WardgatePolicies(), Caddy(), CaddyPolicies(), HAProxy(),
                             HAProxyPolicies(), Traefik(), TraefikPolicies(), WardgateNoLog()]
    if settings.targets:
        targets = [t for t in targets if t.name in settings.targets]
    results: dict[str, dict[str, Any]] = {}
    with scratch("dataplane") as root:
        backend, backend_port = start_backend(root)
        started: list[Target] = []
        try:
            doc["backend"] = {"what": "nginx, 1 worker, return 200 'ok\\n', access_log off",
                              "cpu": LOAD_CPU, "affinity": affinity(tree(backend.pid))}
            for t in targets:
                entry: dict[str, Any] = {"label": t.label, "runs": []}
                results[t.name] = entry
                missing = tools.get(NEEDS.get(t.name, ""))
                if missing:
                    entry["error"] = missing
                    continue
                try:
                    t.start(root, backend_port)
                    started.append(t)
                    t.check()
                    entry.update(t.describe())
                except (RuntimeError, OSError) as exc:
                    entry["error"] = f"{type(exc).__name__}: {exc}"
                    log(f"dataplane: {t.name} unavailable: {exc}")
            ready = [t for t in started if "error" not in results[t.name]]
            backend_pids = tree(backend.pid)
            for t in ready:  # warm up: connection pools, caches, Go's runtime
                run_wrk(t.port, BENCH_HOST, "/", settings.warmup_s, settings)
            for r in range(settings.runs):
                order = ready[r % len(ready):] + ready[:r % len(ready)] if ready else []
                for t in order:
                    res = measure_quietest(t.pids, t.port, BENCH_HOST, "/", settings, backend_pids=backend_pids)
                    res["run"] = r
                    results[t.name]["runs"].append(res)
                    log(f"dataplane run {r + 1}/{settings.runs} {t.name}: {res['rps']:.0f} req/s, "
                        f"p99 {res['p99_ms']} ms, {res['cpu_us_per_req']} µs/req "
                        f"(schedstat {res['cpu_us_per_req_schedstat']})")
            for t in ready:
                conf = t.nginx_conf()
                if conf is None:
                    continue
                try:
                    results[t.name]["instructions"] = instructions.measure(
                        t.name, conf, root, n=200 if settings.quick else 2000)
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    results[t.name]["instructions"] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for t in started:
                t.stop()
            backend.stop()
    for entry in results.values():
        if entry["runs"]:
            entry["median"] = summarize(entry["runs"])
            if entry["median"]["non_2xx_total"]:
                entry["warning"] = "non-2xx responses during the runs: the figures are not comparable"
    limit = results.get("limit", {}).get("median")
    limit_runs = {r["run"]: r for r in results.get("limit", {}).get("runs", [])}
    for entry in results.values():
        med = entry.get("median")
        if med and limit:
            entry["rps_ratio"] = _round(ratio(med["rps"], limit["rps"]))
            entry["cpu_efficiency"] = _round(ratio(limit["cpu_us_per_req"], med["cpu_us_per_req"]))
            entry["p99_ratio"] = _round(ratio(med["p99_ms"], limit["p99_ms"]))
            # The same, run by run (the limit's run r next to the target's, measured minutes apart
            # at most), then the median: steadier than the ratio of medians on a loaded machine.
            entry["cpu_efficiency_paired"] = _round(median(
                ratio(limit_runs[r["run"]].get("cpu_us_per_req"), r.get("cpu_us_per_req"))
                for r in entry["runs"] if r["run"] in limit_runs))
    limit_ir = results.get("limit", {}).get("instructions", {}).get("instructions_per_req")
    for entry in results.values():
        ir = entry.get("instructions", {}).get("instructions_per_req")
        if ir and limit_ir:
            entry["instructions"]["ratio_to_limit"] = _round(ratio(ir, limit_ir))
    doc["targets"] = {t.name: results[t.name] for t in targets}
    doc["wall_s"] = round(time.monotonic() - t_start, 1)
    return doc


def _round(v: float | None) -> float | None:
    return round(v, 3) if v is not None else None
