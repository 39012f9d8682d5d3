"""Manifests written to hurt the control plane: nesting that overflowed libyaml's C stack, aliases
that expand without bound, symlinks out of the -f directory, huge files. Each is refused with an
error naming the file while everything else keeps serving through real nginx."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GATEWAY_CLASS, Backend, Gateway, loopback_subnet, request
from test_runner import gw

MAX_DEPTH = 200  # wardgate.sources.files.MAX_DEPTH, spelled out so the test runs on older code

pytestmark = pytest.mark.timeout(180)

# 30,000 levels in 60 KB: libyaml's C composer overflowed its stack (exit 139).
DEEP = "kind: ConfigMap\ndata: " + "[" * 30_000 + "]" * 30_000 + "\n"
# Ten levels of ten aliases each: 10^10 nodes from 1 KB once anything walks the structure
# (the runner hashes every object's body).
LAUGHS = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: laughs, namespace: default}\n" \
    "x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" \
    + "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))
# A flat one in a field that is validated: 10,000 copies of a 100-address endpoint from 41 KB.
_ADDRESSES = ", ".join(f"127.0.0.{i}" for i in range(1, 101))
FLAT_BOMB = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: bomb, namespace: default}\n" \
    f"endpoints: [&e {{addresses: [{_ADDRESSES}]}}" + ", *e" * 10_000 + "]\n"
AS_LIMIT = 2 << 30  # address space for a child that meets a bomb: a regression fails, the machine lives


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


def wardgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wardgate", *args], capture_output=True, text=True, timeout=120,
                          preexec_fn=_limit_memory)


def test_validate_refuses_deep_nesting_naming_the_file(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text(DEEP)
    r = wardgate("validate", "-f", str(deep))
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert f"{deep}: YAML refused: nested more than {MAX_DEPTH} levels deep at line 2" in r.stderr


def test_validate_refuses_alias_amplification_in_validated_fields(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(FLAT_BOMB)
    assert len(FLAT_BOMB) < 42_000
    r = wardgate("validate", "-f", str(bomb))
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert f"{bomb}: YAML refused: aliases expand to more than" in r.stderr


def test_non_utf8_file_is_named_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"kind: ConfigMap\ndata: {a: caf\xe9}\n")
    r = wardgate("validate", "-f", str(bad))
    assert r.returncode == 2
    assert f"{bad}: not UTF-8: byte 0xe9 at line 2" in r.stderr


@contextlib.contextmanager
def wardgate_run(files: Path, state: Path) -> Iterator[tuple[subprocess.Popen[bytes], Callable[[], str]]]:
    """`wardgate run` as its own process (a crash must not take pytest along), memory-capped."""
    log = state.parent / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wardgate", "run", "-f", str(files), "--state-dir", str(state),
             "--address-pool", f"{loopback_subnet()}.0/24", "--admin-port", "0", "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, preexec_fn=_limit_memory)
    try:
        yield proc, lambda: log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        # A control plane that died leaves its nginx behind: don't leave it to the next test.
        for pidfile in state.glob("gateways/*/run/nginx.pid"):
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)


def _until(what: Callable[[], Any], seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def _admin_status(logs: Callable[[], str]) -> dict[str, Any] | None:
    m = re.search(r"admin endpoints on (http://[\d.]+:\d+)", logs())
    if m is None:
        return None
    try:
        with urllib.request.urlopen(m.group(1) + "/status", timeout=5) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
            return doc
    except OSError:
        return None


def _manifests(world_dir: Path, app: Backend) -> Path:
    """A directory with a Gateway routing one.example.com to `app`."""
    files = world_dir / "manifests"
    files.mkdir()
    (files / "class.yaml").write_text(GATEWAY_CLASS)
    (files / "gw.yaml").write_text(gw("gw", 8080, "one.example.com") + app.manifests())
    return files


def test_run_keeps_serving_and_applying_edits_next_to_hostile_files(world_dir: Path,
                                                                    backends: Callable[..., Backend]) -> None:
    files = _manifests(world_dir, backends("app"))
    (files / "deep.yaml").write_text(DEEP)
    (files / "laughs.yaml").write_text(LAUGHS)
    with wardgate_run(files, world_dir / "state") as (proc, logs):
        status = _until(lambda: (doc := _admin_status(logs)) and doc["gateways"].get("default/gw", {})
                        .get("generation") and doc)
        assert status, logs()[-3000:]
        assert proc.poll() is None, logs()[-3000:]
        errors = "\n".join(status["errors"])
        assert f"{files / 'deep.yaml'}: YAML refused: nested more than {MAX_DEPTH} levels" in errors
        assert f"{files / 'laughs.yaml'}: YAML refused: aliases expand to more than" in errors
        addr = _gateway_address(status)
        assert request(f"http://{addr}:8080/", host="one.example.com").status == 200
        # Another edit still applies while the hostile files stay.
        two = gw("gw", 8080, "two.example.com").split("---\n")[2].replace("{name: gw, namespace",
                                                                           "{name: two, namespace")
        (files / "two.yaml").write_text(two)
        assert _until(lambda: request(f"http://{addr}:8080/", host="two.example.com").status == 200)
        assert proc.poll() is None, logs()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def _gateway_address(status: dict[str, Any]) -> str:
    for obj in status["objects"]:
        if obj["kind"] == "Gateway" and obj["name"] == "gw":
            return str(obj["status"]["addresses"][0]["value"])
    raise AssertionError("no Gateway status")


# --- symlinks and size --------------------------------------------------------------------------

LEAK = """\
apiVersion: policy.wardgate.io/v1alpha1
kind: SecurityPolicy
metadata: {name: leak, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: gw}]
  directResponses:
    - {path: /leak, bodyFrom: {configMapRef: {name: secret, key: body}}}
    - {path: /inside, bodyFrom: {configMapRef: {name: inside, key: body}}}
"""


def _config_map(name: str, body: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\ndata: {{body: {body}}}\n"


def test_symlinks_out_of_the_directory_are_not_followed(gateway: Gateway, world_dir: Path,
                                                        backends: Callable[..., Backend]) -> None:
    app = backends("app")
    gateway.write("gw.yaml", gw("gw", 8080, "one.example.com"), app.manifests())
    outside = world_dir / "root-only.yaml"  # e.g. another tenant's or root's file
    outside.write_text(_config_map("secret", "TOPSECRET"))
    outside.chmod(0o600)
    (gateway.dir / "link.yaml").symlink_to(outside)
    # Links that stay inside are followed: the layout of a mounted ConfigMap (hidden dirs unread).
    nested = gateway.dir / ".data"
    nested.mkdir()
    (nested / "inside.yaml").write_text(_config_map("inside", "fine"))
    (gateway.dir / "inside.yaml").symlink_to(Path(".data/inside.yaml"))
    (gateway.dir / "dir-link").symlink_to(world_dir, target_is_directory=True)  # never walked
    gateway.write("leak.yaml", LEAK)
    report = gateway.runner.reconcile()
    link = gateway.dir / "link.yaml"
    assert report.errors == [f"{link}: a symlink to a file outside {gateway.dir}; not read"]
    addr = gateway.address()
    leak = request(f"http://{addr}:8080/leak", host="one.example.com")
    assert b"TOPSECRET" not in leak.body and leak.status == 500
    assert request(f"http://{addr}:8080/inside", host="one.example.com").body == b"fine"
    assert request(f"http://{addr}:8080/", host="one.example.com").status == 200
    # Swapping a followed file for a link out is caught on the next read, and its last good
    # objects keep serving.
    (nested / "inside.yaml").unlink()
    (nested / "inside.yaml").symlink_to(outside)
    report = gateway.runner.reconcile()
    assert report.errors == [f"{gateway.dir / name}: a symlink to a file outside {gateway.dir}; not read"
                             for name in ("inside.yaml", "link.yaml")]
    assert request(f"http://{addr}:8080/inside", host="one.example.com").body == b"fine"


def test_files_over_the_size_limit_are_refused_and_the_rest_applies(world_dir: Path,
                                                                    backends: Callable[..., Backend]) -> None:
    from wardgate.runner import Runner, RunnerOptions

    files = _manifests(world_dir, backends("app"))
    big = files / "big.yaml"
    big.write_text(_config_map("big", "x" * 5000))
    runner = Runner([files], world_dir / "state", RunnerOptions(worker_processes=1, max_file_bytes=4096,
                                                                address_pool=loopback_subnet() + ".0/24"))
    try:
        report = runner.reconcile()
        assert f"{big}: {big.stat().st_size} bytes, more than the limit of 4096 (--max-file-size)" in report.errors
        addr = runner.address_of("default/gw")
        assert request(f"http://{addr}:8080/", host="one.example.com").status == 200
    finally:
        runner.stop()


def test_max_file_size_flag(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(_config_map("big", "x" * 5000))
    r = wardgate("validate", "-f", str(tmp_path), "--max-file-size", "4KiB")
    assert r.returncode == 2 and "more than the limit of 4096 (--max-file-size)" in r.stderr
    r = wardgate("validate", "-f", str(tmp_path), "--max-file-size", "1M")
    assert r.returncode == 0, r.stderr


def test_a_fifo_named_as_a_manifest_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    r = wardgate("validate", "-f", str(fifo))
    assert r.returncode == 2 and f"{fifo}: not a regular file; not read" in r.stderr


def test_serve_says_so_and_stops_nginx_when_the_control_plane_fails(
        gateway: Gateway, backends: Callable[..., Backend], caplog: pytest.LogCaptureFixture) -> None:
    gateway.write("gw.yaml", gw("gw", 8080), backends("app").manifests())
    masters: list[int | None] = []

    def broken_supervise() -> None:  # a bug in the control plane's loop, after nginx serves
        masters.extend(inst.pid for inst in gateway.runner.instances.values())
        raise RuntimeError("a bug")

    gateway.runner.supervise = broken_supervise  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        gateway.runner.serve(threading.Event(), admin_port=None, poll_s=0.1)
    assert masters and masters[0] is not None
    with pytest.raises(ProcessLookupError):
        os.kill(masters[0], 0)
    assert "the control plane is stopping on an unexpected error (RuntimeError); stopping the nginx of every " \
        "Gateway" in caplog.text
