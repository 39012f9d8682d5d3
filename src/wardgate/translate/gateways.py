"""Gateway and listener acceptance: protocols, route kinds, certificates, conflicts."""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from wardgate import ir, quoting
from wardgate.keys import ObjectKey
from wardgate.model.core import TLS_SECRET_TYPE, Secret
from wardgate.model.gatewayapi import GROUP, Gateway, Listener
from wardgate.model.tls import decode_pem, tls_pair_problem
from wardgate.translate.conditions import Condition, ObjectStatus, Reason, condition
from wardgate.translate.index import Index

SUPPORTED_PROTOCOLS = ("HTTP", "HTTPS", "TLS")
ROUTE_KINDS = {"HTTP": [(GROUP, "HTTPRoute"), (GROUP, "GRPCRoute")],
               "HTTPS": [(GROUP, "HTTPRoute"), (GROUP, "GRPCRoute")],
               "TLS": [(GROUP, "TLSRoute")]}
# Protocols that may share a port: the TLS ClientHello's SNI name tells their listeners apart.
SNI_PROTOCOLS = frozenset({"HTTPS", "TLS"})


@dataclass
class ListenerPlan:
    listener: Listener
    supported_kinds: list[tuple[str, str]]
    accepted: bool = True
    accepted_reason: Reason = "Accepted"
    accepted_message: str = "Listener is valid"
    resolved: bool = True
    resolved_reason: Reason = "ResolvedRefs"
    resolved_message: str = "All references are resolved"
    conflicted: bool = False
    conflict_reason: Reason = "NoConflicts"
    certificates: tuple[ir.TLSCertificate, ...] = ()
    client_validation: ir.ClientValidation | None = None
    tls: ir.ListenerTLS = field(default_factory=ir.ListenerTLS)
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
    accepted_reason: Reason = "Accepted"
    accepted_message: str = "Gateway is accepted"
    insecure_fallback: bool = False
    # spec.tls.backend.clientCertificateRef, presented to TLS backends.
    backend_client_certificate: ir.TLSCertificate | None = None
    resolved: bool = True
    resolved_reason: Reason = "ResolvedRefs"
    resolved_message: str = "All references are resolved"


def _refuse_password(*_args: object) -> bytes:
    # OpenSSL without a password callback reads a pass phrase from the terminal.
    raise ValueError("encrypted keys are not supported")


def _check_certificate(secret: Secret) -> str | None:
    """None if the Secret's tls.crt/tls.key pair loads in OpenSSL as nginx will load it; else
    why not, naming the field. Never prompts, never quotes the material."""
    cert, key = secret.value("tls.crt"), secret.value("tls.key")
    if not cert or not key:
        return "Secret lacks tls.crt or tls.key"
    problem = tls_pair_problem(cert, key)
    if problem is not None:
        return f"{secret.field_of(problem[0])}: {problem[1]}"
    # What passes `cryptography` can still be refused by the system OpenSSL nginx links (its
    # security level: a 1024-bit RSA key), so load the pair there too: private files, no prompt.
    with tempfile.TemporaryDirectory() as tmp:
        paths = Path(tmp, "c.pem"), Path(tmp, "k.pem")
        for path, data in zip(paths, (cert, key), strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                str(paths[0]), str(paths[1]), password=_refuse_password)
        except ssl.SSLError as exc:
            return f"OpenSSL refuses the certificate or key ({exc.reason or 'unknown reason'})"
        except (OSError, ValueError):
            return "OpenSSL refuses the certificate or key"
    return None


def _pem_pair(secret: Secret) -> tuple[str, str] | None:
    """tls.crt and tls.key as text, or None (bytes that are not UTF-8 never get this far)."""
    cert, key = secret.value("tls.crt"), secret.value("tls.key")
    cert_text, _ = decode_pem(cert or b"")
    key_text, _ = decode_pem(key or b"")
    return (cert_text, key_text) if cert_text and key_text else None


def _digest(pair: tuple[str, str]) -> str:
    return hashlib.sha256("".join(pair).encode()).hexdigest()[:16]


def _rejected_note(index: Index, ns: str, name: str) -> str:
    """What is wrong with the latest version of a Secret the model refused, or ''."""
    problems = index.rejected.get(ObjectKey("Secret", ns, name))
    return "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems or [])


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
    certificates: list[ir.TLSCertificate] = []
    unused: list[str] = []
    for i, ref in enumerate(tls.certificate_refs):
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
        secret = index.secret(ns, ref.name)
        rejected = _rejected_note(index, ns, ref.name)
        if secret is None:
            plan.resolved, plan.resolved_reason = False, "InvalidCertificateRef"
            plan.resolved_message = (f"{where}: Secret {ns}/{ref.name} is invalid: {rejected}" if rejected else
                                     f"{where}: Secret {ns}/{ref.name} not found")
            return
        error = None
        if secret.type != TLS_SECRET_TYPE:
            error = f"Secret type is {secret.type}, not {TLS_SECRET_TYPE}"
        else:
            error = _check_certificate(secret)
        pair = _pem_pair(secret)
        key_type = _key_type(pair[0]) if pair and not error else ""
        names = _dns_names(pair[0]) if pair and not error else ()
        if error or pair is None:
            plan.resolved, plan.resolved_reason = False, "InvalidCertificateRef"
            plan.resolved_message = f"{where}: Secret {ns}/{ref.name}: {error or 'not UTF-8 text'}"
            return
        if rejected:
            plan.resolved_message = (f"{where}: Secret {ns}/{ref.name}: its latest version is invalid ({rejected}); "
                                     "the last valid version is served")
        covered = {n for c in certificates if c.key_type == key_type for n in c.names}
        if any(c.key_type == key_type for c in certificates) and set(names) <= covered:
            # Each name is served by the first certificate of its key type that covers it: this
            # one never would be (the same wildcard certificate copied into several namespaces).
            unused.append(f"{where} (Secret {ns}/{ref.name})")
            continue
        # The file name is the digest alone: no user text in a path nginx may interpolate.
        certificates.append(ir.TLSCertificate(f"cert-{_digest(pair)}", *pair, key_type, names))
    plan.certificates = tuple(certificates)
    if unused:
        plan.resolved_message += (f"; never served, as earlier certificates of their key type cover all their "
                                  f"names: {', '.join(unused)}")


def _dns_names(cert: str) -> tuple[str, ...]:
    """The DNS names the leaf certificate covers: its subjectAltName, else its common name."""
    leaf = x509.load_pem_x509_certificate(cert.encode())
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return tuple(dict.fromkeys(n.lower() for n in names))


def _covers(name: str, host: str) -> bool:
    """Whether a certificate name covers a hostname: equal, or a `*.` name for one more label
    (RFC 6125). A wildcard hostname is covered by the same wildcard name only."""
    if name == host:
        return True
    return name.startswith("*.") and not host.startswith("*.") and host.partition(".")[2] == name[2:]


def certificates_for(certificates: tuple[ir.TLSCertificate, ...], host: str) -> tuple[ir.TLSCertificate, ...]:
    """What a listener serves for `host` ("" for names no virtual host has): per key type, the
    first of its certificates whose names cover the host, else the first one of that key type.
    ingress-nginx chose a host's certificate the same way, by the TLS name."""
    host = host.lower()
    first: dict[str, ir.TLSCertificate] = {}
    covering: dict[str, ir.TLSCertificate] = {}
    for c in certificates:
        first.setdefault(c.key_type, c)
        if host and any(_covers(n, host) for n in c.names):
            covering.setdefault(c.key_type, c)
    return tuple({**first, **covering}.values())


def _key_type(cert: str) -> str:
    """RSA, ECDSA, Ed25519, ... of the certificate's public key (the leaf, first in the chain)."""
    key = x509.load_pem_x509_certificate(cert.encode()).public_key()
    for cls, name in ((rsa.RSAPublicKey, "RSA"), (ec.EllipticCurvePublicKey, "ECDSA"),
                      (ed25519.Ed25519PublicKey, "Ed25519"), (ed448.Ed448PublicKey, "Ed448"),
                      (dsa.DSAPublicKey, "DSA")):
        if isinstance(key, cls):
            return name
    return type(key).__name__


# Listener tls.options wardgate understands (Gateway API leaves the keys to implementations).
OPT_PROFILE = "wardgate.io/tls-profile"
OPT_MIN_VERSION = "wardgate.io/min-version"
OPT_CIPHERS = "wardgate.io/ciphers"
TLS_OPTIONS = (OPT_PROFILE, OPT_MIN_VERSION, OPT_CIPHERS)


def _openssl_suite(name: str) -> tuple[str, str] | None:
    """(key exchange, authentication) of the TLS 1.2 suite called exactly `name`, if OpenSSL knows it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.set_ciphers(name + ":@SECLEVEL=0")
    except ssl.SSLError:
        return None
    found = [(c["kea"], c["auth"]) for c in ctx.get_ciphers() if c["name"] == name and c["protocol"] == "TLSv1.2"]
    return found[0] if found else None


def parse_tls_options(options: dict[str, str]) -> ir.ListenerTLS:
    """The listener's tls.options as settings; ValueError names the option and what is wrong."""
    unknown = sorted(set(options) - set(TLS_OPTIONS))
    if unknown:
        raise ValueError(f"tls.options[{unknown[0]}]: unknown option; wardgate understands "
                         + ", ".join(TLS_OPTIONS))
    profile = options.get(OPT_PROFILE, "intermediate")
    if profile not in ("intermediate", "modern"):
        raise ValueError(f"tls.options[{OPT_PROFILE}]: must be intermediate or modern")
    default_min = "1.3" if profile == "modern" else "1.2"
    min_version = options.get(OPT_MIN_VERSION, default_min)
    if min_version not in ("1.2", "1.3"):
        raise ValueError(f"tls.options[{OPT_MIN_VERSION}]: must be \"1.2\" or \"1.3\"")
    if profile == "modern" and min_version != "1.3":
        raise ValueError(f"tls.options[{OPT_MIN_VERSION}]: the modern profile is TLS 1.3 only")
    if OPT_CIPHERS not in options:
        return ir.ListenerTLS(min_version)  # type: ignore[arg-type]
    if min_version == "1.3":
        raise ValueError(f"tls.options[{OPT_CIPHERS}]: sets TLS 1.2 suites, but this listener offers TLS 1.3 only")
    try:
        names = quoting.check_cipher_names(options[OPT_CIPHERS])
    except ValueError as exc:
        raise ValueError(f"tls.options[{OPT_CIPHERS}]: {exc}") from None
    for name in names:
        suite = _openssl_suite(name)
        if suite is None:
            raise ValueError(f"tls.options[{OPT_CIPHERS}]: {name} is not a TLS 1.2 cipher suite OpenSSL knows")
        # Forward secrecy: ephemeral ECDH only (DHE would need DH parameters nginx isn't given).
        if suite[0] != "kx-ecdhe" or suite[1] not in ("auth-rsa", "auth-ecdsa"):
            raise ValueError(f"tls.options[{OPT_CIPHERS}]: {name} is not forward-secret; only ECDHE-RSA-* "
                             "and ECDHE-ECDSA-* suites are allowed")
    return ir.ListenerTLS("1.2", names)


def _resolve_tls_options(plan: ListenerPlan) -> None:
    tls = plan.listener.tls
    try:
        plan.tls = parse_tls_options(tls.options if tls else {})
    except ValueError as exc:
        plan.accepted, plan.accepted_reason, plan.accepted_message = False, "UnsupportedValue", str(exc)


def _check_port_tls(plans: list[ListenerPlan]) -> None:
    """TLS versions are negotiated before SNI chooses a listener, so HTTPS listeners sharing a
    port must agree on them: the first accepted one sets the port's, others that differ are
    refused rather than silently weakened or tightened."""
    first: dict[int, ListenerPlan] = {}
    for p in plans:
        if p.listener.protocol != "HTTPS" or not p.accepted:
            continue
        owner = first.setdefault(p.listener.port, p)
        if p.tls.min_version != owner.tls.min_version:
            p.accepted, p.accepted_reason = False, "UnsupportedValue"
            p.accepted_message = (f"tls.options[{OPT_MIN_VERSION}]: TLS {p.tls.min_version} differs from "
                                  f"listener {owner.name}'s TLS {owner.tls.min_version} on port {p.listener.port}; "
                                  "TLS versions are chosen per port, before the SNI name is known")


def check_ca_pem(pem: bytes) -> str | None:
    # The reason code only: an exception's text could quote the ConfigMap's data.
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_verify_locations(cadata=pem.decode())
    except ssl.SSLError as exc:
        return f"not a PEM CA certificate ({exc.reason or 'OpenSSL refuses it'})"
    except (ValueError, UnicodeDecodeError):
        return "not a PEM CA certificate"
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
        reason: Reason | None = None
        message = ""
        if ref.group not in ("", "core") or ref.kind != "ConfigMap":
            reason, message = "InvalidCACertificateKind", f"{field}: only core ConfigMaps hold CA certificates"
        elif ns != gw.namespace and not index.grant_allows(GROUP, "Gateway", gw.namespace, "", "ConfigMap", ns,
                                                           ref.name):
            reason, message = "RefNotPermitted", f"{field}: no ReferenceGrant in {ns} allows this Gateway to use it"
        else:
            cm = index.config_map(ns, ref.name)
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
    error: str | None = None
    reason: Reason = "InvalidClientCertificateRef"
    if ref.group not in ("", "core") or ref.kind != "Secret":
        error = f"{where}: only core Secrets are supported, not {ref.group}/{ref.kind}"
    elif ns != gw.namespace and not index.grant_allows(GROUP, "Gateway", gw.namespace, "", "Secret", ns, ref.name):
        error, reason = f"{where}: no ReferenceGrant in {ns} allows this Gateway to use {ref.name}", "RefNotPermitted"
    else:
        secret = index.secret(ns, ref.name)
        cert, key = (secret.value("tls.crt"), secret.value("tls.key")) if secret else (None, None)
        rejected = _rejected_note(index, ns, ref.name)
        if secret is None:
            error = (f"{where}: Secret {ns}/{ref.name} is invalid: {rejected}" if rejected else
                     f"{where}: Secret {ns}/{ref.name} not found")
        elif not cert or not key:
            error = f"{where}: Secret {ns}/{ref.name} lacks tls.crt or tls.key"
        else:
            problem = _check_certificate(secret)
            pair = _pem_pair(secret)
            if problem or pair is None:
                error = f"{where}: Secret {ns}/{ref.name}: {problem or 'not UTF-8 text'}"
            else:
                plan.backend_client_certificate = ir.TLSCertificate(f"client-{_digest(pair)}", *pair)
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
        if lst.protocol == "HTTPS":
            _resolve_tls_options(plan)
        if lst.protocol == "HTTPS" and plan.resolved and plan.accepted:
            _resolve_certificates(gw, plan, index)
        if lst.protocol == "HTTPS" and plan.resolved and plan.accepted:
            _resolve_client_validation(gw, plan, index)
        plans.append(plan)
    _check_port_tls(plans)
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


def gateway_status(plan: GatewayPlan, addresses: list[str], now: str) -> ObjectStatus:
    """The Gateway's status, as if the data plane accepts its configuration: only the data plane
    knows otherwise, and says so through `with_data_plane`."""
    gw = plan.gateway
    gen = gw.metadata.generation
    listeners: list[dict[str, Any]] = []
    any_programmed = False
    for p in plan.listeners:
        prog = p.programmable and plan.accepted
        any_programmed = any_programmed or prog
        prog_reason: Reason
        if prog:
            prog_reason, prog_msg = "Programmed", "Listener is programmed in nginx"
        elif not p.programmable:
            prog_reason, prog_msg = "Invalid", "Listener is not valid"
        else:
            prog_reason, prog_msg = "Pending", _PENDING
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
        "addresses": _addresses(addresses) if plan.accepted else [],
        "conditions": [
            condition("Accepted", plan.accepted, plan.accepted_reason, plan.accepted_message, gen, now),
            condition("Programmed", gw_prog, "Programmed" if gw_prog else "Invalid",
                      "Gateway is programmed in nginx" if gw_prog else _NOT_PROGRAMMED, gen, now),
            condition("ResolvedRefs", plan.resolved, plan.resolved_reason, plan.resolved_message, gen, now),
        ] + ([condition("InsecureFrontendValidationMode", True, "ConfigurationChanged",
                        "client certificates are requested but not required (AllowInsecureFallback)", gen, now)]
             if plan.insecure_fallback else []),
        "listeners": listeners,
    }
    return ObjectStatus("Gateway", gw.namespace, gw.name, gen, status)


_PENDING = "nginx has not accepted the configuration"
_NOT_PROGRAMMED = "Gateway is not programmed"


def _addresses(addresses: list[str]) -> list[dict[str, str]]:
    return [{"type": "IPAddress", "value": a} for a in addresses]


def with_data_plane(st: ObjectStatus, addresses: list[str], programmed: bool) -> ObjectStatus:
    """A Gateway's status from `gateway_status` with what only the data plane knows: the
    addresses it listens on, and whether nginx runs the configuration. When it doesn't, every
    listener translation found programmable is Pending, and so the Gateway is not Programmed.
    Returns a new status; `st` is left as translation made it."""
    accepted = next(c.ok for c in st.status["conditions"] if c.type == "Accepted")
    status = {**st.status, "addresses": _addresses(addresses) if accepted else []}
    if not programmed:
        status["conditions"] = [_unprogrammed(c, "Invalid", _NOT_PROGRAMMED) for c in st.status["conditions"]]
        status["listeners"] = [{**lst, "conditions": [_unprogrammed(c, "Pending", _PENDING) for c in lst["conditions"]]}
                               for lst in st.status["listeners"]]
    return replace(st, status=status)


def _unprogrammed(c: Condition, reason: Reason, message: str) -> Condition:
    if c.type != "Programmed" or not c.ok:
        return c
    return replace(c, status="False", reason=reason, message=message)
