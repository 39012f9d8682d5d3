"""The migration report: a table for people, JSON for machines.

JSON: {"findings": [...], "configMaps": {class: {...}}, "gateways": {class: [...]},
"summary": {"byStatus": {...}, "byClass": {class: {status: n}}, "byAnnotation": {key: {status: n}}}}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

from wardgate.migrate.classes import ClassInfo
from wardgate.migrate.report import STATUSES, Finding


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    classes: dict[str, ClassInfo] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        """Everything carried over with the same behaviour (what --strict asks)."""
        return all(f.status == "exact" for f in self.findings)

    def summary(self) -> dict[str, Any]:
        by_status = {s: 0 for s in STATUSES}
        by_class: dict[str, dict[str, int]] = {}
        by_item: dict[str, dict[str, int]] = {}
        for f in self.findings:
            by_status[f.status] += 1
            cls = by_class.setdefault(f.ingress_class or "(none)", {})
            cls[f.status] = cls.get(f.status, 0) + 1
            item = by_item.setdefault(_annotation(f.item), {})
            item[f.status] = item.get(f.status, 0) + 1
        return {"byStatus": by_status,
                "byClass": {k: by_class[k] for k in sorted(by_class)},
                "byAnnotation": {k: by_item[k] for k in sorted(by_item)}}

    def to_dict(self) -> dict[str, Any]:
        return self._doc([_finding_dict(f) for f in sorted_findings(self.findings)])

    def _doc(self, findings: list[Any]) -> dict[str, Any]:
        return {
            "findings": findings,
            "configMaps": {name: {"configMap": f"{c.configmap[0]}/{c.configmap[1]}" if c.configmap else None,
                                  "found": c.config_found, "how": c.configmap_how, "controller": c.controller}
                           for name, c in sorted(self.classes.items())},
            "gateways": {name: {"gateways": [str(g) for g in c.gateways], "how": c.gateways_how}
                         for name, c in sorted(self.classes.items())},
            "summary": self.summary(),
        }


def _finding_dict(f: Finding) -> dict[str, Any]:
    return {"file": f.file, "object": f.obj, "item": f.item, "status": f.status, "detail": f.detail,
            "ingressClass": f.ingress_class}


class _Written(str):
    """JSON text already indented for its place in the document."""


# One finding as _indented writes it at depth 2 (an item of the top-level "findings" list):
# 30,000 findings went through the generic walk, key by key.
_FINDING_KEYS = [encode_basestring_ascii(k) for k in _finding_dict(Finding("", "", "", "exact"))]


def _finding_json(f: Finding) -> _Written:
    values = (f.file, f.obj, f.item, f.status, f.detail, f.ingress_class)
    body = ",\n   ".join(f"{k}: {encode_basestring_ascii(v) if v is not None else 'null'}"
                          for k, v in zip(_FINDING_KEYS, values, strict=True))
    return _Written("{\n   " + body + "\n  }")


def _annotation(item: str) -> str:
    """The annotation (or field, or ConfigMap key) a finding is about, without snippet lines."""
    return item.split(" line ", 1)[0]


def sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.ingress_class or "", f.obj, f.item, f.file, f.status, f.detail))


def to_json(report: Report) -> str:
    """report.to_dict() as json.dumps(indent=1) writes it."""
    return _indented(report._doc([_finding_json(f) for f in sorted_findings(report.findings)])) + "\n"


def _indented(doc: Any) -> str:
    """json.dumps(doc, indent=1), byte for byte, twice as fast: the encoder's Python generators
    with indentation were most of writing a report of 30,000 findings."""
    out: list[str] = []
    put = out.append

    def emit(value: Any, indent: str) -> None:
        kind = type(value)
        if kind is str:
            put(encode_basestring_ascii(value))
        elif kind is _Written:
            put(value)
        elif (kind is dict or kind is list) and value:
            inner = indent + " "
            sep = ",\n" + inner
            put(("{" if kind is dict else "[") + "\n" + inner)
            if kind is dict:
                for i, (k, v) in enumerate(value.items()):  # the report's keys are strings
                    put(f"{sep if i else ''}{encode_basestring_ascii(k)}: ")
                    emit(v, inner)
            else:
                for i, v in enumerate(value):
                    if i:
                        put(sep)
                    emit(v, inner)
            put("\n" + indent + ("}" if kind is dict else "]"))
        else:
            put(json.dumps(value))

    emit(doc, "")
    return "".join(out)


def to_table(report: Report) -> str:
    lines: list[str] = []
    if report.classes:
        lines.append("CLASS  CONFIGMAP  (HOW)  ->  GATEWAYS")
        for name, c in sorted(report.classes.items()):
            cm = f"{c.configmap[0]}/{c.configmap[1]}" if c.configmap else "-"
            lines.append(f"{name}  {cm}  ({c.configmap_how})  ->  {', '.join(str(g) for g in c.gateways)}")
        lines.append("")
    rows = [("STATUS", "CLASS", "OBJECT", "ITEM", "DETAIL")]
    rows += [(f.status, f.ingress_class or "-", f.obj, f.item, f.detail) for f in sorted_findings(report.findings)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    row = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"  # the four columns padded, then the detail
    lines += [row.format(*r) for r in rows]
    s = report.summary()["byStatus"]
    lines.append("")
    lines.append("summary: " + ", ".join(f"{n} {k}" for k, n in s.items()))
    return "\n".join(lines) + "\n"
