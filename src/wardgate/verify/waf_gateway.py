"""`wardgate verify waf`: a real wardgate gateway with the WAF on, and a corpus replayed through it.

The gateway is the product itself: a Gateway, one HTTPRoute for every host and path, and a
SecurityPolicy with `waf: {mode: Block, paranoiaLevel: N}`, run by the same Runner as
`wardgate run`. Behind it, a trivial nginx answers 200 to everything (as in the corpus's
baseline), so every non-2xx answer is the gateway's.

Two route configurations (`routes`): `defaults`, the WAF as it comes; `documented`, the same plus
the per-route settings docs/policies.md recommends for the false positives it names (GraphQL
queries, Markdown comments, bodies no parser reads), each on its own route, by path.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wardgate.runner import Runner, RunnerOptions
from wardgate.verify.waf import load_corpus, replay, summarize

GATEWAY_ADDRESS = "127.0.77.1"
BACKEND_ADDRESS = "127.0.77.2"
PORT = 8080
BACKEND_PORT = 8081

BACKEND_CONF = """\
worker_processes 1;
pid {dir}/backend.pid;
error_log {dir}/backend-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    client_max_body_size 64m;
    server {{
        listen {addr}:{port};
        default_type text/plain;
        location / {{ return 200 "backend ok\\n"; }}
    }}
}}
"""


Routes = Literal["defaults", "documented"]

# docs/policies.md's WAF examples (tests/test_waf.py keeps these specs equal to them), each on a
# route of its own: (example, route, its path matches as YAML, the policy's spec without targetRefs).
DOCUMENTED: tuple[tuple[str, str, str, str], ...] = (
    ("waf-graphql", "graphql", "[{path: {type: Exact, value: /graphql}}]", """\
        waf:
          mode: Block
          exclusions:
            - paths: [{type: Exact, value: /graphql}]
              ruleIds: [932100]
              args: [json.query]
        """),
    ("waf-markdown", "comments", '[{path: {type: RegularExpression, value: "/api/v1/posts/[^/]+/comments"}}]', """\
        waf:
          mode: Block
          exclusions:
            - paths: [{type: RegularExpression, value: "/api/v1/posts/[^/]+/comments"}]
              ruleIds: [933210, 932105, 932115]
              args: [json.body_markdown]
        """),
    ("waf-uninspected-types", "ingest", "[{path: {type: PathPrefix, value: /collect}}, "
     "{path: {type: PathPrefix, value: /api/v1/logs}}, {path: {type: PathPrefix, value: /api/v1/notes}}, "
     "{path: {type: PathPrefix, value: /api/v1/uploads}}]", """\
        waf:
          mode: Block
          allowUninspectedContentTypes: [text/plain, application/x-ndjson, application/octet-stream]
        """),
)


def _documented() -> str:
    out = ""
    for example, route, matches, spec in DOCUMENTED:
        out += ("---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                f"metadata: {{name: {route}, namespace: default}}\n"
                f"spec:\n  parentRefs: [{{name: waf}}]\n"
                f"  rules: [{{matches: {matches}, backendRefs: [{{name: backend, port: 80}}]}}]\n"
                "---\napiVersion: policy.wardgate.io/v1alpha1\nkind: SecurityPolicy\n"
                f"metadata: {{name: {example}, namespace: default}}\n"
                f"spec:\n  targetRefs: [{{kind: HTTPRoute, name: {route}}}]\n"
                + textwrap.indent(textwrap.dedent(spec), "  "))
    return out


def manifests(paranoia: int, routes: Routes = "defaults", backend: str = BACKEND_ADDRESS) -> str:
    return _base(paranoia, backend) + (_documented() if routes == "documented" else "")


def _base(paranoia: int, backend: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {{name: wardgate}}
        spec: {{controllerName: wardgate.io/gateway-controller}}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {{name: waf, namespace: default}}
        spec:
          gatewayClassName: wardgate
          listeners: [{{name: http, protocol: HTTP, port: {PORT}}}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {{name: everything, namespace: default}}
        spec:
          parentRefs: [{{name: waf}}]
          rules: [{{backendRefs: [{{name: backend, port: 80}}]}}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: backend, namespace: default}}
        spec: {{ports: [{{port: 80, targetPort: {BACKEND_PORT}}}]}}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {{name: backend-1, namespace: default, labels: {{kubernetes.io/service-name: backend}}}}
        addressType: IPv4
        ports: [{{port: {BACKEND_PORT}}}]
        endpoints: [{{addresses: [{backend}]}}]
        ---
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {{name: waf, namespace: default}}
        spec:
          targetRefs: [{{kind: Gateway, name: waf}}]
          requestLimits: {{maxBodySize: 16Mi}}
          waf: {{mode: Block, paranoiaLevel: {paranoia}}}
        """)


@dataclass
class WafRun:
    corpus: Path
    paranoia: int = 1
    workers: int = 4
    nginx_bin: str = "nginx"
    routes: Routes = "defaults"
    # Loopback addresses of the gateway and the backend (tests running side by side pick their own).
    address: str = GATEWAY_ADDRESS
    backend_address: str = BACKEND_ADDRESS
    progress: Callable[[int, int], None] | None = None

    def run(self) -> dict[str, Any]:
        records = load_corpus(self.corpus)
        work = Path(tempfile.mkdtemp(prefix="wardgate-waf-"))
        work.chmod(0o755)  # nginx workers (nobody) must reach their files
        backend: subprocess.Popen[bytes] | None = None
        runner: Runner | None = None
        try:
            (work / "tmp").mkdir()
            (work / "backend.conf").write_text(BACKEND_CONF.format(dir=work, addr=self.backend_address,
                                                                   port=BACKEND_PORT))
            backend = subprocess.Popen([self.nginx_bin, "-p", f"{work}/", "-c", str(work / "backend.conf"),
                                        "-g", "daemon off;"], stderr=subprocess.DEVNULL)
            (work / "manifests").mkdir()
            (work / "manifests" / "waf.yaml").write_text(manifests(self.paranoia, self.routes, self.backend_address))
            runner = Runner([work / "manifests"], work / "state",
                            RunnerOptions(listen_host=self.address, nginx_bin=self.nginx_bin))
            report = runner.reconcile()
            if not report.ok:
                raise RuntimeError("the WAF gateway did not start: " + "; ".join(report.errors))
            _wait_listening(self.address, PORT)
            _wait_listening(self.backend_address, BACKEND_PORT)
            started = time.monotonic()
            results = replay(records, self.address, PORT, workers=self.workers, progress=self.progress)
            doc = summarize(results, self.paranoia)
            doc["seconds"] = round(time.monotonic() - started, 1)
            doc["corpus"] = str(self.corpus)
            doc["routes"] = self.routes
            return doc
        finally:
            if runner is not None:
                runner.stop()
            if backend is not None:
                backend.terminate()
                backend.wait(10)
            shutil.rmtree(work, ignore_errors=True)


def _wait_listening(host: str, port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.05)


__all__ = ["DOCUMENTED", "Routes", "WafRun", "manifests"]
