"""TLS: http-level defaults, a server's certificates and versions, client certificates, the
421 check for a Host of another listener than the TLS name, and TLS to backends."""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import Expr, Raw, Text
from wardgate.render.emit import Directive, d, map_entry
from wardgate.render.tables import Tables, var_name

Files = dict[str, str]


def _protocols(min_version: str) -> tuple[Raw, ...]:
    return (Raw("TLSv1.3"),) if min_version == "1.3" else (Raw("TLSv1.2"), Raw("TLSv1.3"))


def http_directives() -> list[Directive]:
    """http-level TLS defaults, inherited by every server, the catch-all default server too."""
    return [
        d("ssl_protocols", *_protocols(ir.ListenerTLS().min_version)),
        d("ssl_ciphers", Raw(":".join(ir.ListenerTLS().ciphers))),
        # Mozilla: let the client pick among suites that are all strong (it knows if it has AES).
        d("ssl_prefer_server_ciphers", Raw("off")),
        d("ssl_ecdh_curve", Raw("X25519:prime256v1:secp384r1")),
        # Resumption through a cache shared by the workers; tickets off, because their keys live
        # until the next reload and would undo forward secrecy for every session until then.
        d("ssl_session_cache", Raw("shared:wg_tls:10m")),
        d("ssl_session_timeout", Raw("1d")),
        d("ssl_session_tickets", Raw("off")),
    ]


def _pem_pair(cert: ir.TLSCertificate) -> str:
    return cert.cert_pem.rstrip("\n") + "\n" + cert.key_pem.rstrip("\n") + "\n"


def server(files: Files, port: ir.Port, vhost: ir.VirtualHost, certs: tuple[ir.TLSCertificate, ...]) -> list[Directive]:
    # Every server of the port, the certificate-less default one too: OpenSSL settles the
    # version with the default server's settings, before SNI switches servers.
    out: list[Directive] = []
    if port.tls_min_version != ir.ListenerTLS().min_version:
        out.append(d("ssl_protocols", *_protocols(port.tls_min_version)))
    if not certs:
        return [*out, d("ssl_reject_handshake", Raw("on"))]
    # One pair per key type: OpenSSL picks the one the client's signature algorithms allow.
    for cert in certs:
        path = f"certs/{cert.name}.pem"
        files[path] = _pem_pair(cert)
        out += [d("ssl_certificate", path), d("ssl_certificate_key", path)]
    # The cipher list, unlike the version, follows the server SNI selects.
    if vhost.tls.ciphers != ir.ListenerTLS().ciphers:
        # Names from the listener's tls.options: a quoted token, like every user string.
        out.append(d("ssl_ciphers", ":".join(vhost.tls.ciphers)))
    if vhost.hsts:
        # headers-more: also on error pages, replacing a backend's own value, and inherited
        # together with the locations' own more_set_headers.
        out.append(d("more_set_headers", Text(f"{STS}: {vhost.hsts}")))
    return out


STS = "Strict-Transport-Security"


def place_hsts(host: str | None, p: ir.Policy | None) -> list[Directive]:
    """A route's or rule's own HSTS where it differs from the host's (`host`: the server's value,
    None on plain HTTP, where none is ever sent). headers-more runs the server's directive first and
    this one after it: a value replaces the host's; "off" puts back the backend's own header, so a
    gateway answer has none. A policy's responseHeaders naming the header decide instead (as they
    do over the host's HSTS)."""
    if host is None or p is None or p.hsts is None or p.hsts == host:
        return []
    ops = p.response_headers
    if any(n.lower() == STS.lower() for n in (*(k for k, _ in (*ops.set, *ops.add)), *ops.remove)):
        return []
    if p.hsts:
        return [d("more_set_headers", Text(f"{STS}: {p.hsts}"))]
    return [d("more_set_headers", Expr((f"{STS}: ", Raw("$upstream_http_strict_transport_security"))))]


def client_validation(files: Files, cv: ir.ClientValidation) -> list[Directive]:
    path = f"certs/{cv.name}.pem"
    files[path] = cv.ca_pem
    out = [d("ssl_client_certificate", path), d("ssl_verify_depth", 4)]
    if cv.insecure_fallback:
        return [*out, d("ssl_verify_client", Raw("optional_no_ca"))]
    # nginx answers a missing or bad client certificate with an HTTP 400 (codes 495/496);
    # closing the connection instead (444) refuses it at the transport, as clients expect.
    return [*out, d("ssl_verify_client", Raw("on")), d("error_page", 495, 496, Raw("@wg_client_cert")),
            Directive("location", (Raw("@wg_client_cert"),), [d("return", 444)])]


def sni_listener_check(tables: Tables, port: ir.Port, vhost: ir.VirtualHost) -> Directive:
    """421 when the TLS name chose another listener than the Host header: HTTP/2 connection reuse
    or a confused client. RFC 9110 says 421, and the client retries."""
    var = var_name("wg_sni", port.port)
    node = Directive("map", (Raw("$ssl_server_name"), Raw("$" + var)), [d("hostnames")])
    assert node.block is not None
    for host, name in port.listeners:
        # map values and `if` operands interpolate `$`: user-named listeners go in as Text.
        node.block.append(d("default", Text(name)) if not host else map_entry(host, Text(name)))
    ref = tables.add(var, node)
    return Directive("if", (Raw("("), ref, Raw("!="), Text(vhost.listener), Raw(")")), [d("return", 421)])


def backend(files: Files, tls: ir.UpstreamTLS, system_ca_file: str, module: str = "proxy") -> list[Directive]:
    """TLS to a backend: proxy_ssl_* for proxy_pass, grpc_ssl_* for grpc_pass."""
    if not tls.verify:
        # IngressNginxCompat backendTLS: encrypted, but any certificate is accepted and no SNI is
        # sent, as ingress-nginx's backend-protocol HTTPS did. Written out so the config says so.
        out = [d(f"{module}_ssl_server_name", Raw("off")), d(f"{module}_ssl_verify", Raw("off")),
               d(f"{module}_ssl_session_reuse", Raw("on"))]
    else:
        out = [d(f"{module}_ssl_server_name", Raw("on")), d(f"{module}_ssl_name", tls.server_name),
               d(f"{module}_ssl_verify", Raw("on")), d(f"{module}_ssl_verify_depth", 4),
               d(f"{module}_ssl_session_reuse", Raw("on"))]
        if tls.ca_pem is not None and tls.ca_name is not None:
            path = f"certs/{tls.ca_name}.pem"
            files[path] = tls.ca_pem
            out.append(d(f"{module}_ssl_trusted_certificate", path))
        else:
            out.append(d(f"{module}_ssl_trusted_certificate", system_ca_file))
    cert = tls.client_certificate
    if cert is not None:
        path = f"certs/{cert.name}.pem"
        files[path] = _pem_pair(cert)
        out += [d(f"{module}_ssl_certificate", path), d(f"{module}_ssl_certificate_key", path)]
    return out
