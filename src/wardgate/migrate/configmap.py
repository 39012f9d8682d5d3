"""The ingress-nginx controller ConfigMap: its defaults, what each key becomes, and whether an
Ingress is served at all under it.

`config_contributions(data, source)` returns what the class's Gateway gets (a ClientTrafficPolicy
and a Gateway-level SecurityPolicy, as Contribution fields) and one Finding per key of `data`
(item "data.<key>"). It works on the effective configuration (`effective`: ingress-nginx v1.15's
defaults under `data`), so defaults that differ from wardgate's are carried over too.

`admission(annotations, config)` says why ingress-nginx would not serve an Ingress at all
(annotations above annotations-risk-level, words of annotation-value-word-blocklist), and
`snippets_dropped(config)` whether it drops snippet annotations (allow-snippet-annotations).
Facts from ingress-nginx's config.go (NewDefault), configmap.md, nginx.tmpl and controller.go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from wardgate.migrate import ann_policy
from wardgate.migrate.ann_policy import (
    finding,
    go_bool,
    go_cidrs,
    go_int,
    ip_access,
    nginx_size,
    valid,
)
from wardgate.migrate.catalog import PREFIX, RISK
from wardgate.migrate.contrib import Contribution, Source
from wardgate.migrate.report import Finding, Status
from wardgate.model.policies import ClientIP, Hsts, IPAccess, PolicyHeaderFilter, RequestLimits, Waf

# ingress-nginx v1.15's defaults for the keys whose value changes what a request gets.
DEFAULTS: dict[str, str] = {
    "allow-snippet-annotations": "false",
    "annotations-risk-level": "High",
    "annotation-value-word-blocklist": "",
    "use-forwarded-headers": "false",
    "enable-real-ip": "false",
    "forwarded-for-header": "X-Forwarded-For",
    "compute-full-forwarded-for": "false",
    "proxy-real-ip-cidr": "0.0.0.0/0",
    "use-proxy-protocol": "false",
    "generate-request-id": "true",
    "proxy-body-size": "1m",
    "limit-req-status-code": "503",
    "limit-conn-status-code": "503",
    "http-redirect-code": "308",
    "ssl-redirect": "true",
    "force-ssl-redirect": "false",
    "no-tls-redirect-locations": "/.well-known/acme-challenge",
    "hsts": "true",
    "hsts-max-age": "31536000",
    "hsts-include-subdomains": "true",
    "hsts-preload": "false",
    "server-tokens": "false",
    "allow-backend-server-header": "false",
    "global-allowed-response-headers": "",
    "whitelist-source-range": "",
    "denylist-source-range": "",
    "block-cidrs": "",
    "proxy-connect-timeout": "5",
    "proxy-read-timeout": "60",
    "proxy-send-timeout": "60",
    "proxy-next-upstream": "error timeout",
    "proxy-next-upstream-tries": "3",
    "proxy-next-upstream-timeout": "0",
    "custom-http-errors": "",
    "enable-modsecurity": "false",
    "enable-owasp-modsecurity-crs": "false",
    "use-http2": "true",
    "ssl-protocols": "TLSv1.2 TLSv1.3",
    "ssl-ciphers": ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"),
    "large-client-header-buffers": "4 8k",
    "enable-underscores-in-headers": "false",
    "ignore-invalid-headers": "true",
    "retry-non-idempotent": "false",
    "strict-validate-path-type": "true",
    "limit-conn-zone-variable": "$binary_remote_addr",
    "load-balance": "round_robin",
    "proxy-http-version": "1.1",
    "proxy-cookie-path": "off",
    "proxy-cookie-domain": "off",
    "proxy-redirect-from": "off",
    "proxy-redirect-to": "off",
    "relative-redirects": "false",
    "limit-rate": "0",
    "limit-rate-after": "0",
    "use-gzip": "false",
    "enable-brotli": "false",
    "use-geoip2": "false",
    "ssl-ecdh-curve": "auto",
    "ssl-session-tickets": "false",
    "ssl-reject-handshake": "false",
    "enable-ocsp": "false",
    "ssl-early-data": "false",
}


def effective(data: Mapping[str, str]) -> dict[str, str]:
    """The configuration a controller runs with: DEFAULTS under the ConfigMap's data."""
    return {**DEFAULTS, **data}


# --- whether an Ingress is served at all -----------------------------------------------------------

RISK_LEVELS = ("Low", "Medium", "High", "Critical")


def admission(annotations: Mapping[str, str], config: Mapping[str, str]) -> str | None:
    """Why ingress-nginx with `config` ignores (or its admission webhook refuses) an Ingress with
    these annotations (full keys, or keys without the prefix), or None when it serves it."""
    cfg = effective(config)
    level = cfg["annotations-risk-level"].strip()
    if level not in RISK_LEVELS:
        level = "Critical"  # parser.StringRiskToRisk: an unknown level allows everything
    allowed = RISK_LEVELS.index(level)
    risky = sorted(k.removeprefix(PREFIX) for k in annotations
                   if RISK_LEVELS.index(RISK.get(k.removeprefix(PREFIX), "Low")) > allowed
                   and (k.startswith(PREFIX) or "/" not in k))
    if risky:
        return (f"{', '.join(risky)} {'is' if len(risky) == 1 else 'are'} above the ConfigMap's "
                f"annotations-risk-level {level}: ingress-nginx serves nothing of this Ingress")
    words = [w.strip() for w in cfg["annotation-value-word-blocklist"].strip().split(",") if w.strip()]
    for key, value in sorted(annotations.items()):
        if not (key.startswith(PREFIX) or "/" not in key):
            continue
        for word in words:
            if word in value:
                return (f"{key.removeprefix(PREFIX)} contains {word!r} from annotation-value-word-blocklist: "
                        "ingress-nginx refuses this Ingress")
    return None


def snippets_dropped(config: Mapping[str, str]) -> bool:
    """ingress-nginx drops configuration-, server-, modsecurity-, auth- and stream-snippet
    annotations (and serves the rest) unless allow-snippet-annotations is true."""
    return go_bool(effective(config)["allow-snippet-annotations"]) is not True


# --- ConfigMap keys -------------------------------------------------------------------------------

KeyResult = tuple[Status, str]
KeyHandler = Callable[[str, str, dict[str, str], Source], KeyResult]


def _fixed(status: Status, detail: str) -> KeyHandler:
    return lambda key, value, cfg, source: (status, detail)


TUNING = _fixed("not-converted", "tuning of ingress-nginx's own nginx (workers, buffers, hashes, caches, connection "
                "timeouts); wardgate tunes its nginx itself and has no field for it")
LOGGING = _fixed("not-converted", "logging of ingress-nginx; wardgate writes its own JSON decision log "
                 "(docs/policies.md#decision-log)")
TRACING = _fixed("not-converted", "tracing: wardgate has none; its request id (X-Request-Id, the decision log's "
                 "request_id) correlates logs")
STREAM = _fixed("not-converted", "TCP/UDP services (nginx stream) are not migrated")
GLOBAL_SNIPPET = _fixed("not-converted", "raw nginx configuration for every server or location; wardgate takes no "
                        "snippets: convert what it does into policies (docs/ingress-nginx.md#snippets)")


def _read_by(what: str) -> KeyHandler:
    def handler(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
        return "exact", f"applied where it matters: {what} of every Ingress of this class reads it"
    return handler


def _default_or(status: Status, detail: str) -> KeyHandler:
    """Exact when the value is ingress-nginx's default (which wardgate's behaviour matches)."""
    def handler(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
        if value.strip() == DEFAULTS[key]:
            return "exact", "the default, which wardgate's behaviour matches"
        return status, detail
    return handler


def _bool_default_or(status: Status, detail: str) -> KeyHandler:
    def handler(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
        if go_bool(value.strip()) == go_bool(DEFAULTS[key]):
            return "exact", "the default, which wardgate's behaviour matches"
        return status, detail
    return handler


# Where the Gateway's clients come from (real_ip, nginx.tmpl lines on real_ip_header).
def _client_ip(cfg: dict[str, str]) -> tuple[dict[str, Any], list[str], str | None]:
    """(clientIP, differences, why not converted)."""
    forwarded = go_bool(cfg["use-forwarded-headers"]) is True
    real_ip = go_bool(cfg["enable-real-ip"]) is True
    proxy_protocol = go_bool(cfg["use-proxy-protocol"]) is True
    cidrs = go_cidrs(cfg["proxy-real-ip-cidr"]) if cfg["proxy-real-ip-cidr"].strip() else []
    if cidrs is None:
        return {}, [], f"proxy-real-ip-cidr {cfg['proxy-real-ip-cidr']!r} is not a CIDR list"
    notes: list[str] = []
    if proxy_protocol:
        if forwarded:
            notes.append("ingress-nginx with PROXY protocol and forwarded headers took X-Forwarded-For from "
                         "trusted PROXY peers: wardgate takes the PROXY protocol address")
        cip: dict[str, Any] = {"source": "ProxyProtocol"}
        if cidrs and cidrs != ["0.0.0.0/0"]:
            cip["trustedCIDRs"] = cidrs
            notes.append("peers outside proxy-real-ip-cidr: ingress-nginx used their address as the client, wardgate "
                         "refuses their connections")
        return cip, notes, None
    if not (forwarded or real_ip):
        return {}, [], None
    if cfg["forwarded-for-header"].strip().lower() != "x-forwarded-for":
        return {}, [], (f"forwarded-for-header {cfg['forwarded-for-header']!r}: wardgate reads the client IP from "
                        "X-Forwarded-For or the PROXY protocol only")
    if not cidrs:
        return {}, [], "proxy-real-ip-cidr is empty: ingress-nginx trusted no proxy"
    cip = {"source": "XForwardedFor", "trustedCIDRs": cidrs}
    if go_bool(cfg["compute-full-forwarded-for"]) is True and forwarded:
        cip["forwardedFor"] = "Append"
    else:
        notes.append("backends get X-Forwarded-For from the client address on (the trusted chain, then the peer); "
                     "ingress-nginx sent the client address alone")
    if forwarded:
        notes.append("ingress-nginx also passed the client's own X-Forwarded-Proto, -Host and -Port to backends; "
                     "wardgate sends its own")
    if "0.0.0.0/0" in cidrs:
        notes.append("trusting 0.0.0.0/0 lets any client choose its IP (and pass IP allowlists and rate limits): "
                     "narrow trustedCIDRs to your load balancers")
    return cip, notes, None


_CLIENT_IP_KEYS = ("use-forwarded-headers", "enable-real-ip", "forwarded-for-header", "compute-full-forwarded-for",
                   "proxy-real-ip-cidr", "use-proxy-protocol", "forwarded-for-proxy-protocol-header")


def client_ip_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    cip, notes, problem = _client_ip(cfg)
    if problem:
        return "not-converted", problem + "; the Gateway reads the client IP from the connection"
    if key == "forwarded-for-proxy-protocol-header":
        return "exact", "only used with use-proxy-protocol and use-forwarded-headers together; see those keys"
    if not cip:
        return "exact", "client IP from the connection, wardgate's default"
    what = f"ClientTrafficPolicy clientIP {cip}"
    return ("converted-with-difference" if notes else "exact"), what + ("; " + "; ".join(notes) if notes else "")


def hsts_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    hsts, notes, problem = _hsts(cfg)
    if problem:
        return "not-converted", problem
    return ("converted-with-difference" if notes else "exact"), (
        f"SecurityPolicy hsts {hsts} on the Gateway" if hsts else "HSTS as wardgate's default "
        "(max-age=31536000; includeSubDomains on HTTPS)") + ("; " + "; ".join(notes) if notes else "")


def _hsts(cfg: dict[str, str]) -> tuple[dict[str, Any], list[str], str | None]:
    """(SecurityPolicy hsts, differences, why not converted); {} when wardgate's default matches."""
    on, sub, preload = go_bool(cfg["hsts"]), go_bool(cfg["hsts-include-subdomains"]), go_bool(cfg["hsts-preload"])
    age = go_int(cfg["hsts-max-age"].strip())
    if on is None or sub is None or preload is None or age is None or age < 0:
        return {}, [], "an hsts key holds a value ingress-nginx cannot read: fix it"
    if not on:
        return {"enabled": False}, [], None
    hsts: dict[str, Any] = {}
    notes: list[str] = []
    if age != 31536000:
        hsts["maxAge"] = age
    if not sub:
        hsts["includeSubDomains"] = False
    if preload:
        if age >= 31536000 and sub:
            hsts["preload"] = True
        else:
            notes.append("'preload' is left out: wardgate sends it only with max-age >= 1 year and includeSubDomains, "
                         "which the browsers' preload lists require")
    problem = valid(Hsts, hsts)
    return hsts, notes, problem


def body_size_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    size = nginx_size(cfg["proxy-body-size"])
    if size is None:
        return "not-converted", f"{value!r} is not an nginx size (nginx would refuse the configuration): fix it"
    if size == 2**20:
        return "exact", "1 MiB, wardgate's default as well"
    return "exact", (f"SecurityPolicy requestLimits.maxBodySize {ann_policy.byte_quantity(size)} on the Gateway "
                     "(routes with proxy-body-size override it)")


def source_range_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    access, problem = _gateway_ip_access(cfg)
    if problem:
        return "not-converted", problem
    if not any(access.values()):
        return "exact", "empty: nobody is refused"
    parts = "; ".join(f"{k} {', '.join(v)}" for k, v in access.items() if v)
    detail = (f"SecurityPolicy ipAccess ({parts}) on the Gateway; an Ingress with its own *-source-range annotation "
              "replaces it")
    if key == "block-cidrs" and (cfg["whitelist-source-range"].strip() or cfg["denylist-source-range"].strip()):
        return "exact", ("no effect on Ingress paths: nginx drops inherited deny lines where a location has "
                         "allow/deny of its own, which every location gets from whitelist/denylist-source-range")
    return ("converted-with-difference", detail + "; requests for unknown hosts (the default server's 404) get it "
            "too, ingress-nginx answered them without it") if key != "block-cidrs" else ("exact", detail)


def _gateway_ip_access(cfg: dict[str, str]) -> tuple[dict[str, list[str]], str | None]:
    lists: dict[str, list[str]] = {}
    for key in ("whitelist-source-range", "denylist-source-range", "block-cidrs"):
        raw = cfg[key].strip()
        got = go_cidrs(raw) if raw else []
        if got is None:
            return {}, f"{key} {cfg[key]!r} is not a CIDR list"
        lists[key] = got
    allow, deny = lists["whitelist-source-range"], lists["denylist-source-range"]
    # Locations get allow/deny lines from the two lists; only without them do they inherit
    # block-cidrs' http-level deny lines.
    access = ip_access(allow, deny) if allow or deny else {"allow": [], "deny": lists["block-cidrs"]}
    return access, valid(IPAccess, access)


_VALUE_FROM = {"$remote_addr": "ClientIP", "$request_id": "RequestID", "$host": "Host", "$scheme": "Scheme"}
_NGINX_VAR = re.compile(r"\$(\w+|\{\w+\})")


def _headers_from(cfg: dict[str, str], key: str, source: Source) -> tuple[list[dict[str, str]], list[str], str | None]:
    """(headers to set, differences, problem) for add-headers / proxy-set-headers. nginx expands
    variables in these values; the ones a SecurityPolicy header can name become valueFrom."""
    ref = cfg.get(key, "").strip()
    if not ref:
        return [], [], None
    data = source.config_maps.get(ref)
    if data is None:
        return [], [], (f"ConfigMap {ref} is not in the input (ingress-nginx ignores a missing one too, with a "
                        "warning): add it to the input")
    headers: list[dict[str, str]] = []
    notes: list[str] = []
    for name, value in sorted(data.items()):
        if value.strip() in _VALUE_FROM:
            headers.append({"name": name, "valueFrom": _VALUE_FROM[value.strip()]})
        elif _NGINX_VAR.search(value):
            notes.append(f"{name}: {value!r} names nginx variables, which ingress-nginx expanded; wardgate sends "
                         "the text literally")
            headers.append({"name": name, "value": value})
        else:
            headers.append({"name": name, "value": value})
    problem = valid(PolicyHeaderFilter, {"set": headers})
    return headers, notes, (f"a header of ConfigMap {ref} is not one wardgate accepts ({problem})" if problem else None)


def headers_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    headers, notes, problem = _headers_from(cfg, key, source)
    if problem:
        return "not-converted", problem
    side = "responseHeaders" if key == "add-headers" else "requestHeaders"
    what = (f"SecurityPolicy {side}.set {', '.join(h['name'] for h in headers)} on the Gateway" if headers
            else "an empty ConfigMap: nothing to set")
    return ("converted-with-difference" if notes else "exact"), what + ("; " + "; ".join(notes) if notes else "")


def server_tokens_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    if go_bool(cfg["server-tokens"]) is True:
        return "converted-with-difference", ("ingress-nginx sent 'Server: nginx/<version>'; wardgate sends "
                                             "'Server: nginx' without the version")
    return "exact", "no Server header: removed on the Gateway (SecurityPolicy responseHeaders.remove Server)"


def hide_headers_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    names = [h.strip() for h in value.split(",") if h.strip()]
    if valid(PolicyHeaderFilter, {"remove": names}):
        return "not-converted", f"{value!r} is not a list of header names"
    return "exact", f"SecurityPolicy responseHeaders.remove {', '.join(names)} on the Gateway"


def status_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    n = go_int(value.strip())
    if n is None or not 400 <= n <= 599:
        return "not-converted", f"{value!r} is not a status nginx accepts (400-599); the controller's nginx "\
            "configuration would not load: fix it"
    what = "the rate limits' status (limit-rps / limit-rpm)" if key == "limit-req-status-code" else \
        "the status of limit-connections"
    note = "; 429 is the better answer for clients" if n == 503 else ""
    return "exact", f"{what}: {n}{note}"


def waf_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    waf, notes, rest = _gateway_waf(cfg, source)
    extra = "".join(f"; line {n} {line!r} not converted: {why}" for n, line, why in rest) \
        if key == "modsecurity-snippet" else ""
    if waf is None:
        return ("converted-with-difference" if notes else "exact"), (
            "; ".join(notes) if notes else "ModSecurity off, as wardgate's default") + extra
    status: Status = "converted-with-difference" if notes or extra else "exact"
    return status, f"SecurityPolicy waf {waf} on the Gateway" + ("; " + "; ".join(notes) if notes else "") + extra


def _gateway_waf(cfg: dict[str, str], source: Source) -> tuple[dict[str, Any] | None, list[str],
                                                                 list[tuple[int, str, str]]]:
    # The Gateway level is an Ingress without ModSecurity annotations under this ConfigMap.
    bare = Source(source.file, source.obj, source.namespace, source.ingress_class, {}, cfg, source.config_maps)
    _, _, rest = ann_policy.modsecurity_snippet(cfg.get("modsecurity-snippet", ""))
    waf, notes, _ = ann_policy.waf_settings(bare)
    return waf, notes, rest


def http2_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    if go_bool(value) is not False:
        return "exact", "HTTP/2 by ALPN on HTTPS, as wardgate"
    return "not-converted", "wardgate always offers HTTP/2 on HTTPS listeners; clients that speak it will use it"


def request_id_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    return "converted-with-difference", ("ingress-nginx passed a client's X-Request-ID on to backends (and "
                                         "generated one only when missing); wardgate always sends its own request id")


def snippet_switch_key(key: str, value: str, cfg: dict[str, str], source: Source) -> KeyResult:
    if key == "allow-snippet-annotations":
        on = go_bool(value) is True
        return "exact", ("snippet annotations were in effect: they are converted where possible"
                         if on else "snippet annotations were dropped by ingress-nginx: they are not converted")
    if key == "annotations-risk-level":
        level = value.strip() if value.strip() in RISK_LEVELS else "Critical"
        return "exact", (f"Ingresses with annotations above {level} were not served by ingress-nginx and are not "
                         "migrated")
    words = [w.strip() for w in value.split(",") if w.strip()]
    return "exact", (f"Ingresses whose annotation values contain {', '.join(map(repr, words))} were refused and are "
                     "not migrated" if words else "empty: no word is refused")


def _tls_key(detail: str) -> KeyHandler:
    return _default_or("not-converted", detail)


KEYS: dict[str, KeyHandler] = {
    # snippets and admission
    "allow-snippet-annotations": snippet_switch_key,
    "annotations-risk-level": snippet_switch_key,
    "annotation-value-word-blocklist": snippet_switch_key,
    "main-snippet": GLOBAL_SNIPPET, "http-snippet": GLOBAL_SNIPPET, "server-snippet": GLOBAL_SNIPPET,
    "location-snippet": GLOBAL_SNIPPET, "stream-snippet": STREAM,
    # client IP
    **dict.fromkeys(_CLIENT_IP_KEYS, client_ip_key),
    # gateway-wide policies
    "hsts": hsts_key, "hsts-max-age": hsts_key, "hsts-include-subdomains": hsts_key, "hsts-preload": hsts_key,
    "proxy-body-size": body_size_key,
    "whitelist-source-range": source_range_key, "denylist-source-range": source_range_key,
    "block-cidrs": source_range_key,
    "block-user-agents": _fixed("not-converted", "refusing requests by User-Agent has no field"),
    "block-referers": _fixed("not-converted", "refusing requests by Referer has no field"),
    "add-headers": headers_key, "proxy-set-headers": headers_key,
    "server-tokens": server_tokens_key,
    "allow-backend-server-header": _bool_default_or(
        "not-converted", "a backend's own Server header is removed on the Gateway; no switch keeps it"),
    "hide-headers": hide_headers_key,
    "generate-request-id": request_id_key,
    "enable-modsecurity": waf_key, "enable-owasp-modsecurity-crs": waf_key, "modsecurity-snippet": waf_key,
    "use-http2": http2_key,
    # read by the annotation conversions
    "limit-req-status-code": status_key, "limit-conn-status-code": status_key,
    "limit-conn-zone-variable": _default_or("not-converted", "concurrentRequests (limit-connections) counts per "
                                            "client IP only"),
    "global-allowed-response-headers": _read_by("custom-headers"),
    "http-redirect-code": _read_by("the HTTP -> HTTPS redirect (ssl-redirect)"),
    "ssl-redirect": _read_by("the HTTP -> HTTPS redirect"),
    "force-ssl-redirect": _read_by("the HTTP -> HTTPS redirect"),
    "no-tls-redirect-locations": _read_by("the HTTP -> HTTPS redirect"),
    "proxy-connect-timeout": _read_by("the route timeouts"),
    "proxy-read-timeout": _read_by("the route timeouts"),
    "proxy-send-timeout": _read_by("the route timeouts"),
    "custom-http-errors": _read_by("custom error pages"),
    "service-upstream": _read_by("the backend conversion"),
    "strict-validate-path-type": _read_by("the path conversion"),
    "allow-cross-namespace-resources": _read_by("the auth conversions (secrets in other namespaces)"),
    **{k: _read_by("external authentication") for k in (
        "global-auth-url", "global-auth-method", "global-auth-signin", "global-auth-signin-redirect-param",
        "global-auth-response-headers", "global-auth-request-redirect", "global-auth-snippet",
        "global-auth-cache-key", "global-auth-cache-duration", "no-auth-locations")},
    # retries and upstream behaviour
    "proxy-next-upstream": _default_or("not-converted", "retries are HTTPRoute rule `retry`: set it on the routes"),
    "proxy-next-upstream-tries": _default_or("not-converted", "retries are HTTPRoute rule `retry`: set it on the "
                                             "routes"),
    "proxy-next-upstream-timeout": _default_or("not-converted", "HTTPRoute rule timeouts.request bounds retries"),
    "retry-non-idempotent": _bool_default_or("not-converted", "wardgate never retries non-idempotent requests"),
    "load-balance": _default_or("not-converted", "wardgate balances round robin; ewma has no equivalent"),
    "proxy-http-version": _default_or("not-converted", "wardgate speaks HTTP/1.1 to backends"),
    "proxy-cookie-path": _default_or("not-converted", "rewriting Set-Cookie has no field"),
    "proxy-cookie-domain": _default_or("not-converted", "rewriting Set-Cookie has no field"),
    "proxy-redirect-from": _default_or("not-converted", "rewriting Location has no field"),
    "proxy-redirect-to": _default_or("not-converted", "rewriting Location has no field"),
    "relative-redirects": _bool_default_or("not-converted", "nginx's own redirects carry an absolute Location"),
    "limit-rate": _default_or("not-converted", "response bandwidth limits have no field"),
    "limit-rate-after": _default_or("not-converted", "response bandwidth limits have no field"),
    "use-gzip": _bool_default_or("not-converted", "wardgate does not compress responses: backends' own encoding "
                                 "passes through"),
    "enable-brotli": _bool_default_or("not-converted", "wardgate does not compress responses"),
    "use-geoip": _fixed("not-converted", "GeoIP variables have no equivalent"),
    "use-geoip2": _bool_default_or("not-converted", "GeoIP variables have no equivalent"),
    "large-client-header-buffers": _default_or(
        "not-converted", "wardgate refuses single header lines over 8 KiB (nginx's default buffers); "
        "SecurityPolicy requestLimits.maxHeaderSize limits the total instead"),
    "enable-underscores-in-headers": _bool_default_or("not-converted", "wardgate drops headers with underscores "
                                                      "(nginx's default)"),
    "ignore-invalid-headers": _bool_default_or("not-converted", "wardgate drops invalid header names (nginx's "
                                               "default)"),
    # TLS
    "ssl-protocols": _tls_key("TLS versions are per listener port: tls.options wardgate.io/min-version "
                              "(\"1.2\" or \"1.3\", docs/tls.md)"),
    "ssl-ciphers": _tls_key("ciphers are per HTTPS listener: tls.options wardgate.io/ciphers (ECDHE suites only, "
                            "docs/tls.md); wardgate's default omits the DHE suites ingress-nginx offered"),
    "ssl-ecdh-curve": _tls_key("wardgate offers X25519, P-256 and P-384; no field"),
    "ssl-dh-param": _fixed("exact", "DH parameters only matter for DHE suites, which wardgate does not offer"),
    "ssl-session-tickets": _bool_default_or("not-converted", "wardgate keeps session tickets off (docs/tls.md)"),
    "ssl-session-ticket-key": _fixed("not-converted", "wardgate keeps session tickets off (docs/tls.md)"),
    "ssl-reject-handshake": _bool_default_or("not-converted", "no field: wardgate answers unknown SNI names as "
                                             "docs/tls.md says"),
    "enable-ocsp": _bool_default_or("not-converted", "wardgate does not staple OCSP responses"),
    "ssl-early-data": _bool_default_or("not-converted", "wardgate does not accept TLS 1.3 early data"),
    # logging and tracing
    **dict.fromkeys((
        "access-log-params", "access-log-path", "http-access-log-path", "stream-access-log-path",
        "enable-access-log-for-default-backend", "error-log-path", "disable-access-log", "error-log-level",
        "log-format-escape-none", "log-format-escape-json", "log-format-upstream", "log-format-stream",
        "skip-access-log-urls", "enable-syslog", "syslog-host", "syslog-port", "debug-connections",
        "enable-auth-access-log"), LOGGING),
    **dict.fromkeys((
        "jaeger-collector-host", "jaeger-collector-port", "jaeger-endpoint", "jaeger-service-name",
        "jaeger-propagation-format", "jaeger-sampler-type", "jaeger-sampler-param", "jaeger-sampler-host",
        "jaeger-sampler-port", "jaeger-trace-context-header-name", "jaeger-debug-header", "jaeger-baggage-header",
        "jaeger-trace-baggage-header-prefix", "enable-opentelemetry", "opentelemetry-trust-incoming-span",
        "opentelemetry-operation-name", "opentelemetry-config", "otlp-collector-host", "otlp-collector-port",
        "otel-max-queuesize", "otel-schedule-delay-millis", "otel-max-export-batch-size", "otel-service-name",
        "otel-sampler", "otel-sampler-parent-based", "otel-sampler-ratio"), TRACING),
    # TCP/UDP
    **dict.fromkeys(("proxy-stream-timeout", "proxy-stream-next-upstream", "proxy-stream-next-upstream-timeout",
                     "proxy-stream-next-upstream-tries", "proxy-stream-responses"), STREAM),
    # tuning
    **dict.fromkeys((
        "client-header-buffer-size", "client-header-timeout", "client-body-buffer-size", "client-body-timeout",
        "disable-ipv6", "disable-ipv6-dns", "http2-max-field-size", "http2-max-header-size", "http2-max-requests",
        "http2-max-concurrent-streams", "keep-alive", "keep-alive-requests", "enable-multi-accept",
        "max-worker-connections", "max-worker-open-files", "map-hash-bucket-size", "nginx-status-ipv4-whitelist",
        "nginx-status-ipv6-whitelist", "server-name-hash-max-size", "server-name-hash-bucket-size",
        "proxy-headers-hash-max-size", "proxy-headers-hash-bucket-size", "reuse-port", "ssl-session-cache",
        "ssl-session-cache-size", "ssl-session-timeout", "ssl-buffer-size", "proxy-protocol-header-timeout",
        "enable-aio-write", "geoip2-autoreload-in-minutes", "brotli-level", "brotli-min-length", "brotli-types",
        "gzip-disable", "gzip-level", "gzip-min-length", "gzip-types", "worker-processes", "worker-cpu-affinity",
        "worker-shutdown-timeout", "enable-serial-reloads", "variables-hash-bucket-size", "variables-hash-max-size",
        "upstream-keepalive-connections", "upstream-keepalive-time", "upstream-keepalive-timeout",
        "upstream-keepalive-requests", "bind-address", "proxy-buffers-number", "proxy-buffer-size",
        "proxy-busy-buffers-size", "proxy-request-buffering", "proxy-buffering", "proxy-max-temp-file-size",
        "lua-shared-dicts", "proxy-ssl-location-only", "default-type", "grpc-buffer-size-kb"), TUNING),
}


def config_contributions(data: Mapping[str, str], source: Source) -> Contribution:
    """What the controller ConfigMap `data` (of `source.obj`) makes of the class's Gateway, with
    one Finding per key of `data`. `source.config_maps` resolves add-headers / proxy-set-headers."""
    cfg = effective(data)
    findings: list[Finding] = []
    for key in sorted(data):
        handler = KEYS.get(key)
        if handler is None:
            findings.append(finding(source, f"data.{key}", "unknown",
                                    "not a key of ingress-nginx v1.15's ConfigMap documentation (a typo, or an "
                                    "older or newer key): check what it did"))
            continue
        status, detail = handler(key, data[key], cfg, source)
        findings.append(finding(source, f"data.{key}", status, detail))
    contribution = Contribution(findings=findings)
    cip, _, problem = _client_ip(cfg)
    if cip and not problem and not valid(ClientIP, cip):
        contribution.client_traffic = {"clientIP": cip}
    security: dict[str, Any] = {}
    hsts, _, problem = _hsts(cfg)
    if hsts and not problem:
        security["hsts"] = hsts
    size = nginx_size(cfg["proxy-body-size"])
    if size is not None and size != 2**20 and not valid(RequestLimits, {"maxBodySize": size}):
        security["requestLimits"] = {"maxBodySize": ann_policy.byte_quantity(size)}
    access, problem = _gateway_ip_access(cfg)
    if not problem and any(access.values()):
        security["ipAccess"] = {k: v for k, v in access.items() if v}
    response: dict[str, Any] = {}
    headers, _, problem = _headers_from(cfg, "add-headers", source)
    if headers and not problem:
        response["set"] = headers
    removed = [] if go_bool(cfg["server-tokens"]) is True else ["Server"]
    removed += [h.strip() for h in cfg.get("hide-headers", "").split(",")
                if h.strip() and not valid(PolicyHeaderFilter, {"remove": [h.strip()]})]
    if removed:
        response["remove"] = list(dict.fromkeys(removed))
    if response:
        security["responseHeaders"] = response
    headers, _, problem = _headers_from(cfg, "proxy-set-headers", source)
    if headers and not problem:
        security["requestHeaders"] = {"set": headers}
    waf, _, _ = _gateway_waf(cfg, source)
    if waf is not None and not valid(Waf, waf):
        security["waf"] = waf
    contribution.security = security
    return contribution
