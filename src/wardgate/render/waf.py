"""WAF (check 9): ModSecurity with OWASP CRS, loaded once per Gateway, turned on per location.

CRS is loaded at http level with the engine off (inline rules with absolute Includes, so nothing
depends on nginx's working directory); each WAF place turns the engine on with a few location
rules. ModSecurity keeps the settings of the first location that turned it on for the whole
request, so only the place that finally serves a request may. Rule text comes from the grammar
module (quoting.py, modsec_*).
"""

from __future__ import annotations

from wardgate import ir
from wardgate.quoting import (
    MODSEC_RULE_BASE,
    Lines,
    Raw,
    modsec_http_rules,
    modsec_location_rules,
    modsec_path_exclusion,
    modsec_remove_rules,
    modsec_request_policy,
    modsec_rules_text,
    modsec_target_exclusions,
)
from wardgate.render.emit import Directive, d
from wardgate.render.module import REQUEST_ID
from wardgate.render.paths import path_regex

MODULE = "ngx_http_modsecurity_module.so"
CRS_SETUP = "/etc/modsecurity/crs/crs-setup.conf"
CRS_RULES = "/usr/share/modsecurity-crs/rules"
MODSECURITY_BASE = "/etc/nginx/modsecurity.conf"
WAF_RULE_BASE = MODSEC_RULE_BASE


def enabled(p: ir.Policy) -> bool:
    return p.waf is not None and p.waf.mode != "Off"


def http_directives(log_dir: str, audit_log: str) -> list[Directive]:
    rules = modsec_http_rules(MODSECURITY_BASE, CRS_SETUP, CRS_RULES, f"{log_dir}/{audit_log}")
    return [
        d("modsecurity", Raw("off")),
        d("modsecurity_transaction_id", Raw(REQUEST_ID)),
        d("modsecurity_rules", Lines(modsec_rules_text(rules))),
    ]


def location(p: ir.Policy | None) -> list[Directive]:
    """For a Gateway with the WAF somewhere: on (with its settings) or off for this place."""
    w = p.waf if p is not None else None
    if w is None or w.mode == "Off":
        return [d("modsecurity", Raw("off"))]
    rules = modsec_location_rules(w.mode == "Block", w.paranoia, w.threshold)
    rules += modsec_request_policy(w.methods, w.uninspected_types, w.body_limit)
    rule_id = WAF_RULE_BASE + 1
    for ex in w.exclusions:
        if ex.paths:
            rules.append(modsec_path_exclusion(rule_id, path_regex(ex.paths), ex.rule_ids, ex.args, ex.headers))
            rule_id += 1
        elif ex.args or ex.headers:
            rules += modsec_target_exclusions(ex.rule_ids, ex.args, ex.headers)
        else:
            rules.append(modsec_remove_rules(ex.rule_ids))
    # "cap": nginx has no body limit here, so a 413 is the WAF's (decision `waf-body-limit`).
    mark = ("cap" if p is not None and p.max_body_bytes == 0 else "on") if w.mode == "Block" else ""
    return [d("modsecurity", Raw("on")), d("set", Raw("$wg_waf"), Raw(mark) if mark else ""),
            d("modsecurity_rules", Lines(modsec_rules_text(rules)))]
