"""The corpus's path cases migrated by `wardgate migrate` and served by a real gateway: every
request of each case answers as ingress-nginx does (the case file's expectations)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from conftest import Backend, Gateway
from migration_cases import case_file, check
from wardgate.migrate import migrate
from wardgate.migrate.output import dump
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
         pytest.param("app-root", marks=pytest.mark.xfail(
             strict=True, reason="migrate's app-root rule is a RequestRedirect (keeps the query, drops the Host "
                                 "header's port); paths.app_root() gives the exact IngressNginxCompat redirect"))]


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
