"""How an environment difference reads: a changed list (CPU flags) says what is missing and what is
new, not both whole lists wrapped over five lines; the JSON report keeps the full values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ogverify.packing.pack import pack
from ogverify.report.findings import EnvironmentDifference
from ogverify.runtime.fingerprint import capture
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
