"""Evidence-log performance targets, each against its baseline measured in the same run.

    python benchmarks/log_bench.py [--quick] [--json FILE]

- **audit throughput**: ``ogverify audit LOG --sample 400 --jobs 2`` (a process, start-up, checkpoint,
  inclusion proofs, digests and worker start included) against a bare onnxruntime loop that runs
  the same 400 records in one process at ORT's default session options. Target: >= 50% of the
  bare loop's records per second. The model's single-record inference takes >= 5 ms.
- **append cost**: ``EvidenceLog.append_batch`` of 10,000 records (inputs and claimed outputs from
  arrays, as ``log append --inputs-npz --claimed-npz`` does after loading them) against writing the
  same arrays with ``numpy.savez``. Target: <= 2x savez.

Prints a Markdown table (the rows of docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import matmul_chain

DIM, LAYERS, BATCH = 512, 40, 96  # audit: x, y float32[96, 512]; >= 5 ms per record (bare, default options;
# 16 layers took 2.6 ms on the project's machine of 2026-12)
APPEND_DIM, APPEND_BATCH = 256, 8  # append: x, y float32[8, 256], 16 KiB of tensors per record


def bare_loop(model: Path, xs: np.ndarray) -> tuple[float, float]:
    """Seconds for the records in one process at default session options (session build included),
    and the median seconds of one record."""
    import onnxruntime as ort

    started = time.perf_counter()
    session = ort.InferenceSession(str(model))
    times = []
    for x in xs:
        t = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - t)
    return time.perf_counter() - started, float(np.median(times))


def bench_audit(work: Path, sample: int) -> dict[str, object]:
    from ogverify.evidence.signing import generate_key_pair
    from ogverify.packing.log import EvidenceLog

    work.mkdir(parents=True)
    model = matmul_chain(work, name="chain", dim=DIM, layers=LAYERS, batch=BATCH, external=False)
    xs = np.random.default_rng(0).standard_normal((sample + sample // 4, BATCH, DIM), dtype=np.float32)
    key, pub, _ = generate_key_pair(work / "producer.key")
    with EvidenceLog.create(work / "log", model) as log:
        log.append_batch({"x": xs})  # claims computed under the log's configuration
        log.checkpoint([key])
    command = [sys.executable, "-m", "ogverify", "audit", str(work / "log"), "--trusted-key", str(pub),
               "--sample", str(sample), "--jobs", "2", "--seed", "01", "--format", "json"]
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        runs.append(time.perf_counter() - started)
        assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    chosen = xs[report["sampled_indices"]]
    bare = [bare_loop(model, chosen) for _ in range(3)]
    ours, baseline = min(runs), min(b[0] for b in bare)
    ratio = (sample / ours) / (sample / baseline)
    return {
        "figure": f"audit throughput, {sample} records sampled (`audit --jobs 2`, best of 3)",
        "ours": f"{sample / ours:.0f} records/s ({ours:.2f} s)",
        "baseline": f"bare onnxruntime loop {sample / baseline:.0f} records/s ({baseline:.2f} s)",
        "ratio": f"{ratio:.2f}x", "target": ">= 0.5x bare", "status": "PASS" if ratio >= 0.5 else "FAIL",
        "note": f"one record {min(b[1] for b in bare) * 1000:.1f} ms bare (median); the audit's time includes its "
                "process start, checkpoint and inclusion proofs, digests and two workers' start",
    }


def bench_append(work: Path, count: int) -> dict[str, object]:
    from ogverify.packing.log import EvidenceLog

    work.mkdir(parents=True)
    model = matmul_chain(work, name="append", dim=APPEND_DIM, layers=1, batch=APPEND_BATCH, external=False)
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((count, APPEND_BATCH, APPEND_DIM), dtype=np.float32)
    ys = rng.standard_normal((count, APPEND_BATCH, APPEND_DIM), dtype=np.float32)
    ours, baseline = [], []
    cpu_ours, cpu_baseline = [], []  # processor seconds of the process (all its threads), less moved by load
    for attempt in range(3):
        target = work / f"log{attempt}"
        with EvidenceLog.create(target, model) as log:
            started, cpu = time.perf_counter(), _cpu()
            log.append_batch({"x": xs}, {"y": ys})
            ours.append(time.perf_counter() - started)
            cpu_ours.append(_cpu() - cpu)
        shutil.rmtree(target)
        started, cpu = time.perf_counter(), _cpu()
        np.savez(work / f"arrays{attempt}.npz", x=xs, y=ys)
        baseline.append(time.perf_counter() - started)
        cpu_baseline.append(_cpu() - cpu)
        (work / f"arrays{attempt}.npz").unlink()
    ratio = min(ours) / min(baseline)
    return {
        "figure": f"append {count:,} records from arrays (`log append --inputs-npz --claimed-npz`, best of 3)",
        "ours": f"{min(ours):.2f} s", "baseline": f"numpy.savez {min(baseline):.2f} s",
        "ratio": f"{ratio:.2f}x", "target": "<= 2x savez", "status": "PASS" if ratio <= 2 else "FAIL",
        "note": f"{2 * xs[0].nbytes // 1024} KiB of tensors per record; one pack, tiles and entry bundles written; "
                f"processor time {min(cpu_ours):.2f} s vs {min(cpu_baseline):.2f} s "
                f"({min(cpu_ours) / max(min(cpu_baseline), 1e-9):.2f}x)",
    }


def _cpu() -> float:
    import os

    times = os.times()
    return times.user + times.system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not the real figures")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ogverify-log-bench-"))
    try:
        rows = [bench_audit(work / "audit", 40 if args.quick else 400),
                bench_append(work / "append", 500 if args.quick else 10_000)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    keys = ("figure", "ours", "baseline", "ratio", "target", "status", "note")
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["status"] == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
