"""Localisation: which graph node first makes the recorded configuration's numbers differ.

Adding intermediate tensors as outputs of a graph that onnxruntime then optimises would
block fusions and change the very numbers being compared. So both configurations' graphs
are first frozen as onnxruntime optimised them (``optimized_model_filepath``), and the
frozen graphs are traced at ``ORT_DISABLE_ALL``, where exposing a tensor changes nothing.
Tensors are aligned across the two graphs by name (fusions keep the name of the tensor
they produce last); tensors that exist in only one graph cannot be compared.

Two nodes are reported, in topological order of the recorded configuration's graph:

- the *origin*: the first node that, fed the reference run's values for its inputs, still
  produces a different output — it originates error (ROOT);
- the *first exceeding*: the first node whose output in the full run differs beyond the
  tolerance; ROOT if it is the origin, PROPAGATED if error reached it from upstream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ogverify.evidence.comparison import ComparisonSpec
from ogverify.evidence.execution import ExecutionConfig
from ogverify.model.compare import compare_output
from ogverify.model.tensors import Array
from ogverify.runtime.trace import expose_node_outputs
from ogverify.runtime.trials import Trial, run_trials

MAX_SINGLE_NODE_TRIALS = 256


@dataclass(frozen=True)
class NodeDivergence:
    """A graph node whose output differs, with how much."""

    node: str
    op_type: str
    output: str
    role: Literal["ROOT", "PROPAGATED"]
    elements_differing: int
    max_abs_diff: float | None
    statistics: Mapping[str, Any] | None = None

    def describe(self) -> str:
        return f"{self.op_type} node '{self.node}' (output '{self.output}')"

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "op_type": self.op_type, "output": self.output, "role": self.role,
                "elements_differing": self.elements_differing, "max_abs_diff": self.max_abs_diff,
                "statistics": dict(self.statistics) if self.statistics is not None else None}


@dataclass(frozen=True)
class Localisation:
    """Where in the graph the recorded configuration's numbers part from the reproducing ones."""

    origin: NodeDivergence | None
    first_exceeding: NodeDivergence | None
    traced_tensors: int
    notes: tuple[str, ...] = ()
    unaligned_suspects: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin.to_json() if self.origin else None,
            "first_exceeding": self.first_exceeding.to_json() if self.first_exceeding else None,
            "traced_tensors": self.traced_tensors,
            "notes": list(self.notes),
            "unaligned_suspects": list(self.unaligned_suspects),
        }


def _differs(name: str, reference: Array, value: Array, tolerance: ComparisonSpec) -> bool:
    if reference.dtype != value.dtype or reference.shape != value.shape:
        return True
    return not compare_output(name, reference, value, tolerance).passed


def _divergence(node: Any, name: str, reference: Array, value: Array, role: Literal["ROOT", "PROPAGATED"]
                ) -> NodeDivergence:
    comparison = compare_output(name, reference, value, ComparisonSpec())
    return NodeDivergence(
        node=node.name or f"#{name}", op_type=node.op_type, output=name, role=role,
        elements_differing=comparison.elements_differing, max_abs_diff=comparison.max_abs_diff,
        statistics=comparison.statistics.to_json() if comparison.statistics else None,
    )


def _single_node_model(model: Any, node: Any, values: Mapping[str, Array], target: Path) -> bool:
    import onnx
    from onnx import helper

    if any(attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for attr in node.attribute):
        return False
    initializers = {init.name: init for init in model.graph.initializer}
    graph_inputs, inits = [], []
    for name in node.input:
        if not name:
            continue
        if name in initializers:
            inits.append(initializers[name])
        elif name in values:
            array = values[name]
            if array.dtype.kind == "U":
                return False
            elem = helper.np_dtype_to_tensor_dtype(array.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, elem, list(array.shape)))
        else:
            return False
    outputs = [helper.make_empty_tensor_value_info(name) for name in node.output if name]
    graph = helper.make_graph([node], "single_node", graph_inputs, outputs, inits)
    single = helper.make_model(graph, opset_imports=list(model.opset_import))
    single.ir_version = model.ir_version
    onnx.save(single, str(target))
    return True


def localise(
    recorded_graph: Path,
    reference_graph: Path,
    inputs: Mapping[str, Array],
    recorded_outputs: Mapping[str, Array],
    reference_outputs: Mapping[str, Array],
    tolerance: ComparisonSpec,
    work_dir: Path,
    *,
    config: ExecutionConfig | None = None,
    timeout: float = 600.0,
) -> Localisation:
    """Trace both frozen graphs and find the origin and the first exceeding node.

    Args:
        recorded_graph: the optimised graph of the recorded configuration.
        reference_graph: the optimised graph of the configuration that reproduces the claim.
        inputs: the bundle's inputs.
        recorded_outputs: final outputs of the recorded configuration's run.
        reference_outputs: the claimed outputs (which the reference configuration reproduces).
        tolerance: what "exceeds" means for intermediate tensors.
        work_dir: scratch space.
        config: the configuration to trace with (its optimisation level is forced to DISABLE_ALL).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    trace_config = dataclasses.replace(
        config or ExecutionConfig(runtime_version=""), graph_optimization_level="ORT_DISABLE_ALL"
    )
    recorded_traced = recorded_graph.with_name("traced.onnx")
    reference_traced = reference_graph.with_name("traced.onnx")
    recorded_model = expose_node_outputs(recorded_graph, recorded_traced)
    reference_model = expose_node_outputs(reference_graph, reference_traced)
    traces = run_trials(
        recorded_traced, inputs,
        [Trial("trace recorded", trace_config),
         Trial("trace reference", trace_config, model=reference_traced)],
        work_dir / "runs", timeout=timeout,
    )
    notes: list[str] = []
    for trace in traces:
        if trace.error is not None:
            return Localisation(None, None, 0, (f"could not trace the optimised graph: {trace.error}",))
    recorded_values = traces[0].outputs
    reference_values, by_order = align(recorded_model, reference_model, recorded_values, traces[1].outputs)
    if by_order:
        notes.append(f"{by_order} tensor(s) aligned by op type, dtype and shape order (their names differ)")
    for label, values, expected in (("recorded", recorded_values, recorded_outputs),
                                    ("reproducing", reference_values, reference_outputs)):
        changed = [n for n, v in expected.items() if n in values and values[n].tobytes() != v.tobytes()]
        if changed:
            notes.append(f"tracing the {label} configuration's frozen graph changed its outputs "
                         f"({', '.join(changed)}): node-level numbers may not match the real run")
    nodes = list(recorded_model.graph.node)
    common = 0
    first_exceeding = None
    first_index = len(nodes) - 1
    for index, node in enumerate(nodes):
        for name in node.output:
            if name in reference_values and name in recorded_values:
                common += 1
                if first_exceeding is None and _differs(name, reference_values[name], recorded_values[name], tolerance):
                    first_exceeding = (node, name)
                    first_index = index
    if common == 0:
        notes.append("the two optimised graphs share no tensor names; nodes could not be aligned")
    origin = _find_origin(recorded_model, nodes[: first_index + 1], inputs, reference_values, tolerance,
                          trace_config, recorded_graph.parent, work_dir, timeout)
    exceeding = None
    suspects: tuple[str, ...] = ()
    if first_exceeding is not None:
        node, name = first_exceeding
        role: Literal["ROOT", "PROPAGATED"] = (
            "ROOT" if origin is not None and origin.output in node.output else "PROPAGATED"
        )
        exceeding = _divergence(node, name, reference_values[name], recorded_values[name], role)
        if origin is None:
            # Error entered through nodes whose outputs the reproducing graph does not have
            # (a layout or fusion rewrite): name them, since none can be compared directly.
            suspects = tuple(
                f"{n.domain + '::' if n.domain else ''}{n.op_type} '{n.name}'"
                for n in nodes[:first_index]
                if not any(out in reference_values for out in n.output)
            )
            if suspects:
                notes.append("the error originates among nodes with no counterpart in the reproducing graph: "
                             + ", ".join(suspects))
    return Localisation(origin, exceeding, common, tuple(notes), suspects)


def _op(node: Any) -> str:
    return f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type


def align(
    recorded: Any, reference: Any, recorded_values: Mapping[str, Array], reference_values: Mapping[str, Array]
) -> tuple[dict[str, Array], int]:
    """Reference values keyed by the recorded graph's tensor names, and how many were aligned by order.

    By name first (fusions keep the name of the tensor they produce last); then, walking both
    graphs in topological order, an unaligned recorded tensor takes the next unaligned reference
    tensor made by the same op type with the same dtype and shape.
    """
    aligned = {name: value for name, value in reference_values.items() if name in recorded_values}
    used = set(aligned)
    reference_outputs = [
        (_op(node), name) for node in reference.graph.node for name in node.output
        if name in reference_values and name not in used
    ]
    cursor, by_order = 0, 0
    for node in recorded.graph.node:
        for name in node.output:
            if name in aligned or name not in recorded_values:
                continue
            value = recorded_values[name]
            for position in range(cursor, len(reference_outputs)):
                op, candidate = reference_outputs[position]
                other = reference_values[candidate]
                if op == _op(node) and other.dtype == value.dtype and other.shape == value.shape:
                    aligned[name] = other
                    cursor, by_order = position + 1, by_order + 1
                    break
    return aligned, by_order


def _find_origin(
    model: Any, nodes: list[Any], inputs: Mapping[str, Array], reference_values: Mapping[str, Array],
    tolerance: ComparisonSpec, config: ExecutionConfig, model_dir: Path, work_dir: Path, timeout: float,
) -> NodeDivergence | None:
    known = {**inputs, **reference_values}
    candidates = []
    for index, node in enumerate(nodes[:MAX_SINGLE_NODE_TRIALS]):
        outputs = [n for n in node.output if n in reference_values]
        target = model_dir / f"node_{index}.onnx"  # beside the weights they may refer to
        if outputs and _single_node_model(model, node, known, target):
            candidates.append((node, outputs, target))
    if not candidates:
        return None
    needed = {name for node, _, _ in candidates for name in node.input if name in known}
    feeds = {name: np.ascontiguousarray(known[name]) for name in sorted(needed)}
    results = run_trials(
        candidates[0][2], feeds,
        [Trial(f"node {node.name}", config, model=target) for node, _, target in candidates],
        work_dir / "nodes", timeout=timeout,
    )
    for (node, outputs, _), result in zip(candidates, results, strict=True):
        if result.error is not None:
            continue
        for name in outputs:
            if name in result.outputs and _differs(name, reference_values[name], result.outputs[name], tolerance):
                return _divergence(node, name, reference_values[name], result.outputs[name], "ROOT")
    return None
