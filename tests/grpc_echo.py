"""A real gRPC echo backend and client for the GRPCRoute tests (grpcio, no generated code).

Every method of every service is served by one generic handler with raw-bytes serializers: the
reply is JSON naming the pod, the method path the backend received, its :authority and the
request metadata. So no .proto file and no protoc are needed.
"""

from __future__ import annotations

import json
import textwrap
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc


def _identity(data: bytes) -> bytes:
    return data


class _Echo(grpc.GenericRpcHandler):
    def __init__(self, pod: str, calls: list[tuple[str, dict[str, str]]]) -> None:
        self.pod = pod
        self.calls = calls

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            self.calls.append((method, metadata))
            return json.dumps({
                "pod": self.pod, "method": method, "metadata": metadata,
                "authority": metadata.get(":authority") or context._rpc_event.call_details.host.decode(),  # type: ignore[attr-defined]
                "body": request.decode("utf-8", "replace"),
            }).encode()

        return grpc.unary_unary_rpc_method_handler(unary, request_deserializer=_identity,
                                                   response_serializer=_identity)


@dataclass
class GrpcEchoServer:
    host: str
    port: int
    pod: str
    certificate: tuple[bytes, bytes] | None = None  # (key PEM, cert chain PEM): serve TLS
    # (method path, metadata) of every call received, in order.
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _server: Any = field(default=None, repr=False)

    def start(self) -> GrpcEchoServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((_Echo(self.pod, self.calls),))
        addr = f"{self.host}:{self.port}"
        if self.certificate:
            server.add_secure_port(addr, grpc.ssl_server_credentials([self.certificate]))
        else:
            server.add_insecure_port(addr)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)


def service_manifests(name: str, servers: list[GrpcEchoServer], port: int = 50051, namespace: str = "default",
                      app_protocol: str | None = "kubernetes.io/h2c") -> str:
    """A Service and its EndpointSlice pointing at gRPC echo servers."""
    target = servers[0].port
    ap = f", appProtocol: {app_protocol}" if app_protocol else ""
    eps = ", ".join(f"{{addresses: [{s.host}]}}" for s in servers)
    return textwrap.dedent(f"""\
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          ports: [{{name: grpc, port: {port}, targetPort: {target}{ap}}}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: {name}-1
          namespace: {namespace}
          labels: {{kubernetes.io/service-name: {name}}}
        addressType: IPv4
        ports: [{{name: grpc, port: {target}}}]
        endpoints: [{eps}]
        """)


@dataclass
class Reply:
    code: grpc.StatusCode
    body: dict[str, Any] | None
    initial_metadata: dict[str, str]
    details: str = ""

    @property
    def pod(self) -> str | grpc.StatusCode:
        """The backend's name (pod name up to its first '-'), or the status when the call failed."""
        return str(self.body["pod"]).split("-")[0] if self.body is not None else self.code


class GrpcClient:
    """One channel to the gateway; `authority` is the :authority (Host) every call sends."""

    def __init__(self, target: str, authority: str, root_ca: bytes | None = None) -> None:
        options = [("grpc.default_authority", authority)]
        if root_ca is not None:
            options.append(("grpc.ssl_target_name_override", authority))
            self.channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=root_ca),
                                               options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)

    def call(self, method: str, metadata: dict[str, str] | None = None, body: bytes = b"hi",
             timeout: float = 5.0) -> Reply:
        stub = self.channel.unary_unary(method, request_serializer=_identity, response_deserializer=_identity)
        try:
            resp, call = stub.with_call(body, metadata=tuple((metadata or {}).items()), timeout=timeout)
            return Reply(call.code(), json.loads(resp), {k: v for k, v in call.initial_metadata()})
        except grpc.RpcError as exc:
            md = {k: v for k, v in (exc.initial_metadata() or ())}  # type: ignore[attr-defined]
            return Reply(exc.code(), None, md, exc.details() or "")  # type: ignore[attr-defined]

    def close(self) -> None:
        self.channel.close()
