"""requestLimits: URL length 414 and header size 431 (check 6, in Lua), body size 413 (check 10,
nginx's client_max_body_size)."""

from __future__ import annotations

from wardgate import ir
from wardgate.render.emit import Directive, d


def body_size(limit: int | None) -> list[Directive]:
    return [] if limit is None else [d("client_max_body_size", limit)]


def needs_lua(p: ir.Policy) -> bool:
    return bool(p.max_url_length or p.max_header_bytes)


def lua_config(p: ir.Policy) -> dict[str, object]:
    cfg: dict[str, object] = {}
    if p.max_url_length:
        cfg["max_url"] = p.max_url_length
    if p.max_header_bytes:
        cfg["max_header_bytes"] = p.max_header_bytes
    return cfg
