"""IngressNginxCompat: ingress-nginx's path semantics, kept through an explicit filter.

An HTTPRoute rule refers to one with an ExtensionRef filter. It is not a policy (no targetRefs):
the rule names it, so what the rule means is visible in the rule. docs/compatibility.md says what
each field does and why Gateway API alone can't express it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, model_validator

from wardgate.model.base import Model, Resource
from wardgate.model.policies import POLICY_GROUP
from wardgate.validation import validators

COMPAT_KIND = "IngressNginxCompat"

RewriteTarget = Annotated[str, AfterValidator(lambda v: validators().rewrite_target(v))]


class IngressNginxCompatSpec(Model):
    """`pathMatching: IngressNginx` reads the rule's path matches as ingress-nginx's nginx
    locations (Exact `= path`, PathPrefix a prefix of characters, RegularExpression a
    case-insensitive regex anchored at the start only), in nginx's precedence; `rewriteTarget`
    replaces the whole request path, with `$1`..`$9` taken from the matched path's regex."""

    path_matching: Literal["GatewayAPI", "IngressNginx"] = "GatewayAPI"
    rewrite_target: RewriteTarget | None = None

    @model_validator(mode="after")
    def _does_something(self) -> IngressNginxCompatSpec:
        if self.path_matching == "GatewayAPI" and self.rewrite_target is None:
            raise ValueError("set pathMatching: IngressNginx, rewriteTarget, or both (this changes nothing)")
        return self


class IngressNginxCompat(Resource):
    """ingress-nginx path semantics for the HTTPRoute rules that name it in an ExtensionRef filter."""

    spec: IngressNginxCompatSpec


COMPAT_KINDS: dict[tuple[str, str], type[Resource]] = {(POLICY_GROUP, COMPAT_KIND): IngressNginxCompat}

__all__ = ["COMPAT_KIND", "COMPAT_KINDS", "IngressNginxCompat", "IngressNginxCompatSpec"]
