"""quoting's checks for IngressNginxCompat (rewriteTarget, redirect location) and header variables,
unit by unit: each accepted form, each refused one with its message, each limit at its edge.
The fuzzers (test_compat_fuzz.py) show nothing unsafe gets through; these pin down the exact rules."""

from __future__ import annotations

import pytest

from wardgate.errors import UnsafeValueError
from wardgate.quoting import (
    Raw,
    check_redirect_location,
    check_rewrite_target,
    header_variable,
    rewrite_target_parts,
)


@pytest.mark.parametrize("value", ["/", "/$1", "/a/$2/b$9", "/static", "/" + "a" * 1023])
def test_rewrite_targets_accepted(value: str) -> None:
    assert check_rewrite_target(value) == value


@pytest.mark.parametrize(("value", "message"), [
    ("", "rewriteTarget '' must start with '/'"),
    ("a/$1", "rewriteTarget 'a/$1' must start with '/' (a path; redirects are RequestRedirect's)"),
    ("https://x/$1", "must start with '/'"),
    ("/a?b=$1", "rewriteTarget '/a?b=$1' must not contain '?': the request's query string is kept as is"),
    ("/?", "must not contain '?'"),
    ("/$0", "rewriteTarget '/$0': '$' may only start a capture reference $1 to $9"),
    ("/$host", "'$' may only start a capture reference"),
    ("/$1$", "'$' may only start a capture reference"),
    ("/${1}", "'$' may only start a capture reference"),
    ("/a\nb", "rewriteTarget '/a\\nb' contains a control character"),
    ("/" + "a" * 1024, "rewriteTarget is longer than 1024 characters"),
])
def test_rewrite_targets_refused(value: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        check_rewrite_target(value)
    assert message in str(exc.value)


def test_rewrite_target_parts() -> None:
    assert rewrite_target_parts("/") == ("/",)
    assert rewrite_target_parts("/$1") == ("/", Raw("$1"))
    assert rewrite_target_parts("/a/$2/b$9c") == ("/a/", Raw("$2"), "/b", Raw("$9"), "c")
    assert rewrite_target_parts("/$1$2") == ("/", Raw("$1"), Raw("$2"))
    assert rewrite_target_parts("/x$3") == ("/x", Raw("$3"))
    with pytest.raises(ValueError, match="must start with '/'"):
        rewrite_target_parts("$1")
    with pytest.raises(ValueError, match="capture reference"):
        rewrite_target_parts("/$uri")


@pytest.mark.parametrize("value", ["/", "/a", "/a?b=c#d", "http://x.example", "https://x.example/a?b#c",
                                   "https://x.example:8443/", "http://x?y", "http://x#y",
                                   "/" + "a" * 2047])
def test_redirect_locations_accepted(value: str) -> None:
    assert check_redirect_location(value) == value


@pytest.mark.parametrize(("value", "message"), [
    ("", "location '' must be an http(s) URL or a path starting with a single '/', without spaces"),
    ("//evil.example/", "location '//evil.example/' must be an http(s) URL or a path starting with a single '/'"),
    ("/a b", "without spaces"),
    ("/a\u00a0b", "without spaces"),
    ("https://x.example/a b", "without spaces"),
    ("https:///a", "must be an http(s) URL"),
    ("ftp://x.example/", "must be an http(s) URL"),
    ("x.example/a", "must be an http(s) URL"),
    ("https://x y/", "must be an http(s) URL"),
    ("Https://x.example/", "must be an http(s) URL"),
    (" https://x.example/", "must be an http(s) URL"),
    ("/a\nb", "location '/a\\nb' contains a control character"),
    ("/a\tb", "without spaces"),
    ("/" + "a" * 2048, "location is longer than 2048 characters"),
])
def test_redirect_locations_refused(value: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        check_redirect_location(value)
    assert message in str(exc.value)


def test_header_variables() -> None:
    assert header_variable("X-Foo") == "$http_x_foo"
    assert header_variable("X-Foo", "upstream_http") == "$upstream_http_x_foo"
    assert header_variable("authorization") == "$http_authorization"
    assert header_variable("A1-b2") == "$http_a1_b2"
    with pytest.raises(UnsafeValueError, match=r"header name 'X\.Foo' can't be matched: use letters, digits and '-'"):
        header_variable("X.Foo")
    with pytest.raises(ValueError):
        header_variable("X Foo")
    with pytest.raises(ValueError):
        header_variable("")
