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


def path_regex(paths: tuple[ir.PathMatch, ...]) -> str:
    """One anchored PCRE matching any of the paths, with Gateway API semantics."""
    alts = []
    for p in paths:
        if p.type == "Exact":
            alts.append(regex_escape(p.value))
        elif p.type == "PathPrefix":
            # (?s:): everything under the prefix, newlines included, as nginx's prefix locations do.
            alts.append("(?s:.*)" if p.value == "/" else regex_escape(p.value) + "(?:/(?s:.*))?")
        else:
            alts.append(f"(?:{p.value})")
    limit = MATCH_LIMIT if any(p.type == "RegularExpression" for p in paths) else ""
    return limit + "^(?:" + "|".join(alts) + ")" + END
