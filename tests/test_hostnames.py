"""Gateway API hostname semantics (translate/hostnames.py), the ground the exposure report and
listener isolation stand on: what a wildcard covers and, as much, what it does not."""

from __future__ import annotations

import pytest

from wardgate.translate.hostnames import (
    covering_names,
    hostnames_overlap,
    intersect,
    listener_matches,
    owner,
    specificity,
    wildcard_covers,
)


@pytest.mark.parametrize(("wild", "host", "covered"), [
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "a.b.example.com", True),  # several labels: Gateway API, unlike DNS
    ("*.example.com", "*.b.example.com", True),  # a narrower wildcard
    ("*.example.com", "example.com", False),  # the bare domain is not under it
    ("*.example.com", "badexample.com", False),  # a suffix of characters is not a suffix of labels
    ("*.example.com", "xexample.com", False),
    ("*.example.com", "a.example.org", False),
    ("*.example.com", "*.example.com", False),  # the same wildcard is not strictly covered
    ("*.example.com", "*.com", False),  # a broader wildcard
    ("*.example.com", "a.example.com.evil", False),
    ("*.b.example.com", "a.example.com", False),
    ("*.b.example.com", "a.b.example.com", True),
])
def test_wildcard_covers(wild: str, host: str, covered: bool) -> None:
    assert wildcard_covers(wild, host) is covered


@pytest.mark.parametrize(("listener", "host", "accepted"), [
    (None, "anything.example", True),
    ("", "anything.example", True),
    ("*.example.com", "*.example.com", True),
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "badexample.com", False),
    ("a.example.com", "a.example.com", True),
    ("a.example.com", "b.example.com", False),  # an exact listener is no wildcard
    ("a.example.com", "x.a.example.com", False),
    ("a.example.com", "*.example.com", False),
    ("example.com", "a.example.com", False),
])
def test_listener_matches(listener: str | None, host: str, accepted: bool) -> None:
    assert listener_matches(listener, host) is accepted


@pytest.mark.parametrize(("listener", "route", "served"), [
    (None, [], [""]),
    ("", [], [""]),
    ("a.example.com", [], ["a.example.com"]),
    ("*.example.com", [], ["*.example.com"]),
    (None, ["a.example.com", "b.org"], ["a.example.com", "b.org"]),
    ("", ["a.example.com"], ["a.example.com"]),
    ("a.example.com", ["a.example.com", "b.example.com"], ["a.example.com"]),
    # An exact listener takes neither its siblings nor names below it.
    ("a.example.com", ["b.example.com"], []),
    ("a.example.com", ["x.a.example.com"], []),
    ("*.example.com", ["x.example.com", "x.y.example.com", "other.org"], ["x.example.com", "x.y.example.com"]),
    ("*.example.com", ["badexample.com", "example.com"], []),
    ("*.example.com", ["*.example.com"], ["*.example.com"]),
    ("*.example.com", ["*.a.example.com"], ["*.a.example.com"]),
    # A route wildcard covering the listener's name gives the listener's name.
    ("a.example.com", ["*.example.com"], ["a.example.com"]),
    ("*.a.example.com", ["*.example.com"], ["*.a.example.com"]),
    ("a.example.com", ["*.example.org"], []),
    ("example.com", ["*.example.com"], []),
    # Each name once, in the route's order.
    ("a.example.com", ["*.example.com", "a.example.com"], ["a.example.com"]),
    ("*.example.com", ["b.example.com", "a.example.com", "b.example.com"], ["b.example.com", "a.example.com"]),
])
def test_intersect(listener: str | None, route: list[str], served: list[str]) -> None:
    assert intersect(listener, route) == served


@pytest.mark.parametrize(("a", "b", "overlap"), [
    ([""], ["a.example.com"], True),
    (["a.example.com"], [""], True),
    (["a.example.com"], ["a.example.com"], True),
    (["*.example.com"], ["a.b.example.com"], True),
    (["a.b.example.com"], ["*.example.com"], True),
    (["*.example.com"], ["*.a.example.com"], True),
    (["a.example.com"], ["b.example.com"], False),
    (["*.example.com"], ["badexample.com"], False),
    (["badexample.com"], ["*.example.com"], False),
    (["*.example.com"], ["*.example.org"], False),
    (["a.org", "b.org"], ["c.org", "b.org"], True),
    (["a.org", "b.org"], ["c.org", "d.org"], False),
    ([], ["a.org"], False),
])
def test_hostnames_overlap(a: list[str], b: list[str], overlap: bool) -> None:
    assert hostnames_overlap(a, b) is overlap


def test_owner_is_the_most_specific_accepting_listener() -> None:
    hosts = ["", "*.example.com", "a.example.com", "*.b.example.com"]
    assert owner(hosts, "a.example.com") == 2
    assert owner(hosts, "c.example.com") == 1
    assert owner(hosts, "x.b.example.com") == 3  # the longer wildcard
    assert owner(hosts, "*.b.example.com") == 3
    assert owner(hosts, "*.example.com") == 1
    assert owner(hosts, "other.org") == 0
    assert owner(hosts, "") == 0  # "any host" is owned by the listener without a hostname
    assert owner(["a.example.com"], "") is None
    assert owner(["a.example.com"], "b.example.com") is None
    assert owner(["*.example.com"], "badexample.com") is None
    assert owner(["*.example.com", "*.b.example.com"], "x.b.example.com") == 1
    assert owner(["*.b.example.com", "*.example.com"], "x.b.example.com") == 0
    assert owner([], "a.org") is None


def test_specificity_orders_exact_then_longer_wildcards_then_any() -> None:
    names = ["", "*.com", "a.example.com", "*.example.com", "b.com", "*.a.example.com"]
    assert sorted(names, key=specificity) == ["a.example.com", "b.com", "*.a.example.com", "*.example.com",
                                              "*.com", ""]
    assert specificity("a.example.com") == (0, -13)
    assert specificity("*.example.com") == (1, -13)
    assert specificity("") == (2, 0)


@pytest.mark.parametrize(("host", "names"), [
    ("a.b.example.com", ["a.b.example.com", "*.b.example.com", "*.example.com", "*.com", ""]),
    ("*.b.example.com", ["*.b.example.com", "*.example.com", "*.com", ""]),
    ("example.com", ["example.com", "*.com", ""]),
    ("localhost", ["localhost", ""]),
    ("", [""]),
])
def test_covering_names(host: str, names: list[str]) -> None:
    assert covering_names(host) == names
    # Every name listed does cover the host (as a listener would accept it), and in that order.
    for name in names[1:-1]:
        assert listener_matches(name, host)
    assert [specificity(n) for n in names] == sorted(specificity(n) for n in names)
