"""Tensor files in (.npy/.npz/.pb) and canonical .npy bytes out; parse_npy never unpickles."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from onnx import numpy_helper

from ogverify.errors import BundleError, ExitCode, UsageError
from ogverify.model.tensors import canonicalize, describe, for_runtime, load_tensor_file, parse_npy, to_npy_bytes


def npy_header(descr: str, fortran: bool, shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buffer.getvalue()


def canonical_bytes(array: npt.NDArray[Any]) -> bytes:
    return to_npy_bytes(canonicalize(array, "t"))


def sample() -> npt.NDArray[np.float32]:
    return (np.arange(12, dtype=np.float32).reshape(3, 4) / 7).astype(np.float32)


# --- canonical bytes -----------------------------------------------------------------------------------


def test_canonical_npy_is_format_1_0_little_endian_c_order() -> None:
    raw = canonical_bytes(sample())
    assert raw[:6] == b"\x93NUMPY"
    assert raw[6:8] == b"\x01\x00"
    header_len = int.from_bytes(raw[8:10], "little")
    header = raw[10 : 10 + header_len].decode("latin1")
    assert "'descr': '<f4'" in header
    assert "'fortran_order': False" in header
    assert "'shape': (3, 4)" in header
    assert (10 + header_len) % 64 == 0
    assert raw[10 + header_len :] == sample().astype("<f4").tobytes(order="C")


@pytest.mark.parametrize("dtype", ["f2", "f4", "f8", "i2", "i4", "i8", "u2", "u4", "u8"])
def test_big_endian_input_gives_native_bytes(dtype: str) -> None:
    native = (np.arange(6).reshape(2, 3) * 3).astype("<" + dtype)
    big = native.astype(">" + dtype)
    assert big.tobytes() != native.tobytes()
    canonical = canonicalize(big, "t")
    assert canonical.dtype.byteorder in ("<", "=")
    assert canonical_bytes(big) == canonical_bytes(native)


def test_fortran_ordered_input_gives_c_order_bytes() -> None:
    native = sample()
    fortran = np.asfortranarray(native)
    assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
    assert canonical_bytes(fortran) == canonical_bytes(native)
    assert canonicalize(fortran, "t").flags.c_contiguous


def test_big_endian_fortran_and_non_contiguous_views_give_native_bytes() -> None:
    native = sample()
    both = np.asfortranarray(native.astype(">f4"))
    assert canonical_bytes(both) == canonical_bytes(native)
    strided = np.arange(24, dtype=np.float32).reshape(3, 8)[:, ::2] / 7
    assert canonical_bytes(strided) == canonical_bytes(np.ascontiguousarray(strided))


def test_big_endian_strings_give_native_bytes() -> None:
    native = np.array(["ab", "cde"], dtype="<U3")
    assert canonical_bytes(native.astype(">U3")) == canonical_bytes(native)


def test_canonical_bytes_parse_back_equal() -> None:
    for array in (sample(), np.array([True, False]), np.array(["x", "héllo"]), np.zeros((0, 3), np.int64)):
        parsed = parse_npy(canonical_bytes(array), "t")
        assert parsed.dtype == canonicalize(array, "t").dtype
        np.testing.assert_array_equal(parsed, array)


def test_describe_names_type_and_shape() -> None:
    assert describe(sample()) == "float32[3,4]"
    assert describe(np.array(["a"])) == "string[1]"
    assert describe(np.array(1, dtype=np.int64)) == "int64[]"


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (np.array([1 + 2j]), "dtype complex128 is not supported"),
        (np.zeros(2, dtype=[("a", "<i4"), ("b", "<f4")]), "is not supported"),
        (np.array([1, "a"], dtype=object), "object arrays are only supported when they hold strings"),
        (np.array([None], dtype=object), "object arrays are only supported when they hold strings"),
    ],
)
def test_canonicalize_rejects_unstorable_dtypes(array: npt.NDArray[Any], problem: str) -> None:
    with pytest.raises(UsageError) as info:
        canonicalize(array, "input 'x'")
    assert info.value.message.startswith("input 'x': ")
    assert problem in info.value.message


# --- strings -------------------------------------------------------------------------------------------


def test_object_arrays_of_str_and_bytes_become_unicode() -> None:
    as_str = canonicalize(np.array([["a", "bé"], ["", "cat"]], dtype=object), "t")
    as_bytes = canonicalize(np.array([[b"a", "bé".encode()], [b"", b"cat"]], dtype=object), "t")
    mixed = canonicalize(np.array([["a", b"b\xc3\xa9"], [b"", "cat"]], dtype=object), "t")
    for result in (as_str, as_bytes, mixed):
        assert result.dtype.kind == "U"
        assert result.shape == (2, 2)
        assert result.tolist() == [["a", "bé"], ["", "cat"]]
    assert canonical_bytes(as_str.astype(object)) == canonical_bytes(as_bytes)


def test_fixed_width_bytes_become_unicode() -> None:
    result = canonicalize(np.array([b"ab", b"c"]), "t")
    assert result.dtype == np.dtype("<U2")
    assert result.tolist() == ["ab", "c"]


def test_non_utf8_bytes_are_a_usage_error() -> None:
    for array in (np.array([b"\xff\xfe"], dtype=object), np.array([b"\xff"])):
        with pytest.raises(UsageError) as info:
            canonicalize(array, "input 'names'")
        assert "input 'names'" in info.value.message
        assert "UTF-8" in info.value.message


def test_for_runtime_gives_object_strings() -> None:
    runtime = for_runtime(np.array(["a", "b"]))
    assert runtime.dtype == object
    assert runtime.tolist() == ["a", "b"]
    floats = sample()
    assert for_runtime(floats) is floats


# --- parse_npy rejections ------------------------------------------------------------------------------


def expect_bundle_error(raw: bytes, *fragments: str) -> None:
    with pytest.raises(BundleError) as info:
        parse_npy(raw, "claimed output 'y'")
    assert info.value.exit_code == ExitCode.CANNOT_VERIFY
    assert "claimed output 'y'" in info.value.message
    for fragment in fragments:
        assert fragment in info.value.message


def test_parse_npy_rejects_object_dtype_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}, str(marker)], dtype=object), allow_pickle=True)
    expect_bundle_error(buffer.getvalue(), ".npy dtype '|O' is not allowed")
    assert not marker.exists()


def test_parse_npy_rejects_a_pickle_payload_behind_an_object_header(tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, tuple[()]]:
            return (marker.touch, ())

    raw = npy_header("|O", False, (1,)) + pickle.dumps([Exploit()])
    expect_bundle_error(raw, "'|O' is not allowed")
    assert not marker.exists()


def test_parse_npy_rejects_truncated_data() -> None:
    raw = canonical_bytes(sample())
    expect_bundle_error(raw[:-4], "header declares 48 data bytes, found 44")


def test_parse_npy_rejects_trailing_data() -> None:
    expect_bundle_error(canonical_bytes(sample()) + b"\0" * 4, "declares 48 data bytes, found 52")


def test_parse_npy_rejects_a_shape_header_that_does_not_match_the_data() -> None:
    data = sample().tobytes()
    expect_bundle_error(npy_header("<f4", False, (4, 4)) + data, "declares 64 data bytes, found 48")


@pytest.mark.parametrize(
    ("shape_text", "problem"),
    [("(-1, 4)", ".npy shape (-1, 4) is malformed"), ("[3, 4]", ".npy shape [3, 4] is malformed"),
     ("(3.0, 4)", "is malformed")],
)
def test_parse_npy_rejects_malformed_shapes(shape_text: str, problem: str) -> None:
    header = ("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_text + ", }").encode("latin1")
    header += b" " * (118 - len(header)) + b"\n"
    raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + sample().tobytes()
    expect_bundle_error(raw, problem)


@pytest.mark.parametrize(
    "raw",
    [b"", b"PK\x03\x04 not numpy", b"\x93NUMP", b"\x92NUMPY\x01\x00\x10\x00" + b" " * 16, b"{\"json\": true}"],
)
def test_parse_npy_rejects_bad_magic(raw: bytes) -> None:
    expect_bundle_error(raw, "is not a .npy tensor")


def test_parse_npy_rejects_unknown_format_version() -> None:
    raw = bytearray(canonical_bytes(sample()))
    raw[6] = 9
    expect_bundle_error(bytes(raw), "unsupported .npy format version 9")


def test_parse_npy_rejects_truncated_header() -> None:
    raw = canonical_bytes(sample())
    expect_bundle_error(raw[:40], ".npy header is truncated or too large")


@pytest.mark.parametrize(
    "header_text",
    [
        "{'descr': '<f4', 'fortran_order': False}",
        "not a dict at all",
        "{'descr': 'nonsense-dtype', 'fortran_order': False, 'shape': (3, 4)}",
        "__import__('os').system('true')",
    ],
)
def test_parse_npy_rejects_malformed_headers(header_text: str) -> None:
    header = header_text.encode("latin1") + b"\n"
    raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + sample().tobytes()
    expect_bundle_error(raw, "claimed output 'y': .npy header is malformed")


def test_parse_npy_rejects_fortran_order_in_bundles() -> None:
    raw = npy_header("<f4", True, (3, 4)) + sample().tobytes(order="F")
    expect_bundle_error(raw, ".npy data must be in C order")


def test_parse_npy_rejects_structured_and_zero_width_dtypes() -> None:
    expect_bundle_error(npy_header("<U0", False, (0,)), "'<U0' is not allowed")
    expect_bundle_error(npy_header("<c8", False, (1,)) + b"\0" * 8, "'<c8' is not allowed")


def test_parse_npy_accepts_format_2_0() -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, sample(), version=(2, 0))
    np.testing.assert_array_equal(parse_npy(buffer.getvalue(), "t"), sample())


def test_parsed_arrays_are_read_only() -> None:
    parsed = parse_npy(canonical_bytes(sample()), "t")
    assert not parsed.flags.writeable


# --- load_tensor_file ----------------------------------------------------------------------------------


def test_load_npy_file(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, sample())
    loaded = load_tensor_file(path, "-i x.npy")
    assert list(loaded) == [""]
    np.testing.assert_array_equal(loaded[""], sample())


def test_load_fortran_ordered_npy_file(tmp_path: Path) -> None:
    # np.save of a transposed array writes fortran_order True; a user file in that form is accepted.
    path = tmp_path / "xt.npy"
    np.save(path, sample().T)
    loaded = load_tensor_file(path, "-i xt.npy")[""]
    np.testing.assert_array_equal(loaded, sample().T)
    assert canonical_bytes(loaded) == canonical_bytes(np.ascontiguousarray(sample().T))


def test_load_big_endian_npy_file(tmp_path: Path) -> None:
    path = tmp_path / "big.npy"
    np.save(path, sample().astype(">f4"))
    loaded = load_tensor_file(path, "-i big.npy")[""]
    assert canonical_bytes(loaded) == canonical_bytes(sample())


def test_load_npz_file(tmp_path: Path) -> None:
    path = tmp_path / "inputs.npz"
    np.savez(path, b=np.arange(3, dtype=np.int64), a=sample())
    loaded = load_tensor_file(path, "-i inputs.npz")
    assert sorted(loaded) == ["a", "b"]
    np.testing.assert_array_equal(loaded["a"], sample())
    np.testing.assert_array_equal(loaded["b"], np.arange(3))


def test_load_compressed_npz_file(tmp_path: Path) -> None:
    path = tmp_path / "inputs.npz"
    np.savez_compressed(path, x=sample())
    np.testing.assert_array_equal(load_tensor_file(path, "-i inputs.npz")["x"], sample())


def test_load_pb_tensor_proto(tmp_path: Path) -> None:
    path = tmp_path / "input_0.pb"
    path.write_bytes(numpy_helper.from_array(sample(), "image").SerializeToString())
    loaded = load_tensor_file(path, "-i input_0.pb")
    assert list(loaded) == ["image"]
    np.testing.assert_array_equal(loaded["image"], sample())
    assert loaded["image"].dtype == np.float32


def test_load_pb_string_tensor_becomes_unicode(tmp_path: Path) -> None:
    path = tmp_path / "names.pb"
    path.write_bytes(numpy_helper.from_array(np.array(["cat", "bé"], dtype=object), "names").SerializeToString())
    loaded = load_tensor_file(path, "-O names.pb")["names"]
    canonical = canonicalize(loaded, "t")
    assert canonical.dtype.kind == "U"
    assert canonical.tolist() == ["cat", "bé"]


def _pickled_strings(path: Path) -> None:
    np.save(path, np.array(["a", "b"], dtype=object), allow_pickle=True)


def _npz_with_an_object_member(path: Path) -> None:
    np.savez(path, good=sample(), bad=np.array([{"k": 1}], dtype=object))


def _npz_with_a_text_member(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")


@pytest.mark.parametrize(("name", "write", "message"), [
    ("bad.pb", lambda path: path.write_bytes(b"\xff\xff\xff\xff not a protobuf"), "is not an ONNX TensorProto file"),
    ("strings.npy", _pickled_strings, "'|O' is not allowed"),
    ("mixed.npz", _npz_with_an_object_member, "-i mixed.npz [bad]"),
    ("fake.npz", lambda path: path.write_bytes(b"not a zip file"), "is not a .npz archive"),
    ("odd.npz", _npz_with_a_text_member, "-i odd.npz [readme.txt] is not a .npy tensor"),
])
def test_a_file_that_is_not_a_tensor_is_a_usage_error(
    tmp_path: Path, name: str, write: Callable[[Path], object], message: str
) -> None:
    """Refused with exit 2, the option and file named (a pickle is never loaded)."""
    path = tmp_path / name
    write(path)
    with pytest.raises(UsageError) as info:
        load_tensor_file(path, f"-i {name}")
    assert info.value.exit_code == ExitCode.USAGE
    assert f"-i {name}" in info.value.message and message in info.value.message, info.value.message


def test_load_truncated_npy_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.npy"
    path.write_bytes(canonical_bytes(sample())[:-1])
    with pytest.raises(UsageError) as info:
        load_tensor_file(path, "-i cut.npy")
    assert info.value.message == "-i cut.npy: .npy header declares 48 data bytes, found 47"


@pytest.mark.parametrize("name", ["x.txt", "x.json", "x.npy.gz", "x"])
def test_load_wrong_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(canonical_bytes(sample()))
    with pytest.raises(UsageError) as info:
        load_tensor_file(path, f"-i {name}")
    assert info.value.message == f"-i {name}: {path} must be .npy, .npz or an ONNX TensorProto .pb"


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        load_tensor_file(tmp_path / "nope.npy", "-i nope.npy")
    assert info.value.message == f"-i nope.npy: {tmp_path / 'nope.npy'} does not exist"


def test_extension_is_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "X.NPY"
    np.save(tmp_path / "tmp.npy", sample())
    (tmp_path / "tmp.npy").rename(path)
    np.testing.assert_array_equal(load_tensor_file(path, "-i X.NPY")[""], sample())
