"""Routing annotations: HTTPS redirects, redirects, app-root, www redirects, canaries,
upstream-vhost, backend timeouts and protocols.

Some change the shape of the output rather than adding a filter (ssl-redirect splits a host's
routes by listener, canaries add rules to the mainline's, app-root and from-to-www-redirect add
rules and routes): `routing(source)` reads those for the converter; their catalog handlers only
check the value and report.

ingress-nginx facts: internal/ingress/annotations/{sslpassthrough,redirect,canary,upstreamvhost,
backendprotocol,proxy}/main.go and the Lua ssl redirect (FORMAT.md cases ssl-redirect-*,
permanent-redirect, app-root, canary-*).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wardgate.migrate.contrib import CatalogEntry, Contribution, Source
from wardgate.migrate.report import Finding, Status
from wardgate.validation import validators

BACKEND_PROTOCOLS = ("HTTP", "HTTPS", "GRPC", "GRPCS", "AUTO_HTTP", "FCGI")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
REDIRECT_CODES = (301, 302, 303, 307, 308)  # what Gateway API's RequestRedirect can answer
_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Annotations ingress-nginx still reads on a canary Ingress (the rest come from the mainline).
CANARY_OWN = ("canary", "canary-by-header", "canary-by-header-value", "canary-by-header-pattern",
              "canary-by-cookie", "canary-weight", "canary-weight-total", "affinity", "affinity-mode",
              "affinity-canary-behavior", "session-cookie-name", "session-cookie-path", "session-cookie-max-age",
              "session-cookie-expires", "session-cookie-samesite", "session-cookie-secure",
              "session-cookie-change-on-failure", "session-cookie-conditional-samesite-none",
              "session-cookie-domain", "load-balance", "upstream-hash-by", "upstream-hash-by-subset",
              "upstream-hash-by-subset-size")


def parse_bool(value: str, key: str) -> bool:
    """strconv.ParseBool, as ingress-nginx's parser.GetBoolAnnotation."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{key}: {value!r} is not a boolean (true or false)")


def _int(value: str, key: str) -> int:
    if not re.fullmatch(r"-?[0-9]{1,9}", value.strip()):
        raise ValueError(f"{key}: {value!r} is not an integer")
    return int(value.strip())


def _bool_or(anns: Mapping[str, str], key: str, default: bool) -> bool:
    """An invalid value means the default, as ingress-nginx (the handler reports it)."""
    try:
        return parse_bool(anns[key], key) if key in anns else default
    except ValueError:
        return default


def redirect_code(config: Mapping[str, str]) -> int:
    """http-redirect-code: 301, 302, 307 or 308 (anything else: 308, as ingress-nginx)."""
    try:
        code = int(config.get("http-redirect-code", "308"))
    except ValueError:
        return 308
    return code if code in (301, 302, 307, 308) else 308


@dataclass(frozen=True)
class Canary:
    header: str | None = None
    header_value: str | None = None
    header_pattern: str | None = None
    cookie: str | None = None
    weight: int | None = None
    weight_total: int = 100

    def header_matches(self) -> list[tuple[list[dict[str, Any]], bool]]:
        """(header matches, goes to the canary) per extra rule, in ingress-nginx's order of
        evaluation (header, then cookie; the weight is the main rule's split)."""
        out: list[tuple[list[dict[str, Any]], bool]] = []
        later = self.cookie is not None or bool(self.weight)
        if self.header:
            if self.header_value:
                out.append(([{"name": self.header, "value": self.header_value}], True))
            elif self.header_pattern:
                out.append(([{"type": "RegularExpression", "name": self.header,
                              "value": _unanchored(self.header_pattern)}], True))
            else:
                out.append(([{"name": self.header, "value": "always"}], True))
                if later:
                    out.append(([{"name": self.header, "value": "never"}], False))
        if self.cookie:
            out.append(([{"type": "RegularExpression", "name": "Cookie", "value": _cookie(self.cookie, "always")}],
                        True))
            if self.weight:
                out.append(([{"type": "RegularExpression", "name": "Cookie",
                              "value": _cookie(self.cookie, "never")}], False))
        return out


def _unanchored(pattern: str) -> str:
    """ingress-nginx searches the header value with the pattern (ngx.re.match, not anchored);
    wardgate matches the whole value."""
    if pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern
    return f".*(?:{pattern}).*"


def _cookie(name: str, value: str) -> str:
    """The Cookie header holding `name=value` as one of its cookies."""
    return f"(?:.*;\\s*)?{re.escape(name)}={value}(?:;.*)?"


@dataclass(frozen=True)
class Routing:
    """The structural routing settings of one Ingress."""

    ssl_redirect: bool = True
    force_ssl_redirect: bool = False
    redirect_code: int = 308
    canary: Canary | None = None
    app_root: str | None = None
    from_to_www: bool = False
    backend_protocol: str = "HTTP"  # upper case: HTTP, HTTPS, GRPC, GRPCS, AUTO_HTTP, FCGI
    ssl_passthrough: bool = False
    # preserve-trailing-slash: ingress-nginx's https redirect then keeps a final '/' (by
    # default it strips one)
    preserve_trailing_slash: bool = False
    # use-forwarded-headers: X-Forwarded-Proto decides the https redirect, X-Forwarded-Host (and,
    # for www redirects, -Port) build its Location
    forwarded_headers: bool = False
    # no-tls-redirect-locations: Ingress paths starting with one of these never redirect
    no_redirect_paths: tuple[str, ...] = ("/.well-known/acme-challenge",)
    # use-proxy-protocol: ingress-nginx took a connection the PROXY header says came to port 443
    # for HTTPS (a load balancer terminating TLS), and didn't redirect it
    proxy_protocol: bool = False

    def redirect_difference(self, annotations: Mapping[str, str] | None = None) -> str:
        """What the https redirect does differently from ingress-nginx's ("" when nothing)."""
        out = ssl_redirect_differences(annotations or {})
        if self.proxy_protocol:
            out.append("with use-proxy-protocol, ingress-nginx took a connection whose PROXY header names port 443 for "
                       "HTTPS and didn't redirect it; wardgate redirects every plain-HTTP connection (behind a load "
                       "balancer terminating TLS, send X-Forwarded-Proto with use-forwarded-headers instead)")
        return "; ".join(out)

    def ssl_redirect_spec(self) -> dict[str, Any]:
        """The IngressNginxCompat sslRedirect of this Ingress's rules."""
        spec: dict[str, Any] = {"statusCode": self.redirect_code}
        if self.preserve_trailing_slash:
            spec["preserveTrailingSlash"] = True
        if self.forwarded_headers:
            spec["forwardedHeaders"] = True
        return spec

    def www_redirect_filter(self, host: str) -> dict[str, Any]:
        """from-to-www-redirect's answer for the other name: an IngressNginxCompat redirect.hostname."""
        spec: dict[str, Any] = {"hostname": host, "statusCode": self.redirect_code}
        if self.forwarded_headers:
            spec["forwardedHeaders"] = True
        return {"type": "ExtensionRef", "_compat": {"redirect": spec}}

    def redirects_path(self, path: str) -> bool:
        """Whether the https redirect applies to this Ingress path (no-tls-redirect-locations)."""
        return not any(path.startswith(p) for p in self.no_redirect_paths)

    def ssl_redirect_for(self, host_has_tls: bool) -> bool:
        """Whether plain HTTP requests to this Ingress's paths redirect to HTTPS."""
        return self.force_ssl_redirect or (self.ssl_redirect and host_has_tls)


def routing(source: Source) -> Routing:
    anns, config = source.annotations, source.config
    ssl = _bool_or(anns, "ssl-redirect", _bool_or(config, "ssl-redirect", True))
    force = _bool_or(anns, "force-ssl-redirect", _bool_or(config, "force-ssl-redirect", False))
    canary: Canary | None = None
    if _bool_or(anns, "canary", False):
        weight: int | None = None
        total = 100
        try:
            if "canary-weight-total" in anns:
                total = max(1, _int(anns["canary-weight-total"], "canary-weight-total"))
            if "canary-weight" in anns:
                weight = max(0, _int(anns["canary-weight"], "canary-weight"))
        except ValueError:
            pass
        canary = Canary(anns.get("canary-by-header") or None, anns.get("canary-by-header-value") or None,
                        anns.get("canary-by-header-pattern") or None, anns.get("canary-by-cookie") or None,
                        weight, total)
    app_root = anns.get("app-root")
    if app_root is not None and not _valid_app_root(app_root):
        app_root = None
    protocol = anns.get("backend-protocol", "HTTP").strip().upper()
    if protocol not in BACKEND_PROTOCOLS:
        protocol = "HTTP"  # ingress-nginx ignores an invalid value
    no_redirect = tuple(x for x in (p.strip(" ") for p in config.get(
        "no-tls-redirect-locations", "/.well-known/acme-challenge").split(",")) if x)
    return Routing(ssl, force, redirect_code(config), canary, app_root, _bool_or(anns, "from-to-www-redirect", False),
                   protocol, _bool_or(anns, "ssl-passthrough", False),
                   _bool_or(anns, "preserve-trailing-slash", _bool_or(config, "preserve-trailing-slash", False)),
                   _bool_or(config, "use-forwarded-headers", False), no_redirect,
                   _bool_or(config, "use-proxy-protocol", False))


def ssl_redirect_differences(anns: Mapping[str, str]) -> list[str]:
    """Where an Ingress's https redirect answers differently: sslRedirect keeps ingress-nginx's
    order (CORS and the snippets' rewrite-phase checks first, then the redirect, then access
    checks), but a snippet's limit_except, an access-phase check there, becomes allowedMethods,
    which answers before the redirect."""
    if re.search(r"\blimit_except\b", anns.get("configuration-snippet", "")):
        return ["over plain HTTP the configuration-snippet's limit_except (allowedMethods) answers before the "
                "redirect (ingress-nginx checked it after)"]
    return []


def ssl_redirect_detail(where: str, routing: Routing, anns: Mapping[str, str]) -> tuple[Status, str]:
    """The finding for an Ingress's https redirect."""
    difference = routing.redirect_difference(anns)
    slash = "kept" if routing.preserve_trailing_slash else "dropped"
    trusted = ", X-Forwarded-Proto/-Host trusted (use-forwarded-headers)" if routing.forwarded_headers else ""
    what = (f"IngressNginxCompat sslRedirect ({routing.redirect_code}) {where}: https://<Host without port>"
            f"<request URI, one final '/' {slash}>{trusted}, where ingress-nginx's Lua redirect answered (after the "
            "body size limit, CORS and the snippets' if/return checks, before IP allowlists, auth and rate limits)")
    return ("converted-with-difference" if difference else "exact"), what + (f"; {difference}" if difference else "")


def _valid_app_root(value: str) -> bool:
    return value.startswith("/") and value.isprintable() and " " not in value and "$" not in value


def applies_on_canary(key: str) -> bool:
    return key in CANARY_OWN


def host_regex(anns: Mapping[str, str]) -> bool:
    """use-regex or rewrite-target on an Ingress: every path of its hosts is a regex."""
    return _bool_or(anns, "use-regex", False) or bool(anns.get("rewrite-target"))


# ---------------------------------------------------------------------------------------------
# Handlers


def _one(source: Source, key: str, status: Status, detail: str) -> Contribution:
    return Contribution(findings=[Finding(source.file, source.obj, key, status, detail, source.ingress_class)])


def _ssl_redirect(key: str, value: str, source: Source) -> Contribution:
    on = parse_bool(value, key)
    if key == "ssl-redirect" and not on:
        return _one(source, key, "exact", "the Ingress's rules serve plain HTTP too (no redirect)")
    if not on:
        return _one(source, key, "exact", "no redirect (the default)")
    where = "for every plain-HTTP request" if key == "force-ssl-redirect" else "when the host has TLS"
    status, detail = ssl_redirect_detail(where, routing(source), source.annotations)
    return _one(source, key, status, detail)


def _bool_only(meaning: str) -> Any:
    def handler(key: str, value: str, source: Source) -> Contribution:
        parse_bool(value, key)
        return _one(source, key, "exact", meaning)
    return handler


def _canary_value(key: str, value: str, source: Source) -> Contribution:
    anns = source.annotations
    if not _bool_or(anns, "canary", False):
        return _one(source, key, "exact", "no effect without canary: \"true\", as in ingress-nginx")
    if key in ("canary-weight", "canary-weight-total"):
        n = _int(value, key)
        if n < 0:
            raise ValueError(f"{key}: {value!r} is negative")
        return _one(source, key, "exact", "weighted backendRefs on the mainline's rules")
    if key == "canary-by-header-pattern":
        if anns.get("canary-by-header-value"):
            return _one(source, key, "exact", "ignored because canary-by-header-value is set, as in ingress-nginx")
        return _one(source, key, "converted-with-difference",
                    "RegularExpression header match (PCRE in both; wardgate matches the whole value, so the "
                    "pattern is wrapped in .*(...).* unless anchored)")
    if key == "canary-by-cookie":
        return _one(source, key, "converted-with-difference",
                    "RegularExpression match on the Cookie header for <cookie>=always / =never (Gateway API has "
                    "no cookie match)")
    if key == "canary-by-header" and not anns.get("canary-by-header-value") \
            and not anns.get("canary-by-header-pattern"):
        return _one(source, key, "exact", "header match 'always' -> canary, 'never' -> mainline")
    return _one(source, key, "exact", "header match on the mainline's rules")


def _redirect_url(value: str, key: str) -> dict[str, Any]:
    """A RequestRedirect for a fixed URL; ValueError when Gateway API can't say it."""
    if "$" in value:
        raise ValueError(f"{key}: nginx variables are refused by ingress-nginx's validation (the Ingress is rejected)")
    u = urlsplit(value)
    if u.scheme not in ("http", "https") or not u.hostname or not _HOST.match(u.hostname):
        raise ValueError(f"{key}: {value!r} is not an http(s) URL with a host name")
    rd: dict[str, Any] = {"scheme": u.scheme, "hostname": u.hostname}
    if u.port:
        rd["port"] = u.port
    rd["path"] = {"type": "ReplaceFullPath", "replaceFullPath": u.path or "/"}
    return rd


def compat_available() -> bool:
    """Whether this wardgate has IngressNginxCompat (nginx's `return` for redirects, exactly)."""
    from wardgate.model import KINDS

    return ("policy.wardgate.io", "IngressNginxCompat") in KINDS


def redirect_filter(location: str, code: int, *, path_only: bool = False) -> dict[str, Any]:
    """nginx's `return <code> <location>`: through IngressNginxCompat when it exists (the Location
    exactly, no query string added), else a Gateway API RequestRedirect (which keeps the path's
    form and adds the query string)."""
    if compat_available():
        return {"type": "ExtensionRef", "_compat": {"redirect": {"location": location, "statusCode": code}}}
    if path_only:
        return {"type": "RequestRedirect", "requestRedirect": {
            "path": {"type": "ReplaceFullPath", "replaceFullPath": location}, "statusCode": code}}
    return {"type": "RequestRedirect", "requestRedirect": {**_redirect_url(location, "redirect"), "statusCode": code}}


class IngressRejected(ValueError):
    """The value fails ingress-nginx's annotation validation: the admission webhook refuses the
    Ingress, and without it the controller ignores the whole Ingress."""


def _redirect(key: str, value: str, source: Source) -> Contribution:
    anns = source.annotations
    temporal = key == "temporal-redirect"
    if not temporal and anns.get("temporal-redirect"):
        return _one(source, key, "exact", "temporal-redirect wins over permanent-redirect, as in ingress-nginx")
    if "$" in value:
        raise IngressRejected(f"{key}: {value!r} contains an nginx variable, which ingress-nginx's annotation "
                              "validation refuses: the Ingress is not served")
    rd = _redirect_url(value, key)
    code_key = f"{key}-code"
    code = 302 if temporal else 301
    notes = []
    if code_key in anns:
        try:
            c = _int(anns[code_key], code_key)
        except ValueError:
            c = 0
        if 300 <= c <= 308:
            code = c
    if code not in REDIRECT_CODES:
        notes.append(f"status {code} is not one Gateway API redirects with; {301 if code < 303 else 308} instead")
        code = 301 if code < 303 else 308
    rd["statusCode"] = code
    if compat_available():
        try:  # what IngressNginxCompat's redirect.location accepts (a URL with spaces or quotes is not)
            validators().redirect_location(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        status: Status = "converted-with-difference" if notes else "exact"
        return Contribution(filters=[redirect_filter(value, code)], findings=[
            Finding(source.file, source.obj, key, status,
                    "; ".join([f"IngressNginxCompat redirect to {value} ({code}) on every path of the Ingress, "
                               "the Location exactly as ingress-nginx sends it", *notes]), source.ingress_class)])
    u = urlsplit(value)
    if not u.path:
        notes.append("the Location ends in '/' (the URL has no path)")
    if u.query or u.fragment:
        raise ValueError(f"{key}: a query or fragment in the target URL can't be expressed by RequestRedirect")
    notes.append("the request's query string is appended (ingress-nginx returns the URL as it is)")
    return Contribution(filters=[{"type": "RequestRedirect", "requestRedirect": rd}], findings=[
        Finding(source.file, source.obj, key, "converted-with-difference",
                f"RequestRedirect to {value} on every path of the Ingress; " + "; ".join(notes),
                source.ingress_class)])


def _app_root(key: str, value: str, source: Source) -> Contribution:
    if not _valid_app_root(value):
        raise ValueError(f"{key}: {value!r} must be a path starting with '/' (no spaces or variables)")
    if compat_available():
        return _one(source, key, "exact", "Exact '/' rule with an IngressNginxCompat redirect (302) to "
                    "$scheme://$http_host" + value + ", as ingress-nginx's server-level `return`")
    return _one(source, key, "converted-with-difference",
                "Exact '/' rule with RequestRedirect 302 ReplaceFullPath; the Location drops the Host header's "
                "port and keeps the query string (ingress-nginx: $http_host, no query)")


def _www(key: str, value: str, source: Source) -> Contribution:
    if not parse_bool(value, key):
        return _one(source, key, "exact", "no redirect")
    r = routing(source)
    trusted = ", X-Forwarded-Proto/-Port trusted (use-forwarded-headers)" if r.forwarded_headers else ""
    return _one(source, key, "exact",
                "an HTTPRoute for the other name (www. added or removed), unless an Ingress defines it, whose "
                f"IngressNginxCompat redirect answers {r.redirect_code} <scheme>://<host>:<listener port><request "
                f"URI, one final '/' dropped>{trusted}, as ingress-nginx's redirect server")


def _upstream_vhost(key: str, value: str, source: Source) -> Contribution:
    host = value.strip()
    if not _HOST.match(host) or len(host) > 253:
        raise ValueError(f"{key}: {value!r} is not a host name (ports and nginx variables can't be converted)")
    return Contribution(filters=[{"type": "URLRewrite", "urlRewrite": {"hostname": host}}], findings=[
        Finding(source.file, source.obj, key, "exact", "URLRewrite hostname (the backend's Host header)",
                source.ingress_class)])


_TIMEOUTS = ("proxy-connect-timeout", "proxy-send-timeout", "proxy-read-timeout")


def _seconds(value: str, key: str) -> int:
    v = value.strip().removesuffix("s")
    if not re.fullmatch(r"[0-9]{1,5}", v):
        raise ValueError(f"{key}: {value!r} is not a number of seconds")
    return int(v)


def _timeout(key: str, value: str, source: Source) -> Contribution:
    """nginx has three backend timeouts; Gateway API's backendRequest sets all three at once in
    wardgate. The longest of the three configured (annotation or ConfigMap) is used."""
    _seconds(value, key)
    values = {}
    for k in _TIMEOUTS:
        raw = source.annotations.get(k, source.config.get(k, ""))
        try:
            values[k] = _seconds(raw, k)
        except ValueError:
            values[k] = {"proxy-connect-timeout": 5}.get(k, 60)
    longest = max(values.values())
    same = len(set(values.values())) == 1
    detail = f"rule timeouts.backendRequest {longest}s (connect, send and read timeouts alike)"
    status: Status = "exact" if same else "converted-with-difference"
    if not same:
        detail += "; ingress-nginx had " + ", ".join(f"{k.split('-')[1]} {v}s" for k, v in values.items())
    return Contribution(rule={"timeouts": {"backendRequest": f"{longest}s"}},
                        findings=[Finding(source.file, source.obj, key, status, detail, source.ingress_class)])


def _backend_protocol(key: str, value: str, source: Source) -> Contribution:
    protocol = value.strip().upper()
    if protocol not in BACKEND_PROTOCOLS:
        raise ValueError(f"{key}: {value!r} is not one of {', '.join(BACKEND_PROTOCOLS)} (ingress-nginx uses HTTP)")
    if protocol == "HTTP":
        return _one(source, key, "exact", "plain HTTP to the backend (the default)")
    grpc = ("GRPCRoute on the host's HTTPS listeners (gRPC over TLS with ALPN h2): paths '/' and "
            "'/<service>[/<method>]' become method matches; the host's plain-HTTP listener does not serve gRPC "
            "(cleartext HTTP/2 would take the whole port)")
    if protocol == "GRPC":
        return _one(source, key, "converted-with-difference", grpc)
    if protocol in ("HTTPS", "GRPCS"):
        # The same as ingress-nginx (proxy_ssl_verify off, no SNI), named so the risk shows.
        unverified = ("IngressNginxCompat backendTLS {insecureSkipVerify: true} on the Ingress's rules: TLS to "
                      "the pods without checking their certificates or sending a server name, as ingress-nginx "
                      "did. Recommended: verify them, with a BackendTLSPolicy for the Service (caCertificateRefs: "
                      "the CA that signed the pods' certificates; hostname: the name in them), which then wins "
                      "over the filter (docs/compatibility.md)")
        detail = unverified if protocol == "HTTPS" else f"{grpc}; {unverified}"
        return Contribution(filters=[{"type": "ExtensionRef", "_compat": {"backendTLS": {"insecureSkipVerify": True}}}],
                            findings=[Finding(source.file, source.obj, key,
                                              "exact" if protocol == "HTTPS" else "converted-with-difference",
                                              detail, source.ingress_class)])
    if protocol == "AUTO_HTTP":
        return _one(source, key, "not-converted",
                    "AUTO_HTTP (the client's scheme to the backend) has no equivalent: plain HTTP is used")
    return _one(source, key, "not-converted", "FastCGI backends have no Gateway API equivalent")


def _ssl_passthrough(key: str, value: str, source: Source) -> Contribution:
    if not parse_bool(value, key):
        return _one(source, key, "exact", "no passthrough (the default)")
    return _one(source, key, "exact",
                "TLSRoute on a Passthrough listener (port 443, the host's name) to the backend of the host's "
                "first path; the HTTP listener keeps serving the host's paths (ingress-nginx needed "
                "--enable-ssl-passthrough)")


def _service_upstream(key: str, value: str, source: Source) -> Contribution:
    if not parse_bool(value, key):
        return _one(source, key, "exact", "endpoints balanced by the gateway (the default)")
    return _one(source, key, "converted-with-difference",
                "wardgate balances over the Service's endpoints itself (ingress-nginx sent every request to the "
                "ClusterIP and let kube-proxy pick): the same pods, but connection reuse, retries and ready-state "
                "changes follow the gateway rather than kube-proxy")


def _preserve_trailing_slash(key: str, value: str, source: Source) -> Contribution:
    return _one(source, key, "exact", "IngressNginxCompat sslRedirect preserveTrailingSlash: "
                + ("true" if parse_bool(value, key) else "false (the default)"))


CATALOG: dict[str, CatalogEntry] = {
    "ssl-redirect": CatalogEntry("IngressNginxCompat sslRedirect (308 to https) on the Ingress's rules when the host "
                                 "has TLS", _ssl_redirect),
    "force-ssl-redirect": CatalogEntry("IngressNginxCompat sslRedirect (308 to https) on the Ingress's rules",
                                       _ssl_redirect),
    "canary": CatalogEntry("extra rules / weighted backendRefs on the mainline Ingress's rules",
                           _bool_only("the canary's paths merge into the mainline's rules")),
    "canary-by-header": CatalogEntry("header match on the mainline's rules", _canary_value),
    "canary-by-header-value": CatalogEntry("header match (Exact) on the mainline's rules", _canary_value),
    "canary-by-header-pattern": CatalogEntry("header match (RegularExpression) on the mainline's rules",
                                             _canary_value),
    "canary-by-cookie": CatalogEntry("Cookie header match (RegularExpression) on the mainline's rules",
                                     _canary_value),
    "canary-weight": CatalogEntry("weighted backendRefs on the mainline's rules", _canary_value),
    "canary-weight-total": CatalogEntry("weighted backendRefs on the mainline's rules", _canary_value),
    "permanent-redirect": CatalogEntry("RequestRedirect (301) on the Ingress's rules", _redirect),
    "permanent-redirect-code": CatalogEntry("the RequestRedirect's statusCode", owner="permanent-redirect"),
    "temporal-redirect": CatalogEntry("RequestRedirect (302) on the Ingress's rules", _redirect),
    "temporal-redirect-code": CatalogEntry("the RequestRedirect's statusCode", owner="temporal-redirect"),
    "app-root": CatalogEntry("Exact '/' rule with RequestRedirect 302 to the app root", _app_root),
    "from-to-www-redirect": CatalogEntry("HTTPRoute for the www./apex name with an IngressNginxCompat redirect "
                                         "(308) to the host", _www),
    "upstream-vhost": CatalogEntry("URLRewrite hostname", _upstream_vhost),
    "proxy-connect-timeout": CatalogEntry("rule timeouts.backendRequest", _timeout),
    "proxy-send-timeout": CatalogEntry("rule timeouts.backendRequest", _timeout),
    "proxy-read-timeout": CatalogEntry("rule timeouts.backendRequest", _timeout),
    "backend-protocol": CatalogEntry("GRPC: GRPCRoute (beside a host's HTTP paths: HTTPRoute rules with "
                                     "IngressNginxCompat backendProtocol GRPC); HTTPS/GRPCS: IngressNginxCompat "
                                     "backendTLS insecureSkipVerify (unverified TLS, as ingress-nginx)",
                                     _backend_protocol),
    "ssl-passthrough": CatalogEntry("TLSRoute on a Passthrough listener", _ssl_passthrough),
    "preserve-trailing-slash": CatalogEntry("IngressNginxCompat sslRedirect preserveTrailingSlash",
                                            _preserve_trailing_slash),
    "service-upstream": CatalogEntry("backendRefs to the Service (the gateway balances over its endpoints)",
                                     _service_upstream),
}
