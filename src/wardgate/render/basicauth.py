"""basicAuth: nginx's auth_basic against an htpasswd file, in the access phase (after the rate
limit and the WAF, as with ingress-nginx; a CORS preflight is answered before it, in the rewrite
phase).

nginx's workers open the file on every request, unlike certificates, which only the master reads
when it loads a configuration. So the files live under WORKER_DIR, which the data plane makes
readable by the workers' group only (dataplane/nginx.py); everything else stays private to the
master. A file is named after the Secret it comes from, not its content: a worker still serving
the previous configuration during a reload finds the file under the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wardgate import ir
from wardgate.quoting import Text
from wardgate.render.emit import Directive, d
from wardgate.render.tables import var_name

# Files nginx's workers read at request time, relative to nginx.conf.
WORKER_DIR = "worker"


def file_name(ba: ir.BasicAuth) -> str:
    return f"{WORKER_DIR}/{var_name('htpasswd-', ba.key)}"


@dataclass(frozen=True)
class BasicAuthPlan:
    files: Mapping[str, str]  # file name -> htpasswd text


def plan(policies: tuple[ir.Policy, ...], used: frozenset[int]) -> BasicAuthPlan:
    files: dict[str, str] = {}
    for p in policies:
        ba = p.basic_auth
        if p.id in used and ba is not None and ba.users is not None:
            files[file_name(ba)] = ba.users
    return BasicAuthPlan(files)


def location(p: ir.Policy) -> list[Directive]:
    """What a place of policy `p` writes: the check, or 500 when its Secret can't be used."""
    ba = p.basic_auth
    if ba is None:
        return []
    if ba.users is None:
        return [d("return", 500)]  # fail closed
    return [d("auth_basic", Text(ba.realm)), d("auth_basic_user_file", file_name(ba))]
