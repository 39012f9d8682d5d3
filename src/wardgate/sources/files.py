"""Manifests from YAML/JSON files and directories (multi-document, `kind: List` too).

Manifests may come from people who must not be able to stop the control plane, so a file is
bounded: its size before it is read; how deep it nests (PyYAML's C composer recurses once per
level and overflowed the C stack at about 25,000 levels) and how far its aliases expand (aliases
share one object, which later stages copy: 41 KB became 366 MB) while its documents are built from
libyaml's events, and before PyYAML's own loader sees a file that needs it.
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
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

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
    return [file for file, _root in manifest_entries(paths)]


def manifest_entries(paths: Iterable[Path]) -> list[tuple[Path, Path | None]]:
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


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


class _Unusual(Exception):
    """The document needs PyYAML's own constructor (or its error message)."""


# PyYAML's constructors raise ValueError and friends, not YAMLError, for a scalar they can't
# convert (`2024-02-30` reads as a date, `!!int x`); the message may hold the value, so it is not
# shown.
_BAD_VALUE = ("a value that can't be converted to the type YAML reads it as (a date, number or boolean, "
              "or its explicit tag): quote it to keep it a string")
_CONVERSION_ERRORS = (ValueError, KeyError, AttributeError, IndexError, OverflowError, TypeError)


class _BadValue(yaml.MarkedYAMLError):
    def __init__(self, mark: Any) -> None:
        super().__init__(problem=_BAD_VALUE, problem_mark=mark)


_MISS, _AS_STR = object(), object()
_SHAREABLE = (str, int, float, bool, type(None))  # immutable: one object may stand for every copy


class _Hostile(Exception):
    """Why the file must not be loaded (as _hostile_shape words it)."""


def _documents(text: str) -> list[Any]:
    """yaml.load_all(text, Loader=_Loader), built straight from libyaml's events, refusing what
    _hostile_shape refuses (too deep, aliases expanding too far) with the same words.

    PyYAML composes a node (with two marks) per scalar and then constructs it in Python; on a
    `kubectl get -o yaml` export of 5,000 Ingresses that was three quarters of `wardgate migrate`.
    Strings, maps and sequences are built here, without recursion; every other scalar goes through
    PyYAML's own resolver and constructor, and anything else (explicit collection tags, merge keys,
    anchor errors, unhashable keys) raises _Unusual so the caller falls back to PyYAML's loader,
    which gives the same value or the same error (tests/test_yaml_loader.py checks both ways).
    Checking the shape here spares the separate pass: the cheap bound of _depth_bound fails on
    every kubectl export, whose last-applied-configuration JSON is full of brackets.
    """
    parser = _Loader(text)
    resolve: Any = parser.resolve
    construct: Any = parser.construct_object
    # Plain scalars repeat ("80", "true", "Prefix"): each text is resolved once. Path resolvers
    # would make a scalar's tag depend on where it is; the safe loader has none.
    plain_ok = not parser.yaml_path_resolvers
    plain: dict[str, Any] = {}
    docs: list[Any] = []
    # per open collection: [container, key (maps), whether the key is set, anchor, nodes before it]
    stack: list[list[Any]] = []
    anchors: dict[str, Any] = {}
    sizes: dict[str, int] = {}  # anchor -> nodes its value expands to
    nodes = extra = 0
    budget = max(len(text), ALIAS_NODES_FLOOR)
    value: Any
    try:
        parser.get_event()  # StreamStartEvent
        while True:
            event: Any = parser.get_event()
            kind = type(event)
            if kind is ScalarEvent:
                nodes += 1
                tag = event.tag
                value = event.value
                if tag is None and plain_ok and not event.implicit[0]:
                    pass  # quoted: always a string
                elif tag is None and plain_ok and (done := plain.get(value, _MISS)) is not _MISS:
                    if done is not _AS_STR:
                        value = done
                else:
                    if tag is None or tag == "!":
                        tag = resolve(ScalarNode, value, event.implicit)
                    if tag == _MERGE:
                        raise _Unusual
                    if tag != _STR:
                        try:
                            value = construct(ScalarNode(tag, value, event.start_mark, event.end_mark, event.style))
                        except _CONVERSION_ERRORS:
                            raise _BadValue(event.start_mark) from None
                        parser.constructed_objects.clear()
                    if event.tag is None and plain_ok and event.implicit[0] and type(value) in _SHAREABLE:
                        # a plain scalar's type and value depend on its text alone
                        plain[event.value] = _AS_STR if tag == _STR else value
                if event.anchor is not None:
                    if event.anchor in anchors:
                        raise _Unusual
                    anchors[event.anchor] = value
                    sizes[event.anchor] = 1
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                nodes += 1
                if len(stack) >= MAX_DEPTH:
                    raise _Hostile(f"nested more than {MAX_DEPTH} levels deep at line {_line(event)}")
                mapping = kind is MappingStartEvent
                if event.tag not in (None, "!", _MAP if mapping else _SEQ):
                    raise _Unusual
                container: dict[Any, Any] | list[Any] = {} if mapping else []
                if event.anchor is not None:
                    if event.anchor in anchors:
                        raise _Unusual
                    anchors[event.anchor] = container
                stack.append([container, None, False, event.anchor, nodes + extra])
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                entry = stack.pop()
                value = entry[0]
                if entry[3] is not None:
                    sizes[entry[3]] = nodes + extra - entry[4] + 1
            elif kind is AliasEvent:
                nodes += 1
                if any(entry[3] == event.anchor for entry in stack):
                    raise _Hostile(f"alias *{event.anchor} at line {_line(event)} refers to a node that contains it")
                if event.anchor not in anchors:
                    raise _Unusual
                extra += sizes[event.anchor] - 1
                if extra > budget:
                    raise _Hostile(f"aliases expand to more than {budget} extra nodes (at line {_line(event)})")
                value = anchors[event.anchor]
            elif kind is DocumentStartEvent:
                anchors, sizes = {}, {}
                continue
            elif kind is DocumentEndEvent:
                continue
            elif kind is StreamEndEvent:
                if extra > max(nodes, ALIAS_NODES_FLOOR):
                    raise _Hostile(f"aliases expand to {extra} extra nodes, more than the file's own {nodes} "
                                   f"(or {ALIAS_NODES_FLOOR})")
                return docs
            else:
                raise _Unusual
            if not stack:
                docs.append(value)
                continue
            top = stack[-1]
            target = top[0]
            if type(target) is list:
                target.append(value)
            elif top[2]:
                target[top[1]] = value  # TypeError for an unhashable key
                top[2] = False
            else:
                top[1], top[2] = value, True
    except TypeError:
        raise _Unusual from None
    finally:
        parser.dispose()


def _load_all(text: str) -> Iterator[Any]:
    try:
        docs = _documents(text)
    except (_Unusual, yaml.YAMLError) as exc:
        # PyYAML's loader says what it makes of it, once the shape is known to be safe for it
        hostile = _hostile_shape(text)
        if hostile is not None:
            raise _Hostile(hostile) from None
        if isinstance(exc, _BadValue):
            raise
        yield from yaml.load_all(text, Loader=_Loader)
        return
    yield from docs


def load_text(text: str, name: str) -> list[RawObject]:
    problems: list[Problem] = []
    out: list[RawObject] = []
    index = 0
    try:
        for index, doc in enumerate(_load_all(text)):
            out.extend(_objects(doc, Origin(name, index), problems))
    except _Hostile as exc:
        raise InputError([Problem(f"YAML refused: {exc}", Origin(name, None))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(f"YAML syntax error{where}: {problem}", Origin(name, index)))
    except _CONVERSION_ERRORS:
        problems.append(Problem(f"YAML error: {_BAD_VALUE}", Origin(name, index)))
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


def _unreadable(file: Path, exc: OSError) -> Problem:
    return Problem(f"can't read file: {exc.strerror or exc}", Origin(str(file), None))


def load_entry(file: Path, root: Path | None = None,
               max_bytes: int = MAX_FILE_BYTES) -> tuple[list[RawObject], list[Problem]]:
    """One file's objects, or the problems that keep it from being used (load_paths, uncached)."""
    try:
        _st, data = read_manifest(file, root, max_bytes)
        return load_bytes(data or b"", str(file)), []
    except InputError as exc:
        return [], exc.problems
    except OSError as exc:
        return [], [_unreadable(file, exc)]


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


@no_gc_pauses
def load_paths_keeping(paths: Iterable[Path], cache: FileCache) -> tuple[list[RawObject], list[Problem]]:
    """Every object, and the problems; a file that can't be used contributes its last good objects."""
    problems: list[Problem] = []
    out: list[RawObject] = []
    seen: list[tuple[str, int, int]] = []
    entries = manifest_entries(paths)
    for file, root in entries:
        st: os.stat_result | None = None
        try:
            objects, st = cache.load(file, root)
            out.extend(objects)
        except InputError as exc:
            problems.extend(exc.problems)
            out.extend(cache.last_good(file))
        except OSError as exc:
            problems.append(_unreadable(file, exc))
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
