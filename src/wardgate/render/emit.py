"""A directive tree and its serialisation. Every argument passes through `quoting.token`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from wardgate.quoting import Arg, MapKey, token

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(slots=True)
class Directive:
    name: str
    args: tuple[Arg, ...] = ()
    block: list[Directive] | None = None
    comment: str | None = field(default=None, compare=False)
    # For *_by_lua_block directives: Lua code the renderer generated (fixed code, and data only
    # through quoting.lua_literal), written as the block's body.
    lua: str | None = None

    def add(self, name: str, *args: Arg) -> Directive:
        """Append a child directive and return self (for chaining)."""
        assert self.block is not None
        self.block.append(Directive(name, args))
        return self

    def block_append(self, node: Directive) -> None:
        assert self.block is not None
        self.block.append(node)


def d(name: str, *args: Arg) -> Directive:
    return Directive(name, args)


def entry(*args: Arg) -> Directive:
    """A data line inside map/geo/split_clients: a key and a value."""
    return Directive("", args)


def map_entry(key: str, value: Arg) -> Directive:
    """A `map` line with a literal key: never read as a keyword (include, default...) or regex."""
    return Directive("", (MapKey(key), value))


def block(name: str, *args: Arg) -> Directive:
    return Directive(name, args, [])


def _comment(text: str) -> str:
    # Comments are informative only; strip anything that could end the comment line.
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)


def emit(nodes: list[Directive], indent: int = 0) -> str:
    out: list[str] = []
    pad = "    " * indent
    for node in nodes:
        if node.name == "":  # a data line (map, geo, split_clients): every token is quoted
            out.append(pad + " ".join(token(a) for a in node.args) + ";\n")
            continue
        if not _NAME.fullmatch(node.name):
            raise ValueError(f"bad directive name {node.name!r}")
        if node.comment:
            out.append(f"{pad}# {_comment(node.comment)}\n")
        head = " ".join([node.name, *(token(a) for a in node.args)])
        if node.lua is not None:
            if not node.name.endswith("_by_lua_block"):
                raise ValueError(f"Lua code on a non-Lua directive {node.name!r}")
            out.append(f"{pad}{head} {{\n{node.lua}\n{pad}}}\n")
        elif node.block is None:
            out.append(f"{pad}{head};\n")
        else:
            out.append(f"{pad}{head} {{\n")
            out.append(emit(node.block, indent + 1))
            out.append(f"{pad}}}\n")
    return "".join(out)
