"""Path matches as PCRE: the one place a Gateway API path match becomes a regex.

Every pattern ends in END (\\z, not $: PCRE's $ also matches before a final newline, and nginx
decodes %0a into $uri); patterns holding a user regex start with MATCH_LIMIT.
"""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import END, MATCH_LIMIT, regex_escape


def anchored(pattern: str) -> str:
    """A user regex that must match the whole subject."""
    return MATCH_LIMIT + f"^(?:{pattern})" + END


def under_prefix(prefix: str) -> str:
    """The prefix itself or anything below it, path-element-wise (no match for /pq under /p)."""
    return f"^{regex_escape(prefix)}(?:/|{END})"


def prefix_rest(prefix: str) -> str:
    """Captures in $1 what follows the prefix (ReplacePrefixMatch)."""
    return ("^(/.*)?" if prefix == "/" else f"^{regex_escape(prefix)}(/.*)?") + END


def nginx_regex(pattern: str) -> str:
    """An ingress-nginx regex location's pattern (`~* "^<path>"`): case-insensitive, anchored at
    the start only, `^` put before the user regex exactly as ingress-nginx does (so a top-level
    `|` alternative is not anchored there either)."""
    return MATCH_LIMIT + "(?i)^" + pattern


def char_prefix(prefix: str) -> str:
    """Paths starting with `prefix`, character by character, as nginx's prefix locations match."""
    return "^" + regex_escape(prefix)


def match_regex(p: ir.PathMatch) -> str:
    """The regex a path match tests the request path with."""
    if p.type == "NginxRegex":
        return nginx_regex(p.value)
    if p.type == "RegularExpression":
        return anchored(p.value)
    if p.type == "NginxPrefix":
        return char_prefix(p.value)
    if p.type == "Exact":
        return f"^{regex_escape(p.value)}{END}"
    return "^" if p.value == "/" else under_prefix(p.value)


def rewrite_regex(p: ir.PathMatch) -> str:
    """The regex of a regex rewrite (ir.Rewrite "NginxRewrite"), whose captures the target uses.
    ingress-nginx writes `rewrite "(?i)<path>"`, unanchored; other paths rewrite with their own
    match's regex."""
    return MATCH_LIMIT + "(?i)" + p.value if p.type == "NginxRegex" else match_regex(p)


def path_regex(paths: tuple[ir.PathMatch, ...]) -> str:
    """One anchored PCRE matching any of the paths, with Gateway API semantics."""
    alts = []
    for p in paths:
        if p.type == "Exact":
            alts.append(regex_escape(p.value))
        elif p.type == "PathPrefix":
            # (?s:): everything under the prefix, newlines included, as nginx's prefix locations do.
            alts.append("(?s:.*)" if p.value == "/" else regex_escape(p.value) + "(?:/(?s:.*))?")
        elif p.type == "RegularExpression":
            alts.append(f"(?:{p.value})")
        else:  # policies hold Gateway API paths only
            raise ValueError(f"no policy path of type {p.type}")
    limit = MATCH_LIMIT if any(p.type == "RegularExpression" for p in paths) else ""
    return limit + "^(?:" + "|".join(alts) + ")" + END
