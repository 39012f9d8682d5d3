"""Snippet annotations to wardgate: one test per directive form, the parse errors, the ConfigMap
gate, a fuzzer, the corpus cases with snippets, and converted snippets served by a real gateway."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import GW, Backend, Gateway, examples, request, shared_corpus
from test_tls import gateway_yaml, https, tls_secret
from wardgate.ir import ADD_HEADER_STATUSES
from wardgate.migrate.ann_snippets import CATALOG
from wardgate.migrate.contrib import Contribution, ExtraRule, Source
from wardgate.migrate.report import Finding
from wardgate.migrate.snippets import NOTHING, SUCCESS_STATUSES, convert_snippet, ip_access, parse_snippet
from wardgate.model.policies import SecurityPolicySpec

Backends = Callable[..., Backend]
ALLOWED = {"allow-snippet-annotations": "true", "annotations-risk-level": "Critical"}


def source(annotations: dict[str, str] | None = None, config: dict[str, str] | None = None) -> Source:
    return Source("ingresses.yaml", "Ingress shop/web", "shop", "nginx", annotations or {},
                  {**ALLOWED, **(config or {})})


def conv(text: str, level: str = "location", **kw: Any) -> Contribution:
    annotation = "configuration-snippet" if level == "location" else "server-snippet"
    out = convert_snippet(textwrap.dedent(text), annotation=annotation, source=source(**kw), level=level)  # type: ignore[arg-type]
    # The output always validates as a SecurityPolicy, for the Ingress's rules and each rule of its own.
    for spec in [out.security, *(r.security for r in out.rules)]:
        SecurityPolicySpec.model_validate({"targetRefs": [{"kind": "HTTPRoute", "name": "r"}], **spec})
    return out


def line(out: Contribution, n: int) -> Finding:
    found = [f for f in out.findings if f.item.endswith(f" line {n}")]
    assert len(found) == 1, out.findings
    return found[0]


def statuses(out: Contribution) -> list[str]:
    return [f.status for f in out.findings]


# --- response headers ------------------------------------------------------------------------


def test_more_set_headers_sets_on_every_status() -> None:
    out = conv('more_set_headers "X-Frame-Options: DENY" "X-Robots-Tag: noindex, nofollow";')
    assert out.security == {"responseHeaders": {"set": [{"name": "X-Frame-Options", "value": "DENY"},
                                                        {"name": "X-Robots-Tag", "value": "noindex, nofollow"}]}}
    assert statuses(out) == ["exact"]


def test_more_set_headers_status_and_type_options_are_a_difference() -> None:
    out = conv("more_set_headers -s '404 500' -t text/html 'X-Error: yes';")
    assert out.security["responseHeaders"]["set"] == [{"name": "X-Error", "value": "yes"}]
    f = line(out, 1)
    assert f.status == "converted-with-difference"
    assert "only on status 404 500" in f.detail and "only for Content-Type text/html" in f.detail


def test_more_set_headers_without_value_clears_and_last_operation_wins() -> None:
    out = conv('more_set_headers "X-A: 1";\nmore_set_headers "X-A";\nmore_set_headers "X-B:";\n'
               'more_set_headers "Server: shop";')
    assert out.security["responseHeaders"] == {"set": [{"name": "Server", "value": "shop"}], "remove": ["X-A", "X-B"]}


def test_more_set_headers_variable_becomes_value_from() -> None:
    out = conv('more_set_headers "X-Client: $remote_addr" "X-Id: ${request_id}" "X-Mixed: a-$host";')
    assert out.security["responseHeaders"]["set"] == [{"name": "X-Client", "valueFrom": "ClientIP"},
                                                      {"name": "X-Id", "valueFrom": "RequestID"}]
    f = line(out, 1)
    assert f.status == "not-converted" and "$host" in f.detail and "X-Client" in f.detail


def test_more_set_headers_append_option_adds() -> None:
    out = conv('more_set_headers -a "Link: </a.css>; rel=preload";')
    assert out.security["responseHeaders"] == {"add": [{"name": "Link", "value": "</a.css>; rel=preload"}]}


def test_more_clear_headers_removes_by_name_not_by_wildcard() -> None:
    out = conv("more_clear_headers X-Powered-By Server;\nmore_clear_headers 'X-Hidden-*';")
    assert out.security["responseHeaders"] == {"remove": ["X-Powered-By", "Server"]}
    assert line(out, 1).status == "exact"
    assert line(out, 2).status == "not-converted" and "wildcard" in line(out, 2).detail


def test_add_header_always_is_exact() -> None:
    out = conv('add_header X-Always "yes" always;')
    assert out.security == {"responseHeaders": {"add": [{"name": "X-Always", "value": "yes"}]}}
    assert statuses(out) == ["exact"]


SUCCESS = [200, 201, 204, 206, 301, 302, 303, 304, 307, 308]  # nginx's add_header without `always`


def test_add_header_without_always_only_on_the_statuses_nginx_added_it_to() -> None:
    out = conv('add_header X-Only-Success "yes";')
    assert out.security == {"responseHeaders": {"add": [{"name": "X-Only-Success", "value": "yes",
                                                         "statuses": SUCCESS}]}}
    f = line(out, 1)
    assert f.status == "exact" and "200, 201, 204, 206, 301, 302, 303, 304, 307, 308" in f.detail
    assert list(SUCCESS_STATUSES) == list(ADD_HEADER_STATUSES) == SUCCESS  # the converter's and the renderer's


def test_add_header_strict_transport_security_goes_to_the_listener() -> None:
    same = conv('add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;')
    assert same.security == {} and line(same, 1).status == "converted-with-difference"
    other = conv('add_header Strict-Transport-Security "max-age=63072000; includeSubDomains; preload" always;')
    assert other.security == {}
    f = line(other, 1)
    assert f.status == "not-converted"
    assert "hsts: {maxAge: 63072000, includeSubDomains: true, preload: true}" in f.detail


def test_expires_and_cache_control() -> None:
    out = conv('expires 1h;\nadd_header Cache-Control "public" always;')
    assert out.security["responseHeaders"] == {
        "set": [{"name": "Cache-Control", "value": "max-age=3600", "statuses": SUCCESS}],
        "add": [{"name": "Cache-Control", "value": "public"}]}
    assert line(out, 1).status == "converted-with-difference" and "no Expires" in line(out, 1).detail
    epoch = conv("expires epoch;")
    assert epoch.security["responseHeaders"]["set"] == [
        {"name": "Expires", "value": "Thu, 01 Jan 1970 00:00:01 GMT", "statuses": SUCCESS},
        {"name": "Cache-Control", "value": "no-cache", "statuses": SUCCESS}]
    assert statuses(epoch) == ["exact"]
    assert conv("expires off;").security == {} and statuses(conv("expires off;")) == ["exact"]
    assert conv("expires -1;").security["responseHeaders"]["set"] == [
        {"name": "Cache-Control", "value": "no-cache", "statuses": SUCCESS}]


# --- request headers ---------------------------------------------------------------------------


def test_proxy_set_header_fixed_value() -> None:
    out = conv('proxy_set_header X-Env "production";')
    assert out.security == {"requestHeaders": {"set": [{"name": "X-Env", "value": "production"}]}}
    assert statuses(out) == ["exact"]


@pytest.mark.parametrize(("value", "kind", "status"), [
    ("$remote_addr", "ClientIP", "exact"), ("$request_id", "RequestID", "exact"), ("$host", "Host", "exact"),
    ("$scheme", "Scheme", "exact"), ("$http_host", "Host", "converted-with-difference"),
    ("$req_id", "RequestID", "converted-with-difference")])
def test_proxy_set_header_safe_variables_become_value_from(value: str, kind: str, status: str) -> None:
    out = conv(f"proxy_set_header X-Value {value};")
    assert out.security == {"requestHeaders": {"set": [{"name": "X-Value", "valueFrom": kind}]}}
    assert line(out, 1).status == status


@pytest.mark.parametrize("value", ["$http_x_user", "$proxy_add_x_forwarded_for", "$cookie_id", "u-$remote_addr"])
def test_proxy_set_header_other_variables_are_not_converted(value: str) -> None:
    out = conv(f'proxy_set_header X-Value "{value}";')
    assert out.security == {} and line(out, 1).status == "not-converted"


def test_proxy_set_header_empty_value_removes_and_template_headers_were_sent_twice() -> None:
    out = conv('proxy_set_header X-Debug "";\nproxy_set_header X-Real-IP $remote_addr;')
    assert out.security == {"requestHeaders": {"set": [{"name": "X-Real-IP", "valueFrom": "ClientIP"}],
                                               "remove": ["X-Debug"]}}
    assert line(out, 1).status == "exact"
    assert line(out, 2).status == "converted-with-difference" and "two X-Real-IP lines" in line(out, 2).detail
    server = conv("proxy_set_header X-Env prod;", level="server")
    assert server.security == {} and "no effect" in line(server, 1).detail


def test_more_set_input_headers_and_proxy_set_header_wins() -> None:
    out = conv('more_set_input_headers "X-Input: a" "X-Both: input";\nproxy_set_header X-Both proxy;\n'
               'more_set_input_headers -r "X-Only-If: b";\nmore_set_input_headers "X-Forwarded-Proto: https";')
    assert out.security["requestHeaders"]["set"] == [
        {"name": "X-Input", "value": "a"}, {"name": "X-Both", "value": "proxy"}, {"name": "X-Only-If", "value": "b"}]
    assert line(out, 3).status == "converted-with-difference" and "-r" in line(out, 3).detail
    assert line(out, 4).status == "exact" and "no effect" in line(out, 4).detail


def test_more_clear_input_headers_removes() -> None:
    out = conv("more_clear_input_headers X-Debug Cookie2;\nmore_clear_input_headers 'X-Internal-*';")
    assert out.security == {"requestHeaders": {"remove": ["X-Debug", "Cookie2"]}}
    assert line(out, 2).status == "not-converted"


def test_proxy_hide_header_removes_the_backends_copy() -> None:
    out = conv("proxy_hide_header X-Powered-By;\nproxy_hide_header X-Set;\nmore_set_headers 'X-Set: ours';")
    assert out.security["responseHeaders"] == {"set": [{"name": "X-Set", "value": "ours"}], "remove": ["X-Powered-By"]}
    assert line(out, 1).status == "exact"
    with_config = conv("proxy_hide_header X-Powered-By;", config={"hide-headers": "X-Runtime"})
    assert line(with_config, 1).status == "converted-with-difference"


# --- methods ----------------------------------------------------------------------------------


NO_ALLOW = {"methodNotAllowed": {"allowHeader": False}}  # nginx's 405 (or 403) had no Allow header
OTHERS = "methods outside Gateway API's nine"


@pytest.mark.parametrize(("condition", "allowed", "difference"), [
    ("$request_method !~ ^(GET|POST)$", ["GET", "POST"], None),
    ('$request_method !~* "^(GET|HEAD|POST)$"', ["GET", "HEAD", "POST"], None),
    ("$request_method != GET", ["GET"], None),
    ("$request_method = DELETE", ["GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "TRACE", "PATCH"], OTHERS),
    ("$request_method ~ ^(PUT|DELETE|PATCH)$", ["GET", "HEAD", "POST", "CONNECT", "OPTIONS", "TRACE"], OTHERS),
    ("$request_method ~* ^(TRACE|TRACK)$", ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH"],
     OTHERS),
    ("$request_method !~ ^(GET|PROPFIND)$", ["GET"], OTHERS),
])
def test_method_limit_if_becomes_allowed_methods(condition: str, allowed: list[str], difference: str | None) -> None:
    out = conv(f"if ({condition}) {{\n  return 405;\n}}\n")
    assert out.security == {"allowedMethods": allowed, **NO_ALLOW}
    f = line(out, 1)
    assert "methodNotAllowed.allowHeader false" in f.detail
    if difference is None:
        assert f.status == "exact"
    else:
        assert f.status == "converted-with-difference" and difference in f.detail
    assert line(out, 2).status == "exact"


def test_method_limit_differences_are_named() -> None:
    out = conv("if ($request_method !~ ^(GET|POST)$) { return 403; }",
               annotations={"whitelist-source-range": "10.0.0.0/8", "enable-cors": "true"})
    detail = line(out, 1).detail
    assert "nginx answered 403" in detail and "whitelist-source-range is checked first" in detail
    assert "CORS preflights" in detail


def test_limit_except_deny_all() -> None:
    out = conv("limit_except GET POST {\n  deny all;\n}\n")
    assert out.security == {"allowedMethods": ["GET", "HEAD", "POST"], **NO_ALLOW}
    assert line(out, 1).status == "converted-with-difference" and "403" in line(out, 1).detail
    partial = conv("limit_except GET {\n  allow 10.0.0.0/8;\n  deny all;\n}\n")
    assert partial.security == {} and statuses(partial) == ["not-converted"] * 3


# --- addresses --------------------------------------------------------------------------------


def test_allow_deny_becomes_ip_access() -> None:
    out = conv("allow 10.0.0.0/8;\nallow 192.168.1.7;\ndeny all;")
    assert out.security == {"ipAccess": {"allow": ["10.0.0.0/8", "192.168.1.7/32"], "deny": ["0.0.0.0/0", "::/0"]}}
    assert statuses(out) == ["exact"] * 3


def test_allow_deny_shadowed_rule_never_decides() -> None:
    out = conv("deny 10.1.0.0/16;\nallow 10.0.0.0/8;\ndeny 10.2.0.0/16;\ndeny all;", level="server")
    assert out.security["ipAccess"] == {"allow": ["10.0.0.0/8"], "deny": ["10.1.0.0/16", "0.0.0.0/0", "::/0"]}
    assert "never decides (line 2" in line(out, 3).detail


def test_allow_deny_behind_an_allowlist_annotation_never_decides() -> None:
    out = conv("allow 1.2.3.4;", annotations={"whitelist-source-range": "10.0.0.0/8"})
    assert out.security == {} and "never decides" in line(out, 1).detail


Rule = tuple[str, bool]


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "192.168.0.0/16",
                                           "0.0.0.0/0", "::/0", "2001:db8::/32"]), st.booleans()), max_size=6),
       st.lists(st.sampled_from(["10.1.2.3", "10.1.2.9", "10.1.9.9", "10.9.9.9", "192.168.3.4", "8.8.8.8",
                                 "2001:db8::1", "2001:db9::1"]), min_size=1, max_size=8))
def test_ip_access_decides_like_nginx_first_match(rules: list[Rule], clients: list[str]) -> None:
    nets = [([ipaddress.ip_network(n)], allow) for n, allow in rules]
    access = ip_access(nets)
    allow = [ipaddress.ip_network(n) for n in access.get("allow", [])]
    deny = [ipaddress.ip_network(n) for n in access.get("deny", [])]
    assert not set(allow) & set(deny)
    for client in map(ipaddress.ip_address, clients):
        nginx = next((a for [net], a in nets if client in net), True)
        # wardgate: the longest matching prefix decides; with an allow list, no match is denied.
        matches = [(n.prefixlen, True) for n in allow if client in n]
        matches += [(n.prefixlen, False) for n in deny if client in n]
        wardgate = max(matches)[1] if matches else not allow
        assert wardgate == nginx, (rules, client, access)


# --- answers: return, rewrite, locations -------------------------------------------------------


@pytest.mark.parametrize(("target", "redirect", "status"), [
    ("https://www.example.com$request_uri", {"scheme": "https", "hostname": "www.example.com"}, "exact"),
    ("https://$host$request_uri", {"scheme": "https"}, "exact"),
    ("$scheme://shop.example.com$request_uri", {"hostname": "shop.example.com"}, "exact"),
    ("https://shop.example.com/new", {"scheme": "https", "hostname": "shop.example.com",
                                      "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}},
     "converted-with-difference"),
    ("/maintenance", {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/maintenance"}},
     "converted-with-difference"),
])
def test_return_redirect_becomes_request_redirect(target: str, redirect: dict[str, Any], status: str) -> None:
    out = conv(f"return 301 {target};\nmore_set_headers 'X-A: 1';")
    assert out.filters == [{"type": "RequestRedirect", "requestRedirect": {**redirect, "statusCode": 301}}]
    assert line(out, 1).status == status
    assert out.security == {"responseHeaders": {"set": [{"name": "X-A", "value": "1"}]}}  # headers still apply


def test_return_redirect_with_variables_is_not_converted() -> None:
    out = conv("return 302 https://example.com/$arg_next;")
    assert out.filters == [] and line(out, 1).status == "not-converted"


def test_return_status_refuses_every_request_and_ends_the_rewrite_phase() -> None:
    out = conv("allow 10.0.0.0/8;\nreturn 403;\nif ($request_method != GET) { return 405; }")
    assert out.security == {"urlAllowlist": {"paths": [{"type": "RegularExpression", "value": NOTHING}],
                                             "status": 403}}
    assert "never decides" in line(out, 1).detail and "never runs" in line(out, 3).detail
    assert statuses(conv("return 200 'ok';")) == ["not-converted"]
    assert statuses(conv("return 444;")) == ["not-converted"]


def test_rewrite_exact_path_redirect_is_a_rule_of_its_own() -> None:
    out = conv("rewrite ^/old$ /new permanent;")
    assert out.rules == [ExtraRule(matches=[{"path": {"type": "Exact", "value": "/old"}}], filters=[{
        "type": "RequestRedirect", "requestRedirect": {
            "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}, "statusCode": 301}}],
        backend="none", within_ingress_paths=True)]
    assert statuses(out) == ["exact"]


def test_rewrite_prefix_redirect_and_difference_for_the_bare_prefix() -> None:
    out = conv("rewrite ^/docs/(.*)$ https://help.example.com/$1 redirect;")
    [rule] = out.rules
    assert rule.matches == [{"path": {"type": "PathPrefix", "value": "/docs"}}]
    assert rule.filters[0]["requestRedirect"] == {
        "scheme": "https", "hostname": "help.example.com",
        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}, "statusCode": 302}
    assert line(out, 1).status == "converted-with-difference" and "/docs itself" in line(out, 1).detail


def test_rewrite_break_and_last_become_url_rewrite_on_the_ingress_backend() -> None:
    out = conv("rewrite ^/api(/.*)?$ /v2$1 break;\nrewrite ^/legacy$ /current last;")
    assert [(r.matches[0]["path"], r.filters[0]["urlRewrite"]["path"], r.backend) for r in out.rules] == [
        ({"type": "PathPrefix", "value": "/api"}, {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"},
         "ingress"),
        ({"type": "Exact", "value": "/legacy"}, {"type": "ReplaceFullPath", "replaceFullPath": "/current"},
         "ingress")]
    assert line(out, 1).status == "exact"
    assert line(out, 2).status == "converted-with-difference" and "`last`" in line(out, 2).detail
    assert statuses(conv("rewrite ^/(\\w+)/(\\d+)$ /item?id=$2 break;")) == ["not-converted"]


def test_rewrite_of_every_path_is_a_redirect_of_the_place() -> None:
    out = conv("rewrite ^/(.*)$ https://new.example.com/$1 permanent;", level="server")
    assert out.filters == [{"type": "RequestRedirect", "requestRedirect": {
        "scheme": "https", "hostname": "new.example.com", "statusCode": 301}}]
    assert statuses(out) == ["exact"]
    twice = conv("rewrite ^ https://new.example.com$request_uri permanent;", level="server")
    assert line(twice, 1).status == "converted-with-difference" and "?a=1&a=1" in line(twice, 1).detail


def test_location_exact_return_becomes_a_direct_response_rule() -> None:
    out = conv("""\
        more_set_headers "X-Content-Type-Options: nosniff";
        location = /.well-known/security.txt {
          default_type text/plain;
          add_header X-Served-By "snippet";
          return 200 "Contact: mailto:security@example.com\\nExpires: 2030-01-01T00:00:00.000Z\\n";
        }
        """, level="server", annotations={"whitelist-source-range": "10.0.0.0/8"})
    assert out.security == {"responseHeaders": {"set": [{"name": "X-Content-Type-Options", "value": "nosniff"}]}}
    [rule] = out.rules
    assert rule.backend == "none" and not rule.within_ingress_paths
    assert rule.matches == [{"path": {"type": "Exact", "value": "/.well-known/security.txt"}}]
    assert rule.security == {
        "responseHeaders": {"set": [{"name": "X-Content-Type-Options", "value": "nosniff"}],
                            "add": [{"name": "X-Served-By", "value": "snippet"}]},
        "directResponses": [{"path": "/.well-known/security.txt", "status": 200, "contentType": "text/plain",
                             "body": "Contact: mailto:security@example.com\nExpires: 2030-01-01T00:00:00.000Z\n"}],
        "hsts": {"enabled": False}}  # ingress-nginx's HSTS was only in its own locations
    assert line(out, 2).status == "exact" and "hsts enabled false" in line(out, 2).detail


def test_location_without_default_type_uses_the_configmaps() -> None:
    out = conv('location = /robots.txt { return 200 "User-agent: *\\n"; }', level="server",
               config={"default-type": "text/plain; charset=utf-8"})
    assert out.rules[0].security["directResponses"][0]["contentType"] == "text/plain; charset=utf-8"
    assert conv('location = /x { return 200 "x"; }', level="server").rules[0].security[
        "directResponses"][0]["contentType"] == "text/html"


def test_location_status_only_redirect_and_deny() -> None:
    out = conv("""\
        location = /favicon.ico { log_not_found off; return 204; }
        location = /old { return 301 https://shop.example.com$request_uri; }
        location = /private { return 404; }
        location /admin { deny all; }
        location ~ \\.php$ { return 404; }
        """, level="server")
    rules = {r.matches[0]["path"]["value"]: r for r in out.rules}
    assert rules["/favicon.ico"].security["directResponses"][0]["status"] == 204
    assert rules["/old"].filters == [{"type": "RequestRedirect", "requestRedirect": {
        "scheme": "https", "hostname": "shop.example.com", "statusCode": 301}}]
    assert rules["/private"].security["urlAllowlist"]["status"] == 404
    assert rules["/admin"].matches[0]["path"]["type"] == "PathPrefix"
    assert rules["/admin"].security["ipAccess"] == {"deny": ["0.0.0.0/0", "::/0"]}
    assert line(out, 5).status == "not-converted" and len(out.rules) == 4


def test_location_with_an_unconvertible_line_is_not_converted() -> None:
    out = conv("location = /health {\n  proxy_pass http://health;\n}\n", level="server")
    assert out.rules == [] and statuses(out) == ["not-converted", "not-converted"]
    nested = conv('location = /x { return 200 "x"; }')
    assert nested.rules == [] and "inside a location" in line(nested, 1).detail


def test_server_level_method_limit_and_ip_list_reach_the_snippet_locations() -> None:
    out = conv("""\
        if ($request_method !~ ^(GET|HEAD)$) { return 405; }
        location = /a { allow 10.0.0.0/8; deny all; return 200 "a"; }
        location = /b { return 200 "b"; }
        deny 192.168.0.0/16;
        """, level="server")
    a, b = out.rules
    assert a.security["allowedMethods"] == b.security["allowedMethods"] == ["GET", "HEAD"]
    assert a.security["ipAccess"] == {"allow": ["10.0.0.0/8"], "deny": ["0.0.0.0/0", "::/0"]}
    assert b.security["ipAccess"] == {"deny": ["192.168.0.0/16"]}


def test_location_add_header_without_always_follows_the_answer_status() -> None:
    out = conv('location = /ok { add_header X-A a; return 200 "ok"; }\n'
               'location = /no { add_header X-A a; return 403; }', level="server")
    ok, no = out.rules
    assert ok.security["responseHeaders"] == {"add": [{"name": "X-A", "value": "a"}]}
    assert "responseHeaders" not in no.security


# --- directives ingress-nginx's template owns, and the rest ---------------------------------


@pytest.mark.parametrize("directive", ["client_max_body_size 10m", "proxy_read_timeout 300", "proxy_connect_timeout 5",
                                       "proxy_send_timeout 300", "proxy_buffering off", "proxy_buffer_size 16k",
                                       "proxy_http_version 1.1", "proxy_request_buffering off"])
def test_directives_the_template_writes_per_location(directive: str) -> None:
    out = conv(f"{directive};")
    assert out.security == {} and line(out, 1).status == "not-converted"
    assert "directive is duplicate" in line(out, 1).detail
    server = conv(f"{directive};", level="server")
    assert server.security == {} and line(server, 1).status == "exact" and "no effect" in line(server, 1).detail


@pytest.mark.parametrize(("text", "status"), [
    ("server_tokens off;", "exact"), ("default_type application/json;", "exact"), ("gzip on;", "not-converted"),
    ("set $x 1;", "not-converted"), ("access_log off;", "not-converted"), ("proxy_pass http://other;", "not-converted"),
    ("error_page 404 /404.html;", "not-converted"), ("some_module_directive on;", "not-converted")])
def test_other_directives_are_reported(text: str, status: str) -> None:
    out = conv(text)
    assert out.security == {} and statuses(out) == [status]


def test_unconverted_if_reports_every_line_inside() -> None:
    out = conv('if ($http_user_agent ~* "(bot|crawler)") {\n  more_set_headers "X-Bot: 1";\n  return 403;\n}\n')
    assert out.security == {} and statuses(out) == ["not-converted"] * 3
    assert "line 1" in line(out, 2).detail


def test_values_go_through_the_models_validation() -> None:
    out = conv('more_set_headers "X-A: a\\r\\nInjected: 1";\nadd_header "Bad Name" v always;\n'
               'more_clear_headers "-s";\nallow 300.1.1.1;\nrewrite ^/a$ "/b c" permanent;')
    assert out.security == {} and out.rules == []
    assert statuses(out) == ["not-converted"] * 5


def test_one_finding_per_line_several_directives_on_one() -> None:
    out = conv('more_set_headers "X-A: 1"; gzip on;\n\n# a comment\nadd_header X-B 2 always;')
    assert [f.item for f in out.findings] == ["configuration-snippet line 1", "configuration-snippet line 4"]
    assert line(out, 1).status == "not-converted" and "X-A" in line(out, 1).detail and "gzip" in line(out, 1).detail


# --- snippets nginx refuses -----------------------------------------------------------------


@pytest.mark.parametrize(("text", "level", "error_line", "message"), [
    ('more_set_headers "X-A: 1";\nif ($request_method != GET) {\n  return 405;\n', "location", 3, "expecting"),
    ('more_set_headers "X-A: 1";\n}\nadd_header X-B 1;', "location", 3, "unexpected"),
    ("add_header X-A", "location", 1, "not terminated"),
    ("more_set_headers 'X-A: 1';\nserver_name other.example.com;", "location", 2, "not allowed here"),
    ("limit_except GET { deny all; }", "server", 1, "not allowed here"),
    ('add_header X-A "b" always extra;', "location", 1, "invalid number of arguments"),
    ('return 200 "unterminated;', "server", 1, "unexpected end of file"),
])
def test_a_snippet_nginx_refuses_is_one_finding(text: str, level: str, error_line: int, message: str) -> None:
    out = conv(text, level=level)
    assert (out.security, out.filters, out.rules) == ({}, [], [])
    [f] = out.findings
    assert f.status == "not-converted" and f.item.endswith(f" line {error_line}") and message in f.detail
    assert "wardgate-snippet" not in f.detail  # no temporary file names in the report


def test_parser_reads_lua_blocks_and_never_follows_include(tmp_path: Path) -> None:
    secret = tmp_path / "secret.conf"
    secret.write_text("more_set_headers 'X-Leak: 1';")
    stmts = parse_snippet(f'access_by_lua_block {{ local s = "}}" }}\ninclude {secret};\nadd_header X 1;', "location")
    assert [s.name for s in stmts] == ["access_by_lua_block", "include", "add_header"]
    out = conv(f"include {secret};")
    assert out.security == {} and statuses(out) == ["not-converted"]


# --- the ConfigMap decides whether a snippet was in effect ---------------------------------------


def gate(key: str, config: dict[str, str], annotations: dict[str, str] | None = None) -> Contribution:
    value = 'more_set_headers "X-Test: 1";'
    src = Source("f.yaml", "Ingress default/with-snippet", "default", "nginx", {key: value, **(annotations or {})},
                 config)
    entry = CATALOG[key]
    assert entry.handler is not None
    return entry.handler(key, value, src)


@pytest.mark.parametrize("key", ["configuration-snippet", "server-snippet", "stream-snippet"])
def test_default_risk_level_ignores_the_whole_ingress(key: str) -> None:
    out = gate(key, {})  # the defaults: allow-snippet-annotations false, annotations-risk-level High
    assert out.ignore_ingress and "annotations-risk-level is High" in out.ignore_ingress
    assert (out.security, out.filters) == ({}, [])
    [f] = out.findings
    assert (f.item, f.status) == (key, "exact") and "ignores this whole Ingress" in f.detail


def test_snippets_disallowed_drops_only_the_snippet() -> None:
    out = gate("configuration-snippet", {"annotations-risk-level": "Critical", "allow-snippet-annotations": "false"})
    assert not out.ignore_ingress and out.security == {}
    [f] = out.findings
    assert f.status == "exact" and "drops configuration-snippet" in f.detail


def test_blocklisted_word_skips_the_ingress() -> None:
    out = gate("server-snippet", {**ALLOWED, "annotation-value-word-blocklist": "load_module,more_set"})
    assert "annotation-value-word-blocklist" in out.ignore_ingress


def test_allowed_snippets_convert() -> None:
    out = gate("configuration-snippet", {**ALLOWED, "allow-snippet-annotations": "True"})
    assert out.security == {"responseHeaders": {"set": [{"name": "X-Test", "value": "1"}]}}
    stream = gate("stream-snippet", ALLOWED)
    assert stream.findings[0].status == "not-converted"


# --- hostile input ---------------------------------------------------------------------------

_TOKENS = ["more_set_headers", "add_header", "proxy_set_header", "if", "location", "=", "return", "rewrite", "allow",
           "deny", "all", "limit_except", "GET", "405", "301", "200", "^/a$", "/b", "$request_method", "!~",
           "^(GET|POST)$", "'X-A: b'", '"q\\"x"', "{", "}", ";", ";", "\n", "\n", "(", ")", "#c", "\\", "$", "${x}",
           "include", "/etc/passwd", "*_by_lua_block", "access_by_lua_block", "https://e.example$request_uri",
           "10.0.0.0/8", "expires", "1h", "more_clear_input_headers", "X-*", "\x00", "é", "\r"]


@settings(max_examples=examples(400), deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(st.sampled_from(_TOKENS), max_size=40).map(" ".join)),
       st.sampled_from(["location", "server"]))
def test_hostile_snippets_never_raise_and_every_line_is_reported(text: str, level: str) -> None:
    out = conv(text, level=level)
    directive_lines: set[int] = set()
    try:
        stack = list(parse_snippet(text, level))  # type: ignore[arg-type]
    except Exception:
        assert len(out.findings) == 1 and out.findings[0].status == "not-converted"
        return
    while stack:
        s = stack.pop()
        directive_lines.add(s.line)
        stack += list(s.block or ())
    reported = [int(f.item.rsplit(" ", 1)[1]) for f in out.findings if " line " in f.item]
    assert sorted(reported) == sorted(directive_lines), (text, out.findings)  # exactly one per line
    assert all(f.detail for f in out.findings)


# --- the corpus cases with snippets ---------------------------------------------------------------

PREFIX = "nginx.ingress.kubernetes.io/"


def corpus_snippets() -> list[tuple[str, str, str, dict[str, str], dict[str, str]]]:
    cases = shared_corpus("migration") / "cases"
    out = []
    for path in sorted(cases.glob("*.json")):
        case = json.loads(path.read_text())
        docs = [d for d in yaml.safe_load_all(case["manifests"]) if d]
        config = case.get("controllerConfig") or {}
        for doc in docs:
            anns = {k[len(PREFIX):]: v for k, v in (doc["metadata"].get("annotations") or {}).items()
                    if k.startswith(PREFIX)}
            if doc["kind"] != "Ingress" or not any(k.endswith("-snippet") for k in anns):
                continue
            cls = doc["spec"].get("ingressClassName", "nginx")
            cfg = config.get(cls, config) if case.get("multiClass") else config
            out.append((path.stem, doc["metadata"]["name"], cls, anns, cfg))
    return out


def test_corpus_snippets_convert_to_what_the_cases_expect() -> None:
    found = {}
    for case, name, cls, anns, cfg in corpus_snippets():
        src = Source(f"{case}.json", f"Ingress {name}", "ns", cls, anns, cfg)
        for key in ("configuration-snippet", "server-snippet"):
            if key in anns:
                entry = CATALOG[key]
                assert entry.handler is not None
                found[(case, name, key)] = entry.handler(key, anns[key], src)
    assert all(f.status != "unknown" for c in found.values() for f in c.findings)
    assert found[("snippets-rejected-at-default-risk-level", "with-snippet", "configuration-snippet")].ignore_ingress
    assert found[("configuration-snippet-more-set-headers", "snippet-headers", "configuration-snippet")].security == {
        "responseHeaders": {"set": [{"name": "X-Frame-Options", "value": "DENY"},
                                    {"name": "X-Robots-Tag", "value": "noindex, nofollow"}]}}
    reqheaders = ("configuration-snippet-proxy-set-header", "snippet-reqheaders", "configuration-snippet")
    assert found[reqheaders].security == {
        "requestHeaders": {"set": [{"name": "X-Input-Header", "value": "set-by-ingress"},
                                   {"name": "X-Env", "value": "production"}], "remove": ["X-Debug"]}}
    methods = found[("configuration-snippet-method-allowlist-405", "snippet-methods", "configuration-snippet")]
    assert methods.security == {"allowedMethods": ["GET", "POST"], **NO_ALLOW}
    assert statuses(methods) == ["exact"] * 2  # the 405 has no Allow header, like nginx's
    adds = found[("configuration-snippet-add-header-status-codes", "snippet-addheader", "configuration-snippet")]
    assert adds.security == {"responseHeaders": {"add": [
        {"name": "X-Only-Success", "value": "yes", "statuses": SUCCESS}, {"name": "X-Always", "value": "yes"}]}}
    assert statuses(adds) == ["exact"] * 2
    www = found[("wc-public-web", "www", "configuration-snippet")]
    assert www.security["allowedMethods"] == ["GET", "HEAD", "POST"]
    for case, name in [("server-snippet-security-txt", "security-txt"), ("wc-internal-tools", "wiki"),
                       ("wc-public-web", "www"), ("server-snippet-once-per-host", "b-web")]:
        [rule] = found[(case, name, "server-snippet")].rules
        assert rule.matches == [{"path": {"type": "Exact", "value": "/.well-known/security.txt"}}]
        assert rule.security["directResponses"][0]["contentType"] == "text/plain"
        assert "ipAccess" not in rule.security and rule.backend == "none"
        assert rule.security["hsts"] == {"enabled": False}


# --- through a real gateway ---------------------------------------------------------------


def policy(name: str, target: dict[str, str], spec: dict[str, Any]) -> str:
    return yaml.safe_dump({"apiVersion": "policy.wardgate.io/v1alpha1", "kind": "SecurityPolicy",
                           "metadata": {"name": name, "namespace": "default"},
                           "spec": {"targetRefs": [target], **spec}})


def manifests(host: str, route: str, backend: str, parts: list[Contribution], extra: dict[str, Any]) -> list[str]:
    """What the converter makes of an Ingress (host, one `/` rule to `backend`) and its snippet
    contributions: the Ingress's HTTPRoute with a policy, and the snippet's own rules in an
    HTTPRoute of their own, each with its own rule-level policy."""
    security: dict[str, Any] = dict(extra)
    rules: list[ExtraRule] = []
    for c in parts:
        for k, v in c.security.items():
            security[k] = {**security[k], **v} if isinstance(v, dict) and k in security else v
        rules += [r for r in c.rules if r.backend == "none"]
    backend_refs = [{"name": backend, "port": 80}]
    # Internal rewrites: copies of the Ingress's rule, narrowed, with the rewrite added.
    copies = [{"matches": r.matches, "filters": r.filters, "backendRefs": backend_refs}
              for c in parts for r in c.rules if r.backend == "ingress"]
    out = [yaml.safe_dump({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                           "metadata": {"name": route, "namespace": "default"},
                           "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host], "rules": [
                               *copies, {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                         "backendRefs": backend_refs}]}}),
           policy(route, {"kind": "HTTPRoute", "name": route}, security)]
    if rules:
        named = [{"name": f"snippet-{i}", "matches": r.matches, "filters": r.filters} for i, r in enumerate(rules)]
        out.append(yaml.safe_dump({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                                   "metadata": {"name": f"{route}-snippet", "namespace": "default"},
                                   "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host], "rules": named}}))
        out += [policy(f"{route}-snippet-{i}", {"kind": "HTTPRoute", "name": f"{route}-snippet",
                                                 "sectionName": f"snippet-{i}"}, r.security)
                for i, r in enumerate(rules) if r.security]
    return out


@pytest.mark.timeout(120)
def test_converted_snippets_on_a_real_gateway(gateway: Gateway, backends: Backends) -> None:
    case = json.loads((shared_corpus("migration") / "cases" / "server-snippet-security-txt.json").read_text())
    ingress = next(d for d in yaml.safe_load_all(case["manifests"]) if d and d["kind"] == "Ingress")
    anns = {k[len(PREFIX):]: v for k, v in ingress["metadata"]["annotations"].items()}
    server = CATALOG["server-snippet"].handler("server-snippet", anns["server-snippet"],  # type: ignore[misc]
                                               source(anns))
    methods = conv("""\
        more_set_headers "X-Frame-Options: DENY";
        add_header X-Only-Success "yes";
        add_header X-Always "yes" always;
        if ($request_method !~ ^(GET|POST)$) {
          return 405;
        }
        rewrite ^/legacy(/.*)?$ /modern$1 break;
        rewrite ^/old$ /new permanent;
        """)
    moved = conv('location = /moved { return 308 https://elsewhere.example.com$request_uri; }\n'
                 'location = /private { return 403; }', level="server")
    app = backends("app")
    # security-txt: whitelist-source-range 10.0.0.0/8 as the policy mig-annot makes of it.
    gateway.write("gw.yaml", GW + app.manifests(), "---\n".join([
        "", *manifests("security.example.com", "sec", "app", [server], {"ipAccess": {"allow": ["10.0.0.0/8"]}}),
        *manifests("methods.example.com", "methods", "app", [methods, moved], {})]))
    gateway.reconcile()

    def get(host: str, path: str, method: str = "GET") -> Any:
        return request(f"http://{gateway.address()}:8080{path}", host=host, method=method,
                       data=b"x" if method in ("POST", "PUT") else None)

    # The snippet location answers although the rest of the host is IP-restricted (127.x is not 10/8).
    r = get("security.example.com", "/.well-known/security.txt")
    assert (r.status, r.headers["content-type"]) == (200, "text/plain")
    assert r.body == b"Contact: mailto:security@example.com\nExpires: 2030-01-01T00:00:00.000Z\n"
    assert r.headers["x-content-type-options"] == "nosniff"  # server-level more_set_headers reaches it
    r = get("security.example.com", "/")
    assert (r.status, r.headers["x-content-type-options"]) == (403, "nosniff")
    assert get("security.example.com", "/.well-known/security.txt.bak").status == 403  # exact path only
    # The method limit: 405 for everything but GET and POST (HEAD included), without an Allow header
    # as nginx's; headers on every status.
    for method, status in [("GET", 200), ("POST", 200), ("PUT", 405), ("DELETE", 405), ("HEAD", 405),
                           ("OPTIONS", 405)]:
        r = get("methods.example.com", "/form", method)
        assert (method, r.status, r.headers["x-frame-options"], r.headers.get("allow")) == (
            method, status, "DENY", None)
        # add_header without `always`: only on nginx's statuses (not on the 405).
        assert (r.headers.get("x-only-success"), r.headers["x-always"]) == ("yes" if status == 200 else None, "yes")
    for path, only in [("/status/503", None), ("/status/404", None), ("/status/301", "yes"), ("/status/204", "yes")]:
        r = get("methods.example.com", path)
        assert (path, r.headers["x-frame-options"], r.headers.get("x-only-success"), r.headers["x-always"]) == (
            path, "DENY", only, "yes")
    # rewrite ... break: the Ingress's backend gets the new path; ... permanent and a location's
    # return: redirects the gateway answers, with the snippet's header.
    r = get("methods.example.com", "/legacy/a?x=1")
    assert (r.status, r.json["path"]) == (200, "/modern/a?x=1")
    r = get("methods.example.com", "/old?x=1")
    assert (r.status, r.headers["location"], r.headers["x-frame-options"], r.headers["x-only-success"]) == (
        301, "http://methods.example.com:8080/new?x=1", "DENY", "yes")
    assert get("methods.example.com", "/old", "PUT").status == 405  # the method limit came first in the snippet
    r = get("methods.example.com", "/moved?x=1")
    assert (r.status, r.headers["location"]) == (308, "https://elsewhere.example.com/moved?x=1")
    assert get("methods.example.com", "/private").status == 403  # a urlAllowlist that allows nothing
    assert get("methods.example.com", "/private/x").status == 200


@pytest.mark.timeout(120)
def test_converted_snippet_location_answers_without_hsts_on_https(gateway: Gateway, backends: Backends) -> None:
    """server-snippet-security-txt over HTTPS: ingress-nginx's snippet location sent no HSTS, the
    rest of the host did; the converted rule's `hsts: {enabled: false}` keeps that."""
    case = json.loads((shared_corpus("migration") / "cases" / "server-snippet-security-txt.json").read_text())
    ingress = next(d for d in yaml.safe_load_all(case["manifests"]) if d and d["kind"] == "Ingress")
    anns = {k[len(PREFIX):]: v for k, v in ingress["metadata"]["annotations"].items()}
    server = CATALOG["server-snippet"].handler("server-snippet", anns["server-snippet"],  # type: ignore[misc]
                                               source(anns))
    host = "security-txt.example.com"
    ca = trustme.CA()
    app = backends("app")
    gateway.write("gw.yaml", gateway_yaml(https("https", host)), tls_secret("cert", ca, host), app.manifests(),
                  "---\n".join(["", *manifests(host, "sec", "app", [server], {"ipAccess": {"allow": ["10.0.0.0/8"]}})]))
    gateway.reconcile()
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)

    def answer(path: str) -> tuple[int, str | None, str | None]:
        with socket.create_connection((gateway.address(), 8443), timeout=5) as plain, \
                ctx.wrap_socket(plain, server_hostname=host) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        got = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        return int(lines[0].split()[1]), got.get("strict-transport-security"), got.get("x-content-type-options")

    assert answer("/.well-known/security.txt") == (200, None, "nosniff")
    # The rest of the host keeps HSTS (here the IP list's 403: 127.x is not in 10.0.0.0/8).
    assert answer("/") == (403, "max-age=31536000; includeSubDomains", "nosniff")
