"""The pipeline's layering (docs/architecture.md), checked on the imports of every module.

sources -> model -> migrate -> translate -> ir -> render -> dataplane -> status: each stage imports only
earlier ones and the shared leaves. Rendering never sees a Kubernetes object, and the model
reaches the nginx grammar only through `wardgate.validation`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "wardgate"

STAGES = ["sources", "model", "migrate", "translate", "ir", "render", "dataplane", "status"]
# Imported by any stage; they import only each other. `wardgate` is the package root: the
# composition root that installs the grammar's validators into the model (and CONTROLLER_NAME).
LEAVES = {"wardgate", "errors", "perf", "keys", "quoting", "validation"}
# The orchestrators run the pipeline: they may import every stage, and no stage imports them.
TOP = {"runner", "cli", "__main__", "verify"}

# Deliberate imports of a later stage.
EXCEPTIONS = {
    ("translate", "ir"): "translate builds the IR, the contract it hands to render",
}
# Allowed by the order above, refused all the same.
FORBIDDEN = {
    ("model", "quoting"): "the model validates through wardgate.validation, never the grammar itself",
    **{(later, k8s): "IR onwards never see a Kubernetes object"
       for later in ("ir", "render", "dataplane", "status") for k8s in ("sources", "model", "migrate", "translate")},
    ("translate", "migrate"): "the pipeline runs what migrate wrote, never migrate itself",
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str:
    """The module an imported name lives in (`wardgate.model.base.Model` -> wardgate.model.base)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(path: Path) -> set[str]:
    """Every wardgate module `path` imports, wherever the import statement is (functions too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {_resolve(a.name) for a in node.names if a.name.split(".")[0] == "wardgate"}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the check reads absolute ones)"
            if node.module and node.module.split(".")[0] == "wardgate":
                for a in node.names:
                    sub = f"{node.module}.{a.name}"  # `from wardgate import ir` imports a module
                    out.add(sub if sub in MODULES else _resolve(node.module))
    return out


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _verdict(src: str, dst: str) -> str | None:
    """Why stage `src` must not import `dst`, or None."""
    if src in TOP:
        return None
    if dst in TOP:
        return f"{dst} runs the pipeline; no stage imports it"
    if src in LEAVES:
        return None if dst in LEAVES else "a shared leaf imports only other leaves"
    if (src, dst) in FORBIDDEN:
        return FORBIDDEN[(src, dst)]
    if dst in LEAVES or (src, dst) in EXCEPTIONS:
        return None
    if STAGES.index(dst) > STAGES.index(src):
        return f"{dst} comes after {src} in the pipeline"
    return None


def _edges() -> set[tuple[str, str, str]]:
    """(importing module, its stage, imported stage) for imports across stages."""
    return {(mod, _stage(mod), _stage(dep)) for mod, path in MODULES.items() for dep in _imports(path)
            if _stage(dep) != _stage(mod)}


def test_every_module_has_a_place() -> None:
    known = set(STAGES) | LEAVES | TOP
    assert {_stage(m) for m in MODULES} <= known, "classify new packages in tests/test_layering.py"


def test_each_stage_imports_only_earlier_ones() -> None:
    problems = sorted(f"{mod} imports {dst}: {why}" for mod, src, dst in _edges()
                      if (why := _verdict(src, dst)) is not None)
    assert not problems, "\n".join(problems)


def test_every_exception_is_still_needed() -> None:
    used = {(src, dst) for _, src, dst in _edges()}
    assert set(EXCEPTIONS) <= used, f"stale exceptions: {set(EXCEPTIONS) - used}"


def test_the_checker_sees_violations() -> None:
    # The verdicts the tests above rely on, on the edges that matter most.
    assert _verdict("model", "quoting") is not None
    assert _verdict("render", "model") is not None
    assert _verdict("ir", "translate") is not None
    assert _verdict("model", "translate") is not None
    assert _verdict("quoting", "model") is not None
    assert _verdict("translate", "runner") is not None
    assert _verdict("render", "ir") is None and _verdict("translate", "ir") is None
    assert _verdict("model", "validation") is None
