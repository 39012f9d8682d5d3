"""SecurityPolicy basicAuth, externalAuth and errorPages: the Secrets and Services they name,
checked and resolved into the IR.

A policy whose Secret or auth Service can't be used fails closed: its requests get 500 and its
status says why (ResolvedRefs=False). An error-page Service that can't be used leaves answers as
they are. Errors name the Secret, the key and the line, never a password hash.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from wardgate import ir
from wardgate.model.core import Secret
from wardgate.model.gatewayapi import BackendObjectReference
from wardgate.model.policies import (
    POLICY_GROUP,
    BasicAuth,
    ErrorPages,
    ExternalAuth,
    Policy,
    PolicyHeader,
    ServiceBackendRef,
)
from wardgate.translate.index import Index
from wardgate.translate.routes import Backend, resolve_service

# Password hashes nginx's auth_basic checks here (Debian's nginx: its own apr1 and {SHA}/{SSHA}
# code, and libxcrypt's crypt() for the rest). Tested in tests/test_auth_basic.py against nginx.
_B64 = "[./0-9A-Za-z]"
HASH_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("apr1", re.compile(rf"\$apr1\$[^$:]{{1,8}}\${_B64}{{22}}")),
    ("bcrypt", re.compile(rf"\$2[aby]\$[0-9]{{2}}\${_B64}{{53}}")),
    ("sha512-crypt", re.compile(rf"\$6\$(rounds=[0-9]+\$)?[^$:]{{1,16}}\${_B64}{{86}}")),
    ("sha256-crypt", re.compile(rf"\$5\$(rounds=[0-9]+\$)?[^$:]{{1,16}}\${_B64}{{43}}")),
    ("yescrypt", re.compile(rf"\$y\${_B64}+\${_B64}+\${_B64}{{43}}")),
    ("md5-crypt", re.compile(rf"\$1\$[^$:]{{1,8}}\${_B64}{{22}}")),
    ("SSHA", re.compile(r"\{SSHA\}[A-Za-z0-9+/]{28,}={0,2}")),
    ("SHA", re.compile(r"\{SHA\}[A-Za-z0-9+/]{27}=")),
    ("PLAIN", re.compile(r"\{PLAIN\}[^\s:]+")),
    ("des-crypt", re.compile(rf"{_B64}{{13}}")),
)
# Accepted, with a warning in the policy's status: easy to crack or stored as is.
WEAK = {"SHA": "unsalted SHA-1", "PLAIN": "a plain-text password", "des-crypt": "DES crypt (8 characters count)",
        "md5-crypt": "MD5 crypt"}
SUPPORTED = ("apr1 ($apr1$, `htpasswd -m`), bcrypt ($2y$, `htpasswd -B`), SHA-512/SHA-256 crypt ($6$, $5$), "
             "yescrypt ($y$), MD5 crypt ($1$), {SHA}, {SSHA}, {PLAIN} or DES crypt")
_USER_BAD = re.compile(r"[\x00-\x1f\x7f:]")


class UsersError(ValueError):
    """An htpasswd Secret that can't be used; the message names the field and line, not the hash."""


def hash_format(value: str) -> str | None:
    """The name of the password hash format of `value`, None if nginx can't check it."""
    for name, rx in HASH_FORMATS:
        if rx.fullmatch(value):
            if name == "SSHA" and not _ssha_ok(value[6:]):
                return None
            return name
    return None


def _ssha_ok(b64: str) -> bool:
    try:
        return len(base64.b64decode(b64, validate=True)) > 20  # a SHA-1 digest and a salt
    except (binascii.Error, ValueError):
        return False


def _check_user(user: str, where: str) -> None:
    if not user or len(user) > 256 or _USER_BAD.search(user):
        raise UsersError(f"{where}: a user name must be 1-256 printable characters without ':'")


def _check_hash(value: str, where: str, weak: dict[str, str]) -> None:
    fmt = hash_format(value)
    if fmt is None:
        raise UsersError(f"{where}: the password is not in a hash format nginx checks; use {SUPPORTED}")
    if fmt in WEAK:
        weak.setdefault(fmt, where)


def htpasswd_users(text: str, field_path: str, weak: dict[str, str]) -> list[tuple[str, str]]:
    """(user, hash) per line of an htpasswd file; `weak` collects weak formats and where."""
    users: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r")
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, rest = line.partition(":")
        where = f"{field_path} line {n}"
        if not sep:
            raise UsersError(f"{where}: expected user:hash")
        _check_user(user, where)
        if user in seen:
            raise UsersError(f"{where}: user {user!r} is already on line {seen[user]}")
        seen[user] = n
        hashed = rest.split(":", 1)[0]  # nginx reads the hash up to the next ':'
        _check_hash(hashed, f"{where} (user {user!r})", weak)
        users.append((user, hashed))
    return users


def read_users(secret: Secret, basic: BasicAuth, weak: dict[str, str]) -> str:
    """The htpasswd text nginx reads for `basic`, one `user:hash` line per user."""
    users: list[tuple[str, str]] = []
    if basic.format == "Htpasswd":
        key = basic.key or "auth"
        where = secret.field_of(key)
        data = secret.value(key)
        if data is None:
            missing = key not in secret.data and key not in secret.string_data
            raise UsersError(f"{where}: " + ("is missing" if missing else "is not valid base64"))
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            raise UsersError(f"{where}: is not UTF-8 text (invalid byte at offset {exc.start})") from None
        users = htpasswd_users(text, where, weak)
    else:
        for key in sorted({*secret.data, *secret.string_data}):
            where = secret.field_of(key)
            data = secret.value(key)
            try:
                value = data.decode().strip() if data is not None else None
            except UnicodeDecodeError:
                value = None
            if not value:
                raise UsersError(f"{where}: expected a password hash (UTF-8 text, valid base64)")
            _check_user(key, where)
            _check_hash(value, f"{where} (user {key!r})", weak)
            users.append((key, value))
    if not users:
        raise UsersError(f"Secret {secret.namespace}/{secret.name} has no users")
    return "".join(f"{u}:{h}\n" for u, h in users)


@dataclass
class PolicyServices:
    """Upstreams for the Services policies send requests to (auth services, error pages), one per
    Service port and Gateway, named apart from the routes' upstreams."""

    upstreams: dict[tuple[str, str, int], ir.Upstream] = field(default_factory=dict)

    def upstream(self, b: Backend) -> str | None:
        if b.policy is not None and b.tls is None:
            return None  # an invalid BackendTLSPolicy: never fall back to plain text
        key = (b.namespace, b.service, b.port)
        up = self.upstreams.get(key)
        if up is None:
            up = ir.Upstream(f"wg_p{len(self.upstreams)}", b.endpoints, "http", b.tls, b.service, b.port)
            self.upstreams[key] = up
        return up.name


@dataclass
class Resolved:
    """What resolving one policy's references found: problems for the status and the log."""

    problems: list[tuple[str, str]] = field(default_factory=list)  # (field path, message)
    warnings: list[str] = field(default_factory=list)


def basic_auth(basic: BasicAuth, pol: Policy, secret: Secret | None, out: Resolved) -> ir.BasicAuth:
    key = f"{pol.namespace}/{basic.secret_ref.name}#{basic.format}:{basic.key or 'auth'}"
    if secret is None:
        out.problems.append(("spec.basicAuth.secretRef",
                             f"Secret {pol.namespace}/{basic.secret_ref.name} does not exist; every request "
                             "answers 500"))
        return ir.BasicAuth(basic.realm, key, None)
    weak: dict[str, str] = {}
    try:
        users = read_users(secret, basic, weak)
    except UsersError as exc:
        out.problems.append(("spec.basicAuth.secretRef",
                             f"Secret {secret.namespace}/{secret.name} {exc}; every request answers 500"))
        return ir.BasicAuth(basic.realm, key, None)
    out.warnings += [f"basicAuth: {where} uses {WEAK[fmt]}: prefer bcrypt (htpasswd -B)" for fmt, where in
                     weak.items()]
    return ir.BasicAuth(basic.realm, key, users)


def _service(ref: ServiceBackendRef, pol: Policy, index: Index, services: PolicyServices, field_path: str,
             out: Resolved) -> str | None:
    port = ref.port
    svc = index.service(ref.namespace or pol.namespace, ref.name)
    if port is None and svc is not None and svc.spec.ports:
        port = svc.spec.ports[0].port  # the first port, as ingress-nginx's default-backend
    plain = BackendObjectReference(name=ref.name, namespace=ref.namespace, port=port)
    res = resolve_service(plain, (POLICY_GROUP, pol.kind, pol.namespace), index, field_path)
    if not isinstance(res, Backend):
        out.problems.append((res.field, res.detail))
        return None
    name = services.upstream(res)
    if name is None:
        out.problems.append((field_path, f"the BackendTLSPolicy of Service {res.namespace}/{res.service} is invalid"))
    return name


def external_auth(ea: ExternalAuth, pol: Policy, index: Index, services: PolicyServices, out: Resolved,
                  header_value: Callable[[PolicyHeader], ir.HeaderValue]) -> ir.ExternalAuth:
    upstream = _service(ea.backend_ref, pol, index, services, "spec.externalAuth.backendRef", out)
    if upstream is None:
        out.problems[-1] = (out.problems[-1][0], out.problems[-1][1] + "; every request answers 500")
    ns = ea.backend_ref.namespace or pol.namespace
    return ir.ExternalAuth(
        upstream, ea.path, ea.hostname or f"{ea.backend_ref.name}.{ns}.svc.cluster.local", ea.method or "GET",
        tuple((h.name, header_value(h)) for h in ea.request_headers),
        tuple(ea.response_headers) if upstream is not None else (),
        ea.signin.url if ea.signin else None, ea.signin.redirect_param if ea.signin else "rd")


def error_pages(ep: ErrorPages, pol: Policy, index: Index, services: PolicyServices, out: Resolved,
                header_value: Callable[[PolicyHeader], ir.HeaderValue]) -> ir.ErrorPages:
    upstream = _service(ep.backend_ref, pol, index, services, "spec.errorPages.backendRef", out)
    if upstream is None:
        out.problems[-1] = (out.problems[-1][0], out.problems[-1][1] + "; answers are passed on as they are")
    return ir.ErrorPages(upstream, tuple(ep.statuses), ep.no_endpoints,
                         tuple((h.name, header_value(h)) for h in ep.request_headers))


__all__ = ["HASH_FORMATS", "PolicyServices", "Resolved", "UsersError", "basic_auth", "error_pages", "external_auth",
           "hash_format", "htpasswd_users", "read_users"]
