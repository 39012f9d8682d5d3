"""The backends: echo pods on loopback IPs for the Deployments, and their EndpointSlices."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wardgate.verify.conformance.certificates import _Pki
from wardgate.verify.conformance.corpus import Json
from wardgate.verify.echo import (
    EchoIdentity,
    EchoServer,
)

# echo-basic's fixed ports (overridable by the HTTP_PORT / HTTPS_PORT env of the Deployment).
ECHO_HTTP_PORT = 3000
ECHO_HTTPS_PORT = 8443


def _meta(doc: Mapping[str, Any]) -> Json:
    meta = doc.get("metadata")
    return meta if isinstance(meta, dict) else {}


@dataclass
class _Pod:
    namespace: str
    name: str
    deployment: str
    labels: dict[str, str]
    ip: str
    identity: EchoIdentity
    echo: bool  # an HTTP echo-basic (not gRPC/TCP/other images)
    http_port: int
    https_port: int
    tls_files: tuple[str, str, str | None] | None  # cert, key, client CA
    container_ports: dict[str, int]
    servers: dict[int, EchoServer] = field(default_factory=dict)

    def serves(self, port: int) -> bool:
        return self.echo and (port == self.http_port or (port == self.https_port and self.tls_files is not None))


class _Backends:
    """In-process stand-ins for Deployments: one loopback IP per pod, an EchoServer per used port."""

    def __init__(self, pki: _Pki, files_dir: Path, pool: str) -> None:
        self.pki = pki
        self.files_dir = files_dir
        self._hosts: Iterator[ipaddress.IPv4Address] = ipaddress.IPv4Network(pool).hosts()
        self.pods: list[_Pod] = []
        self.services: list[Mapping[str, Any]] = []
        self.problems: list[str] = []

    def _next_ip(self) -> str:
        return str(next(self._hosts))

    def add_deployment(self, dep: Mapping[str, Any]) -> list[_Pod]:
        meta = _meta(dep)
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        spec = dep.get("spec") or {}
        template = spec.get("template") or {}
        labels = {str(k): str(v) for k, v in (_meta(template).get("labels") or {}).items()}
        pod_spec = template.get("spec") or {}
        containers = pod_spec.get("containers") or []
        volumes = {str(v.get("name")): v for v in pod_spec.get("volumes") or []}
        container = next((c for c in containers if "echo" in str(c.get("image", ""))), None)
        replicas = spec.get("replicas")
        replicas = 1 if replicas is None else int(replicas)
        digest = hashlib.sha256(f"{ns}/{name}".encode()).hexdigest()
        pods: list[_Pod] = []
        for i in range(replicas):
            # <deployment>-<replicaset hash>-<pod hash>: the weight check strips the last two segments.
            pod_name = f"{name}-{digest[:5]}-{hashlib.sha256(f'{digest}/{i}'.encode()).hexdigest()[:5]}"
            env = self._env(container, ns, pod_name) if container else {}
            echo = container is not None and not env.get("GRPC_ECHO_SERVER") and not env.get("TCP_ECHO_SERVER")
            tls_files = self._tls_files(container, volumes, env, ns, pod_name) if container and echo else None
            ports = {str(p.get("name")): int(p.get("containerPort")) for c in containers
                     for p in c.get("ports") or [] if p.get("name") and p.get("containerPort")}
            pod = _Pod(ns, pod_name, name, labels, self._next_ip(),
                       EchoIdentity(namespace=env.get("NAMESPACE", ""), pod=env.get("POD_NAME", ""),
                                    service=env.get("SERVICE_NAME", ""), ingress=env.get("INGRESS_NAME", "")),
                       echo, _int(env.get("HTTP_PORT"), ECHO_HTTP_PORT), _int(env.get("HTTPS_PORT"), ECHO_HTTPS_PORT),
                       tls_files, ports)
            pods.append(pod)
        self.pods.extend(pods)
        return pods

    @staticmethod
    def _env(container: Mapping[str, Any], ns: str, pod: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in container.get("env") or []:
            name = str(item.get("name"))
            if "value" in item:
                out[name] = str(item["value"])
                continue
            path = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if path == "metadata.name":
                out[name] = pod
            elif path == "metadata.namespace":
                out[name] = ns
        return out

    def _tls_files(self, container: Mapping[str, Any], volumes: Mapping[str, Any], env: Mapping[str, str],
                   ns: str, pod: str) -> tuple[str, str, str | None] | None:
        cert_path, key_path = env.get("TLS_SERVER_CERT"), env.get("TLS_SERVER_PRIVKEY")
        if not cert_path or not key_path:
            return None
        paths: list[str | None] = []
        for i, mounted in enumerate((cert_path, key_path, env.get("TLS_CLIENT_CACERTS"))):
            if mounted is None:
                paths.append(None)
                continue
            data = self._mounted_file(container, volumes, ns, mounted)
            if data is None:
                self.problems.append(f"pod {ns}/{pod}: cannot provide {mounted}; its HTTPS echo is not run")
                return None
            target = self.files_dir / f"{ns}_{pod}_{i}.pem"
            target.write_bytes(data)
            paths.append(str(target))
        return str(paths[0]), str(paths[1]), paths[2]

    def _mounted_file(self, container: Mapping[str, Any], volumes: Mapping[str, Any], ns: str,
                      path: str) -> bytes | None:
        for mount in container.get("volumeMounts") or []:
            root = str(mount.get("mountPath", "")).rstrip("/")
            if not path.startswith(root + "/"):
                continue
            rel = path[len(root) + 1:]
            vol = volumes.get(str(mount.get("name"))) or {}
            if "secret" in vol:
                source = vol["secret"] or {}
                store = self.pki.secrets.get((ns, str(source.get("secretName"))), {})
            elif "configMap" in vol:
                source = vol["configMap"] or {}
                store = self.pki.configmaps.get((ns, str(source.get("name"))), {})
            else:
                return None
            key = rel
            for item in source.get("items") or []:
                if item.get("path") == rel:
                    key = str(item.get("key"))
            return store.get(key)
        return None

    def selected(self, svc: Mapping[str, Any]) -> list[_Pod]:
        ns = str(_meta(svc).get("namespace") or "default")
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            return []
        return [p for p in self.pods if p.namespace == ns
                and all(p.labels.get(str(k)) == str(v) for k, v in selector.items())]

    @staticmethod
    def target_port(pod: _Pod, port: Mapping[str, Any]) -> int | None:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, int):
            return target
        if isinstance(target, str):
            return int(target) if target.isdigit() else pod.container_ports.get(target)
        return None

    def serve(self, services: Sequence[Mapping[str, Any]]) -> None:
        """Start the echo servers these Services route to (idempotent) and remember the Services."""
        for svc in services:
            if not any(svc is known for known in self.services):
                self.services.append(svc)
            for pod in self.selected(svc):
                for port in (svc.get("spec") or {}).get("ports") or []:
                    target = self.target_port(pod, port)
                    if target is None or target in pod.servers or not pod.serves(target):
                        continue
                    tls = pod.tls_files if target == pod.https_port else None
                    try:
                        server = EchoServer(pod.ip, target, pod.identity,
                                            certfile=tls[0] if tls else None, keyfile=tls[1] if tls else None,
                                            client_ca=tls[2] if tls else None, log=_quiet).start()
                    except (OSError, ValueError, ssl.SSLError) as exc:
                        self.problems.append(f"pod {pod.namespace}/{pod.name}: echo on {pod.ip}:{target}: {exc}")
                        continue
                    pod.servers[target] = server

    def endpoint_slices(self, services: Sequence[Mapping[str, Any]]) -> list[Json]:
        """EndpointSlices as the endpoints controller would write them, for ports something serves."""
        docs: list[Json] = []
        for svc in services:
            meta = _meta(svc)
            ns, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
            ports = (svc.get("spec") or {}).get("ports") or []
            groups: dict[tuple[tuple[str, int, str, str | None], ...], list[_Pod]] = {}
            for pod in self.selected(svc):
                served = []
                for port in ports:
                    target = self.target_port(pod, port)
                    if target is not None and target in pod.servers:
                        served.append((str(port.get("name") or ""), target, str(port.get("protocol") or "TCP"),
                                       port.get("appProtocol")))
                if served:
                    groups.setdefault(tuple(served), []).append(pod)
            for i, (served_ports, pods) in enumerate(sorted(groups.items())):
                slice_ports: list[Json] = []
                for pname, target, proto, app in served_ports:
                    entry: Json = {"name": pname, "port": target, "protocol": proto}
                    if app:
                        entry["appProtocol"] = app
                    slice_ports.append(entry)
                docs.append({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": f"{name}-conformance-{i}", "namespace": ns,
                                 "labels": {"kubernetes.io/service-name": name}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [p.ip], "conditions": {"ready": True},
                                   "targetRef": {"kind": "Pod", "namespace": ns, "name": p.name}} for p in pods],
                    "ports": slice_ports,
                })
        return docs

    def forget(self, services: Sequence[Mapping[str, Any]]) -> None:
        self.services = [s for s in self.services if not any(s is gone for gone in services)]

    def echo_servers_for(self, namespace: str, name: str) -> list[EchoServer]:
        """The echo servers of a Service (by its selector) or, failing that, of a Deployment."""
        svc = next((s for s in self.services if _meta(s).get("name") == name
                    and str(_meta(s).get("namespace") or "default") == namespace), None)
        pods = self.selected(svc) if svc is not None else []
        if not pods:
            pods = [p for p in self.pods if p.namespace == namespace and p.deployment == name]
        return [s for p in pods for s in p.servers.values()]

    def stop(self, pods: Sequence[_Pod] | None = None) -> None:
        for pod in list(self.pods if pods is None else pods):
            for server in pod.servers.values():
                with contextlib.suppress(Exception):
                    server.stop()
            pod.servers.clear()
            if pods is not None and pod in self.pods:
                self.pods.remove(pod)


def _int(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() else default


def _quiet(_line: str) -> None:
    pass
