"""Shared fixtures: tiny models on disk, inputs, keys, and a CLI runner."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pytest
import typer.main
from typer.testing import CliRunner

from ogverify.cli.app import app
from tests.fixtures import models

# The cross-CPU step of .ci/run runs the tests in an emulated older CPU; the processes that
# re-execute models must run there too, so they start through the wrapper it names.
if os.environ.get("OGVERIFY_TEST_PYTHON"):
    sys.executable = os.environ["OGVERIFY_TEST_PYTHON"]


# Seconds each of the slowest test files took on the project's 2-core machine (2026-11-30). The
# suite runs a file per worker (pyproject: --dist loadfile, --no-loadscope-reorder); handing out
# the longest files first lets the workers finish together instead of one running the last long
# file alone. Only the order matters: a file not named keeps its place after these.
SLOW_FILES = {
    "tests/test_drift.py": 34, "tests/test_check.py": 23, "tests/test_crossenv.py": 22,
    "tests/test_pack.py": 18, "tests/hostile/test_corpus.py": 17, "tests/test_gate.py": 15,
    "tests/test_values.py": 12, "tests/test_output_formats.py": 12, "tests/test_signing.py": 11,
    "tests/test_extract_inspect.py": 11, "tests/test_log.py": 9, "tests/hostile/test_pack_side.py": 8,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files first (a stable sort: tests within a file keep their order)."""
    items.sort(key=lambda item: -SLOW_FILES.get(item.nodeid.split("::", 1)[0], 0))


@dataclass
class CliResult:
    """What one in-process ``ogverify`` invocation did."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


RunCli = Callable[..., CliResult]


class _Command(Protocol):
    def main(self, args: list[str], prog_name: str) -> object: ...


@functools.cache
def _command() -> _Command:
    return typer.main.get_command(app)


def invoke_cli(*args: str | Path) -> CliResult:
    """Run ``ogverify ARGS...`` in-process; returns exit code, stdout and stderr separately.

    Module-scoped fixtures call it directly; tests take it as the ``run_cli`` fixture. It is
    ``typer.testing.CliRunner().invoke(app, ...)`` with the command built once: invoke rebuilds
    every command and parameter of the app on each call (70 ms, more than most commands take,
    and the suite makes a thousand calls). An exception other than an exit propagates.
    """
    with CliRunner().isolation() as (stdout, stderr, _):
        try:
            _command().main(args=[str(a) for a in args], prog_name="ogverify")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        out, err = stdout.getvalue().decode(), stderr.getvalue().decode()
    assert "Traceback" not in out + err
    return CliResult(code, out.replace("\r\n", "\n"), err.replace("\r\n", "\n"))


@pytest.fixture
def run_cli() -> RunCli:
    """Run ``ogverify ARGS...`` in-process (``invoke_cli``)."""
    return invoke_cli


@pytest.fixture
def keypair(tmp_path: Path, run_cli: RunCli) -> tuple[Path, Path]:
    """A fresh ed25519 key pair: (private key path, public key path)."""
    key = tmp_path / "keys" / "signer.key"
    key.parent.mkdir()
    assert run_cli("keygen", "--out", key).exit_code == 0
    return key, key.with_name("signer.key.pub")


def write_mlp_files(folder: Path) -> dict[str, Path]:
    """An MLP model and its input x[4,16] written into ``folder``: {"model", "x"}."""
    folder.mkdir(parents=True, exist_ok=True)
    model = models.save(models.mlp(), folder / "mlp.onnx")
    x = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    np.save(folder / "x.npy", x)
    return {"model": model, "x": folder / "x.npy"}


@pytest.fixture
def mlp_files(tmp_path: Path) -> dict[str, Path]:
    """An MLP model and its input x[4,16] on disk: {"model", "x"}."""
    return write_mlp_files(tmp_path / "mlp")
