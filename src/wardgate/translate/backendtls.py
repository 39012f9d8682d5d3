"""BackendTLSPolicy: which Services are reached over TLS, verified how, and the policies' status."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from wardgate import ir
from wardgate.keys import ObjectKey
from wardgate.model.core import ServicePort
from wardgate.model.gatewayapi import BackendTLSPolicy
from wardgate.translate.conditions import Reason
from wardgate.translate.gateways import check_ca_pem
from wardgate.translate.index import Index


@dataclass(frozen=True)
class PolicyResult:
    policy: BackendTLSPolicy
    tls: ir.UpstreamTLS | None  # None: the policy is invalid
    reason: Reason = "Accepted"
    message: str = "Policy is accepted"


def resolve(policy: BackendTLSPolicy, index: Index) -> PolicyResult:
    v = policy.spec.validation
    if v.well_known_ca_certificates:
        return PolicyResult(policy, ir.UpstreamTLS(v.hostname))
    pems: list[str] = []
    for i, ref in enumerate(v.ca_certificate_refs):
        where = f"spec.validation.caCertificateRefs[{i}]"
        if ref.group not in ("", "core") or ref.kind != "ConfigMap":
            return PolicyResult(policy, None, "InvalidKind", f"{where}: only core ConfigMaps hold CA certificates")
        cm = index.config_map(policy.namespace, ref.name)
        pem = cm.data.get("ca.crt") if cm else None
        error = (f"ConfigMap {policy.namespace}/{ref.name} not found" if cm is None else
                 "ConfigMap has no ca.crt" if not pem else check_ca_pem(pem.encode()))
        if error or not pem:
            return PolicyResult(policy, None, "InvalidCACertificateRef", f"{where}: {error}")
        pems.append(pem.strip())
    bundle = "\n".join(pems) + "\n"
    name = f"backend-ca-{hashlib.sha256(bundle.encode()).hexdigest()[:16]}"
    return PolicyResult(policy, ir.UpstreamTLS(v.hostname, name, bundle))


def policy_for(index: Index, namespace: str, service: str, port: ServicePort) -> BackendTLSPolicy | None:
    """The policy that applies to a Service port: one naming the port wins over one for the Service;
    among equals the oldest (creationTimestamp, then load order), as GEP-713 resolves conflicts."""
    candidates = [p for p in index.backend_tls.get(ObjectKey("Service", namespace, service), [])
                  if any(r.name == service and r.section_name in (None, port.name) for r in p.spec.target_refs)]
    if not candidates:
        return None

    def rank(p: BackendTLSPolicy) -> tuple[int, str, int]:
        named = any(r.name == service and r.section_name == port.name for r in p.spec.target_refs)
        return (0 if named else 1, p.metadata.creation_timestamp or "", p.seq)

    return min(candidates, key=rank)
