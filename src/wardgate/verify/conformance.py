"""Gateway API conformance harness: replays a conformance corpus against a standalone wardgate.

The corpus (see FORMAT.md next to it) is a transcription of the kubernetes-sigs Go suite: manifests,
status checks and HTTP round trips with the pass rules of the Go helpers. Here there is no cluster, so
the harness plays its parts itself: it runs echo backends for the Deployments (one loopback IP per
pod), writes the EndpointSlices and the Secrets/ConfigMaps the Go suite would create, drives a
``Runner`` over a working directory of manifests, and judges status and traffic like the Go suite.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import copy
import datetime
import gzip
import hashlib
import http.client
import ipaddress
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from wardgate import CONTROLLER_NAME
from wardgate.runner import Runner, RunnerOptions
from wardgate.verify.conformance_mutations import (
    Mutation,
    MutationError,
    apply_mutation,
    find_object,
    parse_mutation,
)
from wardgate.verify.echo import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WS_MAX_MESSAGE,
    EchoIdentity,
    EchoServer,
    WebSocketProtocolError,
    WebSocketReader,
    encode_ws_frame,
    go_canonical_header,
    parse_ws_close,
    websocket_accept,
    ws_close_payload,
)

__all__ = [
    "SUPPORTED_FEATURES",
    "ConformanceOptions",
    "RequestError",
    "RoundTrip",
    "WebSocketClient",
    "WebSocketClosed",
    "WebSocketHandshakeError",
    "compare_round_trip",
    "evaluate_status_check",
    "go_hostname_matches",
    "parse_redirect",
    "run_conformance",
    "websocket_exchange",
    "websocket_round_trip",
]

# The features wardgate claims; tests needing any other feature are skipped. Maintained by the lead.
SUPPORTED_FEATURES: frozenset[str] = frozenset({
    "Gateway",
    "HTTPRoute",
    "ReferenceGrant",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteDestinationPortMatching",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "HTTPRouteCORS",
    "HTTPRouteRetry",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
    "BackendTLSPolicy",
    "GatewayBackendClientCertificate",
    "HTTPRouteRequestTimeout",
    "HTTPRouteParentRefPort",
    "GatewayPort8080",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteBackendRequestHeaderModification",
    "GatewayHTTPListenerIsolation",
    "HTTPRouteBackendProtocolWebSocket",
})

GATEWAY_CLASS_NAME = "wardgate"
REQUIRED_SUCCESSES = 3  # Go RequiredConsecutiveSuccesses
RETRY_DELAY_S = 1.0
REQUEST_TIMEOUT_S = 10.0
MAX_REDIRECTS = 10
MIRROR_WAIT_S = 10.0
STATUS_POLL_S = 0.1
CASE_WORKERS = 8  # cases of one test run in parallel, as the Go suite allows
REDIRECT_CODES = frozenset({300, 301, 302, 303, 304, 305, 307, 308})
FOLLOWED_REDIRECTS = frozenset({301, 302, 303, 307, 308})  # what Go's http.Client follows
MIRROR_ID_PARAM = "gateway-api-conformance-request-id"
ROOT_NOTE = "port_offset={offset}: redirect and port expectations need root (port_offset 0)"

INFRA_NS = "gateway-conformance-infra"
WEB_NS = "gateway-conformance-web-backend"
APP_NS = "gateway-conformance-app-backend"

# echo-basic's fixed ports (overridable by the HTTP_PORT / HTTPS_PORT env of the Deployment).
ECHO_HTTP_PORT = 3000
ECHO_HTTPS_PORT = 8443

STATUS_CHECKS = frozenset({
    "GatewayAndHTTPRoutesMustBeAccepted", "GatewayAndRoutesMustBeAccepted",
    "HTTPRouteMustHaveResolvedRefsConditionsTrue", "HTTPRouteMustHaveCondition",
    "HTTPRouteMustHaveNoAcceptedParents", "HTTPRouteMustHaveParents",
    "HTTPRouteMustHaveLatestConditions", "GatewayMustHaveLatestConditions",
    "GatewayClassMustHaveLatestConditions", "GatewayMustHaveCondition", "GatewayStatusMustHaveListeners",
    "GatewayListenerMustHaveConditions", "GatewayMustHaveZeroRoutes", "GatewayMustHaveAddress",
    "GWCMustHaveAcceptedConditionAny", "BackendTLSPolicyMustHaveAcceptedConditionTrue",
    "NamespacesMustBeReady", "Mutation",
})
DISTRIBUTIONS = frozenset({"weightedBackends", "backendHeaderMatchesPod", "mirrorPercentage"})

Json = dict[str, Any]


@dataclass
class ConformanceOptions:
    corpus: Path
    only: list[str] = field(default_factory=list)
    workdir: Path | None = None
    case_timeout_s: float = 15.0
    status_timeout_s: float = 10.0
    port_offset: int | None = None  # None: 0 when running as root, else 20000


# =============================================================================== certificates


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


# =============================================================================== HTTP client


class RequestError(Exception):
    """The round trip failed below HTTP: connect, TLS, protocol, timeout."""


@dataclass(frozen=True)
class TlsSettings:
    server_name: str
    ca_pem: bytes
    client_cert_file: str | None = None
    client_key_file: str | None = None


@dataclass
class Outgoing:
    method: str
    scheme: str  # "http" / "https"
    authority: str  # the URL's host[:port]: the gateway address
    path: str  # path + "?" + raw query, exactly as sent
    host: str  # Host header / :authority
    headers: list[tuple[str, str]]
    protocol: str | None = None  # None, HTTPS, H2, H2C_PRIOR_KNOWLEDGE
    follow_redirects: bool = True
    tls: TlsSettings | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


@dataclass
class RoundTrip:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    url: str  # the URL of the request that produced this response (after redirects)
    protocol: str = "HTTP/1.1"


_ctx_cache: dict[tuple[bytes, str | None, str | None, tuple[str, ...]], ssl.SSLContext] = {}
_ctx_lock = threading.Lock()


def _ssl_context(tls: TlsSettings, alpn: tuple[str, ...]) -> ssl.SSLContext:
    key = (tls.ca_pem, tls.client_cert_file, tls.client_key_file, alpn)
    with _ctx_lock:
        ctx = _ctx_cache.get(key)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False  # checked with Go's rules after the handshake
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=tls.ca_pem.decode())
            if tls.client_cert_file:
                ctx.load_cert_chain(tls.client_cert_file, tls.client_key_file)
            ctx.set_alpn_protocols(list(alpn))
            _ctx_cache[key] = ctx
        return ctx


def _split_host_port(authority: str) -> tuple[str, str]:
    """``host[:port]`` -> (host without brackets, port or "")."""
    if authority.startswith("["):
        end = authority.find("]")
        host, rest = authority[1:end], authority[end + 1:]
        return host, rest[1:] if rest.startswith(":") else ""
    if authority.count(":") == 1:
        host, _, port = authority.partition(":")
        return host, port
    return authority, ""


def _join_host_port(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def _connect_address(authority: str, scheme: str, gateway_ip: str, port_offset: int) -> tuple[str, int]:
    host, port_text = _split_host_port(authority)
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        # There is no cluster DNS: names (a redirect to http://example.org/) resolve to the gateway.
        return gateway_ip, port + port_offset
    if not ip.is_loopback:
        raise RequestError(f"refusing to connect to non-loopback address {host}")
    return host, port + port_offset


def _open(out: Outgoing, gateway_ip: str, port_offset: int, timeout_s: float) -> socket.socket:
    addr = _connect_address(out.authority, out.scheme, gateway_ip, port_offset)
    try:
        sock = socket.create_connection(addr, timeout=timeout_s)
    except OSError as exc:
        raise RequestError(f"connect {addr[0]}:{addr[1]}: {exc}") from None
    if out.scheme != "https":
        return sock
    if out.tls is None:
        sock.close()
        raise RequestError("https request without TLS settings (no trust anchor)")
    alpn = ("h2",) if out.protocol == "H2" else ("http/1.1",)
    try:
        ctx = _ssl_context(out.tls, alpn)
        tls_sock = ctx.wrap_socket(sock, server_hostname=out.tls.server_name or None)
    except (OSError, ValueError) as exc:
        sock.close()
        raise RequestError(f"TLS handshake: {exc}") from None
    if not go_hostname_matches(tls_sock.getpeercert() or {}, out.tls.server_name):
        tls_sock.close()
        raise RequestError(f"x509: certificate is not valid for {out.tls.server_name!r}")
    if out.protocol == "H2" and tls_sock.selected_alpn_protocol() != "h2":
        tls_sock.close()
        raise RequestError(f"server did not negotiate h2 (ALPN {tls_sock.selected_alpn_protocol()!r})")
    return tls_sock


def _h1_exchange(sock: socket.socket, out: Outgoing) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection("harness.invalid")
    conn.sock = sock
    try:
        conn.putrequest(out.method, out.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", out.host)
        conn.putheader("User-Agent", "Go-http-client/1.1")
        for name, value in out.headers:
            conn.putheader(name, value)
        conn.putheader("Connection", "close")  # Go sends it when keep-alives are disabled
        conn.putheader("Accept-Encoding", "gzip")  # Go's transport adds it and decodes transparently
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, list(resp.getheaders()), body
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise RequestError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()


def _h2_exchange(sock: socket.socket, out: Outgoing, timeout_s: float) -> tuple[int, list[tuple[str, str]], bytes]:
    try:
        import h2.config
        import h2.connection
        import h2.events
        import h2.exceptions
    except ImportError:
        raise RequestError("HTTP/2 requests need the 'h2' package") from None
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    headers = [(":method", out.method), (":scheme", out.scheme), (":authority", out.host),
               (":path", out.path), ("user-agent", "Go-http-client/2.0"), ("accept-encoding", "gzip")]
    headers += [(name.lower(), value) for name, value in out.headers]
    status = 0
    resp_headers: list[tuple[str, str]] = []
    body = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, headers, end_stream=True)
        sock.sendall(conn.data_to_send())
        while True:
            if time.monotonic() > deadline:
                raise RequestError("HTTP/2 response timed out")
            data = sock.recv(65536)
            if not data:
                raise RequestError("connection closed before the HTTP/2 response ended")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    for name, value in event.headers or []:
                        n, v = (name.decode() if isinstance(name, bytes) else name,
                                value.decode() if isinstance(value, bytes) else value)
                        if n == ":status":
                            status = int(v)
                        elif not n.startswith(":"):
                            resp_headers.append((n, v))
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                    body += event.data or b""
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    raise RequestError(f"HTTP/2 stream reset (error code {event.error_code})")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    if not status:
                        raise RequestError(f"HTTP/2 GOAWAY (error code {event.error_code})")
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    return status, resp_headers, bytes(body)
            pending = conn.data_to_send()
            if pending:
                sock.sendall(pending)
    except (OSError, h2.exceptions.H2Error, ValueError) as exc:
        raise RequestError(f"HTTP/2: {type(exc).__name__}: {exc}") from None


def _one_exchange(out: Outgoing, gateway_ip: str, port_offset: int, timeout_s: float) -> RoundTrip:
    sock = _open(out, gateway_ip, port_offset, timeout_s)
    try:
        if out.protocol in ("H2", "H2C_PRIOR_KNOWLEDGE"):
            status, headers, body = _h2_exchange(sock, out, timeout_s)
            proto = "HTTP/2.0"
        else:
            status, headers, body = _h1_exchange(sock, out)
            proto = "HTTP/1.1"
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    if (_header(headers, "content-encoding") or "").lower() == "gzip":
        # Go decompresses what it asked gzip for, and drops the two headers that described the wire form.
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise RequestError(f"bad gzip body: {exc}") from None
        headers = [(n, v) for n, v in headers if n.lower() not in ("content-encoding", "content-length")]
    return RoundTrip(status, headers, body, out.url, proto)


def send(out: Outgoing, port_offset: int = 0, timeout_s: float = REQUEST_TIMEOUT_S) -> RoundTrip:
    """One request the way the Go suite's round tripper makes it: a fresh connection, Go's redirects."""
    if out.protocol == "websocket":
        raise RequestError("websocket requests are made by websocket_round_trip, not send()")
    gateway_ip, _ = _split_host_port(out.authority)
    original_host = out.host
    current = out
    for hop in range(MAX_REDIRECTS + 1):
        rt = _one_exchange(current, gateway_ip, port_offset, timeout_s)
        location = _header(rt.headers, "location")
        if not out.follow_redirects or rt.status not in FOLLOWED_REDIRECTS or not location:
            return rt
        if hop == MAX_REDIRECTS:
            raise RequestError(f"stopped after {MAX_REDIRECTS} redirects")
        target = urllib.parse.urljoin(current.url, location)
        parts = urllib.parse.urlsplit(target)
        if parts.scheme not in ("http", "https"):
            raise RequestError(f"redirect to unsupported URL {target!r}")
        method = current.method
        if rt.status in (301, 302, 303) and method not in ("GET", "HEAD"):
            method = "GET"
        # Go keeps a custom Host only across relative redirects; an absolute one sets Host from the URL.
        relative = not urllib.parse.urlsplit(location).netloc
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        current = Outgoing(method, parts.scheme, parts.netloc, path,
                           original_host if relative else parts.netloc, current.headers, current.protocol,
                           True, current.tls)
    raise RequestError("unreachable")  # pragma: no cover


# =============================================================================== WebSocket client


class WebSocketHandshakeError(RequestError):
    """The server answered the opening handshake, but not with an acceptable 101."""

    def __init__(self, message: str, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.body = body


class WebSocketClosed(RequestError):
    """The server sent a close frame where a message was expected."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"the server closed the WebSocket (code {code}, reason {reason!r})")
        self.code = code
        self.reason = reason


_WS_MAX_HEADER_LINE = 65536
_WS_MAX_ERROR_BODY = 65536


class WebSocketClient:
    """A small RFC 6455 client over an open (plain or TLS) socket; no extensions, no subprotocols.

    ``connect()`` dials and runs the opening handshake; ``send_text``/``send_binary``/``ping`` send masked
    frames; ``receive()`` returns the next whole message, answering pings; ``close()`` runs the close
    handshake. Socket and protocol failures surface as ``RequestError``.
    """

    def __init__(self, sock: socket.socket, timeout_s: float = REQUEST_TIMEOUT_S,
                 max_message: int = WS_MAX_MESSAGE) -> None:
        sock.settimeout(timeout_s)
        self.sock = sock
        # One buffered reader for the handshake and the frames: bytes right after the 101 are not lost.
        self._fp = sock.makefile("rb")
        self._reader = WebSocketReader(self._fp.read, masked=False, max_message=max_message)
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.close_sent = False
        self.peer_close: tuple[int | None, str] | None = None
        self.server_closed_tcp = False

    @classmethod
    def connect(cls, host: str, port: int, path: str = "/", *, host_header: str | None = None,
                origin: str | None = None, headers: Sequence[tuple[str, str]] = (),
                timeout_s: float = REQUEST_TIMEOUT_S) -> WebSocketClient:
        """Dial ``ws://host:port`` (cleartext) and run the opening handshake for ``path``."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise RequestError(f"connect {host}:{port}: {exc}") from None
        client = cls(sock, timeout_s)
        try:
            client.handshake(path, host_header or _join_host_port(host, port), origin=origin, headers=headers)
        except BaseException:
            client.abort()
            raise
        return client

    def __enter__(self) -> WebSocketClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.abort()

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except WebSocketProtocolError as exc:
            self._fail(exc.code, exc.message)
            raise RequestError(f"{what}: the server broke the WebSocket protocol: {exc.message} "
                               f"(closed with {exc.code})") from None
        except EOFError as exc:
            raise RequestError(f"{what}: {exc}") from None
        except OSError as exc:
            raise RequestError(f"{what}: {type(exc).__name__}: {exc}") from None

    def handshake(self, path: str, host: str, *, origin: str | None = None,
                  headers: Sequence[tuple[str, str]] = ()) -> None:
        """Send the opening handshake (RFC 6455 §4.1) and check the server's 101 answer."""
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if origin is not None:
            lines.append(f"Origin: {origin}")
        lines += [f"{name}: {value}" for name, value in headers]
        if any(c in line for line in lines for c in "\r\n\0"):
            raise ValueError("CR, LF or NUL in the WebSocket handshake")
        with self._errors("WebSocket handshake"):
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
            status_line = self._fp.readline(_WS_MAX_HEADER_LINE + 1)
            if not status_line:
                raise RequestError("WebSocket handshake: the connection closed before a response")
            parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not (parts[1].isascii() and parts[1].isdigit()):
                raise RequestError(f"WebSocket handshake: malformed status line {status_line[:100]!r}")
            self.status = int(parts[1])
            try:
                message = http.client.parse_headers(self._fp)
            except http.client.HTTPException as exc:
                raise RequestError(f"WebSocket handshake: bad response headers: {exc}") from None
            self.headers = list(message.items())
            if self.status != 101:
                body = self._error_body()
                snippet = " ".join(body[:400].decode("utf-8", "replace").split())[:160]
                raise WebSocketHandshakeError(
                    f"expected 101 Switching Protocols, got {' '.join(parts)}" + (f" ({snippet!r})" if snippet else ""),
                    self.status, self.headers, body)
        problem = self._check_101(key)
        if problem:
            raise WebSocketHandshakeError(f"unacceptable 101 answer: {problem}", 101, self.headers, b"")

    def _error_body(self) -> bytes:
        length = _header(self.headers, "content-length") or ""
        if not (length.isascii() and length.isdigit()):
            return b""
        return self._fp.read(min(int(length), _WS_MAX_ERROR_BODY))

    def _check_101(self, key: str) -> str | None:
        def tokens(name: str) -> set[str]:
            return {t.strip().lower() for v in _header_values(self.headers, name) or [] for t in v.split(",")}

        if "websocket" not in tokens("upgrade"):
            return f"Upgrade is {_header(self.headers, 'upgrade')!r}, not websocket"
        if "upgrade" not in tokens("connection"):
            return f"Connection is {_header(self.headers, 'connection')!r}, without upgrade"
        accept = _header_values(self.headers, "sec-websocket-accept") or []
        if accept != [websocket_accept(key)]:
            return f"Sec-WebSocket-Accept is {accept}, expected {websocket_accept(key)!r}"
        for name in ("Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"):  # none was offered
            if _header(self.headers, name) is not None:
                return f"{name} {_header(self.headers, name)!r} was not asked for"
        return None

    def send(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        """One frame, masked with a fresh key as RFC 6455 §5.3 asks of clients."""
        with self._errors("WebSocket send"):
            self.sock.sendall(encode_ws_frame(opcode, payload, fin=fin, mask_key=os.urandom(4)))

    def send_text(self, text: str) -> None:
        self.send(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self.send(OP_BINARY, data)

    def ping(self, payload: bytes = b"") -> None:
        self.send(OP_PING, payload)

    def next_event(self) -> tuple[int, bytes]:
        """The next whole message or control frame, as it arrives; pings are not answered here."""
        with self._errors("WebSocket receive"):
            event = self._reader.next_event()
        if event is None:
            self.server_closed_tcp = True
            raise RequestError("WebSocket receive: the connection closed without a close frame")
        return event

    def receive(self) -> tuple[str, bytes]:
        """The next message as ("text" | "binary", payload); pings are answered and pongs skipped."""
        while True:
            opcode, payload = self.next_event()
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                code, reason = self._on_close(payload)
                raise WebSocketClosed(code, reason)
            elif opcode in (OP_TEXT, OP_BINARY):
                return ("text" if opcode == OP_TEXT else "binary"), payload

    def _on_close(self, payload: bytes) -> tuple[int | None, str]:
        with self._errors("WebSocket close"):
            self.peer_close = parse_ws_close(payload)
        if not self.close_sent:  # the server started the close handshake: answer with its code
            self.close_sent = True
            with contextlib.suppress(RequestError):
                self.send(OP_CLOSE, ws_close_payload(self.peer_close[0]))
        return self.peer_close

    def close(self, code: int = 1000, reason: str = "") -> tuple[int | None, str]:
        """Run the close handshake and return the server's (code, reason).

        Messages still arriving are dropped. Afterwards ``server_closed_tcp`` tells whether the server
        then closed the connection, as RFC 6455 §7.1.1 asks of it.
        """
        try:
            if not self.close_sent:
                self.close_sent = True
                self.send(OP_CLOSE, ws_close_payload(code, reason))
            while self.peer_close is None:
                opcode, payload = self.next_event()
                if opcode == OP_CLOSE:
                    self._on_close(payload)
            with contextlib.suppress(OSError):
                self.server_closed_tcp = self._fp.read(1) == b""
            return self.peer_close
        finally:
            self.abort()

    def _fail(self, code: int, reason: str) -> None:
        if not self.close_sent:
            self.close_sent = True
            with contextlib.suppress(OSError):
                self.sock.sendall(encode_ws_frame(OP_CLOSE, ws_close_payload(code, reason), mask_key=os.urandom(4)))

    def abort(self) -> None:
        """Drop the connection without a close handshake (after one, it just releases the socket)."""
        with contextlib.suppress(OSError):
            self._fp.close()
        with contextlib.suppress(OSError):
            self.sock.close()


def websocket_exchange(spec: Mapping[str, Any]) -> list[tuple[int, bytes, bool]]:
    """A case's ``websocket`` object -> [(opcode, payload, expect the echo)]; ValueError if it cannot be sent."""
    items = spec.get("exchange")
    if not isinstance(items, list) or not items:
        raise ValueError("the websocket object has no exchange")
    out: list[tuple[int, bytes, bool]] = []
    for i, item in enumerate(items):
        send = item.get("send") if isinstance(item, dict) else None
        if not isinstance(send, dict):
            raise ValueError(f"websocket exchange {i}: no 'send' object")
        kind, data = send.get("type"), send.get("data")
        if kind == "text" and isinstance(data, str):
            out.append((OP_TEXT, data.encode("utf-8"), bool(item.get("expectEcho", True))))
        elif kind == "binary" and isinstance(data, list) and all(
                isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in data):
            out.append((OP_BINARY, bytes(data), bool(item.get("expectEcho", True))))
        else:
            raise ValueError(f"websocket exchange {i}: cannot send {kind!r} data {str(data)[:60]!r}")
    return out


def _preview(data: bytes) -> str:
    return f"{len(data)} bytes {data[:40]!r}" + ("..." if len(data) > 40 else "")


def websocket_round_trip(out: Outgoing, exchange: Sequence[tuple[int, bytes, bool]], *,
                         origin: str | None = None, status_codes: Sequence[int] = (101,), port_offset: int = 0,
                         timeout_s: float = REQUEST_TIMEOUT_S) -> str | None:
    """One attempt of a ``websocket`` case, as the Go test does it (websocket.Dial, then Message.Send and
    Message.Receive for each item): None when the dial succeeds and every message comes back unchanged."""
    gateway_ip, _ = _split_host_port(out.authority)
    try:
        sock = _open(out, gateway_ip, port_offset, timeout_s)
    except RequestError as exc:
        return f"request error: {exc}"
    client = WebSocketClient(sock, timeout_s)
    try:
        try:
            client.handshake(out.path, out.host, origin=origin, headers=out.headers)
        except WebSocketHandshakeError as exc:
            return f"WebSocket handshake to {out.url} failed: {exc}"
        if 101 not in status_codes:
            return f"expected status {list(status_codes)}, got 101"
        for i, (opcode, data, expect_echo) in enumerate(exchange):
            client.send(opcode, data)
            if not expect_echo:
                continue
            kind, got = client.receive()
            want = "text" if opcode == OP_TEXT else "binary"
            if (kind, got) != (want, data):
                return f"message {i + 1}: sent {want} {_preview(data)}, got {kind} {_preview(got)} back"
        with contextlib.suppress(RequestError):
            client.close()  # Go closes without looking at how the close handshake went
        return None
    except RequestError as exc:
        return f"request error: {exc}"
    finally:
        client.abort()


# =============================================================================== comparison


def _header_values(headers: Sequence[tuple[str, str]], name: str) -> list[str] | None:
    lname = name.lower()
    values = [v for n, v in headers if n.lower() == lname]
    return values or None


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    values = _header_values(headers, name)
    return values[0] if values else None


def captured_request(rt: RoundTrip, method: str) -> Json:
    """The echo backend's JSON, or (non-JSON answer) just the method, as Go's round tripper does."""
    if _header(rt.headers, "content-type") != "application/json":
        return {"method": method}
    try:
        data = json.loads(rt.body)
    except ValueError as exc:
        raise ValueError(f"unexpected error reading response: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("unexpected error reading response: JSON is not an object")
    return data


def parse_redirect(base_url: str, location: str) -> tuple[str, str, str, str]:
    """Location resolved against the request URL -> (scheme, hostname without port, port, path)."""
    target = urllib.parse.urljoin(base_url, location)
    parts = urllib.parse.urlsplit(target)
    netloc = parts.netloc.rpartition("@")[2]
    host, port = _split_host_port(netloc)
    return parts.scheme, host, port, urllib.parse.unquote(parts.path)


def _pem_der(pem: str | bytes) -> bytes:
    text = pem.decode() if isinstance(pem, bytes) else pem
    try:
        return ssl.PEM_cert_to_DER_cert(text.strip() + "\n")
    except ValueError:
        return text.strip().encode()


def _join(values: Any) -> str:
    if isinstance(values, list):
        return ",".join(str(v) for v in values)
    return "" if values is None else str(values)


def compare_round_trip(request: Mapping[str, Any], expected: Mapping[str, Any], rt: RoundTrip,
                       request_url: str, resolve: Callable[[str], bytes] | None = None) -> str | None:
    """FORMAT.md "Evaluating one round trip" (Go CompareRoundTrip): None when it passes, else why not.

    ``request``/``expected`` are the case's objects as sent (templates and request ids filled in);
    ``request_url`` is the URL of the first request (redirect defaults come from it).
    """
    status = rt.status
    codes = [int(c) for c in (expected.get("statusCodes") or [200])]
    if status in (408, 504) and any(c in (408, 504) for c in codes):
        return None
    if status not in codes:
        snippet = " ".join(rt.body[:400].decode("utf-8", "replace").split())[:120]
        return f"expected status {codes}, got {status}" + (f" ({snippet!r})" if snippet else "")
    method = str(request.get("method") or "GET")
    if status in (200, 204):
        try:
            cap = captured_request(rt, method)
        except ValueError as exc:
            return str(exc)
        er: Mapping[str, Any] = expected.get("request") or request
        er_host = er.get("host") or ""
        if er_host and er_host != cap.get("host", ""):
            return f"expected host {er_host!r}, got {cap.get('host', '')!r}"
        er_path = er.get("path") or ""
        if er_path != cap.get("path", ""):
            return f"expected path {er_path!r}, got {cap.get('path', '')!r}"
        er_method = er.get("method") or "GET"
        if er_method != cap.get("method", ""):
            return f"expected method {er_method!r}, got {cap.get('method', '')!r}"
        namespace = expected.get("namespace") or ""
        if namespace != (cap.get("namespace") or ""):
            return f"expected namespace {namespace!r}, got {cap.get('namespace') or ''!r}"
        echoed = {str(k).lower(): v for k, v in (cap.get("headers") or {}).items()}
        want_headers: Mapping[str, Any] = er.get("headers") or {}
        if er.get("headers") is not None and not cap.get("headers"):
            return f"no headers captured, expected {len(want_headers)}"
        for name, want in want_headers.items():
            if name.lower() not in echoed:
                return f"expected request header {name!r} to be set, backend got {sorted(echoed)}"
            got = _join(echoed[name.lower()])
            if got != str(want):
                return f"expected request header {name!r} = {want!r}, got {got!r}"
        response: Mapping[str, Any] = expected.get("response") or {}
        resp_headers: Mapping[str, Any] = response.get("headers") or {}
        valid: Mapping[str, Any] = response.get("validHeaderValues") or {}
        strip = bool(response.get("ignoreWhitespace"))

        def norm(text: str) -> str:
            return text.replace(" ", "") if strip else text

        for name, want in resp_headers.items():
            values = _header_values(rt.headers, name)
            if values is None:
                return f"expected response header {name!r} to be set"
            if norm(",".join(values)) != norm(str(want)):
                return f"expected response header {name!r} = {want!r}, got {','.join(values)!r}"
        for name, options in valid.items():
            values = _header_values(rt.headers, name)
            if values is None:
                return f"expected response header {name!r} to be set"
            if norm(",".join(values)) not in {norm(str(o)) for o in options}:
                return f"response header {name!r} = {','.join(values)!r} is not one of {list(options)}"
        for name in response.get("absentHeaders") or []:
            if _header_values(rt.headers, name) is not None:
                return f"response header {name!r} should be absent, got {_header(rt.headers, name)!r}"
        for name in er.get("absentHeaders") or []:
            if str(name).lower() in echoed:
                return f"request header {name!r} should not reach the backend, got {_join(echoed[str(name).lower()])!r}"
        backend = expected.get("backend") or ""
        pod = str(cap.get("pod") or "")
        if not pod.startswith(backend):
            return f"expected pod name to start with {backend!r}, got {pod!r}"
        tls = cap.get("tls") or {}
        if er.get("sni") and er.get("sni") != tls.get("serverName"):
            return f"expected backend SNI {er.get('sni')!r}, got {tls.get('serverName')!r}"
        if er.get("clientCert"):
            if resolve is None:
                return "cannot resolve the expected client certificate"
            try:
                want_der = _pem_der(resolve(str(er["clientCert"])))
            except KeyError as exc:
                return str(exc)
            if want_der not in {_pem_der(p) for p in tls.get("peerCertificates") or []}:
                return "the backend did not receive the expected client certificate"
        return None
    redirect: Mapping[str, Any] | None = expected.get("redirect")
    if status in REDIRECT_CODES and redirect:
        location = _header(rt.headers, "location")
        if location is None:
            return f"status {status} without a Location header"
        scheme, host, port, path = parse_redirect(rt.url, location)
        req_parts = urllib.parse.urlsplit(request_url)
        req_path = urllib.parse.unquote(req_parts.path)  # Go compares URL.Path, the unescaped form
        if redirect.get("host") is not None and redirect["host"] != host:
            return f"expected redirect host {redirect['host']!r}, got {host!r} (Location {location!r})"
        want_scheme = redirect.get("scheme") or req_parts.scheme
        if want_scheme != scheme:
            return f"expected redirect scheme {want_scheme!r}, got {scheme!r} (Location {location!r})"
        want_port = redirect.get("port")
        if want_port is None:
            defaults = {"http": ("", "80"), "https": ("", "443")}.get(scheme, ("",))
            if port not in defaults:
                return f"expected the default port for {scheme}, got {port!r} (Location {location!r})"
        elif str(want_port) != port:
            return f"expected redirect port {want_port!r}, got {port!r} (Location {location!r})"
        want_path = redirect.get("path") if redirect.get("path") is not None else req_path
        if want_path != path:
            return f"expected redirect path {want_path!r}, got {path!r} (Location {location!r})"
    return None


# =============================================================================== status checks


def _conditions(obj: Mapping[str, Any] | None) -> list[Json]:
    if not obj:
        return []
    conds = obj.get("conditions")
    return [c for c in conds if isinstance(c, dict)] if isinstance(conds, list) else []


def _has_condition(conds: Sequence[Mapping[str, Any]], ctype: str, status: str | None,
                   reason: str | None) -> bool:
    return any(c.get("type") == ctype and (not status or c.get("status") == status)
               and (not reason or c.get("reason") == reason) for c in conds)


def _show(conds: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{c.get('type')}={c.get('status')}/{c.get('reason')}" for c in conds) or "no conditions"


def _want(c: Mapping[str, Any]) -> str:
    return f"{c.get('type') or c.get('condition')}={c.get('status') or '*'}/{c.get('reason') or '*'}"


class _Status:
    """One snapshot of ``Runner.status()`` indexed by (kind, namespace, name)."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.objects: dict[tuple[str, str, str], Json] = {}
        for obj in doc.get("objects") or []:
            key = (str(obj.get("kind")), str(obj.get("namespace") or ""), str(obj.get("name")))
            self.objects[key] = obj
        self.errors = [str(e) for e in doc.get("errors") or []]

    def get(self, kind: str, namespace: str | None, name: str) -> Json | None:
        return self.objects.get((kind, namespace or "", name))

    def of_kind(self, kind: str) -> list[Json]:
        return [o for (k, _, _), o in self.objects.items() if k == kind]


def _stale(obj: Mapping[str, Any], conds: Sequence[Mapping[str, Any]]) -> str | None:
    gen = obj.get("generation")
    if not conds:
        return "no conditions"
    for c in conds:
        if c.get("observedGeneration") != gen:
            return (f"condition {c.get('type')} has observedGeneration {c.get('observedGeneration')}, "
                    f"metadata.generation is {gen}")
    return None


def _all_conditions(obj: Mapping[str, Any]) -> list[Json]:
    st = obj.get("status") or {}
    if obj.get("kind") == "HTTPRoute" or "parents" in st:
        return [c for p in st.get("parents") or [] for c in _conditions(p)]
    out = _conditions(st)
    for listener in st.get("listeners") or []:
        out += _conditions(listener)
    return out


def _ref_matches_gateway(parent_ref: Mapping[str, Any], route_ns: str, gw_ns: str, gw_name: str) -> bool:
    return (parent_ref.get("name") == gw_name
            and (parent_ref.get("namespace") or route_ns) == gw_ns
            and (parent_ref.get("kind") or "Gateway") == "Gateway"
            and (parent_ref.get("group") or "gateway.networking.k8s.io") == "gateway.networking.k8s.io")


def _obj_name(check: Mapping[str, Any]) -> str:
    ns = check.get("namespace")
    return f"{check.get('kind')} {ns + '/' if ns else ''}{check.get('name')}"


def evaluate_status_check(check: Mapping[str, Any], snapshot: Mapping[str, Any],
                          state: dict[str, Any] | None = None) -> str | None:
    """One poll of a statusCheck (FORMAT.md table) against ``Runner.status()``: None = satisfied."""
    st = _Status(snapshot)
    state = state if state is not None else {}
    kind = str(check.get("check"))
    fn = _CHECKS.get(kind)
    if fn is None:
        return f"status check {kind!r} is not implemented by the harness"
    return fn(check, st, state)


def _check_gateway_and_routes(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    ns, name = str(check.get("namespace") or ""), str(check.get("name"))
    gw = st.get("Gateway", ns, name)
    if gw is None:
        return f"Gateway {ns}/{name} has no status"
    status = gw.get("status") or {}
    if not [a for a in status.get("addresses") or [] if a.get("value")]:
        return f"Gateway {ns}/{name} has no address"
    wanted = check.get("listeners")
    listeners = {str(ls.get("name")): ls for ls in status.get("listeners") or []}
    for lname in (wanted or list(listeners)):
        ls = listeners.get(str(lname))
        if ls is None:
            return f"Gateway {ns}/{name} has no status for listener {lname}"
        for ctype in ("ResolvedRefs", "Accepted", "Programmed"):
            if not _has_condition(_conditions(ls), ctype, "True", None):
                return f"listener {lname} of Gateway {ns}/{name} is not {ctype}: {_show(_conditions(ls))}"
    route_kind = str(check.get("routeKind") or "HTTPRoute")
    for ref in check.get("routes") or []:
        rns, rname = str(ref.get("namespace") or ""), str(ref.get("name"))
        route = st.get(route_kind, rns, rname)
        if route is None:
            return f"{route_kind} {rns}/{rname} has no status"
        parents = [p for p in (route.get("status") or {}).get("parents") or []
                   if _ref_matches_gateway(p.get("parentRef") or {}, rns, ns, name)]
        for section in (wanted or [None]):
            found = [p for p in parents if section is None or (p.get("parentRef") or {}).get("sectionName") == section]
            if not found:
                where = f" listener {section}" if section else ""
                return f"{route_kind} {rns}/{rname} has no parent status for Gateway {ns}/{name}{where}"
            if not any(p.get("controllerName") == CONTROLLER_NAME
                       and _has_condition(_conditions(p), "Accepted", "True", "Accepted") for p in found):
                return (f"{route_kind} {rns}/{rname} is not Accepted by Gateway {ns}/{name}: "
                        f"{'; '.join(_show(_conditions(p)) for p in found)}")
    return None


def _check_route_condition(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    ns, name = str(check.get("namespace") or ""), str(check.get("name"))
    route = st.get(str(check.get("kind") or "HTTPRoute"), ns, name)
    if route is None:
        return f"{_obj_name(check)} has no status"
    parent = check.get("parent") or {}
    pname, pns = str(parent.get("name")), str(parent.get("namespace") or "")
    parents = (route.get("status") or {}).get("parents") or []
    for p in parents:  # Go: every parent's conditions must be for the latest generation
        stale = _stale(route, _conditions(p))
        if stale:
            return f"{_obj_name(check)}: {stale}"
    matching = [p for p in parents if (p.get("parentRef") or {}).get("name") == pname
                and (p.get("parentRef") or {}).get("namespace") in (None, "", pns)]
    if not matching:
        return f"{_obj_name(check)} has no parent status for {pns}/{pname}"
    ctype = str(check.get("condition"))
    if any(_has_condition(_conditions(p), ctype, check.get("status"), check.get("reason")) for p in matching):
        return None
    return (f"{_obj_name(check)} parent {pns}/{pname}: want {_want(check)}, have "
            f"{'; '.join(_show(_conditions(p)) for p in matching)}")


def _check_no_accepted_parents(check: Mapping[str, Any], st: _Status, state: dict[str, Any]) -> str | None:
    route = st.get(str(check.get("kind") or "HTTPRoute"), check.get("namespace"), str(check.get("name")))
    if route is None:
        return f"{_obj_name(check)} has no status"
    parents = (route.get("status") or {}).get("parents") or []
    if not parents:
        # Go tells "correctly empty" from "not written yet" by seeing it empty on two polls.
        state["empty_polls"] = state.get("empty_polls", 0) + 1
        return None if state["empty_polls"] >= 2 else "status.parents is empty (waiting for a second poll)"
    state["empty_polls"] = 0
    if len(parents) > 1:
        return f"{_obj_name(check)} has {len(parents)} parents, expected none or one not Accepted"
    if _has_condition(_conditions(parents[0]), "Accepted", "False", None):
        return None
    return f"{_obj_name(check)} parent is not Accepted=False: {_show(_conditions(parents[0]))}"


def _parent_matches(want: Mapping[str, Any], got: Mapping[str, Any], namespace_required: bool) -> bool:
    wref, gref = want.get("parentRef") or {}, got.get("parentRef") or {}
    controller = str(want.get("controllerName") or "").replace("{GATEWAY_CONTROLLER_NAME}", CONTROLLER_NAME)
    if controller != got.get("controllerName"):
        return False
    for key in ("group", "kind", "name", "sectionName", "port"):
        if wref.get(key) != gref.get(key):
            return False
    if wref.get("namespace") != gref.get("namespace") and (namespace_required or gref.get("namespace")):
        return False
    have = _conditions(got)
    return all(_has_condition(have, str(c.get("type")), c.get("status"), c.get("reason"))
               for c in _conditions(want))


def _check_route_parents(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    route = st.get(str(check.get("kind") or "HTTPRoute"), check.get("namespace"), str(check.get("name")))
    if route is None:
        return f"{_obj_name(check)} has no status"
    got = list((route.get("status") or {}).get("parents") or [])
    want = list(check.get("parents") or [])
    if len(got) != len(want):
        return f"{_obj_name(check)} has {len(got)} parents, expected {len(want)}"
    required = bool(check.get("namespaceRequired"))
    # Order-insensitive: the order of status.parents carries no meaning.
    for w in want:
        idx = next((i for i, g in enumerate(got) if _parent_matches(w, g, required)), None)
        if idx is None:
            return f"{_obj_name(check)} has no parent status matching {json.dumps(w, sort_keys=True)}"
        got.pop(idx)
    return None


def _check_latest(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    obj = st.get(str(check.get("kind")), check.get("namespace"), str(check.get("name")))
    if obj is None:
        return f"{_obj_name(check)} has no status"
    stale = _stale(obj, _all_conditions(obj))
    return f"{_obj_name(check)}: {stale}" if stale else None


def _check_gateway_condition(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gw = st.get("Gateway", check.get("namespace"), str(check.get("name")))
    if gw is None:
        return f"{_obj_name(check)} has no status"
    conds = _conditions(gw.get("status"))
    stale = _stale(gw, conds)
    if stale:
        return f"{_obj_name(check)}: {stale}"
    if _has_condition(conds, str(check.get("condition")), check.get("status"), check.get("reason")):
        return None
    return f"{_obj_name(check)}: want {_want(check)}, have {_show(conds)}"


def _check_gateway_listeners(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gw = st.get("Gateway", check.get("namespace"), str(check.get("name")))
    if gw is None:
        return f"{_obj_name(check)} has no status"
    actual = (gw.get("status") or {}).get("listeners") or []
    want = check.get("listeners") or []
    if len(actual) != len(want):
        return f"{_obj_name(check)} has {len(actual)} listener statuses, expected {len(want)}"
    by_name = {str(ls.get("name")): ls for ls in actual}
    for w in want:
        ls = by_name.get(str(w.get("name")))
        if ls is None:
            return f"{_obj_name(check)} has no status for listener {w.get('name')}"
        kinds = {((k.get("group") or "gateway.networking.k8s.io"), k.get("kind"))
                 for k in ls.get("supportedKinds") or []}
        want_kinds = {((k.get("group") or "gateway.networking.k8s.io"), k.get("kind"))
                      for k in w.get("supportedKinds") or []}
        if not want_kinds and kinds:
            return f"listener {w.get('name')}: expected no supportedKinds, got {sorted(map(str, kinds))}"
        if not want_kinds <= kinds:
            return (f"listener {w.get('name')}: supportedKinds {sorted(map(str, kinds))} "
                    f"lack {sorted(map(str, want_kinds - kinds))}")
        if "attachedRoutes" in w and ls.get("attachedRoutes") != w.get("attachedRoutes"):
            return (f"listener {w.get('name')}: attachedRoutes {ls.get('attachedRoutes')}, "
                    f"expected {w.get('attachedRoutes')}")
        for c in w.get("conditions") or []:
            if not _has_condition(_conditions(ls), str(c.get("type")), c.get("status"), c.get("reason")):
                return f"listener {w.get('name')}: want {_want(c)}, have {_show(_conditions(ls))}"
    return None


def _check_listener_conditions(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gw = st.get("Gateway", check.get("namespace"), str(check.get("name")))
    if gw is None:
        return f"{_obj_name(check)} has no status"
    lname = str(check.get("listener"))
    ls = next((x for x in (gw.get("status") or {}).get("listeners") or [] if x.get("name") == lname), None)
    if ls is None:
        return f"{_obj_name(check)} has no status for listener {lname}"
    for c in check.get("conditions") or []:
        if not _has_condition(_conditions(ls), str(c.get("type")), c.get("status"), c.get("reason")):
            return f"listener {lname}: want {_want(c)}, have {_show(_conditions(ls))}"
    return None


def _check_zero_routes(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gw = st.get("Gateway", check.get("namespace"), str(check.get("name")))
    if gw is None:
        return f"{_obj_name(check)} has no status"
    listeners = (gw.get("status") or {}).get("listeners") or []
    if not listeners or (len(listeners) == 1 and listeners[0].get("attachedRoutes") == 0):
        return None
    return f"{_obj_name(check)}: attachedRoutes {[ls.get('attachedRoutes') for ls in listeners]}, expected 0"


def _check_address(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gw = st.get("Gateway", check.get("namespace"), str(check.get("name")))
    if gw is None:
        return f"{_obj_name(check)} has no status"
    for a in (gw.get("status") or {}).get("addresses") or []:
        if a.get("type") in ("IPAddress", "Hostname") and a.get("value"):
            return None
    return f"{_obj_name(check)} has no IPAddress/Hostname address in status"


def _check_gwc_accepted(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    gwc = st.get("GatewayClass", None, str(check.get("name")))
    if gwc is None:
        return f"GatewayClass {check.get('name')} has no status"
    conds = _conditions(gwc.get("status"))
    if _has_condition(conds, str(check.get("condition") or "Accepted"), check.get("status"), check.get("reason")):
        return None
    return f"GatewayClass {check.get('name')}: want {_want(check)}, have {_show(conds)}"


def _check_btls_accepted(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    policy = st.get("BackendTLSPolicy", check.get("namespace"), str(check.get("name")))
    if policy is None:
        return f"{_obj_name(check)} has no status (wardgate does not report BackendTLSPolicy)"
    parent = check.get("parent") or {}
    for anc in (policy.get("status") or {}).get("ancestors") or []:
        ref = anc.get("ancestorRef") or {}
        if ref.get("name") == parent.get("name") and (ref.get("namespace") or policy.get("namespace")) == (
                parent.get("namespace") or policy.get("namespace")):
            if _has_condition(_conditions(anc), "Accepted", "True", check.get("reason")):
                return None
            return f"{_obj_name(check)} ancestor {parent.get('name')}: {_show(_conditions(anc))}"
    return f"{_obj_name(check)} has no ancestor status for {parent.get('namespace')}/{parent.get('name')}"


def _check_namespaces_ready(check: Mapping[str, Any], st: _Status, _state: dict[str, Any]) -> str | None:
    # Pods are always ready here (they are in-process echo servers), so only Gateways can hold this up.
    for ns in check.get("namespaces") or []:
        for gw in st.of_kind("Gateway"):
            if gw.get("namespace") != ns:
                continue
            conds = _conditions(gw.get("status"))
            if not _has_condition(conds, "Programmed", "True", None):
                return f"Gateway {ns}/{gw.get('name')} is not Programmed: {_show(conds)}"
    return None


_CHECKS: dict[str, Callable[[Mapping[str, Any], _Status, dict[str, Any]], str | None]] = {
    "GatewayAndHTTPRoutesMustBeAccepted": _check_gateway_and_routes,
    "GatewayAndRoutesMustBeAccepted": _check_gateway_and_routes,
    "HTTPRouteMustHaveResolvedRefsConditionsTrue": _check_route_condition,
    "HTTPRouteMustHaveCondition": _check_route_condition,
    "HTTPRouteMustHaveNoAcceptedParents": _check_no_accepted_parents,
    "HTTPRouteMustHaveParents": _check_route_parents,
    "HTTPRouteMustHaveLatestConditions": _check_latest,
    "GatewayMustHaveLatestConditions": _check_latest,
    "GatewayClassMustHaveLatestConditions": _check_latest,
    "GatewayMustHaveCondition": _check_gateway_condition,
    "GatewayStatusMustHaveListeners": _check_gateway_listeners,
    "GatewayListenerMustHaveConditions": _check_listener_conditions,
    "GatewayMustHaveZeroRoutes": _check_zero_routes,
    "GatewayMustHaveAddress": _check_address,
    "GWCMustHaveAcceptedConditionAny": _check_gwc_accepted,
    "BackendTLSPolicyMustHaveAcceptedConditionTrue": _check_btls_accepted,
    "NamespacesMustBeReady": _check_namespaces_ready,
}


# =============================================================================== backends


def _meta(doc: Mapping[str, Any]) -> Json:
    meta = doc.get("metadata")
    return meta if isinstance(meta, dict) else {}


@dataclass
class _Pod:
    namespace: str
    name: str
    deployment: str
    labels: dict[str, str]
    ip: str
    identity: EchoIdentity
    echo: bool  # an HTTP echo-basic (not gRPC/TCP/other images)
    http_port: int
    https_port: int
    tls_files: tuple[str, str, str | None] | None  # cert, key, client CA
    container_ports: dict[str, int]
    servers: dict[int, EchoServer] = field(default_factory=dict)

    def serves(self, port: int) -> bool:
        return self.echo and (port == self.http_port or (port == self.https_port and self.tls_files is not None))


class _Backends:
    """In-process stand-ins for Deployments: one loopback IP per pod, an EchoServer per used port."""

    def __init__(self, pki: _Pki, files_dir: Path, pool: str) -> None:
        self.pki = pki
        self.files_dir = files_dir
        self._hosts: Iterator[ipaddress.IPv4Address] = ipaddress.IPv4Network(pool).hosts()
        self.pods: list[_Pod] = []
        self.services: list[Mapping[str, Any]] = []
        self.problems: list[str] = []

    def _next_ip(self) -> str:
        return str(next(self._hosts))

    def add_deployment(self, dep: Mapping[str, Any]) -> list[_Pod]:
        meta = _meta(dep)
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        spec = dep.get("spec") or {}
        template = spec.get("template") or {}
        labels = {str(k): str(v) for k, v in (_meta(template).get("labels") or {}).items()}
        pod_spec = template.get("spec") or {}
        containers = pod_spec.get("containers") or []
        volumes = {str(v.get("name")): v for v in pod_spec.get("volumes") or []}
        container = next((c for c in containers if "echo" in str(c.get("image", ""))), None)
        replicas = spec.get("replicas")
        replicas = 1 if replicas is None else int(replicas)
        digest = hashlib.sha256(f"{ns}/{name}".encode()).hexdigest()
        pods: list[_Pod] = []
        for i in range(replicas):
            # <deployment>-<replicaset hash>-<pod hash>: the weight check strips the last two segments.
            pod_name = f"{name}-{digest[:5]}-{hashlib.sha256(f'{digest}/{i}'.encode()).hexdigest()[:5]}"
            env = self._env(container, ns, pod_name) if container else {}
            echo = container is not None and not env.get("GRPC_ECHO_SERVER") and not env.get("TCP_ECHO_SERVER")
            tls_files = self._tls_files(container, volumes, env, ns, pod_name) if container and echo else None
            ports = {str(p.get("name")): int(p.get("containerPort")) for c in containers
                     for p in c.get("ports") or [] if p.get("name") and p.get("containerPort")}
            pod = _Pod(ns, pod_name, name, labels, self._next_ip(),
                       EchoIdentity(namespace=env.get("NAMESPACE", ""), pod=env.get("POD_NAME", ""),
                                    service=env.get("SERVICE_NAME", ""), ingress=env.get("INGRESS_NAME", "")),
                       echo, _int(env.get("HTTP_PORT"), ECHO_HTTP_PORT), _int(env.get("HTTPS_PORT"), ECHO_HTTPS_PORT),
                       tls_files, ports)
            pods.append(pod)
        self.pods.extend(pods)
        return pods

    @staticmethod
    def _env(container: Mapping[str, Any], ns: str, pod: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in container.get("env") or []:
            name = str(item.get("name"))
            if "value" in item:
                out[name] = str(item["value"])
                continue
            path = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if path == "metadata.name":
                out[name] = pod
            elif path == "metadata.namespace":
                out[name] = ns
        return out

    def _tls_files(self, container: Mapping[str, Any], volumes: Mapping[str, Any], env: Mapping[str, str],
                   ns: str, pod: str) -> tuple[str, str, str | None] | None:
        cert_path, key_path = env.get("TLS_SERVER_CERT"), env.get("TLS_SERVER_PRIVKEY")
        if not cert_path or not key_path:
            return None
        paths: list[str | None] = []
        for i, mounted in enumerate((cert_path, key_path, env.get("TLS_CLIENT_CACERTS"))):
            if mounted is None:
                paths.append(None)
                continue
            data = self._mounted_file(container, volumes, ns, mounted)
            if data is None:
                self.problems.append(f"pod {ns}/{pod}: cannot provide {mounted}; its HTTPS echo is not run")
                return None
            target = self.files_dir / f"{ns}_{pod}_{i}.pem"
            target.write_bytes(data)
            paths.append(str(target))
        return str(paths[0]), str(paths[1]), paths[2]

    def _mounted_file(self, container: Mapping[str, Any], volumes: Mapping[str, Any], ns: str,
                      path: str) -> bytes | None:
        for mount in container.get("volumeMounts") or []:
            root = str(mount.get("mountPath", "")).rstrip("/")
            if not path.startswith(root + "/"):
                continue
            rel = path[len(root) + 1:]
            vol = volumes.get(str(mount.get("name"))) or {}
            if "secret" in vol:
                source = vol["secret"] or {}
                store = self.pki.secrets.get((ns, str(source.get("secretName"))), {})
            elif "configMap" in vol:
                source = vol["configMap"] or {}
                store = self.pki.configmaps.get((ns, str(source.get("name"))), {})
            else:
                return None
            key = rel
            for item in source.get("items") or []:
                if item.get("path") == rel:
                    key = str(item.get("key"))
            return store.get(key)
        return None

    def selected(self, svc: Mapping[str, Any]) -> list[_Pod]:
        ns = str(_meta(svc).get("namespace") or "default")
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            return []
        return [p for p in self.pods if p.namespace == ns
                and all(p.labels.get(str(k)) == str(v) for k, v in selector.items())]

    @staticmethod
    def target_port(pod: _Pod, port: Mapping[str, Any]) -> int | None:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, int):
            return target
        if isinstance(target, str):
            return int(target) if target.isdigit() else pod.container_ports.get(target)
        return None

    def serve(self, services: Sequence[Mapping[str, Any]]) -> None:
        """Start the echo servers these Services route to (idempotent) and remember the Services."""
        for svc in services:
            if not any(svc is known for known in self.services):
                self.services.append(svc)
            for pod in self.selected(svc):
                for port in (svc.get("spec") or {}).get("ports") or []:
                    target = self.target_port(pod, port)
                    if target is None or target in pod.servers or not pod.serves(target):
                        continue
                    tls = pod.tls_files if target == pod.https_port else None
                    try:
                        server = EchoServer(pod.ip, target, pod.identity,
                                            certfile=tls[0] if tls else None, keyfile=tls[1] if tls else None,
                                            client_ca=tls[2] if tls else None, log=_quiet).start()
                    except (OSError, ValueError, ssl.SSLError) as exc:
                        self.problems.append(f"pod {pod.namespace}/{pod.name}: echo on {pod.ip}:{target}: {exc}")
                        continue
                    pod.servers[target] = server

    def endpoint_slices(self, services: Sequence[Mapping[str, Any]]) -> list[Json]:
        """EndpointSlices as the endpoints controller would write them, for ports something serves."""
        docs: list[Json] = []
        for svc in services:
            meta = _meta(svc)
            ns, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
            ports = (svc.get("spec") or {}).get("ports") or []
            groups: dict[tuple[tuple[str, int, str, str | None], ...], list[_Pod]] = {}
            for pod in self.selected(svc):
                served = []
                for port in ports:
                    target = self.target_port(pod, port)
                    if target is not None and target in pod.servers:
                        served.append((str(port.get("name") or ""), target, str(port.get("protocol") or "TCP"),
                                       port.get("appProtocol")))
                if served:
                    groups.setdefault(tuple(served), []).append(pod)
            for i, (served_ports, pods) in enumerate(sorted(groups.items())):
                slice_ports: list[Json] = []
                for pname, target, proto, app in served_ports:
                    entry: Json = {"name": pname, "port": target, "protocol": proto}
                    if app:
                        entry["appProtocol"] = app
                    slice_ports.append(entry)
                docs.append({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": f"{name}-conformance-{i}", "namespace": ns,
                                 "labels": {"kubernetes.io/service-name": name}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [p.ip], "conditions": {"ready": True},
                                   "targetRef": {"kind": "Pod", "namespace": ns, "name": p.name}} for p in pods],
                    "ports": slice_ports,
                })
        return docs

    def forget(self, services: Sequence[Mapping[str, Any]]) -> None:
        self.services = [s for s in self.services if not any(s is gone for gone in services)]

    def echo_servers_for(self, namespace: str, name: str) -> list[EchoServer]:
        """The echo servers of a Service (by its selector) or, failing that, of a Deployment."""
        svc = next((s for s in self.services if _meta(s).get("name") == name
                    and str(_meta(s).get("namespace") or "default") == namespace), None)
        pods = self.selected(svc) if svc is not None else []
        if not pods:
            pods = [p for p in self.pods if p.namespace == namespace and p.deployment == name]
        return [s for p in pods for s in p.servers.values()]

    def stop(self, pods: Sequence[_Pod] | None = None) -> None:
        for pod in list(self.pods if pods is None else pods):
            for server in pod.servers.values():
                with contextlib.suppress(Exception):
                    server.stop()
            pod.servers.clear()
            if pods is not None and pod in self.pods:
                self.pods.remove(pod)


def _int(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() else default


def _quiet(_line: str) -> None:
    pass


# =============================================================================== running cases


@dataclass
class TestResult:
    name: str
    core: bool
    result: str  # pass / fail / skip
    reason: str | None = None
    failed_case: str | None = None

    def to_json(self) -> Json:
        return {"name": self.name, "core": self.core, "result": self.result, "reason": self.reason,
                "failed_case": self.failed_case}


class _Failure(Exception):
    def __init__(self, reason: str, failed_case: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failed_case = failed_case


def await_convergence(attempt: Callable[[], str | None], timeout_s: float,
                      stop: threading.Event | None = None, threshold: int = REQUIRED_SUCCESSES,
                      delay_s: float = RETRY_DELAY_S) -> str | None:
    """Go's AwaitConvergence: ``threshold`` passes in a row within ``timeout_s``; 1 s after a failure."""
    start = time.monotonic()
    deadline = start + timeout_s
    successes = attempts = 0
    last = "no attempt was made"
    while True:
        if stop is not None and stop.is_set():
            return "interrupted"
        if time.monotonic() >= deadline:
            break
        result = attempt()
        attempts += 1
        if result is None:
            successes += 1
            if successes >= threshold:
                return None
            continue
        successes, last = 0, result
        if time.monotonic() + delay_s >= deadline:
            break
        if stop is not None:
            stop.wait(delay_s)
        else:
            time.sleep(delay_s)
    return (f"not consistent within {timeout_s:g}s ({attempts} attempts, {successes}/{threshold} "
            f"consecutive passes); last failure: {last}")


def add_query_param(path: str, name: str, value: str) -> str:
    """Add a parameter the way Go's url.Values.Encode writes the query: sorted by key, query-escaped."""
    base, _, query = path.partition("?")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    pairs.append((name, value))
    pairs.sort(key=lambda kv: kv[0])  # stable: values of one key keep their order
    return base + "?" + "&".join(f"{urllib.parse.quote_plus(k)}={urllib.parse.quote_plus(v)}" for k, v in pairs)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class _Harness:
    def __init__(self, opts: ConformanceOptions, out: Callable[[str], None]) -> None:
        self.opts = opts
        self.out = out
        self.corpus = opts.corpus
        self.port_offset = opts.port_offset if opts.port_offset is not None else (
            0 if os.geteuid() == 0 else 20000)
        self.stop_event = threading.Event()
        self._own_workdir = opts.workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="wardgate-conformance-")) if opts.workdir is None \
            else opts.workdir
        self.manifests = self.workdir / "manifests"
        self.pki_dir = self.workdir / "pki"
        # A second octet per process keeps concurrent runs (two test sessions) off each other's addresses.
        octet = 64 + os.getpid() % 64
        self.gateway_pool = f"127.{octet}.100.0/24"
        self.pod_pool = f"127.{octet}.64.0/19"
        self.runner: Runner | None = None
        self.backends: _Backends | None = None
        self.pki: _Pki | None = None
        self.base_services: list[Json] = []
        self.last_reconcile_errors: list[str] = []
        self._files: dict[str, Path] = {}
        self._files_lock = threading.Lock()

    # ----------------------------------------------------------------------------- setup

    def setup(self) -> None:
        if self.manifests.exists():
            shutil.rmtree(self.manifests)
        for d in (self.manifests, self.pki_dir, self.workdir / "state"):
            d.mkdir(parents=True, exist_ok=True)
        if self._own_workdir:
            # mkdtemp makes it 0700; nginx workers run as nobody and must reach their temp dirs.
            self.workdir.chmod(0o755)
        self.pki_dir.chmod(0o700)
        self.pki = _Pki()
        _write_docs(self.manifests / "00-gatewayclass.yaml", [{
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS_NAME}, "spec": {"controllerName": CONTROLLER_NAME}}])
        base_text = self._substitute((self.corpus / "base" / "manifests.yaml").read_text(encoding="utf-8"))
        (self.manifests / "01-base.yaml").write_text(base_text, encoding="utf-8")
        _write_docs(self.manifests / "02-suite-secrets.yaml", self.pki.manifests())
        self.backends = _Backends(self.pki, self.pki_dir, self.pod_pool)
        base_docs = [d for d in yaml.safe_load_all(base_text) if isinstance(d, dict)]
        for doc in base_docs:
            if doc.get("kind") == "Deployment":
                self.backends.add_deployment(doc)
        self.base_services = [d for d in base_docs if d.get("kind") == "Service"]
        self.backends.serve(self.base_services)
        _write_docs(self.manifests / "03-base-endpoints.yaml", self.backends.endpoint_slices(self.base_services))
        for problem in self.backends.problems:
            self.out(f"WARN {problem}")
        self.runner = Runner([self.manifests], self.workdir / "state", RunnerOptions(
            listen_host="127.0.0.1", port_offset=self.port_offset, worker_processes=1,
            address_pool=self.gateway_pool))
        self.reconcile()
        base_namespaces = sorted({str(_meta(d).get("namespace")) for d in base_docs if d.get("kind") == "Gateway"})
        not_ready = self.poll_check({"check": "NamespacesMustBeReady", "namespaces": base_namespaces})
        if not_ready:
            self.out(f"WARN base Gateways not ready: {not_ready}")

    def _substitute(self, text: str) -> str:
        return text.replace("{GATEWAY_CLASS_NAME}", GATEWAY_CLASS_NAME).replace(
            "{GATEWAY_CONTROLLER_NAME}", CONTROLLER_NAME)

    def reconcile(self) -> None:
        assert self.runner is not None
        report = self.runner.reconcile()
        self.last_reconcile_errors = list(report.errors)

    def close(self) -> None:
        self.stop_event.set()
        if self.runner is not None:
            with contextlib.suppress(Exception):
                self.runner.stop()
        if self.backends is not None:
            self.backends.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def snapshot(self) -> dict[str, Any]:
        assert self.runner is not None
        return self.runner.status()

    def poll_check(self, check: Mapping[str, Any]) -> str | None:
        state: dict[str, Any] = {}
        deadline = time.monotonic() + self.opts.status_timeout_s
        while True:
            problem = evaluate_status_check(check, self.snapshot(), state)
            if problem is None or time.monotonic() >= deadline or self.stop_event.is_set():
                return problem
            time.sleep(STATUS_POLL_S)

    # ----------------------------------------------------------------------------- one test

    def skip_reason(self, entry: Mapping[str, Any], test: Mapping[str, Any]) -> str | None:
        features = list(test.get("features") or entry.get("features") or [])
        missing = [f for f in features if f not in SUPPORTED_FEATURES]
        if missing:
            return f"needs features wardgate does not claim: {', '.join(missing)}"
        cases = test.get("cases") or []
        ws_cases = [c for c in cases if c.get("mode") == "websocket"]
        for case in ws_cases:
            try:
                websocket_exchange(case.get("websocket") or {})
            except ValueError as exc:
                return f"case {case.get('name')!r}: {exc}"
        kinds = [str((c.get("distribution") or {}).get("kind")) for c in cases if c.get("distribution")]
        unknown = [k for k in kinds if k not in DISTRIBUTIONS]
        if unknown:
            return f"distribution check {', '.join(unknown)} is not implemented by the harness"
        # A manual test whose special criteria are distribution or websocket objects is run: both are handled.
        if test.get("manual", entry.get("manual")) and not kinds and not ws_cases:
            notes = str(test.get("notes") or "").strip()
            return "manual test: its pass criterion needs test-specific code the harness lacks" + (
                f" ({notes[:300]})" if notes else "")
        for check in test.get("statusChecks") or []:
            if check.get("check") not in STATUS_CHECKS:
                return f"status check {check.get('check')!r} is not implemented by the harness"
            if check.get("check") == "Mutation":
                try:
                    parse_mutation(check)
                except MutationError as exc:
                    return str(exc)
        if any((c.get("request") or {}).get("protocol") in ("H2", "H2C_PRIOR_KNOWLEDGE") for c in cases):
            try:
                import h2.connection  # noqa: F401
            except ImportError:
                return "HTTP/2 cases need the 'h2' package"
        return None

    def run_test(self, entry: Mapping[str, Any]) -> TestResult:
        name = str(entry["name"])
        test = json.loads((self.corpus / str(entry["file"])).read_text(encoding="utf-8"))
        core = bool(test.get("core", entry.get("core", False)))
        reason = self.skip_reason(entry, test)
        if reason:
            return TestResult(name, core, "skip", reason)
        stage = self.manifests / "tests" / _safe_name(name)
        docs_by_file: dict[Path, list[Any]] = {}
        test_pods: list[_Pod] = []
        services: list[Json] = []
        assert self.backends is not None
        try:
            stage.mkdir(parents=True, exist_ok=True)
            for i, rel in enumerate(test.get("manifests") or []):
                text = self._substitute((self.corpus / str(rel)).read_text(encoding="utf-8"))
                path = stage / f"{i:02d}-{Path(str(rel)).name}"
                path.write_text(text, encoding="utf-8")
                docs = list(yaml.safe_load_all(text))
                docs_by_file[path] = docs
                for doc in docs:
                    if isinstance(doc, dict) and doc.get("kind") == "Deployment":
                        test_pods += self.backends.add_deployment(doc)
                    elif isinstance(doc, dict) and doc.get("kind") == "Service":
                        services.append(doc)
            if services or test_pods:
                self.backends.serve(self.base_services + services)
                _write_docs(stage / "zz-endpoints.yaml", self.backends.endpoint_slices(services))
            self.reconcile()
            self._run_phases(test, docs_by_file)
            return TestResult(name, core, "pass")
        except _Failure as exc:
            reason = exc.reason
            if self.last_reconcile_errors:
                reason += f" [reconcile errors: {'; '.join(self.last_reconcile_errors)[:500]}]"
            return TestResult(name, core, "fail", reason, exc.failed_case)
        except Exception as exc:  # a harness or corpus problem must not end the whole run
            return TestResult(name, core, "fail", f"harness error: {type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            self.backends.stop(test_pods)
            self.backends.forget(services)
            if not self.stop_event.is_set():
                self.reconcile()

    def _run_phases(self, test: Mapping[str, Any], docs_by_file: dict[Path, list[Any]]) -> None:
        phases: list[tuple[Mutation | None, list[tuple[int, Json]]]] = [(None, [])]
        for i, check in enumerate(test.get("statusChecks") or []):
            if check.get("check") == "Mutation":
                phases.append((parse_mutation(check), []))
            else:
                phases[-1][1].append((i, check))
        phase_of = {m.index: n for n, (m, _) in enumerate(phases) if m is not None}
        cases_by_phase: dict[int, list[Json]] = {}
        for case in test.get("cases") or []:
            after = case.get("afterMutation")
            if after is not None and after not in phase_of:
                raise _Failure(f"case {case.get('name')!r} runs after unknown mutation #{after}", case.get("name"))
            cases_by_phase.setdefault(phase_of.get(after, 0) if after is not None else 0, []).append(case)
        for n, (mutation, checks) in enumerate(phases):
            if mutation is not None:
                self._mutate(mutation, docs_by_file)
            for i, check in checks:
                problem = self.poll_check(check)
                if problem is not None:
                    raise _Failure(f"status check #{i} {check.get('check')}: {problem}",
                                   f"statusChecks[{i}] {check.get('check')}")
            self._run_cases(test, cases_by_phase.get(n, []))

    def _mutate(self, mutation: Mutation, docs_by_file: dict[Path, list[Any]]) -> None:
        label = f"Mutation #{mutation.index}"
        before = self._generation(mutation)
        for path, docs in docs_by_file.items():
            if find_object(docs, mutation.kind, mutation.namespace, mutation.name) is not None:
                try:
                    apply_mutation(docs, mutation)
                except MutationError as exc:
                    raise _Failure(f"{label}: {exc}", label) from None
                _write_docs(path, docs)
                break
        else:
            raise _Failure(f"{label}: {mutation.kind} {mutation.namespace}/{mutation.name} is not in the "
                           "test's manifests", label)
        self.reconcile()
        if mutation.action == "Patch" and before is not None:
            after = self._generation(mutation)
            if after == before:
                raise _Failure(f"{label} ({mutation.description}): metadata.generation stayed {before}", label)

    def _generation(self, mutation: Mutation) -> int | None:
        obj = _Status(self.snapshot()).get(mutation.kind, mutation.namespace, mutation.name)
        gen = obj.get("generation") if obj else None
        return gen if isinstance(gen, int) else None

    def _run_cases(self, test: Mapping[str, Any], cases: list[Json]) -> None:
        if not cases:
            return
        workers = max(1, min(CASE_WORKERS, len(cases)))
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="conformance-case")
        try:
            futures = [pool.submit(self._run_case, test, case) for case in cases]
            results = [f.result() for f in futures]
        except BaseException:
            # Ctrl-C: tell the workers to give up instead of waiting out their case timeouts.
            self.stop_event.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        for case, result in zip(cases, results, strict=True):
            if result is not None:
                note = ""
                if self.port_offset and (case.get("expected") or {}).get("redirect"):
                    note = f" [{ROOT_NOTE.format(offset=self.port_offset)}]"
                raise _Failure(f"case {case.get('name')!r}: {result}{note}", str(case.get("name")))

    # ----------------------------------------------------------------------------- one case

    def gateway_ip(self, namespace: str, name: str) -> str:
        deadline = time.monotonic() + self.opts.status_timeout_s
        while True:
            gw = _Status(self.snapshot()).get("Gateway", namespace, name)
            addresses = ((gw or {}).get("status") or {}).get("addresses") or []
            if addresses and addresses[0].get("value"):
                return str(addresses[0]["value"])
            if time.monotonic() >= deadline or self.stop_event.is_set():
                raise _Failure(f"Gateway {namespace}/{name} has no address in status")
            time.sleep(STATUS_POLL_S)

    def ref_file(self, ref: str) -> str:
        assert self.pki is not None
        with self._files_lock:
            path = self._files.get(ref)
            if path is None:
                path = self.pki_dir / f"ref-{len(self._files)}.pem"
                path.write_bytes(self.pki.resolve(ref))
                self._files[ref] = path
            return str(path)

    def tls_settings(self, tls: Mapping[str, Any] | None) -> TlsSettings | None:
        if not tls:
            return None
        assert self.pki is not None
        cert, key = tls.get("clientCertificate"), tls.get("clientKey")
        return TlsSettings(str(tls.get("serverName") or ""), self.pki.resolve(str(tls.get("serverCertificate"))),
                           self.ref_file(str(cert)) if cert else None, self.ref_file(str(key)) if key else None)

    def _run_case(self, test: Mapping[str, Any], case: Mapping[str, Any]) -> str | None:
        try:
            return self._case(test, case)
        except _Failure as exc:
            return exc.reason
        except KeyError as exc:
            return f"cannot resolve {exc}"
        except Exception as exc:  # report it against this case instead of aborting the run
            return f"harness error: {type(exc).__name__}: {exc}"

    def _case(self, test: Mapping[str, Any], case: Mapping[str, Any]) -> str | None:
        gwref = case.get("gateway") or test.get("gateway") or {}
        ip = self.gateway_ip(str(gwref.get("namespace")), str(gwref.get("name")))
        scheme = str(gwref.get("scheme") or "http")
        port = int(gwref.get("port") or _default_port(scheme))
        if gwref.get("portImplicit"):
            port = _default_port(scheme)  # Go dialled a port-less address: the scheme's port
        authority = _join_host_port(ip, None if port == _default_port(scheme) else port)
        base_request: Json = copy.deepcopy(dict(case.get("request") or {}))
        base_expected: Json = copy.deepcopy(dict(case.get("expected") or {}))
        tls = self.tls_settings(base_request.get("tls"))
        mirrors = [m for m in base_expected.get("mirroredTo") or [] if m.get("percent") is None]
        if base_expected.get("mirroredTo"):
            request_id = str(uuid.uuid4())
            base_request["path"] = add_query_param(str(base_request.get("path") or "/"), MIRROR_ID_PARAM, request_id)
            if base_expected.get("request"):
                base_expected["request"]["path"] = add_query_param(
                    str(base_expected["request"].get("path") or ""), MIRROR_ID_PARAM, request_id)
        templates = dict(case.get("templates") or {})

        def prepared(extra_headers: Mapping[str, str] | None = None) -> tuple[Json, Json, Outgoing]:
            request = copy.deepcopy(base_request)
            expected = copy.deepcopy(base_expected)
            for placeholder in templates:
                value = str(uuid.uuid4())
                request["path"] = str(request.get("path") or "").replace(placeholder, value)
                if expected.get("request") and expected["request"].get("path"):
                    expected["request"]["path"] = str(expected["request"]["path"]).replace(placeholder, value)
            if extra_headers:
                request["headers"] = {**(request.get("headers") or {}), **extra_headers}
            return request, expected, self._outgoing(request, expected, scheme, authority, tls)

        def attempt(extra_headers: Mapping[str, str] | None = None) -> tuple[str | None, RoundTrip | None]:
            request, expected, out = prepared(extra_headers)
            try:
                rt = send(out, self.port_offset)
            except RequestError as exc:
                return f"request error: {exc}", None
            assert self.pki is not None
            return compare_round_trip(request, expected, rt, out.url, self.pki.resolve), rt

        mode = case.get("mode") or "eventuallyConsistent"
        if mode == "websocket":
            return self._websocket_case(test, case, self._outgoing(base_request, base_expected, scheme, authority,
                                                                   tls), base_expected)
        if mode == "expectRequestError":
            _request, _expected, out = prepared()
            try:
                rt = send(out, self.port_offset)
            except RequestError:
                return None
            return f"expected the request to fail at the transport/TLS level, got HTTP {rt.status}"
        if mode != "eventuallyConsistent":
            return f"mode {mode!r} is not implemented by the harness"
        problem = await_convergence(lambda: attempt()[0], self.opts.case_timeout_s, self.stop_event)
        if problem is not None:
            return problem
        for mirror in mirrors:
            problem = self._await_mirror(mirror, [str(base_request.get("path")),
                                                  str((base_expected.get("request") or {}).get("path"))])
            if problem is not None:
                return problem
        dist = case.get("distribution")
        if dist:
            return self._distribution(dict(dist), dict(case.get("request") or {}), base_expected,
                                      (scheme, authority, tls), attempt, prepared)
        return None

    def _websocket_case(self, test: Mapping[str, Any], case: Mapping[str, Any], out: Outgoing,
                        expected: Mapping[str, Any]) -> str | None:
        spec = case.get("websocket") or {}
        exchange = websocket_exchange(spec)
        # Go's t.Name() of the subtest: the test, then the case name with spaces turned into underscores.
        go_name = f"{test.get('name')}/{str(case.get('name') or '').replace(' ', '_')}"
        origin = str(spec["origin"]).replace("<go test name>", go_name) if spec.get("origin") else None
        # websocket.Dial sends its own handshake headers and Origin only: no X-Echo-Set-Header, no User-Agent.
        out.headers = [(name, value) for name, value in out.headers if name != "X-Echo-Set-Header"]
        codes = [int(c) for c in (expected.get("statusCodes") or [101])]
        return await_convergence(
            lambda: websocket_round_trip(out, exchange, origin=origin, status_codes=codes,
                                         port_offset=self.port_offset),
            self.opts.case_timeout_s, self.stop_event)

    def _outgoing(self, request: Mapping[str, Any], expected: Mapping[str, Any], scheme: str, authority: str,
                  tls: TlsSettings | None) -> Outgoing:
        headers: dict[str, str] = {}
        set_headers = expected.get("backendSetResponseHeaders") or {}
        headers["X-Echo-Set-Header"] = ",".join(f"{k}:{v}" for k, v in set_headers.items())
        for name, value in (request.get("headers") or {}).items():
            canon = go_canonical_header(str(name))
            if canon == "Host":
                continue  # Go sends req.Host, never a Host entry of the header map
            headers[canon] = str(value)
        path, sep, query = str(request.get("path") or "/").partition("?")
        # Like Go's URL.EscapedPath for what a request line cannot carry (spaces, controls, non-ASCII).
        path = urllib.parse.quote(path, safe="/%!$&'()*+,;=:@-._~") + sep + query
        return Outgoing(
            method=str(request.get("method") or "GET"), scheme=scheme, authority=authority,
            path=path, host=str(request.get("host") or authority),
            headers=list(headers.items()), protocol=request.get("protocol"),
            follow_redirects=not request.get("unfollowRedirect"), tls=tls)

    def _await_mirror(self, mirror: Mapping[str, Any], paths: Sequence[str]) -> str | None:
        assert self.backends is not None
        ns, name = str(mirror.get("namespace") or ""), str(mirror.get("name"))
        servers = self.backends.echo_servers_for(ns, name)
        if not servers:
            return f"no echo backend runs for mirror target {ns}/{name}"
        deadline = time.monotonic() + MIRROR_WAIT_S
        # Go looks for the path as sent; a rewriting route would log the expected path: accept either.
        wanted = {p for p in paths if p and p != "None"}
        while True:
            if any(p in wanted for s in servers for p in s.seen_paths):
                return None
            if time.monotonic() >= deadline or self.stop_event.is_set():
                return f"mirror backend {ns}/{name} did not log a request to {sorted(wanted)} within {MIRROR_WAIT_S:g}s"
            time.sleep(0.1)

    # ----------------------------------------------------------------------------- distributions

    def _distribution(self, dist: Json, base_request: Json, base_expected: Json,
                      target: tuple[str, str, TlsSettings | None],
                      attempt: Callable[[Mapping[str, str] | None], tuple[str | None, RoundTrip | None]],
                      prepared: Callable[[Mapping[str, str] | None], tuple[Json, Json, Outgoing]]) -> str | None:
        kind = dist.get("kind")
        if kind == "weightedBackends":
            return self._weighted(dist, attempt)
        if kind == "backendHeaderMatchesPod":
            return self._header_matches_pod(dist, prepared)
        if kind == "mirrorPercentage":
            return self._mirror_percentage(dist, base_request, base_expected, target)
        return f"distribution check {kind!r} is not implemented by the harness"

    def _weighted(self, dist: Json,
                  attempt: Callable[[Mapping[str, str] | None], tuple[str | None, RoundTrip | None]]) -> str | None:
        weights = {str(k): float(v) for k, v in (dist.get("expectedWeights") or {}).items()}
        total = int(dist.get("totalRequests") or 500)
        workers = int(dist.get("concurrency") or 10)
        tolerance = float(dist.get("tolerance") or 0.05)
        problem = "no batch was sent"
        for batch in range(int(dist.get("maxAttempts") or 1)):
            if self.stop_event.is_set():
                return "interrupted"

            def one(_i: int) -> tuple[str | None, str]:
                # http.AddEntropy: half of the requests carry a random X-Jitter header.
                extra = {"X-Jitter": str(random.randint(0, 9999))} if random.random() < 0.5 else None
                result, rt = attempt(extra)
                if result is not None or rt is None:
                    return result or "no response", ""
                pod = str(captured_request(rt, "GET").get("pod") or "")
                return None, "-".join(pod.split("-")[:-2])

            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                outcomes = list(pool.map(one, range(total)))
            errors = [r for r, _ in outcomes if r is not None]
            seen = Counter(b for r, b in outcomes if r is None)
            if errors:
                problem = f"batch {batch + 1}: {len(errors)}/{total} requests failed, e.g. {errors[0]}"
                continue
            unexpected = sorted(b for b in seen if b not in weights)
            expected_backends = [b for b, w in weights.items() if w > 0]
            off = {b: seen.get(b, 0) / total for b, w in weights.items()
                   if abs(seen.get(b, 0) / total - w) > tolerance}
            if unexpected:
                problem = f"batch {batch + 1}: requests reached unexpected backends {unexpected}"
            elif len(seen) != len(expected_backends):
                problem = f"batch {batch + 1}: saw backends {dict(seen)}, expected {expected_backends}"
            elif off:
                problem = (f"batch {batch + 1}: distribution {dict(seen)} of {total} is off the weights "
                           f"{weights} by more than {tolerance}")
            else:
                return None
        return f"weighted distribution: {problem}"

    def _header_matches_pod(self, dist: Json,
                            prepared: Callable[[Mapping[str, str] | None], tuple[Json, Json, Outgoing]]) -> str | None:
        m = re.search(r"header '([^']+)'", str(dist.get("pass") or ""))
        header = m.group(1) if m else "Backend"
        for i in range(int(dist.get("requests") or 100)):
            if self.stop_event.is_set():
                return "interrupted"
            _request, _expected, out = prepared(None)
            try:
                rt = send(out, self.port_offset)
            except RequestError as exc:
                return f"request {i + 1}: {exc}"
            if rt.status != 200:
                return f"request {i + 1}: status {rt.status}"
            cap = captured_request(rt, out.method)
            values = {str(k).lower(): v for k, v in (cap.get("headers") or {}).items()}.get(header.lower()) or []
            if len(values) != 1:
                return f"request {i + 1}: expected one {header!r} header at the backend, got {values}"
            pod = str(cap.get("pod") or "")
            if not pod.startswith(str(values[0])):
                return f"request {i + 1}: pod {pod!r} does not start with {header} {values[0]!r}"
        return None

    def _mirror_percentage(self, dist: Json, base_request: Json, base_expected: Json,
                           target: tuple[str, str, TlsSettings | None]) -> str | None:
        assert self.backends is not None
        mirror = next((m for m in base_expected.get("mirroredTo") or [] if m.get("percent") is not None), None)
        if mirror is None:
            return "mirrorPercentage without a mirroredTo percent"
        servers = self.backends.echo_servers_for(str(mirror.get("namespace") or ""), str(mirror.get("name")))
        if not servers:
            return f"no echo backend runs for mirror target {mirror.get('namespace')}/{mirror.get('name')}"
        n = int(dist.get("totalRequests") or 500)
        p = float(mirror["percent"]) / 100.0
        k = float(dist.get("toleranceStdDevs") or 3.0)
        low, high = n * p - k * math.sqrt(n * p * (1 - p)), n * p + k * math.sqrt(n * p * (1 - p))
        original_path = base_request.get("path") or "/"  # as in the corpus, without a request id
        problem = "no batch was sent"
        for batch in range(int(dist.get("maxAttempts") or 1)):
            # A fresh request id per batch so the count covers exactly this batch's mirrored requests.
            request = copy.deepcopy(base_request)
            request["path"] = add_query_param(str(original_path), MIRROR_ID_PARAM, str(uuid.uuid4()))
            out = self._outgoing(request, base_expected, *target)

            def one(_i: int, out: Outgoing = out) -> int:
                try:
                    return send(out, self.port_offset).status
                except RequestError:
                    return 0

            with concurrent.futures.ThreadPoolExecutor(max_workers=int(dist.get("concurrency") or 10)) as pool:
                statuses = list(pool.map(one, range(n)))
            bad = [s for s in statuses if s != 200]
            if bad:
                problem = f"batch {batch + 1}: {len(bad)}/{n} requests did not get 200 (e.g. {bad[0]})"
                continue
            count, stable_since = -1, time.monotonic()
            deadline = time.monotonic() + MIRROR_WAIT_S
            while time.monotonic() < deadline:  # mirrored requests may trail the responses a little
                now_count = sum(1 for s in servers for seen in s.seen_paths if seen == out.path)
                if now_count != count:
                    count, stable_since = now_count, time.monotonic()
                elif time.monotonic() - stable_since >= 1.0:
                    break
                time.sleep(0.1)
            if low <= count <= high:
                return None
            problem = f"batch {batch + 1}: {count} of {n} requests mirrored, expected {low:.0f}..{high:.0f}"
        return f"mirror percentage: {problem}"


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _write_docs(path: Path, docs: Sequence[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump_all(list(docs), sort_keys=False), encoding="utf-8")
    tmp.replace(path)


# =============================================================================== entry point


def _load_index(corpus: Path) -> list[Json]:
    index = json.loads((corpus / "index.json").read_text(encoding="utf-8"))
    tests = index.get("tests") if isinstance(index, dict) else None
    if not isinstance(tests, list):
        raise ValueError(f"{corpus / 'index.json'}: no 'tests' list")
    return [t for t in tests if isinstance(t, dict) and t.get("name") and t.get("file")]


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    # SIGTERM should clean up like Ctrl-C does (stop nginx and the echo servers).
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_conformance(opts: ConformanceOptions, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the corpus (or the ``only`` tests) and return ``{"tests": [...], "summary": {...}}``."""
    entries = _load_index(opts.corpus)
    if opts.only:
        known = {str(e["name"]) for e in entries}
        unknown = [n for n in opts.only if n not in known]
        if unknown:
            raise ValueError(f"not in {opts.corpus / 'index.json'}: {', '.join(unknown)}")
        entries = [e for e in entries if e["name"] in set(opts.only)]
    results: list[TestResult] = []
    started = time.monotonic()
    harness = _Harness(opts, out)
    with _sigterm_as_interrupt():
        try:
            harness.setup()
            for entry in entries:
                result = harness.run_test(entry)
                results.append(result)
                line = f"{result.result.upper()} {result.name}"
                out(line + (f": {result.reason}" if result.reason else ""))
        finally:
            harness.close()
    summary = {k: sum(1 for r in results if r.result == k) for k in ("pass", "fail", "skip")}
    out(f"conformance summary: {summary['pass']} pass, {summary['fail']} fail, {summary['skip']} skip "
        f"({time.monotonic() - started:.1f}s)")
    return {"tests": [r.to_json() for r in results], "summary": summary}
