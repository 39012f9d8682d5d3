"""Direct responses (check 5): security.txt and other exact paths the gateway answers itself.

Each body is written once per Gateway, as an http-level map value (split into several when longer
than nginx's 4 KiB token limit), and the exact location every server has for the path only names
it: `return 200 $wg_b...`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wardgate import ir
from wardgate.quoting import Arg, Body, Expr, Raw
from wardgate.render.emit import Directive, d
from wardgate.render.tables import Table, Tables

# A token longer than nginx's 4 KiB configuration buffer is refused, so long bodies are split
# into map values joined at run time.
_CHUNK = 3000


@dataclass(frozen=True)
class DirectPlan:
    bodies: Mapping[tuple[int, int], Arg]  # (policy id, index) -> the `return` body
    tables: tuple[Table, ...]
    content_type: str  # the http-level default_type: the one most direct responses use


def _chunks(text: str) -> list[str]:
    chunks: list[str] = []
    cur: list[str] = []
    size = 0
    for ch in text:
        cost = 12 if ch == "$" else 2 if ch in '\\"\n\r\t' else len(ch.encode())
        if size + cost > _CHUNK:
            chunks.append("".join(cur))
            cur, size = [], 0
        cur.append(ch)
        size += cost
    chunks.append("".join(cur))
    return chunks


def plan(policies: tuple[ir.Policy, ...], used: frozenset[int]) -> DirectPlan:
    tables = Tables()
    bodies: dict[tuple[int, int], Arg] = {}
    types: dict[str, int] = {}
    for p in policies:
        if p.id not in used:
            continue
        for i, resp in enumerate(p.direct):
            types[resp.content_type] = types.get(resp.content_type, 0) + 1
            # Digits only, fixed-width tail: policy id, response index, chunk number.
            names = [f"wg_b{p.id}{i:03d}{n:03d}" for n in range(len(_chunks(resp.body)))]
            for var, chunk in zip(names, _chunks(resp.body), strict=True):
                tables.add(var, Directive("map", (Raw("$host"), Raw("$" + var)), [d("default", Body(chunk))]))
            bodies[(p.id, i)] = (Raw("$" + names[0]) if len(names) == 1
                                 else Expr(tuple(Raw("${" + v + "}") for v in names)))
    default = max(types, key=lambda t: types[t]) if types else "application/octet-stream"
    return DirectPlan(bodies, tables.frozen(), default)


def body(dp: DirectPlan, p: ir.Policy, index: int, head: list[Directive], checks: list[Directive]) -> list[Directive]:
    """What answers direct response `index` of `p`: its location's whole body, so only where that
    location serves nothing else. `head`: the place's own response headers and WAF switch;
    `checks`: rewrite-phase checks 2-3 the server doesn't run already."""
    resp = p.direct[index]
    out = [] if resp.content_type == dp.content_type else [d("default_type", resp.content_type)]
    # No `set $wg_decision`: the log calls a 200 no backend gave "direct-response" (accesslog.py).
    out += [*head, *checks]
    return [*out, d("return", resp.status, dp.bodies[(p.id, index)])]
