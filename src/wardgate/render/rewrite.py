"""Regex rewrites (ir.Rewrite "NginxRewrite", IngressNginxCompat rewriteTarget): nginx's
`rewrite <regex> <target> break` with ingress-nginx's semantics.

The rule may be served after an internal jump (a conditional match, a WAF route, per-backend
filters), where $uri is wardgate's own location, so the regex runs on $wg_uri: the client's
normalised path, kept by the server (`set $wg_uri $uri`, shared with the URL allowlist). An
http-level `map` computes the new path: map values take the captures as `rewrite` does, as they
are (`set` would escape them again when the request path had %-escapes). `rewrite ^ $var break`
then replaces the path, keeping the query string, and comes last among the place's rewrite-phase
directives (`break` ends them); proxy_pass without a URI part sends the new path, escaped, with
the query string.
"""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import Expr, Raw, rewrite_target_parts
from wardgate.render.emit import Directive, d, entry
from wardgate.render.paths import rewrite_regex
from wardgate.render.tables import Tables, var_name

KIND = "NginxRewrite"


def applies(action: ir.Action) -> bool:
    return action.rewrite is not None and action.rewrite.path_type == KIND


def directive(tables: Tables, action: ir.Action) -> Directive:
    """The `rewrite` that replaces the path: after every other rewrite-phase directive."""
    rw = action.rewrite
    assert rw is not None and rw.regex is not None and rw.path_value is not None
    var = var_name("wg_rw", action.id)
    # No match (never, for the rule's own requests): the path is left as the client's.
    ref = tables.add(var, Directive("map", (Raw("$wg_uri"), Raw("$" + var)), [
        entry("~" + rewrite_regex(rw.regex), Expr(rewrite_target_parts(rw.path_value))),
        d("default", Raw("$wg_uri"))]))
    return d("rewrite", Raw("^"), ref, Raw("break"))


def server_needs_uri(actions: list[ir.Action]) -> bool:
    """A server serving a regex rewrite keeps the client's path in $wg_uri."""
    return any(applies(a) for a in actions)


__all__ = ["applies", "directive", "server_needs_uri"]
