"""What one source of behaviour (an annotation, a snippet, a ConfigMap key) adds to the output.

Annotation handlers, the snippet converter and the ConfigMap reader all return a Contribution;
the converter decides where it lands (the Ingress's rules, the host's route, the Gateway) and
merges contributions field by field. Every dict is in the output's YAML shape (camelCase).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wardgate.migrate.report import Finding


@dataclass
class ExtraRule:
    """An HTTPRoute rule a source adds beside the Ingress's own: a server-snippet's
    `location = /.well-known/security.txt { return 200 "..."; }`, a snippet's
    `rewrite ^/old$ /new permanent;`. Its `matches` (HTTPRouteMatch dicts) take precedence over the
    Ingress's paths the way an nginx `location =` did (Exact beats every prefix).

    `backend` says what serves it:
    - "none": the gateway answers (direct response, redirect, refusal), so no backendRefs. Nothing
      else applies to it: not the Ingress's other annotations, not this source's `filters` and
      `security` (nginx answered in its rewrite phase, or in a location of its own, before any of
      them) and no HTTP->HTTPS redirect; `filters` and `security` here are complete. Put it where
      the Ingress's route-level policies can't reach it (an HTTPRoute of its own, or target those
      policies at rules by name) and on every listener of the host.
    - "ingress": a copy of the Ingress rule whose path covers the match (its backendRefs, every
      contribution of the Ingress), with these `filters` added (an internal rewrite).

    `within_ingress_paths`: ingress-nginx applied it only inside the Ingress's own locations (a
    configuration-snippet), so keep it only where one of the Ingress's paths covers the match.
    """

    matches: list[dict[str, Any]]
    filters: list[dict[str, Any]] = field(default_factory=list)
    security: dict[str, Any] = field(default_factory=dict)
    backend: Literal["none", "ingress"] = "none"
    within_ingress_paths: bool = False


@dataclass
class Contribution:
    # HTTPRoute filters added to every rule the source covers (RequestHeaderModifier,
    # ResponseHeaderModifier, RequestRedirect, URLRewrite, CORS, ExtensionRef, ...).
    filters: list[dict[str, Any]] = field(default_factory=list)
    # Other HTTPRouteRule fields (timeouts, sessionPersistence, ...).
    rule: dict[str, Any] = field(default_factory=dict)
    # SecurityPolicy spec fields for the rules the source covers.
    security: dict[str, Any] = field(default_factory=dict)
    # RateLimitPolicy spec fields (requests, unit, burst, status, exemptCIDRs, ...).
    rate_limit: dict[str, Any] = field(default_factory=dict)
    # ClientTrafficPolicy spec fields for the Gateway.
    client_traffic: dict[str, Any] = field(default_factory=dict)
    # HTTPRoute rules of their own beside the Ingress's (see ExtraRule).
    rules: list[ExtraRule] = field(default_factory=list)
    # Set when ingress-nginx never serves this Ingress at all (a snippet above
    # annotations-risk-level): why. The converter then leaves the whole Ingress out.
    ignore_ingress: str = ""
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    """Where the annotations being converted sit, for findings and lookups."""

    file: str
    obj: str  # "Ingress ns/name"
    namespace: str
    ingress_class: str | None
    # Every annotation of the object, prefix stripped, so a handler can read its companions
    # (limit-rpm reads limit-burst-multiplier).
    annotations: Mapping[str, str]
    # The controller ConfigMap's data for this class (defaults applied by the caller).
    config: Mapping[str, str]
    # Every ConfigMap of the input, "namespace/name" -> data: annotations and ConfigMap keys that
    # name another ConfigMap (custom-headers, add-headers, proxy-set-headers) read it here.
    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


# A handler converts one annotation key (and may read companions from `source.annotations`).
Handler = Callable[[str, str, Source], Contribution]


@dataclass(frozen=True)
class CatalogEntry:
    """One ingress-nginx annotation (key without prefix) as migrate knows it.

    Each topic module `wardgate/migrate/ann_<topic>.py` exports `CATALOG: dict[str, CatalogEntry]`
    for the annotations it converts; `wardgate.migrate.catalog` joins them with the annotations
    that are never converted, so every annotation ingress-nginx documents has exactly one entry.
    """

    becomes: str  # what it turns into, one line, for docs/migration.md's table
    handler: Handler | None = None  # None: never converted; `becomes` says why and what to do
    # Companions read by another key's handler (limit-burst-multiplier by limit-rpm): the converter
    # reports them as covered by `owner` instead of calling a handler.
    owner: str | None = None
