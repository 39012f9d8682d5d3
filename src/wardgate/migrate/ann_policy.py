"""Policy annotations: rate limits, source ranges, CORS, custom headers, body size, ModSecurity.

Each handler reads its annotation (and the companions it depends on) the way ingress-nginx v1.15's
parser does, and returns what it becomes plus one Finding for that annotation. Facts about
ingress-nginx come from its annotation parsers and nginx.tmpl (see docs/migration-annotations.md).

Invalid values never raise: ingress-nginx answers them in one of three ways, and the finding says
which: it refuses the whole Ingress (a validation error), it serves the Ingress's paths with 503
(a "denied location"), or it falls back to the default. Every output is checked against wardgate's
own models before it is returned, so a handler never emits a policy wardgate would refuse.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pydantic import ValidationError

from wardgate.migrate.contrib import CatalogEntry, Contribution, Handler, Source
from wardgate.migrate.report import Finding, Status
from wardgate.model.gatewayapi import HTTPHeaderFilter
from wardgate.model.policies import (
    ConcurrentRequests,
    IngressNginxCORS,
    IPAccess,
    RateLimitPolicySpec,
    RequestLimits,
    Waf,
)

# --- findings -------------------------------------------------------------------------------------


def finding(source: Source, item: str, status: Status, detail: str) -> Finding:
    return Finding(source.file, source.obj, item, status, detail, source.ingress_class)


def invalid(value: str, what: str) -> str:
    """The start of a finding about a value ingress-nginx could not use."""
    return f"invalid value {value!r} ({what})"


def only(source: Source, item: str, status: Status, detail: str) -> Contribution:
    """A contribution that changes nothing and reports one item."""
    return Contribution(findings=[finding(source, item, status, detail)])


REJECTED = ("ingress-nginx refuses the whole Ingress for this value (annotation validation), so it "
            "never served it; fix the value and migrate again")
DENIED = ("ingress-nginx serves every path of this Ingress with 503 for this value (a denied "
          "location); wardgate has no equivalent, so the paths are served normally: fix the value")


# --- values, read as ingress-nginx's Go parsers read them ------------------------------------------

_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_INT = re.compile(r"[+-]?[0-9]+")


def go_bool(value: str) -> bool | None:
    """strconv.ParseBool; None when it would fail."""
    return True if value in _GO_TRUE else False if value in _GO_FALSE else None


def go_int(value: str) -> int | None:
    """strconv.Atoi (64-bit); None when it would fail."""
    if not _INT.fullmatch(value):
        return None
    n = int(value)
    return n if -(2**63) <= n < 2**63 else None


def go_cidrs(value: str) -> list[str] | None:
    """internal/net.ParseCIDRs: comma-separated CIDRs or addresses (an address is its /32 or
    /128; host bits are dropped, as Go's ParseCIDR does), sorted, deduplicated. None if any entry
    is invalid (ingress-nginx's validator refuses the whole value then)."""
    out: set[str] = set()
    for raw in value.split(","):
        spec = raw.strip()
        try:
            if "%" in spec:  # Go's parsers refuse IPv6 zones
                raise ValueError(spec)
            net = ipaddress.ip_network(spec, strict=False)
        except ValueError:
            return None
        out.add(str(net))
    return sorted(out)


_SIZE = re.compile(r"([0-9]+)([kKmMgG]?)")
_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def nginx_size(value: str) -> int | None:
    """An nginx size (client_max_body_size and friends): bytes, or k/m/g (binary) units."""
    m = _SIZE.fullmatch(value.strip())
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()] if m else None


def byte_quantity(n: int) -> int | str:
    """Bytes as the shortest exact Kubernetes quantity a wardgate ByteSize accepts."""
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return n


def annotation(source: Source, key: str, *aliases: str) -> tuple[str, str] | None:
    """(key, value) as ingress-nginx reads it: the key, or its first non-empty alias when the key
    is empty or absent."""
    for k in (key, *aliases):
        if source.annotations.get(k):
            return k, source.annotations[k]
    return None


REDIRECTS = ("permanent-redirect", "temporal-redirect")


def redirected(source: Source) -> str | None:
    """The redirect annotation the Ingress answers every request with, if any. nginx's `return`
    runs in the rewrite phase, so limit_req, limit_conn and allow/deny (later phases) never see
    those requests; wardgate's policies run before a route's redirect, so they are left out."""
    return next((k for k in REDIRECTS if source.annotations.get(k, "").strip()), None)


def unreached(source: Source, key: str) -> Contribution | None:
    """The finding for a check a redirect makes moot, or None."""
    via = redirected(source)
    if via is None:
        return None
    return only(source, key, "exact", f"no effect, as in ingress-nginx: {via} answers every request in nginx's "
                "rewrite phase, before this check runs")


def valid(model: Any, data: dict[str, Any]) -> str | None:
    """None when wardgate's model accepts `data`, else its first error."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else str(err["msg"])
    return None


# --- rate limits ------------------------------------------------------------------------------------

DEFAULT_BURST_MULTIPLIER = 5
RATE_ANNOTATIONS = ("limit-rps", "limit-rpm", "limit-connections")
_DUMMY_TARGET = {"targetRefs": [{"kind": "HTTPRoute", "name": "x"}]}


def _limit(source: Source, key: str) -> int | None:
    """A limit annotation's value when it sets a limit (> 0)."""
    n = go_int(source.annotations.get(key, ""))
    return n if n is not None and n > 0 else None


def burst_multiplier(source: Source) -> int:
    """limit-burst-multiplier; ingress-nginx falls back to 5 for a missing or invalid value."""
    n = go_int(source.annotations.get("limit-burst-multiplier", ""))
    return DEFAULT_BURST_MULTIPLIER if n is None else n


def limit_exemptions(source: Source) -> list[str] | None:
    """limit-allowlist (alias limit-whitelist) as CIDRs; None when invalid."""
    found = annotation(source, "limit-allowlist", "limit-whitelist")
    return [] if found is None else go_cidrs(found[1])


def status_code(source: Source, key: str, default: int = 503) -> int | None:
    """A status code from the controller ConfigMap (limit-req-status-code and friends): nginx
    accepts 400-599 there."""
    raw = source.config.get(key)
    if raw is None:
        return default
    n = go_int(raw.strip())
    return n if n is not None and 400 <= n <= 599 else None


def _converted_rate(source: Source) -> str | None:
    """Which of limit-rps and limit-rpm becomes the RateLimitPolicy. wardgate applies one rate
    per request; ingress-nginx applies both, so the one with the lower sustained rate is kept."""
    rps, rpm = _limit(source, "limit-rps"), _limit(source, "limit-rpm")
    if rps and rpm:
        return "limit-rpm" if rpm / 60 <= rps else "limit-rps"
    return "limit-rps" if rps else "limit-rpm" if rpm else None


def _nginx_rate_note(rpm: int) -> str:
    """limit_req stores a per-minute rate as whole requests per 1000 s (6r/m is 100): the rate is
    rounded down unless rpm is a multiple of 3."""
    if rpm % 3 == 0:
        return ""
    stored = rpm * 1000 // 60
    return (f"; nginx stored {rpm}r/m as {stored / 1000:g} requests/s ({stored * 60 / 1000:g}/min), wardgate "
            f"refills at exactly {rpm}/min: a request due right at the refill time may pass here and not there")


def rate_limit_handler(key: str, value: str, source: Source) -> Contribution:
    unit = "Second" if key == "limit-rps" else "Minute"
    n = go_int(value)
    if n is None:
        return only(source, key, "not-converted", invalid(value, "not an integer") + f": {REJECTED}")
    if n <= 0:
        return only(source, key, "exact", "no limit (0 or less), as in ingress-nginx")
    moot = unreached(source, key)
    if moot:
        return moot
    chosen = _converted_rate(source)
    if chosen != key:
        other = source.annotations.get("limit-rpm" if key == "limit-rps" else "limit-rps")
        return only(source, key, "not-converted",
                    f"ingress-nginx applied both limit-rps and limit-rpm; a RateLimitPolicy is one rate, so only "
                    f"{chosen}: {other!r} (the lower sustained rate) was converted: keep both by putting this "
                    "rate on a Gateway-level RateLimitPolicy if it matters")
    exempt = limit_exemptions(source)
    if exempt is None:
        return only(source, key, "not-converted",
                    f"invalid value in limit-whitelist/limit-allowlist (not a CIDR list): {REJECTED}")
    mult = burst_multiplier(source)
    if mult < 0:
        return only(source, key, "not-converted",
                    f"limit-burst-multiplier {mult} gives a negative burst, which nginx refuses (the "
                    "controller's configuration does not load): fix the multiplier")
    status = status_code(source, "limit-req-status-code")
    if status is None:
        return only(source, key, "not-converted",
                    f"the ConfigMap's limit-req-status-code {source.config.get('limit-req-status-code')!r} is not a "
                    "status nginx accepts (400-599): fix it")
    spec: dict[str, Any] = {"requests": n, "unit": unit, "burst": n * mult, "status": status}
    if exempt:
        spec["exemptCIDRs"] = exempt
    problem = valid(RateLimitPolicySpec, {**_DUMMY_TARGET, **spec})
    if problem:
        return only(source, key, "not-converted", f"wardgate cannot express this limit ({problem})")
    what = (f"RateLimitPolicy {n} per {unit.lower()}, burst {n * mult} (rate x limit-burst-multiplier {mult}), "
            f"per client IP, answered with {status}")
    if exempt:
        what += f", exempt {', '.join(exempt)}"
    diffs = ["refused requests also carry Retry-After (ingress-nginx sent none)"]
    if status == 503:
        diffs.append("503 kept for the same behaviour; 429 is the better answer for clients "
                     "(limit-req-status-code / the policy's status)")
    detail = f"{what}; one budget per Ingress (all its hosts and paths), as ingress-nginx's zone; " + "; ".join(diffs)
    return Contribution(rate_limit=spec, findings=[
        finding(source, key, "converted-with-difference", detail + (_nginx_rate_note(n) if unit == "Minute" else ""))])


def burst_multiplier_handler(key: str, value: str, source: Source) -> Contribution:
    n = go_int(value)
    used = [k for k in ("limit-rps", "limit-rpm") if _limit(source, k)]
    if not used:
        return only(source, key, "exact", "no effect without limit-rps or limit-rpm, as in ingress-nginx"
                    + (" (limit-connections has no burst)" if _limit(source, "limit-connections") else ""))
    if n is None:
        return only(source, key, "exact", invalid(value, "not an integer") + f": ingress-nginx used the default "
                    f"{DEFAULT_BURST_MULTIPLIER}, and so does the converted burst of {', '.join(used)}")
    return only(source, key, "exact", f"the burst of {', '.join(used)} is its rate x {n}")


def limit_allowlist_handler(key: str, value: str, source: Source) -> Contribution:
    found = annotation(source, "limit-allowlist", "limit-whitelist")
    if found is not None and found[0] != key:
        return only(source, key, "exact", f"ignored, as in ingress-nginx: {found[0]} is set and wins")
    cidrs = go_cidrs(value)
    if cidrs is None:
        return only(source, key, "not-converted", invalid(value, "not a list of CIDRs or addresses") + ": " + REJECTED)
    limits = [k for k in RATE_ANNOTATIONS if _limit(source, k)]
    if not limits:
        return only(source, key, "exact", "no effect without limit-rps, limit-rpm or limit-connections")
    return only(source, key, "exact", f"exemptCIDRs {', '.join(cidrs)} of the limits ({', '.join(limits)})")


def limit_connections_handler(key: str, value: str, source: Source) -> Contribution:
    n = go_int(value)
    if n is None:
        return only(source, key, "not-converted", invalid(value, "not an integer") + ": " + REJECTED)
    if n <= 0:
        return only(source, key, "exact", "no limit (0 or less), as in ingress-nginx")
    moot = unreached(source, key)
    if moot:
        return moot
    exempt = limit_exemptions(source)
    if exempt is None:
        return only(source, key, "not-converted",
                    f"invalid value in limit-whitelist/limit-allowlist (not a CIDR list): {REJECTED}")
    status = status_code(source, "limit-conn-status-code")
    if status is None:
        return only(source, key, "not-converted",
                    f"the ConfigMap's limit-conn-status-code {source.config.get('limit-conn-status-code')!r} is not a "
                    "status nginx accepts (400-599): fix it")
    if source.config.get("limit-conn-zone-variable", "$binary_remote_addr").strip() != "$binary_remote_addr":
        return only(source, key, "not-converted",
                    f"the ConfigMap's limit-conn-zone-variable {source.config['limit-conn-zone-variable']!r} counts "
                    "by something else than the client IP; concurrentRequests counts per client IP only")
    spec: dict[str, Any] = {"limit": n, "status": status}
    if exempt:
        spec["exemptCIDRs"] = exempt
    problem = valid(ConcurrentRequests, spec)
    if problem:
        return only(source, key, "not-converted", f"wardgate cannot express this limit ({problem})")
    detail = (f"SecurityPolicy concurrentRequests: {n} requests in flight per client IP (nginx's limit_conn, as "
              f"ingress-nginx), the next answered with {status}" + (f", exempt {', '.join(exempt)}" if exempt else "")
              + "; one count per Ingress, as ingress-nginx's zone")
    if status == 503:
        detail += "; 503 kept for the same behaviour, 429 is the better answer for clients"
    return Contribution(security={"concurrentRequests": spec}, findings=[finding(source, key, "exact", detail)])


# --- source ranges -----------------------------------------------------------------------------------


def _source_range(source: Source, key: str, *aliases: str) -> tuple[str, list[str] | None] | None:
    """(annotation used, CIDRs or None when invalid); the ConfigMap's global list when the
    annotation is absent; None when neither sets one."""
    found = annotation(source, key, *aliases)
    if found is not None:
        return found[0], go_cidrs(found[1])
    # An empty annotation is "invalid content" in ingress-nginx: a denied location.
    for k in (key, *aliases):
        if k in source.annotations:
            return k, None
    global_key = "whitelist-source-range" if key == "allowlist-source-range" else key
    configured = source.config.get(global_key, "")
    if configured.strip():
        return f"ConfigMap {global_key}", go_cidrs(configured)
    return None


def ip_access(allow: list[str], deny: list[str]) -> dict[str, list[str]]:
    """ipAccess for nginx's `deny` lines, then `allow` lines and `deny all` (written when `allow`
    is non-empty). nginx takes the first match, so a deny entry beats any allow entry around or
    inside it; wardgate lets the longest prefix decide. Dropping allow entries that lie inside a
    deny entry makes the two agree (CIDRs either nest or don't overlap); if that leaves nothing
    allowed, everyone is denied. Both lists are always given: an Ingress's own allow/deny lines
    replace everything nginx would inherit (block-cidrs included), as a route-level ipAccess
    that sets both replaces the Gateway's."""
    nets = [ipaddress.ip_network(c) for c in deny]
    kept = [a for a in allow if not any(_within(ipaddress.ip_network(a), d) for d in nets)]
    if allow and not kept:
        deny = sorted({*deny, "0.0.0.0/0", "::/0"})
    return {"allow": kept, "deny": deny}


def _within(net: ipaddress.IPv4Network | ipaddress.IPv6Network,
            outer: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return net.version == outer.version and net.subnet_of(outer)  # type: ignore[arg-type]


def source_range_handler(key: str, value: str, source: Source) -> Contribution:
    allow_key = ("allowlist-source-range", "whitelist-source-range")
    if key in allow_key:
        found = annotation(source, *allow_key)
        if found is not None and found[0] != key:
            return only(source, key, "exact", f"ignored, as in ingress-nginx: {found[0]} is set and wins")
    if go_cidrs(value) is None or not value.strip():
        return only(source, key, "not-converted", invalid(value, "not a list of CIDRs or addresses") + ": " + DENIED)
    moot = unreached(source, key)
    if moot:
        return moot
    allow = _source_range(source, *allow_key)
    deny = _source_range(source, "denylist-source-range")
    for got in (allow, deny):
        if got is not None and got[1] is None:
            return only(source, key, "not-converted", f"invalid value in {got[0]} (not a CIDR list), so ingress-nginx "
                        "denies every path of this Ingress (503): fix it; nothing was converted")
    allow_cidrs = allow[1] if allow and allow[1] else []
    deny_cidrs = deny[1] if deny and deny[1] else []
    access = ip_access(allow_cidrs, deny_cidrs)
    problem = valid(IPAccess, access)
    if problem:
        return only(source, key, "not-converted", f"wardgate cannot express this list ({problem})")
    parts = [f"{k} {', '.join(v)}" for k, v in access.items() if v]
    detail = f"SecurityPolicy ipAccess ({'; '.join(parts)}), 403 for the clients it refuses"
    if allow_cidrs and not access["allow"]:
        detail += " (every allowed range lies inside a denied one, and ingress-nginx checks deny lines first)"
    if any(k.startswith("ConfigMap") for k, _ in (allow or ("", None), deny or ("", None))):
        detail += "; the ConfigMap's global list is repeated here because this annotation replaces it"
    status: Status = "exact"
    if any(_limit(source, k) for k in RATE_ANNOTATIONS):
        status = "converted-with-difference"
        detail += ("; ingress-nginx counted refused clients against the Ingress's rate limit (limit_req runs "
                   "before allow/deny) and answered them 503 once over it: wardgate answers them 403 first and "
                   "never counts them")
    return Contribution(security={"ipAccess": access}, findings=[finding(source, key, status, detail)])


# --- CORS ----------------------------------------------------------------------------------------

CORS_DEFAULT_METHODS = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
CORS_DEFAULT_HEADERS = ("DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,"
                        "Range,Authorization")
CORS_DEFAULT_MAX_AGE = 1728000
# internal/ingress/annotations/cors and parser: the validators (run with spaces removed, refusing
# CR/LF) and the parser's own checks. A value failing them falls back to the default, silently;
# an origin list failing its validator allows every origin.
# Go's RE2 matches ingress-nginx's patterns in linear time; Python's backtracking took exponential
# time on them (20 characters of a hostile cors-allow-origin: seconds; 30: hours). These accept
# the same strings without ambiguity (tests/test_migrate_fuzz.py compares them with the originals):
# CorsOriginRegex ((((([a-z]+://)?(\*\.)?[A-Za-z0-9\-.]*(:\d+)?,?)|null)+)|\*)? is "*", or any
# sequence of host characters, commas, "*.", "://" after a lowercase letter and ":" before a digit.
_CORS_ORIGIN_LIST = re.compile(r"\*|(?:[A-Za-z0-9.,\-]|\*\.|(?<=[a-z])://|:(?=[0-9]))*+")
_CORS_ORIGIN = re.compile(r"([a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?|\*|null)?")
# CorsMethodsRegex ([A-Za-z]+,?\s?)+: runs of letters, with ",", "\s" or ", " between and after
_CORS_METHODS = re.compile(r"[A-Za-z]++(?:(?:,\s?|\s)[A-Za-z]++)*+(?:,\s?|\s)?+")
_CORS_HEADERS = re.compile(r"[A-Za-z0-9-_, ]*")  # parser.HeadersVariable
# CorsExposeHeadersRegex (([A-Za-z0-9\-_]+|\*),?\s?)+: the same with "*" among the letters
_CORS_EXPOSE = re.compile(r"[A-Za-z0-9\-_*]++(?:(?:,\s?|\s)[A-Za-z0-9\-_*]++)*+(?:,\s?|\s)?+")
CORS_KEYS = ("cors-allow-origin", "cors-allow-methods", "cors-allow-headers", "cors-expose-headers",
             "cors-allow-credentials", "cors-max-age")
CORS_FIELDS = {"cors-allow-origin": "allowOrigins", "cors-allow-methods": "allowMethods",
               "cors-allow-headers": "allowHeaders", "cors-expose-headers": "exposeHeaders",
               "cors-allow-credentials": "allowCredentials", "cors-max-age": "maxAge"}


def _normalized(value: str) -> str:
    """parser.normalizeString: every line trimmed."""
    return "\n".join(line.strip() for line in value.split("\n"))


def _cors_valid(pattern: re.Pattern[str], value: str) -> bool:
    """parser.ValidateRegex(pattern, removeSpace=true) and the parser's own check of the value."""
    return bool(value) and "\r" not in value and "\n" not in value and bool(
        pattern.fullmatch(value.replace(" ", ""))) and bool(pattern.fullmatch(value))


def cors_config(source: Source) -> tuple[dict[str, Any], dict[str, str]]:
    """ingressNginxCORS for the Ingress's cors-* annotations, read as ingress-nginx reads them,
    and for each annotation whose value it did not use, why (keyed by annotation)."""
    a = source.annotations
    why: dict[str, str] = {}
    origins: list[str] = []
    raw = _normalized(a["cors-allow-origin"]) if "cors-allow-origin" in a else None
    if raw is None or not raw:
        origins = ["*"]
        if raw is not None:
            why["cors-allow-origin"] = "empty, so ingress-nginx allowed every origin ('*')"
    elif "\n" in raw or not _CORS_ORIGIN_LIST.fullmatch(raw.replace(" ", "")):
        origins = ["*"]
        why["cors-allow-origin"] = ("not a list of origins for ingress-nginx's validator, so it allowed every "
                                    "origin ('*'), and so does the conversion: fix the list")
    else:
        skipped = []
        for o in (x.strip() for x in raw.split(",")):
            if not o:
                continue
            if o == "*":
                origins = ["*"]
                break
            if not _CORS_ORIGIN.fullmatch(o):
                skipped.append(o)
                continue
            origins.append(o)
        if skipped:
            why["cors-allow-origin"] = f"ingress-nginx skipped {', '.join(map(repr, skipped))} (not scheme://host)"
    out: dict[str, Any] = {"allowOrigins": origins}
    for key, pattern, default in (("cors-allow-methods", _CORS_METHODS, CORS_DEFAULT_METHODS),
                                  ("cors-allow-headers", _CORS_HEADERS, CORS_DEFAULT_HEADERS),
                                  ("cors-expose-headers", _CORS_EXPOSE, "")):
        if key not in a:
            continue
        value = _normalized(a[key])
        if _cors_valid(pattern, value):
            out[CORS_FIELDS[key]] = value
        else:
            why[key] = f"invalid, so ingress-nginx used {'its default ' + repr(default) if default else 'none'}"
    if "cors-allow-credentials" in a:
        cred = go_bool(a["cors-allow-credentials"])
        if cred is None:
            why["cors-allow-credentials"] = "not a boolean, so ingress-nginx used true"
        else:
            out["allowCredentials"] = cred
    if "cors-max-age" in a:
        age = go_int(a["cors-max-age"])
        if age is None:
            why["cors-max-age"] = f"not an integer, so ingress-nginx used {CORS_DEFAULT_MAX_AGE}"
        else:
            out["maxAge"] = age
    return out, why


def enable_cors_handler(key: str, value: str, source: Source) -> Contribution:
    enabled = go_bool(value)
    if not enabled:
        what = invalid(value, "not a boolean") + ", so ingress-nginx left CORS off" if enabled is None else "CORS off"
        return only(source, key, "exact", what + "; the cors-* annotations have no effect")
    cors, _ = cors_config(source)
    if not cors["allowOrigins"]:
        return only(source, key, "exact", "no usable origin in cors-allow-origin: ingress-nginx never sent CORS "
                    "headers or answered preflights, and neither does the migrated route")
    problem = valid(IngressNginxCORS, cors)
    if problem:
        return only(source, key, "not-converted", f"wardgate's ingressNginxCORS refuses these values ({problem})")
    detail = ("SecurityPolicy ingressNginxCORS: ingress-nginx's CORS as it behaved (every response to an allowed "
              "origin gets the headers, every OPTIONS from one gets 204, origins matched at the end only)")
    status: Status = "exact"
    if any(source.annotations.get(k) for k in ("allowlist-source-range", "whitelist-source-range",
                                                 "denylist-source-range")) or any(
            source.config.get(k, "").strip() for k in ("whitelist-source-range", "denylist-source-range")):
        status = "converted-with-difference"
        detail += ("; ingress-nginx answered preflights before its IP allow/deny lists (rewrite phase before "
                   "access phase), wardgate refuses a client IP first (403)")
    return Contribution(security={"ingressNginxCORS": cors}, findings=[finding(source, key, status, detail)])


def cors_option_handler(key: str, value: str, source: Source) -> Contribution:
    if not go_bool(source.annotations.get("enable-cors", "")):
        return only(source, key, "exact", "no effect without enable-cors: \"true\", as in ingress-nginx")
    cors, why = cors_config(source)
    if key in why:
        return only(source, key, "exact", invalid(value, why[key]))
    return only(source, key, "exact", f"ingressNginxCORS {CORS_FIELDS[key]}: {cors.get(CORS_FIELDS[key])!r}")


# --- headers, sizes ------------------------------------------------------------------------------

# customheaders.go: what ingress-nginx accepts in a custom-headers ConfigMap.
_CUSTOM_NAME = re.compile(r"[a-zA-Z\d\-_]+")
_CUSTOM_VALUE = re.compile(r"[a-zA-Z\d_ :;.,\\/\"'?!(){}\[\]@<>=\-+*#$&`|~^%]+")


def config_map_headers(source: Source, ref: str, what: str) -> tuple[list[dict[str, str]], str | None]:
    """The (name, value) pairs of the ConfigMap "namespace/name" `ref`, or why there are none."""
    data = source.config_maps.get(ref)
    if data is None:
        return [], f"{what}: ConfigMap {ref} is not in the input"
    return [{"name": k, "value": v} for k, v in sorted(data.items())], None


def custom_headers_handler(key: str, value: str, source: Source) -> Contribution:
    ref = value.strip()
    if "/" not in ref:
        return only(source, key, "not-converted", f"ingress-nginx looks {ref!r} up as namespace/name and finds "
                    f"nothing: {DENIED}")
    headers, missing = config_map_headers(source, ref, key)
    if missing:
        return only(source, key, "not-converted", f"{missing}; ingress-nginx denies the paths (503) when it is "
                    "missing in the cluster too: add it to the input")
    allowed = {h.strip() for h in source.config.get("global-allowed-response-headers", "").split(",") if h.strip()}
    for h in headers:
        if not _CUSTOM_NAME.fullmatch(h["name"]) or not _CUSTOM_VALUE.fullmatch(h["value"]):
            return only(source, key, "not-converted",
                        f"invalid header {h['name']!r} in ConfigMap {ref} for ingress-nginx: {DENIED}")
        if h["name"] not in allowed:
            return only(source, key, "not-converted", f"header {h['name']} is not in the ConfigMap's "
                        f"global-allowed-response-headers: {DENIED}")
    if not headers:
        return only(source, key, "exact", f"ConfigMap {ref} is empty: no headers")
    problem = valid(HTTPHeaderFilter, {"set": headers})
    if problem:
        return only(source, key, "not-converted", f"wardgate refuses a header of ConfigMap {ref} ({problem})")
    return Contribution(filters=[{"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": headers}}],
                        findings=[finding(source, key, "exact",
                                          f"ResponseHeaderModifier set {', '.join(h['name'] for h in headers)} (every "
                                          "status, replacing the backend's; '$' stays literal)")])


def body_size_handler(key: str, value: str, source: Source) -> Contribution:
    default = source.config.get("proxy-body-size", "1m")
    size = nginx_size(value)
    fallback = ""
    if size is None:
        size = nginx_size(default)
        fallback = invalid(value, "not an nginx size") + (
            f", so ingress-nginx used the ConfigMap's proxy-body-size {default}; ")
        if size is None:
            return only(source, key, "not-converted", fallback + "which is not a size either: fix both")
    limits = {"maxBodySize": byte_quantity(size)}
    problem = valid(RequestLimits, limits)
    if problem:
        return only(source, key, "not-converted", f"wardgate cannot express this size ({problem})")
    what = "no limit" if size == 0 else f"413 above {size} bytes"
    return Contribution(security={"requestLimits": limits}, findings=[finding(
        source, key, "exact", f"{fallback}SecurityPolicy requestLimits.maxBodySize {limits['maxBodySize']} ({what})")])


def body_buffer_handler(key: str, value: str, source: Source) -> Contribution:
    if nginx_size(value) is None:
        return only(source, key, "exact", invalid(value, "not a size") + ": ingress-nginx used nginx's default buffer")
    return only(source, key, "exact", "a buffer size, not a limit: it only decides when nginx writes a request body "
                "to a temporary file, which neither clients nor backends can see; nothing to convert")


# --- ModSecurity -----------------------------------------------------------------------------------

_ENGINE_MODES = {"on": "Block", "detectiononly": "DetectOnly", "off": "Off"}


def modsecurity_lines(text: str) -> list[tuple[int, str]]:
    """(line number, directive) for each directive of a ModSecurity snippet: comments and blank
    lines dropped, backslash continuations joined."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if pending is None and (not line or line.startswith("#")):
            continue
        start, text_so_far = pending if pending else (number, "")
        joined = f"{text_so_far} {line}".strip()
        if joined.endswith("\\"):
            pending = (start, joined[:-1].rstrip())
            continue
        pending = None
        out.append((start, joined))
    if pending is not None:
        out.append(pending)
    return out


_REMOVE_BY_ID = re.compile(r"SecRuleRemoveById\s+(.+)", re.IGNORECASE)
_RULE_ENGINE = re.compile(r"SecRuleEngine\s+\"?(On|Off|DetectionOnly)\"?", re.IGNORECASE)


def _rule_ids(args: str) -> list[int] | None:
    """SecRuleRemoveById's arguments: ids; ranges (a-b) are not converted."""
    ids: list[int] = []
    for token in args.replace('"', " ").replace(",", " ").split():
        if not token.isdigit():
            return None
        ids.append(int(token))
    return ids or None


def modsecurity_snippet(text: str) -> tuple[str | None, list[int], list[tuple[int, str, str]]]:
    """(last SecRuleEngine mode or None, rule ids removed, lines not converted with why)."""
    mode: str | None = None
    removed: list[int] = []
    rest: list[tuple[int, str, str]] = []
    for number, line in modsecurity_lines(text):
        if m := _RULE_ENGINE.fullmatch(line):
            mode = _ENGINE_MODES[m.group(1).lower()]
        elif (m := _REMOVE_BY_ID.fullmatch(line)) and (ids := _rule_ids(m.group(1))):
            removed += [i for i in ids if i not in removed]
        else:
            rest.append((number, line, _why_not(line)))
    return mode, removed, rest


def _why_not(line: str) -> str:
    word = line.split()[0] if line.split() else line
    if word.lower() == "include":
        return ("Include of a file from the ingress-nginx image: wardgate loads its own CRS 3.3.4 "
                "(enable-owasp-core-rules / the waf field)")
    if word.lower() in ("secrule", "secaction"):
        return "a custom rule: wardgate's WAF runs CRS only; exclude CRS rules with waf.exclusions instead"
    if word.lower() == "secruleremovebyid":
        return "id ranges are not converted: list the ids in waf.exclusions[].ruleIds"
    return f"{word} has no wardgate equivalent (logging, limits and engine tuning are wardgate's own)"


def waf_settings(source: Source) -> tuple[dict[str, Any] | None, list[str], list[tuple[int, str, str]]]:
    """The WAF setting for this Ingress from the ModSecurity annotations and the ConfigMap (None:
    ModSecurity not in play), notes on what differs, and snippet lines not converted."""
    a, cfg = source.annotations, source.config
    global_on = go_bool(cfg.get("enable-modsecurity", "false")) is True
    global_crs = go_bool(cfg.get("enable-owasp-modsecurity-crs", "false")) is True
    enable = go_bool(a.get("enable-modsecurity", "")) if "enable-modsecurity" in a else None
    if enable is False or (enable is None and not global_on):
        # nginx.tmpl: `modsecurity off` for an explicit false, nothing at all otherwise.
        return ({"mode": "Off"} if enable is False and global_on else None), [], []
    crs = global_crs or go_bool(a.get("enable-owasp-core-rules", "false")) is True
    snippet = a.get("modsecurity-snippet", "")
    notes: list[str] = []
    mode, removed, rest = modsecurity_snippet(snippet) if snippet.strip() else (None, [], [])
    if mode is None and global_on:
        mode, g_removed, _ = modsecurity_snippet(cfg.get("modsecurity-snippet", ""))
        removed = g_removed + [i for i in removed if i not in g_removed]
    if mode is None:
        # modsecurity.conf (recommended) says DetectionOnly; with a snippet and no such file
        # libmodsecurity leaves the engine unset, which never interrupts either.
        mode = "DetectOnly"
    if not crs and mode != "Off":
        notes.append("no OWASP CRS: ModSecurity ran without rules that block (the recommended configuration's "
                     "rules only), so nothing is converted to a WAF")
        return None, notes, rest
    waf: dict[str, Any] = {"mode": mode}
    if removed:
        waf["exclusions"] = [{"ruleIds": removed}]
    if mode != "Off":
        notes.append("CRS 3.3.4 (Debian) with wardgate's settings (docs/policies.md#waf) instead of the CRS 4 "
                     "ingress-nginx bundles: rule ids mostly match, detections differ")
    return waf, notes, rest


def modsecurity_handler(key: str, value: str, source: Source) -> Contribution:
    if key == "enable-modsecurity" and go_bool(value) is None:
        return only(source, key, "exact", invalid(value, "not a boolean") + ": ingress-nginx treated it as unset")
    waf, notes, rest = waf_settings(source)
    findings: list[Finding] = []
    if key == "modsecurity-snippet":
        findings = [finding(source, f"{key} line {n}", "not-converted", f"{line!r}: {why}") for n, line, why in rest]
        if go_bool(source.annotations.get("enable-modsecurity", "")) is not True and \
                go_bool(source.config.get("enable-modsecurity", "false")) is not True:
            return Contribution(findings=[finding(source, key, "exact",
                                                  "no effect without enable-modsecurity (annotation or ConfigMap)"),
                                          *findings])
    if key == "modsecurity-transaction-id":
        return only(source, key, "converted-with-difference",
                    "wardgate always uses its request id (the decision log's request_id, X-Request-Id) as the "
                    "transaction id; a custom expression is not kept")
    if waf is None:
        what = "; ".join(notes) if notes else "ModSecurity off for this Ingress, as wardgate's default"
        return Contribution(findings=[finding(source, key, "exact" if not notes else "converted-with-difference",
                                              what), *findings])
    problem = valid(Waf, waf)
    if problem:
        return Contribution(findings=[finding(source, key, "not-converted",
                                              f"wardgate's WAF refuses the result ({problem})"), *findings])
    detail = f"SecurityPolicy waf mode {waf['mode']}"
    if waf.get("exclusions"):
        detail += f", rules {', '.join(map(str, waf['exclusions'][0]['ruleIds']))} off"
    status: Status = "converted-with-difference" if notes else "exact"
    return Contribution(security={"waf": waf}, findings=[
        finding(source, key, status, detail + ("; " + "; ".join(notes) if notes else "")), *findings])


# --- the catalog --------------------------------------------------------------------------------------


def _entry(becomes: str, handler: Handler) -> CatalogEntry:
    return CatalogEntry(becomes=becomes, handler=handler)


_CORS_OPTION = "part of ingressNginxCORS (see enable-cors)"

CATALOG: dict[str, CatalogEntry] = {
    "limit-rps": _entry("RateLimitPolicy requests/Second, burst = rate x limit-burst-multiplier, status "
                        "limit-req-status-code (503); Retry-After added", rate_limit_handler),
    "limit-rpm": _entry("RateLimitPolicy requests/Minute, as limit-rps; with both, the lower sustained rate",
                        rate_limit_handler),
    "limit-burst-multiplier": _entry("the burst of limit-rps / limit-rpm (default 5)", burst_multiplier_handler),
    "limit-whitelist": _entry("RateLimitPolicy exemptCIDRs (alias of limit-allowlist)", limit_allowlist_handler),
    "limit-allowlist": _entry("RateLimitPolicy exemptCIDRs", limit_allowlist_handler),
    "limit-connections": _entry("SecurityPolicy concurrentRequests (limit_conn per client IP), status "
                                "limit-conn-status-code (503)", limit_connections_handler),
    "whitelist-source-range": _entry("SecurityPolicy ipAccess.allow (alias of allowlist-source-range)",
                                     source_range_handler),
    "allowlist-source-range": _entry("SecurityPolicy ipAccess.allow; 403 for others", source_range_handler),
    "denylist-source-range": _entry("SecurityPolicy ipAccess.deny; checked before the allow list",
                                    source_range_handler),
    "enable-cors": _entry("SecurityPolicy ingressNginxCORS (ingress-nginx's CORS, as it behaved)",
                          enable_cors_handler),
    **{k: _entry(_CORS_OPTION, cors_option_handler) for k in CORS_KEYS},
    "custom-headers": _entry("ResponseHeaderModifier set, from the named ConfigMap", custom_headers_handler),
    "proxy-body-size": _entry("SecurityPolicy requestLimits.maxBodySize", body_size_handler),
    "client-body-buffer-size": _entry("nothing: a buffer size, invisible to clients and backends",
                                      body_buffer_handler),
    "enable-modsecurity": _entry("SecurityPolicy waf (DetectOnly unless a snippet says SecRuleEngine On)",
                                 modsecurity_handler),
    "enable-owasp-core-rules": _entry("SecurityPolicy waf with CRS (3.3.4)", modsecurity_handler),
    "modsecurity-transaction-id": _entry("the request id (fixed in wardgate)", modsecurity_handler),
    "modsecurity-snippet": _entry("SecRuleEngine -> waf.mode, SecRuleRemoveById -> waf.exclusions; other lines "
                                  "reported", modsecurity_handler),
}

