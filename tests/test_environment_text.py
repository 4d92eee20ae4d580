"""How an environment difference reads: a changed list (CPU flags) says what is missing and what is
new, not both whole lists wrapped over five lines; the JSON report keeps the full values."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ogverify.packing.pack import pack
from ogverify.report.findings import EnvironmentDifference
from ogverify.runtime.fingerprint import capture, capture_cached
from tests.conftest import RunCli
from tests.fixtures import models

FAKE = [f"avx999_{n}" for n in "abcdefghijk"]  # flags no CPU has: recorded, missing here


def test_a_list_difference_names_what_is_missing_and_what_is_new() -> None:
    d = EnvironmentDifference("cpu.numeric_flags", ["a", "b", "c", "d", "e", "f"], ["a", "z"], "high", "test")
    assert d.change() == "5 recorded value(s) missing here: b, c, d and 2 more; 1 value(s) here, not recorded: z"
    assert EnvironmentDifference("x", "1", "2", "low", "").change() == "recorded '1', here '2'"


def test_cpu_flags_that_differ_take_one_line_in_the_report(tmp_path: Path, run_cli: RunCli) -> None:
    environment = capture()
    environment["cpu"]["numeric_flags"] = sorted([*environment["cpu"]["numeric_flags"], *FAKE])
    model = models.save(models.mlp(), tmp_path / "mlp.onnx")
    bundle = pack(model, tmp_path / "b.ogb", inputs={"x": np.ones((4, 16), np.float32)},
                  environment=environment).path
    result = run_cli("check", bundle, "--allow-unsigned")
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if "cpu.numeric_flags:" in line]
    assert "cpu.numeric_flags: 11 recorded value(s) missing here: avx999_a, avx999_b, avx999_c and 8 more" in line
    assert "avx999_k" not in result.stdout
    report = json.loads(run_cli("check", bundle, "--allow-unsigned", "--format", "json").stdout)
    evidence = [f["evidence"] for top in report["findings"] for f in top["children"]
                if f["subject"] == "cpu.numeric_flags"]
    assert evidence[0]["recorded"] == environment["cpu"]["numeric_flags"]


def test_the_cached_fingerprint_is_the_one_capture_takes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``check --no-rerun`` reads what needs numpy and onnxruntime imported from a cache: the first
    call fills it, the second reads it, and both give exactly ``capture``'s dictionary."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = capture_cached()
    (cached,) = (tmp_path / "ogverify").glob("fingerprint-*.json")
    second = capture_cached()
    assert first == second == capture()
    # A cache written by another installation (another key) is not believed.
    stored = json.loads(cached.read_text(encoding="utf-8"))
    stored["key"] += "x"
    stored["imported"]["numpy"] = "0.0"
    cached.write_text(json.dumps(stored), encoding="utf-8")
    assert capture_cached() == capture()


def test_check_no_rerun_imports_neither_numpy_nor_onnxruntime(tmp_path: Path) -> None:
    """Once the cache holds this installation's fingerprint (and for a bundle with a model file)."""
    import subprocess
    import sys

    model = models.save(models.mlp(), tmp_path / "mlp.onnx")
    np.save(tmp_path / "x.npy", np.ones((4, 16), np.float32))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    bundle = tmp_path / "b.ogb"
    command = [sys.executable, "-m", "ogverify"]
    subprocess.run([*command, "pack", str(model), "--out", str(bundle), "-i", f"x={tmp_path / 'x.npy'}", "--run"],
                   env=env, check=True, capture_output=True)
    check = [*command, "check", str(bundle), "--allow-unsigned", "--no-rerun", "--no-policy"]
    subprocess.run(check, env=env, capture_output=True, check=False)  # fills the cache
    imports = subprocess.run([sys.executable, "-X", "importtime", *check[1:]], env=env, capture_output=True,
                             text=True, check=False).stderr
    loaded = {line.split("|")[-1].strip() for line in imports.splitlines() if "|" in line}
    assert "onnxruntime" not in loaded and "numpy" not in loaded, sorted(loaded)[:5]
