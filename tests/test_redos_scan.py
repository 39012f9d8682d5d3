"""check_regex's ReDoS scan, construct by construct: each pattern pins one reading of the PCRE
syntax (classes, escapes, quoting, groups, quantifiers) or one step of the decision, with the
answer the scan must give. A misread construct shifts what follows it, so most cases hide a
nested repeat where a misreading would see one, or the other way round."""

from __future__ import annotations

import pytest

from wardgate.quoting import check_regex

NESTED = "nests an unbounded repeat inside a repeated group"
OVERLAP = "repeats a group whose alternatives can match the same text"
VERB = "uses a (*...) verb or option"

CASES: list[tuple[str, str | None]] = [
    # Character classes: where they end decides whether what follows is read at all.
    ("[a](b+)+", NESTED),  # ends at its first `]`
    ("[](b+)+]", None),  # a leading `]` is a member
    ("[]](b+)+", NESTED),  # ... only the first one
    ("[^](b+)+]", None),  # after `^` too
    ("[^a](b+)+", NESTED),
    ("[\\](b+)+]", None),  # `\]` is a member
    ("[\\]](b+)+", NESTED),
    ("[[:alpha:](b+)+]", None),  # `[:alpha:]` inside a class: its `]` does not end it
    ("[[:alpha:]](b+)+", NESTED),
    ("[[:alpha:]](b+)+[[:digit:]]", NESTED),
    ("a:][[:alpha:](b+)+]", None),
    ("[[:(b+)+]", None),  # `[:` without `:]` is two members
    # Escapes that match no character (assertions, \K, \E): nothing to start an alternative with.
    ("(\\ba|a)*", OVERLAP), ("(\\Ba|a)*", OVERLAP), ("(\\Aa|a)*", OVERLAP), ("(\\Za|a)*", OVERLAP),
    ("(\\za|b)*", None), ("(\\Ga|b)*", None), ("(\\Ka|b)*", None), ("(\\Ea|b)*", None),
    # Single-character escapes: punctuation is that character, \t a tab, not a `t`.
    ("(\\ta|t)*", None), ("(\\.a|\\.)*", OVERLAP), ("(\\.|a)*", None),
    # Backreferences and subroutine calls match text the scan does not know: opaque.
    ("(a)(\\1x)*", NESTED), ("(a)(\\g1x)*", NESTED), ("(a)\\1(b|c)*", None), ("(a)\\g<1>", None),
    ("(x)((?>\\1)|a)*", OVERLAP),
    ("(a)(?1)(b+)+", NESTED), ("(?C1)(b+)+", NESTED), ("(?R)?(b+)+", NESTED), ("(a)(x(?1))*", NESTED),
    # \Q...\E: literal text.
    ("\\Q(a+)+\\E(b+)+", NESTED), ("\\Q(a+)+\\E(b+)+\\E", NESTED), ("\\E\\Q(a+)+\\E", None),
    ("\\Q\\E(b+)+", NESTED), ("\\Qa\\E(b+)+", NESTED), ("(\\Qa+\\E)+", None), ("(\\Qa\\E|a)*", OVERLAP),
    ("(\\Qab\\E|b)*", None), ("ab(\\Qab\\E|b)*", None),
    # Groups: comments, options, lookarounds, atomic groups.
    ("(?#x)(a+)+", NESTED), ("(b)(?#x)(a+)+", NESTED), ("(?#)(a+)+", NESTED),
    ("(?U)(a+)+", NESTED), ("(?i-m)(a+)+", NESTED), ("(?x)(Xa|a)*", None), ("(?x)(a |a)*", OVERLAP),
    ("(?x:a|b)*(c+)+", NESTED), ("(?|a|b)*", None),
    ("((?>a+))*", None), ("(a++b+)*", NESTED), ("(a+(?:b))*", NESTED),
    # Anchors take no characters.
    ("(Xa|a)*", None), ("^(a+)+", NESTED), ("(^a|a)*", OVERLAP),
    # Quantifiers: bounds, possessive and lazy forms.
    ("(a*b|b)*", OVERLAP), ("(a?b|b)*", OVERLAP), ("(a|ab)?", None), ("(a+){2}", NESTED), ("(a{2})*", None),
    ("(a{1,})*", NESTED), ("(a{1,5})*", None), ("((ab){2}|c)*", None), ("(.++)*", None), ("(.++|.)*", OVERLAP),
    ("(a+?)+", NESTED), ("(a*+)+", None), ("(a?+b|b)*", OVERLAP),
    # The first characters of an alternative, through optional items and groups.
    ("(b?a|b)*", OVERLAP), ("(a[b]|[b])*", None), ("((?:a)b|b)*", None), ("(((?:a))b|b)*", None),
    ("((?:a)|b)*", None), ("(a?(?:b)|a)*", OVERLAP), ("((?:a|)b|b)*", OVERLAP), ("((?:a)?b|b)*", OVERLAP),
    ("((?:a?)b|b)*", OVERLAP), ("(a?|b)*", None), ("([a]|[b])*", None),
    # Plain strings none of which is a prefix of another are unambiguous; anything else is not.
    ("(ab[c]|ac)*", OVERLAP), ("(a{2}b|ac)*", OVERLAP), ("(ab|a[c])*", OVERLAP), ("(abc|abd)*", None),
    # A literal that splits iterations, and what keeps it from doing so.
    ("(/[a-z/]+)*", NESTED), ("(/(?:a)[b-z]+)*", None), ("([a-z/]+/(?:a))*", NESTED), ("(/\\w+)*", None),
    # Verbs, but not `(` before a class, escape or quoted text followed by `*`.
    ("a|(*FAIL)", VERB), ("a(*SKIP)b", VERB), ("([a]*)", None), ("(\\d*)", None), ("/v(\\d*)/x", None),
    ("(\\Qa\\E*)", None), ("[(*]", None),
]


@pytest.mark.parametrize(("pattern", "refusal"), CASES)
def test_redos_scan(pattern: str, refusal: str | None) -> None:
    if refusal is None:
        assert check_regex(pattern) == pattern
        return
    with pytest.raises(ValueError) as exc:
        check_regex(pattern)
    assert refusal in str(exc.value)


def test_refusal_messages_word_for_word() -> None:
    advice = ("(nested repeats such as (a+)+, (a|a)* or (.*a){20}): a request could make it backtrack for a long "
              "time (ReDoS); make the inner repeat possessive (a++) or rewrite it")
    for pattern, problem in (("(a+)+", NESTED), ("(a|a)*", OVERLAP)):
        with pytest.raises(ValueError) as exc:
            check_regex(pattern)
        assert str(exc.value) == f"regular expression {pattern!r} {problem} {advice}"
    with pytest.raises(ValueError) as exc:
        check_regex("a(*ACCEPT)")
    assert str(exc.value) == ("regular expression 'a(*ACCEPT)' uses a (*...) verb or option, which wardgate does "
                              "not support")
