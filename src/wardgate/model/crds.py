"""CustomResourceDefinitions for wardgate's policy kinds, generated from the models that validate
them, so the API server and `wardgate validate` accept the same shapes.

pydantic's JSON Schema becomes a Kubernetes structural schema: references inlined, optional
fields `nullable`, constants as enums, int-or-string sizes marked for the API server.
"""

from __future__ import annotations

from typing import Any

from wardgate.model.base import Resource
from wardgate.model.compat import COMPAT_KIND, IngressNginxCompat
from wardgate.model.policies import POLICY_GROUP, POLICY_KINDS, POLICY_VERSION, Policy

_DROP = {"title", "discriminator"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if node.get("x-kubernetes-int-or-string"):
        return {k: v for k, v in node.items() if k not in _DROP}
    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        rest = [o for o in any_of if o != {"type": "null"}]
        if len(rest) < len(any_of) and len(rest) == 1:
            inner = _structural(rest[0], defs)
            extra = {k: v for k, v in node.items() if k not in ("anyOf", "default") and k not in _DROP}
            return {**inner, **extra, "nullable": True}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {name: _structural(v, defs) for name, v in value.items()}
            continue
        out[key] = _structural(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _plural(kind: str) -> str:
    low = kind.lower()
    return low[:-1] + "ies" if low.endswith("y") else low + "s"


def crd(kind: str, cls: type[Resource]) -> dict[str, Any]:
    spec_model = cls.model_fields["spec"].annotation
    assert isinstance(spec_model, type)
    raw = spec_model.model_json_schema(by_alias=True, mode="validation")
    spec = _structural(raw, raw.get("$defs", {}))
    spec["description"] = (cls.__doc__ or kind).strip()
    plural = _plural(kind)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{POLICY_GROUP}",
                     "labels": {"app.kubernetes.io/part-of": "wardgate"}},
        "spec": {
            "group": POLICY_GROUP,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(),
                      "categories": ["wardgate", "gateway-api"]},
            "scope": "Namespaced",
            "versions": [{
                "name": POLICY_VERSION,
                "served": True,
                "storage": True,
                **({"subresources": {"status": {}}} if issubclass(cls, Policy) else {}),
                "additionalPrinterColumns": [
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec,
                        **({"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                       "description": "status.ancestors[] as in Gateway API PolicyStatus."}}
                           if issubclass(cls, Policy) else {}),
                    },
                }},
            }],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for every policy kind and IngressNginxCompat."""
    kinds: dict[str, type[Resource]] = {**POLICY_KINDS, COMPAT_KIND: IngressNginxCompat}
    return {f"{POLICY_GROUP}_{_plural(kind)}.yaml": crd(kind, cls) for kind, cls in kinds.items()}


__all__ = ["all_crds", "crd"]
