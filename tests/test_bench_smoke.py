"""The benchmarks run end to end in quick mode and write readable results.

No timing values are asserted: benchmarks report, tests only check that they work.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(420)


def test_bench_all_quick_writes_results() -> None:
    out = Path(tempfile.mkdtemp(prefix="wardgate-bench-smoke-"))
    out.chmod(0o755)
    try:
        proc = subprocess.run([sys.executable, "-m", "bench", "all", "--quick", "--out", str(out)],
                              cwd=REPO, capture_output=True, text=True, timeout=360, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        lines = (out / "latest.md").read_text().splitlines()
        head = lines[:15]
        assert head[0].startswith("plain/limit:"), head
        assert re.match(r"^plain/limit: \d+(\.\d+)?$", head[0]), head[0]
        for name in ("policies/limit", "waf/limit", "policies/limit cpu-efficiency", "waf/limit cpu-efficiency"):
            assert any(re.match(rf"^{name}: \d+(\.\d+)?$", line) for line in head), (name, head)
        assert all(re.match(r"^[^:]+: \S", line) for line in head), head
        for name in ("dataplane.json", "waf.json", "scale.json", "reconfig.json", "migrate.json", "latest.json"):
            doc = json.loads((out / name).read_text())
            assert isinstance(doc, dict) and doc, name
        latest = json.loads((out / "latest.json").read_text())
        # wardgate's seed policies were each probed in effect before being measured
        checks = latest["suites"]["dataplane"]["targets"]["policies"]["policy_checks"]
        assert all(v in ("ok", "not probed") for v in checks.values()), checks
        # instructions per request were counted for the nginx targets, more for more features
        ins = {t: latest["suites"]["dataplane"]["targets"][t]["instructions"]["instructions_per_req"]
               for t in ("limit", "plain", "policies")}
        assert 0 < ins["limit"] < ins["plain"] < ins["policies"], ins
        waf = latest["suites"]["waf"]
        assert set(waf["kinds"]) == {"get", "get_4args", "post_json"}, waf["kinds"].keys()
        assert waf["targets"]["waf"]["attacks"] == {"xss": 403, "sqli": 403}, waf["targets"]["waf"]
        assert latest["machine"]["cores"]
        # HTTPS alone and sharing its port with TLS passthrough, both measured
        assert set(json.loads((out / "passthrough.json").read_text())["shared_vs_alone"]) >= {
            "rps_ratio", "cpu_us_per_req_ratio"}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_bench_migrate_quick_updates_only_its_own_lines() -> None:
    """`python -m bench migrate --quick` (300 Ingresses) in a directory holding only a committed
    latest.md/latest.json: the other suites' headlines and sections stay as they were."""
    out = Path(tempfile.mkdtemp(prefix="wardgate-bench-migrate-"))
    out.chmod(0o755)
    try:
        for name in ("latest.md", "latest.json"):
            shutil.copy(REPO / "bench" / "results" / name, out / name)
        before = (out / "latest.md").read_text().splitlines()
        proc = subprocess.run([sys.executable, "-m", "bench", "migrate", "--quick", "--out", str(out)],
                              cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        lines = (out / "latest.md").read_text().splitlines()
        kept = [line for line in before[:18] if not line.startswith("migrate ")]
        assert [line for line in lines[:20] if not line.startswith("migrate ")] == kept
        assert re.match(r"^migrate 300 ingresses: \d+\.\d+ s, \d+ MB$", lines[18]), lines[18]
        assert re.match(r"^migrate 300 validate: \d+\.\d+ s$", lines[19]), lines[19]
        for section in ("## dataplane", "## waf", "## scale", "## reconfig", "## migrate (quick"):
            assert any(line.startswith(section) for line in lines), section
        doc = json.loads((out / "migrate.json").read_text())
        assert doc["input"]["ingresses"] == 300 and doc["output"]["findings"]["unknown"] == 0
        assert len(doc["output"]["gateways"]) == 3 and doc["runs"][0]["peak_rss_mb"] > 0
        latest = json.loads((out / "latest.json").read_text())
        assert {"dataplane", "waf", "scale", "reconfig", "migrate"} <= set(latest["suites"])
    finally:
        shutil.rmtree(out, ignore_errors=True)
