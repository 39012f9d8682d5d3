"""Suite `migrate`: `wardgate migrate` on a generated cluster of 5,000 Ingresses (500 in quick mode).

The input is what `kubectl get ingress,ingressclass,service,secret,configmap,deployment -A -o yaml`
writes for a platform with three ingress-nginx controllers (internal, public, phishing-simulation):
`kind: List` files with kubectl's metadata (uid, resourceVersion, the last-applied-configuration
annotation), the controllers' Deployments and ConfigMaps, a Service per backend and TLS Secrets.
The Ingresses carry a seeded, realistic mix of annotations and snippets (`mix()` says which share
gets what). The files are split so each stays under `--max-file-size` (8 MiB).

Each run starts `python -m wardgate.cli migrate -f DIR -o OUT` as its own process and reads its wall
time, CPU time and peak RSS (ru_maxrss from wait4 on that child alone), then `wardgate validate` on
the written manifests the same way. The machine's load is recorded beside each run.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.common import REPO, Settings, log, median, per_cpu_busy, scratch, wait_quiet

SIZE = 5_000
QUICK_SIZE = 300
PER_FILE = 500  # Ingresses (with their Services and Secrets) per List file: ~2-3 MB
TARGET_S, TARGET_MB = 5.0, 500.0
RUN_TIMEOUT_S = 600
A = "nginx.ingress.kubernetes.io/"
CLASSES = {  # class -> (controller release, share of the Ingresses)
    "public": ("ingress-nginx-public", 0.50),
    "internal": ("ingress-nginx-internal", 0.35),
    "phishing-simulation": ("ingress-nginx-phishing", 0.15),
}
CONFIGMAPS: dict[str, dict[str, str]] = {
    "public": {"allow-snippet-annotations": "true", "annotations-risk-level": "Critical",
               "use-forwarded-headers": "true", "proxy-body-size": "8m", "hsts-max-age": "31536000",
               "hsts-include-subdomains": "false", "server-tokens": "false", "limit-req-status-code": "429",
               "add-headers": "ingress-nginx-public/security-headers", "proxy-read-timeout": "120"},
    "internal": {"allow-snippet-annotations": "true", "annotations-risk-level": "Critical",
                 "use-forwarded-headers": "true", "forwarded-for-header": "X-Forwarded-For",
                 "proxy-body-size": "50m", "whitelist-source-range": "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
                 "ssl-redirect": "false", "enable-underscores-in-headers": "false"},
    "phishing-simulation": {"allow-snippet-annotations": "true", "annotations-risk-level": "Critical",
                            "hsts": "false", "server-tokens": "false", "http-redirect-code": "301",
                            "proxy-body-size": "2m", "custom-http-errors": "404,503"},
}
DOMAINS = {"public": "northwind.example", "internal": "corp.northwind.internal",
           "phishing-simulation": "secure-login-check.example"}


def mix() -> dict[str, float]:
    """Share of Ingresses carrying each feature (most carry several)."""
    return {"tls": 0.65, "use-regex/rewrite-target": 0.12, "rewrite-target capture": 0.06, "limit-rpm/rps": 0.22,
            "whitelist-source-range": 0.18, "cors": 0.15, "configuration-snippet": 0.30, "server-snippet": 0.12,
            "canary": 0.04, "auth-url": 0.06, "auth-type basic": 0.02, "proxy-body-size": 0.30,
            "proxy timeouts": 0.20, "ssl-redirect false": 0.05, "force-ssl-redirect": 0.04,
            "backend-protocol": 0.04, "affinity": 0.04, "custom-http-errors": 0.03, "permanent-redirect": 0.02,
            "app-root": 0.02, "from-to-www-redirect": 0.03, "upstream-vhost": 0.03, "modsecurity": 0.03,
            "x-forwarded-prefix": 0.02, "custom-headers": 0.03, "shared host": 0.15}


# --- kubectl's shape ---------------------------------------------------------------------------


class Cluster:
    """Objects as the API server returns them: seeded uids, resourceVersions and timestamps."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.version = 41_000_000

    def meta(self, name: str, namespace: str | None, annotations: dict[str, str] | None = None,
             labels: dict[str, str] | None = None) -> dict[str, Any]:
        self.version += self.rng.randrange(1, 50)
        day = self.rng.randrange(1, 28)
        m: dict[str, Any] = {
            "name": name, "uid": "%08x-%04x-4%03x-a%03x-%012x" % tuple(  # noqa: UP031  (a uid's shape)
                self.rng.getrandbits(b) for b in (32, 16, 12, 12, 48)),
            "resourceVersion": str(self.version),
            "creationTimestamp": f"2025-{self.rng.randrange(1, 13):02d}-{day:02d}T"
                                 f"{self.rng.randrange(24):02d}:{self.rng.randrange(60):02d}:"
                                 f"{self.rng.randrange(60):02d}Z",
        }
        if namespace is not None:
            m["namespace"] = namespace
        if labels:
            m["labels"] = labels
        if annotations:
            m["annotations"] = annotations
        return m

    def obj(self, api: str, kind: str, name: str, namespace: str | None, body: dict[str, Any],
            annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """An object with kubectl's last-applied-configuration, as `kubectl apply` leaves it."""
        applied = {"apiVersion": api, "kind": kind,
                   "metadata": {k: v for k, v in (("name", name), ("namespace", namespace),
                                                  ("annotations", annotations), ("labels", labels)) if v},
                   **body}
        anns = {**(annotations or {}),
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied, separators=(",", ":")) + "\n"}
        meta = self.meta(name, namespace, anns, labels)
        if kind in ("Ingress", "Deployment"):
            meta["generation"] = self.rng.randrange(1, 9)
        return {"apiVersion": api, "kind": kind, "metadata": meta, **body}


def tls_secret_data() -> dict[str, str]:
    """A real (self-signed, RSA 2048) certificate and key, base64 as in a Secret: wardgate
    validate reads them. One pair serves every Secret: generating 2,000 keys would take minutes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.northwind.example")])
    now = datetime.datetime.now(datetime.UTC)
    sans = [x509.DNSName(f"*.{d}") for d in DOMAINS.values()]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return {"tls.crt": base64.b64encode(pem).decode(), "tls.key": base64.b64encode(key_pem).decode()}


# htpasswd -m (apr1) of a bench password
HTPASSWD = b"ops:$apr1$Q8Jq7a2x$QyzTRVcDKGjo86mMkFP2o.\n"


def dump_list(items: list[dict[str, Any]]) -> str:
    doc = {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(doc, Dumper=dumper, default_flow_style=False, sort_keys=True, width=4096)


# --- the cluster -------------------------------------------------------------------------------


SNIPPET_HEADERS = ['more_set_headers "X-Frame-Options: DENY";',
                   'more_set_headers "X-Content-Type-Options: nosniff";',
                   'more_set_headers "Referrer-Policy: strict-origin-when-cross-origin";',
                   'more_set_headers "Permissions-Policy: camera=(), microphone=()";',
                   'more_clear_headers "X-Powered-By";',
                   'proxy_set_header X-Team "{team}";',
                   'add_header Cache-Control "no-store" always;',
                   'more_set_input_headers "X-Client-Verified: none";']
SNIPPET_OTHER = ["proxy_intercept_errors off;", "access_log off;", "expires 1h;", "gzip on;",
                 "if ($http_user_agent ~* (curl|wget)) {\n  return 403;\n}",
                 "rewrite ^/old/(.*)$ /new/$1 permanent;", "deny 198.51.100.0/24;\nallow all;"]
ROBOTS = 'location = /robots.txt {\n  return 200 "User-agent: *\\nDisallow: /\\n";\n}\n'
SECURITY_TXT = ('location = /.well-known/security.txt {{\n  default_type text/plain;\n'
                '  return 200 "Contact: mailto:security@{domain}\\nExpires: 2030-12-31T23:00:00.000Z\\n'
                'Preferred-Languages: en\\n";\n}}\n')


def _paths(rng: random.Random, service: str, regex: bool, capture: bool) -> list[dict[str, Any]]:
    port = {"number": 80} if rng.random() < 0.8 else {"name": "http"}

    def backend() -> dict[str, Any]:  # a fresh dict each time: shared ones would dump as YAML anchors
        return {"service": {"name": service, "port": dict(port)}}

    if capture:
        return [{"path": "/app(/|$)(.*)", "pathType": "ImplementationSpecific", "backend": backend()}]
    if regex:
        return [{"path": p, "pathType": "ImplementationSpecific", "backend": backend()}
                for p in rng.sample(["/api/v[0-9]+/.*", "/static/.+\\.(js|css)", "/users/[0-9]+", "/health$",
                                     "/graphql"], rng.randrange(1, 4))]
    kinds = rng.choices(["Prefix", "Exact", "ImplementationSpecific"], [0.8, 0.12, 0.08], k=rng.randrange(1, 5))
    names = rng.sample(["/", "/api", "/v1", "/v2", "/static", "/login", "/admin", "/metrics", "/docs", "/ws"],
                       len(kinds))
    return [{"path": p, "pathType": k, "backend": backend()} for p, k in zip(names, kinds, strict=True)]


def _annotations(rng: random.Random, cls: str, team: str, m: dict[str, float],
                 features: Counter[str]) -> tuple[dict[str, str], bool, bool]:
    """(annotations, regex paths, capture-group rewrite)."""
    ann: dict[str, str] = {}

    def on(feature: str) -> bool:
        hit = rng.random() < m[feature]
        if hit:
            features[feature] += 1
        return hit

    regex = capture = False
    if on("use-regex/rewrite-target"):
        regex = True
        ann[A + "use-regex"] = "true"
        if on("rewrite-target capture"):
            capture = True
            ann[A + "rewrite-target"] = "/$2"
        elif rng.random() < 0.3:
            ann[A + "rewrite-target"] = "/"
    if on("limit-rpm/rps"):
        if rng.random() < 0.6:
            ann[A + "limit-rpm"] = str(rng.choice([60, 120, 300, 600, 1200]))
        else:
            ann[A + "limit-rps"] = str(rng.choice([5, 10, 20, 50]))
        if rng.random() < 0.4:
            ann[A + "limit-burst-multiplier"] = str(rng.choice([1, 2, 3, 10]))
        if rng.random() < 0.2:
            ann[A + "limit-whitelist"] = "10.0.0.0/8"
        if rng.random() < 0.1:
            ann[A + "limit-connections"] = str(rng.choice([10, 20, 50]))
    if cls == "internal" and on("whitelist-source-range"):
        ann[A + "whitelist-source-range"] = rng.choice(["10.0.0.0/8", "10.20.0.0/16,10.30.0.0/16",
                                                        "10.0.0.0/8,192.168.0.0/16,172.16.4.0/24"])
    elif cls != "internal" and rng.random() < m["whitelist-source-range"] / 4:
        features["whitelist-source-range"] += 1
        ann[A + "denylist-source-range" if rng.random() < 0.3 else A + "whitelist-source-range"] = "203.0.113.0/24"
    if on("cors"):
        ann[A + "enable-cors"] = "true"
        ann[A + "cors-allow-origin"] = rng.choice([f"https://app.{DOMAINS[cls]}",
                                                   f"https://app.{DOMAINS[cls]}, https://admin.{DOMAINS[cls]}", "*"])
        if rng.random() < 0.5:
            ann[A + "cors-allow-methods"] = "GET, POST, PUT, DELETE, OPTIONS"
        if rng.random() < 0.4:
            ann[A + "cors-allow-headers"] = "DNT,Keep-Alive,User-Agent,Content-Type,Authorization,X-Request-Id"
        if rng.random() < 0.4:
            ann[A + "cors-allow-credentials"] = "true"
        if rng.random() < 0.2:
            ann[A + "cors-max-age"] = "600"
    if on("configuration-snippet"):
        lines = [s.format(team=team) for s in rng.sample(SNIPPET_HEADERS, rng.randrange(1, 4))]
        if rng.random() < 0.5:
            methods = rng.choice(["GET|HEAD", "GET|HEAD|POST", "GET|POST|PUT|DELETE|OPTIONS"])
            lines.append(f"if ($request_method !~ ^({methods})$) {{\n  return 405;\n}}")
        if rng.random() < 0.2:
            lines.append(rng.choice(SNIPPET_OTHER))
        ann[A + "configuration-snippet"] = "\n".join(lines) + "\n"
    if on("server-snippet"):
        extra = "" if rng.random() < 0.7 else ROBOTS
        ann[A + "server-snippet"] = SECURITY_TXT.format(domain=DOMAINS[cls]) + extra
    if on("auth-url"):
        ann[A + "auth-url"] = "http://oauth2-proxy.auth.svc.cluster.local/oauth2/auth"
        ann[A + "auth-signin"] = f"https://login.{DOMAINS[cls]}/oauth2/start?rd=$escaped_request_uri"
        if rng.random() < 0.6:
            ann[A + "auth-response-headers"] = "X-Auth-Request-User,X-Auth-Request-Email"
    elif on("auth-type basic"):
        ann[A + "auth-type"] = "basic"
        ann[A + "auth-secret"] = "basic-auth"
        ann[A + "auth-realm"] = "Authentication Required"
    if on("proxy-body-size"):
        ann[A + "proxy-body-size"] = rng.choice(["0", "1m", "10m", "50m", "100m", "512k"])
    if on("proxy timeouts"):
        for k in rng.sample(["proxy-read-timeout", "proxy-send-timeout", "proxy-connect-timeout"], 2):
            ann[A + k] = str(rng.choice([5, 30, 60, 300, 3600]))
    if on("ssl-redirect false"):
        ann[A + "ssl-redirect"] = "false"
    elif on("force-ssl-redirect"):
        ann[A + "force-ssl-redirect"] = "true"
    if on("backend-protocol"):
        ann[A + "backend-protocol"] = rng.choice(["HTTPS", "GRPC", "HTTP"])
    if on("affinity"):
        ann[A + "affinity"] = "cookie"
        ann[A + "session-cookie-name"] = "route"
        ann[A + "session-cookie-max-age"] = "172800"
    if on("custom-http-errors"):
        ann[A + "custom-http-errors"] = "404,500,502,503"
        ann[A + "default-backend"] = "error-pages"
    if not capture and on("permanent-redirect"):
        ann[A + "permanent-redirect"] = f"https://www.{DOMAINS[cls]}/moved"
    elif not capture and on("app-root"):
        ann[A + "app-root"] = "/app"
    if on("from-to-www-redirect"):
        ann[A + "from-to-www-redirect"] = "true"
    if on("upstream-vhost"):
        ann[A + "upstream-vhost"] = f"{team}.svc.cluster.local"
    if cls == "public" and on("modsecurity"):
        ann[A + "enable-modsecurity"] = "true"
        ann[A + "enable-owasp-core-rules"] = "true"
        if rng.random() < 0.5:
            ann[A + "modsecurity-snippet"] = "SecRuleEngine DetectionOnly\nSecRuleRemoveById 920350\n"
    if not capture and on("x-forwarded-prefix"):
        ann[A + "x-forwarded-prefix"] = "/app"
    if on("custom-headers"):
        ann[A + "custom-headers"] = f"{team}/custom-headers"
    return ann, regex, capture


def generate(n: int, out: Path, backends: Path | None = None, seed: int = 13) -> dict[str, Any]:
    """Write the cluster (n Ingresses) as List files under `out`, and its Services and Secrets
    alone under `backends` (for `wardgate validate` beside the result); return what was generated."""
    c = Cluster(seed)
    tls_data = tls_secret_data()
    backend_objects: list[dict[str, Any]] = []
    rng = c.rng
    m = mix()
    features: Counter[str] = Counter()
    annotation_keys: Counter[str] = Counter()
    out.mkdir(parents=True, exist_ok=True)

    control: list[dict[str, Any]] = []
    for cls, (release, _share) in CLASSES.items():
        ic_ann = {"ingressclass.kubernetes.io/is-default-class": "true"} if cls == "public" else None
        control.append(c.obj("networking.k8s.io/v1", "IngressClass", cls, None,
                             {"spec": {"controller": f"k8s.io/{release}"}}, ic_ann,
                             {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/instance": release}))
        control.append(c.obj("v1", "ConfigMap", f"{release}-controller", release, {"data": CONFIGMAPS[cls]}))
        args = ["/nginx-ingress-controller", f"--publish-service=$(POD_NAMESPACE)/{release}-controller",
                "--election-id=ingress-nginx-leader", f"--controller-class=k8s.io/{release}",
                f"--ingress-class={cls}", f"--configmap=$(POD_NAMESPACE)/{release}-controller",
                "--validating-webhook=:8443", "--enable-metrics=true"]
        control.append(c.obj("apps/v1", "Deployment", f"{release}-controller", release, {"spec": {
            "replicas": 3, "selector": {"matchLabels": {"app.kubernetes.io/instance": release}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/instance": release}}, "spec": {"containers": [{
                "name": "controller", "image": "registry.k8s.io/ingress-nginx/controller:v1.15.1",
                "args": args, "ports": [{"containerPort": p, "name": nm} for p, nm in ((80, "http"), (443, "https"))],
                "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
            }]}}}}))
    control.append(c.obj("v1", "ConfigMap", "security-headers", "ingress-nginx-public",
                         {"data": {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "SAMEORIGIN"}}))
    # The auth-url annotations' oauth2-proxy (a Service of the cluster, in its own namespace)
    auth_svc = c.obj("v1", "Service", "oauth2-proxy", "auth", {"spec": {
        "selector": {"app": "oauth2-proxy"}, "ports": [{"name": "http", "port": 80, "targetPort": 4180}]}})
    control.append(auth_svc)
    (out / "cluster.yaml").write_text(dump_list(control))
    if backends is not None:
        backends.mkdir(parents=True, exist_ok=True)
        (backends / "cluster.yaml").write_text(dump_list([auth_svc]))

    classes = list(CLASSES)
    weights = [CLASSES[k][1] for k in classes]
    hosts: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}  # namespace -> (class, host, first path)
    chunk: list[dict[str, Any]] = []
    files, written = 1, 0
    tls_hosts = canaries = 0
    teams = max(1, n // 25)
    i = 0
    while written < n:
        ns = f"team-{i % teams:03d}"
        team = ns.removeprefix("team-")
        name = f"app-{i // teams:02d}"
        first_in_ns = i < teams
        if first_in_ns:  # per namespace: a wildcard certificate, basic-auth, custom headers, error pages
            chunk.append(c.obj("v1", "Secret", "wildcard-tls", ns, {"type": "kubernetes.io/tls", "data": tls_data}))
            chunk.append(c.obj("v1", "Secret", "basic-auth", ns, {
                "type": "Opaque", "data": {"auth": base64.b64encode(HTPASSWD).decode()}}))
            chunk.append(c.obj("v1", "ConfigMap", "custom-headers", ns, {"data": {"X-Team": team}}))
            chunk.append(c.obj("v1", "Service", "error-pages", ns, {"spec": {
                "selector": {"app": "error-pages"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
            backend_objects += [chunk[-4], chunk[-3], chunk[-1]]
        cls = rng.choices(classes, weights)[0]
        service = f"{name}-svc"
        chunk.append(c.obj("v1", "Service", service, ns, {"spec": {
            "clusterIP": f"10.96.{rng.randrange(256)}.{rng.randrange(1, 255)}", "type": "ClusterIP",
            "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                                                 {"name": "grpc", "port": 9090, "protocol": "TCP"}]}},
            labels={"app": name}))
        backend_objects.append(chunk[-1])
        ann, regex, capture = _annotations(rng, cls, team, m, features)
        annotation_keys.update(k.removeprefix(A) for k in ann)
        earlier = hosts.setdefault(ns, [])
        shared = [h for h in earlier if h[0] == cls]
        if shared and rng.random() < m["shared host"]:
            features["shared host"] += 1
            host = rng.choice(shared)[1]
        else:
            host = None
        paths = _paths(rng, service, regex, capture)
        if host is None:
            host = f"{name}.{team}.{DOMAINS[cls]}"
            earlier.append((cls, host, paths[0]))
        spec: dict[str, Any] = {"ingressClassName": cls, "rules": [{"host": host, "http": {"paths": paths}}]}
        if rng.random() < m["tls"]:
            features["tls"] += 1
            tls_hosts += 1
            secret = "wildcard-tls"
            if rng.random() < 0.5:  # cert-manager's certificate per Ingress
                secret = f"{name}-tls"
                chunk.append(c.obj("v1", "Secret", secret, ns, {"type": "kubernetes.io/tls", "data": tls_data},
                                   {"cert-manager.io/certificate-name": secret}))
                backend_objects.append(chunk[-1])
            spec["tls"] = [{"hosts": [host], "secretName": secret}]
        chunk.append(c.obj("networking.k8s.io/v1", "Ingress", name, ns, {
            "spec": spec, "status": {"loadBalancer": {"ingress": [{"ip": f"192.0.2.{classes.index(cls) + 10}"}]}}},
            ann, {"app": name, "team": team}))
        written += 1
        i += 1
        if written < n and rng.random() < m["canary"]:  # a canary for one of this namespace's paths
            features["canary"] += 1
            canaries += 1
            written += 1
            ccls, chost, cpath = earlier[-1]
            if rng.random() < 0.6:
                cann = {A + "canary": "true", A + "canary-weight": rng.choice(["5", "10", "25"])}
            else:
                cann = {A + "canary": "true", A + "canary-by-header": "X-Canary", A + "canary-by-header-value": "on"}
            annotation_keys.update(k.removeprefix(A) for k in cann)
            canary_path = {**cpath, "backend": {"service": {"name": service, "port": {"number": 80}}}}
            chunk.append(c.obj("networking.k8s.io/v1", "Ingress", f"{name}-canary", ns, {"spec": {
                "ingressClassName": ccls, "rules": [{"host": chost, "http": {"paths": [canary_path]}}]}}, cann))
        if i % PER_FILE == 0 or written >= n:
            (out / f"namespaces-{files:02d}.yaml").write_text(dump_list(chunk))
            if backends is not None:
                backends.mkdir(parents=True, exist_ok=True)
                (backends / f"backends-{files:02d}.yaml").write_text(dump_list(backend_objects))
            files += 1
            chunk, backend_objects = [], []
    sizes = [f.stat().st_size for f in out.iterdir()]
    return {"ingresses": written, "canary_ingresses": canaries, "namespaces": teams, "tls_ingresses": tls_hosts,
            "files": len(sizes), "input_mb": round(sum(sizes) / 1e6, 2), "largest_file_mb": round(max(sizes) / 1e6, 2),
            "features": dict(sorted(features.items())), "annotations": dict(sorted(annotation_keys.items()))}


# --- measuring -----------------------------------------------------------------------------------

# validate gets the TLS Secrets too: each key is checked against its certificate (about 1.3 ms
# since the model no longer runs cryptography's RSA key validation, 37 ms of each).
VALIDATE_NOTE = "TLS Secrets included: every listener's certificates are checked"


def timed(cmd: list[str], log_file: Path, timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
    """Run `cmd` as a child of its own; wall time, its CPU time and peak RSS (from wait4 on that
    child, so nothing else this process started counts), and the machine's other load meanwhile."""
    cpu_before = per_cpu_busy()
    load_before = os.getloadavg()[0]
    with log_file.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=err, stderr=subprocess.STDOUT)
        deadline = t0 + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    cpu_after = per_cpu_busy()
    busy = sum(cpu_after[c][0] - cpu_before[c][0] for c in cpu_after if c in cpu_before)
    total = sum(cpu_after[c][1] - cpu_before[c][1] for c in cpu_after if c in cpu_before)
    cpu = usage.ru_utime + usage.ru_stime
    return {"rc": proc.returncode, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: kilobytes
            "timed_out": wall >= timeout_s,
            # share of all CPUs busy with other work while it ran (ticks, so coarse for short runs)
            "other_busy": round(max(0.0, busy / total - cpu * (os.sysconf("SC_CLK_TCK") / total)), 2)
            if total else None,
            "loadavg_before": round(load_before, 2), "loadavg_after": round(os.getloadavg()[0], 2)}


def _tail(path: Path, n: int = 600) -> str:
    return path.read_text(errors="replace")[-n:].strip()


def run(settings: Settings) -> dict[str, Any]:
    t_start = time.monotonic()
    n = QUICK_SIZE if settings.quick else SIZE
    doc: dict[str, Any] = {
        "suite": "migrate",
        "mode": "quick" if settings.quick else "full",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {"runs": settings.runs, "ingresses": n, "targets": {"wall_s": TARGET_S, "peak_rss_mb": TARGET_MB},
                     "command": "python -m wardgate.cli migrate -f IN -o OUT",
                     "validate": "python -m wardgate.cli validate -f OUT/<namespace>.yaml ... -f BACKENDS "
                                 f"(the result with the Services and Secrets it names; {VALIDATE_NOTE})",
                     "mix": mix()},
        "runs": [], "validate_runs": [],
    }
    with scratch("migrate") as root:
        t0 = time.monotonic()
        doc["input"] = generate(n, root / "in", root / "backends")
        doc["input"]["generate_s"] = round(time.monotonic() - t0, 1)
        waited, busy = wait_quiet(settings.quiet_wait_s)
        doc["quiet_wait"] = {"waited_s": round(waited, 1), "busy_at_start": round(busy, 2)}
        out = root / "out"
        for r in range(settings.runs):
            shutil.rmtree(out, ignore_errors=True)
            res = timed([sys.executable, "-m", "wardgate.cli", "migrate", "-f", str(root / "in"), "-o", str(out)],
                        root / "migrate.log")
            res["run"] = r
            doc["runs"].append(res)
            log(f"migrate {n}: {res}")
            if res["rc"] != 0:
                raise RuntimeError(f"wardgate migrate exited {res['rc']}: {_tail(root / 'migrate.log')}")
        report = json.loads((out / "report.json").read_text())
        yamls = sorted(out.glob("*.yaml"))
        kinds: Counter[str] = Counter()
        for f in yamls:
            kinds.update(line[6:].strip() for line in f.read_text().splitlines() if line.startswith("kind: "))
        doc["output"] = {"files": len(yamls), "mb": round(sum(f.stat().st_size for f in yamls) / 1e6, 2),
                         "objects": dict(sorted(kinds.items())), "findings": report["summary"]["byStatus"],
                         "gateways": sorted(g for c in report["gateways"].values() for g in c["gateways"])}
        cmd = [sys.executable, "-m", "wardgate.cli", "validate"]
        for f in yamls:
            cmd += ["-f", str(f)]
        cmd += ["-f", str(root / "backends")]
        for r in range(settings.runs):
            res = timed(cmd, root / "validate.log")
            text = (root / "validate.log").read_text(errors="replace")
            res["run"] = r
            res["warnings"] = text.count("warning: ")
            res["said"] = next((line for line in text.splitlines() if line.startswith("ok: ")),
                               _tail(root / "validate.log"))
            doc["validate_runs"].append(res)
            log(f"migrate {n} validate: {res}")
            if res["rc"] != 0:
                raise RuntimeError(f"wardgate validate exited {res['rc']}: {_tail(root / 'validate.log')}")
        if doc["validate_runs"] and doc["validate_runs"][-1]["warnings"]:
            doc["validate_warning_sample"] = [line[:300] for line in text.splitlines() if "warning: " in line][:5]
    for key, runs in (("median", doc["runs"]), ("validate_median", doc["validate_runs"])):
        doc[key] = {k: median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "peak_rss_mb", "other_busy",
                                                             "loadavg_before")}
    m = doc["median"]
    doc["meets_target"] = bool(m["wall_s"] is not None and m["wall_s"] < TARGET_S
                               and m["peak_rss_mb"] is not None and m["peak_rss_mb"] < TARGET_MB)
    doc["wall_s"] = round(time.monotonic() - t_start, 1)
    return doc
