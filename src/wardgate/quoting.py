"""The one place where user strings become nginx configuration tokens.

ingress-nginx was broken by configuration injection (CVE-2025-1974). Here every string that
comes from a manifest is either validated against a strict grammar or written as a quoted
token whose escaping nginx's parser undoes exactly. Nothing else in wardgate builds tokens from
user input; the renderer's emitter calls `token()` for every argument it writes.

nginx facts this relies on (ngx_conf_file.c):
- inside a double-quoted token only `\\"`, `\\\\`, `\\t`, `\\r`, `\\n` are escapes; a quoted
  token can hold `;`, `{`, `}`, `#` and spaces;
- there is no escape for `$` in arguments that take variables, so a literal `$` is written as
  the variable `${wg_dollar}`, defined once by `geo` (whose values are never interpolated).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
from dataclasses import dataclass

from wardgate.errors import UnsafeValueError

DOLLAR_VAR = "wg_dollar"

# RFC 7230 token, as the Gateway API CRDs define HTTPHeaderName, less `$` (nginx would read a
# variable where some directives interpolate the name).
_TOKEN = re.compile(r"^[A-Za-z0-9!#%&'*+\-.^_`|~]+$")
_MATCHABLE_HEADER = re.compile(r"^[A-Za-z0-9-]+$")
# The Gateway API Hostname type: optional leading "*." and RFC 1123 labels, lower case.
_HOSTNAME = re.compile(
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
# The Gateway API path grammar for Exact and PathPrefix values.
_PATH = re.compile(r"^/(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_VARNAME = re.compile(r"^[a-z0-9_]+$")
# One OpenSSL cipher suite name (ECDHE-RSA-AES128-GCM-SHA256): no operators (!, +, -prefix,
# @SECLEVEL) and no keywords can be spelled with it, only concrete names separated by ':'.
_CIPHER_NAME = re.compile(r"^[A-Z0-9]+(?:-[A-Z0-9]+)+$")
# (?<name>, (?P<name>, (?'name' but not the lookbehinds (?<= and (?<!
_NAMED_GROUP = re.compile(r"\(\?(?:P?<(?![=!])|')")


@dataclass(frozen=True)
class Raw:
    """A token the renderer made itself (a number, a keyword, a variable reference).

    Only renderer code creates Raw values, never from user strings; `token()` still refuses
    anything that would end or split a directive.
    """

    text: str


# --- validation: used by the model and by translation, so errors name the field ---------------


def check_header_name(name: str) -> str:
    if not name or len(name) > 256 or not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}: must be an RFC 7230 token (letters, digits, -)")
    # nginx's headers-more reads a leading "-" as an option and "*" as a wildcard.
    if name.startswith("-") or "*" in name:
        raise ValueError(f"invalid header name {name!r}: must not start with '-' or contain '*'")
    return name


def check_matchable_header_name(name: str) -> str:
    """Header names nginx can test: it exposes headers as $http_<name> and drops `_` names."""
    check_header_name(name)
    if not _MATCHABLE_HEADER.fullmatch(name):
        raise ValueError(f"header name {name!r} can't be matched: use only letters, digits and '-'")
    return name


def check_text(value: str, what: str = "value", max_len: int = 4096) -> str:
    """A free-text value (header value, body): printable, no line breaks."""
    if len(value) > max_len:
        raise ValueError(f"{what} is longer than {max_len} characters")
    if _CONTROL.search(value):
        raise ValueError(f"{what} {value!r} contains a control character (line breaks are not allowed)")
    return value


# nginx 1.22 reads a configuration file through a 4096-byte buffer (NGX_CONF_BUFFER); a token
# must fit in it whole. Measured with `nginx -t`: a double-quoted token of 4096 bytes, quotes
# included, loads; one byte more is "too long parameter", wherever it starts in the file.
MAX_TOKEN_BYTES = 4096
# The longest token a header value is written into: `more_set_headers "<name>: <value>"` or the
# `add` map's `"$http_<name>,<value>"`, with a header name of up to 256 bytes and two quotes.
_HEADER_TOKEN_OVERHEAD = 256 + 8
MAX_HEADER_VALUE_TOKEN = MAX_TOKEN_BYTES - _HEADER_TOKEN_OVERHEAD


def check_header_value(value: str, what: str = "header value") -> str:
    """A header value (set, add or matched), or a matched query value: free text whose escaped
    token fits nginx's buffer. Escaping expands: `$` is written as `${wg_dollar}` (12 bytes),
    `\\` and `"` as 2."""
    check_text(value, what)
    size = len(text(value).encode()) - 2
    if size > MAX_HEADER_VALUE_TOKEN:
        raise ValueError(f"{what} is too long for nginx once escaped: {size} bytes, at most "
                         f"{MAX_HEADER_VALUE_TOKEN} (a '$' takes 12 bytes, a backslash or double quote 2)")
    return value


def check_no_zone(address: object, value: str) -> None:
    """Python's ipaddress accepts IPv6 zone ids (fe80::1%eth0); nginx's allow/deny, geo and
    set_real_ip_from refuse them, so they are refused here, where the error names the field."""
    if getattr(address, "scope_id", None) is not None or "%" in value:
        raise ValueError(f"{value!r}: IPv6 zone ids (%...) are not allowed")


def check_hostname(host: str, *, wildcard: bool = True) -> str:
    if len(host) > 253 or not _HOSTNAME.fullmatch(host) or (not wildcard and host.startswith("*")):
        kind = "hostname (optionally *.-prefixed)" if wildcard else "precise hostname"
        raise ValueError(f"invalid {kind} {host!r}: lower-case RFC 1123 labels expected")
    return host


def check_path(path: str) -> str:
    """Exact and PathPrefix values, with the Gateway API's restrictions."""
    if len(path) > 1024 or not _PATH.fullmatch(path):
        raise ValueError(f"invalid path {path!r}: must start with '/' and use URL path characters only")
    for bad in ("//", "/./", "/../", "%2f", "%2F", "#"):
        if bad in path:
            raise ValueError(f"invalid path {path!r}: must not contain {bad!r}")
    if path.endswith(("/..", "/.")):
        raise ValueError(f"invalid path {path!r}: must not end with a dot segment")
    return path


def check_cipher_names(value: str) -> tuple[str, ...]:
    """A colon-separated list of cipher suite names, e.g. "ECDHE-ECDSA-AES128-GCM-SHA256:..."."""
    if not value or len(value) > 1024:
        raise ValueError("cipher list must be 1 to 1024 characters")
    names = tuple(value.split(":"))
    for name in names:
        if not _CIPHER_NAME.fullmatch(name):
            raise ValueError(f"invalid cipher name {name!r}: expected OpenSSL suite names such as "
                             "ECDHE-RSA-AES128-GCM-SHA256 separated by ':' (no operators or keywords)")
    if len(set(names)) != len(names):
        raise ValueError("cipher list names a suite twice")
    return names


def check_regex(pattern: str) -> str:
    """A PCRE pattern. Python's `re` accepts nearly the same syntax; `nginx -t` has the last word."""
    if not pattern or len(pattern) > 1024:
        raise ValueError("regular expression must be 1 to 1024 characters")
    if _CONTROL.search(pattern):
        raise ValueError(f"regular expression {pattern!r} contains a control character")
    # nginx turns named captures into variables: (?<host>...) would overwrite $host.
    if _NAMED_GROUP.search(pattern):
        raise ValueError(f"regular expression {pattern!r} uses a named group; use (?:...) or (...) instead")
    # The pattern must compile alone (so "a)|(b" can't break out of the group wardgate wraps it
    # in) and anchored as ^(?:...)$ (an (?x) comment could swallow the closing parenthesis).
    for shift, form in ((0, pattern), (4, f"^(?:{pattern})$")):
        error = pcre_error(form)
        if error:
            message, offset = error
            where = f" (at offset {min(max(offset - shift, 0), len(pattern))})" if offset >= 0 else ""
            raise ValueError(f"invalid regular expression {pattern!r}: {message}{where}")
    return pattern


def _load_pcre2() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("pcre2-8") or "libpcre2-8.so.0")
    except OSError:
        return None
    lib.pcre2_compile_8.restype = ctypes.c_void_p
    lib.pcre2_compile_8.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32,
                                    ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p]
    lib.pcre2_code_free_8.argtypes = [ctypes.c_void_p]
    lib.pcre2_get_error_message_8.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    return lib


_PCRE2 = _load_pcre2()


def pcre_error(pattern: str) -> tuple[str, int] | None:
    """Why PCRE2 (the library nginx links) refuses the pattern, and where; None if it compiles.

    Compiled with the options nginx uses (none), so what passes here passes `nginx -t`. Without
    libpcre2 (not a Debian nginx host) Python's `re` is the fallback.
    """
    if _PCRE2 is None:
        try:
            re.compile(pattern)
        except re.error as exc:
            return str(exc.msg), exc.pos if exc.pos is not None else -1
        return None
    raw = pattern.encode()
    err, off = ctypes.c_int(), ctypes.c_size_t()
    code = _PCRE2.pcre2_compile_8(raw, len(raw), 0, ctypes.byref(err), ctypes.byref(off), None)
    if code:
        _PCRE2.pcre2_code_free_8(code)
        return None
    buf = ctypes.create_string_buffer(256)
    _PCRE2.pcre2_get_error_message_8(err.value, buf, len(buf))
    return buf.value.decode(errors="replace"), off.value


# --- writing tokens -------------------------------------------------------------------------


def _escape(value: str) -> str:
    if "\x00" in value or "\n" in value or "\r" in value:
        raise UnsafeValueError(f"refusing to write a NUL or line break into nginx config: {value!r}")
    if _CONTROL.search(value):
        raise UnsafeValueError(f"refusing to write a control character into nginx config: {value!r}")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def literal(value: str) -> str:
    """A quoted token for an argument nginx does not interpolate (server_name, location, regex)."""
    return f'"{_escape(value)}"'


def text(value: str) -> str:
    """A quoted token for an argument nginx interpolates: `$` becomes `${wg_dollar}`."""
    return '"' + _escape(value).replace("$", "${" + DOLLAR_VAR + "}") + '"'


def regex_escape(value: str) -> str:
    """A regex matching exactly `value` (PCRE syntax)."""
    return re.sub(r"([\\.^$|?*+()\[\]{}/-])", r"\\\1", value)


def header_variable(name: str) -> str:
    """`$http_x_foo` for header X-Foo. Only names nginx can expose as a variable are allowed."""
    check_header_name(name)
    var = name.lower().replace("-", "_")
    if not _VARNAME.fullmatch(var):
        raise UnsafeValueError(f"header name {name!r} can't be matched: use letters, digits and '-'")
    return "$http_" + var


def variable_name(name: str) -> str:
    """A variable name the renderer invents (never user text)."""
    if not _VARNAME.fullmatch(name):
        raise UnsafeValueError(f"bad internal variable name {name!r}")
    return name


# Renderer-made pieces of an interpolated argument: variables and plain URL-ish characters.
_EXPR_RAW = re.compile(r"^(?:\$[a-z0-9_]+|\$\{[a-z0-9_]+\}|[A-Za-z0-9_:/.\-])+$")


@dataclass(frozen=True)
class Text:
    """User text in an argument nginx interpolates (header values, bodies)."""

    value: str


@dataclass(frozen=True)
class Body:
    """Multi-line user text in an interpolated argument (a `return` body): line breaks and tabs
    are written as the escapes nginx's parser turns back into them."""

    value: str


_BODY_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_body(value: str) -> str | None:
    """Why `value` can't be a response body in nginx configuration, or None."""
    bad = _BODY_BAD.search(value)
    return None if bad is None else f"contains a control character at offset {bad.start()} (only tab and line breaks)"


def _lines(value: str) -> str:
    problem = check_body(value)
    if problem:  # the offset, not the text: a body can come from a ConfigMap
        raise UnsafeValueError(f"refusing to write a body into nginx config: it {problem}")
    return (value.replace("\\", "\\\\").replace('"', '\\"')
            .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))


def body(value: str) -> str:
    return '"' + _lines(value).replace("$", "${" + DOLLAR_VAR + "}") + '"'


@dataclass(frozen=True)
class Lines:
    """Multi-line text for an argument nginx does not interpolate (modsecurity_rules)."""

    value: str


def lua_string(value: str) -> str:
    """A Lua string literal: everything but letters, digits and a few safe marks as decimal
    escapes, so nothing in it can end the string, the block or the nginx directive."""
    return '"' + "".join(c if c.isascii() and (c.isalnum() or c in "_-./:") else
                         "".join(f"\\{b:03d}" for b in c.encode()) for c in value) + '"'


def lua_literal(value: object) -> str:
    """A Lua literal for plain data: dicts (tables), lists, str, int, bool, None."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, dict):
        items = [f"[{lua_literal(k)}]={lua_literal(v)}" for k, v in value.items()]
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "{" + ",".join(lua_literal(v) for v in value) + "}"
    raise UnsafeValueError(f"no Lua literal for {type(value).__name__}")


@dataclass(frozen=True)
class Expr:
    """One interpolated argument built from renderer variables (Raw, e.g. `$http_x`) and user text."""

    parts: tuple[Raw | str, ...]


_BARE = re.compile(r"^[^\s;{}\"'\\#]+$")


def raw_token(value: Raw) -> str:
    if not _BARE.fullmatch(value.text):
        raise UnsafeValueError(f"internal token {value.text!r} is not a bare word")
    return value.text


def expr(value: Expr) -> str:
    out = []
    for part in value.parts:
        if isinstance(part, Raw):
            if not _EXPR_RAW.fullmatch(part.text):
                raise UnsafeValueError(f"{part.text!r} is not a variable reference or plain word")
            out.append(part.text)
        else:
            out.append(text(part)[1:-1])
    return '"' + "".join(out) + '"'


Arg = str | int | float | Raw | Text | Expr | Body | Lines


def token(value: Arg) -> str:
    """Every argument the emitter writes goes through here."""
    if isinstance(value, Raw):
        return raw_token(value)
    if isinstance(value, Text):
        return text(value.value)
    if isinstance(value, Expr):
        return expr(value)
    if isinstance(value, Body):
        return body(value.value)
    if isinstance(value, Lines):
        return '"' + _lines(value.value) + '"'
    if isinstance(value, bool):
        raise UnsafeValueError("booleans are not nginx tokens")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return literal(value)
