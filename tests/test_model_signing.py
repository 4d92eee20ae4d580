"""Publishers' model_signing signatures: ``pack --model-signature`` and ``check --model-signing-key``.

Signatures are made by the real ``model_signing`` library with EC P-256 keys, as a publisher would
(``model_signing sign key``), and verified by it; nothing is mocked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.bundle_helpers import canonical, read_members, single_error_line, write_members
from tests.conftest import RunCli
from tests.fixtures import models

model_signing = pytest.importorskip("model_signing", reason="pip install -e '.[model-signing]'")


def ec_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def sign(model_path: Path, private_key: Path, signature: Path) -> Path:
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private_key).sign(model_path, signature)
    return signature


@pytest.fixture
def published(tmp_path: Path) -> dict[str, Path]:
    """A model folder (graph + external data) signed by its publisher, and the publisher's keys."""
    folder = tmp_path / "published"
    folder.mkdir()
    model = models.save(models.mlp(), folder / "mlp.onnx", external_data=True)
    assert len(list(folder.iterdir())) == 2
    keys = tmp_path / "keys"
    keys.mkdir()
    private, public = ec_key_pair(keys, "publisher")
    np.save(tmp_path / "x.npy", np.ones((4, 16), np.float32))
    np.save(tmp_path / "y.npy", np.zeros((4, 8), np.float32))  # never compared: these checks skip re-execution
    return {"model": model, "folder": folder, "private": private, "public": public,
            "signature": sign(folder, private, tmp_path / "model.sig"), "x": tmp_path / "x.npy",
            "y": tmp_path / "y.npy"}


def pack_args(files: dict[str, Path], model: Path | None = None) -> tuple[str | Path, ...]:
    return ("pack", model or files["model"], "-i", f"x={files['x']}", "-O", f"y={files['y']}")


def findings(stdout: str) -> dict[str, Any]:
    top = next(f for f in json.loads(stdout)["findings"] if f["stage"] == "provenance")
    return {child["subject"]: child for child in top["children"]}


def test_publisher_signature_verifies(published: dict[str, Path], tmp_path: Path, run_cli: RunCli) -> None:
    bundle = tmp_path / "run.ogb"
    result = run_cli(*pack_args(published), "--model-signature", published["signature"], "--out", bundle)
    assert result.exit_code == 0, result.output
    check = ("check", bundle, "--allow-unsigned", "--no-rerun", "--format", "json")
    verified = run_cli(*check, "--model-signing-key", published["public"])
    assert verified.exit_code == 0, verified.output
    finding = findings(verified.stdout)["model signature"]
    assert finding["status"] == "pass"
    assert finding["message"] == ("model files 'mlp.data', 'mlp.onnx' are signed by the publisher's key "
                                  "publisher.pub.pem (model_signing)")
    unverified = run_cli(*check)  # no key: a warning that says how to verify
    assert unverified.exit_code == 0
    assert findings(unverified.stdout)["model signature"]["status"] == "warn"

    _, stranger = ec_key_pair(tmp_path / "keys", "stranger")
    wrong_key = run_cli(*check, "--model-signing-key", stranger)
    assert wrong_key.exit_code == 1
    assert findings(wrong_key.stdout)["model signature"]["message"] == (
        "model signature 'model.sig': the model signature is not by the key stranger.pub.pem")


def test_a_signed_single_file(tmp_path: Path, run_cli: RunCli, published: dict[str, Path]) -> None:
    folder = tmp_path / "single"
    folder.mkdir()
    model = models.save(models.mlp(), folder / "one.onnx")
    signature = sign(model, published["private"], tmp_path / "one.sig")
    bundle = tmp_path / "one"
    assert run_cli(*pack_args(published, model), "--model-signature", signature, "--out", bundle).exit_code == 0
    result = run_cli("check", bundle, "--allow-unsigned", "--no-rerun", "--model-signing-key", published["public"])
    assert result.exit_code == 0, result.output
    assert "model files 'one.onnx' are signed by the publisher's key" in result.stdout


def test_pack_refuses_a_signature_over_other_files(published: dict[str, Path], tmp_path: Path,
                                                   run_cli: RunCli) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(published["folder"], changed)
    data = changed / "mlp.data"
    data.write_bytes(data.read_bytes()[:-4] + b"\0\0\x80\x3f")  # the last weight is now 1.0
    result = run_cli(*pack_args(published, changed / "mlp.onnx"), "--model-signature", published["signature"],
                     "--out", tmp_path / "b.ogb")
    assert result.exit_code == 2
    assert single_error_line(result).startswith(
        "error: --model-signature model.sig does not sign this model: model file 'mlp.data' differs from the "
        "signed file (sha256 signed ")
    not_a_signature = tmp_path / "notes.sig"
    not_a_signature.write_text("{}", encoding="utf-8")
    result = run_cli(*pack_args(published), "--model-signature", not_a_signature, "--out", tmp_path / "c.ogb")
    assert result.exit_code == 2
    assert single_error_line(result).startswith("error: --model-signature notes.sig is not a model_signing signature")


def test_check_fails_a_model_changed_after_signing(published: dict[str, Path], tmp_path: Path,
                                                   run_cli: RunCli) -> None:
    """A producer who packs a changed model and attaches the publisher's older signature (crafting the
    manifest, as pack would refuse it): check names the changed file."""
    signed_bundle, changed_bundle = tmp_path / "signed", tmp_path / "changed-bundle"
    assert run_cli(*pack_args(published), "--model-signature", published["signature"],
                   "--out", signed_bundle).exit_code == 0
    changed = tmp_path / "changed"
    shutil.copytree(published["folder"], changed)
    data = changed / "mlp.data"
    data.write_bytes(data.read_bytes()[:-4] + b"\0\0\x80\x3f")
    assert run_cli(*pack_args(published, changed / "mlp.onnx"), "--out", changed_bundle).exit_code == 0
    members = read_members(changed_bundle)
    manifest = json.loads(members["manifest.json"])
    signature_entry = json.loads(read_members(signed_bundle)["manifest.json"])["provenance"]["model_signature"]
    manifest["provenance"] = {"model_signature": signature_entry}
    blob = f"blobs/blake3/{signature_entry['digest']['blake3']}"
    members[blob] = read_members(signed_bundle)[blob]
    members["manifest.json"] = canonical(manifest)
    write_members(changed_bundle, members)
    result = run_cli("check", changed_bundle, "--allow-unsigned", "--no-rerun",
                     "--model-signing-key", published["public"])
    assert result.exit_code == 1, result.output
    assert "model signature 'model.sig': model file 'mlp.data' differs from the signed file" in result.stdout


def test_a_key_demands_a_signature(published: dict[str, Path], tmp_path: Path, run_cli: RunCli) -> None:
    bundle = tmp_path / "plain"
    assert run_cli(*pack_args(published), "--out", bundle).exit_code == 0
    assert "provenance" not in json.loads((bundle / "manifest.json").read_bytes())
    result = run_cli("check", bundle, "--allow-unsigned", "--no-rerun", "--model-signing-key", published["public"])
    assert result.exit_code == 1
    assert "the bundle carries no model signature, but --model-signing-key asks for one" in result.stdout
    missing = run_cli("check", bundle, "--model-signing-key", tmp_path / "nope.pem")
    assert missing.exit_code == 2
    assert single_error_line(missing) == f"error: --model-signing-key {tmp_path / 'nope.pem'} does not exist"


def test_python_api(published: dict[str, Path], tmp_path: Path) -> None:
    import ogverify

    bundle = tmp_path / "api.ogb"
    x, y = np.load(published["x"]), np.load(published["y"])
    ogverify.pack(published["model"], bundle, inputs={"x": x}, claimed_outputs={"y": y},
                  model_cid=ogverify.file_cids(published["model"]).v1, model_signature=published["signature"])
    report = ogverify.check(bundle, allow_unsigned=True, rerun=False, model_signing_key=published["public"])
    assert report.exit_code == 0, report.headline
    provenance = next(f for f in report.findings if f.stage == "provenance")
    assert [c.subject for c in provenance.children] == ["model 'mlp.onnx' CID", "model signature"]
