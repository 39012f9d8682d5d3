"""The pass rules of a round trip (the Go suite's CompareRoundTrip), and redirect parsing."""

from __future__ import annotations

import json
import ssl
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from wardgate.verify.conformance.client import RoundTrip, _header, _header_values, _split_host_port
from wardgate.verify.conformance.corpus import Json

REDIRECT_CODES = frozenset({300, 301, 302, 303, 304, 305, 307, 308})


def captured_request(rt: RoundTrip, method: str) -> Json:
    """The echo backend's JSON, or (non-JSON answer) just the method, as Go's round tripper does."""
    if _header(rt.headers, "content-type") != "application/json":
        return {"method": method}
    try:
        data = json.loads(rt.body)
    except ValueError as exc:
        raise ValueError(f"unexpected error reading response: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("unexpected error reading response: JSON is not an object")
    return data


def parse_redirect(base_url: str, location: str) -> tuple[str, str, str, str]:
    """Location resolved against the request URL -> (scheme, hostname without port, port, path)."""
    target = urllib.parse.urljoin(base_url, location)
    parts = urllib.parse.urlsplit(target)
    netloc = parts.netloc.rpartition("@")[2]
    host, port = _split_host_port(netloc)
    return parts.scheme, host, port, urllib.parse.unquote(parts.path)


def _pem_der(pem: str | bytes) -> bytes:
    text = pem.decode() if isinstance(pem, bytes) else pem
    try:
        return ssl.PEM_cert_to_DER_cert(text.strip() + "\n")
    except ValueError:
        return text.strip().encode()


def _join(values: Any) -> str:
    if isinstance(values, list):
        return ",".join(str(v) for v in values)
    return "" if values is None else str(values)


def compare_round_trip(request: Mapping[str, Any], expected: Mapping[str, Any], rt: RoundTrip,
                       request_url: str, resolve: Callable[[str], bytes] | None = None) -> str | None:
    """FORMAT.md "Evaluating one round trip" (Go CompareRoundTrip): None when it passes, else why not.

    ``request``/``expected`` are the case's objects as sent (templates and request ids filled in);
    ``request_url`` is the URL of the first request (redirect defaults come from it).
    """
    status = rt.status
    codes = [int(c) for c in (expected.get("statusCodes") or [200])]
    if status in (408, 504) and any(c in (408, 504) for c in codes):
        return None
    if status not in codes:
        snippet = " ".join(rt.body[:400].decode("utf-8", "replace").split())[:120]
        return f"expected status {codes}, got {status}" + (f" ({snippet!r})" if snippet else "")
    method = str(request.get("method") or "GET")
    if status in (200, 204):
        try:
            cap = captured_request(rt, method)
        except ValueError as exc:
            return str(exc)
        er: Mapping[str, Any] = expected.get("request") or request
        er_host = er.get("host") or ""
        if er_host and er_host != cap.get("host", ""):
            return f"expected host {er_host!r}, got {cap.get('host', '')!r}"
        er_path = er.get("path") or ""
        if er_path != cap.get("path", ""):
            return f"expected path {er_path!r}, got {cap.get('path', '')!r}"
        er_method = er.get("method") or "GET"
        if er_method != cap.get("method", ""):
            return f"expected method {er_method!r}, got {cap.get('method', '')!r}"
        namespace = expected.get("namespace") or ""
        if namespace != (cap.get("namespace") or ""):
            return f"expected namespace {namespace!r}, got {cap.get('namespace') or ''!r}"
        echoed = {str(k).lower(): v for k, v in (cap.get("headers") or {}).items()}
        want_headers: Mapping[str, Any] = er.get("headers") or {}
        if er.get("headers") is not None and not cap.get("headers"):
            return f"no headers captured, expected {len(want_headers)}"
        for name, want in want_headers.items():
            if name.lower() not in echoed:
                return f"expected request header {name!r} to be set, backend got {sorted(echoed)}"
            got = _join(echoed[name.lower()])
            if got != str(want):
                return f"expected request header {name!r} = {want!r}, got {got!r}"
        response: Mapping[str, Any] = expected.get("response") or {}
        resp_headers: Mapping[str, Any] = response.get("headers") or {}
        valid: Mapping[str, Any] = response.get("validHeaderValues") or {}
        strip = bool(response.get("ignoreWhitespace"))

        def norm(text: str) -> str:
            return text.replace(" ", "") if strip else text

        for name, want in resp_headers.items():
            values = _header_values(rt.headers, name)
            if values is None:
                return f"expected response header {name!r} to be set"
            if norm(",".join(values)) != norm(str(want)):
                return f"expected response header {name!r} = {want!r}, got {','.join(values)!r}"
        for name, options in valid.items():
            values = _header_values(rt.headers, name)
            if values is None:
                return f"expected response header {name!r} to be set"
            if norm(",".join(values)) not in {norm(str(o)) for o in options}:
                return f"response header {name!r} = {','.join(values)!r} is not one of {list(options)}"
        if response.get("protocol") and response["protocol"] != rt.protocol:
            return f"expected response protocol {response['protocol']!r}, got {rt.protocol!r}"
        for name in response.get("absentHeaders") or []:
            if _header_values(rt.headers, name) is not None:
                return f"response header {name!r} should be absent, got {_header(rt.headers, name)!r}"
        for name in er.get("absentHeaders") or []:
            if str(name).lower() in echoed:
                return f"request header {name!r} should not reach the backend, got {_join(echoed[str(name).lower()])!r}"
        backend = expected.get("backend") or ""
        pod = str(cap.get("pod") or "")
        if not pod.startswith(backend):
            return f"expected pod name to start with {backend!r}, got {pod!r}"
        tls = cap.get("tls") or {}
        if er.get("sni") and er.get("sni") != tls.get("serverName"):
            return f"expected backend SNI {er.get('sni')!r}, got {tls.get('serverName')!r}"
        if er.get("clientCert"):
            if resolve is None:
                return "cannot resolve the expected client certificate"
            try:
                want_der = _pem_der(resolve(str(er["clientCert"])))
            except KeyError as exc:
                return str(exc)
            if want_der not in {_pem_der(p) for p in tls.get("peerCertificates") or []}:
                return "the backend did not receive the expected client certificate"
        return None
    redirect: Mapping[str, Any] | None = expected.get("redirect")
    if status in REDIRECT_CODES and redirect:
        location = _header(rt.headers, "location")
        if location is None:
            return f"status {status} without a Location header"
        scheme, host, port, path = parse_redirect(rt.url, location)
        req_parts = urllib.parse.urlsplit(request_url)
        req_path = urllib.parse.unquote(req_parts.path)  # Go compares URL.Path, the unescaped form
        if redirect.get("host") is not None and redirect["host"] != host:
            return f"expected redirect host {redirect['host']!r}, got {host!r} (Location {location!r})"
        want_scheme = redirect.get("scheme") or req_parts.scheme
        if want_scheme != scheme:
            return f"expected redirect scheme {want_scheme!r}, got {scheme!r} (Location {location!r})"
        want_port = redirect.get("port")
        if want_port is None:
            defaults = {"http": ("", "80"), "https": ("", "443")}.get(scheme, ("",))
            if port not in defaults:
                return f"expected the default port for {scheme}, got {port!r} (Location {location!r})"
        elif str(want_port) != port:
            return f"expected redirect port {want_port!r}, got {port!r} (Location {location!r})"
        want_path = redirect.get("path") if redirect.get("path") is not None else req_path
        if want_path != path:
            return f"expected redirect path {want_path!r}, got {path!r} (Location {location!r})"
    return None
