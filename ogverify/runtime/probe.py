"""Child process of ``trials``: run several trials of one model, then exit.

Invoked as ``python -m ogverify.runtime.probe JOB.json``. Each trial creates its own session (with
its own configuration, disabled optimizers, optional optimised-graph file and transformer
log) and writes its outputs as .npy. The parent decides which trials may share a process:
settings that stick to a process (``session.is_process_sticky``) never share one.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

APPLIED = re.compile(r"GraphTransformer (\w+) modified: 1")


def _create_session(model: str, config: Any, trial: dict[str, Any], out_dir: Path) -> tuple[Any, list[str]]:
    """The trial's session, and the graph transformers that changed the graph when asked for."""
    from ogverify.runtime.session import build_session

    disabled = list(trial.get("disabled_optimizers", []))
    optimized = out_dir / "optimized.onnx" if trial.get("save_optimized") else None
    if not trial.get("capture_transformers"):
        return build_session(model, config, disabled_optimizers=disabled, optimized_model=optimized), []
    # onnxruntime logs which transformers changed the graph on the C++ side (fd 2): catch it there.
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            session = build_session(model, config, disabled_optimizers=disabled, optimized_model=optimized,
                                    log_severity_level=1)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    return session, sorted(set(APPLIED.findall(text)))


def run_trial(np: Any, trial: dict[str, Any], feeds: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    from ogverify.evidence.execution import ExecutionConfig
    from ogverify.model.tensors import canonicalize
    from ogverify.runtime.session import run_options

    config = ExecutionConfig.from_json(trial["execution"])
    session, applied = _create_session(trial["model"], config, trial, out_dir)
    optimized = str(out_dir / "optimized.onnx") if trial.get("save_optimized") else None
    if not trial.get("run", True):
        return {"outputs": {}, "applied_transformers": applied, "optimized_model": optimized}
    names = trial["outputs"] or [o.name for o in session.get_outputs()]
    values = session.run(names, {k: v for k, v in feeds.items() if k in {i.name for i in session.get_inputs()}},
                         run_options(config))
    if trial.get("summarise"):
        from ogverify.model.sketch import summarise

        summaries = {name: summarise(canonicalize(value, f"output {name!r}")).to_json()
                     for name, value in zip(names, values, strict=True) if isinstance(value, np.ndarray)}
        return {"outputs": {}, "summaries": summaries, "applied_transformers": applied, "optimized_model": optimized}
    files = {}
    for index, (name, value) in enumerate(zip(names, values, strict=True)):
        if not isinstance(value, np.ndarray):
            continue
        path = out_dir / f"output_{index}.npy"
        np.save(path, canonicalize(value, f"output {name!r}"), allow_pickle=False)
        files[name] = str(path)
    return {"outputs": files, "applied_transformers": applied, "optimized_model": optimized}


def main(argv: list[str]) -> int:
    job_path = Path(argv[1])
    results: list[dict[str, Any]] = []
    try:
        job = json.loads(job_path.read_text(encoding="utf-8"))
        import numpy as np

        from ogverify.model.values import read_file, to_runtime

        feeds = {name: to_runtime(read_file(Path(path), f"input {name!r}")) for name, path in job["inputs"].items()}
        for trial in job["trials"]:
            out_dir = Path(trial["out_dir"])
            try:
                results.append(run_trial(np, trial, feeds, out_dir))
            except Exception as exc:  # one failing trial must not hide the others
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                results.append({"error": f"{type(exc).__name__}: {first[:300]}"})
    except Exception:
        results = [{"error": "probe failed: " + traceback.format_exc(limit=3).splitlines()[-1]}]
    job_path.with_name(job_path.stem + ".result.json").write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
