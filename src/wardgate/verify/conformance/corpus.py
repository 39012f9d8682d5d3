"""The corpus: the features wardgate claims, the Go suite's fixed names, the options and the index."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The features wardgate claims; tests needing any other feature are skipped. Maintained by the lead.
SUPPORTED_FEATURES: frozenset[str] = frozenset({
    "Gateway",
    "HTTPRoute",
    "ReferenceGrant",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteDestinationPortMatching",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "HTTPRouteCORS",
    "HTTPRouteRetry",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
    "BackendTLSPolicy",
    "GatewayBackendClientCertificate",
    "HTTPRouteRequestTimeout",
    "HTTPRouteParentRefPort",
    "GatewayPort8080",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteBackendRequestHeaderModification",
    "GatewayHTTPListenerIsolation",
    "TLSRoute",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteBackendTimeout",
    # No shared test needs it yet; tests/test_grpcroute.py covers it with a real gRPC client.
    "GRPCRoute",
})
INFRA_NS = "gateway-conformance-infra"
WEB_NS = "gateway-conformance-web-backend"
APP_NS = "gateway-conformance-app-backend"
STATUS_CHECKS = frozenset({
    "GatewayAndHTTPRoutesMustBeAccepted", "GatewayAndRoutesMustBeAccepted",
    "HTTPRouteMustHaveResolvedRefsConditionsTrue", "HTTPRouteMustHaveCondition",
    "HTTPRouteMustHaveNoAcceptedParents", "HTTPRouteMustHaveParents",
    "HTTPRouteMustHaveLatestConditions", "GatewayMustHaveLatestConditions",
    "GatewayClassMustHaveLatestConditions", "GatewayMustHaveCondition", "GatewayStatusMustHaveListeners",
    "GatewayListenerMustHaveConditions", "GatewayMustHaveZeroRoutes", "GatewayMustHaveAddress",
    "GWCMustHaveAcceptedConditionAny", "BackendTLSPolicyMustHaveAcceptedConditionTrue",
    "NamespacesMustBeReady", "Mutation",
})
DISTRIBUTIONS = frozenset({"weightedBackends", "backendHeaderMatchesPod", "mirrorPercentage"})
Json = dict[str, Any]


@dataclass
class ConformanceOptions:
    corpus: Path
    only: list[str] = field(default_factory=list)
    workdir: Path | None = None
    case_timeout_s: float = 30.0  # Go MaxTimeToConsistency
    status_timeout_s: float = 10.0
    port_offset: int | None = None  # None: 0 when running as root, else 20000
    # What the Go suite's --usable-network-addresses / --unusable-network-addresses supply for the
    # PLACEHOLDER_USABLE_ADDRS / PLACEHOLDER_UNUSABLE_ADDRS Gateway addresses (IPs or hostnames).
    usable_addresses: list[str] = field(default_factory=list)
    unusable_addresses: list[str] = field(default_factory=list)


def _load_index(corpus: Path) -> list[Json]:
    index = json.loads((corpus / "index.json").read_text(encoding="utf-8"))
    tests = index.get("tests") if isinstance(index, dict) else None
    if not isinstance(tests, list):
        raise ValueError(f"{corpus / 'index.json'}: no 'tests' list")
    return [t for t in tests if isinstance(t, dict) and t.get("name") and t.get("file")]
