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


def _emit(value: Any, indent: str, out: list[str]) -> None:
    """Block-style YAML for the dicts, lists and scalars the converter builds. PyYAML's
    representer is pure Python and took most of the time on 5,000 Ingresses."""
    if isinstance(value, dict):
        for k, v in value.items():
            key = _scalar(k)
            if isinstance(v, (dict, list)) and v:
                out.append(f"{indent}{key}:\n")
                _emit(v, indent + ("  " if isinstance(v, dict) else ""), out)
            else:
                out.append(f"{indent}{key}: {_empty(v)}\n")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                sub: list[str] = []
                _emit(item, indent + "  ", sub)
                first = sub[0]
                out.append(f"{indent}- {first[len(indent) + 2:]}")
                out.extend(sub[1:])
            else:
                out.append(f"{indent}- {_empty(item)}\n")


def _empty(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def dump(objects: Iterable[dict[str, Any]]) -> str:
    """Multi-document YAML, one document per object."""
    out: list[str] = []
    for obj in objects:
        out.append("---\n")
        _emit(obj, "", out)
    return "".join(out)


def by_namespace(objects: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """namespace -> its objects (cluster-scoped ones under CLUSTER), in output order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in ordered(objects):
        out.setdefault(obj["metadata"].get("namespace") or CLUSTER, []).append(obj)
    return out
