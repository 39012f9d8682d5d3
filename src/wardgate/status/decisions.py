"""The decision log with WAF rule ids: nginx's JSON access log joined with ModSecurity's audit log.

nginx can't see which rules ModSecurity matched, so each Gateway writes two logs sharing the
request id: `logs/access.log` (every request, with the decision) and `logs/waf-audit.log` (only
requests a WAF rule flagged, with the rule ids). `wardgate decisions` reads both and prints one
JSON object per request with `waf_rules` added where the WAF had something to say.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wardgate.render.accesslog import ACCESS_LOG, AUDIT_LOG, REQUEST_ID_FIELD


def _json_lines(path: Path, last: int | None = None) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as f:
        lines: Any = deque(f, maxlen=last) if last else f
        for line in lines:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written, or a foreign line: not ours to judge
            if isinstance(obj, dict):
                yield obj


def waf_rules(audit: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(request id, matched rule ids) of one audit-log entry."""
    tx = audit.get("transaction")
    if not isinstance(tx, dict) or not tx.get("unique_id"):
        return None
    ids = []
    for msg in tx.get("messages") or []:
        rule = (msg.get("details") or {}).get("ruleId") if isinstance(msg, dict) else None
        if rule and rule not in ids:
            ids.append(str(rule))
    return str(tx["unique_id"]), ids


def decisions(logs_dir: Path, last: int | None = None) -> list[dict[str, Any]]:
    """The last `last` decision-log entries of one Gateway (all when None), with `waf_rules`."""
    entries = list(_json_lines(logs_dir / ACCESS_LOG, last))
    wanted = {e.get(REQUEST_ID_FIELD) for e in entries}
    rules: dict[str, list[str]] = {}
    for audit in _json_lines(logs_dir / AUDIT_LOG):
        found = waf_rules(audit)
        if found and found[0] in wanted:
            rules[found[0]] = found[1]
    for e in entries:
        if e.get(REQUEST_ID_FIELD) in rules:
            e["waf_rules"] = rules[e[REQUEST_ID_FIELD]]
    return entries


def gateway_logs(state_dir: Path) -> dict[str, Path]:
    """Gateway key (namespace/name) -> its logs directory, under a `wardgate run` state dir."""
    out = {}
    for d in sorted((state_dir / "gateways").glob("*_*")):
        ns, _, name = d.name.partition("_")
        out[f"{ns}/{name}"] = d / "logs"
    return out


__all__ = ["decisions", "gateway_logs", "waf_rules"]
