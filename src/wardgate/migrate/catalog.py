"""Every ingress-nginx annotation migrate knows, joined from the topic modules' CATALOGs.

Minimal registry written by mig-core so the converter can dispatch before the full catalog
(mig-annot) lands; that one replaces this file and keeps `lookup(key)` as the only entry point.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from wardgate.migrate.contrib import CatalogEntry


@cache
def entries() -> dict[str, CatalogEntry]:
    """key (without the nginx.ingress.kubernetes.io/ prefix) -> entry, from every ann_*.py."""
    import wardgate.migrate as package

    out: dict[str, CatalogEntry] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("ann_"):
            module = importlib.import_module(f"wardgate.migrate.{info.name}")
            out.update(getattr(module, "CATALOG", {}))
    return out


def lookup(key: str) -> CatalogEntry | None:
    return entries().get(key)
