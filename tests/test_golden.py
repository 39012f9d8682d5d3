"""Golden tests: manifests in, IR (as YAML), status and nginx files out, compared byte for byte.

Cases: every `tests/golden/NAME.in.yaml`, every documented policy example (docs/policies.md,
applied to the policy tests' app), and the examples/ directories. Expected output lives in
`tests/golden/NAME.out/`. After a deliberate change, regenerate and review the diff:

    WARDGATE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_golden.py
    git diff tests/golden

Every rendered configuration must also pass `nginx -t`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import GATEWAY_CLASS, GW, MUTATION_TESTING, REPO
from policy_helpers import APP, doc_examples
from wardgate.model import parse
from wardgate.render.nginx import RenderOptions, default_wardgate_module, render
from wardgate.sources.files import load_paths
from wardgate.translate import Options, translate

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("WARDGATE_UPDATE_GOLDEN") == "1"
NOW = "2026-01-01T00:00:00Z"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# wardgate's module is built per checkout (scripts/install.sh); the golden files name it by this
# stable path, and `nginx -t` gets the real one.
GOLDEN_MODULE = "/usr/lib/nginx/modules/ngx_http_wardgate_module.so"

# The policy tests' app with fixed endpoints instead of live echo servers.
APP_BACKEND = """\
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: 3000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: app-1
  namespace: default
  labels: {kubernetes.io/service-name: app}
addressType: IPv4
ports: [{name: http, port: 3000}]
endpoints: [{addresses: [10.0.0.1]}]
"""

EXAMPLES = {"example-quickstart": REPO / "examples" / "quickstart",
            "example-three-gateways": REPO / "examples" / "three-gateways"}


def _cases() -> dict[str, Path | str]:
    cases: dict[str, Path | str] = {p.name.removesuffix(".in.yaml"): p for p in sorted(GOLDEN.glob("*.in.yaml"))}
    for name, text in doc_examples().items():
        cases[f"policy-{name}"] = GATEWAY_CLASS + "---\n" + GW + APP_BACKEND + APP + "---\n" + text
    cases.update(EXAMPLES)
    return cases


CASES = _cases()


def _plain(value: Any) -> Any:
    """IR values as YAML-friendly data; PEM material shown by digest only."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("-----BEGIN"):
        return f"<PEM sha256:{hashlib.sha256(value.encode()).hexdigest()[:16]}>"
    return value


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False, width=1000,
                     allow_unicode=True)


def produce(source: Path | str, tmp: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The golden files of one case, keyed by their path under NAME.out/, and the certificate
    files, which the golden files leave out (key material: the IR records digests)."""
    if isinstance(source, str):
        path = tmp / "in.yaml"
        path.write_text(source)
        source = path
    tr = translate(parse(load_paths([source])), Options(now=NOW))
    out: dict[str, str] = {}
    certs: dict[str, str] = {}
    status = {
        "problems": sorted(str(p).replace(str(source), "<input>") for p in tr.problems),
        "statuses": [_plain(s) for s in sorted(tr.statuses, key=lambda s: (s.kind, s.namespace, s.name))],
    }
    out["status.yaml"] = _dump(status)
    for gw in tr.gateways:
        base = f"{gw.namespace}_{gw.name}"
        out[f"{base}.ir.yaml"] = _dump(_plain(gw))
        for rel, text in render(gw, RenderOptions(listen_host="127.0.0.1", wardgate_module=GOLDEN_MODULE)).items():
            (certs if rel.startswith("certs/") else out)[f"{base}/{rel}"] = text
    return out, certs


def _nginx_t(files: dict[str, str], base: str, tmp: Path) -> None:
    root = tmp / "nginx" / base
    for rel, text in files.items():
        if rel.startswith(base + "/"):
            path = root / rel.removeprefix(base + "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace(f'load_module "{GOLDEN_MODULE}";',
                                         f'load_module "{default_wardgate_module()}";'))
    for d in ("logs", "run", "tmp", "certs"):
        (root / d).mkdir(exist_ok=True)
    res = subprocess.run([NGINX, "-t", "-q", "-p", f"{root}/", "-c", str(root / "nginx.conf")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, f"nginx -t rejected {base}:\n{res.stderr}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        got, certs = produce(CASES[case], tmp)
        out_dir = GOLDEN / f"{case}.out"
        if UPDATE:
            shutil.rmtree(out_dir, ignore_errors=True)
            for rel, text in got.items():
                path = out_dir / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        expected = {str(p.relative_to(out_dir)): p.read_text() for p in sorted(out_dir.rglob("*")) if p.is_file()}
        hint = "regenerate with WARDGATE_UPDATE_GOLDEN=1 (see tests/test_golden.py) and review `git diff tests/golden`"
        assert sorted(got) == sorted(expected), f"{case}: output files differ; {hint}"
        for rel, text in got.items():
            if text != expected[rel]:
                diff = "".join(list(difflib.unified_diff(expected[rel].splitlines(True), text.splitlines(True),
                                                         f"expected/{rel}", f"got/{rel}"))[:80])
                pytest.fail(f"{case}: {rel} differs ({hint}):\n{diff}")
        for rel in got:
            if rel.endswith("/nginx.conf") and not MUTATION_TESTING:
                _nginx_t({**got, **certs}, rel.removesuffix("/nginx.conf"), tmp)
