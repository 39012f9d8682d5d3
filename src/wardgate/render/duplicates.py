"""duplicateHeaders (check 7): reject a request or keep one copy of a header sent twice.

wardgate's nginx module does it (first thing in the preaccess phase) unless the policy has other
Lua checks (6-8), which then do it too, in their order."""

from __future__ import annotations

from wardgate import ir
from wardgate.render import module
from wardgate.render.emit import Directive


def lua_config(p: ir.Policy) -> dict[str, object]:
    """For a policy whose checks 6-8 run in Lua."""
    if not p.duplicate_default:
        return {}
    return {"dup": {"default": p.duplicate_default, "headers": dict(p.duplicate_headers)}}


def directives(p: ir.Policy, in_lua: bool) -> list[Directive]:
    """The module's directive, for a policy whose checks don't run in Lua."""
    return [module.duplicate_headers(p)] if p.duplicate_default and not in_lua else []
