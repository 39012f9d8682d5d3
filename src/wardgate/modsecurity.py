"""ModSecurity rule lines: the grammar module's part for libmodsecurity's rule language.

Like quoting.py for nginx tokens, this is the only place wardgate writes ModSecurity rule text.
The lines end up inside one `modsecurity_rules` argument (quoting.Lines escapes that for nginx);
here every value that reaches a rule is either a number, a name matched against a strict grammar,
or a regex checked for the two things that break out of a quoted rule operator.
"""

from __future__ import annotations

import re

from wardgate.errors import UnsafeValueError
from wardgate.quoting import check_waf_path

# Rule ids wardgate generates per location (a range CRS leaves to users).
RULE_BASE = 77_000
# ARGS names and header names as the policy models allow them.
_TARGET = re.compile(r"^[A-Za-z0-9_.\[\]-]+$")


def _target(name: str) -> str:
    if not _TARGET.fullmatch(name):
        raise UnsafeValueError(f"refusing ModSecurity target name {name!r}")
    return name


def http_rules(base: str, setup: str, rules_dir: str, audit_log: str) -> list[str]:
    """CRS for the whole Gateway, engine on (the nginx connector's `modsecurity off` keeps it out
    of locations that don't ask for it)."""
    return [
        f"Include {base}",
        "SecRuleEngine On",
        # One JSON line per request a rule flagged (not per 4xx/5xx, Debian's default), without
        # request headers (part B): they carry credentials.
        "SecAuditEngine RelevantOnly",
        'SecAuditLogRelevantStatus "^$"',
        "SecAuditLogFormat JSON",
        "SecAuditLogType Serial",
        "SecAuditLogParts AHZ",
        f"SecAuditLog {audit_log}",
        f"Include {setup}",
        f"Include {rules_dir}/*.conf",
        # Outbound (response) rules off: the nginx connector can't refuse a response cleanly
        # (at PL2 a backend 500 became an empty reply).
        "SecRuleRemoveById 950000-959999",
    ]


def location_rules(block: bool, paranoia: int, threshold: int) -> list[str]:
    """Engine mode, paranoia level and anomaly threshold for one location (a phase-1 SecAction:
    location rules run before the http-level CRS)."""
    return [
        f'SecRuleEngine {"On" if block else "DetectionOnly"}',
        f'SecAction "id:{RULE_BASE},phase:1,pass,nolog,t:none,'
        f'setvar:tx.paranoia_level={int(paranoia)},setvar:tx.executing_paranoia_level={int(paranoia)},'
        f'setvar:tx.inbound_anomaly_score_threshold={int(threshold)}"',
    ]


def path_exclusion(rule_id: int, path_rx: str, rule_ids: tuple[int, ...], args: tuple[str, ...],
                   headers: tuple[str, ...]) -> str:
    """Rules (or the whole engine, without rule ids) off for requests whose path matches `path_rx`."""
    check_waf_path(path_rx)  # the model checked each path the same way
    if rule_ids and (args or headers):
        ctls = [f"ctl:ruleRemoveTargetById={int(i)};ARGS:{_target(a)}" for i in rule_ids for a in args]
        ctls += [f"ctl:ruleRemoveTargetById={int(i)};REQUEST_HEADERS:{_target(h)}" for i in rule_ids
                 for h in headers]
    elif rule_ids:
        ctls = [f"ctl:ruleRemoveById={int(i)}" for i in rule_ids]
    else:
        ctls = ["ctl:ruleEngine=Off"]
    # normalizePath: ModSecurity decodes the path but keeps dot segments, so /upload/../admin
    # would otherwise match /upload while nginx serves /admin.
    return (f'SecRule REQUEST_FILENAME "@rx {path_rx}" "id:{int(rule_id)},phase:1,pass,nolog,t:none,'
            "t:normalizePath," + ",".join(ctls) + '"')


def target_exclusions(rule_ids: tuple[int, ...], args: tuple[str, ...], headers: tuple[str, ...]) -> list[str]:
    """Some args/headers out of these rules' targets, on every path."""
    targets = [f"!ARGS:{_target(a)}" for a in args] + [f"!REQUEST_HEADERS:{_target(h)}" for h in headers]
    return [f'SecRuleUpdateTargetById {int(i)} "{"|".join(targets)}"' for i in rule_ids]


def remove_rules(rule_ids: tuple[int, ...]) -> str:
    return "SecRuleRemoveById " + " ".join(str(int(i)) for i in rule_ids)


def rules_text(lines: list[str]) -> str:
    """One rules argument. Every rules string must end with a newline: without it a
    SecRuleUpdateTargetById breaks the next rule libmodsecurity parses."""
    return "\n".join(lines) + "\n"
