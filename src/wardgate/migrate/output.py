"""Deterministic YAML for migrate's output: the same input gives the same bytes.

Objects are ordered by namespace (cluster-scoped first), then kind (Gateways before routes before
policies), then name; keys keep the order the converter built them in, which is fixed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

KIND_ORDER = ("GatewayClass", "Gateway", "ReferenceGrant", "HTTPRoute", "GRPCRoute", "TLSRoute",
              "BackendTLSPolicy", "ClientTrafficPolicy", "SecurityPolicy", "RateLimitPolicy")
CLUSTER = "_cluster"  # the file name (without .yaml) of cluster-scoped objects in -o DIR


def sort_key(obj: dict[str, Any]) -> tuple[str, int, str]:
    meta = obj["metadata"]
    kind = obj["kind"]
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return (meta.get("namespace", ""), rank, f"{kind}/{meta['name']}")


def ordered(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objects, key=sort_key)


# Strings written without quotes: nothing YAML could read as another type or as syntax.
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_KEYWORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    # A JSON string is a YAML double-quoted scalar; YAML writes characters beyond the BMP as
    # \UXXXXXXXX, not as the surrogate pairs JSON uses.
    return _PAIR.sub(_astral, json.dumps(text))


_PAIR = re.compile(r"\\ud([89ab][0-9a-f]{2})\\ud([c-f][0-9a-f]{2})")


def _astral(m: re.Match[str]) -> str:
    code = 0x10000 + ((int("d" + m.group(1), 16) - 0xD800) << 10) + (int("d" + m.group(2), 16) - 0xDC00)
    return f"\\U{code:08x}"


class _Writer:
    """Block-style YAML for the dicts, lists and scalars the converter builds. PyYAML's
    representer is pure Python and took most of the time on 5,000 Ingresses; strings repeat
    (keys, kinds, names), so each one is quoted once per dump."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.strings: dict[str, str] = {}

    def text(self, value: str) -> str:
        done = self.strings.get(value)
        if done is None:
            done = self.strings[value] = _scalar(value)
        return done

    def leaf(self, value: Any) -> str:
        kind = type(value)
        if kind is str:
            return self.text(value)
        if kind is dict:
            return "{}"
        if kind is list:
            return "[]"
        return _scalar(value)

    def emit(self, value: Any, indent: str) -> None:
        out, text, leaf = self.out, self.text, self.leaf
        if type(value) is dict:
            inner = indent + "  "
            for k, v in value.items():
                key = text(k) if type(k) is str else _scalar(k)
                kind = type(v)
                if (kind is dict or kind is list) and v:
                    out.append(f"{indent}{key}:\n")
                    self.emit(v, inner if kind is dict else indent)
                else:
                    out.append(f"{indent}{key}: {leaf(v)}\n")
            return
        item_indent = indent + "  "
        for item in value:
            kind = type(item)
            if (kind is dict or kind is list) and item:
                start = len(out)
                self.emit(item, item_indent)
                # the item's first line starts after "- " instead of its indentation
                out[start] = f"{indent}- {out[start][len(item_indent):]}"
            else:
                out.append(f"{indent}- {leaf(item)}\n")


def dump(objects: Iterable[dict[str, Any]]) -> str:
    """Multi-document YAML, one document per object."""
    w = _Writer()
    for obj in objects:
        w.out.append("---\n")
        w.emit(obj, "")
    return "".join(w.out)


def by_namespace(objects: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """namespace -> its objects (cluster-scoped ones under CLUSTER), in output order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in ordered(objects):
        out.setdefault(obj["metadata"].get("namespace") or CLUSTER, []).append(obj)
    return out
