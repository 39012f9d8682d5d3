"""Rate limits (check 8): nginx's limit_req where it answers exactly like wardgate's Lua limiter,
the Lua limiter (lua.py) otherwise.

limit_req runs in preaccess; ModSecurity's preaccess handler runs before it, which would put the
WAF before the rate limit, so a budget shared by a WAF route stays in Lua everywhere: one budget
must have one counter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wardgate import ir
from wardgate.quoting import Arg, Expr, Raw, header_variable
from wardgate.render.emit import Directive, d, entry
from wardgate.render.ipaccess import geo
from wardgate.render.tables import Tables, var_name
from wardgate.render.waf import enabled as waf_enabled

# limit_req zones (one per distinct rate, 10 MB each, like the Lua dict); budgets beyond use Lua.
MAX_RATE_ZONES = 16


def native_rate(rl: ir.RateLimit) -> str | None:
    """limit_req's `rate=` for this limit when nginx's limiter answers exactly like wardgate's Lua
    one (both are GCRA with burst; Lua's was checked against limit_req), else None. limit_req keeps
    rates in requests per 1000 s as integers, so per-minute rates must divide into that; and it
    sends no Retry-After, so one is added, which is exactly 1 s when a request is due every
    second or faster. RateLimit-* headers need the Lua limiter's state."""
    if rl.headers:
        return None
    if rl.period_s == 1:
        return f"{rl.requests}r/s"
    if rl.period_s == 60 and rl.requests >= 60 and rl.requests % 3 == 0:
        return f"{rl.requests}r/m"
    return None


@dataclass(frozen=True)
class RatePlan:
    zones: Mapping[str, str]  # bucket -> limit_req zone (budgets nginx keeps)
    rates: Mapping[str, str]  # zone -> rate, for the zones some place uses

    def native(self, rl: ir.RateLimit | None) -> bool:
        return rl is not None and rl.bucket in self.zones


def plan(policies: tuple[ir.Policy, ...], used: frozenset[int]) -> RatePlan:
    """Zones for the budgets limit_req can keep; `used`: the policies some place applies."""
    lua = {p.rate_limit.bucket for p in policies
           if p.rate_limit is not None and (native_rate(p.rate_limit) is None or waf_enabled(p))}
    zones: dict[str, str] = {}  # rate -> zone name
    native: dict[str, str] = {}
    for p in sorted(policies, key=lambda p: p.id):
        rl = p.rate_limit
        if rl is None or rl.bucket in lua or rl.bucket in native:
            continue
        rate = native_rate(rl)
        assert rate is not None
        if rate not in zones and len(zones) < MAX_RATE_ZONES:
            zones[rate] = f"wg_rl{len(zones)}"
        if rate in zones:
            native[rl.bucket] = zones[rate]
    used_zones = {native[p.rate_limit.bucket] for p in policies
                  if p.id in used and p.rate_limit is not None and p.rate_limit.bucket in native}
    return RatePlan(native, {z: r for r, z in zones.items() if z in used_zones})


def _key(tables: Tables, rl: ir.RateLimit, pid: int) -> Arg:
    """The limit_req key of a budget, the same strings the Lua limiter uses: "<bucket>:" plus
    the client IP, "#" and the header value, or nothing (Route); "" (not counted) for exempt
    clients."""
    by_ip = Expr((f"{rl.bucket}:", Raw("$wg_client_ip")))
    key: Arg = by_ip
    if rl.key == "route":
        key = f"{rl.bucket}:"
    elif rl.key == "header" and rl.header:
        header = header_variable(rl.header)
        var = var_name("wg_rlh", pid)
        key = tables.add(var, Directive("map", (Raw(header), Raw("$" + var)), [
            entry("", by_ip), d("default", Expr((f"{rl.bucket}:#", Raw(header))))]))
    if rl.exempt:
        var = var_name("wg_rlx", pid)
        key = tables.add(var, Directive("map", (geo(tables, (), rl.exempt, ("exempt", pid)), Raw("$" + var)), [
            entry("1", ""), d("default", key)]))
    return key


def location(tables: Tables, rp: RatePlan, p: ir.Policy) -> list[Directive]:
    rl = p.rate_limit
    if rl is None or rl.bucket not in rp.zones:
        return []
    zone = rp.zones[rl.bucket]
    args: list[Arg] = [Raw(f"zone={zone}")]
    if rl.burst:
        args.append(Raw(f"burst={rl.burst}"))
    return [d("set", Raw("$wg_rlkey"), _key(tables, rl, p.id)),
            d("limit_req", *args, Raw("nodelay")),
            d("limit_req_status", rl.status),
            # Empty (so not sent) unless limit_req refused this request: a backend's own
            # Retry-After on the same status passes untouched.
            d("add_header", "Retry-After", Raw("$wg_retry_after"), Raw("always"))]


def http_directives(rp: RatePlan) -> list[Directive]:
    if not rp.rates:
        return []
    return [
        *(d("limit_req_zone", Raw("$wg_rlkey"), Raw(f"zone={zone}:10m"), Raw(f"rate={rate}"))
          for zone, rate in rp.rates.items()),
        # Like the Lua limiter: rejections go to the decision log ("rate-limit": the module's
        # wardgate_decision reads $limit_req_status), not the error log.
        d("limit_req_log_level", Raw("info")),
        Directive("map", (Raw("$limit_req_status"), Raw("$wg_retry_after")),
                  [entry("REJECTED", "1"), d("default", "")]),
    ]


def lua_config(tables: Tables, rl: ir.RateLimit, pid: int) -> dict[str, object]:
    """The Lua limiter's settings for a budget limit_req doesn't keep."""
    limit: dict[str, object] = {"bucket": rl.bucket, "limit": rl.requests, "period": rl.period_s,
                                "burst": rl.burst, "key": rl.key, "status": rl.status, "headers": rl.headers}
    if rl.header:
        limit["header"] = rl.header
    if rl.exempt:
        # A geo that is 1 exactly for the exempt CIDRs.
        limit["exempt_var"] = geo(tables, (), rl.exempt, ("exempt", pid)).text[1:]
    return limit
