"""The "Mutation" entries of conformance status checks, applied to parsed manifests.

The corpus describes what the Go test changes between two phases in plain words (``set spec.x = "y"``,
``append listener {...}``, ``delete ReferenceGrant ns/name``). Without an API server the harness edits
the test's YAML instead: a Patch modifies the object in place (the runner bumps ``metadata.generation``
when the content changes, as the API server would), a Delete drops the object.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["Mutation", "MutationError", "apply_mutation", "find_object", "parse_mutation", "set_path"]

Doc = dict[str, Any]


class MutationError(Exception):
    """The mutation cannot be applied (unknown wording, target missing, bad path)."""


@dataclass(frozen=True)
class Mutation:
    index: int
    action: str  # "Patch" or "Delete"
    description: str
    kind: str
    namespace: str
    name: str
    edit: Callable[[Doc], None] | None  # None for Delete


_SET_RE = re.compile(r"^(?:set|merge-patch)\s+(?P<path>[A-Za-z_][\w.\[\]-]*)\s*=\s*(?P<value>.+?)\s*$")
_APPEND_LISTENER_RE = re.compile(r"^append listener\s*\{(?P<body>.*)\}\s*$")
_PATH_TOKEN_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _scalar(text: str) -> Any:
    # Values are written the way YAML/JSON would: quoted strings, numbers, bare words.
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _path_tokens(path: str) -> list[str | int]:
    tokens: list[str | int] = []
    pos = 0
    for m in _PATH_TOKEN_RE.finditer(path):
        if m.start() != pos and path[pos:m.start()] != ".":
            raise MutationError(f"cannot parse field path {path!r}")
        tokens.append(int(m.group(2)) if m.group(2) is not None else m.group(1))
        pos = m.end()
    if pos != len(path) or not tokens:
        raise MutationError(f"cannot parse field path {path!r}")
    return tokens


def set_path(doc: Doc, path: str, value: Any) -> None:
    """Set ``spec.rules[0].name``-style paths, creating missing mappings on the way."""
    tokens = _path_tokens(path)
    node: Any = doc
    for i, tok in enumerate(tokens):
        last = i == len(tokens) - 1
        if isinstance(tok, int):
            if not isinstance(node, list) or tok >= len(node):
                raise MutationError(f"{path}: index {tok} does not exist")
            if last:
                node[tok] = value
            else:
                node = node[tok]
            continue
        if not isinstance(node, dict):
            raise MutationError(f"{path}: {tok!r} is not inside a mapping")
        if last:
            node[tok] = value
        else:
            nxt = node.get(tok)
            if nxt is None:
                nxt = [] if isinstance(tokens[i + 1], int) else {}
                node[tok] = nxt
            node = nxt


def _nested(flat: str) -> Doc:
    """``name: a, port: 80, allowedRoutes.namespaces.from: All`` -> a nested mapping."""
    out: Doc = {}
    for item in flat.split(","):
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise MutationError(f"cannot parse {item!r}")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _scalar(value.strip())
    return out


def _setter(path: str, value: Any) -> Callable[[Doc], None]:
    def edit(doc: Doc) -> None:
        set_path(doc, path, value)

    return edit


def _append_listener(listener: Doc) -> Callable[[Doc], None]:
    def edit(doc: Doc) -> None:
        spec = doc.setdefault("spec", {})
        listeners = spec.setdefault("listeners", [])
        if not isinstance(listeners, list):
            raise MutationError("spec.listeners is not a list")
        listeners.append(listener)

    return edit


def parse_mutation(check: dict[str, Any]) -> Mutation:
    """Turn a ``Mutation`` status-check entry into an applicable edit; MutationError if unsupported."""
    action = str(check.get("action", ""))
    description = str(check.get("description", ""))
    target = check.get("target") or {}
    kind = str(target.get("kind") or "")
    name = str(target.get("name") or "")
    namespace = str(target.get("namespace") or "")
    index = int(check.get("index", 0))
    if not kind or not name:
        raise MutationError(f"mutation #{index} has no target")
    if action == "Delete":
        return Mutation(index, action, description, kind, namespace, name, None)
    if action != "Patch":
        raise MutationError(f"mutation #{index}: unknown action {action!r}")
    m = _SET_RE.match(description)
    if m:
        path = m.group("path")
        _path_tokens(path)  # reject unparsable paths before the test starts
        return Mutation(index, action, description, kind, namespace, name,
                        _setter(path, _scalar(m.group("value"))))
    m = _APPEND_LISTENER_RE.match(description)
    if m and kind == "Gateway":
        return Mutation(index, action, description, kind, namespace, name,
                        _append_listener(_nested(m.group("body"))))
    raise MutationError(f"mutation #{index} is not implemented by the harness: {description!r}")


def _meta(doc: Doc) -> Doc:
    meta = doc.get("metadata")
    return meta if isinstance(meta, dict) else {}


def find_object(docs: list[Any], kind: str, namespace: str, name: str) -> int | None:
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or doc.get("kind") != kind:
            continue
        meta = _meta(doc)
        if str(meta.get("name", "")) == name and str(meta.get("namespace") or "") == namespace:
            return i
    return None


def apply_mutation(docs: list[Any], mutation: Mutation) -> None:
    """Apply in place to the documents of one manifest file; MutationError when the target is absent."""
    i = find_object(docs, mutation.kind, mutation.namespace, mutation.name)
    if i is None:
        raise MutationError(f"{mutation.kind} {mutation.namespace}/{mutation.name} is not in the manifests")
    if mutation.edit is None:
        del docs[i]
    else:
        mutation.edit(docs[i])
