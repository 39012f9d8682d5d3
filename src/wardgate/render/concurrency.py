"""Concurrent requests per client IP (SecurityPolicy concurrentRequests): nginx's limit_conn.

One shared zone for the Gateway; each budget's keys start with its bucket, so budgets never
share a counter. limit_conn runs in the preaccess phase, after the rewrite-phase checks (2-8 of
docs/policies.md) and nginx's limit_req; a request it refuses never reaches the backend.
nginx counts a request from the preaccess phase until it is finished, HTTP/2 streams one by one.
"""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import Arg, Expr, Raw
from wardgate.render.emit import Directive, d, entry
from wardgate.render.ipaccess import geo
from wardgate.render.tables import Tables, var_name

ZONE = "wg_cc"


def used(policies: tuple[ir.Policy, ...], ids: frozenset[int]) -> bool:
    return any(p.concurrency is not None for p in policies if p.id in ids)


def _key(tables: Tables, c: ir.Concurrency, pid: int) -> Arg:
    """"<bucket>:<client IP>", or "" (not counted) for exempt clients."""
    key: Arg = Expr((f"{c.bucket}:", Raw("$wg_client_ip")))
    if c.exempt:
        var = var_name("wg_ccx", pid)
        key = tables.add(var, Directive("map", (geo(tables, (), c.exempt, ("ccexempt", pid)), Raw("$" + var)), [
            entry("1", ""), d("default", key)]))
    return key


def location(tables: Tables, p: ir.Policy) -> list[Directive]:
    c = p.concurrency
    if c is None:
        return []
    return [d("set", Raw("$wg_cckey"), _key(tables, c, p.id)),
            d("limit_conn", Raw(ZONE), c.limit),
            d("limit_conn_status", c.status)]


def http_directives(on: bool) -> list[Directive]:
    if not on:
        return []
    return [
        d("limit_conn_zone", Raw("$wg_cckey"), Raw(f"zone={ZONE}:10m")),
        # Like the rate limits: refusals go to the decision log ("concurrency": the module's
        # wardgate_decision reads $limit_conn_status), not the error log.
        d("limit_conn_log_level", Raw("info")),
    ]
