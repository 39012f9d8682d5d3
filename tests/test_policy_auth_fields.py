"""The authentication fields' value rules (model/policies.py), unit by unit: basicAuth.realm,
externalAuth.path, externalAuth.signin.url and ingressNginxCORS's lists, each accepted form and
each refusal with its message. test_auth_basic.py and test_auth_external.py show them on nginx."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from wardgate.model.policies import BasicAuth, ExternalAuth, IngressNginxCORS, Signin


def _refused(model: Any, data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    return str(exc.value)


@pytest.mark.parametrize("realm", ["Restricted", "", "corp sso", "Off", "offline", "x" * 256, "é"])
def test_realms_accepted(realm: str) -> None:
    assert BasicAuth.model_validate({"secretRef": {"name": "users"}, "realm": realm}).realm == realm


@pytest.mark.parametrize(("realm", "message"), [
    ('a"b', """realm 'a"b' must not contain '"' or '\\'"""),
    ("a\\b", "must not contain '\"' or '\\'"),
    ("off", "realm 'off' would turn authentication off in nginx; choose another"),
    ("a\nb", "realm 'a\\nb' contains a control character"),
    ("x" * 257, "realm is longer than 256 characters"),
])
def test_realms_refused(realm: str, message: str) -> None:
    assert message in _refused(BasicAuth, {"secretRef": {"name": "users"}, "realm": realm})


def test_realm_default() -> None:
    assert BasicAuth.model_validate({"secretRef": {"name": "users"}}).realm == "Restricted"


EXT = {"backendRef": {"name": "auth"}}


LONGEST = "/" + "a" * 1000 + "?" + "b" * 1046  # 2,048 characters


@pytest.mark.parametrize("path", ["/", "/verify", "/oauth2/auth?scope=app&x=%20y", "/a?", "/a?b?c", LONGEST])
def test_auth_paths_accepted(path: str) -> None:
    assert ExternalAuth.model_validate({**EXT, "path": path}).path == path


@pytest.mark.parametrize(("path", "message"), [
    ("verify", "invalid path 'verify': an absolute path, optionally with a ?query"),
    ("", "invalid path ''"),
    ("/a b", "invalid path '/a b'"),
    ("/a#b", "invalid path '/a#b'"),
    ("/a?b c", "invalid path '/a?b c'"),
    ("/a?b\"", "invalid path"),
    (LONGEST + "b", "an absolute path, optionally with a ?query"),
    ("/a/../b", ".."),
])
def test_auth_paths_refused(path: str, message: str) -> None:
    assert message in _refused(ExternalAuth, {**EXT, "path": path})


def test_auth_path_default() -> None:
    assert ExternalAuth.model_validate(EXT).path == "/"


@pytest.mark.parametrize("url", ["/login", "/", "https://idp.example.com/start?rd=x", "http://idp:8080/a",
                                 "https://a.example/" + "b" * 2000])
def test_signin_urls_accepted(url: str) -> None:
    assert Signin.model_validate({"url": url}).url == url


@pytest.mark.parametrize(("url", "message"), [
    ("login", "invalid signin URL 'login': an http(s) URL or an absolute path, without a fragment"),
    ("https://idp.example.com", "invalid signin URL"),
    ("https://idp.example.com/a#b", "without a fragment"),
    ("/a#", "without a fragment"),
    ("ftp://idp.example.com/", "invalid signin URL"),
    ("https://idp.example.com:123456/", "invalid signin URL"),
    ("/a b", "invalid signin URL"),
    ("/a\nb", "signin URL '/a\\nb' contains a control character"),
    ("/" + "a" * 2048, "signin URL is longer than 2048 characters"),
])
def test_signin_urls_refused(url: str, message: str) -> None:
    assert message in _refused(Signin, {"url": url})


@pytest.mark.parametrize(("field", "value", "what"), [
    ("allowMethods", "GET, <script>", "a list of methods"),
    ("allowHeaders", "X-A, X B!", "a list of header names"),
    ("exposeHeaders", "X-A;", "a list of header names"),
])
def test_cors_lists_refused_with_what_they_should_be(field: str, value: str, what: str) -> None:
    assert f"{value!r} is not {what}" in _refused(IngressNginxCORS, {field: value})


def test_cors_lists_accepted() -> None:
    cors = IngressNginxCORS.model_validate({"allowMethods": "GET, POST", "allowHeaders": "X-A,X-B",
                                            "exposeHeaders": "X-Total"})
    assert (cors.allow_methods, cors.allow_headers, cors.expose_headers) == ("GET, POST", "X-A,X-B", "X-Total")
