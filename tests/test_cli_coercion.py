"""The command line's own value conversion (ogverify.cli.coercion) against typer's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

from ogverify.cli.app import app
from ogverify.cli.coercion import _converter, _PlainParam

ROOT = Path(__file__).resolve().parent.parent
VALUES = ["5", "-3", "007", "0", "1.5", "-0.25", "1e3", " 5", "5 ", "5_000", "abc", "", "x=y", "~/k.pub",
          "a/b.ogb", "1" * 30, "inf", "nan", "١٢", "-"]


def _typer_params() -> list[Any]:
    command = typer.main.get_command(app)
    params = list(command.params)
    for sub in command.commands.values():  # type: ignore[attr-defined]
        params.extend(sub.params)
    return params


def _outcome(runtime: Any, value: Any, param: Any) -> tuple[str, Any]:
    try:
        return "ok", runtime._coerce_value(value, param=param, ctx=None)
    except BadParameter as exc:
        return "error", exc.format_message()


@pytest.mark.parametrize("param", _typer_params(), ids=lambda p: p.name)
def test_plain_conversion_gives_what_typer_gives(param: Any, tmp_path: Path) -> None:
    descriptor = param.type_descriptor
    convert = _converter(descriptor.annotation, descriptor.parameter_info)
    if convert is None:
        pytest.skip(f"{descriptor.annotation} is left to typer")
    ours = _PlainParam(descriptor.parameter_info, descriptor.annotation, convert, descriptor)
    theirs = build_runtime_param(descriptor)
    unreadable = tmp_path / "unreadable"
    unreadable.write_text("x")
    unreadable.chmod(0)
    values: list[Any] = [*VALUES, str(unreadable), str(tmp_path), 7, 2.5, True, False, Path("p")]
    if getattr(descriptor.annotation, "__origin__", None) is list:
        values = [*values, ["1", "2"], ("a", "b"), []]
    for value in values:
        assert repr(_outcome(ours, value, param)) == repr(_outcome(theirs, value, param)), value


def test_every_ogverify_parameter_converts_without_typer(tmp_path: Path) -> None:
    """If a new option used a type the plain conversion does not know, check would import pydantic again."""
    left = [p.name for p in _typer_params()
            if _converter(p.type_descriptor.annotation, p.type_descriptor.parameter_info) is None]
    assert left == []


def test_check_does_not_import_pydantic() -> None:
    bundle = ROOT / "fixtures" / "mlp.ogb"
    process = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ogverify", "check", str(bundle),
         "--trusted-key", str(ROOT / "fixtures" / "demo.key.pub"), "--format", "json"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"}, check=False,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in process.stderr.splitlines() if "|" in line}
    assert "typer" in imported
    assert not {name for name in imported if name.split(".")[0] == "pydantic"}
