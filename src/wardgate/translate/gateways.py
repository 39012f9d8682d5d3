"""Gateway and listener acceptance: protocols, route kinds, certificates, conflicts."""

from __future__ import annotations

import hashlib
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wardgate import ir
from wardgate.model.gatewayapi import GROUP, Gateway, Listener
from wardgate.translate.conditions import ObjectStatus, condition
from wardgate.translate.index import Index

SUPPORTED_PROTOCOLS = ("HTTP", "HTTPS", "TLS")
ROUTE_KINDS = {"HTTP": [(GROUP, "HTTPRoute")], "HTTPS": [(GROUP, "HTTPRoute")], "TLS": [(GROUP, "TLSRoute")]}
# Protocols that may share a port: the TLS ClientHello's SNI name tells their listeners apart.
SNI_PROTOCOLS = frozenset({"HTTPS", "TLS"})


@dataclass
class ListenerPlan:
    listener: Listener
    supported_kinds: list[tuple[str, str]]
    accepted: bool = True
    accepted_reason: str = "Accepted"
    accepted_message: str = "Listener is valid"
    resolved: bool = True
    resolved_reason: str = "ResolvedRefs"
    resolved_message: str = "All references are resolved"
    conflicted: bool = False
    conflict_reason: str = "NoConflicts"
    certificate: ir.TLSCertificate | None = None
    client_validation: ir.ClientValidation | None = None
    attached: int = 0

    @property
    def name(self) -> str:
        return self.listener.name

    @property
    def attachable(self) -> bool:
        """Routes may attach (and count) even when certificates are unresolved."""
        return self.accepted and not self.conflicted

    @property
    def programmable(self) -> bool:
        return self.attachable and self.resolved


@dataclass
class GatewayPlan:
    gateway: Gateway
    listeners: list[ListenerPlan]
    accepted: bool = True
    accepted_reason: str = "Accepted"
    accepted_message: str = "Gateway is accepted"
    insecure_fallback: bool = False
    # spec.tls.backend.clientCertificateRef, presented to TLS backends.
    backend_client_certificate: ir.TLSCertificate | None = None
    resolved: bool = True
    resolved_reason: str = "ResolvedRefs"
    resolved_message: str = "All references are resolved"


def _check_certificate(cert: bytes, key: bytes) -> str | None:
    """None if the pair loads in OpenSSL; else why not."""
    with tempfile.TemporaryDirectory() as tmp:
        c, k = Path(tmp, "c.pem"), Path(tmp, "k.pem")
        c.write_bytes(cert)
        k.write_bytes(key)
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(c), str(k))
        except (ssl.SSLError, ValueError) as exc:
            return f"certificate or key is invalid: {exc}"
    return None


def _resolve_certificates(gw: Gateway, plan: ListenerPlan, index: Index) -> None:
    tls = plan.listener.tls
    if tls is None or not tls.certificate_refs:
        plan.resolved, plan.resolved_reason = False, "InvalidCertificateRef"
        plan.resolved_message = "HTTPS listener needs tls.certificateRefs"
        return
    if tls.mode != "Terminate":
        plan.accepted, plan.accepted_reason = False, "UnsupportedProtocol"
        plan.accepted_message = "HTTPS listeners only support tls.mode Terminate"
        return
    # Only the first certificate is served; nginx can't pick between several for one name.
    for i, ref in enumerate(tls.certificate_refs[:1]):
        ns = ref.namespace or gw.namespace
        where = f"tls.certificateRefs[{i}]"
        if ref.group not in ("", "core") or ref.kind != "Secret":
            plan.resolved, plan.resolved_reason = False, "InvalidCertificateRef"
            plan.resolved_message = f"{where}: only core Secrets are supported, not {ref.group}/{ref.kind}"
            return
        if ns != gw.namespace and not index.grant_allows(GROUP, "Gateway", gw.namespace, "", "Secret", ns,
                                                         ref.name):
            plan.resolved, plan.resolved_reason = False, "RefNotPermitted"
            plan.resolved_message = f"{where}: no ReferenceGrant in {ns} allows this Gateway to use {ref.name}"
            return
        secret = index.secrets.get((ns, ref.name))
        if secret is None:
            plan.resolved, plan.resolved_reason = False, "InvalidCertificateRef"
            plan.resolved_message = f"{where}: Secret {ns}/{ref.name} not found"
            return
        cert, key = secret.value("tls.crt"), secret.value("tls.key")
        error = None
        if secret.type != "kubernetes.io/tls":
            error = f"Secret type is {secret.type}, not kubernetes.io/tls"
        elif not cert or not key:
            error = "Secret lacks tls.crt or tls.key"
        else:
            error = _check_certificate(cert, key)
        if error or not cert or not key:
            plan.resolved, plan.resolved_reason = False, "InvalidCertificateRef"
            plan.resolved_message = f"{where}: Secret {ns}/{ref.name}: {error}"
            return
        digest = hashlib.sha256(cert + key).hexdigest()[:16]
        # The file name is the digest alone: no user text in a path nginx may interpolate.
        plan.certificate = ir.TLSCertificate(f"cert-{digest}", cert.decode(), key.decode())


def check_ca_pem(pem: bytes) -> str | None:
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_verify_locations(cadata=pem.decode())
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
        return f"not a PEM CA certificate: {exc}"
    return None


def _resolve_client_validation(gw: Gateway, plan: ListenerPlan, index: Index) -> None:
    """spec.tls.frontend: the CA bundle for this listener's port (perPort, else default)."""
    frontend = gw.spec.tls.frontend if gw.spec.tls else None
    if frontend is None:
        return
    where = "spec.tls.frontend.default"
    config = frontend.default
    for i, pp in enumerate(frontend.per_port):
        if pp.port == plan.listener.port:
            where, config = f"spec.tls.frontend.perPort[{i}].tls", pp.tls
    validation = config.validation
    if validation is None:
        return
    pems: list[bytes] = []
    for i, ref in enumerate(validation.ca_certificate_refs):
        field = f"{where}.validation.caCertificateRefs[{i}]"
        ns = ref.namespace or gw.namespace
        reason, message = "", ""
        if ref.group not in ("", "core") or ref.kind != "ConfigMap":
            reason, message = "InvalidCACertificateKind", f"{field}: only core ConfigMaps hold CA certificates"
        elif ns != gw.namespace and not index.grant_allows(GROUP, "Gateway", gw.namespace, "", "ConfigMap", ns,
                                                           ref.name):
            reason, message = "RefNotPermitted", f"{field}: no ReferenceGrant in {ns} allows this Gateway to use it"
        else:
            cm = index.config_maps.get((ns, ref.name))
            pem = cm.data.get("ca.crt") if cm else None
            error = (f"ConfigMap {ns}/{ref.name} not found" if cm is None else
                     "ConfigMap has no ca.crt" if not pem else check_ca_pem(pem.encode()))
            if error or not pem:
                reason, message = "InvalidCACertificateRef", f"{field}: {error}"
            else:
                pems.append(pem.encode())
        if reason:
            plan.resolved, plan.resolved_reason, plan.resolved_message = False, reason, message
            plan.accepted, plan.accepted_reason = False, "NoValidCACertificate"
            plan.accepted_message = "client certificate validation has no usable CA certificate"
            return
    bundle = b"\n".join(p.strip() for p in pems) + b"\n"
    plan.client_validation = ir.ClientValidation(f"ca-{hashlib.sha256(bundle).hexdigest()[:16]}",
                                                 bundle.decode(),
                                                 validation.mode == "AllowInsecureFallback")


def _resolve_backend_client_certificate(plan: GatewayPlan, index: Index) -> None:
    gw = plan.gateway
    backend = gw.spec.tls.backend if gw.spec.tls else None
    if backend is None or backend.client_certificate_ref is None:
        return
    ref = backend.client_certificate_ref
    ns = ref.namespace or gw.namespace
    where = "spec.tls.backend.clientCertificateRef"
    error, reason = None, "InvalidClientCertificateRef"
    if ref.group not in ("", "core") or ref.kind != "Secret":
        error = f"{where}: only core Secrets are supported, not {ref.group}/{ref.kind}"
    elif ns != gw.namespace and not index.grant_allows(GROUP, "Gateway", gw.namespace, "", "Secret", ns, ref.name):
        error, reason = f"{where}: no ReferenceGrant in {ns} allows this Gateway to use {ref.name}", "RefNotPermitted"
    else:
        secret = index.secrets.get((ns, ref.name))
        cert, key = (secret.value("tls.crt"), secret.value("tls.key")) if secret else (None, None)
        if secret is None:
            error = f"{where}: Secret {ns}/{ref.name} not found"
        elif not cert or not key:
            error = f"{where}: Secret {ns}/{ref.name} lacks tls.crt or tls.key"
        else:
            problem = _check_certificate(cert, key)
            if problem:
                error = f"{where}: Secret {ns}/{ref.name}: {problem}"
            else:
                digest = hashlib.sha256(cert + key).hexdigest()[:16]
                plan.backend_client_certificate = ir.TLSCertificate(f"client-{digest}", cert.decode(), key.decode())
    if error:
        plan.resolved, plan.resolved_reason, plan.resolved_message = False, reason, error


def plan_gateway(gw: Gateway, index: Index) -> GatewayPlan:
    plans: list[ListenerPlan] = []
    for lst in gw.spec.listeners:
        plan = ListenerPlan(lst, supported_kinds=[])
        if lst.protocol not in SUPPORTED_PROTOCOLS:
            plan.accepted, plan.accepted_reason = False, "UnsupportedProtocol"
            plan.accepted_message = f"protocol {lst.protocol} is not supported (HTTP, HTTPS and TLS are)"
            plans.append(plan)
            continue
        possible = ROUTE_KINDS[lst.protocol]
        if lst.allowed_routes.kinds is None:
            plan.supported_kinds = list(possible)
        else:
            asked = [(k.group, k.kind) for k in lst.allowed_routes.kinds]
            plan.supported_kinds = [k for k in asked if k in possible]
            bad = [f"{g}/{k}" for g, k in asked if (g, k) not in possible]
            if bad:
                plan.resolved, plan.resolved_reason = False, "InvalidRouteKinds"
                plan.resolved_message = f"unsupported route kinds: {', '.join(bad)}"
        if lst.protocol == "TLS" and (lst.tls is None or lst.tls.mode != "Passthrough"):
            # TLSRoute on a terminating TLS listener is the extended TLSRouteModeTerminate feature,
            # which wardgate does not implement: an HTTPS listener terminates TLS for HTTPRoutes.
            plan.accepted, plan.accepted_reason = False, "UnsupportedValue"
            plan.accepted_message = ("TLS listeners support only tls.mode Passthrough (TLSRoute with "
                                     "Terminate is not supported; use an HTTPS listener to terminate TLS)")
        if lst.protocol == "HTTPS" and plan.resolved:
            _resolve_certificates(gw, plan, index)
        if lst.protocol == "HTTPS" and plan.resolved and plan.accepted:
            _resolve_client_validation(gw, plan, index)
        plans.append(plan)
    _mark_conflicts(plans)
    result = GatewayPlan(gw, plans)
    _resolve_backend_client_certificate(result, index)
    result.insecure_fallback = any(p.client_validation and p.client_validation.insecure_fallback for p in plans)
    infra = gw.spec.infrastructure
    if infra and infra.parameters_ref:  # no parameters kind exists yet
        ref = infra.parameters_ref
        result.accepted, result.accepted_reason = False, "InvalidParameters"
        result.accepted_message = (f"spec.infrastructure.parametersRef {ref.group}/{ref.kind} {ref.name}: "
                                   "no parameters of this kind exist")
    elif not any(p.accepted for p in plans):
        result.accepted, result.accepted_reason = False, "ListenersNotValid"
        result.accepted_message = "no listener is valid"
    elif not all(p.accepted and p.resolved and not p.conflicted for p in plans):
        result.accepted_reason = "ListenersNotValid"
        result.accepted_message = "some listeners are not valid; the valid ones are served"
    return result


def _mark_conflicts(plans: list[ListenerPlan]) -> None:
    by_port: dict[int, list[ListenerPlan]] = {}
    for p in plans:
        if p.accepted:
            by_port.setdefault(p.listener.port, []).append(p)
    for group in by_port.values():
        protocols = {p.listener.protocol for p in group}
        if len(protocols) > 1 and not protocols <= SNI_PROTOCOLS:
            for p in group:
                p.conflicted, p.conflict_reason = True, "ProtocolConflict"
            continue
        hosts: dict[str, list[ListenerPlan]] = {}
        for p in group:
            hosts.setdefault(p.listener.hostname or "", []).append(p)
        for same in hosts.values():
            if len(same) > 1:
                for p in same:
                    p.conflicted, p.conflict_reason = True, "HostnameConflict"


def gateway_status(plan: GatewayPlan, addresses: list[str], now: str,
                   programmed: dict[str, bool] | None = None) -> ObjectStatus:
    """The Gateway's status. `programmed` (listener -> ok) comes from the data plane."""
    gw = plan.gateway
    gen = gw.metadata.generation
    listeners: list[dict[str, Any]] = []
    any_programmed = False
    for p in plan.listeners:
        prog = p.programmable and plan.accepted and (programmed or {}).get(p.name, True)
        any_programmed = any_programmed or prog
        if prog:
            prog_reason, prog_msg = "Programmed", "Listener is programmed in nginx"
        elif not p.programmable:
            prog_reason, prog_msg = "Invalid", "Listener is not valid"
        else:
            prog_reason, prog_msg = "Pending", "nginx has not accepted the configuration"
        listeners.append({
            "name": p.name,
            "supportedKinds": [{"group": g, "kind": k} for g, k in p.supported_kinds],
            "attachedRoutes": p.attached,
            "conditions": [
                condition("Accepted", p.accepted and not p.conflicted,
                          p.accepted_reason if not p.conflicted else p.conflict_reason,
                          p.accepted_message, gen, now),
                condition("ResolvedRefs", p.resolved, p.resolved_reason, p.resolved_message, gen, now),
                condition("Programmed", prog, prog_reason, prog_msg, gen, now),
                condition("Conflicted", p.conflicted, p.conflict_reason,
                          "Listener conflicts with another listener" if p.conflicted else "No conflicts",
                          gen, now),
            ],
        })
    gw_prog = plan.accepted and any_programmed
    status = {
        "addresses": [{"type": "IPAddress", "value": a} for a in addresses] if plan.accepted else [],
        "conditions": [
            condition("Accepted", plan.accepted, plan.accepted_reason, plan.accepted_message, gen, now),
            condition("Programmed", gw_prog, "Programmed" if gw_prog else "Invalid",
                      "Gateway is programmed in nginx" if gw_prog else "Gateway is not programmed", gen, now),
            condition("ResolvedRefs", plan.resolved, plan.resolved_reason, plan.resolved_message, gen, now),
        ] + ([condition("InsecureFrontendValidationMode", True, "ConfigurationChanged",
                        "client certificates are requested but not required (AllowInsecureFallback)", gen, now)]
             if plan.insecure_fallback else []),
        "listeners": listeners,
    }
    return ObjectStatus("Gateway", gw.namespace, gw.name, gen, status)
