"""SecurityPolicy concurrentRequests (docs/policies.md#concurrent-requests) on real nginx:
requests in flight per client IP, the excess refused at once, slots freed when responses end."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from conftest import Backend, Gateway, request
from policy_helpers import decision_log, example, rendered, setup

Backends = Callable[..., Backend]

TRUST_LOOPBACK = """\
apiVersion: policy.wardgate.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: xff, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: gw}]
  clientIP: {source: XForwardedFor, trustedCIDRs: [127.0.0.0/8]}
"""


def burst(gateway: Gateway, n: int, client: str, path: str = "/slow?delay=1500ms",
          host: str = "example.com") -> Counter[int]:
    """`n` requests from `client` (X-Forwarded-For), all in flight together; their statuses."""
    url = f"http://{gateway.address()}:8080{path}"
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(request, url, host=host, headers={"X-Forwarded-For": client}) for _ in range(n)]
        return Counter(f.result().status for f in futures)


def test_concurrent_requests_per_client(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("concurrent-requests"), TRUST_LOOPBACK)
    assert "limit_conn wg_cc 3;" in rendered(gateway)
    start = time.monotonic()
    assert burst(gateway, 6, "203.0.113.9") == {200: 3, 503: 3}
    assert time.monotonic() - start < 3.0  # the refused ones did not wait for a slot
    # Slots are freed when the responses end; another client has its own; exempt ones are not counted.
    assert burst(gateway, 3, "203.0.113.9") == {200: 3}
    assert burst(gateway, 5, "10.1.2.3") == {200: 5}
    log = decision_log(gateway, "/slow", count=14)
    assert Counter(e["decision"] for e in log) == {"allow": 11, "concurrency": 3}
    # The route "other" has no limit.
    assert burst(gateway, 5, "203.0.113.9", host="other.example.com") == {200: 5}


def test_gateway_wide_concurrency_is_one_budget(gateway: Gateway, backends: Backends) -> None:
    """A Gateway-level limit counts a client's requests on every route together."""
    setup(gateway, backends, TRUST_LOOPBACK, """\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {name: everywhere, namespace: default}
        spec:
          targetRefs: [{kind: Gateway, name: gw}]
          concurrentRequests: {limit: 2}
        """)
    url = f"http://{gateway.address()}:8080/slow?delay=1500ms"
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(request, url, host=host, headers={"X-Forwarded-For": "198.51.100.1"})
                   for host in ("example.com", "other.example.com", "example.com", "other.example.com")]
        statuses = Counter(f.result().status for f in futures)
    assert statuses == {200: 2, 429: 2}
