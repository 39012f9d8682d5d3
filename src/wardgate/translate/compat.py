"""IngressNginxCompat filters: which rules name one, how their paths read and rank.

With `pathMatching: IngressNginx` a rule's path matches are ingress-nginx's nginx locations
(docs/compatibility.md):
- Exact `/x` is `location = /x`;
- PathPrefix `/x` is `location /x`: a prefix of characters (`/x` matches `/xy`), not of path
  elements, and a trailing slash is kept (`/x/` doesn't match `/x`);
- RegularExpression `re` is `location ~* ^re`: case-insensitive, anchored at the start only.
They rank as nginx picks locations: exact paths first; then regexes in the order ingress-nginx
writes them (longer path strings first, equal lengths in reverse byte order), the first that
matches wins; then the longest prefix. A path ending in `/` also answers its value without the
slash with a 301 to it (nginx's redirect for a location ending in `/` that proxies), ranked with
prefixes of that length, after a prefix equal to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from wardgate import ir
from wardgate.keys import ObjectKey
from wardgate.model.compat import COMPAT_KIND, IngressNginxCompatSpec
from wardgate.model.gatewayapi import GRPCRouteRule, HTTPPathMatch, HTTPRouteRule, LocalObjectReference
from wardgate.model.policies import POLICY_GROUP
from wardgate.translate.conditions import Reason
from wardgate.translate.index import Index

# ir.Redirect path_type of an IngressNginxCompat redirect: path_value is the Location (a URL as it
# is, or a path after the scheme and the Host header), without the query string.
LOCATION = "Location"
# ir.Redirect path_type of a redirect.hostname: <scheme>://<hostname>:<port><request URI>.
HOST_URI = "HostURI"


@dataclass(frozen=True)
class RuleCompat:
    """A rule's IngressNginxCompat settings: `spec` None without one; `error` (field, message)
    when the reference can't be used, and then the rule answers 500."""

    spec: IngressNginxCompatSpec | None = None
    error: tuple[str, str] | None = None

    @property
    def nginx_paths(self) -> bool:
        return self.spec is not None and self.spec.path_matching == "IngressNginx"

    @property
    def grpc_backend(self) -> bool:
        """backendProtocol GRPC: the rule's requests go to its backends as gRPC (grpc_pass)."""
        return self.spec is not None and self.spec.backend_protocol == "GRPC"

    @property
    def unverified_tls(self) -> bool:
        """backendTLS: TLS to the rule's backends without checking them."""
        return self.spec is not None and self.spec.backend_tls is not None


NONE = RuleCompat()


def is_compat_ref(group: str, kind: str) -> bool:
    return group == POLICY_GROUP and kind == COMPAT_KIND


def rule_compat(namespace: str, rule: HTTPRouteRule | GRPCRouteRule, base: str, index: Index) -> RuleCompat:
    """The IngressNginxCompat the rule's ExtensionRef filters name (at most one). A GRPCRoute rule
    has no paths, rewrites or redirects: only backendTLS applies there."""
    found: RuleCompat = NONE
    for i, flt in enumerate(rule.filters):
        ref = flt.extension_ref
        if flt.type != "ExtensionRef" or ref is None or not is_compat_ref(ref.group, ref.kind):
            continue
        where = f"{base}.filters[{i}].extensionRef"
        if found is not NONE:
            return RuleCompat(error=(where, f"a rule may name one {COMPAT_KIND}"))
        obj = index.compat.get(ObjectKey(COMPAT_KIND, namespace, ref.name))
        if obj is None:
            return RuleCompat(error=(where, f"{COMPAT_KIND} {namespace}/{ref.name} not found"))
        spec = obj.spec
        if isinstance(rule, GRPCRouteRule) and (spec.path_matching != "GatewayAPI" or spec.rewrite_target is not None
                                                or spec.redirect is not None or spec.backend_protocol is not None):
            return RuleCompat(error=(where, f"{COMPAT_KIND} {namespace}/{ref.name}: only backendTLS applies to a "
                                            "GRPCRoute rule"))
        found = RuleCompat(spec)
    return found


def normalize_prefix(value: str) -> str:
    """PathPrefix matching is per path element, so a trailing slash changes nothing."""
    return value.rstrip("/") or "/"


def extension_ref_problem(namespace: str, ref: LocalObjectReference, index: Index) -> tuple[Reason, str] | None:
    """Why a filter's extensionRef doesn't resolve (for the route's ResolvedRefs), or None."""
    if not is_compat_ref(ref.group, ref.kind):
        return "InvalidKind", f"{ref.group}/{ref.kind} is not a filter kind wardgate supports ({POLICY_GROUP}/" \
                              f"{COMPAT_KIND} is); the rule answers 500"
    if ObjectKey(COMPAT_KIND, namespace, ref.name) not in index.compat:
        return "BackendNotFound", f"{COMPAT_KIND} {namespace}/{ref.name} not found; the rule answers 500"
    return None


def ir_path(path: HTTPPathMatch, nginx: bool) -> ir.PathMatch:
    """The IR path of a match: Gateway API's (PathPrefix without trailing slashes, which change
    nothing there), or with `nginx`, ingress-nginx's location for it."""
    if nginx and path.type == "PathPrefix":
        return ir.PathMatch("NginxPrefix", path.value)
    if nginx and path.type == "RegularExpression":
        return ir.PathMatch("NginxRegex", path.value)
    if path.type == "PathPrefix":
        return ir.PathMatch("PathPrefix", normalize_prefix(path.value))
    return ir.PathMatch(path.type, path.value)


def _bytes(value: str) -> int:
    return len(value.encode())


def path_rank(p: ir.PathMatch) -> tuple[object, ...]:
    """Where a path ranks in a virtual host (before method, headers, query and age): exact, then
    regexes, then prefixes by the length of the nginx location they are."""
    if p.type == "Exact":
        return (0, -len(p.value))
    if p.type == "RegularExpression":
        return (1, 0)
    if p.type == "NginxRegex":
        # ingress-nginx sorts by length, longest first, and equal lengths in reverse byte order.
        raw = p.value.encode()
        return (1, 1, -len(raw), tuple(255 - b for b in raw))
    if p.type == "PathPrefix":  # served by `location = /p` and `location /p/`
        return (2, -(1 if p.value == "/" else len(p.value) + 1), 0)
    return (2, -_bytes(p.value), 0)


def redirect_rank(target: str) -> tuple[object, ...]:
    """The rank of the 301 to `target` (a path ending in `/`) for `target` without its slash:
    with prefixes of that length, after a prefix equal to it."""
    return (2, -(_bytes(target) - 1), 1)


def slash_redirect(p: ir.PathMatch) -> str | None:
    """The path an IngressNginx path answers with a 301 for itself without its trailing slash."""
    if p.type in ("Exact", "NginxPrefix") and len(p.value) > 1 and p.value.endswith("/"):
        return p.value
    return None


__all__ = ["HOST_URI", "LOCATION", "NONE", "RuleCompat", "extension_ref_problem", "ir_path", "is_compat_ref",
           "normalize_prefix", "path_rank", "redirect_rank", "rule_compat", "slash_redirect"]
