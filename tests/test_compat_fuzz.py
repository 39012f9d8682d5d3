"""IngressNginxCompat's user strings (a regex or prefix path read the ingress-nginx way, a rewrite
target, a redirect location or host) either are refused with the field named, or reach nginx exactly where
they belong and nowhere else: the rendered directive tree, read back with crossplane, is the one
the same manifest renders with harmless values, and the values are intact after nginx's unquoting
(test_quoting_fuzz.py does the same for Gateway API's fields). `wardgate migrate` writes these
fields from annotations (use-regex paths, rewrite-target, app-root), so this covers migrated input.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
import yaml
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from conftest import examples
from test_quoting_fuzz import (
    BASE,
    FUZZ,
    INJECTIONS,
    LISTENER_PORT,
    PATH,
    PATH_PAYLOADS,
    REGEX,
    REGEX_PAYLOADS,
    TEXT,
    Node,
    _Dumper,
    compare,
    esc,
    nginx_test,
    read_conf,
    walk,
)
from wardgate.errors import InputError, Problem, UnsafeValueError
from wardgate.model import parse
from wardgate.quoting import MATCH_LIMIT
from wardgate.render.nginx import RenderOptions, render
from wardgate.sources.files import load_text
from wardgate.translate import translate

SAFE = {"regex": "/safe(/|$)(.*)", "target": "/$2", "prefix": "/safe-prefix", "location": "/landing",
        "hostname": "apex.example"}
WHERE = {"regex": ("HTTPRoute", "spec.rules[0].matches[0].path"),
         "target": ("IngressNginxCompat", "spec.rewriteTarget"),
         "prefix": ("HTTPRoute", "spec.rules[1].matches[0].path"),
         "location": ("IngressNginxCompat", "spec.redirect.location"),
         "hostname": ("IngressNginxCompat", "spec.redirect.hostname")}
# A target's $1..$9; nginx reads `$10` as $1 then "0" (a capture is one digit), which the variable
# scan of test_quoting_fuzz reads as a name.
CAPTURES = frozenset(str(n) for n in range(1, 100))


@dataclass(frozen=True)
class Case:
    values: tuple[tuple[str, str], ...]
    fuzzed: frozenset[str]

    @staticmethod
    def make(fuzz: dict[str, str]) -> Case:
        return Case(tuple({**SAFE, **fuzz}.items()), frozenset(fuzz))

    @property
    def v(self) -> dict[str, str]:
        return dict(self.values)

    def harmless(self) -> Case:
        values = {**self.v, **{k: SAFE[k] for k in self.fuzzed}}
        if self.v["prefix"].endswith("/"):  # such a prefix has a 301 location of its own
            values["prefix"] = SAFE["prefix"] + "/"
        return replace(self, values=tuple(values.items()), fuzzed=frozenset())

    def objects(self) -> list[dict[str, Any]]:
        v = self.v

        def compat(name: str, spec: dict[str, Any]) -> dict[str, Any]:
            return {"apiVersion": "policy.wardgate.io/v1alpha1", "kind": "IngressNginxCompat",
                    "metadata": {"name": name, "namespace": "default"}, "spec": spec}

        def ref(name: str) -> dict[str, Any]:
            return {"type": "ExtensionRef",
                    "extensionRef": {"group": "policy.wardgate.io", "kind": "IngressNginxCompat", "name": name}}

        return [
            compat("rw", {"pathMatching": "IngressNginx", "rewriteTarget": v["target"]}),
            compat("paths", {"pathMatching": "IngressNginx", "sslRedirect": {}}),
            compat("away", {"redirect": {"location": v["location"], "statusCode": 302}}),
            compat("twin", {"redirect": {"hostname": v["hostname"], "statusCode": 308}}),
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "fuzz", "namespace": "default"},
             "spec": {"parentRefs": [{"name": "quickstart"}], "hostnames": ["fuzz.example"], "rules": [
                 {"matches": [{"path": {"type": "RegularExpression", "value": v["regex"]}}],
                  "filters": [ref("rw")], "backendRefs": [{"name": "echo", "port": 80}]},
                 {"matches": [{"path": {"type": "PathPrefix", "value": v["prefix"]}}],
                  "filters": [ref("paths")], "backendRefs": [{"name": "echo", "port": 80}]},
                 {"matches": [{"path": {"type": "Exact", "value": "/redirect"}}], "filters": [ref("away")]},
                 {"matches": [{"path": {"type": "Exact", "value": "/twin"}}], "filters": [ref("twin")]},
             ]}},
        ]


def _problems_name_a_fuzzed_field(problems: list[Problem], case: Case) -> None:
    assert problems
    for p in problems:
        assert any(p.kind == WHERE[f][0] and (p.field or "").startswith(WHERE[f][1]) for f in case.fuzzed), str(p)


def rendered(case: Case) -> dict[str, str] | None:
    text = BASE + "".join("\n---\n" + yaml.dump(o, Dumper=_Dumper) for o in case.objects())
    raws = load_text(text, "fuzz.yaml")
    assert [r.data for r in raws[-5:]] == case.objects(), "PyYAML did not round-trip the manifest"
    try:
        rs = parse(raws)
    except InputError as exc:
        _problems_name_a_fuzzed_field(exc.problems, case)
        return None
    tr = translate(rs)
    assert not tr.problems, [str(p) for p in tr.problems]
    try:
        return render(tr.gateways[0], RenderOptions(listen_host="127.0.0.1"))
    except (UnsafeValueError, ValueError) as exc:
        assert str(exc)
        return None


def _rewrite_maps(conf: tuple[Node, ...]) -> list[Node]:
    return [n for n, _ in walk(conf) if n.name == "map" and n.args[1].startswith("$wg_rw")]


def check_values(conf: tuple[Node, ...], case: Case) -> None:
    """Each value, unquoted, is exactly where it belongs."""
    v = case.v
    server = next(n for n, _ in walk(conf) if n.name == "server"
                  and any(c.name == "server_name" and c.args == ("fuzz.example",) for c in n.block or ()))
    locations = [c.args for c in server.block or () if c.name == "location"]
    assert ("~", MATCH_LIMIT + "(?i)^" + v["regex"]) in locations
    assert (v["prefix"],) in locations
    maps = _rewrite_maps(conf)
    assert len(maps) == 1 and next((c.name, c.args) for c in maps[0].block or ()) == (
        "~" + MATCH_LIMIT + "(?i)" + v["regex"], (v["target"],))  # a target's only `$`s are captures
    seen = [(n.name, n.args) for n, _ in walk(server.block or ())]
    location = v["location"]
    want = esc(location) if not location.startswith("/") else "$scheme://$http_host" + esc(location)
    assert ("return", ("302", want)) in seen
    assert ("return", ("308", f"$scheme://{esc(v['hostname'])}:{LISTENER_PORT}$wg_rd_uri")) in seen
    assert ("return", ("308", "https://$wg_rd_host$wg_rd_uri")) in seen  # the prefix rule's sslRedirect
    if v["prefix"].endswith("/") and len(v["prefix"]) > 1:
        assert ("return", ("301", f"$scheme://$host:{LISTENER_PORT}{esc(v['prefix'])}$is_args$args")) in seen


def _masked(conf: tuple[Node, ...]) -> tuple[Node, ...]:
    """The tree with the rewrite map's regex key (the one place a user regex is a directive name)
    replaced by a placeholder, once check_values has checked it."""
    def mask(nodes: tuple[Node, ...], in_map: bool) -> tuple[Node, ...]:
        out = []
        for n in nodes:
            name = "<rewrite regex>" if in_map and n.name.startswith("~") else n.name
            block = None if n.block is None else mask(n.block, n.name == "map" and n.args[1].startswith("$wg_rw"))
            out.append(Node(name, n.args, block))
        return tuple(out)
    return mask(conf, False)


def check_case(case: Case) -> dict[str, str] | None:
    files = rendered(case)
    if files is None:
        return None
    ref_files = rendered(case.harmless())
    assert ref_files is not None, "the harmless variant must render"
    got, ref = read_conf(files["nginx.conf"]), read_conf(ref_files["nginx.conf"])
    check_values(got, case)
    check_values(ref, case.harmless())
    compare(_masked(got), _masked(ref), frozenset({"wg_dollar"} | CAPTURES))
    return files


@st.composite
def cases(draw: st.DrawFn) -> Case:
    strategies = {"regex": REGEX, "target": st.one_of(PATH, TEXT), "prefix": PATH, "location": st.one_of(PATH, TEXT),
                  "hostname": st.one_of(TEXT, st.from_regex(r"[a-z0-9.-]{1,30}", fullmatch=True))}
    fuzzed = draw(st.sets(st.sampled_from(sorted(strategies)), min_size=1, max_size=2))
    values = {name: draw(strategies[name], label=name) for name in sorted(fuzzed)}
    prefix = values.get("prefix", SAFE["prefix"])
    # Paths that merge with the case's other locations give another tree, not a bug.
    assume(prefix.rstrip("/") not in ("", "/redirect", "/twin") and prefix not in ("/redirect/", "/twin/"))
    return Case.make(values)


@settings(FUZZ, max_examples=examples(300))
@given(cases())
@example(Case.make({"target": '/x"; return 200 "pwned', "location": "/a;}\nserver{listen 1;}"}))
@example(Case.make({"target": "/$remote_addr", "regex": "/(?P<wg_dollar>.*)"}))
@example(Case.make({"location": "https://x.example/$host", "prefix": "/a b"}))
@example(Case.make({"hostname": 'a.example;return 200 "x'}))
@example(Case.make({"hostname": "a.example$host"}))
def test_fuzzed_compat_is_refused_or_injects_nothing(case: Case) -> None:
    check_case(case)


@settings(FUZZ, max_examples=examples(30))
@given(cases())
def test_accepted_fuzzed_compat_passes_nginx_t(case: Case) -> None:
    files = check_case(case)
    assume(files is not None)
    assert files is not None
    res = nginx_test(files)
    assert res.returncode == 0, f"nginx -t rejected what wardgate accepted:\n{res.stderr}"


@pytest.mark.parametrize(("name", "payloads"), [
    ("regex", REGEX_PAYLOADS + INJECTIONS), ("target", PATH_PAYLOADS + INJECTIONS + ["/$1$2", "/$0", "/$10", "/a?b"]),
    ("prefix", PATH_PAYLOADS + INJECTIONS),
    ("location", PATH_PAYLOADS + INJECTIONS + ["https://a.example/$1", "http://x", "//evil.example", "/a\tb"]),
])
def test_every_payload_in_every_compat_field(name: str, payloads: list[str]) -> None:
    failures, accepted = [], 0
    for payload in payloads:
        if name == "prefix" and (payload.rstrip("/") in ("", "/redirect") or payload == "/redirect/"):
            continue
        try:
            accepted += check_case(Case.make({name: payload})) is not None
        except AssertionError as exc:
            failures.append(f"{payload!r}: {str(exc).splitlines()[0]}")
    assert not failures, "\n".join(failures)
    assert accepted, "no payload was accepted: the field is not exercised"
