"""The layering rules the code keeps, read from its imports and calls (not from docs).

Only the CLI imports typer; only the CLI and the text formatter import rich; nothing below the
CLI prints or writes to stdout/stderr itself (it hands text or events up to the CLI).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ogverify"
MODULES = sorted(PACKAGE.rglob("*.py"))
RICH_ALLOWED = {Path("report/formats/text.py")}


def _relative(path: Path) -> Path:
    return path.relative_to(PACKAGE)


def _in_cli(path: Path) -> bool:
    return _relative(path).parts[0] == "cli"


def _imported(tree: ast.AST) -> set[str]:
    """Top-level package names imported anywhere in the module, function bodies included."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _writes_to_terminal(tree: ast.AST) -> list[int]:
    """Lines that call print() or sys.stdout/sys.stderr.write()."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        printing = isinstance(func, ast.Name) and func.id == "print"
        writing = (isinstance(func, ast.Attribute) and func.attr in ("write", "writelines")
                   and isinstance(func.value, ast.Attribute) and func.value.attr in ("stdout", "stderr")
                   and isinstance(func.value.value, ast.Name) and func.value.value.id == "sys")
        if printing or writing:
            lines.append(node.lineno)
    return lines


def test_the_scan_sees_the_modules() -> None:
    assert len(MODULES) > 40
    assert any(_in_cli(m) and "typer" in _imported(ast.parse(m.read_text(encoding="utf-8"))) for m in MODULES)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: str(_relative(m)))
def test_ui_libraries_stay_in_the_cli(module: Path) -> None:
    tree = ast.parse(module.read_text(encoding="utf-8"), str(module))
    imported = _imported(tree)
    if not _in_cli(module):
        assert "typer" not in imported, f"{_relative(module)} imports typer: only ogverify/cli/ may"
        assert "rich" not in imported or _relative(module) in RICH_ALLOWED, (
            f"{_relative(module)} imports rich: only ogverify/cli/ and the text formatter may")
        lines = _writes_to_terminal(tree)
        assert not lines, f"{_relative(module)} writes to the terminal (lines {lines}): return text or tell an observer"
