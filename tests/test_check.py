"""``ogverify check`` end to end: verdicts, report formats, comparison modes, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from ogverify.evidence.comparison import ComparisonSpec
from ogverify.evidence.signing import load_trusted_keys
from ogverify.report.findings import Status, Verdict
from ogverify.verify.pipeline import CheckOptions, check_bundle
from tests.bundle_helpers import check_json, check_json_and_text, findings_of, single_error_line, text_headline
from tests.conftest import RunCli, invoke_cli, write_mlp_files
from tests.fixtures import models

REPORT_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "report-v1.json"


def assert_valid_report(document: dict[str, Any]) -> None:
    """Validate against schemas/report-v1.json when the schema exists (it is written separately)."""
    if not REPORT_SCHEMA.is_file():
        return
    schema = json.loads(REPORT_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []


def _save_inputs(folder: Path, arrays: dict[str, Any]) -> list[str]:
    args = []
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
        args += ["-i", f"{name}={folder / f'{name}.npy'}"]
    return args


CASES = ["mlp", "conv", "multi_io", "classifier", "string_labeller"]


def _model_case(name: str, folder: Path) -> tuple[Path, list[str], list[str]]:
    """(model path, -i arguments, expected output names) for one of the fixture models."""
    rng = np.random.default_rng(11)
    if name == "mlp":
        model = models.save(models.mlp(), folder / "mlp.onnx")
        inputs: dict[str, Any] = {"x": rng.standard_normal((4, 16)).astype(np.float32)}
        outputs = ["y"]
    elif name == "conv":
        model = models.save(models.conv(), folder / "conv.onnx")
        inputs = {"image": rng.standard_normal((1, 3, 12, 12)).astype(np.float32)}
        outputs = ["logits"]
    elif name == "multi_io":
        model = models.save(models.multi_io(), folder / "multi.onnx")
        inputs = {"a": rng.standard_normal((2, 3)).astype(np.float32),
                  "b": rng.standard_normal((2, 3)).astype(np.float32),
                  "n": np.array([3, -9], dtype=np.int64)}
        outputs = ["sum", "prod", "count"]
    elif name == "classifier":
        model = models.save(models.classifier(), folder / "classifier.onnx")
        inputs = {"x": rng.standard_normal((5, 6)).astype(np.float32)}
        outputs = ["label", "probabilities"]
    else:
        model = models.save(models.string_labeller(), folder / "labeller.onnx")
        inputs = {"x": np.array([2, 0, 7], dtype=np.int64)}
        outputs = ["names"]
    return model, _save_inputs(folder, inputs), outputs


@pytest.fixture(scope="module")
def mlp_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unsigned MLP bundle packed with --run, once for the module (the tests only read it)."""
    folder = tmp_path_factory.mktemp("mlp_bundle")
    files = write_mlp_files(folder)
    out = folder / "mlp.ogb"
    assert invoke_cli("pack", files["model"], "-i", f"x={files['x']}", "--run", "--out", out).exit_code == 0
    return out


@pytest.fixture(scope="module")
def packed_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, list[str]]]:
    """Each fixture model packed with --run and signed, once for the module:
    name -> (bundle, trusted public key, output names)."""
    folder = tmp_path_factory.mktemp("cases")
    key = folder / "signer.key"
    assert invoke_cli("keygen", "--out", key).exit_code == 0
    cases = {}
    for name in CASES:
        model, inputs, outputs = _model_case(name, folder)
        bundle = folder / f"{name}.ogb"
        packed = invoke_cli("pack", model, *inputs, "--run", "--sign", key, "--out", bundle)
        assert packed.exit_code == 0, packed.output
        cases[name] = (bundle, key.with_name("signer.key.pub"), outputs)
    return cases


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Outputs from "another framework": {"model", "x", "data"} where data is a test_data_set_0
    whose expected output is numpy's float64 result for ``models.standardised_mlp``.

    onnxruntime computes that model exactly up to one Sub and one Div, single float32 operations,
    so its outputs (``models.float32_outputs``) and their distance from numpy's are the same bits
    on every CPU. The tests below still compute what they expect from those two on this machine.
    """
    folder = tmp_path_factory.mktemp("reference")
    model = models.standardised_mlp(seed=3)
    x = models.exact_input((4, 16), seed=7)
    np.save(folder / "x.npy", x)
    data = folder / "test_data_set_0"
    data.mkdir()
    (data / "input_0.pb").write_bytes(numpy_helper.from_array(x, "x").SerializeToString())
    (data / "output_0.pb").write_bytes(
        numpy_helper.from_array(models.mlp_reference_outputs(model, x), "y").SerializeToString()
    )
    return {"model": models.save(model, folder / "mlp.onnx"), "x": folder / "x.npy", "data": data}


def _reference_distance(reference: dict[str, Path]) -> tuple[int, int]:
    """(elements differing, max ULP) between numpy's claim and onnxruntime's outputs, computed here."""
    import onnx

    model = onnx.load(str(reference["model"]))
    x = np.load(reference["x"])
    claimed, reproduced = models.mlp_reference_outputs(model, x), models.float32_outputs(model, x)
    ulps = np.abs(claimed.view(np.int32).astype(np.int64) - reproduced.view(np.int32).astype(np.int64))
    return int(np.count_nonzero(ulps)), int(ulps.max())


# --- passing checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_check_verifies_what_pack_ran(tmp_path: Path, run_cli: RunCli, name: str,
                                      packed_cases: dict[str, tuple[Path, Path, list[str]]]) -> None:
    bundle, pub, outputs = packed_cases[name]
    result, report, text = check_json_and_text(run_cli, tmp_path, bundle, "--trusted-key", pub)
    assert result.exit_code == 0, result.output
    assert text.startswith("VERIFIED: outputs reproduced")
    for output in outputs:
        assert f"output '{output}'" in text or re.search(rf"^{output}\s", text, re.M)
    assert_valid_report(report)
    assert (report["verdict"], report["exit_code"]) == ("verified", 0)
    assert [o["name"] for o in report["outputs"]] == outputs
    assert all(o["passed"] and o["bitwise_equal"] for o in report["outputs"])


def test_check_string_and_integer_outputs_are_typed(run_cli: RunCli,
                                                   packed_cases: dict[str, tuple[Path, Path, list[str]]]) -> None:
    bundle, pub, _ = packed_cases["string_labeller"]
    _, report = check_json(run_cli, bundle, "--trusted-key", pub)
    assert report["exit_code"] == 0
    (names,) = report["outputs"]
    assert names["claimed_type"] == names["reproduced_type"] == "string[3]"
    assert names["max_ulp"] is None

    bundle, pub, _ = packed_cases["classifier"]
    _, report = check_json(run_cli, bundle, "--trusted-key", pub)
    label, probabilities = report["outputs"]
    assert label["claimed_type"] == "int64[5]"
    assert probabilities["claimed_type"] == "float32[5,4]"


def test_check_json_report(mlp_bundle: Path, run_cli: RunCli) -> None:
    result, report = check_json(run_cli, mlp_bundle, "--allow-unsigned")
    assert result.exit_code == 0, result.output
    assert_valid_report(report)
    assert report["verdict"] == "verified"
    assert report["exit_code"] == 0
    assert report["headline"].startswith("VERIFIED")
    assert re.fullmatch(r"[0-9a-f]{64}", report["manifest_sha256"])
    (output,) = report["outputs"]
    assert output["name"] == "y"
    assert output["comparison"] == "exact"
    assert output["passed"] is True
    assert (output["elements"], output["elements_differing"]) == (32, 0)
    assert output["max_abs_diff"] == 0.0
    assert output["max_ulp"] == 0
    assert [f["status"] for f in findings_of(report, "replay")] == ["pass"]
    (signatures,) = [f for f in report["findings"] if f["stage"] == "signatures"]
    assert signatures["status"] == "warn"
    assert report["replay"]["providers_used"] == ["CPUExecutionProvider"]


def test_check_output_file(mlp_bundle: Path, run_cli: RunCli, tmp_path: Path) -> None:
    text_report, json_report = tmp_path / "report.txt", tmp_path / "report.json"
    result = run_cli("check", mlp_bundle, "--allow-unsigned", "--output", text_report)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert text_report.read_text(encoding="utf-8").startswith("VERIFIED")
    result = run_cli("check", mlp_bundle, "--allow-unsigned", "--format", "json", "--output", json_report)
    assert result.exit_code == 0
    assert result.stdout == ""
    document = json.loads(json_report.read_text(encoding="utf-8"))
    assert_valid_report(document)
    assert document["verdict"] == "verified"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_check_output_file_in_missing_directory(mlp_bundle: Path, run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("check", mlp_bundle, "--allow-unsigned", "--output", tmp_path / "nope" / "r.txt")
    assert result.exit_code == 2
    assert single_error_line(result) == f"error: --output: directory {tmp_path / 'nope'} does not exist"


def test_check_no_rerun_skips_execution(mlp_bundle: Path, run_cli: RunCli) -> None:
    result = run_cli("check", mlp_bundle, "--allow-unsigned", "--no-rerun")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("VERIFIED: integrity and signatures hold")
    result, report = check_json(run_cli, mlp_bundle, "--allow-unsigned", "--no-rerun")
    assert_valid_report(report)
    (replay,) = findings_of(report, "replay")
    assert replay["status"] == "skip"
    assert "--no-rerun" in replay["message"]
    assert report["outputs"] == []
    assert report["replay"] is None
    assert report["rerun"] is False


def test_the_re_execution_process_takes_nothing_from_the_callers_folder(
    mlp_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It starts in the caller's folder (before its work directory exists): a numpy.py there is
    not what it imports, and nothing is written there."""
    here = tmp_path / "caller"
    here.mkdir()
    for module in ("numpy", "onnxruntime", "ogverify"):
        (here / f"{module}.py").write_text(f"raise ImportError('{module} from the caller folder')\n")
    monkeypatch.chdir(here)
    report = check_bundle(mlp_bundle, CheckOptions(allow_unsigned=True))
    assert report.verdict is Verdict.VERIFIED, report.headline
    assert sorted(p.name for p in here.iterdir()) == ["numpy.py", "ogverify.py", "onnxruntime.py"]


def test_check_python_api(mlp_bundle: Path, keypair: tuple[Path, Path]) -> None:
    report = check_bundle(mlp_bundle, CheckOptions(allow_unsigned=True))
    assert report.verdict is Verdict.VERIFIED
    assert int(report.exit_code) == 0
    assert [c.name for c in report.comparisons] == ["y"]
    strict = check_bundle(mlp_bundle, CheckOptions(trusted_keys=load_trusted_keys([keypair[1]])))
    assert strict.verdict is Verdict.FAILED
    assert strict.headline == "FAILED: bundle is not signed"
    assert any(f.stage == "replay" and f.status is Status.SKIP for f in strict.findings)


# --- outputs from another framework: exact fails, tolerances pass --------------------------------


def test_check_other_framework_outputs_fail_exact(tmp_path: Path, run_cli: RunCli,
                                                  reference: dict[str, Path]) -> None:
    bundle = tmp_path / "reference.ogb"
    assert run_cli("pack", reference["model"], "--test-data", reference["data"], "--out", bundle).exit_code == 0
    result, report, text = check_json_and_text(run_cli, tmp_path, bundle, "--allow-unsigned", "--no-explain")
    assert result.exit_code == 1, result.output
    first = text_headline(text)
    match = re.match(r"FAILED: output 'y' \[exact\]: (\d+) of 32 elements differ bitwise", first)
    assert match, first
    assert_valid_report(report)
    assert (report["verdict"], report["exit_code"]) == ("failed", 1)
    (output,) = report["outputs"]
    assert output["passed"] is False
    assert output["bitwise_equal"] is False
    differing, max_ulp = _reference_distance(reference)
    assert output["elements_differing"] == int(match.group(1)) == differing > 0
    assert 0 < output["max_abs_diff"] < 1e-3
    assert output["max_ulp"] == max_ulp > 0
    assert output["argmax_flips"] == 0


@pytest.mark.parametrize("mode", ["allclose:1e-3,1e-5", "ulp:4096", "topk:1", "topk:3"])
def test_check_other_framework_outputs_pass_with_tolerance(tmp_path: Path, run_cli: RunCli,
                                                           reference: dict[str, Path], mode: str) -> None:
    bundle = tmp_path / "reference"
    assert run_cli("pack", reference["model"], "--test-data", reference["data"], "--compare", mode,
                   "--out", bundle).exit_code == 0
    result, report, text = check_json_and_text(run_cli, tmp_path, bundle, "--allow-unsigned")
    assert result.exit_code == 0, result.stdout
    assert_valid_report(report)
    (output,) = report["outputs"]
    assert output["comparison"] == str(ComparisonSpec.parse(mode))
    assert output["passed"] is True
    assert output["bitwise_equal"] is False
    assert text.startswith("VERIFIED")


def test_check_ulp_mode_fails_when_the_bound_is_too_small(tmp_path: Path, run_cli: RunCli,
                                                          reference: dict[str, Path]) -> None:
    bundle = tmp_path / "reference"
    assert run_cli("pack", reference["model"], "--test-data", reference["data"], "--compare", "ulp:0", "--out",
                   bundle).exit_code == 0
    result, report, text = check_json_and_text(run_cli, tmp_path, bundle, "--allow-unsigned", "--no-explain")
    assert result.exit_code == 1
    (output,) = report["outputs"]
    assert output["max_ulp"] == _reference_distance(reference)[1]
    assert output["reason"] == f"max ULP distance {output['max_ulp']} > 0"
    assert text_headline(text) == f"FAILED: output 'y' [ulp:0]: max ULP distance {output['max_ulp']} > 0"


def test_check_topk_fails_when_the_decision_changes(tmp_path: Path, run_cli: RunCli,
                                                    mlp_files: dict[str, Path]) -> None:
    x = np.load(mlp_files["x"])
    # Computed here; whatever the bits, swapping the largest and the smallest class of a row
    # changes its top-1 decision on any CPU.
    session = ort.InferenceSession(str(mlp_files["model"]), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x})
    claimed = np.array(y, dtype=np.float32)
    row = claimed[2]
    top, bottom = int(np.argmax(row)), int(np.argmin(row))
    row[top], row[bottom] = row[bottom], row[top]
    np.save(tmp_path / "y.npy", claimed)
    bundle = tmp_path / "swapped"
    assert run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "-O", f"y={tmp_path / 'y.npy'}",
                   "--compare-output", "y=topk:1", "--out", bundle).exit_code == 0
    result, report, text = check_json_and_text(run_cli, tmp_path, bundle, "--allow-unsigned", "--no-explain")
    assert result.exit_code == 1
    assert text_headline(text) == "FAILED: output 'y' [topk:1]: top-1 classes changed in 1 row(s)"
    (output,) = report["outputs"]
    assert (output["topk_changes"], output["argmax_flips"]) == (1, 1)


@pytest.mark.parametrize(("produced", "recorded"), [("disable", "all"), ("all", "disable")])
def test_check_outputs_from_another_opt_level(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path],
                                              produced: str, recorded: str) -> None:
    source = tmp_path / "produced"
    assert run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "--run", "--opt-level", produced,
                   "--out", source).exit_code == 0
    extracted = tmp_path / "extracted"
    assert run_cli("extract", source, extracted).exit_code == 0
    bundle = tmp_path / "recorded.ogb"
    assert run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "-O",
                   f"y={extracted / 'outputs' / 'y.npy'}", "--opt-level", recorded, "--out", bundle).exit_code == 0
    result, report = check_json(run_cli, bundle, "--allow-unsigned", "--no-explain")
    # Whether the two levels give the same bits depends on this CPU's kernels: either verdict is
    # right, as long as it agrees with the bitwise comparison made here.
    assert result.exit_code in (0, 1), result.output
    assert_valid_report(report)
    (output,) = report["outputs"]
    assert output["passed"] is (result.exit_code == 0) is output["bitwise_equal"]
    assert [f["status"] for f in findings_of(report, "replay")] == ["pass"]


# --- signatures -------------------------------------------------------------------------------


def test_check_unsigned_bundle(mlp_bundle: Path, run_cli: RunCli, keypair: tuple[Path, Path]) -> None:
    refused = run_cli("check", mlp_bundle)
    assert refused.exit_code == 1
    assert text_headline(refused.stdout) == "FAILED: bundle is not signed"
    assert "re-execution skipped" in refused.stdout
    refused = run_cli("check", mlp_bundle, "--trusted-key", keypair[1])
    assert refused.exit_code == 1
    assert text_headline(refused.stdout) == "FAILED: bundle is not signed"
    allowed = run_cli("check", mlp_bundle, "--allow-unsigned")
    assert allowed.exit_code == 0
    assert allowed.stdout.startswith("VERIFIED")
    assert "warn  bundle is not signed (accepted: --allow-unsigned)" in allowed.stdout


def test_check_signed_bundle_without_trusted_key(tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path],
                                                 mlp_files: dict[str, Path]) -> None:
    bundle = tmp_path / "signed.ogb"
    assert run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "--run", "--sign", keypair[0],
                   "--out", bundle).exit_code == 0
    result = run_cli("check", bundle)
    assert result.exit_code == 1
    assert text_headline(result.stdout) == (
        "FAILED: bundle is signed, but no trusted key was given (--trusted-key)"
    )
    keyring = tmp_path / "keyring"
    keyring.mkdir()
    (keyring / "signer.pub").write_bytes(keypair[1].read_bytes())
    assert run_cli("check", bundle, "--trusted-key", keyring).exit_code == 0


# --- several bundles, unreadable bundles, unavailable providers -------------------------------------


def test_check_several_bundles_exits_with_the_worst_code(tmp_path: Path, run_cli: RunCli, mlp_bundle: Path,
                                                         reference: dict[str, Path]) -> None:
    failing = tmp_path / "failing"
    assert run_cli("pack", reference["model"], "--test-data", reference["data"], "--out", failing).exit_code == 0
    junk = tmp_path / "junk.ogb"
    junk.write_bytes(b"not a tar archive at all" * 40)

    # Exit codes, not explanations, are the point here: --no-explain spares the drift search.
    both = run_cli("check", mlp_bundle, failing, "--allow-unsigned", "--no-explain")
    assert both.exit_code == 1
    assert "summary" not in both.stdout
    assert "2 bundles: 1 verified, 1 failed, 0 error" in both.stderr
    assert f"checking {failing} ..." in both.stderr
    result, report = check_json(run_cli, mlp_bundle, failing, "--allow-unsigned", "--no-explain")
    assert result.exit_code == 1
    assert_valid_report(report)
    assert (report["verdict"], report["exit_code"]) == ("failed", 1)
    assert [r["verdict"] for r in report["reports"]] == ["verified", "failed"]

    result, report = check_json(run_cli, failing, junk, mlp_bundle, "--allow-unsigned", "--no-explain")
    assert result.exit_code == 3
    assert_valid_report(report)
    assert [r["exit_code"] for r in report["reports"]] == [1, 3, 0]
    assert report["exit_code"] == 3


def test_check_a_file_that_is_not_a_bundle(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path]) -> None:
    junk = tmp_path / "junk.ogb"
    junk.write_bytes(b"\x00garbage" * 100)
    result = run_cli("check", junk, "--allow-unsigned")
    assert result.exit_code == 3
    assert text_headline(result.stdout) == (
        f"COULD NOT VERIFY: {junk} is not a bundle: not a tar archive or a bundle directory"
    )
    # A model file is not a bundle either.
    result, report = check_json(run_cli, mlp_files["model"], "--allow-unsigned")
    assert result.exit_code == 3
    assert_valid_report(report)
    assert (report["verdict"], report["exit_code"]) == ("error", 3)
    assert "is not a bundle" in report["headline"]


def test_check_a_directory_that_is_not_a_bundle(tmp_path: Path, run_cli: RunCli) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    result = run_cli("check", folder, "--allow-unsigned")
    assert result.exit_code == 3
    assert text_headline(result.stdout) == (
        f"COULD NOT VERIFY: {folder} is not an ogverify bundle (no ogverify-bundle.json / manifest.json)"
    )


def test_check_a_missing_path(tmp_path: Path, run_cli: RunCli) -> None:
    missing = tmp_path / "missing.ogb"
    result = run_cli("check", missing, "--allow-unsigned")
    assert result.exit_code == 3
    assert text_headline(result.stdout) == f"COULD NOT VERIFY: no such bundle: {missing}"


def test_check_a_provider_that_is_not_available(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path],
                                                keypair: tuple[Path, Path]) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here; the case needs a provider this machine lacks")
    np.save(tmp_path / "y.npy", np.zeros((4, 8), dtype=np.float32))
    bundle = tmp_path / "cuda.ogb"
    packed = run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "-O", f"y={tmp_path / 'y.npy'}",
                     "--provider", "CUDAExecutionProvider", "--sign", keypair[0], "--out", bundle)
    assert packed.exit_code == 0, packed.output
    result = run_cli("check", bundle, "--trusted-key", keypair[1])
    assert result.exit_code == 3, result.output
    first = text_headline(result.stdout)
    assert first.startswith(
        "COULD NOT VERIFY: re-execution failed: execution provider CUDAExecutionProvider is not available here"
    ), first
    _, report = check_json(run_cli, bundle, "--trusted-key", keypair[1])
    assert_valid_report(report)
    (replay,) = findings_of(report, "replay")
    assert replay["status"] == "error"
    assert report["outputs"] == []


def test_check_timeout_must_be_positive(mlp_bundle: Path, run_cli: RunCli) -> None:
    result = run_cli("check", mlp_bundle, "--timeout", "0")
    assert result.exit_code == 2
    assert single_error_line(result) == (
        "error: --timeout must be a number of seconds above 0 and at most 1000000, not 0.0")


def test_check_unknown_format(mlp_bundle: Path, run_cli: RunCli) -> None:
    result = run_cli("check", mlp_bundle, "--format", "xml")
    assert result.exit_code == 2
    assert single_error_line(result) == "error: unknown format 'xml'; use text, json, markdown, junit or sarif"


def test_while_waiting_runs_once_during_the_re_execution_only() -> None:
    root = Path(__file__).resolve().parents[1] / "fixtures"
    keys = load_trusted_keys([root / "demo.key.pub"])
    calls: list[str] = []
    report = check_bundle(root / "mlp.ogb", CheckOptions(trusted_keys=keys, while_waiting=lambda: calls.append("x")))
    assert report.verdict is Verdict.VERIFIED and calls == ["x"]
    check_bundle(root / "mlp.ogb", CheckOptions(trusted_keys=keys, rerun=False, while_waiting=lambda: calls.append("")))
    check_bundle(root / "mlp-tampered.ogb", CheckOptions(trusted_keys=keys, while_waiting=lambda: calls.append("")))
    assert calls == ["x"]  # nothing re-executed: an integrity failure stops before the run


def test_a_failing_while_waiting_still_collects_the_re_execution() -> None:
    root = Path(__file__).resolve().parents[1] / "fixtures"

    def broken() -> None:
        raise RuntimeError("formatter import failed")

    with pytest.raises(RuntimeError, match="formatter import failed"):
        check_bundle(root / "mlp.ogb", CheckOptions(allow_unsigned=True, while_waiting=broken))
