"""The data plane against a real nginx: apply, reload, reject, supervise, admin endpoints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from wardgate.dataplane import AdminServer, GatewayState, NginxInstance, nginx_version

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def http(url: str, data: bytes | None = None, timeout_s: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def nginx_conf(servers: str, error_level: str = "") -> str:
    """A main file that follows the renderer contract: runtime paths relative to the prefix."""
    level = f" {error_level}" if error_level else ""
    return f"""worker_processes 1;
pid run/nginx.pid;
error_log logs/error.log{level};
events {{ worker_connections 128; }}
http {{
    access_log logs/access.log;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    include conf.d/*.conf;
{servers}
}}
"""


def returning(port: int, body: str, extra: str = "") -> str:
    return f"""    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "{body}"; }}
        {extra}
    }}"""


def slow_post(port: int, body: bytes) -> tuple[int, bytes]:
    """POST, then read the response only after a pause with a small receive buffer, so nginx
    has to spill the upstream response to its proxy temp files."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        head = f"POST /upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        s.sendall(head.encode() + body)
        time.sleep(0.5)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    header, _, payload = raw.partition(b"\r\n\r\n")
    return int(header.split()[1]), payload


def group_alive(pgid: int) -> list[int]:
    """Non-zombie processes in a process group."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            data = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = data[data.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry))
    return alive


def group_gone(pgid: int, timeout_s: float = 5.0) -> bool:
    return wait_for(lambda: not group_alive(pgid), timeout_s)


def proc_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not tmp_path: pytest makes its base 0700, and nginx workers (nobody, when tests run as
    # root) must traverse into the prefix to write request-body temp files.
    d = Path(tempfile.mkdtemp(prefix="wardgate-dp-"))
    d.chmod(0o755)
    yield d / "gw"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_instance(workdir: Path) -> Iterator[Callable[[], NginxInstance]]:
    made: list[NginxInstance] = []
    pgids: list[int] = []

    def make() -> NginxInstance:
        inst = NginxInstance("default/gw", workdir, nginx_bin=NGINX)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        if inst.pid is not None:
            pgids.append(inst.pid)
        inst.stop(timeout_s=5)
    for inst in made:
        assert inst.pid is None
    for pgid in pgids:
        assert group_gone(pgid), f"stray nginx processes in group {pgid}"


@pytest.fixture
def inst(make_instance: Callable[[], NginxInstance]) -> NginxInstance:
    return make_instance()


@pytest.fixture
def echo_backend() -> Iterator[int]:
    """A real HTTP backend that sends back the request body it received."""

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    t.join(5)


# ---------------------------------------------------------------- tests


def test_nginx_version() -> None:
    v = nginx_version(NGINX)
    assert v[0].isdigit() and "." in v


def test_apply_reload_noop_and_rejected_config(inst: NginxInstance, workdir: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    files1 = {"nginx.conf": nginx_conf(returning(port, "gen1"))}

    r1 = inst.apply(files1)
    assert (r1.changed, r1.ok, r1.error, r1.generation) == (True, True, None, 1)
    assert inst.is_running() and inst.generation == 1 and inst.reloads == 0
    assert inst.last_apply_time is not None
    assert http(url) == (200, b"gen1")
    assert os.readlink(workdir / "conf" / "current") == "gen-1"

    # relative include and an extra file, resolved inside the new generation
    files2 = {
        "nginx.conf": nginx_conf(returning(port, "gen2", "location /extra { include snippets/extra.inc; }")),
        "conf.d/empty.conf": "# nothing\n",
        "snippets/extra.inc": 'return 200 "extra";\n',
    }
    r2 = inst.apply(files2)
    assert (r2.changed, r2.ok, r2.generation) == (True, True, 2)
    assert inst.reloads == 1
    assert http(url) == (200, b"gen2")
    assert http(url + "/extra") == (200, b"extra")
    assert os.readlink(workdir / "conf" / "current") == "gen-2"

    # byte-identical: no new generation, no reload, same workers
    workers = inst.worker_pids()
    r3 = inst.apply(dict(files2))
    assert (r3.changed, r3.ok, r3.generation) == (False, True, 2)
    assert inst.reloads == 1 and inst.worker_pids() == workers

    # rejected by nginx -t: previous generation keeps serving
    pid = inst.pid
    bad = dict(files2)
    bad["nginx.conf"] = files2["nginx.conf"].replace("worker_processes 1;", "worker_processes 1;\nbogus_directive;")
    r4 = inst.apply(bad)
    assert (r4.changed, r4.ok, r4.generation) == (True, False, 2)
    assert r4.error is not None and "bogus_directive" in r4.error
    assert "nginx.conf:2" in r4.error  # path relative to the generation, with the line
    assert "test failed" not in r4.error and str(workdir) not in r4.error
    assert inst.last_error == r4.error and inst.reload_failures == 1
    assert inst.pid == pid and inst.generation == 2
    assert http(url) == (200, b"gen2")
    assert os.readlink(workdir / "conf" / "current") == "gen-2"
    assert sorted(p.name for p in (workdir / "conf").glob("gen-*")) == ["gen-1", "gen-2"]

    # a good config clears the error; only the last 3 generations stay on disk
    for n in (3, 4, 5):
        r = inst.apply({"nginx.conf": nginx_conf(returning(port, f"gen{n}"))})
        assert r.ok and r.generation == n, r.error
        assert http(url) == (200, f"gen{n}".encode())
    assert inst.last_error is None and inst.reloads == 4
    assert sorted(p.name for p in (workdir / "conf").glob("gen-*")) == ["gen-3", "gen-4", "gen-5"]


def test_reload_that_cannot_bind_keeps_old_config(inst: NginxInstance, workdir: Path) -> None:
    port, taken = free_port(), socket.socket()
    with taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        assert inst.apply({"nginx.conf": nginx_conf(returning(port, "gen1"))}).ok
        pid = inst.pid

        # nginx -t does not bind, so only the reload itself can find the port taken
        both = returning(port, "gen2") + returning(busy, "other")
        r = inst.apply({"nginx.conf": nginx_conf(both)})
        assert not r.ok and r.generation == 1
        assert r.error is not None and "bind()" in r.error and str(busy) in r.error
        assert inst.pid == pid and inst.reload_failures == 1 and inst.reloads == 0
        assert os.readlink(workdir / "conf" / "current") == "gen-1"
        assert http(f"http://127.0.0.1:{port}") == (200, b"gen1")

    # nginx was still retrying bind() when the socket closed: it must not pick the config up
    time.sleep(0.3)
    assert http(f"http://127.0.0.1:{port}") == (200, b"gen1")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", busy), timeout=2).close()

    # the port is free again: the same config now applies
    r = inst.apply({"nginx.conf": nginx_conf(both)})
    assert r.ok and r.generation == 2, r.error
    assert http(f"http://127.0.0.1:{busy}") == (200, b"other")


def test_unconfirmed_reload_converges_back(inst: NginxInstance, workdir: Path) -> None:
    port = free_port()
    assert inst.apply({"nginx.conf": nginx_conf(returning(port, "gen1"))}).ok
    master, workers = inst.pid, inst.worker_pids()
    assert master is not None
    inst.reload_timeout_s = 0.3
    os.kill(master, signal.SIGSTOP)  # a master too busy to answer: the outcome is unknown
    try:
        r = inst.apply({"nginx.conf": nginx_conf(returning(port, "gen2"))})
    finally:
        os.kill(master, signal.SIGCONT)
    assert not r.ok and r.generation == 1 and r.error is not None and "not confirmed" in r.error
    assert os.readlink(workdir / "conf" / "current") == "gen-1"
    # the queued SIGHUP is handled now and must re-read the old generation
    assert wait_for(lambda: bool(inst.worker_pids() - workers))
    assert http(f"http://127.0.0.1:{port}") == (200, b"gen1")
    assert inst.pid == master


def test_first_start_failure_is_reported(inst: NginxInstance, workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        r = inst.apply({"nginx.conf": nginx_conf(returning(busy, "gen1"))})
    assert not r.ok and r.generation == 0 and not inst.is_running()
    assert r.error is not None and "Address already in use" in r.error
    assert not (workdir / "conf" / "current").exists()
    assert inst.ensure_running() is False  # nothing good to run yet


def test_killed_master_is_restarted(inst: NginxInstance) -> None:
    port = free_port()
    assert inst.apply({"nginx.conf": nginx_conf(returning(port, "gen1"))}).ok
    old_pid, old_workers = inst.pid, inst.worker_pids()
    assert old_pid is not None and old_workers
    assert inst.ensure_running() is False

    os.kill(old_pid, signal.SIGKILL)
    assert wait_for(lambda: not inst.is_running())
    # the orphaned worker still holds the listen socket; the restart must clear it
    assert inst.ensure_running() is True
    assert inst.restarts == 1 and inst.pid not in (None, old_pid) and inst.generation == 1
    assert not any(proc_alive(w) for w in old_workers)
    assert http(f"http://127.0.0.1:{port}") == (200, b"gen1")
    assert inst.ensure_running() is False


def test_stopped_instance_is_not_resurrected(inst: NginxInstance) -> None:
    port = free_port()
    assert inst.apply({"nginx.conf": nginx_conf(returning(port, "gen1"))}).ok
    pgid = inst.pid
    assert pgid is not None
    inst.stop()
    assert not inst.is_running() and not group_alive(pgid)
    assert inst.ensure_running() is False
    # applying the same files again brings it back without a new generation
    r = inst.apply({"nginx.conf": nginx_conf(returning(port, "gen1"))})
    assert (r.changed, r.ok, r.generation) == (False, True, 1)
    assert http(f"http://127.0.0.1:{port}") == (200, b"gen1")


def test_new_process_adopts_running_master(make_instance: Callable[[], NginxInstance]) -> None:
    port = free_port()
    files = {"nginx.conf": nginx_conf(returning(port, "gen1"))}
    first = make_instance()
    assert first.apply(files).ok
    pid = first.pid

    # e.g. wardgate restarted while nginx kept serving
    second = make_instance()
    assert second.pid == pid and second.generation == 1
    r = second.apply(files)
    assert (r.changed, r.ok) == (False, True) and second.reloads == 0
    r = second.apply({"nginx.conf": nginx_conf(returning(port, "gen2"))})
    assert r.ok and r.generation == 2, r.error
    assert http(f"http://127.0.0.1:{port}") == (200, b"gen2")
    second.stop()
    assert not first.is_running() and not group_alive(pid or 0)


def test_large_request_body_is_proxied(inst: NginxInstance, workdir: Path, echo_backend: int) -> None:
    port = free_port()
    proxy = f"""    server {{
        listen 127.0.0.1:{port} sndbuf=8k;
        client_max_body_size 8m;
        location / {{ proxy_pass http://127.0.0.1:{echo_backend}; }}
    }}"""
    r = inst.apply({"nginx.conf": nginx_conf(proxy, error_level="warn")})
    assert r.ok, r.error
    body = os.urandom(2 * 1024 * 1024)
    assert http(f"http://127.0.0.1:{port}/upload", data=body) == (200, body)
    assert slow_post(port, body) == (200, body)
    # both directions went through temp files, written by the (unprivileged) worker
    log_text = (workdir / "logs" / "error.log").read_text()
    assert "client request body is buffered to a temporary file" in log_text
    assert "upstream response is buffered to a temporary file" in log_text
    assert "Permission denied" not in log_text
    if os.geteuid() == 0:
        worker = next(iter(inst.worker_pids()))
        assert os.stat(f"/proc/{worker}").st_uid != 0


def test_certificates_resolve_inside_the_generation(inst: NginxInstance, workdir: Path) -> None:
    import trustme
    ca = trustme.CA()
    cert = ca.issue_cert("gw.test")
    port = free_port()
    server = f"""    server {{
        listen 127.0.0.1:{port} ssl;
        server_name gw.test;
        ssl_certificate certs/gw.pem;
        ssl_certificate_key certs/gw.key;
        location / {{ return 200 "tls"; }}
    }}"""
    files = {
        "nginx.conf": nginx_conf(server),
        "certs/gw.pem": cert.cert_chain_pems[0].bytes().decode(),
        "certs/gw.key": cert.private_key_pem.bytes().decode(),
    }
    r = inst.apply(files)
    assert r.ok, r.error
    key = workdir / "conf" / "current" / "certs" / "gw.key"
    assert key.stat().st_mode & 0o777 == 0o600  # private keys are not world-readable

    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="gw.test") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"tls")


def test_invalid_paths_are_refused(inst: NginxInstance) -> None:
    ok_main = nginx_conf(returning(free_port(), "x"))
    for bad in ("../escape.conf", "/etc/passwd", "a/../../b", "./nginx.conf"):
        with pytest.raises(ValueError):
            inst.apply({"nginx.conf": ok_main, bad: ""})
    with pytest.raises(ValueError):
        inst.apply({"other.conf": ok_main})
    assert inst.generation == 0 and not inst.is_running()


def test_admin_endpoints(inst: NginxInstance) -> None:
    translation_errors = 2

    def states() -> tuple[list[GatewayState], int]:
        return [GatewayState.from_instance("default/gw", inst)], translation_errors

    def status() -> dict[str, object]:
        return {"gateways": {"default/gw": {"generation": inst.generation}}}

    admin = AdminServer("127.0.0.1", 0, status_provider=status, state_provider=states)
    admin.start()
    try:
        base = f"http://127.0.0.1:{admin.port}"
        assert admin.port > 0
        assert http(base + "/healthz") == (200, b"ok\n")

        code, body = http(base + "/readyz")
        assert code == 503
        assert json.loads(body)["reasons"] == ["default/gw: nginx is not running"]

        port = free_port()
        assert inst.apply({"nginx.conf": nginx_conf(returning(port, "gen1"))}).ok
        assert inst.apply({"nginx.conf": nginx_conf(returning(port, "gen2"))}).ok
        code, body = http(base + "/readyz")
        assert code == 200 and json.loads(body) == {"ready": True, "reasons": []}

        # a rejected config: still ready (old config serves) but no longer "up"
        assert not inst.apply({"nginx.conf": "bogus_directive;"}).ok
        assert http(base + "/readyz")[0] == 200

        code, body = http(base + "/metrics")
        text = body.decode()
        assert code == 200
        assert 'wardgate_reloads_total{gateway="default/gw"} 1.0' in text
        assert 'wardgate_reload_failures_total{gateway="default/gw"} 1.0' in text
        assert 'wardgate_nginx_restarts_total{gateway="default/gw"} 0.0' in text
        assert 'wardgate_config_generation{gateway="default/gw"} 2.0' in text
        assert 'wardgate_config_age_seconds{gateway="default/gw"}' in text
        assert 'wardgate_gateway_up{gateway="default/gw"} 0.0' in text
        assert "wardgate_translation_errors 2.0" in text

        code, body = http(base + "/status")
        assert code == 200 and json.loads(body) == {"gateways": {"default/gw": {"generation": 2}}}
        assert http(base + "/nope")[0] == 404

        inst.stop()
        code, body = http(base + "/readyz")
        assert code == 503 and "not running" in json.loads(body)["reasons"][0]
    finally:
        admin.stop()


def test_admin_reports_provider_failure_and_no_gateways() -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    with AdminServer("127.0.0.1", 0, status_provider=broken, state_provider=lambda: ([], 0)) as admin:
        base = f"http://127.0.0.1:{admin.port}"
        code, body = http(base + "/status")
        # the type, never the text: an exception's message could quote Secret data
        assert code == 500 and json.loads(body)["error"] == "RuntimeError" and b"boom" not in body
        assert http(base + "/readyz")[0] == 503
        code, body = http(base + "/metrics")
        assert code == 200 and "wardgate_translation_errors 0.0" in body.decode()
