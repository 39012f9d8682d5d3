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


# --- the seed policies (dataplane target "policies") and the WAF (suite "waf") ------------------
# The same values configure Caddy and HAProxy "as far as each can express them" (bench/targets.py).

ROBOTS_TAG = ("X-Robots-Tag", "noindex, nofollow")  # response header, set (replaces the backend's)
BOT_CLASS = ("X-Bot-Class", "unverified")  # request header, set
ALLOWED_METHODS = ("GET", "HEAD", "POST")
API_PREFIX = "/api"
# Matches "/" (the bench request) and lower-case paths like /app/main.js; whole-path PCRE.
PATH_REGEX = "/(?:[a-z0-9._-]+(?:/[a-z0-9._-]+)*)?"
SECURITY_TXT_PATH = "/.well-known/security.txt"
SECURITY_CONTACT = "mailto:security@example.com"
SECURITY_EXPIRES = "2030-01-01T00:00:00Z"
SECURITY_TXT = f"Contact: {SECURITY_CONTACT}\nExpires: {SECURITY_EXPIRES}\n"  # what wardgate serves
RATE = 1_000_000  # per second, and as burst: never triggers at bench rates


def seed_policies(route_name: str) -> str:
    """SecurityPolicy + RateLimitPolicy on one HTTPRoute, the shapes of docs/policies.md."""
    methods = ", ".join(ALLOWED_METHODS)
    return f"""\
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: seed, namespace: default}}
spec:
  targetRefs: [{{kind: HTTPRoute, name: {route_name}}}]
  requestHeaders:
    set: [{{name: {BOT_CLASS[0]}, value: {BOT_CLASS[1]}}}]
  responseHeaders:
    set: [{{name: {ROBOTS_TAG[0]}, value: "{ROBOTS_TAG[1]}"}}]
  allowedMethods: [{methods}]
  urlAllowlist:
    paths:
      - {{type: PathPrefix, value: {API_PREFIX}}}
      - {{type: RegularExpression, value: '{PATH_REGEX}'}}
  securityTxt:
    contact: ["{SECURITY_CONTACT}"]
    expires: "{SECURITY_EXPIRES}"
  duplicateHeaders:
    default: KeepFirst
---
apiVersion: policy.wardgate.io/v1alpha1
kind: RateLimitPolicy
metadata: {{name: seed-rate, namespace: default}}
spec:
  targetRefs: [{{kind: HTTPRoute, name: {route_name}}}]
  requests: {RATE}
  unit: Second
  burst: {RATE}
"""


def waf_policy(route_name: str, paranoia: int = 1) -> str:
    """A SecurityPolicy turning ModSecurity + CRS on for one HTTPRoute (docs/policies.md, WAF)."""
    return f"""\
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: waf, namespace: default}}
spec:
  targetRefs: [{{kind: HTTPRoute, name: {route_name}}}]
  waf: {{mode: Block, paranoiaLevel: {paranoia}}}
"""
