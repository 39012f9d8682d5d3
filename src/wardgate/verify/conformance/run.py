"""The entry point: run the corpus (or some of its tests) and summarise."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from wardgate.verify.conformance.corpus import SUPPORTED_FEATURES, ConformanceOptions, _load_index
from wardgate.verify.conformance.harness import TestResult, _Harness


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    # SIGTERM should clean up like Ctrl-C does (stop nginx and the echo servers).
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_conformance(opts: ConformanceOptions, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the corpus (or the ``only`` tests) and return ``{"tests": [...], "summary": {...}}``."""
    entries = _load_index(opts.corpus)
    if opts.only:
        known = {str(e["name"]) for e in entries}
        unknown = [n for n in opts.only if n not in known]
        if unknown:
            raise ValueError(f"not in {opts.corpus / 'index.json'}: {', '.join(unknown)}")
        entries = [e for e in entries if e["name"] in set(opts.only)]
    results: list[TestResult] = []
    started = time.monotonic()
    harness = _Harness(opts, out)
    with _sigterm_as_interrupt():
        try:
            harness.setup()
            for entry in entries:
                result = harness.run_test(entry)
                results.append(result)
                line = f"{result.result.upper()} {result.name}"
                out(line + (f": {result.reason}" if result.reason else ""))
        finally:
            harness.close()
    summary = {k: sum(1 for r in results if r.result == k) for k in ("pass", "fail", "skip")}
    core = [r for r in results if r.core]
    # Extended tests run: the claimed features cover them (the others are skipped).
    extended = [r for r in results if not r.core and r.result != "skip"]
    profile = {"core": {"pass": sum(r.result == "pass" for r in core), "total": len(core)},
               "extended": {"pass": sum(r.result == "pass" for r in extended), "total": len(extended)}}
    out(f"features claimed: {', '.join(sorted(SUPPORTED_FEATURES))}")
    out(f"core: {profile['core']['pass']}/{profile['core']['total']} pass; extended (claimed features): "
        f"{profile['extended']['pass']}/{profile['extended']['total']} pass")
    out(f"conformance summary: {summary['pass']} pass, {summary['fail']} fail, {summary['skip']} skip "
        f"({time.monotonic() - started:.1f}s)")
    return {"features": sorted(SUPPORTED_FEATURES), "profile": profile,
            "tests": [r.to_json() for r in results], "summary": summary}
