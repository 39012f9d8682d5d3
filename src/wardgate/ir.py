"""The intermediate representation: one Gateway's data plane, independent of nginx.

Translation produces it from resources; rendering consumes it. Nothing here knows about
Kubernetes objects or nginx syntax. All values are already validated by translation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from wardgate.keys import ObjectKey

# "NginxPrefix" and "NginxRegex" are ingress-nginx's location kinds (IngressNginxCompat
# pathMatching, docs/compatibility.md): a prefix of characters, not path elements ("/foo" also
# matches "/foobar"), and a case-insensitive regex anchored at the start only.
PathType = Literal["Exact", "PathPrefix", "RegularExpression", "NginxPrefix", "NginxRegex"]
ValueMatchType = Literal["Exact", "RegularExpression"]
BackendProtocol = Literal["http", "h2c", "ws"]


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int


@dataclass(frozen=True)
class TLSCertificate:
    """PEM material; `name` is a stable file-safe identifier. `key_type` (RSA, ECDSA, Ed25519, ...)
    tells certificates of one listener apart: nginx serves one per key type. `names`: the DNS
    names the certificate covers (subjectAltName, else the common name), lower case."""

    name: str
    cert_pem: str
    key_pem: str
    key_type: str = ""
    names: tuple[str, ...] = ()


# Mozilla's "intermediate" TLS 1.2 suites (server-side TLS guidelines 6.0, OpenSSL names): ECDHE
# key exchange (forward secrecy) with AEAD ciphers only, in Mozilla's order.
INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
)
# ingress-nginx's default Strict-Transport-Security for TLS hosts.
DEFAULT_HSTS = "max-age=31536000; includeSubDomains"


@dataclass(frozen=True)
class ListenerTLS:
    """Client-facing TLS settings of one listener. `min_version` "1.3" offers TLS 1.3 only (whose
    suites are all forward-secret AEAD); `ciphers` are the TLS 1.2 suites, in preference order."""

    min_version: Literal["1.2", "1.3"] = "1.2"
    ciphers: tuple[str, ...] = INTERMEDIATE_CIPHERS


@dataclass(frozen=True)
class UpstreamTLS:
    """TLS to the backend (BackendTLSPolicy): verify against `ca_pem` (None: the system CAs) for
    `server_name`, which is also sent as SNI; present `client_certificate` if the Gateway has one.
    `verify` False (IngressNginxCompat backendTLS): no certificate check and no SNI."""

    server_name: str
    ca_name: str | None = None
    ca_pem: str | None = None
    client_certificate: TLSCertificate | None = None
    verify: bool = True


@dataclass(frozen=True)
class Upstream:
    """A Service port resolved to endpoints. `name` is unique within one Gateway."""

    name: str
    endpoints: tuple[Endpoint, ...]
    protocol: BackendProtocol = "http"
    tls: UpstreamTLS | None = None
    # The Service port it stands for (error pages tell their backend which Service failed).
    service: str = ""
    service_port: int = 0


RequestValueKind = Literal["client_ip", "request_id", "host", "scheme", "auth_response"]


@dataclass(frozen=True)
class RequestValue:
    """A header value the data plane fills in per request, one of a fixed list (SecurityPolicy
    `valueFrom`): the client address as ClientIP decides it, the request id, the request's host
    or scheme; or (`auth_response`) the header `name` of the external auth service's answer."""

    kind: RequestValueKind
    name: str = ""


PlainValue = str | RequestValue


@dataclass(frozen=True)
class OnStatuses:
    """A response header value sent only on answers with one of `statuses` (sorted); other
    answers keep what they have (SecurityPolicy responseHeaders `statuses`)."""

    value: PlainValue
    statuses: tuple[int, ...]


HeaderValue = PlainValue | OnStatuses
# The statuses nginx's add_header acts on without `always` (ngx_http_headers_filter_module).
ADD_HEADER_STATUSES = (200, 201, 204, 206, 301, 302, 303, 304, 307, 308)


@dataclass(frozen=True)
class HeaderOps:
    set: tuple[tuple[str, HeaderValue], ...] = ()
    add: tuple[tuple[str, HeaderValue], ...] = ()
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)

    def __add__(self, other: HeaderOps) -> HeaderOps:
        """`other` applied after self, by header name (case-insensitive): for every name `other`
        mentions in set, add or remove, only its operations count (a route's filter after a
        policy's, a backend's after the rule's)."""
        named = {n.lower() for n, _ in (*other.set, *other.add)} | {n.lower() for n in other.remove}
        return HeaderOps(
            tuple(h for h in self.set if h[0].lower() not in named) + other.set,
            tuple(h for h in self.add if h[0].lower() not in named) + other.add,
            tuple(n for n in self.remove if n.lower() not in named) + other.remove,
        )


@dataclass(frozen=True)
class WeightedBackend:
    """`upstream` is None when the backendRef is invalid: its share of traffic gets a 500.

    Header operations here come from the backendRef's own filters and apply only to the
    requests sent to this backend, after the rule's.
    """

    upstream: str | None
    weight: int
    request_headers: HeaderOps = field(default_factory=HeaderOps)
    response_headers: HeaderOps = field(default_factory=HeaderOps)


@dataclass(frozen=True)
class PathMatch:
    type: PathType
    value: str


@dataclass(frozen=True)
class HeaderMatch:
    name: str
    value: str
    type: ValueMatchType = "Exact"


@dataclass(frozen=True)
class QueryMatch:
    name: str
    value: str
    type: ValueMatchType = "Exact"


@dataclass(frozen=True)
class Redirect:
    status_code: int = 302
    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    # "ReplaceFullPath" | "ReplacePrefixMatch" with the value; None keeps the request path.
    # "Location" (IngressNginxCompat redirect): the value is the whole Location, an http(s) URL as
    # it is, or a path after the request's scheme and Host header; no query string is added.
    # "HostURI" (IngressNginxCompat redirect.hostname): <scheme>://<hostname>:<port><request URI
    # without one final "/">, the port the listener's.
    path_type: str | None = None
    path_value: str | None = None
    # The PathPrefix the rule matched, needed for ReplacePrefixMatch.
    matched_prefix: str | None = None
    # "HostURI": the scheme and port come from X-Forwarded-Proto and -Port when sent.
    forwarded: bool = False


@dataclass(frozen=True)
class SslRedirect:
    """IngressNginxCompat sslRedirect: a plain-HTTP request (by X-Forwarded-Proto when sent, with
    `forwarded`) is answered `status_code https://<host><request URI>` between the policy's
    rewrite-phase checks and its ipAccess (render/policies.checks): the host is the Host header's
    (X-Forwarded-Host's first entry with `forwarded`) without its port, the request URI loses one
    final "/" unless `preserve_trailing_slash`."""

    status_code: int = 308
    preserve_trailing_slash: bool = False
    forwarded: bool = False


@dataclass(frozen=True)
class Rewrite:
    hostname: str | None = None
    # "ReplaceFullPath" | "ReplacePrefixMatch" (URLRewrite), or "NginxRewrite": nginx's
    # `rewrite <regex> <path_value> break` (IngressNginxCompat rewriteTarget), where the regex is
    # `regex`'s, the matched path: when it matches the normalised request path, the whole path
    # becomes path_value, whose `$1`..`$9` are the regex's captures; the query string is kept.
    path_type: str | None = None
    path_value: str | None = None
    matched_prefix: str | None = None
    regex: PathMatch | None = None


@dataclass(frozen=True)
class Mirror:
    upstream: str
    percent: float = 100.0


@dataclass(frozen=True)
class Cors:
    """The CORS filter. Origins are "*" or scheme://host[:port] with an optional "*." host prefix."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int = 5


@dataclass(frozen=True)
class Retry:
    """Try again on these statuses (and on connection errors), `attempts` more times at most."""

    codes: tuple[int, ...]
    attempts: int


@dataclass(frozen=True)
class SessionPersistence:
    """Requests carrying the same session `name` (a cookie, or a header) reach the same endpoint;
    one without it gets a new session in the response. A cookie has Path `path`, and Max-Age
    `max_age` when it outlives the browser session."""

    name: str
    type: Literal["Cookie", "Header"] = "Cookie"
    path: str = "/"
    max_age: int | None = None


@dataclass(frozen=True)
class RouteRef:
    """Where an action came from, for logs and errors."""

    namespace: str
    name: str
    rule: int
    rule_name: str | None = None
    kind: str = "HTTPRoute"  # or "GRPCRoute"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}#{self.rule_name or self.rule}"

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.namespace, self.name)


@dataclass(frozen=True)
class Action:
    """What a matched rule does. Several matches of one rule share an action."""

    id: int
    source: RouteRef
    backends: tuple[WeightedBackend, ...] = ()
    request_headers: HeaderOps = field(default_factory=HeaderOps)
    response_headers: HeaderOps = field(default_factory=HeaderOps)
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    mirrors: tuple[Mirror, ...] = ()
    cors: Cors | None = None
    retry: Retry | None = None
    # Answered by the gateway itself, e.g. 500 when no backend is valid.
    direct_status: int | None = None
    # Answered 404 by the gateway once every check of the place ran (authentication, rate limits:
    # nginx's content phase), as a backend's 404 would be: IngressNginxCompat notFound.
    not_found: bool = False
    # timeouts.request (the whole exchange, retries included) and timeouts.backendRequest (one
    # try); None when not set, 0 when disabled.
    request_timeout_s: float | None = None
    backend_timeout_s: float | None = None
    # A GRPCRoute rule: proxied with grpc_pass (HTTP/2 to the backend), not proxy_pass.
    grpc: bool = False
    session: SessionPersistence | None = None
    ssl_redirect: SslRedirect | None = None


@dataclass(frozen=True)
class Match:
    """One HTTPRouteMatch. `order` is its global precedence rank within the virtual host."""

    path: PathMatch
    action: int
    order: int
    method: str | None = None
    headers: tuple[HeaderMatch, ...] = ()
    query: tuple[QueryMatch, ...] = ()

    @property
    def conditional(self) -> bool:
        return bool(self.method or self.headers or self.query)


@dataclass(frozen=True)
class ClientValidation:
    """Client certificates on an HTTPS port: verified against `ca_pem`, or only asked for when
    `insecure_fallback` (then requests without a valid certificate are served too)."""

    name: str
    ca_pem: str
    insecure_fallback: bool = False


@dataclass(frozen=True)
class DirectResponse:
    """An exact path the gateway answers itself (security.txt, robots.txt, ...)."""

    path: str
    status: int
    content_type: str
    body: str


@dataclass(frozen=True)
class RateLimit:
    """`requests` per `period_s` with `burst` extra at once, counted per key in budget `bucket`."""

    bucket: str
    requests: int
    period_s: int
    burst: int = 0
    key: Literal["ip", "header", "route"] = "ip"
    header: str | None = None
    exempt: tuple[str, ...] = ()
    status: int = 429
    headers: bool = False


@dataclass(frozen=True)
class Concurrency:
    """At most `limit` requests in flight per client IP in budget `bucket`; more get `status`."""

    bucket: str
    limit: int
    status: int = 429
    exempt: tuple[str, ...] = ()


@dataclass(frozen=True)
class NginxCors:
    """ingress-nginx's CORS block: `origins` ("*" alone, or origins with an optional "*." label),
    header values as written."""

    origins: tuple[str, ...]
    methods: str
    headers: str
    expose: str
    credentials: bool
    max_age: int


@dataclass(frozen=True)
class WafExclusion:
    """Rules off (all of the WAF when `rule_ids` is empty), optionally only for some args/headers
    or only on some paths."""

    rule_ids: tuple[int, ...] = ()
    args: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    paths: tuple[PathMatch, ...] = ()


# What a route without allowedMethods allows, CRS's method check included.
STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# nginx's client_max_body_size when requestLimits.maxBodySize is unset.
NGINX_BODY_LIMIT = 1 << 20
# ModSecurity holds a body in memory: where maxBodySize is 0 (no limit) it still stops here.
WAF_BODY_CAP = 64 << 20


@dataclass(frozen=True)
class Waf:
    mode: Literal["Block", "DetectOnly", "Off"] = "Block"
    paranoia: int = 1
    threshold: int = 5
    exclusions: tuple[WafExclusion, ...] = ()
    methods: tuple[str, ...] = STANDARD_METHODS  # CRS's tx.allowed_methods
    uninspected_types: tuple[str, ...] = ()  # added to CRS's allowed content types
    body_limit: int = NGINX_BODY_LIMIT  # ModSecurity's limits, equal to nginx's unless that has none


DuplicateAction = Literal["allow", "reject", "first", "last"]


@dataclass(frozen=True)
class BasicAuth:
    """HTTP Basic authentication. `users` is the htpasswd file nginx reads (one `user:hash` line
    each), None when the Secret can't be used: then every request gets 500. `key` names the
    Secret the users come from: the file's name follows it, so it stays the same across edits."""

    realm: str
    key: str
    users: str | None


@dataclass(frozen=True)
class ExternalAuth:
    """Ask `upstream` (None: unusable, every request gets 500) with a bodiless `method` request
    for `path` before serving. `request_headers`: set on the auth request; `response_headers`:
    copied from its answer to the backend's request. `signin`: a 401 becomes a 302 there, the
    request's URL in query parameter `signin_param`."""

    upstream: str | None
    path: str
    host: str
    method: str = "GET"
    request_headers: tuple[tuple[str, HeaderValue], ...] = ()
    response_headers: tuple[str, ...] = ()
    signin: str | None = None
    signin_param: str = "rd"


@dataclass(frozen=True)
class ErrorPages:
    """Answers with `statuses` are replaced by `upstream`'s answer to GET / with X-Code and
    context headers; with `no_endpoints`, requests for a backend without endpoints go to
    `upstream` as they came. `upstream` None: the Service can't be used (those answers stay)."""

    upstream: str | None
    statuses: tuple[int, ...] = ()
    no_endpoints: bool = False
    request_headers: tuple[tuple[str, HeaderValue], ...] = ()  # set after the context headers


@dataclass(frozen=True)
class Policy:
    """The security settings in effect for a set of requests, already merged across levels.

    `id` is unique within one Gateway; equal settings share one id.
    """

    id: int
    request_headers: HeaderOps = field(default_factory=HeaderOps)
    response_headers: HeaderOps = field(default_factory=HeaderOps)
    allowed_methods: tuple[str, ...] = ()
    # The 405 for other methods names the allowed ones in an Allow header (and replaces a backend's).
    allow_header: bool = True
    allowlist: tuple[PathMatch, ...] = ()
    allowlist_status: int = 404
    direct: tuple[DirectResponse, ...] = ()
    # None: duplicate headers are passed on as they came.
    duplicate_default: DuplicateAction | None = None
    duplicate_headers: tuple[tuple[str, DuplicateAction], ...] = ()  # (lower-case name, action)
    ip_allow: tuple[str, ...] = ()
    ip_deny: tuple[str, ...] = ()
    max_body_bytes: int | None = None
    max_url_length: int | None = None
    max_header_bytes: int | None = None
    rate_limit: RateLimit | None = None
    concurrency: Concurrency | None = None
    nginx_cors: NginxCors | None = None
    waf: Waf | None = None
    basic_auth: BasicAuth | None = None
    external_auth: ExternalAuth | None = None
    error_pages: ErrorPages | None = None
    # Strict-Transport-Security of a route's or rule's answers on HTTPS, when a route-level policy
    # sets one ("" for none of the gateway's); None: the host's (VirtualHost.hsts).
    hsts: str | None = None

    def direct_for(self, path: str) -> int | None:
        """Index of the direct response for `path`, if any."""
        for i, resp in enumerate(self.direct):
            if resp.path == path:
                return i
        return None


@dataclass(frozen=True)
class ClientIP:
    """Where the client address comes from. hops: the Nth X-Forwarded-For entry from the right;
    trusted: proxies whose X-Forwarded-For (or PROXY header) is believed."""

    source: Literal["connection", "xff", "proxy_protocol"] = "connection"
    hops: int | None = None
    trusted: tuple[str, ...] = ()
    # X-Forwarded-For to the backend: "replace" sends the trusted chain only (from the decided
    # client address to the connection's peer), "append" the client's header plus the peer.
    forwarded_for: Literal["replace", "append"] = "replace"


@dataclass(frozen=True)
class BackendHeaders:
    """Gateway-wide choices about the headers every proxied request carries (ClientTrafficPolicy
    backendHeaders). preserve_request_id: X-Request-Id is the client's own when it sent one;
    forwarded_host "host_header": X-Forwarded-Host is the Host header as sent (port included);
    original_forwarded: the client's X-Forwarded-For/-Host also go on as X-Original-Forwarded-*."""

    preserve_request_id: bool = False
    forwarded_host: Literal["routed_host", "host_header"] = "routed_host"
    original_forwarded: bool = False


@dataclass(frozen=True)
class VirtualHost:
    """A hostname on one port. "" is the catch-all; "*.x" is a suffix wildcard."""

    hostname: str
    matches: tuple[Match, ...]
    # The listener's certificates, one per key type; the client's signature algorithms pick one.
    certificates: tuple[TLSCertificate, ...] = ()
    # The listener that owns this hostname (listener isolation, misdirected-request checks).
    listener: str = ""
    # Policy ids (Gateway.policies): for requests no route serves, and per action id.
    policy: int | None = None
    action_policies: tuple[tuple[int, int], ...] = ()
    tls: ListenerTLS = field(default_factory=ListenerTLS)
    # Strict-Transport-Security value sent on every response of an HTTPS host; "" sends none.
    hsts: str = ""


@dataclass(frozen=True)
class Port:
    """One listening port. Listener ports are as declared; offsets are applied when rendering."""

    port: int
    protocol: Literal["HTTP", "HTTPS"]
    vhosts: tuple[VirtualHost, ...]
    # For HTTPS: the certificates served when no virtual host matches the SNI name.
    default_certificates: tuple[TLSCertificate, ...] = ()
    # (listener hostname or "", listener name) of every listener served on this port.
    listeners: tuple[tuple[str, str], ...] = ()
    client_validation: ClientValidation | None = None
    # The Gateway-level policy, for requests to a host no listener on this port accepts.
    policy: int | None = None
    # Cleartext HTTP/2 with prior knowledge (h2c), for GRPCRoutes. nginx 1.22 then speaks only
    # HTTP/2 on the port: HTTP/1.1 clients can't use it. (HTTPS ports always offer h2 by ALPN.)
    http2: bool = False
    # TLS versions are chosen per port, before the SNI name picks a listener.
    tls_min_version: Literal["1.2", "1.3"] = "1.2"
    # HTTPS sharing its port with TLS passthrough: the stream module owns the port and hands this
    # port's hostnames to the HTTP server over a local socket, with the PROXY protocol.
    behind_stream: bool = False


@dataclass(frozen=True)
class SniRoute:
    """TLS connections whose SNI name matches `hostname` ("*.x" a suffix wildcard, "" any name)
    go to `backends` as they came, without terminating TLS. A backend whose upstream is None
    (invalid backendRef) gets its share of connections closed."""

    hostname: str
    backends: tuple[WeightedBackend, ...]
    source: RouteRef


@dataclass(frozen=True)
class PassthroughPort:
    """A port whose TLS connections are routed by SNI name before any TLS is terminated.

    `terminate`: names owned by HTTPS listeners on the same port, handed to the HTTP server
    (`terminate_default`: so are names nothing else claims, for an HTTPS listener without a
    hostname). `reject`: names owned by a TLS listener with no route for them. Every other
    name, and a connection without one, is closed."""

    port: int
    routes: tuple[SniRoute, ...]
    terminate: tuple[str, ...] = ()
    terminate_default: bool = False
    reject: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gateway:
    namespace: str
    name: str
    ports: tuple[Port, ...]
    upstreams: tuple[Upstream, ...]
    actions: tuple[Action, ...]
    policies: tuple[Policy, ...] = ()
    client_ip: ClientIP = field(default_factory=ClientIP)
    passthrough: tuple[PassthroughPort, ...] = ()
    # TCP upstreams of the passthrough routes (nginx's stream module).
    stream_upstreams: tuple[Upstream, ...] = ()
    # 400 for request paths a backend could read differently from nginx's $uri (ClientTrafficPolicy).
    reject_ambiguous_paths: bool = True
    backend_headers: BackendHeaders = field(default_factory=BackendHeaders)

    @property
    def key(self) -> ObjectKey:
        return ObjectKey("Gateway", self.namespace, self.name)
