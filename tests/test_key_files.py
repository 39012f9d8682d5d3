"""Private keys on disk (issue 9, item 2) and in nginx's error text (item 3).

Generations used to be written 0644 in a 0755 directory and chmodded afterwards, so the nginx
worker user could read a private key during every edit. The first test watches the real write
of a generation: at every file-system operation the process makes while applying (each one
raises a Python audit event: open, chmod, mkdir, rename, ...), it looks at everything under
conf/, so a file that is ever, even briefly, readable by others is seen.
"""

from __future__ import annotations

import os
import pwd
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from test_dataplane import inst, make_instance, nginx_conf, workdir  # noqa: F401  (fixtures)
from wardgate.dataplane import NginxInstance


def _key_files() -> dict[str, str]:
    cert = trustme.CA().issue_cert("gw.test")
    pem = cert.cert_chain_pems[0].bytes().decode() + cert.private_key_pem.bytes().decode()
    server = """    server {
        listen 127.0.0.1:1 ssl;
        server_name gw.test;
        ssl_certificate certs/gw.pem;
        ssl_certificate_key certs/gw.pem;
    }"""
    # nginx -t only: port 1 is never bound by a test, and apply() stops at the test on failure
    return {"nginx.conf": nginx_conf(server), "certs/gw.pem": pem}


class _Watcher:
    """At each audit event raised by the watching thread, records every path under `root`
    that others (group or world) could read, list or enter."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.thread = threading.get_ident()
        self.busy = False
        self.active = True
        self.exposed: dict[str, int] = {}
        self.seen: set[str] = set()

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active or self.busy or threading.get_ident() != self.thread:
            return
        self.busy = True  # our own scandir/stat raise events too
        try:
            self._look(self.root)
        finally:
            self.busy = False

    def _look(self, d: Path) -> None:
        try:
            entries = list(os.scandir(d))
        except OSError:
            return
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            rel = os.path.relpath(e.path, self.root)
            self.seen.add(rel)
            if st.st_mode & 0o077:
                self.exposed.setdefault(rel, stat.S_IMODE(st.st_mode))
            if stat.S_ISDIR(st.st_mode):
                self._look(Path(e.path))


def _as_worker(attempts: list[Callable[[], object]]) -> int:
    """Runs `attempts` as the worker user (nobody) in a child process: the bitmask of those that
    succeeded (64: the child could not switch users)."""
    nobody = pwd.getpwnam("nobody")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 0
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            for i, attempt in enumerate(attempts):
                try:
                    attempt()
                    code |= 1 << i
                except PermissionError:
                    pass
        except BaseException:
            code = 64
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_no_file_of_a_generation_is_ever_readable_by_others(inst: NginxInstance,  # noqa: F811
                                                           workdir: Path) -> None:  # noqa: F811
    watcher = _Watcher(workdir / "conf")
    sys.addaudithook(watcher)  # hooks can't be removed: `active` turns it off after the test
    try:
        inst.apply(_key_files())  # nginx -t fails (nothing to listen on): the files were written
        inst.apply({**_key_files(), "nginx.conf": nginx_conf("")})  # this one is applied
    finally:
        watcher.active = False
    assert any(p.endswith("certs/gw.pem") for p in watcher.seen), watcher.seen  # we did watch the key
    assert watcher.exposed == {}, {p: oct(m) for p, m in watcher.exposed.items()}
    # conf/ itself: not even listable by the workers
    assert stat.S_IMODE((workdir / "conf").stat().st_mode) == 0o700


def test_worker_files_are_the_only_ones_the_workers_group_reaches(inst: NginxInstance,  # noqa: F811
                                                                    workdir: Path) -> None:  # noqa: F811
    """An htpasswd file (basicAuth) is opened by nginx's workers on every request: as root, only it
    becomes readable by their group, from its first byte, and the directories on its way only
    traversable; the key beside it stays private. A generation without one closes conf/ again."""
    watcher = _Watcher(workdir / "conf")
    files = {**_key_files(), "nginx.conf": nginx_conf(""), "worker/htpasswd-x": "u:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=\n"}
    sys.addaudithook(watcher)
    try:
        assert inst.apply(files).ok
    finally:
        watcher.active = False
    root = os.geteuid() == 0
    # Within a generation (the staging .gen-N.tmp, then gen-N): path -> the only mode allowed.
    allowed = {"": 0o710, "worker": 0o750, "worker/htpasswd-x": 0o640} if root else {}
    for path, mode in watcher.exposed.items():
        inside = path.partition("/")[2]
        assert allowed.get(inside) == mode, (path, oct(mode))
    assert not root or watcher.exposed, "the worker file was never seen"
    gen = (workdir / "conf" / "current").resolve()
    assert stat.S_IMODE((workdir / "conf").stat().st_mode) == (0o710 if root else 0o700)
    assert stat.S_IMODE(gen.stat().st_mode) == (0o710 if root else 0o700)
    assert stat.S_IMODE((gen / "certs" / "gw.pem").stat().st_mode) == 0o600
    if root:
        attempts: list[Callable[[], object]] = [
            lambda: (workdir / "conf" / "current" / "worker" / "htpasswd-x").read_bytes(),  # allowed
            lambda: os.listdir(workdir / "conf"),
            lambda: os.listdir(gen),
            lambda: (gen / "certs" / "gw.pem").read_bytes(),
            lambda: (gen / "nginx.conf").read_bytes(),
        ]
        succeeded = _as_worker(attempts)
        assert succeeded == 1, f"bitmask of attempts that succeeded: {succeeded:#b}"
    # The next generation has no worker files: conf/ is closed to the workers again.
    assert inst.apply({**_key_files(), "nginx.conf": nginx_conf("    # v2")}).ok
    assert stat.S_IMODE((workdir / "conf").stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become the worker user")
def test_the_worker_user_can_neither_list_nor_read_a_generation(inst: NginxInstance,  # noqa: F811
                                                                 workdir: Path) -> None:  # noqa: F811
    files = _key_files()
    files["nginx.conf"] = nginx_conf("")  # the key files ride along; nginx serves nothing with them
    assert inst.apply(files).ok
    gen = (workdir / "conf" / "current").resolve()
    # What a compromised worker would try, as the worker user, in a child process.
    attempts: list[Callable[[], object]] = [
        lambda: os.listdir(workdir / "conf"),
        lambda: os.listdir(gen),
        lambda: (gen / "certs" / "gw.pem").read_bytes(),
        lambda: (workdir / "conf" / "current" / "certs" / "gw.pem").read_bytes(),
    ]
    succeeded = _as_worker(attempts)
    assert succeeded == 0, f"bitmask of attempts that succeeded: {succeeded:#b}"


def test_nginx_errors_never_quote_a_key_file(inst: NginxInstance) -> None:  # noqa: F811
    """nginx quotes tokens of the files it parses; a key file included by mistake (or a future
    renderer bug) must not put key material into /status through the error."""
    files = _key_files()
    marker = "WGKEYLINEMARKER0123456789"
    files["certs/gw.pem"] = marker + ";\n" + files["certs/gw.pem"]
    files["nginx.conf"] = nginx_conf("    include certs/gw.pem;")
    r = inst.apply(files)
    assert not r.ok and r.error is not None
    assert "unknown directive" in r.error  # nginx did quote the file's first token
    assert marker not in r.error and marker not in (inst.last_error or "")
    assert "[redacted]" in r.error


def test_write_private_tightens_an_existing_file_before_writing(tmp_path: Path) -> None:
    from wardgate.dataplane.nginx import write_private

    path = tmp_path / "certs" / "k.pem"
    path.parent.mkdir()
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, b"-----BEGIN PRIVATE KEY-----\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    fresh = tmp_path / "new" / "deeper" / "k.pem"
    write_private(fresh, b"x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
