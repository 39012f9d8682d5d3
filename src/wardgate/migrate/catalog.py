"""Every annotation ingress-nginx v1.15 documents, and what migrate does with it.

The catalog joins the topic modules' CATALOGs (the annotations they convert) with NEVER, the
annotations that are never converted, each with why and what to do instead. `lookup` answers for
one key (without the `nginx.ingress.kubernetes.io/` prefix); a key it doesn't know is reported
`unknown` by the converter.

DOCUMENTED is the reference list: the annotations of ingress-nginx's annotations.md (table and
sections) and annotations-risk.md, plus the aliases its parsers accept (limit-whitelist,
whitelist-source-range), at kubernetes/ingress-nginx@dbb11b92d (v1.15.1+). tests/test_migrate_catalog.py
checks the catalog and tests/fixtures/migrate/all-annotations.yaml against it both ways.
"""

from __future__ import annotations

from types import ModuleType

from wardgate.migrate import ann_auth, ann_paths, ann_policy, ann_routing, ann_snippets
from wardgate.migrate.contrib import CatalogEntry

PREFIX = "nginx.ingress.kubernetes.io/"

# The modules converting annotations; NEVER below lists the ones never converted.
TOPIC_MODULES: list[ModuleType] = [ann_policy, ann_routing, ann_paths, ann_snippets, ann_auth]


def _never(becomes: str, *keys: str) -> dict[str, CatalogEntry]:
    return {k: CatalogEntry(becomes="not converted: " + becomes) for k in keys}


NEVER: dict[str, CatalogEntry] = {
    **_never("client certificates are checked per HTTPS listener in Gateway API: set the Gateway listener's "
             "tls.frontend (CA ConfigMap, docs/conformance.md) for this host; per-path checks, CN matching, the "
             "error page and passing the certificate upstream have no equivalent",
             "auth-tls-secret", "auth-tls-verify-client", "auth-tls-verify-depth", "auth-tls-error-page",
             "auth-tls-pass-certificate-to-upstream", "auth-tls-match-cn"),
    **_never("wardgate sends 'Connection: upgrade' for WebSocket requests and keeps connections to backends "
             "alive otherwise; a fixed Connection header has no field", "connection-proxy-header"),
    **_never("only matters for custom-http-errors error pages, which wardgate intercepts per route",
             "disable-proxy-intercept-errors"),
    **_never("wardgate writes a decision log line for every request (docs/policies.md#decision-log); there is "
             "no per-route switch", "enable-access-log"),
    **_never("nginx's rewrite debugging log; wardgate's decision log records the route and decision",
             "enable-rewrite-log"),
    **_never("wardgate has no tracing; its request id (X-Request-Id, the decision log's request_id) correlates "
             "logs", "enable-opentelemetry", "opentelemetry-trust-incoming-span", "opentelemetry-operation-name"),
    **_never("wardgate proxies HTTP, gRPC and TLS; FastCGI backends need an HTTP front (backend-protocol FCGI is "
             "not converted either)", "fastcgi-index", "fastcgi-params-configmap"),
    **_never("HTTP/2 server push is gone from nginx and from browsers: nothing to keep", "http2-push-preload"),
    **_never("wardgate balances round robin, ingress-nginx's default; ewma has no equivalent", "load-balance"),
    **_never("ingress-nginx mirrors to a URL, Gateway API's RequestMirror filter to a Service: add a RequestMirror "
             "filter naming the Service behind the URL", "mirror-target", "mirror-host", "mirror-request-body"),
    **_never("buffering tuning: responses are the same, only when bytes flow differs (wardgate uses nginx's "
             "defaults)", "proxy-buffering", "proxy-buffers-number", "proxy-buffer-size", "proxy-busy-buffers-size",
             "proxy-max-temp-file-size", "proxy-request-buffering"),
    **_never("rewriting the domain or path of the backend's Set-Cookie headers has no field",
             "proxy-cookie-domain", "proxy-cookie-path"),
    **_never("rewriting the backend's Location headers has no field; make the backend send the public URL "
             "(X-Forwarded-Host and X-Forwarded-Proto reach it)", "proxy-redirect-from", "proxy-redirect-to"),
    **_never("wardgate speaks HTTP/1.1 to backends, ingress-nginx's default; 1.0 has no field", "proxy-http-version"),
    **_never("retries are HTTPRoute rule `retry` (attempts, codes) and `timeouts`: set them on the route "
             "(docs/conformance.md: which failures nginx retries)", "proxy-next-upstream",
             "proxy-next-upstream-tries", "proxy-next-upstream-timeout"),
    **_never("TLS to the backend is a BackendTLSPolicy (CA and hostname) plus backend-protocol; a client "
             "certificate for backends is the Gateway's spec.tls.backend.clientCertificateRef; protocols and "
             "ciphers toward backends have no field", "proxy-ssl-secret", "proxy-ssl-verify",
             "proxy-ssl-verify-depth", "proxy-ssl-name", "proxy-ssl-server-name", "proxy-ssl-ciphers",
             "proxy-ssl-protocols"),
    **_never("nginx's own redirects (a missing trailing slash) carry an absolute Location in wardgate",
             "relative-redirects"),
    **_never("nginx's own redirects use the port the client connected to; no switch", "use-port-in-redirects"),
    **_never("wardgate applies every check (IP lists and authentication must both pass), as `satisfy all`, "
             "the default; `any` has no equivalent", "satisfy"),
    **_never("add the alias to the HTTPRoute's hostnames (and a listener that accepts it)", "server-alias"),
    **_never("ciphers are per HTTPS listener: tls.options wardgate.io/ciphers (docs/tls.md); wardgate lets the "
             "client choose among strong suites", "ssl-ciphers", "ssl-prefer-server-ciphers"),
    **_never("consistent hashing to a backend pod has no field; where the point is stickiness use cookie "
             "affinity (sessionPersistence)", "upstream-hash-by", "upstream-hash-by-subset",
             "upstream-hash-by-subset-size"),
    **_never("response bandwidth limits (limit_rate) have no field", "limit-rate", "limit-rate-after"),
}


DOCUMENTED: frozenset[str] = frozenset({
    "affinity", "affinity-canary-behavior", "affinity-mode", "allowlist-source-range", "app-root",
    "auth-always-set-cookie", "auth-cache-duration", "auth-cache-key", "auth-keepalive", "auth-keepalive-requests",
    "auth-keepalive-share-vars", "auth-keepalive-timeout", "auth-method", "auth-proxy-set-headers", "auth-realm",
    "auth-request-redirect", "auth-response-headers", "auth-secret", "auth-secret-type", "auth-signin",
    "auth-signin-redirect-param", "auth-snippet", "auth-tls-error-page", "auth-tls-match-cn",
    "auth-tls-pass-certificate-to-upstream", "auth-tls-secret", "auth-tls-verify-client", "auth-tls-verify-depth",
    "auth-type", "auth-url", "backend-protocol", "canary", "canary-by-cookie", "canary-by-header",
    "canary-by-header-pattern", "canary-by-header-value", "canary-weight", "canary-weight-total",
    "client-body-buffer-size", "configuration-snippet", "connection-proxy-header", "cors-allow-credentials",
    "cors-allow-headers", "cors-allow-methods", "cors-allow-origin", "cors-expose-headers", "cors-max-age",
    "custom-headers", "custom-http-errors", "default-backend", "denylist-source-range",
    "disable-proxy-intercept-errors", "enable-access-log", "enable-cors", "enable-global-auth", "enable-modsecurity",
    "enable-opentelemetry", "enable-owasp-core-rules", "enable-rewrite-log", "fastcgi-index",
    "fastcgi-params-configmap", "force-ssl-redirect", "from-to-www-redirect", "http2-push-preload",
    "limit-allowlist", "limit-burst-multiplier", "limit-connections", "limit-rate", "limit-rate-after", "limit-rpm",
    "limit-rps", "limit-whitelist", "load-balance", "mirror-host", "mirror-request-body", "mirror-target",
    "modsecurity-snippet", "modsecurity-transaction-id", "opentelemetry-operation-name",
    "opentelemetry-trust-incoming-span", "permanent-redirect", "permanent-redirect-code", "preserve-trailing-slash",
    "proxy-body-size", "proxy-buffer-size", "proxy-buffering", "proxy-buffers-number", "proxy-busy-buffers-size",
    "proxy-connect-timeout", "proxy-cookie-domain", "proxy-cookie-path", "proxy-http-version",
    "proxy-max-temp-file-size", "proxy-next-upstream", "proxy-next-upstream-timeout", "proxy-next-upstream-tries",
    "proxy-read-timeout", "proxy-redirect-from", "proxy-redirect-to", "proxy-request-buffering", "proxy-send-timeout",
    "proxy-ssl-ciphers", "proxy-ssl-name", "proxy-ssl-protocols", "proxy-ssl-secret", "proxy-ssl-server-name",
    "proxy-ssl-verify", "proxy-ssl-verify-depth", "relative-redirects", "rewrite-target", "satisfy", "server-alias",
    "server-snippet", "service-upstream", "session-cookie-change-on-failure",
    "session-cookie-conditional-samesite-none", "session-cookie-domain", "session-cookie-expires",
    "session-cookie-max-age", "session-cookie-name", "session-cookie-path", "session-cookie-samesite",
    "session-cookie-secure", "ssl-ciphers", "ssl-passthrough", "ssl-prefer-server-ciphers", "ssl-redirect",
    "stream-snippet", "temporal-redirect", "temporal-redirect-code", "upstream-hash-by", "upstream-hash-by-subset",
    "upstream-hash-by-subset-size", "upstream-vhost", "use-port-in-redirects", "use-regex", "whitelist-source-range",
    "x-forwarded-prefix",
})


# annotations-risk.md: the risk ingress-nginx gives each annotation (aliases share their key's).
# An Ingress with an annotation above the ConfigMap's annotations-risk-level is not served.
_RISK_GROUPS: dict[str, tuple[str, ...]] = {
    "Critical": (
        "auth-snippet", "configuration-snippet", "modsecurity-snippet", "server-snippet", "stream-snippet",
    ),
    "High": (
        "auth-signin", "auth-tls-error-page", "auth-tls-match-cn", "auth-url", "mirror-host", "mirror-target",
        "modsecurity-transaction-id", "proxy-ssl-name", "server-alias", "upstream-hash-by",
    ),
    "Medium": (
        "affinity-mode", "allowlist-source-range", "app-root", "auth-cache-duration", "auth-cache-key",
        "auth-proxy-set-headers", "auth-realm", "auth-request-redirect", "auth-response-headers", "auth-secret",
        "auth-signin-redirect-param", "auth-tls-secret", "auth-tls-verify-client", "canary-by-cookie",
        "canary-by-header", "canary-by-header-pattern", "canary-by-header-value", "cors-allow-headers",
        "cors-allow-methods", "cors-allow-origin", "cors-expose-headers", "custom-headers", "denylist-source-range",
        "fastcgi-index", "fastcgi-params-configmap", "force-ssl-redirect", "opentelemetry-operation-name",
        "permanent-redirect", "preserve-trailing-slash", "proxy-body-size", "proxy-cookie-domain",
        "proxy-cookie-path", "proxy-next-upstream", "proxy-redirect-from", "proxy-redirect-to", "proxy-ssl-ciphers",
        "proxy-ssl-secret", "rewrite-target", "session-cookie-domain", "session-cookie-expires",
        "session-cookie-max-age", "session-cookie-name", "session-cookie-path", "temporal-redirect",
        "x-forwarded-prefix",
    ),
}
RISK: dict[str, str] = {**dict.fromkeys(DOCUMENTED, "Low"),
                        **{k: level for level, keys in _RISK_GROUPS.items() for k in keys},
                        "whitelist-source-range": "Medium"}


def _join() -> tuple[dict[str, CatalogEntry], list[tuple[str, str, str]]]:
    """The joined catalog, and (key, first source, second source) for each key two sources claim."""
    out: dict[str, CatalogEntry] = {}
    where: dict[str, str] = {}
    clashes: list[tuple[str, str, str]] = []
    sources: list[tuple[str, dict[str, CatalogEntry]]] = [
        (m.__name__, m.CATALOG) for m in TOPIC_MODULES] + [("wardgate.migrate.catalog.NEVER", NEVER)]
    for name, entries in sources:
        for key, entry in entries.items():
            if key in out:
                clashes.append((key, where[key], name))
                continue  # the first source keeps it; the test names the clash
            out[key], where[key] = entry, name
    return out, clashes


CATALOG, CLASHES = _join()


def lookup(key: str) -> CatalogEntry | None:
    """The entry for an annotation key, with or without the nginx.ingress.kubernetes.io/ prefix."""
    return CATALOG.get(key.removeprefix(PREFIX))


def markdown_table() -> str:
    """docs/migration-annotations.md's table: every documented annotation, its risk and what it
    becomes. tests/test_migrate_catalog.py keeps the doc equal to it."""
    rows = ["| annotation | risk | becomes |", "|---|---|---|"]
    for key in sorted(DOCUMENTED):
        rows.append(f"| `{key}` | {RISK[key]} | {CATALOG[key].becomes.replace('|', '/')} |")
    return "\n".join(rows) + "\n"
