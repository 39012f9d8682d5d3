"""Authentication, error-page and session-affinity annotations.

- auth-type/auth-secret/auth-realm -> SecurityPolicy `basicAuth` (docs/policies.md);
- auth-url and its companions -> `externalAuth`;
- custom-http-errors and default-backend -> `errorPages`;
- affinity and session-cookie-* -> the HTTPRoute rule's `sessionPersistence` (GEP-1619).

ingress-nginx facts (kubernetes/ingress-nginx@dbb11b92d): internal/ingress/annotations/{auth,
authreq,customhttperrors,defaultbackend,sessionaffinity}/main.go, nginx.tmpl (auth_request
location, CUSTOM_ERRORS, custom-default-backend-*), rootfs/etc/nginx/lua/balancer/sticky*.lua.
The secrets, ConfigMaps and Services the annotations name are not read here: a policy names them
and wardgate checks them when it runs (a missing or unusable one answers 500 there, never lets a
request through unchecked).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, urlsplit

from pydantic import ValidationError

from wardgate.migrate.contrib import CatalogEntry, Contribution, Source
from wardgate.migrate.report import Finding, Status
from wardgate.model.gatewayapi import SessionPersistence
from wardgate.model.policies import BasicAuth, ErrorPages, ExternalAuth, Signin

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
DEFAULT_COOKIE = "INGRESSCOOKIE"  # sessionaffinity/main.go defaultAffinityCookieName
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_REALM = re.compile(r"^[/\-._~a-zA-Z0-9: ]*$")  # parser.CharsWithSpace
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE")
# Cluster DNS names of a Service: name, name.ns, name.ns.svc, name.ns.svc.cluster.local.
_SERVICE_HOST = re.compile(r"^(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
                           r"(\.svc(\.cluster\.local)?)?)?$")
# An auth-signin URL on the request's own host (oauth2-proxy's usual setup).
_SELF_HOST = re.compile(r"^(?:https?|\$scheme)://\$(?:host|http_host|best_http_host)(?=/|$)")
# Redirect parameters whose nginx variable wardgate's own `rd` replaces.
_RD_VARIABLE = re.compile(r"^\$(?:escaped_request_uri|request_uri|scheme://\$(?:host|http_host|best_http_host)"
                          r"\$(?:escaped_)?request_uri)$")


def _bool(value: str, key: str) -> bool:
    """strconv.ParseBool, as ingress-nginx's parser.GetBoolAnnotation."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{key}: {value!r} is not a boolean (true or false)")


def _one(source: Source, key: str, status: Status, detail: str, **parts: Any) -> Contribution:
    return Contribution(findings=[Finding(source.file, source.obj, key, status, detail, source.ingress_class)],
                        **parts)


def checked(model: Any, data: dict[str, Any], what: str) -> str | None:
    """Why wardgate's model refuses what a handler wrote (None: it accepts it), for a finding."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{what}{'.' + where if where else ''}: {err['msg']}"
    return None


def _exact(source: Source, key: str, detail: str, **parts: Any) -> Contribution:
    return _one(source, key, "exact", detail, **parts)


def _difference(source: Source, key: str, detail: str, **parts: Any) -> Contribution:
    return _one(source, key, "converted-with-difference", detail, **parts)


def _not_converted(source: Source, key: str, detail: str) -> Contribution:
    return _one(source, key, "not-converted", detail)


def _seconds(n: int) -> str:
    """A Gateway API Duration for `n` seconds (each unit at most 5 digits: 99999h at most)."""
    h, rest = divmod(min(n, 99999 * 3600), 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"


# --- basic authentication ------------------------------------------------------------------------


def _auth_type(key: str, value: str, source: Source) -> Contribution:
    anns = source.annotations
    if value == "digest":
        return _not_converted(source, key, "Digest authentication has no wardgate equivalent: convert the users "
                                           "to an htpasswd Secret for basicAuth")
    if value != "basic":
        raise ValueError(f"{key}: {value!r} is not basic or digest (ingress-nginx denied the paths: 503)")
    secret = anns.get("auth-secret", "")
    if not secret:
        return _not_converted(source, key, "auth-secret is missing: ingress-nginx answered 503 on these paths; "
                                           "add the Secret's name and convert again")
    ns, _, name = secret.rpartition("/")
    if ns and ns != source.namespace and source.config.get("allow-cross-namespace-resources") != "true":
        return _not_converted(source, key, f"the Secret is in namespace {ns}: ingress-nginx refused it (503 on "
                                           "these paths); copy it into this namespace")
    if ns and ns != source.namespace:
        return _not_converted(source, key, f"basicAuth reads Secrets of the policy's namespace only: copy Secret "
                                           f"{secret} into namespace {source.namespace}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"auth-secret: {name!r} is not a Secret name")
    fmt = anns.get("auth-secret-type", "auth-file")
    if fmt not in ("auth-file", "auth-map"):
        raise ValueError(f"auth-secret-type: {fmt!r} is not auth-file or auth-map")
    realm = anns.get("auth-realm", "")
    if not _REALM.fullmatch(realm) or realm == "off":
        raise ValueError(f"auth-realm: {realm!r} is not a realm ingress-nginx accepts")
    basic: dict[str, Any] = {"secretRef": {"name": name}, "realm": realm}
    if fmt == "auth-map":
        basic["format"] = "UserMap"
    refused = checked(BasicAuth, basic, "basicAuth")
    if refused:
        return _not_converted(source, key, refused)
    return _one(source, key, "exact",
                "SecurityPolicy basicAuth (401 with the same realm; Authorization not passed on); the Secret's "
                "hashes must be a format nginx checks (apr1, bcrypt, SHA-crypt... else every request answers 500 "
                "and the policy says which line)", security={"basicAuth": basic})


# --- external authentication ---------------------------------------------------------------------


def _service_ref(url: SplitResult, source: Source) -> tuple[dict[str, Any], str] | str:
    """(backendRef, hostname if not the default) for an auth URL on a cluster Service, else why not."""
    host = url.hostname or ""
    m = _SERVICE_HOST.fullmatch(host)
    if "$" in url.netloc:
        return f"the URL's host is an nginx variable ({url.netloc}): point externalAuth.backendRef at the Service " \
               "that serves it"
    if m is None or (m.group("ns") and not (host.endswith(".svc") or host.endswith(".svc.cluster.local")
                                             or host.count(".") == 1)):
        return f"{host} is not a cluster Service name: wardgate calls a Service, so create a Service (with an " \
               "EndpointSlice of the auth server's addresses) and set externalAuth.backendRef"
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return f"{url.netloc} has an invalid port"
    ns = m.group("ns") or source.namespace
    ref: dict[str, Any] = {"name": m.group("name"), "port": port}
    if ns != source.namespace:
        ref["namespace"] = ns
    default = f"{m.group('name')}.{ns}.svc.cluster.local"
    return ref, "" if host == default else host


def _signin(source: Source) -> tuple[dict[str, Any] | None, list[str]]:
    """signin for externalAuth from auth-signin (+ redirect param), and the differences."""
    anns = source.annotations
    value = anns.get("auth-signin", "")
    if not value:
        return None, []
    notes: list[str] = []
    param = anns.get("auth-signin-redirect-param", "") or "rd"
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", param):
        notes.append(f"auth-signin-redirect-param {param!r} is invalid: rd is used, as ingress-nginx did")
        param = "rd"
    url = value
    if _SELF_HOST.match(url):
        url = _SELF_HOST.sub("", url) or "/"
        notes.append("the sign-in URL on the request's own host becomes a path (the redirect keeps the "
                     "request's scheme)")
    base, _, query = url.partition("?")
    kept = []
    for part in query.split("&") if query else []:
        name, _, val = part.partition("=")
        if "$" in val and name == param and _RD_VARIABLE.fullmatch(val):
            notes.append(f"{param}= carries the request's full URL (scheme, host, escaped path and query), "
                         "which wardgate adds itself")
            continue
        kept.append(part)
    url = base + ("?" + "&".join(kept) if kept else "")
    if "$" in url:
        raise _Unconvertible(f"auth-signin {value!r} uses nginx variables wardgate can't fill in: use a fixed "
                             "URL (wardgate adds the redirect parameter)")
    out: dict[str, Any] = {"url": url}
    if param != "rd":
        out["redirectParam"] = param
    refused = checked(Signin, out, "signin")
    if refused:
        raise _Unconvertible(f"auth-signin {value!r} ({refused})")
    return out, notes


class _Unconvertible(Exception):
    """An auth-url setup wardgate can't reproduce; the message says why and what to do."""


def _auth_url(key: str, value: str, source: Source) -> Contribution:
    anns = source.annotations
    url = urlsplit(value.strip())
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ValueError(f"{key}: {value!r} is not an http(s) URL")
    ref = _service_ref(url, source)
    if isinstance(ref, str):
        return _not_converted(source, key, ref)
    backend, hostname = ref
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    if "$" in path:
        return _not_converted(source, key, f"the auth URL's path uses nginx variables ({path}): use a fixed path")
    ext: dict[str, Any] = {"backendRef": backend, "path": path,
                           # ingress-nginx always sent it; some auth services look for it.
                           "requestHeaders": [{"name": "X-Sent-From", "value": "nginx-ingress-controller"}]}
    if hostname:
        ext["hostname"] = hostname
    notes = ["the auth service also gets X-Forwarded-Proto and X-Forwarded-Host as wardgate sets them for "
             "backends (ingress-nginx cleared the first and passed the client's second); answers are not cached"]
    method = anns.get("auth-method", "")
    if method:
        if method not in _METHODS:
            raise ValueError(f"auth-method: {method!r} is not an HTTP method")
        ext["method"] = method
        notes.append("auth-method: X-Original-URI and X-Scheme are not sent (X-Auth-Request-Redirect and "
                     "X-Original-URL carry the same)")
    headers = [h.strip() for h in anns.get("auth-response-headers", "").split(",") if h.strip()]
    bad = [h for h in headers if not _HEADER.fullmatch(h)]
    if bad:
        return _not_converted(source, key, f"auth-response-headers {bad[0]!r}: only letters, digits and '-' can "
                                           "be copied by wardgate")
    if headers:
        ext["responseHeaders"] = list(dict.fromkeys(headers))
    redirect = anns.get("auth-request-redirect", "")
    if redirect:
        if "$" in redirect or not re.fullmatch(r"[\x21-\x7e]+", redirect):
            return _not_converted(source, key, f"auth-request-redirect {redirect!r}: wardgate sets a fixed value")
        ext["requestHeaders"].append({"name": "X-Auth-Request-Redirect", "value": redirect})
    try:
        signin, signin_notes = _signin(source)
    except _Unconvertible as exc:
        return _not_converted(source, key, str(exc))
    if signin is not None:
        ext["signin"] = signin
        notes += signin_notes
    refused = checked(ExternalAuth, ext, "externalAuth")
    if refused:
        return _not_converted(source, key, refused)
    if backend.get("namespace"):
        notes.append(f"Service {backend['namespace']}/{backend['name']} is in another namespace: a ReferenceGrant "
                     "there lets the SecurityPolicy name it (written beside the policy)")
    if url.scheme == "https":
        notes.append(f"https: add a BackendTLSPolicy for Service {backend['name']} (wardgate then verifies its "
                     "certificate; ingress-nginx did not), else wardgate speaks plain HTTP to that port")
    return _difference(source, key, "SecurityPolicy externalAuth (2xx pass, 401/403 answered, else 500, as "
                                     "auth_request); " + "; ".join(notes),
                       security={"externalAuth": ext})


def _auth_companion(what: str) -> Any:
    """A companion of auth-url that the auth-url handler converts: reported here."""
    def handler(key: str, value: str, source: Source) -> Contribution:
        if "auth-url" not in source.annotations:
            return _exact(source, key, "no effect without auth-url, as in ingress-nginx")
        return _exact(source, key, f"converted with auth-url ({what})")
    return handler


def _auth_signin(key: str, value: str, source: Source) -> Contribution:
    if "auth-url" not in source.annotations:
        return _exact(source, key, "no effect without auth-url, as in ingress-nginx")
    try:
        signin, notes = _signin(source)
    except _Unconvertible as exc:
        return _not_converted(source, key, str(exc))
    assert signin is not None
    detail = "externalAuth.signin: a 401 becomes a 302 to the sign-in URL with the request's URL in " \
             f"{signin.get('redirectParam', 'rd')}="
    return _difference(source, key, detail + "; " + "; ".join(notes)) if notes else _exact(source, key, detail)


def _auth_cache(key: str, value: str, source: Source) -> Contribution:
    if "auth-url" not in source.annotations or (key == "auth-cache-duration" and "auth-cache-key" not in
                                                 source.annotations):
        return _exact(source, key, "no effect here, as in ingress-nginx (auth-url and auth-cache-key both needed)")
    return _difference(source, key, "not cached: wardgate asks the auth service on every request (more load on "
                                    "it; a revoked session is refused at once)")


def _auth_keepalive(key: str, value: str, source: Source) -> Contribution:
    if key != "auth-keepalive-share-vars" and not re.fullmatch(r"-?[0-9]{1,9}", value.strip()):
        raise ValueError(f"{key}: {value!r} is not an integer")
    if key == "auth-keepalive-share-vars":
        _bool(value, key)
    return _exact(source, key, "connection reuse only: wardgate keeps connections to the auth service alive "
                               "(32 idle per worker) whatever the value")


def _auth_always_set_cookie(key: str, value: str, source: Source) -> Contribution:
    if not _bool(value, key) or "auth-url" not in source.annotations:
        return _exact(source, key, "the auth service's Set-Cookie reaches the client on success (the default)")
    return _difference(source, key, "the auth service's Set-Cookie reaches the client only with a successful "
                                    "answer (wardgate has no 'always')")


def _auth_proxy_set_headers(key: str, value: str, source: Source) -> Contribution:
    if "auth-url" not in source.annotations:
        return _exact(source, key, "no effect without auth-url, as in ingress-nginx")
    return _not_converted(source, key, f"the headers of ConfigMap {value} are not read by migrate: copy each "
                                       "entry into the SecurityPolicy's externalAuth.requestHeaders")


def _auth_snippet(key: str, value: str, source: Source) -> Contribution:
    if "auth-url" not in source.annotations:
        return _exact(source, key, "no effect without auth-url, as in ingress-nginx")
    return _not_converted(source, key, "nginx directives for the auth request have no wardgate equivalent; "
                                       "externalAuth.requestHeaders sets headers on it")


def _enable_global_auth(key: str, value: str, source: Source) -> Contribution:
    enabled = _bool(value, key)
    if not source.config.get("global-auth-url"):
        return _exact(source, key, "no effect: the controller ConfigMap sets no global-auth-url")
    if "auth-url" in source.annotations:
        return _exact(source, key, "no effect: the Ingress's own auth-url applies")
    if not enabled:
        return _exact(source, key, "global auth stays off for this Ingress (wardgate has none unless a "
                                   "SecurityPolicy adds externalAuth)")
    return _not_converted(source, key, "global-auth-url (controller ConfigMap) is not converted: set externalAuth "
                                       "on a Gateway-level SecurityPolicy")


# --- error pages ---------------------------------------------------------------------------------


def _codes(value: str) -> list[int]:
    out: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if not re.fullmatch(r"[45][0-9]{2}", part):
            raise ValueError(f"custom-http-errors: {part!r} is not a status between 400 and 599")
        if int(part) not in out:
            out.append(int(part))
    return out


def _error_context(source: Source) -> list[dict[str, str]]:
    # ingress-nginx named the Ingress; the migrated route is named after the host.
    ns, _, name = source.obj.removeprefix("Ingress ").rpartition("/")
    return [{"name": "X-Ingress-Name", "value": name}, {"name": "X-Namespace", "value": ns or source.namespace}]


def _default_backend_ref(value: str, key: str) -> dict[str, Any]:
    if not _NAME.fullmatch(value.strip()):
        raise ValueError(f"{key}: {value!r} is not a Service name in the Ingress's namespace")
    return {"name": value.strip()}  # no port: the Service's first, as ingress-nginx


def _custom_http_errors(key: str, value: str, source: Source) -> Contribution:
    codes = _codes(value)
    backend = source.annotations.get("default-backend", "").strip()
    if not codes:
        return _exact(source, key, "no status listed: no effect")
    if not backend:
        return _not_converted(source, key, "without default-backend ingress-nginx sent these answers to the "
                                           "controller's default backend (its built-in one answers 404): add "
                                           "default-backend naming an error-page Service, or keep the backend's "
                                           f"own {', '.join(map(str, codes))}")
    pages = {"backendRef": _default_backend_ref(backend, "default-backend"), "statuses": codes,
             "noEndpoints": True, "requestHeaders": _error_context(source)}
    refused = checked(ErrorPages, pages, "errorPages")
    if refused:
        return _not_converted(source, key, refused)
    return _exact(source, key, "SecurityPolicy errorPages: these answers (the backend's or the gateway's) come "
                               "from the default-backend Service, asked for / with X-Code, X-Format, "
                               "X-Original-URI and the Ingress context; its answer is the client's",
                  security={"errorPages": pages})


def _default_backend(key: str, value: str, source: Source) -> Contribution:
    ref = _default_backend_ref(value, key)
    if source.annotations.get("custom-http-errors", "").strip():
        return _exact(source, key, "converted with custom-http-errors (errorPages.backendRef, noEndpoints)")
    pages = {"backendRef": ref, "noEndpoints": True, "requestHeaders": _error_context(source)}
    return _exact(source, key, "SecurityPolicy errorPages.noEndpoints: when the Service has no ready endpoint, "
                               "requests go to this Service as they came, with X-Code 503 and the Ingress context",
                  security={"errorPages": pages})


# --- session affinity ----------------------------------------------------------------------------


_COOKIE_ONLY = {
    "session-cookie-path": "the cookie's Path is the rule's path (ingress-nginx's default, the Ingress path)",
    "session-cookie-domain": "the cookie has no Domain attribute (host-only)",
    "session-cookie-samesite": "the cookie has no SameSite attribute (browsers treat it as Lax)",
    "session-cookie-conditional-samesite-none": "no SameSite attribute is sent, to any browser",
}


def _affinity(key: str, value: str, source: Source) -> Contribution:
    anns = source.annotations
    if value != "cookie":
        return _exact(source, key, f"{value!r} is not an affinity type ingress-nginx knows: no affinity, as there")
    name = anns.get("session-cookie-name", "") or DEFAULT_COOKIE
    if not _COOKIE_NAME.fullmatch(name):
        return _not_converted(source, key, f"session-cookie-name {name!r}: wardgate reads back cookie names of "
                                           "letters, digits, '_', '.' and '-' only")
    session: dict[str, Any] = {"sessionName": name, "type": "Cookie"}
    notes = []
    max_age = anns.get("session-cookie-max-age", "") or anns.get("session-cookie-expires", "")
    if max_age and re.fullmatch(r"[1-9][0-9]{0,8}", max_age.strip()):
        session["absoluteTimeout"] = _seconds(int(max_age))
        session["cookieConfig"] = {"lifetimeType": "Permanent"}
    elif max_age:
        notes.append(f"a lifetime of {max_age!r} is not carried: the cookie lasts the browser session")
    refused = checked(SessionPersistence, session, "sessionPersistence")
    if refused:
        return _not_converted(source, key, refused)
    mode = anns.get("affinity-mode", "balanced")
    if mode == "persistent":
        notes.append("affinity-mode persistent: when endpoints are added, some sessions move (wardgate hashes "
                     "sessions consistently, as balanced mode did)")
    detail = ("rule sessionPersistence (GEP-1619): a new client gets the cookie (Path = the rule's path, "
              "HttpOnly, Secure on HTTPS), then stays on one endpoint; endpoints coming or going move only "
              "their share of sessions, as affinity-mode balanced")
    if notes:
        return _difference(source, key, detail + "; " + "; ".join(notes), rule={"sessionPersistence": session})
    return _exact(source, key, detail, rule={"sessionPersistence": session})


def _affinity_companion(key: str, value: str, source: Source) -> Contribution:
    anns = source.annotations
    if anns.get("affinity") != "cookie":
        return _exact(source, key, "no effect without affinity: cookie, as in ingress-nginx")
    if key == "session-cookie-name":
        return _exact(source, key, "sessionPersistence.sessionName")
    if key in ("session-cookie-max-age", "session-cookie-expires"):
        if not re.fullmatch(r"(0|-?[1-9][0-9]*)", value.strip()):
            return _exact(source, key, f"{value!r} is ignored by ingress-nginx (not a number of seconds)")
        if key == "session-cookie-expires" and anns.get("session-cookie-max-age"):
            return _exact(source, key, "browsers follow Max-Age (session-cookie-max-age) over Expires")
        if int(value) <= 0:
            return _difference(source, key, "a cookie lifetime of 0 or less (browsers drop it at once) is not "
                                            "carried: the cookie lasts the browser session")
        if key == "session-cookie-expires":
            return _difference(source, key, "sessionPersistence.absoluteTimeout: the cookie gets Max-Age instead "
                                            "of Expires (same lifetime in every current browser)")
        return _exact(source, key, "sessionPersistence.absoluteTimeout with lifetimeType Permanent (Max-Age)")
    if key == "session-cookie-secure":
        if not _bool(value, key):
            return _exact(source, key, "Secure on HTTPS only (ingress-nginx's default too)")
        return _difference(source, key, "Secure is set on HTTPS listeners only, not on plain-HTTP answers")
    if key == "session-cookie-change-on-failure":
        if not _bool(value, key):
            return _exact(source, key, "the cookie keeps its endpoint when a try fails (the default)")
        return _difference(source, key, "a failed try moves that request to the next endpoint but the cookie "
                                        "keeps pointing at the first")
    if key == "affinity-mode":
        if value not in ("balanced", "persistent"):
            raise ValueError(f"{key}: {value!r} is not balanced or persistent")
        return _exact(source, key, "balanced (the default): consistent hashing of sessions") if value == "balanced" \
            else _difference(source, key, "persistent: some sessions move when endpoints are added (wardgate "
                                          "always balances)")
    if key == "affinity-canary-behavior":
        if value not in ("sticky", "legacy"):
            raise ValueError(f"{key}: {value!r} is not sticky or legacy")
        if value == "sticky" or not anns.get("canary"):
            return _exact(source, key, "a session keeps its backendRef (weighted canaries too)")
        return _difference(source, key, "legacy: wardgate keeps sessions on their canary or mainline backend")
    return _difference(source, key, _COOKIE_ONLY[key])


CATALOG: dict[str, CatalogEntry] = {
    "auth-type": CatalogEntry("SecurityPolicy basicAuth (digest: not converted)", _auth_type),
    "auth-secret": CatalogEntry("basicAuth.secretRef", owner="auth-type"),
    "auth-secret-type": CatalogEntry("basicAuth.format (auth-map: UserMap)", owner="auth-type"),
    "auth-realm": CatalogEntry("basicAuth.realm", owner="auth-type"),
    "auth-url": CatalogEntry("SecurityPolicy externalAuth (backendRef = the URL's Service)", _auth_url),
    "auth-method": CatalogEntry("externalAuth.method", _auth_companion("externalAuth.method")),
    "auth-response-headers": CatalogEntry("externalAuth.responseHeaders",
                                          _auth_companion("externalAuth.responseHeaders")),
    "auth-request-redirect": CatalogEntry("externalAuth.requestHeaders X-Auth-Request-Redirect",
                                          _auth_companion("externalAuth.requestHeaders X-Auth-Request-Redirect")),
    "auth-signin": CatalogEntry("externalAuth.signin", _auth_signin),
    "auth-signin-redirect-param": CatalogEntry("externalAuth.signin.redirectParam",
                                               _auth_companion("externalAuth.signin.redirectParam")),
    "auth-cache-key": CatalogEntry("not cached (every request asks the auth service)", _auth_cache),
    "auth-cache-duration": CatalogEntry("not cached (every request asks the auth service)", _auth_cache),
    "auth-keepalive": CatalogEntry("connections to the auth service are kept alive", _auth_keepalive),
    "auth-keepalive-requests": CatalogEntry("connections to the auth service are kept alive", _auth_keepalive),
    "auth-keepalive-timeout": CatalogEntry("connections to the auth service are kept alive", _auth_keepalive),
    "auth-keepalive-share-vars": CatalogEntry("no effect (no Lua variables to share)", _auth_keepalive),
    "auth-proxy-set-headers": CatalogEntry("externalAuth.requestHeaders, copied by hand", _auth_proxy_set_headers),
    "auth-always-set-cookie": CatalogEntry("Set-Cookie of the auth service on success only", _auth_always_set_cookie),
    "auth-snippet": CatalogEntry("not converted (nginx directives)", _auth_snippet),
    "enable-global-auth": CatalogEntry("global auth is not converted", _enable_global_auth),
    "custom-http-errors": CatalogEntry("SecurityPolicy errorPages (with default-backend)", _custom_http_errors),
    "default-backend": CatalogEntry("SecurityPolicy errorPages.noEndpoints (and the error pages' backend)",
                                    _default_backend),
    "affinity": CatalogEntry("rule sessionPersistence (cookie)", _affinity),
    **{key: CatalogEntry(f"sessionPersistence: {key}", _affinity_companion) for key in (
        "affinity-mode", "affinity-canary-behavior", "session-cookie-name", "session-cookie-path",
        "session-cookie-domain", "session-cookie-samesite", "session-cookie-conditional-samesite-none",
        "session-cookie-expires", "session-cookie-max-age", "session-cookie-secure",
        "session-cookie-change-on-failure")},
}

__all__ = ["CATALOG", "DEFAULT_COOKIE"]
