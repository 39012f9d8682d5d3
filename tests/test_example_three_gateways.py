"""examples/three-gateways/, exactly as its README shows it: run.sh starts the example, then every
walkthrough command of the README (a ```sh line ending in `  # => EXPECTED`) runs with bash in the
repository root, in order, and its stdout must contain EXPECTED (not as part of a longer word or
number: `0` is not found in `10`, nor `Retry-After: 6` in `Retry-After: 60`)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.timeout(300)

EXAMPLE = REPO / "examples" / "three-gateways"
GATEWAY_PORTS = (8080, 8081, 8082)
BACKEND_PORTS = (3001, 3002, 3003)
ADMIN_PORT = 9902
MARK = "  # => "


@dataclass
class Step:
    line: int
    command: str
    expected: str


def walkthrough(readme: Path = EXAMPLE / "README.md") -> list[Step]:
    """The `# =>` lines of the README's ```sh blocks, in order."""
    steps: list[Step] = []
    fence: str | None = None
    for number, line in enumerate(readme.read_text().splitlines(), 1):
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence == "sh" and MARK in line:
            command, _, expected = line.rpartition(MARK)
            steps.append(Step(number, command.strip(), expected.rstrip()))
    return steps


def normalize(text: str) -> str:
    """curl -i/-D prints header lines with CRLF; compare lines without trailing whitespace."""
    return "\n".join(line.rstrip() for line in text.replace("\r", "").splitlines())


def shows(stdout: str, expected: str) -> bool:
    pattern = r"(?<![A-Za-z0-9])" + re.escape(expected) + r"(?![A-Za-z0-9])"
    return re.search(pattern, normalize(stdout)) is not None


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 40.0) -> None:
    """Wait (bounded) until the admin /readyz says ready and every Gateway port answers."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run.sh exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN_PORT}/readyz", timeout=2) as resp:
                last = resp.read().decode()
                if json.loads(last).get("ready") and all(listening(p) for p in GATEWAY_PORTS + BACKEND_PORTS):
                    return
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise AssertionError(f"the example did not get ready in {timeout:.0f} s: {last}\n{log.read_text(errors='replace')}")


@contextlib.contextmanager
def example_lock(timeout: float = 150.0) -> Iterator[None]:
    """The example's ports are fixed: two test sessions on one machine take turns (bounded)."""
    path = Path(tempfile.gettempdir()) / "wardgate-example-three-gateways.lock"
    # Another user's lock file can't be opened for writing; flock works on a read-only one too.
    with open(path, "a" if not path.exists() or os.access(path, os.W_OK) else "r") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"another session ran the example for over {timeout:.0f} s") from None
                time.sleep(0.5)
        yield


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the script's process group (as Ctrl-C would), bounded."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_matching() -> None:
    assert shows("HTTP/1.1 200 OK\r\nRetry-After: 6\r\n", "Retry-After: 6")
    assert not shows("Retry-After: 60\n", "Retry-After: 6")
    assert shows("0\n", "0") and not shows("10\n", "0")
    assert shows('{"a":1}\n', '{"a":1}') and shows("200 200 200 429 \n", "200 200 200 429")


def test_readme_walkthrough_parses() -> None:
    steps = walkthrough()
    assert len(steps) >= 30
    for step in steps:
        assert step.command and step.expected, f"README line {step.line}"


def test_manifests_validate() -> None:
    r = subprocess.run([sys.executable, "-m", "wardgate", "validate", "-f", str(EXAMPLE)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "3 gateway(s)" in r.stdout


def test_readme_walkthrough_against_run_sh(tmp_path: Path) -> None:
    with example_lock():
        run_walkthrough(tmp_path / "run.log")


def run_walkthrough(log: Path) -> None:
    busy = [p for p in GATEWAY_PORTS + BACKEND_PORTS + (ADMIN_PORT,) if listening(p)]
    assert not busy, f"ports the example needs are already in use: {busy}"
    env = dict(os.environ, WARDGATE_VENV=sys.prefix)
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", str(EXAMPLE / "run.sh")], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    failures: list[str] = []
    try:
        ready(proc, log)
        for step in walkthrough():
            r = subprocess.run(["bash", "-c", step.command], cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=30)
            if not shows(r.stdout, step.expected):
                failures.append(f"README line {step.line}: {step.command}\n  expected: {step.expected}\n"
                                f"  stdout:   {r.stdout.strip()!r}\n  stderr:   {r.stderr.strip()!r}")
    finally:
        stop(proc)
    output = log.read_text(errors="replace")
    assert not failures, "\n".join(failures) + "\n--- run.sh output ---\n" + output
    # Everything run.sh started is gone: the Gateways' nginx, the admin port and the backends.
    deadline = time.monotonic() + 10
    still = [p for p in GATEWAY_PORTS + BACKEND_PORTS + (ADMIN_PORT,) if listening(p)]
    while still and time.monotonic() < deadline:
        time.sleep(0.2)
        still = [p for p in still if listening(p)]
    assert not still, f"still listening after run.sh stopped: {still}\n{output}"
