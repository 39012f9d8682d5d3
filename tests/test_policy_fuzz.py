"""The promise against configuration injection, for policies: every user string a SecurityPolicy or
RateLimitPolicy carries to nginx (header names and values, paths, regexes, bodies, content types,
CIDRs, security.txt values, WAF exclusion names) is either refused with an error naming the
policy field, or rendered into exactly the directive tree of a harmless policy, with no new live
variable, no new regex capture, Lua code changed only inside string literals (whose form is
checked: only plain characters and decimal escapes), and `nginx -t` accepting it. `nginx -t` does
not run init_by_lua; the Lua is the harmless policy's outside its strings, and that one runs in
the tests that start nginx."""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import MUTATION_TESTING, examples
from test_quoting_fuzz import (
    ANY_TEXT,
    BASE,
    FUZZ,
    INJECTIONS,
    NAME_PAYLOADS,
    PATH_PAYLOADS,
    REGEX_PAYLOADS,
    Node,
    named_groups,
    nginx_test,
    read_conf,
    variables,
)
from wardgate.errors import InputError, UnsafeValueError
from wardgate.model import parse
from wardgate.quoting import lua_string
from wardgate.render.nginx import DEFAULT_PROXY_HEADERS, RenderOptions, render
from wardgate.sources.files import load_text
from wardgate.translate import translate

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: quickstart}]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
"""

# field -> (safe value, where an error about it must point)
FIELDS: dict[str, tuple[str, str]] = {
    "req_name": ("X-Safe", "spec.requestHeaders.set[0]"),
    "req_value": ("safe", "spec.requestHeaders.set[0]"),
    "resp_value": ("safe", "spec.responseHeaders.set[0]"),
    "resp_add": ("safe", "spec.responseHeaders.add[0]"),
    "resp_set_some": ("safe", "spec.responseHeaders.set[1]"),  # more_set_headers -s
    "resp_add_some": ("safe", "spec.responseHeaders.add[1]"),  # a map on $status
    "resp_remove": ("X-Gone", "spec.responseHeaders.remove[0]"),
    "allow_regex": ("/static/.*", "spec.urlAllowlist.paths[0]"),
    "allow_exact": ("/safe", "spec.urlAllowlist.paths[1]"),
    "direct_path": ("/robots.txt", "spec.directResponses[0].path"),
    "direct_body": ("User-agent: *", "spec.directResponses[0].body"),
    "content_type": ("text/plain", "spec.directResponses[0].contentType"),
    "contact": ("mailto:a@example.com", "spec.securityTxt.contact[0]"),
    "dup_name": ("X-Tenant", "spec.duplicateHeaders.headers[0].name"),
    "cidr": ("10.0.0.0/8", "spec.ipAccess.allow[0]"),
    "waf_arg": ("q", "spec.waf.exclusions[0].args[0]"),
    "waf_header": ("User-Agent", "spec.waf.exclusions[0].requestHeaders[0]"),
    "waf_path": ("/upload/.*", "spec.waf.exclusions[1].paths[0]"),
    "cors_origin": ("https://app.example.com", "spec.ingressNginxCORS.allowOrigins"),
    "cors_methods": ("GET, POST", "spec.ingressNginxCORS.allowMethods"),
    "cors_headers": ("X-A, Content-Type", "spec.ingressNginxCORS.allowHeaders"),
    "cors_expose": ("X-Total-Count", "spec.ingressNginxCORS.exposeHeaders"),
    "cc_exempt": ("10.2.0.0/16", "spec.concurrentRequests.exemptCIDRs[0]"),
    "rl_header": ("X-Api-Key", "spec.key.header"),
    "rl_exempt": ("10.1.0.0/16", "spec.exemptCIDRs[0]"),
    "realm": ("corp", "spec.basicAuth.realm"),
    "auth_path": ("/verify?x=1", "spec.externalAuth.path"),
    "auth_host": ("auth.example.com", "spec.externalAuth.hostname"),
    "auth_header": ("safe", "spec.externalAuth.requestHeaders[0]"),
    "auth_copy": ("X-User", "spec.externalAuth.responseHeaders[0]"),
    "signin": ("https://login.example.com/start", "spec.externalAuth.signin.url"),
    "error_header": ("safe", "spec.errorPages.requestHeaders[0]"),
}
SAFE = {k: v[0] for k, v in FIELDS.items()}
RATE_FIELDS = {"rl_header", "rl_exempt"}


def policies(v: dict[str, str]) -> list[dict[str, Any]]:
    target = [{"kind": "Gateway", "name": "quickstart"}]
    security = {
        "apiVersion": "policy.wardgate.io/v1alpha1", "kind": "SecurityPolicy",
        "metadata": {"name": "fuzz", "namespace": "default"},
        "spec": {
            "targetRefs": target,
            "requestHeaders": {"set": [{"name": v["req_name"], "value": v["req_value"]}]},
            "responseHeaders": {"set": [{"name": "X-Resp", "value": v["resp_value"]},
                                        {"name": "X-Resp-Ok", "value": v["resp_set_some"], "statuses": [200, 301]}],
                                "add": [{"name": "X-Resp-Add", "value": v["resp_add"]},
                                        {"name": "X-Resp-Gone", "value": v["resp_add_some"], "statuses": [404, 410]}],
                                "remove": [v["resp_remove"]]},
            "urlAllowlist": {"paths": [{"type": "RegularExpression", "value": v["allow_regex"]},
                                       {"type": "Exact", "value": v["allow_exact"]}]},
            "directResponses": [{"path": v["direct_path"], "body": v["direct_body"],
                                 "contentType": v["content_type"]}],
            "securityTxt": {"contact": [v["contact"]], "expires": "2099-01-01T00:00:00Z"},
            "duplicateHeaders": {"headers": [{"name": v["dup_name"], "action": "KeepLast"}]},
            "ipAccess": {"allow": [v["cidr"]]},
            "ingressNginxCORS": {"allowOrigins": [v["cors_origin"]], "allowMethods": v["cors_methods"],
                                 "allowHeaders": v["cors_headers"], "exposeHeaders": v["cors_expose"]},
            "concurrentRequests": {"limit": 5, "exemptCIDRs": [v["cc_exempt"]]},
            "waf": {"exclusions": [{"ruleIds": [942100], "args": [v["waf_arg"]],
                                    "requestHeaders": [v["waf_header"]]},
                                   {"paths": [{"type": "RegularExpression", "value": v["waf_path"]}]}]},
            "basicAuth": {"secretRef": {"name": "users"}, "realm": v["realm"]},
            "externalAuth": {"backendRef": {"name": "echo", "port": 80}, "path": v["auth_path"],
                             "hostname": v["auth_host"], "requestHeaders": [{"name": "X-A", "value": v["auth_header"]}],
                             "responseHeaders": [v["auth_copy"]], "signin": {"url": v["signin"]}},
            "errorPages": {"backendRef": {"name": "echo", "port": 80}, "statuses": [404],
                           "requestHeaders": [{"name": "X-E", "value": v["error_header"]}]},
        },
    }
    rate = {
        "apiVersion": "policy.wardgate.io/v1alpha1", "kind": "RateLimitPolicy",
        "metadata": {"name": "fuzz", "namespace": "default"},
        "spec": {"targetRefs": target, "requests": 10, "unit": "Second",
                 "key": {"type": "Header", "header": v["rl_header"]}, "exemptCIDRs": [v["rl_exempt"]]},
    }
    return [security, rate]


USERS = """\
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: default}
stringData: {auth: "u:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00="}
"""


def manifest(v: dict[str, str]) -> str:
    return BASE + "\n---\n" + ROUTE + "\n---\n" + USERS + "".join("\n---\n" + yaml.safe_dump(p)
                                                                  for p in policies(v))


def pipeline(v: dict[str, str], fuzzed: str) -> dict[str, str] | None:
    try:
        rs = parse(load_text(manifest(v), "fuzz.yaml"))
    except InputError as exc:
        for p in exc.problems:
            kind = "RateLimitPolicy" if fuzzed in RATE_FIELDS else "SecurityPolicy"
            assert (p.kind, p.name) == (kind, "fuzz"), str(p)
            assert p.field and p.field.startswith(FIELDS[fuzzed][1]), f"{FIELDS[fuzzed][1]} not named: {p}"
        return None
    tr = translate(rs)
    assert len(tr.gateways) == 1
    try:
        return render(tr.gateways[0], RenderOptions(listen_host="127.0.0.1"))
    except (UnsafeValueError, ValueError) as exc:
        assert str(exc)
        return None


@functools.cache
def harmless() -> tuple[Node, ...]:
    files = pipeline(SAFE, "")
    assert files is not None
    return read_conf(files["nginx.conf"])


_LUA_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_LITERAL_DIRECTIVES = {"server_name", "modsecurity_rules", "default_type", "location"}


def _shape(node: Node, parent: str) -> str:
    # Inside geo and map the "directive" is a key (a CIDR or a string; `~` makes it a regex).
    if parent in ("geo", "map") and node.name not in ("default", "hostnames"):
        return "~key" if node.name.startswith("~") else "key"
    return node.name


def _body_map(node: Node) -> bool:
    """Long direct-response bodies are split into `map $host $wg_bN` values joined at run time."""
    return node.name == "map" and len(node.args) == 2 and re.fullmatch(r"\$wg_b[0-9]+", node.args[1]) is not None


def compare(got: tuple[Node, ...], ref: tuple[Node, ...], where: str = "", parent: str = "") -> None:
    for node in got:
        if _body_map(node):
            assert node.block and all(set(variables(" ".join(c.args))) <= {"wg_dollar"} for c in node.block)
    got = tuple(n for n in got if not _body_map(n))
    ref = tuple(n for n in ref if not _body_map(n))
    assert [_shape(n, parent) for n in got] == [_shape(n, parent) for n in ref], (
        f"directives differ in {where or 'main'}")
    for a, b in zip(got, ref, strict=True):
        here = f"{where}/{a.name}"
        assert len(a.args) == len(b.args), f"{here}: {a.args} vs {b.args}"
        for x, y in zip(a.args, b.args, strict=True):
            if x == y:
                continue
            if a.name.endswith("_by_lua_block"):
                assert _LUA_STRING.sub('""', x) == _LUA_STRING.sub('""', y), f"{here}: Lua code changed"
            elif a.name in _LITERAL_DIRECTIVES or a.name == "if":
                new = named_groups(x) - named_groups(y)
                assert not new, f"{here}: a regex sets nginx variable(s) {sorted(new)}"
            else:
                new = variables(x) - variables(y)
                for name in list(new):
                    # externalAuth.responseHeaders name $upstream_http_<name> (letters, digits and
                    # '-' only) and the digest-named variable holding it.
                    if name == "wg_dollar" or re.fullmatch(r"wg_b[0-9]+|wg_ah[0-9a-f]+|upstream_http_[a-z0-9_]+",
                                                           name):
                        del new[name]
                assert not new, f"{here}: user text made variable(s) {sorted(new)} live in {x!r}"
        if a.block is not None and b.block is not None:
            compare(a.block, b.block, here, a.name)


def check(fuzzed: str, value: str) -> dict[str, str] | None:
    if fuzzed == "dup_name" and value.lower() in {"host", "content-length", "authorization", "content-type"}:
        value = value + "-x"  # a singleton listed again replaces its default entry: one entry fewer
    if fuzzed == "req_name" and value.lower() in {n.lower() for n, _ in DEFAULT_PROXY_HEADERS}:
        value = value + "-x"  # replaces a default proxy header: one directive fewer
    if fuzzed == "cors_expose" and not value:
        value = "X-E"  # no Expose-Headers header at all: one directive fewer
    if fuzzed == "cors_origin" and value == "*":
        value = "https://*.example.net"  # every origin needs no origin map: one table fewer
    v = {**SAFE, fuzzed: value}
    files = pipeline(v, fuzzed)
    if files is not None:
        compare(read_conf(files["nginx.conf"]), harmless())
    return files


_PAYLOADS = {
    "allow_regex": REGEX_PAYLOADS, "waf_path": REGEX_PAYLOADS, "allow_exact": PATH_PAYLOADS,
    "direct_path": PATH_PAYLOADS, "req_name": NAME_PAYLOADS, "resp_remove": NAME_PAYLOADS,
    "dup_name": NAME_PAYLOADS, "waf_header": NAME_PAYLOADS, "rl_header": NAME_PAYLOADS,
    "cidr": ["10.0.0.0/8", "::/0", "10.0.0.1/8", "1.2.3.4", "10.0.0.0/8; deny all", "0.0.0.0/0 1"],
    "rl_exempt": ["10.0.0.0/8", "fe80::/10", "a b"],
    "cc_exempt": ["10.0.0.0/8", "fe80::/10", "a b"],
    "cors_origin": ["https://a.example.com", "null", "tauri://x:3000", "https://*.x.org", "https://a.com;b",
                    "https://$host", "https://a\"b", "*"],
    "cors_methods": ["GET", "GET,POST", "get post", "GET;", "GET$x"],
    "cors_headers": ["X-A", "a, b", "", "$x", "a\\b"],
    "cors_expose": ["*", "X-A,*", "a;b", "$x"],
    "waf_arg": ["q", "a.b", "a[0]", "x-y_z", "a|b", "a;b", 'a"b', "a,b", "a:b", "!a"],
    "contact": ["mailto:a\"b@example.com", "https://x/$host", "https://x/${wg_dollar}", "tel:+1;}", "https://a/{\\}"],
    "content_type": ["text/$host", "a/b;c=d", "text/plain;charset=$x", 'text/"x'],
    "direct_body": ["a\nb\r\n", "x" * 5000, "$" * 400, '"' * 2000, "\\" * 3000],
    "realm": ["off", "a b", "$host", "a\\b", 'a"b', "x;y}"],
    "auth_path": ["/a?b=$host", "/a;b", "/a b", "/a?x=1&y=${wg_dollar}", "a/b", "/x#y"],
    "signin": ["/start?rd=$host", "https://a.example.com/x?y=1", "javascript:alert(1)", "https://a/b c",
               "//evil.example.com/x"],
    "auth_copy": ["X_User", "X-User;", "X-$host", "X-Auth-Request-Email"],
    "auth_host": ["auth.idp.svc.cluster.local", "*.example.com", "a b", "a;b", "$host", "A.example.com"],
}


@pytest.mark.parametrize("fuzzed", sorted(FIELDS))
def test_every_payload_in_every_policy_field(fuzzed: str) -> None:
    accepted: list[dict[str, str]] = []
    for payload in sorted(set(INJECTIONS) | set(_PAYLOADS.get(fuzzed, []))):
        files = check(fuzzed, payload)
        if files is not None:
            accepted.append(files)
    assert accepted, "no payload was accepted: the field is not exercised"
    # nginx itself (and init_by_lua) on a few accepted configurations per field.
    for files in [] if MUTATION_TESTING else accepted[:: max(1, len(accepted) // 3)][:3]:
        res = nginx_test(files)
        assert res.returncode == 0, f"nginx -t rejected what wardgate accepted:\n{res.stderr}"


@settings(FUZZ, max_examples=examples(150))
@given(st.sampled_from(sorted(FIELDS)), ANY_TEXT)
def test_fuzzed_policy_field_is_refused_or_injects_nothing(fuzzed: str, value: str) -> None:
    check(fuzzed, value)


@settings(FUZZ, max_examples=examples(300))
@given(st.text(max_size=40))
def test_lua_strings_hold_exactly_the_text_and_nothing_else(value: str) -> None:
    lit = lua_string(value)
    assert re.fullmatch(r'"(?:[A-Za-z0-9_./:-]|\\[0-9]{3})*"', lit)
    decoded = re.sub(rb"\\([0-9]{3})", lambda m: bytes([int(m.group(1))]), lit[1:-1].encode())
    assert decoded == value.encode()
