"""What an ONNX model declares: its input/output signature and its external-data files.

Parsed with the subset of ONNX's protobuf schema in ``ogverify.model.onnx_proto`` (no ``import onnx``)
without loading external data, so a multi-GB model costs only its graph.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ogverify.errors import ModelError
from ogverify.model.onnx_proto import ELEM_TYPES, EXTERNAL, parse_model

if TYPE_CHECKING:
    from ogverify.model.values import Value

# ogverify's dtype name -> ONNX's, where they differ (onnxruntime writes types with ONNX's names).
_ONNX_NAMES = {"float32": "float", "float64": "double"}
_DTYPES = {_ONNX_NAMES.get(name, name): name for name in ELEM_TYPES.values()}
ValueKind = Literal["tensor", "sequence", "map", "optional"]
_KINDS: dict[str, ValueKind] = {"tensor": "tensor", "seq": "sequence", "map": "map", "optional": "optional"}


@dataclass(frozen=True)
class ValueType:
    """The type of a graph input or output: a tensor, or a sequence, map or optional of values.

    Written as onnxruntime writes it (``NodeArg.type``): ``tensor(float)``, ``seq(tensor(float))``,
    ``seq(map(int64,tensor(float)))``, ``map(string,tensor(double))``, ``optional(seq(tensor(int64)))``.

    Attributes:
        dtype: a tensor's element dtype (ogverify's name, None when the model leaves it unset), or a
            map's key dtype.
        element: a sequence's or optional's element type, or a map's value type.
    """

    kind: ValueKind
    dtype: str | None = None
    element: ValueType | None = None

    @property
    def is_tensor(self) -> bool:
        return self.kind == "tensor"

    def __str__(self) -> str:
        if self.kind == "tensor":
            return f"tensor({_ONNX_NAMES.get(self.dtype, self.dtype) if self.dtype else 'undefined'})"
        if self.kind == "map":
            return f"map({_ONNX_NAMES.get(self.dtype or '', self.dtype)},{self.element})"
        return f"{'seq' if self.kind == 'sequence' else self.kind}({self.element})"

    @classmethod
    def parse(cls, text: str) -> ValueType:
        """Parse onnxruntime's notation (``str`` read back).

        Raises:
            ValueError: not a type this notation writes.
        """
        parsed, rest = cls._parse(text, 0)
        if rest != len(text):
            raise ValueError(f"not a value type: {text!r}")
        return parsed

    @classmethod
    def _parse(cls, text: str, start: int, depth: int = 0) -> tuple[ValueType, int]:
        open_at = text.find("(", start)
        kind = _KINDS.get(text[start:open_at]) if open_at > start else None
        if kind is None or depth > 32:
            raise ValueError(f"not a value type: {text!r}")
        position = open_at + 1
        if kind in ("tensor", "map"):
            end = text.find(")" if kind == "tensor" else ",", position)
            dtype = _DTYPES.get(text[position:end]) if end > position else None
            if dtype is None or (kind == "map" and dtype not in ("int64", "string")):
                raise ValueError(f"not a value type: {text!r}")
            if kind == "tensor":
                return cls("tensor", dtype), end + 1
            element, position = cls._parse(text, end + 1, depth + 1)
            result = cls("map", dtype, element)
        else:
            element, position = cls._parse(text, position, depth + 1)
            result = cls(kind, None, element)
        if not text.startswith(")", position):
            raise ValueError(f"not a value type: {text!r}")
        return result, position + 1


@dataclass(frozen=True)
class TensorSpec:
    """A declared graph input or output: dtype name (None if not a tensor) and dims.

    A dim is an int when fixed, a string when symbolic, None when unknown. ``value_type`` is set
    for a sequence, map or optional (``ogverify.model.values``); None for a tensor or a type
    ogverify does not handle (sparse, opaque).
    """

    name: str
    dtype: str | None
    shape: tuple[int | str | None, ...] | None
    value_type: ValueType | None = None

    def describe(self) -> str:
        if self.value_type is not None:
            return str(self.value_type)
        if self.shape is None:
            return f"{self.dtype or 'non-tensor'}[?]"
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype or 'non-tensor'}[{dims}]"

    @property
    def type(self) -> ValueType:
        """The declared type; a tensor of this spec's dtype unless it declares a non-tensor."""
        return self.value_type or ValueType("tensor", self.dtype)

    def accepts(self, dtype: str, shape: Sequence[int]) -> bool:
        """Whether a tensor of ``dtype[shape]`` fits this declaration."""
        if self.value_type is not None:
            return False
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

    def check_inputs(self, values: Mapping[str, Value]) -> None:
        """Raise a ModelError naming the first input that is missing, unknown or mistyped."""
        from ogverify.model.tensors import dtype_name
        from ogverify.model.values import is_tensor, type_of

        self.check_input_types({name: (dtype_name(v.dtype), tuple(v.shape)) if is_tensor(v) else str(type_of(v))
                                for name, v in values.items()})

    def check_input_types(self, types: Mapping[str, tuple[str, Sequence[int]] | str]) -> None:
        """``check_inputs`` for values known by their types (a manifest's entries): a tensor's dtype
        name and shape, or a non-tensor's ``ValueType`` as text."""
        declared = {spec.name: spec for spec in self.inputs}
        for name in types:
            if name not in declared:
                raise ModelError(f"the model has no input {name!r} (inputs: {', '.join(declared) or 'none'})")
        for spec in self.inputs:
            if spec.name not in types:
                raise ModelError(f"input {spec.name!r} ({spec.describe()}) is not given")
            given = types[spec.name]
            if isinstance(given, str):
                if spec.value_type is None or not fits(given, spec.value_type):
                    raise ModelError(f"input {spec.name!r} expects {spec.describe()}, got {given}")
                continue
            dtype, shape = given
            if not spec.accepts(dtype, shape):
                got = f"{dtype}[{','.join(map(str, shape))}]"
                raise ModelError(f"input {spec.name!r} expects {spec.describe()}, got {got}")


def fits(given: str, declared: ValueType) -> bool:
    """Whether a value of type ``given`` (text) fits ``declared``: equal, or equal where the
    declaration leaves an element type unset (``tensor(undefined)``)."""
    try:
        parsed: ValueType | None = ValueType.parse(given)
    except ValueError:
        return False
    expected: ValueType | None = declared
    while parsed is not None and expected is not None:
        if parsed.kind != expected.kind or (expected.dtype is not None and parsed.dtype != expected.dtype):
            return False
        parsed, expected = parsed.element, expected.element
    return parsed is None or expected is None


def _value_type(type_proto: Any, depth: int = 0) -> ValueType | None:
    """The ValueType of a TypeProto; None for what ogverify does not handle (sparse, opaque, unset)."""
    kind = type_proto.WhichOneof("value")
    if depth > 32:
        return None
    if kind == "tensor_type":
        return ValueType("tensor", ELEM_TYPES.get(type_proto.tensor_type.elem_type))
    if kind in ("sequence_type", "optional_type"):
        inner = getattr(type_proto, kind).elem_type
        element = _value_type(inner, depth + 1)
        return None if element is None else ValueType("sequence" if kind == "sequence_type" else "optional",
                                                      None, element)
    if kind == "map_type":
        key = ELEM_TYPES.get(type_proto.map_type.key_type)
        value = _value_type(type_proto.map_type.value_type, depth + 1)
        return ValueType("map", key, value) if key in ("int64", "string") and value is not None else None
    return None


def _tensor_spec(value_info: Any) -> TensorSpec:
    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorSpec(value_info.name, None, None, _value_type(value_info.type))
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


_NUMBER = re.compile(r"[0-9]{1,18}")


def relocate_external_data(data: bytes, model_name: str, places: Mapping[str, tuple[str, int, int]]) -> bytes | None:
    """The model ``data`` with its external data read from where the bundle holds it, or None.

    ``places`` maps each external-data file, by its name relative to the model's folder (as the
    manifest's ``model_files`` name it), to (new location, offset of its bytes there, its size):
    the blob's file in a bundle directory, or the ``.ogb`` itself at the member's offset. Every
    external tensor's ``location`` becomes the new one and its ``offset`` moves by the file's
    offset. None (the caller copies the files instead) when a tensor does not say plainly which
    bytes it reads: no ``length``, a key given twice, numbers that are not plain decimals, or a
    range past the end of its file, which in a ``.ogb`` would read another member's bytes.

    Raises:
        ModelError: not an ONNX model, or external data outside the model's folder.
    """
    from google.protobuf.message import DecodeError

    try:
        proto = parse_model(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{model_name} is not a readable ONNX model ({exc})") from exc
    for tensor in _all_tensors(proto):
        if tensor.data_location != EXTERNAL:
            continue
        entries = {}
        for entry in tensor.external_data:
            if entry.key in entries:
                return None
            entries[entry.key] = entry
        location, offset, length = (entries.get(key) for key in ("location", "offset", "length"))
        if location is None or length is None or not _NUMBER.fullmatch(length.value) or (
                offset is not None and not _NUMBER.fullmatch(offset.value)):
            return None
        place = places.get(_safe_location(location.value, model_name))
        if place is None:
            return None
        start = int(offset.value) if offset is not None else 0
        if start + int(length.value) > place[2]:
            return None
        location.value = place[0]
        if offset is None:
            offset = tensor.external_data.add(key="offset")
        offset.value = str(place[1] + start)
    serialized: bytes = proto.SerializeToString()
    return serialized
