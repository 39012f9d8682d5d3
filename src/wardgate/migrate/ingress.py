"""Typed views of the objects migrate reads: Ingress, IngressClass, Service, Secret, ConfigMap and
the controller Deployments.

Raw objects come straight from files (no model validation: an Ingress is not a wardgate kind), so
every field is checked here. A malformed object becomes a Finding naming file, object and field,
and everything else still converts; a bad path or backend drops only that path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wardgate.migrate.report import Finding
from wardgate.sources.files import RawObject

PREFIX = "nginx.ingress.kubernetes.io/"
LEGACY_CLASS = "kubernetes.io/ingress.class"
DEFAULT_CLASS = "ingressclass.kubernetes.io/is-default-class"
PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
# metadata.name / namespace as the API server accepts them (DNS subdomain / label).
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Backend:
    """spec.rules[].http.paths[].backend or spec.defaultBackend: a Service and its port."""

    service: str
    port_number: int | None = None
    port_name: str | None = None


@dataclass(frozen=True)
class IngressPath:
    path: str
    path_type: str
    backend: Backend
    field: str  # "spec.rules[0].http.paths[1]", for findings


@dataclass(frozen=True)
class IngressRule:
    host: str  # "" for a rule without host (the catch-all server)
    paths: tuple[IngressPath, ...]
    field: str


@dataclass(frozen=True)
class IngressTLS:
    hosts: tuple[str, ...]
    secret_name: str | None
    field: str


@dataclass(frozen=True)
class Ingress:
    file: str
    namespace: str
    name: str
    annotations: Mapping[str, str]  # every annotation, full keys
    class_name: str | None  # spec.ingressClassName
    legacy_class: str | None  # annotation kubernetes.io/ingress.class
    default_backend: Backend | None
    rules: tuple[IngressRule, ...]
    tls: tuple[IngressTLS, ...]
    creation_timestamp: str | None
    seq: int  # load order

    @property
    def ref(self) -> str:
        return f"Ingress {self.namespace}/{self.name}"

    @functools.cached_property
    def nginx_annotations(self) -> dict[str, str]:
        """The ingress-nginx annotations, prefix stripped (read several times per Ingress; the
        dict is shared: callers don't change it)."""
        return {k[len(PREFIX):]: v for k, v in self.annotations.items() if k.startswith(PREFIX)}

    @property
    def hosts(self) -> list[str]:
        """The rule hosts, each once, in rule order ("" for host-less rules)."""
        return list(dict.fromkeys(r.host for r in self.rules))


@dataclass(frozen=True)
class IngressClass:
    file: str
    name: str
    controller: str
    is_default: bool


@dataclass(frozen=True)
class ServicePort:
    name: str | None
    port: int
    app_protocol: str | None


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    ports: tuple[ServicePort, ...]


@dataclass(frozen=True)
class ConfigMap:
    file: str
    namespace: str
    name: str
    data: Mapping[str, str]


@dataclass(frozen=True)
class Controller:
    """An ingress-nginx controller Deployment: which classes it serves, where its ConfigMap is."""

    file: str
    namespace: str
    name: str
    controller_class: str  # --controller-class (default k8s.io/ingress-nginx)
    ingress_class: str | None  # --ingress-class
    configmap: tuple[str, str] | None  # --configmap NS/NAME
    default_certificate: tuple[str, str] | None = None  # --default-ssl-certificate NS/NAME


@dataclass
class Inputs:
    ingresses: list[Ingress] = field(default_factory=list)
    classes: dict[str, IngressClass] = field(default_factory=dict)
    services: dict[tuple[str, str], Service] = field(default_factory=dict)
    secrets: set[tuple[str, str]] = field(default_factory=set)
    configmaps: dict[tuple[str, str], ConfigMap] = field(default_factory=dict)
    controllers: list[Controller] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


class Bad(ValueError):
    """A field that can't be used: `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _map(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Bad(where, "must be a mapping")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Bad(where, "must be a list")
    return value


def _str(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise Bad(where, "is required")
        return None
    if not isinstance(value, str):
        raise Bad(where, "must be a string")
    return value


def _strings(value: Any, where: str) -> dict[str, str]:
    """A map of strings (annotations, ConfigMap data); non-string values are refused."""
    out: dict[str, str] = {}
    for k, v in _map(value, where).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise Bad(f"{where}.{k}", "must be a string (quote numbers and booleans in YAML)")
        out[k] = v
    return out


def _display(text: str) -> str:
    """Names echoed in findings: never let them break a line of the report."""
    return text if text.isprintable() and len(text) <= 253 else repr(text[:253])


def _meta(data: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    meta = _map(data.get("metadata"), "metadata")
    name = _str(meta.get("name"), "metadata.name", required=True) or ""
    ns = _str(meta.get("namespace"), "metadata.namespace") or "default"
    if not _NAME.match(name) or len(name) > 253:
        raise Bad("metadata.name", f"{_display(name)} is not a valid object name")
    if not _NAMESPACE.match(ns) or len(ns) > 63:
        raise Bad("metadata.namespace", f"{_display(ns)} is not a valid namespace")
    return ns, name, meta


def _backend(value: Any, where: str) -> Backend:
    b = _map(value, where)
    if "resource" in b:
        raise Bad(f"{where}.resource", "resource backends are not supported (only Service backends)")
    svc = _map(b.get("service"), f"{where}.service")
    if not svc:
        raise Bad(f"{where}.service", "is required")
    name = _str(svc.get("name"), f"{where}.service.name", required=True) or ""
    if not _NAMESPACE.match(name):
        raise Bad(f"{where}.service.name", f"{_display(name)} is not a valid Service name")
    port = _map(svc.get("port"), f"{where}.service.port")
    number, pname = port.get("number"), port.get("name")
    if number is not None:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            raise Bad(f"{where}.service.port.number", "must be a port number (1-65535)")
        return Backend(name, port_number=number)
    if pname is not None:
        if not isinstance(pname, str) or not _PORT_NAME.match(pname):
            raise Bad(f"{where}.service.port.name", "must be a port name")
        return Backend(name, port_name=pname)
    raise Bad(f"{where}.service.port", "needs number or name")


def _host(value: Any, where: str) -> str:
    host = _str(value, where) or ""
    if host and not re.fullmatch(r"(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", host):
        raise Bad(where, f"{_display(host)} is not a valid host (lower-case DNS name, optionally *.)")
    return host


def read_ingress(raw: RawObject, findings: list[Finding]) -> Ingress | None:
    """The Ingress, or None (with a finding) when it can't be used at all. A bad path or TLS
    entry only drops that entry."""
    data = raw.data
    file = str(raw.origin)
    try:
        ns, name, meta = _meta(data)
    except Bad as exc:
        findings.append(Finding(file, "Ingress ?", exc.field, "not-converted", f"{exc}; Ingress skipped"))
        return None
    ref = f"Ingress {ns}/{name}"

    def bad(exc: Bad, what: str) -> None:
        findings.append(Finding(file, ref, exc.field, "not-converted", f"{exc}; {what}"))

    try:
        annotations = _strings(meta.get("annotations"), "metadata.annotations")
        spec = _map(data.get("spec"), "spec")
        class_name = _str(spec.get("ingressClassName"), "spec.ingressClassName")
        ts = _str(meta.get("creationTimestamp"), "metadata.creationTimestamp")
        default = _backend(spec["defaultBackend"], "spec.defaultBackend") if spec.get("defaultBackend") else None
        raw_rules = _list(spec.get("rules"), "spec.rules")
        raw_tls = _list(spec.get("tls"), "spec.tls")
    except Bad as exc:
        bad(exc, "Ingress skipped")
        return None
    rules: list[IngressRule] = []
    for i, r in enumerate(raw_rules):
        where = f"spec.rules[{i}]"
        try:
            rule = _map(r, where)
            host = _host(rule.get("host"), f"{where}.host")
            http = _map(rule.get("http"), f"{where}.http")
            raw_paths = _list(http.get("paths"), f"{where}.http.paths")
        except Bad as exc:
            bad(exc, "rule skipped")
            continue
        paths: list[IngressPath] = []
        for j, p in enumerate(raw_paths):
            pwhere = f"{where}.http.paths[{j}]"
            try:
                pm = _map(p, pwhere)
                ptype = _str(pm.get("pathType"), f"{pwhere}.pathType", required=True) or ""
                if ptype not in PATH_TYPES:
                    raise Bad(f"{pwhere}.pathType", f"{_display(ptype)} is not one of {', '.join(PATH_TYPES)}")
                path = _str(pm.get("path"), f"{pwhere}.path") or ""
                if ptype != "ImplementationSpecific" and not path.startswith("/"):
                    raise Bad(f"{pwhere}.path", f"a {ptype} path must start with '/'")
                if not path.isprintable() or len(path) > 4096:
                    raise Bad(f"{pwhere}.path", "has control characters or is too long")
                paths.append(IngressPath(path or "/", ptype, _backend(pm.get("backend"), f"{pwhere}.backend"),
                                         pwhere))
            except Bad as exc:
                bad(exc, "path skipped")
        rules.append(IngressRule(host, tuple(paths), where))
    tls: list[IngressTLS] = []
    for i, t in enumerate(raw_tls):
        where = f"spec.tls[{i}]"
        try:
            entry = _map(t, where)
            raw_hosts = _list(entry.get("hosts"), f"{where}.hosts")
            hosts = tuple(_host(h, f"{where}.hosts[{k}]") for k, h in enumerate(raw_hosts))
            secret = _str(entry.get("secretName"), f"{where}.secretName")
            if secret is not None and not _NAME.match(secret):
                raise Bad(f"{where}.secretName", f"{_display(secret)} is not a valid Secret name")
            tls.append(IngressTLS(hosts, secret, where))
        except Bad as exc:
            bad(exc, "TLS entry skipped")
    return Ingress(file, ns, name, annotations, class_name, annotations.get(LEGACY_CLASS), default,
                   tuple(rules), tuple(tls), ts, raw.origin.index or 0)


def _flag(args: list[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` in a container's args."""
    for i, a in enumerate(args):
        if a.startswith(f"{name}="):
            return a.split("=", 1)[1]
        if a == name and i + 1 < len(args):
            return args[i + 1]
    return None


def _ref(args: list[str], flag: str, ns: str) -> tuple[str, str] | None:
    """A `NS/NAME` argument; `$(POD_NAMESPACE)` (or no namespace) is the Deployment's."""
    value = _flag(args, flag)
    if not value:
        return None
    ref_ns, _, ref_name = value.rpartition("/")
    return (ns if not ref_ns or "$(" in ref_ns else ref_ns, ref_name)


def read_controller(raw: RawObject, ns: str, name: str) -> Controller | None:
    """An ingress-nginx controller Deployment (a container running /nginx-ingress-controller)."""
    spec = raw.data.get("spec") or {}
    pod = ((spec.get("template") or {}).get("spec") or {}) if isinstance(spec, dict) else {}
    containers = pod.get("containers") if isinstance(pod, dict) else None
    for c in containers if isinstance(containers, list) else []:
        if not isinstance(c, dict):
            continue
        args = [a for a in (c.get("args") or []) + (c.get("command") or []) if isinstance(a, str)]
        if not any("nginx-ingress-controller" in a for a in args):
            continue
        return Controller(str(raw.origin), ns, name, _flag(args, "--controller-class") or "k8s.io/ingress-nginx",
                          _flag(args, "--ingress-class"), _ref(args, "--configmap", ns),
                          _ref(args, "--default-ssl-certificate", ns))
    return None


def read_inputs(objects: Iterable[RawObject]) -> Inputs:
    """Sort the raw objects into typed views; objects of other kinds are ignored."""
    out = Inputs()
    for seq, raw in enumerate(objects):
        data = raw.data
        kind = data.get("kind")
        api = str(data.get("apiVersion", ""))
        file = str(raw.origin)
        if kind == "Ingress":
            if api not in ("networking.k8s.io/v1",):
                out.findings.append(Finding(file, "Ingress ?", "apiVersion", "not-converted",
                                            f"apiVersion {_display(api)} is not read (networking.k8s.io/v1 only)"))
                continue
            ing = read_ingress(raw, out.findings)
            if ing is not None:
                out.ingresses.append(Ingress(**{**ing.__dict__, "seq": seq}))
            continue
        if kind not in ("IngressClass", "Service", "Secret", "ConfigMap", "Deployment"):
            continue
        try:
            ns, name, meta = _meta(data)
        except Bad as exc:
            out.findings.append(Finding(file, f"{kind} ?", exc.field, "not-converted", f"{exc}; ignored"))
            continue
        try:
            if kind == "IngressClass":
                spec = _map(data.get("spec"), "spec")
                anns = _strings(meta.get("annotations"), "metadata.annotations")
                out.classes[name] = IngressClass(file, name, _str(spec.get("controller"), "spec.controller") or "",
                                                 anns.get(DEFAULT_CLASS) == "true")
            elif kind == "Service":
                ports = []
                for i, p in enumerate(_list(_map(data.get("spec"), "spec").get("ports"), "spec.ports")):
                    pm = _map(p, f"spec.ports[{i}]")
                    number = pm.get("port")
                    if isinstance(number, int) and not isinstance(number, bool):
                        ports.append(ServicePort(_str(pm.get("name"), f"spec.ports[{i}].name"), number,
                                                 _str(pm.get("appProtocol"), f"spec.ports[{i}].appProtocol")))
                out.services[(ns, name)] = Service(ns, name, tuple(ports))
            elif kind == "Secret":
                out.secrets.add((ns, name))
            elif kind == "ConfigMap":
                out.configmaps[(ns, name)] = ConfigMap(file, ns, name, _strings(data.get("data"), "data"))
            elif kind == "Deployment":
                ctl = read_controller(raw, ns, name)
                if ctl is not None:
                    out.controllers.append(ctl)
        except Bad as exc:
            out.findings.append(Finding(file, f"{kind} {ns}/{name}", exc.field, "not-converted", f"{exc}; ignored"))
    return out


def apply_order(ingresses: Iterable[Ingress]) -> list[Ingress]:
    """ingress-nginx's order: creationTimestamp, then on equal timestamps the lexically greater
    namespace/name first (a missing timestamp counts as equal to every other missing one)."""
    by_name = sorted(ingresses, key=lambda i: f"{i.namespace}/{i.name}", reverse=True)
    return sorted(by_name, key=lambda i: i.creation_timestamp or "")
