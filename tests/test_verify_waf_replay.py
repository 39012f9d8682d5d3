"""Tests for the WAF corpus replay engine: wire format, scoring, corpus loading, and replay over real sockets."""

from __future__ import annotations

import base64
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wardgate.errors import InputError
from wardgate.verify.waf import (
    Record,
    Result,
    balanced_accuracy,
    format_table,
    load_corpus,
    replay,
    send,
    summarize,
    wire_bytes,
)


def rec(**fields: Any) -> Record:
    base: dict[str, Any] = {
        "id": "t-1",
        "source": "crs-regression",
        "category": "sqli",
        "method": "GET",
        "path": "/",
        "headers": (("Host", "localhost"),),
        "body": None,
        "expect": "block",
    }
    base.update(fields)
    return Record(**base)


def line(**fields: Any) -> str:
    obj: dict[str, Any] = {
        "id": "x-1",
        "source": "benign-basic",
        "category": "benign",
        "method": "GET",
        "path": "/",
        "headers": {"Host": "localhost"},
        "body": None,
        "expect": "allow",
        "notes": "",
    }
    obj.update(fields)
    return json.dumps({k: v for k, v in obj.items() if v is not ...})


# ------------------------------------------------------------------------------------------- wire_bytes


def test_wire_path_verbatim_and_header_order() -> None:
    r = rec(
        path="/search?q=<script>{x}'1'%20or%201=1&a=..//b",
        headers=(("Host", "shop.example.com"), ("X-Zeta", "z"), ("Accept", "*/*"), ("a-lower", "v")),
    )
    assert wire_bytes(r) == (
        b"GET /search?q=<script>{x}'1'%20or%201=1&a=..//b HTTP/1.1\r\n"
        b"Host: shop.example.com\r\nX-Zeta: z\r\nAccept: */*\r\na-lower: v\r\n\r\n"
    )


def test_wire_no_content_length_without_body_but_zero_for_empty_body() -> None:
    assert b"Content-Length" not in wire_bytes(rec(body=None))
    assert wire_bytes(rec(method="POST", body="")).endswith(b"Host: localhost\r\nContent-Length: 0\r\n\r\n")


def test_wire_content_length_counts_utf8_bytes() -> None:
    body = "name=Zoë&city=東京&e=😀"
    data = wire_bytes(rec(method="POST", body=body, headers=(("Host", "h"), ("Content-Type", "text/plain"))))
    encoded = body.encode("utf-8")
    assert len(encoded) == 28 and len(body) == 20
    assert data == (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 28\r\n\r\n" + encoded)


def test_wire_utf8_in_path_and_headers() -> None:
    data = wire_bytes(rec(path="/straße?q=é", headers=(("Host", "h"), ("X-Name", "Müller"))))
    assert data.startswith("GET /straße?q=é HTTP/1.1\r\nHost: h\r\nX-Name: Müller\r\n".encode())


def test_wire_base64_body_is_decoded() -> None:
    raw = bytes(range(256))
    data = wire_bytes(rec(method="POST", body=base64.b64encode(raw).decode(), body_encoding="base64"))
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == raw
    assert head.endswith(b"\r\nContent-Length: 256")


# ------------------------------------------------------------------------------------------- summarize


def res(status: int | None, **fields: Any) -> Result:
    return Result(rec(**fields), status)


def test_summarize_counts_403_as_blocked_and_2xx_as_allowed_only() -> None:
    results = [
        res(403, expect="block"),
        res(400, expect="block"),
        res(None, expect="block"),
        res(200, expect="block"),
        res(200, expect="allow"),
        res(204, expect="allow"),
        res(403, expect="allow"),
        res(400, expect="allow"),
        res(None, expect="allow"),
        res(302, expect="allow"),
    ]
    out = summarize(results, None)
    assert out["groups"] == [
        {
            "source": "crs-regression",
            "category": "sqli",
            "block_expected": 4,
            "blocked": 1,
            "allow_expected": 6,
            "allowed": 2,
        }
    ]
    assert out["summary"] == {"block_expected": 4, "blocked": 1, "allow_expected": 6, "allowed": 2}
    assert out["sources"][0]["other_statuses"] == {"302": 1, "400": 2, "error": 2}  # neither 403 nor 2xx


def test_summarize_exact_keys_and_group_order() -> None:
    results = [
        res(403, source="payloadbox", category="xss"),
        res(403, source="gotestwaf", category="xss"),
        res(200, source="benign-basic", category="benign", expect="allow"),
        res(403, source="gotestwaf", category="rce"),
    ]
    out = summarize(results, 1)
    assert {"groups", "summary"} <= set(out)
    assert [(g["source"], g["category"]) for g in out["groups"]] == [
        ("benign-basic", "benign"),
        ("gotestwaf", "rce"),
        ("gotestwaf", "xss"),
        ("payloadbox", "xss"),
    ]
    for group in out["groups"]:
        assert list(group) == ["source", "category", "block_expected", "blocked", "allow_expected", "allowed"]
    assert list(out["summary"]) == ["block_expected", "blocked", "allow_expected", "allowed"]
    assert json.loads(json.dumps(out)) == out


def test_summarize_paranoia_filter() -> None:
    results = [
        res(403, id="a", pl=1),
        res(200, id="b", pl=2),
        res(200, id="c", pl=3, expect="allow"),
        res(403, id="d", pl=4),
        res(200, id="e", pl=None, expect="allow"),  # CRS, pl unknown: dropped like FORMAT.md's filter
        res(403, id="f", source="gotestwaf", pl=4),  # only CRS records are filtered
    ]
    pl1 = summarize(results, 1)
    assert pl1["summary"] == {"block_expected": 2, "blocked": 2, "allow_expected": 0, "allowed": 0}
    assert pl1["excluded"] == 4
    pl3 = summarize(results, 3)
    assert pl3["summary"] == {"block_expected": 3, "blocked": 2, "allow_expected": 1, "allowed": 1}
    assert pl3["excluded"] == 2
    everything = summarize(results, None)
    assert everything["summary"]["block_expected"] == 4 and everything["excluded"] == 0


def test_balanced_accuracy_and_table() -> None:
    assert balanced_accuracy({"block_expected": 4, "blocked": 3, "allow_expected": 2, "allowed": 1}) == 0.625
    assert balanced_accuracy({"block_expected": 4, "blocked": 3, "allow_expected": 0, "allowed": 0}) is None
    out = summarize(
        [
            res(403, source="payloadbox", category="xss"),
            res(200, source="payloadbox", category="xss"),
            res(200, source="benign-basic", category="benign", expect="allow"),
        ],
        1,
    )
    table = format_table(out)
    assert "50.0% (1/2)" in table and "100.0% (1/1)" in table
    total = next(row for row in table.splitlines() if row.startswith("total"))
    assert total.split()[1:] == ["50.0%", "(1/2)", "100.0%", "(1/1)", "75.0%"]
    # only the required keys are needed (e.g. a summary read back from --json output)
    assert format_table({"groups": out["groups"], "summary": out["summary"]}) == table


# ------------------------------------------------------------------------------------------- load_corpus


def test_load_corpus_reads_fields_and_directories(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.jsonl").write_text(line(id="b-1", headers={"Host": "h", "Z": "1", "A": "2"}) + "\n\n")
    (tmp_path / "sub" / "requests.jsonl").write_text(
        line(id="c-1", source="crs-regression", pl=2, rule_id="942100", severity="CRITICAL", expect="block")
        + "\n"
        + line(id="c-2", body="AAE=", body_encoding="base64")
        + "\n"
    )
    (tmp_path / "notes.txt").write_text("not a corpus file")
    records = load_corpus(tmp_path)
    assert [r.id for r in records] == ["b-1", "c-1", "c-2"]
    assert records[0].headers == (("Host", "h"), ("Z", "1"), ("A", "2"))
    assert (records[1].pl, records[1].rule_id, records[1].severity, records[1].expect) == (
        2,
        "942100",
        "CRITICAL",
        "block",
    )
    assert records[2].body_bytes() == b"\x00\x01"
    assert records[2].origin.endswith("requests.jsonl:2")
    assert load_corpus(tmp_path / "b.jsonl") == records[:1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"id": "x-1", broken\n', "bad JSON"),
        (line(expect=...) + "\n", "missing field: expect"),
        (line(body=..., method=...) + "\n", "missing fields: method, body"),
        (line(expect="maybe") + "\n", "'expect' must be 'block' or 'allow'"),
        (line(headers={"Host": 1}) + "\n", "'headers' must be an object of strings"),
        (line(pl="1") + "\n", "'pl' must be an integer 1..4"),
        (line(body="!!", body_encoding="base64") + "\n", "not valid base64"),
        (line(body_encoding="gzip") + "\n", "'body_encoding' must be 'base64'"),
        ("[1, 2]\n", "expected a JSON object"),
    ],
)
def test_load_corpus_errors_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(line(id="ok-1") + "\n\n" + text)
    with pytest.raises(InputError) as info:
        load_corpus(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3")
    assert expected in message


def test_load_corpus_duplicate_ids_and_missing_paths(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(line(id="d-1") + "\n" + line(id="d-1") + "\n")
    with pytest.raises(InputError, match=rf"{path}:2: duplicate id 'd-1' \(first at {path}:1\)"):
        load_corpus(path)
    with pytest.raises(InputError, match="no such file"):
        load_corpus(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"no \*\.jsonl files"):
        load_corpus(empty)
    (tmp_path / "blank.jsonl").write_text("\n")
    with pytest.raises(InputError, match="no records"):
        load_corpus(tmp_path / "blank.jsonl")


def test_load_corpus_reads_the_shared_corpus(waf_corpus: Path) -> None:
    records = load_corpus(waf_corpus)
    assert len(records) == 19_753
    assert sum(r.expect == "block" for r in records) == 19_266
    assert {r.source for r in records} == {"crs-regression", "gotestwaf", "payloadbox", "benign-basic"}
    assert sum(r.body_encoding == "base64" for r in records) == 3
    assert all(wire_bytes(r).startswith(f"{r.method} {r.path} HTTP/1.1\r\n".encode()) for r in records)


def test_load_corpus_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(line().encode() + b"\n" + b'{"id": "\xff"}\n')
    with pytest.raises(InputError, match=rf"{path}:2: not UTF-8"):
        load_corpus(path)


# ------------------------------------------------------------------------------------------- send / replay


class _Handler(socketserver.BaseRequestHandler):
    """Reads one request (head + Content-Length body), answers 403 if the request line has "attack"."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 1 << 20:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for header in head.split(b"\r\n")[1:]:
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        request_line = head.split(b"\r\n", 1)[0]
        server: _Server = self.server  # type: ignore[assignment]
        with server.lock:
            server.seen[request_line] = head + b"\r\n\r\n" + body
        status = b"403 Forbidden" if b"attack" in request_line else b"200 OK"
        sock.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.seen: dict[bytes, bytes] = {}


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def test_replay_end_to_end(server: _Server) -> None:
    port = server.server_address[1]
    records = [
        rec(id="r-1", path="/?q=attack'<x>{1}", expect="block"),
        rec(id="r-2", path="/fine", expect="allow", source="benign-basic", category="benign"),
        rec(id="r-3", method="POST", path="/attack", body="é=ü", headers=(("Host", "h"), ("B", "2"), ("A", "1"))),
        rec(id="r-4", method="POST", path="/bin", body=base64.b64encode(b"\x00\xff").decode(), body_encoding="base64"),
        rec(id="r-5", path="/ok", expect="block"),
    ] + [rec(id=f"n-{i}", path=f"/n{i}", expect="allow", category="xss") for i in range(20)]
    calls: list[tuple[int, int]] = []
    results = replay(records, "127.0.0.1", port, workers=3, timeout=5, progress=lambda d, t: calls.append((d, t)))
    assert [r.record for r in results] == records
    assert [r.status for r in results[:5]] == [403, 200, 403, 200, 200]
    assert all(r.status == 200 for r in results[5:])
    assert calls[-1] == (25, 25) and len(calls) <= 25
    for record in records:
        assert server.seen[wire_bytes(record).split(b"\r\n", 1)[0]] == wire_bytes(record)
    out = summarize(results, None)
    assert out["summary"] == {"block_expected": 4, "blocked": 2, "allow_expected": 21, "allowed": 21}


def test_send_returns_none_on_refused_and_timeout() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        assert send("127.0.0.1", port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 2) is None  # bound, not listening
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # connections complete in the backlog but nothing ever answers
        start = time.monotonic()
        assert send("127.0.0.1", silent.getsockname()[1], b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0.3) is None
        assert 0.25 < time.monotonic() - start < 3


def test_send_garbage_answer_and_early_close() -> None:
    answers = iter([b"SSH-2.0-OpenSSH\r\n", b"", b"HTTP/1.1 400 Bad Request\r\n\r\n"])
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]

        def serve() -> None:
            for answer in answers:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(100)
                    conn.sendall(answer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        assert send("127.0.0.1", port, request, 2) is None  # not HTTP
        assert send("127.0.0.1", port, request, 2) is None  # closed without an answer
        # any status line counts, not just 403/2xx
        assert send("127.0.0.1", port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\n" + b"x" * 9, 2) == 400
        thread.join(timeout=5)


def test_replay_rejects_unbounded_settings() -> None:
    with pytest.raises(ValueError, match="workers"):
        replay([rec()], "127.0.0.1", 1, workers=0)
    with pytest.raises(ValueError, match="timeout"):
        replay([rec()], "127.0.0.1", 1, timeout=0)
