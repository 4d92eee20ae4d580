"""The shipped fixtures: rebuilt deterministically, and each checks the way the README says, on any CPU.

The shipped model's outputs are exact integers put through one Sub and one Div
(``models.standardised_mlp``), so onnxruntime gives the same bits on every CPU: the verdicts and
numbers asserted here are the same everywhere. ``test_onnxruntime_computes_the_shipped_model_op_by_op``
checks that premise on the machine running the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from tests.conftest import RunCli
from tests.fixtures import models
from tests.fixtures.build_shipped import build

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
# Files that do not record the machine that built them (the bundles hold its fingerprint).
MACHINE_INDEPENDENT = ["demo.key", "demo.key.pub", "mlp.onnx", "x.npy"]


def test_fixture_build_is_deterministic(tmp_path: Path) -> None:
    first = build(tmp_path / "one")
    second = build(tmp_path / "two")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    # The committed fixtures are what the builder writes (rebuild: python -m tests.fixtures.build_shipped).
    for path in first:
        if path.name in MACHINE_INDEPENDENT:
            assert path.read_bytes() == (FIXTURES / path.relative_to(tmp_path / "one")).read_bytes(), path.name


def test_onnxruntime_computes_the_shipped_model_op_by_op() -> None:
    """The premise of the fixtures, checked on this CPU: the products are exact integers and
    onnxruntime's Sub and Div are float32 IEEE operations, so its outputs are float32 arithmetic
    op by op, whatever kernels it picks here."""
    model = onnx.load(str(FIXTURES / "models" / "mlp.onnx"))
    x = np.load(FIXTURES / "models" / "x.npy")
    expected = models.float32_outputs(model, x)
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        (y,) = session.run(["y"], {"x": x})
        assert y.tobytes() == expected.tobytes(), level


def test_shipped_bundle_verifies(run_cli: RunCli) -> None:
    result = run_cli("check", FIXTURES / "mlp.ogb", "--trusted-key", FIXTURES / "demo.key.pub", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["headline"] == "VERIFIED: outputs reproduced"
    # Not merely within the bundle's allclose tolerance: the same bits on every CPU.
    assert [o["bitwise_equal"] for o in report["outputs"]] == [True]


def test_shipped_tampered_bundle_names_the_input(run_cli: RunCli) -> None:
    result = run_cli("check", FIXTURES / "mlp-tampered.ogb", "--trusted-key", FIXTURES / "demo.key.pub")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "FAILED: input 'x': blake3 digest does not match the manifest (content changed)"
    )


def test_shipped_numpy_bundle_explains_the_numbers(run_cli: RunCli) -> None:
    result = run_cli("check", FIXTURES / "mlp-numpy.ogb", "--trusted-key", FIXTURES / "demo.key.pub")
    assert result.exit_code == 1
    headline, cause = result.stdout.splitlines()[:2]
    # numpy rounds once, onnxruntime after the Sub and after the Div: the same elements differ on every CPU.
    assert headline == "FAILED: output 'y' [exact]: 8 of 32 elements differ bitwise (max abs diff 7.63e-06, max 1 ULP)"
    # Which cause is stated depends on this machine: where its CPU has numeric features the producer's
    # lacked, that stays a possible explanation beside "computed otherwise" (the bundle has no trace).
    if "likely to change numerics" in result.stdout:
        assert cause.startswith("cause: no configuration knob reproduces the outputs; two explanations remain: "
                                "this machine computes differently (CPU features"), cause
        assert "or the outputs were computed otherwise" in cause
    else:
        assert cause.startswith("cause: outputs are not explained by any configuration knob"), cause
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"$ ogverify check fixtures/mlp-numpy.ogb --trusted-key fixtures/demo.key.pub\n{headline}\n" in readme
