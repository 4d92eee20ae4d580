"""``ogverify export cyclonedx``: a bundle as a CycloneDX 1.6 ML-BOM, validated by cyclonedx-python-lib."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

import ogverify
from ogverify.evidence.cid import file_cids
from ogverify.evidence.digest import digest_file
from tests.conftest import RunCli
from tests.fixtures import models


def assert_valid(text: str) -> None:
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, errors


@pytest.fixture
def packed(tmp_path: Path, run_cli: RunCli) -> dict[str, Path]:
    """A bundle of a model with an external-data file, its CID claimed, and its check report."""
    folder = tmp_path / "m"
    folder.mkdir()
    model = models.save(models.mlp(), folder / "mlp.onnx", external_data=True)
    np.save(folder / "x.npy", np.ones((4, 16), np.float32))
    bundle = tmp_path / "run.ogb"
    cid = file_cids(model).v0
    result = run_cli("pack", model, "-i", f"x={folder / 'x.npy'}", "--run", "--model-cid", cid, "--out", bundle,
                     "--annotate", "request=r-1")
    assert result.exit_code == 0, result.output
    report = tmp_path / "report.json"
    assert run_cli("check", bundle, "--allow-unsigned", "--format", "json", "--output", report).exit_code == 0
    return {"model": model, "bundle": bundle, "report": report}


def test_bom_describes_model_tensors_runtime_and_verdict(packed: dict[str, Path], run_cli: RunCli) -> None:
    bom_path = packed["bundle"].with_name("bom.json")
    result = run_cli("export", "cyclonedx", packed["bundle"], "--out", bom_path, "--report", packed["report"])
    assert result.exit_code == 0, result.output
    text = bom_path.read_text(encoding="utf-8")
    assert_valid(text)
    bom = json.loads(text)
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.6")
    model, *data, runtime = bom["components"]
    model_bytes = packed["model"].read_bytes()
    assert model["type"] == "machine-learning-model" and model["name"] == "mlp.onnx"
    assert model["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(model_bytes).hexdigest()},
                               {"alg": "BLAKE3", "content": digest_file(packed["model"]).hex}]
    cids = file_cids(packed["model"])
    properties = {p["name"]: p["value"] for p in model["properties"]}
    assert properties == {"ogverify:ipfs:cidv0": cids.v0, "ogverify:ipfs:cidv1": cids.v1,
                          "ogverify:ipfs:claimed_cid": cids.v0}
    assert model["externalReferences"][0]["url"] == f"ipfs://{cids.v1}"
    assert [c["type"] for c in model["components"]] == ["file"]  # the external-data file
    assert model["modelCard"]["modelParameters"]["inputs"] == [{"format": "x: float32[4, 16]"}]
    assert [(d["type"], d["name"], d["data"][0]["classification"]) for d in data] == [
        ("data", "x", "input"), ("data", "y", "claimed output")]
    import onnxruntime

    assert (runtime["type"], runtime["name"], runtime["version"]) == ("library", "onnxruntime", onnxruntime.__version__)
    subject = {p["name"]: p["value"] for p in bom["metadata"]["component"]["properties"]}
    assert subject["ogverify:check:verdict"] == "verified"
    assert subject["ogverify:annotation:request"] == "r-1"
    # deterministic: the same bundle gives the same bytes; the Python API gives the same document
    again = packed["bundle"].with_name("again.json")
    assert run_cli("export", "cyclonedx", packed["bundle"], "-o", again, "--report", packed["report"]).exit_code == 0
    assert again.read_bytes() == bom_path.read_bytes()
    assert ogverify.export_cyclonedx(packed["bundle"], report=packed["report"]) == bom


def test_without_a_report_there_is_no_verdict(packed: dict[str, Path], run_cli: RunCli) -> None:
    bom_path = packed["bundle"].with_name("bom.json")
    assert run_cli("export", "cyclonedx", packed["bundle"], "--out", bom_path).exit_code == 0
    assert_valid(bom_path.read_text(encoding="utf-8"))
    names = {p["name"] for p in json.loads(bom_path.read_bytes())["metadata"]["component"]["properties"]}
    assert not any(name.startswith("ogverify:check:") for name in names)


def test_the_validator_rejects_a_broken_bom(packed: dict[str, Path]) -> None:
    bom = ogverify.export_cyclonedx(packed["bundle"])
    bom["components"][0]["type"] = "neural-network"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is not None


def test_unreadable_targets_are_one_line_errors(packed: dict[str, Path], tmp_path: Path, run_cli: RunCli) -> None:
    out = tmp_path / "bom.json"
    missing = run_cli("export", "cyclonedx", tmp_path / "nope.ogb", "--out", out)
    assert (missing.exit_code, missing.stderr) == (2, f"error: bundle {tmp_path / 'nope.ogb'} does not exist\n")
    junk = tmp_path / "junk.ogb"
    junk.write_bytes(b"not a bundle\n" * 10)
    result = run_cli("export", "cyclonedx", junk, "--out", out)
    assert result.exit_code == 3 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    not_json = tmp_path / "r.json"
    not_json.write_text("{", encoding="utf-8")
    result = run_cli("export", "cyclonedx", packed["bundle"], "--out", out, "--report", not_json)
    assert result.exit_code == 2 and result.stderr.startswith(f"error: --report {not_json} cannot be read as JSON")
    other = tmp_path / "other.json"
    report = json.loads(packed["report"].read_bytes())
    other.write_text(json.dumps({**report, "manifest_sha256": "0" * 64}), encoding="utf-8")
    result = run_cli("export", "cyclonedx", packed["bundle"], "--out", out, "--report", other)
    assert result.exit_code == 2 and "is not a check of this bundle" in result.stderr
    assert not out.exists()
