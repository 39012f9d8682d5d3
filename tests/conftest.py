"""Shared fixtures: real echo backends, a real runner with real nginx, loopback addresses."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import tempfile
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import settings

# ngx_conf_read_token's unescaping: the bytes nginx hands to a directive (migrate reads snippets with it).
from wardgate.migrate.snippets import nginx_unescape  # noqa: F401
from wardgate.runner import Runner, RunnerOptions
from wardgate.verify.echo import EchoIdentity, EchoServer

REPO = Path(__file__).resolve().parents[1]
# The shared corpora (conformance/, waf/, migration/): one setting, WARDGATE_CORPORA, defaulting to
# the `shared` directory beside the clone. A user's clone has none: those tests are skipped there,
# and fail under CI=true, where the corpora are always present.
CORPORA = Path(os.environ.get("WARDGATE_CORPORA") or REPO.parent / "shared")


# HYPOTHESIS_PROFILE=mutmut (docs/testing.md): the fuzzers run a twentieth of their examples, so
# mutation testing can rerun them for every mutant.
settings.register_profile("mutmut", deadline=None, database=None, max_examples=20)
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "")
if HYPOTHESIS_PROFILE:
    settings.load_profile(HYPOTHESIS_PROFILE)


# Under it, tests skip `nginx -t` too, and tests that start nginx (the `gateway` fixture) are
# deselected: rendering is not mutated, and nginx is what makes them slow.
MUTATION_TESTING = HYPOTHESIS_PROFILE == "mutmut"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not MUTATION_TESTING:
        return
    nginx = [item for item in items if "gateway" in getattr(item, "fixturenames", ())]
    if nginx:
        config.hook.pytest_deselected(items=nginx)
        items[:] = [item for item in items if item not in nginx]


def examples(n: int) -> int:
    """A fuzzer's max_examples: `n`, or a twentieth of it under the mutmut profile."""
    return max(10, n // 20) if HYPOTHESIS_PROFILE == "mutmut" else n


def shared_corpus(name: str) -> Path:
    """The corpus `name` under CORPORA; skips the test (fails it under CI=true) when it is absent."""
    path = CORPORA / name
    if path.is_dir():
        return path
    reason = (f"corpus {name}/ not found in {CORPORA}: set WARDGATE_CORPORA to a directory holding "
              "wardgate's shared corpora (conformance/, waf/, migration/; CI places them beside the "
              "clone as ../shared) to run this test")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true: the corpora are required)")
    pytest.skip(reason)


@pytest.fixture
def conformance_corpus() -> Path:
    return shared_corpus("conformance")


@pytest.fixture
def waf_corpus() -> Path:
    return shared_corpus("waf")


@pytest.fixture(scope="session")
def migration_corpus() -> Path:
    return shared_corpus("migration")

# Each test session takes its own /16 of loopback so parallel or leftover runs can't collide.
_NET = random.Random(os.getpid()).randrange(130, 250)
_subnets = itertools.count(1)

GATEWAY_CLASS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: wardgate}
spec: {controllerName: wardgate.io/gateway-controller}
"""

# Gateway default/gw up to its listeners (each "    - ..." line follows).
GW_HEAD = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: wardgate
  listeners:
"""
# The Gateway most tests route through: one HTTP listener on 8080.
GW = GW_HEAD + "    - {name: http, protocol: HTTP, port: 8080}\n"


def loopback_subnet() -> str:
    """A fresh 127.x.y.0/24 for one test's gateways or backends."""
    # The suite needs more than 254 of them: carry into the next /16 of the 130-249 range, which
    # keeps clear of the fixed addresses below 130 (127.0.0.1, the harnesses' 127.0.x.y).
    n = next(_subnets)
    return f"127.{130 + (_NET - 130 + n // 254) % 120}.{n % 254 + 1}"


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A scratch dir nginx workers (nobody, when tests run as root) can traverse; tmp_path is 0700."""
    path = Path(tempfile.mkdtemp(prefix="wardgate-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Backend:
    service: str
    namespace: str
    servers: list[EchoServer]

    def manifests(self, port: int = 80) -> str:
        """A Service and the EndpointSlice that points it at the echo servers."""
        target = self.servers[0].port
        eps = ", ".join(f"{{addresses: [{s.host}]}}" for s in self.servers)
        return textwrap.dedent(f"""\
            ---
            apiVersion: v1
            kind: Service
            metadata: {{name: {self.service}, namespace: {self.namespace}}}
            spec:
              ports: [{{name: http, port: {port}, targetPort: {target}}}]
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: {self.service}-1
              namespace: {self.namespace}
              labels: {{kubernetes.io/service-name: {self.service}}}
            addressType: IPv4
            ports: [{{name: http, port: {target}}}]
            endpoints: [{eps}]
            """)


@pytest.fixture
def rsa_ca() -> trustme.CA:
    """A test CA issuing RSA certificates (the kind every TLS suite can use)."""
    return trustme.CA(key_type=trustme.KeyType.RSA)


@pytest.fixture
def backends() -> Iterator[Callable[..., Backend]]:
    """backends("svc", replicas=1, namespace="default") starts real echo servers."""
    started: list[EchoServer] = []

    def make(service: str, replicas: int = 1, namespace: str = "default") -> Backend:
        net = loopback_subnet()
        servers = []
        for i in range(replicas):
            srv = EchoServer(f"{net}.{i + 1}", 3000, EchoIdentity(namespace=namespace, pod=f"{service}-abc12-{i:05d}"),
                             log=lambda _line: None).start()
            started.append(srv)
            servers.append(srv)
        return Backend(service, namespace, servers)

    yield make
    for srv in started:
        srv.stop()


@dataclass
class Gateway:
    runner: Runner
    dir: Path

    def write(self, name: str, *parts: str) -> Path:
        """Each part is dedented on its own, so indented literals and generated YAML can mix."""
        path = self.dir / name
        path.write_text("\n".join(textwrap.dedent(p) for p in parts))
        return path

    def reconcile(self) -> None:
        report = self.runner.reconcile()
        assert report.ok, report.errors

    def address(self, key: str = "default/gw") -> str:
        return self.runner.address_of(key)

    def status(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
        for obj in self.runner.status()["objects"]:
            if (obj["kind"], obj["namespace"], obj["name"]) == (kind, namespace, name):
                return dict(obj["status"])
        raise AssertionError(f"no status for {kind} {namespace}/{name}")


@pytest.fixture
def gateway(world_dir: Path) -> Iterator[Gateway]:
    """A runner over world_dir/manifests with real nginx; Gateways get their own loopback IP."""
    manifests = world_dir / "manifests"
    manifests.mkdir()
    (manifests / "class.yaml").write_text(GATEWAY_CLASS)
    runner = Runner([manifests], world_dir / "state",
                    RunnerOptions(worker_processes=1, address_pool=loopback_subnet() + ".0/24"))
    yield Gateway(runner, manifests)
    runner.stop()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    header_list: list[tuple[str, str]]

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.header_list if k.lower() == name.lower()]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def request(url: str, *, host: str | None = None, method: str = "GET", headers: dict[str, str] | None = None,
            data: bytes | None = None, timeout: float = 5.0) -> Response:
    """One real HTTP request; redirects are not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if host:
        req.add_header("Host", host)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:
            items = list(resp.headers.items())
            return Response(resp.status, {k.lower(): v for k, v in items}, resp.read(), items)
    except urllib.error.HTTPError as exc:
        items = list(exc.headers.items())
        return Response(exc.code, {k.lower(): v for k, v in items}, exc.read(), items)
