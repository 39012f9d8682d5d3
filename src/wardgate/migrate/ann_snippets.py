"""The snippet annotations: configuration-snippet, server-snippet and stream-snippet.

Whether ingress-nginx applied a snippet at all depends on its controller ConfigMap, so that is
decided first (internal/ingress/controller/store/store.go and controller.go, ingress-nginx v1.15):
1. `annotation-value-word-blocklist`: an annotation value containing a listed word makes the
   controller skip the whole Ingress;
2. `annotations-risk-level` (default High): snippets are Critical, so below Critical the
   controller ignores the whole Ingress (and the admission webhook rejects it);
3. `allow-snippet-annotations` (default false): when false the Ingress is served and only its
   snippets are dropped.
The other snippet annotations are converted elsewhere: modsecurity-snippet with the WAF
annotations, auth-snippet with auth-url.
"""

from __future__ import annotations

from wardgate.migrate.contrib import CatalogEntry, Contribution, Source
from wardgate.migrate.report import Finding
from wardgate.migrate.snippets import convert_snippet

# Go's strconv.ParseBool, which reads the ConfigMap's booleans.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}


def blocked_word(source: Source) -> str | None:
    """The first word of `annotation-value-word-blocklist` that one of the Ingress's annotation
    values contains (the controller splits the list at commas and does not trim the words)."""
    blocklist = source.config.get("annotation-value-word-blocklist", "")
    if not blocklist:
        return None
    words = blocklist.strip().split(",")
    for value in source.annotations.values():
        for word in words:
            if word in value:
                return word
    return None


def snippet_gate(key: str, source: Source) -> Contribution | None:
    """None when ingress-nginx applied the snippet `key`; otherwise what it did instead (nothing
    of the snippet, or not the Ingress at all), as a Contribution with one finding."""
    config = source.config
    risk = config.get("annotations-risk-level", "High")
    why = ""
    ignored = False
    if (word := blocked_word(source)) is not None:
        ignored = True
        why = (f"ingress-nginx skips this whole Ingress: an annotation value contains {word!r}, a word of the "
               "ConfigMap's annotation-value-word-blocklist")
    elif risk.lower() != "critical":
        ignored = True
        why = (f"ingress-nginx ignores this whole Ingress: {key} is a Critical-risk annotation and the ConfigMap's "
               f"annotations-risk-level is {risk or 'empty'} (the admission webhook rejects the Ingress; the "
               "controller skips it), so its hosts are not served by this Ingress")
    elif config.get("allow-snippet-annotations", "false") not in _TRUE:
        why = (f"ingress-nginx drops {key} (allow-snippet-annotations is not true) and serves the rest of the "
               "Ingress; migrate drops it too")
    if not why:
        return None
    finding = Finding(source.file, source.obj, key, "exact",
                      f"{why}: the same behaviour; to keep what the snippet says, allow snippets in ingress-nginx "
                      "first (allow-snippet-annotations: \"true\", annotations-risk-level: Critical) and migrate "
                      "again", source.ingress_class)
    return Contribution(ignore_ingress=why if ignored else "", findings=[finding])


def _configuration(key: str, value: str, source: Source) -> Contribution:
    return snippet_gate(key, source) or convert_snippet(value, annotation=key, source=source, level="location")


def _server(key: str, value: str, source: Source) -> Contribution:
    return snippet_gate(key, source) or convert_snippet(value, annotation=key, source=source, level="server")


def _stream(key: str, value: str, source: Source) -> Contribution:
    gated = snippet_gate(key, source)
    if gated is not None:
        return gated
    return Contribution(findings=[Finding(
        source.file, source.obj, key, "not-converted",
        "stream-snippet is configuration for nginx's stream (TCP/UDP) module; wardgate has no stream snippets: "
        "expose TCP or TLS services through a Gateway listener with a TLSRoute (TLS passthrough) and rebuild the "
        "rest by hand", source.ingress_class)])


CATALOG: dict[str, CatalogEntry] = {
    "configuration-snippet": CatalogEntry(
        "each directive converted on its own (response/request headers, allowed methods, IP lists, redirects, "
        "rewrites, refusals) into SecurityPolicy fields and HTTPRoute filters for the Ingress's rules; see "
        "docs/migration-snippets.md", _configuration),
    "server-snippet": CatalogEntry(
        "each directive converted on its own for every rule of the host; `location = /path { return ...; }` "
        "blocks become HTTPRoute rules of their own (direct responses, redirects); see docs/migration-snippets.md",
        _server),
    "stream-snippet": CatalogEntry(
        "not converted: nginx stream (TCP/UDP) configuration; use Gateway listeners and TLSRoutes", _stream),
}
