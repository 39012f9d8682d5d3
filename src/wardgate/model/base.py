"""Shared pieces of the resource models."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from wardgate.errors import Origin
from wardgate.keys import ObjectKey
from wardgate.validation import validators


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields ignored like the API server prunes."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class ObjectMeta(Model):
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
    namespace: Annotated[str, Field(max_length=63, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")] = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int = 1
    creation_timestamp: str | None = None
    resource_version: str | None = None
    uid: str | None = None


class Resource(Model):
    """A top-level object. `origin` and `seq` are set by the loader, not read from input."""

    api_version: str
    kind: str
    metadata: ObjectMeta
    origin: Annotated[Origin | None, Field(exclude=True)] = None
    # Load order: the tie-breaker standing in for creationTimestamp when it is absent.
    seq: Annotated[int, Field(exclude=True)] = 0

    NAMESPACED: ClassVar[bool] = True

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.metadata.namespace, self.metadata.name)

    def ref(self) -> str:
        return self.key.ref()


def _wrap(check: Any) -> Any:
    return AfterValidator(check)


Hostname = Annotated[str, _wrap(lambda v: validators().hostname(v))]
PreciseHostname = Annotated[str, _wrap(lambda v: validators().hostname(v, wildcard=False))]
HeaderName = Annotated[str, _wrap(lambda v: validators().header_name(v))]
HeaderValue = Annotated[str, _wrap(lambda v: validators().header_value(v))]
# Header names the data plane can also test ($http_<name>).
MatchableHeaderName = Annotated[str, _wrap(lambda v: validators().matchable_header_name(v))]
PortNumber = Annotated[int, Field(ge=1, le=65535)]
# The Gateway API SectionName: listener, rule and parentRef section names. A rule name reaches
# nginx configuration (the decision log's route), so it must not carry anything but this.
SectionName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
