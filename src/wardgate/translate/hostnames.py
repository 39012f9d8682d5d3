"""Hostname matching and intersection, as the Gateway API defines them."""

from __future__ import annotations


def wildcard_covers(wild: str, host: str) -> bool:
    """`*.example.com` covers `a.example.com` and `a.b.example.com` (and narrower wildcards)."""
    suffix = wild[1:]  # ".example.com"
    target = host[1:] if host.startswith("*") else host
    return target.endswith(suffix) and len(target) > len(suffix)


def listener_matches(listener: str | None, host: str) -> bool:
    """Does a listener hostname accept requests for `host` (which may be a wildcard)?"""
    if not listener:
        return True
    if listener.startswith("*."):
        return host == listener or wildcard_covers(listener, host)
    return host == listener


def intersect(listener: str | None, route_hosts: list[str]) -> list[str]:
    """The hostnames a route serves through a listener; [] means they don't intersect.

    "" stands for "any host" (a listener and route both without hostnames).
    """
    if not route_hosts:
        return [listener or ""]
    if not listener:
        return list(route_hosts)
    out: list[str] = []
    for host in route_hosts:
        if host == listener or (listener.startswith("*.") and wildcard_covers(listener, host)):
            out.append(host)
        elif host.startswith("*.") and wildcard_covers(host, listener):
            out.append(listener)
    return list(dict.fromkeys(out))


def _overlap(a: str, b: str) -> bool:
    if not a or not b or a == b:
        return True
    return (a.startswith("*.") and wildcard_covers(a, b)) or (b.startswith("*.") and wildcard_covers(b, a))


def hostnames_overlap(a: list[str], b: list[str]) -> bool:
    """Could one request host be served by both lists ("" stands for any host)?"""
    return any(_overlap(x, y) for x in a for y in b)
def owner(listener_hosts: list[str], host: str) -> int | None:
    """Index of the listener hostname ("" for none) that owns `host` on a port: the most specific
    one that accepts it (listener isolation). "" as `host` is owned by a listener without one."""
    owners = [i for i, h in enumerate(listener_hosts) if listener_matches(h, host)]
    return min(owners, key=lambda i: specificity(listener_hosts[i]), default=None)


def specificity(host: str) -> tuple[int, int]:
    """Sort key, most specific first: exact names before wildcards, longer before shorter."""
    if not host:
        return (2, 0)
    if host.startswith("*"):
        return (1, -len(host))
    return (0, -len(host))


def covering_names(host: str) -> list[str]:
    """Every route hostname that covers `host`, most specific first: itself, each wildcard
    suffix, then "" (any host). Lets callers look up by name instead of scanning every route."""
    target = host[2:] if host.startswith("*.") else host
    labels = target.split(".")  # "" gives [""]: no wildcard suffix
    out = [host] if host else []
    out += ["*." + ".".join(labels[i:]) for i in range(1, len(labels))]
    out.append("")
    return out
