"""Taking a trace: run a model at ``ORT_DISABLE_ALL`` with every node output exposed, and keep
only each output's digest and sketch (``ogverify.evidence.trace``).

At ``ORT_DISABLE_ALL`` onnxruntime rewrites nothing, so node names are the model's own on every
machine and runtime version, and exposing a tensor as a graph output changes no number. The
trial process computes the summaries itself: intermediate values never leave it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ogverify.evidence import canonical_json
from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.trace import MAX_TRACE_BYTES, TRACE_LEVEL, Trace, TracedOutput
from ogverify.model.tensors import Array
from ogverify.runtime.trials import Trial, TrialResult, run_trials


@dataclass(frozen=True)
class GraphNode:
    """A node of the main graph as the trace names it."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def expose_node_outputs(source: Path, target: Path) -> Any:
    """Write a copy of ``source`` whose graph outputs include every node output; return it (onnx).

    The copy refers to external data by the same relative locations as ``source``: write it in
    ``source``'s folder, or use ``traced_model`` to link the data files beside it.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(source), load_external_data=False)
    graph = model.graph
    present = {o.name for o in graph.output}
    for node in graph.node:
        for name in node.output:
            if name and name not in present:
                graph.output.append(helper.make_empty_tensor_value_info(name))
                present.add(name)
    onnx.save(model, str(target))
    return model


def _external_locations(model: Any) -> set[str]:
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    locations: set[str] = set()
    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            locations.update(e.value for e in tensor.external_data if e.key == "location")
    return locations


def traced_model(model: Path, folder: Path) -> tuple[Path, list[GraphNode]]:
    """The model with every node output exposed, in ``folder`` (its external-data files linked
    beside it), and its main graph's nodes in topological order."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / model.name
    onnx_model = expose_node_outputs(model, target)
    for location in _external_locations(onnx_model):
        source, link = model.parent / location, folder / location
        if not source.is_file() or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        # A hard link (onnxruntime refuses a symbolic link that leads out of the model's folder);
        # a copy where the two folders are on different file systems.
        try:
            os.link(source, link)
        except OSError:
            shutil.copyfile(source, link)
    nodes = [
        GraphNode(node.name or f"{node.op_type}#{index}", node.op_type, tuple(node.input),
                  tuple(n for n in node.output if n))
        for index, node in enumerate(onnx_model.graph.node)
    ]
    return target, nodes


def trace_config(config: ExecutionConfig) -> ExecutionConfig:
    """The reference configuration of a trace: ``config`` at ``ORT_DISABLE_ALL``, one thread, sequential."""
    return dataclasses.replace(config, graph_optimization_level=TRACE_LEVEL, intra_op_num_threads=1,
                               inter_op_num_threads=1, execution_mode="ORT_SEQUENTIAL")


@dataclass(frozen=True)
class TracePlan:
    """The trials that take a trace (and, with ``claimed``, the producer's own run of the recorded
    configuration), to run with others in one process; ``finish`` turns their results into the trace."""

    trials: tuple[Trial, ...]
    nodes: tuple[GraphNode, ...]
    claimed: Mapping[str, Array] | None = None

    def finish(self, results: Sequence[Any]) -> tuple[Trace | None, str | None]:
        """(the trace, or None and why the traced run failed)."""
        first = results[0]
        if first.error is not None:
            return None, first.error
        entries: list[TracedOutput] = []
        omitted = 0
        size = 0
        for node in self.nodes:
            for output in node.outputs:
                summary = first.summaries.get(output)
                if summary is None:
                    omitted += 1
                    continue
                entry = TracedOutput(node.name, node.op_type, output, summary)
                entry_size = len(canonical_json.dumps(entry.to_json())) + 1
                if size + entry_size > MAX_TRACE_BYTES:
                    omitted += 1
                    continue
                size += entry_size
                entries.append(entry)
        trace = Trace(tuple(entries), omitted)
        if self.claimed is not None:
            run = results[1]
            outputs = run.outputs if run.error is None else {}
            reproduced = all(
                name in outputs and outputs[name].dtype == value.dtype and outputs[name].shape == value.shape
                and outputs[name].tobytes() == value.tobytes() for name, value in self.claimed.items()
            )
            trace = dataclasses.replace(trace, claim_reproduced=reproduced)
        return trace, None


def plan_trace(
    model: Path, config: ExecutionConfig, work_dir: Path, claimed: Mapping[str, Array] | None = None
) -> TracePlan:
    """Write the traced model under ``work_dir`` and plan the trials that take the trace."""
    traced, nodes = traced_model(model, work_dir / "traced")
    trials = [Trial("trace", trace_config(config), model=traced, summarise=True)]
    if claimed is not None:
        trials.append(Trial("recorded configuration", config))
    return TracePlan(tuple(trials), tuple(nodes), claimed)


def run_trace(
    model: Path, inputs: Mapping[str, Array], config: ExecutionConfig, work_dir: Path, *, timeout: float = 600.0,
) -> tuple[Trace | None, str | None, tuple[GraphNode, ...]]:
    """Take the trace of ``model`` here: (trace, why there is none, the graph's nodes)."""
    plan = plan_trace(model, config, work_dir)
    results = run_trials(model, inputs, plan.trials, work_dir / "runs", timeout=timeout)
    trace, error = plan.finish(results)
    return trace, error, plan.nodes


def record_trace(
    model: Path, inputs: Mapping[str, Array], config: ExecutionConfig, work_dir: Path, *,
    claimed: Mapping[str, Array] | None = None, timeout: float = 600.0,
) -> Trace:
    """The producer's trace, with ``claim_reproduced`` when ``claimed`` is given (one more run of
    the recorded configuration, in the same process).

    Raises:
        ReplayError: the traced run failed.
    """
    plan = plan_trace(model, config, work_dir, claimed)
    return finish_or_raise(plan, run_trials(model, inputs, plan.trials, work_dir / "runs", timeout=timeout))


def finish_or_raise(plan: TracePlan, results: Sequence[Any]) -> Trace:
    """``plan.finish``, raising ReplayError when the traced run failed."""
    from ogverify.errors import ReplayError

    trace, error = plan.finish(results)
    if trace is None:
        raise ReplayError(f"--trace: the traced run failed: {error}")
    return trace


class TraceTaker:
    """Traces of many inputs of one model under one configuration, taken in this process: the traced
    graph is written once and its session kept loaded (an evidence log's producer takes one per
    record). Each node output's summary is computed here, as the trial process does for ``pack``;
    the values are never kept. A configuration that sets process-wide state (denormals) takes
    each trace in a fresh process instead (``record_trace``).
    """

    def __init__(self, model: Path, config: ExecutionConfig, work_dir: Path) -> None:
        self.model = model
        self.config = config
        self.work_dir = work_dir
        self._plan: TracePlan | None = None
        self._session: Any = None
        self._taken = 0

    def take(self, inputs: Mapping[str, Array], *, claim_reproduced: bool | None = None) -> Trace:
        """The trace of ``inputs``, with the caller's finding of whether the recorded configuration
        reproduces the claimed outputs.

        Raises:
            ReplayError: the traced run failed.
        """
        from ogverify.runtime.session import is_process_sticky

        self._taken += 1
        reference = trace_config(self.config)
        if is_process_sticky(reference):
            trace = record_trace(self.model, inputs, self.config, self.work_dir / f"fresh-{self._taken}")
            return dataclasses.replace(trace, claim_reproduced=claim_reproduced)
        if self._plan is None:
            self._plan = plan_trace(self.model, self.config, self.work_dir)
        plan = self._plan
        results = [self._run(plan.trials[0], inputs)]
        return dataclasses.replace(finish_or_raise(plan, results), claim_reproduced=claim_reproduced)

    def _run(self, trial: Trial, inputs: Mapping[str, Array]) -> TrialResult:
        import numpy as np

        from ogverify.model.sketch import summarise
        from ogverify.model.tensors import canonicalize, for_runtime
        from ogverify.runtime.session import build_session, run_options

        try:
            if self._session is None:
                self._session = build_session(trial.model or self.model, trial.config)
            session = self._session
            wanted = {i.name for i in session.get_inputs()}
            names = [o.name for o in session.get_outputs()]
            values = session.run(names, {n: for_runtime(a) for n, a in inputs.items() if n in wanted},
                                 run_options(trial.config))
        except Exception as exc:  # onnxruntime's own errors, as the trial process reports them
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return TrialResult(trial, error=f"{type(exc).__name__}: {first[:300]}")
        summaries = {name: summarise(canonicalize(value, f"output {name!r}"))
                     for name, value in zip(names, values, strict=True) if isinstance(value, np.ndarray)}
        return TrialResult(trial, summaries=summaries)
