"""wardgate's own nginx module (module/, built by scripts/install.sh): duplicate headers without
Lua, and a request id without a random-number call per request."""

from __future__ import annotations

import os
import sys

from wardgate import ir
from wardgate.quoting import Raw
from wardgate.render.emit import Directive, d

# Loaded last, after ModSecurity, so its preaccess handler runs before ModSecurity's.
WARDGATE_MODULE = "ngx_http_wardgate_module.so"
REQUEST_ID = "$wardgate_request_id"  # 32 hex characters, unique, not secret


def default_wardgate_module() -> str:
    """Where scripts/install.sh builds wardgate's nginx module: inside the virtual environment
    wardgate runs from; WARDGATE_NGINX_MODULE overrides."""
    return os.environ.get("WARDGATE_NGINX_MODULE") or os.path.join(sys.prefix, "lib", "nginx", "modules",
                                                                   WARDGATE_MODULE)


def duplicate_headers(p: ir.Policy) -> Directive:
    """`wardgate_duplicate_headers <default> name=action ...` (the IR's names are lower case; each
    pair is one quoted token). Inherited by inner levels like any loc-level setting."""
    assert p.duplicate_default is not None
    return d("wardgate_duplicate_headers", Raw(p.duplicate_default),
             *(f"{name}={act}" for name, act in p.duplicate_headers))
