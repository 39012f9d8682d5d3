"""Suite `reconfig`: `wardgate run` serving many routes, keep-alive load, one route file edited.

Time-to-visible is from the edit (an atomic replace of the route's file) to the first response
carrying the new header value, polled on fresh connections. The load is keep-alive clients that
retry an idempotent request once on a connection the server closed, as browsers and urllib3 do:
"failed" counts what a user would see after that retry, "raw errors" what a client without
retries would have seen.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import manifests
from bench.common import (
    REPO,
    Settings,
    free_port,
    log,
    median,
    probe,
    scratch,
    start_backend,
    wait_until,
)

HEADER = "X-Bench-Version"
CLIENTS = 3
SETTLE_S = 1.0  # between edits: old workers finish, keep-alive connections settle
VISIBLE_TIMEOUT_S = 60.0
CLIENT_MAX_S = 900.0


class RetryClient:
    """Keep-alive GETs; on a closed connection reconnect and retry once."""

    def __init__(self, port: int, host: str, path: str) -> None:
        self.port, self.host, self.path = port, host, path
        self.ok = 0
        self.failed: list[str] = []
        self.raw_errors = 0
        self.versions: dict[str, int] = {}
        self.stop = threading.Event()

    def _once(self, conn: http.client.HTTPConnection) -> tuple[int, str]:
        conn.request("GET", self.path, headers={"Host": self.host})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader(HEADER) or ""

    def _conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def run(self, max_requests: int = 5_000_000, max_seconds: float = CLIENT_MAX_S) -> None:
        conn = self._conn()
        deadline = time.monotonic() + max_seconds
        for _ in range(max_requests):
            if self.stop.is_set() or time.monotonic() > deadline:
                break
            try:
                status, version = self._once(conn)
            except (ConnectionError, http.client.HTTPException, OSError):
                self.raw_errors += 1
                conn.close()
                conn = self._conn()
                try:
                    status, version = self._once(conn)
                except (ConnectionError, http.client.HTTPException, OSError) as exc:
                    self.failed.append(repr(exc))
                    conn.close()
                    conn = self._conn()
                    continue
            if status == 200:
                self.ok += 1
                self.versions[version] = self.versions.get(version, 0) + 1
            else:
                self.failed.append(f"status {status}")
        conn.close()


def _header_is(port: int, host: str, path: str, value: str) -> bool:
    status, headers = probe(port, host, path, timeout_s=2)
    return status == 200 and headers.get(HEADER.lower()) == value


_RECONCILED = re.compile(r"reconciled in ([\d.]+)s")


def run(settings: Settings) -> dict[str, Any]:
    t_start = time.monotonic()
    n = 100 if settings.quick else 1_000
    edits = settings.runs if settings.quick else max(3, settings.runs)
    doc: dict[str, Any] = {
        "suite": "reconfig",
        "mode": "quick" if settings.quick else "full",
        "settings": {"routes": n, "edits": edits, "clients": CLIENTS, "settle_s": SETTLE_S,
                     "command": "python -m wardgate.cli run -f DIR --workers 1 (one file per route)",
                     "edit": f"route r0: ResponseHeaderModifier set {HEADER} to a new value (atomic replace)"},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with scratch("reconfig") as root:
        backend, backend_port = start_backend(root)
        proc: Any = None
        logf: Any = None
        nginx_pid: int | None = None
        clients: list[RetryClient] = []
        threads: list[threading.Thread] = []
        try:
            files = root / "manifests"
            files.mkdir()
            port, admin = free_port(), free_port()
            (files / "base.yaml").write_text(manifests.base(port, backend_port))
            for i in range(n):
                (files / f"r{i:05d}.yaml").write_text(manifests.numbered_route(i, (HEADER, "0")))
            edited = files / "r00000.yaml"
            host, path = "r0.example.com", "/p0"
            logf = (root / "run.log").open("w")
            t0 = time.monotonic()
            proc = _start(files, root / "state", admin, logf)
            if not wait_until(lambda: _header_is(port, host, path, "0"), 120, 0.05):
                raise RuntimeError(f"wardgate run did not serve the routes: {_tail(root / 'run.log')}")
            doc["startup_to_serving_s"] = round(time.monotonic() - t0, 3)
            nginx_pid = _nginx_pid(admin)
            log(f"reconfig: {n} routes serving after {doc['startup_to_serving_s']}s")

            clients = [RetryClient(port, host, path) for _ in range(CLIENTS)]
            threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
            for t in threads:
                t.start()
            time.sleep(SETTLE_S)
            results = []
            for k in range(1, edits + 1):
                time.sleep(SETTLE_S)
                log_pos = (root / "run.log").stat().st_size
                manifests.write_atomic(edited, manifests.numbered_route(0, (HEADER, str(k))))
                t_edit = time.monotonic()
                seen = wait_until(lambda k=k: _header_is(port, host, path, str(k)), VISIBLE_TIMEOUT_S, 0.01)
                visible = time.monotonic() - t_edit
                rec: dict[str, Any] = {"edit": k, "visible": seen, "time_to_visible_s": round(visible, 4)}
                found: list[str] = []

                def logged(pos: int = log_pos, found: list[str] = found) -> bool:
                    with (root / "run.log").open() as f:  # the controller logs after its status write
                        f.seek(pos)
                        found[:] = _RECONCILED.findall(f.read())
                    return bool(found)

                wait_until(logged, 30, 0.05)
                rec["controller_reconcile_s"] = float(found[-1]) if found else None
                results.append(rec)
                log(f"reconfig edit {k}/{edits}: visible after {visible:.3f}s "
                    f"(controller reconcile {rec['controller_reconcile_s']}s)")
                if not seen:
                    break
            time.sleep(SETTLE_S)
            for c in clients:
                c.stop.set()
            for t in threads:
                t.join(30)
            doc["edits"] = results
            doc["time_to_visible_s_median"] = _r(median(r["time_to_visible_s"] for r in results if r["visible"]))
            doc["time_to_visible_s_max"] = _r(max((r["time_to_visible_s"] for r in results), default=None))
            doc["controller_reconcile_s_median"] = _r(median(r["controller_reconcile_s"] for r in results))
            doc["requests_ok"] = sum(c.ok for c in clients)
            failures = [f for c in clients for f in c.failed]
            doc["requests_failed_after_retry"] = len(failures)
            doc["failure_examples"] = failures[:5]
            doc["raw_connection_errors"] = sum(c.raw_errors for c in clients)
            versions: dict[str, int] = {}
            for c in clients:
                for v, cnt in c.versions.items():
                    versions[v] = versions.get(v, 0) + cnt
            doc["versions_seen"] = dict(sorted(versions.items(), key=lambda kv: int(kv[0] or -1)))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/status", timeout=5) as resp:
                    gw = json.loads(resp.read())["gateways"].get(f"default/{manifests.GATEWAY}", {})
                doc["nginx_reloads"] = gw.get("reloads")
                doc["nginx_reload_failures"] = gw.get("reloadFailures")
            except (OSError, ValueError, KeyError) as exc:
                doc["status_error"] = repr(exc)
        finally:
            for c in clients:
                c.stop.set()
            for t in threads:
                t.join(10)
            if proc is not None:
                _stop(proc, nginx_pid, root)
            if logf is not None:
                logf.close()
            backend.stop()
    doc["wall_s"] = round(time.monotonic() - t_start, 1)
    return doc


def _start(files: Path, state: Path, admin: int, logf: Any) -> Any:
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-m", "wardgate.cli", "run", "-f", str(files), "--state-dir", str(state),
         "--admin-port", str(admin), "--workers", "1", "--listen-host", "127.0.0.1"],
        stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)


def _nginx_pid(admin: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/status", timeout=5) as resp:
            pid = json.loads(resp.read())["gateways"][f"default/{manifests.GATEWAY}"]["pid"]
            return int(pid) if pid else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stop(proc: Any, nginx_pid: int | None, root: Path) -> None:
    """SIGTERM `wardgate run` (it stops its nginx); if it had to be killed, stop that nginx too."""
    import contextlib
    import os
    import subprocess

    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    if nginx_pid is None:
        return
    try:
        cmdline = Path(f"/proc/{nginx_pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return
    if str(root) in cmdline:  # still our nginx master: stop it and its workers
        with contextlib.suppress(ProcessLookupError):
            os.kill(nginx_pid, signal.SIGQUIT)
        if not wait_until(lambda: not Path(f"/proc/{nginx_pid}").exists(), 10):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(nginx_pid, signal.SIGKILL)  # wardgate starts nginx in its own session


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def _r(v: float | None) -> float | None:
    return round(v, 4) if v is not None else None
