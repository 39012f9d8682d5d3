"""Running one test: the working directory, the Runner, its phases, status checks and cases."""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import ipaddress
import json
import math
import os
import random
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wardgate import CONTROLLER_NAME
from wardgate.runner import Runner, RunnerOptions
from wardgate.verify.conformance.backends import _Backends, _meta, _Pod
from wardgate.verify.conformance.certificates import _Pki
from wardgate.verify.conformance.checks import _Status, evaluate_status_check
from wardgate.verify.conformance.client import Outgoing, RequestError, RoundTrip, TlsSettings, _join_host_port, send
from wardgate.verify.conformance.compare import captured_request, compare_round_trip
from wardgate.verify.conformance.corpus import (
    DISTRIBUTIONS,
    STATUS_CHECKS,
    SUPPORTED_FEATURES,
    ConformanceOptions,
    Json,
)
from wardgate.verify.conformance.websocket import websocket_exchange, websocket_round_trip
from wardgate.verify.conformance_mutations import (
    Mutation,
    MutationError,
    apply_mutation,
    find_object,
    parse_mutation,
)
from wardgate.verify.echo import (
    go_canonical_header,
)

GATEWAY_CLASS_NAME = "wardgate"
REQUIRED_SUCCESSES = 3  # Go RequiredConsecutiveSuccesses
RETRY_DELAY_S = 1.0
MIRROR_WAIT_S = 10.0
STATUS_POLL_S = 0.1
CASE_WORKERS = 8  # cases of one test run in parallel, as the Go suite allows
MIRROR_ID_PARAM = "gateway-api-conformance-request-id"
ROOT_NOTE = "port_offset={offset}: redirect and port expectations need root (port_offset 0)"


@dataclass
class TestResult:
    name: str
    core: bool
    result: str  # pass / fail / skip
    reason: str | None = None
    failed_case: str | None = None

    def to_json(self) -> Json:
        return {"name": self.name, "core": self.core, "result": self.result, "reason": self.reason,
                "failed_case": self.failed_case}


class _Failure(Exception):
    def __init__(self, reason: str, failed_case: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failed_case = failed_case


def await_convergence(attempt: Callable[[], str | None], timeout_s: float,
                      stop: threading.Event | None = None, threshold: int = REQUIRED_SUCCESSES,
                      delay_s: float = RETRY_DELAY_S) -> str | None:
    """Go's AwaitConvergence: ``threshold`` passes in a row within ``timeout_s``; 1 s after a failure."""
    start = time.monotonic()
    deadline = start + timeout_s
    successes = attempts = 0
    last = "no attempt was made"
    while True:
        if stop is not None and stop.is_set():
            return "interrupted"
        if time.monotonic() >= deadline:
            break
        result = attempt()
        attempts += 1
        if result is None:
            successes += 1
            if successes >= threshold:
                return None
            continue
        successes, last = 0, result
        if time.monotonic() + delay_s >= deadline:
            break
        if stop is not None:
            stop.wait(delay_s)
        else:
            time.sleep(delay_s)
    return (f"not consistent within {timeout_s:g}s ({attempts} attempts, {successes}/{threshold} "
            f"consecutive passes); last failure: {last}")


def add_query_param(path: str, name: str, value: str) -> str:
    """Add a parameter the way Go's url.Values.Encode writes the query: sorted by key, query-escaped."""
    base, _, query = path.partition("?")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    pairs.append((name, value))
    pairs.sort(key=lambda kv: kv[0])  # stable: values of one key keep their order
    return base + "?" + "&".join(f"{urllib.parse.quote_plus(k)}={urllib.parse.quote_plus(v)}" for k, v in pairs)


CASE_MODES = frozenset({"eventuallyConsistent", "expectRequestError", "websocket"})
REQUEST_PROTOCOLS = frozenset({None, "HTTPS", "H2", "H2C_PRIOR_KNOWLEDGE", "websocket"})
USABLE_PLACEHOLDER = "PLACEHOLDER_USABLE_ADDRS"
UNUSABLE_PLACEHOLDER = "PLACEHOLDER_UNUSABLE_ADDRS"


def _typed_address(value: str) -> Json:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return {"type": "Hostname", "value": value}
    return {"type": "IPAddress", "value": value}


def fill_addresses(docs: Sequence[Any], usable: Sequence[str], unusable: Sequence[str]) -> bool:
    """Replace the placeholder entries of Gateways' spec.addresses by the supplied addresses, as the
    Go applier does. True when something was replaced."""
    changed = False
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != "Gateway":
            continue
        spec = doc.get("spec") or {}
        entries = spec.get("addresses")
        if not isinstance(entries, list):
            continue
        filled: list[Any] = []
        for entry in entries:
            value = entry.get("value") if isinstance(entry, dict) else None
            supplied = {USABLE_PLACEHOLDER: usable, UNUSABLE_PLACEHOLDER: unusable}.get(str(value))
            if supplied is None:
                filled.append(entry)
                continue
            filled += [_typed_address(a) for a in supplied]
            changed = True
        spec["addresses"] = filled
    return changed


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class _Harness:
    def __init__(self, opts: ConformanceOptions, out: Callable[[str], None]) -> None:
        self.opts = opts
        self.out = out
        self.corpus = opts.corpus
        self.port_offset = opts.port_offset if opts.port_offset is not None else (
            0 if os.geteuid() == 0 else 20000)
        self.stop_event = threading.Event()
        self._own_workdir = opts.workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="wardgate-conformance-")) if opts.workdir is None \
            else opts.workdir
        self.manifests = self.workdir / "manifests"
        self.pki_dir = self.workdir / "pki"
        # A second octet per process keeps concurrent runs (two test sessions) off each other's addresses.
        octet = 64 + os.getpid() % 64
        self.gateway_pool = f"127.{octet}.100.0/24"
        self.pod_pool = f"127.{octet}.64.0/19"
        self.runner: Runner | None = None
        self.backends: _Backends | None = None
        self.pki: _Pki | None = None
        self.base_services: list[Json] = []
        self.last_reconcile_errors: list[str] = []
        self._files: dict[str, Path] = {}
        self._files_lock = threading.Lock()

    # ----------------------------------------------------------------------------- setup

    def setup(self) -> None:
        if self.manifests.exists():
            shutil.rmtree(self.manifests)
        for d in (self.manifests, self.pki_dir, self.workdir / "state"):
            d.mkdir(parents=True, exist_ok=True)
        if self._own_workdir:
            # mkdtemp makes it 0700; nginx workers run as nobody and must reach their temp dirs.
            self.workdir.chmod(0o755)
        self.pki_dir.chmod(0o700)
        self.pki = _Pki()
        _write_docs(self.manifests / "00-gatewayclass.yaml", [{
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS_NAME}, "spec": {"controllerName": CONTROLLER_NAME}}])
        base_text = self._substitute((self.corpus / "base" / "manifests.yaml").read_text(encoding="utf-8"))
        (self.manifests / "01-base.yaml").write_text(base_text, encoding="utf-8")
        _write_docs(self.manifests / "02-suite-secrets.yaml", self.pki.manifests())
        self.backends = _Backends(self.pki, self.pki_dir, self.pod_pool)
        base_docs = [d for d in yaml.safe_load_all(base_text) if isinstance(d, dict)]
        for doc in base_docs:
            if doc.get("kind") == "Deployment":
                self.backends.add_deployment(doc)
        self.base_services = [d for d in base_docs if d.get("kind") == "Service"]
        self.backends.serve(self.base_services)
        _write_docs(self.manifests / "03-base-endpoints.yaml", self.backends.endpoint_slices(self.base_services))
        for problem in self.backends.problems:
            self.out(f"WARN {problem}")
        self.runner = Runner([self.manifests], self.workdir / "state", RunnerOptions(
            listen_host="127.0.0.1", port_offset=self.port_offset, worker_processes=1,
            address_pool=self.gateway_pool))
        self.reconcile()
        base_namespaces = sorted({str(_meta(d).get("namespace")) for d in base_docs if d.get("kind") == "Gateway"})
        not_ready = self.poll_check({"check": "NamespacesMustBeReady", "namespaces": base_namespaces})
        if not_ready:
            self.out(f"WARN base Gateways not ready: {not_ready}")

    def _substitute(self, text: str) -> str:
        return text.replace("{GATEWAY_CLASS_NAME}", GATEWAY_CLASS_NAME).replace(
            "{GATEWAY_CONTROLLER_NAME}", CONTROLLER_NAME)

    def reconcile(self) -> None:
        assert self.runner is not None
        report = self.runner.reconcile()
        self.last_reconcile_errors = list(report.errors)

    def close(self) -> None:
        self.stop_event.set()
        if self.runner is not None:
            with contextlib.suppress(Exception):
                self.runner.stop()
        if self.backends is not None:
            self.backends.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def snapshot(self) -> dict[str, Any]:
        assert self.runner is not None
        return self.runner.status()

    def poll_check(self, check: Mapping[str, Any]) -> str | None:
        state: dict[str, Any] = {}
        deadline = time.monotonic() + self.opts.status_timeout_s
        while True:
            problem = evaluate_status_check(check, self.snapshot(), state)
            if problem is None or time.monotonic() >= deadline or self.stop_event.is_set():
                return problem
            time.sleep(STATUS_POLL_S)

    # ----------------------------------------------------------------------------- one test

    def skip_reason(self, entry: Mapping[str, Any], test: Mapping[str, Any]) -> str | None:
        features = list(test.get("features") or entry.get("features") or [])
        missing = [f for f in features if f not in SUPPORTED_FEATURES]
        if missing:
            return f"needs features wardgate does not claim: {', '.join(missing)}"
        cases = test.get("cases") or []
        ws_cases = [c for c in cases if c.get("mode") == "websocket"]
        for case in ws_cases:
            try:
                websocket_exchange(case.get("websocket") or {})
            except ValueError as exc:
                return f"case {case.get('name')!r}: {exc}"
        for case in cases:
            mode = case.get("mode") or "eventuallyConsistent"
            protocol = (case.get("request") or {}).get("protocol")
            if mode not in CASE_MODES:
                return f"case {case.get('name')!r}: mode {mode!r} is not in FORMAT.md's case modes {sorted(CASE_MODES)}"
            if protocol not in REQUEST_PROTOCOLS:
                return f"case {case.get('name')!r}: request protocol {protocol!r} is not one the harness speaks"
        kinds = [str((c.get("distribution") or {}).get("kind")) for c in cases if c.get("distribution")]
        unknown = [k for k in kinds if k not in DISTRIBUTIONS]
        if unknown:
            return f"distribution check {', '.join(unknown)} is not implemented by the harness"
        # A manual test whose special criteria are distribution or websocket objects is run: both are handled.
        if test.get("manual", entry.get("manual")) and not kinds and not ws_cases:
            notes = str(test.get("notes") or "").strip()
            return "manual test: its pass criterion needs test-specific code the harness lacks" + (
                f" ({notes[:300]})" if notes else "")
        for check in test.get("statusChecks") or []:
            if check.get("check") not in STATUS_CHECKS:
                return f"status check {check.get('check')!r} is not implemented by the harness"
            if check.get("check") == "Mutation":
                try:
                    parse_mutation(check)
                except MutationError as exc:
                    return str(exc)
        manifests = "".join((self.corpus / str(rel)).read_text(encoding="utf-8")
                            for rel in test.get("manifests") or [])
        unfilled = [(placeholder, flag) for placeholder, supplied, flag in (
            (USABLE_PLACEHOLDER, self.opts.usable_addresses, "--usable-address"),
            (UNUSABLE_PLACEHOLDER, self.opts.unusable_addresses, "--unusable-address"),
        ) if placeholder in manifests and not supplied]
        if unfilled:
            return (f"its Gateway addresses need {' and '.join(p for p, _ in unfilled)} filled in (FORMAT.md: "
                    f"addresses the implementation supplies); give them with {' and '.join(f for _, f in unfilled)}")
        if any((c.get("request") or {}).get("protocol") in ("H2", "H2C_PRIOR_KNOWLEDGE") for c in cases):
            try:
                import h2.connection  # noqa: F401
            except ImportError:
                return "HTTP/2 cases need the 'h2' package"
        return None

    def run_test(self, entry: Mapping[str, Any]) -> TestResult:
        name = str(entry["name"])
        test = json.loads((self.corpus / str(entry["file"])).read_text(encoding="utf-8"))
        core = bool(test.get("core", entry.get("core", False)))
        reason = self.skip_reason(entry, test)
        if reason:
            return TestResult(name, core, "skip", reason)
        stage = self.manifests / "tests" / _safe_name(name)
        docs_by_file: dict[Path, list[Any]] = {}
        test_pods: list[_Pod] = []
        services: list[Json] = []
        assert self.backends is not None
        try:
            stage.mkdir(parents=True, exist_ok=True)
            for i, rel in enumerate(test.get("manifests") or []):
                text = self._substitute((self.corpus / str(rel)).read_text(encoding="utf-8"))
                path = stage / f"{i:02d}-{Path(str(rel)).name}"
                path.write_text(text, encoding="utf-8")
                docs = list(yaml.safe_load_all(text))
                if fill_addresses(docs, self.opts.usable_addresses, self.opts.unusable_addresses):
                    _write_docs(path, docs)
                docs_by_file[path] = docs
                for doc in docs:
                    if isinstance(doc, dict) and doc.get("kind") == "Deployment":
                        test_pods += self.backends.add_deployment(doc)
                    elif isinstance(doc, dict) and doc.get("kind") == "Service":
                        services.append(doc)
            if services or test_pods:
                self.backends.serve(self.base_services + services)
                _write_docs(stage / "zz-endpoints.yaml", self.backends.endpoint_slices(services))
            self.reconcile()
            self._run_phases(test, docs_by_file)
            return TestResult(name, core, "pass")
        except _Failure as exc:
            reason = exc.reason
            if self.last_reconcile_errors:
                reason += f" [reconcile errors: {'; '.join(self.last_reconcile_errors)[:500]}]"
            return TestResult(name, core, "fail", reason, exc.failed_case)
        except Exception as exc:  # a harness or corpus problem must not end the whole run
            return TestResult(name, core, "fail", f"harness error: {type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            self.backends.stop(test_pods)
            self.backends.forget(services)
            if not self.stop_event.is_set():
                self.reconcile()

    def _run_phases(self, test: Mapping[str, Any], docs_by_file: dict[Path, list[Any]]) -> None:
        phases: list[tuple[Mutation | None, list[tuple[int, Json]]]] = [(None, [])]
        for i, check in enumerate(test.get("statusChecks") or []):
            if check.get("check") == "Mutation":
                phases.append((parse_mutation(check), []))
            else:
                phases[-1][1].append((i, check))
        phase_of = {m.index: n for n, (m, _) in enumerate(phases) if m is not None}
        cases_by_phase: dict[int, list[Json]] = {}
        for case in test.get("cases") or []:
            after = case.get("afterMutation")
            if after is not None and after not in phase_of:
                raise _Failure(f"case {case.get('name')!r} runs after unknown mutation #{after}", case.get("name"))
            cases_by_phase.setdefault(phase_of.get(after, 0) if after is not None else 0, []).append(case)
        for n, (mutation, checks) in enumerate(phases):
            if mutation is not None:
                self._mutate(mutation, docs_by_file)
            for i, check in checks:
                problem = self.poll_check(check)
                if problem is not None:
                    raise _Failure(f"status check #{i} {check.get('check')}: {problem}",
                                   f"statusChecks[{i}] {check.get('check')}")
            self._run_cases(test, cases_by_phase.get(n, []))

    def _mutate(self, mutation: Mutation, docs_by_file: dict[Path, list[Any]]) -> None:
        label = f"Mutation #{mutation.index}"
        before = self._generation(mutation)
        for path, docs in docs_by_file.items():
            if find_object(docs, mutation.kind, mutation.namespace, mutation.name) is not None:
                try:
                    apply_mutation(docs, mutation)
                except MutationError as exc:
                    raise _Failure(f"{label}: {exc}", label) from None
                _write_docs(path, docs)
                break
        else:
            raise _Failure(f"{label}: {mutation.kind} {mutation.namespace}/{mutation.name} is not in the "
                           "test's manifests", label)
        self.reconcile()
        if mutation.action == "Patch" and before is not None:
            after = self._generation(mutation)
            if after == before:
                raise _Failure(f"{label} ({mutation.description}): metadata.generation stayed {before}", label)

    def _generation(self, mutation: Mutation) -> int | None:
        obj = _Status(self.snapshot()).get(mutation.kind, mutation.namespace, mutation.name)
        gen = obj.get("generation") if obj else None
        return gen if isinstance(gen, int) else None

    def _run_cases(self, test: Mapping[str, Any], cases: list[Json]) -> None:
        if not cases:
            return
        workers = max(1, min(CASE_WORKERS, len(cases)))
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="conformance-case")
        try:
            futures = [pool.submit(self._run_case, test, case) for case in cases]
            results = [f.result() for f in futures]
        except BaseException:
            # Ctrl-C: tell the workers to give up instead of waiting out their case timeouts.
            self.stop_event.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        for case, result in zip(cases, results, strict=True):
            if result is not None:
                note = ""
                if self.port_offset and (case.get("expected") or {}).get("redirect"):
                    note = f" [{ROOT_NOTE.format(offset=self.port_offset)}]"
                raise _Failure(f"case {case.get('name')!r}: {result}{note}", str(case.get("name")))

    # ----------------------------------------------------------------------------- one case

    def gateway_ip(self, namespace: str, name: str) -> str:
        deadline = time.monotonic() + self.opts.status_timeout_s
        while True:
            gw = _Status(self.snapshot()).get("Gateway", namespace, name)
            addresses = ((gw or {}).get("status") or {}).get("addresses") or []
            if addresses and addresses[0].get("value"):
                return str(addresses[0]["value"])
            if time.monotonic() >= deadline or self.stop_event.is_set():
                raise _Failure(f"Gateway {namespace}/{name} has no address in status")
            time.sleep(STATUS_POLL_S)

    def ref_file(self, ref: str) -> str:
        assert self.pki is not None
        with self._files_lock:
            path = self._files.get(ref)
            if path is None:
                path = self.pki_dir / f"ref-{len(self._files)}.pem"
                path.write_bytes(self.pki.resolve(ref))
                self._files[ref] = path
            return str(path)

    def tls_settings(self, tls: Mapping[str, Any] | None) -> TlsSettings | None:
        if not tls:
            return None
        assert self.pki is not None
        cert, key = tls.get("clientCertificate"), tls.get("clientKey")
        return TlsSettings(str(tls.get("serverName") or ""), self.pki.resolve(str(tls.get("serverCertificate"))),
                           self.ref_file(str(cert)) if cert else None, self.ref_file(str(key)) if key else None)

    def _run_case(self, test: Mapping[str, Any], case: Mapping[str, Any]) -> str | None:
        try:
            return self._case(test, case)
        except _Failure as exc:
            return exc.reason
        except KeyError as exc:
            return f"cannot resolve {exc}"
        except Exception as exc:  # report it against this case instead of aborting the run
            return f"harness error: {type(exc).__name__}: {exc}"

    def _case(self, test: Mapping[str, Any], case: Mapping[str, Any]) -> str | None:
        gwref = case.get("gateway") or test.get("gateway") or {}
        ip = self.gateway_ip(str(gwref.get("namespace")), str(gwref.get("name")))
        scheme = str(gwref.get("scheme") or "http")
        port = int(gwref.get("port") or _default_port(scheme))
        if gwref.get("portImplicit"):
            port = _default_port(scheme)  # Go dialled a port-less address: the scheme's port
        authority = _join_host_port(ip, None if port == _default_port(scheme) else port)
        base_request: Json = copy.deepcopy(dict(case.get("request") or {}))
        base_expected: Json = copy.deepcopy(dict(case.get("expected") or {}))
        tls = self.tls_settings(base_request.get("tls"))
        mirrors = [m for m in base_expected.get("mirroredTo") or [] if m.get("percent") is None]
        if base_expected.get("mirroredTo"):
            request_id = str(uuid.uuid4())
            base_request["path"] = add_query_param(str(base_request.get("path") or "/"), MIRROR_ID_PARAM, request_id)
            if base_expected.get("request"):
                base_expected["request"]["path"] = add_query_param(
                    str(base_expected["request"].get("path") or ""), MIRROR_ID_PARAM, request_id)
        templates = dict(case.get("templates") or {})

        def prepared(extra_headers: Mapping[str, str] | None = None) -> tuple[Json, Json, Outgoing]:
            request = copy.deepcopy(base_request)
            expected = copy.deepcopy(base_expected)
            for placeholder in templates:
                value = str(uuid.uuid4())
                request["path"] = str(request.get("path") or "").replace(placeholder, value)
                if expected.get("request") and expected["request"].get("path"):
                    expected["request"]["path"] = str(expected["request"]["path"]).replace(placeholder, value)
            if extra_headers:
                request["headers"] = {**(request.get("headers") or {}), **extra_headers}
            return request, expected, self._outgoing(request, expected, scheme, authority, tls)

        def attempt(extra_headers: Mapping[str, str] | None = None) -> tuple[str | None, RoundTrip | None]:
            request, expected, out = prepared(extra_headers)
            try:
                rt = send(out, self.port_offset)
            except RequestError as exc:
                return f"request error: {exc}", None
            assert self.pki is not None
            return compare_round_trip(request, expected, rt, out.url, self.pki.resolve), rt

        mode = case.get("mode") or "eventuallyConsistent"
        if mode == "websocket":
            return self._websocket_case(test, case, self._outgoing(base_request, base_expected, scheme, authority,
                                                                   tls), base_expected)
        if mode == "expectRequestError":
            _request, _expected, out = prepared()
            try:
                rt = send(out, self.port_offset)
            except RequestError:
                return None
            return f"expected the request to fail at the transport/TLS level, got HTTP {rt.status}"
        if mode != "eventuallyConsistent":
            return f"mode {mode!r} is not implemented by the harness"
        problem = await_convergence(lambda: attempt()[0], self.opts.case_timeout_s, self.stop_event)
        if problem is not None:
            return problem
        for mirror in mirrors:
            problem = self._await_mirror(mirror, [str(base_request.get("path")),
                                                  str((base_expected.get("request") or {}).get("path"))])
            if problem is not None:
                return problem
        dist = case.get("distribution")
        if dist:
            return self._distribution(dict(dist), dict(case.get("request") or {}), base_expected,
                                      (scheme, authority, tls), attempt, prepared)
        return None

    def _websocket_case(self, test: Mapping[str, Any], case: Mapping[str, Any], out: Outgoing,
                        expected: Mapping[str, Any]) -> str | None:
        spec = case.get("websocket") or {}
        exchange = websocket_exchange(spec)
        # Go's t.Name() of the subtest: the test, then the case name with spaces turned into underscores.
        go_name = f"{test.get('name')}/{str(case.get('name') or '').replace(' ', '_')}"
        origin = str(spec["origin"]).replace("<go test name>", go_name) if spec.get("origin") else None
        # websocket.Dial sends its own handshake headers and Origin only: no X-Echo-Set-Header, no User-Agent.
        out.headers = [(name, value) for name, value in out.headers if name != "X-Echo-Set-Header"]
        codes = [int(c) for c in (expected.get("statusCodes") or [101])]
        return await_convergence(
            lambda: websocket_round_trip(out, exchange, origin=origin, status_codes=codes,
                                         port_offset=self.port_offset),
            self.opts.case_timeout_s, self.stop_event)

    def _outgoing(self, request: Mapping[str, Any], expected: Mapping[str, Any], scheme: str, authority: str,
                  tls: TlsSettings | None) -> Outgoing:
        headers: dict[str, str] = {}
        set_headers = expected.get("backendSetResponseHeaders") or {}
        headers["X-Echo-Set-Header"] = ",".join(f"{k}:{v}" for k, v in set_headers.items())
        for name, value in (request.get("headers") or {}).items():
            canon = go_canonical_header(str(name))
            if canon == "Host":
                continue  # Go sends req.Host, never a Host entry of the header map
            headers[canon] = str(value)
        path, sep, query = str(request.get("path") or "/").partition("?")
        # Like Go's URL.EscapedPath for what a request line cannot carry (spaces, controls, non-ASCII).
        path = urllib.parse.quote(path, safe="/%!$&'()*+,;=:@-._~") + sep + query
        return Outgoing(
            method=str(request.get("method") or "GET"), scheme=scheme, authority=authority,
            path=path, host=str(request.get("host") or authority),
            headers=list(headers.items()), protocol=request.get("protocol"),
            follow_redirects=not request.get("unfollowRedirect"), tls=tls)

    def _await_mirror(self, mirror: Mapping[str, Any], paths: Sequence[str]) -> str | None:
        assert self.backends is not None
        ns, name = str(mirror.get("namespace") or ""), str(mirror.get("name"))
        servers = self.backends.echo_servers_for(ns, name)
        if not servers:
            return f"no echo backend runs for mirror target {ns}/{name}"
        deadline = time.monotonic() + MIRROR_WAIT_S
        # Go looks for the path as sent; a rewriting route would log the expected path: accept either.
        wanted = {p for p in paths if p and p != "None"}
        while True:
            if any(p in wanted for s in servers for p in s.seen_paths):
                return None
            if time.monotonic() >= deadline or self.stop_event.is_set():
                return f"mirror backend {ns}/{name} did not log a request to {sorted(wanted)} within {MIRROR_WAIT_S:g}s"
            time.sleep(0.1)

    # ----------------------------------------------------------------------------- distributions

    def _distribution(self, dist: Json, base_request: Json, base_expected: Json,
                      target: tuple[str, str, TlsSettings | None],
                      attempt: Callable[[Mapping[str, str] | None], tuple[str | None, RoundTrip | None]],
                      prepared: Callable[[Mapping[str, str] | None], tuple[Json, Json, Outgoing]]) -> str | None:
        kind = dist.get("kind")
        if kind == "weightedBackends":
            return self._weighted(dist, attempt)
        if kind == "backendHeaderMatchesPod":
            return self._header_matches_pod(dist, prepared)
        if kind == "mirrorPercentage":
            return self._mirror_percentage(dist, base_request, base_expected, target)
        return f"distribution check {kind!r} is not implemented by the harness"

    def _weighted(self, dist: Json,
                  attempt: Callable[[Mapping[str, str] | None], tuple[str | None, RoundTrip | None]]) -> str | None:
        weights = {str(k): float(v) for k, v in (dist.get("expectedWeights") or {}).items()}
        total = int(dist.get("totalRequests") or 500)
        workers = int(dist.get("concurrency") or 10)
        tolerance = float(dist.get("tolerance") or 0.05)
        problem = "no batch was sent"
        for batch in range(int(dist.get("maxAttempts") or 1)):
            if self.stop_event.is_set():
                return "interrupted"

            def one(_i: int) -> tuple[str | None, str]:
                # http.AddEntropy: half of the requests carry a random X-Jitter header.
                extra = {"X-Jitter": str(random.randint(0, 9999))} if random.random() < 0.5 else None
                result, rt = attempt(extra)
                if result is not None or rt is None:
                    return result or "no response", ""
                pod = str(captured_request(rt, "GET").get("pod") or "")
                return None, "-".join(pod.split("-")[:-2])

            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                outcomes = list(pool.map(one, range(total)))
            errors = [r for r, _ in outcomes if r is not None]
            seen = Counter(b for r, b in outcomes if r is None)
            if errors:
                problem = f"batch {batch + 1}: {len(errors)}/{total} requests failed, e.g. {errors[0]}"
                continue
            unexpected = sorted(b for b in seen if b not in weights)
            expected_backends = [b for b, w in weights.items() if w > 0]
            off = {b: seen.get(b, 0) / total for b, w in weights.items()
                   if abs(seen.get(b, 0) / total - w) > tolerance}
            if unexpected:
                problem = f"batch {batch + 1}: requests reached unexpected backends {unexpected}"
            elif len(seen) != len(expected_backends):
                problem = f"batch {batch + 1}: saw backends {dict(seen)}, expected {expected_backends}"
            elif off:
                problem = (f"batch {batch + 1}: distribution {dict(seen)} of {total} is off the weights "
                           f"{weights} by more than {tolerance}")
            else:
                return None
        return f"weighted distribution: {problem}"

    def _header_matches_pod(self, dist: Json,
                            prepared: Callable[[Mapping[str, str] | None], tuple[Json, Json, Outgoing]]) -> str | None:
        m = re.search(r"header '([^']+)'", str(dist.get("pass") or ""))
        header = m.group(1) if m else "Backend"
        for i in range(int(dist.get("requests") or 100)):
            if self.stop_event.is_set():
                return "interrupted"
            _request, _expected, out = prepared(None)
            try:
                rt = send(out, self.port_offset)
            except RequestError as exc:
                return f"request {i + 1}: {exc}"
            if rt.status != 200:
                return f"request {i + 1}: status {rt.status}"
            cap = captured_request(rt, out.method)
            values = {str(k).lower(): v for k, v in (cap.get("headers") or {}).items()}.get(header.lower()) or []
            if len(values) != 1:
                return f"request {i + 1}: expected one {header!r} header at the backend, got {values}"
            pod = str(cap.get("pod") or "")
            if not pod.startswith(str(values[0])):
                return f"request {i + 1}: pod {pod!r} does not start with {header} {values[0]!r}"
        return None

    def _mirror_percentage(self, dist: Json, base_request: Json, base_expected: Json,
                           target: tuple[str, str, TlsSettings | None]) -> str | None:
        assert self.backends is not None
        mirror = next((m for m in base_expected.get("mirroredTo") or [] if m.get("percent") is not None), None)
        if mirror is None:
            return "mirrorPercentage without a mirroredTo percent"
        servers = self.backends.echo_servers_for(str(mirror.get("namespace") or ""), str(mirror.get("name")))
        if not servers:
            return f"no echo backend runs for mirror target {mirror.get('namespace')}/{mirror.get('name')}"
        n = int(dist.get("totalRequests") or 500)
        p = float(mirror["percent"]) / 100.0
        k = float(dist.get("toleranceStdDevs") or 3.0)
        low, high = n * p - k * math.sqrt(n * p * (1 - p)), n * p + k * math.sqrt(n * p * (1 - p))
        original_path = base_request.get("path") or "/"  # as in the corpus, without a request id
        problem = "no batch was sent"
        for batch in range(int(dist.get("maxAttempts") or 1)):
            # A fresh request id per batch so the count covers exactly this batch's mirrored requests.
            request = copy.deepcopy(base_request)
            request["path"] = add_query_param(str(original_path), MIRROR_ID_PARAM, str(uuid.uuid4()))
            out = self._outgoing(request, base_expected, *target)

            def one(_i: int, out: Outgoing = out) -> int:
                try:
                    return send(out, self.port_offset).status
                except RequestError:
                    return 0

            with concurrent.futures.ThreadPoolExecutor(max_workers=int(dist.get("concurrency") or 10)) as pool:
                statuses = list(pool.map(one, range(n)))
            bad = [s for s in statuses if s != 200]
            if bad:
                problem = f"batch {batch + 1}: {len(bad)}/{n} requests did not get 200 (e.g. {bad[0]})"
                continue
            count, stable_since = -1, time.monotonic()
            deadline = time.monotonic() + MIRROR_WAIT_S
            while time.monotonic() < deadline:  # mirrored requests may trail the responses a little
                now_count = sum(1 for s in servers for seen in s.seen_paths if seen == out.path)
                if now_count != count:
                    count, stable_since = now_count, time.monotonic()
                elif time.monotonic() - stable_since >= 1.0:
                    break
                time.sleep(0.1)
            if low <= count <= high:
                return None
            problem = f"batch {batch + 1}: {count} of {n} requests mirrored, expected {low:.0f}..{high:.0f}"
        return f"mirror percentage: {problem}"


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _write_docs(path: Path, docs: Sequence[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump_all(list(docs), sort_keys=False), encoding="utf-8")
    tmp.replace(path)
