"""The generated certificates (the Secrets and ConfigMaps the Go suite creates) and Go's hostname matching."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wardgate.verify.conformance.corpus import APP_NS, INFRA_NS, WEB_NS, Json


class _Pki:
    """The Secrets and ConfigMaps the Go suite creates before the tests (FORMAT.md table)."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {}
        self.configmaps: dict[tuple[str, str], dict[str, bytes]] = {}
        self._generate()

    def _generate(self) -> None:
        tls_checks_ca = _Cert.authority("tls-checks-ca")
        self.configmaps[(INFRA_NS, "tls-checks-ca-certificate")] = {"ca.crt": tls_checks_ca.pem}
        self._secret(INFRA_NS, "tls-checks-certificate", _Cert.leaf(
            "abc.example.com",
            ["abc.example.com", "spiffe://abc.example.com/test-identity", "other.example.com"],
            tls_checks_ca))
        self._secret(INFRA_NS, "tls-checks-client-certificate",
                     _Cert.leaf("tls-checks-client", [], tls_checks_ca, client=True))
        passthrough = _Cert.leaf("abc.example.com", ["abc.example.com"], tls_checks_ca)
        self._secret(INFRA_NS, "tls-passthrough-checks-certificate", passthrough)
        self._secret(APP_NS, "tls-passthrough-checks-certificate", passthrough)
        self._secret(INFRA_NS, "tls-terminate-checks-certificate",
                     _Cert.self_signed("tls.example.com", ["tls.example.com"]))
        self._secret(WEB_NS, "certificate", _Cert.self_signed("*", ["*"]))
        self._secret(INFRA_NS, "tls-validity-checks-certificate",
                     _Cert.self_signed("*", ["*", "*.org", "*.wildcard.org"]))
        self.configmaps[(WEB_NS, "web-backend-cm")] = {"ca.crt": _Cert.authority("web-backend-ca").pem}
        for prefix in ("tls-validity-checks", "tls-validity-checks-per-port"):
            ca = _Cert.authority(f"{prefix}-ca")
            self.configmaps[(INFRA_NS, f"{prefix}-ca-certificate")] = {"ca.crt": ca.pem}
            self._secret(INFRA_NS, f"{prefix}-client-certificate",
                         _Cert.leaf(f"{prefix}-client", [], ca, client=True))
        self.configmaps[(INFRA_NS, "mismatch-ca-certificate")] = {"ca.crt": _Cert.authority("mismatch-ca").pem}

    def _secret(self, ns: str, name: str, cert: _Cert) -> None:
        self.secrets[(ns, name)] = {"tls.crt": cert.pem, "tls.key": cert.key_pem}

    def resolve(self, ref: str) -> bytes:
        """``secret:<ns>/<name>#<key>`` (or ``configmap:...``) -> the PEM bytes."""
        m = re.fullmatch(r"(secret|configmap):([^/]+)/([^#]+)#(.+)", ref.strip())
        if m is None:
            raise KeyError(f"cannot parse certificate reference {ref!r}")
        store = self.secrets if m.group(1) == "secret" else self.configmaps
        value = store.get((m.group(2), m.group(3)), {}).get(m.group(4))
        if value is None:
            raise KeyError(f"no generated {m.group(1)} {m.group(2)}/{m.group(3)} key {m.group(4)}")
        return value

    def manifests(self) -> list[Json]:
        docs: list[Json] = []
        for (ns, name), data in self.secrets.items():
            docs.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                         "metadata": {"name": name, "namespace": ns},
                         "data": {k: base64.b64encode(v).decode() for k, v in data.items()}})
        for (ns, name), data in self.configmaps.items():
            docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
                         "data": {k: v.decode() for k, v in data.items()}})
        return docs


@dataclass
class _Cert:
    pem: bytes
    key_pem: bytes
    cert: Any
    key: Any

    @staticmethod
    def _build(cn: str, sans: Sequence[str], issuer: _Cert | None, *, ca: bool, server: bool,
               client: bool) -> _Cert:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())  # fast to generate; nginx and OpenSSL take it
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wardgate conformance")])
        now = datetime.datetime.now(datetime.UTC)
        signer_key = issuer.key if issuer else key
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer.cert.subject if issuer else subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       signer_key.public_key()), critical=False))
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        names: list[x509.GeneralName] = []
        for san in sans:
            if "://" in san:
                names.append(x509.UniformResourceIdentifier(san))
            else:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(san)))
                except ValueError:
                    names.append(x509.DNSName(san))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(signer_key, hashes.SHA256())
        return _Cert(cert.public_bytes(serialization.Encoding.PEM),
                     key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()),
                     cert, key)

    @classmethod
    def authority(cls, cn: str) -> _Cert:
        return cls._build(cn, [], None, ca=True, server=False, client=False)

    @classmethod
    def self_signed(cls, cn: str, sans: Sequence[str]) -> _Cert:
        # CA:TRUE so the certificate is a proper trust anchor for the client that verifies against it.
        return cls._build(cn, sans, None, ca=True, server=True, client=False)

    @classmethod
    def leaf(cls, cn: str, sans: Sequence[str], issuer: _Cert, *, client: bool = False) -> _Cert:
        return cls._build(cn, sans, issuer, ca=False, server=not client, client=client)


def go_hostname_matches(cert: Mapping[str, Any], host: str) -> bool:
    """Go's crypto/x509 VerifyHostname on a ``getpeercert()`` dict.

    OpenSSL refuses wildcards with a single label after them (``*.org``), Go accepts them; the suite's
    certificate relies on that, so the name check is done here rather than by ``ssl``.
    """
    sans = cert.get("subjectAltName") or ()
    host = host.strip()
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        ip = None
    if ip is not None:
        return any(typ == "IP Address" and _ip_equal(val, ip) for typ, val in sans)
    host = host.lower().rstrip(".")
    return any(typ == "DNS" and _match_hostname_pattern(str(val).lower().rstrip("."), host)
               for typ, val in sans)


def _ip_equal(text: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text.strip()) == ip
    except ValueError:
        return False


def _match_hostname_pattern(pattern: str, host: str) -> bool:
    if not pattern or not host:
        return False
    if pattern == host:
        return True
    p_labels, h_labels = pattern.split("."), host.split(".")
    # A lone "*" is not a valid pattern for Go, and the wildcard only stands for the leftmost label.
    if len(p_labels) < 2 or len(p_labels) != len(h_labels):
        return False
    return all((i == 0 and p == "*") or p == h for i, (p, h) in enumerate(zip(p_labels, h_labels, strict=True)))
