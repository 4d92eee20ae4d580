"""Report formats for CI: golden files for text, json, markdown, junit and sarif; schema validation.

Goldens live in tests/golden/ and must read the same on every machine. The bundles are built
from ``models.exact_mlp`` on small-integer inputs: every output is an integer computed exactly,
whatever kernels onnxruntime picks on this CPU, and the failing bundle claims twice the real
outputs, so every difference, ratio and ULP distance is exact too. What still varies is
normalised before comparing: digests, versions, timings, and the two statistics that go through
BLAS or a transcendental function (``cosine``: a BLAS dot product, whose summation order depends
on the CPU; ``sqnr_db``: numpy's log10, which has its own kernels on AVX-512). Those two are
checked against their known values with a tolerance instead. To regenerate after an intended
change:

    OGVERIFY_UPDATE_GOLDEN=1 python -m pytest -q tests/test_output_formats.py
"""

from __future__ import annotations

import json
import math
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import onnxruntime as ort
import pytest
import xmlschema
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import ogverify
from ogverify.evidence.execution import ExecutionConfig
from ogverify.report.formats import FORMAT_NAMES
from tests.bundle_helpers import single_error_line
from tests.conftest import RunCli
from tests.fixtures import models
from tests.gate_helpers import reference_run, tamper_input

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
SCHEMAS = HERE / "schemas"
UPDATE = os.environ.get("OGVERIFY_UPDATE_GOLDEN") == "1"
BUNDLES = ["pass.ogb", "fail", "tampered.ogb", "junk.ogb"]


def fixed_key(folder: Path) -> tuple[Path, Path]:
    """A key pair from a fixed seed, so key ids in reports are the same on every run."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    private = folder / "auditor.key"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = folder / "auditor.key.pub"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a passing, a failing, a tampered and an unreadable bundle, and the key."""
    folder = tmp_path_factory.mktemp("formats")
    private, _ = fixed_key(folder)
    model = models.save(models.exact_mlp(), folder / "mlp.onnx")
    x = models.exact_input((4, 16), seed=11)
    y = reference_run(model, x)
    # Exact on every CPU: the same as numpy's float64 product, so nothing below depends on kernels.
    np.testing.assert_array_equal(y, models.mlp_reference_outputs(models.exact_mlp(), x))
    # One thread, not pack's default (this machine's cores): the reports name the recorded count.
    config = ExecutionConfig(runtime_version=ort.__version__, intra_op_num_threads=1)
    ogverify.pack(model, folder / "pass.ogb", inputs={"x": x}, claimed_outputs={"y": y}, sign_keys=[private],
                  config=config)
    ogverify.pack(model, folder / "fail", inputs={"x": x}, claimed_outputs={"y": y * np.float32(2)},
                  sign_keys=[private], config=config)
    ogverify.pack(model, folder / "tampered.ogb", inputs={"x": x}, claimed_outputs={"y": y}, sign_keys=[private],
                  config=config)
    tamper_input(folder / "tampered.ogb")
    (folder / "junk.ogb").write_bytes(b"this is not a bundle\n" * 20)
    return folder


def normalise(text: str) -> str:
    """Replace what differs between machines and runs (see the module docstring)."""
    text = re.sub(r"[0-9a-f]{64}", "<sha256>", text)
    text = text.replace(f"onnxruntime {ort.__version__}", "onnxruntime <version>")
    text = text.replace(f'"runtime_version": "{ort.__version__}"', '"runtime_version": "<version>"')
    text = text.replace(f'"version": "{ogverify.__version__}"', '"version": "<version>"')
    text = re.sub(r'("(load|run)": )[0-9.e-]+', r"\g<1>0.0", text)
    text = re.sub(r'("(cosine|sqnr_db)": )-?[0-9][0-9.e+-]*', r'\g<1>"<float>"', text)
    return text


def assert_statistics_off_the_golden(document: dict[str, Any]) -> None:
    """The statistics ``normalise`` hides, to within rounding: claimed = 2 x reproduced."""
    statistics = {r["bundle"]: r["outputs"][0]["statistics"] for r in document["reports"] if r["outputs"]}
    assert statistics["pass.ogb"]["cosine"] == 1.0 and statistics["pass.ogb"]["sqnr_db"] is None
    assert statistics["fail"]["cosine"] == pytest.approx(1.0, abs=1e-12)
    assert statistics["fail"]["sqnr_db"] == pytest.approx(10 * math.log10(4), abs=1e-9)


def check_output(run_cli: RunCli, workdir: Path, monkeypatch: pytest.MonkeyPatch, fmt: str,
                 *bundles: str) -> tuple[int, str]:
    monkeypatch.chdir(workdir)
    result = run_cli("check", *(bundles or BUNDLES), "--trusted-key", "auditor.key.pub", "--no-explain",
                     "--format", fmt)
    return result.exit_code, result.stdout


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"no golden file {path}; run with OGVERIFY_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file (see module docstring)"


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_golden(fmt: str, run_cli: RunCli, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, stdout = check_output(run_cli, workdir, monkeypatch, fmt)
    assert code == 3  # junk.ogb could not be verified; that outranks the failures
    if fmt == "json":
        assert_statistics_off_the_golden(json.loads(stdout))
    suffix = {"text": "txt", "json": "json", "markdown": "md", "junit": "xml", "sarif": "sarif.json"}[fmt]
    assert_golden(f"check.{suffix}", normalise(stdout))


def sarif_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / "sarif-2.1.0-subset.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def test_sarif_is_valid_sarif_2_1_0(run_cli: RunCli, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, stdout = check_output(run_cli, workdir, monkeypatch, "sarif")
    log = json.loads(stdout)
    errors = sorted(sarif_validator().iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    (run,) = log["runs"]
    assert log["version"] == "2.1.0"
    assert run["invocations"] == [{"executionSuccessful": False, "exitCode": 3}]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    by_check = {(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                 r["locations"][0]["logicalLocations"][0]["name"]): r for r in run["results"]}
    failed_output = by_check["fail", "output[y].exact"]
    assert (failed_output["level"], failed_output["kind"]) == ("error", "fail")
    assert rules[failed_output["ruleIndex"]] == failed_output["ruleId"] == "ogverify/comparison"
    assert failed_output["message"]["text"].startswith("fail: output 'y' [exact]: ")
    assert by_check["tampered.ogb", "integrity"]["message"]["text"].startswith("tampered.ogb: input 'x': ")
    assert by_check["junk.ogb", "bundle"]["properties"]["status"] == "error"
    # Passing checks are not alerts; a verified bundle yields no result at all.
    assert not [key for key in by_check if key[0] == "pass.ogb"]
    # The validator does catch what is not SARIF.
    broken = json.loads(stdout)
    broken["runs"][0]["results"][0]["level"] = "fatal"
    assert list(sarif_validator().iter_errors(broken))


def test_junit_is_valid_junit(run_cli: RunCli, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, stdout = check_output(run_cli, workdir, monkeypatch, "junit")
    schema = xmlschema.XMLSchema(SCHEMAS / "junit.xsd")
    schema.validate(stdout)
    root = ET.fromstring(stdout)
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == BUNDLES
    cases = {(s, c.get("name")): c for s, suite in suites.items() for c in suite.iter("testcase")}
    assert [c.get("name") for c in suites["pass.ogb"].iter("testcase")] == [
        "integrity", "signatures", "environment", "replay", "output[y].exact"]
    failure = cases["fail", "output[y].exact"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("output 'y' [exact]: ")
    assert cases["tampered.ogb", "replay"].find("skipped") is not None
    error = cases["junk.ogb", "bundle"].find("error")
    assert error is not None and "not a bundle" in error.get("message", "")
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("15", "2", "1")
    # The schema does reject what CI systems would not read.
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        schema.validate(stdout.replace('tests="5"', 'tests="five"', 1))


def test_json_report_of_several_bundles_matches_its_schema(run_cli: RunCli, workdir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from ogverify.evidence.schemas import load_schema

    _, stdout = check_output(run_cli, workdir, monkeypatch, "json")
    document: dict[str, Any] = json.loads(stdout)
    jsonschema.validate(document, load_schema("report-v1.json"))


def test_markdown_renders_one_table_and_details(run_cli: RunCli, workdir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _, stdout = check_output(run_cli, workdir, monkeypatch, "markdown")
    lines = stdout.splitlines()
    assert lines[0] == "## ogverify: COULD NOT VERIFY"
    assert "4 bundle(s): 1 verified, 2 failed, 1 could not be verified. Exit code 3." in lines
    assert sum(line.startswith("| | bundle |") for line in lines) == 1
    assert "<summary>:x: fail: failed</summary>" in lines
    assert not any("<summary>:white_check_mark: pass.ogb" in line for line in lines)


def test_output_file_for_every_format(run_cli: RunCli, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    monkeypatch.chdir(workdir)
    for fmt in FORMAT_NAMES:
        out = tmp_path / f"report.{fmt}"
        result = run_cli("check", "pass.ogb", "--trusted-key", "auditor.key.pub", "--format", fmt, "--output", out)
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
        assert f"wrote {out}" in result.stderr
        assert out.read_text().strip()


def test_unknown_format_names_them_all(run_cli: RunCli, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    result = run_cli("check", "pass.ogb", "--format", "yaml")
    assert result.exit_code == 2
    assert single_error_line(result) == "error: unknown format 'yaml'; use text, json, markdown, junit or sarif"


def test_one_run_writes_several_formats(run_cli: RunCli, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.chdir(workdir)
    sarif, junit = tmp_path / "ogverify.sarif", tmp_path / "junit.xml"
    result = run_cli("check", *BUNDLES, "--trusted-key", "auditor.key.pub", "--no-explain", "--format", "markdown",
                     "--report", f"sarif={sarif}", "--report", f"junit={junit}")
    assert result.exit_code == 3
    assert result.stdout.startswith("## ogverify: COULD NOT VERIFY\n")
    assert f"wrote {sarif}" in result.stderr and f"wrote {junit}" in result.stderr
    assert not list(sarif_validator().iter_errors(json.loads(sarif.read_text())))
    xmlschema.XMLSchema(SCHEMAS / "junit.xsd").validate(junit.read_text())
    result = run_cli("check", "pass.ogb", "--report", "pdf=x.pdf")
    assert result.exit_code == 2
    assert single_error_line(result) == "error: unknown format 'pdf'; use text, json, markdown, junit or sarif"
