"""Manifests from YAML/JSON files and directories (multi-document, `kind: List` too).

Manifests may come from people who must not be able to stop the control plane, so a file is
bounded before libyaml sees it: its size, how deep it nests (libyaml's C composer recurses once
per level and overflowed the C stack at about 25,000 levels) and how far its aliases expand
(aliases share one object, which later stages copy: 41 KB became 366 MB).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from wardgate.errors import InputError, Origin, Problem
from wardgate.perf import no_gc_pauses

try:  # the C loader is several times faster on large manifests
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml is part of Debian's and PyPI's PyYAML builds
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

SUFFIXES = (".yaml", ".yml", ".json")
# Largest manifest file read (`--max-file-size`): 10,000 routes of bench/manifests.py in one file
# are 2.8 MB; a Kubernetes object is at most 1.5 MiB.
MAX_FILE_BYTES = 8 * 1024 * 1024
# Collections nested in one document. Real manifests stay near 20 (wardgate's own CRDs: 20), far
# from libyaml's crash and from Python's recursion limit in later stages.
MAX_DEPTH = 200
# Nodes aliases may add to a file: as many as the file has, or this many if that is more.
ALIAS_NODES_FLOOR = 10_000

_DOC_START = re.compile(r"^---(?=[ \t\r\n]|\Z)", re.MULTILINE)
# Where a block collection can start on a line: after the indentation and any `- `, `? `, `: `.
_BLOCK_RUN = re.compile(r"^[ \ufeff]*(?:[-?:][ \t]+)*", re.MULTILINE)
_OTHER_BREAKS = str.maketrans({"\r": "\n", "\x85": "\n", "\u2028": "\n", "\u2029": "\n"})


@dataclass(frozen=True)
class RawObject:
    data: dict[str, Any]
    origin: Origin


def manifest_files(paths: Iterable[Path]) -> list[Path]:
    """The files behind the given paths, directories walked in sorted order."""
    return [file for file, _root in _manifest_entries(paths)]


def _manifest_entries(paths: Iterable[Path]) -> list[tuple[Path, Path | None]]:
    """Each file with the directory it was found in (None for a file named directly)."""
    out: list[tuple[Path, Path | None]] = []
    for path in paths:
        if path.is_dir():
            out.extend((p, path) for p in _walk(path))
        elif path.exists():
            out.append((path, None))
        else:
            raise InputError([Problem(f"no such file or directory: {path}")])
    return out


def _walk(root: Path) -> list[Path]:
    """The manifest files under `root` in sorted order: files (or symlinks to files) with a
    manifest suffix, nothing hidden, symlinked directories not entered (as Path.rglob), unreadable
    directories skipped. Hidden directories are not walked at all (a ConfigMap volume's `..data`)."""
    out: list[str] = []
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for e in entries:
                    if e.name.startswith("."):
                        continue
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.name.endswith(SUFFIXES) and e.is_file():
                        out.append(e.path)
        except OSError:
            continue
    # Path order (part by part), sorting strings: comparing Paths was most of a walk's time.
    return [Path(p) for p in sorted(out, key=lambda p: p.split(os.sep))]


def _objects(doc: Any, origin: Origin, problems: list[Problem]) -> Iterator[RawObject]:
    if doc is None:
        return
    if not isinstance(doc, dict):
        problems.append(Problem("a manifest document must be a mapping", origin))
        return
    if doc.get("kind") == "List" or (str(doc.get("kind", "")).endswith("List") and "items" in doc):
        items = doc.get("items") or []
        if not isinstance(items, list):
            problems.append(Problem("items must be a list", origin, field="items"))
            return
        for i, item in enumerate(items):
            sub = Origin(origin.file, origin.index, i)
            if isinstance(item, dict):
                yield RawObject(item, sub)
            else:
                problems.append(Problem("a list item must be a mapping", sub))
        return
    yield RawObject(doc, origin)


def _depth_bound(text: str) -> int:
    """An upper bound on how deep `text` nests, from string operations that run in C.

    Block collections in one document stack at strictly increasing columns, with at most an
    indentless sequence beside each, and start only at a line's indentation or right after a
    `- `, `? ` or `: ` indicator; every flow collection needs a `[` or `{` (plus an implicit
    single-pair mapping at most), and a `---` line ends all nesting (or is a syntax error).
    """
    if any(c in text for c in "\r\x85\u2028\u2029"):  # libyaml's other line breaks
        text = text.translate(_OTHER_BREAKS)
    column = max(map(len, _BLOCK_RUN.findall(text)), default=0)
    brackets = max((doc.count("[") + doc.count("{") for doc in _DOC_START.split(text)), default=0)
    return 2 * (column + 1) + 2 * brackets + 4


def _hostile_shape(text: str) -> str | None:
    """Why `text` must not reach the loader (too deep, aliases that expand too far), or None.

    Most files are cleared by `_depth_bound` and the absence of anchors; the rest are checked
    exactly on libyaml's event stream, which holds no nesting in C recursion.
    """
    if "&" not in text and _depth_bound(text) <= MAX_DEPTH:
        return None
    depth = nodes = extra = 0
    budget = max(len(text), ALIAS_NODES_FLOOR)
    open_: list[tuple[str | None, int]] = []  # (anchor, node count at the start) per collection
    sizes: dict[str, int] = {}  # anchor -> nodes its value expands to
    parser = _Loader(text)
    try:
        while (event := parser.get_event()) is not None:
            if isinstance(event, ScalarEvent):
                nodes += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                nodes += 1
                depth += 1
                if depth > MAX_DEPTH:
                    return f"nested more than {MAX_DEPTH} levels deep at line {_line(event)}"
                open_.append((event.anchor, nodes + extra))
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                depth -= 1
                anchor, first = open_.pop()
                if anchor is not None:
                    sizes[anchor] = nodes + extra - first + 1
            elif isinstance(event, AliasEvent):
                nodes += 1
                if any(anchor == event.anchor for anchor, _ in open_):
                    return f"alias *{event.anchor} at line {_line(event)} refers to a node that contains it"
                extra += sizes.get(event.anchor or "", 1) - 1  # an undefined one is the loader's error
                if extra > budget:
                    return f"aliases expand to more than {budget} extra nodes (at line {_line(event)})"
            elif isinstance(event, DocumentStartEvent):
                sizes.clear()  # anchors are per document
    except yaml.YAMLError:
        return None  # the loader reports the syntax error, at no greater depth than seen here
    finally:
        parser.dispose()
    if extra > max(nodes, ALIAS_NODES_FLOOR):
        return f"aliases expand to {extra} extra nodes, more than the file's own {nodes} " \
               f"(or {ALIAS_NODES_FLOOR})"
    return None


def _line(event: Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 0


def load_text(text: str, name: str) -> list[RawObject]:
    problems: list[Problem] = []
    out: list[RawObject] = []
    index = 0
    hostile = _hostile_shape(text)
    if hostile is not None:
        raise InputError([Problem(f"YAML refused: {hostile}", Origin(name, None))])
    try:
        for index, doc in enumerate(yaml.load_all(text, Loader=_Loader)):
            out.extend(_objects(doc, Origin(name, index), problems))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(f"YAML syntax error{where}: {problem}", Origin(name, index)))
    if problems:
        raise InputError(problems)
    return out


def load_bytes(data: bytes, name: str) -> list[RawObject]:
    """`load_text` on a file's bytes, which must be UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError([Problem(f"not UTF-8: byte 0x{data[exc.start]:02x} at line {line}",
                                  Origin(name, None))]) from None
    return load_text(text, name)


def read_manifest(file: Path, root: Path | None = None, max_bytes: int = MAX_FILE_BYTES,
                  known: tuple[int, int, int, int] | None = None) -> tuple[os.stat_result, bytes | None]:
    """Open `file`; return its stat and its bytes (None when `known` (device, inode, mtime_ns,
    size) still holds: the same file, unchanged).

    Refuses, with InputError, anything but a regular file of at most `max_bytes` and, when `root`
    (a directory given with -f) is set, a file that is really outside it. Containment is checked
    on the opened descriptor, so a symlink swapped in after a check can't lead elsewhere.
    """
    # O_NONBLOCK: a FIFO put in the directory must not hang the reconcile in open().
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refused(file, "not a regular file; not read")
        if root is not None and not _inside(_opened_path(fd, file), os.path.realpath(root)):
            raise _refused(file, f"a symlink to a file outside {root}; not read")
        if st.st_size > max_bytes:
            raise _refused(file, f"{st.st_size} bytes, more than the limit of {max_bytes} (--max-file-size)")
        if known == _identity(st):
            return st, None
        chunks: list[bytes] = []
        left = max_bytes + 1  # the file may have grown since fstat
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise _refused(file, f"more than the limit of {max_bytes} bytes (--max-file-size)")
        return st, data
    finally:
        os.close(fd)


def _refused(file: Path, message: str) -> InputError:
    return InputError([Problem(message, Origin(str(file), None))])


def _opened_path(fd: int, file: Path) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")  # the file really opened
    except OSError:  # no /proc: resolve the name (racy, but still refuses a plain symlink)
        return os.path.realpath(file)


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


class FileCache:
    """Parsed files keyed by (device, inode, mtime, size): a watcher re-reads only what changed.

    With 1,000 route files a full re-parse cost 1.3 s of each reconcile. An unchanged regular
    file is recognised from lstat alone, without opening it: what is handed back are the
    objects read from that very inode before, when it passed every check in read_manifest.
    """

    def __init__(self, max_bytes: int = MAX_FILE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._files: dict[Path, tuple[tuple[int, int, int, int], list[RawObject]]] = {}
        # (file, mtime_ns, size) of every file the last load_paths_keeping saw, in load order.
        self.fingerprint: tuple[tuple[str, int, int], ...] = ()

    def load(self, file: Path, root: Path | None = None) -> tuple[list[RawObject], os.stat_result]:
        """The file's objects and its stat; InputError if it can't be used (last_good() still has
        the old ones)."""
        hit = self._files.get(file)
        if hit is not None:
            with contextlib.suppress(OSError):  # the full path below says what is wrong
                st = os.lstat(file)
                if stat.S_ISREG(st.st_mode) and _identity(st) == hit[0]:
                    return hit[1], st
        # A symlink (a Kubernetes ConfigMap volume is made of them) is opened and checked; its
        # target is read again only if it is another file or changed.
        st, data = read_manifest(file, root, self.max_bytes, hit[0] if hit is not None else None)
        if data is None and hit is not None:
            return hit[1], st
        objects = load_bytes(data or b"", str(file))
        self._files[file] = (_identity(st), objects)
        return objects, st

    def last_good(self, file: Path) -> list[RawObject]:
        hit = self._files.get(file)
        return hit[1] if hit else []

    def forget_missing(self, present: set[Path]) -> None:
        for gone in set(self._files) - present:
            del self._files[gone]


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


@no_gc_pauses
def load_paths_keeping(paths: Iterable[Path], cache: FileCache) -> tuple[list[RawObject], list[Problem]]:
    """Every object, and the problems; a file that can't be used contributes its last good objects."""
    problems: list[Problem] = []
    out: list[RawObject] = []
    seen: list[tuple[str, int, int]] = []
    entries = _manifest_entries(paths)
    for file, root in entries:
        st: os.stat_result | None = None
        try:
            objects, st = cache.load(file, root)
            out.extend(objects)
        except InputError as exc:
            problems.extend(exc.problems)
            out.extend(cache.last_good(file))
        except OSError as exc:
            problems.append(Problem(f"can't read file: {exc.strerror or exc}", Origin(str(file), None)))
            out.extend(cache.last_good(file))
        if st is None:
            with contextlib.suppress(OSError):
                st = file.stat()
        if st is not None:
            seen.append((str(file), st.st_mtime_ns, st.st_size))
    cache.forget_missing({file for file, _root in entries})
    cache.fingerprint = tuple(seen)
    return out, problems


def load_paths(paths: Iterable[Path], cache: FileCache | None = None,
               max_bytes: int = MAX_FILE_BYTES) -> list[RawObject]:
    """Every object in the given files and directories, in file then document order; InputError
    listing every problem if any file can't be read."""
    out, problems = load_paths_keeping(paths, cache or FileCache(max_bytes))
    if problems:
        raise InputError(problems)
    return out
