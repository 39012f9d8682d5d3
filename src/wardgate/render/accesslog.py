"""The decision log: file names and JSON fields, shared by render and `wardgate decisions`.

nginx writes one JSON object per request to ACCESS_LOG (the format below); ModSecurity writes the
requests a WAF rule flagged to AUDIT_LOG. status/decisions.py joins them on REQUEST_ID_FIELD.
"""

from __future__ import annotations

from wardgate.quoting import Expr, Raw
from wardgate.render.emit import Directive, d, entry
from wardgate.render.module import REQUEST_ID

ACCESS_LOG = "access.log"
AUDIT_LOG = "waf-audit.log"
REQUEST_ID_FIELD = "request_id"
DECISION_FIELD = "decision"
ROUTE_FIELD = "route"
# (field, nginx value, quoted): the JSON object written per request.
FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("time", "$time_iso8601", True),
    (REQUEST_ID_FIELD, REQUEST_ID, True),
    ("remote_addr", "$remote_addr", True),
    ("host", "$host", True),
    ("method", "$request_method", True),
    ("uri", "$request_uri", True),
    ("status", "$status", False),
    ("bytes_sent", "$body_bytes_sent", False),
    ("request_time", "$request_time", False),
    (ROUTE_FIELD, "$wg_route", True),
    ("upstream_addr", "$upstream_addr", True),
    ("upstream_status", "$upstream_status", True),
    ("upstream_time", "$upstream_response_time", True),
    ("client_ip", "$wg_client_ip", True),
    (DECISION_FIELD, "$wg_decision_log", True),
)
LOG_FORMAT = "{" + ",".join(f'"{k}":"{v}"' if q else f'"{k}":{v}' for k, v, q in FIELDS) + "}"


def http_directives(enabled: bool, decision_fallback: str, auth: bool = False,
                    not_found: bool = False) -> list[Directive]:
    """log_format, access_log and the maps that turn checks and statuses into the decision.

    What the decision log says: the policy that answered; else, for answers no backend gave: "waf"
    for a 403 on a WAF-enabled route, "request-limits" for nginx's 413 (body size) and
    "waf-body-limit" for ModSecurity's (only where nginx has no limit),
    "invalid-request" for its 400 (malformed), "direct-response" for a 200 (only direct responses
    answer 200 themselves, so their locations set nothing); else "allow". Keyed on one variable at a time, so an
    ordinary request costs two hash lookups: a regex map here was 6% of plain routing's
    instructions, a map over "$wg_waf|$status|..." still 10%. `decision_fallback` is
    $wg_decision_lr when limit_req may refuse (it can't set $wg_decision). With `auth` (some place
    has basicAuth or externalAuth, which answer in the access phase, after any `set`): "auth" for
    a 401 no backend gave. With `not_found` (some rule answers 404 itself, after its checks, where
    no `set` runs): "no-route" for a 404 no backend gave."""
    own_answers = [entry("401", Raw("$wg_decision_401"))] if auth else []
    own_answers += [entry("404", Raw("$wg_decision_404"))] if not_found else []
    return [
        d("log_format", Raw("wg_json"), Raw("escape=json"), LOG_FORMAT),
        # Buffered: an unbuffered write per request cost 11% of proxy throughput (bench/).
        d("access_log", f"logs/{ACCESS_LOG}", Raw("wg_json"), Raw("buffer=64k"), Raw("flush=1s"))
        if enabled else d("access_log", Raw("off")),
        Directive("map", (Raw("$wg_decision"), Raw("$wg_decision_log")), [
            entry("", Raw(decision_fallback)), d("default", Raw("$wg_decision"))]),
        Directive("map", (Raw("$status"), Raw("$wg_decision_auto")), [
            d("default", "allow"), entry("200", Raw("$wg_decision_200")), entry("400", Raw("$wg_decision_400")),
            entry("403", Raw("$wg_decision_403")), entry("413", Raw("$wg_decision_413")), *own_answers]),
        *(Directive("map", (Raw("$upstream_status"), Raw(f"$wg_decision_{status}")), [
            entry("", decision), d("default", "allow")])
          for status, decision in (("200", "direct-response"), ("400", "invalid-request"),
                                   *((("401", "auth"),) if auth else ()),
                                   *((("404", "no-route"),) if not_found else ()))),
        Directive("map", (Expr((Raw("$wg_waf"), "|", Raw("$upstream_status"))), Raw("$wg_decision_403")), [
            entry("on|", "waf"), entry("cap|", "waf"), d("default", "allow")]),
        # ModSecurity's own 413 only where nginx has no body limit (waf.py sets $wg_waf "cap").
        Directive("map", (Expr((Raw("$wg_waf"), "|", Raw("$upstream_status"))), Raw("$wg_decision_413")), [
            entry("|", "request-limits"), entry("on|", "request-limits"), entry("cap|", "waf-body-limit"),
            d("default", "allow")]),
    ]
