"""Status conditions in the Kubernetes shape, and the status of one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from wardgate.keys import ObjectKey

ConditionType = Literal["Accepted", "Programmed", "ResolvedRefs", "Conflicted", "SupportedVersion",
                        "InsecureFrontendValidationMode", "PartiallyEnforced"]

# Every reason wardgate reports: the Gateway API's (GatewayClass, Gateway, listener, route,
# BackendTLSPolicy, GEP-713 policy ancestors) and "Pending"/"Invalid" for the data plane.
Reason = Literal[
    # True
    "Accepted", "Programmed", "ResolvedRefs", "NoConflicts", "SupportedVersion", "ConfigurationChanged",
    # GatewayClass and Gateway
    "InvalidParameters", "ListenersNotValid", "Invalid", "Pending",
    # listeners
    "UnsupportedProtocol", "UnsupportedValue", "InvalidRouteKinds", "InvalidCertificateRef",
    "RefNotPermitted", "InvalidCACertificateKind", "InvalidCACertificateRef", "NoValidCACertificate",
    "InvalidClientCertificateRef", "ProtocolConflict", "HostnameConflict",
    # routes
    "NoMatchingParent", "NotAllowedByListeners", "NoMatchingListenerHostname", "InvalidKind",
    "BackendNotFound",
    # policies
    "Conflicted", "TargetNotFound", "InvalidRef",
]


@dataclass(frozen=True, slots=True)
class Condition:
    """A metav1.Condition, field for field under its wire names: the status document holds
    exactly these fields, in this order."""

    type: ConditionType
    status: Literal["True", "False"]
    reason: Reason
    message: str
    observedGeneration: int  # camelCase: the Kubernetes field names
    lastTransitionTime: str

    @property
    def ok(self) -> bool:
        return self.status == "True"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "status": self.status, "reason": self.reason, "message": self.message,
                "observedGeneration": self.observedGeneration, "lastTransitionTime": self.lastTransitionTime}


def condition(type_: ConditionType, ok: bool, reason: Reason, message: str, generation: int, now: str) -> Condition:
    return Condition(type_, "True" if ok else "False", reason, message, generation, now)


def _conds(conditions: list[Condition]) -> list[dict[str, Any]]:
    return [c.to_dict() for c in conditions]


def _wire(status: dict[str, Any]) -> dict[str, Any]:
    """The status with its conditions as plain dicts. Conditions sit at the top and in the
    entries of listeners, parents and ancestors; only those are copied (the status of every
    route is written on each reconcile)."""
    out = dict(status)
    for key, value in status.items():
        if key == "conditions":
            out[key] = _conds(value)
        elif isinstance(value, list) and value and isinstance(value[0], dict) and "conditions" in value[0]:
            out[key] = [{**entry, "conditions": _conds(entry["conditions"])} for entry in value]
    return out


@dataclass
class ObjectStatus:
    """`status` is exactly what a Kubernetes status subresource would hold, with its conditions
    as `Condition`s until `to_dict()`."""

    kind: str
    namespace: str
    name: str
    generation: int
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.namespace, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "generation": self.generation,
            "status": _wire(self.status),
        }


# Conditions whose True means all is well; for Conflicted, True is the problem.
_WANTED_TRUE = frozenset({"Accepted", "Programmed", "ResolvedRefs"})


def unmet(st: ObjectStatus) -> list[tuple[str, Condition]]:
    """What an object's status says is not served as written: each condition that is not as it
    should be, with where it sits ("Gateway default/gw listener https")."""
    out: list[tuple[str, Condition]] = []

    def check(where: str, conditions: list[Condition]) -> None:
        for c in conditions:
            if (c.type in _WANTED_TRUE and not c.ok) or (c.type == "Conflicted" and c.ok):
                out.append((where, c))

    who = f"{st.kind} {st.namespace}/{st.name}" if st.namespace else f"{st.kind} {st.name}"
    check(who, st.status.get("conditions", []))
    for entry in st.status.get("listeners", []):
        check(f"{who} listener {entry['name']}", entry["conditions"])
    for entry in st.status.get("parents", []):
        ref = entry["parentRef"]
        parent = f"{ref.get('namespace', st.namespace)}/{ref['name']}"
        section = f" {ref['sectionName']}" if ref.get("sectionName") else ""
        check(f"{who} on {ref.get('kind', 'Gateway')} {parent}{section}", entry["conditions"])
    return out
