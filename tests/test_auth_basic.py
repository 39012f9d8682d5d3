"""SecurityPolicy basicAuth through a real nginx: the documented examples, every hash format the
policy accepts checked by nginx itself, fail-closed Secrets, the file's permissions on disk, and
the CORS preflight that is answered before authentication (ingress-nginx's order)."""

from __future__ import annotations

import base64
import os
import pwd
import stat
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Backend, Gateway, request
from policy_helpers import ancestors, decision_log, example, setup
from wardgate.translate.auth import HASH_FORMATS, hash_format

pytestmark = pytest.mark.timeout(120)

Backends = Callable[..., Backend]

# One hash of the password "bar" per format the policy accepts (generated with openssl passwd and
# libxcrypt's crypt(); fixed here so the test needs neither).
HASHES = {
    "apr1": "$apr1$P4eOMbsY$1MNyIDEsJ8TBPLVk7LdE70",  # ingress-nginx's e2e Secret (user foo)
    "bcrypt": "$2y$10$wardgatetestsalt12345.3rpi3Sfz368EvysXd.igkSytCyZrxKS",
    "bcrypt-2b": "$2b$12$BQ4e8fn/85EKjW4COdiH3.kosESy7hJwplUR0SomqDRxl.S0A88q.",
    "bcrypt-2a": "$2a$10$wardgatetestsalt12345.3rpi3Sfz368EvysXd.igkSytCyZrxKS",
    "sha512-crypt": "$6$GSbseYjLFSRXOzb4$GaB2Rf7DzmvToxNUIZAPf6.IQXt39apH7rnDM/DXl9KNisDNc26WId5TCwZzQp.GH0iA"
                    "ub5059kLUUbZ223Zh1",
    "sha256-crypt": "$5$wFV2YAq9X./iX.uR$XTg9JkqGIT3bFrsrkbg4.ujdeIE15c8ZJUpiJLQm4/6",
    "yescrypt": "$y$j9T$abcdefghijklmnop$UOXSEusWzeWqgkZoovsqQkKpfFf4l3dc3ekR0CyDcVA",
    "md5-crypt": "$1$RjNdpqXg$mZnH5ryUkCeL2tmwX6C.0/",
    "SSHA": "{SSHA}tJ2yDvy37FBI3hRPx+pXz8MduQZhYmNk",
    "SHA": "{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=",
    "PLAIN": "{PLAIN}bar",
    "des-crypt": "ab9VHpu2/1Qrs",
}


def get(gateway: Gateway, path: str, host: str = "example.com", user: str | None = None,
        password: str = "", **kw: object) -> object:
    headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return request(f"http://{gateway.address()}:8080{path}", host=host, headers=headers,  # type: ignore[arg-type]
                   **kw)  # type: ignore[arg-type]


def policy(secret: str, *, fmt: str = "Htpasswd", realm: str = "corp", target: str = "{kind: HTTPRoute, name: app}"
           ) -> str:
    return textwrap.dedent(f"""\
        apiVersion: policy.wardgate.io/v1alpha1
        kind: SecurityPolicy
        metadata: {{name: login, namespace: default}}
        spec:
          targetRefs: [{target}]
          basicAuth: {{secretRef: {{name: {secret}}}, format: {fmt}, realm: "{realm}"}}
        """)


def secret(name: str, **data: str) -> str:
    encoded = ", ".join(f"{k}: {base64.b64encode(v.encode()).decode()}" for k, v in data.items())
    return f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\ndata: {{{encoded}}}\n"


def resolved(gateway: Gateway, name: str = "login") -> dict[str, str]:
    conds = ancestors(gateway, "SecurityPolicy", name)[0]["conditions"]
    return next((c for c in conds if c["type"] == "ResolvedRefs"), {})


def test_documented_example_asks_for_credentials_and_keeps_them(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("basic-auth"))
    r = get(gateway, "/admin/x")
    assert r.status == 401  # type: ignore[attr-defined]
    assert r.headers["www-authenticate"] == 'Basic realm="Admin area"'  # type: ignore[attr-defined]
    assert get(gateway, "/admin/x", user="alice", password="nope").status == 401  # type: ignore[attr-defined]
    assert get(gateway, "/admin/x", user="mallory", password="wonderland").status == 401  # type: ignore[attr-defined]
    for user, password in (("alice", "wonderland"), ("bob", "builder")):
        ok = get(gateway, "/admin/x", user=user, password=password)
        assert ok.status == 200, user  # type: ignore[attr-defined]
        assert "Authorization" not in ok.json["headers"]  # type: ignore[attr-defined]
    # Only the rule the policy targets asks.
    assert get(gateway, "/public").status == 200  # type: ignore[attr-defined]
    entry = decision_log(gateway, "/admin/x")[0]
    assert (entry["status"], entry["decision"]) == (401, "auth")


def test_documented_user_map(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, example("basic-auth-user-map"))
    assert get(gateway, "/", host="other.example.com").status == 401  # type: ignore[attr-defined]
    assert get(gateway, "/", host="other.example.com", user="carol", password="operator").status == 200  # type: ignore[attr-defined]
    assert get(gateway, "/").status == 200  # type: ignore[attr-defined]


def test_every_accepted_hash_format_is_checked_by_nginx(gateway: Gateway, backends: Backends) -> None:
    assert {hash_format(h) for h in HASHES.values()} == {name for name, _ in HASH_FORMATS}
    lines = "".join(f"{name}:{h}\n" for name, h in HASHES.items())
    setup(gateway, backends, policy("users"), secret("users", auth="# every format\n\n" + lines))
    for name in HASHES:
        assert get(gateway, "/", user=name, password="bar").status == 200, name  # type: ignore[attr-defined]
        assert get(gateway, "/", user=name, password="baz").status == 401, name  # type: ignore[attr-defined]
    # Weak formats are accepted with a warning in the status.
    message = ancestors(gateway, "SecurityPolicy", "login")[0]["conditions"][0]["message"]
    assert "unsalted SHA-1" in message and "plain-text" in message and "$" not in message


@pytest.mark.parametrize("data, why", [
    ({"auth": "foo:bar\n"}, "line 1 (user 'foo'): the password is not in a hash format nginx checks"),
    ({"auth": "foo\n"}, "line 1: expected user:hash"),
    ({"auth": "a:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=\na:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=\n"}, "already on line 1"),
    ({"auth": "# nobody\n"}, "has no users"),
    ({"other": "x"}, "data.auth: is missing"),
])
def test_unusable_secret_fails_closed_and_says_why(gateway: Gateway, backends: Backends, data: dict[str, str],
                                                    why: str) -> None:
    setup(gateway, backends, policy("users"), secret("users", **data))
    assert get(gateway, "/", user="foo", password="bar").status == 500  # type: ignore[attr-defined]
    assert get(gateway, "/", host="other.example.com").status == 200  # type: ignore[attr-defined]
    cond = resolved(gateway)
    assert cond["status"] == "False" and why in cond["message"], cond
    assert "Ys23Ag" not in cond["message"]  # never a hash


def test_missing_secret_fails_closed_then_works_once_created(gateway: Gateway, backends: Backends) -> None:
    app = setup(gateway, backends, policy("later"))
    assert get(gateway, "/").status == 500  # type: ignore[attr-defined]
    assert "Secret default/later does not exist" in resolved(gateway)["message"]
    gateway.write("secret.yaml", secret("later", auth=f"foo:{HASHES['apr1']}\n"))
    gateway.reconcile()
    assert get(gateway, "/").status == 401  # type: ignore[attr-defined]
    assert get(gateway, "/", user="foo", password="bar").status == 200  # type: ignore[attr-defined]
    assert app.servers[0].port


def test_cors_preflight_is_answered_before_authentication(gateway: Gateway, backends: Backends) -> None:
    """ingress-nginx's auth-basic-with-cors case: CORS answers preflights in the rewrite phase,
    auth_basic runs in the access phase; the 401 carries the CORS headers."""
    app = backends("app")
    route = textwrap.dedent("""\
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: app, namespace: default}
        spec:
          parentRefs: [{name: gw}]
          hostnames: [example.com]
          rules:
            - filters: [{type: CORS, cors: {allowOrigins: ["*"], allowMethods: [GET, POST]}}]
              backendRefs: [{name: app, port: 80}]
        """)
    from conftest import GW
    gateway.write("gw.yaml", GW + app.manifests() + route)
    gateway.write("policies.yaml", "---\n" + policy("users", realm="Authentication Required - corp"), "---\n" +
                  secret("users", auth=f"foo:{HASHES['apr1']}\n"))
    gateway.reconcile()
    pre = get(gateway, "/private", method="OPTIONS",
              headers={"Origin": "https://x.example.com", "Access-Control-Request-Method": "GET"})
    assert pre.status == 204  # type: ignore[attr-defined]
    assert pre.headers["access-control-allow-origin"] == "https://x.example.com"  # type: ignore[attr-defined]
    denied = get(gateway, "/private", headers={"Origin": "https://x.example.com"})
    assert denied.status == 401  # type: ignore[attr-defined]
    assert denied.headers["www-authenticate"] == 'Basic realm="Authentication Required - corp"'  # type: ignore[attr-defined]
    assert denied.headers["access-control-allow-origin"] == "https://x.example.com"  # type: ignore[attr-defined]
    ok = get(gateway, "/private", user="foo", password="bar")
    assert ok.status == 200 and ok.json["path"] == "/private"  # type: ignore[attr-defined]
    assert "Authorization" not in ok.json["headers"]  # type: ignore[attr-defined]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: nginx's workers run as nobody only then")
def test_users_file_readable_by_the_workers_group_only(gateway: Gateway, backends: Backends) -> None:
    setup(gateway, backends, policy("users"), secret("users", auth=f"foo:{HASHES['apr1']}\n"))
    workdir: Path = gateway.runner.instances["default/gw"].workdir
    gen = (workdir / "conf" / "current").resolve()
    files = list((gen / "worker").iterdir())
    assert len(files) == 1
    nogroup = pwd.getpwnam("nobody").pw_gid
    for path, mode in ((files[0], 0o640), (gen / "worker", 0o750), (gen, 0o710), (workdir / "conf", 0o710)):
        st = path.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, 0, nogroup), path
    # Everything else of the generation stays private to the master.
    assert stat.S_IMODE((gen / "nginx.conf").stat().st_mode) == 0o600
    # The workers (nobody) did read it: nginx answered 200/401 above, not 500.
    assert get(gateway, "/", user="foo", password="bar").status == 200  # type: ignore[attr-defined]


@pytest.mark.parametrize("spec, error", [
    ({"secretRef": {"name": "s"}, "realm": "off"}, "would turn authentication off"),
    ({"secretRef": {"name": "s"}, "realm": 'a"b'}, "must not contain"),
    ({"secretRef": {"name": "s"}, "format": "UserMap", "key": "auth"}, "key applies to format Htpasswd only"),
])
def test_basic_auth_model_refuses(spec: dict[str, object], error: str) -> None:
    from pydantic import ValidationError

    from wardgate.model.policies import BasicAuth

    with pytest.raises(ValidationError, match=error):
        BasicAuth.model_validate(spec)
