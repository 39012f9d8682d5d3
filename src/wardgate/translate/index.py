"""Lookups over one resource set: namespaces, services, endpoints, secrets, ReferenceGrants."""

from __future__ import annotations

from collections import defaultdict

from wardgate import ir
from wardgate.errors import Problem
from wardgate.keys import ObjectKey
from wardgate.model import ResourceSet
from wardgate.model.core import ConfigMap, EndpointSlice, Namespace, Secret, Service
from wardgate.model.gatewayapi import BackendTLSPolicy, HTTPRoute, ReferenceGrant


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
