"""Suite `waf`: ModSecurity v3 + CRS 3.3.4 at paranoia level 1, three benign request kinds.

Targets, each one nginx worker pinned to CPU 0 with wrk and the backend on CPU 1 (as in dataplane):
- limit: the hand-written minimal nginx proxy, no WAF (the limit);
- modsec: the limit plus ModSecurity + CRS written by hand (rules loaded once at http level,
  `modsecurity on`, no audit log): what a careful operator would run;
- waf: wardgate with a SecurityPolicy `waf: {mode: Block, paranoiaLevel: 1}` on the route.

Every target is checked first: each request kind reaches the backend with 200; on modsec and waf
two attacks (XSS, SQL injection in a query argument) get 403, so the WAF really inspects.
Host is a hostname (a numeric Host adds CRS anomaly score: rule 920350).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

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
    request,
    run_wrk,
    scratch,
    start_backend,
    summarize,
    tree,
)
from bench.targets import LimitNginx, ModsecNginx, Target, WardgateWaf

JSON_BODY = json.dumps({"order": {"sku": "shoe-42", "quantity": 2, "gift": False},
                        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
                        "note": "leave at the door"}, separators=(",", ":"))


class Kind:
    def __init__(self, name: str, what: str, path: str, method: str = "GET", body: str | None = None) -> None:
        self.name, self.what, self.path, self.method, self.body = name, what, path, method, body

    def wrk_script(self, workdir: Path) -> Path | None:
        """A wrk Lua script setting the method and body (None for a plain GET)."""
        if self.body is None:
            return None
        path = workdir / f"{self.name}.lua"
        # json.dumps gives a double-quoted string with only \" and \\ escapes: a valid Lua literal
        path.write_text(f'wrk.method = "{self.method}"\nwrk.body = {json.dumps(self.body)}\n'
                        'wrk.headers["Content-Type"] = "application/json"\n')
        return path

    def probe(self, port: int) -> tuple[int, bool]:
        headers = [("Content-Type", "application/json")] if self.body is not None else []
        a = request(port, BENCH_HOST, self.method, self.path, headers=headers,
                    body=self.body.encode() if self.body is not None else None)
        return a.status, bool(a.header(BACKEND_MARK))


KINDS = [
    Kind("get", "benign GET /", "/"),
    Kind("get_4args", "benign GET with 4 query args", "/search?q=running+shoes&page=2&sort=price&lang=en"),
    Kind("post_json", f"JSON POST ({len(JSON_BODY)} bytes, Content-Type: application/json)", "/api/orders",
         "POST", JSON_BODY),
]
ATTACKS = {"xss": "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
           "sqli": "/search?id=1%27%20OR%20%271%27%3D%271%27--"}


def check_waf(t: Target, waf: bool) -> dict[str, int]:
    """Benign kinds reach the backend; with a WAF the attacks get 403. Returns the attacks' statuses."""
    for kind in KINDS:
        status, from_backend = kind.probe(t.port)
        if status != 200 or not from_backend:
            raise RuntimeError(f"{t.name}: benign {kind.name} ({kind.method} {kind.path}) got {status}"
                               f"{'' if from_backend else ' not from the backend'}")
    out = {name: request(t.port, BENCH_HOST, path=path).status for name, path in ATTACKS.items()}
    if waf and any(s != 403 for s in out.values()):
        raise RuntimeError(f"{t.name}: attacks not blocked: {out}")
    return out


def run(settings: Settings) -> dict[str, Any]:
    t_start = time.monotonic()
    tools = ensure_debs(["wrk", "libnginx-mod-http-modsecurity", "modsecurity-crs"])
    problems = {p: e for p, e in tools.items() if e}
    if problems:
        raise RuntimeError(f"missing: {problems}")
    doc: dict[str, Any] = {
        "suite": "waf",
        "mode": "quick" if settings.quick else "full",
        "settings": {"runs": settings.runs, "duration_s": settings.duration_s, "warmup_s": settings.warmup_s,
                     "wrk": f"-t{settings.threads} -c{settings.connections} --latency, keep-alive, "
                            f"Host: {BENCH_HOST}",
                     "pinning": "proxy on CPU 0 (taskset / sched_setaffinity), wrk and backend on CPU 1",
                     "primary": "cpu_us_per_req = (utime+stime of all proxy processes) / requests",
                     "crs": "OWASP CRS 3.3.4 (Debian), paranoia level 1, anomaly threshold 5, Block"},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "targets": {},
        "kinds": {},
    }
    targets: list[Target] = [LimitNginx(), ModsecNginx(), WardgateWaf()]
    info: dict[str, dict[str, Any]] = {}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {(k.name, t.name): [] for k in KINDS for t in targets}
    with scratch("waf") as root:
        backend, backend_port = start_backend(root)
        started: list[Target] = []
        try:
            doc["backend"] = {"what": "nginx, 1 worker, return 200 'ok\\n', access_log off",
                              "cpu": LOAD_CPU, "affinity": affinity(tree(backend.pid))}
            for t in targets:
                entry: dict[str, Any] = {"label": t.label}
                info[t.name] = entry
                try:
                    t0 = time.monotonic()
                    t.start(root, backend_port)
                    started.append(t)
                    t.check()
                    entry["start_s"] = round(time.monotonic() - t0, 2)
                    entry["attacks"] = check_waf(t, waf=t.name != "limit")
                    entry.update(t.describe())
                except (RuntimeError, OSError) as exc:
                    entry["error"] = f"{type(exc).__name__}: {exc}"
                    log(f"waf: {t.name} unavailable: {exc}")
            ready = [t for t in started if "error" not in info[t.name]]
            scripts = {k.name: k.wrk_script(root) for k in KINDS}
            backend_pids = tree(backend.pid)
            for k in KINDS if not settings.quick else KINDS[:1]:  # warm up (quick: one kind)
                for t in ready:
                    run_wrk(t.port, BENCH_HOST, k.path, settings.warmup_s, settings, script=scripts[k.name])
            for r in range(settings.runs):
                for k in KINDS:
                    order = ready[r % len(ready):] + ready[:r % len(ready)] if ready else []
                    for t in order:
                        res = measure_quietest(t.pids, t.port, BENCH_HOST, k.path, settings, backend_pids=backend_pids,
                                               script=scripts[k.name])
                        res["run"] = r
                        runs[(k.name, t.name)].append(res)
                        log(f"waf run {r + 1}/{settings.runs} {k.name} {t.name}: {res['rps']:.0f} req/s, "
                            f"p99 {res['p99_ms']} ms, {res['cpu_us_per_req']} µs/req")
        finally:
            for t in started:
                t.stop()
            backend.stop()
    doc["targets"] = info
    for k in KINDS:
        per: dict[str, dict[str, Any]] = {}
        for t in targets:
            rr = runs[(k.name, t.name)]
            e: dict[str, Any] = {"runs": rr}
            if rr:
                e["median"] = summarize(rr)
                if e["median"]["non_2xx_total"]:
                    e["warning"] = "non-2xx responses during the runs: the figures are not comparable"
            per[t.name] = e
        for base, suffix in (("limit", ""), ("modsec", "_vs_modsec")):
            ref = per.get(base, {}).get("median")
            for e in per.values():
                med = e.get("median")
                if med and ref:
                    e["rps_ratio" + suffix] = _round(ratio(med["rps"], ref["rps"]))
                    e["cpu_efficiency" + suffix] = _round(ratio(ref["cpu_us_per_req"], med["cpu_us_per_req"]))
                    e["p99_ratio" + suffix] = _round(ratio(med["p99_ms"], ref["p99_ms"]))
        doc["kinds"][k.name] = {"what": k.what, "request": f"{k.method} {k.path}", "targets": per}
    doc["wall_s"] = round(time.monotonic() - t_start, 1)
    return doc


def _round(v: float | None) -> float | None:
    return round(v, 3) if v is not None else None
