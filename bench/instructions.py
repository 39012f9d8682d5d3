"""User-space instructions per request (valgrind callgrind): a noise-free companion to CPU µs/req.

On a shared 2-core VM, CPU time per request moves by ±15% between runs; the instruction count of
the same config and request does not. It is what a config change costs in nginx, its modules and
the libraries they call, but not the kernel (sockets), which is most of the CPU time of a proxy, so
it explains differences between targets and is no substitute for the timed figures.

Method: the target's own nginx.conf, with its listen port moved and `master_process off` (one
process, so callgrind sees the worker), runs under callgrind with instrumentation off; after
`warmup` keep-alive requests instrumentation is switched on for `n` more on the same connection.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import BENCH_HOST, free_port, log

_LISTEN = re.compile(r"listen 127\.0\.0\.1:\d+")


def _requests(port: int, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(n):
            conn.request("GET", "/", headers={"Host": BENCH_HOST, "User-Agent": "bench", "Accept": "*/*"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"instructions: GET / answered {resp.status}")
    finally:
        conn.close()


# Where a wardgate config spends more than the limit: functions whose inclusive count is one
# feature's cost (only exported symbols have names; nginx's static functions don't).
CENTRES = {
    "RAND_bytes": "request id",  # nginx's $request_id (before wardgate's module)
    "wg_request_id_variable": "request id",
    "wg_duplicate_handler": "duplicate headers (module)",
    "pcre2_match_8": "regexes",
    "ngx_http_lua_rewrite_handler": "Lua checks",
    "ngx_escape_json": "JSON log escaping",  # nginx's log_format escape=json (before the module's line)
    "wg_log_json_variable": "decision log line (module)",
    "wg_checks_handler": "Host and path checks (module)",
    "ngx_http_map_find": "maps",
    "ngx_http_parse_header_line": "header parsing",
}


def _centres(out: Path, n: int) -> dict[str, int]:
    """Instructions per request spent in (and under) each of CENTRES."""
    proc = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    found: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*:(\w+) \[", line)
        if m and m.group(2) in CENTRES and CENTRES[m.group(2)] not in found:
            found[CENTRES[m.group(2)]] = round(int(m.group(1).replace(",", "")) / n)
    return found


def measure(name: str, conf: str, root: Path, n: int, warmup: int = 200) -> dict[str, Any]:
    """Instructions per request of `conf` (an nginx.conf serving BENCH_HOST on 127.0.0.1)."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed")
    workdir = root / f"instructions-{name}"
    for sub in ("run", "logs", "tmp"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = _LISTEN.sub(f"listen 127.0.0.1:{port}", conf)
    conf = re.sub(r"^worker_processes [^;]+;", "worker_processes 1;\nmaster_process off;\ndaemon off;", conf,
                  count=1, flags=re.M)
    # The same relative paths as the target (pid, logs, temp files) land in this workdir.
    conf = re.sub(r'^pid "?[^";]+"?;', 'pid "run/nginx.pid";', conf, count=1, flags=re.M)
    (workdir / "nginx.conf").write_text(conf)
    out = workdir / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           "nginx", "-p", f"{workdir}/", "-c", str(workdir / "nginx.conf")]
    with open(workdir / "valgrind.log", "w") as errlog:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errlog)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _requests(port, 1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"instructions: nginx under valgrind did not start: "
                                       f"{(workdir / 'valgrind.log').read_text()[-500:]}") from None
                time.sleep(0.2)
        _requests(port, warmup)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True, timeout=60, check=True)
        _requests(port, n)
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True, timeout=60, check=True)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    total = 0
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            total = max(total, int(line.split()[1]))
    if not total:
        raise RuntimeError(f"instructions: callgrind counted nothing for {name}")
    res = {"requests": n, "instructions_per_req": round(total / n), "where": _centres(out, n)}
    log(f"instructions {name}: {res['instructions_per_req']} per request")
    return res
