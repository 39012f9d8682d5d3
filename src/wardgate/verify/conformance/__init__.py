"""Gateway API conformance harness: replays a conformance corpus against a standalone wardgate.

The corpus (see FORMAT.md next to it) is a transcription of the kubernetes-sigs Go suite: manifests,
status checks and HTTP round trips with the pass rules of the Go helpers. Here there is no cluster, so
the harness plays its parts itself: it runs echo backends for the Deployments (one loopback IP per
pod), writes the EndpointSlices and the Secrets/ConfigMaps the Go suite would create, drives a
``Runner`` over a working directory of manifests, and judges status and traffic like the Go suite.

The package, stage by stage (each imports only earlier ones): ``corpus`` (features, options, index),
``certificates``, ``client`` (HTTP/HTTPS/H2), ``websocket``, ``compare`` (round-trip pass rules), ``checks``
(status), ``backends`` (echo pods, EndpointSlices), ``harness`` (one test) and ``run`` (the entry point).
"""

from __future__ import annotations

from wardgate.verify.conformance.backends import ECHO_HTTP_PORT as ECHO_HTTP_PORT
from wardgate.verify.conformance.backends import ECHO_HTTPS_PORT as ECHO_HTTPS_PORT
from wardgate.verify.conformance.certificates import (
    go_hostname_matches,
)
from wardgate.verify.conformance.checks import (
    evaluate_status_check,
)
from wardgate.verify.conformance.client import FOLLOWED_REDIRECTS as FOLLOWED_REDIRECTS
from wardgate.verify.conformance.client import MAX_REDIRECTS as MAX_REDIRECTS
from wardgate.verify.conformance.client import REQUEST_TIMEOUT_S as REQUEST_TIMEOUT_S
from wardgate.verify.conformance.client import Outgoing as Outgoing
from wardgate.verify.conformance.client import (
    RequestError,
    RoundTrip,
)
from wardgate.verify.conformance.client import TlsSettings as TlsSettings
from wardgate.verify.conformance.client import send as send
from wardgate.verify.conformance.compare import REDIRECT_CODES as REDIRECT_CODES
from wardgate.verify.conformance.compare import captured_request as captured_request
from wardgate.verify.conformance.compare import (
    compare_round_trip,
    parse_redirect,
)
from wardgate.verify.conformance.corpus import APP_NS as APP_NS
from wardgate.verify.conformance.corpus import DISTRIBUTIONS as DISTRIBUTIONS
from wardgate.verify.conformance.corpus import INFRA_NS as INFRA_NS
from wardgate.verify.conformance.corpus import STATUS_CHECKS as STATUS_CHECKS
from wardgate.verify.conformance.corpus import (
    SUPPORTED_FEATURES,
    ConformanceOptions,
)
from wardgate.verify.conformance.corpus import WEB_NS as WEB_NS
from wardgate.verify.conformance.corpus import Json as Json
from wardgate.verify.conformance.harness import CASE_WORKERS as CASE_WORKERS
from wardgate.verify.conformance.harness import GATEWAY_CLASS_NAME as GATEWAY_CLASS_NAME
from wardgate.verify.conformance.harness import MIRROR_ID_PARAM as MIRROR_ID_PARAM
from wardgate.verify.conformance.harness import MIRROR_WAIT_S as MIRROR_WAIT_S
from wardgate.verify.conformance.harness import REQUIRED_SUCCESSES as REQUIRED_SUCCESSES
from wardgate.verify.conformance.harness import RETRY_DELAY_S as RETRY_DELAY_S
from wardgate.verify.conformance.harness import ROOT_NOTE as ROOT_NOTE
from wardgate.verify.conformance.harness import STATUS_POLL_S as STATUS_POLL_S
from wardgate.verify.conformance.harness import TestResult as TestResult
from wardgate.verify.conformance.harness import add_query_param as add_query_param
from wardgate.verify.conformance.harness import await_convergence as await_convergence
from wardgate.verify.conformance.harness import fill_addresses as fill_addresses
from wardgate.verify.conformance.run import (
    run_conformance,
)
from wardgate.verify.conformance.websocket import (
    WebSocketClient,
    WebSocketClosed,
    WebSocketHandshakeError,
    websocket_exchange,
    websocket_round_trip,
)

__all__ = [
    "SUPPORTED_FEATURES",
    "ConformanceOptions",
    "RequestError",
    "RoundTrip",
    "WebSocketClient",
    "WebSocketClosed",
    "WebSocketHandshakeError",
    "compare_round_trip",
    "evaluate_status_check",
    "go_hostname_matches",
    "parse_redirect",
    "run_conformance",
    "websocket_exchange",
    "websocket_round_trip",
]
