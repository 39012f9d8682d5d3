"""The manifest loader builds documents from libyaml's events (sources/files.py `_documents`),
not through PyYAML's composer and constructor. It must give exactly what PyYAML's safe loader
gives: the same values of the same types, the same sharing of aliased objects, and, where PyYAML
refuses a document, a refusal (load_text then falls back to PyYAML, which words the error)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wardgate.errors import InputError
from wardgate.sources import files
from wardgate.sources.files import load_text

REPO = Path(__file__).resolve().parents[1]


def canon(value: Any, seen: dict[int, int] | None = None) -> Any:
    """`value` with every type spelled out and shared containers marked by first appearance."""
    seen = {} if seen is None else seen
    if isinstance(value, (dict, list, set)):
        if id(value) in seen:
            return ("shared", seen[id(value)])
        seen[id(value)] = len(seen)
        if isinstance(value, dict):
            return ("dict", [(canon(k, seen), canon(v, seen)) for k, v in value.items()])
        if isinstance(value, set):
            return ("set", sorted(repr(canon(v, seen)) for v in value))
        return ("list", [canon(v, seen) for v in value])
    return (type(value).__name__, repr(value))


def pyyaml(text: str) -> tuple[Any, str | None]:
    try:
        return canon(list(yaml.load_all(text, Loader=files._Loader))), None
    except (yaml.YAMLError, *files._CONVERSION_ERRORS) as exc:
        return None, type(exc).__name__


def check(text: str) -> None:
    want, error = pyyaml(text)
    try:
        got = canon(files._documents(text))
    except files._Unusual:
        return  # load_text uses PyYAML's loader for this one
    except files._Hostile as exc:  # refused as the separate shape check refuses it, in its words
        assert files._hostile_shape(text) == str(exc)
        return
    except yaml.YAMLError as exc:
        assert error is not None, f"refused what PyYAML loads: {exc}"
        return
    assert files._hostile_shape(text) is None
    assert error is None, f"loaded what PyYAML refuses ({error})"
    assert got == want


# Fragments of YAML that exercise PyYAML's resolver, constructor and composer: every implicit
# type, explicit tags, anchors and aliases (also undefined and duplicate), merge keys, complex
# keys, several documents, flow and block style, quoting.
SCALARS = ["1", "-1", "0x1F", "0o17", "017", "1_000", "1.5", "1e3", ".inf", "-.Inf", ".nan", "true", "False",
           "yes", "NO", "on", "Off", "y", "n", "~", "null", "", "2024-01-02", "2024-01-02T03:04:05Z",
           "2024-01-02 03:04:05.5 +02:00", "a", "a b", "'1'", '"true"', "'a''b'", '"\\u00e9\\x41"', "!!str 1",
           "!!int '7'", "!!float 1", "!!bool 'yes'", "!!null ''", "!!binary aGk=", "!!timestamp 2024-01-02",
           "! 12", "!foo x", "!!str", "<<", "'<<'", "=", "|\n  block\n", ">\n  folded\n", "1:2", "190:20:30",
           "0b101", "+12", "12.", ".5", "NaN", "TRUE"]
KEYS = ["a", "b", "'a'", "1", "true", "~", "<<", "2024-01-02", "1.5", "? [x]", "? {k: v}", "!!str 3", "!!binary aGk="]


@st.composite
def node(draw: st.DrawFn, depth: int = 0) -> str:
    anchor = draw(st.sampled_from(["", "", "", "", "", "", "", "", "&a ", "&b "]))
    alias = draw(st.sampled_from(["*a", "*a", "*b", "*c"]))
    choice = draw(st.integers(0, 12 if depth < 3 else 4))
    if choice <= 3:
        return anchor + draw(st.sampled_from(SCALARS)).replace("\n", "\n" + "  " * depth)
    if choice == 4:
        return alias
    # block scalars can't stand inside flow collections
    items = [i for i in draw(st.lists(node(depth + 1), max_size=3)) if "\n" not in i]
    if choice in (5, 6, 7):
        tag = draw(st.sampled_from(["", "", "", "", "", "", "!!seq ", "!!set ", "! ", "!!omap ", "!!map "]))
        return f"{anchor}{tag}[{', '.join(items)}]"
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=len(items), max_size=len(items)))
    tag = draw(st.sampled_from(["", "", "", "", "", "", "!!map ", "!!set ", "!!omap ", "! ", "!!pairs "]))
    pairs = [f"{k}: {v}" if not k.startswith("?") else f"{k} : {v}" for k, v in zip(keys, items, strict=True)]
    return f"{anchor}{tag}{{{', '.join(pairs)}}}"


@st.composite
def block(draw: st.DrawFn) -> str:
    """A block mapping of nodes, as manifests are written."""
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4))
    lines = []
    for k in keys:
        v = draw(node(1))
        lines.append(f"{k}: {v}" if not k.startswith("?") else f"{k}\n: {v}")
    return "\n".join(lines) + "\n"


DOCUMENTS = st.lists(st.one_of(block(), node()), min_size=1, max_size=3).map(lambda ds: "---\n".join(ds))


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
@example("a: &x 1\nb: &x 2\n")  # duplicate anchor
@example("a: *nope\n")  # undefined alias
@example("? [1]\n: 2\n")  # unhashable key
@example("<<: {a: 1}\nb: 2\n")  # merge key
@example("a: &m {x: 1}\nb: {<<: *m, y: 2}\nc: *m\n")
@example("a: !!set {x, y}\n")
@example("a: !foo 1\n")
@example("--- \n...\n---\na: 1\n")
@example("")
@example("a: [1, {b: yes, c: 2024-01-02}]\n'<<': 1\n")
@example("a: 1\na: 2\n")
@example("- !!binary aGVsbG8=\n- ! 12\n- !!str 12\n- !!int '12'\n")
@example("a: [\n")  # syntax error after a document start
@example("a: &a [*a]\n")  # an alias inside its own anchor
@example("[" * 201 + "]" * 201)  # too deep
@example("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n")
def test_same_as_pyyaml(text: str) -> None:
    check(text)


def test_every_example_and_corpus_manifest_loads_the_same() -> None:
    paths = [*sorted((REPO / "examples").rglob("*.yaml")), *sorted((REPO / "tests").rglob("*.yaml"))]
    assert len(paths) > 20
    fast = 0
    for path in paths:
        text = path.read_text()
        check(text)
        try:
            files._documents(text)
            fast += 1
        except (files._Unusual, yaml.YAMLError):
            pass
    assert fast > len(paths) * 0.9  # the fast path is the one real manifests take


def test_load_text_falls_back_with_pyyaml_values_and_errors() -> None:
    merged = load_text("kind: A\nx: &m {a: 1}\ny: {<<: *m, b: 2}\n", "m.yaml")
    assert merged[0].data["y"] == {"a": 1, "b": 2}
    sets = load_text("kind: A\ns: !!set {x}\nt: 2024-01-02\n", "s.yaml")
    assert sets[0].data["s"] == {"x"} and sets[0].data["t"] == datetime.date(2024, 1, 2)
    with pytest.raises(InputError, match=r"dup\.yaml.*line 2.*second occurrence"):
        load_text("a: &x 1\nb: &x 2\n", "dup.yaml")
    with pytest.raises(InputError, match=r"key\.yaml.*found unhashable key"):
        load_text("? [1]\n: 2\n", "key.yaml")
    with pytest.raises(InputError, match=r"syn\.yaml.*line 2"):
        load_text("kind: A\n  b: [\n", "syn.yaml")


@pytest.mark.parametrize("text", ["kind: A\nday: 2024-02-30\n", "kind: A\nn: !!int x\n", "kind: A\nb: !!bool x\n",
                                  "kind: A\ns: !!set {a}\nf: !!float 1-\n"])
def test_a_value_pyyaml_cannot_convert_is_an_input_error(text: str) -> None:
    """PyYAML raises ValueError or KeyError there (not YAMLError): it used to escape the loader."""
    with pytest.raises(InputError, match=r"v\.yaml.*quote it to keep it a string") as err:
        load_text(text, "v.yaml")
    assert "2024-02-30" not in str(err.value) and "'x'" not in str(err.value)  # the value is not echoed
