"""The wardgate command line on the quickstart example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

QUICKSTART = REPO / "examples" / "quickstart"


def wardgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wardgate", *args], capture_output=True, text=True, timeout=60)


def test_validate_and_status() -> None:
    r = wardgate("validate", "-f", str(QUICKSTART))
    assert r.returncode == 0, r.stderr
    assert "1 gateway(s)" in r.stdout
    r = wardgate("status", "-f", str(QUICKSTART), "-o", "json")
    doc = json.loads(r.stdout)
    kinds = {(o["kind"], o["name"]) for o in doc["objects"]}
    assert {("GatewayClass", "wardgate"), ("Gateway", "quickstart"), ("HTTPRoute", "echo")} <= kinds
    table = wardgate("status", "-f", str(QUICKSTART)).stdout
    assert "listener http" in table and "attachedRoutes=1" in table


def test_validate_warns_about_what_status_would_report(tmp_path: Path) -> None:
    """A listener whose certificate Secret is missing and a route whose Service is: valid input
    (exit 0), but not served as written, so validate says so instead of a bare "ok"."""
    world = tmp_path / "world.yaml"
    world.write_text("""\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: wardgate}
spec: {controllerName: wardgate.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: wardgate
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: https, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: gone}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules: [{backendRefs: [{name: nosvc, port: 80}]}]
""")
    r = wardgate("validate", "-f", str(world))
    assert r.returncode == 0 and "1 gateway(s) to serve" in r.stdout, r.stderr
    warnings = sorted(line for line in r.stderr.splitlines() if line.startswith("warning: "))
    assert warnings == [  # the route's missing Service once, as the translation's problem
        f"warning: {world}[doc 2]: HTTPRoute default/r: spec.rules[0].backendRefs[0]: Service default/nosvc "
        "not found",
        "warning: Gateway default/gw listener https: Programmed False (Invalid): Listener is not valid",
        "warning: Gateway default/gw listener https: ResolvedRefs False (InvalidCertificateRef): "
        "tls.certificateRefs[0]: Secret default/gone not found",
    ], r.stderr
    assert "warning" not in wardgate("validate", "-f", str(QUICKSTART)).stderr


def test_render_output_passes_nginx_t(tmp_path: Path) -> None:
    r = wardgate("render", "-f", str(QUICKSTART), "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    conf = tmp_path / "default_quickstart" / "nginx.conf"
    assert "server_name \"localhost\"" in conf.read_text()
    t = subprocess.run(["nginx", "-t", "-q", "-p", f"{conf.parent}/", "-c", str(conf)], capture_output=True,
                       text=True)
    assert t.returncode == 0, t.stderr


def test_invalid_input_exits_2_with_located_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n"
                   "spec: {gatewayClassName: x, listeners: [{name: l, port: 99999, protocol: HTTP}]}\n")
    r = wardgate("validate", "-f", str(bad))
    assert r.returncode == 2
    assert f"{bad}[doc 0]: Gateway default/g: spec.listeners[0].port" in r.stderr


def test_echo_command_options_and_output(tmp_path: Path) -> None:
    """`wardgate echo` (docs/echo.md): the identity options appear in every JSON answer."""
    import socket
    import urllib.request

    with socket.socket() as s:  # a free port on loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "wardgate", "echo", "--listen", f"127.0.0.1:{port}",
                             "--namespace", "apps", "--pod", "shop-0", "--service", "shop", "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().strip() == f"echo: listening on http://127.0.0.1:{port}"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/a/b?c=d", data=b"xyz", method="PUT",
                                     headers={"X-Test": "1", "Host": "shop.example"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            doc = json.loads(resp.read())
        assert {k: doc[k] for k in ("path", "host", "method", "namespace", "pod", "service", "bodyLength")} == {
            "path": "/a/b?c=d", "host": "shop.example", "method": "PUT", "namespace": "apps", "pod": "shop-0",
            "service": "shop", "bodyLength": 3}
        assert doc["headers"]["X-Test"] == ["1"] and doc["proto"] == "HTTP/1.1"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
