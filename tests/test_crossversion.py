"""Across onnxruntime versions: a bundle packed under the oldest supported onnxruntime and numpy
(1.20.1, 1.26.4) is checked here, and the recorded trace names where the two runtimes part.

Needs a second virtual environment with the old versions and this ogverify, named by
``OGVERIFY_OLD_VENV``; ``.ci/run`` makes one (docs/drift.md, "Running the cross-version test").
Without it the test is skipped: making one costs a minute of downloads.

What the two runtimes compute depends on both versions and on this CPU, so nothing here is a
hard-coded answer: the test asks the old runtime itself for every node output at the reference
level and computes where they first differ from this runtime's, then asserts that check named
that node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import RunCli
from tests.fixtures import models

OLD_VENV = os.environ.get("OGVERIFY_OLD_VENV")
pytestmark = pytest.mark.skipif(
    not OLD_VENV, reason="OGVERIFY_OLD_VENV (a venv with onnxruntime 1.20.1 and numpy 1.26.4) is not set; "
                         ".ci/run sets it")

# Run by the old interpreter: every node output of the model at ORT_DISABLE_ALL, one thread.
DUMP = """
import sys, numpy as np, onnx, onnxruntime as ort
model = onnx.load(sys.argv[1])
names = [o for n in model.graph.node for o in n.output if o]
present = {o.name for o in model.graph.output}
model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in present)
options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
options.intra_op_num_threads = 1
session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
values = session.run(names, {"x": np.load(sys.argv[2])})
np.savez(sys.argv[3], **{f"t{i}": v for i, v in enumerate(values)})
print(ort.__version__, np.__version__)
"""


def _node_outputs(python: str | Path, model: Path, x: Path, out: Path) -> tuple[list[np.ndarray], str, str]:
    """Every node output under ``python``'s onnxruntime, with its onnxruntime and numpy versions."""
    dumped = subprocess.run([python, "-c", DUMP, model, x, out], capture_output=True, text=True, check=False)
    assert dumped.returncode == 0, dumped.stderr
    runtime, numpy_version = dumped.stdout.split()
    values = np.load(out)
    return [values[f"t{i}"] for i in range(len(values.files))], runtime, numpy_version


def test_packed_under_the_oldest_runtime_checks_here_and_the_trace_names_the_first_divergent_node(
    tmp_path: Path, run_cli: RunCli
) -> None:
    assert OLD_VENV is not None
    old_python, old_ogverify = Path(OLD_VENV) / "bin" / "python", Path(OLD_VENV) / "bin" / "ogverify"
    model = models.save(models.transformer_block(), tmp_path / "block.onnx")
    x = np.random.default_rng(3).standard_normal((1, 64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    bundle = tmp_path / "old.ogb"
    packed = subprocess.run([old_ogverify, "pack", model, "-i", f"x={tmp_path / 'x.npy'}", "--run", "--trace",
                             "--out", bundle], capture_output=True, text=True, check=False)
    assert packed.returncode == 0, packed.stderr
    old_values, old_runtime, old_numpy = _node_outputs(old_python, model, tmp_path / "x.npy", tmp_path / "old.npz")
    assert (old_runtime, old_numpy) == ("1.20.1", "1.26.4")
    here_values, _, _ = _node_outputs(sys.executable, model, tmp_path / "x.npy", tmp_path / "here.npz")

    import onnxruntime

    result = run_cli("check", bundle, "--allow-unsigned", "--format", "json", "--explain-budget", "3")
    report = json.loads(result.stdout)
    nodes = [(n.name, n.op_type) for n in onnx.load(str(model)).graph.node]
    differing = [i for i, (a, b) in enumerate(zip(here_values, old_values, strict=True)) if a.tobytes() != b.tobytes()]
    if result.exit_code == 0:
        # Both runtimes compute these outputs bit for bit on this CPU (the final output included).
        assert report["first_divergent_node"] is None
        return
    assert result.exit_code == 1, result.output
    assert differing, "check failed although no node output differs between the runtimes"
    name, op_type = nodes[differing[0]]
    node = report["first_divergent_node"]
    assert (node["name"], node["op_type"], node["role"]) == (name, op_type, "ROOT")
    assert report["cause"].startswith(f"{op_type} `{name}` is the first node whose output differs")
    assert f"onnxruntime 1.20.1 -> {onnxruntime.__version__}" in report["cause"]
