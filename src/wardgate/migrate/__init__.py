"""`wardgate migrate`: ingress-nginx Ingresses (and their controllers' ConfigMaps) to Gateway API
resources plus wardgate policies, with a report that accounts for every annotation and snippet line.

A stage between the model and translate: it reads raw objects from `wardgate.sources` and writes
Gateway API / wardgate objects that the model validates; the normal pipeline then runs them.

    result = migrate(load_paths([Path("export.yaml")]), MigrateOptions())
    print(result.yaml())                      # every object, deterministic
    result.files()                            # {"<namespace>.yaml": text, ...} for -o DIR
    result.report.to_dict()                   # findings, configMaps, summary
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from wardgate.migrate.convert import MigrateOptions, convert
from wardgate.migrate.ingress import read_inputs
from wardgate.migrate.output import by_namespace, dump, ordered
from wardgate.migrate.render_report import Report, to_json, to_table
from wardgate.perf import no_gc_pauses
from wardgate.sources.files import RawObject


class MigrationResult:
    """The objects written (in output order) and the report."""

    def __init__(self, built: list[dict[str, Any]], report: Report) -> None:
        self._built = built  # as the converter built them: rules and routes share pieces
        self._objects: list[dict[str, Any]] | None = None
        self.report = report

    @property
    def objects(self) -> list[dict[str, Any]]:
        """Every object as plain, unshared data (the converter's share pieces while they are
        built); copied on first use: writing YAML needs no copy."""
        if self._objects is None:
            self._objects = json.loads(json.dumps(self._built))
        return self._objects

    def __len__(self) -> int:
        return len(self._built)

    def by_namespace(self) -> dict[str, list[dict[str, Any]]]:
        """namespace ("_cluster" for cluster-scoped objects) -> its objects."""
        return by_namespace(self.objects)

    def yaml(self) -> str:
        return dump(self._built)

    @no_gc_pauses
    def files(self) -> dict[str, str]:
        """What `-o DIR` writes: one YAML file per namespace plus report.txt and report.json."""
        out = {f"{ns}.yaml": dump(objs) for ns, objs in by_namespace(self._built).items()}
        out["report.txt"] = to_table(self.report)
        out["report.json"] = to_json(self.report)
        return out


@no_gc_pauses
def migrate(objects: Iterable[RawObject], options: MigrateOptions | None = None) -> MigrationResult:
    """Convert the Ingresses among `objects` (with their IngressClasses, Services, Secrets,
    ConfigMaps and controller Deployments). Never raises on bad input: problems are findings."""
    conv = convert(read_inputs(objects), options or MigrateOptions())
    return MigrationResult(ordered(conv.objects), Report(conv.findings, conv.classes))


__all__ = ["MigrateOptions", "MigrationResult", "Report", "migrate"]
