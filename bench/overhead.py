"""What a Gateway-wide SecurityPolicy costs the configuration at scale (part of suite `scale`).

n hosts on one Gateway, each HTTPRoute with two PathPrefix rules, rendered twice: without policy
and with one SecurityPolicy on the Gateway (request and response headers, allowedMethods,
securityTxt, duplicateHeaders KeepFirst, requestLimits). Per case: translate (best of `runs`) and
render (cold, and again with memoized servers), as CPU time of this process; nginx.conf size; `nginx -t`
CPU and wall time (median of `runs`). The ratios (with / without; nginx -t by CPU time, which other
load on the machine hardly moves) are the headline `scale policy overhead`.

Run alone: `python -m bench.overhead [--update-results]` (the latter records it in bench/results).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import manifests
from bench.common import REPO, RESULTS_DIR, log, machine_info, median, nginx_test_times, ratio, scratch

SIZES = (2_000, 10_000)
QUICK_SIZES = (500,)  # the smoke test: it only has to work

GATEWAY_POLICY = f"""\
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: gateway-wide, namespace: default}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: {manifests.GATEWAY}}}]
  requestHeaders:
    set: [{{name: {manifests.BOT_CLASS[0]}, value: {manifests.BOT_CLASS[1]}}}]
  responseHeaders:
    set: [{{name: {manifests.ROBOTS_TAG[0]}, value: "{manifests.ROBOTS_TAG[1]}"}}]
  allowedMethods: [{", ".join(manifests.ALLOWED_METHODS)}]
  securityTxt:
    contact: ["{manifests.SECURITY_CONTACT}"]
    expires: "{manifests.SECURITY_EXPIRES}"
  duplicateHeaders:
    default: KeepFirst
  requestLimits:
    maxBodySize: 1Mi
"""


def _route(i: int) -> str:
    """Route i: host r<i>.example.com, PathPrefix /p<i> and /q<i>, each its own rule."""
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r{i}, namespace: default}}
spec:
  parentRefs: [{{name: {manifests.GATEWAY}}}]
  hostnames: [r{i}.example.com]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /p{i}}}}}]
      backendRefs: [{{name: {manifests.SERVICE}, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /q{i}}}}}]
      backendRefs: [{{name: {manifests.SERVICE}, port: 80}}]
"""


def _nginx_t(root: Path) -> tuple[float, float]:
    for d in ("logs", "run", "tmp"):
        (root / d).mkdir(exist_ok=True)
    return nginx_test_times(root / "nginx.conf", root)


def measure_case(n: int, policy: bool, runs: int, root: Path) -> dict[str, Any]:
    from wardgate.model import parse
    from wardgate.render.nginx import RenderOptions, render
    from wardgate.sources import load_paths
    from wardgate.translate import Options, translate

    files = root / "manifests"
    files.mkdir(parents=True)
    (files / "base.yaml").write_text(manifests.base(8080, 9))
    (files / "routes.yaml").write_text("---\n".join(_route(i) for i in range(n)))
    if policy:
        (files / "policy.yaml").write_text(GATEWAY_POLICY)
    rs = parse(load_paths([files]))
    translate_s, render_s = [], []
    conf: dict[str, str] = {}
    for _ in range(runs):
        # CPU time of this process: the machine is shared, and wall time follows its other load.
        t0 = time.process_time()
        tr = translate(rs, Options(addresses=("127.0.0.1",)))
        t1 = time.process_time()
        (gw,) = tr.gateways
        conf = render(gw, RenderOptions(listen_host="127.0.0.1", worker_processes=1))
        t2 = time.process_time()
        translate_s.append(t1 - t0)
        render_s.append(t2 - t1)
    out = root / "nginx"
    for rel, text in conf.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    nginx_t = [_nginx_t(out) for _ in range(runs)]
    return {"nginx_conf_mb": round(len(conf["nginx.conf"].encode()) / 1e6, 3),
            "nginx_t_s": round(median(w for w, _ in nginx_t) or 0, 3),
            "nginx_t_cpu_s": round(median(c for _, c in nginx_t) or 0, 3),
            "translate_s": round(min(translate_s), 3),
            # The first render is cold; later ones of the same IR reuse memoized servers.
            "render_s": round(render_s[0], 3),
            "render_again_s": round(min(render_s[1:]), 3) if len(render_s) > 1 else None}


def run(quick: bool, runs: int, sizes: tuple[int, ...] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": machine_info().get("wardgate_commit"),
        "policy": "Gateway-wide SecurityPolicy: request/response headers, allowedMethods, securityTxt, "
                  "duplicateHeaders KeepFirst, requestLimits",
        "routes": "HTTPRoute r<i>: host r<i>.example.com, PathPrefix /p<i> and /q<i>",
        "sizes": {}}
    for n in sizes or (QUICK_SIZES if quick else SIZES):
        entry: dict[str, Any] = {}
        try:
            for policy in (False, True):
                with scratch(f"overhead{n}") as root:
                    entry["with_policy" if policy else "without_policy"] = res = measure_case(n, policy, runs, root)
                    log(f"policy overhead {n} hosts, policy={policy}: {res}")
            w, wo = entry["with_policy"], entry["without_policy"]
            entry["config_ratio"] = round(ratio(w["nginx_conf_mb"], wo["nginx_conf_mb"]) or 0, 3)
            entry["nginx_t_ratio"] = round(ratio(w["nginx_t_cpu_s"], wo["nginx_t_cpu_s"]) or 0, 3)
            entry["nginx_t_wall_ratio"] = round(ratio(w["nginx_t_s"], wo["nginx_t_s"]) or 0, 3)
        except Exception as exc:  # the rest of the suite carries on
            entry["error"] = f"{type(exc).__name__}: {exc}"
        doc["sizes"][str(n)] = entry
    return doc


def run_isolated(quick: bool, runs: int) -> dict[str, Any]:
    """run() in a process of its own, so the controller's caches and memory are this suite's alone."""
    with scratch("overhead") as root:
        out = root / "overhead.json"
        cmd = [sys.executable, "-m", "bench.overhead", "--runs", str(runs), "--out-file", str(out)]
        subprocess.run([*cmd, *(["--quick"] if quick else [])], cwd=REPO, timeout=3600, check=False,
                       stdout=subprocess.DEVNULL)
        if not out.exists():
            return {"error": "bench.overhead wrote no result"}
        return dict(json.loads(out.read_text()))


def update_results(doc: dict[str, Any], out: Path = RESULTS_DIR) -> None:
    """Put this measurement into the scale suite of the committed results and write latest.*
    again from them: the other suites' figures stay as they were measured."""
    from bench import report

    latest = json.loads((out / "latest.json").read_text())
    suites = latest["suites"]
    suites.setdefault("scale", {"suite": "scale", "sizes": {}})["policy_overhead"] = doc
    report.write(out, suites, latest["machine"])


def main() -> None:
    ap = argparse.ArgumentParser(description="policy overhead at scale (part of suite scale)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--out-file", type=Path, default=None)
    ap.add_argument("--update-results", action="store_true",
                    help="also record it in bench/results/latest.* (scale suite) without rerunning the others")
    a = ap.parse_args()
    doc = run(a.quick, a.runs, tuple(a.sizes) if a.sizes else None)
    text = json.dumps(doc, indent=1)
    if a.out_file:
        a.out_file.write_text(text)
    else:
        print(text)
    if a.update_results:
        update_results(doc)


if __name__ == "__main__":
    main()
