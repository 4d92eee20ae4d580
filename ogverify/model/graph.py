"""Facts about a model's graph read from its file: which operators it uses, how often."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def op_histogram(model_path: Path | None) -> Counter[str]:
    """Node counts by op type (``domain::Op`` outside the default domain) of a model file."""
    if model_path is None:
        return Counter()
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return Counter(f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
                   for n in model.graph.node)
