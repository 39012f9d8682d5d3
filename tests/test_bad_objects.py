"""One bad object is an error on that object only (issue 9, items 3 and 4).

Each case below once crashed reconcile for every Gateway or froze its Gateway (nginx refused the
whole configuration, so other objects' edits stopped applying) while gateway_up stayed 1. Now,
through the real runner, real nginx and the admin endpoints:
1. the bad object's error names its file, object and field, in /status and status.json;
2. its last good version keeps serving;
3. an edit to another route on the same Gateway applies and serves;
4. another Gateway keeps serving and applying edits;
5. the error count in /metrics goes up;
6. no byte of a private key appears in /status, status.json, /metrics or the log.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

import wardgate.runner
from conftest import Backend, Gateway, request
from wardgate.dataplane import AdminServer

pytestmark = pytest.mark.timeout(120)

MARKER = b"WGSECRETMARKER"


@dataclass
class Pki:
    ca: trustme.CA
    crt: bytes
    key: bytes


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = trustme.CA()
    cert = ca.issue_cert("one.test")
    return Pki(ca, b"".join(b.bytes() for b in cert.cert_chain_pems), cert.private_key_pem.bytes())


def secret(crt: bytes, key: bytes) -> str:
    return f"""\
apiVersion: v1
kind: Secret
metadata: {{name: cert, namespace: default}}
type: kubernetes.io/tls
data:
  tls.crt: {base64.b64encode(crt).decode()}
  tls.key: {base64.b64encode(key).decode()}
"""


def gateway_yaml(name: str, tls: bool) -> str:
    https = ("\n    - {name: https, protocol: HTTPS, port: 8443, hostname: one.test, "
             "tls: {certificateRefs: [{name: cert}]}}") if tls else ""
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: default}}
spec:
  gatewayClassName: wardgate
  listeners:
    - {{name: http, protocol: HTTP, port: 8080}}{https}
"""


def route(name: str, gw: str, host: str, rule: str = "") -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: {gw}}}]
  hostnames: [{host}]
  rules:
    - backendRefs: [{{name: app, port: 80}}]
      {rule}
"""


def policy(allow: str) -> str:
    return f"""\
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: ips, namespace: default}}
spec:
  targetRefs: [{{kind: HTTPRoute, name: main}}]
  ipAccess: {{allow: [{allow}]}}
"""


@dataclass
class World:
    gw: Gateway
    admin: AdminServer
    pki: Pki

    def get(self, gateway: str, host: str, path: str = "/") -> int:
        return request(f"http://{self.gw.address(f'default/{gateway}')}:8080{path}", host=host).status

    def https(self) -> int:
        ctx = ssl.create_default_context()
        self.pki.ca.configure_trust(ctx)
        with httpx.Client(verify=ctx) as client:
            r = client.get(f"https://{self.gw.address('default/one')}:8443/", headers={"Host": "one.test"},
                           extensions={"sni_hostname": "one.test"})
        return r.status_code

    def fetch(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.admin.url}{path}", timeout=5) as r:
            return str(r.read().decode())

    def metric(self, line_start: str) -> float:
        for line in self.fetch("/metrics").splitlines():
            if line.startswith(line_start + " "):
                return float(line.split()[-1])
        raise AssertionError(f"no metric {line_start}")


@pytest.fixture
def world(gateway: Gateway, backends: Callable[..., Backend], pki: Pki) -> Iterator[World]:
    app = backends("app")
    gateway.write("backend.yaml", app.manifests())
    gateway.write("one.yaml", gateway_yaml("one", tls=True))
    gateway.write("two.yaml", gateway_yaml("two", tls=False))
    gateway.write("secret.yaml", secret(pki.crt, pki.key))
    gateway.write("main.yaml", route("main", "one", "one.test"))
    gateway.write("other.yaml", route("other", "one", "other.test"))
    gateway.write("second.yaml", route("second", "two", "two.test"))
    gateway.write("policy.yaml", policy("127.0.0.0/8"))
    gateway.reconcile()
    admin = AdminServer("127.0.0.1", 0, gateway.runner.status, gateway.runner.states)
    admin.start()
    w = World(gateway, admin, pki)
    assert (w.get("one", "one.test"), w.get("one", "other.test"), w.get("two", "two.test")) == (200, 200, 200)
    assert w.https() == 200
    assert w.metric("wardgate_translation_errors") == 0
    try:
        yield w
    finally:
        admin.stop()


def _encrypted(key: bytes) -> bytes:
    loaded = serialization.load_pem_private_key(key, password=None)
    return loaded.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(b"pass phrase"))


# case -> (file to break, its new content, the error's field, words the message has)
def _cases(pki: Pki) -> dict[str, tuple[str, str, str, str]]:
    return {
        # (a) passes OpenSSL, then .decode() raised with the whole key in the exception's repr
        "non-utf8-key": ("secret.yaml", secret(pki.crt, pki.key + b"\n\xff" + MARKER + b"\n"),
                         "data.tls.key", "not UTF-8"),
        # (b) OpenSSL asked the terminal for a pass phrase; without one, OSError escaped
        "encrypted-key": ("secret.yaml", secret(pki.crt, _encrypted(pki.key)), "data.tls.key", "encrypted"),
        # (c) passed validation, then render refused the line break in the rule name
        "rule-name": ("main.yaml", route("main", "one", "one.test", 'name: "bad\\nname"'),
                      "spec.rules[0].name", "pattern"),
        # (d) 400 '$' escape to 4,800 bytes: nginx -t says "too long parameter"
        "long-header": ("main.yaml", route("main", "one", "one.test",
                                           "filters: [{type: ResponseHeaderModifier, responseHeaderModifier: "
                                           "{set: [{name: X-Big, value: '" + "$" * 400 + "'}]}}]"),
                        "spec.rules[0].filters[0].responseHeaderModifier.set[0].value", "too long for nginx"),
        # (e) Python's ipaddress takes the zone id, nginx's allow does not
        "zone-id": ("policy.yaml", policy("127.0.0.0/8, 'fe80::1%eth0/128'"), "spec.ipAccess.allow[1]", "zone id"),
    }


CASES = ["non-utf8-key", "encrypted-key", "rule-name", "long-header", "zone-id"]


@pytest.mark.parametrize("case", CASES)
def test_one_bad_object_is_an_error_on_that_object_only(world: World, case: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    file, content, field, words = _cases(world.pki)[case]
    world.gw.write(file, content)
    # In the same change: an edit to another route on the same Gateway, and one on the other Gateway.
    world.gw.write("other.yaml", route("other", "one", "edited.test"))
    world.gw.write("second.yaml", route("second", "two", "two-edited.test"))
    report = world.gw.runner.reconcile()
    assert not report.ok

    # 1. the last good version keeps serving
    assert world.https() == 200
    assert world.get("one", "one.test") == 200
    # 2. the edit to another route on the same Gateway applied
    assert world.get("one", "edited.test") == 200
    assert world.get("one", "other.test") == 404
    # 3. the other Gateway serves its edit too
    assert world.get("two", "two-edited.test") == 200
    # 4. the error names the file, the object and the field, in /status and in status.json
    kind, name = {"secret.yaml": ("Secret", "cert"), "main.yaml": ("HTTPRoute", "main"),
                  "policy.yaml": ("SecurityPolicy", "ips")}[file]
    status_text = world.fetch("/status")
    status_file = (world.gw.runner.state_dir / "status.json").read_text()
    for doc in (json.loads(status_text), json.loads(status_file)):
        errors = [e for e in doc["errors"] if f"{kind} default/{name}" in e]
        assert len(errors) == 1, doc["errors"]
        assert file in errors[0] and field in errors[0] and words in errors[0], errors[0]
        assert not [e for e in doc["errors"] if "internal error" in e], doc["errors"]
    # 5. counted, and both data planes are honestly up: they serve everything else
    metrics = world.fetch("/metrics")
    assert world.metric("wardgate_translation_errors") == 1
    assert 'wardgate_gateway_up{gateway="default/one"} 1.0' in metrics
    assert 'wardgate_gateway_up{gateway="default/two"} 1.0' in metrics
    # 6. nothing of the key anywhere
    key_lines = [ln for ln in world.pki.key.decode().splitlines() if "-----" not in ln]
    for text in (status_text, status_file, metrics, caplog.text, "\n".join(report.errors)):
        assert MARKER.decode() not in text
        assert not [ln for ln in key_lines if ln in text]
        assert "PRIVATE KEY" not in text

    # Fixing the object applies it.
    world.gw.write(file, {"secret.yaml": secret(world.pki.crt, world.pki.key),
                          "main.yaml": route("main", "one", "one.test", "name: good-name"),
                          "policy.yaml": policy("127.0.0.0/8")}[file])
    world.gw.reconcile()
    assert world.metric("wardgate_translation_errors") == 0


def test_a_new_invalid_secret_is_named_in_the_listener_status(world: World) -> None:
    """No last good version: the listener's ResolvedRefs says which Secret and field, not 'not found'."""
    world.gw.write("one.yaml", gateway_yaml("one", tls=True).replace("name: cert", "name: fresh"))
    world.gw.write("fresh.yaml", secret(world.pki.crt, world.pki.key + b"\xff" + MARKER).replace(
        "name: cert", "name: fresh"))
    assert not world.gw.runner.reconcile().ok
    listener = next(ls for ls in world.gw.status("Gateway", "one")["listeners"] if ls["name"] == "https")
    resolved = next(c for c in listener["conditions"] if c["type"] == "ResolvedRefs")
    assert (resolved["status"], resolved["reason"]) == ("False", "InvalidCertificateRef")
    assert "Secret default/fresh is invalid: data.tls.key: is not UTF-8 text" in resolved["message"]
    assert MARKER.decode() not in world.fetch("/status")
    assert world.get("one", "one.test") == 200  # the HTTP listener is unaffected


def test_a_failure_building_one_gateway_leaves_the_others_and_is_counted(
        world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Render failures (a bug validation missed) are that Gateway's, reported, counted, and make it
    not up; the exception's text (which could quote a Secret) appears nowhere."""
    real = wardgate.runner.render

    def render(gw: object, opts: object) -> dict[str, str]:
        if getattr(gw, "name", "") == "one":
            raise KeyError(MARKER.decode())
        return real(gw, opts)  # type: ignore[arg-type]

    monkeypatch.setattr(wardgate.runner, "render", render)
    world.gw.write("other.yaml", route("other", "one", "edited.test"))
    world.gw.write("second.yaml", route("second", "two", "two-edited.test"))
    report = world.gw.runner.reconcile()
    assert not report.ok
    assert world.get("two", "two-edited.test") == 200  # the other Gateway applied its edit
    assert world.get("one", "other.test") == 200  # this one keeps its last good configuration
    status = json.loads(world.fetch("/status"))
    assert [e for e in status["errors"] if e.startswith("Gateway default/one: internal error (KeyError)")]
    assert status["gateways"]["default/one"]["lastError"].startswith("internal error (KeyError)")
    metrics = world.fetch("/metrics")
    assert 'wardgate_gateway_up{gateway="default/one"} 0.0' in metrics
    assert 'wardgate_gateway_up{gateway="default/two"} 1.0' in metrics
    assert world.metric('wardgate_config_failures_total{gateway="default/one"}') == 1
    assert world.metric('wardgate_config_failures_total{gateway="default/two"}') == 0
    for text in (json.dumps(status), metrics, caplog.text):
        assert MARKER.decode() not in text
    monkeypatch.setattr(wardgate.runner, "render", real)
    world.gw.reconcile()
    assert world.get("one", "edited.test") == 200
    assert 'wardgate_gateway_up{gateway="default/one"} 1.0' in world.fetch("/metrics")
