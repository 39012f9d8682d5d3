"""What migrate did with every annotation, snippet line and ConfigMap key it saw.

Nothing is dropped silently: each input item becomes exactly one Finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# exact: same observable behaviour. converted-with-difference: carried over, `detail` says what
# differs. not-converted: `detail` says why and what to do. unknown: migrate has never heard of it
# (an annotation missing from the catalog, a typo): the report's strict mode fails on it too.
Status = Literal["exact", "converted-with-difference", "not-converted", "unknown"]
STATUSES: tuple[Status, ...] = ("exact", "converted-with-difference", "not-converted", "unknown")


@dataclass(frozen=True)
class Finding:
    """One input item and what became of it.

    `obj` names the source object ("Ingress shop/web", "ConfigMap ingress-nginx/ingress-nginx-controller");
    `item` the annotation key without the `nginx.ingress.kubernetes.io/` prefix, or
    "<annotation> line N" for a snippet line, or "data.<key>" for a ConfigMap key.
    """

    file: str
    obj: str
    item: str
    status: Status
    detail: str = ""
    ingress_class: str | None = None
