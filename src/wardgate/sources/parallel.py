"""`load_paths` over two processes, for one-shot commands on large exports (`wardgate migrate`).

Parsing YAML is CPU-bound Python (a `kubectl get -o yaml` export of 5,000 Ingresses, 23 MB in 11
files: 1.8 s), and so is importing the rest of the pipeline (0.6 s). A forked helper parses a
share of the files while this process imports what it needs, then this process parses the rest:
on two cores the two run side by side. Files are the unit of work, so a single file is parsed
here alone.

The helper sends its objects back with `marshal` (dicts, lists and scalars: 0.08 s to read back
23 MB of objects, where pickle takes 0.13 s and parsing 1.8 s); a file whose values marshal can't
carry (a YAML timestamp) goes by pickle. Whatever happens to the helper, the result is the one
`load_paths` gives: the same objects in the same order, the same problems; a helper that fails
leaves its files to this process.
"""

from __future__ import annotations

import contextlib
import marshal
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wardgate.errors import InputError, Origin, Problem
from wardgate.perf import Forked, can_fork, no_gc_pauses
from wardgate.sources.files import MAX_FILE_BYTES, RawObject, load_entry, manifest_entries

# Below this many bytes in all, a fork costs more than it saves.
MIN_BYTES = 4 << 20
# What the helper parses beyond half the bytes: this process imports the pipeline meanwhile
# (0.6 s, about as long as parsing 3 MB takes).
HEAD_START = 3 << 20

_Result = tuple[list[RawObject], list[Problem]]


class Loading:
    """Started: the helper is parsing its share. `result()` parses the rest here and returns
    every object in file then document order, or raises InputError listing every problem."""

    def __init__(self, paths: Iterable[Path], max_bytes: int = MAX_FILE_BYTES, *,
                 min_bytes: int = MIN_BYTES, head_start: int = HEAD_START) -> None:
        self._helper: Forked | None = None
        self._entries = manifest_entries(paths)
        self._max_bytes = max_bytes
        self._theirs: list[int] = []
        sizes = [_size(file) for file, _root in self._entries]
        total = sum(sizes)
        if total < min_bytes or len(self._entries) < 2 or not can_fork():
            return
        target = total // 2 + head_start
        taken = 0
        for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):  # largest first: an even split
            if taken + sizes[i] <= target:
                self._theirs.append(i)
                taken += sizes[i]
        self._theirs.sort()
        if self._theirs:
            self._helper = Forked(lambda: _encode([self._load(i) for i in self._theirs]))

    def _load(self, i: int) -> _Result:
        file, root = self._entries[i]
        return load_entry(file, root, self._max_bytes)

    @no_gc_pauses
    def result(self) -> list[RawObject]:
        theirs = set(self._theirs)
        results: dict[int, _Result] = {i: self._load(i) for i in range(len(self._entries)) if i not in theirs}
        results.update(zip(self._theirs, self._collect() or [self._load(i) for i in self._theirs], strict=True))
        objects: list[RawObject] = []
        problems: list[Problem] = []
        for i in range(len(self._entries)):
            objects += results[i][0]
            problems += results[i][1]
        if problems:
            raise InputError(problems)
        return objects

    def _collect(self) -> list[_Result] | None:
        """The helper's results, or None when it failed (its files are then loaded here)."""
        if self._helper is None:
            return None
        payload = self._helper.result()
        self._helper = None
        with contextlib.suppress(Exception):  # a garbled payload: parse here instead
            decoded = _decode(payload, [str(self._entries[i][0]) for i in self._theirs]) if payload else []
            if len(decoded) == len(self._theirs):
                return decoded
        return None


def _size(file: Path) -> int:
    try:
        return file.stat().st_size
    except OSError:
        return 0  # load_entry says what is wrong with it


def _encode(results: list[_Result]) -> bytes:
    """Each file's objects as marshal rows (data, document index, item: the file name is known on
    the other side), or pickled when a value is one marshal can't carry; its problems pickled."""
    out: list[tuple[str, Any]] = []
    for objects, problems in results:
        try:
            out.append(("marshal", (marshal.dumps([(o.data, o.origin.index, o.origin.item) for o in objects]),
                                    problems)))
        except ValueError:
            out.append(("pickle", (objects, problems)))
    return pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)


def _decode(payload: bytes, files: list[str]) -> list[_Result]:
    out: list[_Result] = []
    for file, (how, body) in zip(files, pickle.loads(payload), strict=True):  # our own helper's bytes
        if how == "marshal":
            rows, problems = body
            out.append(([RawObject(data, Origin(file, index, item)) for data, index, item in marshal.loads(rows)],
                        problems))
        else:
            out.append(body)
    return out
