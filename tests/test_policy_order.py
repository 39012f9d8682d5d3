"""The order of policy checks (docs/policies.md), each pair tested where it matters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conftest import Backend, Gateway
from policy_helpers import example, http, raw, setup

pytestmark = pytest.mark.timeout(120)

Backends = Callable[..., Backend]
SQLI = "/?id=1%27%20OR%20%271%27%3D%271"
ONE_PER_HOUR = """\
    apiVersion: policy.wardgate.io/v1alpha1
    kind: RateLimitPolicy
    metadata: {name: tight, namespace: default}
    spec:
      targetRefs: [{kind: Gateway, name: gw}]
      requests: 1
      unit: Hour
    """


def test_gateway_answers_are_not_rate_limited(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, ONE_PER_HOUR, example("methods"), example("security-txt"))
    addr = gateway.address()
    for _ in range(3):
        assert raw(addr, http("DELETE", "/", [])).status == 405
        assert raw(addr, http("GET", "/.well-known/security.txt", [])).status == 200
    assert raw(addr, http("GET", "/", [])).status == 200  # the budget was untouched
    assert raw(addr, http("GET", "/", [])).status == 429


def test_rate_limit_runs_before_the_waf(gateway: Gateway, backends: Backends) -> None:
    """Cheap checks first: a client over its budget costs no WAF inspection."""
    setup(gateway, backends, ONE_PER_HOUR, example("waf"))
    addr = gateway.address()
    assert raw(addr, http("GET", SQLI, [])).status == 403  # counted, then blocked by the WAF
    assert raw(addr, http("GET", "/", [])).status == 429


def test_ip_access_runs_before_method_and_allowlist(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("ip-access"), example("methods"))
    addr = gateway.address()
    assert raw(addr, http("DELETE", "/", []), source="127.66.0.9").status == 403
    assert raw(addr, http("DELETE", "/", []), source="127.0.0.9").status == 405


def test_method_runs_before_the_allowlist_and_direct_responses_skip_the_allowlist(
        gateway: Gateway, backends: Backends) -> None:
    # One policy with all three fields (separate policies on the Gateway would add up the same way).
    combined = (example("allowlist") + "  allowedMethods: [GET, HEAD]\n"
                + "  securityTxt: {contact: ['mailto:s@example.com'], expires: '2030-01-01T00:00:00Z'}\n")
    setup(gateway, backends, combined)
    addr = gateway.address()
    assert raw(addr, http("POST", "/not-allowed", [], b"")).status == 405
    assert raw(addr, http("GET", "/not-allowed", [])).status == 403
    assert raw(addr, http("GET", "/.well-known/security.txt", [])).status == 200
