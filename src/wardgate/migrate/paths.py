"""An Ingress path -> HTTPRoute path match.

ingress-nginx (template.go buildLocation): Exact is `location = /p`; Prefix is element-wise, as
Gateway API's PathPrefix; ImplementationSpecific without regex is nginx's character prefix
(`location /p`, so /p also matches /pq); with use-regex or rewrite-target on any Ingress of the
host, every path of that host is a case-insensitive regex anchored at the start only (`~* ^/p`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wardgate.migrate.report import Status


@dataclass(frozen=True)
class PathContext:
    """What decides how a path of one host is read."""

    # use-regex or rewrite-target on some Ingress of this host (same class): every path of the
    # host is then a regex.
    host_regex: bool = False


@dataclass
class PathConversion:
    matches: list[dict[str, Any]]
    status: Status = "exact"
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def convert_path(path: str, path_type: str, ctx: PathContext) -> PathConversion:
    """The HTTPRoute matches for one Ingress path, and whether they behave exactly alike."""
    if ctx.host_regex:
        # ~* "^<path>": case-insensitive, anchored at the start only.
        return PathConversion([{"path": {"type": "RegularExpression", "value": f"(?i){path}.*"}}],
                              "converted-with-difference",
                              f"regex path {path!r} (use-regex/rewrite-target on this host): matched case-"
                              "insensitively from the start as ingress-nginx does, but wardgate orders regex "
                              "matches by its own precedence, not ingress-nginx's longest-path-first")
    if path_type == "Exact":
        return PathConversion([{"path": {"type": "Exact", "value": path}}])
    if path_type == "Prefix":
        return PathConversion([{"path": {"type": "PathPrefix", "value": path}}])
    return PathConversion([{"path": {"type": "PathPrefix", "value": path}}], "converted-with-difference",
                          f"ImplementationSpecific {path!r} is a character prefix in ingress-nginx "
                          f"({path!r} also matches {path.rstrip('/')}x); PathPrefix matches whole path elements")
