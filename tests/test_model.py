"""ogverify.model.signature reads what onnx reads: the subset schema of model.onnx_proto against onnx itself."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from ogverify.errors import ModelError
from ogverify.model import onnx_proto
from ogverify.model.signature import ModelSignature, TensorSpec, ValueType, _all_tensors, _safe_location, read_signature
from ogverify.model.tensors import dtype_name
from tests.fixtures import models


def reference_signature(path: Path, name: str) -> ModelSignature:
    """read_signature as it was written with onnx (the reference the subset schema must match)."""
    try:
        proto = onnx.load_model_from_string(path.read_bytes())
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{name} is not a readable ONNX model ({exc})") from exc

    def elem(elem_type: int) -> str | None:
        try:
            dtype: str | None = dtype_name(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
        except (KeyError, TypeError, ValueError):
            dtype = None
        return "string" if dtype == "object" else dtype

    def value_type(type_proto: Any) -> ValueType | None:
        kind = type_proto.WhichOneof("value")
        if kind == "tensor_type":
            return ValueType("tensor", elem(type_proto.tensor_type.elem_type))
        if kind in ("sequence_type", "optional_type"):
            inner = value_type(getattr(type_proto, kind).elem_type)
            return inner and ValueType("sequence" if kind == "sequence_type" else "optional", None, inner)
        if kind == "map_type":
            key, inner = elem(type_proto.map_type.key_type), value_type(type_proto.map_type.value_type)
            return ValueType("map", key, inner) if key in ("int64", "string") and inner else None
        return None

    def spec(value_info: Any) -> TensorSpec:
        if value_info.type.WhichOneof("value") != "tensor_type":
            return TensorSpec(value_info.name, None, None, value_type(value_info.type))
        tensor_type = value_info.type.tensor_type
        dtype = elem(tensor_type.elem_type)
        if not tensor_type.HasField("shape"):
            return TensorSpec(value_info.name, dtype, None)
        dims = tuple(d.dim_value if d.WhichOneof("value") == "dim_value" else
                     d.dim_param if d.WhichOneof("value") == "dim_param" else None for d in tensor_type.shape.dim)
        return TensorSpec(value_info.name, dtype, dims)

    initializers = {init.name for init in proto.graph.initializer}
    locations = {
        _safe_location(entry.value, name)
        for tensor in _all_tensors(proto) if tensor.data_location == TensorProto.EXTERNAL
        for entry in tensor.external_data if entry.key == "location"
    }
    return ModelSignature(
        inputs=tuple(spec(v) for v in proto.graph.input if v.name not in initializers),
        outputs=tuple(spec(v) for v in proto.graph.output),
        external_data=tuple(sorted(locations)),
        opsets={opset.domain or "ai.onnx": opset.version for opset in proto.opset_import},
    )


def _external(tensor: TensorProto, location: str) -> TensorProto:
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    for key, value in (("location", location), ("offset", "0"), ("length", "64")):
        tensor.external_data.add(key=key, value=value)
    return tensor


def everything_model() -> onnx.ModelProto:
    """External data in every place onnx allows it, and every kind of graph input."""
    weight = _external(numpy_helper.from_array(np.ones((4, 4), np.float32), "w"), "weights/w.bin")
    branch_const = _external(numpy_helper.from_array(np.ones(4, np.float32), "c"), "branch.bin")
    then_graph = helper.make_graph(
        [helper.make_node("Constant", [], ["t"], value=branch_const)], "then", [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [4])])
    else_graph = helper.make_graph(
        [helper.make_node("Constant", [], ["e"], value_floats=[0.0, 0, 0, 0])], "else", [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [4])])
    sparse = helper.make_sparse_tensor(
        _external(numpy_helper.from_array(np.ones(2, np.float32), "sv"), "sparse_values.bin"),
        numpy_helper.from_array(np.array([0, 3], np.int64), "si"), [4])
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"]),
        helper.make_node("If", ["flag"], ["z"], then_branch=then_graph, else_branch=else_graph),
        helper.make_node("Constant", [], ["s"], sparse_value=sparse),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
        helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
        helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 4]),  # an initializer: not a real input
        helper.make_tensor_value_info("unknown_dims", TensorProto.BFLOAT16, None),
        helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, [2]),
        helper.make_tensor_value_info("text", TensorProto.STRING, [None, 3]),
        helper.make_value_info("probabilities", helper.make_sequence_type_proto(helper.make_map_type_proto(
            TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, None)))),
        helper.make_value_info("maybe", helper.make_optional_type_proto(helper.make_tensor_type_proto(
            TensorProto.DOUBLE, [2]))),
        helper.make_value_info("sparse", helper.make_sparse_tensor_type_proto(TensorProto.FLOAT, [2])),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4]),
               helper.make_tensor_value_info("z", TensorProto.FLOAT, [4]),
               helper.make_tensor_value_info("s", TensorProto.FLOAT, [4])]
    graph = helper.make_graph(nodes, "everything", inputs, outputs, [weight])
    function = helper.make_function(
        "custom", "F", ["a"], ["b"],
        [helper.make_node("Constant", [], ["b"],
                          value=_external(numpy_helper.from_array(np.ones(1, np.float32), "f"), "function.bin"))],
        [helper.make_opsetid("", 17)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)],
                             functions=[function])


def _corpus() -> list[onnx.ModelProto]:
    return [models.mlp(), models.conv(), models.multi_io(), models.classifier(), models.string_labeller(),
            models.noisy(), everything_model(), onnx.load(str(Path(__file__).parents[1] / "fixtures/models/mlp.onnx"))]


def _both(path: Path) -> tuple[str, object]:
    results: list[tuple[str, object]] = []
    for read in (read_signature, reference_signature):
        try:
            results.append(("ok", read(path, "m.onnx")))
        except ModelError as exc:
            results.append(("error", exc.message.split(" (")[0]))
    assert results[0] == results[1], path
    return results[0]


def test_signature_matches_onnx_on_real_models(tmp_path: Path) -> None:
    for index, model in enumerate(_corpus()):
        path = tmp_path / f"{index}.onnx"
        path.write_bytes(model.SerializeToString())
        assert _both(path)[0] == "ok"
    signature = read_signature(tmp_path / "6.onnx")
    assert signature.external_data == ("branch.bin", "function.bin", "sparse_values.bin", "weights/w.bin")
    assert [spec.describe() for spec in signature.inputs] == [
        "float32[batch,4]", "bool[]", "bfloat16[?]", "seq(tensor(float))", "string[?,3]",
        "seq(map(int64,tensor(float)))", "optional(tensor(double))", "non-tensor[?]"]
    assert signature.opsets == {"ai.onnx": 17, "custom": 1}


def test_signature_matches_onnx_on_mutated_models(tmp_path: Path) -> None:
    rng = random.Random(7)
    originals = [model.SerializeToString() for model in _corpus()]
    outcomes = set()
    path = tmp_path / "m.onnx"
    for _ in range(600):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.choice([1, 2, 4])):
            action, at = rng.random(), rng.randrange(len(data))
            if action < 0.5:
                data[at] = rng.randrange(256)
            elif action < 0.7:
                del data[at:at + rng.randrange(1, 8)]
            elif action < 0.85:
                data[at:at] = rng.randbytes(rng.randrange(1, 6))
            else:
                data += data[at:at + rng.randrange(1, 200)]  # repeated fields: protobuf merges them
        path.write_bytes(bytes(data))
        outcomes.add(_both(path)[0])
    assert outcomes == {"ok", "error"}


def test_external_data_outside_the_model_directory_is_refused(tmp_path: Path) -> None:
    for location in ("../secret.bin", "/etc/passwd", "C:\\x", "a/../../b"):
        model = models.mlp()
        _external(model.graph.initializer[0], location)
        path = tmp_path / "m.onnx"
        path.write_bytes(model.SerializeToString())
        with pytest.raises(ModelError, match="outside its directory"):
            read_signature(path)


def test_subset_schema_has_onnx_field_numbers_and_types() -> None:
    ours = onnx_proto.model_class().DESCRIPTOR
    renamed = {"TensorType": "Tensor", "Dimension": "Dimension", "SequenceType": "Sequence", "MapType": "Map",
               "OptionalType": "Optional"}

    def compare(mine: Any, theirs: Any, seen: set[str]) -> None:
        if mine.full_name in seen:
            return
        seen.add(mine.full_name)
        for field in mine.fields:
            reference = theirs.fields_by_name[field.name]
            assert (field.number, field.is_repeated, field.type) == (
                reference.number, reference.is_repeated, reference.type), f"{mine.name}.{field.name}"
            assert (field.containing_oneof is None) == (reference.containing_oneof is None), f"{mine.name}.{field.name}"
            if field.message_type is not None and field.message_type.name != "Opaque":
                assert renamed.get(field.message_type.name, field.message_type.name) == reference.message_type.name
                compare(field.message_type, reference.message_type, seen)
            if field.enum_type is not None:
                assert ([(v.name, v.number) for v in field.enum_type.values]
                        == [(v.name, v.number) for v in reference.enum_type.values])

    compare(ours, onnx.ModelProto.DESCRIPTOR, set())


def test_elem_types_are_onnx_mapping() -> None:
    for elem_type in range(0, 64):
        try:
            expected: str | None = dtype_name(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
        except (KeyError, TypeError, ValueError):
            expected = None
        assert onnx_proto.ELEM_TYPES.get(elem_type) == ("string" if expected == "object" else expected), elem_type
