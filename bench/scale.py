"""Suite `scale`: wardgate with 10, 1,000 and 10,000 HTTPRoutes (distinct hosts and paths).

Each size runs in its own Python process (`python -m bench.scale --worker ...`) so the controller's
memory figures belong to that size alone. Per size:
- the pipeline split of each reconcile: load (read + YAML), parse (models), translate, render;
- apply (write + `nginx -t` + start or graceful reload) from NginxInstance.apply, and a separate
  `nginx -t` of the serving config, so the reload part can be told apart;
- controller memory (VmRSS and peak ru_maxrss) and nginx memory (RSS and PSS of master + workers,
  after start and after reloads: the master grows after a reload);
- the data plane on the LAST route (pinned like the dataplane suite), compared with the 10-route case.
Then bench/overhead.py: what a Gateway-wide SecurityPolicy adds to nginx.conf and `nginx -t` at
2,000 and 10,000 hosts (headline `scale policy overhead`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench import manifests, overhead
from bench.common import (
    PROXY_CPU,
    REPO,
    Settings,
    affinity,
    children,
    ensure_debs,
    free_port,
    log,
    measure,
    median,
    memory,
    nginx_test,
    pin,
    ratio,
    reaches_backend,
    rss_kb,
    scratch,
    scratch_dir,
    start_backend,
    summarize,
    tree,
    wait_until,
)

SIZES = (10, 1_000, 10_000)
QUICK_SIZES = (10, 1_000)
# A whole size (all its reconciles and wrk runs) must finish within this; 10k routes is slow.
WORKER_TIMEOUT_S = 3600
# Stop repeating reloads for one size once this much time went into them (runs done are recorded).
RELOAD_BUDGET_S = 900


class Timings:
    """Wraps the pipeline functions the Runner calls, to split each reconcile into its stages."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.applies: list[dict[str, Any]] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.current[name] = self.current.get(name, 0.0) + time.perf_counter() - t0
        return timed

    def take(self) -> dict[str, float]:
        out, self.current = self.current, {}
        return {k: round(v, 4) for k, v in out.items()}


@contextlib.contextmanager
def instrumented(timings: Timings) -> Iterator[None]:
    """Time wardgate.runner's stages without touching its code: wrap the names it calls."""
    import wardgate.runner as runner_mod

    saved: dict[str, Any] = {}
    # The runner parses with parse_keeping (invalid objects keep their last good version).
    for name, label in (("parse_keeping", "parse"), ("translate", "translate"), ("render", "render")):
        if hasattr(runner_mod, name):
            saved[name] = getattr(runner_mod, name)
            setattr(runner_mod, name, timings.wrap(label, saved[name]))
    base = runner_mod.NginxInstance

    class TimedInstance(base):  # type: ignore[misc, valid-type]
        def apply(self, files: Any) -> Any:
            res = super().apply(files)
            timings.applies.append({"changed": res.changed, "ok": res.ok, "duration_s": round(res.duration_s, 4)})
            return res

    saved["NginxInstance"] = base
    runner_mod.NginxInstance = TimedInstance
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(runner_mod, name, fn)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _nginx_t(conf_dir: Path, workdir: Path) -> float:
    return nginx_test(conf_dir / "nginx.conf", workdir, 300)


def _quiesce(master: int, workers: int, timeout_s: float = 15.0) -> bool:
    """Wait until the old workers of a reload are gone (only the new generation remains)."""
    return wait_until(lambda: len(children(master)) <= workers, timeout_s, 0.05)


def worker(n: int, backend_port: int, settings: Settings, out_file: Path) -> None:
    """Measure one size in this process; write the result as JSON to out_file."""
    from wardgate.runner import Runner, RunnerOptions
    from wardgate.sources import load_paths

    t_size = time.monotonic()
    root = scratch_dir(f"scale{n}")
    result: dict[str, Any] = {"routes": n}
    runner: Any = None
    try:
        files = root / "manifests"
        files.mkdir()
        port = free_port()
        (files / "base.yaml").write_text(manifests.base(port, backend_port))
        # route r0 lives in its own file: the reload measurements edit it
        (files / "first.yaml").write_text(manifests.numbered_route(0, ("X-Bench-Reload", "0")))
        (files / "routes.yaml").write_text("---\n".join(manifests.numbered_route(i) for i in range(1, n)))
        result["manifest_mb"] = round(sum(f.stat().st_size for f in files.iterdir()) / 1e6, 2)

        timings = Timings()
        reconciles: list[dict[str, Any]] = []
        with instrumented(timings):
            def loader() -> Any:
                return timings.wrap("load", load_paths)([files])

            runner = Runner([files], root / "state", RunnerOptions(listen_host="127.0.0.1", port_offset=0,
                                                                    worker_processes=1), loader=loader)

            def reconcile(kind: str) -> dict[str, Any]:
                timings.applies.clear()
                rep = runner.reconcile()
                if not rep.ok and kind == "start":
                    raise RuntimeError(f"reconcile failed: {rep.errors[:3]}")
                rec = {"kind": kind, "ok": rep.ok, "total_s": round(rep.duration_s, 4), **timings.take()}
                if not rep.ok:  # e.g. a reload not confirmed in time: wardgate kept the old config
                    rec["errors"] = [e[:300] for e in rep.errors[:3]]
                rec["apply_s"] = timings.applies[-1]["duration_s"] if timings.applies else None
                rec["changed"] = bool(rep.changed)
                staged = sum(rec.get(k) or 0 for k in ("load", "parse", "translate", "render", "apply_s"))
                rec["other_s"] = round(rec["total_s"] - staged, 4)  # generations, status file, ...
                reconciles.append(rec)
                log(f"scale {n}: {kind} reconcile {rec}")
                return rec

            old_mask = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {PROXY_CPU})  # nginx inherits the mask of the thread starting it
            try:
                reconcile("start")
            finally:
                os.sched_setaffinity(0, old_mask)
            inst = runner.instances[f"default/{manifests.GATEWAY}"]
            pin(tree(inst.pid), PROXY_CPU)
            result["controller_rss_mb_after_start"] = round(rss_kb(os.getpid()) / 1024, 1)
            result["nginx_memory_after_start"] = memory(tree(inst.pid))
            conf_dir = inst.current_link.resolve()
            result["nginx_conf_mb"] = round((conf_dir / "nginx.conf").stat().st_size / 1e6, 2)

            last = n - 1
            host, path = f"r{last}.example.com", f"/p{last}"
            if not wait_until(lambda: reaches_backend(port, host, path), 30):
                raise RuntimeError(f"the last route ({host}{path}) does not reach the backend")

            # data plane on the last route
            measure(lambda: tree(inst.pid), port, host, path, settings, duration_s=settings.warmup_s)
            runs = []
            for r in range(settings.runs):
                res = measure(lambda: tree(inst.pid), port, host, path, settings)
                res["run"] = r
                runs.append(res)
                log(f"scale {n}: last route {res['rps']:.0f} req/s p50 {res['p50_ms']} p99 {res['p99_ms']} ms "
                    f"{res['cpu_us_per_req']} µs/req")
            result["dataplane_last_route"] = {"host": host, "path": path, "runs": runs, "median": summarize(runs),
                                              "affinity": affinity(tree(inst.pid))}

            # reloads: edit route r0's response header, reconcile (load..render, nginx -t, reload)
            t_budget = time.monotonic()
            for k in range(1, settings.runs + 1):
                if k > 1 and time.monotonic() - t_budget > RELOAD_BUDGET_S:
                    log(f"scale {n}: reload budget spent after {k - 1} reloads")
                    break
                manifests.write_atomic(files / "first.yaml", manifests.numbered_route(0, ("X-Bench-Reload", str(k))))
                rec = reconcile("reload")
                if rec["ok"] and not rec["changed"]:
                    raise RuntimeError("an edit did not change the nginx config")
                rec["old_workers_gone"] = _quiesce(inst.pid, 1) if inst.pid else False
            result["controller_rss_mb_after_reloads"] = round(rss_kb(os.getpid()) / 1024, 1)
            result["controller_peak_rss_mb"] = round(max(_status_kb("VmHWM"),
                                                         resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024, 1)
            result["nginx_memory_after_reloads"] = memory(tree(inst.pid))
            conf_dir = inst.current_link.resolve()
            result["nginx_t_s"] = round(median(_nginx_t(conf_dir, inst.workdir) for _ in range(settings.runs))
                                        or 0, 4)

        result["reconciles"] = reconciles
        reloads = [r for r in reconciles if r["kind"] == "reload" and r["ok"]]
        failed = [r for r in reconciles if r["kind"] == "reload" and not r["ok"]]
        result["reloads_ok"], result["reloads_failed"] = len(reloads), len(failed)
        if failed:
            result["reload_failures"] = [f.get("errors") for f in failed]
        keys = ("load", "parse", "translate", "render", "apply_s", "other_s", "total_s")
        result["reload_median"] = {k: _r(median(r.get(k) for r in reloads)) for k in keys}
        result["start"] = {k: reconciles[0].get(k) for k in keys}
        apply_med = result["reload_median"]["apply_s"]
        result["reload_median"]["reload_minus_nginx_t_s"] = (
            _r(apply_med - result["nginx_t_s"]) if apply_med is not None else None)
    except Exception as exc:  # report what failed for this size; the suite carries on
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if runner is not None:
            runner.stop()
        import shutil
        shutil.rmtree(root, ignore_errors=True)
    result["wall_s"] = round(time.monotonic() - t_size, 1)
    out_file.write_text(json.dumps(result, indent=1))


def _r(v: float | None) -> float | None:
    return round(v, 4) if v is not None else None


def run(settings: Settings) -> dict[str, Any]:
    t_start = time.monotonic()
    tools = ensure_debs(["wrk"])
    if tools.get("wrk"):
        raise RuntimeError(f"wrk is required: {tools['wrk']}")
    sizes = QUICK_SIZES if settings.quick else SIZES
    doc: dict[str, Any] = {
        "suite": "scale",
        "mode": "quick" if settings.quick else "full",
        "settings": {"runs": settings.runs, "duration_s": settings.duration_s, "sizes": list(sizes),
                     "routes": "HTTPRoute r<i>: host r<i>.example.com, PathPrefix /p<i>, one Service",
                     "pinning": "nginx on CPU 0, wrk and backend on CPU 1; one nginx worker"},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sizes": {},
    }
    with scratch("scale") as root:
        backend, backend_port = start_backend(root)
        try:
            for n in sizes:
                log(f"scale: {n} routes")
                out_file = root / f"size-{n}.json"
                cmd = [sys.executable, "-m", "bench.scale", "--worker", str(n), "--backend-port", str(backend_port),
                       "--runs", str(settings.runs), "--out-file", str(out_file)]
                if settings.quick:
                    cmd.append("--quick")
                try:
                    proc = subprocess.run(cmd, cwd=REPO, timeout=WORKER_TIMEOUT_S, check=False,
                                          stdout=subprocess.DEVNULL, stderr=None)
                    if out_file.exists():
                        doc["sizes"][str(n)] = json.loads(out_file.read_text())
                    else:
                        doc["sizes"][str(n)] = {"routes": n, "error": f"worker exited {proc.returncode}"}
                except subprocess.TimeoutExpired:
                    doc["sizes"][str(n)] = {"routes": n, "error": f"worker timed out after {WORKER_TIMEOUT_S}s"}
        finally:
            backend.stop()
    base = doc["sizes"].get(str(sizes[0]), {}).get("dataplane_last_route", {}).get("median")
    for _n, entry in doc["sizes"].items():
        med = entry.get("dataplane_last_route", {}).get("median")
        if med and base:
            entry["vs_smallest"] = {
                "p50_ratio": _r(ratio(med["p50_ms"], base["p50_ms"])),
                "p99_ratio": _r(ratio(med["p99_ms"], base["p99_ms"])),
                "rps_ratio": _r(ratio(med["rps"], base["rps"])),
                "cpu_efficiency": _r(ratio(base["cpu_us_per_req"], med["cpu_us_per_req"])),
            }
    try:
        doc["policy_overhead"] = overhead.run_isolated(settings.quick, settings.runs)
    except Exception as exc:  # the sizes above still count
        doc["policy_overhead"] = {"error": f"{type(exc).__name__}: {exc}"}
    doc["wall_s"] = round(time.monotonic() - t_start, 1)
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description="one size of the scale suite (internal)")
    ap.add_argument("--worker", type=int, required=True)
    ap.add_argument("--backend-port", type=int, required=True)
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-file", type=Path, required=True)
    a = ap.parse_args()
    worker(a.worker, a.backend_port, Settings.make(a.quick, a.runs), a.out_file)


if __name__ == "__main__":
    main()
