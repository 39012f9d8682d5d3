"""Gateway status: translation decides every condition once; the runner adds only what the data
plane knows (its address, and whether nginx runs the configuration), on a real nginx."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

from conftest import Backend, Gateway, request

pytestmark = pytest.mark.timeout(120)

GATEWAY = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: wardgate
  listeners:
  - {{name: http, protocol: HTTP, port: 8080}}
  - {{name: extra, protocol: HTTP, port: {extra}}}
  - {{name: broken, protocol: HTTPS, port: 8443, tls: {{certificateRefs: [{{name: missing}}]}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: app, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [example.com]
  rules: [{{backendRefs: [{{name: app, port: 80}}]}}]
"""


def programmed(st: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """Programmed (status, reason, message) of the Gateway ("") and of each listener."""
    def of(conds: list[dict[str, Any]]) -> tuple[str, str, str]:
        c = next(c for c in conds if c["type"] == "Programmed")
        return c["status"], c["reason"], c["message"]
    return {"": of(st["conditions"]), **{lst["name"]: of(lst["conditions"]) for lst in st["listeners"]}}


def test_programmed_follows_the_data_plane(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    app = backends("app")
    addr = gateway.address()
    with socket.socket() as blocker:
        # Something else holds the port of a listener: nginx can't bind it and never runs this config.
        blocker.bind((addr, 0))
        blocker.listen()
        gateway.write("gw.yaml", GATEWAY.format(extra=blocker.getsockname()[1]), app.manifests())
        assert not gateway.runner.reconcile().ok
        st = gateway.status("Gateway", "gw")
        pending = ("False", "Pending", "nginx has not accepted the configuration")
        assert programmed(st) == {"": ("False", "Invalid", "Gateway is not programmed"), "http": pending,
                                  "extra": pending, "broken": ("False", "Invalid", "Listener is not valid")}
        assert st["addresses"] == [{"type": "IPAddress", "value": addr}]
        # The other conditions are translation's, whatever the data plane does.
        assert [c["type"] for c in st["conditions"]] == ["Accepted", "Programmed", "ResolvedRefs"]
        assert (st["conditions"][0]["status"], st["conditions"][0]["reason"]) == ("True", "ListenersNotValid")
        # Translation's own status is left as it was: it still says what a running nginx would serve.
        tr = gateway.runner.translation
        assert tr is not None
        own = next(s for s in tr.statuses if s.kind == "Gateway").to_dict()["status"]
        assert programmed(own)["http"] == ("True", "Programmed", "Listener is programmed in nginx")
    gateway.runner.reconcile()  # the port is free: the same files apply
    assert request(f"http://{addr}:8080/", host="example.com").status == 200
    st = gateway.status("Gateway", "gw")
    ok = ("True", "Programmed", "Listener is programmed in nginx")
    assert programmed(st) == {"": ("True", "Programmed", "Gateway is programmed in nginx"), "http": ok,
                              "extra": ok, "broken": ("False", "Invalid", "Listener is not valid")}
    # The status document is plain data: conditions serialised in the Kubernetes field order.
    doc = json.loads(json.dumps(gateway.runner.status()))
    cond = next(o for o in doc["objects"] if o["kind"] == "Gateway")["status"]["conditions"][0]
    assert list(cond) == ["type", "status", "reason", "message", "observedGeneration", "lastTransitionTime"]
