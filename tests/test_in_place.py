"""check reads large model files where the bundle holds them, and catches a file that changes meanwhile.

External-data files stored uncompressed are verified in place and onnxruntime is pointed at
those very bytes (no copy). What stands between the hash and the run is ``Bundle.recheck``
after the run: the same file, not written since it was hashed, the same digests. The writer
in these tests is real: it writes to the bundle's file while the check is under way, between
the integrity pass and the end of the run, through the public ``CheckOptions.replayer`` seam
(the same one ``check --jobs`` workers use).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ogverify.evidence import bundle as bundle_module
from ogverify.evidence.bundle import BlobPlace, Bundle, open_bundle
from ogverify.model.onnx_proto import parse_model
from ogverify.model.signature import relocate_external_data
from ogverify.report.findings import Report, Status
from ogverify.runtime.jobs import CheckJob, CheckResult
from ogverify.runtime.runner import SessionCache
from ogverify.runtime.worker import run_check_job
from ogverify.verify.pipeline import CheckOptions, check_bundle
from tests.conftest import RunCli, invoke_cli

Replayer = Callable[..., CheckResult]


def _incompressible_model(folder: Path) -> tuple[Path, Path]:
    """y = x + w, int32[16, 1024], w random bits in an external file (zstd cannot shrink it: stored
    uncompressed); the input x is small integers. (model, x.npy)"""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    weights = rng.integers(-(2**31), 2**31 - 1, size=(16, 1024), dtype=np.int32)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "add",
        [helper.make_tensor_value_info("x", TensorProto.INT32, [16, 1024])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [16, 1024])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "add.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="add.data", size_threshold=0)
    x = folder / "x.npy"
    np.save(x, rng.integers(-100, 100, size=(16, 1024), dtype=np.int32))
    return path, x


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both forms of one bundle, packed once: ``add.ogb`` and ``add-dir``."""
    folder = tmp_path_factory.mktemp("packed")
    model, x = _incompressible_model(folder / "src")
    for name in ("add.ogb", "add-dir"):
        assert invoke_cli("pack", model, "--out", folder / name, "-i", f"x={x}", "--run").exit_code == 0
        with open_bundle(folder / name) as opened:
            assert [f.artifact.encoding for f in opened.manifest.model_files] == ["identity"]
    return folder


@pytest.fixture(params=["add.ogb", "add-dir"])
def bundle(request: pytest.FixtureRequest, packed: Path, tmp_path: Path) -> Path:
    """A fresh copy of one form, for a test that writes to it."""
    source, target = packed / str(request.param), tmp_path / str(request.param)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    shutil.copytree(packed / "src", tmp_path / "src")
    return target


def _weights_place(path: Path) -> tuple[Path, int]:
    with open_bundle(path) as opened:
        artifact = opened.manifest.model_files[0].artifact
        return opened.source.place(artifact.blob_path)


def _flip(file: Path, offset: int) -> None:
    """A concurrent writer: change one byte of ``file`` at ``offset``, in place (same inode)."""
    with file.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _check(path: Path, replayer: Replayer) -> Report:
    return check_bundle(path, CheckOptions(allow_unsigned=True, replayer=replayer, explain=False))


def test_the_runtime_reads_the_verified_bytes_where_the_bundle_holds_them(bundle: Path) -> None:
    seen: list[tuple[CheckJob, bytes, list[bytes]]] = []

    def replayer(job: CheckJob, **_: object) -> CheckResult:
        work = Path(job.model).parent
        files = [p.read_bytes() for p in work.rglob("*") if p.is_file()]
        seen.append((job, Path(job.model).read_bytes(), files))
        return run_check_job(job)

    report = _check(bundle, replayer)
    assert report.exit_code == 0, report.findings
    file, offset = _weights_place(bundle)
    job, model, files = seen[0]
    # The model the runtime loads names the bundle's own file, at the blob's offset: no copy.
    assert job.data_folder == str(file.parent)
    (tensor,) = parse_model(model).graph.initializer
    entries = {e.key: e.value for e in tensor.external_data}
    assert entries["location"] == file.name
    assert int(entries["offset"]) == offset
    weights = (bundle.parent / "src" / "add.data").read_bytes()
    assert not any(weights[:4096] in content for content in files)  # no copy of them in the workspace


@pytest.mark.parametrize("settled", [False, True], ids=["just written", "settled"])
@pytest.mark.parametrize("when", ["before the run", "after the run"])
def test_weights_changed_while_the_model_runs_fail_the_check(
    bundle: Path, when: str, settled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle just written is hashed again after the run; a settled one (as a bundle stored for
    longer than a few seconds is) is held to its file's identity: the write is caught either way."""
    if settled:
        monkeypatch.setattr(bundle_module, "SETTLED_NS", 0)
        assert _check(bundle, lambda job, **_: run_check_job(job)).exit_code == 0
    file, offset = _weights_place(bundle)

    def writer(job: CheckJob, **_: object) -> CheckResult:
        # Integrity has passed: the bytes are hashed. Now another process writes the weights,
        # before the runtime reads them or after it has.
        if when == "before the run":
            _flip(file, offset + 1000)
            return run_check_job(job)
        result = run_check_job(job)
        _flip(file, offset + 1000)
        return result

    report = _check(bundle, writer)
    assert report.exit_code == 1
    integrity = next(f for f in report.findings if f.stage == "integrity")
    assert integrity.status is Status.FAIL
    assert "changed while the model ran" in integrity.message
    if settled:
        assert "written or replaced" in integrity.message
    replay = next(f for f in report.findings if f.stage == "replay")
    assert replay.status is Status.FAIL and not report.comparisons


def test_weights_written_back_unchanged_still_fail_the_check(bundle: Path) -> None:
    """A writer that changes the bytes for the run and puts them back before the re-hash: the
    digests match again, but the file was written after it was verified."""
    file, offset = _weights_place(bundle)
    before = os.stat(file)

    def writer(job: CheckJob, **_: object) -> CheckResult:
        _flip(file, offset + 64)
        result = run_check_job(job)
        _flip(file, offset + 64)
        return result

    report = _check(bundle, writer)
    assert os.stat(file).st_ctime_ns != before.st_ctime_ns
    assert report.exit_code == 1
    integrity = next(f for f in report.findings if f.stage == "integrity")
    assert "written or replaced" in integrity.message


def test_a_file_renamed_into_the_bundles_place_fails_the_check(bundle: Path) -> None:
    file, _ = _weights_place(bundle)

    def writer(job: CheckJob, **_: object) -> CheckResult:
        result = run_check_job(job)
        copy = file.with_name(file.name + ".swap")
        copy.write_bytes(file.read_bytes())
        os.replace(copy, file)  # the same bytes, another file
        return result

    report = _check(bundle, writer)
    assert report.exit_code == 1


def test_a_settled_file_is_held_to_its_identity_and_a_racy_one_is_hashed_again(bundle: Path) -> None:
    """After the run, a file whose ctime was older than the hash by more than any timestamp tick
    is trusted by its identity alone (a write since would have moved its ctime); one changed just
    before it is hashed again. The place named here lies past the file's end: only a re-hash sees
    that, so which of the two ran shows in the answer."""
    file, _ = _weights_place(bundle)
    with open_bundle(bundle) as opened:
        artifact = opened.manifest.model_files[0].artifact
    info = os.stat(file)
    identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    settled = BlobPlace(file, info.st_size, artifact.size, identity, info.st_ctime_ns + bundle_module.SETTLED_NS + 1)
    racy = BlobPlace(file, info.st_size, artifact.size, identity, info.st_ctime_ns + bundle_module.SETTLED_NS // 2)
    assert settled.settled and not racy.settled
    assert Bundle.recheck(settled, artifact) is None
    problem = Bundle.recheck(racy, artifact)
    assert problem is not None and "got shorter" in problem
    _flip(file, info.st_size - 1)
    problem = Bundle.recheck(settled, artifact)
    assert problem is not None and "written or replaced" in problem


def test_a_workers_cached_session_never_reads_another_bundles_file(packed: Path, tmp_path: Path) -> None:
    """onnxruntime maps external data and reads it while the model runs (a file written after the
    session was built changes its outputs). A ``check --jobs`` worker's session cache must
    therefore not keep a session built on one bundle's file for the next bundle of the same model:
    that file may change after its own check is over, where no re-hash looks."""
    first, second = tmp_path / "first.ogb", tmp_path / "second.ogb"
    shutil.copyfile(packed / "add.ogb", first)
    shutil.copyfile(packed / "add.ogb", second)
    cache = SessionCache()
    assert _check(first, cache).exit_code == 0
    file, offset = _weights_place(first)
    _flip(file, offset + 1000)  # the first bundle's check is over; its file changes now
    report = _check(second, cache)
    assert report.exit_code == 0, report.findings


def _external(tmp_path: Path) -> tuple[bytes, int]:
    model, _ = _incompressible_model(tmp_path)
    return model.read_bytes(), (tmp_path / "add.data").stat().st_size


def test_relocation_moves_every_external_tensor_to_the_bundles_file(tmp_path: Path) -> None:
    data, size = _external(tmp_path)
    relocated = relocate_external_data(data, "add.onnx", {"add.data": ("b.ogb", 1536, size)})
    assert relocated is not None
    (tensor,) = parse_model(relocated).graph.initializer
    entries = {e.key: e.value for e in tensor.external_data}
    assert entries["location"] == "b.ogb" and int(entries["offset"]) == 1536
    # Everything else is as it was: onnx reads the same graph and tensor metadata.
    before, after = onnx.load_from_string(data), onnx.load_from_string(relocated)
    for message in (before, after):
        for entry in message.graph.initializer[0].external_data:
            if entry.key in ("location", "offset"):
                entry.value = ""
    assert before == after


@pytest.mark.parametrize("change", ["no length", "past the end", "twice"])
def test_relocation_refuses_a_tensor_that_does_not_say_exactly_which_bytes_it_reads(
    tmp_path: Path, change: str
) -> None:
    data, size = _external(tmp_path)
    model = onnx.load_from_string(data)
    entries = model.graph.initializer[0].external_data
    if change == "no length":
        for index, entry in enumerate(entries):
            if entry.key == "length":
                del entries[index]
                break
    elif change == "past the end":
        for entry in entries:
            if entry.key == "length":
                entry.value = str(size + 1)
    else:
        entries.add(key="offset", value="0")
    assert relocate_external_data(model.SerializeToString(), "add.onnx", {"add.data": ("b.ogb", 512, size)}) is None


def test_a_model_that_cannot_be_relocated_is_checked_from_copies(tmp_path: Path, run_cli: RunCli) -> None:
    model, x = _incompressible_model(tmp_path / "src")
    proto = onnx.load(str(model), load_external_data=False)
    entries = proto.graph.initializer[0].external_data
    for index, entry in enumerate(entries):
        if entry.key == "length":
            del entries[index]
            break
    onnx.save_model(proto, str(model))
    target = tmp_path / "b.ogb"
    assert run_cli("pack", model, "--out", target, "-i", f"x={x}", "--run").exit_code == 0
    jobs: list[CheckJob] = []

    def replayer(job: CheckJob, **_: object) -> CheckResult:
        jobs.append(job)
        return run_check_job(job)

    assert _check(target, replayer).exit_code == 0
    assert jobs[0].data_folder is None


def test_a_failed_reproduction_is_explained_from_verified_copies(packed: Path, tmp_path: Path) -> None:
    """The drift search runs its trials on a model folder of its own: the files checked in place are
    copied (and verified) there first, and the explanation runs."""
    src = packed / "src"
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((16, 1024), np.int32))
    target = tmp_path / "wrong.ogb"
    assert invoke_cli("pack", src / "add.onnx", "--out", target, "-i", f"x={src / 'x.npy'}",
                      "-O", f"y={wrong}").exit_code == 0
    report = check_bundle(target, CheckOptions(allow_unsigned=True, explain_budget=2))
    assert report.exit_code == 1
    assert next(f for f in report.findings if f.stage == "integrity").status is Status.PASS
    drift = next(f for f in report.findings if f.stage == "drift")
    assert not drift.message.startswith("no explanation"), drift.message
