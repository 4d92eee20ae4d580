"""What an ONNX model declares: its input/output signature and its external-data files.

Parsed with the subset of ONNX's protobuf schema in ``ogverify.model.onnx_proto`` (no ``import onnx``)
without loading external data, so a multi-GB model costs only its graph.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ogverify.errors import ModelError
from ogverify.model.onnx_proto import ELEM_TYPES, EXTERNAL, parse_model

if TYPE_CHECKING:
    from ogverify.model.tensors import Array


@dataclass(frozen=True)
class TensorSpec:
    """A declared graph input or output: dtype name (None if not a tensor) and dims.

    A dim is an int when fixed, a string when symbolic, None when unknown.
    """

    name: str
    dtype: str | None
    shape: tuple[int | str | None, ...] | None

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.dtype or 'non-tensor'}[?]"
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype or 'non-tensor'}[{dims}]"

    def accepts(self, dtype: str, shape: Sequence[int]) -> bool:
        """Whether a tensor of ``dtype[shape]`` fits this declaration."""
        if self.dtype is not None and dtype != self.dtype:
            return False
        if self.shape is None:
            return True
        if len(self.shape) != len(shape):
            return False
        return all(not isinstance(d, int) or d == a for d, a in zip(self.shape, shape, strict=True))


@dataclass(frozen=True)
class ModelSignature:
    """The graph's real inputs (initializers excluded), outputs, and external-data locations."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    external_data: tuple[str, ...]
    opsets: dict[str, int]

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    def check_inputs(self, arrays: Mapping[str, Array]) -> None:
        """Raise a ModelError naming the first input that is missing, unknown or mistyped."""
        from ogverify.model.tensors import dtype_name

        self.check_input_types({name: (dtype_name(a.dtype), tuple(a.shape)) for name, a in arrays.items()})

    def check_input_types(self, types: Mapping[str, tuple[str, Sequence[int]]]) -> None:
        """``check_inputs`` for tensors known by dtype name and shape (a manifest's entries)."""
        declared = {spec.name: spec for spec in self.inputs}
        for name in types:
            if name not in declared:
                raise ModelError(f"the model has no input {name!r} (inputs: {', '.join(declared) or 'none'})")
        for spec in self.inputs:
            if spec.name not in types:
                raise ModelError(f"input {spec.name!r} ({spec.describe()}) is not given")
            dtype, shape = types[spec.name]
            if not spec.accepts(dtype, shape):
                got = f"{dtype}[{','.join(map(str, shape))}]"
                raise ModelError(f"input {spec.name!r} expects {spec.describe()}, got {got}")


def _tensor_spec(value_info: Any) -> TensorSpec:
    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorSpec(value_info.name, None, None)
    tensor_type = value_info.type.tensor_type
    dtype = ELEM_TYPES.get(tensor_type.elem_type)
    if not tensor_type.HasField("shape"):
        return TensorSpec(value_info.name, dtype, None)
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        which = dim.WhichOneof("value")
        dims.append(dim.dim_value if which == "dim_value" else dim.dim_param if which == "dim_param" else None)
    return TensorSpec(value_info.name, dtype, tuple(dims))


def _safe_location(location: str | bytes, model_name: str) -> str:
    if not isinstance(location, str):  # protobuf hands back bytes for a proto2 string that is not UTF-8
        raise ModelError(f"model {model_name!r} names external data by a path that is not UTF-8 text")
    base = posixpath.dirname(model_name)
    joined = posixpath.normpath(posixpath.join(base, location.replace("\\", "/")))
    if location.startswith(("/", "\\")) or joined.startswith("../") or joined == ".." or ":" in location:
        raise ModelError(f"model {model_name!r} names external data {location!r} outside its directory")
    return joined


def _all_tensors(proto: Any) -> Iterator[Any]:
    """Every TensorProto of the model that may name external data, subgraphs and functions included.

    Walks with an explicit stack: a hostile model may nest subgraphs (If/Loop/Scan bodies) deeply.
    """
    graphs: list[Any] = [proto.graph]
    nodes: list[Any] = [node for function in proto.functions for node in function.node]
    while graphs or nodes:
        if graphs:
            graph = graphs.pop()
            yield from graph.initializer
            for sparse in graph.sparse_initializer:
                yield sparse.values
                yield sparse.indices
            nodes.extend(graph.node)
            continue
        for attr in nodes.pop().attribute:
            if attr.HasField("t"):
                yield attr.t
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            yield from attr.tensors
            for sparse in attr.sparse_tensors:
                yield sparse.values
                yield sparse.indices
            if attr.HasField("g"):
                graphs.append(attr.g)
            graphs.extend(attr.graphs)


def read_signature(path: Path, model_name: str | None = None) -> ModelSignature:
    """Parse ``path`` (graph only) and return its signature.

    Raises:
        ModelError: not an ONNX model, or external data that points outside the model's directory.
    """
    from google.protobuf.message import DecodeError

    name = model_name or path.name
    try:
        proto = parse_model(path.read_bytes())
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise ModelError(f"{name} is not a readable ONNX model ({exc})") from exc
    graph = proto.graph
    initializers = {init.name for init in graph.initializer}
    locations: set[str] = set()
    for tensor in _all_tensors(proto):
        if tensor.data_location == EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    locations.add(_safe_location(entry.value, name))
    return ModelSignature(
        inputs=tuple(_tensor_spec(v) for v in graph.input if v.name not in initializers),
        outputs=tuple(_tensor_spec(v) for v in graph.output),
        external_data=tuple(sorted(locations)),
        opsets={opset.domain or "ai.onnx": opset.version for opset in proto.opset_import},
    )
