"""Lookups over one resource set: namespaces, services, endpoints, secrets, ReferenceGrants."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from wardgate import ir
from wardgate.errors import Problem
from wardgate.keys import ObjectKey
from wardgate.model import ResourceSet
from wardgate.model.compat import IngressNginxCompat
from wardgate.model.core import ConfigMap, EndpointSlice, Namespace, Secret, Service
from wardgate.model.gatewayapi import BackendTLSPolicy, HTTPRoute, ReferenceGrant

_MISSING = object()
# The lookup tables a translation reads: a memo of one Gateway's IR records its reads of these.
TABLES = ("namespaces", "services", "secrets", "config_maps", "slices", "backend_tls", "routes", "rejected",
          "grants", "compat")
# (table, key or _WHOLE, what was there): one read made while building a Gateway.
Read = tuple[str, object, object]
_WHOLE = object()  # the read saw the whole table (iterated it)


class _Recorded(dict[Any, Any]):
    """A table that logs every read, so a memo can check later that nothing it saw has changed.

    A copy of the table: any access path not overridden here still sees the right data (it would
    just go unrecorded), and every read path a dict has is overridden."""

    def __init__(self, name: str, table: dict[Any, Any], log: list[Read]) -> None:
        super().__init__(table)
        self._name, self._log = name, log
        self._factory: Callable[[], Any] | None = getattr(table, "default_factory", None)

    def _read(self, key: object) -> Any:
        value = dict.get(self, key, _MISSING)
        self._log.append((self._name, key, value))
        if value is _MISSING and self._factory is not None:
            return self._factory()  # a defaultdict's empty value, not stored: reads stay reads
        return value

    def get(self, key: object, default: Any = None) -> Any:
        value = self._read(key)
        return default if value is _MISSING else value

    def __getitem__(self, key: object) -> Any:
        value = self._read(key)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self._read(key) is not _MISSING

    def _whole(self) -> None:
        self._log.append((self._name, _WHOLE, dict.copy(self)))

    def __iter__(self) -> Iterator[Any]:
        self._whole()
        return super().__iter__()

    def __len__(self) -> int:
        self._whole()
        return super().__len__()

    def keys(self) -> Any:
        self._whole()
        return super().keys()

    def values(self) -> Any:
        self._whole()
        return super().values()

    def items(self) -> Any:
        self._whole()
        return super().items()


def _same(a: object, b: object) -> bool:
    """The same objects: typed objects are immutable and parsed again only when they change, so
    identity is exact; lists (EndpointSlices of a Service, grants of a namespace) element-wise."""
    if a is b:
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):  # a whole table
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    return False


class Index:
    def __init__(self, rs: ResourceSet) -> None:
        self.namespaces: dict[str, Namespace] = {n.name: n for n in rs.of(Namespace)}
        self.services: dict[ObjectKey, Service] = {s.key: s for s in rs.of(Service)}
        self.secrets: dict[ObjectKey, Secret] = {s.key: s for s in rs.of(Secret)}
        self.config_maps: dict[ObjectKey, ConfigMap] = {c.key: c for c in rs.of(ConfigMap)}
        self.slices: dict[ObjectKey, list[EndpointSlice]] = defaultdict(list)
        for es in rs.of(EndpointSlice):
            if es.service_name:
                self.slices[ObjectKey("Service", es.namespace, es.service_name)].append(es)
        # Service -> the BackendTLSPolicies targeting it, oldest first.
        self.backend_tls: dict[ObjectKey, list[BackendTLSPolicy]] = defaultdict(list)
        for p in rs.of(BackendTLSPolicy):
            for ref in p.spec.target_refs:
                if ref.group in ("", "core") and ref.kind == "Service":
                    self.backend_tls[ObjectKey("Service", p.namespace, ref.name)].append(p)
        # (namespace, Service, port) -> ready endpoints, filled on first use.
        self.endpoint_cache: dict[tuple[str, str, int], tuple[ir.Endpoint, ...]] = {}
        self.routes: dict[ObjectKey, HTTPRoute] = {r.key: r for r in rs.http_routes}
        # Objects whose latest version the model refused, with why.
        self.rejected: dict[ObjectKey, list[Problem]] = {}
        for _raw, problems in rs.rejected:
            for p in problems:
                if p.kind and p.name:
                    self.rejected.setdefault(ObjectKey(p.kind, p.namespace or "", p.name), []).append(p)
        self.grants: dict[str, list[ReferenceGrant]] = defaultdict(list)
        for g in rs.of(ReferenceGrant):
            self.grants[g.namespace].append(g)
        # IngressNginxCompat filters, which HTTPRoute rules name in ExtensionRefs.
        self.compat: dict[ObjectKey, IngressNginxCompat] = {c.key: c for c in rs.of(IngressNginxCompat)}

    def recording(self) -> tuple[Index, list[Read]]:
        """A view of this index that logs every table read into the returned list. Its
        endpoint cache starts empty, so endpoints are collected through the logged tables."""
        log: list[Read] = []
        view = copy.copy(self)
        for name in TABLES:
            setattr(view, name, _Recorded(name, getattr(self, name), log))
        view.endpoint_cache = {}
        return view, log

    def unchanged(self, reads: list[Read]) -> bool:
        """Whether every read in `reads` (made on another index) sees the same objects here."""
        for name, key, seen in reads:
            table: dict[Any, Any] = getattr(self, name)
            now = dict(table) if key is _WHOLE else dict.get(table, key, _MISSING)
            if not _same(seen, now) and not (_empty(seen) and _empty(now)):
                return False
        return True

    def route(self, namespace: str, name: str) -> HTTPRoute | None:
        return self.routes.get(ObjectKey("HTTPRoute", namespace, name))

    def service(self, namespace: str, name: str) -> Service | None:
        return self.services.get(ObjectKey("Service", namespace, name))

    def secret(self, namespace: str, name: str) -> Secret | None:
        return self.secrets.get(ObjectKey("Secret", namespace, name))

    def config_map(self, namespace: str, name: str) -> ConfigMap | None:
        return self.config_maps.get(ObjectKey("ConfigMap", namespace, name))

    def namespace_labels(self, name: str) -> dict[str, str]:
        ns = self.namespaces.get(name)
        labels = dict(ns.metadata.labels) if ns else {}
        # The API server sets this label on every namespace.
        labels.setdefault("kubernetes.io/metadata.name", name)
        return labels

    def grant_allows(
        self, from_group: str, from_kind: str, from_ns: str, to_group: str, to_kind: str, to_ns: str,
        to_name: str,
    ) -> bool:
        """A ReferenceGrant in the target namespace lets `from` refer to the target."""
        for grant in self.grants.get(to_ns, []):
            if not any(f.group == from_group and f.kind == from_kind and f.namespace == from_ns
                       for f in grant.spec.from_):
                continue
            if any(t.group == to_group and t.kind == to_kind and (t.name in (None, "", to_name))
                   for t in grant.spec.to):
                return True
        return False


def _empty(value: object) -> bool:
    """Missing, or a defaultdict's empty list: the two read the same."""
    return value is _MISSING or (isinstance(value, list) and not value)
