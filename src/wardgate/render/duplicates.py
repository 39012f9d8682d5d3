"""duplicateHeaders (check 7): reject a request or keep one copy of a header sent twice (Lua)."""

from __future__ import annotations

from wardgate import ir


def needs_lua(p: ir.Policy) -> bool:
    return p.duplicate_default is not None


def lua_config(p: ir.Policy) -> dict[str, object]:
    if not p.duplicate_default:
        return {}
    return {"dup": {"default": p.duplicate_default, "headers": dict(p.duplicate_headers)}}
