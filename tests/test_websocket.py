"""WebSocket through a real wardgate gateway (nginx) to a real echo backend's ``/ws``."""

from __future__ import annotations

import http.client
import json
import os
import textwrap
from collections.abc import Callable

import pytest

from conftest import GW, Backend, Gateway, request
from wardgate.verify.conformance import WebSocketClient, WebSocketHandshakeError
from wardgate.verify.echo import OP_CONTINUATION, OP_PONG, OP_TEXT, WS_MAX_MESSAGE

pytestmark = pytest.mark.timeout(120)

HOST = "ws.example.com"

ROUTE = f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: ws, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{HOST}]
  rules:
    - backendRefs: [{{name: ws-echo, port: 8082}}]
"""


def ws_service(backend: Backend) -> str:
    """Like the conformance base Service infra-backend-v1's third port: appProtocol kubernetes.io/ws."""
    target = backend.servers[0].port
    eps = ", ".join(f"{{addresses: [{s.host}]}}" for s in backend.servers)
    return textwrap.dedent(f"""\
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {backend.service}, namespace: default}}
        spec:
          ports: [{{name: ws, port: 8082, targetPort: {target}, appProtocol: kubernetes.io/ws}}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: {backend.service}-1
          namespace: default
          labels: {{kubernetes.io/service-name: {backend.service}}}
        addressType: IPv4
        ports: [{{name: ws, port: {target}, appProtocol: kubernetes.io/ws}}]
        endpoints: [{eps}]
        """)


def setup(gateway: Gateway, backends: Callable[..., Backend]) -> Backend:
    backend = backends("ws-echo")
    gateway.write("gw.yaml", GW, ws_service(backend))
    gateway.write("route.yaml", ROUTE)
    gateway.reconcile()
    parent = gateway.status("HTTPRoute", "ws")["parents"][0]
    conditions = {c["type"]: c["status"] for c in parent["conditions"]}
    assert conditions == {"Accepted": "True", "ResolvedRefs": "True"}, parent
    return backend


def connect(gateway: Gateway, path: str = "/ws") -> WebSocketClient:
    return WebSocketClient.connect(gateway.address(), 8080, path, host_header=HOST, origin=f"http://{HOST}",
                                   timeout_s=10)


def test_websocket_messages_through_the_gateway(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    backend = setup(gateway, backends)
    with connect(gateway) as ws:
        assert ws.status == 101
        texts = ["Websocket Support!", "grüße, 世界 🎉", "", "x" * 10_000, "y" * 200_000]
        binaries = [bytes([1, 2, 3, 4, 5, 6, 7]), bytes(range(256)), b"", os.urandom(70 * 1024),
                    os.urandom(WS_MAX_MESSAGE)]
        for text, blob in zip(texts, binaries, strict=True):
            ws.send_text(text)
            assert ws.receive() == ("text", text.encode())
            ws.send_binary(blob)
            assert ws.receive() == ("binary", blob)

        # Several messages in flight at once come back in order.
        for i in range(20):
            ws.send_text(f"message {i}")
        assert [ws.receive() for _ in range(20)] == [("text", f"message {i}".encode()) for i in range(20)]

        # nginx relays frames as they are: a ping is answered, and fragments come back as one message.
        ws.ping(b"through nginx")
        assert ws.next_event() == (OP_PONG, b"through nginx")
        ws.send(OP_TEXT, b"frag", fin=False)
        ws.ping(b"between")
        ws.send(OP_CONTINUATION, b"mented")
        assert ws.next_event() == (OP_PONG, b"between")
        assert ws.receive() == ("text", b"fragmented")

        assert ws.close(1000, "bye") == (1000, "")
        assert ws.server_closed_tcp  # the backend closed, and nginx passed that on
    assert backend.servers[0].seen_paths == ["/ws"]


def test_refused_handshake_and_plain_requests_on_the_websocket_route(
    gateway: Gateway, backends: Callable[..., Backend]
) -> None:
    backend = setup(gateway, backends)
    echo = backend.servers[0]

    # A handshake the backend refuses comes back as that HTTP answer, with nothing upgraded.
    with pytest.raises(WebSocketHandshakeError) as refused:
        connect(gateway, "/not-ws")
    assert refused.value.status == 200  # the echo's JSON: /not-ws is no WebSocket endpoint

    # Plain keep-alive HTTP on the same route, while a WebSocket is open next to it.
    with connect(gateway) as ws:
        before = echo.connections_accepted
        conn = http.client.HTTPConnection(gateway.address(), 8080, timeout=10)
        try:
            first_sock = None
            for i in range(5):
                conn.request("GET", f"/plain?i={i}", headers={"Host": HOST})
                resp = conn.getresponse()
                data = json.loads(resp.read())
                assert resp.status == 200 and data["path"] == f"/plain?i={i}"
                assert not resp.will_close
                # Without an Upgrade header the gateway sends no Connection header upstream, so neither
                # "upgrade" nor "close" reaches the backend and nginx may reuse its upstream connection.
                assert "Connection" not in data["headers"] and "Upgrade" not in data["headers"]
                if first_sock is None:
                    first_sock = conn.sock
                assert conn.sock is first_sock  # the client connection stayed open
            # All five went over one (keep-alive) upstream connection.
            assert echo.connections_accepted - before == 1

            # /ws without an upgrade: the backend's 426, and the client connection still serves requests.
            conn.request("GET", "/ws", headers={"Host": HOST})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 426 and resp.getheader("Upgrade") == "websocket"
            conn.request("GET", "/plain?after=426", headers={"Host": HOST})
            resp = conn.getresponse()
            assert json.loads(resp.read())["path"] == "/plain?after=426"
            assert conn.sock is first_sock
        finally:
            conn.close()

        ws.send_binary(b"\x00still open\xff")
        assert ws.receive() == ("binary", b"\x00still open\xff")
        assert ws.close() == (1000, "")

    # A fresh urllib request (Connection: close from the client) is unaffected too.
    r = request(f"http://{gateway.address()}:8080/last", host=HOST)
    assert r.status == 200 and r.json["path"] == "/last"
