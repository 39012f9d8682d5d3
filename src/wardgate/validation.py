"""What the model needs to know about the data plane's grammar, and nothing else.

The model validates every user string that reaches nginx, Lua or ModSecurity, so errors name the
object and field; the grammar itself (which characters are safe where) belongs to the data plane
(`wardgate.quoting`). The model asks through `Validators`; the package installs the data plane's
implementation once, at import (`wardgate/__init__.py`). NGINX Gateway Fabric hands its graph
data-plane validators for the same reason: the model doesn't import the config writer.

Every check returns its (unchanged) input or raises ValueError with a message for the user.
"""

from __future__ import annotations

from typing import Protocol


class Validators(Protocol):
    def hostname(self, host: str, *, wildcard: bool = True) -> str:
        """A Gateway API Hostname (optionally "*."-prefixed unless wildcard=False)."""
        ...

    def header_name(self, name: str) -> str:
        """A header name the data plane can set or remove."""
        ...

    def matchable_header_name(self, name: str) -> str:
        """A header name the data plane can also test."""
        ...

    def header_value(self, value: str, what: str = "header value") -> str:
        """A header value (set, added or matched) or a matched query value."""
        ...

    def text(self, value: str, what: str = "value", max_len: int = 4096) -> str:
        """Printable free text, no line breaks."""
        ...

    def path(self, path: str) -> str:
        """An Exact or PathPrefix path."""
        ...

    def regex(self, pattern: str) -> str:
        """A user regular expression the data plane can run safely (compiles, no ReDoS shapes)."""
        ...

    def literal_regex(self, value: str) -> str:
        """A regular expression matching exactly `value` (not a check: the model composes gRPC
        path patterns from service and method names)."""
        ...

    def no_zone(self, address: object, value: str) -> None:
        """An IP address or CIDR the data plane accepts (no IPv6 zone id)."""
        ...

    def waf_path(self, value: str) -> str:
        """A path that can become a WAF rule's operand."""
        ...

    def rewrite_target(self, value: str) -> str:
        """A regex rewrite's replacement: a path with capture references ($1..$9)."""
        ...

    def redirect_location(self, value: str) -> str:
        """A redirect's Location: an absolute http(s) URL, or a path."""
        ...

    def media_type(self, value: str) -> str:
        """A media type (`type/subtype`) the WAF can list as allowed."""
        ...


_installed: Validators | None = None


def install(validators: Validators) -> None:
    global _installed
    _installed = validators


def validators() -> Validators:
    if _installed is None:  # only if wardgate/__init__.py didn't run: never validate without checks
        raise RuntimeError("no data-plane validators installed (import wardgate first)")
    return _installed


__all__ = ["Validators", "install", "validators"]
