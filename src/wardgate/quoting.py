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
from typing import Literal

from wardgate.errors import UnsafeValueError

DOLLAR_VAR = "wg_dollar"
# The end of the subject in every pattern wardgate generates. PCRE's `$` also matches before a
# final newline (nginx decodes %0a into $uri, ModSecurity into REQUEST_FILENAME), so `/api%0a`
# would pass a check for `/api`.
END = r"\z"
# Put before every pattern that holds a user regex: PCRE2 stops a match after this many steps
# (nginx leaves its default, 10 million: about 25 ms per request for `(a+)+`). A backstop for
# the shapes check_regex refuses; PCRE2 only lets a pattern lower the limit, never raise it.
MATCH_LIMIT = "(*LIMIT_MATCH=1000000)"

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
    for bad in ("//", "/./", "/../", "%2f", "%2F"):  # `#` is not in _PATH
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
    # in) and anchored as ^(?:...)\\z (an (?x) comment could swallow the closing parenthesis).
    for shift, form in ((0, pattern), (len(MATCH_LIMIT) + 4, f"{MATCH_LIMIT}^(?:{pattern})" + END)):
        error = pcre_error(form)
        if error:
            message, offset = error
            where = f" (at offset {min(max(offset - shift, 0), len(pattern))})" if offset >= 0 else ""
            raise ValueError(f"invalid regular expression {pattern!r}: {message}{where}")
    problem = _regex_hazard(pattern)
    if problem:
        raise ValueError(f"regular expression {pattern!r} {problem}")
    return pattern



# A rewrite target: a path of literal text and `$1`..`$9` (the captures of the rewrite's regex).
_REWRITE_CAPTURE = re.compile(r"\$([1-9])")


def check_rewrite_target(value: str) -> str:
    """nginx `rewrite` replacement text (IngressNginxCompat rewriteTarget): a path starting with
    `/`, whose only `$`s are capture references `$1`..`$9`. No `?`: nginx would start a new query
    string there, which wardgate doesn't offer (the request's query string is always kept)."""
    check_text(value, "rewriteTarget", 1024)
    if not value.startswith("/"):
        raise ValueError(f"rewriteTarget {value!r} must start with '/' (a path; redirects are RequestRedirect's)")
    if "?" in value:
        raise ValueError(f"rewriteTarget {value!r} must not contain '?': the request's query string is kept as is")
    if value.count("$") != len(_REWRITE_CAPTURE.findall(value)):
        raise ValueError(f"rewriteTarget {value!r}: '$' may only start a capture reference $1 to $9")
    return value


_REDIRECT_URL = re.compile(r"^https?://[^\s/?#]+(?:[/?#][^\s]*)?$")


def check_redirect_location(value: str) -> str:
    """An nginx `return` redirect's Location (IngressNginxCompat redirect.location): an absolute
    http(s) URL, sent as it is, or a path starting with `/`; no spaces."""
    check_text(value, "location", 2048)
    if not (_REDIRECT_URL.fullmatch(value) or (value.startswith("/") and not value.startswith("//")
                                                 and not re.search(r"\s", value))):
        raise ValueError(f"location {value!r} must be an http(s) URL or a path starting with a single '/', "
                         "without spaces")
    return value


def rewrite_target_parts(value: str) -> tuple[Raw | str, ...]:
    """The rewrite target as Expr parts: literal text, and the captures as variables."""
    out: list[Raw | str] = []
    pos = 0
    for m in _REWRITE_CAPTURE.finditer(check_rewrite_target(value)):
        if m.start() > pos:
            out.append(value[pos:m.start()])
        out.append(Raw("$" + m.group(1)))
        pos = m.end()
    if pos < len(value):
        out.append(value[pos:])
    return tuple(out)


def check_waf_path(value: str) -> str:
    """A path that becomes a ModSecurity rule's quoted operator, where `"` would end the argument
    and `%{` expands a macro."""
    if '"' in value or "%{" in value:
        raise ValueError(f'path {value!r} for a WAF exclusion must not contain " or %{{')
    return value


# A media type as CRS lists them: nothing that ends a list entry or a quoted rule argument.
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9._+-]{0,63}/[a-z0-9][a-z0-9._+-]{0,63}$")


def check_media_type(value: str) -> str:
    """A lower-case `type/subtype` without parameters."""
    if not _MEDIA_TYPE.fullmatch(value):
        raise ValueError(f"{value!r} is not a media type such as text/plain (lower case, no parameters)")
    return value


class Grammar:
    """The model's `Validators` (wardgate.validation): this module's checks, installed by the
    package, so the model never imports the grammar."""

    hostname = staticmethod(check_hostname)
    header_name = staticmethod(check_header_name)
    matchable_header_name = staticmethod(check_matchable_header_name)
    header_value = staticmethod(check_header_value)
    text = staticmethod(check_text)
    path = staticmethod(check_path)
    regex = staticmethod(check_regex)
    no_zone = staticmethod(check_no_zone)
    waf_path = staticmethod(check_waf_path)
    rewrite_target = staticmethod(check_rewrite_target)
    redirect_location = staticmethod(check_redirect_location)
    media_type = staticmethod(check_media_type)

    @staticmethod
    def literal_regex(value: str) -> str:
        return regex_escape(value)


# --- ReDoS: shapes that backtrack exponentially (or to a high power) on a request -----------------
#
# nginx matches with PCRE2 (JIT) and no match limit of its own: `(a+)+` against "aaaa...!" makes
# each request spin until PCRE2's default limit, then logs an alert. So patterns are parsed into
# a small tree and refused when a repeated group (`*`, `+`, `{n,}`, `{2,}`...) holds
# - an unbounded repeat that can match the same characters as the rest of its iteration
#   (`(a+)+`, `(a*)*`, `(.*a){20}`, `(\w+\s?)*`), unless every iteration holds a literal
#   character nothing else in it can match, which splits iterations unambiguously (`(/[a-z]+)*`,
#   `([0-9]+\.){3}`);
# - alternatives that can start with the same character (`(a|a)*`, `(\d|\w)+`), unless they are
#   plain strings none of which is a prefix of another (`(ab|ac)*`).
# Possessive repeats (`a++`) and atomic groups (`(?>...)`) never backtrack into and are allowed.

_PROBE = [chr(c) for c in range(0x20, 0x7f)] + ["\n", "\t", "\x85", "\u00e9", "\u2028", "\U0001f4a5"]


@dataclass
class _Atom:
    """One character: a literal, a class, `.`, an escape. `text` is its PCRE source."""

    text: str
    literal: str | None  # the character, when it is exactly one literal character

    def chars(self) -> frozenset[str]:
        """Which probe characters it matches (Python's `re` stands in for PCRE on one atom;
        anything it can't read counts as matching everything)."""
        if self.literal is not None:
            return frozenset(self.literal)
        try:
            rx = re.compile(self.text)  # `.` without (?s), as nginx compiles: no \n
        except re.error:
            return frozenset(_PROBE)
        return frozenset(c for c in _PROBE if rx.fullmatch(c))


@dataclass
class _Group:
    alternatives: list[list[_Item]]
    atomic: bool = False  # atomic groups and lookarounds: no backtracking into them from outside
    opaque: bool = False  # a backreference or a construct the scan does not model


@dataclass
class _Item:
    node: _Atom | _Group
    lo: int = 1
    hi: int | None = 1  # None: unbounded
    possessive: bool = False

    @property
    def unbounded(self) -> bool:
        return self.hi is None and not self.possessive


_QUANT = re.compile(r"\*|\+|\?|\{([0-9]+)(,([0-9]*))?\}")
_ESCAPE_CLASS = re.compile(r"\\(?:[dDwWsShHvVNR]|[pP](?:\{[^}]*\}|[A-Za-z]))")


class _RegexScan:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.extended = False

    def parse(self) -> _Group:
        return self._alternatives()

    def _alternatives(self) -> _Group:
        alts: list[list[_Item]] = [[]]
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            if c == ")":
                break
            if c == "|":
                self.i += 1
                alts.append([])
                continue
            node = self._node()
            if node is None:
                continue
            item = _Item(node)
            self._quantifier(item)
            alts[-1].append(item)
        return _Group(alts)

    def _quantifier(self, item: _Item) -> None:
        m = _QUANT.match(self.p, self.i)
        if not m:
            return
        q = m.group(0)
        if q == "*":
            item.lo, item.hi = 0, None
        elif q == "+":
            item.lo, item.hi = 1, None
        elif q == "?":
            item.lo, item.hi = 0, 1
        else:
            item.lo = int(m.group(1))
            item.hi = item.lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
        self.i = m.end()
        if self.p[self.i:self.i + 1] == "+":
            item.possessive = True
            self.i += 1
        elif self.p[self.i:self.i + 1] == "?":
            self.i += 1

    def _node(self) -> _Atom | _Group | None:
        p, c = self.p, self.p[self.i]
        # (?x) whitespace is skipped. A `#` comment never gets here: with no line break to end
        # it, it would swallow the `)` check_regex wraps the pattern in, which PCRE2 refuses.
        if self.extended and c in " \t\n\r\f\v":
            self.i += 1
            return None
        if c == "(":
            return self._group()
        if c == "[":
            end = self._class_end(self.i)
            text = p[self.i:end]
            self.i = end
            return _Atom(text, None)
        if c == "\\":
            return self._escape()
        if c in "^$":
            self.i += 1
            return None
        self.i += 1
        return _Atom(c, None if c == "." else c)

    def _escape(self) -> _Atom | _Group | None:
        p = self.p
        m = _ESCAPE_CLASS.match(p, self.i)
        if m:
            self.i = m.end()
            return _Atom(m.group(0), None)
        nxt = p[self.i + 1:self.i + 2]
        if nxt == "Q":  # \Q...\E: literal text
            end = p.find("\\E", self.i + 2)
            end = len(p) if end < 0 else end
            text = p[self.i + 2:end]
            self.i = end + 2
            return _Group([[_Item(_Atom(ch, ch)) for ch in text]]) if text else None
        if nxt in ("b", "B", "A", "z", "Z", "G", "K", "E"):
            self.i += 2
            return None
        if nxt.isdigit() or nxt in ("g", "k"):  # backreferences: any text, any length
            m = re.compile(r"\\(?:[0-9]+|g\{?-?[0-9A-Za-z_]+\}?|k[<{'][A-Za-z_0-9]+[>}'])").match(p, self.i)
            self.i = m.end() if m else self.i + 2
            return _Group([[]], opaque=True)
        m = re.compile(r"\\(?:x\{[0-9A-Fa-f]+\}|x[0-9A-Fa-f]{0,2}|o\{[0-7]+\}|c.|.)").match(p, self.i)
        assert m is not None
        text = m.group(0)
        self.i = m.end()
        # \. \/ \- ...: that character; \t, \x41, \cA: left to Python's re in _Atom.chars().
        return _Atom(text, text[1] if len(text) == 2 and not text[1].isalnum() else None)

    def _class_end(self, start: int) -> int:
        p, i = self.p, start + 1
        if p[i:i + 1] == "^":
            i += 1
        if p[i:i + 1] == "]":
            i += 1
        while i < len(p) and p[i] != "]":
            if p[i] == "\\":
                i += 2
            elif p.startswith("[:", i):
                close = p.find(":]", i + 2)
                i = close + 2 if close >= 0 else i + 1
            else:
                i += 1
        return min(i + 1, len(p))

    def _group(self) -> _Group | None:
        p = self.p
        self.i += 1
        atomic = lookaround = False
        if p.startswith("?#", self.i):
            close = p.find(")", self.i)
            self.i = len(p) if close < 0 else close + 1
            return None
        # (*VERB) never gets here: _regex_hazard refuses it first.
        if p.startswith("?", self.i):
            # Option letters as PCRE2 10.42 knows them; anything else, e.g. (?1), (?R), (?C1): a
            # call or callout, matching anything.
            m = re.compile(r"\?(?:(>)|(<?[=!])|(:)|\||(?:P?<[A-Za-z_][A-Za-z0-9_]*>|'[A-Za-z_][A-Za-z0-9_]*')|"
                           r"([-imnsxJU^]*)(:|\)))").match(p, self.i)
            if not m:
                self.i += 1
                self._alternatives()  # up to its `)`, so what follows the group is scanned too
                if self.p[self.i:self.i + 1] == ")":
                    self.i += 1
                return _Group([[]], opaque=True)
            self.i = m.end()
            atomic, lookaround = bool(m.group(1)), bool(m.group(2))
            flags, end = m.group(4), m.group(5)
            if flags is not None:
                on = flags.split("-")[0]
                if "x" in on:
                    self.extended = True
                if end == ")":
                    return None
        inner = self._alternatives()
        if self.p[self.i:self.i + 1] == ")":
            self.i += 1
        if lookaround:  # zero-width: matches no characters of its own
            return None
        inner.atomic = atomic
        return inner


def _atoms(items: list[_Item]) -> list[_Atom] | None:
    """Every character atom these items can match; None if some part is opaque."""
    out: list[_Atom] = []
    for it in items:
        if isinstance(it.node, _Atom):
            out.append(it.node)
            continue
        if it.node.opaque:
            return None
        for alt in it.node.alternatives:
            sub = _atoms(alt)
            if sub is None:
                return None
            out += sub
    return out


def _unbounded_inside(items: list[_Item]) -> list[_Item]:
    """Repeats without an upper bound (that can backtrack) anywhere in these items."""
    out: list[_Item] = []
    for it in items:
        if it.possessive or (isinstance(it.node, _Group) and it.node.atomic):
            continue
        if it.unbounded or (isinstance(it.node, _Group) and it.node.opaque):
            out.append(it)
        if isinstance(it.node, _Group):
            for alt in it.node.alternatives:
                out += _unbounded_inside(alt)
    return out


def _delimited(alt: list[_Item]) -> bool:
    """A literal character every iteration holds a fixed number of times and nothing else in it
    can match: iterations then split in one way only."""
    everything = _atoms(alt)
    if everything is None:
        return False
    fixed = {id(it.node): it.node.literal for it in alt
             if isinstance(it.node, _Atom) and it.node.literal is not None and it.lo == it.hi and it.lo >= 1}
    return any(all(id(a) in fixed for a in everything if ch in a.chars()) for ch in set(fixed.values()))


def _first(items: list[_Item]) -> tuple[frozenset[str], bool] | None:
    """Characters an alternative can start with, and whether it can match the empty string."""
    out: set[str] = set()
    for it in items:
        if isinstance(it.node, _Atom):
            out |= it.node.chars()
            if it.lo >= 1:
                return frozenset(out), False
            continue
        if it.node.opaque:
            return None
        empty = False
        for alt in it.node.alternatives:
            sub = _first(alt)
            if sub is None:
                return None
            out |= sub[0]
            empty = empty or sub[1]
        if it.lo >= 1 and not empty:
            return frozenset(out), False
    return frozenset(out), True


def _literal_text(items: list[_Item]) -> str | None:
    if all(isinstance(it.node, _Atom) and it.node.literal is not None and it.lo == it.hi == 1 for it in items):
        return "".join(it.node.literal or "" for it in items if isinstance(it.node, _Atom))
    return None


def _ambiguous_alternatives(group: _Group) -> bool:
    alts = [a for a in group.alternatives if a]
    firsts = [_first(a) for a in alts]
    for i in range(len(alts)):
        for j in range(i + 1, len(alts)):
            fi, fj = firsts[i], firsts[j]
            if fi is None or fj is None:
                return True
            if fi[0] & fj[0]:
                a, b = _literal_text(alts[i]), _literal_text(alts[j])
                if a is None or b is None or a.startswith(b) or b.startswith(a):
                    return True
    return False


def _hazard(group: _Group) -> str | None:
    for alt in group.alternatives:
        for it in alt:
            if not isinstance(it.node, _Group):
                continue
            repeated = (it.hi is None or it.hi > 1) and not it.possessive and not it.node.atomic
            if repeated:
                for inner in it.node.alternatives:
                    if _unbounded_inside(inner) and not _delimited(inner):
                        return "nests an unbounded repeat inside a repeated group"
                if _ambiguous_alternatives(it.node):
                    return "repeats a group whose alternatives can match the same text"
            found = _hazard(it.node)
            if found:
                return found
    return None


_VERB = re.compile(r"\(\*")


def _regex_hazard(pattern: str) -> str | None:
    """Why a pattern is refused beyond PCRE's syntax, or None."""
    scan = _RegexScan(pattern)
    # (*ACCEPT) ends a match wherever it stands, past wardgate's \z; (*LF), (*CR)... change what
    # PCRE calls a line end; (*LIMIT_...) raise limits. Quoted text, escapes and classes become
    # one neutral character: removed, `(\d*)` would read as `(*`.
    stripped = re.sub(r"\\Q.*?(?:\\E|$)|\\.|\[(?:\\.|[^\]])*\]", "_", pattern)
    if _VERB.search(stripped):
        return "uses a (*...) verb or option, which wardgate does not support"
    problem = _hazard(scan.parse())
    if problem:
        return (f"{problem} (nested repeats such as (a+)+, (a|a)* or (.*a){{20}}): a request could make it "
                "backtrack for a long time (ReDoS); make the inner repeat possessive (a++) or rewrite it")
    return None


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


def header_variable(name: str, source: Literal["http", "upstream_http"] = "http") -> str:
    """`$http_x_foo` for request header X-Foo (`$upstream_http_x_foo` for the upstream's response
    header). Only names nginx can expose as a variable are allowed."""
    check_header_name(name)
    var = name.lower().replace("-", "_")
    if not _VARNAME.fullmatch(var):
        raise UnsafeValueError(f"header name {name!r} can't be matched: use letters, digits and '-'")
    return f"${source}_{var}"


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
class MapKey:
    """A literal key in a `map` block. A bare key that is one of map's keywords (`include`,
    `default`, `hostnames`, `volatile`) would be read as that keyword, and one starting with `~`
    as a regex: map drops one leading backslash from a key and reads the rest as plain text."""

    value: str


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


Arg = str | int | float | Raw | Text | Expr | Body | Lines | MapKey


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
    if isinstance(value, MapKey):
        return '"\\\\' + _escape(value.value) + '"'  # `\\` in the file: one backslash for map
    if isinstance(value, bool):
        raise UnsafeValueError("booleans are not nginx tokens")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return literal(value)


# --- ModSecurity rule text ------------------------------------------------------------------
# The only place wardgate writes libmodsecurity's rule language. The lines end up inside one
# `modsecurity_rules` argument (Lines escapes that for nginx); every value in a rule is a number,
# a name matched against a strict grammar, or a path regex checked like the model's WAF paths.

# Rule ids wardgate generates per location (a range CRS leaves to users).
MODSEC_RULE_BASE = 77_000
# ARGS names and header names as the policy models allow them.
_MODSEC_TARGET = re.compile(r"^[A-Za-z0-9_.\[\]-]+$")


def _modsec_target(name: str) -> str:
    if not _MODSEC_TARGET.fullmatch(name):
        raise UnsafeValueError(f"refusing ModSecurity target name {name!r}")
    return name


def modsec_http_rules(base: str, setup: str, rules_dir: str, audit_log: str) -> list[str]:
    """CRS for the whole Gateway, engine on (the nginx connector's `modsecurity off` keeps it out
    of locations that don't ask for it)."""
    return [
        f"Include {base}",
        "SecRuleEngine On",
        # One JSON line per request a rule flagged (not per 4xx/5xx, Debian's default), without
        # request headers (part B): they carry credentials.
        "SecAuditEngine RelevantOnly",
        'SecAuditLogRelevantStatus "^$"',
        "SecAuditLogFormat JSON",
        "SecAuditLogType Serial",
        "SecAuditLogParts AHZ",
        f"SecAuditLog {audit_log}",
        f"Include {setup}",
        f"Include {rules_dir}/*.conf",
        # Outbound (response) rules off: the nginx connector can't refuse a response cleanly
        # (at PL2 a backend 500 became an empty reply).
        "SecRuleRemoveById 950000-959999",
    ]


def modsec_location_rules(block: bool, paranoia: int, threshold: int) -> list[str]:
    """Engine mode, paranoia level and anomaly threshold for one location (a phase-1 SecAction:
    location rules run before the http-level CRS)."""
    return [
        f'SecRuleEngine {"On" if block else "DetectionOnly"}',
        f'SecAction "id:{MODSEC_RULE_BASE},phase:1,pass,nolog,t:none,'
        f'setvar:tx.paranoia_level={int(paranoia)},setvar:tx.executing_paranoia_level={int(paranoia)},'
        f'setvar:tx.inbound_anomaly_score_threshold={int(threshold)}"',
    ]


def modsec_path_exclusion(rule_id: int, path_rx: str, rule_ids: tuple[int, ...], args: tuple[str, ...],
                   headers: tuple[str, ...]) -> str:
    """Rules (or the whole engine, without rule ids) off for requests whose path matches `path_rx`."""
    check_waf_path(path_rx)  # the model checked each path the same way
    if rule_ids and (args or headers):
        ctls = [f"ctl:ruleRemoveTargetById={int(i)};ARGS:{_modsec_target(a)}" for i in rule_ids for a in args]
        ctls += [f"ctl:ruleRemoveTargetById={int(i)};REQUEST_HEADERS:{_modsec_target(h)}" for i in rule_ids
                 for h in headers]
    elif rule_ids:
        ctls = [f"ctl:ruleRemoveById={int(i)}" for i in rule_ids]
    else:
        ctls = ["ctl:ruleEngine=Off"]
    # normalizePath: ModSecurity decodes the path but keeps dot segments, so /upload/../admin
    # would otherwise match /upload while nginx serves /admin.
    return (f'SecRule REQUEST_FILENAME "@rx {path_rx}" "id:{int(rule_id)},phase:1,pass,nolog,t:none,'
            "t:normalizePath," + ",".join(ctls) + '"')


def modsec_target_exclusions(rule_ids: tuple[int, ...], args: tuple[str, ...], headers: tuple[str, ...]) -> list[str]:
    """Some args/headers out of these rules' targets, on every path."""
    targets = [f"!ARGS:{_modsec_target(a)}" for a in args] + [f"!REQUEST_HEADERS:{_modsec_target(h)}" for h in headers]
    return [f'SecRuleUpdateTargetById {int(i)} "{"|".join(targets)}"' for i in rule_ids]


def modsec_remove_rules(rule_ids: tuple[int, ...]) -> str:
    return "SecRuleRemoveById " + " ".join(str(int(i)) for i in rule_ids)


def modsec_rules_text(lines: list[str]) -> str:
    """One rules argument. Every rules string must end with a newline: without it a
    SecRuleUpdateTargetById breaks the next rule libmodsecurity parses."""
    return "\n".join(lines) + "\n"


# --- ModSecurity: what CRS allows per route, and the body limits --------------------------------
# Methods and media types become CRS's space-separated `tx.allowed_*` lists; both grammars leave
# out everything that could end a list entry, a quoted argument or start a macro (`|`, space, `'`,
# `"`, `%`, `,`).
_MODSEC_METHOD = re.compile(r"^[A-Z]{1,32}$")
# CRS 3.3.4's own list (REQUEST-901 rule 901162), which a location's list replaces.
CRS_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "multipart/related", "text/xml",
                     "application/xml", "application/soap+xml", "application/json",
                     "application/cloudevents+json", "application/cloudevents-batch+json")
# JSON bodies under a name Debian's `^application/json` rule (200001) misses: parsed and allowed.
# Every `application/*+json` is matched by a rule of its own.
JSON_CONTENT_TYPES = ("application/csp-report",)
# Ids of the rules below, after the exclusions' (which count up from 77001, at most 256 of them).
MODSEC_POLICY_RULE = MODSEC_RULE_BASE + 900


def modsec_request_policy(methods: tuple[str, ...], content_types: tuple[str, ...], body_limit: int) -> list[str]:
    """One location's request policy for CRS and ModSecurity: the methods it allows (rule 911100),
    the media types (920420), JSON parsing for every JSON type, and ModSecurity's body limits.

    Location rules run before the http-level ones, so CRS's 901160/901162 find the lists set and
    keep them. Over `body_limit` ModSecurity keeps the first `body_limit` bytes (ProcessPartial)
    and rule MODSEC_POLICY_RULE+3 answers 413, which logs a rule id (Reject would answer 403
    without one)."""
    for m in methods:
        if not _MODSEC_METHOD.fullmatch(m):
            raise UnsafeValueError(f"refusing ModSecurity method {m!r}")
    for t in content_types:
        if not _MEDIA_TYPE.fullmatch(t):
            raise UnsafeValueError(f"refusing ModSecurity media type {t!r}")
    limit = int(body_limit)
    if limit <= 0:
        raise UnsafeValueError("a ModSecurity body limit must be positive (0 means no limit for one directive "
                               "and refuse everything for the other)")
    types = " ".join(f"|{t}|" for t in dict.fromkeys(CRS_CONTENT_TYPES + JSON_CONTENT_TYPES + content_types))
    json_types = "|".join(re.escape(t) for t in JSON_CONTENT_TYPES)
    rid = MODSEC_POLICY_RULE
    return [
        f"SecRequestBodyLimit {limit}",
        f"SecRequestBodyNoFilesLimit {limit}",
        "SecRequestBodyLimitAction ProcessPartial",
        f"SecAction \"id:{rid},phase:1,pass,nolog,t:none,setvar:'tx.allowed_methods={' '.join(methods)}',"
        f"setvar:'tx.allowed_request_content_type={types}'\"",
        # As 920420 reads the type: up to the first `;` or space, lower-cased.
        f'SecRule REQUEST_HEADERS:Content-Type "@rx ^(application/[^;\\s]+\\+json)(?:[;\\s]|$)" '
        f'"id:{rid + 1},phase:1,pass,nolog,capture,t:none,t:lowercase,ctl:requestBodyProcessor=JSON,'
        f"setvar:'tx.allowed_request_content_type=%{{tx.allowed_request_content_type}} |%{{tx.1}}|'\"",
        f'SecRule REQUEST_HEADERS:Content-Type "@rx ^(?:{json_types})(?:[;\\s]|$)" '
        f'"id:{rid + 2},phase:1,pass,nolog,t:none,t:lowercase,ctl:requestBodyProcessor=JSON"',
        f'SecRule INBOUND_DATA_ERROR "@eq 1" "id:{rid + 3},phase:2,deny,status:413,log,t:none,'
        f"msg:'Request body over the WAF limit of {limit} bytes'\"",
    ]
