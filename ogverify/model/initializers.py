"""Per-initializer digests of an ONNX model: which weights a bundle holds, tensor by tensor.

Each initializer of the main graph gets the blake3 of its raw little-endian bytes (what ONNX's
``raw_data`` holds, and what an external-data file holds at the tensor's offset), so the same
weights have the same digest whether they are stored inline or in an external file. External
tensors are hashed in place, straight from their file by offset and length, never loaded whole.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

from ogverify.errors import ModelError
from ogverify.evidence.digest import digest_bytes, digest_region
from ogverify.evidence.manifest import InitializerDigest
from ogverify.evidence.regions import new_hasher
from ogverify.model.signature import _safe_location

# ONNX element types whose numpy name differs from the lowercased ONNX name.
_NUMPY_NAMES = {
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "FLOAT16": "float16",
    "COMPLEX64": "complex64",
    "COMPLEX128": "complex128",
}


def dtype_of(data_type: int) -> str:
    """numpy's name for an ONNX element type, or ONNX's own name lowercased (``bfloat16``, ``float8e4m3fn``)."""
    from onnx import TensorProto

    try:
        onnx_name = TensorProto.DataType.Name(data_type)
    except ValueError:
        return f"type{data_type}"
    return _NUMPY_NAMES.get(onnx_name, onnx_name.lower())


def initializer_digests(model: Path, model_name: str | None = None) -> tuple[InitializerDigest, ...]:
    """Digest every initializer of the main graph of ``model``, in graph order.

    Raises:
        ModelError: unreadable model, or an external tensor whose location, offset or length is
            invalid or points past the end of its file.
    """
    import onnx
    from google.protobuf.message import DecodeError

    name = model_name or model.name
    try:
        proto = onnx.load(str(model), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise ModelError(f"{name} is not a readable ONNX model ({exc})") from exc
    with ExitStack() as files:
        handles: dict[str, BinaryIO] = {}

        def open_location(location: str) -> BinaryIO:
            if location not in handles:
                handles[location] = files.enter_context((model.parent / location).open("rb"))
            return handles[location]

        return tuple(_digest(tensor, name, open_location) for tensor in _initializers(proto))


def _initializers(proto: Any) -> Iterator[Any]:
    yield from proto.graph.initializer


def _digest(tensor: Any, model_name: str, open_location: Any) -> InitializerDigest:
    from onnx import TensorProto

    dtype = dtype_of(tensor.data_type)
    shape = tuple(int(d) for d in tensor.dims)
    if tensor.data_location == TensorProto.EXTERNAL:
        location, offset, length = _external(tensor, model_name)
        try:
            handle = open_location(location)
        except OSError as exc:
            raise ModelError(f"initializer {tensor.name!r}: cannot open external data {location!r} ({exc})") from exc
        if length is None:
            length = max(0, _size(handle) - offset)
        try:
            digest = digest_region(handle, offset, length)
        except ValueError as exc:
            raise ModelError(
                f"initializer {tensor.name!r}: external data {location!r} has no {length} bytes at offset {offset}"
            ) from exc
        return InitializerDigest(tensor.name, dtype, shape, digest.hex, location)
    return InitializerDigest(tensor.name, dtype, shape, _inline_digest(tensor), None)


def _size(handle: BinaryIO) -> int:
    import os

    return os.fstat(handle.fileno()).st_size


def _external(tensor: Any, model_name: str) -> tuple[str, int, int | None]:
    entries = {entry.key: entry.value for entry in tensor.external_data}
    if "location" not in entries:
        raise ModelError(f"initializer {tensor.name!r} is external but names no location")
    location = _safe_location(entries["location"], model_name)
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries["length"]) if "length" in entries else None
    except ValueError as exc:
        raise ModelError(f"initializer {tensor.name!r}: external data offset/length is not an integer") from exc
    if offset < 0 or (length is not None and length < 0):
        raise ModelError(f"initializer {tensor.name!r}: negative external data offset or length")
    return location, offset, length


def _inline_digest(tensor: Any) -> str:
    """blake3 of an inline tensor's raw little-endian bytes, whichever field ONNX stored it in.

    A string tensor has no raw bytes: its digest covers each element as a little-endian uint64
    length followed by the element's bytes.
    """
    import onnx

    if tensor.data_type == onnx.TensorProto.STRING:
        hasher = new_hasher("blake3")
        for item in tensor.string_data:
            hasher.update(struct.pack("<Q", len(item)))
            hasher.update(item)
        return hasher.hexdigest()
    if tensor.HasField("raw_data"):
        return digest_bytes(tensor.raw_data).hex
    try:
        array = onnx.numpy_helper.to_array(tensor)
        return digest_bytes(onnx.numpy_helper.from_array(array).raw_data).hex
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"initializer {tensor.name!r}: cannot read its values ({exc})") from exc
