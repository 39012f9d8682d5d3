"""urlAllowlist (check 4): the client's path ($wg_uri, kept across internal redirects) must match."""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import Raw
from wardgate.render.emit import Directive, d
from wardgate.render.paths import path_regex


def check(p: ir.Policy) -> Directive:
    return Directive("if", (Raw("("), Raw("$wg_uri"), Raw("!~"), path_regex(p.allowlist), Raw(")")), [
        d("set", Raw("$wg_decision"), "url-allowlist"), d("return", p.allowlist_status)])


def server_directives() -> list[Directive]:
    """Checks may run after an internal redirect, where $uri is wardgate's: keep the client's."""
    return [d("set", Raw("$wg_uri"), Raw("$uri"))]
