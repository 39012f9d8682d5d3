"""allowedMethods: 405 (check 3) with an Allow header (unless methodNotAllowed.allowHeader is
false), from a hash lookup on the method."""

from __future__ import annotations

from wardgate.quoting import Raw, Text
from wardgate.render.emit import Directive, d, map_entry
from wardgate.render.tables import Tables


def check(tables: Tables, methods: tuple[str, ...], pid: int) -> Directive:
    """A variable that is 1 for a method not in `methods`: a hash lookup, not a regex. nginx
    answers 400 to methods that are not upper case, so the map's case folding can't matter."""
    var = f"wg_method{int(pid)}"
    ref = tables.add(var, Directive("map", (Raw("$request_method"), Raw("$" + var)),
                                    [d("default", 1), *(map_entry(m, "") for m in methods)]))
    return Directive("if", (Raw("("), ref, Raw(")")), [d("set", Raw("$wg_decision"), "method"), d("return", 405)])


def allow_header(methods: tuple[str, ...]) -> Directive:
    return d("more_set_headers", Raw("-s"), 405, Text("Allow: " + ", ".join(methods)))
