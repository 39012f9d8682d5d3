"""ingress-nginx snippet annotations (configuration-snippet, server-snippet) to wardgate features.

A snippet is nginx configuration pasted into the place ingress-nginx gives it: a
configuration-snippet into every `location` of the Ingress (after the directives nginx.tmpl writes
there itself), a server-snippet into the host's `server` block. It is read with crossplane inside
that block, so what nginx would refuse is refused here too, and each directive becomes the wardgate
feature with the same answers (a SecurityPolicy field, an HTTPRoute filter, a rule of its own) or is
reported with why not and what to do. nginx and nginx.tmpl are the reference: every finding says
where wardgate differs.

Every value taken from a snippet is checked by the model that will carry it (header names and
values, paths, hostnames, CIDRs, bodies) before it goes into the Contribution; a line whose value
the model refuses is reported, never passed on.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from crossplane.analyzer import analyze, enter_block_ctx
from crossplane.errors import NgxParserBaseException
from crossplane.ext.lua import LuaBlockPlugin
from crossplane.lexer import _balance_braces, _lex_file_object
from pydantic import BaseModel, ValidationError

from wardgate.migrate.contrib import Contribution, ExtraRule, Source
from wardgate.migrate.report import Finding, Status
from wardgate.model.gatewayapi import HTTPPathMatch, HTTPRouteFilter
from wardgate.model.policies import DirectResponse, PolicyHeader, PolicyHeaderFilter, SecurityPolicySpec

Level = Literal["server", "location"]

# nginx lexes `*_by_lua_block { ... }` bodies as Lua (braces in Lua strings don't count); without
# this crossplane would misread them and report a brace error nginx never gives.
LuaBlockPlugin().register_extension()

# A regular expression that matches no path: a urlAllowlist that allows nothing, for an answer
# nginx gave to every request of a place (`return 403;`).
NOTHING = r"[^\s\S]"
# The methods a wardgate allowedMethods list can name (Gateway API's HTTPMethod).
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
# Statuses nginx's add_header and expires act on without `always` (ngx_http_headers_filter).
SUCCESS_STATUSES = (200, 201, 204, 206, 301, 302, 303, 304, 307, 308)
_SUCCESS = ", ".join(map(str, SUCCESS_STATUSES))
REDIRECT_STATUSES = (301, 302, 303, 307, 308)

# Directives nginx.tmpl writes in every location of an Ingress (a scalar slot each): nginx refuses
# a second one in the same block (`"X" directive is duplicate`), so a configuration-snippet with
# one never loaded. At server level they are valid but those per-location values override them.
PER_LOCATION = {
    "client_max_body_size": "proxy-body-size",
    "proxy_connect_timeout": "proxy-connect-timeout",
    "proxy_send_timeout": "proxy-send-timeout",
    "proxy_read_timeout": "proxy-read-timeout",
    "proxy_buffering": "proxy-buffering",
    "proxy_buffer_size": "proxy-buffer-size",
    "proxy_buffers": "proxy-buffers-number",
    "proxy_request_buffering": "proxy-request-buffering",
    "proxy_http_version": "proxy-http-version",
    "proxy_next_upstream": "proxy-next-upstream",
    "proxy_next_upstream_timeout": "proxy-next-upstream-timeout",
    "proxy_next_upstream_tries": "proxy-next-upstream-tries",
    "proxy_cookie_domain": "proxy-cookie-domain",
    "proxy_cookie_path": "proxy-cookie-path",
    "port_in_redirect": "use-port-in-redirects",
    "rewrite_by_lua_block": "",
    "rewrite_by_lua_file": "",
    "header_filter_by_lua_block": "",
    "header_filter_by_lua_file": "",
    "log_by_lua_block": "",
    "log_by_lua_file": "",
}
# Request headers nginx.tmpl sets with proxy_set_header in every location. The value it sends for
# these comes from nginx variables, not from the client's header of the same name.
TEMPLATE_PROXY_HEADERS = frozenset({
    "host", "upgrade", "connection", "x-request-id", "x-real-ip", "x-forwarded-for", "x-forwarded-host",
    "x-forwarded-port", "x-forwarded-proto", "x-forwarded-scheme", "x-scheme", "x-original-forwarded-for",
    "x-original-forwarded-host", "proxy"})
# ...of which these never come from the incoming header of the same name (the connection, the
# Host header, X-Forwarded-For / X-Forwarded-Host), so changing that header had no effect.
_COMPUTED_PROXY_HEADERS = frozenset({
    "x-real-ip", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto", "x-forwarded-scheme", "x-scheme",
    "proxy", "x-original-forwarded-for", "x-original-forwarded-host"})

# nginx variables a header value may be, and the wardgate valueFrom with the same value.
VALUE_FROM: dict[str, tuple[str, str]] = {
    "remote_addr": ("ClientIP", ""),
    "request_id": ("RequestID", ""),
    "req_id": ("RequestID", "a client's own X-Request-ID is not kept (ingress-nginx's $req_id reused it)"),
    "host": ("Host", ""),
    "scheme": ("Scheme", ""),
    "pass_access_scheme": ("Scheme", ""),
    "http_host": ("Host", "without the port the client's Host header had"),
    "best_http_host": ("Host", "without the port the client's Host header had"),
}
_VAR = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")

# Directives with nothing in wardgate, and what to do instead.
ADVICE: dict[str, str] = {
    "set": "wardgate has no configuration variables; express the condition or value that uses it directly",
    "proxy_pass": "the backend comes from the HTTPRoute's backendRefs; point the Ingress at the right Service",
    "proxy_pass_header": "wardgate passes the backend's headers on unless a policy removes them",
    "proxy_redirect": "wardgate does not rewrite Location headers; have the backend send the right one",
    "proxy_intercept_errors": "use custom-http-errors / default-backend (migrated to custom error pages)",
    "error_page": "use custom-http-errors / default-backend (migrated to custom error pages)",
    "auth_basic": "use the auth-type: basic annotation (migrated to basic auth)",
    "auth_basic_user_file": "use the auth-type: basic annotation (migrated to basic auth)",
    "auth_request": "use the auth-url annotation (migrated to external auth)",
    "limit_req": "use limit-rps / limit-rpm (migrated to a RateLimitPolicy), or write one",
    "limit_conn": "use limit-connections; wardgate has no concurrent-connection limit",
    "gzip": "wardgate does not compress answers; a backend's own compression passes through unchanged",
    "gzip_types": "wardgate does not compress answers; a backend's own compression passes through unchanged",
    "sub_filter": "wardgate does not rewrite response bodies; change the backend",
    "charset": "wardgate does not change Content-Type charsets; set it in the backend",
    "internal": "wardgate has no internal-only locations",
    "modsecurity_rules": "use a SecurityPolicy waf (modsecurity-snippet is migrated there)",
    "modsecurity": "use a SecurityPolicy waf (enable-modsecurity is migrated there)",
    "access_log": "logging only, answers are unchanged; wardgate writes its decision log for every request",
    "error_log": "logging only, answers are unchanged",
    "log_not_found": "logging only, answers are unchanged",
    "rewrite_log": "logging only, answers are unchanged",
    "satisfy": "wardgate runs every check a request is subject to",
    "proxy_ssl_verify": "use a BackendTLSPolicy",
    "proxy_ssl_name": "use a BackendTLSPolicy",
    "proxy_ssl_server_name": "use a BackendTLSPolicy",
    "grpc_pass": "use a GRPCRoute",
    "mirror": "use an HTTPRoute RequestMirror filter",
    "resolver": "wardgate resolves backends from EndpointSlices",
    "ssl_ciphers": "TLS settings belong to the Gateway listener (tls.options)",
    "ssl_protocols": "TLS settings belong to the Gateway listener (tls.options)",
}

_BLOCKS = frozenset({"if", "location", "limit_except"})
# nginx's rewrite module: run in order in the rewrite phase, so nothing after a `return` runs.
_REWRITE_PHASE = frozenset({"if", "return", "rewrite", "set", "break"})
# Lines that change only what is logged: they don't stop a location from converting.
_LOGGING = frozenset({"access_log", "error_log", "log_not_found", "rewrite_log"})
_SEVERITY: dict[Status, int] = {"exact": 0, "converted-with-difference": 1, "not-converted": 2, "unknown": 3}
_MODELS: dict[str, type[BaseModel]] = {}


# --- reading the snippet ------------------------------------------------------------------------


@dataclass(frozen=True)
class Stmt:
    """One directive: name, arguments as nginx hands them over (unescaped), snippet line, block."""

    name: str
    args: tuple[str, ...]
    line: int
    block: tuple[Stmt, ...] | None = None


class SnippetSyntaxError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def nginx_unescape(token: str) -> str:
    """ngx_conf_read_token's unescaping: `\\"`, `\\'`, `\\\\` lose the backslash, `\\t`, `\\r`,
    `\\n` become control characters, any other backslash pair stays as it is."""
    if "\\" not in token:
        return token
    out: list[str] = []
    i = 0
    while i < len(token):
        c = token[i]
        if c == "\\" and i + 1 < len(token):
            nxt = token[i + 1]
            if nxt in "\"'\\":
                out.append(nxt)
                i += 2
                continue
            if nxt in "trn":
                out.append({"t": "\t", "r": "\r", "n": "\n"}[nxt])
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)


# The blocks ingress-nginx puts a snippet in, opened on the snippet's first line so the line
# numbers are the snippet's own: (before, after, how many blocks deep the snippet is).
_WRAP = {"location": ("http{server{location /{", "\n}}}", 3), "server": ("http{server{", "\n}}", 2)}


def parse_snippet(text: str, level: Level) -> tuple[Stmt, ...]:
    """The snippet's directives, as nginx reads them in that block. Raises SnippetSyntaxError
    with the first error nginx would report (syntax, a directive not allowed there, a wrong number
    of arguments). crossplane lexes (Lua blocks included) and checks each directive against what
    nginx allows; the text never touches the filesystem and `include` is never followed."""
    if len(text) > _CACHED_SIZE:
        return _parse(text, level)
    parsed = _parse_cached(text, level)
    if isinstance(parsed, SnippetSyntaxError):
        raise SnippetSyntaxError(parsed.line, parsed.message)
    return parsed


# Clusters copy the same snippet into many Ingresses, and crossplane's lexer reads one character
# at a time: the parse of small snippets is kept (results are immutable).
_CACHED_SIZE = 8192


@functools.lru_cache(maxsize=1024)
def _parse_cached(text: str, level: Level) -> tuple[Stmt, ...] | SnippetSyntaxError:
    try:
        return _parse(text, level)
    except SnippetSyntaxError as exc:
        return exc


def _parse(text: str, level: Level) -> tuple[Stmt, ...]:
    head, tail, depth = _WRAP[level]
    lines = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    tokens = _balance_braces(_lex_file_object(io.StringIO(head + text + tail)))
    try:
        block = _block(tokens, ())
    except NgxParserBaseException as exc:
        raise SnippetSyntaxError(min(exc.lineno or lines, lines), exc.strerror) from None
    except (StopIteration, RuntimeError):
        raise SnippetSyntaxError(lines, "unexpected end of file, expecting \";\" or \"}\"") from None
    for _ in range(depth):
        inner = block[0].block if block else None
        if inner is None:  # a stray "}" closed ingress-nginx's block early
            raise SnippetSyntaxError(lines, "unexpected \"}\"")
        block = inner
    return block


def _block(tokens: Iterator[tuple[str, int, bool]], ctx: tuple[str, ...]) -> tuple[Stmt, ...]:
    """Directives up to the "}" that closes `ctx` (or the end), like crossplane's parser."""
    out: list[Stmt] = []
    for token, line, quoted in tokens:
        if token == "}" and not quoted:
            break
        if token.startswith("#") and not quoted:
            continue
        stmt: dict[str, Any] = {"directive": token, "line": line, "args": []}
        token, _, quoted = next(tokens)
        while token not in ("{", ";", "}") or quoted:
            if quoted or not token.startswith("#"):
                stmt["args"].append(token)
            token, _, quoted = next(tokens)
        if stmt["directive"] == "if":
            _if_args(stmt["args"])
        analyze("snippet", stmt, token, ctx, strict=False, check_ctx=True, check_args=True)
        if token == "}":
            raise SnippetSyntaxError(line, "unexpected \"}\"")
        block = _block(tokens, enter_block_ctx(stmt, ctx)) if token == "{" else None
        out.append(Stmt(nginx_unescape(stmt["directive"]), tuple(nginx_unescape(a) for a in stmt["args"]), line,
                        block))
    return tuple(out)


def _if_args(args: list[str]) -> None:
    """`if (a op b)`: the parentheses are not part of the arguments."""
    if args and args[0].startswith("(") and args[-1].endswith(")"):
        args[0] = args[0][1:].lstrip()
        args[-1] = args[-1][:-1].rstrip()
        args[:] = [a for i, a in enumerate(args) if a or 0 < i < len(args) - 1]


# --- what a place accumulates ---------------------------------------------------------------------

Value = dict[str, Any]  # {"value": ...} or {"valueFrom": ...}, and "statuses" for add_header's
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class _Ops:
    """Header operations of one kind in nginx order: for each name the last operation decides."""

    ops: dict[str, tuple[str, str, Value | None]] = field(default_factory=dict)  # lower -> (op, Name, value)
    adds: list[tuple[str, Value]] = field(default_factory=list)

    def set(self, name: str, value: Value) -> None:
        self.ops[name.lower()] = ("set", name, value)

    def remove(self, name: str) -> None:
        self.ops[name.lower()] = ("remove", name, None)

    def dump(self, hidden: Mapping[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        sets = [{"name": n, **v} for op, n, v in self.ops.values() if op == "set" and v is not None]
        adds = [{"name": n, **v} for n, v in self.adds]
        removes = [n for op, n, _ in self.ops.values() if op == "remove"]
        # proxy_hide_header hides the backend's copy only: moot for a name the gateway sets.
        removes += [n for low, n in (hidden or {}).items() if low not in self.ops and low not in
                    {a.lower() for a, _ in self.adds}]
        if sets:
            out["set"] = sets
        if adds:
            out["add"] = adds
        if removes:
            out["remove"] = removes
        return out


@dataclass
class _Place:
    """What one nginx block (the Ingress's locations, the host's server, a snippet location) ends
    up doing, in wardgate terms."""

    kind: Literal["location", "server", "own"]
    response: _Ops = field(default_factory=_Ops)
    response_adds_lines: list[int] = field(default_factory=list)  # add_header lines (inheritance)
    success_only: list[tuple[int, str, Value]] = field(default_factory=list)  # add_header without always
    hidden: dict[str, str] = field(default_factory=dict)  # proxy_hide_header
    request_input: _Ops = field(default_factory=_Ops)  # more_set/clear_input_headers
    request_proxy: _Ops = field(default_factory=_Ops)  # proxy_set_header: wins over the above
    methods: list[str] | None = None
    ip_rules: list[tuple[list[Net], bool, int]] = field(default_factory=list)
    refuse: int | None = None  # a status every request of the place gets (urlAllowlist of nothing)
    direct: dict[str, Any] | None = None
    content_type: str | None = None
    filters: list[dict[str, Any]] = field(default_factory=list)
    rules: list[ExtraRule] = field(default_factory=list)
    answered_at: int | None = None  # line of an unconditional return: nothing after it runs
    methods_line: int | None = None  # the first `if ($request_method ...)` method limit

    def security(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        request = _Ops(dict(self.request_input.ops), list(self.request_input.adds))
        request.ops.update(self.request_proxy.ops)
        if dumped := request.dump():
            out["requestHeaders"] = dumped
        if dumped := self.response.dump(self.hidden):
            out["responseHeaders"] = dumped
        if self.methods is not None:
            out.update(method_limit(self.methods))
        if access := ip_access([(nets, allow) for nets, allow, _ in self.ip_rules]):
            out["ipAccess"] = access
        if self.refuse is not None:
            out["urlAllowlist"] = {"paths": [{"type": "RegularExpression", "value": NOTHING}], "status": self.refuse}
        if self.direct is not None:
            out["directResponses"] = [self.direct]
        return out


def ip_access(rules: list[tuple[list[Net], bool]]) -> dict[str, Any]:
    """nginx's allow/deny (the first rule that matches decides; no match allows) as wardgate's
    ipAccess (the longest matching prefix decides; a non-empty allow list denies the rest).

    CIDRs either nest or are disjoint. A rule inside an earlier rule's network never decides, so it
    is dropped; of the rules left, an earlier one is never wider than a later one it overlaps, so
    the longest prefix is the first match. nginx's default (allow) is kept by allowing 0.0.0.0/0
    and ::/0 when some rule allows and no rule covers everything."""
    kept: list[tuple[Net, bool]] = []
    for nets, allowed in rules:
        for net in nets:
            if not any(net.version == k.version and net.subnet_of(k) for k, _ in kept):  # type: ignore[arg-type]
                kept.append((net, allowed))
    allow = [str(n) for n, a in kept if a]
    deny = [str(n) for n, a in kept if not a]
    if allow:
        for everything in ("0.0.0.0/0", "::/0"):
            if everything not in allow and everything not in deny:
                allow.append(everything)
    out: dict[str, Any] = {}
    if allow:
        out["allow"] = allow
    if deny:
        out["deny"] = deny
    return out


# --- converting -------------------------------------------------------------------------------------


@dataclass
class _Result:
    status: Status
    detail: str


def _exact(detail: str) -> _Result:
    return _Result("exact", detail)


def _diff(detail: str) -> _Result:
    return _Result("converted-with-difference", detail)


def _no(detail: str) -> _Result:
    return _Result("not-converted", detail)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def _invalid(model: type[BaseModel], data: Any) -> str | None:
    """Why the model refuses `data`, or None."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return _first_error(exc)
    return None


def value_of(raw: str) -> tuple[Value | None, str]:
    """A header value from nginx text: ({"value"}|{"valueFrom"}, difference note), or (None, why)."""
    if "$" not in raw:
        return {"value": raw}, ""
    m = _VAR.fullmatch(raw)
    name = (m.group(1) or m.group(2)) if m else None
    if name in VALUE_FROM:
        kind, note = VALUE_FROM[name]
        return {"valueFrom": kind}, note
    names = sorted({v.group(1) or v.group(2) for v in _VAR.finditer(raw)})
    return None, ("its value uses nginx variables (" + ", ".join("$" + n for n in names) + "): a wardgate header is "
                  "fixed text or valueFrom one of ClientIP ($remote_addr), RequestID ($request_id), Host ($host), "
                  "Scheme ($scheme); set a fixed value, or let the backend add it")


def method_limit(methods: list[str]) -> dict[str, Any]:
    """A snippet's method limit: nginx's `return 405` (or limit_except's 403) sent no Allow header."""
    return {"allowedMethods": list(methods), "methodNotAllowed": {"allowHeader": False}}


def _header(name: str, value: Value) -> str | None:
    return _invalid(PolicyHeader, {"name": name, **value})


def _header_name(name: str) -> str | None:
    return _invalid(PolicyHeaderFilter, {"remove": [name]})


_HSTS_ITEM = re.compile(r"\s*(max-age\s*=\s*\"?([0-9]+)\"?|includesubdomains|preload)\s*", re.I)


def hsts_value(value: str) -> tuple[int, bool, bool] | None:
    """(max-age, includeSubDomains, preload) of a Strict-Transport-Security value, if well-formed."""
    age, sub, pre = None, False, False
    for part in value.split(";"):
        if not part.strip():
            continue
        m = _HSTS_ITEM.fullmatch(part)
        if not m:
            return None
        if m.group(2) is not None:
            age = int(m.group(2))
        elif m.group(1).lower() == "preload":
            pre = True
        else:
            sub = True
    return (age, sub, pre) if age is not None else None


@dataclass
class _HeaderSpec:
    name: str
    value: str | None  # None: clear


def _more_args(args: tuple[str, ...], allowed: str) -> tuple[dict[str, list[str]], list[str], str]:
    """headers-more options (-s, -t with a list; -a, -r flags) and the header arguments."""
    opts: dict[str, list[str]] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-s", "-t") and a[1] in allowed:
            if i + 1 >= len(args):
                return opts, rest, f"option {a} needs a value"
            opts.setdefault(a[1], []).extend(args[i + 1].split())
            i += 2
            continue
        if a in ("-a", "-r") and a[1] in allowed:
            opts.setdefault(a[1], [])
            i += 1
            continue
        if a.startswith("-"):
            return opts, rest, f"unknown option {a}"
        rest.append(a)
        i += 1
    return opts, rest, "" if rest else "no header given"


def _combine(label: str, results: list[_Result], notes: list[str]) -> _Result:
    """One line's result from the results of its parts (the worst status wins) and notes that
    make every converted part a difference."""
    status = max((r.status for r in results), key=lambda x: _SEVERITY[x])
    if notes and status == "exact":
        status = "converted-with-difference"
    return _Result(status, f"{label}: " + "; ".join([r.detail for r in results] + notes))


def _spec(arg: str) -> _HeaderSpec:
    name, colon, value = arg.partition(":")
    value = value.lstrip(" \t")
    return _HeaderSpec(name.strip(), value if colon and value else None)


class _Converter:
    def __init__(self, annotation: str, source: Source, level: Level) -> None:
        self.annotation = annotation
        self.source = source
        self.level = level
        self.results: dict[int, list[_Result]] = {}
        self.top = _Place(level)
        # server-snippet locations: (statement, what it does, exact, path, lines that failed)
        self.locations: list[tuple[Stmt, _Place, bool, str, list[int]]] = []
        # Rules the gateway answers (rewrite ... redirect), with their line: they get the place's
        # headers, and its method limit when that came first (the rewrite phase runs in order).
        self.answers: list[tuple[ExtraRule, int]] = []
        ann = source.annotations
        self.ip_lists = [k for k in ("whitelist-source-range", "allowlist-source-range", "denylist-source-range")
                         if ann.get(k, "").strip()]
        self.cors = ann.get("enable-cors", "").strip().lower() == "true"

    # -- bookkeeping

    def note(self, line: int, result: _Result) -> None:
        self.results.setdefault(line, []).append(result)

    def skip_block(self, st: Stmt, why: str, result: Callable[[str], _Result] = lambda d: _no(d)) -> None:
        """Every line inside a block that is not converted as a whole."""
        for inner in st.block or ():
            self.note(inner.line, result(f"{inner.name}: {why}"))
            self.skip_block(inner, why, result)

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for line in sorted(self.results):
            results = self.results[line]
            status = max((r.status for r in results), key=lambda s: _SEVERITY[s])
            out.append(Finding(self.source.file, self.source.obj, f"{self.annotation} line {line}", status,
                               " | ".join(r.detail for r in results), self.source.ingress_class))
        return out

    # -- walking

    def run(self, stmts: tuple[Stmt, ...]) -> None:
        for st in stmts:
            answered = self.top.answered_at
            if answered is not None and st.name in _REWRITE_PHASE:
                why = f"never runs (line {answered} answers every request first)"
                self.note(st.line, _exact(f"{st.name}: {why}; nothing to convert"))
                self.skip_block(st, why, _exact)
                continue
            self.note(st.line, self.directive(st, self.top))

    def directive(self, st: Stmt, place: _Place) -> _Result:
        handler = _HANDLERS.get(st.name)
        if handler is not None and (st.block is not None) != (st.name in _BLOCKS):
            self.skip_block(st, f"inside `{st.name}` on line {st.line}, which nginx refuses")
            return _no(f"{st.name}: nginx refuses it " + ("with a block" if st.block is not None else "without one"))
        if handler is not None:
            return handler(self, st, place)
        if st.name in PER_LOCATION:
            return self.per_location(st, place)
        why = ADVICE.get(st.name, "no wardgate equivalent; remove it, or rebuild what it does with a policy or "
                                  "HTTPRoute filter")
        if st.block is not None:
            self.skip_block(st, f"inside `{st.name}` on line {st.line}, which is not converted")
        return _no(f"{st.name}: {why}")

    def per_location(self, st: Stmt, place: _Place) -> _Result:
        ann = PER_LOCATION[st.name]
        instead = f"; the {ann} annotation sets it (and is migrated)" if ann else ""
        if place.kind == "location":
            return _no(f"{st.name}: nginx refuses this snippet (\"{st.name}\" directive is duplicate): ingress-nginx "
                       f"writes {st.name} in every location itself, so the admission webhook rejected the Ingress "
                       f"or the controller could not reload{instead}")
        return _exact(f"{st.name}: no effect in ingress-nginx (each of its locations sets {st.name} itself, which "
                      f"overrides the server's); nothing to convert{instead}")

    # -- headers

    def more_set_headers(self, st: Stmt, place: _Place) -> _Result:
        opts, specs, err = _more_args(st.args, "sta")
        if err:
            return _no(f"more_set_headers: {err}")
        notes: list[str] = []
        if opts.get("s"):
            notes.append(f"nginx set it only on status {' '.join(opts['s'])}; wardgate sets it on every status")
        if opts.get("t"):
            notes.append(f"nginx set it only for Content-Type {' '.join(opts['t'])}; wardgate for every type")
        results = [self.response_header(st, place, _spec(arg), append="a" in opts) for arg in specs]
        return _combine("more_set_headers", results, notes)

    def response_header(self, st: Stmt, place: _Place, spec: _HeaderSpec, append: bool) -> _Result:
        """One header of a more_set_headers line."""
        name = spec.name
        if spec.value is None:
            if why := _header_name(name):
                return _no(f"header {name!r}: {why}")
            place.response.remove(name)
            return _exact(f"responseHeaders.remove {name}{self.where(place)}")
        if name.lower() == "strict-transport-security":
            return self.hsts(spec.value)
        value, note = value_of(spec.value)
        if value is None:
            return _no(f"{name}: {note}")
        if why := _header(name, value):
            return _no(why)
        if place.kind == "own" and name.lower() == "content-type" and "value" in value:
            if why := _invalid(DirectResponse, {"path": "/", "contentType": value["value"]}):
                return _no(f"Content-Type {value['value']!r}: {why}")
            place.content_type = value["value"]
            return _exact(f"contentType {value['value']} of the answer")
        if append:
            place.response.adds.append((name, value))
        else:
            place.response.set(name, value)
        shown = value.get("value", "valueFrom " + value.get("valueFrom", ""))
        what = (f"responseHeaders.{'add' if append else 'set'} {name}: {shown}{self.where(place)}, on every status "
                "like headers-more")
        return _diff(f"{what}; {note}") if note else _exact(what)

    def where(self, place: _Place) -> str:
        return {"location": " (the Ingress's rules)", "server": " (every rule of the host)",
                "own": " (this location's rule)"}[place.kind]

    def more_clear_headers(self, st: Stmt, place: _Place) -> _Result:
        opts, names, err = _more_args(st.args, "st")
        if err:
            return _no(f"more_clear_headers: {err}")
        notes = []
        if opts.get("s"):
            notes.append(f"nginx cleared it only on status {' '.join(opts['s'])}; wardgate on every status")
        if opts.get("t"):
            notes.append(f"nginx cleared it only for Content-Type {' '.join(opts['t'])}; wardgate for every type")
        for name in names:
            if name.endswith("*"):
                return _no(f"more_clear_headers: {name!r} is a wildcard; wardgate removes headers by exact name: "
                           "list the names the backend sends")
            if why := _header_name(name):
                return _no(f"more_clear_headers: {why}")
        for name in names:
            place.response.remove(name)
        what = f"responseHeaders.remove {', '.join(names)}{self.where(place)}"
        return _diff(f"more_clear_headers: {what}; " + "; ".join(notes)) if notes else _exact(
            f"more_clear_headers: {what}")

    def add_header(self, st: Stmt, place: _Place) -> _Result:
        if len(st.args) == 3 and st.args[2] != "always":
            return _no(f"add_header: unknown third argument {st.args[2]!r}")
        name, raw = st.args[0], st.args[1]
        always = len(st.args) == 3
        if name.lower() == "strict-transport-security":
            result = self.hsts(raw)
            return _Result(result.status, f"add_header {result.detail}")
        if raw == "":
            return _exact(f"add_header {name}: an empty value adds nothing in nginx; nothing to convert")
        value, note = value_of(raw)
        if value is None:
            return _no(f"add_header {name}: {note}")
        if why := _header(name, value):
            return _no(f"add_header: {why}")
        notes = [note] if note else []
        if place.kind == "own" and name.lower() == "content-type" and "value" in value:
            if why := _invalid(DirectResponse, {"path": "/", "contentType": value["value"]}):
                return _no(f"add_header: Content-Type {value['value']!r}: {why}")
            place.content_type = value["value"]
            return _diff(f"add_header Content-Type: contentType {value['value']} of the answer; nginx sent a second "
                         "Content-Type line (default_type's) beside this one, wardgate sends only this one")
        if place.kind == "own" and not always:
            # A snippet location answers one fixed status: whether nginx added it is known then.
            place.success_only.append((st.line, name, value))
            return _exact(f"add_header {name}: responseHeaders.add {name} if the answer's status is one nginx adds "
                          "it to without `always`")
        if not always:
            value = {**value, "statuses": list(SUCCESS_STATUSES)}
        place.response.adds.append((name, value))
        place.response_adds_lines.append(st.line)
        if place.kind == "location":
            server = self.source.annotations.get("server-snippet", "")
            if re.search(r"(^|[;{}\s])add_header\s", server):
                notes.append("in ingress-nginx this location's add_header lines replaced the server-snippet's "
                             "add_header ones (nginx inheritance); wardgate keeps both")
        if place.kind == "server":
            notes.append("ingress-nginx dropped it in locations with an add_header of their own (a "
                         "configuration-snippet's, auth-url's Set-Cookie); wardgate adds it on every rule of the host")
        what = f"add_header {name}: responseHeaders.add {name}{self.where(place)}" + (
            "" if always else f" on status {_SUCCESS} (statuses), as nginx without `always`")
        return _diff(f"{what}; " + "; ".join(notes)) if notes else _exact(what)

    def hsts(self, raw: str) -> _Result:
        """A Strict-Transport-Security header: wardgate's HSTS is per listener."""
        parsed = hsts_value(raw)
        if parsed is None:
            return _no(f"Strict-Transport-Security: {raw!r} is not a valid HSTS value")
        age, sub, pre = parsed
        wanted = f"hsts: {{maxAge: {age}, includeSubDomains: {str(sub).lower()}, preload: {str(pre).lower()}}}"
        if (age, sub, pre) == (31536000, True, False):
            return _diff("Strict-Transport-Security: wardgate's default HSTS has this value and is sent on every "
                         "HTTPS answer (error pages and the gateway's own answers too); not over plain HTTP, where "
                         "browsers ignore it")
        return _no(f"Strict-Transport-Security: wardgate sends HSTS from a SecurityPolicy's `hsts`, not as a header: "
                   f"put `{wanted}` in a SecurityPolicy targeting the HTTPS listener that serves this host (every "
                   "host of that listener), or the Ingress's HTTPRoute (its rules only)")

    def proxy_set_header(self, st: Stmt, place: _Place) -> _Result:
        name, raw = st.args
        if place.kind == "server":
            return _exact(f"proxy_set_header {name}: no effect in ingress-nginx (each of its locations has its own "
                          "proxy_set_header list, which replaces the server's); nothing to convert")
        if place.kind == "own":
            return _exact(f"proxy_set_header {name}: no effect (this location proxies nothing)")
        notes = []
        if name.lower() in TEMPLATE_PROXY_HEADERS:
            notes.append(f"ingress-nginx sets {name} itself in every location, so nginx sent the backend two {name} "
                         "lines (its own, then this one); wardgate sends only this one")
        if raw == "":
            if why := _header_name(name):
                return _no(f"proxy_set_header: {why}")
            place.request_proxy.remove(name)
            what = f"proxy_set_header {name} \"\": requestHeaders.remove {name} (nginx sends no empty header)"
            return _diff(f"{what}; " + "; ".join(notes)) if notes else _exact(what)
        if raw == "$proxy_add_x_forwarded_for":
            return _no(f"proxy_set_header {name} $proxy_add_x_forwarded_for: wardgate sends X-Forwarded-For "
                       "itself; a ClientTrafficPolicy with forwardedFor: Append passes the client's chain on")
        value, note = value_of(raw)
        if value is None:
            return _no(f"proxy_set_header {name}: {note}")
        if why := _header(name, value):
            return _no(f"proxy_set_header: {why}")
        if note:
            notes.append(note)
        place.request_proxy.set(name, value)
        shown = value.get("value", "valueFrom " + value.get("valueFrom", ""))
        what = f"proxy_set_header {name}: requestHeaders.set {name}: {shown}"
        return _diff(f"{what}; " + "; ".join(notes)) if notes else _exact(what)

    def input_headers(self, st: Stmt, place: _Place) -> _Result:
        clear = st.name == "more_clear_input_headers"
        opts, args, err = _more_args(st.args, "t" if clear else "tr")
        if err:
            return _no(f"{st.name}: {err}")
        if place.kind == "own":
            return _exact(f"{st.name}: no effect (this location proxies nothing)")
        notes = []
        if opts.get("t"):
            notes.append(f"nginx changed it only for request Content-Type {' '.join(opts['t'])}; wardgate for every "
                         "request")
        if "r" in opts:
            notes.append("with -r nginx replaced it only when the client sent it; wardgate always sets it")
        specs = [_HeaderSpec(a, None) for a in args] if clear else [_spec(a) for a in args]
        done, moot = [], []
        for spec in specs:
            low = spec.name.lower()
            if spec.name.endswith("*"):
                return _no(f"{st.name}: {spec.name!r} is a wildcard; wardgate removes headers by exact name")
            if low in _COMPUTED_PROXY_HEADERS or (
                    low == "x-forwarded-for" and self.source.config.get("compute-full-forwarded-for", "") != "true"):
                moot.append(spec.name)
                continue
            if low == "host" and self.source.annotations.get("upstream-vhost"):
                moot.append(spec.name)
                continue
            if spec.value is None:
                if low == "host":
                    return _no(f"{st.name}: clearing Host made ingress-nginx send an empty Host; no wardgate "
                               "equivalent")
                if low == "x-request-id":
                    moot.append(spec.name)  # wardgate always replaces a client's X-Request-Id
                    continue
                if why := _header_name(spec.name):
                    return _no(f"{st.name}: {why}")
                place.request_input.remove(spec.name)
                done.append(f"remove {spec.name}")
                continue
            value, note = value_of(spec.value)
            if value is None:
                return _no(f"{st.name} {spec.name}: {note}")
            if why := _header(spec.name, value):
                return _no(f"{st.name}: {why}")
            if note:
                notes.append(note)
            place.request_input.set(spec.name, value)
            done.append(f"set {spec.name}: " + value.get("value", "valueFrom " + value.get("valueFrom", "")))
        parts = []
        if done:
            parts.append("requestHeaders " + "; ".join(done))
        if moot:
            parts.append(f"{', '.join(moot)}: no effect in ingress-nginx (its own proxy_set_header decides what the "
                         "backend gets), nothing to convert")
        what = f"{st.name}: " + "; ".join(parts)
        return _diff(f"{what}; " + "; ".join(notes)) if notes else _exact(what)

    def proxy_hide_header(self, st: Stmt, place: _Place) -> _Result:
        name = st.args[0]
        if why := _header_name(name):
            return _no(f"proxy_hide_header: {why}")
        if place.kind == "own":
            return _exact(f"proxy_hide_header {name}: no effect (this location proxies nothing)")
        place.hidden[name.lower()] = name
        hide = self.source.config.get("hide-headers", "").strip()
        what = f"proxy_hide_header {name}: responseHeaders.remove {name}{self.where(place)}"
        if hide:
            return _diff(f"{what}; in ingress-nginx this replaced the ConfigMap's hide-headers ({hide}) here, "
                         "wardgate keeps hiding those too")
        return _exact(what)

    def expires(self, st: Stmt, place: _Place) -> _Result:
        arg = st.args[-1]
        if len(st.args) == 2 or arg.startswith("@") or "$" in arg:
            return _no(f"expires {' '.join(st.args)}: a time-of-day or variable expiry has no wardgate equivalent; "
                       "let the backend send Cache-Control")
        if arg == "off":
            return _exact("expires off: nginx's default; nothing to convert")
        # nginx's expires acts on add_header's statuses, replacing the backend's values.
        status = f"on status {_SUCCESS} (statuses), as nginx"
        only = {"statuses": list(SUCCESS_STATUSES)}
        if arg in ("epoch", "max"):
            expires = "Thu, 01 Jan 1970 00:00:01 GMT" if arg == "epoch" else "Thu, 31 Dec 2037 23:55:55 GMT"
            cache = "no-cache" if arg == "epoch" else "max-age=315360000"
            place.response.set("Expires", {"value": expires, **only})
            place.response.set("Cache-Control", {"value": cache, **only})
            return _exact(f"expires {arg}: responseHeaders.set Expires: {expires}, Cache-Control: {cache}, {status}")
        seconds = nginx_seconds(arg)
        if seconds is None:
            return _no(f"expires {arg}: not an nginx time")
        cache = "no-cache" if seconds < 0 else f"max-age={seconds}"
        place.response.set("Cache-Control", {"value": cache, **only})
        return _diff(f"expires {arg}: responseHeaders.set Cache-Control: {cache}, {status}; no Expires header (nginx "
                     f"computed now + {arg} per answer; HTTP/1.1 caches follow Cache-Control)")

    # -- methods, addresses, answers

    def if_(self, st: Stmt, place: _Place) -> _Result:
        body = st.block or ()
        args = st.args
        ret = body[0] if len(body) == 1 and body[0].name == "return" else None
        if len(args) == 3 and args[0] == "$request_method" and ret is not None and args[1] in (
                "=", "!=", "~", "~*", "!~", "!~*"):
            result = self.method_rule(st, ret, place)
            if result is not None:
                return result
        self.skip_block(st, f"inside the `if` on line {st.line}, which is not converted")
        what = " ".join(args)
        return _no(f"if ({what}): wardgate has no conditional configuration; only method limits "
                   "(`if ($request_method ...) { return 405; }`) convert. Header- or host-based answers: an "
                   "HTTPRoute rule with header matches; redirects: the annotations for them")

    def method_rule(self, st: Stmt, ret: Stmt, place: _Place) -> _Result | None:
        if place.kind == "own":
            return None
        op, pattern = st.args[1], st.args[2]
        code = ret.args[0] if ret.args else ""
        if not code.isdigit() or not 400 <= int(code) <= 599:
            return None
        notes: list[str] = []
        if op in ("=", "!="):
            if not re.fullmatch(r"[A-Z]+", pattern):
                return None
            matching = {pattern}
        else:
            try:
                rx = re.compile(pattern, re.I if op.endswith("*") else 0)
            except re.error:
                return None
            matching = {m for m in METHODS if rx.search(m)}
            alternation = re.fullmatch(r"\^\(?([A-Z|]+)\)?\$", pattern)
            if alternation is None:
                notes.append(f"the pattern {pattern!r} was matched against every method name; of Gateway API's nine it "
                             f"matches {', '.join(sorted(matching)) or 'none'}, and wardgate refuses every other "
                             "method")
            elif op.startswith("!") and not set(alternation.group(1).split("|")) <= set(METHODS):
                notes.append("methods outside Gateway API's nine that the pattern allowed get 405 in wardgate")
        deny_listed = op in ("=", "~", "~*")
        allowed = [m for m in METHODS if (m not in matching) == deny_listed]
        if not allowed:
            return None
        if deny_listed:
            notes.append("nginx passed methods outside Gateway API's nine (PROPFIND, ...) on; wardgate refuses them "
                         "with 405")
        if int(code) != 405:
            notes.append(f"nginx answered {code}; wardgate answers 405")
        if len(ret.args) > 1:
            notes.append("nginx's answer had the body from the `return`; wardgate's 405 has its own")
        if self.ip_lists:
            notes.append(f"{', '.join(self.ip_lists)} is checked first in wardgate (403); in ingress-nginx this "
                         "snippet answered 405 before the IP list (rewrite phase before access phase)")
        if self.cors and "OPTIONS" not in allowed:
            notes.append("with enable-cors ingress-nginx answered CORS preflights (204) before this check; wardgate "
                         "refuses OPTIONS with 405")
        if place.methods is not None:
            allowed = [m for m in allowed if m in place.methods]
            if not allowed:  # two limits that together refuse every method
                return None
        place.methods = allowed
        place.methods_line = place.methods_line or st.line
        self.note(ret.line, _exact(f"return {code}: part of the method limit on line {st.line}"))
        what = (f"if ($request_method {op} {pattern}): allowedMethods [{', '.join(allowed)}]{self.where(place)}, "
                "its 405 without an Allow header like nginx's (methodNotAllowed.allowHeader false)")
        return _diff(f"{what}; " + "; ".join(notes)) if notes else _exact(what)

    def limit_except(self, st: Stmt, place: _Place) -> _Result:
        body = st.block or ()
        if not (len(body) == 1 and body[0].name == "deny" and body[0].args == ("all",)):
            self.skip_block(st, f"inside the `limit_except` on line {st.line}, which is not converted")
            return _no("limit_except: only `{ deny all; }` converts (allowedMethods); per-address method rules have "
                       "no wardgate equivalent")
        methods = {m.upper() for m in st.args}
        if "GET" in methods:
            methods.add("HEAD")  # nginx: allowing GET allows HEAD
        unknown = sorted(methods - set(METHODS))
        allowed = [m for m in METHODS if m in methods]
        if not allowed:
            self.skip_block(st, f"inside the `limit_except` on line {st.line}, which is not converted")
            return _no(f"limit_except: none of {', '.join(sorted(methods))} is a method wardgate can list")
        place.methods = allowed if place.methods is None else [m for m in allowed if m in place.methods]
        self.note(body[0].line, _exact(f"deny all: part of the limit_except on line {st.line}"))
        notes = ["nginx refused other methods with 403; wardgate answers 405 (without an Allow header, as nginx's "
                 "403 had none)"]
        if unknown:
            notes.append(f"{', '.join(unknown)} can't be listed in wardgate and get 405")
        return _diff(f"limit_except: allowedMethods [{', '.join(allowed)}]{self.where(place)}; " + "; ".join(notes))

    def access(self, st: Stmt, place: _Place) -> _Result:
        arg = st.args[0]
        allow = st.name == "allow"
        if arg == "all":
            nets = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
        elif arg.startswith("unix:"):
            return _no(f"{st.name} unix: applies to UNIX-socket clients only; wardgate listens on TCP")
        else:
            try:
                nets = [ipaddress.ip_network(arg, strict=False)]
            except ValueError:
                return _no(f"{st.name} {arg}: not an address or CIDR")
        if place.kind == "location" and any(k != "denylist-source-range" for k in self.ip_lists):
            return _exact(f"{st.name} {arg}: never decides in ingress-nginx (the allowlist annotation's `deny all` "
                          "comes first in the location); nothing to convert")
        if not place.ip_rules and place.kind == "location" and self.ip_lists:
            for cidr in self.source.annotations.get("denylist-source-range", "").split(","):
                try:
                    place.ip_rules.append(([ipaddress.ip_network(cidr.strip(), strict=False)], False, 0))
                except ValueError:
                    continue
        # The earlier rule whose network holds each of this rule's: then this one never decides.
        covering = [next((line for prev, _, line in place.ip_rules for p in prev
                          if n.version == p.version and n.subnet_of(p)), None) for n in nets]  # type: ignore[arg-type]
        place.ip_rules.append((nets, allow, st.line))
        what = f"{st.name} {arg}: ipAccess (first match in nginx, the same decisions as wardgate's longest prefix)"
        if None not in covering:
            first = covering[0]
            what += (f"; never decides (line {first} matches these addresses first)" if first else
                     "; never decides (denylist-source-range matches these addresses first)")
        if place.kind == "location" and self.ip_lists:
            what += "; denylist-source-range's entries come first in the list, as in the location"
        if place.kind == "server" and self.ip_lists:
            return _diff(f"{what}; in ingress-nginx the Ingress's {', '.join(self.ip_lists)} replaced these rules in "
                         "its own locations; wardgate merges the lists field by field")
        return _exact(what + self.where(place))

    def return_(self, st: Stmt, place: _Place) -> _Result:
        code_arg = st.args[0]
        if not code_arg.isdigit():
            if re.match(r"(https?://|\$scheme)", code_arg) and len(st.args) == 1:
                return self.redirect(st, 302, code_arg, place, appends_args=False)
            return _no(f"return {code_arg}: not a status code")
        code = int(code_arg)
        text = st.args[1] if len(st.args) > 1 else None
        if code in REDIRECT_STATUSES:
            if text is None:
                return _no(f"return {code}: a redirect without a target (no Location); no wardgate equivalent")
            return self.redirect(st, code, text, place, appends_args=False)
        if code in (444, 499):
            return _no(f"return {code}: nginx closed the connection without an answer; no wardgate equivalent")
        if place.kind == "own":
            return self.own_answer(code, text, place)
        if 400 <= code <= 599 and text is None:
            place.refuse = code
            place.answered_at = st.line
            notes = self.earlier_checks()
            what = (f"return {code}: every request{self.where(place)} gets {code} (urlAllowlist that allows no "
                    f"path, status {code})")
            return _diff(f"{what}; " + "; ".join(notes)) if notes else _exact(what)
        return _no(f"return {code}{' with a body' if text is not None else ''}: a fixed answer for every path of "
                   f"the {'host' if place.kind == 'server' else 'Ingress'} has no wardgate equivalent "
                   "(directResponses answer exact paths): list the paths in a SecurityPolicy's directResponses")

    def earlier_checks(self) -> list[str]:
        ann = self.source.annotations
        earlier = self.ip_lists + [k for k in ("limit-rps", "limit-rpm", "limit-connections", "auth-url", "auth-type")
                                   if ann.get(k, "").strip()]
        if not earlier or self.level != "location":
            return []
        return [f"wardgate checks {', '.join(earlier)} before this answer; ingress-nginx answered first (the snippet "
                "runs in nginx's rewrite phase, before those)"]

    def redirect(self, st: Stmt, code: int, url: str, place: _Place, appends_args: bool) -> _Result:
        """A redirect of every request of the place to `url` (nginx's `return` or a `rewrite` of
        every path)."""
        label = f"{st.name} {' '.join(st.args)}"
        parsed = split_url(url, self.source.config)
        if isinstance(parsed, str):
            return _no(f"{label}: {parsed}")
        origin, rest, notes = parsed
        if rest in ("$request_uri", "$uri$is_args$args"):
            path: dict[str, str] | None = None
            if appends_args:
                notes.append("nginx repeated the query string after the target's own ($request_uri already has it: "
                             "?a=1&a=1); wardgate sends it once")
        elif rest in ("$uri", "") or "$" not in rest:
            path = None if rest == "$uri" else {"type": "ReplaceFullPath", "replaceFullPath": rest or "/"}
            if not appends_args:
                notes.append("nginx's Location had no query string; a Gateway API redirect keeps the request's")
        else:
            return _no(f"{label}: the target {rest!r} uses nginx variables; a Gateway API redirect keeps the path or "
                       "replaces it with fixed text")
        filt = redirect_filter(origin, path, code)
        if why := _invalid(HTTPRouteFilter, filt):
            return _no(f"{label}: {why}")
        if place.kind == "own":
            place.filters = [filt]
            place.direct = None
        else:
            place.filters.append(filt)
            place.answered_at = st.line
            notes += self.earlier_checks()
        what = f"{label}: RequestRedirect {_show(filt['requestRedirect'])}{self.where(place)}"
        return _diff(f"{what}; " + "; ".join(notes)) if notes else _exact(what)

    def rewrite(self, st: Stmt, place: _Place) -> _Result:
        regex, replacement = st.args[0], st.args[1]
        flag = st.args[2] if len(st.args) > 2 else ""
        label = f"rewrite {' '.join(st.args)}"
        if flag not in ("", "last", "break", "redirect", "permanent"):
            return _no(f"{label}: unknown flag {flag!r}")
        if place.kind == "own":
            return _no(f"{label}: a rewrite inside a snippet location is not converted; use `return`")
        redirecting = flag in ("redirect", "permanent") or bool(re.match(r"(https?://|\$scheme)", replacement))
        code = 301 if flag == "permanent" else 302
        # nginx appends the request's arguments to the new URI unless it ends with "?".
        appends_args = not replacement.endswith("?")
        target = replacement if appends_args else replacement[:-1]
        parsed = split_url(target, self.source.config) if redirecting else ({}, target, [])
        if isinstance(parsed, str):
            return _no(f"{label}: {parsed}")
        origin, rest, notes = parsed
        shape = rewrite_shape(regex, rest)
        if isinstance(shape, str):
            return _no(f"{label}: {shape}")
        match, modifier, more = shape
        notes += more
        if match is None:  # every path
            if not redirecting:
                return _no(f"{label}: an internal rewrite of every path has no wardgate equivalent")
            kept = modifier is None and rest not in ("$request_uri", "$uri$is_args$args", "$uri")
            url = target[: len(target) - len(rest)] + "$uri" if kept else target
            return self.redirect(st, code, url, place, appends_args)
        if not appends_args:
            notes.append("nginx dropped the query string (the replacement ends with '?'); wardgate keeps it")
        if redirecting:
            filt = redirect_filter(origin, modifier, code)
            backend: Literal["none", "ingress"] = "none"
        else:
            if flag in ("last", ""):
                if place.kind == "server":
                    return _no(f"{label}: at server level nginx chose the location (and so the backend) by the new "
                               "path; a Gateway API rewrite keeps the rule's backend: add an HTTPRoute rule for the "
                               "old path with a URLRewrite filter and the backend that serves the new one")
                notes.append("nginx chose the location again for the new path (`last`); wardgate keeps this rule's "
                             "backend")
            if modifier is None:
                return _exact(f"{label}: rewrites a path to itself; nothing to convert")
            filt = {"type": "URLRewrite", "urlRewrite": {"path": modifier}}
            backend = "ingress"
            if self.source.annotations.get("rewrite-target"):
                notes.append("ingress-nginx's rewrite-target rewrite came after this one and no longer ran (the "
                             "`break` ends the rewrite module); the rule carries only this rewrite")
        if why := _invalid(HTTPRouteFilter, filt) or _invalid(HTTPPathMatch, match):
            return _no(f"{label}: {why}")
        rule = ExtraRule(matches=[{"path": match}], filters=[filt], backend=backend,
                         within_ingress_paths=place.kind == "location")
        place.rules.append(rule)
        if backend == "none":
            self.answers.append((rule, st.line))
            ann = self.source.annotations
            others = [k for k in ("custom-headers", "enable-cors") if ann.get(k, "").strip()]
            if others and place.kind == "location":
                notes.append(f"the headers of {', '.join(others)} are not added to this redirect; ingress-nginx "
                             "added them")
        kind = "RequestRedirect" if redirecting else "URLRewrite"
        inner = filt["requestRedirect"] if redirecting else filt["urlRewrite"]
        what = f"{label}: a rule of its own for {match['type']} {match['value']} with {kind} {_show(inner)}"
        return _diff(f"{what}; " + "; ".join(notes)) if notes else _exact(what)

    # -- server-snippet locations

    def location(self, st: Stmt, place: _Place) -> _Result:
        if place.kind != "server":
            self.skip_block(st, f"inside the nested location on line {st.line}, which is not converted")
            return _no("location inside a location: not converted (in nginx it inherits the Ingress location's "
                       "settings but not its proxy_pass); use a server-snippet location or a policy")
        args = st.args
        modifier, path = (args[0], args[1]) if len(args) == 2 else ("", args[0])
        if modifier not in ("", "=", "^~") or path.startswith("@"):
            self.skip_block(st, f"inside the location on line {st.line}, which is not converted")
            return _no(f"location {' '.join(args)}: only `location = /path` and prefix locations convert (a regex "
                       "location has no Gateway API equivalent with nginx's precedence)")
        own = _Place("own")
        blocking: list[int] = []
        for inner in st.block or ():
            result = self.directive(inner, own)
            self.note(inner.line, result)
            if result.status == "not-converted" and inner.name not in _LOGGING:
                blocking.append(inner.line)
        self.locations.append((st, own, modifier == "=", path, blocking))
        return _Result("exact", "")  # decided in finish(), once the whole server level is known

    def own_answer(self, code: int, text: str | None, place: _Place) -> _Result:
        if 400 <= code <= 599 and text is None:
            place.refuse = code
            return _exact(f"return {code}: the gateway answers {code} (urlAllowlist that allows no path), with "
                          "nginx's error page as ingress-nginx did")
        if text is not None and "$" in text:
            return _no(f"return {code}: the body uses nginx variables; a direct response body is fixed text")
        if not 200 <= code <= 599:
            return _no(f"return {code}: a direct response's status is 200-599")
        place.direct = {"status": code, "body": text} if text is not None else {"status": code}
        return _exact(f"return {code}: directResponses (status {code}" + (", the body as written" if text else "")
                      + ")")

    def finish(self) -> None:
        top = self.top
        if top.answered_at is not None:
            # allow/deny run in nginx's access phase, after the rewrite phase's answer.
            for _, _, line in top.ip_rules:
                if line:
                    self.results[line] = [_exact(f"never decides: the answer on line {top.answered_at} comes first "
                                                 "(rewrite phase, before allow/deny's access phase)")]
            top.ip_rules = []
        for rule, line in self.answers:
            rule.security = {"responseHeaders": h} if (h := top.response.dump()) else {}
            if top.methods is not None and top.methods_line is not None and top.methods_line < line:
                rule.security.update(method_limit(top.methods))
        for st, own, exact, path, blocking in self.locations:
            if top.answered_at is not None:
                result = _exact(f"location {' '.join(st.args)}: never reached (line {top.answered_at} answers every "
                                "request of the server first); nothing to convert")
                for inner in st.block or ():
                    self.results[inner.line] = [result]
            else:
                result = self.location_rule(st, own, exact, path, blocking)
            self.results[st.line] = [r for r in self.results.get(st.line, []) if r.detail] + [result]

    def location_rule(self, st: Stmt, own: _Place, exact: bool, path: str, blocking: list[int]) -> _Result:
        """A server-snippet location as a rule of its own, with what it inherits from the server
        level in nginx: headers-more always, add_header and allow/deny unless it has its own, the
        server's method checks (server rewrite phase)."""
        label = f"location {' '.join(st.args)}"
        if blocking:
            return _no(f"{label}: not converted because line(s) {', '.join(map(str, blocking))} could not be")
        top = self.top
        rule = _Place("own")
        rule.response.ops = {**top.response.ops, **own.response.ops}
        status = (own.direct or {}).get("status") or own.refuse or (own.filters[0]["requestRedirect"]["statusCode"]
                                                                   if own.filters else 404)
        if own.response_adds_lines or own.success_only:
            rule.response.adds = list(own.response.adds)
            for line, name, value in own.success_only:
                if status in SUCCESS_STATUSES:
                    rule.response.adds.append((name, value))
                else:
                    self.results[line] = [_exact(f"add_header {name}: nginx doesn't add it to this location's "
                                                 f"{status} answer (no `always`); nothing to convert")]
        else:
            rule.response.adds = list(top.response.adds)
        rule.ip_rules = own.ip_rules or list(top.ip_rules)
        rule.methods = top.methods
        rule.refuse = own.refuse
        notes: list[str] = []
        if own.direct is None and own.refuse is None and not own.filters:
            if not own.ip_rules:
                return _no(f"{label}: nothing in it answers (no `return`), so nginx served static files from its html "
                           "directory; no wardgate equivalent")
            rule.refuse = 404
            notes.append("clients the allow/deny lines let through got nginx's 404 (no static file), as here")
        if own.direct is not None:
            if not exact:
                notes.append(f"nginx answered every path starting with {path}; wardgate answers the exact path only")
            default_type = self.source.config.get("default-type", "text/html")
            rule.direct = {"path": path, **own.direct, "contentType": own.content_type or default_type}
            match = {"type": "Exact", "value": path}
        elif exact:
            match = {"type": "Exact", "value": path}
        else:
            match = {"type": "PathPrefix", "value": path.rstrip("/") or "/"}
            if not path.endswith("/"):
                notes.append(f"nginx's prefix {path} also covered paths such as {path}x; the rule's PathPrefix "
                             "matches whole path segments only")
            elif path != "/":
                notes.append(f"the rule also matches {path.rstrip('/')} without the trailing slash")
        # ingress-nginx adds HSTS in its generated locations' header filter; this one had none.
        security = {**rule.security(), "hsts": {"enabled": False}}
        spec = {"targetRefs": [{"kind": "HTTPRoute", "name": "r"}], **security}
        if why := _invalid(SecurityPolicySpec, spec) or _invalid(HTTPPathMatch, match):
            return _no(f"{label}: {why}")
        top.rules.append(ExtraRule(matches=[{"path": match}], filters=list(own.filters), security=security))
        what = (f"{label}: an HTTPRoute rule of its own ({match['type']} {match['value']}) the gateway answers, "
                "outside the Ingress's annotations (no IP list, rate limit, auth or HTTP->HTTPS redirect) and without "
                "HSTS (hsts enabled false), like the snippet location")
        return _diff(f"{what}; " + "; ".join(notes)) if notes else _exact(what)

    def default_type(self, st: Stmt, place: _Place) -> _Result:
        if place.kind == "own":
            if why := _invalid(DirectResponse, {"path": "/", "contentType": st.args[0]}):
                return _no(f"default_type: {why}")
            if place.content_type is None:
                place.content_type = st.args[0]
            return _exact(f"default_type {st.args[0]}: contentType of the answer")
        return _exact(f"default_type {st.args[0]}: no effect on proxied answers (they keep the backend's "
                      "Content-Type); nothing to convert")

    def server_tokens(self, st: Stmt, place: _Place) -> _Result:
        return _exact(f"server_tokens {' '.join(st.args)}: no effect on what clients see (ingress-nginx clears the "
                      "Server header unless server-tokens is on, and then shows no version with this off); nothing "
                      "to convert")


def nginx_seconds(text: str) -> int | None:
    """An nginx time ("90", "1h30m", "-1", "2d") in seconds."""
    # digits possessive: "1" * 30 + "x" took minutes of backtracking (each run splits many ways)
    m = re.fullmatch(r"(-?)((?:[0-9]++(?:ms|[smhdwMy])?)+)", text)
    if not m:
        return None
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000, "": 1}
    total = sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|[smhdwMy]?)", m.group(2)))
    return int(-total if m.group(1) else total)


def _show(d: Mapping[str, Any]) -> str:
    parts = []
    for k, v in d.items():
        parts.append(f"{k} {_show(v) if isinstance(v, Mapping) else v}")
    return "{" + ", ".join(parts) + "}"


_URL = re.compile(r"(https?|\$scheme)://([^/:$?#]+|\$host|\$http_host|\$server_name|\$best_http_host)(?::([0-9]+))?(.*)",
                  re.S)


def split_url(url: str, config: Mapping[str, str]) -> tuple[dict[str, Any], str, list[str]] | str:
    """nginx's redirect target as (RequestRedirect scheme/hostname/port, the rest after the host,
    notes), or why it doesn't convert."""
    notes: list[str] = []
    origin: dict[str, Any] = {}
    m = _URL.fullmatch(url)
    if m:
        scheme, host, port, rest = m.groups()
        if scheme != "$scheme":
            origin["scheme"] = scheme
        if not host.startswith("$"):
            origin["hostname"] = host.lower()
        elif host == "$server_name":
            notes.append("$server_name is the Ingress host: the same for hosts without a wildcard")
        elif host != "$host":
            notes.append("nginx kept the port of the client's Host header; wardgate's redirect doesn't")
        if port:
            origin["port"] = int(port)
    elif url.startswith("/"):
        rest = url
        if config.get("relative-redirects", "").strip().lower() == "true":
            notes.append("relative-redirects made nginx's Location a path; wardgate's is an absolute URL")
    else:
        return "only absolute http(s) URLs and paths convert to a Gateway API redirect"
    if rest and not rest.startswith(("/", "$")):
        return f"{rest!r} after the host is not a path"
    if "?" in rest or "#" in rest:
        return "the target carries its own query or fragment; a Gateway API redirect replaces the path only"
    return origin, rest, notes


def redirect_filter(origin: Mapping[str, Any], path: dict[str, str] | None, code: int) -> dict[str, Any]:
    body: dict[str, Any] = dict(origin)
    if path is not None:
        body["path"] = path
    body["statusCode"] = code
    return {"type": "RequestRedirect", "requestRedirect": body}


_WHOLE = {"^": "", "^(.*)$": "$1", "(.*)": "$1", "^(.*)": "$1", ".*": "", "^.*$": "", "^/(.*)$": "/$1",
          "^/(.*)": "/$1", "^/?(.*)$": "/$1"}
_LITERAL = r"(?:[A-Za-z0-9_~!&',;=:@%+-]|\\[./?*+()\[\]{}|^$-]|\.)"
_SHAPE = re.compile(rf"\^((?:/{_LITERAL}*)+)(\$|/\?\$|\(/\.\*\)\?\$|\(/\.\*\|\)\$|\(\.\*\)\$?|/\(\.\*\)\$?)")


def rewrite_shape(regex: str, rest: str) -> tuple[dict[str, str] | None, dict[str, str] | None, list[str]] | str:
    """A rewrite's pattern and the path part of its replacement as (Gateway API path match or None
    for every path, path modifier or None to keep the path, notes), or why it doesn't convert."""
    notes: list[str] = []
    if regex in _WHOLE:
        group = _WHOLE[regex]
        if group and rest.endswith(group) and "$" not in rest[: -len(group)] and rest[: -len(group)] == "":
            return None, None, notes
        if rest in ("$request_uri", "$uri", "") or "$" not in rest:
            return None, (None if rest.startswith("$") else {"type": "ReplaceFullPath", "replaceFullPath": rest or "/"}
                          ), notes
        return "the replacement uses nginx variables or groups a Gateway API redirect can't express"
    m = _SHAPE.fullmatch(regex)
    if not m:
        return ("only an exact path (^/a$), a path prefix (^/a(/.*)?$, ^/a/(.*)) or every path (^) converts to a "
                "Gateway API match")
    literal, tail = m.group(1), m.group(2)
    if literal != "/" and literal.endswith("/") and tail.startswith("(.*)"):
        literal, tail = literal[:-1], "/" + tail  # ^/a/(.*): the '/' belongs to the prefix's end
    if re.search(r"(?<!\\)\.", literal):
        notes.append("an unescaped '.' in the pattern matched any character; the rule matches a literal '.'")
    path = re.sub(r"\\(.)", r"\1", literal)
    if tail in ("$", "/?$"):
        if "$" in rest:
            return "the replacement uses nginx variables or groups"
        if tail == "/?$":
            notes.append(f"nginx also rewrote {path}/; the rule matches {path} only")
        return {"type": "Exact", "value": path}, {"type": "ReplaceFullPath", "replaceFullPath": rest or "/"}, notes
    # A prefix: the replacement must end with the captured rest.
    if not rest.endswith("$1") or "$" in rest[:-2]:
        return "a prefix rewrite converts only when the replacement ends with the captured rest ($1)"
    base = rest[:-2]
    if tail.startswith("/("):
        if not base.endswith("/"):
            return "with ^/a/(.*) the replacement must end with /$1"
        base = base.rstrip("/") or "/"
        notes.append(f"{path} itself (nothing after it) was not rewritten by nginx; the rule rewrites it too")
    elif tail not in ("(/.*)?$", "(/.*|)$"):
        notes.append(f"nginx's pattern also matched {path}-continued paths such as {path}x; the rule's PathPrefix "
                     "matches whole path segments only")
    if path != "/" and path.endswith("/"):
        return "a prefix ending in '/' doesn't convert"
    modifier = {"type": "ReplacePrefixMatch", "replacePrefixMatch": base or "/"}
    return {"type": "PathPrefix", "value": path}, modifier, notes


_Handler = Callable[[_Converter, Stmt, _Place], _Result]
_HANDLERS: dict[str, _Handler] = {
    "more_set_headers": _Converter.more_set_headers,
    "more_clear_headers": _Converter.more_clear_headers,
    "add_header": _Converter.add_header,
    "proxy_set_header": _Converter.proxy_set_header,
    "more_set_input_headers": _Converter.input_headers,
    "more_clear_input_headers": _Converter.input_headers,
    "proxy_hide_header": _Converter.proxy_hide_header,
    "expires": _Converter.expires,
    "if": _Converter.if_,
    "limit_except": _Converter.limit_except,
    "allow": _Converter.access,
    "deny": _Converter.access,
    "return": _Converter.return_,
    "rewrite": _Converter.rewrite,
    "location": _Converter.location,
    "default_type": _Converter.default_type,
    "server_tokens": _Converter.server_tokens,
}


def convert_snippet(text: str, *, annotation: str, source: Source, level: Level) -> Contribution:
    """What a snippet annotation does, as a Contribution: `security` and `filters` for the rules
    the snippet covered in ingress-nginx (the Ingress's paths for a configuration-snippet, every
    path of the host for a server-snippet), `rules` for the answers it gave on paths of its own,
    and one Finding per directive line (never raises; a snippet nginx would refuse is one
    not-converted finding at the line nginx names)."""
    try:
        stmts = parse_snippet(text, level)
    except SnippetSyntaxError as exc:
        return Contribution(findings=[Finding(
            source.file, source.obj, f"{annotation} line {exc.line}", "not-converted",
            f"nginx refuses this snippet ({exc.message}), so ingress-nginx never applied it (the admission webhook "
            "rejects the Ingress; without it the controller can't reload): nothing of the snippet is converted; "
            "fix or remove it", source.ingress_class)])
    conv = _Converter(annotation, source, level)
    conv.run(stmts)
    conv.finish()
    top = conv.top
    security = top.security()
    spec = {"targetRefs": [{"kind": "HTTPRoute", "name": "r"}], **security}
    if why := _invalid(SecurityPolicySpec, spec):
        # Each value passed its own check; together they don't (two direct responses on one path...).
        return Contribution(findings=[*conv.findings(), Finding(
            source.file, source.obj, annotation, "not-converted",
            f"the snippet's lines don't fit in one SecurityPolicy ({why}); nothing of it is converted",
            source.ingress_class)])
    return Contribution(filters=list(top.filters), security=security, rules=list(top.rules),
                        findings=conv.findings())
