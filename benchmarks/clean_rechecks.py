"""50 clean re-checks of the same bundle must report no drift: ``python benchmarks/clean_rechecks.py [N]``.

Packs one bundle (the 256→512→64 MLP, outputs computed with --run, with a trace), then runs
``ogverify check --format json`` N times (default 50), each a separate process, and counts
verdicts other than verified and any drift explanation. Prints one line per 10 checks and a
summary; exits 1 if any check reported drift.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures import models  # noqa: E402


def main(count: int) -> int:
    with tempfile.TemporaryDirectory(prefix="ogverify-rechecks-") as work:
        folder = Path(work)
        model = models.save(models.big_mlp(), folder / "mlp.onnx")
        np.save(folder / "x.npy", np.random.default_rng(1).standard_normal((8, 256)).astype(np.float32))
        bundle = folder / "clean.ogb"
        subprocess.run(
            ["ogverify", "pack", str(model), "-i", f"x={folder / 'x.npy'}", "--run", "--trace", "--out", str(bundle)],
            check=True, capture_output=True,
        )
        drifted = 0
        started = time.perf_counter()
        for index in range(1, count + 1):
            process = subprocess.run(
                ["ogverify", "check", str(bundle), "--allow-unsigned", "--format", "json"],
                capture_output=True, text=True, check=False,
            )
            report = json.loads(process.stdout)
            if (process.returncode != 0 or report["explanation"] is not None
                    or report.get("first_divergent_node") is not None):
                drifted += 1
                print(f"check {index}: exit {process.returncode}: {report['headline']}")
            if index % 10 == 0:
                print(f"{index} checks, {drifted} with drift")
        seconds = time.perf_counter() - started
    print(f"{count} clean re-checks, {drifted} reported drift, {seconds / count:.2f} s per check")
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
