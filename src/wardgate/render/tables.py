"""http-level tables (map, geo, split_clients) that servers refer to by variable.

A table's variable name is derived from what it belongs to (IR ids: policy, action, port), never
from the order tables were asked for nor from user text, so a server's output depends only on what
it uses (it can be rendered alone, and memoized), and a table several servers use is written once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from wardgate.quoting import Raw
from wardgate.render.emit import Directive


def var_name(prefix: str, *key: object) -> str:
    """A variable name for the table of `key` (renderer-made values only): `prefix` and a digest."""
    return prefix + hashlib.blake2b(repr(key).encode(), digest_size=5).hexdigest()


@dataclass(frozen=True)
class Table:
    """One named http-level directive block (its `var` is what servers refer to)."""

    var: str
    node: Directive


class Tables:
    """What one rendering step needs at http level, deduplicated by variable name."""

    def __init__(self) -> None:
        self.items: dict[str, Directive] = {}

    def add(self, var: str, node: Directive) -> Raw:
        """Record the table defining $var (the first one wins: same name, same content) and
        return a reference to the variable."""
        self.items.setdefault(var, node)
        return Raw("$" + var)

    def has(self, var: str) -> bool:
        return var in self.items

    def merge(self, tables: tuple[Table, ...]) -> None:
        for t in tables:
            self.items.setdefault(t.var, t.node)

    def frozen(self) -> tuple[Table, ...]:
        return tuple(Table(k, v) for k, v in self.items.items())
