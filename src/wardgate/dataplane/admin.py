"""Admin HTTP endpoints for `wardgate run`: /healthz, /readyz, /status, /metrics.

Stdlib server on a daemon thread; it only reads state through the provider callables, so it
never blocks or mutates the data plane. Bind it to loopback: it has no authentication.

Anything that can reach the port is untrusted: a request must arrive within `read_timeout_s`
(slowloris), at most `max_connections` are handled at once (more are answered 503 at once, from
the accepting thread), and a `Host` header that names neither the listen address, localhost nor
an allowed host is answered 421, so a web page can't read /status through DNS rebinding.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from wardgate.dataplane.nginx import NginxInstance

__all__ = ["AdminServer", "GatewayState", "StateProvider", "StatusProvider", "readiness"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayState:
    """A snapshot of one gateway's data plane, as the admin endpoints report it."""

    key: str  # e.g. "namespace/name"
    running: bool  # the nginx master is alive
    ready: bool  # it serves a successfully applied configuration
    generation: int
    reloads: int
    reload_failures: int
    restarts: int
    last_apply_time: float | None
    last_error: str | None
    # configurations that could not be built for it (translation or render failed)
    config_failures: int = 0

    @property
    def up(self) -> bool:
        """Running, ready, and the most recent apply/restart did not fail."""
        return self.running and self.ready and self.last_error is None

    @classmethod
    def from_instance(cls, key: str, inst: NginxInstance, ready: bool | None = None, *,
                      last_error: str | None = None, config_failures: int = 0) -> GatewayState:
        """Snapshot ``inst``. ``ready`` defaults to: running and some config was applied.
        ``last_error``: the control plane's own failure for this Gateway (render, translation),
        which nginx never saw; nginx's last error is used when there is none.

        A later rejected config does not make it unready: the last good one keeps serving,
        and pulling the pod out of service for it would take traffic down.
        """
        running = inst.is_running()
        if ready is None:
            ready = running and inst.generation > 0
        return cls(
            key=key,
            running=running,
            ready=ready,
            generation=inst.generation,
            reloads=inst.reloads,
            reload_failures=inst.reload_failures,
            restarts=inst.restarts,
            last_apply_time=inst.last_apply_time,
            last_error=last_error or inst.last_error,
            config_failures=config_failures,
        )


StatusProvider = Callable[[], Mapping[str, Any]]
# returns (per-gateway states, number of translation errors)
StateProvider = Callable[[], tuple[Sequence[GatewayState], int]]


def readiness(states: Sequence[GatewayState]) -> list[str]:
    """Reasons the process is not ready; empty when every gateway serves."""
    if not states:
        return ["no gateway is managed yet"]
    reasons: list[str] = []
    for s in states:
        if not s.running:
            reasons.append(f"{s.key}: nginx is not running")
        elif not s.ready:
            detail = f": {s.last_error}" if s.last_error else ""
            reasons.append(f"{s.key}: no successfully applied configuration{detail}")
    return reasons


class _StateCollector(Collector):
    """Reads live state at scrape time, so metrics can never drift from the instances."""

    def __init__(self, provider: StateProvider) -> None:
        self._provider = provider

    def describe(self) -> Iterator[Metric]:
        # names only, so the registry can detect clashes
        return iter(self._families([], 0, with_samples=False))

    def collect(self) -> Iterator[Metric]:
        states, translation_errors = self._provider()
        return iter(self._families(states, translation_errors, with_samples=True))

    @staticmethod
    def _families(states: Sequence[GatewayState], translation_errors: int, with_samples: bool) -> list[Metric]:
        lbl = ["gateway"]
        reloads = CounterMetricFamily("wardgate_reloads", "Successful nginx reloads.", labels=lbl)
        failures = CounterMetricFamily(
            "wardgate_reload_failures",
            "Configurations nginx rejected (nginx -t) or failed to load at reload/start.",
            labels=lbl,
        )
        restarts = CounterMetricFamily(
            "wardgate_nginx_restarts", "Times a dead nginx master was started again.", labels=lbl
        )
        generation = GaugeMetricFamily(
            "wardgate_config_generation", "Configuration generation now serving.", labels=lbl
        )
        age = GaugeMetricFamily(
            "wardgate_config_age_seconds",
            "Seconds since the serving configuration was applied.",
            labels=lbl,
        )
        config_failures = CounterMetricFamily(
            "wardgate_config_failures",
            "Configurations wardgate could not build for the Gateway (translation or rendering failed); "
            "the last good one kept serving.",
            labels=lbl,
        )
        up = GaugeMetricFamily("wardgate_gateway_up", "1 if nginx runs and the last apply succeeded.", labels=lbl)
        errors = GaugeMetricFamily("wardgate_translation_errors", "Problems found translating the resources.")
        if with_samples:
            now = time.time()
            for s in states:
                reloads.add_metric([s.key], s.reloads)
                failures.add_metric([s.key], s.reload_failures)
                config_failures.add_metric([s.key], s.config_failures)
                restarts.add_metric([s.key], s.restarts)
                generation.add_metric([s.key], s.generation)
                if s.last_apply_time is not None:  # no sample rather than a made-up age
                    age.add_metric([s.key], max(0.0, now - s.last_apply_time))
                up.add_metric([s.key], 1.0 if s.up else 0.0)
            errors.add_metric([], translation_errors)
        return [reloads, failures, config_failures, restarts, generation, age, up, errors]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    admin: AdminServer
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            # Full: answer without a thread, so idle connections can't pile threads up.
            try:
                request.settimeout(0.5)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: give the slot back
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _DeadlineReader(io.RawIOBase):
    """Socket reads that give up at a fixed time, however slowly the bytes trickle in."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


def _host_name(header: str) -> str:
    """The host of a Host header, without port, brackets or a final dot, in lower case."""
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "wardgate-admin"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the socket closes only once every file made from it is closed
        # One request per connection (HTTP/1.0), and all of it within the timeout.
        deadline = time.monotonic() + self.server.admin.read_timeout_s
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("admin %s - %s", self.address_string(), format % args)

    def _dispatch(self, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        admin = self.server.admin
        self.connection.settimeout(admin.read_timeout_s)  # the read deadline may be nearly spent
        hosts = self.headers.get_all("Host") or []
        try:
            if len(hosts) > 1:
                status, ctype, body = 400, "text/plain; charset=utf-8", b"more than one Host header\n"
            elif hosts and _host_name(hosts[0]) not in admin.allowed_hosts:
                # DNS rebinding: a page on a foreign name must not read these endpoints
                status, ctype, body = 421, "text/plain; charset=utf-8", b"unknown Host\n"
            elif path == "/healthz":
                status, ctype, body = 200, "text/plain; charset=utf-8", b"ok\n"
            elif path == "/readyz":
                states, _ = admin.state_provider()
                reasons = readiness(states)
                status = 503 if reasons else 200
                ctype, body = "application/json", _json({"ready": not reasons, "reasons": reasons})
            elif path == "/status":
                status, ctype, body = 200, "application/json", _json(admin.status_provider())
            elif path == "/metrics":
                status, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(admin.registry)
            else:
                status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
        except Exception as exc:
            # a broken provider must show up as an error, not kill the admin thread
            log.exception("admin %s failed", path)
            # the type only: an exception's text could quote Secret or ConfigMap data
            status, ctype, body = 500, "application/json", _json({"error": type(exc).__name__})
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, default=str, sort_keys=True) + "\n").encode()


class AdminServer:
    """The admin endpoints. Binds in the constructor, so ``port`` is known before ``start``."""

    def __init__(
        self,
        host: str,
        port: int,
        status_provider: StatusProvider,
        state_provider: StateProvider,
        *,
        allowed_hosts: Sequence[str] = (),
        read_timeout_s: float = 5.0,
        max_connections: int = 16,
    ) -> None:
        self.status_provider = status_provider
        self.state_provider = state_provider
        self.read_timeout_s = read_timeout_s
        self.registry = CollectorRegistry()  # never the global one: tests and embedders stay isolated
        self.registry.register(_StateCollector(state_provider))
        self._server = _Server((host, port), _Handler)
        self._server.admin = self
        self._server.slots = threading.BoundedSemaphore(max_connections)
        self._thread: threading.Thread | None = None
        # Host headers answered: the listen address (unless a wildcard), localhost, and the list.
        names = {"localhost", "127.0.0.1", "::1", *(_host_name(h) for h in allowed_hosts)}
        if host not in ("", "0.0.0.0", "::"):
            names.add(_host_name(f"[{host}]" if ":" in host else host))
        self.allowed_hosts = frozenset(names)

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"wardgate-admin-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout_s)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> AdminServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
