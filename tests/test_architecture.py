"""The subpackages import each other in one direction only (docs/architecture.md).

Read from the code's own imports, function bodies included: a lower layer that reached up (the
evidence format importing the runtime, a report importing onnxruntime's fingerprint) would tie
the bundle format to the machine that reads it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ogverify"

# subpackage -> the ogverify subpackages (and top-level modules) it may import
MAY_IMPORT: dict[str, set[str]] = {
    "evidence": {"errors"},
    "report": {"evidence", "errors"},
    "model": {"evidence", "errors"},
    "runtime": {"model", "evidence", "report", "errors"},
    "interop": {"runtime", "model", "evidence", "errors"},
    "packing": {"interop", "runtime", "model", "evidence", "errors"},
    "verify": {"interop", "runtime", "model", "evidence", "report", "errors"},
}
LAYERED = sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] in MAY_IMPORT)


def _ogverify_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, first component after ``ogverify.``) of every import of ogverify code."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "ogverify":
                found += [(node.lineno, alias.name) for alias in node.names]
            elif node.module.startswith("ogverify."):
                found.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("ogverify.")]
    return found


def test_every_subpackage_has_a_rule() -> None:
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(MAY_IMPORT) | {"cli"}


@pytest.mark.parametrize("module", LAYERED, ids=lambda m: str(m.relative_to(PACKAGE)))
def test_imports_point_down(module: Path) -> None:
    layer = module.relative_to(PACKAGE).parts[0]
    allowed = MAY_IMPORT[layer] | {layer, "__version__"}
    wrong = [f"line {line}: ogverify.{name}" for line, name in _ogverify_imports(ast.parse(module.read_text("utf-8")))
             if name not in allowed]
    assert not wrong, f"{layer}/ may import only {sorted(MAY_IMPORT[layer])}: " + "; ".join(wrong)
