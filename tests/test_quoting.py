"""The quoting module: exact tokens, refusals, and the validators' grammar."""

from __future__ import annotations

import re

import pytest

from conftest import nginx_unescape
from wardgate.errors import UnsafeValueError
from wardgate.quoting import (
    DOLLAR_VAR,
    Expr,
    Raw,
    Text,
    check_header_name,
    check_hostname,
    check_matchable_header_name,
    check_path,
    check_regex,
    check_text,
    header_variable,
    literal,
    regex_escape,
    text,
    token,
)
from wardgate.render.emit import Directive, emit


def nginx_unquote(tok: str) -> str:
    """What nginx's ngx_conf_read_token makes of one double-quoted token."""
    assert len(tok) >= 2 and tok[0] == tok[-1] == '"', tok
    body = tok[1:-1]
    # An unescaped quote would have ended the token early.
    assert re.search(r'(?<!\\)(?:\\\\)*"', body) is None, f"unescaped quote inside {tok!r}"
    return nginx_unescape(body)


# --- literal / text ----------------------------------------------------------------------------


def test_literal_exact_and_round_trips() -> None:
    value = 'a"b\\c;{}'
    assert literal(value) == '"a\\"b\\\\c;{}"'
    assert nginx_unquote(literal(value)) == value


@pytest.mark.parametrize("value", [
    "", " ", "plain", "a b", "#", "x;y", "{", "}", "'", '"', "\\", '\\"', "\\n", "\\t", "\\r", "\\\\n",
    'x"; return 200 "pwned', "a;}server{listen 1;}", "é💥", "tab\there", "$remote_addr", "${x}",
])
def test_literal_round_trips(value: str) -> None:
    tok = literal(value)
    assert nginx_unquote(tok) == value
    # Nothing outside the quotes: the token is one word whatever it holds.
    assert tok.startswith('"') and tok.endswith('"')


def test_text_escapes_dollar_as_variable() -> None:
    assert text("a$b") == '"a${wg_dollar}b"'
    assert DOLLAR_VAR == "wg_dollar"
    assert text("$") == '"${wg_dollar}"'
    assert text("${wg_dollar}") == '"${wg_dollar}{wg_dollar}"'
    assert text('a"$\\') == '"a\\"${wg_dollar}\\\\"'
    assert text("no dollars") == literal("no dollars")


def test_text_never_leaves_a_bare_dollar() -> None:
    for value in ["$", "$$", "$1", "$host", "${host}", "a$", "\\$x", '"$x"']:
        body = nginx_unquote(text(value))
        # every $ that nginx sees starts the ${wg_dollar} reference
        assert re.sub(r"\$\{wg_dollar\}", "", body).count("$") == 0, body


# --- token refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["\x00", "a\nb", "a\rb", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f"])
@pytest.mark.parametrize("wrap", [lambda v: v, Text, lambda v: Expr((Raw("$host"), v))],
                         ids=["literal", "Text", "Expr"])
def test_token_refuses_control_characters(bad: str, wrap: object) -> None:
    with pytest.raises(UnsafeValueError):
        token(wrap(bad))  # type: ignore[operator]


def test_token_allows_tab_written_raw() -> None:
    # Tab is not a line break; inside quotes nginx keeps it as it is.
    assert token("a\tb") == '"a\tb"'


def test_token_kinds() -> None:
    assert token(5) == "5"
    assert token(0.5) == "0.5"
    assert token(Raw("$http_host")) == "$http_host"
    assert token(Text("x$y")) == '"x${wg_dollar}y"'
    assert token(Expr((Raw("$scheme"), "://h/$", Raw("$is_args")))) == '"$scheme://h/${wg_dollar}$is_args"'
    with pytest.raises(UnsafeValueError):
        token(True)


@pytest.mark.parametrize("bad", ["", "a b", "a;", "a{", "}", '"', "'", "a\\b", "#x", "a\tb", "a\nb", "a\rb"])
def test_raw_refuses_non_words(bad: str) -> None:
    with pytest.raises(UnsafeValueError):
        token(Raw(bad))


@pytest.mark.parametrize("bad", ["$x;", "$x y", "${x", "$X", "a b", '"', "{", "$http_x}"])
def test_expr_raw_parts_must_be_variables_or_plain_words(bad: str) -> None:
    with pytest.raises(UnsafeValueError):
        token(Expr((Raw(bad),)))


# --- header names as variables -----------------------------------------------------------------


def test_header_variable() -> None:
    assert header_variable("X-Foo") == "$http_x_foo"
    assert header_variable("x_foo") == "$http_x_foo"
    assert header_variable("ABC-123") == "$http_abc_123"


@pytest.mark.parametrize("name", ["X.Foo", "X!", "a#b", "x~", "x'y", "x|y", "x`y", "x^y", "x+y"])
def test_header_variable_refuses_names_nginx_cant_expose(name: str) -> None:
    check_header_name(name)  # a valid RFC 7230 token ...
    with pytest.raises(UnsafeValueError):  # ... that nginx has no $http_ variable for
        header_variable(name)


@pytest.mark.parametrize("name", ["", "X Foo", "X:Foo", "X\nFoo", "X;", "X{", '"', "é", "x$y", "x" * 257])
def test_header_variable_refuses_invalid_names(name: str) -> None:
    with pytest.raises(ValueError):
        header_variable(name)


# --- validators --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["X-Foo", "x_foo", "Content-Type", "a", "!#%&'+.^_`|~-", "x" * 256])
def test_check_header_name_accepts(name: str) -> None:
    assert check_header_name(name) == name


@pytest.mark.parametrize("name", ["", "X Foo", "X:Foo", "X\tFoo", "X\nFoo", "X\x00", "X;", "X{}", '"X"', "X/Y",
                                  "X@Y", "X(Y)", "X,Y", "é", "X$a", "$", "x" * 257])
def test_check_header_name_refuses(name: str) -> None:
    with pytest.raises(ValueError, match="invalid header name"):
        check_header_name(name)


@pytest.mark.parametrize("name", ["X-Foo", "x-foo-2", "A", "0"])
def test_check_matchable_header_name_accepts(name: str) -> None:
    assert check_matchable_header_name(name) == name
    assert header_variable(name) == "$http_" + name.lower().replace("-", "_")


@pytest.mark.parametrize("name", ["X_Foo", "X.Foo", "X!", "x~", "x*", "", "X Foo", "X$a"])
def test_check_matchable_header_name_refuses(name: str) -> None:
    # `_` too: nginx drops request headers with underscores unless told otherwise.
    with pytest.raises(ValueError, match="header name"):
        check_matchable_header_name(name)


@pytest.mark.parametrize("value", ["", "hello world", "a\tb", "é💥", 'x"; return 200 "pwned', "${x}", "x" * 4096])
def test_check_text_accepts(value: str) -> None:
    assert check_text(value) == value


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "\x00", "\x01", "\x1b", "\x7f"])
def test_check_text_refuses_control_characters(value: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        check_text(value, "header value")


def test_check_text_refuses_long_values() -> None:
    with pytest.raises(ValueError, match="longer than"):
        check_text("x" * 4097)


@pytest.mark.parametrize("host", ["example.com", "a", "localhost", "a-b.c-d.e", "0.example", "123",
                                  "*.example.com", "*.a", "x" * 63 + ".com"])
def test_check_hostname_accepts(host: str) -> None:
    assert check_hostname(host) == host


@pytest.mark.parametrize("host", [
    "", "Example.com", "EXAMPLE.COM", "*example.com", "a.*.com", "*", "*.", "**.a", "*.*.a", "a.*", "-a.com",
    "a-.com", "a..b", ".a", "a.com.", "a_b.com", "a b", "a;b", 'a"b', "a$b", "a\nb", "é.com", "a.com:80",
    "~^(.*)$", "x.example.com\"; return 200 \"p", ("a" * 63 + ".") * 4 + "a",
])
def test_check_hostname_refuses(host: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        check_hostname(host)


def test_check_hostname_precise() -> None:
    assert check_hostname("a.example.com", wildcard=False) == "a.example.com"
    with pytest.raises(ValueError, match="precise hostname"):
        check_hostname("*.example.com", wildcard=False)


@pytest.mark.parametrize("path", ["/", "/a", "/a/b/", "/a$b", "/a%20b", "/a;b=c", "/~u/@x:y", "/a.b", "/.well-known",
                                  "/a..b", "/a/b.", "/a/.b", "/a'b", "/(x)*+,!", "/%2e", "/%41%42"])
def test_check_path_accepts(path: str) -> None:
    assert check_path(path) == path


@pytest.mark.parametrize(("path", "why"), [
    ("", "must start with '/'"),
    ("a", "must start with '/'"),
    ("/a b", "URL path characters"),
    ("/a?b", "URL path characters"),
    ('/a"b', "URL path characters"),
    ("/a\\b", "URL path characters"),
    ("/a{b}", "URL path characters"),
    ("/a\nb", "URL path characters"),
    ("/a\x00", "URL path characters"),
    ("/%zz", "URL path characters"),
    ("/%2", "URL path characters"),
    ("/é", "URL path characters"),
    ("/a#b", "URL path characters"),  # `#` is outside the grammar already
    ("//", "'//'"),
    ("/a//b", "'//'"),
    ("/a/./b", "'/./'"),
    ("/a/../b", "'/../'"),
    ("/a%2fb", "'%2f'"),
    ("/a%2Fb", "'%2F'"),
    ("/a/..", "dot segment"),
    ("/a/.", "dot segment"),
    ("/..", "dot segment"),
    ("/.", "dot segment"),
    ("/" + "a" * 1024, "URL path characters"),
])
def test_check_path_refuses(path: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        check_path(path)


@pytest.mark.parametrize("pattern", ["/a.*", "^x$", "/api/v[0-9]+", "(?i)/a", "[;{}\"'#]", "\\$", "a{1,2}", "(?:a|b)",
                                     "(?<=a)b", "(?<!a)b", "(a)\\1",
                                     "/\"; return 200 \"pwned"])
def test_check_regex_accepts(pattern: str) -> None:
    assert check_regex(pattern) == pattern


@pytest.mark.parametrize(("pattern", "why"), [
    ("", "1 to 1024 characters"),
    ("a" * 1025, "1 to 1024 characters"),
    ("(", "invalid regular expression"),
    (")", "invalid regular expression"),
    ("[a-", "invalid regular expression"),
    ("a{2,1}", "invalid regular expression"),
    ("*a", "invalid regular expression"),
    ("a)|(b", "invalid regular expression"),
    ("\\", "invalid regular expression"),
    ("a\nb", "control character"),
    ("a\x00", "control character"),
    # nginx sets a variable for every named capture: (?P<host>...) would overwrite $host
    ("(?P<host>.*)", "named group"),
    ("/(?<wg_dollar>.*)", "named group"),
    ("(?'a'x)", "named group"),
    # (*ACCEPT) ends the match before wardgate's \z; newline conventions change what $ means
    ("/a(*ACCEPT)", "(*...) verb"),
    ("(*LF)/a$", "regular expression"),
    ("/a(*COMMIT)", "(*...) verb"),
])
def test_check_regex_refuses(pattern: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        check_regex(pattern)


NESTED = "nests an unbounded repeat"
OVERLAP = "alternatives can match the same text"


@pytest.mark.parametrize(("pattern", "why"), [
    ("(a+)+", NESTED), ("(a*)*", NESTED), ("/x/(a+)+", NESTED), ("(.*a){20}", NESTED), ("(.*a){2,}", NESTED),
    ("(?:a*)*", NESTED), ("((a+))+", NESTED), ("(\\w+\\s?)*", NESTED), ("(x+x+)+y", NESTED), ("(.+/)*x", NESTED),
    ("(?i)(A+)+", NESTED), ("(?x)(a+ )+", NESTED), ("([a-z]+[0-9]*)+", NESTED), ("(.?a+b)*", NESTED),
    ("(a|a)*", OVERLAP), ("(\\d|\\w)+", OVERLAP), ("(a|ab)*", OVERLAP), ("(.|x){5,}", OVERLAP),
    ("/p(?:/(a|a)*)?", OVERLAP),
])
def test_check_regex_refuses_redos_shapes(pattern: str, why: str) -> None:
    """Issue 9 item 6: backtracking that a request can drive to PCRE's limit (about 100 ms each)."""
    with pytest.raises(ValueError, match=re.escape(why)) as exc:
        check_regex(pattern)
    assert "ReDoS" in str(exc.value)


@pytest.mark.parametrize("pattern", [
    "/static/[a-z0-9]+\\.(css|js)", "/files/[0-9]+\\.txt", "[0-9]+", "/t/[0-9a-f]{12}", "/redirect-[0-9]+",
    "(/[a-z]+)*", "([0-9]+\\.){3}[0-9]+", "(\\w+-)*x", "([^/]+/)*", "(ab|ac)*", "(css|js|png)+", "(GET|POST){2}",
    "(a+b)*", "(a++)+", "(?>a+)+", "/api/.*", ".*", "\\(*", "[(*]", "/v[0-9]+/(users|groups)/[0-9]+", "(a|)*",
    "(?=a+)+b", "/(?#a+)+x", "\\Q(a+)+\\E", "[(a+)+]", "\\(a+\\)+",
])
def test_check_regex_accepts_ordinary_repeats(pattern: str) -> None:
    assert check_regex(pattern) == pattern


@pytest.mark.parametrize("value", ["/a.b", "/p/", "a+b", "(x)", "[y]", "{z}", "^$|?*\\", "/-~%", "é"])
def test_regex_escape_matches_exactly_the_value(value: str) -> None:
    rx = re.compile(regex_escape(value))
    assert rx.fullmatch(value)
    assert not rx.fullmatch(value + "x")


# --- the emitter -------------------------------------------------------------------------------


def test_emit_quotes_every_user_argument() -> None:
    tree = [Directive("location", (Raw("="), '/a"; }'), [
        Directive("proxy_set_header", ("X-A", Text('v"; return 200 "$x'))),
    ])]
    out = emit(tree)
    assert out == ('location = "/a\\"; }" {\n'
                   '    proxy_set_header "X-A" "v\\"; return 200 \\"${wg_dollar}x";\n'
                   "}\n")


@pytest.mark.parametrize("name", ["a b", "a;", "A", "1a", "a{", "a}", 'a"'])
def test_emit_refuses_bad_directive_names(name: str) -> None:
    with pytest.raises(ValueError, match="bad directive name"):
        emit([Directive(name, (), None)])


def test_emit_comments_cannot_break_out() -> None:
    out = emit([Directive("a", (), None, comment="x\nevil;\r}")])
    assert out.splitlines() == ["# x evil; }", "a;"]


# --- boundaries and small outputs: each length limit at n (accepted) and n + 1 (refused) -------


def test_header_name_length_boundary_and_wildcard() -> None:
    assert check_header_name("a" * 256) == "a" * 256
    with pytest.raises(ValueError, match="RFC 7230 token"):
        check_header_name("a" * 257)
    with pytest.raises(ValueError, match="RFC 7230 token"):
        check_header_name("")
    # `*` is a token character, but headers-more reads it as a wildcard (clearing every header).
    for name in ("X-*", "*", "a*b"):
        with pytest.raises(ValueError, match="must not start with '-' or contain '\\*'"):
            check_header_name(name)
    with pytest.raises(ValueError, match="must not start with '-'"):
        check_header_name("-s")
    assert check_header_name("x-") == "x-"


def test_check_text_length_boundary() -> None:
    assert check_text("a" * 4096) == "a" * 4096
    with pytest.raises(ValueError, match="value is longer than 4096 characters"):
        check_text("a" * 4097)
    assert check_text("a" * 10, "thing", 10) == "a" * 10
    with pytest.raises(ValueError, match="thing is longer than 10 characters"):
        check_text("a" * 11, "thing", 10)


def test_header_value_escaped_size_boundary() -> None:
    from wardgate.quoting import MAX_HEADER_VALUE_TOKEN, check_header_value
    assert MAX_HEADER_VALUE_TOKEN == 4096 - 264
    assert check_header_value("a" * MAX_HEADER_VALUE_TOKEN)
    with pytest.raises(ValueError, match=f"too long for nginx once escaped: {MAX_HEADER_VALUE_TOKEN + 1} bytes"):
        check_header_value("a" * (MAX_HEADER_VALUE_TOKEN + 1))
    # A `$` is written as 12 bytes: 319 of them and 4 more bytes fit exactly, 5 don't.
    assert check_header_value("$" * 319 + "aaaa")
    with pytest.raises(ValueError, match="3833 bytes"):
        check_header_value("$" * 319 + "aaaaa")
    with pytest.raises(ValueError, match="3834 bytes"):
        check_header_value('"' * 1917)
    assert check_header_value('"' * 1916)


def test_hostname_length_boundary() -> None:
    label = "a" * 63
    host = ".".join([label] * 3) + "." + "b" * 61  # 253 characters
    assert len(host) == 253 and check_hostname(host) == host
    with pytest.raises(ValueError, match="lower-case RFC 1123 labels"):
        check_hostname(host + "b")
    with pytest.raises(ValueError, match="invalid precise hostname"):
        check_hostname("*.example.com", wildcard=False)
    with pytest.raises(ValueError, match=r"invalid hostname \(optionally \*\.-prefixed\)"):
        check_hostname("Example.com")


def test_path_length_boundary_and_dot_segments() -> None:
    assert check_path("/" + "a" * 1023) == "/" + "a" * 1023
    with pytest.raises(ValueError, match="must start with '/'"):
        check_path("/" + "a" * 1024)
    for bad in ("/a/..", "/a/."):
        with pytest.raises(ValueError, match="must not end with a dot segment"):
            check_path(bad)
    assert check_path("/a/..b") == "/a/..b"
    assert check_path("/a.") == "/a."


def test_regex_length_boundary() -> None:
    assert check_regex("a" * 1024) == "a" * 1024
    for bad in ("", "a" * 1025):
        with pytest.raises(ValueError, match="regular expression must be 1 to 1024 characters"):
            check_regex(bad)


def test_regex_error_offset_is_in_the_users_pattern() -> None:
    with pytest.raises(ValueError, match=r"\(at offset 3\)"):
        check_regex("abc)")
    with pytest.raises(ValueError, match="invalid regular expression 'a\\(b'"):
        check_regex("a(b")


def test_cipher_names() -> None:
    from wardgate.quoting import check_cipher_names
    assert check_cipher_names("ECDHE-RSA-AES128-GCM-SHA256:AES256-SHA") == ("ECDHE-RSA-AES128-GCM-SHA256",
                                                                          "AES256-SHA")
    longest = ":".join(f"C-{i:05d}" for i in range(127)) + ":C-123456"  # 1024 characters
    assert len(longest) == 1024 and len(check_cipher_names(longest)) == 128
    for bad, why in (("", "1 to 1024"), (longest + "3", "1 to 1024"), ("A-B:A-B", "twice"),
                     ("A-B:!C-D", "invalid cipher"), ("A-B::C-D", "invalid cipher"), ("AES", "invalid cipher")):
        with pytest.raises(ValueError, match=why):
            check_cipher_names(bad)


def test_lua_literals() -> None:
    from wardgate.quoting import lua_literal, lua_string
    assert lua_literal(False) == "false"
    assert lua_literal(True) == "true"
    assert lua_literal(None) == "nil"
    assert lua_literal(0) == "0" and lua_literal(-12) == "-12"
    assert lua_literal("a b") == '"a\\032b"'
    assert lua_literal(["x", 1, False]) == '{"x",1,false}'
    assert lua_literal(("x",)) == '{"x"}'
    assert lua_literal({"k": [True], 2: None}) == '{["k"]={true},[2]=nil}'
    assert lua_literal([]) == "{}" and lua_literal({}) == "{}"
    with pytest.raises(UnsafeValueError, match="no Lua literal for float"):
        lua_literal(1.5)
    assert lua_string("Az09_-./:") == '"Az09_-./:"'
    assert lua_string('"];\n€') == '"\\034\\093\\059\\010\\226\\130\\172"'
    assert lua_string("") == '""'


def test_body_and_lines_tokens() -> None:
    from wardgate.quoting import Body, Lines, MapKey, body, check_body
    assert body('a\tb\r\n"$\\') == '"a\\tb\\r\\n\\"${' + DOLLAR_VAR + '}\\\\"'
    assert token(Body("x$")) == '"x${' + DOLLAR_VAR + '}"'
    assert token(Lines('a\n"$')) == '"a\\n\\"$"'
    assert token(MapKey("default")) == '"\\\\default"'
    assert check_body("a\tb\r\n") is None
    assert check_body("ab\x01") == "contains a control character at offset 2 (only tab and line breaks)"
    with pytest.raises(UnsafeValueError, match="offset 1"):
        body("a\x7f")
    assert token(1.5) == "1.5" and token(2.0) == "2" and token(7) == "7"
    with pytest.raises(UnsafeValueError, match="booleans are not nginx tokens"):
        token(True)


def test_escape_refuses_nul_and_line_breaks_with_a_message() -> None:
    for bad in ("a\x00", "a\nb", "a\rb"):
        with pytest.raises(UnsafeValueError, match="NUL or line break"):
            literal(bad)
    with pytest.raises(UnsafeValueError, match="control character"):
        literal("a\x1b")


def test_no_zone_ids() -> None:
    import ipaddress

    from wardgate.quoting import check_no_zone
    check_no_zone(ipaddress.ip_address("fe80::1"), "fe80::1")
    with pytest.raises(ValueError, match="zone ids"):
        check_no_zone(ipaddress.ip_address("fe80::1%eth0"), "fe80::1%eth0")
    with pytest.raises(ValueError, match="zone ids"):
        check_no_zone(None, "10.0.0.0%x")


# --- what a user reads: each refusal word for word (a test matching part of a message can't see
# a changed word around it) -------------------------------------------------------------------


def message(fn: object, *args: object, error: type[Exception] = ValueError) -> str:
    with pytest.raises(error) as exc:
        fn(*args)  # type: ignore[operator]
    return str(exc.value)


def test_grammar_refusals_word_for_word() -> None:
    from wardgate.quoting import check_cipher_names, check_header_value, check_media_type
    assert message(check_cipher_names, "") == "cipher list must be 1 to 1024 characters"
    assert message(check_cipher_names, "A-B:!C") == (
        "invalid cipher name '!C': expected OpenSSL suite names such as ECDHE-RSA-AES128-GCM-SHA256 separated by "
        "':' (no operators or keywords)")
    assert message(check_cipher_names, "A-B:A-B") == "cipher list names a suite twice"
    assert message(check_header_value, "a\nb") == (
        "header value 'a\\nb' contains a control character (line breaks are not allowed)")
    assert message(check_header_value, "$" * 400) == (
        "header value is too long for nginx once escaped: 4800 bytes, at most 3832 (a '$' takes 12 bytes, a "
        "backslash or double quote 2)")
    assert message(check_media_type, "Text/Plain") == (
        "'Text/Plain' is not a media type such as text/plain (lower case, no parameters)")
    assert message(check_regex, "") == "regular expression must be 1 to 1024 characters"
    assert message(check_regex, "a\x01") == "regular expression 'a\\x01' contains a control character"
    assert message(check_regex, "(?<n>a)") == (
        "regular expression '(?<n>a)' uses a named group; use (?:...) or (...) instead")


@pytest.mark.parametrize(("pattern", "error"), [
    ("*a", "quantifier does not follow a repeatable item (at offset 0)"),
    ("abc)", "unmatched closing parenthesis (at offset 3)"),
    # Compiled with PCRE2's default options: an empty class is an error, as in nginx.
    ("[]", "missing terminating ] for character class (at offset 2)"),
    # Only wrapped (in the match limit and the anchors) does this fail: the offset is still the user's.
    ("(*UTF)a", "(*VERB) not recognized or malformed (at offset 5)"),
    ("\\Qab", "missing closing parenthesis (at offset 4)"),
])
def test_regex_errors_word_for_word(pattern: str, error: str) -> None:
    assert message(check_regex, pattern) == f"invalid regular expression {pattern!r}: {error}"


def test_pcre2_is_loaded_and_python_re_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from wardgate import quoting
    lib = quoting._load_pcre2()
    assert lib is not None  # a Debian nginx host has libpcre2-8
    monkeypatch.setattr(quoting, "_PCRE2", lib)
    assert quoting.pcre_error("a\\h") is None  # PCRE2 syntax Python's re does not have
    assert quoting.pcre_error("a)") == ("unmatched closing parenthesis", 1)
    monkeypatch.setattr(quoting, "_PCRE2", None)
    assert quoting.pcre_error("a") is None
    assert quoting.pcre_error("a)") == ("unbalanced parenthesis", 1)
    assert quoting.pcre_error("a\\h") == ("bad escape \\h", 1)


def test_internal_refusals_name_the_value() -> None:
    from wardgate.quoting import Expr, modsec_path_exclusion, modsec_request_policy, raw_token
    assert message(raw_token, Raw("a b"), error=UnsafeValueError) == "internal token 'a b' is not a bare word"
    assert message(token, Expr((Raw("$x;"),)), error=UnsafeValueError) == (
        "'$x;' is not a variable reference or plain word")
    assert message(header_variable, "X.Y", error=UnsafeValueError) == (
        "header name 'X.Y' can't be matched: use letters, digits and '-'")
    assert message(token, True, error=UnsafeValueError) == "booleans are not nginx tokens"
    assert message(modsec_path_exclusion, 77001, "/a", (1,), ("a b",), (), error=UnsafeValueError) == (
        "refusing ModSecurity target name 'a b'")
    assert message(modsec_request_policy, ("get",), (), 1, error=UnsafeValueError) == (
        "refusing ModSecurity method 'get'")
    assert message(modsec_request_policy, ("GET",), ("text/plain;x",), 1, error=UnsafeValueError) == (
        "refusing ModSecurity media type 'text/plain;x'")
    assert message(modsec_request_policy, ("GET",), (), 0, error=UnsafeValueError) == (
        "a ModSecurity body limit must be positive (0 means no limit for one directive and refuse everything for "
        "the other)")
    assert modsec_request_policy(("GET",), (), 1)[:2] == ["SecRequestBodyLimit 1", "SecRequestBodyNoFilesLimit 1"]


def test_modsecurity_exclusion_lines() -> None:
    from wardgate.quoting import modsec_path_exclusion, modsec_remove_rules, modsec_target_exclusions
    assert modsec_remove_rules((941100, 942100)) == "SecRuleRemoveById 941100 942100"
    assert modsec_target_exclusions((942100,), ("json.query",), ("X-Token",)) == [
        'SecRuleUpdateTargetById 942100 "!ARGS:json.query|!REQUEST_HEADERS:X-Token"']
    assert modsec_path_exclusion(77001, "^/a", (942100,), (), ("X-Token",)) == (
        'SecRule REQUEST_FILENAME "@rx ^/a" "id:77001,phase:1,pass,nolog,t:none,t:normalizePath,'
        'ctl:ruleRemoveTargetById=942100;REQUEST_HEADERS:X-Token"')
