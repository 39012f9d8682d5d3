"""Status conditions in the Kubernetes shape, and the status of one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def condition(type_: str, ok: bool, reason: str, message: str, generation: int, now: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now,
    }


@dataclass
class ObjectStatus:
    """`status` is exactly what a Kubernetes status subresource would hold."""

    kind: str
    namespace: str
    name: str
    generation: int
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "generation": self.generation,
            "status": self.status,
        }

