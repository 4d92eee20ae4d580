"""The Recorder: an onnxruntime session whose every run() is captured into a checkable bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import ogverify
from ogverify.errors import UsageError
from ogverify.evidence.execution import ExecutionConfig
from ogverify.packing.pack import runtime_version
from ogverify.packing.recorder import config_of_session
from ogverify.runtime.threads import physical_cores
from tests.bundle_helpers import manifest_of
from tests.fixtures import models


def test_recorder_from_a_model_path(tmp_path: Path, keypair: tuple[Path, Path],
                                    mlp_files: dict[str, Path]) -> None:
    private, public = keypair
    x = np.load(mlp_files["x"])
    with ogverify.Recorder(mlp_files["model"], tmp_path / "evidence", sign_keys=[private],
                           annotations={"request": "r-17"}) as recorder:
        (first,) = recorder.run(["y"], {"x": x})
        outputs = recorder.run(None, {"x": x * 2})
    assert [o.name for o in recorder.get_outputs()] == ["y"]  # the session's own API
    plain = ort.InferenceSession(str(mlp_files["model"]), providers=["CPUExecutionProvider"])
    assert first.dtype == np.float32 and first.shape == (4, 8)
    assert np.allclose(first, plain.run(["y"], {"x": x})[0], rtol=1e-5, atol=1e-6)
    assert len(outputs) == 1
    assert recorder.bundles == [tmp_path / "evidence" / "run-000001.ogb", tmp_path / "evidence" / "run-000002.ogb"]
    manifest = manifest_of(recorder.bundles[1])
    assert manifest["annotations"] == {"ogverify.recorder.run": "2", "request": "r-17"}
    # The session ran at onnxruntime's default thread count, recorded as the number it resolves to.
    assert manifest["execution"]["session_options"]["intra_op_num_threads"] == physical_cores()
    for bundle in recorder.bundles:
        report = ogverify.check(bundle, trusted_keys=[public])
        assert report.headline == "VERIFIED: outputs reproduced", report.headline


def test_recorder_wraps_a_session_and_records_its_real_options(tmp_path: Path) -> None:
    model = models.save(models.multi_io(), tmp_path / "multi.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.disable_prepacking", "1")
    session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    config = config_of_session(session)
    assert config == ExecutionConfig(runtime_version(), graph_optimization_level="ORT_ENABLE_BASIC",
                                     intra_op_num_threads=2, inter_op_num_threads=1,
                                     config_entries={"session.disable_prepacking": "1"})
    recorder = ogverify.Recorder(session, tmp_path / "out", form="directory",
                                 config_entries={"custom.entry": "x"})
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    feeds = {"a": a, "b": a + 1, "n": np.array([1, 2], dtype=np.int64)}
    (total,) = recorder.run(["sum"], feeds)  # a subset of the outputs is recorded as claimed
    assert np.array_equal(total, a + a + 1)
    (bundle,) = recorder.bundles
    assert bundle.is_dir()
    manifest = manifest_of(bundle)
    assert [t["name"] for t in manifest["outputs"]] == ["sum"]
    session_options = manifest["execution"]["session_options"]
    assert session_options["graph_optimization_level"] == "ORT_ENABLE_BASIC"
    assert session_options["intra_op_num_threads"] == 2
    assert session_options["config_entries"] == {"custom.entry": "x", "session.disable_prepacking": "1"}
    report = ogverify.check(bundle, allow_unsigned=True)
    assert report.headline == "VERIFIED: outputs reproduced", report.headline


def test_recorder_refuses_what_it_cannot_record(tmp_path: Path, mlp_files: dict[str, Path]) -> None:
    from_bytes = ort.InferenceSession(mlp_files["model"].read_bytes(), providers=["CPUExecutionProvider"])
    with pytest.raises(UsageError, match="not created from a model file; pass model=PATH"):
        ogverify.Recorder(from_bytes, tmp_path / "out")
    recorder = ogverify.Recorder(from_bytes, tmp_path / "out", model=mlp_files["model"])
    recorder.run(["y"], {"x": np.load(mlp_files["x"])})
    assert len(recorder.bundles) == 1
    with pytest.raises(UsageError, match="does not exist"):
        ogverify.Recorder(tmp_path / "missing.onnx", tmp_path / "out")
    with pytest.raises(UsageError, match="config is for a model path"):
        ogverify.Recorder(from_bytes, tmp_path / "out", model=mlp_files["model"],
                          config=ExecutionConfig(runtime_version()))
