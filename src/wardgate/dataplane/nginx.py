"""Run and reconfigure one nginx master process for one Gateway.

Layout under ``workdir`` (the nginx prefix, passed as ``-p workdir/``)::

    conf/gen-<N>/        one complete rendered configuration per generation
    conf/current -> gen-<N>   the serving generation; swapped atomically
    logs/                error.log, access logs, nginx.stderr (the master's stdout/stderr)
    run/nginx.pid
    tmp/{client_body,proxy,fastcgi,uwsgi,scgi}

The master always runs with ``-c workdir/conf/current/nginx.conf`` so that a SIGHUP re-reads
whatever ``current`` points to, and relative includes resolve inside that generation.
A configuration only becomes ``current`` after ``nginx -t`` accepted it, and is only reported
as serving once the master has spawned new workers; otherwise the previous generation keeps
serving.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wardgate.render.basicauth import WORKER_DIR

__all__ = ["ApplyResult", "NginxInstance", "nginx_version", "redact_secrets", "write_private"]

log = logging.getLogger(__name__)

MAIN_FILE = "nginx.conf"
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
KEEP_GENERATIONS = 3
ERROR_LOG = "logs/error.log"
STDERR_LOG = "logs/nginx.stderr"
# Files nginx creates (access and error logs, ModSecurity's audit log) hold request data: no
# access for others. Workers write through descriptors the master opened.
NGINX_UMASK = 0o027
LOG_MODE = 0o640
# The master runs in the foreground as our child so supervision is a plain waitpid.
RUN_DIRECTIVES = "daemon off;"
WORKER_USER = "nobody"  # nginx's default `user` when the master runs as root

# Files nginx's workers open at request time (htpasswd files): readable by the workers' group.
WORKER_FILES = WORKER_DIR + "/"

_GEN_RE = re.compile(r"^gen-(\d+)$")
# "2026/01/02 03:04:05 [emerg] 123#123: *5 message" or "nginx: [emerg] message"
_LOG_LINE_RE = re.compile(
    r"^(?:nginx: )?(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?\[(?P<level>[a-z]+)\] (?:\d+#\d+: )?(?:\*\d+ )?"
)
_NOISE_RE = re.compile(
    r"^nginx: (?:configuration file .* test (?:failed|is successful)|the configuration file .* syntax is ok)$"
)
_MAX_ERROR_CHARS = 4000
_MAX_LOG_READ = 256 * 1024


@dataclass(frozen=True)
class ApplyResult:
    changed: bool  # False when the files were byte-identical to the running config (no reload done)
    ok: bool  # False when nginx -t rejected the new files or start/reload failed
    error: str | None  # nginx's own message, trimmed, when not ok
    generation: int  # generation number now serving (unchanged on failure)
    duration_s: float  # time spent in test+swap+reload


def nginx_version(nginx_bin: str = "nginx") -> str:
    """Return the version of ``nginx_bin``, e.g. ``"1.22.1"``."""
    try:
        proc = subprocess.run([nginx_bin, "-v"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"cannot run {nginx_bin} -v: {exc}") from exc
    out = (proc.stderr + proc.stdout).strip()
    m = re.search(r"nginx/(\S+)", out)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"cannot read the version of {nginx_bin}: {out or proc.returncode}")
    return m.group(1)


def clean_nginx_output(text: str, strip: Iterable[str] = ()) -> str:
    """Reduce nginx's stderr/error-log text to the lines that name the problem."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or _NOISE_RE.match(line):
            continue
        m = _LOG_LINE_RE.match(line)
        if m:
            line = f"[{m.group('level')}] {line[m.end() :]}"
        elif line.startswith("nginx: "):
            line = line[len("nginx: ") :]
        for s in strip:
            line = line.replace(s, "")
        if line not in lines:  # bind() failures repeat the same line several times
            lines.append(line)
    out = "\n".join(lines)
    if len(out) > _MAX_ERROR_CHARS:
        out = out[:_MAX_ERROR_CHARS] + "\n..."
    return out


@dataclass
class _ProcInfo:
    pid: int
    state: str
    ppid: int
    pgrp: int


def _read_stat(pid: int) -> _ProcInfo | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'
    rest = data[data.rfind(")") + 2 :].split()
    if len(rest) < 3:
        return None
    return _ProcInfo(pid, rest[0], int(rest[1]), int(rest[2]))


def _all_procs() -> list[_ProcInfo]:
    out: list[_ProcInfo] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _read_stat(int(entry))
            if info is not None:
                out.append(info)
    return out


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return {int(p) for p in text.split()}
    except OSError:
        # kernels without CONFIG_PROC_CHILDREN: scan the process table
        return {p.pid for p in _all_procs() if p.ppid == pid and p.state != "Z"}
    except ValueError:
        return set()


def _group_members(pgid: int) -> list[int]:
    # Zombies are excluded: an orphan reparented to an init that never reaps stays "in" the group.
    return [p.pid for p in _all_procs() if p.pgrp == pgid and p.state != "Z"]


class NginxInstance:
    """One nginx master for one Gateway. Thread-safe: every mutating call holds one lock."""

    # nginx -t on a very large config with the CRS loaded takes seconds.
    test_timeout_s = 120.0
    start_timeout_s = 15.0
    reload_timeout_s = 5.0
    # after a reload is confirmed, how long to wait for old workers to stop accepting
    quiesce_timeout_s = 1.0
    orphan_timeout_s = 3.0
    poll_interval_s = 0.02
    # While a reload is confirmed: new workers, then old ones closing their listen sockets. Each
    # poll reads a few /proc files; at 20 ms the waiting added about 20 ms to every edit.
    reload_poll_s = 0.005

    def __init__(self, name: str, workdir: Path, nginx_bin: str = "nginx") -> None:
        self.name = name
        # absolute, because the master's -p/-c must stay valid whatever our cwd is
        self.workdir = Path(workdir).absolute()
        self.nginx_bin = nginx_bin
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted_pid: int | None = None
        self._pgid: int | None = None
        self._generation = 0
        self._last_test_s = 0.0
        self._files: dict[str, bytes] | None = None
        self._last_error: str | None = None
        self._restart_error: str | None = None
        self._last_apply_time: float | None = None
        self._reloads = 0
        self._reload_failures = 0
        self._restarts = 0
        self._stopped = False
        self._prepare_dirs()
        self._recover()

    # ------------------------------------------------------------------ paths

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "conf"

    @property
    def current_link(self) -> Path:
        return self.conf_dir / "current"

    @property
    def current_conf(self) -> Path:
        return self.current_link / MAIN_FILE

    @property
    def error_log(self) -> Path:
        return self.workdir / ERROR_LOG

    @property
    def _prefix(self) -> str:
        # nginx only treats -p as a directory when it ends with a slash
        return f"{self.workdir}/"

    def _gen_dir(self, n: int) -> Path:
        return self.conf_dir / f"gen-{n}"

    # ------------------------------------------------------------ public state

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def pid(self) -> int | None:
        proc = self._proc
        if proc is not None:
            return proc.pid if proc.poll() is None else None
        adopted = self._adopted_pid
        if adopted is not None and self._is_our_master(adopted):
            return adopted
        return None

    @property
    def last_error(self) -> str | None:
        return self._last_error

    @property
    def last_apply_time(self) -> float | None:
        return self._last_apply_time

    @property
    def reloads(self) -> int:
        return self._reloads

    @property
    def reload_failures(self) -> int:
        return self._reload_failures

    @property
    def restarts(self) -> int:
        return self._restarts

    def is_running(self) -> bool:
        return self.pid is not None

    def worker_pids(self) -> set[int]:
        """Current children of the master (workers, cache processes); empty when not running."""
        pid = self.pid
        return _children(pid) if pid is not None else set()

    # ------------------------------------------------------------------ apply

    def apply(self, files: Mapping[str, str]) -> ApplyResult:
        """Make ``files`` the serving configuration, or keep the current one and say why not.

        Raises ValueError when a path is not a plain relative path or nginx.conf is missing:
        that is a renderer bug, not bad user input.
        """
        encoded = _encode_files(files)
        with self._lock:
            t0 = time.monotonic()
            self._stopped = False
            if self._generation > 0 and encoded == self._files:
                if self.is_running():
                    self._last_error = None
                    return ApplyResult(False, True, None, self._generation, time.monotonic() - t0)
                # Same config but nothing serving (fresh wardgate process, or a crash not yet
                # seen by ensure_running): bring it up without writing a new generation.
                err = self._start()
                err = redact_secrets(err, encoded) if err else None
                self._last_error = err
                return ApplyResult(False, err is None, err, self._generation, time.monotonic() - t0)

            old_gen = self._generation
            new_gen = self._next_generation()
            gen_dir = self._gen_dir(new_gen)
            try:
                self._write_generation(new_gen, encoded)
            except OSError as exc:  # e.g. disk full: the serving generation is untouched
                shutil.rmtree(gen_dir, ignore_errors=True)
                return self._failed(f"cannot write generation {new_gen}: {exc}", t0, encoded)
            t_test = time.monotonic()
            err = self._test(gen_dir)
            self._last_test_s = time.monotonic() - t_test
            if err is not None:
                shutil.rmtree(gen_dir, ignore_errors=True)
                return self._failed(err, t0, encoded)

            self._point_current(new_gen)
            was_running = self.is_running()
            err = self._reload() if was_running else self._start()
            if err is not None:
                self._roll_back(old_gen)
                shutil.rmtree(gen_dir, ignore_errors=True)
                return self._failed(err, t0, encoded)

            self._generation = new_gen
            self._files = encoded
            self._workers_reach(encoded)
            if was_running:
                self._reloads += 1
            self._last_error = None
            self._last_apply_time = time.time()
            self._prune()
            log.info("nginx %s: generation %d serving", self.name, new_gen)
            return ApplyResult(True, True, None, new_gen, time.monotonic() - t0)

    def _failed(self, err: str, t0: float, files: Mapping[str, bytes]) -> ApplyResult:
        err = redact_secrets(err, files)
        self._reload_failures += 1
        self._last_error = err
        log.warning("nginx %s: configuration not applied: %s", self.name, err)
        return ApplyResult(True, False, err, self._generation, time.monotonic() - t0)

    def _roll_back(self, old_gen: int) -> None:
        """Point ``current`` at the last good generation again and make sure it serves."""
        if old_gen > 0:
            self._point_current(old_gen)
        else:
            self.current_link.unlink(missing_ok=True)
        master = self.pid
        if master is not None:
            # The failed attempt may not be over (nginx retries bind() for ~2.5 s, and a timed-
            # out reload may still land): a second SIGHUP is handled after it and re-reads the
            # old generation, so the master always ends up on what ``current`` names. Wait for
            # it, so that the next apply starts from a settled master.
            before = _children(master)
            self._signal_master(signal.SIGHUP)
            deadline = time.monotonic() + self._reload_budget()
            while self.is_running() and not _children(master) - before:
                if time.monotonic() >= deadline:
                    log.warning("nginx %s: rollback reload not confirmed", self.name)
                    break
                time.sleep(self.poll_interval_s)
            if self.is_running():
                return
        if old_gen > 0:
            # The master died during the attempt: bring the last good config back.
            err = self._start()
            if err is None:
                self._restarts += 1
            else:
                log.error("nginx %s: cannot restart generation %d: %s", self.name, old_gen, err)

    # --------------------------------------------------------------- supervise

    def ensure_running(self) -> bool:
        """Restart the master with the current config if it died. True if it was restarted."""
        with self._lock:
            if self._stopped or self._generation == 0 or self.is_running():
                return False
            log.warning("nginx %s: master is not running, restarting", self.name)
            err = self._start()
            if err is not None:
                self._last_error = self._restart_error = err
                log.error("nginx %s: restart failed: %s", self.name, err)
                return False
            if self._last_error is not None and self._last_error == self._restart_error:
                # only our own failure is resolved; a rejected config stays reported
                self._last_error = None
            self._restart_error = None
            self._restarts += 1
            return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful quit (SIGQUIT); SIGTERM then SIGKILL if it takes longer than ``timeout_s``."""
        with self._lock:
            self._stopped = True
            if self.pid is not None:
                self._signal_master(signal.SIGQUIT)
                if not self._wait_master_exit(timeout_s):
                    log.warning("nginx %s: graceful quit timed out, terminating", self.name)
                    self._signal_master(signal.SIGTERM)
                    if not self._wait_master_exit(min(timeout_s, 5.0)):
                        self._kill_group(signal.SIGKILL)
                        self._wait_master_exit(2.0)
            self._reap_orphans(graceful=False)
            self._proc = None
            self._adopted_pid = None

    # --------------------------------------------------------------- internals

    def _prepare_dirs(self) -> None:
        for d in (self.workdir, self.workdir / "logs", self.workdir / "run", self.workdir / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
            # workers (nobody when we are root) must traverse to tmp/ and reopen logs/
            d.chmod(0o755)
        # Generations hold private keys: only we (and the nginx master, root or our uid) may list
        # or read them. Workers read no configuration file, only a generation's worker/ files
        # (htpasswd), if it has any: then, as root, their group may pass through conf/ to them
        # (never list it); see _workers_reach.
        self.conf_dir.mkdir(mode=0o700, exist_ok=True)
        self.conf_dir.chmod(0o700)
        for log_file in (self.workdir / "logs").iterdir():  # made by an older wardgate, perhaps
            if log_file.is_file() and not log_file.is_symlink():
                log_file.chmod(stat.S_IMODE(log_file.stat().st_mode) & LOG_MODE)
        worker_uid = _worker_uid()
        for name in TEMP_DIRS:
            d = self.workdir / "tmp" / name
            d.mkdir(exist_ok=True)
            if worker_uid is not None:
                # Request bodies land here: writable by the worker, private to it.
                os.chown(d, worker_uid, -1)
                d.chmod(0o700)
        if worker_uid is not None:
            for parent in self.workdir.parents:
                try:
                    mode = parent.stat().st_mode
                except OSError:
                    continue
                if not mode & stat.S_IXOTH:
                    log.warning(
                        "nginx %s: %s is not searchable by others; workers running as %s cannot "
                        "use %s/tmp (large request bodies will fail)",
                        self.name,
                        parent,
                        WORKER_USER,
                        self.workdir,
                    )
                    break

    def _recover(self) -> None:
        """Pick up state left by a previous wardgate process: generation, files, live master."""
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return
        m = _GEN_RE.match(target)
        if m is None or not (self._gen_dir(int(m.group(1))) / MAIN_FILE).is_file():
            return
        self._generation = int(m.group(1))
        gen_dir = self._gen_dir(self._generation)
        self._files = _read_tree(gen_dir)
        self._workers_reach(self._files)
        self._last_apply_time = gen_dir.stat().st_mtime
        try:
            pid = int((self.workdir / "run" / "nginx.pid").read_text().strip())
        except (OSError, ValueError):
            return
        if self._is_our_master(pid):
            # Keep it serving instead of restarting: a wardgate restart must not drop traffic.
            self._adopted_pid = pid
            try:
                self._pgid = pid if os.getpgid(pid) == pid else None
            except OSError:
                self._pgid = None
            log.info("nginx %s: adopted running master %d (generation %d)", self.name, pid, self._generation)

    def _is_our_master(self, pid: int) -> bool:
        # The cmdline check also guards against pid reuse and unreaped zombies (empty cmdline).
        cmd = _cmdline(pid)
        return "master process" in cmd and f"-c {self.current_conf}" in cmd

    def _workers_reach(self, files: Mapping[str, bytes]) -> None:
        """conf/ lets the workers' group through only while a generation with worker files may
        serve (written, or serving); else it is 0700."""
        if _has_worker_files(files):
            _traversable_by_workers(self.conf_dir)
        else:
            self.conf_dir.chmod(0o700)

    def _next_generation(self) -> int:
        highest = self._generation
        for entry in self.conf_dir.iterdir():
            m = _GEN_RE.match(entry.name)
            if m:
                highest = max(highest, int(m.group(1)))
        return highest + 1

    def _write_generation(self, n: int, files: Mapping[str, bytes]) -> Path:
        final = self._gen_dir(n)
        staging = self.conf_dir / f".gen-{n}.tmp"
        for stale in (final, staging):
            if stale.exists():
                shutil.rmtree(stale)
        # Private from the first byte: a key file is never readable by others, not even for the
        # moment between creating and chmodding it (only the master reads configuration).
        staging.mkdir(mode=0o700)
        if _has_worker_files(files):
            self._workers_reach(files)  # before the reload that starts reading them
        for rel, data in files.items():
            if rel.startswith(WORKER_FILES):
                write_for_workers(staging, rel, data)
            else:
                write_private(staging / rel, data)
        # a gen-N directory is always complete, whatever happens to this process
        staging.rename(final)
        return final

    def _point_current(self, n: int) -> None:
        tmp = self.conf_dir / ".current.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(f"gen-{n}", tmp)  # relative, so the workdir can be moved as a whole
        os.replace(tmp, self.current_link)

    def _nginx_cmd(self, conf: Path, *extra: str) -> list[str]:
        return [self.nginx_bin, *extra, "-p", self._prefix, "-c", str(conf), "-g", RUN_DIRECTIVES]

    def _test(self, gen_dir: Path) -> str | None:
        cmd = self._nginx_cmd(gen_dir / MAIN_FILE, "-t", "-q")
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=self.test_timeout_s,
                cwd=self.workdir,
                check=False,
                stdin=subprocess.DEVNULL,
                umask=NGINX_UMASK,  # nginx -t creates the log files too
            )
        except subprocess.TimeoutExpired:
            return f"nginx -t did not finish within {self.test_timeout_s:.0f}s"
        except OSError as exc:
            return f"cannot run {self.nginx_bin}: {exc}"
        if proc.returncode == 0:
            if proc.stderr.strip():
                log.info("nginx %s: nginx -t: %s", self.name, clean_nginx_output(proc.stderr))
            return None
        # report paths relative to the generation, as the renderer named them
        msg = clean_nginx_output(proc.stderr + proc.stdout, strip=(f"{gen_dir}/",))
        return msg or f"nginx -t failed with exit status {proc.returncode}"

    def _log_offsets(self) -> dict[Path, int]:
        out: dict[Path, int] = {}
        for rel in (ERROR_LOG, STDERR_LOG):
            p = self.workdir / rel
            try:
                out[p] = p.stat().st_size
            except OSError:
                out[p] = 0
        return out

    @staticmethod
    def _read_since(offsets: Mapping[Path, int]) -> dict[Path, str]:
        out: dict[Path, str] = {}
        for p, off in offsets.items():
            try:
                with p.open("rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    f.seek(off if size >= off else 0)  # smaller: rotated/truncated
                    out[p] = f.read(_MAX_LOG_READ).decode(errors="replace")
            except OSError:
                out[p] = ""
        return out

    def _master_emergs(self, offsets: Mapping[Path, int], master: int) -> str | None:
        # Only lines the master itself logged at [emerg]: a request URI quoted in a worker's
        # error line cannot fake a reload failure.
        pat = re.compile(rf"^\d{{4}}/\d\d/\d\d \d\d:\d\d:\d\d \[emerg\] {master}#\d+: .*$", re.MULTILINE)
        found = [m.group(0) for text in self._read_since(offsets).values() for m in pat.finditer(text)]
        if not found:
            return None
        return clean_nginx_output("\n".join(found), strip=(f"{self.conf_dir}/",))

    def _start(self) -> str | None:
        """Start the master on ``current``; wait until it has workers. Returns an error or None."""
        self._reap_orphans(graceful=True)
        # A master that died without cleaning up leaves its unix sockets (TLS passthrough's local
        # hops); nginx can't bind over them. No master of ours runs now, so they are stale.
        for sock in (self.workdir / "run").glob("*.sock"):
            sock.unlink(missing_ok=True)
        offsets = self._log_offsets()
        cmd = self._nginx_cmd(self.current_conf)
        try:
            fd = os.open(self.workdir / STDERR_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, LOG_MODE)
            with os.fdopen(fd, "ab") as out:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    cwd=self.workdir,
                    umask=NGINX_UMASK,
                    # own process group: lets us find orphaned workers, and keeps a Ctrl-C in
                    # the wardgate terminal from killing the data plane behind our back
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            return f"cannot run {self.nginx_bin}: {exc}"
        self._proc = proc
        self._adopted_pid = None
        self._pgid = proc.pid
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            rc = proc.poll()
            if rc is not None:
                self._reap_orphans(graceful=False)
                return self._start_error(offsets, f"nginx exited with status {rc}")
            if _children(proc.pid):
                # workers are forked after every listen socket is bound: it is serving
                return None
            if time.monotonic() >= deadline:
                self._kill_group(signal.SIGKILL)
                self._wait_master_exit(2.0)
                self._reap_orphans(graceful=False)
                return self._start_error(offsets, f"nginx did not start within {self.start_timeout_s:.0f}s")
            time.sleep(self.poll_interval_s)

    def _start_error(self, offsets: Mapping[Path, int], headline: str) -> str:
        texts = self._read_since(offsets)
        lines = texts.get(self.workdir / STDERR_LOG, "")
        for line in texts.get(self.error_log, "").splitlines():
            if re.search(r"\[(?:emerg|alert|crit)\]", line):
                lines += "\n" + line
        detail = clean_nginx_output(lines, strip=(f"{self.conf_dir}/",))
        return f"{headline}: {detail}" if detail else headline

    def _reload_budget(self) -> float:
        """How long a reload may take: the master parses the whole config again, as `nginx -t`
        just did, so a config that took 5 s to test (10k servers) gets a longer wait."""
        return max(self.reload_timeout_s, 3.0 * self._last_test_s + 2.0)

    def _reload(self) -> str | None:
        """SIGHUP the master and confirm the new generation serves. Returns an error or None."""
        master = self.pid
        if master is None:
            return "nginx master is not running"
        before = _children(master)
        offsets = self._log_offsets()
        self._signal_master(signal.SIGHUP)
        deadline = time.monotonic() + self._reload_budget()
        while True:
            if not self.is_running():
                return self._start_error(offsets, "nginx master exited during reload")
            # New workers mean the new cycle is live. (A crashed old worker respawned within
            # this window would look the same; nginx gives no better signal.)
            if _children(master) - before:
                self._wait_old_workers(before)
                return None
            emerg = self._master_emergs(offsets, master)
            if emerg is not None:
                return emerg
            if time.monotonic() >= deadline:
                return f"reload not confirmed within {self._reload_budget():.1f}s"
            time.sleep(self.reload_poll_s)

    def _wait_old_workers(self, old: set[int]) -> None:
        # nginx retitles a worker "shutting down" right before closing its listen sockets, so
        # once all old workers say so, every new connection reaches the new config.
        deadline = time.monotonic() + self.quiesce_timeout_s
        while time.monotonic() < deadline:
            busy = [pid for pid in old if "worker process" in (cmd := _cmdline(pid)) and "shutting down" not in cmd]
            if not busy:
                return
            time.sleep(self.reload_poll_s)

    def _signal_master(self, sig: signal.Signals) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _kill_group(self, sig: signal.Signals) -> None:
        if self._pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pgid, sig)

    def _wait_master_exit(self, timeout_s: float) -> bool:
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout=timeout_s)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout_s
        while self.pid is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _reap_orphans(self, graceful: bool) -> None:
        """Stop workers left behind by a master that died (they keep the listen sockets)."""
        pgid = self._pgid
        if pgid is None or self.pid is not None:
            return
        if _group_members(pgid):
            log.warning("nginx %s: stopping workers orphaned by master %d", self.name, pgid)
            steps: list[tuple[signal.Signals, float]] = [(signal.SIGKILL, 2.0)]
            if graceful:
                steps.insert(0, (signal.SIGQUIT, self.orphan_timeout_s))
            for sig, wait_s in steps:
                self._kill_group(sig)
                deadline = time.monotonic() + wait_s
                while _group_members(pgid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not _group_members(pgid):
                    break
        self._pgid = None

    def _prune(self) -> None:
        gens: list[int] = []
        for entry in self.conf_dir.iterdir():
            m = _GEN_RE.match(entry.name)
            if m:
                gens.append(int(m.group(1)))
            elif entry.name.startswith(".gen-") and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
        keep = set(sorted(g for g in gens if g <= self._generation)[-KEEP_GENERATIONS:])
        for g in gens:
            if g not in keep:
                shutil.rmtree(self._gen_dir(g), ignore_errors=True)


def _encode_files(files: Mapping[str, str]) -> dict[str, bytes]:
    if MAIN_FILE not in files:
        raise ValueError(f"rendered files must include {MAIN_FILE}")
    out: dict[str, bytes] = {}
    for rel, text in files.items():
        p = PurePosixPath(rel)
        if not rel or p.is_absolute() or str(p) != rel or ".." in p.parts or "\\" in rel:
            raise ValueError(f"not a plain relative path: {rel!r}")
        out[rel] = text.encode()
    return out


def write_private(path: Path, data: bytes) -> None:
    """Create `path` (and missing parent directories) readable by its owner only, from the first
    byte: 0600 files in 0700 directories, set at creation, never loosened then chmodded."""
    for parent in reversed(path.parents):
        if not parent.exists():
            parent.mkdir(mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        if os.fstat(f.fileno()).st_mode & 0o077:  # an existing file keeps its mode: tighten first
            os.fchmod(f.fileno(), 0o600)
        f.write(data)


_QUOTED = re.compile(r'"([^"\n]{4,}?)(?:\.\.\.)?"')


def redact_secrets(text: str, files: Mapping[str, bytes]) -> str:
    """`text` (nginx's error output) without anything quoted from a file holding a private key:
    nginx quotes tokens of the files it reads, and a mistaken include could be a key file."""
    secrets = [data.decode(errors="replace") for data in files.values() if b"PRIVATE KEY" in data]
    if not secrets:
        return text
    for line in {ln.strip() for s in secrets for ln in s.splitlines() if len(ln.strip()) >= 8}:
        text = text.replace(line, "[redacted]")
    return _QUOTED.sub(lambda m: '"[redacted]"' if any(m.group(1) in s for s in secrets) else m.group(0), text)


def _has_worker_files(files: Mapping[str, bytes]) -> bool:
    return any(rel.startswith(WORKER_FILES) for rel in files)


def _worker_gid() -> int | None:
    """gid nginx workers switch to, or None when we are not root (workers keep our ids)."""
    ids = _worker_ids()
    return ids[1] if ids else None


def _traversable_by_workers(d: Path) -> None:
    """0700, or as root 0710 with the workers' group: they may enter, never list."""
    gid = _worker_gid()
    if gid is None:
        d.chmod(0o700)
        return
    os.chown(d, -1, gid)
    d.chmod(0o710)


def write_for_workers(root: Path, rel: str, data: bytes) -> None:
    """A file nginx's workers open at request time, under `root` (a generation): 0640 with the
    workers' group when we are root (workers run as nobody), else 0600 (workers are us). The
    directories on the way are 0710/0750: the workers' group can reach the file, list nothing
    but worker/, and read nothing else of the generation."""
    path = root / rel
    gid = _worker_gid()
    if gid is not None:
        _traversable_by_workers(root)
    for parent in reversed(path.parents):
        if parent in root.parents or parent == root or parent.exists():
            continue
        parent.mkdir(mode=0o700)
        if gid is not None:
            os.chown(parent, -1, gid)
            parent.chmod(0o750)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        if gid is not None:
            os.fchown(f.fileno(), -1, gid)
            os.fchmod(f.fileno(), 0o640)
        f.write(data)


def _read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _worker_ids() -> tuple[int, int] | None:
    """(uid, gid) nginx workers switch to, or None when we are not root (workers keep ours)."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(WORKER_USER)
    except KeyError:
        return None
    return user.pw_uid, user.pw_gid


def _worker_uid() -> int | None:
    """uid nginx workers switch to, or None when we are not root (workers keep our uid)."""
    ids = _worker_ids()
    return ids[0] if ids else None
