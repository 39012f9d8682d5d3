"""Upstream blocks: one per Service port, plus copies for retries.

nginx retries on the *next* peer only; an upstream listing every endpoint `tries` times lets a
retry policy try again even with a single pod. The plan names each copy and remembers its base,
so nothing parses names back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wardgate import ir
from wardgate.quoting import Raw
from wardgate.render.emit import Directive, block


@dataclass(frozen=True)
class UpstreamPlan:
    by_name: Mapping[str, ir.Upstream]
    copies: Mapping[tuple[str, int], str]  # (upstream, tries) -> the copy's name
    base: Mapping[str, str]  # every upstream name (copies too) -> its Service port's upstream

    def for_tries(self, name: str, tries: int) -> str:
        return self.copies[(name, tries)]

    def tls(self, name: str) -> ir.UpstreamTLS | None:
        return self.by_name[self.base[name]].tls


def plan(gw: ir.Gateway) -> UpstreamPlan:
    by_name = {u.name: u for u in gw.upstreams}
    copies: dict[tuple[str, int], str] = {}
    for a in gw.actions:
        if a.retry is None:
            continue
        for b in a.backends:
            if b.upstream and b.weight > 0:
                copies.setdefault((b.upstream, a.retry.attempts + 1), f"{b.upstream}_r{a.retry.attempts + 1}")
    base = {name: name for name in by_name} | {copy: up for (up, _), copy in copies.items()}
    return UpstreamPlan(by_name, copies, base)


def _block(up: ir.Upstream, name: str, copies: int) -> Directive:
    node = block("upstream", Raw(name))
    if up.endpoints:
        for ep in up.endpoints * copies:
            addr = f"[{ep.address}]" if ":" in ep.address else ep.address
            # Gateway API has no passive health checking: a slow answer must not eject a pod.
            node.add("server", Raw(f"{addr}:{ep.port}"), Raw("max_fails=0"))
        node.add("keepalive", 32)
    else:
        # No ready endpoint: nginx needs a server, so name one that is never tried.
        node.add("server", Raw("127.0.0.1:9"), Raw("down"))
    return node


def http_directives(up: UpstreamPlan) -> list[Directive]:
    out = [_block(u, u.name, 1) for u in up.by_name.values()]
    return out + [_block(up.by_name[base], name, tries) for (base, tries), name in up.copies.items()]
