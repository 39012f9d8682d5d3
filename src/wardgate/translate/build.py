"""Assemble one Gateway's IR: upstreams, actions, and ordered matches per virtual host."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from wardgate import ir
from wardgate.errors import Problem
from wardgate.keys import ObjectKey
from wardgate.model.compat import SslRedirect
from wardgate.model.gatewayapi import (
    GRPCRoute,
    GRPCRouteMatch,
    GRPCRouteRule,
    HTTPHeaderFilter,
    HTTPRoute,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRule,
    duration_seconds,
)
from wardgate.translate.backendtls import PolicyResult
from wardgate.translate.compat import (
    HOST_URI,
    LOCATION,
    RuleCompat,
    ir_path,
    is_compat_ref,
    normalize_prefix,
    path_rank,
    redirect_rank,
    rule_compat,
    slash_redirect,
)
from wardgate.translate.gateways import GatewayPlan, ListenerPlan, certificates_for
from wardgate.translate.hostnames import covering_names, specificity
from wardgate.translate.hostnames import owner as owner_of
from wardgate.translate.index import Index, Read
from wardgate.translate.routes import Attachment, Backend, BackendError, Route, resolve_backend, speaks_grpc

# sessionPersistence without sessionName (the name is implementation-specific).
DEFAULT_SESSION_NAME = "wg-session"
# The statuses nginx's proxy_next_upstream can retry on.
RETRY_CODES = frozenset({500, 502, 503, 504, 403, 404, 429})
SUPPORTED_FILTERS = {"RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite",
                     "RequestMirror", "CORS"}


def header_ops(f: HTTPHeaderFilter | None) -> ir.HeaderOps:
    if f is None:
        return ir.HeaderOps()
    return ir.HeaderOps(
        set=tuple((h.name, h.value) for h in f.set),
        add=tuple((h.name, h.value) for h in f.add),
        remove=tuple(f.remove),
    )


UpstreamKey = tuple[str, str, int, bool]  # (namespace, Service, port, without TLS verification)
RuleKey = tuple[str, str, str, int]  # (kind, namespace, name, rule): an HTTPRoute and a GRPCRoute may share a name


@dataclass
class RuleMemo:
    """What building one rule produced, and what it read: reused by the next build of the Gateway
    when the route is the same object, the plan is equal and every read sees the same objects,
    so an edit to one route builds that route's actions only (1,000 routes: most of a build)."""

    route: Route
    reads: list[Read]
    actions: list[ir.Action]  # with the ids and upstream names of the build that made them
    per_match: list[int]  # action ids, per match
    upstreams: list[tuple[UpstreamKey, ir.Upstream]]  # every upstream the rule used, first use first
    policies: dict[ObjectKey, PolicyResult]
    problems: list[Problem]


@dataclass
class VhostMemo:
    """A virtual host's ordered matches and what they were made of (GatewayBuilder._vhost_matches)."""

    routes: list[tuple[Route, tuple[int, int]]]  # each attached route (the object) and its host rank
    ids: tuple[tuple[int, ...], ...]  # their rules' action ids
    matches: list[ir.Match]


@dataclass
class GatewayBuilder:
    plan: GatewayPlan
    index: Index
    problems: list[Problem] = field(default_factory=list)
    upstreams: dict[UpstreamKey, ir.Upstream] = field(default_factory=dict)
    # BackendTLSPolicies this Gateway's routes reach, for their ancestor status.
    policies: dict[ObjectKey, PolicyResult] = field(default_factory=dict)
    actions: list[ir.Action] = field(default_factory=list)
    # The index reads of this build (the log `index` records into), and the last build's rules
    # with a check that its reads still see the same objects: both or neither.
    reads: list[Read] | None = None
    memo: dict[RuleKey, RuleMemo] = field(default_factory=dict)
    unchanged: Callable[[list[Read]], bool] | None = None
    rules: dict[RuleKey, RuleMemo] = field(default_factory=dict)
    # The same for virtual hosts, keyed by (listener, hostname).
    vhost_memo: dict[tuple[str, str], VhostMemo] = field(default_factory=dict)
    vhosts: dict[tuple[str, str], VhostMemo] = field(default_factory=dict)
    # What the rule being built uses (RuleMemo.upstreams, .policies).
    _used: list[tuple[UpstreamKey, ir.Upstream]] = field(default_factory=list)
    _used_policies: dict[ObjectKey, PolicyResult] = field(default_factory=dict)
    _compat: dict[RuleKey, RuleCompat] = field(default_factory=dict)
    # (namespace, name, rule, match) -> the action of an IngressNginx path's 301 to itself.
    _slash_redirects: dict[tuple[str, str, int, int], int] = field(default_factory=dict)

    def compat_of(self, route: Route, r: int) -> RuleCompat:
        """The IngressNginxCompat filter of a rule (of a GRPCRoute: its backendTLS only)."""
        key = (route.kind, route.namespace, route.name, r)
        found = self._compat.get(key)
        if found is None:
            found = self._compat[key] = rule_compat(route.namespace, route.spec.rules[r], f"spec.rules[{r}]",
                                                    self.index)
        return found

    def _upstream(self, b: Backend, unverified_tls: bool = False) -> str | None:
        """The upstream for a backend; None when its BackendTLSPolicy is invalid. `unverified_tls`
        (IngressNginxCompat backendTLS): TLS without checks, unless a BackendTLSPolicy verifies
        it; an upstream of its own, so TLS and plain connections never share a keepalive pool."""
        if b.policy is not None:
            self.policies[b.policy.policy.key] = b.policy
            self._used_policies[b.policy.policy.key] = b.policy
            if b.tls is None:
                return None
        unverified = unverified_tls and b.tls is None
        key = (b.namespace, b.service, b.port, unverified)
        up = self.upstreams.get(key)
        if up is None:
            tls = replace(b.tls, client_certificate=self.plan.backend_client_certificate) if b.tls else None
            if unverified:
                tls = ir.UpstreamTLS("", client_certificate=self.plan.backend_client_certificate, verify=False)
            up = ir.Upstream(f"wg_u{len(self.upstreams)}", b.endpoints, b.protocol, tls, b.service, b.port)
            self.upstreams[key] = up
        self._used.append((key, up))
        return up.name

    def _warn(self, route: Route, path: str, message: str) -> None:
        self.problems.append(Problem(message, route.origin, route.kind, route.namespace, route.name, path))

    def _action(self, route: Route, r: int, rule: HTTPRouteRule | GRPCRouteRule,
                match: HTTPRouteMatch | GRPCRouteMatch) -> ir.Action:
        compat = self.compat_of(route, r)
        grpc = speaks_grpc(route, compat)
        src = ir.RouteRef(route.namespace, route.name, r, rule.name, route.kind)
        base = f"spec.rules[{r}]"
        filters: list[HTTPRouteFilter] = list(rule.filters)
        if len(rule.backend_refs) == 1:
            filters += rule.backend_refs[0].filters  # one backend: its filters are the rule's
        for i, ref in enumerate(rule.backend_refs if len(rule.backend_refs) > 1 else []):
            for j, flt in enumerate(ref.filters):
                if flt.type not in ("RequestHeaderModifier", "ResponseHeaderModifier"):
                    self._warn(route, f"{base}.backendRefs[{i}].filters[{j}]",
                               f"filter type {flt.type} is not supported on a backendRef; the rule answers 500")
                    return ir.Action(len(self.actions), src, direct_status=500)
        req, resp = ir.HeaderOps(), ir.HeaderOps()
        redirect: ir.Redirect | None = None
        rewrite: ir.Rewrite | None = None
        mirrors: list[ir.Mirror] = []
        cors: ir.Cors | None = None
        if compat.error is not None:
            self._warn(route, compat.error[0], compat.error[1] + "; the rule answers 500")
            return ir.Action(len(self.actions), src, direct_status=500)
        path = ir_path(match.path, compat.nginx_paths) if isinstance(match, HTTPRouteMatch) else None
        prefix = path.value if path is not None and path.type == "PathPrefix" else None
        for i, flt in enumerate(filters):
            where = f"{base}.filters[{i}]"
            if flt.type == "ExtensionRef" and flt.extension_ref and is_compat_ref(flt.extension_ref.group,
                                                                                 flt.extension_ref.kind):
                continue  # IngressNginxCompat: read by compat_of
            if flt.type not in SUPPORTED_FILTERS:
                self._warn(route, where, f"filter type {flt.type} is not supported; the rule answers 500")
                return ir.Action(len(self.actions), src, direct_status=500)
            modifier = flt.request_redirect or flt.url_rewrite
            if modifier and modifier.path and modifier.path.type == "ReplacePrefixMatch" and prefix is None:
                field = "requestRedirect" if flt.request_redirect else "urlRewrite"
                hint = " (with pathMatching: IngressNginx, rewriteTarget replaces paths)" if compat.nginx_paths else ""
                self._warn(route, f"{where}.{field}.path",
                           f"ReplacePrefixMatch needs a PathPrefix match{hint}; the rule answers 500")
                return ir.Action(len(self.actions), src, direct_status=500)
            if flt.type == "RequestHeaderModifier":
                req = req + header_ops(flt.request_header_modifier)
            elif flt.type == "ResponseHeaderModifier":
                resp = resp + header_ops(flt.response_header_modifier)
            elif flt.type == "RequestRedirect" and flt.request_redirect is not None:
                rd = flt.request_redirect
                redirect = ir.Redirect(rd.status_code, rd.scheme, rd.hostname, rd.port,
                                       rd.path.type if rd.path else None, rd.path.value if rd.path else None,
                                       prefix)
            elif flt.type == "URLRewrite" and flt.url_rewrite is not None:
                rw = flt.url_rewrite
                rewrite = ir.Rewrite(rw.hostname, rw.path.type if rw.path else None,
                                     rw.path.value if rw.path else None, prefix)
            elif flt.type == "CORS" and flt.cors is not None:
                c = flt.cors
                cors = ir.Cors(tuple(c.allow_origins), tuple(c.allow_methods), tuple(c.allow_headers),
                               tuple(c.expose_headers), c.allow_credentials, c.max_age)
            elif flt.type == "RequestMirror" and flt.request_mirror is not None:
                m = flt.request_mirror
                res = resolve_backend(m.backend_ref, route, self.index, f"{where}.requestMirror.backendRef",
                                      grpc=grpc)
                upstream = self._upstream(res) if isinstance(res, Backend) else None
                if upstream is not None:
                    pct = 100.0
                    if m.percent is not None:
                        pct = float(m.percent)
                    elif m.fraction is not None:
                        pct = 100.0 * m.fraction.numerator / m.fraction.denominator
                    mirrors.append(ir.Mirror(upstream, pct))
        spec = compat.spec
        if spec is not None and (spec.redirect is not None or spec.ssl_redirect is not None):
            if redirect is not None:
                field = "redirect" if spec.redirect is not None else "sslRedirect"
                self._warn(route, base, f"a RequestRedirect and an IngressNginxCompat {field} can't be used "
                                        "together; the rule answers 500")
                return ir.Action(len(self.actions), src, direct_status=500)
            if spec.redirect is not None and spec.redirect.hostname is not None:
                redirect = ir.Redirect(spec.redirect.status_code, hostname=spec.redirect.hostname,
                                       path_type=HOST_URI, forwarded=spec.redirect.forwarded_headers)
            elif spec.redirect is not None:
                redirect = ir.Redirect(spec.redirect.status_code, path_type=LOCATION,
                                       path_value=spec.redirect.location)
        ssl = spec.ssl_redirect if spec is not None else None
        not_found = spec is not None and spec.not_found
        if not_found and redirect is not None:
            self._warn(route, base, "a RequestRedirect and an IngressNginxCompat notFound can't be used together; "
                                    "the rule answers 500")
            return ir.Action(len(self.actions), src, direct_status=500)
        if not_found and rule.backend_refs:
            self._warn(route, f"{base}.backendRefs", "not used: the rule's IngressNginxCompat answers 404 (notFound)")
        if not_found:
            return ir.Action(len(self.actions), src, response_headers=resp, cors=cors, not_found=True, grpc=grpc,
                             ssl_redirect=_ssl(ssl))
        target = compat.spec.rewrite_target if compat.spec is not None else None
        if target is not None and path is not None and redirect is None:  # nginx: `return` comes first
            if rewrite is not None and rewrite.path_type is not None:
                self._warn(route, base, "an IngressNginxCompat rewriteTarget can't be combined with a URLRewrite of "
                                        "the path; the rule answers 500")
                return ir.Action(len(self.actions), src, direct_status=500)
            rewrite = ir.Rewrite(rewrite.hostname if rewrite else None, "NginxRewrite", target, regex=path)
        backends: list[ir.WeightedBackend] = []
        for i, ref in enumerate(rule.backend_refs):
            if ref.weight == 0:
                continue
            res = resolve_backend(ref, route, self.index, f"{base}.backendRefs[{i}]", grpc=grpc)
            name = self._upstream(res, compat.unverified_tls) if isinstance(res, Backend) else None
            if isinstance(res, BackendError):
                self._warn(route, res.field, res.detail)
            elif name is None and res.policy is not None:
                self._warn(route, f"{base}.backendRefs[{i}]",
                           f"BackendTLSPolicy {res.policy.policy.ref()} is invalid ({res.policy.message}); "
                           "the backend is not used")
            own_req, own_resp = ir.HeaderOps(), ir.HeaderOps()
            if len(rule.backend_refs) > 1:
                for flt in ref.filters:
                    own_req = own_req + header_ops(flt.request_header_modifier)
                    own_resp = own_resp + header_ops(flt.response_header_modifier)
            backends.append(ir.WeightedBackend(name, ref.weight, own_req, own_resp))
        by_name = {u.name: u.tls for u in self.upstreams.values()}
        if len({by_name[b.upstream] for b in backends if b.upstream}) > 1:
            # One location speaks to all of them: plain HTTP or TLS, verified one way.
            self._warn(route, f"{base}.backendRefs", "the backends of one rule must all be reached the same way "
                                                     "(plain, or TLS with the same BackendTLSPolicy settings); "
                                                     "the rule answers 500")
            return ir.Action(len(self.actions), src, direct_status=500)
        direct = None
        if redirect is None and not any(b.upstream for b in backends):
            # No usable backend: the HTTPRoute spec asks for a 500, GRPCRoute's for UNAVAILABLE,
            # which gRPC clients read from an HTTP 503.
            direct = 503 if grpc else 500
        timeouts = rule.timeouts if isinstance(rule, HTTPRouteRule) else None
        retry = None
        if isinstance(rule, HTTPRouteRule) and rule.retry is not None:
            codes = tuple(c for c in rule.retry.codes if c in RETRY_CODES)
            dropped = [c for c in rule.retry.codes if c not in RETRY_CODES]
            if dropped:
                self._warn(route, f"{base}.retry.codes", f"nginx can't retry on {dropped}; retried on "
                                                         f"{sorted(RETRY_CODES)} and connection errors only")
            if rule.retry.backoff:
                self._warn(route, f"{base}.retry.backoff", "backoff is not supported: retries are immediate")
            attempts = 1 if rule.retry.attempts is None else rule.retry.attempts
            retry = ir.Retry(codes, attempts)
        session = None
        if isinstance(rule, HTTPRouteRule) and rule.session_persistence is not None and backends:
            session = self._session(route, base, rule)
        return ir.Action(
            len(self.actions), src, tuple(backends), req, resp, redirect, rewrite, tuple(mirrors), cors=cors,
            retry=retry, session=session,
            direct_status=direct,
            # None: not set (nginx's defaults); 0: disabled.
            request_timeout_s=duration_seconds(timeouts.request) if timeouts and timeouts.request else None,
            backend_timeout_s=duration_seconds(timeouts.backend_request)
            if timeouts and timeouts.backend_request else None,
            grpc=grpc,
            ssl_redirect=_ssl(ssl),
        )

    def _session(self, route: Route, base: str, rule: HTTPRouteRule) -> ir.SessionPersistence:
        """GEP-1619 on nginx: the cookie's Path is the rule's path (what ingress-nginx did with
        the Ingress path); timeouts only as far as a cookie's Max-Age carries them."""
        sp = rule.session_persistence
        assert sp is not None
        where = f"{base}.sessionPersistence"
        if sp.idle_timeout:
            self._warn(route, f"{where}.idleTimeout", "idleTimeout is not supported: sessions end with the "
                                                      "cookie (or header) only")
        permanent = sp.cookie_config is not None and sp.cookie_config.lifetime_type == "Permanent"
        max_age = None
        if sp.absolute_timeout and sp.type == "Cookie" and permanent:
            max_age = max(1, int(duration_seconds(sp.absolute_timeout)))
        elif sp.absolute_timeout:
            self._warn(route, f"{where}.absoluteTimeout",
                       "absoluteTimeout is only carried as the Max-Age of a Permanent cookie (cookieConfig."
                       "lifetimeType: Permanent); here it is not enforced")
        return ir.SessionPersistence(sp.session_name or DEFAULT_SESSION_NAME, sp.type, cookie_path(rule.matches),
                                     max_age)

    def rule_actions(self, route: Route, r: int) -> list[int]:
        """Action ids for each match of a rule, shared across every vhost the rule serves."""
        key = (route.kind, route.namespace, route.name, r)
        done = self.rules.get(key)
        if done is not None:
            return done.per_match
        old = self.memo.get(key)
        if (old is not None and old.route is route and not uses_compat(route.spec.rules[r])
                and self.unchanged is not None and self.unchanged(old.reads)):
            done = self._replay(old)
        else:
            done = self._build_rule(route, r)
        self.rules[key] = done
        return done.per_match

    def _build_rule(self, route: Route, r: int) -> RuleMemo:
        reads_from, actions_from, problems_from = len(self.reads or ()), len(self.actions), len(self.problems)
        self._used, self._used_policies = [], {}
        rule = route.spec.rules[r]
        compat = self.compat_of(route, r)
        # A path rewrite depends on the matched path: one action per match.
        prefix_dependent = any(
            (f.url_rewrite and f.url_rewrite.path and f.url_rewrite.path.type == "ReplacePrefixMatch")
            or (f.request_redirect and f.request_redirect.path
                and f.request_redirect.path.type == "ReplacePrefixMatch")
            for f in rule.filters
        ) or (compat.spec is not None and compat.spec.rewrite_target is not None)
        ids: list[int] = []
        matches: Sequence[HTTPRouteMatch | GRPCRouteMatch] = rule.matches
        for m, match in enumerate(matches):
            if m == 0 or prefix_dependent:
                action = self._action(route, r, rule, match)
                self.actions.append(action)
            ids.append(action.id)
        return RuleMemo(route, list(self.reads[reads_from:]) if self.reads is not None else [],
                        self.actions[actions_from:], ids, self._used, self._used_policies,
                        self.problems[problems_from:])

    def _replay(self, old: RuleMemo) -> RuleMemo:
        """A memo's actions as if built now: upstreams registered in the same order (named by
        this build's count), action ids from this build's count; unchanged objects are reused."""
        names: dict[str, str] = {}
        used: list[tuple[UpstreamKey, ir.Upstream]] = []
        for key, up in old.upstreams:
            now = self.upstreams.get(key)
            if now is None:
                name = f"wg_u{len(self.upstreams)}"
                now = self.upstreams[key] = up if up.name == name else replace(up, name=name)
            names[up.name] = now.name
            used.append((key, now))
        renamed = any(a != b for a, b in names.items())
        ids: dict[int, int] = {}
        actions: list[ir.Action] = []
        for a in old.actions:
            new_id = len(self.actions)
            ids[a.id] = new_id
            if renamed:
                a = replace(a, backends=tuple(replace(b, upstream=names.get(b.upstream, b.upstream))
                                               if b.upstream else b for b in a.backends),
                            mirrors=tuple(replace(m, upstream=names.get(m.upstream, m.upstream)) for m in a.mirrors))
            if a.id != new_id:
                a = replace(a, id=new_id)
            self.actions.append(a)
            actions.append(a)
        self.policies.update(old.policies)
        self.problems.extend(old.problems)
        if self.reads is not None:
            self.reads.extend(old.reads)  # the Gateway's memo checks them too
        return RuleMemo(old.route, old.reads, actions, [ids[i] for i in old.per_match], used, old.policies,
                        old.problems)

    def build(self, attachments: list[Attachment[Route]]) -> ir.Gateway:
        gw = self.plan.gateway
        # listener -> effective route hostname -> attachments, so each vhost looks up its routes
        # by name (O(labels)) instead of scanning every route (quadratic at 10k hostnames).
        by_listener: dict[str, dict[str, list[Attachment[Route]]]] = {}
        for a in attachments:
            names = by_listener.setdefault(a.listener.name, {})
            for host in a.hostnames:
                names.setdefault(host, []).append(a)
        ports: dict[int, list[ListenerPlan]] = {}
        for p in self.plan.listeners:
            if p.programmable and p.listener.protocol != "TLS":  # TLS passthrough: translate/passthrough.py
                ports.setdefault(p.listener.port, []).append(p)
        grpc_listeners = {a.listener.name for a in attachments if isinstance(a.route, GRPCRoute)}
        out_ports: list[ir.Port] = []
        for port, listeners in sorted(ports.items()):
            hosts: set[str] = {p.listener.hostname or "" for p in listeners}
            for p in listeners:
                hosts.update(by_listener.get(p.name, {}))
            vhosts: list[ir.VirtualHost] = []
            for host in sorted(hosts, key=lambda h: (specificity(h), h)):
                i = owner_of([p.listener.hostname or "" for p in listeners], host)
                if i is None:
                    continue
                owner = listeners[i]
                matches = self._vhost_matches(owner.name, host, by_listener.get(owner.name, {}))
                https = owner.listener.protocol == "HTTPS"
                vhosts.append(ir.VirtualHost(host, tuple(matches), certificates_for(owner.certificates, host),
                                             owner.name, tls=owner.tls, hsts=ir.DEFAULT_HSTS if https else ""))
            protocol = listeners[0].listener.protocol
            default_certs = next((certificates_for(p.certificates, "") for p in listeners if not p.listener.hostname),
                                 ())
            # Client validation is configured per port, so every listener on it has the same.
            validation = next((p.client_validation for p in listeners if p.client_validation), None)
            h2c = protocol == "HTTP" and any(p.name in grpc_listeners for p in listeners)
            if h2c:
                self._h2c_warning(port, listeners, by_listener)
            out_ports.append(ir.Port(port, "HTTPS" if protocol == "HTTPS" else "HTTP", tuple(vhosts),
                                     default_certs,
                                     tuple((p.listener.hostname or "", p.name) for p in listeners),
                                     validation, http2=h2c, tls_min_version=listeners[0].tls.min_version))
        return ir.Gateway(gw.namespace, gw.name, tuple(out_ports), tuple(self.upstreams.values()),
                          tuple(self.actions))

    def _slash_redirect(self, route: Route, r: int, m: int, target: str) -> int:
        """The action answering an IngressNginx path without its trailing slash: 301 to it, with
        the query string, as nginx does for a location ending in `/` that proxies."""
        key = (route.namespace, route.name, r, m)
        if key not in self._slash_redirects:
            src = ir.RouteRef(route.namespace, route.name, r, route.spec.rules[r].name, route.kind)
            action = ir.Action(len(self.actions), src, redirect=ir.Redirect(301, path_type="ReplaceFullPath",
                                                                             path_value=target))
            self.actions.append(action)
            self._slash_redirects[key] = action.id
        return self._slash_redirects[key]

    def _h2c_warning(self, port: int, listeners: list[ListenerPlan],
                     by_listener: dict[str, dict[str, list[Attachment[Route]]]]) -> None:
        """nginx 1.22 serves cleartext HTTP/2 only with prior knowledge and then nothing else on
        that port: say so when HTTPRoutes share the port with GRPCRoutes."""
        http_routes = sorted({f"{a.route.namespace}/{a.route.name}" for p in listeners
                              for atts in by_listener.get(p.name, {}).values() for a in atts
                              if isinstance(a.route, HTTPRoute)})
        if http_routes:
            gw = self.plan.gateway
            self.problems.append(Problem(
                f"port {port} serves GRPCRoutes, so it speaks cleartext HTTP/2 only (h2c with prior "
                f"knowledge): HTTP/1.1 clients of the HTTPRoutes on it ({', '.join(http_routes[:5])}"
                f"{', ...' if len(http_routes) > 5 else ''}) can't connect; give gRPC its own port or an "
                "HTTPS listener", gw.origin, "Gateway", gw.namespace, gw.name, "spec.listeners"))

    def _vhost_matches(self, listener: str, host: str, by_name: dict[str, list[Attachment[Route]]]
                       ) -> list[ir.Match]:
        ranked: dict[int, tuple[tuple[int, int], Attachment[Route]]] = {}
        for name in covering_names(host):  # most specific first: the first rank seen is the best
            for a in by_name.get(name, []):
                ranked.setdefault(id(a), (specificity(name), a))
        # What the matches are made of: the routes (the same objects), their rank for this host
        # and their rules' actions. Unchanged since the last build: its very Match objects.
        routes = [(a.route, rank) for rank, a in ranked.values()]
        ids = tuple(tuple(self.rule_actions(route, r)) for route, _ in routes for r in range(len(route.spec.rules)))
        old = self.vhost_memo.get((listener, host))
        # Not with an IngressNginxCompat rule: its paths (pathMatching) and its slash-redirect
        # actions (made here, not in rule_actions) come from the compat object, not the route.
        if old is not None and not any(uses_compat(rule) for route, _ in routes for rule in route.spec.rules) \
                and old.ids == ids and len(old.routes) == len(routes) and all(
                x[0] is y[0] and x[1] == y[1] for x, y in zip(old.routes, routes, strict=True)):
            self.vhosts[(listener, host)] = old
            return old.matches
        matches = self._rank_matches(ranked)
        self.vhosts[(listener, host)] = VhostMemo(routes, ids, matches)
        return matches

    def _rank_matches(self, ranked: dict[int, tuple[tuple[int, int], Attachment[Route]]]) -> list[ir.Match]:
        keyed: list[tuple[tuple[object, ...], ir.Match]] = []
        for host_rank, a in ranked.values():
            route = a.route
            age = (route.metadata.creation_timestamp or "", route.seq)
            if isinstance(route, GRPCRoute):
                keyed += self._grpc_matches(route, host_rank, age)
                continue
            for r, rule in enumerate(route.spec.rules):
                action_ids = self.rule_actions(route, r)
                compat = self.compat_of(route, r)
                for m, match in enumerate(rule.matches):
                    path = ir_path(match.path, compat.nginx_paths)
                    rest = (0 if match.method else 1, -len(match.headers), -len(match.query_params), age,
                            route.namespace, route.name, r, m)
                    headers = tuple(ir.HeaderMatch(h.name, h.value, h.type) for h in match.headers)
                    query = tuple(ir.QueryMatch(q.name, q.value, q.type) for q in match.query_params)
                    keyed.append(((host_rank, path_rank(path), *rest),
                                  ir.Match(path, action_ids[m], 0, match.method, headers, query)))
                    target = slash_redirect(path) if compat.nginx_paths else None
                    if target is not None:
                        keyed.append(((host_rank, redirect_rank(target), *rest), ir.Match(
                            ir.PathMatch("Exact", target[:-1]), self._slash_redirect(route, r, m, target), 0,
                            match.method, headers, query)))
        keyed.sort(key=lambda kv: kv[0])
        out: list[ir.Match] = []
        seen: set[tuple[object, ...]] = set()
        for i, (_key, im) in enumerate(keyed):
            # The same route can reach a vhost through two hostnames; keep its first copy.
            ident = (im.path, im.method, im.headers, im.query, im.action)
            if ident in seen:
                continue
            seen.add(ident)
            out.append(ir.Match(im.path, im.action, i, im.method, im.headers, im.query))
        return out

    def _grpc_matches(self, route: GRPCRoute, host_rank: tuple[int, int],
                      age: tuple[str, int]) -> list[tuple[tuple[object, ...], ir.Match]]:
        """GRPCRoute precedence (after the hostname): more characters in the service, then in the
        method, then more header matches; then the older route and the rule order."""
        out: list[tuple[tuple[object, ...], ir.Match]] = []
        for r, rule in enumerate(route.spec.rules):
            action_ids = self.rule_actions(route, r)
            for m, match in enumerate(rule.matches):
                path, service, method = grpc_path(match)
                # HTTPRoute keys rank the path kind second; 3 keeps a gRPC key comparable with them.
                key = (host_rank, (3, -service, -method), 1, -len(match.headers), 0, age,
                       route.namespace, route.name, r, m)
                out.append((key, ir.Match(path, action_ids[m], 0, None,
                                          tuple(ir.HeaderMatch(h.name, h.value, h.type) for h in match.headers))))
        return out


def uses_compat(rule: HTTPRouteRule | GRPCRouteRule) -> bool:
    """Whether a rule names an IngressNginxCompat. Such a rule is never reused from a memo: its
    build depends on the compat object (a read the memo does record) but also adds what the memo
    does not replay (slash-redirect actions, made while ranking matches, with ids in between the
    rules'; paths the vhost memo does not check). Correctness first: these rules build afresh."""
    return any(f.type == "ExtensionRef" and f.extension_ref is not None
               and is_compat_ref(f.extension_ref.group, f.extension_ref.kind) for f in rule.filters)


def cookie_path(matches: Sequence[HTTPRouteMatch]) -> str:
    """The Path of a session cookie for a rule: its path match (a regex's literal start up to its
    last '/'), or what its matches have in common, element by element."""
    paths = []
    for m in matches:
        value = m.path.value
        if m.path.type == "RegularExpression":
            literal = re.match(r"[^.^$*+?()\[\]{}|\\]*", value)
            value = literal.group(0) if literal else ""
            value = value[:value.rfind("/") + 1] if "/" in value else "/"
        # A cookie attribute ends at ';' (and some clients split at ','): stop before either.
        value = re.split(r"[;,\s]", value, maxsplit=1)[0]
        paths.append(normalize_prefix(value) if value.startswith("/") else "/")
    common = paths[0].split("/")
    for p in paths[1:]:
        parts = p.split("/")
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    return "/".join(common) or "/"


def grpc_path(match: GRPCRouteMatch) -> tuple[ir.PathMatch, int, int]:
    """The request path a gRPC match selects ("/service/method"), with the lengths of its service
    and method for precedence. Exact matches become exact or prefix paths (no regex to evaluate)."""
    mm = match.method
    if mm is None:
        return ir.PathMatch("PathPrefix", "/"), 0, 0
    service, method = len(mm.service or ""), len(mm.method or "")
    if mm.type == "Exact" and mm.service and mm.method:
        return ir.PathMatch("Exact", f"/{mm.service}/{mm.method}"), service, method
    if mm.type == "Exact" and mm.service:
        return ir.PathMatch("PathPrefix", f"/{mm.service}"), service, method
    return ir.PathMatch("RegularExpression", mm.path_regex()), service, method


def _ssl(spec: SslRedirect | None) -> ir.SslRedirect | None:
    return ir.SslRedirect(spec.status_code, spec.preserve_trailing_slash, spec.forwarded_headers) if spec else None
