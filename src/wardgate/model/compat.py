"""IngressNginxCompat: ingress-nginx's path semantics, kept through an explicit filter.

An HTTPRoute rule refers to one with an ExtensionRef filter. It is not a policy (no targetRefs):
the rule names it, so what the rule means is visible in the rule. docs/compatibility.md says what
each field does and why Gateway API alone can't express it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from wardgate.model.base import Model, Resource
from wardgate.model.policies import POLICY_GROUP
from wardgate.validation import validators

COMPAT_KIND = "IngressNginxCompat"

RewriteTarget = Annotated[str, AfterValidator(lambda v: validators().rewrite_target(v))]
Location = Annotated[str, AfterValidator(lambda v: validators().redirect_location(v))]
RedirectHost = Annotated[str, AfterValidator(lambda v: validators().hostname(v, wildcard=False))]
StatusCode = Literal[301, 302, 303, 307, 308]


class CompatRedirect(Model):
    """nginx's `return <statusCode> <location>` as ingress-nginx writes it.

    `location`: an absolute URL is the Location as it is; a path is `$scheme://$http_host<path>`
    (the Host header as the client sent it, port included). The query string is never added
    (app-root, permanent-redirect).
    `hostname`: `<scheme>://<hostname>:<listener port><request URI>`, one final `/` of the request
    URI (query included) removed (from-to-www-redirect); with `forwardedHeaders` the scheme and
    port are X-Forwarded-Proto's and X-Forwarded-Port's when sent (use-forwarded-headers)."""

    location: Location | None = None
    hostname: RedirectHost | None = None
    status_code: StatusCode = 302
    forwarded_headers: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> CompatRedirect:
        if (self.location is None) == (self.hostname is None):
            raise ValueError("set one of location and hostname")
        if self.forwarded_headers and self.hostname is None:
            raise ValueError("forwardedHeaders applies to a hostname redirect only")
        return self


class SslRedirect(Model):
    """ingress-nginx's HTTPS redirect (ssl-redirect, force-ssl-redirect): a plain-HTTP request is
    answered `<statusCode> https://<Host header without its port><request URI>`, one final `/` of
    the request URI (query included) removed unless `preserveTrailingSlash`, after the rule's
    ingressNginxCORS, allowedMethods and urlAllowlist checks and before its ipAccess and the rest.
    With `forwardedHeaders` (use-forwarded-headers) the scheme is X-Forwarded-Proto's and the host
    X-Forwarded-Host's first entry, when sent."""

    status_code: StatusCode = 308
    preserve_trailing_slash: bool = False
    forwarded_headers: bool = False


class CompatBackendTLS(Model):
    """TLS to the rule's backends without checking their certificate, as ingress-nginx's
    `backend-protocol: HTTPS` (or GRPCS) did: the data is encrypted, but anyone on the path to the
    pods can impersonate them. A BackendTLSPolicy for the Service (verified TLS) wins over it."""

    insecure_skip_verify: bool

    @field_validator("insecure_skip_verify")
    @classmethod
    def _only_true(cls, value: bool) -> bool:
        if not value:
            raise ValueError("must be true: omit backendTLS for plain HTTP to the backends, or verify their "
                             "certificates with a BackendTLSPolicy")
        return value


class IngressNginxCompatSpec(Model):
    """`pathMatching: IngressNginx` reads the rule's path matches as ingress-nginx's nginx
    locations (Exact `= path`, PathPrefix a prefix of characters, RegularExpression a
    case-insensitive regex anchored at the start only), in nginx's precedence; `rewriteTarget`
    replaces the whole request path, with `$1`..`$9` taken from the matched path's regex;
    `redirect` answers with nginx's `return`; `sslRedirect` sends plain-HTTP requests to HTTPS;
    `backendTLS` speaks TLS to the rule's backends without verifying them; `backendProtocol: GRPC`
    proxies the rule's requests to its backends as gRPC (nginx's grpc_pass); `notFound` answers 404
    once every check of the rule has passed (ingress-nginx's default backend behind a host's
    implicit `location /`)."""

    path_matching: Literal["GatewayAPI", "IngressNginx"] = "GatewayAPI"
    rewrite_target: RewriteTarget | None = None
    redirect: CompatRedirect | None = None
    backend_tls: CompatBackendTLS | None = Field(None, alias="backendTLS")
    backend_protocol: Literal["GRPC"] | None = None
    not_found: bool = False
    ssl_redirect: SslRedirect | None = None

    @model_validator(mode="after")
    def _does_something(self) -> IngressNginxCompatSpec:
        if self.path_matching == "GatewayAPI" and self.rewrite_target is None and self.redirect is None \
                and self.backend_tls is None and self.ssl_redirect is None and not self.not_found \
                and self.backend_protocol is None:
            raise ValueError("set pathMatching: IngressNginx, rewriteTarget, redirect, sslRedirect, backendTLS, "
                             "backendProtocol or notFound (this changes nothing)")
        if self.backend_protocol is not None and (self.redirect is not None or self.not_found):
            raise ValueError("backendProtocol needs backends: a rule with redirect or notFound answers itself")
        if self.rewrite_target is not None and self.redirect is not None:
            raise ValueError("rewriteTarget and redirect can't be used together: a redirect answers before any rewrite")
        if self.ssl_redirect is not None and self.redirect is not None:
            raise ValueError("redirect and sslRedirect can't be used together: the rule's own redirect answers "
                             "every request (ingress-nginx's `return` ran before its HTTPS redirect)")
        if self.not_found and (self.rewrite_target is not None or self.redirect is not None):
            raise ValueError("notFound can't be used with rewriteTarget or redirect: the rule answers 404 itself")
        return self


class IngressNginxCompat(Resource):
    """ingress-nginx path semantics for the HTTPRoute rules that name it in an ExtensionRef filter."""

    spec: IngressNginxCompatSpec


COMPAT_KINDS: dict[tuple[str, str], type[Resource]] = {(POLICY_GROUP, COMPAT_KIND): IngressNginxCompat}

__all__ = ["COMPAT_KIND", "COMPAT_KINDS", "CompatBackendTLS", "CompatRedirect", "IngressNginxCompat",
           "IngressNginxCompatSpec", "SslRedirect"]
