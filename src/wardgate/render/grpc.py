"""GRPCRoute actions: grpc_pass (HTTP/2 to the backend) instead of proxy_pass."""

from __future__ import annotations

from wardgate.quoting import Expr, Raw
from wardgate.render.emit import Directive, d


def grpc_pass(url: str, internal: bool) -> list[Directive]:
    """grpc_pass has no URI part: it sends the request's current URI. After an internal redirect
    that is wardgate's own location, so put the client's path back first (`break` keeps the
    location; it comes last, after every rewrite-phase check)."""
    out = [d("rewrite", Raw("^"), Raw("$wg_rawpath"), Raw("break"))] if internal else []
    return [*out, d("grpc_pass", Expr((Raw(url),)) if "$" in url else Raw(url))]
