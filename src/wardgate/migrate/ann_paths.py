"""Path annotations: use-regex, rewrite-target, x-forwarded-prefix.

They change how every path of the host is read and served, so migrate/paths.py converts them path
by path (with findings per path); the handlers here check the values and report what the
annotation became for the Ingress as a whole.
"""

from __future__ import annotations

from wardgate.migrate.contrib import CatalogEntry, Contribution, Source
from wardgate.migrate.paths import XFP, settings
from wardgate.migrate.report import Finding, Status
from wardgate.validation import validators


def _one(source: Source, key: str, status: Status, detail: str) -> Contribution:
    return Contribution(findings=[Finding(source.file, source.obj, key, status, detail, source.ingress_class)])


def _use_regex(key: str, value: str, source: Source) -> Contribution:
    if value.strip().lower() not in ("true", "false"):
        return _one(source, key, "exact", f"{value!r} is not a boolean: false, as ingress-nginx reads it")
    if not settings(source.annotations).use_regex:
        return _one(source, key, "exact", "false: no effect")
    return _one(source, key, "exact",
                "every path of the Ingress's hosts (other Ingresses' too) becomes a RegularExpression match read "
                "as ingress-nginx's `~* \"^<path>\"` (case-insensitive, anchored at the start only, longest path "
                "first, the first match wins) through an IngressNginxCompat filter with pathMatching: "
                "IngressNginx; see each path's finding")


def _rewrite_target(key: str, value: str, source: Source) -> Contribution:
    try:
        validators().rewrite_target(value)
    except ValueError as exc:
        return _one(source, key, "not-converted",
                    f"{exc}: paths are served without the rewrite (wardgate rewrites to a path with captures $1 "
                    "to $9 only: no nginx variables, no query string)")
    return _one(source, key, "exact",
                f"IngressNginxCompat rewriteTarget {value!r} on the rules of paths other than {value!r}: nginx's "
                "`rewrite \"(?i)<path>\" <target> break` (the whole path replaced, captures from the path's "
                "regex, the query string kept); their hosts' paths become regexes as in ingress-nginx")


def _x_forwarded_prefix(key: str, value: str, source: Source) -> Contribution:
    s = settings(source.annotations)
    if not s.rewrite_target:
        return _one(source, key, "exact", "no effect without rewrite-target, as in ingress-nginx")
    if "$" in s.x_forwarded_prefix:
        return _one(source, key, "not-converted",
                    f"{value!r} holds an nginx variable or capture, which a header filter can't: not sent")
    try:
        validators().header_value(s.x_forwarded_prefix)
    except ValueError as exc:
        return _one(source, key, "not-converted", f"{exc}: not sent")
    return _one(source, key, "exact", f"RequestHeaderModifier set {XFP} on the rules that rewrite (the paths "
                                      "rewrite-target differs from), as ingress-nginx sends it only there")


CATALOG: dict[str, CatalogEntry] = {
    "use-regex": CatalogEntry("RegularExpression paths read as ingress-nginx's regex locations "
                              "(IngressNginxCompat pathMatching: IngressNginx) for the whole host", _use_regex),
    "rewrite-target": CatalogEntry("IngressNginxCompat rewriteTarget: nginx's rewrite with capture groups, query "
                                   "string kept; the host's paths become regexes", _rewrite_target),
    "x-forwarded-prefix": CatalogEntry("RequestHeaderModifier X-Forwarded-Prefix on the rules that rewrite",
                                       _x_forwarded_prefix),
}
