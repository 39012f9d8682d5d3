"""Expectations of the migration corpus (its FORMAT.md §5) checked against what was observed.

Every function returns the problems it found as short sentences; an empty list is a pass. A case
that asks for something this module does not know raises ``CaseFormatError``: an expectation the
harness cannot check must not pass silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wardgate.verify.echo import CASE_INSTANCE_HEADER, CASE_SERVICE_HEADER, SeenRequest
from wardgate.verify.migration_client import Reply, header_values

# Keys that describe an expectation without asserting anything.
INFORMATIVE = frozenset({"confidence", "verifiedBy", "note"})
SINGLE = frozenset({
    "status", "backend", "upstreamPath", "upstreamMethod", "upstreamHeaders", "responseHeaders",
    "absentUpstreamHeaders", "absentResponseHeaders", "location", "bodyContains", "authRequest",
    "minElapsedMs", "upstreamHits", "sameInstanceAsRequest",
})
AGGREGATE = frozenset({"sequence", "counts", "backendShare", "allStatus"})
KNOWN = SINGLE | AGGREGATE | INFORMATIVE
MATCHERS = frozenset({"regex", "present", "contains", "equalsHeader"})


class CaseFormatError(Exception):
    """The case itself is malformed or asks for a check the harness does not implement."""


@dataclass
class Observed:
    """One response and what the backends saw while it was produced."""

    reply: Reply | None
    error: str | None = None  # the exchange failed below HTTP
    echo: dict[str, Any] | None = None  # the echo backend's JSON (or its identity headers)
    # Per backend key: the requests it received between sending this request and its response.
    received: dict[str, list[SeenRequest]] = field(default_factory=dict)

    @property
    def backend(self) -> str | None:
        return None if self.echo is None else str(self.echo.get("service"))

    @property
    def instance(self) -> str | None:
        return None if self.echo is None else str(self.echo.get("instance"))

    @property
    def status(self) -> int | None:
        return None if self.reply is None else self.reply.status


def echo_of(reply: Reply, services: Sequence[str]) -> dict[str, Any] | None:
    """The echo backend's description of the request, or None when the proxy made the response.

    The JSON body names its service; a bodyless answer (HEAD, 204) is recognised by the identity
    headers every case backend sends.
    """
    known = set(services)
    if reply.body[:1] == b"{":
        try:
            doc = json.loads(reply.body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and doc.get("service") in known and "instance" in doc:
            return doc
    service = reply.header(CASE_SERVICE_HEADER)
    if service in known:
        return {"service": service, "instance": reply.header(CASE_INSTANCE_HEADER)}
    return None


def _joined(values: Sequence[str]) -> str:
    return ", ".join(values)


def match_header(name: str, matcher: Any, values: Sequence[str],
                 lookup: Callable[[str], list[str]]) -> str | None:
    """Why ``values`` (all of one header) do not satisfy ``matcher``, or None."""
    shown = repr(_joined(values)) if values else "absent"
    if isinstance(matcher, (str, int)) and not isinstance(matcher, bool):
        want = str(matcher)
        return None if values and _joined(values) == want else f"{name} is {shown}, expected {want!r}"
    if not isinstance(matcher, dict) or len(matcher) != 1 or next(iter(matcher)) not in MATCHERS:
        raise CaseFormatError(f"header matcher for {name} must be a string or one of "
                              f"{sorted(MATCHERS)}: {matcher!r}")
    kind, arg = next(iter(matcher.items()))
    if kind == "present":
        if bool(arg) == bool(values):
            return None
        return f"{name} is {shown}, expected it {'present' if arg else 'absent'}"
    if not values:
        return f"{name} is absent, expected {kind} {arg!r}"
    value = _joined(values)
    if kind == "regex":
        try:
            found = re.search(str(arg), value) is not None
        except re.error as exc:
            raise CaseFormatError(f"regex for {name} does not compile: {exc}") from None
        return None if found else f"{name} is {value!r}, expected to match /{arg}/"
    if kind == "contains":
        wanted = [arg] if isinstance(arg, str) else list(arg)
        missing = [w for w in wanted if str(w) not in value]
        return None if not missing else f"{name} is {value!r}, expected it to contain {missing}"
    other = lookup(str(arg))
    if not other:
        return f"{name} is {value!r}, expected it to equal {arg}, which is absent"
    return None if _joined(other) == value else f"{name} is {value!r}, expected {arg}'s value {_joined(other)!r}"


def check_headers(where: str, expected: Any, headers: Sequence[tuple[str, str]]) -> list[str]:
    if not isinstance(expected, dict):
        raise CaseFormatError(f"{where} must be an object of header matchers")

    def lookup(other: str) -> list[str]:
        return header_values(headers, other)

    problems = []
    for name, matcher in expected.items():
        problem = match_header(str(name), matcher, lookup(str(name)), lookup)
        if problem is not None:
            problems.append(f"{where}: {problem}")
    return problems


def check_absent(where: str, names: Any, headers: Sequence[tuple[str, str]]) -> list[str]:
    if not isinstance(names, list):
        raise CaseFormatError(f"{where} must be a list of header names")
    return [f"{where}: {name} is present ({_joined(header_values(headers, str(name)))!r})"
            for name in names if header_values(headers, str(name))]


def upstream_headers(echo: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The request headers the echo backend reports, as (name, value) pairs."""
    raw = echo.get("headers")
    out: list[tuple[str, str]] = []
    if isinstance(raw, dict):
        for name, values in raw.items():
            out += [(str(name), str(v)) for v in (values if isinstance(values, list) else [values])]
    if echo.get("host") and not header_values(out, "host"):
        out.append(("Host", str(echo["host"])))
    return out


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def check_single(expect: Mapping[str, Any], obs: Observed, earlier: Callable[[int], Observed | None],
                 auth_backends: Sequence[str] = ()) -> list[str]:
    """The per-response expectations. ``earlier(i)`` is the (last) observation of request #i;
    ``auth_backends`` are the backends in auth mode (what ``authRequest`` looks at)."""
    unknown = sorted(set(expect) - KNOWN)
    if unknown:
        raise CaseFormatError(f"unknown expectation key(s) {unknown}")
    if obs.reply is None:
        return [f"no response: {obs.error}"]
    reply = obs.reply
    problems: list[str] = []
    if "status" in expect and reply.status != expect["status"]:
        problems.append(f"status {reply.status}, expected {expect['status']}")
    if "backend" in expect and obs.backend != expect["backend"]:
        problems.append(f"backend {_show(obs.backend)}, expected {_show(expect['backend'])}")
    echo = obs.echo
    for key, field_name in (("upstreamPath", "path"), ("upstreamMethod", "method")):
        if key not in expect:
            continue
        if echo is None or field_name not in echo:
            problems.append(f"{key}: no echo backend answered, expected {expect[key]!r}")
        elif echo[field_name] != expect[key]:
            problems.append(f"{key} {echo[field_name]!r}, expected {expect[key]!r}")
    if "upstreamHeaders" in expect or "absentUpstreamHeaders" in expect:
        if echo is None or "headers" not in echo:
            problems.append("upstream headers: no echo backend answered with the request it received")
        else:
            sent = upstream_headers(echo)
            if "upstreamHeaders" in expect:
                problems += check_headers("upstream", expect["upstreamHeaders"], sent)
            if "absentUpstreamHeaders" in expect:
                problems += check_absent("upstream", expect["absentUpstreamHeaders"], sent)
    if "responseHeaders" in expect:
        problems += check_headers("response", expect["responseHeaders"], reply.headers)
    if "absentResponseHeaders" in expect:
        problems += check_absent("response", expect["absentResponseHeaders"], reply.headers)
    if "location" in expect:
        location = reply.header("location")
        if location != expect["location"]:
            problems.append(f"Location {_show(location)}, expected {_show(expect['location'])}")
    if "bodyContains" in expect:
        text = reply.body.decode("utf-8", "replace")
        if str(expect["bodyContains"]) not in text:
            problems.append(f"body does not contain {expect['bodyContains']!r} (body: {text[:120]!r})")
    if "minElapsedMs" in expect and reply.elapsed_ms < float(expect["minElapsedMs"]):
        problems.append(f"answered after {reply.elapsed_ms:.0f} ms, expected at least {expect['minElapsedMs']} ms")
    if "upstreamHits" in expect:
        hits = expect["upstreamHits"]
        if not isinstance(hits, dict):
            raise CaseFormatError("upstreamHits must be an object {backend: count}")
        for name, count in hits.items():
            seen = len(obs.received.get(str(name), []))
            if seen != count:
                problems.append(f"backend {name} was hit {seen} time(s), expected {count}")
    if "sameInstanceAsRequest" in expect:
        index = expect["sameInstanceAsRequest"]
        if not isinstance(index, int):
            raise CaseFormatError("sameInstanceAsRequest must be a request index")
        before = earlier(index)
        if before is None or before.instance is None:
            problems.append(f"request #{index} reached no backend instance to compare with")
        elif obs.instance != before.instance:
            problems.append(f"instance {_show(obs.instance)}, expected {before.instance} (as request #{index})")
    if "authRequest" in expect:
        problems += check_auth_request(expect["authRequest"], obs, auth_backends)
    return problems


def check_auth_request(expected: Any, obs: Observed, auth_backends: Sequence[str]) -> list[str]:
    if not isinstance(expected, dict):
        raise CaseFormatError("authRequest must be an object")
    unknown = sorted(set(expected) - {"method", "path", "headers", "bodyForwarded"})
    if unknown:
        raise CaseFormatError(f"unknown authRequest key(s) {unknown}")
    seen = [r for name in auth_backends for r in obs.received.get(name, [])]
    if not seen:
        return ["authRequest: the auth backend received no request"]
    last = max(seen, key=lambda r: r.at)
    problems = []
    for key, actual in (("method", last.method), ("path", last.target)):
        if key in expected and actual != expected[key]:
            problems.append(f"authRequest {key} {actual!r}, expected {expected[key]!r}")
    if "headers" in expected:
        sent = [(n, v) for n, vs in last.headers.items() for v in vs]
        problems += check_headers("authRequest", expected["headers"], sent)
    if "bodyForwarded" in expected and (last.body_length > 0) != bool(expected["bodyForwarded"]):
        problems.append(f"authRequest received {last.body_length} body bytes, expected "
                        f"{'a body' if expected['bodyForwarded'] else 'none'}")
    return problems


def check_aggregate(expect: Mapping[str, Any], results: Sequence[Observed], mode: str) -> list[str]:
    """Expectations over all responses of a repeated request."""
    problems: list[str] = []
    if "sequence" in expect:
        runs = expect["sequence"]
        if not isinstance(runs, list) or not all(isinstance(r, dict) and "count" in r for r in runs):
            raise CaseFormatError("sequence must be a list of {count, status, backend?}")
        if mode != "sequential":
            raise CaseFormatError("sequence needs mode sequential")
        i = 0
        for run in runs:
            for _ in range(int(run["count"])):
                if i >= len(results):
                    problems.append(f"sequence: only {len(results)} responses, expected more")
                    break
                one = results[i]
                if "status" in run and one.status != run["status"]:
                    problems.append(f"sequence: response {i + 1} status {_show(one.status)}, expected "
                                    f"{run['status']} ({_summary(results)})")
                    break
                if "backend" in run and one.backend != run["backend"]:
                    problems.append(f"sequence: response {i + 1} backend {_show(one.backend)}, expected "
                                    f"{_show(run['backend'])}")
                    break
                i += 1
            if problems:
                break
        if not problems and i != len(results):
            problems.append(f"sequence covers {i} responses, {len(results)} were sent")
    if "counts" in expect:
        wanted = {str(k): int(v) for k, v in dict(expect["counts"]).items()}
        got: dict[str, int] = {}
        for r in results:
            key = str(r.status) if r.status is not None else "error"
            got[key] = got.get(key, 0) + 1
        if got != wanted:
            problems.append(f"status counts {dict(sorted(got.items()))}, expected {dict(sorted(wanted.items()))}")
    if "allStatus" in expect:
        off = [r.status for r in results if r.status != expect["allStatus"]]
        if off:
            problems.append(f"{len(off)} of {len(results)} responses were not {expect['allStatus']} "
                            f"(e.g. {_show(off[0])})")
    if "backendShare" in expect:
        shares = expect["backendShare"]
        if not isinstance(shares, dict):
            raise CaseFormatError("backendShare must be an object {backend: [min, max]}")
        for name, bounds in shares.items():
            low, high = float(bounds[0]), float(bounds[1])
            share = sum(1 for r in results if r.backend == name) / max(1, len(results))
            if not low <= share <= high:
                problems.append(f"backend {name} answered {share:.2f} of the requests, expected {low}..{high}")
    return problems


def _summary(results: Sequence[Observed]) -> str:
    """`200 x7, 503 x3`: the statuses of a run in order, consecutive ones grouped."""
    runs: list[tuple[str, int]] = []
    for r in results:
        key = _show(r.status) if r.reply is not None else "error"
        if runs and runs[-1][0] == key:
            runs[-1] = (key, runs[-1][1] + 1)
        else:
            runs.append((key, 1))
    return ", ".join(f"{k} x{n}" for k, n in runs)
