"""Signed verdicts: ``check --attest KEY`` writes an in-toto test-result attestation (DSSE) that
an independent verifier accepts; ``check --attestation FILE`` verifies one."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import ogverify
from tests.bundle_helpers import check_json, findings_of, single_error_line
from tests.conftest import RunCli
from tests.gate_helpers import mlp_claim_and_keys

TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("attest")
    model, x, y = mlp_claim_and_keys(root, ("producer", "auditor"), seed=4)
    producer = [root / "producer.key"]
    ogverify.pack(model, root / "good.ogb", inputs={"x": x}, claimed_outputs={"y": y}, sign_keys=producer)
    ogverify.pack(model, root / "bad", inputs={"x": x}, claimed_outputs={"y": y * 2}, sign_keys=producer)
    ogverify.pack(model, root / "unsigned.ogb", inputs={"x": x}, claimed_outputs={"y": y})
    return {"root": root, "good": root / "good.ogb", "bad": root / "bad", "unsigned": root / "unsigned.ogb",
            "producer": root / "producer.key.pub", "auditor": root / "auditor.key",
            "auditor_pub": root / "auditor.key.pub"}


def keyid(public: Path) -> str:
    key = serialization.load_pem_public_key(public.read_bytes())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def open_envelope(path: Path, public: Path) -> dict[str, Any]:
    """Verify a DSSE envelope independently of ogverify and return its statement."""
    envelope = json.loads(path.read_bytes())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"])
    pae = b"DSSEv1 %d %s %d %s" % (len(envelope["payloadType"]), envelope["payloadType"].encode(), len(payload),
                                    payload)
    key = serialization.load_pem_public_key(public.read_bytes())
    assert isinstance(key, Ed25519PublicKey)
    (signature,) = envelope["signatures"]
    assert signature["keyid"] == keyid(public)
    key.verify(base64.b64decode(signature["sig"]), pae)  # raises if it does not verify
    statement: dict[str, Any] = json.loads(payload)
    return statement


def trust_both(setup: dict[str, Path]) -> list[str | Path]:
    return ["--trusted-key", setup["producer"], "--trusted-key", setup["auditor_pub"], "--no-rerun"]


def attest(run_cli: RunCli, setup: dict[str, Path], bundle: Path, *extra: str | Path) -> tuple[Path, dict[str, Any]]:
    result, report = check_json(run_cli, bundle, "--trusted-key", setup["producer"], "--attest", setup["auditor"],
                                "--no-explain", *extra)
    name = f"{bundle.name}.verdict.{keyid(setup['auditor_pub'])}.dsse.json"  # the full keyid, as docs/format.md
    assert len(keyid(setup["auditor_pub"])) == 64
    path = bundle.parent / name
    assert f"wrote {path} ({bundle}: signed verdict by {keyid(setup['auditor_pub'])[:12]})" in result.stderr
    return path, report


def test_passing_verdict_is_a_valid_test_result_attestation(setup: dict[str, Path], run_cli: RunCli,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/models")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    path, report = attest(run_cli, setup, setup["good"])
    statement = open_envelope(path, setup["auditor_pub"])
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == TEST_RESULT
    assert statement["subject"] == [{"name": "manifest.json", "digest": {"sha256": report["manifest_sha256"]}}]
    predicate = statement["predicate"]
    assert predicate["result"] == "PASSED"
    assert predicate["passedTests"] == ["integrity", "signatures", "environment", "replay", "output[y].exact"]
    assert predicate["warnedTests"] == predicate["failedTests"] == []
    assert predicate["url"] == "https://github.example/acme/models/actions/runs/42"
    configuration = {d["name"]: d for d in predicate["configuration"]}
    assert configuration["manifest.json"]["digest"] == {"sha256": report["manifest_sha256"]}
    with ogverify.load_bundle(setup["good"]) as bundle:
        assert configuration["mlp.onnx"]["digest"] == {"blake3": bundle.manifest.model.artifact.blake3}
        execution = bundle.manifest.execution.to_json()
    for name in ("execution-config.json", "checker-environment.json"):
        content = base64.b64decode(configuration[name]["content"])
        assert configuration[name]["digest"] == {"sha256": hashlib.sha256(content).hexdigest()}
    assert json.loads(base64.b64decode(configuration["execution-config.json"]["content"])) == execution
    environment = json.loads(base64.b64decode(configuration["checker-environment.json"]["content"]))
    assert environment["runtime"]["name"] == "onnxruntime"


def test_failed_and_warned_verdicts(setup: dict[str, Path], run_cli: RunCli, tmp_path: Path) -> None:
    path, report = attest(run_cli, setup, setup["bad"])
    assert report["verdict"] == "failed"
    predicate = open_envelope(path, setup["auditor_pub"])["predicate"]
    assert predicate["result"] == "FAILED"
    assert predicate["failedTests"] == ["output[y].exact"]
    result = run_cli("check", setup["unsigned"], "--allow-unsigned", "--attest", setup["auditor"],
                     "--attest-dir", tmp_path)
    assert result.exit_code == 0, result.output
    (written,) = tmp_path.glob("unsigned.ogb.verdict.*.dsse.json")
    predicate = open_envelope(written, setup["auditor_pub"])["predicate"]
    assert predicate["result"] == "WARNED"
    assert predicate["warnedTests"] == ["signatures"]


def test_check_verifies_an_attestation(setup: dict[str, Path], run_cli: RunCli) -> None:
    path, _ = attest(run_cli, setup, setup["good"])
    trusted = trust_both(setup)
    result, report = check_json(run_cli, setup["good"], *trusted, "--attestation", path)
    assert result.exit_code == 0, report["headline"]
    (finding,) = findings_of(report, "attestation")
    assert finding["status"] == "pass"
    assert finding["message"] == f"verdict attestation by trusted key {keyid(setup['auditor_pub'])[:12]}: PASSED"
    assert finding["evidence"]["result"] == "PASSED"
    # The verdict said PASSED; checked now without trusting the producer it is only WARNED.
    result, report = check_json(run_cli, setup["good"], "--trusted-key", setup["auditor_pub"], "--allow-unsigned",
                                "--no-rerun", "--attestation", path)
    (finding,) = findings_of(report, "attestation")
    assert finding["status"] == "warn"
    assert finding["message"].endswith(": PASSED, but this check says WARNED")


def test_attestations_that_do_not_hold_fail(setup: dict[str, Path], run_cli: RunCli, tmp_path: Path) -> None:
    path, _ = attest(run_cli, setup, setup["good"])
    trusted = trust_both(setup)
    # About another bundle.
    result, report = check_json(run_cli, setup["bad"], *trusted, "--attestation", path)
    assert result.exit_code == 1
    assert report["headline"].startswith(f"FAILED: attestation {path} is about a different bundle (sha256:")
    # Signed by a key nobody trusts.
    result, report = check_json(run_cli, setup["good"], "--trusted-key", setup["producer"], "--no-rerun",
                                "--attestation", path)
    assert result.exit_code == 1
    assert report["headline"] == (f"FAILED: attestation {path} is not signed by a trusted key "
                                  f"(signed by {keyid(setup['auditor_pub'])[:12]})")
    # Edited after signing: the result changed from PASSED to FAILED.
    envelope = json.loads(path.read_bytes())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["result"] = "FAILED"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = tmp_path / "forged.dsse.json"
    forged.write_text(json.dumps(envelope))
    result, report = check_json(run_cli, setup["good"], *trusted, "--attestation", forged)
    assert result.exit_code == 1
    assert report["headline"] == (f"FAILED: attestation {forged}: signature by trusted key "
                                  f"{keyid(setup['auditor_pub'])[:12]} does not verify")


def test_attestations_are_routed_to_their_bundles(setup: dict[str, Path], run_cli: RunCli) -> None:
    good, _ = attest(run_cli, setup, setup["good"])
    bad, _ = attest(run_cli, setup, setup["bad"])
    trusted = trust_both(setup)
    result = run_cli("check", setup["good"], setup["bad"], *trusted, "--attestation", bad, "--attestation", good,
                     "--format", "json")
    reports = json.loads(result.stdout)["reports"]
    assert [[f["evidence"]["file"] for f in findings_of(r, "attestation")] for r in reports] == [[str(good)],
                                                                                                 [str(bad)]]
    # With --no-rerun the bad bundle's integrity and signatures hold; its attestation said FAILED.
    assert findings_of(reports[1], "attestation")[0]["message"].endswith(": FAILED, but this check says PASSED")
    # An attestation about none of the checked bundles is a usage error (after the report).
    result = run_cli("check", setup["good"], setup["unsigned"], *trusted, "--allow-unsigned", "--attestation", bad)
    assert result.exit_code == 2
    assert single_error_line(result) == f"error: attestation {bad} is about none of the checked bundles"
