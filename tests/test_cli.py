"""The command line as typer builds it: the typer range we test, usage lines, value conversion."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ogverify.cli.common import guarded
from ogverify.errors import BundleError, UsageError
from tests.conftest import RunCli
from tools.gen_man import command_names

ROOT = Path(__file__).resolve().parent.parent


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_installed_typer_is_in_the_pinned_range() -> None:
    """The help texts (README, man page) and start-up figures hold for this range only: a venv
    left on another typer must fail here, not regenerate the man page in that typer's style."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    (pin,) = [d for d in dependencies if re.match(r"typer\b", d)]
    bounds = dict(re.findall(r"(>=|<)\s*([\d.]+)", pin))
    installed = _release(version("typer"))
    assert _release(bounds[">="]) <= installed < _release(bounds["<"]), (
        f"typer {version('typer')} is installed, pyproject pins {pin!r}: pip install -e '.[dev,dask]'")


@pytest.mark.parametrize("command", ["", *command_names()])
def test_usage_lines_show_plain_metavars(command: str, run_cli: RunCli) -> None:
    usage = run_cli(*command.split(), "--help").stdout.splitlines()[0]
    assert usage.startswith("Usage: ogverify"), usage
    assert not set("{}<>") & set(usage), usage


def test_check_usage_says_bundles_repeat(run_cli: RunCli) -> None:
    text = run_cli("check", "--help").stdout
    assert text.splitlines()[0] == "Usage: ogverify check [OPTIONS] BUNDLE..."
    assert "list[" not in text and "<path>" not in text


@pytest.mark.parametrize(("option", "value", "kind"), [
    ("--jobs", "abc", "integer"), ("--jobs", "1e3", "integer"), ("--timeout", "1x", "float"),
    ("--explain-budget", "", "integer"),
])
def test_a_value_of_the_wrong_type_is_a_usage_error_naming_the_option(
    option: str, value: str, kind: str, run_cli: RunCli
) -> None:
    result = run_cli("check", str(ROOT / "fixtures" / "mlp.ogb"), option, value)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr and f"is not a valid {kind}" in result.stderr
    assert result.stdout == ""


def test_check_starts_without_pydantic() -> None:
    """Start-up is most of a small check's cost over a bare onnxruntime run (docs/performance.md)."""
    process = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ogverify", "check", str(ROOT / "fixtures" / "mlp.ogb"),
         "--trusted-key", str(ROOT / "fixtures" / "demo.key.pub"), "--format", "json", "--no-policy"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"}, check=False,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in process.stderr.splitlines() if "|" in line}
    assert "typer" in imported
    assert not {name for name in imported if name.split(".")[0] == "pydantic"}
    # Nor cryptography's serialization package (~25 ms: SSH, PKCS#12...): a PEM public key is read
    # directly, and trusted keys reach the check as raw ed25519 bytes (verify.batch.CheckSpec).
    assert "cryptography.hazmat.primitives.serialization" not in imported


def test_an_error_is_shown_as_its_diagnostics(run_cli: RunCli) -> None:
    result = run_cli("fingerprint", "--format", "xml")
    assert result.exit_code == 2
    assert result.stderr == UsageError("unknown format 'xml'; use text or json").diagnostics() + "\n"


def test_diagnostics_is_one_line_and_the_detail_only_when_asked() -> None:
    error = BundleError("bundle b.ogb: manifest.json is not JSON", "line 3: expected ','")
    assert error.diagnostics() == "error: bundle b.ogb: manifest.json is not JSON"
    assert error.diagnostics(verbose=True) == "error: bundle b.ogb: manifest.json is not JSON\nline 3: expected ','"


def _crashing_app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @guarded
    def crash() -> None:
        raise ValueError("boom")

    return app


@pytest.mark.parametrize("debug", [False, True])
def test_a_crash_is_one_line_and_exit_3_with_the_traceback_only_under_ogverify_debug(debug: bool) -> None:
    env = {"OGVERIFY_DEBUG": "1" if debug else ""}
    result = CliRunner().invoke(_crashing_app(), [], env=env)
    assert result.exit_code == 3
    lines = result.stderr.splitlines()
    assert lines[0] == "error: internal error: ValueError: boom"
    assert ("Traceback (most recent call last):" in lines) is debug


@pytest.mark.parametrize(("arguments", "line"), [
    (["check", "--bogus", "b.ogb"], "error: No such option: --bogus"),
    (["pack"], "error: Missing argument 'MODEL'; see 'ogverify pack --help'"),
    (["log", "init"], "error: Missing argument 'LOG'; see 'ogverify log init --help'"),
    (["nosuch"], "error: No such command 'nosuch'; see 'ogverify --help'"),
])
def test_a_parse_error_is_one_error_line_and_exit_2(arguments: list[str], line: str, run_cli: RunCli) -> None:
    from tests.bundle_helpers import single_error_line

    result = run_cli(*arguments)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and single_error_line(result).startswith(line), result.stderr
    assert "Usage:" not in result.stderr


def test_a_command_group_alone_still_shows_its_commands(run_cli: RunCli) -> None:
    result = run_cli("log")
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: ogverify log [OPTIONS] COMMAND [ARGS]...")
    assert "checkpoint" in result.stderr


def _as_user_sees(app: typer.Typer, arguments: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, arguments, prog_name="ogverify")
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", command_names())
def test_the_app_narrowed_to_the_command_a_start_names_reads_as_the_whole_app(name: str) -> None:
    """The console entry builds only the command it is started with (``app_for``): its help, a
    usage error and the root's --version read as they do from the whole app."""
    from ogverify.cli.app import app, app_for

    narrowed = app_for([name, "--help"])
    assert narrowed is not app and len(narrowed.registered_commands) + len(narrowed.registered_groups) == 1
    for arguments in ([name, "--help"], [name, "--no-such-option"], ["--version", name]):
        assert _as_user_sees(narrowed, arguments) == _as_user_sees(app, arguments), arguments


@pytest.mark.parametrize("arguments", [[], ["--help"], ["--version"], ["nosuch"], ["-h", "check"]])
def test_a_start_that_names_no_command_first_gets_the_whole_app(arguments: list[str]) -> None:
    from ogverify.cli.app import app, app_for

    assert app_for(arguments) is app
