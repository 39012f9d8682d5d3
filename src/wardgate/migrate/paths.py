"""An Ingress path -> HTTPRoute path matches, keeping ingress-nginx's semantics exactly.

ingress-nginx turns each path of a host into nginx locations (controller/location.go
updateServerLocations, template.go buildLocation and buildProxyPass):
- Exact `/p` is `location = /p`; Prefix `/p` is `location /p/` plus `location = /p` (one exact
  location per path: none when an Exact `/p` exists), so element-wise as Gateway API's PathPrefix;
  Prefix `/p/` is `/p/` and `= /p/`; ImplementationSpecific `/p` is `location /p`, a prefix of
  characters. A location ending in `/` that proxies answers its path without the slash with a 301.
- use-regex, or a rewrite-target different from a location's path, on any Ingress of the host
  puts the whole host in regex mode: every location is `~* "^<path>"` (case-insensitive, anchored
  at the start only), tried longest path first, the first match winning. Prefix paths of
  Ingresses without use-regex or rewrite-target still get their exact copy; the two regexes sit
  side by side, so together they are `^<path>`.
- rewrite-target T (when different from the location's path) is `rewrite "(?i)<path>" T break`:
  the whole path replaced, `$1`.. from the path's regex, the query string kept; x-forwarded-prefix
  is sent only by such locations.
Gateway API's Exact and PathPrefix say the same where they can; where they can't, the rules name an
IngressNginxCompat filter (docs/compatibility.md) that makes wardgate read the paths as nginx
locations and rewrite as nginx does, and the finding says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wardgate.migrate.report import Status
from wardgate.model.compat import COMPAT_KIND
from wardgate.model.policies import POLICY_GROUP
from wardgate.validation import validators

# The IngressNginxCompat objects paths refer to, one per distinct spec in a route's namespace.
COMPAT_API = f"{POLICY_GROUP}/v1alpha1"
PATHS_OBJECT = "ingress-nginx-paths"
XFP = "X-Forwarded-Prefix"

# Every migrated Gateway's ClientTrafficPolicy: ingress-nginx routes a path like /a/../b or
# /a%2fb on nginx's normalised path and forwards it raw, where wardgate answers 400 by default.
AMBIGUOUS_PATHS: dict[str, Any] = {"path": {"ambiguous": "Allow"}}
AMBIGUOUS_DETAIL = ("ClientTrafficPolicy path.ambiguous: Allow: request paths with ';', %2e, %2f, %5c, '\\' or dot "
                    "segments are routed on nginx's normalised path and reach the backend raw, as with ingress-nginx "
                    "(wardgate's default answers them 400: set Reject unless a backend needs such paths, "
                    "docs/policies.md#ambiguous-request-paths)")


@dataclass(frozen=True)
class PathSettings:
    """The annotations of one Ingress that change how its paths are served."""

    use_regex: bool = False
    rewrite_target: str = ""
    x_forwarded_prefix: str = ""


def settings(annotations: Mapping[str, str]) -> PathSettings:
    """use-regex, rewrite-target and x-forwarded-prefix (keys without the prefix) as ingress-nginx
    reads them: an invalid boolean is false, and spaces are dropped from x-forwarded-prefix."""
    return PathSettings(annotations.get("use-regex", "").strip().lower() == "true",
                        annotations.get("rewrite-target", ""),
                        annotations.get("x-forwarded-prefix", "").replace(" ", ""))


@dataclass(frozen=True)
class PathContext:
    """What decides how a path of one host is read."""

    # use-regex or a rewriting rewrite-target on some Ingress of this host (same class): every
    # path of the host is then a regex.
    host_regex: bool = False
    # The host's Exact paths: a Prefix path gets no exact copy of its own where one exists.
    exact_paths: frozenset[str] = frozenset()


@dataclass
class PathConversion:
    matches: list[dict[str, Any]]
    status: Status = "exact"
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Filters the rule serving these matches needs (an ExtensionRef to IngressNginxCompat,
    # X-Forwarded-Prefix), and the IngressNginxCompat specs they name, by object name, to create in
    # the route's namespace.
    filters: list[dict[str, Any]] = field(default_factory=list)
    compat: dict[str, dict[str, Any]] = field(default_factory=dict)
    # More rules for the same path (its two locations behave differently).
    also: list[PathConversion] = field(default_factory=list)


@dataclass(frozen=True)
class _Location:
    path: str
    rewrite: bool


def _rewrites(target: str, path: str) -> bool:
    return target != "" and target != path


def _locations(path: str, path_type: str, s: PathSettings, exact_paths: frozenset[str]) -> list[_Location]:
    """The nginx locations ingress-nginx makes for one path (updateServerLocations)."""
    own = _Location(path, _rewrites(s.rewrite_target, path))
    if path == "/" or path_type != "Prefix" or own.rewrite or s.use_regex:
        return [own]
    normalized = path if path.endswith("/") else path + "/"
    out = [_Location(normalized, _rewrites(s.rewrite_target, normalized))]
    if path not in exact_paths:
        out.append(_Location(path, False))  # `location = path`; the target equals this path
    return out


def host_context(paths: Iterable[tuple[str, str, Mapping[str, str]]]) -> PathContext:
    """The context of a host from all its paths, (path, pathType, annotations of their Ingress),
    in ingress-nginx's order, duplicates already left out."""
    listed = [(p, t, settings(a)) for p, t, a in paths]
    exact = frozenset(p for p, t, _ in listed if t == "Exact")
    regex = any(s.use_regex or any(loc.rewrite for loc in _locations(p, t, s, exact)) for p, t, s in listed)
    return PathContext(regex, exact)


def _compat_filter(name: str) -> dict[str, Any]:
    return {"type": "ExtensionRef", "extensionRef": {"group": POLICY_GROUP, "kind": COMPAT_KIND, "name": name}}


def _nginx_paths() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    return _compat_filter(PATHS_OBJECT), {PATHS_OBJECT: {"pathMatching": "IngressNginx"}}


def _valid(check: Any, value: str) -> str | None:
    """Why `value` fails a model check, or None."""
    try:
        check(value)
    except ValueError as exc:
        return str(exc)
    return None


def _regex_conversion(loc_path: str, rewrite: bool, s: PathSettings, why: str) -> PathConversion:
    """A regex-mode location: `~* "^<path>"`, rewriting with the Ingress's target if it does."""
    problem = _valid(validators().regex, loc_path)
    if problem:
        return PathConversion([], "not-converted",
                              f"path {loc_path!r} is a regex here ({why}) that wardgate refuses: {problem}; "
                              "rewrite it (pathType ImplementationSpecific) as a regex wardgate accepts")
    match = {"path": {"type": "RegularExpression", "value": loc_path}}
    flt, compat = _nginx_paths()
    detail = (f"{why}: read as ingress-nginx's regex location ~* \"^{loc_path}\" (case-insensitive, anchored at "
              "the start only, longest path first) through IngressNginxCompat pathMatching: IngressNginx")
    if not rewrite:
        return PathConversion([match], "exact", detail, filters=[flt], compat=compat)
    problem = _valid(validators().rewrite_target, s.rewrite_target)
    if problem:
        return PathConversion([match], "not-converted",
                              f"{detail}; rewrite-target {s.rewrite_target!r} can't be converted ({problem}): "
                              "the path is served without the rewrite", filters=[flt], compat=compat)
    digest = hashlib.sha256(s.rewrite_target.encode()).hexdigest()[:10]
    name = f"ingress-nginx-rewrite-{digest}"
    filters = [_compat_filter(name)]
    compat = {name: {"pathMatching": "IngressNginx", "rewriteTarget": s.rewrite_target}}
    detail += f", rewriting the whole path to {s.rewrite_target!r} as nginx's `rewrite ... break` (rewriteTarget)"
    status: Status = "exact"
    if s.x_forwarded_prefix:
        problem = _valid(validators().header_value, s.x_forwarded_prefix)
        if problem or "$" in s.x_forwarded_prefix:
            status = "not-converted"
            detail += (f"; x-forwarded-prefix {s.x_forwarded_prefix!r} is not sent (nginx variables and "
                       f"captures can't be converted{': ' + problem if problem else ''})")
        else:
            filters.append({"type": "RequestHeaderModifier", "requestHeaderModifier": {
                "set": [{"name": XFP, "value": s.x_forwarded_prefix}]}})
            detail += f", with {XFP}: {s.x_forwarded_prefix}"
    return PathConversion([match], status, detail, filters=filters, compat=compat)


def _plain_conversion(path: str, path_type: str) -> PathConversion:
    """A path of a host without regexes."""
    if _valid(validators().path, path):
        return PathConversion([], "not-converted",
                              f"path {path!r} is not a path Gateway API (and wardgate) can match literally "
                              "(characters outside the URL path grammar, '//', dot segments or %2F); rewrite it")
    slash = path != "/" and path.endswith("/")
    if path_type == "Exact" and not slash:
        return PathConversion([{"path": {"type": "Exact", "value": path}}])
    if path == "/" or (path_type == "Prefix" and not slash):
        # `location /p/` and `location = /p` (or the host's Exact /p): element-wise.
        return PathConversion([{"path": {"type": "PathPrefix", "value": path}}])
    flt, compat = _nginx_paths()
    kind = "Exact" if path_type == "Exact" else "PathPrefix"
    if slash:
        why = f"nginx answers {path[:-1]!r} with a 301 to {path!r} (a location ending in '/')"
        if kind == "PathPrefix":
            why += f", and {path!r} doesn't match {path[:-1]!r}"
    else:
        why = f"ImplementationSpecific {path!r} is a prefix of characters in ingress-nginx ({path}x matches too)"
    return PathConversion([{"path": {"type": kind, "value": path}}], "exact",
                          f"{why}: kept through IngressNginxCompat pathMatching: IngressNginx (nginx's location "
                          f"semantics; Gateway API's {kind} can't say this)", filters=[flt], compat=compat)


def convert_path(path: str, path_type: str, ctx: PathContext,
                 annotations: Mapping[str, str] | None = None) -> PathConversion:
    """The HTTPRoute matches for one Ingress path, with the filters and compat objects they need,
    and whether they behave exactly alike. `annotations`: the path's Ingress's (keys without the
    prefix)."""
    s = settings(annotations or {})
    locs = _locations(path, path_type, s, ctx.exact_paths)
    if ctx.host_regex:
        why = "use-regex or rewrite-target on this host" if not (s.use_regex or any(loc.rewrite for loc in locs)) \
            else ("use-regex" if s.use_regex else "rewrite-target")
        if len(locs) == 2 and locs[0].rewrite == locs[1].rewrite:
            # `^/p/` and `^/p` side by side in nginx's order: together, `^/p` where /p sorts.
            locs = [_Location(path, locs[0].rewrite)]
        convs = [_regex_conversion(loc.path, loc.rewrite, s, why) for loc in locs]
    else:
        convs = [_plain_conversion(path, path_type)]
    first, rest = convs[0], convs[1:]
    for c in rest:  # the worst status, every detail
        if c.status != "exact" and first.status == "exact":
            first.status = c.status
        if c.detail and c.detail != first.detail:
            first.detail = "; ".join(d for d in (first.detail, c.detail) if d)
    first.also = [c for c in rest if c.matches]
    return first

