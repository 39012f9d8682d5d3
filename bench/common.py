"""Shared pieces: settings, tools, pinning, per-process CPU and memory, wrk, processes we start.

Measuring on 2 cores (docs: /work/shared/DESIGN.md, "Measuring speed on 2 cores"): the proxy under
test runs on CPU 0, wrk and the backend on CPU 1. The primary figure is the proxy's own CPU time
per request: utime+stime of all its processes over the run, divided by the requests wrk completed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
PROXY_CPU = 0  # the proxy under test
LOAD_CPU = 1  # wrk and the backend
BENCH_HOST = "bench.example.com"
BACKEND_MARK = "X-Bench-Backend"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Settings:
    quick: bool
    runs: int
    duration_s: float  # one wrk measurement
    warmup_s: float
    quiet_wait_s: float  # before a measurement, wait up to this long for other load to stop
    connections: int = 50
    threads: int = 1
    targets: tuple[str, ...] = ()  # dataplane / waf: only these targets (empty: all)
    repeat_noisy: bool = True  # full mode: repeat a run other load disturbed (measure_quietest)

    @classmethod
    def make(cls, quick: bool, runs: int | None) -> Settings:
        if quick:
            return cls(True, max(1, runs or 1), 1.0, 0.3, 0.0)
        return cls(False, max(1, runs or 3), 10.0, 2.0, 90.0)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def scratch_dir(prefix: str) -> Path:
    """A temp dir nginx workers (``nobody`` when we are root) can traverse."""
    path = Path(tempfile.mkdtemp(prefix=f"wardgate-bench-{prefix}-"))
    path.chmod(0o755)
    return path


def nginx_test(conf: Path, prefix: Path, timeout_s: float = 600) -> float:
    """Seconds `nginx -t` takes to load `conf` with nginx prefix `prefix`; raises if it fails."""
    return nginx_test_times(conf, prefix, timeout_s)[0]


def nginx_test_times(conf: Path, prefix: Path, timeout_s: float = 600) -> tuple[float, float]:
    """(wall, CPU) seconds of one `nginx -t`. The CPU time (user + system of the nginx process)
    hardly changes when other processes share the machine; the wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(["nginx", "-t", "-q", "-p", f"{prefix}/", "-c", str(conf)],
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"nginx -t failed: {proc.stderr.strip()[:500]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if cond():
                return True
        time.sleep(interval_s)
    return False


# --- tools ------------------------------------------------------------------------------------

def _deb_installed(pkg: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True,
                          timeout=30, check=False)
    return "install ok installed" in proc.stdout


def _stop_system_services(names: Iterable[str]) -> None:
    """Debian's postinst may start the packaged service under systemd: we run our own instances."""
    if shutil.which("systemctl") is None or not Path("/run/systemd/system").is_dir():
        return
    for name in names:
        active = subprocess.run(["systemctl", "is-active", "-q", name], timeout=30, check=False)
        if active.returncode == 0:
            log(f"stopping the system {name} service started by its package")
            subprocess.run(["systemctl", "disable", "--now", name], timeout=60, check=False,
                           capture_output=True)


def ensure_debs(packages: Iterable[str]) -> dict[str, str | None]:
    """Install missing Debian packages (idempotent). Returns package -> error message or None."""
    wanted = list(packages)
    missing = [p for p in wanted if not _deb_installed(p)]
    result: dict[str, str | None] = dict.fromkeys(wanted)
    if not missing:
        return result
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return {p: ("not installed (need root and apt-get)" if p in missing else None) for p in wanted}
    log(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    if proc.returncode != 0:  # a stale package list: refresh once and try again
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600, env=env, check=False)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    _stop_system_services(p for p in missing if p in ("haproxy", "caddy", "nginx"))
    for p in missing:
        if not _deb_installed(p):
            result[p] = f"apt-get install {p} failed: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return result


def ensure_matplotlib() -> str | None:
    """Import matplotlib, installing it with pip when missing. Returns an error or None."""
    try:
        import matplotlib
        return None
    except ImportError:
        pass
    log("installing matplotlib with pip (only the bench plots need it)")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "matplotlib"], capture_output=True, text=True, timeout=600, check=False)
    try:
        import matplotlib  # noqa: F401
        return None
    except ImportError:
        return f"matplotlib unavailable: {(proc.stderr or proc.stdout).strip()[-300:]}"


def _version(cmd: list[str], pattern: str) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(pattern, proc.stdout + proc.stderr)
    return m.group(1) if m else None


def machine_info() -> dict[str, Any]:
    model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                                  timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    try:
        import wardgate
        wg_version: str | None = wardgate.__version__
    except ImportError:
        wg_version = None
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_mb": mem_kb // 1024 if mem_kb else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _version(["nginx", "-v"], r"nginx/(\S+)"),
        "haproxy": _version(["haproxy", "-v"], r"HA-?Proxy version (\S+)"),
        "caddy": _version(["caddy", "version"], r"v?(\d+\.\d+\.\d+\S*)"),
        "traefik": _version([str(Path(sys.executable).parent / "traefik"), "version"], r"Version:\s+(\S+)"),
        "wrk": _version(["wrk", "-v"], r"wrk (\S+(?: \S+)?) \["),
        "wardgate_version": wg_version,
        "wardgate_commit": git("rev-parse", "HEAD"),
        "wardgate_src_dirty": bool(dirty) if dirty is not None else None,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


# --- processes -------------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data[data.rfind(")") + 2:].split()


def cpu_ticks(pid: int) -> int:
    """utime+stime of the process (all its threads), in clock ticks; 0 if it is gone."""
    f = _stat_fields(pid)
    return int(f[11]) + int(f[12]) if f and len(f) > 12 else 0


def cpu_ns(pid: int) -> int:
    """Time on CPU of all the process's threads from schedstat (ns): a finer cross-check."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total


def children(pid: int) -> set[int]:
    out: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError):
            out |= {int(p) for p in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()}
    return out


def tree(pid: int | None) -> set[int]:
    """The process and all its descendants."""
    if pid is None:
        return set()
    seen: set[int] = set()
    todo = [pid]
    while todo and len(seen) < 1000:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(children(p))
    return seen


def _status_kb(pid: int, field: str) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kb(pid: int) -> int:
    return _status_kb(pid, "VmRSS")


def pss_kb(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def memory(pids: Iterable[int]) -> dict[str, Any]:
    pids = sorted(pids)
    return {"processes": len(pids), "rss_mb": round(sum(rss_kb(p) for p in pids) / 1024, 1),
            "pss_mb": round(sum(pss_kb(p) for p in pids) / 1024, 1),
            "per_process_rss_mb": [round(rss_kb(p) / 1024, 1) for p in pids]}


def pin(pids: Iterable[int], cpu: int) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


def affinity(pids: Iterable[int]) -> list[list[int]]:
    out = []
    for pid in sorted(pids):
        with contextlib.suppress(OSError):
            out.append(sorted(os.sched_getaffinity(pid)))
    return out


def per_cpu_busy() -> dict[int, tuple[int, int]]:
    """cpu -> (busy ticks, total ticks) from /proc/stat."""
    out: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        m = re.match(r"^cpu(\d+) (.*)$", line)
        if m:
            vals = [int(v) for v in m.group(2).split()]
            idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
            total = sum(vals[:8])
            out[int(m.group(1))] = (total - idle, total)
    return out


class Proc:
    """A process we started: its own session, its output in a log file, stopped by its pid only."""

    def __init__(self, name: str, cmd: list[str], logfile: Path, cpu: int | None = None,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.logfile = logfile
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]  # taskset execs: the pid stays the same
        self._log = logfile.open("wb")
        self.popen = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True, env=env, cwd=cwd)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(5)
        # children left in our session (e.g. nginx workers of a master that was killed)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, 0)
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()


# --- HTTP ------------------------------------------------------------------------------------

def probe(port: int, host: str, path: str = "/", address: str = "127.0.0.1",
          timeout_s: float = 3.0) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection(address, port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]  # as received, duplicates kept, names lower-cased
    body: str

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]


def request(port: int, host: str, method: str = "GET", path: str = "/",
            headers: Iterable[tuple[str, str]] = (), body: bytes | None = None,
            address: str = "127.0.0.1", timeout_s: float = 5.0) -> Answer:
    """One request on a fresh connection; `headers` may repeat a name (sent as separate lines)."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout_s)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return Answer(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data.decode(errors="replace"))
    finally:
        conn.close()


def reaches_backend(port: int, host: str, path: str = "/") -> bool:
    status, headers = probe(port, host, path)
    return status == 200 and BACKEND_MARK.lower() in headers


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.match(r"^([\d.]+)(us|ms|s|m)$", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"requests": None, "duration_s": None, "rps": None, "p50_ms": None,
                           "p75_ms": None, "p90_ms": None, "p99_ms": None, "socket_errors": {},
                           "non_2xx": 0}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if m:
        out["requests"] = int(m.group(1))
        out["duration_s"] = _ms(m.group(2) + m.group(3)) / 1000.0
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+(?:us|ms|s|m))\s*$", text, re.M)
        if m:
            out[f"p{pct}_ms"] = round(_ms(m.group(1)), 4)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()),
                                        strict=True))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non_2xx"] = int(m.group(1))
    return out


def run_wrk(port: int, host: str, path: str, duration_s: float, settings: Settings,
            address: str = "127.0.0.1", script: Path | None = None, scheme: str = "http") -> dict[str, Any]:
    """wrk against one URL; `script` is a wrk Lua file (e.g. setting a POST body)."""
    cmd = ["taskset", "-c", str(LOAD_CPU), "wrk", f"-t{settings.threads}", f"-c{settings.connections}",
           f"-d{max(1, round(duration_s))}s", "--latency", "--timeout", "5s", "-H", f"Host: {host}",
           *(["-s", str(script)] if script is not None else []), f"{scheme}://{address}:{port}{path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    res = parse_wrk(proc.stdout)
    if res["requests"] is None:
        raise RuntimeError(f"cannot parse wrk output: {proc.stdout!r}")
    return res


QUIET_BUSY = 0.10  # machine-wide CPU share used by others below which a measurement may start


def machine_busy(sample_s: float = 0.5) -> float:
    """Share of all CPUs busy over a short sample (our idle proxies contribute nothing)."""
    a = per_cpu_busy()
    time.sleep(sample_s)
    b = per_cpu_busy()
    busy = sum(b[c][0] - a[c][0] for c in b if c in a)
    total = sum(b[c][1] - a[c][1] for c in b if c in a)
    return busy / total if total else 0.0


def wait_quiet(max_wait_s: float) -> tuple[float, float]:
    """Wait (bounded) until other users of the machine leave it mostly idle.
    Returns (seconds waited, busy share seen last)."""
    t0 = time.monotonic()
    busy = machine_busy()
    while busy > QUIET_BUSY and time.monotonic() - t0 < max_wait_s:
        time.sleep(1.0)
        busy = machine_busy()
    return time.monotonic() - t0, busy


def measure(pids: Callable[[], set[int]], port: int, host: str, path: str, settings: Settings,
            duration_s: float | None = None, backend_pids: set[int] | None = None,
            script: Path | None = None, scheme: str = "http") -> dict[str, Any]:
    """One wrk run against a pinned proxy; its CPU time per request from /proc before/after."""
    waited, busy_before = wait_quiet(settings.quiet_wait_s if duration_s is None else 0.0)
    before_pids = pids()
    backend_ticks0 = {p: cpu_ticks(p) for p in backend_pids or ()}
    ticks0 = {p: cpu_ticks(p) for p in before_pids}
    ns0 = {p: cpu_ns(p) for p in before_pids}
    busy0 = per_cpu_busy()
    res = run_wrk(port, host, path, duration_s or settings.duration_s, settings, script=script, scheme=scheme)
    busy1 = per_cpu_busy()
    after_pids = pids()
    # A process that appeared mid-run started from zero; one that vanished took its time with it
    # (reported, so a run with a respawned worker can be spotted).
    ticks = sum(cpu_ticks(p) - ticks0.get(p, 0) for p in after_pids)
    ns = sum(cpu_ns(p) - ns0.get(p, 0) for p in after_pids)
    n = res["requests"] or 0
    if backend_pids and n:
        bt = sum(cpu_ticks(p) - t for p, t in backend_ticks0.items())
        res["backend_cpu_us_per_req"] = round(bt / CLK_TCK * 1e6 / n, 3)
    res["proxy_processes"] = len(after_pids)
    res["proxy_pids_changed"] = before_pids != after_pids
    res["proxy_cpu_s"] = round(ticks / CLK_TCK, 4)
    res["cpu_us_per_req"] = round(ticks / CLK_TCK * 1e6 / n, 3) if n else None
    res["cpu_us_per_req_schedstat"] = round(ns / 1000 / n, 3) if n else None
    cpu_util: dict[str, float] = {}
    for cpu, (b1, t1) in busy1.items():
        b0, t0 = busy0.get(cpu, (b1, t1))
        if t1 > t0:
            cpu_util[f"cpu{cpu}"] = round((b1 - b0) / (t1 - t0), 3)
    res["cpu_busy"] = cpu_util
    res["machine_busy_before"] = round(busy_before, 3)
    res["waited_for_quiet_s"] = round(waited, 1)
    dur = res["duration_s"] or 0
    proxy_share = (ticks / CLK_TCK) / dur if dur else None
    if proxy_share is not None and f"cpu{PROXY_CPU}" in cpu_util:
        # What else ran on the proxy's CPU (other users of the machine): a noise indicator.
        res["proxy_cpu_other_busy"] = round(max(0.0, cpu_util[f"cpu{PROXY_CPU}"] - proxy_share), 3)
    return res


NOISY = 0.10  # share of CPU 0 used by other processes during a run above which a full-mode run is repeated
NOISY_RETRIES = 2


def measure_quietest(pids: Callable[[], set[int]], port: int, host: str, path: str, settings: Settings,
                     backend_pids: set[int] | None = None, script: Path | None = None,
                     scheme: str = "http") -> dict[str, Any]:
    """measure(); in full mode, a run during which other processes used more than NOISY of CPU 0 is
    repeated (at most NOISY_RETRIES times) and the quietest attempt kept; the others' noise is recorded."""
    attempts: list[dict[str, Any]] = []
    for _ in range(1 + NOISY_RETRIES if settings.repeat_noisy and not settings.quick else 1):
        res = measure(pids, port, host, path, settings, backend_pids=backend_pids, script=script, scheme=scheme)
        attempts.append(res)
        if (res.get("proxy_cpu_other_busy") or 0.0) <= NOISY:
            break
    best = min(attempts, key=lambda r: r.get("proxy_cpu_other_busy") or 0.0)
    best["noisy_attempts_discarded"] = [r.get("proxy_cpu_other_busy") for r in attempts if r is not best]
    return best


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure over the runs."""
    keys = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "cpu_us_per_req_schedstat")
    out: dict[str, Any] = {k: median(r.get(k) for r in runs) for k in keys}
    out["requests_total"] = sum(r.get("requests") or 0 for r in runs)
    out["non_2xx_total"] = sum(r.get("non_2xx") or 0 for r in runs)
    out["socket_errors_total"] = sum(sum(r.get("socket_errors", {}).values()) for r in runs)
    out["runs"] = len(runs)
    for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req"):
        if out[k] is not None:
            out[k] = round(out[k], 3)
        vals = [r[k] for r in runs if r.get(k) is not None]
        out[f"{k}_range"] = [round(min(vals), 3), round(max(vals), 3)] if vals else None
    return out


# --- the backend ----------------------------------------------------------------------------

def nginx_prelude(workdir: Path) -> str:
    for d in ("logs", "tmp"):
        (workdir / d).mkdir(parents=True, exist_ok=True)
        (workdir / d).chmod(0o755)
    return (f'pid "{workdir}/nginx.pid";\nerror_log "{workdir}/logs/error.log" warn;\n'
            "events { worker_connections 4096; }\n")


def nginx_temp_paths(workdir: Path) -> str:
    return "".join(f'    {kind}_temp_path "{workdir}/tmp/{kind}";\n'
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


class NginxProc(Proc):
    """A hand-written nginx config run in the foreground."""

    def __init__(self, name: str, workdir: Path, conf: str, cpu: int) -> None:
        conf_path = workdir / "nginx.conf"
        conf_path.write_text(conf)
        test = subprocess.run(["nginx", "-t", "-q", "-p", f"{workdir}/", "-c", str(conf_path)],
                              capture_output=True, text=True, timeout=60, check=False)
        if test.returncode != 0:
            raise RuntimeError(f"{name}: nginx -t failed: {test.stderr.strip()}")
        super().__init__(name, ["nginx", "-p", f"{workdir}/", "-c", str(conf_path), "-g", "daemon off;"],
                         workdir / "nginx.out", cpu=cpu)

    def stop(self, sig: int = signal.SIGQUIT, timeout_s: float = 15.0) -> None:
        super().stop(sig, timeout_s)


NGINX_MODULES = Path("/usr/lib/nginx/modules")
LUA_MODULES = ("ndk_http_module.so", "ngx_http_lua_module.so")
# The backend's check-only location (never measured): what the backend received, and a response
# header that a proxy's `set` must replace. Lines "name=value", values of repeated headers joined by "|".
ECHO_PATH = "/bench-echo"
ECHO_HEADERS = ("x-bot-class", "x-bench-dup")
_ECHO_LUA = """\
        location = %s {
            default_type text/plain;
            add_header %s static;
            add_header X-Robots-Tag backend;
            content_by_lua_block {
                local h = ngx.req.get_headers()
                for _, name in ipairs({%s}) do
                    local v = h[name]
                    if type(v) == "table" then v = table.concat(v, "|") end
                    ngx.say(name, "=", v or "")
                end
            }
        }
"""


def has_lua() -> bool:
    return all((NGINX_MODULES / m).exists() for m in LUA_MODULES)


def backend_saw(body: str) -> dict[str, str]:
    """Parse the echo location's answer."""
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def start_backend(root: Path, cpu: int = LOAD_CPU) -> tuple[NginxProc, int]:
    """The fast backend: one nginx worker answering 200 with a small static body, on CPU 1.
    With nginx's Lua module, also ECHO_PATH, used only by the policy checks."""
    port = free_port()
    workdir = root / "backend"
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    lua = has_lua()
    modules = "".join(f"load_module {NGINX_MODULES / m};\n" for m in LUA_MODULES) if lua else ""
    echo = _ECHO_LUA % (ECHO_PATH, BACKEND_MARK, ", ".join(f'"{h}"' for h in ECHO_HEADERS)) if lua else ""
    conf = modules + nginx_prelude(workdir) + "worker_processes 1;\nhttp {\n" + nginx_temp_paths(workdir) + f"""\
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            add_header {BACKEND_MARK} static;
            default_type text/plain;
            return 200 "ok\\n";
        }}
{echo}    }}
}}
"""
    proc = NginxProc("backend", workdir, conf, cpu)
    if not wait_until(lambda: probe(port, "backend")[0] == 200, 15):
        proc.stop()
        raise RuntimeError(f"backend did not start: {proc.output()}")
    return proc, port


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


@contextlib.contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[Path]:
    path = scratch_dir(prefix)
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
