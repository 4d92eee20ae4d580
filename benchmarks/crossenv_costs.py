"""What the cross-machine evidence costs: ``python benchmarks/crossenv_costs.py [REPEATS]``.

- ``pack --trace`` against ``pack --no-trace`` (the 256→512→64 MLP and the 32-channel conv net,
  outputs computed with --run), alternating, median of REPEATS (default 5);
- ``ogverify profile`` against one inference in a fresh process (what ``pack --run`` spends to
  compute outputs: start Python, import onnxruntime, build the session, run once), the baseline
  a user would otherwise pay;
- a single-knob explanation: ``check`` of the MLP whose outputs were produced with
  ``session.disable_prepacking=1`` and recorded as 0.
Prints one line per measurement with the ratio to its baseline measured in the same run.
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures import models  # noqa: E402

ONE_INFERENCE = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])  # default options
session.run(None, {sys.argv[2]: np.load(sys.argv[3])})
"""


def _seconds(command: list[str], codes: tuple[int, ...] = (0,)) -> float:
    started = time.perf_counter()
    process = subprocess.run(command, check=False, capture_output=True)
    if process.returncode not in codes:
        raise SystemExit(f"{' '.join(command)}: exit {process.returncode}: {process.stderr.decode()[-300:]}")
    return time.perf_counter() - started


def main(repeats: int) -> int:
    with tempfile.TemporaryDirectory(prefix="ogverify-crossenv-") as work:
        folder = Path(work)
        cases = {
            "mlp": (models.save(models.big_mlp(), folder / "mlp.onnx"), "x", (8, 256)),
            "conv": (models.save(models.big_conv(), folder / "conv.onnx"), "image", (1, 3, 32, 32)),
        }
        for label, (model, name, shape) in cases.items():
            data = folder / f"{label}.npy"
            np.save(data, np.random.default_rng(1).standard_normal(shape).astype(np.float32))
            times: dict[str, list[float]] = {"--no-trace": [], "--trace": []}
            for _ in range(repeats):
                for flag, spent in times.items():
                    spent.append(_seconds(["ogverify", "pack", str(model), "-i", f"{name}={data}", "--run",
                                           flag, "--force", "--out", str(folder / "b.ogb")]))
            plain, traced = statistics.median(times["--no-trace"]), statistics.median(times["--trace"])
            print(f"pack {label}: --no-trace {plain:.2f} s, --trace {traced:.2f} s ({traced / plain:.2f}x)")
            inference = statistics.median(
                _seconds([sys.executable, "-c", ONE_INFERENCE, str(model), name, str(data)]) for _ in range(repeats))
            profile = statistics.median(
                _seconds(["ogverify", "profile", str(model), "-i", f"{name}={data}"]) for _ in range(repeats))
            print(f"profile {label}: {profile:.2f} s; one inference in a fresh process {inference:.2f} s "
                  f"({profile / inference:.1f}x)")
        from ogverify.evidence.execution import ExecutionConfig
        from ogverify.packing.pack import pack, runtime_version
        from ogverify.runtime.trials import Trial, run_trials

        recorded = ExecutionConfig(runtime_version=runtime_version())
        produced = dataclasses.replace(recorded, config_entries={"session.disable_prepacking": "1"})
        model, name, _ = cases["mlp"]
        inputs = {name: np.load(folder / "mlp.npy")}
        claimed = run_trials(model, inputs, [Trial("producer", produced)], folder / "producer")[0].outputs
        bundle = folder / "drift.ogb"
        pack(model, bundle, inputs=inputs, claimed_outputs=claimed, config=recorded, trace=True)
        check = [_seconds(["ogverify", "check", str(bundle), "--allow-unsigned", "--format", "json"], (1,))
                 for _ in range(repeats)]
        clean = [_seconds(["ogverify", "check", str(folder / "b.ogb"), "--allow-unsigned"]) for _ in range(repeats)]
        print(f"single-knob explanation (prepacking, MLP): {statistics.median(check):.2f} s "
              f"(min {min(check):.2f}); a clean check of the conv bundle {statistics.median(clean):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
