"""The recorded trace: per node output of the model at the reference level, a digest and a sketch.

A producer that packs with ``--trace`` runs its model once more at ``ORT_DISABLE_ALL`` (where
node names survive and exposing a tensor changes nothing) with every node output exposed, and
records for each output a digest of its bits and a small sketch of its values: enough for an
auditor on another machine or runtime to find the first node whose bits differ from the
producer's, and how far its values moved, without ever holding the intermediate values.

Bounds: one output's entry is a few hundred bytes (a 128-bit digest, 10 numbers rounded to 7
significant digits and 4 projections to 10, its names); the whole trace stops at
``MAX_TRACE_BYTES`` of canonical JSON and counts what it left out in ``omitted``.
Values only (no numpy): the numbers are computed by ``ogverify.model.sketch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TRACE_LEVEL = "ORT_DISABLE_ALL"
# The whole trace, as canonical JSON, stays under this (about 2,500 node outputs with short names).
MAX_TRACE_BYTES = 1 << 20
QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
PROJECTIONS = 4


@dataclass(frozen=True)
class Sketch:
    """How a tensor's values are spread, over its finite elements (numbers rounded to 7 digits).

    ``projection`` holds fixed pseudo-random ±1 projections of the values scaled by
    1/sqrt(count): two tensors that agree on every element agree there, and a change of one
    element by d moves each projection by d/sqrt(count).
    """

    count: int
    nan: int
    inf: int
    min: float | None
    max: float | None
    mean: float | None
    quantiles: tuple[float, ...]
    projection: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "nan": self.nan, "inf": self.inf, "min": self.min, "max": self.max,
                "mean": self.mean, "quantiles": list(self.quantiles), "projection": list(self.projection)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Sketch:
        return cls(raw["count"], raw["nan"], raw["inf"], raw["min"], raw["max"], raw["mean"],
                   tuple(raw["quantiles"]), tuple(raw["projection"]))


@dataclass(frozen=True)
class TensorSummary:
    """A tensor by its bits (``digest``: the first 128 bits of blake3 over dtype, shape and
    bytes) and its values (``sketch``; None for strings)."""

    dtype: str
    shape: tuple[int, ...]
    digest: str
    sketch: Sketch | None

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape), "digest": self.digest,
                "sketch": self.sketch.to_json() if self.sketch is not None else None}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TensorSummary:
        sketch = raw.get("sketch")
        return cls(raw["dtype"], tuple(raw["shape"]), raw["digest"],
                   Sketch.from_json(sketch) if sketch is not None else None)


@dataclass(frozen=True)
class TracedOutput:
    """One output of one node, in the graph's topological order."""

    node: str
    op_type: str
    output: str
    summary: TensorSummary

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "op_type": self.op_type, "output": self.output, **self.summary.to_json()}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TracedOutput:
        return cls(raw["node"], raw["op_type"], raw["output"], TensorSummary.from_json(raw))


@dataclass(frozen=True)
class Trace:
    """The producer's trace (``manifest.trace``).

    Attributes:
        level: the optimisation level it was taken at (always ``ORT_DISABLE_ALL``).
        intra_op_num_threads: the thread count it was taken with (1: no thread-order effects).
        outputs: node outputs in topological order of the model's main graph.
        omitted: node outputs left out (non-tensor values, or past ``MAX_TRACE_BYTES``).
        claim_reproduced: whether the producer's own run of the recorded configuration, at pack
            time, reproduced the claimed outputs bit for bit (None: not run).
    """

    outputs: tuple[TracedOutput, ...]
    omitted: int = 0
    claim_reproduced: bool | None = None
    level: str = TRACE_LEVEL
    intra_op_num_threads: int = 1

    def by_output(self) -> dict[str, TracedOutput]:
        return {o.output: o for o in self.outputs}

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "intra_op_num_threads": self.intra_op_num_threads,
                "outputs": [o.to_json() for o in self.outputs], "omitted": self.omitted,
                "claim_reproduced": self.claim_reproduced}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Trace:
        return cls(tuple(TracedOutput.from_json(o) for o in raw["outputs"]), raw["omitted"],
                   raw["claim_reproduced"], raw["level"], raw["intra_op_num_threads"])


@dataclass(frozen=True)
class KnobSensitivity:
    """Whether one knob changes a model's output bits on its inputs (``manifest.profile``)."""

    knob: str
    values: tuple[str, ...]
    changes_bits: bool
    max_abs_diff: float | None
    baseline: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"knob": self.knob, "values": list(self.values), "changes_bits": self.changes_bits,
                "max_abs_diff": self.max_abs_diff, "baseline": self.baseline}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> KnobSensitivity:
        return cls(raw["knob"], tuple(raw["values"]), raw["changes_bits"], raw["max_abs_diff"],
                   raw.get("baseline", ""))


@dataclass(frozen=True)
class Profile:
    """A sensitivity profile: for each knob tried, whether it changed this model's output bits."""

    knobs: tuple[KnobSensitivity, ...]
    trials: int = 0

    def get(self, knob: str) -> KnobSensitivity | None:
        return next((k for k in self.knobs if k.knob == knob), None)

    def sensitive(self) -> tuple[KnobSensitivity, ...]:
        return tuple(k for k in self.knobs if k.changes_bits)

    def to_json(self) -> dict[str, Any]:
        return {"knobs": [k.to_json() for k in self.knobs], "trials": self.trials}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Profile:
        return cls(tuple(KnobSensitivity.from_json(k) for k in raw["knobs"]), raw.get("trials", 0))


# How a person names each knob ("this model's outputs depend on ...").
KNOB_PHRASES = {
    "graph_optimization_level": "the graph optimisation level",
    "intra_op_num_threads": "the intra-op thread count",
    "inter_op_num_threads": "the inter-op thread count",
    "execution_mode": "the execution mode (sequential or parallel)",
    "session.disable_prepacking": "weight prepacking (session.disable_prepacking)",
    "optimization.enable_gelu_approximation": "the GELU approximation (optimization.enable_gelu_approximation)",
    "session.set_denormal_as_zero": "denormals flushed to zero (session.set_denormal_as_zero)",
}


def knob_phrase(knob: str) -> str:
    """``intra_op_num_threads`` -> "the intra-op thread count"; a transformer by its name."""
    return KNOB_PHRASES.get(knob, f"onnxruntime's graph transformer {knob}")
