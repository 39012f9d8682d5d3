"""The Lua request checks (6-8: request limits, duplicate headers, rate limit) of wardgate_access.lua.

One entry for the whole Gateway: an http-level rewrite_by_lua_block (compiled once at config load,
inherited by every location) runs the checks of the policy whose id the serving place wrote into
$wg_lua (nginx skips the entry in a location a request leaves by `rewrite ... last`, so a jump
doesn't run them twice). At the end of the rewrite phase: after the `if` checks, before
ModSecurity's request body phase (preaccess), where CRS decides (access_by_lua would run after
the WAF). A place that answers with `return` never reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from wardgate import ir
from wardgate.quoting import Raw, lua_literal
from wardgate.render import duplicates, ratelimit, requestlimits
from wardgate.render.emit import Directive, d
from wardgate.render.tables import Table, Tables

MODULES = ("ndk_http_module.so", "ngx_http_lua_module.so")


def needs_lua(p: ir.Policy, rp: ratelimit.RatePlan) -> bool:
    """Whether the policy's checks 6-8 run in Lua. Duplicate headers alone run in wardgate's
    module; with another Lua check they stay in Lua, to keep the order of checks 6-8."""
    rl = p.rate_limit
    return requestlimits.needs_lua(p) or (rl is not None and not rp.native(rl))


@dataclass(frozen=True)
class LuaPlan:
    ids: frozenset[int]  # policies whose checks run in Lua
    config: Mapping[int, Mapping[str, object]]
    tables: tuple[Table, ...]  # geos the limiter reads

    @property
    def on(self) -> bool:
        return bool(self.ids)


def plan(policies: tuple[ir.Policy, ...], used: frozenset[int], rp: ratelimit.RatePlan) -> LuaPlan:
    tables = Tables()
    config: dict[int, dict[str, object]] = {}
    for p in policies:
        if p.id not in used or not needs_lua(p, rp):
            continue
        cfg = {**requestlimits.lua_config(p), **duplicates.lua_config(p)}
        if p.rate_limit is not None and not rp.native(p.rate_limit):
            cfg["rl"] = ratelimit.lua_config(tables, p.rate_limit, p.id)
        config[p.id] = cfg
    return LuaPlan(frozenset(config), config, tables.frozen())


def place(lp: LuaPlan, pid: int | None) -> list[Directive]:
    """What a place writes for its policy's Lua checks."""
    return [d("set", Raw("$wg_lua"), pid)] if pid is not None and pid in lp.ids else []


def http_directives(lp: LuaPlan) -> list[Directive]:
    if not lp.on:
        return []
    source = resources.files("wardgate.render").joinpath("wardgate_access.lua").read_text()
    init = ("package.loaded.wardgate = (function()\n" + source + "\nend)()\n"
            "package.loaded.wardgate.configure(" + lua_literal(dict(lp.config)) + ")")
    return [d("lua_shared_dict", Raw("wg_ratelimit"), Raw("10m")),
            Directive("init_by_lua_block", (), None, lua=init),
            Directive("rewrite_by_lua_block", (), None, lua="package.loaded.wardgate.run()")]
