"""sources.parallel: a helper process parses a share of the files; the result is load_paths's own.

Thresholds are set to zero so that small test files take the two-process path (the default
leaves inputs under 4 MB to one process).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wardgate.errors import InputError
from wardgate.sources import load_paths, parallel
from wardgate.sources.parallel import Loading

LIST = """apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: a, namespace: x}, spec: {ports: [{port: 80}]}}
- {apiVersion: v1, kind: Service, metadata: {name: b, namespace: x, annotations: {k: "yes"}}}
"""
MULTI = "---\n".join(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\ndata: {{n: '{i}', on: on}}\n"
                     for i in range(5))
# A YAML timestamp becomes a datetime, which marshal can't carry: that file goes by pickle.
STAMPED = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: t, creationTimestamp: 2024-01-02T03:04:05Z}\n"


def _tree(root: Path, *, bad: bool = False) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a-list.yaml").write_text(LIST)
    (root / "b-multi.yaml").write_text(MULTI * 20)
    (root / "sub" / "c-stamped.yml").write_text(STAMPED)
    (root / "d.json").write_text('{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}')
    if bad:
        (root / "e-broken.yaml").write_text("kind: [unclosed\n")
        (root / "f-big.yaml").write_text("#" * 9000)
    return root


def _load(root: Path, max_bytes: int) -> Loading:
    return Loading([root], max_bytes=max_bytes, min_bytes=0, head_start=0)


def _same(a: list, b: list) -> None:  # type: ignore[type-arg]
    assert [(o.data, o.origin) for o in a] == [(o.data, o.origin) for o in b]


def test_the_helper_loads_a_share_and_the_result_is_load_paths_own(tmp_path: Path) -> None:
    root = _tree(tmp_path / "in")
    loading = _load(root, max_bytes=1 << 20)
    assert loading._theirs, "no file went to the helper: the test would not cover it"
    assert len(loading._theirs) < 4, "every file went to the helper"
    got = loading.result()
    _same(got, load_paths([root], max_bytes=1 << 20))
    assert any(type(o.data["metadata"].get("creationTimestamp")).__name__ == "datetime" for o in got)


def test_problems_are_load_paths_own_in_file_order(tmp_path: Path) -> None:
    root = _tree(tmp_path / "in", bad=True)
    with pytest.raises(InputError) as serial:
        load_paths([root], max_bytes=8000)
    loading = _load(root, max_bytes=8000)
    assert loading._theirs
    with pytest.raises(InputError) as two:
        loading.result()
    assert [str(p) for p in two.value.problems] == [str(p) for p in serial.value.problems]
    assert len(two.value.problems) == 2  # the syntax error and the oversize file


def test_a_failing_helper_leaves_its_files_to_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path / "in")

    def broken(results: object) -> bytes:
        raise RuntimeError("the helper fails")

    monkeypatch.setattr(parallel, "_encode", broken)  # the forked helper inherits it
    loading = _load(root, max_bytes=1 << 20)
    assert loading._theirs
    _same(loading.result(), load_paths([root], max_bytes=1 << 20))


def test_garbled_helper_output_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path / "in")
    monkeypatch.setattr(parallel, "_encode", lambda results: b"\x80\x05garbage")
    _same(_load(root, max_bytes=1 << 20).result(), load_paths([root], max_bytes=1 << 20))


def test_an_abandoned_load_leaves_no_process_behind(tmp_path: Path) -> None:
    loading = _load(_tree(tmp_path / "in"), max_bytes=1 << 20)
    assert loading._helper is not None
    pid = loading._helper._pid
    assert pid
    del loading
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped


def test_small_inputs_stay_in_one_process(tmp_path: Path) -> None:
    root = _tree(tmp_path / "in")
    loading = Loading([root], max_bytes=1 << 20)  # the default threshold: 4 MB
    assert loading._helper is None
    _same(loading.result(), load_paths([root], max_bytes=1 << 20))


def test_a_missing_path_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        Loading([tmp_path / "nope"])
