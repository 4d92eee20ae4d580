"""Re-execution of a model in a fresh subprocess under a recorded configuration."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ogverify.errors import ReplayError
from ogverify.execution import ExecutionConfig
from ogverify.tensors import Array, parse_npy

DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class ReplayResult:
    """Outputs of one fresh-process run and what the runtime reports about it."""

    outputs: dict[str, Array]
    providers_used: tuple[str, ...]
    runtime_version: str
    seconds: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "providers_used": list(self.providers_used),
            "runtime_version": self.runtime_version,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


def replay(
    model_path: Path,
    inputs: Mapping[str, Array],
    output_names: Sequence[str],
    config: ExecutionConfig,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> ReplayResult:
    """Run ``model_path`` once in a new Python process and return the requested outputs.

    Raises:
        ReplayError: the runtime failed to load or run the model, or the process died or timed out.
    """
    with tempfile.TemporaryDirectory(prefix="ogverify-replay-") as work:
        work_dir = Path(work)
        input_files = {}
        for index, (name, array) in enumerate(inputs.items()):
            path = work_dir / f"input_{index}.npy"
            np.save(path, array, allow_pickle=False)
            input_files[name] = str(path)
        job = {
            "model": str(model_path),
            "inputs": input_files,
            "outputs": list(output_names),
            "execution": config.to_json(),
            "out_dir": str(work_dir),
        }
        job_path = work_dir / "job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        try:
            process = subprocess.run(
                [sys.executable, "-m", "ogverify._replay", str(job_path)],
                capture_output=True, text=True, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ReplayError(f"re-execution did not finish within {timeout:g} s") from exc
        result_path = work_dir / "result.json"
        if not result_path.is_file():
            tail = (process.stderr.strip().splitlines() or ["no output"])[-1]
            raise ReplayError(f"re-execution process died (exit {process.returncode}): {tail[:300]}")
        result = json.loads(result_path.read_text(encoding="utf-8"))
        if "error" in result:
            raise ReplayError(f"re-execution failed: {result['error']}", result.get("traceback", ""))
        outputs = {
            name: parse_npy(Path(path).read_bytes(), f"reproduced output {name!r}").copy()
            for name, path in result["outputs"].items()
        }
        return ReplayResult(
            outputs, tuple(result["providers_used"]), str(result["runtime_version"]), result["seconds"]
        )
