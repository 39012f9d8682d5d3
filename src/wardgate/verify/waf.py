"""Replay engine for ``wardgate verify waf``: load the WAF test corpus, send each request verbatim, score it.

The corpus format (``shared/waf/FORMAT.md``) is JSON Lines, one plain HTTP/1.1 request per line with an
expected verdict (``block`` or ``allow``). Requests go out over a raw socket so request-targets holding
``<``, ``{`` or ``'`` are sent exactly as written. Each request uses a fresh connection and nothing is added
to it except ``Content-Length`` for a body: several CRS tests are about the ``Connection`` header itself, so
the sender neither adds ``Connection: close`` nor relies on keep-alive. The client closes the connection
once the response head has arrived (the body is not needed).

Scoring: blocked = HTTP 403, allowed = any 2xx; every other outcome (400 from nginx or from ModSecurity's
body-parser rules, a timeout, a refused connection) is neither.

Only the standard library and :mod:`wardgate.errors` are used.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wardgate.errors import InputError, Problem

__all__ = [
    "CRS_SOURCE",
    "MAX_WORKERS",
    "Record",
    "Result",
    "balanced_accuracy",
    "format_table",
    "included",
    "load_corpus",
    "replay",
    "send",
    "summarize",
    "wire_bytes",
]

CRS_SOURCE = "crs-regression"
MAX_WORKERS = 64
MAX_PROBLEMS = 20  # a broken file stops being read after this many problems
MAX_RESPONSE_HEAD = 64 * 1024  # bytes read while waiting for the end of the response head
MAX_TIMEOUT = 600.0

Expect = Literal["block", "allow"]
ProgressCallback = Callable[[int, int], None]  # (done, total)

_REQUIRED_STR = ("id", "source", "category", "method", "path", "expect")
_OPTIONAL_STR = ("notes", "rule_id", "severity", "body_encoding", "zone", "encoder")
_BODY_ENCODINGS = frozenset({"base64"})
_STATUS_LINE = re.compile(rb"HTTP/\d\.\d ([1-5]\d\d)(?:[ \t]|\r?$)")
_COUNT_KEYS = ("block_expected", "blocked", "allow_expected", "allowed")


@dataclass(frozen=True)
class Record:
    """One corpus request. ``headers`` keeps the file's order as (name, value) pairs."""

    id: str
    source: str
    category: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: str | None
    expect: Expect
    notes: str = ""
    pl: int | None = None
    rule_id: str | None = None
    severity: str | None = None
    body_encoding: str | None = None
    zone: str | None = None
    encoder: str | None = None
    origin: str = ""  # "file:line", for messages

    def body_bytes(self) -> bytes | None:
        """The body as sent: UTF-8, or base64-decoded when ``body_encoding`` is ``base64``."""
        if self.body is None:
            return None
        if self.body_encoding == "base64":
            return base64.b64decode(self.body, validate=True)
        return self.body.encode("utf-8")


@dataclass(frozen=True)
class Result:
    """What the WAF answered: the HTTP status, or None when no status line came back (error, timeout)."""

    record: Record
    status: int | None
    seconds: float = 0.0

    @property
    def blocked(self) -> bool:
        return self.status == 403

    @property
    def allowed(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


# --------------------------------------------------------------------------------------------- loading


def _record_from(obj: object, where: str) -> tuple[Record | None, list[str]]:
    """Validate one decoded JSON line; returns the record or the list of things wrong with it."""
    if not isinstance(obj, dict):
        return None, [f"expected a JSON object, got {type(obj).__name__}"]
    errors: list[str] = []
    missing = [k for k in (*_REQUIRED_STR, "headers", "body") if k not in obj]
    if missing:
        errors.append("missing field" + ("s" if len(missing) > 1 else "") + ": " + ", ".join(missing))
    for key in _REQUIRED_STR:
        if key in obj and not (isinstance(obj[key], str) and obj[key]):
            errors.append(f"field {key!r} must be a non-empty string")
    for key in _OPTIONAL_STR:
        if obj.get(key) is not None and not isinstance(obj[key], str):
            errors.append(f"field {key!r} must be a string")
    if "expect" in obj and isinstance(obj["expect"], str) and obj["expect"] not in ("block", "allow"):
        errors.append(f"field 'expect' must be 'block' or 'allow', not {obj['expect']!r}")
    headers = obj.get("headers")
    if "headers" in obj and not (
        isinstance(headers, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        errors.append("field 'headers' must be an object of strings")
    if "body" in obj and obj["body"] is not None and not isinstance(obj["body"], str):
        errors.append("field 'body' must be a string or null")
    pl = obj.get("pl")
    if pl is not None and (isinstance(pl, bool) or not isinstance(pl, int) or not 1 <= pl <= 4):
        errors.append(f"field 'pl' must be an integer 1..4, not {pl!r}")
    encoding = obj.get("body_encoding")
    if isinstance(encoding, str):
        if encoding not in _BODY_ENCODINGS:
            errors.append(f"field 'body_encoding' must be 'base64', not {encoding!r}")
        elif isinstance(obj.get("body"), str):
            try:
                base64.b64decode(obj["body"], validate=True)
            except (binascii.Error, ValueError) as exc:
                errors.append(f"field 'body' is not valid base64: {exc}")
    if errors:
        return None, errors
    assert isinstance(headers, dict)
    record = Record(
        id=obj["id"],
        source=obj["source"],
        category=obj["category"],
        method=obj["method"],
        path=obj["path"],
        headers=tuple(headers.items()),
        body=obj["body"],
        expect=obj["expect"],
        notes=obj.get("notes") or "",
        pl=pl,
        rule_id=obj.get("rule_id"),
        severity=obj.get("severity"),
        body_encoding=encoding,
        zone=obj.get("zone"),
        encoder=obj.get("encoder"),
        origin=where,
    )
    return record, []


def _corpus_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.jsonl") if p.is_file())
        if not files:
            raise InputError([Problem(f"{path}: no *.jsonl files in this directory")])
        return files
    if not path.exists():
        raise InputError([Problem(f"{path}: no such file or directory")])
    return [path]


def load_corpus(path: Path) -> list[Record]:
    """Read a corpus file, or every ``*.jsonl`` under a directory (sorted by path).

    Raises InputError naming file and line for unreadable files, bad JSON, missing or mistyped fields and
    duplicate ids. Blank lines are skipped.
    """
    problems: list[Problem] = []
    records: list[Record] = []
    seen: dict[str, str] = {}
    for file in _corpus_files(Path(path)):
        try:
            raw = file.read_bytes()
        except OSError as exc:
            problems.append(Problem(f"{file}: cannot read: {exc.strerror or exc}"))
            continue
        for lineno, line in enumerate(raw.split(b"\n"), start=1):
            if len(problems) >= MAX_PROBLEMS:
                break
            if not line.strip():
                continue
            where = f"{file}:{lineno}"
            try:
                obj = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as exc:
                problems.append(Problem(f"{where}: not UTF-8: {exc.reason} at byte {exc.start}"))
                continue
            except json.JSONDecodeError as exc:
                problems.append(Problem(f"{where}: bad JSON: {exc.msg} (column {exc.colno})"))
                continue
            record, errors = _record_from(obj, where)
            rid = obj.get("id") if isinstance(obj, dict) else None
            label = f" (id {rid!r})" if isinstance(rid, str) else ""
            problems.extend(Problem(f"{where}{label}: {e}") for e in errors)
            if record is None:
                continue
            if record.id in seen:
                problems.append(Problem(f"{where}: duplicate id {record.id!r} (first at {seen[record.id]})"))
                continue
            seen[record.id] = where
            records.append(record)
        if len(problems) >= MAX_PROBLEMS:
            problems.append(Problem(f"stopped after {MAX_PROBLEMS} problems"))
            break
    if problems:
        raise InputError(problems)
    if not records:
        raise InputError([Problem(f"{path}: the corpus has no records")])
    return records


# --------------------------------------------------------------------------------------------- sending


def wire_bytes(rec: Record) -> bytes:
    """The request exactly as FORMAT.md's wire rules say: verbatim request line and headers, in order,
    ``Content-Length`` (byte length after decoding) only when there is a body, everything UTF-8."""
    lines = [f"{rec.method} {rec.path} HTTP/1.1\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in rec.headers)
    body = rec.body_bytes()
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    head = "".join(lines).encode("utf-8")
    return head if body is None else head + body


def _parse_status(head: bytes) -> int | None:
    match = _STATUS_LINE.match(head.split(b"\n", 1)[0])
    return int(match.group(1)) if match else None


def send(host: str, port: int, data: bytes, timeout: float) -> int | None:
    """Send one raw request on a fresh connection; the response's status code, or None when the connection
    failed or no status line arrived within ``timeout`` seconds (the whole exchange, not per read)."""
    timeout = min(max(timeout, 0.001), MAX_TIMEOUT)
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    with sock:
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(data)
        except TimeoutError:
            return None
        except OSError:
            pass  # the server may answer (400, 413) and close before reading the whole body: read that answer
        head = b""
        while b"\r\n\r\n" not in head and len(head) < MAX_RESPONSE_HEAD:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                sock.settimeout(left)
                chunk = sock.recv(8192)
            except OSError:  # includes timeouts and resets
                break
            if not chunk:
                break
            head += chunk
        return _parse_status(head)


def replay(
    records: Sequence[Record],
    host: str,
    port: int,
    *,
    workers: int = 4,
    timeout: float = 10.0,
    progress: ProgressCallback | None = None,
) -> list[Result]:
    """Send every record (``workers`` at a time, each bounded by ``timeout``); results in input order.

    ``progress(done, total)`` is called from the calling thread as requests finish.
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be 1..{MAX_WORKERS}, not {workers}")
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"timeout must be in (0, {MAX_TIMEOUT:g}] seconds, not {timeout}")
    payloads = [wire_bytes(r) for r in records]  # fail on a bad record before sending anything
    total = len(records)
    statuses: list[tuple[int | None, float] | None] = [None] * total

    def one(index: int) -> tuple[int, int | None, float]:
        start = time.monotonic()
        status = send(host, port, payloads[index], timeout)
        return index, status, time.monotonic() - start

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="waf-replay")
    try:
        # keep at most 4 x workers requests queued so an interrupt doesn't wait for the whole corpus
        pending: set[Future[tuple[int, int | None, float]]] = set()
        next_index = done = 0
        while done < total:
            while next_index < total and len(pending) < 4 * workers:
                pending.add(pool.submit(one, next_index))
                next_index += 1
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index, status, seconds = future.result()
                statuses[index] = (status, seconds)
                done += 1
            if progress is not None:
                progress(done, total)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    results: list[Result] = []
    for record, outcome in zip(records, statuses, strict=True):
        assert outcome is not None
        results.append(Result(record, outcome[0], outcome[1]))
    return results


# --------------------------------------------------------------------------------------------- scoring


def included(record: Record, paranoia: int | None) -> bool:
    """Whether a record counts for a deployment at this paranoia level: CRS tests of rules above it
    don't, nor CRS tests whose rule has no known level (FORMAT.md filters on ``pl``); with
    ``paranoia`` None everything counts."""
    if paranoia is None or record.source != CRS_SOURCE:
        return True
    return record.pl is not None and record.pl <= paranoia


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def balanced_accuracy(counts: Mapping[str, Any]) -> float | None:
    """Mean of the block rate on attacks and the allow rate on benign requests, from a dict with
    ``block_expected``/``blocked``/``allow_expected``/``allowed``; None unless both kinds are present."""
    block_rate = _rate(int(counts["blocked"]), int(counts["block_expected"]))
    allow_rate = _rate(int(counts["allowed"]), int(counts["allow_expected"]))
    if block_rate is None or allow_rate is None:
        return None
    return (block_rate + allow_rate) / 2


def _rates(counts: Mapping[str, int]) -> dict[str, float | None]:
    return {
        "blocked_rate": _rate(counts["blocked"], counts["block_expected"]),
        "allowed_rate": _rate(counts["allowed"], counts["allow_expected"]),
        "balanced_accuracy": balanced_accuracy(counts),
    }


def _status_key(status: int | None) -> str:
    return "error" if status is None else str(status)


def summarize(results: Iterable[Result], paranoia: int | None) -> dict[str, Any]:
    """Count per (source, category) and overall.

    ``groups`` entries and ``summary`` have exactly the keys block_expected/blocked/allow_expected/allowed
    (plus source/category for groups). Extra top-level keys: ``paranoia``, ``excluded`` (CRS records of
    rules above the paranoia level, not counted), ``sources`` (per-source rollups with rates and a count of
    outcomes that were neither blocked nor allowed, by status; ``error`` = no answer).
    """
    groups: dict[tuple[str, str], Counter[str]] = {}
    others: dict[str, Counter[str]] = {}
    excluded = 0
    for result in results:
        rec = result.record
        if not included(rec, paranoia):
            excluded += 1
            continue
        counts = groups.setdefault((rec.source, rec.category), Counter())
        if rec.expect == "block":
            counts["block_expected"] += 1
            counts["blocked"] += result.blocked
        else:
            counts["allow_expected"] += 1
            counts["allowed"] += result.allowed
        if not (result.blocked or result.allowed):
            others.setdefault(rec.source, Counter())[_status_key(result.status)] += 1
    group_list: list[dict[str, Any]] = []
    per_source: dict[str, Counter[str]] = {}
    total: Counter[str] = Counter()
    for (source, category), counts in sorted(groups.items()):
        group_list.append({"source": source, "category": category, **{k: counts[k] for k in _COUNT_KEYS}})
        per_source.setdefault(source, Counter()).update(counts)
        total.update(counts)
    summary = {k: total[k] for k in _COUNT_KEYS}
    sources = []
    for source, counts in sorted(per_source.items()):
        plain = {k: counts[k] for k in _COUNT_KEYS}
        other = dict(sorted(others.get(source, Counter()).items()))
        sources.append({"source": source, **plain, **_rates(plain), "other_statuses": other})
    return {
        "groups": group_list,
        "summary": summary,
        "paranoia": paranoia,
        "excluded": excluded,
        "sources": sources,
    }


def _pct(num: int, den: int) -> str:
    return "-" if not den else f"{100 * num / den:.1f}% ({num}/{den})"


def _ba(counts: Mapping[str, Any]) -> str:
    value = balanced_accuracy(counts)
    return "-" if value is None else f"{100 * value:.1f}%"


def format_table(summary: Mapping[str, Any]) -> str:
    """A plain-text table of a :func:`summarize` result (only ``groups`` and ``summary`` are needed): one
    row per (source, category), a row per source, and the total."""
    head = ("source", "category", "attacks blocked", "benign allowed", "balanced acc.")
    rows: list[tuple[str, ...]] = []
    per_source: dict[str, Counter[str]] = {}
    for group in summary["groups"]:
        rows.append((group["source"], group["category"], *_cells(group)))
        per_source.setdefault(group["source"], Counter()).update({k: int(group[k]) for k in _COUNT_KEYS})
    rows.append(())
    rows.extend((source, "(all)", *_cells(counts)) for source, counts in sorted(per_source.items()))
    rows.append(())
    rows.append(("total", "", *_cells(summary["summary"])))
    widths = [max(len(row[i]) for row in (head, *rows) if row) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        left = [cell.ljust(width) for cell, width in zip(cells[:2], widths[:2], strict=True)]
        right = [cell.rjust(width) for cell, width in zip(cells[2:], widths[2:], strict=True)]
        return "  ".join(left + right).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(head), rule]
    out.extend(line(row) if row else rule for row in rows)
    return "\n".join(out) + "\n"


def _cells(counts: Mapping[str, Any]) -> tuple[str, str, str]:
    return (
        _pct(int(counts["blocked"]), int(counts["block_expected"])),
        _pct(int(counts["allowed"]), int(counts["allow_expected"])),
        _ba(counts),
    )
