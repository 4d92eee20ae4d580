"""The pack side's storage: windowed hashing, the zstd decision, the streaming tar, initializer digests."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from ogverify.errors import ModelError, UsageError
from ogverify.evidence import digest, regions, storing
from ogverify.evidence.bundle import BundleWriter, open_bundle
from ogverify.evidence.comparison import ComparisonPolicy
from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.manifest import Manifest, ModelFile
from ogverify.model.initializers import initializer_digests
from ogverify.packing.pack import pack
from tests.fixtures import models

MiB = 1 << 20


def _normal_floats(count: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).standard_normal(count, dtype=np.float32).tobytes()


@pytest.mark.parametrize("window", [4096, 3 * 4096, 1 << 20])
def test_windowed_hashing_matches_whole_file_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    monkeypatch.setattr(regions, "WINDOW", window)
    data = os.urandom(5 * 4096 + 123)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    digests = digest.digest_file_multi(path, ("blake3", "sha256"))
    assert digests["blake3"].hex == blake3.blake3(data).hexdigest()
    assert digests["sha256"].hex == hashlib.sha256(data).hexdigest()
    with path.open("rb") as handle:
        for offset, length in [(0, 1), (4095, 2), (5000, 3 * 4096), (len(data) - 7, 7), (10, 0)]:
            assert digest.digest_region(handle, offset, length).hex == blake3.blake3(
                data[offset : offset + length]
            ).hexdigest()
        with pytest.raises(ValueError, match="ends before byte"):
            digest.digest_region(handle, len(data) - 3, 10)


def test_empty_file_digest(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert digest.digest_file(path).hex == blake3.blake3(b"").hexdigest()


def test_streaming_tar_is_byte_identical_to_tarfile(tmp_path: Path) -> None:
    contents = {"blobs/blake3/" + "a" * 64: os.urandom(10_000), "manifest.json": b"{}", "z": b""}
    for name, data in contents.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    reference = io.BytesIO()
    with tarfile.open(fileobj=reference, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(contents.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid, info.gid, info.uname, info.gname = 0, 0, "", ""
            tar.addfile(info, io.BytesIO(data))
    for use_paths in (True, False):
        out = tmp_path / f"out-{use_paths}.tar"
        members: list[tuple[str, int, storing.MemberSource]] = [
            (name, len(data), tmp_path / name if use_paths else functools.partial(io.BytesIO, data))
            for name, data in sorted(contents.items())
        ]
        fd = os.open(out, os.O_WRONLY | os.O_CREAT)
        try:
            storing.write_members(fd, members)
        finally:
            os.close(fd)
        assert out.read_bytes() == reference.getvalue()


def test_streaming_tar_refuses_a_source_shorter_than_declared(tmp_path: Path) -> None:
    source = tmp_path / "short"
    source.write_bytes(b"abc")
    fd = os.open(tmp_path / "out.tar", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(UsageError, match=r"blobs/x: its source ended after 3 of 10 bytes"):
            storing.write_members(fd, [("blobs/x", 10, source)])
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("small compressible", b"\0" * MiB, "zstd"),
        ("small weights saving 7%", _normal_floats(MiB // 8), "zstd"),
        ("mid-size weights saving 7%", _normal_floats(3 * MiB // 8), "identity"),
        ("mid-size, half zeros", bytes(3 * MiB // 4) + os.urandom(3 * MiB // 4), "zstd"),
        ("large weights saving 7%", _normal_floats(5 * MiB), "identity"),
        ("large zeros", bytes(20 * MiB), "zstd"),
        ("large, zero header only", bytes(4 * MiB) + os.urandom(16 * MiB), "identity"),
        ("random", os.urandom(MiB), "identity"),
    ],
)
def test_zstd_only_where_it_pays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, content: bytes, expected: str
) -> None:
    monkeypatch.setattr(storing, "SMALL_BLOB", 2 * MiB)
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    for form in ("dir", "b.ogb"):
        with BundleWriter(tmp_path / form) as writer:
            artifact = writer.add_file(path)
            assert artifact.encoding == expected, name
            assert artifact.size == len(content)
            assert artifact.blake3 == blake3.blake3(content).hexdigest()
            in_memory = writer.add_bytes(content + b"!")
            assert in_memory.encoding == expected, name
            if expected == "identity":
                assert artifact.stored_size == len(content)
            else:
                assert artifact.stored_size <= len(content) * (1 - storing.MIN_SAVING)


def test_writer_without_compression_stores_everything_raw(tmp_path: Path) -> None:
    path = tmp_path / "zeros"
    path.write_bytes(bytes(MiB))
    with BundleWriter(tmp_path / "b.ogb", compress=False) as writer:
        assert writer.add_file(path).encoding == "identity"
        assert writer.add_bytes(bytes(1000)).encoding == "identity"


def test_a_file_changed_before_it_is_copied_into_the_tar_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "m.data"
    weights.write_bytes(os.urandom(100_000))  # incompressible: copied from its source at publish
    out = tmp_path / "b.ogb"
    with BundleWriter(out) as writer, pytest.raises(UsageError, match=r"m\.data changed while it was being packed"):
        artifact = writer.add_file(weights)
        assert artifact.encoding == "identity"
        stat = weights.stat()
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        entry = ModelFile("m.onnx", artifact)
        manifest = Manifest(entry, (), (), (), ExecutionConfig(runtime_version="1"), {}, ComparisonPolicy(), {})
        writer.publish(manifest, {})
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".b.ogb")] == []


def _weights(model: onnx.ModelProto) -> dict[str, np.ndarray[Any, Any]]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def test_initializer_digests_inline_and_external_agree(tmp_path: Path) -> None:
    model = models.mlp(seed=3)
    weights = _weights(model)  # before saving: saving with external data rewrites the proto in place
    inline = initializer_digests(models.save(model, tmp_path / "inline.onnx"))
    (tmp_path / "ext").mkdir()
    external = initializer_digests(models.save(model, tmp_path / "ext" / "m.onnx", external_data=True))
    assert [i.name for i in inline] == list(weights)
    for a, b in zip(inline, external, strict=True):
        array = weights[a.name]
        assert (a.name, a.dtype, a.shape, a.blake3) == (b.name, b.dtype, b.shape, b.blake3)
        assert a.blake3 == blake3.blake3(array.astype(array.dtype.newbyteorder("<")).tobytes()).hexdigest()
        assert a.dtype == str(array.dtype) and a.shape == array.shape
        assert a.location is None
        assert b.location == "m.data"


def test_initializer_digests_of_typed_fields_and_strings(tmp_path: Path) -> None:
    floats = onnx.helper.make_tensor("f", onnx.TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])  # float_data, not raw
    halves = onnx.helper.make_tensor("h", onnx.TensorProto.FLOAT16, [2], np.array([1.5, -2], np.float16))
    text = onnx.helper.make_tensor("s", onnx.TensorProto.STRING, [2], [b"ab", b"c"])  # type: ignore[list-item]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["f"], ["y"])], "g", [],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3])], [floats, halves, text],
    )
    path = tmp_path / "m.onnx"
    onnx.save_model(onnx.helper.make_model(graph), str(path))
    digests = {d.name: d for d in initializer_digests(path)}
    assert digests["f"].blake3 == blake3.blake3(np.array([1, 2, 3], "<f4").tobytes()).hexdigest()
    assert digests["h"].blake3 == blake3.blake3(np.array([1.5, -2], "<f2").tobytes()).hexdigest()
    assert (digests["f"].dtype, digests["h"].dtype, digests["s"].dtype) == ("float32", "float16", "string")
    expected = blake3.blake3(b"\x02" + b"\0" * 7 + b"ab" + b"\x01" + b"\0" * 7 + b"c").hexdigest()
    assert digests["s"].blake3 == expected


def test_initializer_past_the_end_of_its_file_is_a_model_error(tmp_path: Path) -> None:
    model = models.mlp()
    path = models.save(model, tmp_path / "m.onnx", external_data=True)
    data = tmp_path / "m.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(ModelError, match=r"initializer '.*': external data 'm\.data' has no \d+ bytes at offset"):
        initializer_digests(path)


def test_pack_records_initializers_and_old_manifests_still_parse(tmp_path: Path) -> None:
    model = models.mlp()
    names = list(_weights(model))
    path = models.save(model, tmp_path / "m.onnx", external_data=True)
    x = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    result = pack(path, tmp_path / "b.ogb", inputs={"x": x})
    assert result.manifest.initializers is not None
    with open_bundle(tmp_path / "b.ogb") as bundle:
        raw = json.loads(bundle.manifest_bytes)
        assert bundle.manifest.initializers == result.manifest.initializers
    assert [i["name"] for i in raw["initializers"]] == names
    assert {i["location"] for i in raw["initializers"]} == {"m.data"}
    del raw["initializers"]
    from ogverify.evidence import canonical_json

    old = Manifest.from_bytes(canonical_json.dumps(raw))
    assert old.initializers is None
    assert "initializers" not in old.to_json()


def test_copy_region_copies_by_offset_and_leaves_the_position_alone(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    source = tmp_path / "source"
    source.write_bytes(data)
    with source.open("rb") as handle:
        handle.read(10)  # a buffered handle with a position of its own
        for offset, size in ((0, len(data)), (12345, 2 << 20), (len(data) - 5, 5)):
            target = tmp_path / f"copy-{offset}"
            with target.open("wb") as out:
                assert storing.copy_region(handle.fileno(), offset, out.fileno(), size) == size
            assert target.read_bytes() == data[offset:offset + size]
        with (tmp_path / "short").open("wb") as out:  # the input ends early: fewer bytes, no error
            assert storing.copy_region(handle.fileno(), len(data) - 4, out.fileno(), 100) == 4
        assert handle.read(5) == data[10:15]


def test_hash_pieces_hashes_the_region_and_notices_a_short_file(tmp_path: Path) -> None:
    data = os.urandom((8 << 20) * 2 + 999)  # more than one piece
    path = tmp_path / "data"
    path.write_bytes(data)
    with path.open("rb") as handle:
        hasher = blake3.blake3()
        regions.hash_pieces(handle, 7, len(data) - 7, [hasher])
        assert hasher.hexdigest() == blake3.blake3(data[7:]).hexdigest()
        with pytest.raises(ValueError, match="ends before"):
            regions.hash_pieces(handle, 7, len(data), [blake3.blake3()])


@pytest.mark.parametrize("isolate_from", [0, 1 << 40], ids=["in-a-process", "here"])
def test_a_region_that_may_shrink_is_hashed_alike_in_a_process_and_here(tmp_path: Path, isolate_from: int) -> None:
    data = os.urandom((1 << 20) * 3 + 12345)
    path = tmp_path / "data"
    path.write_bytes(data)
    with path.open("rb") as handle:
        digests = regions.digest_region_isolated(handle, 99, len(data) - 99, ["blake3", "sha256"],
                                                 isolate_from=isolate_from)
        assert digests == {"blake3": blake3.blake3(data[99:]).hexdigest(),
                           "sha256": hashlib.sha256(data[99:]).hexdigest()}
        with pytest.raises(ValueError, match="ends before"):
            regions.digest_region_isolated(handle, 99, len(data), ["blake3"], isolate_from=isolate_from)


def test_a_file_truncated_under_the_hashing_process_ends_that_process_not_this_one(tmp_path: Path) -> None:
    """The process maps the file; a truncation meanwhile kills it with SIGBUS (a map here would
    kill the checker). The file is sparse: 64 GiB that take no disk. It is truncated once the
    hashing process has it mapped (its /proc maps say so), however slowly that process starts."""
    if not Path("/proc/self/maps").exists():
        pytest.skip("needs /proc to see when the hashing process has mapped the file")
    path = tmp_path / "sparse"
    with path.open("wb") as out:
        out.truncate(64 << 30)
    regions.prestart_hasher()
    maps = Path(f"/proc/{regions._IDLE[-1].process_id}/maps")

    def truncate_once_mapped() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and str(path) not in maps.read_text():
            time.sleep(0.005)
        os.truncate(path, 4096)

    truncater = threading.Thread(target=truncate_once_mapped)
    with path.open("rb") as handle:
        truncater.start()
        try:
            with pytest.raises(ValueError, match=r"got shorter .* while it was hashed"):
                regions.digest_region_isolated(handle, 0, 64 << 30, ["blake3"])
        finally:
            truncater.join()
    with path.open("rb") as handle:  # the next region gets a new process
        assert regions.digest_region_isolated(handle, 0, 4096, ["blake3"], isolate_from=0) == {
            "blake3": blake3.blake3(bytes(4096)).hexdigest()}


def test_one_hashing_process_serves_region_after_region(tmp_path: Path) -> None:
    regions.prestart_hasher()
    (waiting,) = regions._IDLE
    paths = []
    for index in range(3):
        paths.append(tmp_path / f"f{index}")
        paths[-1].write_bytes(os.urandom(70_000 + index))
    for path in paths:
        with path.open("rb") as handle:
            assert regions.digest_region_isolated(handle, 5, 70_000 - 5, ["blake3"], isolate_from=0) == {
                "blake3": blake3.blake3(path.read_bytes()[5:70_000]).hexdigest()}
    assert [hasher.process_id for hasher in regions._IDLE] == [waiting.process_id]
