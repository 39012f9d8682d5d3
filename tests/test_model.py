"""Loading and validating manifests: errors name the file, document, object and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wardgate.errors import InputError
from wardgate.model import parse
from wardgate.model.gatewayapi import HTTPRoute
from wardgate.sources import load_paths, load_text


def problems(text: str, name: str = "in.yaml") -> list[str]:
    with pytest.raises(InputError) as exc:
        parse(load_text(text, name))
    return [str(p) for p in exc.value.problems]


def test_field_errors_name_file_document_object_and_field() -> None:
    text = """\
apiVersion: v1
kind: Namespace
metadata: {name: ok}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  hostnames: ["Bad_Host"]
  rules:
    - matches: [{path: {type: RegularExpression, value: "(unclosed"}}]
      timeouts: {request: 5 minutes}
"""
    found = problems(text, "routes.yaml")
    assert any(p.startswith("routes.yaml[doc 1]: HTTPRoute shop/web: spec.hostnames[0]: invalid hostname")
               for p in found), found
    assert any("spec.rules[0].matches[0].path" in p and "invalid regular expression" in p for p in found), found
    assert any("spec.rules[0].timeouts.request" in p for p in found), found


def test_yaml_syntax_error_names_line() -> None:
    found = problems("kind: Service\nmetadata: {name: [\n", "broken.yaml")
    assert found[0].startswith("broken.yaml[doc 0]: YAML syntax error at line")


def test_lists_unknown_kinds_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("""\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: a}
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: ignored}
""")
    rs = parse(load_paths([tmp_path]))
    assert [o.ref() for o in rs.objects] == ["Service default/a"]
    assert len(rs.ignored) == 1
    (tmp_path / "b.yml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n")
    with pytest.raises(InputError, match=r"b.yml\[doc 0\]: Service default/a: defined twice \(first at .*a.yaml"):
        parse(load_paths([tmp_path]))


def test_defaults_follow_the_spec() -> None:
    rs = parse(load_text("""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
""", "r.yaml"))
    route = rs.of(HTTPRoute)[0]
    assert route.namespace == "default"
    assert route.spec.rules[0].matches[0].path.type == "PathPrefix"
    assert route.spec.rules[0].matches[0].path.value == "/"
    assert route.spec.parent_refs[0].kind == "Gateway"


def test_rule_filter_constraints() -> None:
    found = problems("""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules:
    - filters:
        - {type: RequestRedirect, requestRedirect: {statusCode: 301}}
      backendRefs: [{name: x, port: 80}]
    - filters: [{type: URLRewrite}]
""")
    assert any("spec.rules[0]" in p and "RequestRedirect filter can't have backendRefs" in p for p in found), found
    assert any("spec.rules[1].filters[0]" in p and "needs the urlRewrite field" in p for p in found), found


def test_mirror_share_constraints() -> None:
    found = problems("""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules:
    - filters:
        - type: RequestMirror
          requestMirror: {backendRef: {name: m, port: 80}, percent: 10, fraction: {numerator: 1}}
        - type: RequestMirror
          requestMirror: {backendRef: {name: m, port: 80}, fraction: {numerator: 3, denominator: 2}}
      backendRefs: [{name: x, port: 80}]
""")
    assert any("spec.rules[0].filters[0].requestMirror" in p and "at most one of percent and fraction" in p
               for p in found), found
    assert any("spec.rules[0].filters[1].requestMirror.fraction" in p and "numerator" in p for p in found), found
def test_grpcroute_validation_names_the_field() -> None:
    found = problems("""\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: shop}
spec:
  rules:
    - matches:
        - method: {service: "bad/service", method: Get}
        - method: {type: Exact}
        - method: {method: "Get.All"}
        - method: {type: RegularExpression, service: "a)|(b"}
        - method: {service: _wardgate}
        - headers: [{name: "x_underscore", value: v}]
    - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 301}}]
    - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 1}}, cors: {allowOrigins: ["*"]}}]
    - filters:
        - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}
        - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: c, value: d}]}}
""", "grpc.yaml")

    def has(where: str, text: str) -> bool:
        return any(p.startswith(f"grpc.yaml[doc 0]: GRPCRoute shop/g: {where}") and text in p for p in found)
    assert has("spec.rules[0].matches[0].method", "is not a gRPC service name"), found
    assert has("spec.rules[0].matches[1].method", "one or both of service and method"), found
    assert has("spec.rules[0].matches[2].method", "is not a gRPC method name"), found
    assert has("spec.rules[0].matches[3].method", "invalid regular expression"), found
    assert has("spec.rules[0].matches[4].method", "reserved"), found
    assert has("spec.rules[0].matches[5].headers[0].name", "can't be matched"), found
    assert has("spec.rules[3]", "RequestHeaderModifier may appear only once"), found
    assert has("spec.rules[1].filters[0].type", ""), found  # RequestRedirect is not a GRPCRoute filter
    assert has("spec.rules[2].filters[0]", "cors is not a GRPCRoute filter"), found


def test_grpc_method_paths() -> None:
    from wardgate.model.gatewayapi import GRPCMethodMatch

    assert GRPCMethodMatch(method="Get").path_regex() == "/[^/]+/Get"
    rx = GRPCMethodMatch(type="RegularExpression", service="a.*", method="G.t").path_regex()
    assert re.fullmatch(rx, "/a.b.C/Get") and re.fullmatch(rx, "/a/Got")
    assert not re.fullmatch(rx, "/a/b/Get")  # a service pattern can't swallow a "/"
    assert not re.fullmatch(rx, "/b/Get")
