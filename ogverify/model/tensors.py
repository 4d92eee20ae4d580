"""Tensor files in and out: .npy, .npz and ONNX TensorProto (.pb) in; canonical .npy out.

Every tensor in a bundle is stored as canonical .npy bytes (format 1.0, little-endian,
C order) so that its digest does not depend on the form the producer handed us. Object
arrays are never unpickled: strings are stored as fixed-width unicode (``<U``).
"""

from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ogverify.errors import BundleError, UsageError
from ogverify.evidence.paths import problem

Array = npt.NDArray[np.generic]

NPY_MAGIC = b"\x93NUMPY"
MAX_NPY_HEADER = 1 << 16
SUPPORTED_KINDS = "biufU"


def dtype_name(dtype: np.dtype[np.generic]) -> str:
    """The manifest's name of a dtype: numpy's name, and ``string`` for unicode text."""
    return "string" if dtype.kind == "U" else dtype.name


def describe(array: Array) -> str:
    """``float32[1,4]``: how messages name a tensor's type and shape."""
    return f"{dtype_name(array.dtype)}[{','.join(str(d) for d in array.shape)}]"


def canonicalize(array: Array, what: str) -> Array:
    """Return ``array`` as a little-endian, C-ordered array of a supported dtype.

    Raises:
        UsageError: the dtype cannot be stored without pickling (objects other than strings,
            structured or complex types).
    """
    try:
        if array.dtype.kind == "O":
            flat = array.ravel().tolist()
            if not all(isinstance(item, str | bytes) for item in flat):
                raise UsageError(f"{what}: object arrays are only supported when they hold strings")
            text = [item.decode("utf-8") if isinstance(item, bytes) else item for item in flat]
            array = np.array(text, dtype=np.str_).reshape(array.shape)
        if array.dtype.kind == "S":
            array = np.char.decode(array.astype(np.bytes_), "utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what}: byte strings must be UTF-8 text ({exc.reason})") from exc
    if array.dtype.kind not in SUPPORTED_KINDS or array.dtype.fields is not None:
        raise UsageError(f"{what}: dtype {array.dtype} is not supported")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array)


def to_npy_bytes(array: Array) -> bytes:
    """Canonical .npy bytes (format 1.0) of an already canonical array."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=(1, 0), allow_pickle=False)
    return buffer.getvalue()


def for_runtime(array: Array) -> Array:
    """The array as onnxruntime wants it: unicode text becomes an object array of str."""
    if array.dtype.kind == "U":
        return array.astype(object)
    return array


def parse_npy(raw: bytes, what: str, *, allow_fortran: bool = False, allow_big_endian: bool = False) -> Array:
    """Parse untrusted .npy bytes without ever unpickling.

    Args:
        allow_fortran: accept Fortran-ordered data (a user's file, e.g. ``np.save(p, x.T)``);
            bundles hold only C-ordered canonical tensors.
        allow_big_endian: accept big-endian data (a user's file, canonicalised later); bundles
            hold only little-endian tensors, and onnxruntime would read big-endian bytes as
            little-endian numbers.

    Raises:
        BundleError: bad magic, bad header, object dtype, or data size not matching the header.
    """
    return parse_npy_at(raw, 0, what, whole=True, allow_fortran=allow_fortran, allow_big_endian=allow_big_endian)[0]


def parse_npy_at(
    raw: bytes, position: int, what: str, *, whole: bool = False, allow_fortran: bool = False,
    allow_big_endian: bool = False,
) -> tuple[Array, int]:
    """Parse the .npy that starts at ``position`` of ``raw``: the array (a view) and where it ends.

    ``whole``: the data must end exactly where ``raw`` ends (``parse_npy``).

    Raises:
        BundleError: as ``parse_npy``; data that runs past the end of ``raw``.
    """
    if raw[position:position + 6] != NPY_MAGIC or len(raw) < position + 10:
        raise BundleError(f"{what} is not a .npy tensor")
    major = raw[position + 6]
    if major == 1:
        header_len = int.from_bytes(raw[position + 8:position + 10], "little")
        start = position + 10
    elif major in (2, 3):
        header_len = int.from_bytes(raw[position + 8:position + 12], "little")
        start = position + 12
    else:
        raise BundleError(f"{what}: unsupported .npy format version {major}")
    if header_len > MAX_NPY_HEADER or start + header_len > len(raw):
        raise BundleError(f"{what}: .npy header is truncated or too large")
    try:
        header = ast.literal_eval(raw[start : start + header_len].decode("latin1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
        dtype = np.dtype(descr) if isinstance(descr, str) else None
    except (SyntaxError, ValueError, KeyError, TypeError, MemoryError, RecursionError) as exc:
        raise BundleError(f"{what}: .npy header is malformed") from exc
    if dtype is None or dtype.kind not in SUPPORTED_KINDS or dtype.fields is not None or not dtype.itemsize:
        raise BundleError(f"{what}: .npy dtype {descr!r} is not allowed")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BundleError(f"{what}: .npy shape {shape!r} is malformed")
    if fortran is not False and not (allow_fortran and fortran is True):
        raise BundleError(f"{what}: .npy data must be in C order")
    if dtype != dtype.newbyteorder("<") and not allow_big_endian:
        raise BundleError(f"{what}: .npy data must be little-endian (dtype {descr!r})")
    count = 1
    for dim in shape:
        count *= dim
    offset = start + header_len
    if whole and count * dtype.itemsize != len(raw) - offset:
        raise BundleError(
            f"{what}: .npy header declares {count * dtype.itemsize} data bytes, found {len(raw) - offset}"
        )
    if count * dtype.itemsize > len(raw) - offset:
        raise BundleError(f"{what}: .npy data is truncated")
    # A view into ``raw`` (no copy of the data); numpy accepts a count of 0 only with an explicit count.
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape, order="F" if fortran else "C")
    return array, offset + count * dtype.itemsize


def load_npy_file(path: Path, what: str) -> Array:
    """Load a .npy file given by a user (never unpickles)."""
    try:
        return parse_npy(path.read_bytes(), what, allow_fortran=True, allow_big_endian=True)
    except BundleError as exc:
        raise UsageError(exc.message) from exc


def load_npz_file(path: Path, what: str) -> dict[str, Array]:
    """Load every array of a .npz archive (never unpickles), keyed by array name."""
    import zipfile

    arrays: dict[str, Array] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in sorted(archive.namelist()):
                name = member.removesuffix(".npy")
                arrays[name] = parse_npy(
                    archive.read(member), f"{what} [{name}]", allow_fortran=True, allow_big_endian=True
                )
    except zipfile.BadZipFile as exc:
        raise UsageError(f"{what}: {path} is not a .npz archive") from exc
    except BundleError as exc:
        raise UsageError(exc.message) from exc
    return arrays


def load_tensor_proto_file(path: Path, what: str) -> tuple[str, Array]:
    """Load an ONNX TensorProto (.pb) file: the tensor's own name and its values."""
    from google.protobuf.message import DecodeError
    from onnx import TensorProto, numpy_helper

    proto = TensorProto()
    try:
        proto.ParseFromString(path.read_bytes())
        array = numpy_helper.to_array(proto)
    except (DecodeError, ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{what}: {path} is not an ONNX TensorProto file ({exc})") from exc
    return proto.name, np.asarray(array)


def load_tensor_file(path: Path, what: str) -> dict[str, Array]:
    """Load a tensor file by extension; names come from the file where it has them.

    Returns:
        name → array. A .npy file has no name of its own: its single entry is keyed ``""``.
    """
    found = problem(path)
    if found is not None:
        raise UsageError(f"{what}: {path} {found}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return {"": load_npy_file(path, what)}
    if suffix == ".npz":
        return load_npz_file(path, what)
    if suffix == ".pb":
        name, array = load_tensor_proto_file(path, what)
        return {name: array}
    raise UsageError(f"{what}: {path} must be .npy, .npz or an ONNX TensorProto .pb")
