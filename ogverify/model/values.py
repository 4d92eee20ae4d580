"""Non-tensor values: ONNX sequences, maps and optionals, parsed, stored canonically and described.

A *value* is a tensor (a canonical numpy array, ``ogverify.model.tensors``), a ``SequenceValue`` of
values, a ``MapValue`` (one scalar per int64 or string key, what onnxruntime's maps hold) or an
``OptionalValue``. Its type is a ``ValueType`` (``ogverify.model.signature``), written as
onnxruntime writes it: ``seq(map(int64,tensor(float)))``.

Values come from onnxruntime (Python lists, dicts, None and arrays), from ONNX test-data files
(``SequenceProto``/``MapProto``/``OptionalProto`` .pb) and from JSON (a list for a sequence, an
object for a map, nested lists for a tensor, null for an empty optional); numbers are read as the
model's declared element types.

A bundle stores a non-tensor value as one blob (docs/format.md, "Non-tensor values")::

    b"ogverify-value/1\\n" + RFC 8785 JSON {"type": TYPE, "value": NODE} + b"\\n" + leaves

NODE is ``"tensor"`` (the next leaf), ``"map"`` (the next two leaves: the keys, strictly
ascending, then their values, both 1-D), ``{"sequence": [NODE, ...]}`` or
``{"optional": NODE | null}``. The leaves follow in the order their nodes appear, each a
canonical .npy (format 1.0, little-endian, C order; text at its narrowest width). ``decode``
encodes what it read again and accepts only bytes equal to that, so a value has one encoding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, Union

import numpy as np

from ogverify.errors import BundleError, UsageError
from ogverify.evidence import canonical_json
from ogverify.model.signature import ValueType, fits
from ogverify.model.tensors import Array, canonicalize, describe, dtype_name, for_runtime, parse_npy_at, to_npy_bytes

MAGIC = b"ogverify-value/1\n"
MEDIA_TYPE = "application/vnd.ogverify.value"
_INT_KEY = re.compile(r"^-?(0|[1-9][0-9]*)$")


@dataclass(frozen=True, eq=False)
class SequenceValue:
    """An ONNX sequence: its elements in order."""

    items: tuple[Value, ...]


@dataclass(frozen=True, eq=False)
class MapValue:
    """An ONNX map: 1-D ``keys`` (int64 or text, strictly ascending) and one value per key."""

    keys: Array
    values: Array


@dataclass(frozen=True, eq=False)
class OptionalValue:
    """An ONNX optional: a value or none."""

    value: Value | None


Value = Union[Array, SequenceValue, MapValue, OptionalValue]  # noqa: UP007 (a runtime alias over a numpy type)


def is_tensor(value: Value) -> TypeGuard[Array]:
    return isinstance(value, np.ndarray)


def type_of(value: Value) -> ValueType:
    """The type of ``value``; an element type that an empty sequence or optional cannot show is
    that of a ``tensor(undefined)``."""
    if isinstance(value, np.ndarray):
        return ValueType("tensor", dtype_name(value.dtype))
    if isinstance(value, SequenceValue):
        return ValueType("sequence", None, type_of(value.items[0]) if value.items else ValueType("tensor"))
    if isinstance(value, MapValue):
        return ValueType("map", dtype_name(value.keys.dtype), ValueType("tensor", dtype_name(value.values.dtype)))
    return ValueType("optional", None, type_of(value.value) if value.value is not None else ValueType("tensor"))


def describe_value(value: Value, value_type: ValueType) -> str:
    """How messages name a value: ``float32[1,4]``, ``seq(map(int64,tensor(float)))[2]`` (its length),
    ``optional(tensor(float))[none]``."""
    if isinstance(value, np.ndarray):
        return describe(value)
    if isinstance(value, SequenceValue):
        return f"{value_type}[{len(value.items)}]"
    if isinstance(value, MapValue):
        return f"{value_type}[{value.keys.size}]"
    return f"{value_type}[{'none' if value.value is None else 'some'}]"


def leaves(value: Value) -> Iterator[Array]:
    """Every array of ``value`` in storage order (a map: its keys, then its values)."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, SequenceValue):
        for item in value.items:
            yield from leaves(item)
    elif isinstance(value, MapValue):
        yield value.keys
        yield value.values
    elif value.value is not None:
        yield from leaves(value.value)


# --- from Python objects (onnxruntime, JSON, ONNX protos) -----------------------------------


def from_python(obj: Any, value_type: ValueType, what: str, *, text_keys: bool = False) -> Value:
    """The canonical value of ``obj`` read as ``value_type``.

    ``obj`` is what onnxruntime returns or takes (arrays, lists, dicts, None) or parsed JSON; with
    ``text_keys`` a map's int64 keys may be given as decimal text (JSON object keys).

    Raises:
        UsageError: ``obj`` does not fit the type (naming ``what`` and where inside it).
    """
    if value_type.kind == "tensor":
        return _tensor(obj, value_type.dtype, what)
    if value_type.kind == "optional":
        assert value_type.element is not None
        return OptionalValue(None if obj is None else from_python(obj, value_type.element, what, text_keys=text_keys))
    if value_type.kind == "sequence":
        assert value_type.element is not None
        if not isinstance(obj, list | tuple):
            raise UsageError(f"{what}: expected a list for {value_type}, got {type(obj).__name__}")
        return SequenceValue(tuple(from_python(item, value_type.element, f"{what} element {index}",
                                               text_keys=text_keys) for index, item in enumerate(obj)))
    return _map(obj, value_type, what, text_keys)


def _tensor(obj: Any, dtype: str | None, what: str) -> Array:
    if not isinstance(obj, np.ndarray):
        _check_scalars(obj, dtype, what)
        target = None if dtype is None else np.dtype(np.str_ if dtype == "string" else dtype)
        try:
            with np.errstate(over="ignore"):  # a float beyond float32's range is read as inf, as onnx reads it
                obj = np.array(obj, dtype=target if target is not None and target.kind in "biufU" else None)
        except OverflowError as exc:
            raise UsageError(f"{what}: a value is out of the range of {dtype}") from exc
        except ValueError as exc:  # ragged nesting
            raise UsageError(f"{what}: not a tensor ({exc})") from exc
    array = canonicalize(obj, what)
    if dtype is not None and dtype_name(array.dtype) != dtype:
        array = _cast(array, dtype, what)
    return array


def _check_scalars(obj: Any, dtype: str | None, what: str, depth: int = 0) -> None:
    """Reject what numpy would coerce silently: a float for an integer, a number for text, bools for numbers."""
    if depth > 64:
        raise UsageError(f"{what}: nested deeper than 64 levels")
    if isinstance(obj, list | tuple):
        for item in obj:
            _check_scalars(item, dtype, what, depth + 1)
        return
    if dtype is None or isinstance(obj, np.ndarray | np.generic):
        return
    kind = np.dtype(np.str_ if dtype == "string" else dtype).kind
    fits = {"U": isinstance(obj, str), "b": isinstance(obj, bool),
            "f": isinstance(obj, int | float) and not isinstance(obj, bool),
            "i": isinstance(obj, int) and not isinstance(obj, bool),
            "u": isinstance(obj, int) and not isinstance(obj, bool)}.get(kind, True)
    if not fits:
        raise UsageError(f"{what}: {obj!r} is not a value of type {dtype}")


def _cast(array: Array, dtype: str, what: str) -> Array:
    target = np.dtype(np.str_ if dtype == "string" else dtype)
    source = array.dtype.kind
    safe = (source == target.kind == "U") or (target.kind == "f" and source in "iuf") or (
        target.kind in "iu" and source in "iu")
    if not safe:
        raise UsageError(f"{what}: {describe(array)} cannot be read as {dtype}")
    if source in "iu" and target.kind in "iu" and array.size:
        info = np.iinfo(target)
        if int(array.min()) < info.min or int(array.max()) > info.max:
            raise UsageError(f"{what}: values out of the range of {dtype}")
    with np.errstate(over="ignore"):  # a float64 beyond float32's range is read as inf, as onnx reads it
        return np.ascontiguousarray(array.astype(target))


def _map(obj: Any, value_type: ValueType, what: str, text_keys: bool) -> MapValue:
    element = value_type.element
    assert element is not None and value_type.dtype is not None
    if not isinstance(obj, dict):
        raise UsageError(f"{what}: expected an object (a map) for {value_type}, got {type(obj).__name__}")
    if element.kind != "tensor":
        raise UsageError(f"{what}: maps of {element} are not supported (onnxruntime's maps hold scalars)")
    keys: list[int | str] = []
    for key in obj:
        integer = (isinstance(key, int | np.integer) and not isinstance(key, bool)) or (
            text_keys and isinstance(key, str) and _INT_KEY.match(key) is not None)
        if value_type.dtype == "string" and isinstance(key, str):
            keys.append(key)
        elif integer and value_type.dtype == "int64":
            keys.append(int(key))
        else:
            raise UsageError(f"{what}: key {key!r} is not of the key type {value_type.dtype}")
    if len(set(keys)) != len(keys):
        raise UsageError(f"{what}: a key appears twice")
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    items = list(obj.values())
    key_array = _tensor([keys[i] for i in order], value_type.dtype, f"{what} keys")
    values = []
    for i in order:
        item = items[i]
        if isinstance(item, np.ndarray):
            if item.size != 1:
                raise UsageError(f"{what} key {keys[i]!r}: holds {describe(item)}, not one value")
            item = item.reshape(-1)[0]
        values.append(item.item() if isinstance(item, np.generic) else item)
    value_array = _tensor(values, element.dtype, f"{what} values")
    if value_array.ndim != 1:
        raise UsageError(f"{what}: each map value must be a single {element.dtype}")
    return MapValue(_narrow(key_array), _narrow(value_array))


def _narrow(array: Array) -> Array:
    """Text at its narrowest width (``<U1`` for none or empty strings): one encoding per value."""
    if array.dtype.kind != "U":
        return array
    width = max(1, int(np.char.str_len(array.astype(np.str_)).max())) if array.size else 1
    return array if array.dtype.itemsize == 4 * width else np.ascontiguousarray(array.astype(f"<U{width}"))


def canonical(value: Value) -> Value:
    """``value`` with every text leaf at its narrowest width (tensors otherwise as given)."""
    if isinstance(value, np.ndarray):
        return _narrow(value)
    if isinstance(value, SequenceValue):
        return SequenceValue(tuple(canonical(item) for item in value.items))
    if isinstance(value, MapValue):
        return MapValue(_narrow(value.keys), _narrow(value.values))
    return OptionalValue(None if value.value is None else canonical(value.value))


def to_runtime(value: Value) -> Any:
    """The value as onnxruntime takes it: arrays, lists, dicts of Python scalars, or None."""
    if isinstance(value, np.ndarray):
        return for_runtime(value)
    if isinstance(value, SequenceValue):
        return [to_runtime(item) for item in value.items]
    if isinstance(value, MapValue):
        return dict(zip(value.keys.tolist(), value.values.tolist(), strict=True))
    return None if value.value is None else to_runtime(value.value)


def to_json(value: Value) -> Any:
    """The value as the JSON ``load_value_file`` reads (int64 map keys as decimal text)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, SequenceValue):
        return [to_json(item) for item in value.items]
    if isinstance(value, MapValue):
        return {str(key): item for key, item in zip(value.keys.tolist(), value.values.tolist(), strict=True)}
    return None if value.value is None else to_json(value.value)


# --- canonical bytes ------------------------------------------------------------------------


def _node(value: Value) -> Any:
    if isinstance(value, np.ndarray):
        return "tensor"
    if isinstance(value, SequenceValue):
        return {"sequence": [_node(item) for item in value.items]}
    if isinstance(value, MapValue):
        return "map"
    return {"optional": None if value.value is None else _node(value.value)}


def encode(value: Value, value_type: ValueType) -> bytes:
    """The canonical bytes of a non-tensor value (the module docstring's form)."""
    value = canonical(value)
    header = canonical_json.dumps({"type": str(value_type), "value": _node(value)})
    return b"".join((MAGIC, header, b"\n", *(to_npy_bytes(leaf) for leaf in leaves(value))))


def decode(raw: bytes, what: str) -> tuple[ValueType, Value]:
    """Parse a value's canonical bytes (untrusted: never unpickles, bounded nesting).

    Raises:
        BundleError: not the canonical encoding of a value of the type it names.
    """
    if not raw.startswith(MAGIC):
        raise BundleError(f"{what} is not an ogverify value (no {MAGIC[:-1].decode()} header)")
    end = raw.find(b"\n", len(MAGIC))
    if end < 0:
        raise BundleError(f"{what}: the value's header is not terminated")
    header = canonical_json.loads_strict(raw[len(MAGIC):end], what)
    if not isinstance(header, dict) or set(header) != {"type", "value"} or not isinstance(header["type"], str):
        raise BundleError(f"{what}: the value's header must hold exactly 'type' and 'value'")
    try:
        value_type = ValueType.parse(header["type"])
    except ValueError as exc:
        raise BundleError(f"{what}: {exc}") from exc
    arrays = _split_npy(raw, end + 1, what)
    value = _build(header["value"], value_type, arrays, what)
    if arrays:
        raise BundleError(f"{what}: {len(arrays)} tensor(s) more than the value's structure names")
    if encode(value, value_type) != raw:
        raise BundleError(f"{what} is not in canonical form (map keys ascending and unique, "
                          "canonical .npy, text at its narrowest width)")
    return value_type, value


def _split_npy(raw: bytes, offset: int, what: str) -> list[Array]:
    """The .npy leaves from ``offset`` on, last first (``_build`` pops them)."""
    arrays: list[Array] = []
    while offset < len(raw):
        array, offset = parse_npy_at(raw, offset, f"{what} tensor {len(arrays)}")
        arrays.append(array)
    arrays.reverse()
    return arrays


def _build(node: Any, value_type: ValueType, arrays: list[Array], what: str, depth: int = 0) -> Value:
    def take() -> Array:
        if not arrays:
            raise BundleError(f"{what}: the value names more tensors than it holds")
        return arrays.pop()

    if depth > 64:
        raise BundleError(f"{what}: nested deeper than 64 levels")
    if value_type.kind == "tensor" and node == "tensor":
        array = take()
        if value_type.dtype is not None and dtype_name(array.dtype) != value_type.dtype:
            raise BundleError(f"{what}: holds {describe(array)} where its type says {value_type}")
        return array
    element = value_type.element
    if value_type.kind == "map" and node == "map":
        assert element is not None
        keys, values = take(), take()
        if (keys.ndim != 1 or values.shape != keys.shape or dtype_name(keys.dtype) != value_type.dtype
                or (element.dtype is not None and dtype_name(values.dtype) != element.dtype)):
            raise BundleError(f"{what}: map of {describe(keys)} keys and {describe(values)} values "
                              f"where its type says {value_type}")
        if keys.size > 1 and not bool(np.all(np.greater(keys[1:], keys[:-1]))):
            raise BundleError(f"{what}: map keys are not strictly ascending")
        return MapValue(keys, values)
    if value_type.kind == "sequence" and isinstance(node, dict) and list(node) == ["sequence"]:
        items = node["sequence"]
        if not isinstance(items, list):
            raise BundleError(f"{what}: a sequence's node must hold a list")
        assert element is not None
        return SequenceValue(tuple(_build(item, element, arrays, what, depth + 1) for item in items))
    if value_type.kind == "optional" and isinstance(node, dict) and list(node) == ["optional"]:
        assert element is not None
        inner = node["optional"]
        return OptionalValue(None if inner is None else _build(inner, element, arrays, what, depth + 1))
    raise BundleError(f"{what}: its structure does not fit its type {value_type}")


# --- files between ogverify's processes ----------------------------------------------------

VALUE_SUFFIX = ".value"


def write_file(value: Value, stem: Path) -> Path:
    """Write ``value`` next to ``stem``: a tensor as ``STEM.npy``, any other value in its canonical
    encoding as ``STEM.value``; the path written."""
    if is_tensor(value):
        path = stem.with_name(stem.name + ".npy")
        path.write_bytes(to_npy_bytes(canonicalize(value, str(stem))))
    else:
        path = stem.with_name(stem.name + VALUE_SUFFIX)
        path.write_bytes(encode(value, type_of(value)))
    return path


def read_file(path: Path, what: str, max_bytes: int | None = None) -> Value:
    """Read what ``write_file`` wrote (untrusted: checked as a bundle's blob is).

    Raises:
        BundleError: malformed, or larger than ``max_bytes``.
    """
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise BundleError(f"{what} is larger than the max_tensor_bytes limit ({max_bytes})")
    raw = path.read_bytes()
    if path.suffix == VALUE_SUFFIX:
        return decode(raw, what)[1]
    from ogverify.model.tensors import parse_npy

    return parse_npy(raw, what).copy()


# --- files given by a user ------------------------------------------------------------------


def load_value_file(path: Path, value_type: ValueType, what: str) -> Value:
    """A value of ``value_type`` from a user's .json, ONNX .pb (Sequence/Map/Optional/TensorProto)
    or .npy file (a tensor only).

    Raises:
        UsageError: an unreadable file or one that does not fit the type.
    """
    if not path.is_file():
        raise UsageError(f"{what}: no such file {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return from_python(_read_json(path, what), value_type, what, text_keys=True)
    if suffix == ".pb":
        return from_python(_read_proto(path, value_type, what)[1], value_type, what)
    if suffix == VALUE_SUFFIX and not value_type.is_tensor:  # as ``extract`` writes it
        try:
            stored_type, value = decode(path.read_bytes(), what)
        except BundleError as exc:
            raise UsageError(exc.message) from exc
        if not fits(str(stored_type), value_type):
            raise UsageError(f"{what}: {path} holds a {stored_type}, the model declares {value_type}")
        return value
    if suffix == ".npy" and value_type.is_tensor:
        from ogverify.model.tensors import load_npy_file

        return from_python(load_npy_file(path, what), value_type, what)
    raise UsageError(f"{what}: {path} must be .json, .value or an ONNX {_proto_name(value_type)} .pb "
                     f"for {value_type}")


def _read_json(path: Path, what: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            raise UsageError(f"{what}: {path} repeats a key in an object")
        return result

    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{what}: {path} is not valid JSON ({exc})") from exc


def _proto_name(value_type: ValueType) -> str:
    return {"tensor": "TensorProto", "sequence": "SequenceProto", "map": "MapProto",
            "optional": "OptionalProto"}[value_type.kind]


def read_proto_name(path: Path, value_type: ValueType, what: str) -> str:
    """The name an ONNX .pb file of ``value_type`` gives its value ("" when it gives none)."""
    return _read_proto(path, value_type, what)[0]


def _read_proto(path: Path, value_type: ValueType, what: str) -> tuple[str, Any]:
    """The name and Python form (arrays, lists, dicts, None) of an ONNX value .pb file."""
    from google.protobuf.message import DecodeError
    from onnx import MapProto, OptionalProto, SequenceProto, TensorProto, numpy_helper

    proto_class = {"tensor": TensorProto, "sequence": SequenceProto, "map": MapProto,
                   "optional": OptionalProto}[value_type.kind]
    proto: Any = proto_class()
    try:
        proto.ParseFromString(path.read_bytes())
        converted = _proto_to_python(proto, numpy_helper)
    except (DecodeError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise UsageError(f"{what}: {path} is not an ONNX {_proto_name(value_type)} file ({exc})") from exc
    return proto.name, converted


def _proto_to_python(proto: Any, numpy_helper: Any) -> Any:
    from onnx import MapProto, OptionalProto, SequenceProto, TensorProto

    if isinstance(proto, TensorProto):
        return np.asarray(numpy_helper.to_array(proto))
    if isinstance(proto, MapProto):
        keys: list[int | str] = ([k.decode("utf-8") for k in proto.string_keys] if proto.key_type == TensorProto.STRING
                                 else list(proto.keys))
        values = _proto_to_python(proto.values, numpy_helper)
        if len(values) != len(keys):
            raise ValueError(f"{len(keys)} keys but {len(values)} values")
        return dict(zip(keys, values, strict=True))
    if isinstance(proto, OptionalProto):
        fields: dict[int, str] = {OptionalProto.TENSOR: "tensor_value", OptionalProto.SEQUENCE: "sequence_value",
                                  OptionalProto.MAP: "map_value", OptionalProto.OPTIONAL: "optional_value"}
        field = fields.get(proto.elem_type)
        return None if field is None or not proto.HasField(field) else _proto_to_python(getattr(proto, field),
                                                                                        numpy_helper)
    assert isinstance(proto, SequenceProto)
    sequence_fields: dict[int, str] = {SequenceProto.TENSOR: "tensor_values", SequenceProto.SEQUENCE: "sequence_values",
                                       SequenceProto.MAP: "map_values", SequenceProto.OPTIONAL: "optional_values"}
    field = sequence_fields.get(proto.elem_type)
    if field is None:
        raise ValueError(f"sequence element type {proto.elem_type} is not supported")
    return [_proto_to_python(item, numpy_helper) for item in getattr(proto, field)]


def from_runtime_outputs(session: Any, names: list[str], outputs: list[Any]) -> list[Any]:
    """onnxruntime's outputs with every sequence, map and optional read as its declared type
    (``session.get_outputs()``); tensors are left as onnxruntime returned them.

    Raises:
        UsageError: an output of a type ogverify cannot store (sparse tensors, maps of non-scalars).
    """
    declared = {arg.name: arg.type for arg in session.get_outputs()}
    converted: list[Any] = []
    for name, output in zip(names, outputs, strict=True):
        try:
            value_type: ValueType | None = ValueType.parse(declared[name])
        except (KeyError, ValueError):
            value_type = None
        if (value_type is not None and value_type.is_tensor) or (value_type is None and isinstance(output, np.ndarray)):
            converted.append(output)  # a present optional comes back as an array too: its type decides
        elif value_type is None:
            raise UsageError(f"output {name!r} is a {type(output).__name__} of type {declared.get(name)!r}, "
                             "which ogverify cannot store")
        else:
            converted.append(from_python(output, value_type, f"output {name!r}"))
    return converted
