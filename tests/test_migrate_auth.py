"""migrate/ann_auth.py: the authentication, error-page and affinity annotations, handler by handler,
and what they write is valid for wardgate's models (the corpus cases' annotations included)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from conftest import shared_corpus
from wardgate.migrate.ann_auth import CATALOG
from wardgate.migrate.contrib import Contribution, Source
from wardgate.model.gatewayapi import HTTPRouteRule
from wardgate.model.policies import SecurityPolicySpec

PREFIX = "nginx.ingress.kubernetes.io/"


def source(anns: dict[str, str], config: dict[str, str] | None = None, obj: str = "Ingress default/web") -> Source:
    return Source("in.yaml", obj, obj.split()[1].split("/")[0], "nginx", anns, config or {})


def run(anns: dict[str, str], key: str, config: dict[str, str] | None = None) -> Contribution:
    entry = CATALOG[key]
    assert entry.handler is not None, key
    return entry.handler(key, anns[key], source(anns, config))


def finding(c: Contribution, key: str) -> tuple[str, str]:
    own = [f for f in c.findings if f.item == key]
    assert len(own) == 1, c.findings
    return own[0].status, own[0].detail


def security(c: Contribution) -> SecurityPolicySpec:
    """The contribution as a SecurityPolicy spec wardgate accepts."""
    return SecurityPolicySpec.model_validate({"targetRefs": [{"kind": "HTTPRoute", "name": "r"}], **c.security})


def test_catalog_covers_the_planned_annotations() -> None:
    planned = {"affinity", "affinity-canary-behavior", "affinity-mode", "auth-always-set-cookie",
               "auth-cache-duration", "auth-cache-key", "auth-keepalive", "auth-keepalive-requests",
               "auth-keepalive-share-vars", "auth-keepalive-timeout", "auth-method", "auth-proxy-set-headers",
               "auth-realm", "auth-request-redirect", "auth-response-headers", "auth-secret", "auth-secret-type",
               "auth-signin", "auth-signin-redirect-param", "auth-snippet", "auth-type", "auth-url",
               "custom-http-errors", "enable-global-auth", "session-cookie-change-on-failure",
               "session-cookie-conditional-samesite-none", "session-cookie-domain", "session-cookie-expires",
               "session-cookie-max-age", "session-cookie-name", "session-cookie-path", "session-cookie-samesite",
               "session-cookie-secure", "default-backend"}
    assert set(CATALOG) == planned
    for key, entry in CATALOG.items():
        assert (entry.handler is None) != (entry.owner is None), key
        assert entry.owner is None or entry.owner in CATALOG


def _case(name: str) -> dict[str, str]:
    case = json.loads((shared_corpus("migration") / "cases" / f"{name}.json").read_text())
    for doc in yaml.safe_load_all(case["manifests"]):
        if doc and doc["kind"] == "Ingress":
            return {k.removeprefix(PREFIX): v for k, v in doc["metadata"]["annotations"].items()}
    raise AssertionError(name)


def test_corpus_basic_auth() -> None:
    anns = _case("auth-basic-with-cors")
    c = run(anns, "auth-type")
    assert finding(c, "auth-type")[0] == "exact"
    assert security(c).basic_auth is not None
    assert c.security == {"basicAuth": {"secretRef": {"name": "basic-auth"}, "realm": "Authentication Required - corp"}}


@pytest.mark.parametrize("anns, status, why", [
    ({"auth-type": "digest", "auth-secret": "s"}, "not-converted", "Digest"),
    ({"auth-type": "basic"}, "not-converted", "auth-secret is missing"),
    ({"auth-type": "basic", "auth-secret": "other/s"}, "not-converted", "ingress-nginx refused it"),
])
def test_basic_auth_not_converted(anns: dict[str, str], status: str, why: str) -> None:
    c = run(anns, "auth-type")
    got = finding(c, "auth-type")
    assert got[0] == status and why in got[1] and not c.security


def test_basic_auth_map_and_own_namespace() -> None:
    c = run({"auth-type": "basic", "auth-secret": "default/users", "auth-secret-type": "auth-map"}, "auth-type")
    assert c.security["basicAuth"] == {"secretRef": {"name": "users"}, "realm": "", "format": "UserMap"}
    security(c)


@pytest.mark.parametrize("anns", [
    {"auth-type": "basic", "auth-secret": "s", "auth-realm": "off"},
    {"auth-type": "basic", "auth-secret": "s", "auth-realm": 'x"y'},
    {"auth-type": "ntlm", "auth-secret": "s"},
    {"auth-type": "basic", "auth-secret": "s", "auth-secret-type": "ldap"},
])
def test_basic_auth_invalid_values(anns: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        run(anns, "auth-type")


def test_corpus_auth_url() -> None:
    anns = _case("auth-url-external")
    c = run(anns, "auth-url")
    status, detail = finding(c, "auth-url")
    assert status == "converted-with-difference" and "X-Forwarded-Proto" in detail
    assert c.security == {"externalAuth": {
        "backendRef": {"name": "ext-auth", "port": 80}, "path": "/verify",
        "requestHeaders": [{"name": "X-Sent-From", "value": "nginx-ingress-controller"}],
        "responseHeaders": ["X-Auth-User", "X-Auth-Groups"]}}
    spec = security(c)
    assert spec.external_auth is not None and spec.external_auth.hostname is None  # the default is that name
    assert finding(run(anns, "auth-response-headers"), "auth-response-headers")[0] == "exact"


@pytest.mark.parametrize("url, expect", [
    ("http://auth/verify", ({"name": "auth", "port": 80}, "auth")),
    ("https://auth.idp.svc:8443/check?x=1", ({"name": "auth", "namespace": "idp", "port": 8443}, "auth.idp.svc")),
    ("http://auth.default.svc.cluster.local:4180/oauth2/auth", ({"name": "auth", "port": 4180}, None)),
])
def test_auth_url_services(url: str, expect: tuple[dict[str, Any], str | None]) -> None:
    c = run({"auth-url": url}, "auth-url")
    ext = c.security["externalAuth"]
    assert (ext["backendRef"], ext.get("hostname")) == expect
    security(c)
    detail = finding(c, "auth-url")[1]
    if "namespace" in expect[0]:
        assert "ReferenceGrant" in detail and "BackendTLSPolicy" in detail


@pytest.mark.parametrize("url, why", [
    ("https://auth.example.com/verify", "not a cluster Service name"),
    ("https://$host/oauth2/auth", "nginx variable"),
    ("http://auth/verify?u=$remote_user", "nginx variables"),
])
def test_auth_url_not_converted(url: str, why: str) -> None:
    c = run({"auth-url": url}, "auth-url")
    status, detail = finding(c, "auth-url")
    assert status == "not-converted" and why in detail and not c.security


def test_auth_url_companions() -> None:
    anns = {"auth-url": "http://auth/v", "auth-method": "POST", "auth-request-redirect": "/home",
            "auth-response-headers": "X-User, X-Email,X-User", "auth-always-set-cookie": "true",
            "auth-cache-key": "$cookie_session", "auth-keepalive": "10", "auth-proxy-set-headers": "hdrs"}
    ext = run(anns, "auth-url").security["externalAuth"]
    assert ext["method"] == "POST" and ext["responseHeaders"] == ["X-User", "X-Email"]
    assert {"name": "X-Auth-Request-Redirect", "value": "/home"} in ext["requestHeaders"]
    assert finding(run(anns, "auth-always-set-cookie"), "auth-always-set-cookie")[0] == "converted-with-difference"
    assert finding(run(anns, "auth-cache-key"), "auth-cache-key")[0] == "converted-with-difference"
    assert finding(run(anns, "auth-keepalive"), "auth-keepalive")[0] == "exact"
    assert finding(run(anns, "auth-proxy-set-headers"), "auth-proxy-set-headers")[0] == "not-converted"
    alone = {"auth-method": "POST"}
    assert "no effect without auth-url" in finding(run(alone, "auth-method"), "auth-method")[1]
    bad = run({"auth-url": "http://auth/v", "auth-response-headers": "X_User"}, "auth-url")
    assert finding(bad, "auth-url")[0] == "not-converted"


@pytest.mark.parametrize("signin, expect, status", [
    ("https://login.example.com/start", {"url": "https://login.example.com/start"}, "exact"),
    ("https://$host/oauth2/start?rd=$escaped_request_uri", {"url": "/oauth2/start"}, "converted-with-difference"),
    ("https://login.example.com/start?rd=$scheme://$host$request_uri&app=1",
     {"url": "https://login.example.com/start?app=1"}, "converted-with-difference"),
])
def test_auth_signin(signin: str, expect: dict[str, str], status: str) -> None:
    anns = {"auth-url": "http://auth/v", "auth-signin": signin}
    assert run(anns, "auth-url").security["externalAuth"]["signin"] == expect
    assert finding(run(anns, "auth-signin"), "auth-signin")[0] == status
    with_param = {**anns, "auth-signin-redirect-param": "next"}
    converted = run(with_param, "auth-url").security
    if "$" in signin:  # rd=$... is then not the redirect parameter: a variable wardgate can't fill
        assert not converted
    else:
        assert converted["externalAuth"]["signin"]["redirectParam"] == "next"


def test_auth_signin_with_other_variables_is_not_converted() -> None:
    anns = {"auth-url": "http://auth/v", "auth-signin": "https://login.example.com/?u=$remote_user"}
    assert finding(run(anns, "auth-url"), "auth-url")[0] == "not-converted"
    assert finding(run(anns, "auth-signin"), "auth-signin")[0] == "not-converted"


def test_global_auth() -> None:
    assert finding(run({"enable-global-auth": "false"}, "enable-global-auth"), "enable-global-auth")[0] == "exact"
    cfg = {"global-auth-url": "http://auth/v"}
    assert finding(run({"enable-global-auth": "true"}, "enable-global-auth", cfg),
                   "enable-global-auth")[0] == "not-converted"


def test_corpus_custom_http_errors_with_default_backend() -> None:
    anns = _case("custom-http-errors-with-default-backend")
    c = run(anns, "custom-http-errors")
    assert finding(c, "custom-http-errors")[0] == "exact"
    assert c.security == {"errorPages": {
        "backendRef": {"name": "error-pages"}, "statuses": [404, 503], "noEndpoints": True,
        "requestHeaders": [{"name": "X-Ingress-Name", "value": "web"}, {"name": "X-Namespace", "value": "default"}]}}
    security(c)
    d = run(anns, "default-backend")
    assert finding(d, "default-backend")[0] == "exact" and not d.security  # one owner of errorPages


def test_corpus_default_backend_alone() -> None:
    anns = _case("default-backend-annotation-no-endpoints")
    c = run(anns, "default-backend")
    assert c.security["errorPages"]["noEndpoints"] is True and "statuses" not in c.security["errorPages"]
    assert security(c).error_pages is not None


def test_custom_http_errors_without_backend_and_invalid() -> None:
    c = run({"custom-http-errors": "503"}, "custom-http-errors")
    assert finding(c, "custom-http-errors")[0] == "not-converted" and not c.security
    with pytest.raises(ValueError):
        run({"custom-http-errors": "404,abc"}, "custom-http-errors")
    with pytest.raises(ValueError):
        run({"custom-http-errors": "302"}, "custom-http-errors")


def test_corpus_affinity() -> None:
    anns = _case("affinity-cookie")
    c = run(anns, "affinity")
    assert finding(c, "affinity")[0] == "exact"
    assert c.rule == {"sessionPersistence": {"sessionName": "SERVERID", "type": "Cookie"}}
    HTTPRouteRule.model_validate(c.rule)
    assert finding(run(anns, "session-cookie-name"), "session-cookie-name")[0] == "exact"


def test_affinity_lifetime_and_attributes() -> None:
    anns = {"affinity": "cookie", "session-cookie-max-age": "172800", "session-cookie-samesite": "None",
            "session-cookie-path": "/x", "session-cookie-expires": "100", "session-cookie-secure": "true",
            "affinity-mode": "persistent", "session-cookie-change-on-failure": "true"}
    c = run(anns, "affinity")
    assert c.rule["sessionPersistence"] == {"sessionName": DEFAULT, "type": "Cookie", "absoluteTimeout": "48h",
                                            "cookieConfig": {"lifetimeType": "Permanent"}}
    HTTPRouteRule.model_validate(c.rule)
    assert finding(c, "affinity")[0] == "converted-with-difference"
    for key, status in (("session-cookie-max-age", "exact"), ("session-cookie-expires", "exact"),
                        ("session-cookie-samesite", "converted-with-difference"),
                        ("session-cookie-path", "converted-with-difference"),
                        ("session-cookie-secure", "converted-with-difference"),
                        ("affinity-mode", "converted-with-difference"),
                        ("session-cookie-change-on-failure", "converted-with-difference")):
        assert finding(run(anns, key), key)[0] == status, key
    only_expires = run({"affinity": "cookie", "session-cookie-expires": "90061"}, "affinity")
    assert only_expires.rule["sessionPersistence"]["absoluteTimeout"] == "25h1m1s"
    assert finding(run({"affinity": "cookie", "session-cookie-expires": "60"}, "session-cookie-expires"),
                   "session-cookie-expires")[0] == "converted-with-difference"
    assert "no effect" in finding(run({"session-cookie-name": "x"}, "session-cookie-name"), "session-cookie-name")[1]
    assert not run({"affinity": "ip"}, "affinity").rule
    assert finding(run({"affinity": "cookie", "session-cookie-name": "a b"}, "affinity"), "affinity")[0] == \
        "not-converted"


DEFAULT = "INGRESSCOOKIE"
