"""The decision log: file names and JSON fields, shared by render and `wardgate decisions`.

nginx writes one JSON object per request to ACCESS_LOG (the format below); ModSecurity writes the
requests a WAF rule flagged to AUDIT_LOG. status/decisions.py joins them on REQUEST_ID_FIELD.
"""

from __future__ import annotations

from wardgate.quoting import Raw
from wardgate.render.emit import Directive, d
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
# wardgate's module writes the line (`name=$var` a string, `name:$var` a number): nginx's own
# log_format with escape=json cost 8k instructions per request for these fields, a quarter of
# plain routing's (bench/instructions.py); the module reads most of them from the request itself.
LOG_FIELDS = tuple(Raw(f"{k}={v}" if q else f"{k}:{v}") for k, v, q in FIELDS)


# What the log says for an answer nginx gave itself (no backend tried), by status; the module
# decides 403 and 413 (the WAF's or nginx's) and the rest is "allow". 401 and 404 only where some
# place answers them itself (see http_directives).
OWN_ANSWERS: tuple[tuple[int, str], ...] = ((200, "direct-response"), (400, "invalid-request"))
AUTH_ANSWER = (401, "auth")
NOT_FOUND_ANSWER = (404, "no-route")


def http_directives(enabled: bool, auth: bool = False, not_found: bool = False) -> list[Directive]:
    """The decision log: the module's JSON line as the only field of the log format, and the
    decision it says. What the decision log says: the policy that answered ($wg_decision); else
    "concurrency" for limit_conn's refusals and "rate-limit" for limit_req's (neither can set
    $wg_decision); else "allow" where a backend was tried; else, for answers no backend gave:
    "waf" for a 403 on a WAF-enabled route, "request-limits" for nginx's 413 (body size) and
    "waf-body-limit" for ModSecurity's (only where nginx has no limit, $wg_waf "cap"),
    "invalid-request" for its 400 (malformed), "direct-response" for a 200 (only direct
    responses answer 200 themselves, so their locations set nothing); with `auth` (some place
    has basicAuth or externalAuth, which answer in the access phase, after any `set`): "auth" for
    a 401; with `not_found` (some rule answers 404 itself, after its checks, where no `set`
    runs): "no-route" for a 404; else "allow". The module's `wardgate_decision` decides it
    (module/ngx_http_wardgate_vars.c): a chain of maps doing the same was 2.9k instructions per
    request."""
    answers = (*OWN_ANSWERS, *((AUTH_ANSWER,) if auth else ()), *((NOT_FOUND_ANSWER,) if not_found else ()))
    return [
        d("wardgate_decision", Raw("$wg_decision_log"), Raw("$wg_decision"), Raw("$wg_waf"),
          *(Raw(f"{status}={decision}") for status, decision in answers)),
        d("wardgate_log_json", Raw("$wg_log_json"), *LOG_FIELDS),
        d("log_format", Raw("wg_json"), Raw("escape=none"), Raw("$wg_log_json")),
        # Buffered: an unbuffered write per request cost 11% of proxy throughput (bench/).
        d("access_log", f"logs/{ACCESS_LOG}", Raw("wg_json"), Raw("buffer=64k"), Raw("flush=1s"))
        if enabled else d("access_log", Raw("off")),
    ]
