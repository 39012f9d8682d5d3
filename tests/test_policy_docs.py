"""docs/policies.md and deploy/crds/ stay true: every policy field is shown in an example that a
test runs, and the checked-in CRDs are what the models generate."""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel

from conftest import REPO
from policy_helpers import doc_examples
from wardgate.model import parse
from wardgate.model.crds import all_crds
from wardgate.model.policies import POLICY_KINDS, merge_paths
from wardgate.sources.files import RawObject


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models(arg)] if get_origin(annotation) else []


def field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, info in model.model_fields.items():
        path = prefix + (info.alias or name)
        out.add(path)
        for sub in _models(info.annotation):
            out |= field_paths(sub, path + ".")
    return out


def used_paths(node: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            out.add(prefix + key)
            out |= used_paths(value, prefix + key + ".")
    elif isinstance(node, list):
        for item in node:
            out |= used_paths(item, prefix)
    return out


def test_every_policy_field_is_in_a_documented_example() -> None:
    examples = doc_examples()
    used: dict[str, set[str]] = {kind: set() for kind in POLICY_KINDS}
    for text in examples.values():
        for doc in yaml.safe_load_all(text):
            if doc and doc["kind"] in used:
                used[doc["kind"]] |= used_paths(doc["spec"])
    for kind, cls in POLICY_KINDS.items():
        spec = cls.model_fields["spec"].annotation
        assert isinstance(spec, type) and issubclass(spec, BaseModel)
        missing = field_paths(spec) - used[kind]
        if kind == "ClientTrafficPolicy":
            missing.discard("targetRefs.sectionName")  # refused: it applies to whole Gateways
        assert not missing, f"{kind} fields without a documented example: {sorted(missing)}"


def test_every_documented_example_is_valid_and_run_by_a_test() -> None:
    examples = doc_examples()
    assert len(examples) >= 15
    tests = "".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
    for name, text in examples.items():
        raws = [RawObject(d, None) for d in yaml.safe_load_all(text) if d]  # type: ignore[arg-type]
        parse(raws)  # raises on any invalid field
        assert re.search(rf'example\("{name}"\)', tests), f"example {name!r} is not used by any test"


def merge_table() -> dict[tuple[str, str], str]:
    """docs/policies.md's merge table: (policy kind, field path) -> rule, each path once."""
    text = (REPO / "docs" / "policies.md").read_text()
    section = text.split("### Merge rules for every field", 1)[1].split("\n### ", 1)[0]
    rows: dict[tuple[str, str], str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] not in POLICY_KINDS:
            continue
        for path in re.findall(r"`([^`]+)`", cells[1]):
            assert (cells[0], path) not in rows, f"{cells[0]} {path} is in the merge table twice"
            rows[(cells[0], path)] = cells[2]
    return rows


def test_merge_table_lists_every_field_with_the_rule_the_code_applies() -> None:
    table = merge_table()
    expected = {(kind, path): rule for kind, cls in POLICY_KINDS.items()
                for path, rule in merge_paths(cls.model_fields["spec"].annotation)}
    assert len(expected) > 50
    assert set(expected) - set(table) == set(), "fields missing from the merge table in docs/policies.md"
    assert set(table) - set(expected) == set(), "the merge table lists fields the models don't have"
    wrong = {k: (table[k], rule) for k, rule in expected.items() if table[k] != rule}
    assert not wrong, f"merge table rule (docs, code) disagree: {wrong}"


def test_checked_in_crds_are_generated_from_the_models() -> None:
    generated = all_crds()
    on_disk = {p.name: p for p in (REPO / "deploy" / "crds").glob("*.yaml")}
    assert set(on_disk) == set(generated), "run `wardgate crds -o deploy/crds`"
    for name, crd in generated.items():
        assert yaml.safe_load(on_disk[name].read_text()) == crd, f"{name} is stale: run `wardgate crds -o deploy/crds`"
    schema = generated["policy.wardgate.io_securitypolicies.yaml"]["spec"]["versions"][0]["schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "anyOf: null" not in text  # structural: no references
