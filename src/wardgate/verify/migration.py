"""`wardgate verify migration`: prove, request by request, that migrated Ingresses behave as before.

For each case of a corpus in the format of the migration corpus's FORMAT.md (docs/migration-cases.md):
its Ingress manifests go through `wardgate migrate`; the result runs on real wardgate Gateways (one
Runner, real nginx, one address per Gateway) in front of real echo backends (threads of this
process, one loopback address per pod); the case's requests are sent as written and the answers
compared with what ingress-nginx gives.

One Runner serves the whole run: a case replaces the objects it serves and nginx reloads, so a case
costs a reload, not a start. A case with state (repeated requests, pauses, rate limits) first stops
every Gateway, so it starts with fresh nginx shared memory (rate-limit zones).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wardgate import CONTROLLER_NAME
from wardgate.errors import InputError, Origin, Problem
from wardgate.runner import Runner, RunnerOptions
from wardgate.sources import RawObject, load_text
from wardgate.verify.echo import AuthRule, CaseBackend, EchoIdentity, EchoServer, SeenRequest
from wardgate.verify.migration_client import ClientError, Connection, Endpoint, server_name
from wardgate.verify.migration_expect import (
    AGGREGATE,
    CaseFormatError,
    Observed,
    check_aggregate,
    check_single,
    echo_of,
)

Json = dict[str, Any]

GATEWAY_CLASS = "wardgate"
LISTEN_WAIT_S = 10.0
# ingress-nginx's creationTimestamp order decides between Ingresses; a kubectl export carries it.
STAMP_BASE = 1767225600  # 2026-01-01T00:00:00Z
STAMP_STEP_S = 2  # FORMAT.md's applyOrder: sequential, >= 1.1 s apart
DEFAULT_SCHEME_PORTS = {"http": 80, "https": 443}
# Kinds of the case's own manifests that the Gateways need besides what migrate writes.
PASSED_THROUGH = frozenset({"Namespace", "Secret", "ConfigMap", "Service"})
MIGRATED_FROM = "wardgate.io/migrated-from"
INGRESS_CLASS_ANNOTATION = "wardgate.io/ingress-class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
# ingress-nginx always serves port 443, hosts without a certificate of their own with its default
# one (a self-signed one it makes, unless --default-ssl-certificate names one). The harness plays
# that certificate: a self-signed Secret of its own, given to migrate as --default-certificate.
DEFAULT_CERTIFICATE = ("wardgate-verify", "default-certificate")


@dataclass
class MigrationVerifyOptions:
    cases: Path  # the corpus root or its cases/ folder
    only: list[str] = field(default_factory=list)
    # Hand-written (or hand-edited) migration output: DIR/<case id>.yaml is served instead of
    # running `wardgate migrate` on the case's manifests.
    migrated: Path | None = None
    port_offset: int | None = None  # default: 0 as root, else 20000 (ports 80/443 need root)
    gateway_pool: str | None = None  # one address per Gateway; default 127.<n>.1.0/24
    pod_pool: str | None = None  # one address per echo pod; default 127.<n>.128.0/17
    nginx_bin: str = "nginx"
    timeout_s: float = 10.0  # per request


@dataclass
class CaseResult:
    id: str
    result: str  # pass / fail / error
    reason: str | None = None
    failed_request: str | None = None
    seconds: float = 0.0

    def to_json(self) -> Json:
        return {"id": self.id, "result": self.result, "reason": self.reason,
                "failed_request": self.failed_request, "seconds": round(self.seconds, 2)}


class _CaseError(Exception):
    """The case could not be run (malformed case, migrate failed, no backend for a Service)."""


class _Failure(Exception):
    def __init__(self, reason: str, failed_request: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failed_request = failed_request


# ================================================================================ corpus

def case_files(path: Path) -> list[Path]:
    """The case files of a corpus: DIR/cases/*.json, or DIR/*.json when DIR is that folder."""
    folder = path / "cases" if (path / "cases").is_dir() else path
    if not folder.is_dir():
        raise _input_error(f"{path}: not a directory of migration cases")
    files = sorted(p for p in folder.glob("*.json") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise _input_error(f"{folder}: no case files (*.json)")
    return files


def _input_error(message: str) -> InputError:
    return InputError([Problem(message)])


def load_case(path: Path) -> Json:
    try:
        case = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _CaseError(f"{path.name}: cannot read the case: {exc}") from None
    if not isinstance(case, dict):
        raise _CaseError(f"{path.name}: a case is a JSON object")
    for key, kind in (("manifests", str), ("requests", list), ("backends", dict)):
        if not isinstance(case.get(key), kind):
            raise _CaseError(f"{path.name}: field {key!r} must be a {kind.__name__}")
    return case


# ================================================================================ migration

@dataclass
class Migrated:
    objects: list[Json]
    gateways: dict[str, str]  # ingress class -> "namespace/name" of the Gateway serving it
    default_gateway: str | None


def _meta(doc: Mapping[str, Any]) -> Json:
    meta = doc.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _ns(doc: Mapping[str, Any]) -> str:
    return str(_meta(doc).get("namespace") or "default")


def _key(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    return str(doc.get("kind")), _ns(doc), str(_meta(doc).get("name"))


def stamp_creation(raws: Sequence[RawObject]) -> None:
    """Give objects without a creationTimestamp one in document order, 2 s apart, as a cluster
    export of objects applied in that order would have."""
    for i, raw in enumerate(raws):
        meta = raw.data.setdefault("metadata", {})
        if isinstance(meta, dict) and not meta.get("creationTimestamp"):
            meta["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                      time.gmtime(STAMP_BASE + STAMP_STEP_S * i))


def run_migrate(raws: list[RawObject], default_certificate: tuple[str, str] | None = DEFAULT_CERTIFICATE) -> tuple[
        list[Json], dict[str, str]]:
    """`wardgate migrate` on the case's objects, with `--default-certificate` unless a controller
    Deployment among them names its own: the output objects and which Gateway is each ingress
    class's entrypoint (the first, when a class maps to several)."""
    from wardgate.migrate import MigrateOptions, migrate
    from wardgate.migrate.ingress import read_inputs

    if any(c.default_certificate for c in read_inputs(raws).controllers):
        default_certificate = None
    try:
        result = migrate(raws, MigrateOptions(default_certificate=default_certificate))
    except InputError as exc:
        raise _CaseError("migrate refused the input: " + "; ".join(str(p) for p in exc.problems)[:800]) from None
    except Exception as exc:  # a migrate bug is this case's error, not the end of the run
        raise _CaseError(f"migrate raised {type(exc).__name__}: {exc}") from None
    gateways = {cls: str(info.gateways[0]) for cls, info in result.report.classes.items() if info.gateways}
    return result.objects, gateways


def _ingress_class(doc: Mapping[str, Any], default_class: str | None) -> str | None:
    spec = doc.get("spec") or {}
    name = spec.get("ingressClassName") if isinstance(spec, dict) else None
    if not name:
        name = (_meta(doc).get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION)
    return str(name) if name else default_class


def gateways_by_class(objects: Sequence[Json], inputs: Sequence[Json],
                      hint: Mapping[str, str] | None = None) -> tuple[dict[str, str], str | None]:
    """Which migrated Gateway is each ingress class's entrypoint, and the default one.

    In order: what migrate's result says; a Gateway annotated `wardgate.io/ingress-class`; a
    Gateway named like the class; the Gateway most routes of the class's Ingresses attach to
    (through `wardgate.io/migrated-from`), routes with one parent counting first.
    """
    gateways = {f"{_ns(g)}/{_meta(g).get('name')}": g for g in objects if g.get("kind") == "Gateway"}
    classes = [str(_meta(c).get("name")) for c in inputs if c.get("kind") == "IngressClass"]
    default_class = next((str(_meta(c).get("name")) for c in inputs if c.get("kind") == "IngressClass"
                          and str((_meta(c).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION)) == "true"),
                         None)
    if default_class is None and len(classes) == 1:
        default_class = classes[0]
    mapping: dict[str, str] = {}
    for cls, key in (hint or {}).items():
        if key in gateways:
            mapping[cls] = key
    for key, gw in gateways.items():
        for cls in str((_meta(gw).get("annotations") or {}).get(INGRESS_CLASS_ANNOTATION) or "").split(","):
            if cls.strip():
                mapping.setdefault(cls.strip(), key)
    for cls in classes:
        named = [k for k, g in gateways.items() if _meta(g).get("name") == cls]
        if cls not in mapping and len(named) == 1:
            mapping[cls] = named[0]
    class_of = {f"Ingress {_ns(i)}/{_meta(i).get('name')}": _ingress_class(i, default_class)
                for i in inputs if i.get("kind") == "Ingress"}
    votes: dict[str, dict[str, float]] = {}
    for obj in objects:
        refs = (obj.get("spec") or {}).get("parentRefs") if isinstance(obj.get("spec"), dict) else None
        origin = (_meta(obj).get("annotations") or {}).get(MIGRATED_FROM)
        if not refs or not origin:
            continue
        parents = [f"{ref.get('namespace') or _ns(obj)}/{ref.get('name')}" for ref in refs
                   if isinstance(ref, dict) and (ref.get("kind") or "Gateway") == "Gateway"]
        weight = 1.0 if len(set(parents)) == 1 else 0.01
        for item in str(origin).split(","):
            source = item.strip() if item.strip().startswith("Ingress ") else f"Ingress {item.strip()}"
            ingress_class = class_of.get(source)
            if ingress_class is None:
                continue
            tally = votes.setdefault(ingress_class, {})
            for parent in parents:
                if parent in gateways:
                    tally[parent] = tally.get(parent, 0.0) + weight
    for voted, tally in votes.items():
        if voted not in mapping and tally:
            mapping[voted] = max(sorted(tally), key=lambda k: tally[k])
    default = mapping.get(default_class) if default_class else None
    if default is None and len(gateways) == 1:
        default = next(iter(gateways))
    if default is None and "nginx" in mapping:
        default = mapping["nginx"]
    return mapping, default


# ================================================================================ backends

@dataclass
class _Backend:
    key: str
    service: Json
    port: Json  # the Service port it serves
    servers: list[EchoServer]
    auth: bool


class _CaseBackends:
    """The echo pods of one case: each replica on its own loopback address, at the targetPort."""

    def __init__(self, case: Json, services: Sequence[Json], addresses: Iterator[str],
                 tls_files: Callable[[], tuple[str, str]]) -> None:
        self.backends: dict[str, _Backend] = {}
        try:
            for key, spec in case["backends"].items():
                self._start(str(key), spec, services, addresses, tls_files)
        except BaseException:
            self.stop()
            raise

    def _start(self, key: str, spec: Any, services: Sequence[Json], addresses: Iterator[str],
               tls_files: Callable[[], tuple[str, str]]) -> None:
        if not isinstance(spec, dict):
            raise _CaseError(f"backend {key!r}: must be an object")
        unknown = sorted(set(spec) - {"port", "replicas", "tls", "mode", "rules", "statusFromRequestHeader",
                                      "extraResponseHeaders"})
        if unknown:
            raise _CaseError(f"backend {key!r}: unknown option(s) {unknown}")
        svc = _find_service(key, services)
        port = _service_port(key, svc, spec.get("port"))
        target = port.get("targetPort", port.get("port"))
        if not isinstance(target, int):
            target = 8443 if spec.get("tls") else 8080  # FORMAT.md §2: the pods' ports
        mode = spec.get("mode")
        if mode not in (None, "echo", "auth"):
            raise _CaseError(f"backend {key!r}: unknown mode {mode!r}")
        rules = tuple(_auth_rule(key, r) for r in spec.get("rules") or []) if mode == "auth" else ()
        if mode == "auth" and not rules:
            raise _CaseError(f"backend {key!r}: mode auth needs rules")
        extra = spec.get("extraResponseHeaders") or {}
        status_header = spec.get("statusFromRequestHeader")
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0 or replicas > 16:
            raise _CaseError(f"backend {key!r}: replicas must be 0..16")
        certfile, keyfile = tls_files() if spec.get("tls") else (None, None)
        backend = _Backend(key, svc, port, [], mode == "auth")
        self.backends[key] = backend
        for i in range(replicas):
            behaviour = CaseBackend(service=key, instance=f"{key.replace('/', '-')}-{i}", auth_rules=rules,
                                    status_header=str(status_header) if status_header else None,
                                    extra_headers=tuple((str(k), str(v)) for k, v in dict(extra).items()))
            server = EchoServer(next(addresses), target, EchoIdentity(namespace=_ns(svc), pod=behaviour.instance,
                                                                      service=key),
                                certfile=certfile, keyfile=keyfile, log=_quiet, case=behaviour)
            backend.servers.append(server.start())

    @property
    def keys(self) -> list[str]:
        return list(self.backends)

    @property
    def auth_keys(self) -> list[str]:
        return [k for k, b in self.backends.items() if b.auth]

    def endpoint_slices(self) -> list[Json]:
        docs = []
        for b in self.backends.values():
            if not b.servers:
                continue  # replicas 0: a Service without endpoints
            meta = _meta(b.service)
            port: Json = {"port": b.servers[0].port, "protocol": "TCP"}
            if b.port.get("name"):
                port["name"] = b.port["name"]
            docs.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{meta.get('name')}-verify", "namespace": _ns(b.service),
                             "labels": {"kubernetes.io/service-name": meta.get("name")}},
                "addressType": "IPv4", "ports": [port],
                "endpoints": [{"addresses": [s.host], "conditions": {"ready": True}} for s in b.servers],
            })
        return docs

    def counts(self) -> dict[str, int]:
        return {k: sum(len(s.received) for s in b.servers) for k, b in self.backends.items()}

    def received_since(self, before: Mapping[str, int]) -> dict[str, list[SeenRequest]]:
        out = {}
        for k, b in self.backends.items():
            seen = sorted((r for s in b.servers for r in s.received), key=lambda r: r.at)
            # The deques hold the last 10,000 requests: a case never comes near that.
            out[k] = seen[before.get(k, 0):]
        return out

    def stop(self) -> None:
        for b in self.backends.values():
            for s in b.servers:
                with contextlib.suppress(Exception):
                    s.stop()


def _find_service(key: str, services: Sequence[Json]) -> Json:
    ns, _, name = key.rpartition("/")
    found = [s for s in services if _meta(s).get("name") == name and (not ns or _ns(s) == ns)]
    if len(found) > 1:
        found = [s for s in found if _ns(s) == "default"] or found
    if len(found) != 1:
        raise _CaseError(f"backend {key!r}: {'no' if not found else 'more than one'} Service of that name in "
                         "the manifests (name it namespace/name)")
    return found[0]


def _service_port(key: str, svc: Json, wanted: Any) -> Json:
    ports = [p for p in (svc.get("spec") or {}).get("ports") or [] if isinstance(p, dict)]
    match = [p for p in ports if wanted is None or p.get("port") == wanted]
    if len(match) != 1:
        raise _CaseError(f"backend {key!r}: Service {_ns(svc)}/{_meta(svc).get('name')} has no single port {wanted}")
    return match[0]


def _auth_rule(key: str, rule: Any) -> AuthRule:
    if not isinstance(rule, dict) or not ("whenHeader" in rule or rule.get("default")):
        raise _CaseError(f"backend {key!r}: an auth rule needs whenHeader or default: true")
    status = rule.get("status", 200)
    if not isinstance(status, int) or not 200 <= status <= 599:
        raise _CaseError(f"backend {key!r}: auth rule status {status!r}")
    return AuthRule(status=status,
                    when_header=tuple((str(k), str(v)) for k, v in dict(rule.get("whenHeader") or {}).items()),
                    headers=tuple((str(k), str(v)) for k, v in dict(rule.get("headers") or {}).items()),
                    default=bool(rule.get("default")))


def _quiet(_line: str) -> None:
    pass


# ================================================================================ the harness

@dataclass
class _Entrypoint:
    gateway: str
    listeners: dict[tuple[str, int], tuple[str, int]]  # (protocol, declared port) -> (address, port)


class MigrationHarness:
    def __init__(self, opts: MigrationVerifyOptions, out: Callable[[str], None] = print) -> None:
        self.opts = opts
        self.out = out
        self.port_offset = opts.port_offset if opts.port_offset is not None else (0 if os.geteuid() == 0 else 20000)
        octet = 10 + os.getpid() % 50  # keeps two concurrent runs (and the other harnesses) apart
        self.gateway_pool = opts.gateway_pool or f"127.{octet}.1.0/24"
        self._pods = (str(a) for a in ipaddress.IPv4Network(opts.pod_pool or f"127.{octet}.128.0/17").hosts())
        self.workdir = Path(tempfile.mkdtemp(prefix="wardgate-verify-migration-"))
        self.workdir.chmod(0o755)  # nginx workers (nobody) reach their temp dirs below it
        self._objects: list[RawObject] = []
        self._lock = threading.Lock()
        self._tls: tuple[str, str] | None = None
        self._default_cert: list[Json] | None = None
        self.runner = Runner([], self.workdir / "state", RunnerOptions(
            listen_host="127.0.0.1", port_offset=self.port_offset, nginx_bin=opts.nginx_bin, worker_processes=1,
            address_pool=self.gateway_pool), loader=self._load)

    def _load(self) -> list[RawObject]:
        with self._lock:
            return list(self._objects)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.runner.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _tls_files(self) -> tuple[str, str]:
        if self._tls is None:
            from wardgate.verify.conformance.certificates import _Cert

            cert = _Cert.self_signed("echo.verify.invalid", ["echo.verify.invalid"])
            pki = self.workdir / "pki"
            pki.mkdir(mode=0o700, exist_ok=True)
            (pki / "echo.crt").write_bytes(cert.pem)
            key = pki / "echo.key"
            key.touch(0o600)
            key.write_bytes(cert.key_pem)
            self._tls = (str(pki / "echo.crt"), str(key))
        return self._tls

    def _default_certificate(self) -> list[Json]:
        """The Namespace and TLS Secret standing in for ingress-nginx's default certificate."""
        if self._default_cert is None:
            from wardgate.verify.conformance.certificates import _Cert

            ns, name = DEFAULT_CERTIFICATE
            # ingress-nginx's own is "Kubernetes Ingress Controller Fake Certificate", for no name.
            cert = _Cert.self_signed("default.verify.invalid", ["default.verify.invalid"])
            self._default_cert = [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                 "metadata": {"name": name, "namespace": ns},
                 "data": {"tls.crt": base64.b64encode(cert.pem).decode(),
                          "tls.key": base64.b64encode(cert.key_pem).decode()}}]
        return self._default_cert

    # ---------------------------------------------------------------------------- the run

    def run(self) -> Json:
        started = time.monotonic()
        files = case_files(self.opts.cases)
        if self.opts.only:
            wanted = set(self.opts.only)
            missing = sorted(wanted - {f.stem for f in files})
            if missing:
                raise _input_error(f"{self.opts.cases}: no case {', '.join(missing)}")
            files = [f for f in files if f.stem in wanted]
        results = []
        for path in files:
            result = self.run_case(path)
            results.append(result)
            line = f"{result.result.upper():5} {result.id} ({result.seconds:.1f} s)"
            if result.reason:
                where = f" at {result.failed_request}" if result.failed_request else ""
                line += f"{where}: {result.reason}"
            self.out(line)
        summary = {r: sum(1 for x in results if x.result == r) for r in ("pass", "fail", "error")}
        seconds = time.monotonic() - started
        total = len(results)
        self.out(f"{total} case(s): {summary['pass']} pass, {summary['fail']} fail, {summary['error']} error "
                 f"({100.0 * summary['pass'] / max(1, total):.0f}% pass) in {seconds:.0f} s")
        return {"cases": [r.to_json() for r in results], "summary": {**summary, "seconds": round(seconds, 1)}}

    def run_case(self, path: Path) -> CaseResult:
        started = time.monotonic()
        backends: _CaseBackends | None = None
        case_id = path.stem
        try:
            case = load_case(path)
            try:
                inputs = load_text(case["manifests"], f"{case_id}.json#manifests")
            except InputError as exc:
                raise _CaseError("manifests: " + "; ".join(str(p) for p in exc.problems)) from None
            stamp_creation(inputs)
            migrated = self._migrate(case_id, inputs)
            input_docs = [r.data for r in inputs]
            services = [d for d in input_docs if d.get("kind") == "Service"]
            backends = _CaseBackends(case, services, self._pods, self._tls_files)
            errors = self._serve(case_id, case, input_docs, migrated, backends)
            try:
                self._run_requests(case, migrated, backends)
            except _Failure as exc:
                if errors:
                    exc.reason += f" [the gateway reported: {'; '.join(errors)[:600]}]"
                raise
            return CaseResult(case_id, "pass", seconds=time.monotonic() - started)
        except _Failure as exc:
            return CaseResult(case_id, "fail", exc.reason, exc.failed_request, time.monotonic() - started)
        except (_CaseError, CaseFormatError) as exc:
            return CaseResult(case_id, "error", str(exc), seconds=time.monotonic() - started)
        except OSError as exc:  # an echo backend could not bind, ...
            return CaseResult(case_id, "error", f"harness: {exc}", seconds=time.monotonic() - started)
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # a field of the wrong shape
            return CaseResult(case_id, "error", f"the case has a field of the wrong type or value: "
                              f"{type(exc).__name__}: {exc}", seconds=time.monotonic() - started)
        finally:
            if backends is not None:
                backends.stop()

    def _migrate(self, case_id: str, inputs: list[RawObject]) -> Migrated:
        docs = [r.data for r in inputs]
        hint: Mapping[str, str] | None = None
        if self.opts.migrated is not None:
            path = self.opts.migrated / f"{case_id}.yaml"
            if not path.is_file():
                raise _CaseError(f"no migrated manifests {path}")
            try:
                objects = [r.data for r in load_text(path.read_text(encoding="utf-8"), str(path))]
            except InputError as exc:
                raise _CaseError("; ".join(str(p) for p in exc.problems)) from None
        else:
            objects, hint = run_migrate(inputs)
        mapping, default = gateways_by_class(objects, docs, hint)
        return Migrated(objects, mapping, default)

    def _serve(self, case_id: str, case: Json, inputs: Sequence[Json], migrated: Migrated,
               backends: _CaseBackends) -> list[str]:
        """Serve the migrated objects with the case's backends; wait until every listener accepts."""
        ours = [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                 "metadata": {"name": name}, "spec": {"controllerName": CONTROLLER_NAME}}
                for name in sorted({str((g.get("spec") or {}).get("gatewayClassName") or GATEWAY_CLASS)
                                    for g in migrated.objects if g.get("kind") == "Gateway"})
                if not any(o.get("kind") == "GatewayClass" and _meta(o).get("name") == name
                           for o in migrated.objects)]
        harness = [*backends.endpoint_slices(), *self._default_certificate()]
        taken = {_key(d) for d in [*migrated.objects, *harness]}
        passed = [d for d in inputs if d.get("kind") in PASSED_THROUGH and _key(d) not in taken]
        produced = [d for d in migrated.objects if d.get("kind") != "EndpointSlice"]
        raws = [RawObject(d, Origin(f"{case_id}:{where}", i))
                for where, group in (("harness", [*ours, *harness]), ("case", passed), ("migrated", produced))
                for i, d in enumerate(group)]
        if _stateful(case, migrated.objects):
            self._reset()  # the case starts with empty nginx shared memory
        with self._lock:
            self._objects = raws
        report = self.runner.reconcile()
        if self.runner.input_errors:
            # The runner serves the last good version of an invalid object, which would be the previous
            # case's object of that name: serve this case without it instead.
            self._reset()
            with self._lock:
                self._objects = raws
            report = self.runner.reconcile()
        refused = [str(p) for p in self.runner.input_errors if p.origin and p.origin.file == f"{case_id}:migrated"]
        if refused:
            raise _Failure("wardgate refuses the migrated objects: " + "; ".join(refused)[:1500])
        gateways = set(migrated.gateways.values()) | {g for g in [migrated.default_gateway] if g}
        # A Gateway whose new configuration failed keeps serving its previous one: the previous case's.
        broken = [f"Gateway {k}: {v}" for k, v in self.runner.apply_errors.items() if k in gateways or k == "*"]
        if broken:
            self._reset()
            raise _Failure("the migrated configuration does not run: " + "; ".join(broken)[:1500])
        self._wait_listening(gateways)
        return list(report.errors)

    def _reset(self) -> None:
        """Serve nothing: every nginx stops and the runner forgets every object."""
        with self._lock:
            self._objects = []
        self.runner.reconcile()

    def _entrypoint(self, key: str) -> _Entrypoint:
        state = self.runner.status().get("gateways", {}).get(key) or {}
        listeners = {(str(ls["protocol"]), int(ls["declaredPort"])): (str(ls["address"]), int(ls["port"]))
                     for ls in state.get("listeners") or []}
        return _Entrypoint(key, listeners)

    def _wait_listening(self, keys: set[str]) -> None:
        deadline = time.monotonic() + LISTEN_WAIT_S
        for key in sorted(keys):
            if key not in self.runner.instances or not self.runner.instances[key].is_running():
                continue
            for address, port in self._entrypoint(key).listeners.values():
                while True:
                    try:
                        socket.create_connection((address, port), timeout=1).close()
                        break
                    except OSError:
                        if time.monotonic() >= deadline:
                            return  # the requests will say what does not answer
                        time.sleep(0.05)

    # ---------------------------------------------------------------------------- requests

    def _run_requests(self, case: Json, migrated: Migrated, backends: _CaseBackends) -> None:
        entrypoints: dict[str, _Entrypoint] = {}
        history: dict[int, Observed] = {}
        for index, request in enumerate(case["requests"]):
            if not isinstance(request, dict):
                raise _CaseError(f"requests[{index}] is not an object")
            if "sleepMs" in request and "method" not in request:
                time.sleep(float(request["sleepMs"]) / 1000.0)
                continue
            label = _label(index, request)
            gateway = self._gateway_for(request, migrated)
            if gateway is None:
                raise _Failure(f"no migrated Gateway serves ingress class {request.get('ingressClass')!r} "
                               f"(Gateways by class: {migrated.gateways or 'none'})", label)
            if gateway not in entrypoints:
                entrypoints[gateway] = self._entrypoint(gateway)
            results = self._send(request, entrypoints[gateway], backends, history)
            history[index] = results[-1]
            expect = request.get("expect") or {}
            if not isinstance(expect, dict):
                raise _CaseError(f"requests[{index}].expect is not an object")
            single = {k: v for k, v in expect.items() if k not in AGGREGATE}
            problems: list[str] = []
            for n, obs in enumerate(results):
                found = check_single(single, obs, history.get, backends.auth_keys)
                if found:
                    prefix = f"response {n + 1} of {len(results)}: " if len(results) > 1 else ""
                    problems += [prefix + p for p in found]
                    break
            aggregate = {k: v for k, v in expect.items() if k in AGGREGATE}
            if aggregate:
                problems += check_aggregate(aggregate, results, str(request.get("mode") or "sequential"))
            if problems:
                raise _Failure("; ".join(problems), label)

    @staticmethod
    def _gateway_for(request: Mapping[str, Any], migrated: Migrated) -> str | None:
        cls = request.get("ingressClass")
        if cls is None:
            return migrated.default_gateway
        return migrated.gateways.get(str(cls))

    def _send(self, request: Json, entry: _Entrypoint, backends: _CaseBackends,
              history: Mapping[int, Observed]) -> list[Observed]:
        method = str(request.get("method") or "GET")
        target = str(request.get("path") or "/")
        scheme = str(request.get("scheme") or "http")
        if scheme not in DEFAULT_SCHEME_PORTS:
            raise _CaseError(f"scheme {scheme!r} is not http or https")
        declared = DEFAULT_SCHEME_PORTS[scheme]
        bound = entry.listeners.get(("HTTPS" if scheme == "https" else "HTTP", declared))
        if bound is None:
            bound = (self.runner.address_of(entry.gateway), declared + self.port_offset)
        endpoint = Endpoint(bound[0], bound[1], tls=scheme == "https")
        host = request.get("host")
        host_value = str(host) if host is not None else endpoint.address
        headers: list[tuple[str, str]] = [("Host", host_value)]
        cookies = _cookies_from(request, history)
        for name, value in dict(request.get("headers") or {}).items():
            if str(name).lower() == "host":
                headers[0] = ("Host", str(value))
            elif str(name).lower() == "cookie" and cookies:
                headers.append((str(name), f"{value}; {cookies}"))
                cookies = ""
            else:
                headers.append((str(name), str(value)))
        if cookies:
            headers.append(("Cookie", cookies))
        if request.get("clientIp"):
            headers.append(("X-Forwarded-For", str(request["clientIp"])))
        body: bytes | None = None
        if request.get("body") is not None:
            body = str(request["body"]).encode("utf-8")
        elif request.get("bodyBytes") is not None:
            body = b"x" * int(request["bodyBytes"])
        repeat = int(request.get("repeat") or 1)
        mode = str(request.get("mode") or "sequential")
        sni = server_name(host_value)

        def observe(conn: Connection) -> Observed:
            before = backends.counts()
            try:
                reply = conn.send(method, target, headers, body)
            except ClientError as exc:
                return Observed(None, str(exc), received=backends.received_since(before))
            received = backends.received_since(before)
            return Observed(reply, echo=_complete(echo_of(reply, backends.keys), received), received=received)

        if mode == "concurrent" and repeat > 1:
            return self._concurrent(repeat, endpoint, sni, method, target, headers, body, backends)
        if mode not in ("sequential", "concurrent"):
            raise _CaseError(f"mode {mode!r} is not sequential or concurrent")
        results = []
        started = time.monotonic()
        with Connection(endpoint, sni, self.opts.timeout_s) as conn:
            for _ in range(repeat):
                results.append(observe(conn))
        took = (time.monotonic() - started) * 1000.0
        limit = request.get("maxDurationMs")
        if limit is not None and took > float(limit):
            raise _CaseError(f"the {repeat} requests took {took:.0f} ms, more than maxDurationMs {limit}: "
                             "the expectation's timing assumption does not hold on this machine")
        return results

    def _concurrent(self, repeat: int, endpoint: Endpoint, sni: str | None, method: str, target: str,
                    headers: list[tuple[str, str]], body: bytes | None, backends: _CaseBackends) -> list[Observed]:
        """All requests in flight at once: every connection is open before any request is sent."""
        conns = [Connection(endpoint, sni, self.opts.timeout_s) for _ in range(repeat)]
        results: list[Observed | None] = [None] * repeat
        barrier = threading.Barrier(repeat)

        def one(i: int) -> None:
            conn = conns[i]
            try:
                conn.open()
            except ClientError as exc:
                results[i] = Observed(None, str(exc))
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(self.opts.timeout_s)
                return
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(self.opts.timeout_s)
            try:
                reply = conn.send(method, target, headers, body)
                results[i] = Observed(reply, echo=echo_of(reply, backends.keys))
            except ClientError as exc:
                results[i] = Observed(None, str(exc))
            finally:
                conn.close()

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(repeat)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.opts.timeout_s * 2)
        return [r if r is not None else Observed(None, "no answer in time") for r in results]


def _complete(echo: Json | None, received: Mapping[str, Sequence[SeenRequest]]) -> Json | None:
    """A bodyless answer (HEAD, 204) names only its backend and instance: the rest of what that
    instance received comes from its own record of the request."""
    if echo is None or "method" in echo:
        return echo
    seen = [r for r in received.get(str(echo.get("service")), [])]
    if not seen:
        return echo
    last = seen[-1]
    return {**echo, "method": last.method, "path": last.target, "headers": last.headers,
            "host": (last.headers.get("Host") or [""])[0], "bodyLength": last.body_length}


def _stateful(case: Mapping[str, Any], objects: Sequence[Json]) -> bool:
    """Whether the case needs fresh nginx state: rate limits or requests whose results depend on
    what came before them."""
    requests = [r for r in case["requests"] if isinstance(r, dict)]
    return (any(o.get("kind") == "RateLimitPolicy" for o in objects)
            or any("sleepMs" in r or int(r.get("repeat") or 1) > 1 for r in requests))


def _cookies_from(request: Mapping[str, Any], history: Mapping[int, Observed]) -> str:
    index = request.get("useCookiesFromRequest")
    if index is None:
        return ""
    before = history.get(int(index))
    if before is None or before.reply is None:
        return ""
    pairs = []
    for name, value in before.reply.headers:
        if name.lower() == "set-cookie":
            pair = value.split(";", 1)[0].strip()
            if "=" in pair:
                pairs.append(pair)
    return "; ".join(pairs)


def _label(index: int, request: Mapping[str, Any]) -> str:
    scheme = request.get("scheme") or "http"
    host = request.get("host") or "<gateway address>"
    where = f" ({request['ingressClass']})" if request.get("ingressClass") else ""
    repeat = f" x{request['repeat']}" if int(request.get("repeat") or 1) > 1 else ""
    path = request.get("path") or "/"
    return f"requests[{index}] {request.get('method') or 'GET'} {scheme}://{host}{path}{where}{repeat}"


def run_migration_verify(opts: MigrationVerifyOptions, out: Callable[[str], None] = print) -> Json:
    """Run the cases; the JSON report (`cases` and `summary`)."""
    harness = MigrationHarness(opts, out)
    try:
        return harness.run()
    finally:
        harness.close()


__all__ = [
    "CaseResult",
    "MigrationHarness",
    "MigrationVerifyOptions",
    "case_files",
    "gateways_by_class",
    "load_case",
    "run_migration_verify",
    "stamp_creation",
]
