"""The core Kubernetes kinds routing depends on."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from wardgate.model.base import Model, PortNumber, Resource
from wardgate.model.tls import tls_pair_problem
from wardgate.validation import validators


class Namespace(Resource):
    NAMESPACED: ClassVar[bool] = False


class ServicePort(Model):
    name: str | None = None
    protocol: str = "TCP"
    port: PortNumber
    target_port: int | str | None = None
    app_protocol: str | None = None


class ServiceSpec(Model):
    type: str = "ClusterIP"
    ports: list[ServicePort] = Field(default_factory=list)
    selector: dict[str, str] = Field(default_factory=dict)
    cluster_ip: str | None = None
    external_name: str | None = None


class Service(Resource):
    spec: ServiceSpec = Field(default_factory=ServiceSpec)


class EndpointConditions(Model):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class Endpoint(Model):
    addresses: Annotated[list[str], Field(min_length=1, max_length=100)]
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)

    @field_validator("addresses")
    @classmethod
    def _ips(cls, addresses: list[str]) -> list[str]:
        import ipaddress

        for a in addresses:
            try:
                ip = ipaddress.ip_address(a)
            except ValueError:
                raise ValueError(f"{a!r} is not an IP address") from None
            validators().no_zone(ip, a)
        return addresses


class EndpointPort(Model):
    name: str | None = ""
    port: PortNumber | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None


SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class EndpointSlice(Resource):
    address_type: Literal["IPv4", "IPv6", "FQDN"] = "IPv4"
    endpoints: list[Endpoint] = Field(default_factory=list)
    ports: list[EndpointPort] = Field(default_factory=list)

    @property
    def service_name(self) -> str | None:
        return self.metadata.labels.get(SERVICE_NAME_LABEL)


TLS_SECRET_TYPE = "kubernetes.io/tls"


class Secret(Resource):
    type: str = "Opaque"
    data: dict[str, str] = Field(default_factory=dict)
    string_data: dict[str, str] = Field(default_factory=dict)

    def value(self, key: str) -> bytes | None:
        if key in self.string_data:
            return self.string_data[key].encode()
        if key not in self.data:
            return None
        try:
            return base64.b64decode(self.data[key], validate=True)
        except (binascii.Error, ValueError):
            return None

    def field_of(self, key: str) -> str:
        """Where `key` is read from, as a field path for errors: stringData wins, like the API."""
        return f"stringData.{key}" if key in self.string_data else f"data.{key}"

    def tls_problem(self) -> tuple[str, str] | None:
        """For a kubernetes.io/tls Secret: (field, why) when tls.crt/tls.key can't be served."""
        if self.type != TLS_SECRET_TYPE:
            return None
        cert, key = self.value("tls.crt"), self.value("tls.key")
        for name, data in (("tls.crt", cert), ("tls.key", key)):
            if data is None:
                missing = name not in self.data and name not in self.string_data
                return self.field_of(name), "is required" if missing else "is not valid base64"
        assert cert is not None and key is not None
        problem = tls_pair_problem(cert, key)
        return (self.field_of(problem[0]), problem[1]) if problem else None


class ConfigMap(Resource):
    data: dict[str, str] = Field(default_factory=dict)
