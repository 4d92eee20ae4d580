"""Comparing the producer's recorded trace with this machine's: the first node whose bits differ.

The model runs here at the trace's reference level (``ORT_DISABLE_ALL``, one thread) with every
node output exposed; each output's digest is compared with the recorded one in topological order.
The first output that differs names the node where this environment and the producer's part. It
is ROOT when every one of its inputs is known to match: a bundle input or a weight (both verified
by digest) or an earlier node output whose digest matched. An input the trace did not record
leaves the question open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.trace import Trace, TracedOutput
from ogverify.model.sketch import movement
from ogverify.model.tensors import Array
from ogverify.runtime.trace import run_trace

InputStatus = Literal["bundle input", "weight", "matched", "not recorded"]


@dataclass(frozen=True)
class FirstDivergence:
    """The first node, in topological order, whose output's bits differ from the producer's."""

    recorded: TracedOutput
    here: TracedOutput
    inputs: tuple[tuple[str, InputStatus], ...]

    @property
    def root(self) -> bool:
        return all(status != "not recorded" for _, status in self.inputs)

    def moved(self) -> dict[str, Any]:
        if self.recorded.summary.shape != self.here.summary.shape:
            return {"shape": [list(self.recorded.summary.shape), list(self.here.summary.shape)]}
        return movement(self.recorded.summary.sketch, self.here.summary.sketch)

    def sentence(self) -> str:
        """``LayerNormalization `ln1` is the first node whose output differs ...; its inputs ...``."""
        node = self.recorded
        text = f"{node.op_type} `{node.node}` is the first node whose output differs from the producer's"
        if node.output != node.node:
            text += f" (output `{node.output}`)"
        unknown = [name for name, status in self.inputs if status == "not recorded"]
        if not unknown:
            text += "; its inputs match bit for bit"
        else:
            named = ", ".join(f"`{n}`" for n in unknown)
            text += f"; its input(s) {named} were not recorded, so it may not be the origin"
        moved = self.moved()
        if "max_stat_shift" in moved:
            text += (f" (its min, max, mean and quantiles moved by up to {moved['max_stat_shift']:.2g}; "
                     f"about {moved.get('rms_change_estimate', 0):.2g} per element by random projection)")
        elif "shape" in moved:
            text += f" (its shape changed: {moved['shape'][0]} -> {moved['shape'][1]})"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.recorded.node, "op_type": self.recorded.op_type, "output": self.recorded.output,
            "role": "ROOT" if self.root else "UNRESOLVED",
            "inputs": [{"name": name, "status": status} for name, status in self.inputs],
            "moved": self.moved(),
            "recorded": self.recorded.summary.to_json(), "here": self.here.summary.to_json(),
        }


@dataclass(frozen=True)
class TraceComparison:
    """The recorded trace against this machine's: how many outputs compared and the first that differs."""

    compared: int
    matched: int
    first: FirstDivergence | None
    omitted: int = 0
    claim_reproduced: bool | None = None
    error: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"compared": self.compared, "matched": self.matched, "omitted": self.omitted,
                "claim_reproduced": self.claim_reproduced, "error": self.error,
                "first_divergent_node": self.first.to_json() if self.first is not None else None,
                "notes": list(self.notes)}


def compare_trace(
    trace: Trace, model: Path, inputs: Mapping[str, Array], config: ExecutionConfig, work_dir: Path, *,
    timeout: float = 600.0,
) -> TraceComparison:
    """Take the trace here and find the first node output that differs from ``trace``."""
    import onnx

    here, error, nodes = run_trace(model, inputs, config, work_dir, timeout=timeout)
    if here is None:
        return TraceComparison(0, 0, None, trace.omitted, trace.claim_reproduced,
                               f"the model could not be traced here: {error}")
    graph = onnx.load(str(model), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    graph_inputs = {i.name for i in graph.input} - weights
    recorded = trace.by_output()
    measured = here.by_output()
    status: dict[str, InputStatus] = {name: "weight" for name in weights}
    status.update({name: "bundle input" for name in graph_inputs})
    compared = matched = 0
    for node in nodes:
        for output in node.outputs:
            ours, theirs = measured.get(output), recorded.get(output)
            if ours is None or theirs is None:
                status[output] = "not recorded"
                continue
            compared += 1
            if ours.summary.digest == theirs.summary.digest:
                matched += 1
                status[output] = "matched"
                continue
            inputs_status = tuple((name, status.get(name, "not recorded")) for name in node.inputs if name)
            return TraceComparison(compared, matched, FirstDivergence(theirs, ours, inputs_status),
                                   trace.omitted, trace.claim_reproduced)
    notes: tuple[str, ...] = ()
    if trace.omitted:
        notes = (f"the trace left out {trace.omitted} node output(s) (non-tensor values or past its size cap)",)
    return TraceComparison(compared, matched, None, trace.omitted, trace.claim_reproduced, notes=notes)
