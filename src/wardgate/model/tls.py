"""Certificate and key material from Secrets, checked so that nothing ever prompts for a pass
phrase and no error ever carries a byte of the material.

OpenSSL, asked to load an encrypted key without a password callback, reads a pass phrase from
the terminal (and holds whoever called it); the `cryptography` library with `password=None`
refuses instead. Messages here are fixed text plus offsets: never the data, never an exception's
text (a UnicodeDecodeError's repr holds the whole input).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = ["decode_pem", "tls_pair_problem"]


def decode_pem(data: bytes) -> tuple[str | None, str | None]:
    """(text, None), or (None, why not) for bytes that are not UTF-8 text."""
    try:
        return data.decode(), None
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 text (invalid byte at offset {exc.start})"


def _load_key(key: bytes) -> tuple[PrivateKeyTypes | None, str | None]:
    try:
        # Without cryptography's RSA key validation: 37 of the 48 ms a pair took (minutes at
        # startup for a cluster's thousands of certificates). The key only has to be readable and
        # match the certificate, checked below; nginx's OpenSSL does the signing, and checks its
        # own results (a corrupted CRT parameter falls back to the plain private exponent).
        return serialization.load_pem_private_key(key, password=None, unsafe_skip_rsa_key_validation=True), None
    except TypeError:  # cryptography's way of saying "this key needs a password"
        return None, "encrypted"
    except (ValueError, UnsupportedAlgorithm):
        return None, "unreadable"


def tls_pair_problem(cert: bytes, key: bytes) -> tuple[str, str] | None:
    """None when `cert` (a PEM chain) and `key` (its unencrypted PEM private key) go together;
    else (which of "tls.crt"/"tls.key", why), the why free of any secret material."""
    for name, data in (("tls.crt", cert), ("tls.key", key)):
        _, problem = decode_pem(data)
        if problem:
            return name, problem
    try:
        chain = x509.load_pem_x509_certificates(cert)
    except ValueError:
        return "tls.crt", "holds no PEM certificate that can be read"
    private, problem = _load_key(key)
    if problem == "encrypted":
        return "tls.key", ("the private key is encrypted (protected by a pass phrase); wardgate needs it "
                           "unencrypted, as Kubernetes TLS Secrets hold it")
    if private is None:
        return "tls.key", "holds no PEM private key that can be read"
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        if chain[0].public_key().public_bytes(*spki) != private.public_key().public_bytes(*spki):
            return "tls.key", "the private key does not match the first certificate in tls.crt"
    except (ValueError, UnsupportedAlgorithm):
        return "tls.crt", "the certificate's public key can't be read"
    return None
