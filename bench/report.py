"""latest.md, latest.json and latest.png from the suites' JSON documents.

latest.md starts with exactly HEADLINE_LINES lines of headline figures, `name: value` each, so
that CI logs and humans can read them without parsing anything else.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import ensure_matplotlib, log, ratio, write_json

HEADLINE_LINES = 20
WAF_HEADLINE_KIND = "get"  # the waf/limit headlines: the same benign GET / as the dataplane suite


def _f(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _size_label(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def headlines(suites: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    dp = suites.get("dataplane")
    targets = dp.get("targets", {}) if dp and "error" not in dp else {}

    def target_value(name: str, key: str) -> str:
        if not dp:
            return "n/a (dataplane suite not run)"
        if "error" in dp:
            return "n/a (dataplane suite failed)"
        t = targets.get(name, {})
        if t.get("error"):
            return f"n/a ({name} unavailable)"
        return _f(t.get(key))

    wf = suites.get("waf")

    def waf_value(key: str) -> str:
        if not wf:
            return "n/a (waf suite not run)"
        if "error" in wf:
            return "n/a (waf suite failed)"
        if wf.get("targets", {}).get("waf", {}).get("error"):
            return "n/a (wardgate's WAF unavailable)"
        t = wf.get("kinds", {}).get(WAF_HEADLINE_KIND, {}).get("targets", {}).get("waf", {})
        return _f(t.get(key))

    lines: list[tuple[str, str]] = []
    for key, suffix in (("rps_ratio", ""), ("cpu_efficiency", " cpu-efficiency")):
        lines += [
            (f"plain/limit{suffix}", target_value("plain", key)),
            (f"policies/limit{suffix}", target_value("policies", key)),
            (f"caddy/limit{suffix}", target_value("caddy", key)),
            (f"haproxy/limit{suffix}", target_value("haproxy", key)),
            (f"traefik/limit{suffix}", target_value("traefik", key)),
            (f"waf/limit{suffix}", waf_value(key)),
        ]
    lines.append(("plain/limit p99 latency", target_value("plain", "p99_ratio")))

    sc = suites.get("scale")
    if sc and "error" not in sc and sc.get("sizes"):
        sizes = sorted(int(n) for n in sc["sizes"])
        big, small = sizes[-1], sizes[0]
        label = f"{_size_label(big)}/{_size_label(small)}"
        entry = sc["sizes"][str(big)]
        vs = entry.get("vs_smallest", {})
        err = " (error)" if entry.get("error") else ""
        lines.append((f"scale p99 {label}", _f(vs.get("p99_ratio")) + err))
        lines.append((f"scale cpu-efficiency {label}", _f(vs.get("cpu_efficiency")) + err))
        rm = entry.get("reload_median", {})
        fails = f", {entry['reloads_failed']} reload(s) failed" if entry.get("reloads_failed") else ""
        if rm.get("total_s") is None:
            lines.append((f"scale reconcile {_size_label(big)}", f"n/a{err}{fails}"))
        else:
            lines.append((f"scale reconcile {_size_label(big)}",
                          f"{_f(rm.get('total_s'))} s (translate {_f(rm.get('translate'))} s, "
                          f"nginx -t + reload {_f(rm.get('apply_s'))} s{fails}){err}"))
    else:
        why = "failed" if sc else "not run"
        lines += [("scale p99 10k/10", f"n/a (scale suite {why})"),
                  ("scale cpu-efficiency 10k/10", f"n/a (scale suite {why})"),
                  ("scale reconcile 10k", f"n/a (scale suite {why})")]
    lines.append(_policy_overhead_line(sc))

    rc = suites.get("reconfig")
    if rc and "error" not in rc:
        n = rc.get("settings", {}).get("routes", 0)
        lines.append((f"reconfig time-to-visible {_size_label(n)} routes",
                      f"{_f(rc.get('time_to_visible_s_median'))} s (failed after retry "
                      f"{rc.get('requests_failed_after_retry')}, raw errors {rc.get('raw_connection_errors')})"))
    else:
        lines.append(("reconfig time-to-visible", f"n/a (reconfig suite {'failed' if rc else 'not run'})"))
    lines += _migrate_lines(suites.get("migrate"))
    assert len(lines) == HEADLINE_LINES, len(lines)
    return lines


def _migrate_lines(mg: dict[str, Any] | None) -> list[tuple[str, str]]:
    """`wardgate migrate` on the generated cluster: wall time and peak RSS, then `validate`."""
    if not mg or "error" in mg or not (mg.get("median") or {}).get("wall_s"):
        why = f"migrate suite {'failed' if mg else 'not run'}"
        return [("migrate 5k ingresses", f"n/a ({why})"), ("migrate 5k validate", f"n/a ({why})")]
    label = _size_label(mg.get("settings", {}).get("ingresses", 0))
    m, v = mg["median"], mg.get("validate_median") or {}
    return [(f"migrate {label} ingresses", f"{_f(m['wall_s'])} s, {_f(m.get('peak_rss_mb'), 0)} MB"),
            (f"migrate {label} validate", f"{_f(v.get('wall_s'))} s")]


def _migrate_md(mg: dict[str, Any]) -> list[str]:
    out = _section("migrate", mg)
    if "error" in mg:
        return out
    s, inp, res = mg.get("settings", {}), mg.get("input", {}), mg.get("output", {})
    targets = s.get("targets", {})
    out += [f"`{s.get('command')}` on a generated `kubectl get -o yaml` export: {inp.get('ingresses')} Ingresses "
            f"({inp.get('canary_ingresses')} canaries) in {inp.get('namespaces')} namespaces, three ingress-nginx "
            f"classes with their ConfigMaps and Deployments, Services and TLS Secrets; {inp.get('files')} List "
            f"files, {inp.get('input_mb')} MB (bench/migrate.py says what share of Ingresses carries what). "
            f"Each run is its own process: wall time, its CPU time (user + system) and peak RSS from wait4. "
            f"Target: under {targets.get('wall_s'):g} s and {targets.get('peak_rss_mb'):g} MB "
            f"({'met' if mg.get('meets_target') else 'not met'} by the medians). "
            f"Then `{s.get('validate')}`.", ""]
    rows = []
    for what, runs in (("migrate", mg.get("runs", [])), ("validate", mg.get("validate_runs", []))):
        for r in runs:
            rows.append([what, str(r.get("run")), _f(r.get("wall_s")), _f(r.get("cpu_s")), _f(r.get("peak_rss_mb"), 0),
                         _f(r.get("other_busy")), f"{_f(r.get('loadavg_before'))} / {_f(r.get('loadavg_after'))}",
                         str(r.get("warnings", ""))])
    out += _table(["command", "run", "wall s", "CPU s", "peak RSS MB", "other load (share of CPUs)",
                   "load average before / after", "validate warnings"], rows)
    found = ", ".join(f"{k} {v}" for k, v in (res.get("findings") or {}).items())
    objects = ", ".join(f"{k} {v}" for k, v in (res.get("objects") or {}).items())
    out += ["", f"Output: {res.get('files')} files, {res.get('mb')} MB: {objects}. Gateways: "
            f"{', '.join(res.get('gateways') or [])}. Report: {found}.",
            "", "Wall time is the process's CPU time plus its waits for other work on the machine (the other-load "
            "column). On a shared virtual machine the CPU time of the same work varies between runs too: "
            "compare runs of one invocation.", ""]
    return out


def _policy_overhead_line(sc: dict[str, Any] | None) -> tuple[str, str]:
    """What a Gateway-wide SecurityPolicy adds to nginx.conf and `nginx -t` at the largest size."""
    po = (sc or {}).get("policy_overhead") or {}
    sizes = sorted(int(n) for n in po.get("sizes", {}))
    if not sizes:
        why = po.get("error") or ("scale suite failed" if sc and "error" in sc else "not run")
        return "scale policy overhead 10k", f"n/a ({why})"
    entry = po["sizes"][str(sizes[-1])]
    if entry.get("error"):
        return f"scale policy overhead {_size_label(sizes[-1])}", f"n/a ({entry['error'][:80]})"
    return (f"scale policy overhead {_size_label(sizes[-1])}",
            f"config {_f(entry.get('config_ratio'))}x, nginx -t {_f(entry.get('nginx_t_ratio'))}x")


def _policy_overhead_md(po: dict[str, Any]) -> list[str]:
    if not po.get("sizes"):
        return []
    rows = []
    for n, e in sorted(po["sizes"].items(), key=lambda kv: int(kv[0])):
        if e.get("error"):
            rows.append([n, *["—"] * 8, e["error"][:120]])
            continue
        wo, w = e["without_policy"], e["with_policy"]
        rows.append([n, _f(wo["nginx_conf_mb"]), _f(w["nginx_conf_mb"]), _f(e["config_ratio"]),
                     f"{_f(wo.get('nginx_t_cpu_s'))} ({_f(wo['nginx_t_s'])})",
                     f"{_f(w.get('nginx_t_cpu_s'))} ({_f(w['nginx_t_s'])})", _f(e["nginx_t_ratio"]),
                     f"{_f(wo['translate_s'], 3)} / {_f(w['translate_s'], 3)}",
                     f"{_f(wo['render_s'], 3)} / {_f(w['render_s'], 3)} (again {_f(wo.get('render_again_s'), 3)} / "
                     f"{_f(w.get('render_again_s'), 3)})", ""])
    return ["### Policy overhead (bench/overhead.py)", "", f"Measured {po.get('started')} at commit "
            f"{po.get('commit')}. {po.get('routes')}; {po.get('policy')}. "
            "Without / with the policy on the same routes; translate and render: CPU s of the controller "
            "process (render cold / again with memoized servers).", "",
            *_table(["hosts", "nginx.conf MB without", "with", "ratio", "nginx -t CPU s (wall) without", "with",
                     "CPU ratio",
                     "translate s without / with", "render s without / with", "error"], rows), ""]


def _range(r: list[float] | None) -> str:
    return f" ({r[0]:.1f} to {r[1]:.1f})" if r and r[0] != r[1] else ""


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _section(name: str, suite: dict[str, Any]) -> list[str]:
    """A suite's heading, and its failure if it failed."""
    out = [f"## {name} ({suite.get('mode')}, started {suite.get('started')}, {suite.get('wall_s')} s)", ""]
    return [*out, f"Failed: {suite['error']}", ""] if "error" in suite else out


def _dataplane_md(dp: dict[str, Any]) -> list[str]:
    out = _section("dataplane", dp)
    if "error" in dp:
        return out
    s = dp.get("settings", {})
    out += [f"wrk {s.get('wrk')}; {s.get('runs')} run(s) of {s.get('duration_s')} s per target, medians; "
            f"{s.get('pinning')}. Primary figure: {s.get('primary')}.", ""]
    rows = []
    for name, t in dp.get("targets", {}).items():
        if "note" in t:
            rows.append([name, t.get("label", ""), *["—"] * 9, t["note"]])
            continue
        if t.get("error"):
            rows.append([name, t.get("label", ""), *["—"] * 9, f"unavailable: {t['error'][:120]}"])
            continue
        m = t.get("median", {})
        noise = [r.get("proxy_cpu_other_busy") for r in t.get("runs", [])]
        noise_txt = "/".join(_f(x) for x in noise if x is not None)
        note = t.get("warning", "")
        if t.get("carried_over"):
            note = (f"from the run started {t['carried_over']} (not measured in this one)"
                    + (f"; {note}" if note else ""))
        rows.append([name, t.get("label", ""), _f(m.get("rps"), 0), _f(m.get("p50_ms")), _f(m.get("p99_ms")),
                     _f(m.get("cpu_us_per_req"), 1) + _range(m.get("cpu_us_per_req_range")),
                     _f(m.get("cpu_us_per_req_schedstat"), 1),
                     _f(t.get("rps_ratio")), _f(t.get("cpu_efficiency")), _f(t.get("cpu_efficiency_paired")),
                     noise_txt, note])
    out += _table(["target", "what", "req/s", "p50 ms", "p99 ms", "proxy CPU µs/req (min to max)", "(schedstat)",
                   "req/s ÷ limit", "cpu-efficiency", "(paired)", "other load on CPU 0", "note"], rows)
    be = [r.get("backend_cpu_us_per_req") for t in dp.get("targets", {}).values() for r in t.get("runs", [])]
    be = [x for x in be if x is not None]
    if be:
        out += ["", f"Backend (nginx static, CPU 1) CPU per request: {min(be):.1f} to {max(be):.1f} µs."]
    out += ["", "cpu-efficiency = limit's CPU µs/req ÷ target's (1.0 = as cheap as the hand-written proxy); "
            "(paired): the same ratio per run, the limit's run next to the target's, then the median. "
            "\"other load on CPU 0\" = share of CPU 0 busy with processes other than the proxy during each run "
            "(other users of the machine): high values make that run noisy.", ""]
    return out + _instructions_md(dp.get("targets", {})) + _policies_md(dp.get("targets", {}))


def _instructions_md(targets: dict[str, Any]) -> list[str]:
    rows = []
    for name, t in targets.items():
        ins = t.get("instructions")
        if not ins:
            continue
        if "error" in ins:
            rows.append([name, "—", "—", f"unavailable: {ins['error'][:120]}"])
            continue
        where = ", ".join(f"{k} {v:,}" for k, v in ins.get("where", {}).items())
        if t.get("carried_over"):
            where += f" (run started {t['carried_over']})"
        rows.append([name, f"{ins['instructions_per_req']:,}", _f(ins.get("ratio_to_limit")), where])
    if not rows:
        return []
    intro = ("User-space instructions that nginx, its modules and libraries execute per `GET /` (one keep-alive "
             "connection, after a warm-up), counted under valgrind (bench/instructions.py): deterministic, "
             "unlike the timings above, but blind to the kernel's share (sockets), which is most of a proxy's "
             "CPU time. \"where\" counts instructions in and under a few functions that stand for one feature.")
    return ["### Instructions per request (callgrind)", "", intro, "",
            *_table(["target", "instructions/req", "÷ limit", "where (instructions/req)"], rows), ""]


POLICY_PAIRS = (("wardgate", "plain", "policies"), ("Caddy", "caddy", "caddy_policies"),
                ("HAProxy", "haproxy", "haproxy_policies"), ("Traefik", "traefik", "traefik_policies"))


def _policies_md(targets: dict[str, Any]) -> list[str]:
    """What the seed policies cost each proxy, and which of them each one could express."""
    rows = []
    for label, plain, pol in POLICY_PAIRS:
        a, b = targets.get(plain, {}).get("median"), targets.get(pol, {}).get("median")
        if not a or not b:
            continue
        cost = ratio(b.get("cpu_us_per_req"), a.get("cpu_us_per_req"))
        rows.append([label, _f(a.get("cpu_us_per_req"), 1), _f(b.get("cpu_us_per_req"), 1),
                     "n/a" if cost is None else f"{(cost - 1) * 100:+.0f}%",
                     _f(ratio(b.get("rps"), a.get("rps")))])
    out = ["### The seed policies", "",
           "Response header X-Robots-Tag (set), request header X-Bot-Class (set), allowedMethods "
           "[GET, HEAD, POST], URL allowlist (PathPrefix /api + a RegularExpression matching the bench path), "
           "securityTxt, duplicateHeaders {default: KeepFirst}, and a rate limit of 1,000,000/s with burst "
           "1,000,000 that never triggers; bench/manifests.py has wardgate's YAML, bench/targets.py the "
           "Caddy, HAProxy and Traefik configurations.", ""]
    if rows:
        out += _table(["proxy", "CPU µs/req plain", "CPU µs/req with policies", "policy CPU cost",
                       "req/s with ÷ without"], rows)
        out += [""]
    names = [pol for _, _, pol in POLICY_PAIRS if targets.get(pol, {}).get("policy_checks")]
    if names:
        checks = list(targets[names[0]]["policy_checks"])
        out += ["Each policy was probed on each proxy before measuring (\"ok\" = in effect):", ""]
        out += _table(["policy", *names], [[c, *[str(targets[n]["policy_checks"].get(c, "")) for n in names]]
                                           for c in checks])
        out += [""]
    return out


def _waf_md(wf: dict[str, Any]) -> list[str]:
    out = _section("waf", wf)
    if "error" in wf:
        return out
    s = wf.get("settings", {})
    out += [f"{s.get('crs')}. wrk {s.get('wrk')}; {s.get('runs')} run(s) of {s.get('duration_s')} s per target "
            f"and request kind, medians; {s.get('pinning')}.", ""]
    info = wf.get("targets", {})
    rows = []
    for name, t in info.items():
        if t.get("error"):
            rows.append([name, t.get("label", ""), "—", f"unavailable: {t['error'][:200]}"])
        else:
            attacks = ", ".join(f"{k} {v}" for k, v in t.get("attacks", {}).items())
            rows.append([name, t.get("label", ""), _f(t.get("start_s")), attacks])
    out += _table(["target", "what", "start s", "attack probes (status)"], rows)
    for kind in wf.get("kinds", {}).values():
        out += ["", f"### {kind.get('what')}: `{kind.get('request')}`", ""]
        rows = []
        for name, t in kind.get("targets", {}).items():
            m = t.get("median")
            if not m:
                rows.append([name, *["—"] * 10, "not measured"])
                continue
            noise = "/".join(_f(r.get("proxy_cpu_other_busy")) for r in t.get("runs", [])
                             if r.get("proxy_cpu_other_busy") is not None)
            rows.append([name, _f(m.get("rps"), 0), _f(m.get("p50_ms")), _f(m.get("p99_ms")),
                         _f(m.get("cpu_us_per_req"), 1) + _range(m.get("cpu_us_per_req_range")),
                         _f(t.get("rps_ratio")), _f(t.get("cpu_efficiency")),
                         _f(t.get("rps_ratio_vs_modsec")), _f(t.get("cpu_efficiency_vs_modsec")),
                         _f(t.get("p99_ratio_vs_modsec")), noise, t.get("warning", "")])
        out += _table(["target", "req/s", "p50 ms", "p99 ms", "proxy CPU µs/req (min to max)", "req/s ÷ limit",
                       "cpu-eff. vs limit", "req/s ÷ modsec", "cpu-eff. vs modsec", "p99 ÷ modsec",
                       "other load on CPU 0", "note"], rows)
    out += ["", "cpu-eff. vs X = X's CPU µs/req ÷ the target's (1.0 = as cheap as X). modsec is the same WAF "
            "written by hand, so `waf` vs `modsec` is what wardgate adds around it (access log, request id, "
            "per-route rules).", ""]
    return out


def _scale_md(sc: dict[str, Any]) -> list[str]:
    out = _section("scale", sc)
    if "error" in sc:
        return out
    s = sc.get("settings", {})
    out += [f"{s.get('routes')}. {s.get('pinning')}. Reconcile times are medians over the reloads "
            "(an edit of one route, then a full reconcile); the first start is listed separately.", ""]
    rows, dp_rows, err_rows = [], [], []
    for n, e in sorted(sc.get("sizes", {}).items(), key=lambda kv: int(kv[0])):
        if e.get("error"):
            err_rows.append(f"- {n} routes: {e['error']}")
        for f in e.get("reload_failures", []):
            err_rows.append(f"- {n} routes: a reload failed (wardgate kept the previous config): {f}")
        for kind, rec in (("start", e.get("start")), ("reload", e.get("reload_median"))):
            if not rec:
                continue
            rows.append([n, kind, _f(rec.get("load"), 3), _f(rec.get("parse"), 3), _f(rec.get("translate"), 3),
                         _f(rec.get("render"), 3), _f(rec.get("apply_s"), 3), _f(rec.get("total_s"), 3),
                         _f(e.get("nginx_t_s"), 3) if kind == "reload" else ""])
        mem_s, mem_r = e.get("nginx_memory_after_start", {}), e.get("nginx_memory_after_reloads", {})
        m = e.get("dataplane_last_route", {}).get("median", {})
        vs = e.get("vs_smallest", {})
        dp_rows.append([n, _f(e.get("nginx_conf_mb"), 1), _f(e.get("controller_rss_mb_after_reloads"), 0),
                        _f(e.get("controller_peak_rss_mb"), 0),
                        f"{_f(mem_s.get('rss_mb'), 0)} / {_f(mem_r.get('rss_mb'), 0)}",
                        f"{_f(mem_s.get('pss_mb'), 0)} / {_f(mem_r.get('pss_mb'), 0)}",
                        _f(m.get("rps"), 0), _f(m.get("p50_ms")), _f(m.get("p99_ms")), _f(m.get("cpu_us_per_req"), 1),
                        _f(vs.get("p99_ratio")), _f(vs.get("cpu_efficiency"))])
    out += _table(["routes", "reconcile", "load s", "parse s", "translate s", "render s",
                   "apply s (write, nginx -t, reload)", "total s", "nginx -t alone s"], rows)
    out += [""]
    out += _table(["routes", "nginx.conf MB", "controller RSS MB", "controller peak RSS MB",
                   "nginx RSS MB start / after reloads", "nginx PSS MB start / after reloads",
                   "last route req/s", "p50 ms", "p99 ms", "CPU µs/req", "p99 ÷ smallest", "cpu-eff. vs smallest"],
                   dp_rows)
    if err_rows:
        out += ["", "Errors:", *err_rows]
    out += ["", "nginx memory sums master + workers (RSS double-counts pages shared after fork; PSS does not).", ""]
    return out + _policy_overhead_md(sc.get("policy_overhead") or {})


def _reconfig_md(rc: dict[str, Any]) -> list[str]:
    out = _section("reconfig", rc)
    if "error" in rc:
        return out
    s = rc.get("settings", {})
    out += [f"`{s.get('command')}` with {s.get('routes')} routes, {s.get('clients')} keep-alive retry-once clients "
            f"on route r0; {s.get('edit')}; {s.get('edits')} edit(s), {s.get('settle_s')} s apart.", ""]
    out += _table(["figure", "value"], [
        ["startup to serving", f"{_f(rc.get('startup_to_serving_s'), 3)} s"],
        ["time-to-visible, median", f"{_f(rc.get('time_to_visible_s_median'), 3)} s"],
        ["time-to-visible, max", f"{_f(rc.get('time_to_visible_s_max'), 3)} s"],
        ["controller reconcile (from its log), median", f"{_f(rc.get('controller_reconcile_s_median'), 3)} s"],
        ["requests ok", str(rc.get("requests_ok"))],
        ["requests failed after one retry", str(rc.get("requests_failed_after_retry"))],
        ["raw connection errors (retried)", str(rc.get("raw_connection_errors"))],
        ["nginx reloads / failures", f"{rc.get('nginx_reloads')} / {rc.get('nginx_reload_failures')}"],
    ])
    rows = _table(["edit", "time-to-visible s", "controller reconcile s"], [
        [str(e["edit"]), _f(e["time_to_visible_s"], 3), _f(e.get("controller_reconcile_s"), 3)]
        for e in rc.get("edits", [])])
    return [*out, "", *rows, ""]


def _machine_md(machine: dict[str, Any]) -> list[str]:
    out = ["## machine", ""]
    out += _table(["what", "value"], [[k, str(v)] for k, v in machine.items()])
    return [*out, ""]


def write(out_dir: Path, suites: dict[str, dict[str, Any]], machine: dict[str, Any]) -> None:
    heads = headlines(suites)
    md = [f"{name}: {value}" for name, value in heads]
    modes = ", ".join(f"{k}={v.get('mode', '?')}" for k, v in suites.items())
    md += ["", "# wardgate benchmark results", "",
           f"Generated {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; suites: {modes}. "
           f"wardgate commit {machine.get('wardgate_commit')}"
           f"{' (src modified)' if machine.get('wardgate_src_dirty') else ''}.", "",
           "How to read: the first lines are ratios to baselines measured in the same run. "
           "`x/limit` = req/s of x ÷ req/s of a hand-written minimal nginx proxy; "
           "`cpu-efficiency` = the limit's CPU µs per request ÷ x's, the primary figure on 2 cores "
           "(req/s is capped by wrk + backend on CPU 1). `p99 latency` and `scale p99` are latency ratios: "
           "above 1 is slower. `migrate` lines are absolute: wall time and peak RSS of one `wardgate migrate` "
           "process, and the time of `wardgate validate` on its output. See bench/README.md.", ""]
    for name, fn in (("dataplane", _dataplane_md), ("waf", _waf_md), ("scale", _scale_md),
                     ("reconfig", _reconfig_md), ("migrate", _migrate_md)):
        if name in suites:
            md += fn(suites[name])
    md += _machine_md(machine)
    (out_dir / "latest.md").write_text("\n".join(md) + "\n")
    write_json(out_dir / "latest.json", {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "headlines": {name: value for name, value in heads},
        "suites": suites,
    })
    err = ensure_matplotlib()
    if err:
        log(f"no plot: {err}")
        return
    try:
        plot(out_dir / "latest.png", suites)
    except Exception as exc:  # a plot must never lose the numbers
        log(f"plot failed: {exc!r}")


def plot(path: Path, suites: dict[str, dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 2, figsize=(13, 13))
    (ax_cpu, ax_rps), (ax_waf_cpu, ax_waf_rps), (ax_scale, ax_rc) = axes
    dp = suites.get("dataplane", {})
    names, cpu, rps = [], [], []
    for name, t in dp.get("targets", {}).items():
        m = t.get("median")
        if m:
            names.append(name)
            cpu.append(m.get("cpu_us_per_req") or 0)
            rps.append((m.get("rps") or 0) / 1000)
    if names:
        ax_cpu.bar(names, cpu, color="tab:blue")
        ax_cpu.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax_rps.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax_cpu.set_title("dataplane: proxy CPU µs per request (lower is better)")
        ax_cpu.set_ylabel("µs/req")
        for i, v in enumerate(cpu):
            ax_cpu.text(i, v, f"{v:.1f}", ha="center", va="bottom")
        ax_rps.bar(names, rps, color="tab:green")
        ax_rps.set_title("dataplane: req/s (wrk + backend share CPU 1)")
        ax_rps.set_ylabel("k req/s")
    else:
        ax_cpu.set_title("dataplane: not run")
        ax_rps.set_title("dataplane: not run")
    _plot_waf(ax_waf_cpu, ax_waf_rps, suites.get("waf", {}))
    sc = suites.get("scale", {})
    sizes = sorted((int(n), e) for n, e in sc.get("sizes", {}).items() if e.get("reload_median"))
    if sizes:
        labels = [_size_label(n) for n, _ in sizes]
        totals = [e["reload_median"].get("total_s") or 0 for _, e in sizes]
        bottom = [0.0] * len(sizes)
        for stage in ("load", "parse", "translate", "render", "apply_s", "other_s"):
            vals = [100 * (e["reload_median"].get(stage) or 0) / t if t else 0
                    for (_, e), t in zip(sizes, totals, strict=True)]
            ax_scale.bar(labels, vals, bottom=bottom,
                         label={"apply_s": "write + nginx -t + reload", "other_s": "other"}.get(stage, stage))
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        for i, t in enumerate(totals):
            ax_scale.text(i, 101, f"{t:.2f} s", ha="center", va="bottom")
        ax_scale.set_ylim(0, 112)
        ax_scale.set_ylabel("% of the reconcile")
        ax_scale.set_title("scale: reconcile after one edit, share by stage (total on top)")
        ax_scale.set_xlabel("HTTPRoutes")
        ax_scale.legend(fontsize=7, loc="lower left")
    else:
        ax_scale.set_title("scale: not run")
    rc = suites.get("reconfig", {})
    edits = rc.get("edits", [])
    if edits:
        ax_rc.bar([str(e["edit"]) for e in edits], [e["time_to_visible_s"] for e in edits], color="tab:orange")
        ax_rc.set_title(f"reconfig: time-to-visible per edit, {rc.get('settings', {}).get('routes')} routes (s)")
        ax_rc.set_xlabel("edit")
    else:
        ax_rc.set_title("reconfig: not run")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_waf(ax_cpu: Any, ax_rps: Any, wf: dict[str, Any]) -> None:
    kinds = wf.get("kinds", {})
    names = ["limit", "modsec", "waf"]
    if not kinds:
        ax_cpu.set_title("waf: not run")
        ax_rps.set_title("waf: not run")
        return
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [j + (i - 1) * width for j in range(len(kinds))]
        meds = [k["targets"].get(name, {}).get("median") or {} for k in kinds.values()]
        cpu = [m.get("cpu_us_per_req") or 0 for m in meds]
        ax_cpu.bar(xs, cpu, width, label=name)
        for x, v in zip(xs, cpu, strict=True):
            ax_cpu.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
        ax_rps.bar(xs, [(m.get("rps") or 0) / 1000 for m in meds], width, label=name)
    for ax in (ax_cpu, ax_rps):
        ax.set_xticks(range(len(kinds)))
        ax.set_xticklabels(list(kinds), fontsize=8)
        ax.legend(fontsize=7)
    ax_cpu.set_title("waf (CRS 3.3.4 PL1): proxy CPU µs per request (lower is better)")
    ax_cpu.set_ylabel("µs/req")
    ax_rps.set_yscale("log")
    ax_rps.set_title("waf: req/s per request kind (log scale)")
    ax_rps.set_ylabel("k req/s")
