"""The annotation catalog covers every annotation ingress-nginx v1.15 documents, and the fixture
holding all of them (tests/fixtures/migrate/all-annotations.yaml) matches it both ways."""

from __future__ import annotations

from pathlib import Path

import yaml

from wardgate.migrate import ann_policy, catalog
from wardgate.migrate.ann_policy import DENIED, REJECTED
from wardgate.migrate.configmap import RISK_LEVELS, admission
from wardgate.migrate.contrib import Source

FIXTURE = Path(__file__).parent / "fixtures" / "migrate" / "all-annotations.yaml"


def _objects() -> list[dict]:  # type: ignore[type-arg]
    return [d for d in yaml.safe_load_all(FIXTURE.read_text()) if d]


def _ingresses() -> list[dict]:  # type: ignore[type-arg]
    return [d for d in _objects() if d["kind"] == "Ingress"]


def _annotations(ing: dict) -> dict[str, str]:  # type: ignore[type-arg]
    anns = ing["metadata"].get("annotations") or {}
    return {k.removeprefix(catalog.PREFIX): v for k, v in anns.items() if k.startswith(catalog.PREFIX)}


def test_fixture_holds_exactly_the_documented_annotations() -> None:
    used = {k for ing in _ingresses() for k in _annotations(ing)}
    assert sorted(catalog.DOCUMENTED - used) == [], "documented annotations missing from the fixture"
    assert sorted(used - catalog.DOCUMENTED) == [], "fixture annotations ingress-nginx does not document"


def test_catalog_entries_are_documented_annotations_claimed_once() -> None:
    assert sorted(catalog.CATALOG.keys() - catalog.DOCUMENTED) == []
    assert catalog.CLASHES == [], "annotations claimed by two sources (keep one)"
    for key, entry in catalog.CATALOG.items():
        assert entry.becomes.strip(), key
        if entry.handler is None and entry.owner is None:
            assert entry.becomes.startswith("not converted: "), key


def test_catalog_is_complete() -> None:
    missing = sorted(catalog.DOCUMENTED - catalog.CATALOG.keys())
    assert missing == [], "annotations nobody converts or lists as never converted"
    for key in catalog.DOCUMENTED:
        assert catalog.lookup(key) is catalog.lookup(catalog.PREFIX + key) is not None


def test_lookup() -> None:
    assert catalog.lookup("limit-rpm") is catalog.CATALOG["limit-rpm"]
    assert catalog.lookup(catalog.PREFIX + "limit-rpm") is catalog.CATALOG["limit-rpm"]
    assert catalog.lookup("limit-rmp") is None  # a typo is unknown
    assert catalog.lookup("kubernetes.io/ingress.class") is None


def test_risk_levels_are_known() -> None:
    assert catalog.RISK.keys() == catalog.DOCUMENTED
    assert set(catalog.RISK.values()) <= set(RISK_LEVELS)
    assert {k for k, v in catalog.RISK.items() if v == "Critical"} == {
        "configuration-snippet", "server-snippet", "auth-snippet", "modsecurity-snippet", "stream-snippet"}


def test_fixture_is_served_with_its_configmap() -> None:
    """The fixture's ConfigMap lets every Ingress in: snippets allowed at risk level Critical."""
    cm = next(d for d in _objects() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "ingress-nginx-controller")
    for ing in _ingresses():
        assert admission(_annotations(ing), cm["data"]) is None, ing["metadata"]["name"]
        # At the default risk level (High) the snippets would keep their Ingresses out.
        crit = {k for k in _annotations(ing) if catalog.RISK[k] == "Critical"}
        assert (admission(_annotations(ing), {}) is None) == (not crit), ing["metadata"]["name"]


def test_fixture_values_are_valid_for_the_policy_handlers() -> None:
    """Handlers never call a fixture value invalid (the fixture promises valid values)."""
    objects = _objects()
    cm = next(d["data"] for d in objects if d["kind"] == "ConfigMap" and d["metadata"]["name"] ==
              "ingress-nginx-controller")
    config_maps = {f"{d['metadata']['namespace']}/{d['metadata']['name']}": d["data"]
                   for d in objects if d["kind"] == "ConfigMap"}
    for ing in _ingresses():
        anns = _annotations(ing)
        source = Source(str(FIXTURE), f"Ingress default/{ing['metadata']['name']}", "default", "nginx", anns, cm,
                        config_maps)
        for key, value in anns.items():
            entry = ann_policy.CATALOG.get(key)
            if entry is None or entry.handler is None:
                continue
            result = entry.handler(key, value, source)
            assert [f.item for f in result.findings if f.item == key] == [key]
            for f in result.findings:
                assert REJECTED not in f.detail and DENIED not in f.detail, (key, f.detail)
                assert "invalid" not in f.detail, (key, f.detail)


def test_migrating_the_fixture_reports_no_unknown_annotation() -> None:
    """Through the converter: every annotation of the fixture gets a finding, none `unknown`."""
    from wardgate.migrate import migrate
    from wardgate.sources.files import load_text

    result = migrate(load_text(FIXTURE.read_text(), str(FIXTURE)))
    findings = result.report.findings
    unknown = {f.item for f in findings if f.status == "unknown" and f.obj.startswith("Ingress ")}
    assert sorted(unknown) == []
    reported = {(f.obj, f.item.split(" ")[0]) for f in findings}
    for ing in _ingresses():
        obj = f"Ingress default/{ing['metadata']['name']}"
        assert {k for k in _annotations(ing) if (obj, k) not in reported} == set(), obj


def test_docs_annotation_table_is_the_catalog() -> None:
    """docs/migration-annotations.md's table is generated from the catalog; with
    WARDGATE_UPDATE_GOLDEN=1 this test rewrites it (after joining a topic module)."""
    import os

    doc = Path(__file__).parents[1] / "docs" / "migration-annotations.md"
    text = doc.read_text()
    start = text.index("<!-- table:")
    head = text[:text.index("-->\n", start) + 4]
    table, tail = text[len(head):].split("<!-- end of table -->", 1)
    if os.environ.get("WARDGATE_UPDATE_GOLDEN"):
        doc.write_text(head + catalog.markdown_table() + "<!-- end of table -->" + tail)
        return
    assert table == catalog.markdown_table(), "regenerate with WARDGATE_UPDATE_GOLDEN=1"


def test_report_json_is_json_dumps_of_the_report() -> None:
    """report.json is written by a hand-made encoder (json's indenting one was most of the time on
    30,000 findings): byte for byte what json.dumps(indent=1) writes, non-ASCII details included."""
    import json

    from wardgate.migrate import migrate
    from wardgate.migrate.render_report import to_json
    from wardgate.migrate.report import Finding
    from wardgate.sources.files import load_text

    result = migrate(load_text(FIXTURE.read_text(), str(FIXTURE)))
    odd = Finding("f\u00e9.yaml", 'Ingress a/"b"', "x line 2", "unknown", "tab\there \u2028", None)
    result.report.findings.append(odd)
    assert len(result.report.findings) > 150
    assert to_json(result.report) == json.dumps(result.report.to_dict(), indent=1) + "\n"
