"""Child process of ``trials``: run several trials of one model, then exit.

Invoked as ``python -m ogverify.runtime.probe JOB.json``: JOB.json is a ``ProbeJob``, and the
answer, a ``ProbeResult``, goes beside it as ``JOB.result.json`` (``ogverify.runtime.jobs``).
Each trial creates its own session (with its own configuration, disabled optimizers, optional
optimised-graph file and transformer log) and writes its outputs as .npy. The parent decides
which trials may share a process (``trials``): those whose process-sticky settings agree
(``session.process_state``), the first of them fixing those settings for the process.
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

from ogverify.runtime.jobs import ProbeJob, ProbeResult, ProbeTrial, TrialOutcome

APPLIED = re.compile(r"GraphTransformer (\w+) modified: 1")


def _create_session(model: str, config: Any, trial: ProbeTrial, out_dir: Path) -> tuple[Any, list[str]]:
    """The trial's session, and the graph transformers that changed the graph when asked for."""
    from ogverify.runtime.session import build_session

    disabled = list(trial.disabled_optimizers)
    optimized = out_dir / "optimized.onnx" if trial.save_optimized else None
    if not trial.capture_transformers:
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


def run_trial(np: Any, trial: ProbeTrial, feeds: dict[str, Any], out_dir: Path) -> TrialOutcome:
    from ogverify.model.tensors import canonicalize
    from ogverify.runtime.session import run_options

    config = trial.execution
    session, applied = _create_session(trial.model, config, trial, out_dir)
    optimized = str(out_dir / "optimized.onnx") if trial.save_optimized else None
    if not trial.run:
        return TrialOutcome(applied_transformers=tuple(applied), optimized_model=optimized)
    names = list(trial.outputs) or [o.name for o in session.get_outputs()]
    values = session.run(names, {k: v for k, v in feeds.items() if k in {i.name for i in session.get_inputs()}},
                         run_options(config))
    if trial.summarise:
        from ogverify.model.sketch import summarise

        summaries = {name: summarise(canonicalize(value, f"output {name!r}"))
                     for name, value in zip(names, values, strict=True) if isinstance(value, np.ndarray)}
        return TrialOutcome(summaries=summaries, applied_transformers=tuple(applied), optimized_model=optimized)
    files = {}
    for index, (name, value) in enumerate(zip(names, values, strict=True)):
        if not isinstance(value, np.ndarray):
            continue
        path = out_dir / f"output_{index}.npy"
        np.save(path, canonicalize(value, f"output {name!r}"), allow_pickle=False)
        files[name] = str(path)
    return TrialOutcome(files, applied_transformers=tuple(applied), optimized_model=optimized)


def main(argv: list[str]) -> int:
    job_path = Path(argv[1])
    results: list[TrialOutcome] = []
    try:
        job = ProbeJob.from_json(json.loads(job_path.read_text(encoding="utf-8")))
        import numpy as np

        from ogverify.model.values import read_file, to_runtime

        feeds = {t.name: to_runtime(read_file(Path(t.path), f"input {t.name!r}")) for t in job.inputs}
        for trial in job.trials:
            out_dir = Path(trial.out_dir)
            try:
                results.append(run_trial(np, trial, feeds, out_dir))
            except Exception as exc:  # one failing trial must not hide the others
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                results.append(TrialOutcome(error=f"{type(exc).__name__}: {first[:300]}"))
    except Exception:
        results = [TrialOutcome(error="probe failed: " + traceback.format_exc(limit=3).splitlines()[-1])]
    document = ProbeResult(tuple(results)).to_json()
    job_path.with_name(job_path.stem + ".result.json").write_text(json.dumps(document), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
