"""`python -m bench <dataplane|waf|scale|reconfig|passthrough|migrate|all> [--quick] [--runs N] [--out DIR]`."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import dataplane, passthrough, reconfig, report, scale, waf
from bench import migrate as migrate_suite
from bench.common import RESULTS_DIR, Settings, log, machine_info, write_json

SUITES = {"dataplane": dataplane.run, "waf": waf.run, "scale": scale.run, "reconfig": reconfig.run,
          "passthrough": passthrough.run, "migrate": migrate_suite.run}


def _suite_failed(doc: dict[str, Any]) -> bool:
    if "error" in doc:
        return True
    if doc.get("suite") == "scale":
        return any(e.get("error") for e in doc.get("sizes", {}).values())
    if doc.get("suite") == "migrate":
        return not doc.get("runs") or not doc.get("validate_runs")
    if doc.get("suite") == "reconfig":
        return not doc.get("edits") or not all(e.get("visible") for e in doc["edits"])
    if doc.get("suite") == "dataplane":  # wardgate's own targets must work; the peers may be missing
        return not all(doc.get("targets", {}).get(t, {}).get("median") for t in ("limit", "plain", "policies"))
    if doc.get("suite") == "waf":
        kinds = doc.get("kinds", {})
        return not kinds or not all(k["targets"].get(t, {}).get("median") for k in kinds.values()
                                    for t in ("limit", "modsec", "waf"))
    return False


def _previous(out: Path) -> dict[str, dict[str, Any]]:
    """The last document of each suite in `out`: its `<suite>.json` (not committed), else the
    one inside latest.json (committed), so a run of one suite keeps the others' results."""
    docs: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(OSError, ValueError, AttributeError):
        docs.update(json.loads((out / "latest.json").read_text()).get("suites", {}))
    for name in SUITES:
        with contextlib.suppress(OSError, ValueError):
            docs[name] = json.loads((out / f"{name}.json").read_text())
    return docs


def _carry_targets(doc: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """A dataplane run of some targets (--targets), with the others as the last run measured
    them, each marked with when: its ratios are to the limit of that run, not of this one."""
    if "error" in doc or "error" in before:
        return doc
    targets = dict(doc.get("targets", {}))
    for name, entry in before.get("targets", {}).items():
        if name not in targets:
            targets[name] = {**entry, "carried_over": entry.get("carried_over") or before.get("started")}
    # Keep the usual order: this run's targets in it, the carried ones after.
    order = [*doc.get("targets", {}), *(n for n in before.get("targets", {}) if n not in doc.get("targets", {}))]
    return {**doc, "targets": {n: targets[n] for n in order}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("suite", choices=[*SUITES, "all"])
    ap.add_argument("--quick", action="store_true",
                    help="1 run of ~1 s per measurement and the smallest sizes (for CI)")
    ap.add_argument("--runs", type=int, default=None, help="repetitions per measurement (default 3, quick 1)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results directory (default {RESULTS_DIR})")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds per wrk measurement (default 10, quick 1)")
    ap.add_argument("--no-wait", action="store_true",
                    help="don't wait for an idle machine before each measurement, nor repeat noisy runs "
                         "(a loaded machine: compare only ratios from one run)")
    ap.add_argument("--targets", default="",
                    help="comma-separated target names for dataplane, e.g. limit,plain,policies "
                         "(a partial run, for comparing changes; the limit is always measured)")
    args = ap.parse_args(argv)
    settings = Settings.make(args.quick, args.runs)
    if args.targets:
        settings = dataclasses.replace(settings, targets=("limit", *args.targets.split(",")))
    if args.duration is not None:
        settings = dataclasses.replace(settings, duration_s=max(0.5, args.duration))
    if args.no_wait:
        settings = dataclasses.replace(settings, quiet_wait_s=0.0, repeat_noisy=False)
    out: Path = args.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    machine = machine_info()
    names = list(SUITES) if args.suite == "all" else [args.suite]
    failed: list[str] = []
    docs: dict[str, dict[str, Any]] = {}
    # read before this run writes its own <suite>.json over the last one
    previous = _previous(out)
    for name in names:
        log(f"suite {name} ({'quick' if settings.quick else 'full'}, {settings.runs} run(s))")
        try:
            doc = SUITES[name](settings)
        except Exception as exc:
            traceback.print_exc()
            doc = {"suite": name, "mode": "quick" if settings.quick else "full",
                   "error": f"{type(exc).__name__}: {exc}"}
        doc["machine"] = machine
        write_json(out / f"{name}.json", doc)
        docs[name] = doc
        if _suite_failed(doc):
            failed.append(name)
    # latest.* combine this invocation's suites with the last results of the others in --out
    for name in SUITES:
        if name not in docs and name in previous:
            docs[name] = previous[name]
    if "dataplane" in docs and settings.targets and "dataplane" in previous:
        docs["dataplane"] = _carry_targets(docs["dataplane"], previous["dataplane"])
    ordered = {name: docs[name] for name in SUITES if name in docs}
    report.write(out, ordered, machine)
    wall = time.monotonic() - t0
    head = (out / "latest.md").read_text().splitlines()[:report.HEADLINE_LINES]
    print("\n".join(head))
    print(f"\nresults in {out} (latest.md, latest.json, latest.png); wall time {wall:.1f} s")
    if failed:
        print(f"suites with errors: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
