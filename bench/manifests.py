"""Gateway API manifests for the benchmarks (standalone mode: endpoints from an EndpointSlice)."""

from __future__ import annotations

import os
from pathlib import Path

GATEWAY = "gw"
SERVICE = "app"


def base(listener_port: int, backend_port: int) -> str:
    """GatewayClass, one HTTP Gateway, and a Service whose endpoint is the bench backend."""
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: wardgate}}
spec: {{controllerName: wardgate.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {GATEWAY}, namespace: default}}
spec:
  gatewayClassName: wardgate
  listeners: [{{name: http, protocol: HTTP, port: {listener_port}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {SERVICE}, namespace: default}}
spec:
  ports: [{{name: http, port: 80, targetPort: {backend_port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {SERVICE}-1
  namespace: default
  labels: {{kubernetes.io/service-name: {SERVICE}}}
addressType: IPv4
ports: [{{name: http, port: {backend_port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
"""


def route(name: str, hostname: str, path: str, header: tuple[str, str] | None = None) -> str:
    """One HTTPRoute: a hostname and a path prefix to the bench Service, optionally setting a
    response header with a ResponseHeaderModifier filter."""
    filters = ""
    if header is not None:
        filters = f"""\
      filters:
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set: [{{name: {header[0]}, value: "{header[1]}"}}]
"""
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: {GATEWAY}}}]
  hostnames: [{hostname}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
{filters}      backendRefs: [{{name: {SERVICE}, port: 80}}]
"""


def numbered_route(i: int, header: tuple[str, str] | None = None) -> str:
    """Route i: host r<i>.example.com, path /p<i>."""
    return route(f"r{i}", f"r{i}.example.com", f"/p{i}", header)


def write_atomic(path: Path, text: str) -> None:
    """Replace a manifest in one step, so the watcher never reads half a file."""
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)
