"""The re-execution's typed jobs and results: their JSON round trip, and run_check_job in-process.

``run_check_job`` is the one code that validates, runs and compares for ``check``, whether in the
fresh process or in a ``--jobs`` worker's session cache; these tests call it directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ogverify.evidence.comparison import ComparisonSpec
from ogverify.evidence.execution import ExecutionConfig, ProviderSpec
from ogverify.evidence.trace import Sketch, TensorSummary
from ogverify.packing.pack import runtime_version
from ogverify.runtime.jobs import (
    CheckJob,
    CheckResult,
    Failure,
    FailureKind,
    ProbeJob,
    ProbeResult,
    ProbeTrial,
    RunFacts,
    TensorFile,
    TrialOutcome,
    job_from_json,
)
from ogverify.runtime.worker import run_check_job
from tests.fixtures import models


def _job(tmp_path: Path, *, claimed_dtype: str = "float32", config: ExecutionConfig | None = None) -> CheckJob:
    model = models.save(models.exact_mlp(), tmp_path / "mlp.onnx")
    x = models.exact_input((4, 16))
    y = models.mlp_reference_outputs(models.exact_mlp(), x)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return CheckJob(
        str(model), (TensorFile("x", str(tmp_path / "x.npy"), "float32", x.shape),),
        (TensorFile("y", str(tmp_path / "y.npy"), claimed_dtype, y.shape),), {"y": ComparisonSpec.parse("ulp:2")},
        config or ExecutionConfig(runtime_version()), model_key="mlp", memory_limit=1 << 30,
    )


def test_a_check_job_and_its_result_survive_their_json(tmp_path: Path) -> None:
    job = _job(tmp_path)
    raw = json.loads(json.dumps(job.to_json(tmp_path)))
    assert raw["schema"] == "ogverify.check-job/1" and raw["out_dir"] == str(tmp_path)
    assert job_from_json(raw) == job
    result = CheckResult(RunFacts(("CPUExecutionProvider",), "1.0", {"load": 0.5, "run": 0.25}),
                         failure=Failure(FailureKind.RUNTIME, "Fail: boom", "Traceback ..."), environment={"a": 1})
    back = CheckResult.from_json(json.loads(json.dumps(result.to_json({}))))
    assert back == result


def test_a_probe_job_and_its_result_survive_their_json(tmp_path: Path) -> None:
    config = ExecutionConfig(runtime_version(), graph_optimization_level="ORT_DISABLE_ALL")
    job = ProbeJob((TensorFile("x", str(tmp_path / "x.npy")),), (
        ProbeTrial(str(tmp_path / "m.onnx"), config, str(tmp_path / "trial_0")),
        ProbeTrial(str(tmp_path / "t.onnx"), config, str(tmp_path / "trial_1"), ("ConstantFolding",), True, True,
                   ("y",), False, True),
    ))
    raw = json.loads(json.dumps(job.to_json()))
    assert raw["schema"] == "ogverify.probe-job/1" and raw["trials"][1]["disabled_optimizers"] == ["ConstantFolding"]
    assert ProbeJob.from_json(raw) == job
    sketch = Sketch(6, 0, 0, -1.0, 2.0, 0.5, (-1.0, 0.0, 0.5, 1.0, 2.0), (0.25, -0.5, 1.0, 0.0))
    summary = TensorSummary("float32", (2, 3), "ab" * 16, sketch)
    result = ProbeResult((
        TrialOutcome({"y": str(tmp_path / "output_0.npy")}, applied_transformers=("ConstantFolding",),
                     optimized_model=str(tmp_path / "optimized.onnx")),
        TrialOutcome(summaries={"y": summary, "z": TensorSummary("string", (1,), "cd" * 16, None)}),
        TrialOutcome(error="RuntimeError: boom"),
    ))
    raw = json.loads(json.dumps(result.to_json()))
    assert raw["schema"] == "ogverify.probe-result/1"
    assert ProbeResult.from_json(raw) == result
    with pytest.raises(ValueError, match="probe job schema"):
        ProbeJob.from_json({"inputs": [], "trials": []})


def test_run_check_job_validates_runs_and_compares(tmp_path: Path) -> None:
    result = run_check_job(_job(tmp_path))
    assert result.failure is None, result.failure
    assert result.run is not None and result.run.providers_used == ("CPUExecutionProvider",)
    assert [(c.name, c.passed) for c in result.comparisons] == [("y", True)]
    assert result.reproduced == {}  # kept only to explain a failed comparison


def test_a_tensor_that_is_not_what_the_manifest_says_is_a_mismatch(tmp_path: Path) -> None:
    result = run_check_job(_job(tmp_path, claimed_dtype="float64"))
    expected = "claimed output 'y' holds float32[4,8], manifest says float64[4,8]"
    assert result.failure == Failure(FailureKind.MISMATCH, expected)
    assert result.failure.headline == result.failure.message


def test_a_provider_this_runtime_lacks_is_an_environment_failure(tmp_path: Path) -> None:
    config = ExecutionConfig(runtime_version(), providers=(ProviderSpec("NoSuchExecutionProvider"),))
    failure = run_check_job(_job(tmp_path, config=config)).failure
    assert failure is not None and failure.kind is FailureKind.ENVIRONMENT
    assert failure.headline.startswith(
        "re-execution failed: execution provider NoSuchExecutionProvider is not available here")


def test_a_session_cache_answers_a_batch_of_jobs_in_order_on_one_loaded_session(tmp_path: Path) -> None:
    """``SessionCache.check_many`` (an audit's batch) answers each job as ``run_check_job`` does."""
    from ogverify.runtime.runner import SessionCache

    good = _job(tmp_path)
    (tmp_path / "wrong").mkdir()
    wrong = _job(tmp_path / "wrong", claimed_dtype="float64")
    cache = SessionCache()
    answers = list(cache.check_many([good, wrong, good], timeout=60))
    assert [type(a) for a in answers] == [CheckResult] * 3
    first, second, third = (a for a in answers if isinstance(a, CheckResult))
    assert first.failure is None and third.failure is None and second.failure is not None
    assert second.failure.kind is FailureKind.MISMATCH
    assert first.run is not None and first.run.process == "worker"
    assert (cache.loads, cache.reuses) == (1, 1)  # the mismatch never reached the session
    assert list(cache.check_many([], timeout=60)) == []
