"""Many trial runs of one model, each under its own configuration, in as few fresh processes as is safe.

The drift engine asks "what would the outputs be if knob K had value V?" many times. A trial
is one session: a configuration, optionally some graph transformers disabled, optionally the
optimised graph saved and the applied transformers listed. A process start (Python, numpy,
onnxruntime) costs more than most trials, so trials share processes: the first session of a
process fixes what sticks to it (``session.process_state``), so a process holds trials of one
such state and starts with one of them; a trial that asks for a fresh process runs first in one.
Each process gets a ``ProbeJob`` and answers a ``ProbeResult`` (``ogverify.runtime.jobs``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.trace import TensorSummary
from ogverify.model.tensors import Array, parse_npy
from ogverify.model.values import Value
from ogverify.runtime.jobs import ProbeJob, ProbeResult, ProbeTrial, TrialOutcome, tensor_files
from ogverify.runtime.session import process_state


@dataclass(frozen=True)
class Trial:
    """One session to create and run.

    Attributes:
        label: how reports name this trial ("graph_optimization_level=ORT_DISABLE_ALL").
        config: the execution configuration.
        disabled_optimizers: onnxruntime graph transformers to switch off.
        save_optimized: keep the optimised graph (``TrialResult.optimized_model``).
        capture_transformers: list the transformers that changed the graph.
        model: another model file to run instead of the bundle's (a traced graph, a candidate).
        outputs: output names to fetch; empty: every graph output.
        fresh_process: be the first session of a new process (trials of the same process state
            may run after it there).
        run: run the model; False only builds the session (for its optimised graph or log).
        summarise: return each output's digest and sketch (``TrialResult.summaries``) instead of
            its values, which then never leave the trial process (the recorded trace).
    """

    label: str
    config: ExecutionConfig
    disabled_optimizers: tuple[str, ...] = ()
    save_optimized: bool = False
    capture_transformers: bool = False
    model: Path | None = None
    outputs: tuple[str, ...] = ()
    fresh_process: bool = False
    run: bool = True
    summarise: bool = False


@dataclass(frozen=True)
class TrialResult:
    """Outputs of a trial, or why it failed."""

    trial: Trial
    outputs: dict[str, Array] = field(default_factory=dict)
    error: str | None = None
    applied_transformers: tuple[str, ...] = ()
    optimized_model: Path | None = None
    summaries: dict[str, TensorSummary] = field(default_factory=dict)


def _groups(trials: Sequence[Trial], parallel: int = 1) -> list[list[int]]:
    """The processes to start, each the indices of its trials in the order they run.

    Each process holds trials of one process state and starts with one of them (see the module
    docstring): one process per ``fresh_process`` trial, which runs first there, and the other
    trials of that state spread round robin over those processes, or over new ones. Trials of the
    default state spread over up to ``parallel`` processes in all (they may all run at once).
    """
    states: dict[tuple[tuple[str, str], ...], tuple[list[int], list[int]]] = {}
    for index, trial in enumerate(trials):
        fresh, shared = states.setdefault(process_state(trial.config), ([], []))
        (fresh if trial.fresh_process else shared).append(index)
    sticky = sum(max(len(fresh), 1) for state, (fresh, _) in states.items() if state)
    groups: list[list[int]] = []
    for state, (fresh, shared) in states.items():
        if state:  # rare (denormals as zero): their own processes, no more than need be
            extra = 0 if fresh else 1
        else:
            extra = max(0 if fresh or not shared else 1, min(len(shared), parallel - sticky - len(fresh)))
        processes = [[index] for index in fresh] + [[] for _ in range(extra)]
        for k, process in enumerate(processes):
            process.extend(shared[k::len(processes)])
        groups += processes
    return groups


def run_trials(
    model: Path,
    inputs: Mapping[str, Value],
    trials: Sequence[Trial],
    work_dir: Path,
    *,
    timeout: float = 600.0,
    parallel: int = 1,
) -> list[TrialResult]:
    """Run every trial and return their results in the same order.

    ``work_dir`` must outlive the results: optimised graphs are left there. ``parallel``: the
    most trial processes to run at once (1: one after the other).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    from ogverify.model.values import write_file

    input_files: dict[str, str] = {}
    for index, (name, value) in enumerate(inputs.items()):
        stem = work_dir / f"input_{index}"
        written = [p for p in (stem.with_suffix(".npy"), stem.with_suffix(".value")) if p.exists()]
        input_files[name] = str(written[0] if written else write_file(value, stem))
    results: list[TrialResult | None] = [None] * len(trials)
    offset = len(list(work_dir.glob("trial_*")))
    jobs: list[tuple[list[int], Path]] = []
    for group_index, group in enumerate(_groups(trials, parallel)):
        job_trials = []
        for i in group:
            trial = trials[i]
            out_dir = work_dir / f"trial_{offset + i}"
            out_dir.mkdir()
            job_trials.append(ProbeTrial(
                str(trial.model or model), trial.config, str(out_dir), trial.disabled_optimizers,
                trial.save_optimized, trial.capture_transformers, trial.outputs, trial.run, trial.summarise,
            ))
        job_path = work_dir / f"probe_{offset}_{group_index}.json"
        job = ProbeJob(tensor_files(list(input_files.items())), tuple(job_trials))
        job_path.write_text(json.dumps(job.to_json()), encoding="utf-8")
        jobs.append((group, job_path))
    if parallel > 1 and len(jobs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(parallel, len(jobs))) as pool:
            raws = list(pool.map(lambda job: _run_probe(job[1], timeout, len(job[0])), jobs))
    else:
        raws = [_run_probe(job_path, timeout, len(group)) for group, job_path in jobs]
    for (group, _), raw in zip(jobs, raws, strict=True):
        for i, result in zip(group, raw, strict=True):
            results[i] = _result(trials[i], result)
    return [r for r in results if r is not None]


def _run_probe(job_path: Path, timeout: float, count: int) -> Sequence[TrialOutcome]:
    try:
        process = subprocess.run(
            [sys.executable, "-m", "ogverify.runtime.probe", str(job_path)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        return [TrialOutcome(error=f"trial did not finish within {timeout:g} s")] * count
    result_path = job_path.with_name(job_path.stem + ".result.json")
    if not result_path.is_file():
        tail = (process.stderr.strip().splitlines() or ["no output"])[-1]
        return [TrialOutcome(error=f"trial process died (exit {process.returncode}): {tail[:200]}")] * count
    outcomes = ProbeResult.from_json(json.loads(result_path.read_text(encoding="utf-8"))).trials
    if len(outcomes) != count:
        return [outcomes[0]] * count
    return outcomes


def _result(trial: Trial, outcome: TrialOutcome) -> TrialResult:
    if outcome.error is not None:
        return TrialResult(trial, error=outcome.error)
    outputs = {
        name: parse_npy(Path(path).read_bytes(), f"trial output {name!r}").copy()
        for name, path in outcome.outputs.items()
    }
    optimized = outcome.optimized_model
    return TrialResult(
        trial, outputs, None, outcome.applied_transformers,
        Path(optimized) if optimized and Path(optimized).is_file() else None, dict(outcome.summaries),
    )
