"""Fuzz: Secret data that is not UTF-8 (issue 9, items 3 and 4).

Arbitrary bytes, with at least one that can't be UTF-8, spliced anywhere into a TLS Secret's
tls.crt or tls.key, through the real runner with a real nginx serving the Secret's last good
version: reconcile never crashes, the error names the Secret and the field, nothing of the key
or of the spliced bytes reaches the status document, nginx is not even reloaded, and HTTPS keeps
serving the last good certificate.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Callable

import httpx
import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Backend, Gateway
from test_bad_objects import gateway_yaml, route, secret

pytestmark = pytest.mark.timeout(300)

CA = trustme.CA()
_CERT = CA.issue_cert("one.test")
CRT = b"".join(b.bytes() for b in _CERT.cert_chain_pems)
KEY = _CERT.private_key_pem.bytes()
KEY_LINES = [ln for ln in KEY.decode().splitlines() if "-----" not in ln]

# Bytes that can't all be UTF-8: a lone continuation byte, an overlong lead, 0xff, ... plus noise.
_INVALID = st.sampled_from([b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8", b"\xff", b"\xfe\xff", b"\xc3"])
SPLICE = st.tuples(st.binary(max_size=24), _INVALID, st.binary(max_size=24)).map(b"".join)


@pytest.mark.filterwarnings("ignore")
def test_non_utf8_secret_data_never_crashes_or_leaks(gateway: Gateway, backends: Callable[..., Backend]) -> None:
    app = backends("app")
    gateway.write("gw.yaml", gateway_yaml("gw", tls=True), "---\n", route("app", "gw", "one.test"), app.manifests())
    gateway.write("secret.yaml", secret(CRT, KEY))
    gateway.reconcile()
    inst = gateway.runner.instances["default/gw"]
    generation = inst.generation
    ctx = ssl.create_default_context()
    CA.configure_trust(ctx)

    @settings(derandomize=True, deadline=None, database=None, max_examples=40,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(field=st.sampled_from(["tls.crt", "tls.key"]), where=st.floats(0, 1), splice=SPLICE)
    def one(field: str, where: float, splice: bytes) -> None:
        data = CRT if field == "tls.crt" else KEY
        at = int(where * len(data))
        bad = data[:at] + splice + data[at:]
        gateway.write("secret.yaml", secret(bad, KEY) if field == "tls.crt" else secret(CRT, bad))
        report = gateway.runner.reconcile()
        assert not report.ok
        assert [e for e in report.errors if f"Secret default/cert: data.{field}: is not UTF-8 text" in e], \
            report.errors
        status = json.dumps(gateway.runner.status())
        assert "internal error" not in status
        assert "PRIVATE KEY" not in status and not [ln for ln in KEY_LINES if ln in status]
        assert base64.b64encode(splice).decode() not in status and repr(splice)[2:-1] not in status
        assert inst.generation == generation  # the last good version: nothing to reload
        with httpx.Client(verify=ctx) as client:
            r = client.get(f"https://{gateway.address()}:8443/", headers={"Host": "one.test"},
                           extensions={"sni_hostname": "one.test"})
        assert r.status_code == 200

    one()
