"""Gateway API v1 (standard channel) resources wardgate understands."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from wardgate.model.base import (
    HeaderName,
    HeaderValue,
    Hostname,
    MatchableHeaderName,
    Model,
    PortNumber,
    PreciseHostname,
    Resource,
    SectionName,
)
from wardgate.validation import validators

GROUP = "gateway.networking.k8s.io"


class ParametersRef(Model):
    group: str
    kind: str
    name: str
    namespace: str | None = None


class GatewayClassSpec(Model):
    controller_name: str
    parameters_ref: ParametersRef | None = None
    description: str | None = None


class GatewayClass(Resource):
    NAMESPACED: ClassVar[bool] = False
    spec: GatewayClassSpec


class SecretObjectReference(Model):
    group: str = ""
    kind: str = "Secret"
    name: str
    namespace: str | None = None


class GatewayTLSConfig(Model):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: Annotated[list[SecretObjectReference], Field(max_length=64)] = Field(default_factory=list)
    options: dict[str, str] = Field(default_factory=dict)


class LabelSelectorRequirement(Model):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In" and (not present or labels[req.key] not in req.values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


class RouteNamespaces(Model):
    from_: Annotated[Literal["All", "Same", "Selector"], Field(alias="from")] = "Same"
    selector: LabelSelector | None = None


class RouteGroupKind(Model):
    group: str = GROUP
    kind: str


class AllowedRoutes(Model):
    namespaces: RouteNamespaces = Field(default_factory=RouteNamespaces)
    kinds: list[RouteGroupKind] | None = None


class Listener(Model):
    name: SectionName
    hostname: Hostname | None = None
    port: PortNumber
    protocol: str
    tls: GatewayTLSConfig | None = None
    allowed_routes: AllowedRoutes = Field(default_factory=AllowedRoutes)


class GatewayAddress(Model):
    type: str = "IPAddress"
    value: str = ""


class LocalParametersReference(Model):
    group: str
    kind: str
    name: str


class GatewayInfrastructure(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    parameters_ref: LocalParametersReference | None = None


class ObjectReference(Model):
    group: str = ""
    kind: str
    name: str
    namespace: str | None = None


class FrontendTLSValidation(Model):
    ca_certificate_refs: Annotated[list[ObjectReference], Field(min_length=1, max_length=8)]
    mode: Literal["AllowValidOnly", "AllowInsecureFallback"] = "AllowValidOnly"


class TLSConfig(Model):
    validation: FrontendTLSValidation | None = None


class TLSPortConfig(Model):
    port: PortNumber
    tls: TLSConfig


class FrontendTLSConfig(Model):
    default: TLSConfig = Field(default_factory=TLSConfig)
    per_port: list[TLSPortConfig] = Field(default_factory=list)


class GatewayBackendTLS(Model):
    client_certificate_ref: SecretObjectReference | None = None


class GatewayTLSConfigs(Model):
    frontend: FrontendTLSConfig | None = None
    backend: GatewayBackendTLS | None = None


class GatewaySpec(Model):
    gateway_class_name: str
    listeners: Annotated[list[Listener], Field(min_length=1, max_length=64)]
    addresses: list[GatewayAddress] = Field(default_factory=list)
    infrastructure: GatewayInfrastructure | None = None
    tls: GatewayTLSConfigs | None = None

    @field_validator("listeners")
    @classmethod
    def _unique_names(cls, listeners: list[Listener]) -> list[Listener]:
        names = [lst.name for lst in listeners]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"listener names must be unique, repeated: {', '.join(sorted(dup))}")
        return listeners


class Gateway(Resource):
    spec: GatewaySpec


class ParentReference(Model):
    group: str = GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    name: str
    section_name: SectionName | None = None
    port: PortNumber | None = None


def check_route_path(value: str) -> str:
    """An Exact or PathPrefix value: the Gateway API grammar, outside wardgate's own paths."""
    validators().path(value)
    if value == "/_wardgate" or value.startswith("/_wardgate/"):
        raise ValueError("paths under /_wardgate/ are reserved for wardgate's internal locations")
    return value


class HTTPPathMatch(Model):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = "/"

    @model_validator(mode="after")
    def _check(self) -> HTTPPathMatch:
        if self.type == "RegularExpression":
            validators().regex(self.value)
        else:
            check_route_path(self.value)
        return self


class _ValueMatch(Model):
    """A header or query parameter match: the value is exact text or a PCRE pattern."""

    type: Literal["Exact", "RegularExpression"] = "Exact"
    value: Annotated[str, Field(max_length=4096)]

    @model_validator(mode="after")
    def _check(self) -> _ValueMatch:
        if self.type == "RegularExpression":
            validators().regex(self.value)
        else:
            validators().header_value(self.value, "value")
        return self


class HTTPHeaderMatch(_ValueMatch):
    name: MatchableHeaderName


class HTTPQueryParamMatch(_ValueMatch):
    name: HeaderName


Method = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


class HTTPRouteMatch(Model):
    path: HTTPPathMatch = Field(default_factory=HTTPPathMatch)
    headers: list[HTTPHeaderMatch] = Field(default_factory=list)
    query_params: list[HTTPQueryParamMatch] = Field(default_factory=list)
    method: Method | None = None


class HTTPHeader(Model):
    name: HeaderName
    value: HeaderValue


class HTTPHeaderFilter(Model):
    set: list[HTTPHeader] = Field(default_factory=list)
    add: list[HTTPHeader] = Field(default_factory=list)
    remove: list[HeaderName] = Field(default_factory=list)


class HTTPPathModifier(Model):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None

    @model_validator(mode="after")
    def _check(self) -> HTTPPathModifier:
        value = self.replace_full_path if self.type == "ReplaceFullPath" else self.replace_prefix_match
        if value is None:
            field = "replaceFullPath" if self.type == "ReplaceFullPath" else "replacePrefixMatch"
            raise ValueError(f"{field} is required when type is {self.type}")
        validators().path(value)
        return self

    @property
    def value(self) -> str:
        return (self.replace_full_path if self.type == "ReplaceFullPath" else self.replace_prefix_match) or "/"


class HTTPRequestRedirectFilter(Model):
    scheme: Literal["http", "https"] | None = None
    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None
    port: PortNumber | None = None
    status_code: Literal[301, 302, 303, 307, 308] = 302


class HTTPURLRewriteFilter(Model):
    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None


class BackendObjectReference(Model):
    group: str = ""
    kind: str = "Service"
    name: str
    namespace: str | None = None
    port: PortNumber | None = None


class Fraction(Model):
    numerator: Annotated[int, Field(ge=0)]
    denominator: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _proper(self) -> Fraction:
        if self.numerator > self.denominator:
            raise ValueError("numerator must be less than or equal to denominator")
        return self


class HTTPRequestMirrorFilter(Model):
    backend_ref: BackendObjectReference
    percent: Annotated[int, Field(ge=0, le=100)] | None = None
    fraction: Fraction | None = None

    @model_validator(mode="after")
    def _one_share(self) -> HTTPRequestMirrorFilter:
        if self.percent is not None and self.fraction is not None:
            raise ValueError("set at most one of percent and fraction")
        return self


_ORIGIN = r"^(\*|https?://(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:[0-9]{1,5})?)$"


class HTTPCORSFilter(Model):
    allow_origins: list[Annotated[str, Field(pattern=_ORIGIN, max_length=253)]] = Field(default_factory=list)
    allow_methods: list[Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*"]] \
        = Field(default_factory=list)
    allow_headers: list[Annotated[str, AfterValidator(lambda v: v if v == "*" else validators().header_name(v))]] \
        = Field(default_factory=list)
    expose_headers: list[Annotated[str, AfterValidator(lambda v: v if v == "*" else validators().header_name(v))]] \
        = Field(default_factory=list)
    allow_credentials: bool = False
    max_age: Annotated[int, Field(ge=1, le=86400)] = 5

    @model_validator(mode="after")
    def _wildcards(self) -> HTTPCORSFilter:
        for field, values in (("allowOrigins", self.allow_origins), ("allowMethods", self.allow_methods),
                              ("allowHeaders", self.allow_headers), ("exposeHeaders", self.expose_headers)):
            if "*" in values and len(values) > 1:
                raise ValueError(f"{field}: '*' must be the only entry")
        return self


class LocalObjectReference(Model):
    group: str
    kind: str
    name: str


class HTTPRouteFilter(Model):
    type: Literal[
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestRedirect",
        "URLRewrite",
        "RequestMirror",
        "CORS",
        "ExternalAuth",
        "ExtensionRef",
    ]
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_redirect: HTTPRequestRedirectFilter | None = None
    url_rewrite: HTTPURLRewriteFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    cors: HTTPCORSFilter | None = None
    extension_ref: LocalObjectReference | None = None

    @model_validator(mode="after")
    def _config_present(self) -> HTTPRouteFilter:
        needed = {
            "RequestHeaderModifier": self.request_header_modifier,
            "ResponseHeaderModifier": self.response_header_modifier,
            "RequestRedirect": self.request_redirect,
            "URLRewrite": self.url_rewrite,
            "RequestMirror": self.request_mirror,
            "CORS": self.cors,
            "ExtensionRef": self.extension_ref,
        }
        if self.type in needed and needed[self.type] is None:
            field = {"URLRewrite": "urlRewrite", "CORS": "cors"}.get(self.type, self.type[0].lower() + self.type[1:])
            raise ValueError(f"filter type {self.type} needs the {field} field")
        return self


class HTTPBackendRef(BackendObjectReference):
    weight: Annotated[int, Field(ge=0, le=1_000_000)] = 1
    filters: list[HTTPRouteFilter] = Field(default_factory=list)


Duration = Annotated[str, Field(pattern=r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")]


def duration_seconds(value: str) -> float:
    """A Gateway API Duration ("1h2m", "500ms") in seconds."""
    import re

    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|h|m|s)", value))


class HTTPRouteTimeouts(Model):
    request: Duration | None = None
    backend_request: Duration | None = None

    @model_validator(mode="after")
    def _order(self) -> HTTPRouteTimeouts:
        if self.request and self.backend_request:
            req, back = duration_seconds(self.request), duration_seconds(self.backend_request)
            if req and back > req:
                raise ValueError("backendRequest must not be longer than request")
        return self


class HTTPRouteRetry(Model):
    codes: list[Annotated[int, Field(ge=400, le=599)]] = Field(default_factory=list)
    attempts: Annotated[int, Field(ge=0, le=10)] | None = None
    backoff: Duration | None = None


def check_unique_filters(types: Sequence[str], where: str) -> None:
    for t in ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "CORS"):
        if types.count(t) > 1:
            raise ValueError(f"{where}: {t} may appear only once per rule")


class CookieConfig(Model):
    lifetime_type: Literal["Permanent", "Session"] = "Session"


# Cookie names the data plane reads back (RFC 6265 tokens, narrowed to what real names use).
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class SessionPersistence(Model):
    """GEP-1619 (experimental channel): the same client reaches the same backend endpoint, by a
    cookie (or header) the gateway hands out. What wardgate does with each field: docs/conformance.md."""

    session_name: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    absolute_timeout: Duration | None = None
    idle_timeout: Duration | None = None
    type: Literal["Cookie", "Header"] = "Cookie"
    cookie_config: CookieConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> SessionPersistence:
        if self.cookie_config and self.cookie_config.lifetime_type == "Permanent" and not self.absolute_timeout:
            raise ValueError("AbsoluteTimeout must be specified when cookie lifetimeType is Permanent")
        if self.session_name is not None:
            if self.type == "Header":
                validators().matchable_header_name(self.session_name)
            elif not _COOKIE_NAME.fullmatch(self.session_name):
                raise ValueError(f"sessionName {self.session_name!r}: use letters, digits, '_', '.' and '-' "
                                 "(a cookie name wardgate can read back)")
        return self


class HTTPRouteRule(Model):
    name: SectionName | None = None
    matches: list[HTTPRouteMatch] = Field(default_factory=lambda: [HTTPRouteMatch()])
    filters: list[HTTPRouteFilter] = Field(default_factory=list)
    backend_refs: list[HTTPBackendRef] = Field(default_factory=list)
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    session_persistence: SessionPersistence | None = None

    @model_validator(mode="after")
    def _filters(self) -> HTTPRouteRule:
        types = [f.type for f in self.filters]
        if "RequestRedirect" in types and "URLRewrite" in types:
            raise ValueError("filters: RequestRedirect and URLRewrite can't be used together")
        if "RequestRedirect" in types and self.backend_refs:
            raise ValueError("a rule with a RequestRedirect filter can't have backendRefs")
        check_unique_filters(types, "filters")
        return self


class HTTPRouteSpec(Model):
    parent_refs: list[ParentReference] = Field(default_factory=list)
    hostnames: list[Hostname] = Field(default_factory=list)
    rules: Annotated[list[HTTPRouteRule], Field(max_length=16)] = Field(
        default_factory=lambda: [HTTPRouteRule()]
    )


class HTTPRoute(Resource):
    spec: HTTPRouteSpec = Field(default_factory=HTTPRouteSpec)


# GRPCRoute (GEP-1016). Matching is on the HTTP/2 path "/<service>/<method>"; filters and
# backendRefs reuse HTTPRoute's shapes, narrowed to the filter types GRPCRoute defines.

_GRPC_SERVICE = re.compile(r"\.?[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*")
_GRPC_METHOD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
# One path element of a gRPC path: what an omitted service or method matches.
_GRPC_ANY = "[^/]+"


class GRPCMethodMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: Annotated[str, Field(max_length=1024)] | None = None
    method: Annotated[str, Field(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _check(self) -> GRPCMethodMatch:
        if not self.service and not self.method:
            raise ValueError("one or both of service and method must be specified")
        if self.type == "Exact":
            if self.service and not _GRPC_SERVICE.fullmatch(self.service):
                raise ValueError(f"service {self.service!r} is not a gRPC service name "
                                 "(letters, digits, '_' in '.'-separated parts)")
            if self.service:
                check_route_path(f"/{self.service}")
            if self.method and not _GRPC_METHOD.fullmatch(self.method):
                raise ValueError(f"method {self.method!r} is not a gRPC method name (letters, digits, '_')")
        else:
            for value in (self.service, self.method):
                if value:
                    validators().regex(value)
            validators().regex(self.path_regex())
        return self

    def path_regex(self) -> str:
        """The whole request path "/service/method" as one PCRE pattern (for nginx to anchor).

        The lookahead pins the path to exactly two elements, so a service pattern can't
        swallow the "/" before the method."""
        if self.type == "Exact":
            service = validators().literal_regex(self.service) if self.service else _GRPC_ANY
            method = validators().literal_regex(self.method) if self.method else _GRPC_ANY
            return f"/{service}/{method}"
        service = f"(?:{self.service})" if self.service else _GRPC_ANY
        method = f"(?:{self.method})" if self.method else _GRPC_ANY
        return f"/(?=[^/]*/[^/]*$){service}/{method}"


class GRPCRouteMatch(Model):
    method: GRPCMethodMatch | None = None
    headers: Annotated[list[HTTPHeaderMatch], Field(max_length=16)] = Field(default_factory=list)


class GRPCRouteFilter(HTTPRouteFilter):
    """HTTPRouteFilter narrowed to GRPCRoute's types (same configuration shapes)."""

    type: Literal["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "ExtensionRef"]

    @model_validator(mode="after")
    def _only_grpc_fields(self) -> GRPCRouteFilter:
        for name, value in (("requestRedirect", self.request_redirect), ("urlRewrite", self.url_rewrite),
                            ("cors", self.cors)):
            if value is not None:
                raise ValueError(f"{name} is not a GRPCRoute filter")
        return self


class GRPCBackendRef(HTTPBackendRef):
    filters: list[GRPCRouteFilter] = Field(default_factory=list)  # type: ignore[assignment]


class GRPCRouteRule(Model):
    name: str | None = None
    matches: Annotated[list[GRPCRouteMatch], Field(max_length=8)] = Field(
        default_factory=lambda: [GRPCRouteMatch()])
    filters: Annotated[list[GRPCRouteFilter], Field(max_length=16)] = Field(default_factory=list)
    backend_refs: Annotated[list[GRPCBackendRef], Field(max_length=16)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _filters(self) -> GRPCRouteRule:
        check_unique_filters([f.type for f in self.filters], "filters")
        for i, ref in enumerate(self.backend_refs):
            check_unique_filters([f.type for f in ref.filters], f"backendRefs[{i}].filters")
        return self


class GRPCRouteSpec(Model):
    parent_refs: list[ParentReference] = Field(default_factory=list)
    hostnames: Annotated[list[Hostname], Field(max_length=16)] = Field(default_factory=list)
    rules: Annotated[list[GRPCRouteRule], Field(max_length=16)] = Field(default_factory=lambda: [GRPCRouteRule()])

    @model_validator(mode="after")
    def _total_matches(self) -> GRPCRouteSpec:
        if sum(len(r.matches) for r in self.rules) > 128:
            raise ValueError("at most 128 matches across all rules of a route")
        return self


class GRPCRoute(Resource):
    spec: GRPCRouteSpec = Field(default_factory=GRPCRouteSpec)


TLS_ROUTE_VERSIONS = ("v1alpha2", "v1alpha3", "v1")


class TLSBackendRef(BackendObjectReference):
    weight: Annotated[int, Field(ge=0, le=1_000_000)] = 1


class TLSRouteRule(Model):
    name: str | None = None
    backend_refs: Annotated[list[TLSBackendRef], Field(min_length=1, max_length=16)]


class TLSRouteSpec(Model):
    parent_refs: list[ParentReference] = Field(default_factory=list)
    # SNI names: no IP addresses (RFC 6066); a wildcard only as the whole first label.
    hostnames: Annotated[list[Hostname], Field(max_length=1024)] = Field(default_factory=list)
    rules: Annotated[list[TLSRouteRule], Field(min_length=1, max_length=16)]

    @field_validator("hostnames")
    @classmethod
    def _no_ip(cls, hosts: list[str]) -> list[str]:
        import ipaddress

        for h in hosts:
            try:
                ipaddress.ip_address(h)
            except ValueError:
                continue
            raise ValueError(f"hostnames: {h!r} is an IP address; SNI names can't be (RFC 6066)")
        return hosts


class TLSRoute(Resource):
    """SNI-routed TLS (passthrough): v1alpha2, v1alpha3 and v1 (standard channel since v1.5)."""

    spec: TLSRouteSpec

    @model_validator(mode="after")
    def _by_version(self) -> TLSRoute:
        # v1alpha3 and v1 require hostnames and exactly one rule; v1alpha2 allowed neither limit.
        if self.api_version.rpartition("/")[2] in ("v1alpha3", "v1"):
            if not self.spec.hostnames:
                raise ValueError(f"spec.hostnames: at least one is required in {self.api_version}")
            if len(self.spec.rules) != 1:
                raise ValueError(f"spec.rules: exactly one rule is allowed in {self.api_version}")
        return self


class ReferenceGrantFrom(Model):
    group: str
    kind: str
    namespace: str


class ReferenceGrantTo(Model):
    group: str = ""
    kind: str
    name: str | None = None


class ReferenceGrantSpec(Model):
    from_: Annotated[list[ReferenceGrantFrom], Field(alias="from", min_length=1)]
    to: Annotated[list[ReferenceGrantTo], Field(min_length=1)]


class ReferenceGrant(Resource):
    spec: ReferenceGrantSpec


class PolicyTargetReference(Model):
    group: str = ""
    kind: str
    name: str
    section_name: SectionName | None = None


class BackendTLSPolicyValidation(Model):
    ca_certificate_refs: list[ObjectReference] = Field(default_factory=list)
    well_known_ca_certificates: Literal["System"] | None = None
    hostname: PreciseHostname

    @model_validator(mode="after")
    def _one_source(self) -> BackendTLSPolicyValidation:
        if bool(self.ca_certificate_refs) == bool(self.well_known_ca_certificates):
            raise ValueError("set exactly one of caCertificateRefs and wellKnownCACertificates")
        return self


class BackendTLSPolicySpec(Model):
    target_refs: Annotated[list[PolicyTargetReference], Field(min_length=1, max_length=16)]
    validation: BackendTLSPolicyValidation


class BackendTLSPolicy(Resource):
    """TLS from the gateway to a Service's pods, verified against a CA and a hostname."""

    spec: BackendTLSPolicySpec
