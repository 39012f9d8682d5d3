"""Typed, validated resources, parsed from raw objects with errors that name the field."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from wardgate.errors import InputError, Problem
from wardgate.keys import ObjectKey
from wardgate.model.base import Resource
from wardgate.model.compat import COMPAT_KINDS
from wardgate.model.core import ConfigMap, EndpointSlice, Namespace, Secret, Service
from wardgate.model.gatewayapi import (
    GROUP,
    TLS_ROUTE_VERSIONS,
    BackendTLSPolicy,
    Gateway,
    GatewayClass,
    GRPCRoute,
    HTTPRoute,
    ReferenceGrant,
    TLSRoute,
)
from wardgate.model.policies import POLICY_GROUP, POLICY_KINDS, POLICY_VERSION
from wardgate.perf import no_gc_pauses
from wardgate.sources.files import RawObject

# (apiVersion group, kind) -> model. The group is the part before "/" ("" for core v1).
KINDS: dict[tuple[str, str], type[Resource]] = {
    (GROUP, "GatewayClass"): GatewayClass,
    (GROUP, "Gateway"): Gateway,
    (GROUP, "HTTPRoute"): HTTPRoute,
    (GROUP, "GRPCRoute"): GRPCRoute,
    (GROUP, "ReferenceGrant"): ReferenceGrant,
    (GROUP, "TLSRoute"): TLSRoute,
    (GROUP, "BackendTLSPolicy"): BackendTLSPolicy,
    ("", "Namespace"): Namespace,
    ("", "Service"): Service,
    ("", "Secret"): Secret,
    ("", "ConfigMap"): ConfigMap,
    ("discovery.k8s.io", "EndpointSlice"): EndpointSlice,
    **{(POLICY_GROUP, kind): cls for kind, cls in POLICY_KINDS.items()},
    **COMPAT_KINDS,
}
SUPPORTED_VERSIONS = {GROUP: {"v1", "v1beta1", "v1alpha3"}, "": {"v1"}, "discovery.k8s.io": {"v1"},
                      POLICY_GROUP: {POLICY_VERSION}}
# Kinds whose versions differ from their group's.
KIND_VERSIONS: dict[tuple[str, str], set[str]] = {(GROUP, "TLSRoute"): set(TLS_ROUTE_VERSIONS)}


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # pydantic reports the wire name (alias); tagged-union tags are not fields.
            out += ("." if out else "") + str(part)
    return out


@dataclass
class ResourceSet:
    """Everything one translation sees. Lists keep load order."""

    objects: list[Resource] = field(default_factory=list)
    ignored: list[RawObject] = field(default_factory=list)
    # Objects whose latest version was refused, with why (their last good version, if any, is in
    # `objects`): translation reports them in status, e.g. a policy's Accepted=False/Invalid.
    rejected: list[tuple[RawObject, list[Problem]]] = field(default_factory=list)

    def of(self, cls: type[Any]) -> list[Any]:
        return [o for o in self.objects if isinstance(o, cls)]

    @property
    def gateway_classes(self) -> list[GatewayClass]:
        return self.of(GatewayClass)

    @property
    def gateways(self) -> list[Gateway]:
        return self.of(Gateway)

    @property
    def http_routes(self) -> list[HTTPRoute]:
        return self.of(HTTPRoute)

    @property
    def grpc_routes(self) -> list[GRPCRoute]:
        return self.of(GRPCRoute)

    @property
    def tls_routes(self) -> list[TLSRoute]:
        return self.of(TLSRoute)


def parse_object(raw: RawObject, seq: int = 0) -> Resource | None:
    """The typed object, None for kinds wardgate does not use. Raises InputError."""
    data = raw.data
    api_version = str(data.get("apiVersion", ""))
    kind = str(data.get("kind", ""))
    meta_raw = data.get("metadata")
    meta: dict[str, Any] = meta_raw if isinstance(meta_raw, dict) else {}
    name = str(meta.get("name", "")) or None
    ns = str(meta.get("namespace", "")) or None
    if not api_version or not kind:
        missing = "apiVersion" if not api_version else "kind"
        raise InputError([Problem(f"{missing} is required", raw.origin, kind or None, ns, name, missing)])
    group, _, version = api_version.rpartition("/")
    cls = KINDS.get((group, kind))
    if cls is None:
        return None
    if version not in KIND_VERSIONS.get((group, kind), SUPPORTED_VERSIONS[group]):
        raise InputError([Problem(
            f"unsupported apiVersion {api_version!r} for {kind}", raw.origin, kind, ns, name, "apiVersion"
        )])
    body = dict(data)
    body.pop("status", None)
    if cls.NAMESPACED:
        body["metadata"] = {**meta, "namespace": meta.get("namespace") or "default"}
    try:
        obj = cls.model_validate(body)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(Problem(msg, raw.origin, kind, ns or ("default" if cls.NAMESPACED else None),
                                    name, _loc(err["loc"]) or None))
        raise InputError(problems) from None
    if isinstance(obj, Secret) and (tls := obj.tls_problem()) is not None:
        # Like any invalid object: refused, so its last good version keeps serving. The message
        # names the field only; the key material never reaches an error.
        raise InputError([Problem(tls[1], raw.origin, kind, obj.namespace, obj.name, tls[0])])
    return obj.model_copy(update={"origin": raw.origin, "seq": seq})


def _raw_key(raw: RawObject) -> ObjectKey:
    data = raw.data
    meta_raw = data.get("metadata")
    meta: dict[str, Any] = meta_raw if isinstance(meta_raw, dict) else {}
    kind = str(data.get("kind", ""))
    group = str(data.get("apiVersion", "")).rpartition("/")[0]
    cls = KINDS.get((group, kind))
    ns = str(meta.get("namespace") or ("default" if cls is None or cls.NAMESPACED else ""))
    return ObjectKey(kind, ns, str(meta.get("name", "")))


class ParseCache:
    """Typed objects of the raw objects parsed last time, by identity: sources hand back the same
    RawObject for an unchanged file, so a reconcile validates only what changed (validating all
    cost 0.1 s per reconcile at 1,000 routes)."""

    def __init__(self) -> None:
        self._objs: dict[int, tuple[RawObject, Resource | None]] = {}
        self._next: dict[int, tuple[RawObject, Resource | None]] = {}

    def parse(self, raw: RawObject, seq: int) -> Resource | None:
        hit = self._objs.get(id(raw))
        if hit is not None and hit[0] is raw:
            obj = hit[1]
            if obj is not None and obj.seq != seq:
                obj = obj.model_copy(update={"seq": seq})
        else:
            obj = parse_object(raw, seq)
        self._next[id(raw)] = (raw, obj)  # holding raw keeps its id from being reused
        return obj

    def done(self) -> None:
        """Forget the objects that were not seen since the last done()."""
        self._objs, self._next = self._next, {}


@no_gc_pauses
def parse_keeping(raws: Iterable[RawObject], previous: dict[ObjectKey, Resource] | None = None,
                  cache: ParseCache | None = None) -> tuple[ResourceSet, list[Problem]]:
    """All valid objects and the problems found. An invalid object is replaced by its previous
    valid version when there is one (`previous`), as an API server would keep the stored object
    after rejecting an update; a new invalid object is left out."""
    out = ResourceSet()
    problems: list[Problem] = []
    seen: dict[ObjectKey, Resource] = {}
    for seq, raw in enumerate(raws):
        try:
            obj = cache.parse(raw, seq) if cache is not None else parse_object(raw, seq)
        except InputError as exc:
            problems.extend(exc.problems)
            out.rejected.append((raw, exc.problems))
            kept = (previous or {}).get(_raw_key(raw))
            if kept is None or kept.key in seen:
                continue
            obj = kept
        if obj is None:
            out.ignored.append(raw)
            continue
        key = obj.key
        if key in seen:
            first = seen[key].origin
            problems.append(Problem(f"defined twice (first at {first})", raw.origin, obj.kind,
                                    obj.namespace or None, obj.name))
            continue
        seen[key] = obj
        out.objects.append(obj)
    if cache is not None:
        cache.done()
    return out, problems


def parse(raws: Iterable[RawObject]) -> ResourceSet:
    """All objects, or an InputError listing every problem found (not just the first)."""
    out, problems = parse_keeping(raws)
    if problems:
        raise InputError(problems)
    return out


__all__ = ["KINDS", "ObjectKey", "ParseCache", "ResourceSet", "parse", "parse_keeping", "parse_object"]
