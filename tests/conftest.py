"""Shared fixtures: tiny models on disk, inputs, keys, and a CLI runner."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ogverify.cli.app import app
from tests.fixtures import models

# The cross-CPU step of .ci/run runs the tests in an emulated older CPU; the processes that
# re-execute models must run there too, so they start through the wrapper it names.
if os.environ.get("OGVERIFY_TEST_PYTHON"):
    sys.executable = os.environ["OGVERIFY_TEST_PYTHON"]


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


def invoke_cli(*args: str | Path) -> CliResult:
    """Run ``ogverify ARGS...`` in-process; returns exit code, stdout and stderr separately.

    Module-scoped fixtures call it directly; tests take it as the ``run_cli`` fixture.
    """
    result = CliRunner().invoke(app, [str(a) for a in args], prog_name="ogverify")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.stdout + result.stderr
    return CliResult(result.exit_code, result.stdout, result.stderr)


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
