"""examples/migration/: the three-class cluster export migrates with nothing unknown or left out,
`wardgate validate` accepts the result with the example's backends, and the result serves each
class on its own Gateway through real nginx: one request (or three) per class."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import REPO, Backend, Gateway, request
from wardgate.migrate import migrate
from wardgate.migrate.output import dump
from wardgate.sources.files import load_paths

EXAMPLE = REPO / "examples" / "migration"
GATEWAYS = {"public": "ingress-nginx-public/public", "internal": "ingress-nginx-internal/internal",
            "phishing-simulation": "ingress-nginx-phishing/phishing-simulation"}


def wardgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wardgate.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)


def test_example_migrates_and_validates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = wardgate("migrate", "-f", str(EXAMPLE / "cluster.yaml"), "-o", str(out))
    assert res.returncode == 0, res.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["byStatus"] == {"exact": 28, "converted-with-difference": 5, "not-converted": 0,
                                             "unknown": 0}
    # each class found its ConfigMap through its controller's Deployment, and got its own Gateway
    assert {c: g["gateways"] for c, g in report["gateways"].items()} == {c: [g] for c, g in GATEWAYS.items()}
    assert all(cm["found"] and "Deployment" in cm["how"] for cm in report["configMaps"].values())
    files = sorted(out.glob("*.yaml"))
    args = [a for f in files for a in ("-f", str(f))]
    res = wardgate("validate", *args, "-f", str(EXAMPLE / "backends.yaml"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok: 27 objects, 3 gateway(s) to serve" and "warning" not in res.stderr, res


def test_example_serves_one_request_per_class(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    result = migrate(load_paths([EXAMPLE / "cluster.yaml"]))
    assert result.objects[0]["kind"] == "GatewayClass"  # the fixture has its own
    gateway.write("migrated.yaml", dump(result.objects[1:]))
    apps = [backends("shop", namespace="web"), backends("wiki", namespace="tools"),
            backends("campaign", namespace="phish-sim")]
    gateway.write("backends.yaml", *(b.manifests() for b in apps))
    gateway.reconcile()
    public, internal, phishing = (gateway.address(GATEWAYS[c]) for c in ("public", "internal", "phishing-simulation"))
    assert len({public, internal, phishing}) == 3  # three Gateways, three nginx, three addresses

    # public: the configuration-snippet's header and method limit, the server-snippet's security.txt
    r = request(f"http://{public}/cart", host="shop.example.com")
    assert (r.status, json.loads(r.body)["pod"].split("-")[0], r.headers["x-frame-options"]) == (200, "shop", "DENY")
    assert request(f"http://{public}/cart", host="shop.example.com", method="DELETE").status == 405
    r = request(f"http://{public}/.well-known/security.txt", host="shop.example.com")
    assert r.status == 200 and r.body.startswith(b"Contact: mailto:security@shop.example.com\n")
    # internal: use-regex + rewrite-target /$2, the client (127.0.0.1) inside whitelist-source-range
    r = request(f"http://{internal}/wiki/Start", host="wiki.corp.example")
    assert (r.status, json.loads(r.body)["path"], json.loads(r.body)["pod"].split("-")[0]) == (200, "/Start", "wiki")
    # phishing: X-Robots-Tag on every answer, /robots.txt from the server-snippet
    r = request(f"http://{phishing}/", host="login.phish-sim.example")
    assert (r.status, r.headers["x-robots-tag"], json.loads(r.body)["pod"].split("-")[0]) == (
        200, "noindex, nofollow", "campaign")
    robots = request(f"http://{phishing}/robots.txt", host="login.phish-sim.example")
    assert robots.body == b"User-agent: *\nDisallow: /\n"
    # the classes stay apart: one Gateway doesn't serve another's host
    assert request(f"http://{public}/", host="login.phish-sim.example").status == 404
