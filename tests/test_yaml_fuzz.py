"""Hostile YAML shapes against the manifest loader: it returns objects or an InputError naming the
file, never crashes (libyaml's C composer overflowed its stack on deep nesting), and never hands
on more than a bounded number of nodes (aliases share objects that later stages copy). Memory is
bounded with tracemalloc; time by the test timeout, never asserted."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wardgate.errors import InputError
from wardgate.sources.files import ALIAS_NODES_FLOOR, MAX_DEPTH, load_bytes

pytestmark = pytest.mark.timeout(600)

FUZZ = settings(derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NAME = "fuzz.yaml"


def expanded(obj: Any, memo: dict[int, int] | None = None) -> int:
    """Nodes in `obj` with every shared object counted once per reference (linear in distinct ones)."""
    memo = {} if memo is None else memo
    key = id(obj)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a cycle counts once (the loader must not produce one anyway)
    children = list(obj.keys()) + list(obj.values()) if isinstance(obj, dict) else obj if isinstance(obj, list) else []
    memo[key] = 1 + sum(expanded(c, memo) for c in children)
    return memo[key]


def load(data: bytes) -> tuple[list[dict[str, Any]] | None, str]:
    """(objects, "") or (None, the error); asserts the error names the file and memory stays bounded."""
    tracemalloc.start()
    try:
        try:
            objects = [r.data for r in load_bytes(data, NAME)]
            result: tuple[list[dict[str, Any]] | None, str] = (objects, "")
        except InputError as exc:
            assert all(p.origin is not None and p.origin.file == NAME for p in exc.problems), exc
            result = (None, str(exc))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20 + 200 * len(data), f"{peak} bytes traced for {len(data)} bytes of YAML"
    if result[0] is not None:
        assert expanded(result[0]) <= 2 * (len(data) + 1) + ALIAS_NODES_FLOOR + 16
    return result


@st.composite
def nesting(draw: st.DrawFn) -> tuple[bytes, int]:
    """A document whose `data` nests `depth` collections in flow, block or mixed style."""
    depth = draw(st.one_of(st.integers(1, 260), st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3),
                           st.integers(1000, 40_000)))
    style = draw(st.sampled_from(["flow-seq", "flow-map", "block-seq", "block-map", "mixed"]))
    if style.startswith("block"):
        depth = min(depth, 600)  # indented: the file grows with the square of the depth
    if style == "flow-seq":
        body = "[" * depth + "x" + "]" * depth
    elif style == "flow-map":
        body = "{a: " * depth + "x" + "}" * depth
    elif style == "block-seq":
        body = "\n" + "".join("  " * i + "-\n" for i in range(depth - 1)) + "  " * (depth - 1) + "- x"
    elif style == "block-map":
        body = "\n" + "".join(" " * (i + 1) + "k:\n" for i in range(depth - 1)) + " " * depth + "k: x"
    else:  # compact block sequences ending in a flow collection: "- - - [[x]]"
        block = depth // 2
        body = "\n " + "- " * block + "[" * (depth - block) + "x" + "]" * (depth - block)
    return f"kind: ConfigMap\ndata: {body}\n".encode(), depth + 1  # the document mapping is a level


@given(nesting())
@settings(FUZZ, max_examples=80)
@example((("kind: ConfigMap\ndata: " + "[" * 30_000 + "]" * 30_000 + "\n").encode(), 30_001))
def test_nesting_is_refused_exactly_beyond_the_limit(case: tuple[bytes, int]) -> None:
    data, depth = case
    objects, error = load(data)
    if depth > MAX_DEPTH:
        assert objects is None and f"{NAME}: YAML refused: nested more than {MAX_DEPTH} levels deep" in error
    else:
        assert objects is not None, error


@st.composite
def aliases(draw: st.DrawFn) -> bytes:
    """Anchors aliased `fanout` times per level over `levels` levels, in a document or a list."""
    levels = draw(st.integers(1, 12))
    fanout = draw(st.integers(1, 30))
    flat = draw(st.integers(0, 20_000))
    lines = ["kind: ConfigMap", "x0: &a0 [" + ", ".join(["lol"] * fanout) + "]"]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fanout) + "]" for i in range(1, levels)]
    lines.append(f"flat: [&f {{k: [1, 2, 3, 4, 5, 6, 7, 8]}}{', *f' * flat}]")
    if draw(st.booleans()):
        lines.append("recursive: &r [1, *r]")
    if draw(st.booleans()):
        lines.append("merged: [&m {a: 1, b: 2}, {<<: *m, c: 3}]")
    return ("\n".join(lines) + "\n").encode()


@given(aliases())
@settings(FUZZ, max_examples=150)
def test_aliases_never_expand_past_the_budget(data: bytes) -> None:
    objects, error = load(data)  # load() bounds what comes back
    if b"*r]" in data:  # refused, for this or for the expansion before it
        assert objects is None and ("refers to a node that contains it" in error or "aliases expand" in error)
    elif objects is None:
        assert "YAML refused: aliases expand to" in error


SCALARS = st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1")))


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """A plausible manifest, then bytes inserted, replaced or repeated: tabs, non-UTF-8, NULs,
    duplicate keys, huge scalars, document markers."""
    text = (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: default\n"
            b"data:\n  a: b\n  list: [1, {c: d}]\n")
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(text)))
        insert = draw(st.sampled_from([
            b"\t", b"\n\t- x", b"\xff", b"\xc3(", b"\x00", b"\x85", b"\xe2\x80\xa8", b"\r", b"---\n", b"...\n",
            b"\n  a: dup\n  a: again\n", b"&a ", b"*a", b"!!python/object:os.system ", b"%YAML 1.1\n",
            b"x" * draw(st.sampled_from([10, 100_000, 2_000_000])),
            draw(SCALARS).encode("utf-8", "surrogatepass"),
        ]))
        text = text[:at] + insert + text[at:]
    return text


@given(mangled())
@settings(FUZZ, max_examples=300)
def test_mangled_manifests_give_objects_or_a_located_error(data: bytes) -> None:
    load(data)


@given(st.binary(max_size=2000))
@settings(FUZZ, max_examples=300)
def test_arbitrary_bytes_give_objects_or_a_located_error(data: bytes) -> None:
    load(data)
