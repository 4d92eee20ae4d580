"""Tamper detection: every change to a signed bundle fails ``check`` with exit 1 and a named cause.

Each case edits a finished bundle the way an attacker would (files of the directory form,
members of the .ogb tar rewritten with Python's tarfile), then runs the real ``check``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from ogverify.evidence.signing import generate_key_pair
from ogverify.packing.pack import pack
from tests.bundle_helpers import (
    Members,
    blob_content,
    blob_name,
    canonical,
    check_json,
    encode_like,
    findings_of,
    flip_last_byte,
    load_npy,
    read_members,
    replace_tensor_blob,
    tamper,
    tensor_entry,
    text_headline,
    write_members,
)
from tests.conftest import CliResult, RunCli
from tests.fixtures import models

FORMS = ["dir", "b.ogb"]


@dataclass(frozen=True)
class Signed:
    """A signed MLP bundle in both forms and the key material around it."""

    bundles: dict[str, Path]
    key: Path
    pub: Path
    keyid: str
    other_key: Path


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    root = tmp_path_factory.mktemp("signed")
    key, pub, keyid = generate_key_pair(root / "signer.key")
    other_key, _, _ = generate_key_pair(root / "intruder.key")
    model = models.save(models.mlp(), root / "mlp.onnx")
    x = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    bundles = {}
    for form in FORMS:
        bundles[form] = pack(model, root / form, inputs={"x": x}, sign_keys=[key]).path
    return Signed(bundles, key, pub, keyid, other_key)


@pytest.fixture(params=FORMS)
def bundle(request: pytest.FixtureRequest, signed: Signed, tmp_path: Path) -> Path:
    """A private copy of the signed bundle, in each form."""
    source = signed.bundles[request.param]
    target = tmp_path / source.name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    return target


def _check(run_cli: RunCli, bundle: Path, signed: Signed) -> tuple[CliResult, str, dict[str, Any]]:
    result = run_cli("check", bundle, "--trusted-key", signed.pub)
    _, report = check_json(run_cli, bundle, "--trusted-key", signed.pub)
    assert report["exit_code"] == result.exit_code
    return result, text_headline(result.stdout), report


def _manifest(members: Members) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(members["manifest.json"])
    return loaded


def test_untouched_bundle_verifies(bundle: Path, run_cli: RunCli, signed: Signed) -> None:
    result, headline, report = _check(run_cli, bundle, signed)
    assert result.exit_code == 0, result.output
    assert headline == "VERIFIED: outputs reproduced"
    assert [f["status"] for f in report["findings"]] == ["pass", "pass", "pass", "pass", "pass"]


# --- blobs changed behind the manifest's back: integrity fails, naming the artifact ----------------


@pytest.mark.parametrize(("side", "name", "subject"), [("inputs", "x", "input 'x'"),
                                                     ("outputs", "y", "claimed output 'y'")])
def test_changed_tensor_blob(bundle: Path, run_cli: RunCli, signed: Signed, side: str, name: str,
                             subject: str) -> None:
    """A changed input or claimed output blob fails integrity naming that tensor alone; nothing runs."""
    def change(members: Members) -> None:
        blob = blob_name(tensor_entry(_manifest(members), side, name))
        members[blob] = flip_last_byte(members[blob])

    tamper(bundle, change)
    result, headline, report = _check(run_cli, bundle, signed)
    assert result.exit_code == 1, result.output
    assert headline.startswith(f"FAILED: {subject}: ")
    assert subject in result.stdout
    failing = [f for f in findings_of(report, "integrity") if f["status"] == "fail" and f["children"] == []]
    assert [f["subject"] for f in failing] == [subject]
    (replay,) = findings_of(report, "replay")
    assert replay["status"] == "skip"
    assert report["outputs"] == []


def _with_changed_weight(model_bytes: bytes) -> bytes:
    """The same model with one weight changed: same size, different content."""
    model = onnx.load_from_string(model_bytes)
    for initializer in model.graph.initializer:
        if initializer.name == "w1":
            weights = numpy_helper.to_array(initializer).copy()
            weights[0, 0] += 1.0
            initializer.CopyFrom(numpy_helper.from_array(weights, "w1"))
    changed: bytes = model.SerializeToString()
    assert changed != model_bytes and len(changed) == len(model_bytes)
    return changed


def test_changed_weight(bundle: Path, run_cli: RunCli, signed: Signed) -> None:
    def change(members: Members) -> None:
        entry = _manifest(members)["model"]
        members[blob_name(entry)] = encode_like(entry, _with_changed_weight(blob_content(members, entry)))

    tamper(bundle, change)
    result, headline, report = _check(run_cli, bundle, signed)
    assert result.exit_code == 1, result.output
    assert headline.startswith("FAILED: model 'mlp.onnx': ")
    failing = [f["subject"] for f in findings_of(report, "integrity") if f["status"] == "fail" and not f["children"]]
    assert failing == ["model 'mlp.onnx'"]


def test_added_blob(bundle: Path, run_cli: RunCli, signed: Signed) -> None:
    extra = "blobs/blake3/" + "ab" * 32

    def change(members: Members) -> None:
        members[extra] = b"smuggled"

    tamper(bundle, change)
    result, headline, _ = _check(run_cli, bundle, signed)
    assert result.exit_code == 1, result.output
    assert headline == f"FAILED: blob {extra} is not named by the manifest (something was added)"


# --- manifest edited and re-canonicalised: the signature no longer covers it -----------------------


def test_changed_config_field(bundle: Path, run_cli: RunCli, signed: Signed) -> None:
    def change(members: Members) -> None:
        manifest = _manifest(members)
        manifest["execution"]["session_options"]["graph_optimization_level"] = "ORT_DISABLE_ALL"
        members["manifest.json"] = canonical(manifest)

    tamper(bundle, change)
    result, headline, report = _check(run_cli, bundle, signed)
    assert result.exit_code == 1, result.output
    assert headline.startswith(f"FAILED: signature by trusted key {signed.keyid[:12]} covers a different manifest")
    assert ("execution.session_options.graph_optimization_level: signed 'ORT_ENABLE_ALL', "
            "bundle has 'ORT_DISABLE_ALL'") in headline
    (integrity,) = [f for f in report["findings"] if f["stage"] == "integrity"]
    assert integrity["status"] == "pass"
    (envelope,) = [f for f in findings_of(report, "signatures") if f["children"] == []]
    assert envelope["evidence"]["status"] == "mismatch"
    assert envelope["evidence"]["changed_since_signing"] == [
        "execution.session_options.graph_optimization_level: signed 'ORT_ENABLE_ALL', bundle has 'ORT_DISABLE_ALL'"
    ]
    (replay,) = findings_of(report, "replay")
    assert replay["status"] == "skip"


def test_changed_claimed_output_with_updated_manifest(bundle: Path, run_cli: RunCli, signed: Signed) -> None:
    def change(members: Members) -> None:
        manifest = _manifest(members)
        claimed = load_npy(blob_content(members, tensor_entry(manifest, "outputs", "y")))
        replace_tensor_blob(members, manifest, "outputs", "y", np.nextafter(claimed, np.float32(np.inf)))

    tamper(bundle, change)
    result, headline, report = _check(run_cli, bundle, signed)
    assert result.exit_code == 1, result.output
    assert headline.startswith(f"FAILED: signature by trusted key {signed.keyid[:12]} covers a different manifest")
    assert "claimed output 'y' changed" in headline
    (integrity,) = [f for f in report["findings"] if f["stage"] == "integrity"]
    assert integrity["status"] == "pass"


def test_changed_weight_with_updated_manifest(bundle: Path, run_cli: RunCli, signed: Signed) -> None:
    import blake3

    def change(members: Members) -> None:
        manifest = _manifest(members)
        entry = manifest["model"]
        content = _with_changed_weight(blob_content(members, entry))
        del members[blob_name(entry)]
        entry["digest"] = {"blake3": blake3.blake3(content).hexdigest()}
        entry["encoding"], entry["size"], entry["stored_size"] = "identity", len(content), len(content)
        members[blob_name(entry)] = content
        members["manifest.json"] = canonical(manifest)

    tamper(bundle, change)
    result, headline, _ = _check(run_cli, bundle, signed)
    assert result.exit_code == 1, result.output
    assert "covers a different manifest" in headline
    assert "model 'mlp.onnx' changed" in headline


def test_non_canonical_manifest_is_refused(bundle: Path, run_cli: RunCli, signed: Signed) -> None:
    def change(members: Members) -> None:
        members["manifest.json"] = json.dumps(_manifest(members), indent=1).encode()

    tamper(bundle, change)
    result, headline, _ = _check(run_cli, bundle, signed)
    assert result.exit_code == 3, result.output
    assert headline == ("COULD NOT VERIFY: manifest.json is not canonical JSON (RFC 8785); "
                        "it was not written by a packer")


# --- signatures removed, replaced or damaged ------------------------------------------------------


def _drop_signatures(members: Members) -> None:
    for name in [n for n in members if n.startswith("signatures/")]:
        del members[name]


def test_removed_signature(bundle: Path, run_cli: RunCli, signed: Signed) -> None:
    tamper(bundle, _drop_signatures)
    assert not any(n.startswith("signatures/") for n in read_members(bundle))
    result, headline, report = _check(run_cli, bundle, signed)
    assert result.exit_code == 1, result.output
    assert headline == "FAILED: bundle is not signed"
    (replay,) = findings_of(report, "replay")
    assert replay["status"] == "skip"


def test_resigned_by_an_untrusted_key(bundle: Path, run_cli: RunCli, signed: Signed) -> None:
    tamper(bundle, _drop_signatures)
    resigned = run_cli("sign", bundle, "--key", signed.other_key)
    assert resigned.exit_code == 0, resigned.output
    result, headline, report = _check(run_cli, bundle, signed)
    assert result.exit_code == 1, result.output
    assert headline == "FAILED: bundle is signed only by untrusted keys"
    assert "which is not among the trusted keys" in result.stdout
    (envelope,) = [f for f in findings_of(report, "signatures") if f["children"] == []]
    assert envelope["evidence"]["status"] == "untrusted"
    assert envelope["evidence"]["keyid"] != signed.keyid


@pytest.mark.parametrize("field", ["sig", "payload"])
def test_signature_with_bad_base64(bundle: Path, run_cli: RunCli, signed: Signed, field: str) -> None:
    envelope_name = f"signatures/{signed.keyid}.dsse.json"

    def change(members: Members) -> None:
        envelope = json.loads(members[envelope_name])
        if field == "sig":
            envelope["signatures"][0]["sig"] = "not*base64!"
        else:
            envelope["payload"] = "not*base64!"
        members[envelope_name] = canonical(envelope)

    tamper(bundle, change)
    result, headline, _ = _check(run_cli, bundle, signed)
    assert result.exit_code == 1, result.output
    what = f"{envelope_name} signature 0 sig" if field == "sig" else f"{envelope_name} payload"
    assert headline == f"FAILED: {what} is not valid base64"


def test_signature_over_a_forged_statement(bundle: Path, run_cli: RunCli, signed: Signed) -> None:
    # The payload is swapped for another statement but the old signature bytes are kept.
    import base64

    envelope_name = f"signatures/{signed.keyid}.dsse.json"

    def change(members: Members) -> None:
        envelope = json.loads(members[envelope_name])
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["subject"][0]["digest"]["sha256"] = "0" * 64
        envelope["payload"] = base64.b64encode(canonical(statement)).decode()
        members[envelope_name] = canonical(envelope)

    tamper(bundle, change)
    result, headline, _ = _check(run_cli, bundle, signed)
    assert result.exit_code == 1, result.output
    assert headline == f"FAILED: signature by trusted key {signed.keyid[:12]} does not verify"


def test_tar_rewrite_alone_changes_nothing(signed: Signed, run_cli: RunCli, tmp_path: Path) -> None:
    # The helper's own tar writer must produce a valid bundle, or the tamper tests prove nothing.
    copy = tmp_path / "copy.ogb"
    write_members(copy, read_members(signed.bundles["b.ogb"]))
    result, _, _ = _check(run_cli, copy, signed)
    assert result.exit_code == 0, result.output
