"""Standalone mode: files -> translate -> render -> one nginx per Gateway, with status back.

The same pipeline serves Kubernetes mode later: only the source of raw objects and the status
sink differ.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wardgate import ir
from wardgate.dataplane import NginxInstance
from wardgate.dataplane.admin import AdminServer, GatewayState
from wardgate.errors import InputError, Problem, UnsafeValueError
from wardgate.model import ObjectKey, ParseCache, ResourceSet, parse_keeping
from wardgate.model.base import Resource
from wardgate.render.nginx import RenderOptions, render
from wardgate.sources import RawObject, manifest_files
from wardgate.sources.files import MAX_FILE_BYTES, SUFFIXES, FileCache, load_paths_keeping
from wardgate.sources.generations import GenerationTracker
from wardgate.status.report import write_status_file
from wardgate.translate import Options, Translation, TranslationCache, translate
from wardgate.translate.exposure import exposure_of
from wardgate.translate.gateways import with_data_plane

log = logging.getLogger("wardgate")


def _internal_error(what: str, exc: Exception) -> str:
    """A bug's report: the exception's type and where, logged with its stack but never its text,
    which could quote Secret or ConfigMap data (a UnicodeDecodeError's repr holds the input)."""
    log.error("%s failed (%s); the last good configuration keeps serving:\n%s", what, type(exc).__name__,
              "".join(traceback.format_tb(exc.__traceback__)))
    return f"internal error ({type(exc).__name__}); the last good configuration keeps serving"


@dataclass
class RunnerOptions:
    listen_host: str = "127.0.0.1"
    port_offset: int = 0
    nginx_bin: str = "nginx"
    modules_dir: str = "/usr/lib/nginx/modules"
    worker_processes: int | None = None
    # Give each Gateway its own address from this pool (e.g. "127.0.100.0/24") instead of
    # listen_host, so several Gateways can use the same ports, as they would in a cluster.
    address_pool: str | None = None
    max_file_bytes: int = MAX_FILE_BYTES  # larger manifest files are refused


@dataclass
class ReconcileReport:
    ok: bool
    errors: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    duration_s: float = 0.0


class Runner:
    """Reconciles files into running nginx instances. Thread-safe; never raises on bad input."""

    def __init__(self, paths: list[Path], state_dir: Path, options: RunnerOptions | None = None,
                 loader: Callable[[], list[RawObject]] | None = None) -> None:
        self.paths = paths
        self.state_dir = state_dir
        self.opts = options or RunnerOptions()
        self._files = FileCache(self.opts.max_file_bytes)
        self._parsed = ParseCache()
        self._translated = TranslationCache()
        # Per Gateway: the IR, options and files last applied, so an unchanged IR is not rendered.
        self._rendered: dict[str, tuple[ir.Gateway, RenderOptions, dict[str, str]]] = {}
        self._loader = loader
        self._last_good: dict[ObjectKey, Resource] = {}
        self._lock = threading.RLock()
        self._generations = GenerationTracker()
        self.instances: dict[str, NginxInstance] = {}
        self.translation: Translation | None = None
        self.input_errors: list[Problem] = []
        self.apply_errors: dict[str, str] = {}
        # Per Gateway: configurations that could not be built (translation or render failed).
        self.config_failures: dict[str, int] = {}
        self._addresses: dict[str, str] = {}
        # The exposure report of the last translation: computed once per translation, not per /status.
        self._exposure: tuple[Translation | None, dict[str, Any]] = (None, {"served": [], "findings": []})

    # --- one pass -----------------------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        t0 = time.monotonic()
        with self._lock:
            problems: list[Problem] = []
            raws: list[RawObject] = []
            if self._loader is not None:
                try:
                    raws = self._loader()
                except InputError as exc:
                    # A custom source that fails gives nothing to go on: keep everything as it is.
                    self.input_errors = exc.problems
                    self._write_status()
                    return ReconcileReport(False, [str(p) for p in exc.problems], [], time.monotonic() - t0)
            try:
                if self._loader is None:
                    raws, problems = load_paths_keeping(self.paths, self._files)
                rs, invalid = parse_keeping(self._generations.apply(raws), self._last_good, self._parsed)
            except Exception as exc:  # a bug reading input must not stop the gateways that serve
                error = _internal_error("loading the input", exc)
                self.apply_errors["*"] = error
                self._write_status()
                return ReconcileReport(False, [error], [], time.monotonic() - t0)
            problems += invalid
            # Like an API server rejecting an update: a broken file or object keeps its last good
            # version serving, and everything else still applies. Say exactly what is wrong.
            for p in problems:
                log.error("invalid input (its last good version, if any, is kept): %s", p)
            self.input_errors = problems
            try:
                report = self._apply(rs)
            except Exception as exc:  # a bug must not stop the gateways that are serving
                error = _internal_error("reconcile", exc)
                self.apply_errors["*"] = error
                self._write_status()
                return ReconcileReport(False, [error], [], time.monotonic() - t0)
            self.apply_errors.pop("*", None)
            self._last_good = {o.key: o for o in rs.objects}
            if problems:
                report.ok = False
                report.errors = [str(p) for p in problems] + report.errors
            report.duration_s = time.monotonic() - t0
            self._write_status()
            return report

    def _apply(self, rs: ResourceSet) -> ReconcileReport:
        tr = translate(rs, Options(addresses=(self.opts.listen_host,)), self._translated)
        for p in tr.problems:
            log.warning("%s", p)
        report = ReconcileReport(True)
        # The data plane names each Gateway's nginx by the display form of its key.
        wanted = {str(gw.key) for gw in tr.gateways}
        failed = {str(k) for k in tr.failed}
        for key in failed:
            self.apply_errors[key] = "internal error translating this Gateway; the last good configuration serves"
            self.config_failures[key] = self.config_failures.get(key, 0) + 1
            report.ok = False
            report.errors.append(f"Gateway {key}: {self.apply_errors[key]}")
        for key in list(self.instances):
            if key not in wanted and key not in failed:
                log.info("Gateway %s is gone: stopping its nginx", key)
                self.instances.pop(key).stop()
                self.apply_errors.pop(key, None)
                self._rendered.pop(key, None)
        for gw in tr.gateways:
            key = str(gw.key)
            inst = self.instances.get(key)
            if inst is None:
                inst = NginxInstance(key, self.state_dir / "gateways" / f"{gw.namespace}_{gw.name}",
                                     self.opts.nginx_bin)
                self.instances[key] = inst
            ropts = RenderOptions(self.address_of(key), self.opts.port_offset, self.opts.modules_dir,
                                  self.opts.worker_processes, log_dir=str(inst.workdir.resolve() / "logs"))
            try:
                last = self._rendered.get(key)
                if last is not None and last[1] == ropts and (last[0] is gw or last[0] == gw):
                    files = last[2]  # rendering is a function of the IR and the options
                else:
                    files = render(gw, ropts)
                res = inst.apply(files)
                if res.ok:
                    self._rendered[key] = (gw, ropts, files)
            except Exception as exc:  # refuse, keep the old config; the other Gateways go on
                error = (f"render: {exc}" if isinstance(exc, UnsafeValueError)
                         else _internal_error(f"Gateway {key}: rendering", exc))
                self.apply_errors[key] = error
                self.config_failures[key] = self.config_failures.get(key, 0) + 1
                report.ok = False
                report.errors.append(f"Gateway {key}: {error}")
                continue
            if res.ok:
                self.apply_errors.pop(key, None)
                if res.changed:
                    report.changed.append(key)
                    log.info("Gateway %s: generation %d serving (%.3fs)", key, res.generation,
                             res.duration_s)
            else:
                self.apply_errors[key] = res.error or "nginx rejected the configuration"
                report.ok = False
                report.errors.append(f"Gateway {key}: {res.error}")
                log.error("Gateway %s: nginx rejected the new configuration, the last good one keeps "
                          "serving: %s", key, res.error)
        self.translation = tr
        return report

    def address_of(self, key: str) -> str:
        """The address a Gateway listens on: stable for the life of the runner."""
        if self.opts.address_pool is None:
            return self.opts.listen_host
        if key not in self._addresses:
            net = ipaddress.ip_network(self.opts.address_pool)
            used = set(self._addresses.values())
            free = (str(a) for a in net.hosts() if str(a) not in used)
            addr = next(free, None)
            if addr is None:
                raise RuntimeError(f"address pool {net} is exhausted")
            self._addresses[key] = addr
        return self._addresses[key]

    # --- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._lock:
            objects: list[dict[str, Any]] = []
            tr = self.translation
            if tr is not None:
                for st in tr.statuses:
                    if st.kind == "Gateway":
                        key = str(st.key)
                        inst = self.instances.get(key)
                        ok = key not in self.apply_errors and inst is not None and inst.is_running()
                        st = with_data_plane(st, [self.address_of(key)], ok)
                    objects.append(st.to_dict())
            return {
                "objects": objects,
                "errors": [str(p) for p in self.input_errors]
                + [f"Gateway {k}: {v}" for k, v in self.apply_errors.items()],
                "warnings": [str(p) for p in tr.problems] if tr else [],
                "gateways": {k: self._gateway_state(k, i) for k, i in self.instances.items()},
                "exposure": self.exposure(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }

    def exposure(self) -> dict[str, Any]:
        """translate/exposure.py's report on what the current configuration serves."""
        with self._lock:
            tr = self.translation
            if tr is not None and self._exposure[0] is not tr:
                self._exposure = (tr, exposure_of(tr))
            return self._exposure[1]

    def _gateway_state(self, key: str, inst: NginxInstance) -> dict[str, Any]:
        return {
            "running": inst.is_running(),
            "pid": inst.pid,
            "generation": inst.generation,
            "reloads": inst.reloads,
            "reloadFailures": inst.reload_failures,
            "restarts": inst.restarts,
            "lastError": self.apply_errors.get(key),
            "workdir": str(inst.workdir),
            "listeners": self._bound_listeners(key),
        }

    def _bound_listeners(self, key: str) -> list[dict[str, Any]]:
        """Where each listener of a Gateway listens: its address (--listen-host or one from
        --address-pool) and its port plus --port-offset."""
        ns, _, name = key.partition("/")
        plan = self.translation.plans.get(ObjectKey("Gateway", ns, name)) if self.translation else None
        address = self.address_of(key)
        return [{"name": p.name, "protocol": p.listener.protocol, "address": address,
                 "port": p.listener.port + self.opts.port_offset, "declaredPort": p.listener.port}
                for p in (plan.listeners if plan else [])]

    def states(self) -> tuple[list[GatewayState], int]:
        with self._lock:
            states = [GatewayState.from_instance(k, i, last_error=self.apply_errors.get(k),
                                                 config_failures=self.config_failures.get(k, 0))
                      for k, i in self.instances.items()]
            return states, len(self.input_errors)

    def _write_status(self) -> None:
        write_status_file(self.state_dir / "status.json", self.status())

    # --- lifecycle ------------------------------------------------------------------------------

    def supervise(self) -> None:
        with self._lock:
            for key, inst in self.instances.items():
                if inst.generation > 0 and inst.ensure_running():
                    log.warning("Gateway %s: nginx had died and was restarted", key)

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        try:
            files = manifest_files(self.paths)
        except InputError:
            return ()
        out = []
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            out.append((str(f), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _relevant(self, path: Path) -> bool:
        """Whether an event on `path` can change what is loaded: not a hidden file (editors' and
        atomic writers' temporary files), nor a file of a type never read."""
        for root in (p.absolute() for p in self.paths):  # the watcher reports absolute paths
            if path == root:
                return True
            if path.is_relative_to(root):
                if any(part.startswith(".") for part in path.relative_to(root).parts):
                    return False
                return path.suffix in SUFFIXES or not path.is_file()
        return True

    def stop(self) -> None:
        with self._lock:
            for inst in self.instances.values():
                inst.stop()
            self.instances.clear()

    def serve(self, stop: threading.Event, admin_host: str = "127.0.0.1", admin_port: int | None = 9901,
              poll_s: float = 1.0, resync_s: float = 3600.0, admin_allowed_hosts: tuple[str, ...] = ()) -> None:
        """Reconcile, then watch the files until `stop` is set; supervise nginx meanwhile.

        Also reconcile every `resync_s` without a change, like an informer's resync: validity
        can depend on time (a security.txt expiring), and nginx only reloads if its files change.

        Whenever this returns or raises, every nginx it runs is stopped: a data plane nobody
        supervises or reconfigures is never left behind on purpose. (A hard kill of this process
        leaves nginx serving its last good configuration; the next run adopts it.)
        """
        from watchfiles import watch

        admin = None
        if admin_port is not None:
            admin = AdminServer(admin_host, admin_port, self.status, self.states,
                                allowed_hosts=admin_allowed_hosts)
            admin.start()
            log.info("admin endpoints on http://%s:%d (/healthz /readyz /status /metrics)",
                     admin_host, admin.port)
        seen = self._fingerprint()
        self.reconcile()
        last = time.monotonic()
        watched = [p for p in self.paths if p.exists()]
        try:
            # step: how long the watcher waits for more events once one came (the latency it adds
            # to every edit); debounce: the most it groups (a directory copied in at once).
            for changes in watch(*watched, stop_event=stop, rust_timeout=int(poll_s * 1000),
                                 yield_on_timeout=True, debounce=50, step=10):
                self.supervise()
                resync = time.monotonic() - last >= resync_s
                if resync:  # validate everything again: validity can depend on time
                    self._parsed = ParseCache()
                    self._translated = TranslationCache()
                # An event on a manifest reconciles at once (reading only what changed); without
                # one, file metadata is compared: an edit made between the first reconcile and the
                # watcher starting would otherwise be missed.
                relevant = any(self._relevant(Path(path)) for _change, path in changes)
                if relevant or resync or self._fingerprint() != seen:
                    last = time.monotonic()
                    report = self.reconcile()
                    # what that reconcile read (files that changed since are events to come)
                    seen = self._files.fingerprint if self._loader is None else self._fingerprint()
                    log.info("reconciled in %.3fs: %s", report.duration_s,
                             "ok" if report.ok else "errors, last good config kept")
        except Exception as exc:  # the type and stack only: its text could quote Secret data
            log.critical("the control plane is stopping on an unexpected error (%s); stopping the nginx "
                         "of every Gateway rather than leaving it unsupervised:\n%s", type(exc).__name__,
                         "".join(traceback.format_tb(exc.__traceback__)))
            raise
        finally:
            if admin is not None:
                admin.stop()
            self.stop()

