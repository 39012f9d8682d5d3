"""IR policies -> nginx: checks, headers, Lua access checks, ModSecurity, client IP, decision log.

Order of checks for one request (docs/policies.md):
1. client IP (realip / X-Forwarded-For / PROXY protocol), 2. ipAccess 403, 3. allowedMethods 405,
4. urlAllowlist, 5. direct responses, 6. URL 414 / header 431 limits, 7. duplicate headers 400,
8. rate limit, 9. WAF 403, 10. body size 413, then the proxy.
1-5 are rewrite-phase `if`s at the place a request is served; 6-8 are one Lua call at the end of
the rewrite phase (rewrite_by_lua); 9 is ModSecurity, which decides in its request-body phase
(preaccess; CRS blocks there); 10 is nginx reading the body.

8 is nginx's own limit_req (preaccess) when that gives the same answers (`native_rate`) and no
route sharing the budget has the WAF on: ModSecurity's preaccess handler runs before limit_req's,
which would put the WAF before the rate limit.
"""

from __future__ import annotations

from importlib import resources

from wardgate import ir
from wardgate.quoting import (
    END,
    MATCH_LIMIT,
    Arg,
    Body,
    Expr,
    Lines,
    Raw,
    Text,
    header_variable,
    lua_literal,
    modsec_request_policy,
    regex_escape,
)
from wardgate.render.emit import Directive, d, entry, map_entry

R = Raw
LUA_MODULES = ("ndk_http_module.so", "ngx_http_lua_module.so")
MODSECURITY_MODULE = "ngx_http_modsecurity_module.so"
# wardgate's own module (module/, built by scripts/build-module.sh): duplicate headers without Lua
# and a request id without a random-number call per request. Loaded last, after ModSecurity, so its
# preaccess handler runs before ModSecurity's.
WARDGATE_MODULE = "ngx_http_wardgate_module.so"
REQUEST_ID = "$wardgate_request_id"  # 32 hex characters, unique, not secret
# A token longer than nginx's 4 KiB configuration buffer is refused, so long bodies are split
# into map values joined at run time.
_CHUNK = 3000
CRS_SETUP = "/etc/modsecurity/crs/crs-setup.conf"
CRS_RULES = "/usr/share/modsecurity-crs/rules"
MODSECURITY_BASE = "/etc/nginx/modsecurity.conf"
# ModSecurity rule ids wardgate generates per location (a range CRS leaves to users).
WAF_RULE_BASE = 77_000
# limit_req zones (one per distinct rate, 10 MB each, like the Lua dict); budgets beyond use Lua.
MAX_RATE_ZONES = 16


def _cond(*parts: Arg) -> tuple[Arg, ...]:
    return (R("("), *parts, R(")"))


def path_regex(paths: tuple[ir.PathMatch, ...]) -> str:
    """One anchored PCRE matching any of the paths, with Gateway API semantics."""
    alts = []
    for p in paths:
        if p.type == "Exact":
            alts.append(regex_escape(p.value))
        elif p.type == "PathPrefix":
            # (?s:): everything under the prefix, newlines included, as nginx's prefix locations do.
            alts.append("(?s:.*)" if p.value == "/" else regex_escape(p.value) + "(?:/(?s:.*))?")
        else:
            alts.append(f"(?:{p.value})")
    limit = MATCH_LIMIT if any(p.type == "RegularExpression" for p in paths) else ""
    return limit + "^(?:" + "|".join(alts) + ")" + END


def header_directives(ops: ir.HeaderOps) -> list[Directive]:
    """Response header changes. `set` uses headers-more, which replaces a backend's copy (and
    works on every status); `add` appends."""
    out: list[Directive] = []
    for name, value in ops.set:
        out.append(d("more_set_headers", Text(f"{name}: {value}")))
    for name, value in ops.add:
        out.append(d("add_header", name, Text(value), R("always")))
    for name in ops.remove:
        out.append(d("more_clear_headers", name))
    return out


def waf_enabled(p: ir.Policy) -> bool:
    return p.waf is not None and p.waf.mode != "Off"


def native_rate(rl: ir.RateLimit) -> str | None:
    """limit_req's `rate=` for this limit when nginx's limiter answers exactly like wardgate's Lua
    one (both are GCRA with burst; Lua's was checked against limit_req), else None. limit_req keeps
    rates in requests per 1000 s as integers, so per-minute rates must divide into that; and it
    sends no Retry-After, so one is added, which is exactly 1 s when a request is due every
    second or faster. RateLimit-* headers need the Lua limiter's state."""
    if rl.headers:
        return None
    if rl.period_s == 1:
        return f"{rl.requests}r/s"
    if rl.period_s == 60 and rl.requests >= 60 and rl.requests % 3 == 0:
        return f"{rl.requests}r/m"
    return None


def _duplicate_headers(p: ir.Policy) -> Directive:
    """wardgate's module: `wardgate_duplicate_headers <default> name=action ...` (the IR's names are
    lower case; each pair is one quoted token)."""
    assert p.duplicate_default is not None
    return d("wardgate_duplicate_headers", R(p.duplicate_default),
             *(f"{name}={act}" for name, act in p.duplicate_headers))


class PolicyRenderer:
    """Renders one Gateway's policies. Collects http-level directives in `http` as it goes."""

    def __init__(self, gw: ir.Gateway, modules_dir: str, log_dir: str) -> None:
        self.gw = gw
        self.modules_dir = modules_dir
        self.log_dir = log_dir
        self.policies = {p.id: p for p in gw.policies}
        self.http: list[Directive] = []
        self._bodies = 0
        self._answers: dict[tuple[int, int], Arg] = {}
        self._declared: set[str] = set()
        self.waf = any(waf_enabled(p) for p in gw.policies)
        # bucket -> limit_req zone, and zone -> rate
        self._zones, self._zone_rates = self._rate_zones()
        self._rate_keys: dict[str, Arg] = {}  # bucket -> the limit_req key for it
        self._rate_maps: list[Directive] = []
        self._used_zones: set[str] = set()  # only these get a limit_req_zone
        self.lua = any(self.needs_lua(p) for p in gw.policies)
        # (allowed, denied) CIDR lists -> the geo variable that is 1 for a client to refuse.
        self._geos: dict[tuple[tuple[str, ...], tuple[str, ...]], str] = {}
        # allowed methods -> the map variable that is 1 for a method to refuse.
        self._methods: dict[tuple[str, ...], str] = {}

    def _rate_zones(self) -> tuple[dict[str, str], dict[str, str]]:
        """bucket -> limit_req zone for the budgets nginx's limit_req can keep, and zone -> rate. A budget shared by
        a WAF route stays in Lua everywhere: one budget must have one counter."""
        lua: set[str] = set()
        zones: dict[str, str] = {}  # rate -> zone name
        native: dict[str, str] = {}
        for p in self.gw.policies:
            rl = p.rate_limit
            if rl is not None and (native_rate(rl) is None or waf_enabled(p)):
                lua.add(rl.bucket)
        for p in sorted(self.gw.policies, key=lambda p: p.id):
            rl = p.rate_limit
            if rl is None or rl.bucket in lua or rl.bucket in native:
                continue
            rate = native_rate(rl)
            assert rate is not None
            if rate not in zones and len(zones) < MAX_RATE_ZONES:
                zones[rate] = f"wg_rl{len(zones)}"
            if rate in zones:
                native[rl.bucket] = zones[rate]
        return native, {zone: rate for rate, zone in zones.items()}

    def needs_lua(self, p: ir.Policy) -> bool:
        """Whether the policy's checks 6-8 run in Lua. Duplicate headers alone run in wardgate's
        module; with another Lua check they stay in Lua, to keep the order of checks 6-8."""
        rl = p.rate_limit
        return bool(p.max_url_length or p.max_header_bytes or (rl is not None and rl.bucket not in self._zones))

    def decision_fallback(self) -> str:
        """The variable the decision log uses when no wardgate check set $wg_decision: limit_req
        can't set it, so its rejections are read from $limit_req_status first. Call it after the
        servers are rendered."""
        return "$wg_decision_lr" if self._used_zones else "$wg_decision_auto"

    def get(self, pid: int | None) -> ir.Policy | None:
        """The policy with this id; None for none."""
        return self.policies.get(pid) if pid is not None else None

    def _geo(self, allow: tuple[str, ...], deny: tuple[str, ...]) -> str:
        if (allow, deny) not in self._geos:
            self._geos[(allow, deny)] = f"wg_ip{len(self._geos)}"
        return self._geos[(allow, deny)]

    def _method_var(self, methods: tuple[str, ...]) -> str:
        """A variable that is 1 for a method not in `methods`: a hash lookup, not a regex. nginx
        answers 400 to methods that are not upper case, so the map's case folding can't matter."""
        if methods not in self._methods:
            self._methods[methods] = f"wg_method{len(self._methods)}"
        return self._methods[methods]

    # --- main and http level -------------------------------------------------------------------

    def modules(self) -> list[str]:
        out = list(LUA_MODULES) if self.lua else []
        if self.waf:
            out.append(MODSECURITY_MODULE)
        return out

    def http_directives(self) -> list[Directive]:
        out = self._client_ip()
        lua = self._lua_init() if self.lua else ""  # may add geos: before they are written
        for lists, var in self._geos.items():
            allow, deny = lists
            node = Directive("geo", (R("$wg_client_ip"), R("$" + var)), [d("default", 1 if allow else 0)])
            assert node.block is not None
            node.block += [entry(c, 0) for c in allow] + [entry(c, 1) for c in deny]
            out.append(node)
        for methods, var in self._methods.items():
            out.append(Directive("map", (R("$request_method"), R("$" + var)),
                                 [d("default", 1), *(map_entry(m, "") for m in methods)]))
        out += self._rate_maps
        if self._used_zones:
            out += [d("limit_req_zone", R("$wg_rlkey"), R(f"zone={zone}:10m"), R(f"rate={rate}"))
                    for zone, rate in self._zone_rates.items() if zone in self._used_zones]
            # Like the Lua limiter: rejections go to the decision log, not the error log.
            out.append(d("limit_req_log_level", R("info")))
            out.append(Directive("map", (R("$limit_req_status"), R("$wg_retry_after")),
                                 [entry("REJECTED", "1"), d("default", "")]))
            out.append(Directive("map", (R("$limit_req_status"), R("$wg_decision_lr")),
                                 [entry("REJECTED", "rate-limit"), d("default", R("$wg_decision_auto"))]))
        if self.lua:
            out.append(d("lua_shared_dict", R("wg_ratelimit"), R("10m")))
            out.append(Directive("init_by_lua_block", (), None, lua=lua))
        if self.waf:
            out += self._waf_http()
        return out + self.http

    def _client_ip(self) -> list[Directive]:
        cip = self.gw.client_ip
        out: list[Directive] = []
        if cip.source == "xff" and cip.hops:
            # The Nth address from the right of X-Forwarded-For; the connection's if there are fewer.
            rx = r"(?:^|,)\s*(?<wg_xff_ip>[0-9A-Fa-f:.]+)\s*" + "(?:,[^,]*)" * (cip.hops - 1) + END
            out.append(Directive("map", (R("$http_x_forwarded_for"), R("$wg_client_ip")), [
                entry("~" + rx, R("$wg_xff_ip")), d("default", R("$remote_addr"))]))
            return out
        if cip.source in ("xff", "proxy_protocol"):
            trusted = cip.trusted or (("0.0.0.0/0", "::/0") if cip.source == "proxy_protocol" else ())
            out += [d("set_real_ip_from", c) for c in trusted]
            out.append(d("real_ip_header", R("X-Forwarded-For" if cip.source == "xff" else "proxy_protocol")))
            out.append(d("real_ip_recursive", R("on")))
        out.append(Directive("map", (R("$remote_addr"), R("$wg_client_ip")), [d("default", R("$remote_addr"))]))
        return out

    def _lua_init(self) -> str:
        source = resources.files("wardgate.render").joinpath("wardgate_access.lua").read_text()
        config: dict[int, dict[str, object]] = {}
        for p in self.gw.policies:
            if not self.needs_lua(p):
                continue
            cfg: dict[str, object] = {}
            if p.max_url_length:
                cfg["max_url"] = p.max_url_length
            if p.max_header_bytes:
                cfg["max_header_bytes"] = p.max_header_bytes
            if p.duplicate_default:  # with other Lua checks: in Lua, in their order
                cfg["dup"] = {"default": p.duplicate_default, "headers": dict(p.duplicate_headers)}
            rl = p.rate_limit
            if rl is not None and rl.bucket not in self._zones:
                limit: dict[str, object] = {"bucket": rl.bucket, "limit": rl.requests, "period": rl.period_s,
                                            "burst": rl.burst, "key": rl.key, "status": rl.status,
                                            "headers": rl.headers}
                if rl.header:
                    limit["header"] = rl.header
                if rl.exempt:
                    # A geo that is 1 exactly for the exempt CIDRs.
                    limit["exempt_var"] = self._geo((), rl.exempt)
                cfg["rl"] = limit
            config[p.id] = cfg
        return ("package.loaded.wardgate = (function()\n" + source + "\nend)()\n"
                "package.loaded.wardgate.configure(" + lua_literal(config) + ")")

    def _waf_http(self) -> list[Directive]:
        """CRS once for the whole Gateway, engine off: WAF routes turn it on per location. Inline
        rules with absolute Includes, so nothing depends on nginx's working directory."""
        rules = [
            f"Include {MODSECURITY_BASE}",
            "SecRuleEngine On",
            # One JSON line per request a rule flagged (not per 4xx/5xx, Debian's default), without
            # request headers (part B): they carry credentials.
            "SecAuditEngine RelevantOnly",
            'SecAuditLogRelevantStatus "^$"',
            "SecAuditLogFormat JSON",
            "SecAuditLogType Serial",
            "SecAuditLogParts AHZ",
            f"SecAuditLog {self.log_dir}/waf-audit.log",
            f"Include {CRS_SETUP}",
            f"Include {CRS_RULES}/*.conf",
            # Outbound (response) rules off: the nginx connector can't refuse a response cleanly
            # (at PL2 a backend 500 became an empty reply).
            "SecRuleRemoveById 950000-959999",
        ]
        return [
            d("modsecurity", R("off")),
            d("modsecurity_transaction_id", R(REQUEST_ID)),
            d("modsecurity_rules", Lines("\n".join(rules) + "\n")),
        ]

    # --- per location ----------------------------------------------------------------------------

    def checks(self, pid: int | None, allowlist: bool = True) -> list[Directive]:
        """Rewrite-phase checks 2-4, in order. Direct responses skip the URL allowlist: their
        paths are the policy's own."""
        p = self.get(pid)
        if p is None:
            return []
        out: list[Directive] = []
        if p.ip_allow or p.ip_deny:
            out.append(Directive("if", _cond(R("$" + self._geo(p.ip_allow, p.ip_deny))), [
                d("set", R("$wg_decision"), "ip-access"), d("return", 403)]))
        if p.allowed_methods:
            out.append(Directive("if", _cond(R("$" + self._method_var(p.allowed_methods))), [
                d("set", R("$wg_decision"), "method"), d("return", 405)]))
        if p.allowlist and allowlist:
            out.append(Directive("if", _cond(R("$wg_uri"), R("!~"), path_regex(p.allowlist)), [
                d("set", R("$wg_decision"), "url-allowlist"), d("return", p.allowlist_status)]))
        return out

    def waf_on(self, pid: int | None) -> bool:
        p = self.get(pid)
        return p is not None and waf_enabled(p)

    def uses_uri(self, pid: int | None) -> bool:
        p = self.get(pid)
        return p is not None and bool(p.allowlist)

    def location(self, pid: int | None, waf: bool = True) -> list[Directive]:
        """Location-level directives: response headers, body size, Lua checks, WAF.

        `waf=False` for locations that may pass the request on by an internal redirect: ModSecurity
        keeps the settings of the first location that turned it on, so only the location that
        finally serves a request may.
        """
        p = self.get(pid)
        if p is None:
            return []
        out = self.response_headers(p)
        if p.max_body_bytes is not None:
            out.append(d("client_max_body_size", p.max_body_bytes))
        if self.needs_lua(p):
            # At the end of the rewrite phase: after the `if` checks, before ModSecurity's request
            # body phase (preaccess), where CRS decides. access_by_lua would run after the WAF.
            out.append(Directive("rewrite_by_lua_block", (), None, lua=f"package.loaded.wardgate.access({p.id})"))
        elif p.duplicate_default:
            out.append(_duplicate_headers(p))
        out += self._limit_req(p)
        if waf:
            out += self._waf_location(p)
        return out

    def _limit_req(self, p: ir.Policy) -> list[Directive]:
        rl = p.rate_limit
        if rl is None or rl.bucket not in self._zones:
            return []
        zone = self._zones[rl.bucket]
        self._used_zones.add(zone)
        args: list[Arg] = [R(f"zone={zone}")]
        if rl.burst:
            args.append(R(f"burst={rl.burst}"))
        return [d("set", R("$wg_rlkey"), self._rate_key(rl)),
                d("limit_req", *args, R("nodelay")),
                d("limit_req_status", rl.status),
                # Empty (so not sent) unless limit_req refused this request: a backend's own
                # Retry-After on the same status passes untouched.
                d("add_header", "Retry-After", R("$wg_retry_after"), R("always"))]

    def _rate_key(self, rl: ir.RateLimit) -> Arg:
        """The limit_req key of a budget, the same strings the Lua limiter uses: "<bucket>:" plus
        the client IP, "#" and the header value, or nothing (Route); "" (not counted) for exempt
        clients."""
        if rl.bucket in self._rate_keys:
            return self._rate_keys[rl.bucket]
        n = len(self._rate_keys)
        by_ip = Expr((f"{rl.bucket}:", R("$wg_client_ip")))
        key: Arg = by_ip
        if rl.key == "route":
            key = f"{rl.bucket}:"
        elif rl.key == "header" and rl.header:
            header = header_variable(rl.header)
            key = R(f"$wg_rlh{n}")
            self._rate_maps.append(Directive("map", (R(header), key), [
                entry("", by_ip), d("default", Expr((f"{rl.bucket}:#", R(header))))]))
        if rl.exempt:
            exempt = R(f"$wg_rlx{n}")
            self._rate_maps.append(Directive("map", (R("$" + self._geo((), rl.exempt)), exempt), [
                entry("1", ""), d("default", key)]))
            key = exempt
        self._rate_keys[rl.bucket] = key
        return key

    def response_headers(self, p: ir.Policy) -> list[Directive]:
        out: list[Directive] = []
        if p.allowed_methods:
            out.append(d("more_set_headers", R("-s"), 405, Text("Allow: " + ", ".join(p.allowed_methods))))
        return out + header_directives(p.response_headers)

    def _waf_location(self, p: ir.Policy) -> list[Directive]:
        w = p.waf
        if not self.waf:
            return []
        if w is None or w.mode == "Off":
            return [d("modsecurity", R("off"))]
        rules = [
            f'SecRuleEngine {"On" if w.mode == "Block" else "DetectionOnly"}',
            f'SecAction "id:{WAF_RULE_BASE},phase:1,pass,nolog,t:none,'
            f'setvar:tx.paranoia_level={w.paranoia},setvar:tx.executing_paranoia_level={w.paranoia},'
            f'setvar:tx.inbound_anomaly_score_threshold={w.threshold}"',
            *modsec_request_policy(w.methods, w.uninspected_types, w.body_limit),
        ]
        rule_id = WAF_RULE_BASE + 1
        for ex in w.exclusions:
            if ex.paths:
                rx = path_regex(ex.paths)
                if ex.rule_ids and (ex.args or ex.headers):
                    ctls = [f"ctl:ruleRemoveTargetById={i};ARGS:{a}" for i in ex.rule_ids for a in ex.args]
                    ctls += [f"ctl:ruleRemoveTargetById={i};REQUEST_HEADERS:{h}" for i in ex.rule_ids
                             for h in ex.headers]
                elif ex.rule_ids:
                    ctls = [f"ctl:ruleRemoveById={i}" for i in ex.rule_ids]
                else:
                    ctls = ["ctl:ruleEngine=Off"]
                # normalizePath: ModSecurity decodes the path but keeps dot segments, so
                # /upload/../admin would otherwise match /upload while nginx serves /admin.
                rules.append(f'SecRule REQUEST_FILENAME "@rx {rx}" "id:{rule_id},phase:1,pass,nolog,t:none,'
                             't:normalizePath,' + ",".join(ctls) + '"')
                rule_id += 1
            elif ex.args or ex.headers:
                for i in ex.rule_ids:
                    targets = [f"!ARGS:{a}" for a in ex.args] + [f"!REQUEST_HEADERS:{h}" for h in ex.headers]
                    rules.append(f'SecRuleUpdateTargetById {i} "{"|".join(targets)}"')
            else:
                rules.append("SecRuleRemoveById " + " ".join(str(i) for i in ex.rule_ids))
        # Every rules string must end with a newline: without it a SecRuleUpdateTargetById breaks
        # the next rule libmodsecurity parses.
        # "cap": nginx has no body limit here, so a 413 is the WAF's (decision `waf-body-limit`).
        mark = ("cap" if p.max_body_bytes == 0 else "on") if w.mode == "Block" else ""
        return [d("modsecurity", R("on")), d("set", R("$wg_waf"), R(mark) if mark else ""),
                d("modsecurity_rules", Lines("\n".join(rules) + "\n"))]

    # --- direct responses --------------------------------------------------------------------------

    def direct_location(self, pid: int, index: int, path: str) -> Directive:
        """The internal location answering direct response `index` of policy `pid`."""
        return Directive("location", (R("="), path), [d("internal"), *self.direct(pid, index)])

    def direct(self, pid: int, index: int) -> list[Directive]:
        """What answers direct response `index` of policy `pid`: its location's whole body, so
        only where that location serves nothing else."""
        p = self.policies[pid]
        resp = p.direct[index]
        body: list[Directive] = [d("default_type", resp.content_type)]
        body += self.response_headers(p)
        if self.waf:
            body.append(d("modsecurity", R("off")))
        body.append(d("set", R("$wg_decision"), "direct-response"))
        body += self.checks(pid, allowlist=False)
        key = (pid, index)
        if key not in self._answers:  # long bodies become maps: once per Gateway, not per server
            self._answers[key] = self._body(resp.body)
        body.append(d("return", resp.status, self._answers[key]))
        return body

    def _body(self, text: str) -> Arg:
        chunks: list[str] = []
        cur: list[str] = []
        size = 0
        for ch in text:
            cost = 12 if ch == "$" else 2 if ch in '\\"\n\r\t' else len(ch.encode())
            if size + cost > _CHUNK:
                chunks.append("".join(cur))
                cur, size = [], 0
            cur.append(ch)
            size += cost
        chunks.append("".join(cur))
        if len(chunks) == 1:
            return Body(chunks[0])
        parts: list[Raw | str] = []
        for chunk in chunks:
            var = f"wg_b{self._bodies}"
            self._bodies += 1
            self.http.append(Directive("map", (R("$host"), R("$" + var)), [d("default", Body(chunk))]))
            parts.append(R("${" + var + "}"))
        return Expr(tuple(parts))
