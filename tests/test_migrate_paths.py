"""The corpus's path and redirect cases migrated by `wardgate migrate` and served by a real
gateway: every request of each case answers as ingress-nginx does (the case file's expectations)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from conftest import Backend, Gateway
from migration_cases import case_file, check
from wardgate.migrate import migrate
from wardgate.migrate.output import dump
from wardgate.migrate.paths import PathContext, convert_path, host_context
from wardgate.sources.files import load_text

pytestmark = pytest.mark.timeout(180)

CASES = ["path-prefix-element-match", "path-prefix-trailing-slash-redirect", "path-exact-basic",
         "path-exact-and-prefix-same-path", "path-implementation-specific-char-prefix",
         "path-case-sensitive-without-regex", "path-longest-prefix-wins", "path-unmatched-404-default-backend",
         "path-url-normalization", "host-missing-catch-all", "spec-defaultbackend-with-rules",
         "spec-defaultbackend-catch-all", "regex-case-insensitive-start-anchored",
         "regex-applies-to-all-paths-of-host", "regex-first-match-not-longest", "rewrite-target-capture-groups",
         "rewrite-target-static-replaces-whole-uri", "rewrite-target-implies-regex-other-ingress",
         "rewrite-target-equal-to-path-noop", "x-forwarded-prefix", "redirect-catch-all-unmatched-paths",
         "app-root", "permanent-redirect", "ssl-redirect-default-tls-host", "from-to-www-redirect"]


@pytest.mark.parametrize("case_id", CASES)
def test_migrated_case_answers_as_ingress_nginx(case_id: str, gateway: Gateway,
                                                backends: Callable[..., Backend]) -> None:
    case = case_file(case_id)
    result = migrate(load_text(case["manifests"], f"{case_id}.json"))
    assert result.objects[0]["kind"] == "GatewayClass"  # the fixture has its own
    # The case's Secrets (certificates); its Services are the echo backends'.
    secrets = [d for d in yaml.safe_load_all(case["manifests"]) if d and d.get("kind") == "Secret"]
    made = []
    for key in case["backends"]:
        ns, _, svc = key.rpartition("/")
        made.append(backends(svc, namespace=ns or "default"))
    gateway.write("migrated.yaml", dump(result.objects[1:]), *(b.manifests() for b in made),
                  *(("---\n" + yaml.safe_dump(s)) for s in secrets))
    gateway.reconcile()
    failures = check(gateway.address("ingress-nginx/nginx"), case_id)
    assert not failures, "\n".join(failures)


NGINX_PATHS = {"type": "ExtensionRef", "extensionRef": {"group": "policy.wardgate.io", "kind": "IngressNginxCompat",
                                                        "name": "ingress-nginx-paths"}}


@pytest.mark.parametrize(("path", "path_type", "regex", "want", "filtered"), [
    ("/p", "Exact", False, ("Exact", "/p"), False),
    ("/p/", "Exact", False, ("Exact", "/p/"), True),  # the 301 for /p
    ("/p", "Prefix", False, ("PathPrefix", "/p"), False),
    ("/p/", "Prefix", False, ("PathPrefix", "/p/"), True),
    ("/p", "ImplementationSpecific", False, ("PathPrefix", "/p"), True),
    ("/", "ImplementationSpecific", False, ("PathPrefix", "/"), False),
    ("/p", "Exact", True, ("RegularExpression", "/p"), True),
    ("/p", "Prefix", True, ("RegularExpression", "/p"), True),
    ("/p/", "Prefix", True, ("RegularExpression", "/p/"), True),
    ("/p[0-9]", "ImplementationSpecific", True, ("RegularExpression", "/p[0-9]"), True),
])
def test_ingress_paths_map_as_documented(path: str, path_type: str, regex: bool, want: tuple[str, str],
                                         filtered: bool) -> None:
    """docs/compatibility.md's table, "How wardgate migrate maps Ingress paths"."""
    conv = convert_path(path, path_type, PathContext(host_regex=regex))
    assert [(m["path"]["type"], m["path"]["value"]) for m in conv.matches] == [want]
    assert conv.filters == ([NGINX_PATHS] if filtered else [])
    assert conv.status == "exact" and bool(conv.detail) == filtered


def test_rewrite_target_per_location_and_regex_mode_per_host() -> None:
    """rewrite-target equal to the path changes nothing; a Prefix path equal to the target is split
    as ingress-nginx does, and only its `/p/` location rewrites (with X-Forwarded-Prefix)."""
    same = {"rewrite-target": "/", "x-forwarded-prefix": "/x"}
    assert host_context([("/", "Prefix", same)]).host_regex is False
    assert host_context([("/", "Prefix", same), ("/api", "Prefix", {})]).host_regex is False
    anns = {"rewrite-target": "/p", "x-forwarded-prefix": "/x"}
    ctx = host_context([("/p", "Prefix", anns)])
    assert ctx.host_regex is True
    conv = convert_path("/p", "Prefix", ctx, anns)
    rewriting, plain = conv, conv.also[0]
    assert rewriting.matches == [{"path": {"type": "RegularExpression", "value": "/p/"}}]
    assert rewriting.compat == {f["extensionRef"]["name"]: {"pathMatching": "IngressNginx", "rewriteTarget": "/p"}
                                for f in rewriting.filters if f["type"] == "ExtensionRef"}
    assert {"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "X-Forwarded-Prefix", "value": "/x"}]}} in rewriting.filters
    assert plain.matches == [{"path": {"type": "RegularExpression", "value": "/p"}}] and plain.filters == [NGINX_PATHS]
    bad = convert_path("/a(?P<x>b)", "ImplementationSpecific", PathContext(host_regex=True), {"use-regex": "true"})
    assert (bad.matches, bad.status) == ([], "not-converted") and "named group" in bad.detail


def test_every_compat_object_the_output_has_is_named_and_exists() -> None:
    docs = [case_file(c)["manifests"] for c in ("regex-first-match-not-longest", "x-forwarded-prefix",
                                                "rewrite-target-implies-regex-other-ingress", "app-root")]
    mixed = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: a
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/use-regex: "true"
    nginx.ingress.kubernetes.io/permanent-redirect: https://x.example.com/
spec:
  ingressClassName: nginx
  rules:
  - host: h.example.com
    http:
      paths:
      - {path: /old, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
"""
    for text in [*docs, docs[0] + "\n---\n" + mixed]:
        objects = migrate(load_text(text, "in.yaml")).objects
        have = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects
                if o["kind"] == "IngressNginxCompat"}
        named = {(o["metadata"]["namespace"], f["extensionRef"]["name"]) for o in objects if o["kind"] == "HTTPRoute"
                 for rl in o["spec"]["rules"] for f in rl.get("filters", []) if f["type"] == "ExtensionRef"}
        assert have == named
