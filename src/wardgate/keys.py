"""The one key type for objects, shared by model, IR and status (plain data, no Kubernetes types)."""

from __future__ import annotations

from typing import NamedTuple


class ObjectKey(NamedTuple):
    """(kind, namespace, name); namespace is "" for cluster-scoped kinds.

    A NamedTuple rather than a dataclass: keys index every lookup table of a translation, and a
    tuple hashes in C. str() is the display form, "namespace/name" (or "name")."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def ref(self) -> str:
        """"Kind namespace/name", as messages name an object."""
        return f"{self.kind} {self}"


__all__ = ["ObjectKey"]
