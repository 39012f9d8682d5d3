"""Upstream blocks: one per Service port, plus copies for retries.

nginx retries on the *next* peer only; an upstream listing every endpoint `tries` times lets a
retry policy try again even with a single pod. A rule with sessionPersistence gets a copy that
picks the endpoint by consistent hashing of its session key (affinity.py). The plan names each copy
and remembers its base, so nothing parses names back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wardgate import ir
from wardgate.quoting import Raw
from wardgate.render.affinity import key_var
from wardgate.render.emit import Directive, block


@dataclass(frozen=True)
class UpstreamPlan:
    by_name: Mapping[str, ir.Upstream]
    # (upstream, tries, hash key variable or "") -> the copy's name
    copies: Mapping[tuple[str, int, str], str]
    base: Mapping[str, str]  # every upstream name (copies too) -> its Service port's upstream

    def for_tries(self, name: str, tries: int, key: str = "") -> str:
        """The copy of upstream `name` for `tries` tries, hashed on `key`; `name` itself when it
        needs none (or is a copy already)."""
        return self.copies.get((name, tries, key), name)

    def tls(self, name: str) -> ir.UpstreamTLS | None:
        return self.by_name[self.base[name]].tls

    def ready(self, name: str) -> bool:
        """Whether the Service port behind upstream `name` (or its copy) has a ready endpoint."""
        return bool(self.by_name[self.base[name]].endpoints)

    def none_ready(self, backends: list[ir.WeightedBackend]) -> bool:
        """Whether every one of these (weighted) backends is a Service without ready endpoints:
        the requests they would get are answered 503, never sent (actions.py)."""
        return bool(backends) and all(b.upstream and not self.ready(b.upstream) for b in backends)


def plan(gw: ir.Gateway) -> UpstreamPlan:
    by_name = {u.name: u for u in gw.upstreams}
    copies: dict[tuple[str, int, str], str] = {}
    for a in gw.actions:
        if a.retry is None and a.session is None:
            continue
        tries = a.retry.attempts + 1 if a.retry else 1
        key = key_var(a.session) if a.session else ""
        for b in a.backends:
            # Nothing is sent to a Service without endpoints: it needs no copy.
            if b.upstream and b.weight > 0 and by_name[b.upstream].endpoints:
                name = b.upstream + (f"_s{key[-6:]}" if key else "") + (f"_r{tries}" if a.retry else "")
                copies.setdefault((b.upstream, tries, key), name)
    base = {name: name for name in by_name} | {copy: up for (up, _, _), copy in copies.items()}
    return UpstreamPlan(by_name, copies, base)


def _block(up: ir.Upstream, name: str, copies: int, key: str = "") -> Directive:
    node = block("upstream", Raw(name))
    if key and up.endpoints:
        node.add("hash", Raw("$" + key), Raw("consistent"))  # before keepalive, as nginx asks
    if up.endpoints:
        for ep in up.endpoints * copies:
            addr = f"[{ep.address}]" if ":" in ep.address else ep.address
            # Gateway API has no passive health checking: a slow answer must not eject a pod.
            node.add("server", Raw(f"{addr}:{ep.port}"), Raw("max_fails=0"))
        node.add("keepalive", 32)
    else:
        # No ready endpoint: routes answer 503 themselves (actions.py), but a mirror may still
        # name the upstream and nginx needs a server, so name one that is never tried.
        node.add("server", Raw("127.0.0.1:9"), Raw("down"))
    return node


def http_directives(up: UpstreamPlan) -> list[Directive]:
    out = [_block(u, u.name, 1) for u in up.by_name.values()]
    return out + [_block(up.by_name[base], name, tries, key) for (base, tries, key), name in up.copies.items()]
