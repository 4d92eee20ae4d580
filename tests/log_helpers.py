"""A tiny model and logs for the evidence-log tests: exactly representable values, so that every
expectation holds on any CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.fixtures.models import IR_VERSION, OPSET


def add_one_model(path: Path, bias: float = 1.0) -> Path:
    """y = x + bias for x float32[1,4]: small integers in, small integers out, on every CPU."""
    b = numpy_helper.from_array(np.full((1, 4), bias, dtype=np.float32), "b")
    graph = helper.make_graph([helper.make_node("Add", ["x", "b"], ["y"], name="add")], "add_one",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))
    return path


def records(count: int, start: int = 0) -> np.ndarray:
    """``count`` distinct inputs x[i] = [i, i+1, i+2, i+3] as float32[count,1,4]."""
    base = np.arange(start, start + count, dtype=np.float32)[:, None, None]
    return base + np.arange(4, dtype=np.float32).reshape(1, 1, 4)


def add_double_model(path: Path) -> Path:
    """y = (x + 1) * 2 for x float32[1,4], in two named nodes (``add``, ``double``): a trace has two
    node outputs, and every value is a small integer on every CPU."""
    one = numpy_helper.from_array(np.ones((1, 4), dtype=np.float32), "one")
    two = numpy_helper.from_array(np.full((1, 4), 2, dtype=np.float32), "two")
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["h"], name="add"),
                               helper.make_node("Mul", ["h", "two"], ["y"], name="double")], "add_double",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [one, two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))
    return path
