"""The runner keeps serving through nginx rejections and crashes, and says so in status and metrics."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from collections.abc import Callable

import pytest

from conftest import Backend, Gateway, request
from wardgate.dataplane import AdminServer

pytestmark = pytest.mark.timeout(120)


def gw(name: str, port: int, hostname: str = "example.com") -> str:
    return f"""\
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: default}}
spec:
  gatewayClassName: wardgate
  listeners: [{{name: http, protocol: HTTP, port: {port}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: {name}}}]
  hostnames: [{hostname}]
  rules: [{{backendRefs: [{{name: app, port: 80}}]}}]
"""


def conditions(gateway: Gateway, name: str) -> dict[str, tuple[str, str]]:
    st = gateway.status("Gateway", name)
    return {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}


def test_nginx_rejection_keeps_last_good_config_and_reports(gateway: Gateway,
                                                            backends: Callable[..., Backend]) -> None:
    app = backends("app")
    gateway.write("a.yaml", gw("gw", 8080), app.manifests())
    gateway.reconcile()
    addr = gateway.address()
    url = f"http://{addr}:8080/"
    assert request(url, host="example.com").status == 200
    gen = gateway.runner.instances["default/gw"].generation
    # Something else holds the port of a new listener: nginx can't bind it, the reload fails.
    with socket.socket() as blocker:
        blocker.bind((addr, 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        gateway.write("a.yaml", gw("gw", 8080).replace(
            "listeners: [{name: http, protocol: HTTP, port: 8080}]",
            f"listeners: [{{name: http, protocol: HTTP, port: 8080}}, {{name: taken, protocol: HTTP, port: {taken}}}]"),
            app.manifests())
        report = gateway.runner.reconcile()
        assert not report.ok
        assert "Address already in use" in report.errors[0]
        assert request(url, host="example.com").status == 200  # the old config still serves
        assert gateway.runner.instances["default/gw"].generation == gen
        assert conditions(gateway, "gw")["Programmed"] == ("False", "Invalid")
        status = gateway.runner.status()
        assert any("default/gw" in e and "Address already in use" in e for e in status["errors"])
    # Once the port is free the same files apply.
    gateway.runner.reconcile()
    assert conditions(gateway, "gw")["Programmed"] == ("True", "Programmed")
    assert gateway.runner.instances["default/gw"].generation == gen + 1


def test_gateways_are_isolated_and_supervised(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    app = backends("app")
    gateway.write("a.yaml", gw("one", 8080, "one.example.com"), gw("two", 8080, "two.example.com"),
                  app.manifests())
    gateway.reconcile()
    one, two = gateway.address("default/one"), gateway.address("default/two")
    assert one != two
    assert request(f"http://{one}:8080/", host="one.example.com").status == 200
    assert request(f"http://{two}:8080/", host="two.example.com").status == 200
    assert request(f"http://{one}:8080/", host="two.example.com").status == 404  # separate data planes
    inst = gateway.runner.instances["default/one"]
    assert inst.pid is not None
    os.kill(inst.pid, signal.SIGKILL)
    time.sleep(0.2)
    assert request(f"http://{two}:8080/", host="two.example.com").status == 200  # the other is unaffected
    gateway.runner.supervise()
    assert request(f"http://{one}:8080/", host="one.example.com").status == 200
    assert inst.restarts == 1


def test_admin_metrics_and_readiness(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    app = backends("app")
    gateway.write("a.yaml", gw("gw", 8080), app.manifests())
    gateway.reconcile()
    admin = AdminServer("127.0.0.1", 0, gateway.runner.status, gateway.runner.states)
    admin.start()
    try:
        with urllib.request.urlopen(f"{admin.url}/readyz", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"{admin.url}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert 'wardgate_gateway_up{gateway="default/gw"} 1.0' in text
        assert 'wardgate_config_generation{gateway="default/gw"} 1.0' in text
        assert "wardgate_translation_errors 0.0" in text
        gateway.write("bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: BAD}\n")
        assert not gateway.runner.reconcile().ok
        with urllib.request.urlopen(f"{admin.url}/metrics", timeout=5) as r:
            assert "wardgate_translation_errors 1.0" in r.read().decode()
    finally:
        admin.stop()


def test_a_broken_file_keeps_its_last_good_objects_and_others_still_apply(
        gateway: Gateway, backends: Callable[..., Backend]) -> None:
    app = backends("app")
    gateway.write("gw.yaml", gw("gw", 8080, "one.example.com"), app.manifests())
    # A second HTTPRoute on the same Gateway, in its own file.
    two = gw("gw", 8080, "two.example.com").split("---\n")[2].replace("{name: gw, namespace", "{name: two, namespace")
    gateway.write("two.yaml", two)
    gateway.reconcile()
    addr = gateway.address()
    assert request(f"http://{addr}:8080/", host="two.example.com").status == 200
    # Break two.yaml (an invalid hostname) and, in the same change, move gw.yaml's route to a new host.
    gateway.write("two.yaml", two.replace("two.example.com", "Not_A_Host"))
    gateway.write("gw.yaml", gw("gw", 8080, "three.example.com"), app.manifests())
    report = gateway.runner.reconcile()
    assert not report.ok
    assert any("two.yaml" in e and "spec.hostnames[0]" in e for e in report.errors), report.errors
    assert request(f"http://{addr}:8080/", host="three.example.com").status == 200  # the good change applied
    assert request(f"http://{addr}:8080/", host="two.example.com").status == 200  # the broken one kept its last
    # A file that isn't even YAML any more keeps its objects too.
    gateway.write("two.yaml", "kind: [unclosed\n")
    report = gateway.runner.reconcile()
    assert any("two.yaml" in e and "YAML syntax error" in e for e in report.errors), report.errors
    assert request(f"http://{addr}:8080/", host="two.example.com").status == 200
    # Removing the file removes its objects.
    (gateway.dir / "two.yaml").unlink()
    assert gateway.runner.reconcile().ok
    assert request(f"http://{addr}:8080/", host="two.example.com").status == 404
