"""migrate's policy annotations (ann_policy) and controller ConfigMap keys (configmap): values
read as ingress-nginx reads them, bad values reported (never raised), and the converted policies
checked on real nginx against the ingress-nginx behaviour the migration corpus records."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import GW, Backend, Gateway, examples, request
from policy_helpers import setup
from wardgate.migrate import ann_policy, catalog, configmap
from wardgate.migrate.ann_policy import DENIED, REJECTED, go_bool, go_cidrs, go_int, nginx_size
from wardgate.migrate.contrib import Contribution, Source
from wardgate.migrate.report import STATUSES, Finding
from wardgate.model import parse
from wardgate.sources.files import load_text

Backends = Callable[..., Backend]
OBJ = "Ingress shop/web"


def src(annotations: Mapping[str, str] | None = None, config: Mapping[str, str] | None = None,
        config_maps: Mapping[str, Mapping[str, str]] | None = None) -> Source:
    return Source("in.yaml", OBJ, "shop", "public", dict(annotations or {}), configmap.effective(config or {}),
                  dict(config_maps or {}))


def run(key: str, annotations: Mapping[str, str], **kw: Any) -> Contribution:
    """The catalog's handler for `key` on an Ingress with `annotations`."""
    entry = catalog.lookup(key)
    assert entry is not None and entry.handler is not None
    return entry.handler(key, annotations[key], src(annotations, **kw))


def one(c: Contribution, key: str) -> Finding:
    """The finding for annotation `key` (there is exactly one), checked for where it points."""
    found = [f for f in c.findings if f.item == key]
    assert len(found) == 1, c.findings
    f = found[0]
    assert (f.file, f.obj, f.ingress_class) == ("in.yaml", OBJ, "public")
    return f


# --- values ---------------------------------------------------------------------------------------


def test_values_are_read_like_go() -> None:
    assert [go_int(v) for v in ("5", "+5", "-1", " 5", "5.0", "", "0x10", "9" * 30)] == [5, 5, -1, None, None, None,
                                                                                      None, None]
    assert [go_bool(v) for v in ("true", "True", "1", "t", "yes", "on", "FALSE", "")] == [
        True, True, True, True, None, None, False, None]
    assert go_cidrs("10.0.0.0/8, 192.168.1.7 ,10.1.2.3/8") == ["10.0.0.0/8", "192.168.1.7/32"]
    assert go_cidrs("2001:db8::1") == ["2001:db8::1/128"]
    assert go_cidrs("10.0.0.0/8, nope") is None and go_cidrs("fe80::1%eth0") is None
    assert [nginx_size(v) for v in ("1m", "1M", "8k", "0", "2g", "100", "1mb", "1.5m", "-1")] == [
        2**20, 2**20, 8192, 0, 2 * 2**30, 100, None, None, None]
    assert [ann_policy.byte_quantity(n) for n in (0, 1024, 8 * 2**20, 1500)] == [0, "1Ki", "8Mi", 1500]


# --- rate limits --------------------------------------------------------------------------------


def test_limit_rps_default_burst_and_status() -> None:
    c = run("limit-rps", {"limit-rps": "2"})
    assert c.rate_limit == {"requests": 2, "unit": "Second", "burst": 10, "status": 503}
    f = one(c, "limit-rps")
    assert f.status == "converted-with-difference" and "Retry-After" in f.detail and "429" in f.detail


def test_limit_rpm_with_multiplier_status_code_and_exemptions() -> None:
    anns = {"limit-rpm": "6", "limit-burst-multiplier": "1", "limit-whitelist": "10.0.0.0/8"}
    c = run("limit-rpm", anns, config={"limit-req-status-code": "429"})
    assert c.rate_limit == {"requests": 6, "unit": "Minute", "burst": 6, "status": 429,
                            "exemptCIDRs": ["10.0.0.0/8"]}
    assert "nginx stored" not in one(c, "limit-rpm").detail  # 6r/m is exact in limit_req
    # 10r/m is 0.166 r/s in limit_req (whole requests per 1000 s): the finding says so.
    assert "0.166 requests/s" in one(run("limit-rpm", {"limit-rpm": "10"}), "limit-rpm").detail
    assert one(run("limit-burst-multiplier", anns), "limit-burst-multiplier").status == "exact"
    assert "10.0.0.0/8" in one(run("limit-whitelist", anns), "limit-whitelist").detail


def test_limit_rps_and_rpm_together_convert_the_lower_sustained_rate() -> None:
    anns = {"limit-rps": "5", "limit-rpm": "60"}  # 1/s sustained beats 5/s
    assert run("limit-rpm", anns).rate_limit["requests"] == 60
    rps = run("limit-rps", anns)
    assert rps.rate_limit == {} and one(rps, "limit-rps").status == "not-converted"
    anns = {"limit-rps": "1", "limit-rpm": "600"}
    assert run("limit-rps", anns).rate_limit["unit"] == "Second" and run("limit-rpm", anns).rate_limit == {}


@pytest.mark.parametrize(("anns", "config", "status", "words"), [
    ({"limit-rps": "ten"}, {}, "not-converted", REJECTED),
    ({"limit-rps": "5", "limit-whitelist": "10.0.0.0/33"}, {}, "not-converted", REJECTED),
    ({"limit-rps": "5", "limit-burst-multiplier": "-2"}, {}, "not-converted", "negative burst"),
    ({"limit-rps": "5"}, {"limit-req-status-code": "200"}, "not-converted", "400-599"),
    ({"limit-rps": "0"}, {}, "exact", "no limit"),
    ({"limit-rps": "-3"}, {}, "exact", "no limit"),
])
def test_limit_rps_bad_values(anns: dict[str, str], config: dict[str, str], status: str, words: str) -> None:
    c = run("limit-rps", anns, config=config)
    f = one(c, "limit-rps")
    assert (c.rate_limit, f.status) == ({}, status) and words in f.detail


def test_limit_companions() -> None:
    # An invalid multiplier falls back to 5, like ingress-nginx.
    anns = {"limit-rps": "2", "limit-burst-multiplier": "x"}
    assert run("limit-rps", anns).rate_limit["burst"] == 10
    assert "used the default 5" in one(run("limit-burst-multiplier", anns), "limit-burst-multiplier").detail
    assert "no effect" in one(run("limit-burst-multiplier", {"limit-burst-multiplier": "2"}),
                              "limit-burst-multiplier").detail
    # limit-allowlist is the key, limit-whitelist its alias: the key wins.
    anns = {"limit-rps": "2", "limit-allowlist": "10.0.0.0/8", "limit-whitelist": "192.168.0.0/16"}
    assert run("limit-rps", anns).rate_limit["exemptCIDRs"] == ["10.0.0.0/8"]
    assert "ignored" in one(run("limit-whitelist", anns), "limit-whitelist").detail
    assert one(run("limit-whitelist", {"limit-whitelist": "nope", "limit-rps": "1"}), "limit-whitelist").status \
        == "not-converted"
    c = run("limit-connections", {"limit-connections": "3", "limit-whitelist": "10.0.0.0/8"})
    assert c.security == {"concurrentRequests": {"limit": 3, "status": 503, "exemptCIDRs": ["10.0.0.0/8"]}}
    assert one(c, "limit-connections").status == "exact"
    c = run("limit-connections", {"limit-connections": "3"}, config={"limit-conn-status-code": "429"})
    assert c.security == {"concurrentRequests": {"limit": 3, "status": 429}}
    for anns, config in (({"limit-connections": "many"}, {}),
                         ({"limit-connections": "3"}, {"limit-conn-zone-variable": "$server_name"})):
        c = run("limit-connections", anns, config=config)
        assert c.security == {} and one(c, "limit-connections").status == "not-converted"


def test_redirecting_ingress_is_never_limited_or_refused() -> None:
    """nginx's `return` (permanent-/temporal-redirect) runs before limit_req and allow/deny."""
    for key in ("limit-rps", "limit-connections", "whitelist-source-range", "denylist-source-range"):
        value = "10.0.0.0/8" if "range" in key else "1"
        c = run(key, {key: value, "permanent-redirect": "https://elsewhere.example.com"})
        f = one(c, key)
        assert (c.security, c.rate_limit, f.status) == ({}, {}, "exact") and "permanent-redirect" in f.detail


# --- source ranges -----------------------------------------------------------------------------------


def test_allowlist_and_alias() -> None:
    c = run("whitelist-source-range", {"whitelist-source-range": "18.0.0.0/8, 56.0.0.0/8"})
    assert c.security == {"ipAccess": {"allow": ["18.0.0.0/8", "56.0.0.0/8"], "deny": []}}
    assert one(c, "whitelist-source-range").status == "exact"
    anns = {"allowlist-source-range": "10.0.0.0/8", "whitelist-source-range": "192.168.0.0/16"}
    assert run("allowlist-source-range", anns).security["ipAccess"]["allow"] == ["10.0.0.0/8"]
    assert "ignored" in one(run("whitelist-source-range", anns), "whitelist-source-range").detail


def test_deny_lines_come_first() -> None:
    # nginx writes deny lines before allow lines: an allowed range inside a denied one is denied.
    anns = {"denylist-source-range": "10.0.0.0/8", "allowlist-source-range": "10.1.0.0/16, 172.16.0.0/12"}
    assert run("denylist-source-range", anns).security["ipAccess"] == {
        "allow": ["172.16.0.0/12"], "deny": ["10.0.0.0/8"]}
    # Nothing left to allow: ingress-nginx's `deny all` refuses everyone.
    anns = {"denylist-source-range": "10.0.0.0/8", "allowlist-source-range": "10.1.0.0/16"}
    assert run("allowlist-source-range", anns).security["ipAccess"] == {
        "allow": [], "deny": ["0.0.0.0/0", "10.0.0.0/8", "::/0"]}


def test_source_range_replaces_the_configmap_list_and_keeps_its_other_list() -> None:
    config = {"whitelist-source-range": "10.0.0.0/8", "denylist-source-range": "10.9.0.0/16"}
    c = run("allowlist-source-range", {"allowlist-source-range": "192.168.0.0/16"}, config=config)
    assert c.security["ipAccess"] == {"allow": ["192.168.0.0/16"], "deny": ["10.9.0.0/16"]}
    assert "ConfigMap" in one(c, "allowlist-source-range").detail


def test_source_range_bad_values_and_rate_limit_order() -> None:
    for value in ("10.0.0.0/33", "", "everyone"):
        c = run("whitelist-source-range", {"whitelist-source-range": value})
        f = one(c, "whitelist-source-range")
        assert (c.security, f.status) == ({}, "not-converted") and DENIED in f.detail
    f = one(run("denylist-source-range", {"denylist-source-range": "1.2.3.4", "limit-rps": "1"}),
            "denylist-source-range")
    assert f.status == "converted-with-difference" and "limit_req runs before allow/deny" in f.detail


# --- CORS ----------------------------------------------------------------------------------------


def test_cors_defaults() -> None:
    c = run("enable-cors", {"enable-cors": "true"})
    assert (c.filters, c.security) == ([], {"ingressNginxCORS": {"allowOrigins": ["*"]}})
    assert one(c, "enable-cors").status == "exact"
    for value in ("false", "yes"):
        c = run("enable-cors", {"enable-cors": value})
        assert c.security == {} and one(c, "enable-cors").status == "exact"
    # Without enable-cors the options do nothing.
    f = one(run("cors-allow-origin", {"cors-allow-origin": "https://a.example"}), "cors-allow-origin")
    assert f.status == "exact" and "no effect" in f.detail


def test_cors_options_read_as_ingress_nginx_reads_them() -> None:
    anns = {"enable-cors": "true", "cors-allow-origin": "https://app.example.com, origin.example.com:8080, "
            "tauri://localhost:3000, https://*.example.org", "cors-allow-methods": "GET, POST",
            "cors-allow-credentials": "false", "cors-max-age": "600", "cors-expose-headers": "X-Total-Count",
            "cors-allow-headers": "X-A,X-B"}
    assert run("enable-cors", anns).security["ingressNginxCORS"] == {
        "allowOrigins": ["https://app.example.com", "tauri://localhost:3000", "https://*.example.org"],
        "allowMethods": "GET, POST", "allowHeaders": "X-A,X-B", "exposeHeaders": "X-Total-Count",
        "allowCredentials": False, "maxAge": 600}
    assert "skipped 'origin.example.com:8080'" in one(run("cors-allow-origin", anns), "cors-allow-origin").detail
    # Invalid values fall back to the defaults, silently in ingress-nginx; here the finding says so.
    anns = {"enable-cors": "true", "cors-allow-methods": "GET;DROP", "cors-max-age": "soon",
            "cors-allow-headers": "X-A\nX-B", "cors-allow-credentials": "maybe"}
    assert run("enable-cors", anns).security["ingressNginxCORS"] == {"allowOrigins": ["*"]}
    for key in ("cors-allow-methods", "cors-max-age", "cors-allow-headers", "cors-allow-credentials"):
        f = one(run(key, anns), key)
        assert f.status == "exact" and f.detail.startswith("invalid value"), key
    # An origin list ingress-nginx's validator refuses allows every origin there: so here too.
    anns = {"enable-cors": "true", "cors-allow-origin": "https://app.example.com/"}
    assert run("enable-cors", anns).security["ingressNginxCORS"]["allowOrigins"] == ["*"]
    assert "allowed every origin" in one(run("cors-allow-origin", anns), "cors-allow-origin").detail
    # No usable origin: CORS never switched on.
    anns = {"enable-cors": "true", "cors-allow-origin": "origin.example.com"}
    c = run("enable-cors", anns)
    assert c.security == {} and one(c, "enable-cors").status == "exact"
    # Preflights came before the IP lists in ingress-nginx.
    anns = {"enable-cors": "true", "whitelist-source-range": "10.0.0.0/8"}
    assert one(run("enable-cors", anns), "enable-cors").status == "converted-with-difference"


# --- custom headers, sizes --------------------------------------------------------------------------


def test_custom_headers() -> None:
    maps = {"shop/extra": {"X-A": "42", "X-B": "$remote_addr"}}
    config = {"global-allowed-response-headers": "X-A,X-B"}
    c = run("custom-headers", {"custom-headers": "shop/extra"}, config=config, config_maps=maps)
    assert c.filters == [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [
        {"name": "X-A", "value": "42"}, {"name": "X-B", "value": "$remote_addr"}]}}]
    assert one(c, "custom-headers").status == "exact"
    for anns, cfg, data, words in [
        ({"custom-headers": "shop/extra"}, {"global-allowed-response-headers": "X-A"}, maps, "X-B is not in"),
        ({"custom-headers": "shop/missing"}, config, maps, "not in the input"),
        ({"custom-headers": "extra"}, config, maps, "namespace/name"),
        ({"custom-headers": "shop/bad"}, {"global-allowed-response-headers": "X A"}, {"shop/bad": {"X A": "1"}},
         "invalid header"),
    ]:
        c = run("custom-headers", anns, config=cfg, config_maps=data)
        assert c.filters == [] and words in one(c, "custom-headers").detail


def test_body_sizes() -> None:
    assert run("proxy-body-size", {"proxy-body-size": "8m"}).security == {"requestLimits": {"maxBodySize": "8Mi"}}
    assert run("proxy-body-size", {"proxy-body-size": "0"}).security == {"requestLimits": {"maxBodySize": 0}}
    c = run("proxy-body-size", {"proxy-body-size": "lots"}, config={"proxy-body-size": "2m"})
    assert c.security == {"requestLimits": {"maxBodySize": "2Mi"}}
    assert "invalid value" in one(c, "proxy-body-size").detail
    assert run("client-body-buffer-size", {"client-body-buffer-size": "64k"}).security == {}


# --- ModSecurity -------------------------------------------------------------------------------------


def test_modsecurity_annotations() -> None:
    anns = {"enable-modsecurity": "true", "enable-owasp-core-rules": "true",
            "modsecurity-snippet": "# tuned\nSecRuleEngine On\nSecRuleRemoveById 920350 942100\n"
                                   "SecAuditEngine RelevantOnly\nSecRule ARGS \"@rx x\" \\\n  \"id:1,deny\"\n"}
    c = run("modsecurity-snippet", anns)
    assert c.security == {"waf": {"mode": "Block", "exclusions": [{"ruleIds": [920350, 942100]}]}}
    items = {f.item: f for f in c.findings}
    assert set(items) == {"modsecurity-snippet", "modsecurity-snippet line 4", "modsecurity-snippet line 5"}
    assert items["modsecurity-snippet line 5"].status == "not-converted" and "custom rule" in \
        items["modsecurity-snippet line 5"].detail
    # The recommended configuration runs DetectionOnly: so does the converted WAF.
    c = run("enable-modsecurity", {"enable-modsecurity": "true", "enable-owasp-core-rules": "true"})
    assert c.security == {"waf": {"mode": "DetectOnly"}}
    # Without CRS nothing blocks: no WAF, and the finding says why.
    c = run("enable-modsecurity", {"enable-modsecurity": "true"})
    assert c.security == {} and "no OWASP CRS" in one(c, "enable-modsecurity").detail
    # Switched on for every location in the ConfigMap, off for this Ingress.
    c = run("enable-modsecurity", {"enable-modsecurity": "false"},
            config={"enable-modsecurity": "true", "enable-owasp-modsecurity-crs": "true"})
    assert c.security == {"waf": {"mode": "Off"}}
    assert one(run("modsecurity-transaction-id", {"modsecurity-transaction-id": "$request_id"}),
               "modsecurity-transaction-id").status == "converted-with-difference"
    c = run("modsecurity-snippet", {"modsecurity-snippet": "SecRuleEngine On"})
    assert c.security == {} and "no effect without enable-modsecurity" in one(c, "modsecurity-snippet").detail


# --- the controller ConfigMap ------------------------------------------------------------------------


def cm(data: Mapping[str, str], maps: Mapping[str, Mapping[str, str]] | None = None) -> Contribution:
    source = Source("cm.yaml", "ConfigMap ingress-nginx/ingress-nginx-controller", "ingress-nginx", "public", {},
                    dict(data), dict(maps or {}))
    c = configmap.config_contributions(data, source)
    assert sorted(f.item for f in c.findings) == sorted(f"data.{k}" for k in data)
    return c


def test_configmap_defaults_only_remove_server() -> None:
    c = cm({})
    assert (c.client_traffic, c.security, c.findings) == ({}, {"responseHeaders": {"remove": ["Server"]}}, [])


def test_configmap_client_ip() -> None:
    c = cm({"use-forwarded-headers": "true"})
    assert c.client_traffic == {"clientIP": {"source": "XForwardedFor", "trustedCIDRs": ["0.0.0.0/0"]}}
    assert "narrow trustedCIDRs" in c.findings[0].detail
    c = cm({"use-forwarded-headers": "true", "compute-full-forwarded-for": "true", "proxy-real-ip-cidr": "10.0.0.0/8"})
    assert c.client_traffic == {"clientIP": {"source": "XForwardedFor", "trustedCIDRs": ["10.0.0.0/8"],
                                             "forwardedFor": "Append"}}
    c = cm({"use-forwarded-headers": "true", "forwarded-for-header": "CF-Connecting-IP"})
    assert c.client_traffic == {} and {f.status for f in c.findings} == {"not-converted"}
    assert cm({"use-proxy-protocol": "true"}).client_traffic == {"clientIP": {"source": "ProxyProtocol"}}


def test_configmap_gateway_policies() -> None:
    maps = {"ingress-nginx/add": {"X-Frame-Options": "DENY", "X-Served-By": "$hostname"},
            "ingress-nginx/set": {"X-Client": "$remote_addr"}}
    c = cm({"hsts": "true", "hsts-max-age": "600", "hsts-preload": "true", "proxy-body-size": "10m",
            "whitelist-source-range": "10.0.0.0/8", "block-cidrs": "192.0.2.0/24", "add-headers": "ingress-nginx/add",
            "proxy-set-headers": "ingress-nginx/set", "server-tokens": "true", "hide-headers": "X-Powered-By",
            "limit-req-status-code": "429", "worker-processes": "4", "some-typo": "1"}, maps)
    assert c.security == {
        "hsts": {"maxAge": 600},
        "requestLimits": {"maxBodySize": "10Mi"},
        "ipAccess": {"allow": ["10.0.0.0/8"]},
        "responseHeaders": {"set": [{"name": "X-Frame-Options", "value": "DENY"},
                                    {"name": "X-Served-By", "value": "$hostname"}], "remove": ["X-Powered-By"]},
        "requestHeaders": {"set": [{"name": "X-Client", "valueFrom": "ClientIP"}]},
    }
    by = {f.item: f for f in c.findings}
    assert by["data.hsts-preload"].status == "converted-with-difference"
    assert by["data.add-headers"].status == "converted-with-difference" and "$hostname" in by["data.add-headers"].detail
    assert by["data.block-cidrs"].status == "exact" and "no effect" in by["data.block-cidrs"].detail
    assert by["data.worker-processes"].status == "not-converted"
    assert by["data.some-typo"].status == "unknown"
    assert cm({"hsts": "false"}).security["hsts"] == {"enabled": False}
    assert cm({"block-cidrs": "192.0.2.0/24"}).security["ipAccess"] == {"deny": ["192.0.2.0/24"]}
    c = cm({"enable-modsecurity": "true", "enable-owasp-modsecurity-crs": "true",
            "modsecurity-snippet": "SecRuleEngine On\nSecDebugLog /tmp/x"})
    assert c.security["waf"] == {"mode": "Block"}
    assert "line 2" in next(f for f in c.findings if f.item == "data.modsecurity-snippet").detail


def test_admission_and_snippets() -> None:
    snippet = {"configuration-snippet": "more_set_headers \"X: 1\";"}
    assert "annotations-risk-level High" in (configmap.admission(snippet, {}) or "")
    assert configmap.admission(snippet, {"annotations-risk-level": "Critical"}) is None
    assert configmap.admission({"auth-url": "http://a"}, {}) is None  # High is allowed at High
    assert configmap.admission({"auth-url": "http://a"}, {"annotations-risk-level": "Medium"}) is not None
    prefixed = {catalog.PREFIX + "server-snippet": "x", "kubernetes.io/ingress.class": "nginx"}
    assert configmap.admission(prefixed, {}) is not None
    assert "blocklist" in (configmap.admission({"permanent-redirect": "https://a/{x}"},
                                               {"annotation-value-word-blocklist": "{,}"}) or "")
    assert configmap.snippets_dropped({}) and not configmap.snippets_dropped({"allow-snippet-annotations": "true"})


# --- nothing raises ----------------------------------------------------------------------------------

POLICY_KEYS = sorted(ann_policy.CATALOG)
VALUES = st.one_of(st.text(max_size=40), st.sampled_from(["", "0", "-1", "1m", "10.0.0.0/8", "true", "*", "a/b",
                                                          "SecRuleEngine On", "99999999999999999999"]))


@settings(max_examples=examples(400), deadline=None)
@given(annotations=st.dictionaries(st.sampled_from(POLICY_KEYS), VALUES, min_size=1),
       config=st.dictionaries(st.sampled_from(sorted(configmap.DEFAULTS)), VALUES, max_size=4))
def test_handlers_never_raise(annotations: dict[str, str], config: dict[str, str]) -> None:
    source = src(annotations, config, {"a/b": {"X-A": "1"}})
    for key, value in annotations.items():
        entry = ann_policy.CATALOG[key]
        assert entry.handler is not None
        c = entry.handler(key, value, source)
        assert [f.item for f in c.findings if f.item == key] == [key]
        assert all(f.status in STATUSES and f.obj == OBJ for f in c.findings)
        # What it writes is a policy wardgate accepts (and the policy fuzzers show that what
        # wardgate accepts reaches nginx only quoted).
        docs = [policy(kind, "p", spec) for kind, spec in (("SecurityPolicy", c.security),
                                                           ("RateLimitPolicy", c.rate_limit)) if spec]
        if c.filters:
            docs.append(yaml.safe_dump({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                                        "metadata": {"name": "app", "namespace": "default"},
                                        "spec": {"rules": [{"filters": c.filters}]}}))
        if docs:
            parse(load_text("---\n".join(docs), "fuzz.yaml"))


@settings(max_examples=examples(300), deadline=None)
@given(data=st.dictionaries(st.sampled_from([*sorted(configmap.KEYS), "nope"]), VALUES, max_size=6))
def test_configmap_never_raises(data: dict[str, str]) -> None:
    c = cm(data, {"a/b": {"X-A": "1"}})
    docs = [policy(kind, "p", spec, target="Gateway") for kind, spec in (
        ("SecurityPolicy", c.security), ("ClientTrafficPolicy", c.client_traffic)) if spec]
    parse(load_text("---\n".join(docs), "fuzz.yaml"))  # Gateway-level policies wardgate accepts


# --- on real nginx ------------------------------------------------------------------------------------


def policy(kind: str, name: str, spec: Mapping[str, Any], target: str = "HTTPRoute") -> str:
    """A wardgate policy from a Contribution field, attached the way migrate attaches it."""
    ref = {"kind": target, "name": "app" if target == "HTTPRoute" else "gw"}
    return yaml.safe_dump({"apiVersion": "policy.wardgate.io/v1alpha1", "kind": kind,
                           "metadata": {"name": name, "namespace": "default"},
                           "spec": {"targetRefs": [ref], **spec}}, sort_keys=False)


def client_ip_policy(data: Mapping[str, str]) -> str:
    return policy("ClientTrafficPolicy", "client-ip", cm(data).client_traffic, target="Gateway")


def get(gateway: Gateway, path: str, client: str | None = None, **kw: Any) -> Any:
    headers = {"X-Forwarded-For": client} if client else {}
    return request(f"http://{gateway.address()}:8080{path}", host="example.com", headers=headers, **kw)


def test_limit_rps_default_burst_on_nginx(gateway: Gateway, backends: Backends) -> None:
    """Corpus case limit-rps-default-burst: limit-rps 2 (burst 10): 15 quick requests, 11 pass,
    4 get 503 without reaching the backend; 1.1 s later one more passes."""
    c = run("limit-rps", {"limit-rps": "2"})
    setup(gateway, backends, policy("RateLimitPolicy", "limit", c.rate_limit))
    start = time.monotonic()
    statuses = [get(gateway, "/x").status for _ in range(15)]
    assert time.monotonic() - start < 0.45, "too slow for the expectation (2 r/s refills one per 500 ms)"
    assert statuses == [200] * 11 + [503] * 4
    time.sleep(1.1)
    assert get(gateway, "/x").status == 200


def test_limit_rpm_refill_and_exemption_on_nginx(gateway: Gateway, backends: Backends) -> None:
    """Corpus cases limit-rpm-burst-multiplier-refill (the first part) and limit-whitelist: 6/min
    with multiplier 1 gives 7 at once then 503; exempt clients are never limited; every client
    has its own budget."""
    anns = {"limit-rpm": "6", "limit-burst-multiplier": "1", "limit-whitelist": "10.0.0.0/8"}
    c = run("limit-rpm", anns)
    setup(gateway, backends, policy("RateLimitPolicy", "limit", c.rate_limit),
          client_ip_policy({"use-forwarded-headers": "true"}))
    assert [get(gateway, "/", "203.0.113.9").status for _ in range(10)] == [200] * 7 + [503] * 3
    assert [get(gateway, "/", "10.1.2.3").status for _ in range(10)] == [200] * 10
    assert get(gateway, "/", "203.0.113.10").status == 200


def test_source_ranges_on_nginx(gateway: Gateway, backends: Backends) -> None:
    """Corpus case denylist-source-range (deny-allow): deny lines are checked first."""
    anns = {"denylist-source-range": "18.1.0.0/16, 56.0.0.0/8", "whitelist-source-range": "18.0.0.0/8, 55.0.0.0/8"}
    c = run("denylist-source-range", anns)
    setup(gateway, backends, policy("SecurityPolicy", "ip", c.security),
          client_ip_policy({"use-forwarded-headers": "true"}))
    expected = {"18.1.0.1": 403, "10.10.10.10": 403, "18.4.0.1": 200, "55.55.55.55": 200, "56.1.1.1": 403}
    assert {ip: get(gateway, "/", ip).status for ip in expected} == expected
    # An allowed range wholly inside a denied one: nginx denies it (deny first), so does wardgate.
    c = run("allowlist-source-range", {"denylist-source-range": "10.0.0.0/8", "allowlist-source-range": "10.1.0.0/16"})
    gateway.write("policies.yaml", policy("SecurityPolicy", "ip", c.security),
                  "---\n" + client_ip_policy({"use-forwarded-headers": "true"}))
    gateway.reconcile()
    assert [get(gateway, "/", ip).status for ip in ("10.1.0.1", "10.2.0.1", "192.0.2.1")] == [403, 403, 403]


def test_custom_headers_and_body_size_on_nginx(gateway: Gateway, backends: Backends) -> None:
    """Corpus cases custom-headers-configmap and proxy-body-size-default-1m (with a 1k limit)."""
    maps = {"default/custom-headers": {"My-Custom-Header": "42", "My-Custom-Header-Dollar": "$remote_addr"}}
    config = {"global-allowed-response-headers": "My-Custom-Header,My-Custom-Header-Dollar"}
    headers = run("custom-headers", {"custom-headers": "default/custom-headers"}, config=config, config_maps=maps)
    size = run("proxy-body-size", {"proxy-body-size": "1k"})
    app = backends("app")
    route = yaml.safe_dump({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "app", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["example.com"],
                 "rules": [{"filters": headers.filters, "backendRefs": [{"name": "app", "port": 80}]}]}})
    gateway.write("gw.yaml", GW + app.manifests() + "---\n" + route)
    gateway.write("policies.yaml", policy("SecurityPolicy", "size", size.security))
    gateway.reconcile()
    for path, status in (("/", 200), ("/status/500", 500)):
        r = get(gateway, path)
        assert (r.status, r.headers["my-custom-header"]) == (status, "42")
    assert get(gateway, "/").headers["my-custom-header-dollar"] == "$remote_addr"
    assert get(gateway, "/up", method="POST", data=b"x" * 1024).status == 200
    assert get(gateway, "/up", method="POST", data=b"x" * 1025).status == 413


def test_migrated_limit_rpm_ingress_on_nginx(gateway: Gateway, backends: Backends) -> None:
    """Corpus case limit-rpm-burst-multiplier-refill, migrated by `wardgate migrate` and served
    by a real gateway: limit-rpm 6 with limit-burst-multiplier 1 lets 7 quick requests through,
    then answers 503 without reaching the backend; 10.5 s later one more passes (6/min refills
    one request per 10 s), and the next is refused again."""
    import json

    from conftest import CORPORA
    from wardgate.migrate import migrate
    from wardgate.migrate.output import dump
    from wardgate.sources.files import load_text

    case = CORPORA / "migration" / "cases" / "limit-rpm-burst-multiplier-refill.json"
    if not case.exists():
        pytest.skip("the migration corpus is not available")
    result = migrate(load_text(json.loads(case.read_text())["manifests"], str(case)))
    rpm = next(f for f in result.report.findings if f.item == "limit-rpm")
    assert rpm.status == "converted-with-difference" and "503" in rpm.detail
    [limit] = [o for o in result.objects if o["kind"] == "RateLimitPolicy"]
    assert {k: limit["spec"][k] for k in ("requests", "unit", "burst", "status")} == {
        "requests": 6, "unit": "Minute", "burst": 6, "status": 503}
    app = backends("app")
    gateway.write("migrated.yaml", dump([o for o in result.objects if o["kind"] != "GatewayClass"]))
    gateway.write("world.yaml", app.manifests())
    gateway.reconcile()
    url = f"http://{gateway.address('ingress-nginx/nginx')}/"
    statuses = [request(url, host="limit-rpm.example.com") for _ in range(10)]
    assert [r.status for r in statuses] == [200] * 7 + [503] * 3
    assert all(b'"pod"' in r.body for r in statuses[:7])  # the echo backend answered these
    assert all(b'"pod"' not in r.body for r in statuses[7:])  # and the gateway these
    time.sleep(10.5)
    assert request(url, host="limit-rpm.example.com").status == 200
    assert request(url, host="limit-rpm.example.com").status == 503


def test_migrated_limit_connections_ingress_on_nginx(gateway: Gateway, backends: Backends) -> None:
    """Corpus case limit-connections, migrated and served: limit-connections 3 and 8 requests in
    flight at once from one client: 3 reach the backend, 5 get 503 at once."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from conftest import CORPORA
    from wardgate.migrate import migrate
    from wardgate.migrate.output import dump
    from wardgate.sources.files import load_text

    case = CORPORA / "migration" / "cases" / "limit-connections.json"
    if not case.exists():
        pytest.skip("the migration corpus is not available")
    result = migrate(load_text(json.loads(case.read_text())["manifests"], str(case)))
    assert next(f for f in result.report.findings if f.item == "limit-connections").status == "exact"
    app = backends("app")
    gateway.write("migrated.yaml", dump([o for o in result.objects if o["kind"] != "GatewayClass"]))
    gateway.write("world.yaml", app.manifests())
    gateway.reconcile()
    # The echo backend's delay (the corpus's /delay/3000 is the harness's spelling of the same).
    url = f"http://{gateway.address('ingress-nginx/nginx')}/delay?delay=2s"
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: request(url, host="limit-conn.example.com"), range(8)))
    assert sorted(r.status for r in answers) == [200] * 3 + [503] * 5
    assert time.monotonic() - start < 4
