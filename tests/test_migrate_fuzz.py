"""The promise against configuration injection, for migrated input: Ingresses with random and
hostile annotation values (every annotation ingress-nginx documents), hosts, paths and snippets go
through `wardgate migrate` and then the normal pipeline to nginx. For each:

- migrate never raises, and reports every annotation (a finding whose item is the annotation, or
  `<annotation> line N` for a snippet line), or refuses the Ingress with a finding naming the file,
  the object and the field;
- what it writes is YAML that loads back and objects wardgate's model accepts;
- the rendered configuration has no directive, live variable or regex capture that came from the
  input (the payloads carry marker names: `wgpwn_*` directives, `$wgfuzz_*` variables,
  `(?P<wgfuzz_*>)` captures, which nginx itself would also refuse as unknown), and `nginx -t`
  accepts it.

Strings reach nginx only through wardgate's quoting module; test_quoting_fuzz.py and
test_policy_fuzz.py check that module field by field, this test that migrate feeds it everything.
"""

from __future__ import annotations

import functools
import multiprocessing
import re
import time
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from conftest import REPO, examples
from test_listeners import tls_secret
from test_quoting_fuzz import (
    ANY_TEXT,
    FUZZ,
    HOST,
    INJECTIONS,
    PATH,
    REGEX_PAYLOADS,
    Node,
    named_groups,
    nginx_test,
    read_conf,
    roles,
    variables,
    walk,
)
from wardgate.errors import InputError, Origin, UnsafeValueError
from wardgate.migrate import catalog, migrate
from wardgate.migrate.report import STATUSES
from wardgate.model import parse
from wardgate.render.nginx import RenderOptions, render
from wardgate.sources.files import RawObject, load_text
from wardgate.translate import translate

FIXTURE = REPO / "tests" / "fixtures" / "migrate" / "all-annotations.yaml"
A = catalog.PREFIX
OBJ = "Ingress default/fuzz"
FILE = "fuzz.yaml"
SNIPPETS = ("configuration-snippet", "server-snippet", "modsecurity-snippet", "auth-snippet", "stream-snippet")

# Payloads whose success would show: an unknown directive (`wgpwn_*`), an unknown variable made
# live (`$wgfuzz_*`) or a regex capture setting one. nginx -t refuses all three, so an injection
# that slipped past the checks below would still fail it.
CANARIES = [
    'x"; wgpwn_a "1',
    "x; wgpwn_b 1;",
    "x'; wgpwn_c '1",
    "} wgpwn_d { ",
    "x\nwgpwn_e 1;",
    '\\"; wgpwn_f \\"',
    "a;}\nserver{wgpwn_g 1;}",
    '"; } location / { wgpwn_h "x',
    "$wgfuzz_v",
    "${wgfuzz_w}",
    "/$wgfuzz_p",
    "(?P<wgfuzz_g>x)",
    "/(?P<wgfuzz_h>.*)",
    "x $wgfuzz_v y",
    "#wgpwn_i",
    'x" always; wgpwn_j "1',
]
PAYLOADS = sorted(set(INJECTIONS) | set(CANARIES))
# The characters that end or escape nginx tokens, alone (every annotation meets each of them).
SHARP = ['"', "'", ";", "{", "}", "\\", "#", "\n", "\x00", " ", "$", "$1", "é💥"]
_MARK = re.compile(r"wgpwn|wgfuzz")


def _fixture() -> tuple[list[dict[str, Any]], dict[str, str], dict[str, dict[str, str]]]:
    """The fixture's supporting objects (ConfigMaps, Secrets, Services, the class), a valid value
    for every annotation it holds, and for each annotation the others of its Ingress there: the
    annotations it works with (x-forwarded-prefix does nothing without rewrite-target, the
    session-cookie-* ones nothing without affinity)."""
    docs = [d for d in yaml.safe_load_all(FIXTURE.read_text()) if isinstance(d, dict)]
    valid: dict[str, str] = {}
    context: dict[str, dict[str, str]] = {}
    for d in docs:
        if d["kind"] == "Ingress":
            anns = {k.removeprefix(A): str(v) for k, v in (d["metadata"].get("annotations") or {}).items()}
            for k, v in anns.items():
                valid.setdefault(k, v)
                context.setdefault(k, anns)
    return [d for d in docs if d["kind"] != "Ingress"], valid, context


SUPPORT, VALID, CONTEXT = _fixture()
KEYS = sorted(catalog.DOCUMENTED | set(catalog.CATALOG))


@functools.cache
def _tls_secret() -> dict[str, Any]:
    ca = trustme.CA()
    doc = yaml.safe_load(tls_secret("fuzz-tls", ca, "*.example.com", "fuzz.example"))
    assert isinstance(doc, dict)
    return doc


def test_every_catalog_annotation_has_a_valid_value_to_start_from() -> None:
    assert set(KEYS) - set(VALID) == set(), "the fixture lost annotations"


# --- the fuzzed Ingress ----------------------------------------------------------------------------

# {v}: the payload as snippet text (it may break the snippet's own syntax); {q}: the payload as one
# quoted nginx token, and {qh}: a quoted "Name: value" header line with it, which convert.
_SNIPPET_LINES = [
    "more_set_headers {qh};",
    "add_header X-B {q};",
    "add_header X-B {q} always;",
    "proxy_set_header X-C {q};",
    "more_set_input_headers {qh};",
    "location = /.well-known/security.txt {{ return 200 {q}; }}",
    "return 302 {q};",
    "location = /robots.txt {{ default_type {q}; return 200 ok; }}",
    'more_set_headers "X-A: {v}";',
    "more_set_headers {q};",
    'more_clear_headers "{v}";',
    'add_header X-B "{v}";',
    'add_header X-B "{v}" always;',
    'proxy_set_header X-C "{v}";',
    "more_set_input_headers {q};",
    "if ($request_method !~ ^(GET|{v})$) {{ return 405; }}",
    'location = /.well-known/security.txt {{ return 200 "{v}"; }}',
    "location = /{v} {{ return 403; }}",
    "return 301 {q};",
    'return 302 "https://{v}/";',
    "allow {v};",
    "deny {v};",
    "rewrite ^/old/(.*)$ /{v}/$1 redirect;",
    'rewrite "^/{v}$" /new permanent;',
    "limit_except GET {{ deny all; }}",
    "SecRuleEngine {v}",
    "SecRuleRemoveById {v}",
    "proxy_hide_header {q};",
    "expires {v};",
    "set $x {q};",
    "{v}",
]


def _quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _line(template: str, v: str) -> str:
    return template.format(v=v, q=_quote(v), qh=_quote("X-A: " + v))


@st.composite
def snippet(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        v = draw(st.one_of(st.sampled_from(PAYLOADS), ANY_TEXT, st.sampled_from(["GET", "nosniff", "1", "On"])))
        lines.append(_line(draw(st.sampled_from(_SNIPPET_LINES)), v))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


def value_for(key: str) -> st.SearchStrategy[str]:
    valid = VALID.get(key, "true")
    hostile = st.one_of(st.sampled_from(PAYLOADS), ANY_TEXT)
    out = st.one_of(
        st.just(valid),
        hostile,
        st.tuples(st.just(valid), hostile).map("".join),
        st.tuples(hostile, st.just(valid)).map("".join),
    )
    return st.one_of(snippet(), out) if key in SNIPPETS else out


@st.composite
def annotations(draw: st.DrawFn) -> dict[str, str]:
    keys = draw(st.lists(st.sampled_from([*KEYS, "no-such-annotation"]), min_size=1, max_size=4, unique=True))
    fuzzed = {k: draw(value_for(k)) for k in keys}
    if draw(st.booleans()):  # among the annotations the first one works with
        return {**CONTEXT.get(keys[0], {}), **fuzzed}
    return fuzzed


@st.composite
def ingresses(draw: st.DrawFn) -> dict[str, Any]:
    anns = draw(annotations())
    if draw(st.booleans()):  # path annotations make every path of the host a regex
        anns.setdefault("use-regex", "true")
    regex = "use-regex" in anns or "rewrite-target" in anns
    path = st.one_of(PATH, st.sampled_from(REGEX_PAYLOADS)) if regex else PATH
    paths = [
        {
            "path": draw(path),
            "pathType": draw(st.sampled_from(["Prefix", "Exact", "ImplementationSpecific"])),
            "backend": {"service": {"name": "app", "port": {"number": 80}}},
        }
        for _ in range(draw(st.integers(1, 2)))
    ]
    host = draw(st.one_of(st.just("fuzz.example"), HOST))
    spec: dict[str, Any] = {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": paths}}]}
    if draw(st.booleans()):
        spec["tls"] = [{"hosts": [host], "secretName": "fuzz-tls"}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "fuzz", "namespace": "default", "annotations": {A + k: v for k, v in anns.items()}},
        "spec": spec,
    }


def plain_ingress(anns: dict[str, str]) -> dict[str, Any]:
    """Ingress default/fuzz: fuzz.example, Prefix / to app:80, these annotations (prefix added)."""
    backend = {"service": {"name": "app", "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "fuzz", "namespace": "default", "annotations": {A + k: v for k, v in anns.items()}},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {"host": "fuzz.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
            ],
        },
    }


# --- the properties ---------------------------------------------------------------------------------


def inputs(ing: dict[str, Any]) -> list[RawObject]:
    docs = [*SUPPORT, _tls_secret(), ing]
    return [RawObject(d, Origin(FILE, i)) for i, d in enumerate(docs)]


def check_findings(ing: dict[str, Any], findings: list[Any]) -> None:
    mine = [f for f in findings if f.obj == OBJ]
    for f in findings:
        assert f.status in STATUSES and f.item and f.detail, f
    for f in mine:
        assert f.file.startswith(FILE), f
    refused = [f for f in mine if f.status == "not-converted" and f.item.startswith(("spec", "metadata"))]
    for key in ing["metadata"]["annotations"]:
        short = key.removeprefix(A)
        reported = any(f.item == short or f.item.startswith(short + " ") for f in mine)
        assert reported or refused, f"annotation {short} has no finding: {[(f.item, f.status) for f in mine]}"


def check_config(files: dict[str, str]) -> None:
    """No directive, live variable or capture from the payloads; nginx -t accepts the whole."""
    check_markers(files)
    res = nginx_test(files)
    assert res.returncode == 0, f"nginx -t rejected the migrated configuration:\n{res.stderr}"


def check_markers(files: dict[str, str]) -> None:
    """No directive, live variable or regex capture named after a payload's marker."""
    for name, text in files.items():
        if not name.endswith(".conf") or not _MARK.search(text):
            continue
        conf = read_conf(text)
        for node, parents in walk(conf):
            assert not _MARK.search(node.name), f"{name}: directive {node.name!r} came from the input"
            parent: Node | None = parents[-1] if parents else None
            for role, arg in zip(roles(node, parent), node.args, strict=False):
                if role == "interp":
                    live = [v for v in variables(arg) if _MARK.search(v)]
                    assert not live, f"{name}: {node.name} {arg!r} makes ${live[0]} live"
                elif role == "regex":
                    caps = [g for g in named_groups(arg) if _MARK.search(g)]
                    assert not caps, f"{name}: {node.name} {arg!r} sets ${caps[0]}"


def migrate_and_serve(ing: dict[str, Any]) -> None:
    raws = inputs(ing)
    result = migrate(raws)  # never raises
    check_findings(ing, result.report.findings)
    text = result.yaml()
    try:
        out = load_text(text, "out.yaml")
    except InputError as exc:
        pytest.fail(f"migrate wrote YAML that doesn't load back: {exc}")
    assert [o.data for o in out] == result.objects
    try:
        rs = parse(out + raws)
    except InputError as exc:
        pytest.fail(f"wardgate's model refuses what migrate wrote: {exc}\n{text[:3000]}")
    tr = translate(rs)
    for gw in tr.gateways:
        try:
            files = render(gw, RenderOptions(listen_host="127.0.0.1"))
        except UnsafeValueError as exc:
            pytest.fail(f"the renderer refuses what the model accepted from migrate: {exc}")
        check_config(files)


@settings(FUZZ, max_examples=examples(150))
@given(ingresses())
@example(
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "fuzz",
            "namespace": "default",
            "annotations": {
                A
                + "configuration-snippet": 'more_set_headers "X-A: x\\"; wgpwn_a \\"1";\nadd_header X-B "$wgfuzz_v";\n',
                A + "server-snippet": 'location = /.well-known/security.txt { return 200 "x\\"; wgpwn_b \\""; }\n',
                A + "cors-allow-origin": 'https://a.example"; wgpwn_c "',
                A + "enable-cors": "true",
                A + "permanent-redirect": "https://x.example/${wgfuzz_w}",
            },
        },
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "fuzz.example",
                    "http": {
                        "paths": [
                            {
                                "path": "/(?P<wgfuzz_g>x)",
                                "pathType": "ImplementationSpecific",
                                "backend": {"service": {"name": "app", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
)
def test_migrated_hostile_ingress_is_reported_valid_and_injects_nothing(ing: dict[str, Any]) -> None:
    migrate_and_serve(ing)


@pytest.mark.parametrize("key", KEYS)
def test_every_annotation_with_every_payload(key: str) -> None:
    """Each annotation alone with each payload (appended to a valid value): whatever hypothesis
    happens to draw above, every catalog entry meets every payload. One nginx -t per annotation
    (the configuration with all of them merged would be refused at the first conflict)."""
    values = [VALID[key], *CANARIES, *SHARP, *(VALID[key] + p for p in CANARIES[:6])]
    if key in SNIPPETS:
        values += [_line(line, p) for p in CANARIES[::2] for line in _SNIPPET_LINES[:10]]
    served: list[dict[str, str]] = []
    for value in values:
        ing = plain_ingress({key: value})
        raws = inputs(ing)
        result = migrate(raws)
        check_findings(ing, result.report.findings)
        text = result.yaml()
        rs = parse(load_text(text, "out.yaml") + raws)
        if not _MARK.search(text) and value not in SHARP:
            continue  # the payload was refused: nothing of it to look for in nginx's configuration
        for gw in translate(rs).gateways:
            files = render(gw, RenderOptions(listen_host="127.0.0.1"))
            if _MARK.search("".join(files.values())):
                check_markers(files)
                served.append(files)
    for files in served[:: max(1, len(served) // 2)][:2]:  # nginx -t on a couple holding payloads
        check_config(files)


def test_hostile_value_reaches_nginx_quoted(tmp_path: Path) -> None:
    """The fuzzer sees payloads arrive: a header from a configuration-snippet with a quote and a
    semicolon (escaped in the snippet, as nginx reads it) lands in nginx as one literal argument."""
    value = 'a"; wgpwn_x "b'
    ing = plain_ingress({"configuration-snippet": f"more_set_headers {_quote('X-Fuzz: ' + value)};\n"})
    result = migrate(inputs(ing))
    assert [f.status for f in result.report.findings if f.item.startswith("configuration-snippet")] == ["exact"]
    rs = parse(load_text(result.yaml(), "out.yaml") + inputs(ing))
    (gw,) = [g for g in translate(rs).gateways]
    files = render(gw, RenderOptions(listen_host="127.0.0.1"))
    conf = read_conf(files["nginx.conf"])
    args = [a for n, _ in walk(conf) for a in n.args if "wgpwn_x" in a]
    assert args and all(a == "X-Fuzz: " + value for a in args), args
    check_config(files)


# --- time: values are read in linear time -------------------------------------------------------

# ingress-nginx's own patterns (internal/ingress/annotations/parser), which Go matches in linear time.
INGRESS_NGINX_CORS = {
    "_CORS_ORIGIN_LIST": r"((((([a-z]+://)?(\*\.)?[A-Za-z0-9\-.]*(:\d+)?,?)|null)+)|\*)?",
    "_CORS_METHODS": r"([A-Za-z]+,?\s?)+",
    "_CORS_EXPOSE": r"(([A-Za-z0-9\-_]+|\*),?\s?)+",
}
_CORS_ALPHABET = [*"ab:/.*,0Z-n_ \t!", "null", "a://", ":80", "*.", ", "]


@settings(FUZZ, max_examples=examples(1000))
@given(st.sampled_from(sorted(INGRESS_NGINX_CORS)), st.lists(st.sampled_from(_CORS_ALPHABET), max_size=7).map("".join))
def test_cors_patterns_accept_what_ingress_nginx_accepts(name: str, value: str) -> None:
    assume(len(value) <= 12)  # the originals backtrack exponentially beyond
    from wardgate.migrate import ann_policy

    ours: re.Pattern[str] = getattr(ann_policy, name)
    assert bool(ours.fullmatch(value)) == bool(re.fullmatch(INGRESS_NGINX_CORS[name], value)), (name, value)


# Far past where exponential backtracking never ends (30 characters took minutes), short enough
# for a quadratic one to pass.
LONG = [
    "ab" * 150 + '"',
    "1" * 300 + "x",
    "a," * 150 + "!",
    "GET" * 100 + "!",
    "https://a.example" * 20 + ";",
    "a" * 300 + "$",
    "/" * 300 + "(",
    "x " * 150 + "{",
]


GROUPS = sorted({tuple(sorted(CONTEXT[k])) for k in KEYS if k in CONTEXT})


# The CORS validators run only on an Ingress with enable-cors; hostile values ingress-nginx's
# patterns take exponential time on under Python's backtracking engine (23 characters: 4 s).
CORS_HOSTILE = ["a" * 300 + "!", "ab" * 150 + '"', "a," * 150 + "!", "GET " * 80 + "!", "x-a" * 100 + "$"]


def _migrates_within(seconds: float, ing: dict[str, Any]) -> bool:
    """Whether migrating `ing` ends within `seconds`, tried in a forked child: a backtracking regex
    runs in C holding the GIL, so nothing in this process (signal or timer thread) could stop it."""
    child = multiprocessing.get_context("fork").Process(target=migrate, args=(inputs(ing),))
    child.start()
    child.join(seconds)
    if child.is_alive():
        child.kill()
        child.join()
        return False
    return child.exitcode == 0


def _converts_in_bounded_time(ing: dict[str, Any], what: str) -> None:
    """Converts within 10 s in a child (else it would hang the suite), then within 2 s here."""
    assert _migrates_within(10.0, ing), f"{what}: still converting after 10 s"
    started = time.perf_counter()
    result = migrate(inputs(ing))
    took = time.perf_counter() - started
    assert took < 2.0, f"{what}: {took:.1f} s"
    check_findings(ing, result.report.findings)


@pytest.mark.parametrize("key", ["cors-allow-origin", "cors-allow-methods", "cors-expose-headers"])
def test_hostile_cors_values_are_checked_in_bounded_time(key: str) -> None:
    for value in CORS_HOSTILE:
        ing = plain_ingress({"enable-cors": "true", key: value})
        _converts_in_bounded_time(ing, f"{key} ({len(value)} characters)")


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g[0])
def test_long_hostile_values_convert_in_bounded_time(group: tuple[str, ...]) -> None:
    """Backtracking regexes took exponential time on values of 20 to 30 characters (CORS lists, a
    snippet's `expires 111...1x`): each long hostile value goes into every annotation of one of
    the fixture's Ingresses at once (alone, and after each one's valid value), and the Ingress
    converts within two seconds (milliseconds when quiet)."""
    values = [*LONG, *LONG[:3]]
    for n, value in enumerate(values):
        anns = {k: (VALID[k] + value if n >= len(LONG) else value) for k in group}
        for k in set(group) & set(SNIPPETS):
            anns[k] = _line(("expires {v};", "more_set_headers {qh};", "{v}")[n % 3], value)
        _converts_in_bounded_time(plain_ingress(anns), f"{group[0]}... ({len(value)} characters)")
