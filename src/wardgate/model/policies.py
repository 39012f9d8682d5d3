"""wardgate's policy resources (GEP-713 policy attachment): security, rate limits, client traffic.

These models validate input and are the source of the CRDs in deploy/crds/ (`wardgate crds`).
Every field a user can set is checked here, so errors name the field; checks that need other
objects or the current time (targets, ConfigMaps, security.txt expiry) happen in translation.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from wardgate.model.base import (
    HeaderName,
    HeaderValue,
    MatchableHeaderName,
    Model,
    PortNumber,
    PreciseHostname,
    Resource,
    SectionName,
)
from wardgate.model.gatewayapi import HTTPHeaderFilter, HTTPPathMatch, Method, check_route_path
from wardgate.validation import validators

POLICY_GROUP = "policy.wardgate.io"
POLICY_VERSION = "v1alpha1"

_QUANTITY = re.compile(r"^([0-9]+)(Ki|Mi|Gi|k|M|G)?$")
_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _quantity(value: Any) -> Any:
    """A Kubernetes-style byte quantity (512, 64Ki, 1Mi, 1G) -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512, 64Ki or 1Mi")
    if isinstance(value, int):
        return value
    m = _QUANTITY.fullmatch(str(value))
    if not m:
        raise ValueError(f"invalid size {value!r}: expected a number with an optional Ki, Mi, Gi, k, M or G suffix")
    return int(m.group(1)) * _UNITS[m.group(2)]


ByteSize = Annotated[int, BeforeValidator(_quantity), Field(ge=0, le=2**40), WithJsonSchema(
    {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True,
     "pattern": _QUANTITY.pattern, "description": "bytes, or a size such as 64Ki or 1Mi"})]


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"invalid CIDR {value!r}: {exc}") from None
    validators().no_zone(net.network_address, value)
    return str(net)


CIDR = Annotated[str, AfterValidator(_cidr)]


def _contact_uri(value: str) -> str:
    validators().text(value, "security.txt value", 2048)
    if not re.fullmatch(r"(https://|mailto:|tel:)\S+", value):
        raise ValueError(f"{value!r} must be an https:, mailto: or tel: URI (RFC 9116 2.5.3)")
    return value


def _https_uri(value: str) -> str:
    validators().text(value, "security.txt value", 2048)
    if not re.fullmatch(r"(https://|dns:|openpgp4fpr:)\S+", value):
        raise ValueError(f"{value!r} must be an https URI (RFC 9116)")
    return value


ContactURI = Annotated[str, AfterValidator(_contact_uri)]
WebURI = Annotated[str, AfterValidator(_https_uri)]


ExactPath = Annotated[str, AfterValidator(check_route_path)]


class PolicyTargetRef(Model):
    """A local (same-namespace) reference to a Gateway or an HTTPRoute, optionally one section."""

    group: Literal["gateway.networking.k8s.io"] = "gateway.networking.k8s.io"
    kind: Literal["Gateway", "HTTPRoute"]
    name: Annotated[str, Field(min_length=1, max_length=253)]
    section_name: SectionName | None = None


TargetRefs = Annotated[list[PolicyTargetRef], Field(min_length=1, max_length=16)]

_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class PolicyParentRef(Model):
    """A Gateway (optionally one listener) that a route-level policy applies on. `namespace`
    defaults to the policy's, as a route's parentRefs default to the route's."""

    namespace: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] | None \
        = None
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=_NAME)]
    section_name: SectionName | None = None


class PolicySpec(Model):
    target_refs: TargetRefs


class ScopedPolicySpec(PolicySpec):
    """A policy kind that can target routes, and so can be limited to some of their parents."""

    parent_refs: Annotated[list[PolicyParentRef], Field(min_length=1, max_length=16)] | None = None

    @model_validator(mode="after")
    def _scoped_routes(self) -> ScopedPolicySpec:
        if self.parent_refs is None:
            return self
        if any(ref.kind != "HTTPRoute" for ref in self.target_refs):
            raise ValueError("parentRefs limits a policy on HTTPRoutes to some of their Gateways: every "
                             "targetRef must then be an HTTPRoute (a Gateway target already names its Gateway)")
        seen: set[tuple[str | None, str, str | None]] = set()
        for ref in self.parent_refs:
            key = (ref.namespace, ref.name, ref.section_name)
            if key in seen:
                raise ValueError(f"parentRefs lists {ref.name}"
                                 f"{'/' + ref.section_name if ref.section_name else ''} twice")
            seen.add(key)
        return self


class Policy(Resource):
    """A wardgate policy: something with targetRefs."""

    spec: PolicySpec


# --- SecurityPolicy -----------------------------------------------------------------------------


class MethodNotAllowed(Model):
    """The answer to a method `allowedMethods` doesn't list: 405 with an `Allow` header naming the
    allowed methods (RFC 9110 15.5.6), or, with `allowHeader: false`, without one (what nginx's
    `return 405` sent), leaving a backend's own 405 and its Allow untouched."""

    allow_header: bool = True


class UrlAllowlist(Model):
    """Only these paths are served; anything else gets `status`."""

    paths: Annotated[list[HTTPPathMatch], Field(min_length=1, max_length=256)]
    status: Annotated[int, Field(ge=400, le=599)] = 404


class SecurityTxt(Model):
    """RFC 9116 fields, served at /.well-known/security.txt."""

    contact: Annotated[list[ContactURI], Field(min_length=1, max_length=16)]
    expires: datetime
    encryption: list[WebURI] = Field(default_factory=list)
    acknowledgments: list[WebURI] = Field(default_factory=list)
    preferred_languages: list[Annotated[str, Field(pattern=r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")]] = Field(
        default_factory=list)
    canonical: list[WebURI] = Field(default_factory=list)
    policy: list[WebURI] = Field(default_factory=list)
    hiring: list[WebURI] = Field(default_factory=list)

    @field_validator("expires")
    @classmethod
    def _future(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2027-06-30T00:00:00Z (RFC 3339)")
        # RFC 9116 2.5.5: an expired file must not be used. Checked on every reconcile, so an
        # expiring policy turns Invalid while its last accepted version keeps serving.
        if value <= datetime.now(UTC):
            raise ValueError(f"{value.isoformat()} is in the past (RFC 9116 2.5.5)")
        return value


class ConfigMapKeyRef(Model):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class BodySource(Model):
    config_map_ref: ConfigMapKeyRef


MAX_BODY = 64 * 1024


def _body(value: str) -> str:
    if len(value.encode()) > MAX_BODY:
        raise ValueError(f"body is larger than {MAX_BODY // 1024} KiB")
    if "\x00" in value:
        raise ValueError("body must not contain NUL characters")
    return value


class DirectResponse(Model):
    """Answer an exact path from the gateway itself."""

    path: ExactPath
    status: Annotated[int, Field(ge=200, le=599)] = 200
    content_type: Annotated[str, Field(max_length=256, pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+"
                                                               r"(\s*;\s*[A-Za-z0-9_-]+=[A-Za-z0-9_.-]+)*$")] \
        = "text/plain"
    body: Annotated[str, AfterValidator(_body)] | None = None
    body_from: BodySource | None = None

    @model_validator(mode="after")
    def _one_body(self) -> DirectResponse:
        if self.body is not None and self.body_from is not None:
            raise ValueError("set at most one of body and bodyFrom")
        return self


DuplicateAction = Literal["Allow", "Reject", "KeepFirst", "KeepLast"]
SINGLETON_HEADERS = ("Host", "Content-Length", "Authorization", "Content-Type")


class DuplicateHeader(Model):
    name: HeaderName
    action: DuplicateAction


class DuplicateHeaders(Model):
    """What to do when a request carries a header more than once."""

    default: DuplicateAction = "Allow"
    headers: Annotated[list[DuplicateHeader], Field(max_length=64)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> DuplicateHeaders:
        seen: set[str] = set()
        for h in self.headers:
            if h.name.lower() in seen:
                raise ValueError(f"header {h.name!r} is listed twice")
            seen.add(h.name.lower())
        return self


class IPAccess(Model):
    """CIDR lists on the client IP. With `allow`, everything not allowed is denied; the longest
    matching prefix decides between the lists."""

    allow: Annotated[list[CIDR], Field(max_length=1024)] = Field(default_factory=list)
    deny: Annotated[list[CIDR], Field(max_length=1024)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> IPAccess:
        both = set(self.allow) & set(self.deny)
        if both:
            raise ValueError(f"{sorted(both)[0]} is in both allow and deny")
        return self


class ConcurrentRequests(Model):
    """Requests a client IP may have in flight at once (nginx's limit_conn, as ingress-nginx's
    limit-connections); the next one gets `status`. Counted per gateway instance."""

    limit: Annotated[int, Field(ge=1, le=1_000_000)]
    status: Annotated[int, Field(ge=400, le=599)] = 429
    exempt_cidrs: Annotated[list[CIDR], Field(max_length=1024, alias="exemptCIDRs")] = Field(default_factory=list)


# ingress-nginx's own checks of its cors-* annotations (internal/ingress/annotations/cors): the
# values are sent verbatim, so only these characters.
_NGINX_CORS_ORIGIN = re.compile(r"[a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?|null")
_NGINX_CORS_METHODS = re.compile(r"([A-Za-z]+,?\s?)+")
_NGINX_CORS_HEADERS = re.compile(r"[A-Za-z0-9\-_, ]*")
_NGINX_CORS_EXPOSE = re.compile(r"(([A-Za-z0-9\-_]+|\*),?\s?)*")


def _check(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value
    return AfterValidator(check)


class IngressNginxCORS(Model):
    """ingress-nginx's CORS (its enable-cors and cors-* annotations), kept as it behaved: every
    response to an allowed origin gets all the headers, every OPTIONS request from one is answered
    204, origins match case-insensitively at the end only, `*` answers `*`. Values are sent as
    written. The Gateway API CORS filter is the portable alternative (docs/policies.md)."""

    allow_origins: Annotated[list[Annotated[str, Field(max_length=253)]], Field(min_length=1, max_length=64)] = Field(
        default_factory=lambda: ["*"])
    allow_methods: Annotated[str, Field(max_length=256), _check(_NGINX_CORS_METHODS, "a list of methods")] = \
        "GET, PUT, POST, DELETE, PATCH, OPTIONS"
    allow_headers: Annotated[str, Field(max_length=1024), _check(_NGINX_CORS_HEADERS, "a list of header names")] = \
        "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
    expose_headers: Annotated[str, Field(max_length=1024), _check(_NGINX_CORS_EXPOSE, "a list of header names")] = ""
    allow_credentials: bool = True
    max_age: Annotated[int, Field(ge=0, le=2**31 - 1)] = 1728000

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        if "*" in values and len(values) > 1:
            raise ValueError("'*' must be the only origin")
        for v in values:
            if v != "*" and not _NGINX_CORS_ORIGIN.fullmatch(v):
                raise ValueError(f"{v!r} is not an origin (scheme://host[:port], '*.' for one label, or null)")
        return values


class RequestLimits(Model):
    max_body_size: ByteSize | None = None
    max_url_length: Annotated[int, Field(ge=16, le=65536)] | None = Field(default=None, alias="maxURLLength")
    max_header_size: Annotated[ByteSize, Field(ge=256)] | None = None


def _rule_safe(p: HTTPPathMatch) -> HTTPPathMatch:
    validators().waf_path(p.value)  # it becomes part of a ModSecurity rule
    return p


class WafExclusion(Model):
    """Turn rules (or, with only `paths`, the whole WAF) off, optionally for some args/headers or paths."""

    rule_ids: Annotated[list[Annotated[int, Field(ge=1, le=999999999)]], Field(max_length=256)] = Field(
        default_factory=list)
    args: list[Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.\[\]-]+$")]] = Field(
        default_factory=list)
    request_headers: list[MatchableHeaderName] = Field(
        default_factory=list)
    paths: Annotated[list[Annotated[HTTPPathMatch, AfterValidator(_rule_safe)]], Field(max_length=64)] = Field(
        default_factory=list)

    @model_validator(mode="after")
    def _meaningful(self) -> WafExclusion:
        if not self.rule_ids and not self.paths:
            raise ValueError("an exclusion needs ruleIds, paths, or both")
        if (self.args or self.request_headers) and not self.rule_ids:
            raise ValueError("args and requestHeaders need ruleIds: which rules should skip them")
        return self


def _uninspected_type(value: str) -> str:
    validators().media_type(value)
    if value.endswith("+json") or value in ("application/json", "application/csp-report"):
        raise ValueError(f"{value} is parsed as JSON and allowed already; list only types the WAF cannot parse")
    if value.startswith("multipart/") or value.endswith("xml") or value == "application/x-www-form-urlencoded":
        raise ValueError(f"{value} has a body parser of its own; list only types the WAF cannot parse")
    return value


class Waf(Model):
    mode: Literal["Block", "DetectOnly", "Off"] = "Block"
    paranoia_level: Annotated[int, Field(ge=1, le=4)] = 1
    anomaly_threshold: Annotated[int, Field(ge=1, le=10000)] = 5
    exclusions: Annotated[list[WafExclusion], Field(max_length=256)] = Field(default_factory=list)
    # Media types no ModSecurity body parser reads (text/plain, application/octet-stream, NDJSON):
    # CRS refuses them (920420) unless listed here, and their bodies then pass uninspected.
    allow_uninspected_content_types: Annotated[list[Annotated[str, AfterValidator(_uninspected_type)]], Field(
        max_length=32)] = Field(default_factory=list)


class Hsts(Model):
    """Strict-Transport-Security on HTTPS listeners (never sent over plain HTTP). On by default
    with ingress-nginx's value; `enabled: false` leaves the header to the backend."""

    enabled: bool = True
    max_age: Annotated[int, Field(ge=0, le=2**31 - 1)] = 31536000
    include_sub_domains: bool = True
    preload: bool = False

    @model_validator(mode="after")
    def _preloadable(self) -> Hsts:
        # The browsers' preload lists take only hosts that ask for a year or more, subdomains included.
        if self.preload and (self.max_age < 31536000 or not self.include_sub_domains):
            raise ValueError("preload needs maxAge of at least 31536000 and includeSubDomains")
        return self

    def header(self) -> str:
        """The header value, "" when disabled."""
        if not self.enabled:
            return ""
        return f"max-age={self.max_age}" + ("; includeSubDomains" if self.include_sub_domains else "") + (
            "; preload" if self.preload else "")


# Values a policy header can take from the request, a fixed list: a header value is never a free
# nginx variable. docs/policies.md says what each is.
ValueFrom = Literal["ClientIP", "RequestID", "Host", "Scheme"]


class PolicyHeader(Model):
    """A header to set or add: a fixed `value`, or `valueFrom` one of a few per-request values."""

    name: HeaderName
    value: HeaderValue | None = None
    value_from: ValueFrom | None = None

    @model_validator(mode="after")
    def _one_value(self) -> PolicyHeader:
        if (self.value is None) == (self.value_from is None):
            raise ValueError(f"header {self.name!r} needs exactly one of value and valueFrom")
        return self


class PolicyHeaderFilter(Model):
    """A SecurityPolicy's header changes: Gateway API's header filter, plus `valueFrom`."""

    set: list[PolicyHeader] = Field(default_factory=list)
    add: list[PolicyHeader] = Field(default_factory=list)
    remove: list[HeaderName] = Field(default_factory=list)


# --- authentication and error pages -------------------------------------------------------------

_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class LocalSecretReference(Model):
    """A Secret in the policy's own namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=_NAME)]


def _realm(value: str) -> str:
    # nginx writes the realm between double quotes in WWW-Authenticate without escaping anything.
    validators().text(value, "realm", 256)
    if '"' in value or "\\" in value:
        raise ValueError(f"realm {value!r} must not contain '\"' or '\\'")
    if value == "off":  # nginx's auth_basic would read it as "no authentication"
        raise ValueError("realm 'off' would turn authentication off in nginx; choose another")
    return value


class BasicAuth(Model):
    """HTTP Basic authentication against the users of a Secret: `Htpasswd` reads an htpasswd file
    from key `key` (ingress-nginx's `auth`); `UserMap` reads one user per key, its value the
    password hash (ingress-nginx's auth-map). Hash formats are checked in translation, where the
    Secret is read."""

    secret_ref: LocalSecretReference
    format: Literal["Htpasswd", "UserMap"] = "Htpasswd"
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] | None = None
    realm: Annotated[str, AfterValidator(_realm)] = "Restricted"

    @model_validator(mode="after")
    def _key(self) -> BasicAuth:
        if self.key is not None and self.format == "UserMap":
            raise ValueError("key applies to format Htpasswd only (UserMap reads every key of the Secret)")
        return self


class ServiceBackendRef(Model):
    """A Service port, in the policy's namespace unless `namespace` says otherwise (then a
    ReferenceGrant in that namespace must allow it, as for routes). Without `port`, the Service's
    first port (what ingress-nginx's default-backend annotation used)."""

    group: Literal["", "core"] = ""
    kind: Literal["Service"] = "Service"
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=_NAME)]
    namespace: Annotated[str, Field(min_length=1, max_length=63, pattern=_LABEL)] | None = None
    port: PortNumber | None = None


# A path with an optional query: what the auth request asks for.
_REQUEST_TARGET = re.compile(r"^(/[^?\s#]*)(\?[-A-Za-z0-9._~!$&'()*+,;=:@/?%]*)?$")


def _request_target(value: str) -> str:
    m = _REQUEST_TARGET.fullmatch(value)
    if m is None or len(value) > 2048:
        raise ValueError(f"invalid path {value!r}: an absolute path, optionally with a ?query")
    validators().path(m.group(1))
    return value


_SIGNIN_URL = re.compile(r"^(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?)?/[-A-Za-z0-9._~!$&'()*+,;=:@/?%]*$")


def _signin_url(value: str) -> str:
    validators().text(value, "signin URL", 2048)
    if not _SIGNIN_URL.fullmatch(value) or "#" in value:
        raise ValueError(f"invalid signin URL {value!r}: an http(s) URL or an absolute path, without a fragment")
    return value


class Signin(Model):
    """Where a browser goes when the auth service answers 401: a 302 to `url`, with the request's
    URL in query parameter `redirectParam` (unless `url` already has that parameter)."""

    url: Annotated[str, AfterValidator(_signin_url)]
    redirect_param: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = "rd"


class ExternalAuth(Model):
    """Ask an HTTP service before serving a request (nginx's auth_request, like ingress-nginx's
    auth-url): the service gets a bodiless request with the client's headers; 2xx lets the request
    through, 401 and 403 are the answer, anything else is 500."""

    backend_ref: ServiceBackendRef
    path: Annotated[str, AfterValidator(_request_target)] = "/"
    # The Host the auth service sees; default: the Service's cluster name.
    hostname: PreciseHostname | None = None
    method: Method | None = None  # default GET
    request_headers: Annotated[list[PolicyHeader], Field(max_length=32)] = Field(default_factory=list)
    # Copied from the auth service's answer to the backend's request (replacing the client's).
    response_headers: Annotated[list[MatchableHeaderName], Field(max_length=32)] = Field(default_factory=list)
    signin: Signin | None = None

    @model_validator(mode="after")
    def _unique(self) -> ExternalAuth:
        for field, names in (("requestHeaders", [h.name for h in self.request_headers]),
                             ("responseHeaders", list(self.response_headers))):
            low = [n.lower() for n in names]
            dup = sorted({n for n in low if low.count(n) > 1})
            if dup:
                raise ValueError(f"{field}: header {dup[0]!r} is listed twice")
        if any(h.lower() in _AUTH_RESERVED for h in (*(h.name for h in self.request_headers),)):
            raise ValueError(f"requestHeaders: {', '.join(sorted(_AUTH_RESERVED))} are set by wardgate")
        return self


# Request headers every auth request carries (docs/policies.md, External authentication).
_AUTH_RESERVED = frozenset({"host", "content-length", "connection", "x-original-url", "x-original-method"})


class ErrorPages(Model):
    """Answers with one of `statuses` (from the backend or the gateway) are replaced by the answer
    of `backendRef` to `GET /` with X-Code and context headers, as ingress-nginx's
    custom-http-errors did. `noEndpoints`: a request whose backend has no ready endpoint is sent
    to `backendRef` as it came, with X-Code 503 (ingress-nginx's default-backend annotation)."""

    backend_ref: ServiceBackendRef
    statuses: Annotated[list[Annotated[int, Field(ge=400, le=599)]], Field(max_length=64)] = Field(
        default_factory=list)
    no_endpoints: bool = False
    # Set on the error-page request after wardgate's own (e.g. the X-Ingress-Name ingress-nginx sent).
    request_headers: Annotated[list[PolicyHeader], Field(max_length=16)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> ErrorPages:
        if not self.statuses and not self.no_endpoints:
            raise ValueError("list statuses, set noEndpoints, or both")
        if len(set(self.statuses)) != len(self.statuses):
            raise ValueError("statuses lists a status twice")
        return self
class ResponseHeader(PolicyHeader):
    """A response header to set or add: on every answer, or only on answers with one of
    `statuses` (the others keep what they have)."""

    statuses: Annotated[list[Annotated[int, Field(ge=100, le=599)]], Field(min_length=1, max_length=64)] | None = None

    @field_validator("statuses")
    @classmethod
    def _unique(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"status {next(s for s in value if value.count(s) > 1)} is listed twice")
        return value


class ResponseHeaderFilter(Model):
    """A SecurityPolicy's response header changes: PolicyHeaderFilter's, plus `statuses`."""

    set: list[ResponseHeader] = Field(default_factory=list)
    add: list[ResponseHeader] = Field(default_factory=list)
    remove: list[HeaderName] = Field(default_factory=list)


class SecurityPolicySpec(ScopedPolicySpec):
    request_headers: PolicyHeaderFilter | None = None
    response_headers: ResponseHeaderFilter | None = None
    allowed_methods: Annotated[list[Method], Field(min_length=1)] | None = None
    method_not_allowed: MethodNotAllowed | None = None
    url_allowlist: UrlAllowlist | None = None
    security_txt: SecurityTxt | None = None
    direct_responses: Annotated[list[DirectResponse], Field(max_length=64)] | None = None
    duplicate_headers: DuplicateHeaders | None = None
    ip_access: IPAccess | None = None
    request_limits: RequestLimits | None = None
    concurrent_requests: ConcurrentRequests | None = None
    ingress_nginx_cors: IngressNginxCORS | None = Field(default=None, alias="ingressNginxCORS")
    waf: Waf | None = None
    hsts: Hsts | None = None
    basic_auth: BasicAuth | None = None
    external_auth: ExternalAuth | None = None
    error_pages: ErrorPages | None = None

    @model_validator(mode="after")
    def _unique_paths(self) -> SecurityPolicySpec:
        paths = [r.path for r in self.direct_responses or []]
        if self.security_txt is not None:
            paths.append(SECURITY_TXT_PATH)
        dup = {p for p in paths if paths.count(p) > 1}
        if dup:
            raise ValueError(f"path {sorted(dup)[0]} has more than one direct response")
        return self


SECURITY_TXT_PATH = "/.well-known/security.txt"


class SecurityPolicy(Policy):
    """Headers, methods, URL allowlist, direct responses, duplicate headers, IP lists, limits, WAF."""

    spec: SecurityPolicySpec


# --- RateLimitPolicy ------------------------------------------------------------------------------


class RateLimitKey(Model):
    type: Literal["ClientIP", "Header", "Route"] = "ClientIP"
    header: MatchableHeaderName | None = None

    @model_validator(mode="after")
    def _header(self) -> RateLimitKey:
        if (self.type == "Header") != (self.header is not None):
            raise ValueError("header is required with type Header and only allowed with it")
        return self


class RateLimitPolicySpec(ScopedPolicySpec):
    requests: Annotated[int, Field(ge=1, le=1_000_000_000)]
    unit: Literal["Second", "Minute", "Hour"]
    burst: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    key: RateLimitKey = Field(default_factory=RateLimitKey)
    exempt_cidrs: Annotated[list[CIDR], Field(max_length=1024, alias="exemptCIDRs")] = Field(default_factory=list)
    status: Annotated[int, Field(ge=400, le=599)] = 429
    rate_limit_headers: bool = False


class RateLimitPolicy(Policy):
    """A request rate per client (or header value, or route), with a burst. Local to each instance."""

    spec: RateLimitPolicySpec


# --- ClientTrafficPolicy ---------------------------------------------------------------------------


class ClientIP(Model):
    """Where the client address comes from. `forwardedFor` is what the backend gets in
    X-Forwarded-For: `Replace` (default) the trusted chain only, from the decided client address
    on; `Append` the client's own header with the connection's address appended."""

    source: Literal["Connection", "XForwardedFor", "ProxyProtocol"] = "Connection"
    trusted_hops: Annotated[int, Field(ge=1, le=16)] | None = None
    trusted_cidrs: Annotated[list[CIDR], Field(max_length=1024, alias="trustedCIDRs")] = Field(default_factory=list)
    forwarded_for: Literal["Replace", "Append"] = "Replace"

    @model_validator(mode="after")
    def _consistent(self) -> ClientIP:
        if self.source == "Connection" and (self.trusted_hops or self.trusted_cidrs):
            raise ValueError("trustedHops and trustedCIDRs only apply to XForwardedFor and ProxyProtocol")
        if self.source == "XForwardedFor" and (self.trusted_hops is None) == (not self.trusted_cidrs):
            raise ValueError("XForwardedFor needs exactly one of trustedHops and trustedCIDRs")
        if self.source == "ProxyProtocol" and self.trusted_hops is not None:
            raise ValueError("trustedHops does not apply to ProxyProtocol")
        return self


class RequestPath(Model):
    """Request paths a backend may read differently from nginx's normalised path, which every
    policy checks: `;` path parameters, encoded dots (%2e), slashes (%2f) and backslashes (%5c),
    raw backslashes, dot segments and a `#`. `Reject` answers 400; `Allow` passes them on raw."""

    ambiguous: Literal["Reject", "Allow"] = "Reject"


class BackendHeaders(Model):
    """What every proxied request tells the backend, where conventions differ (ingress-nginx's).
    `requestID`: X-Request-Id is wardgate's own id (`Replace`, default) or the client's own when
    it sent a non-empty one (`Preserve`). `forwardedHost`: X-Forwarded-Host is the host routed on,
    lower case without port (`RoutedHost`, default), or the Host header as the client sent it
    (`HostHeader`). `originalForwarded`: also pass the client's own X-Forwarded-For and
    X-Forwarded-Host on as X-Original-Forwarded-For and X-Original-Forwarded-Host."""

    request_id: Literal["Replace", "Preserve"] = Field("Replace", alias="requestID")
    forwarded_host: Literal["RoutedHost", "HostHeader"] = "RoutedHost"
    original_forwarded: bool = False


class ClientTrafficPolicySpec(PolicySpec):
    client_ip: ClientIP = Field(default_factory=ClientIP, alias="clientIP")
    path: RequestPath = Field(default_factory=RequestPath)
    backend_headers: BackendHeaders = Field(default_factory=BackendHeaders)


class ClientTrafficPolicy(Policy):
    """How a Gateway reads client requests: where the client IP comes from (connection,
    X-Forwarded-For or PROXY protocol), which request paths it refuses, and what backends are
    told about the request (backendHeaders)."""

    spec: ClientTrafficPolicySpec


POLICY_KINDS: dict[str, type[Policy]] = {
    "SecurityPolicy": SecurityPolicy,
    "RateLimitPolicy": RateLimitPolicy,
    "ClientTrafficPolicy": ClientTrafficPolicy,
}


# How a field set at a more specific level (Gateway -> listener -> HTTPRoute -> rule) combines
# with the same field from a less specific one. docs/policies.md has the table; a test keeps the
# two the same.
MergeRule = Literal["not merged", "replace", "key by key", "by header name", "union"]
_NOT_MERGED = frozenset({"target_refs", "parent_refs"})  # where a policy applies, not what it says
_HEADER_FILTERS = (HTTPHeaderFilter, PolicyHeaderFilter, ResponseHeaderFilter)
_RULES: dict[tuple[type[Model], str], MergeRule] = {
    **{(f, "set"): "by header name" for f in _HEADER_FILTERS},
    **{(f, "add"): "by header name" for f in _HEADER_FILTERS},
    **{(f, "remove"): "union" for f in _HEADER_FILTERS},
    # One choice: a route's `{type: Route}` must not inherit the Gateway's `header`.
    (RateLimitPolicySpec, "key"): "replace",
    # Who may pass and where errors come from: a level's setting applies whole, never half of it
    # with another level's Secret or Service.
    (SecurityPolicySpec, "basic_auth"): "replace",
    (SecurityPolicySpec, "external_auth"): "replace",
    (SecurityPolicySpec, "error_pages"): "replace",
}


def merge_rule(model: type[Model], name: str) -> MergeRule:
    """The merge rule of field `name` of `model`."""
    if name in _NOT_MERGED:
        return "not merged"
    if (model, name) in _RULES:
        return _RULES[(model, name)]
    nested = _object_type(model.model_fields[name].annotation)
    if nested in _HEADER_FILTERS:
        return "by header name"
    return "key by key" if nested else "replace"


def _object_type(annotation: Any) -> type[Model] | None:
    """The object type of a field that holds one object (`X` or `X | None`); None for lists and scalars."""
    if isinstance(annotation, type) and issubclass(annotation, Model):
        return annotation
    if get_origin(annotation) in (Union, UnionType):
        objects = [t for t in get_args(annotation) if t is not type(None)]
        if len(objects) == 1:
            return _object_type(objects[0])
    return None


HeaderFilter = HTTPHeaderFilter | PolicyHeaderFilter | ResponseHeaderFilter


def merge_header_filters(base: HeaderFilter, over: HeaderFilter) -> HeaderFilter:
    """Header operations by name (case-insensitive): `over` alone decides every header it names in
    set, add or remove; `base` keeps the others. So removal lists add up, and a more specific
    `set` undoes a less specific `remove` of the same name (and a `remove` undoes a `set`)."""
    named = {h.name.lower() for h in (*over.set, *over.add)} | {n.lower() for n in over.remove}
    return base.model_copy(update={
        "set": [h for h in base.set if h.name.lower() not in named] + list(over.set),
        "add": [h for h in base.add if h.name.lower() not in named] + list(over.add),
        "remove": [n for n in base.remove if n.lower() not in named] + list(over.remove),
    })


def merge_specs(base: Any, over: Any) -> Any:
    """`over` (a more specific level) on top of `base`, each field by its `merge_rule`. Only fields
    `over` sets explicitly count, so an unset field inherits."""
    updates: dict[str, Any] = {}
    for name in over.model_fields_set:
        rule = merge_rule(type(over), name)
        if rule == "not merged":
            continue
        mine, theirs = getattr(over, name), getattr(base, name)
        if rule == "by header name" and isinstance(mine, _HEADER_FILTERS) and type(theirs) is type(mine):
            updates[name] = merge_header_filters(theirs, mine)
        elif rule == "key by key" and isinstance(mine, Model) and type(mine) is type(theirs):
            updates[name] = merge_specs(theirs, mine)
        else:
            updates[name] = mine
    return base.model_copy(update=updates)


def combine_same_target(specs: list[Any]) -> Any:
    """Several policies of one kind on one target, oldest first: each spec field comes whole from
    the oldest policy that sets it (GEP-713: per distinct field, the oldest wins)."""
    combined = specs[0]
    claimed = set(combined.model_fields_set)
    for spec in specs[1:]:
        mine = set(spec.model_fields_set) - _NOT_MERGED - claimed
        if mine:
            combined = combined.model_copy(update={name: getattr(spec, name) for name in mine})
            claimed |= mine
    return combined


def merge_paths(model: type[Model], prefix: str = "") -> list[tuple[str, MergeRule]]:
    """Every field a merge reaches (through objects merged key by key or by header name), as
    (camelCase path, rule): the rows of docs/policies.md's merge table."""
    out: list[tuple[str, MergeRule]] = []
    for name, info in model.model_fields.items():
        path = prefix + (info.alias or name)
        rule = merge_rule(model, name)
        out.append((path, rule))
        nested = _object_type(info.annotation)
        if nested is not None and rule in ("key by key", "by header name"):
            out += merge_paths(nested, path + ".")
    return out


__all__ = [
    "POLICY_GROUP",
    "POLICY_KINDS",
    "POLICY_VERSION",
    "SECURITY_TXT_PATH",
    "SINGLETON_HEADERS",
    "ClientTrafficPolicy",
    "Policy",
    "PolicyParentRef",
    "PolicySpec",
    "PolicyTargetRef",
    "RateLimitPolicy",
    "SecurityPolicy",
    "combine_same_target",
    "merge_paths",
    "merge_rule",
    "merge_specs",
]
