"""``ogverify inspect`` and ``ogverify extract`` end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from ogverify.evidence.extract import extract_bundle
from ogverify.evidence.inspection import inspect_bundle
from ogverify.evidence.signing import load_public_key
from ogverify.runtime.threads import physical_cores
from tests.bundle_helpers import (
    Members,
    blob_name,
    flip_last_byte,
    leftovers,
    manifest_of,
    read_members,
    single_error_line,
    tamper,
    tensor_entry,
)
from tests.conftest import RunCli
from tests.fixtures import models

FORMS = ["dir", "b.ogb"]


@pytest.fixture(params=FORMS)
def packed(request: pytest.FixtureRequest, tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path],
           mlp_files: dict[str, Path]) -> dict[str, Any]:
    """A signed MLP bundle with a known claimed output, in each form."""
    y = np.linspace(-1.0, 1.0, 32, dtype=np.float32).reshape(4, 8)
    np.save(tmp_path / "y.npy", y)
    bundle = tmp_path / "bundles" / request.param
    bundle.parent.mkdir()
    result = run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "-O", f"y={tmp_path / 'y.npy'}",
                     "--sign", keypair[0], "--opt-level", "extended", "--session-config",
                     "session.intra_op.allow_spinning=0", "--annotate", "case=42", "--out", bundle)
    assert result.exit_code == 0, result.output
    return {"bundle": bundle, "x": np.load(mlp_files["x"]), "y": y, "model": mlp_files["model"],
            "keyid": load_public_key(keypair[1]).keyid}


# --- inspect ----------------------------------------------------------------------------------


def test_inspect_text(packed: dict[str, Any], run_cli: RunCli) -> None:
    result = run_cli("inspect", packed["bundle"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    form = "file" if packed["bundle"].suffix == ".ogb" else "directory"
    assert f"({form} form, format 1)" in " ".join(text.split())  # the bundle's path may wrap the line
    assert "mlp.onnx" in text
    assert f"{packed['model'].stat().st_size} bytes" in text
    # No --threads: pack records onnxruntime's default as the count it resolves to here.
    assert f"ORT_ENABLE_EXTENDED, intra {physical_cores()}, inter 1, ORT_SEQUENTIAL" in text
    assert "session.intra_op.allow_spinning=0" in text
    assert "onnxruntime " + ort.__version__ + " on CPUExecutionProvider" in text
    assert packed["keyid"][:12] in text
    assert "annotation case" in text
    lines = text.splitlines()
    rows = [[cell.strip() for cell in line.split("\u2502")] for line in lines if "\u2502" in line]
    manifest = manifest_of(packed["bundle"])
    x_entry, y_entry = tensor_entry(manifest, "inputs", "x"), tensor_entry(manifest, "outputs", "y")
    assert rows == [
        ["input", "x", "float32[4,16]", str(x_entry["size"]), x_entry["encoding"]],
        ["claimed output", "y", "float32[4,8]", str(y_entry["size"]), y_entry["encoding"]],
    ], text
    manifest_sha = next(line for line in lines if line.startswith("manifest"))
    assert manifest_sha.split()[-1].startswith("sha256:")


def test_inspect_json(packed: dict[str, Any], run_cli: RunCli) -> None:
    result = run_cli("inspect", packed["bundle"], "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == inspect_bundle(packed["bundle"])
    manifest = manifest_of(packed["bundle"])
    assert summary["form"] == ("file" if packed["bundle"].suffix == ".ogb" else "directory")
    assert summary["model"]["name"] == "mlp.onnx"
    assert summary["model"]["blake3"] == manifest["model"]["digest"]["blake3"]
    assert summary["model"]["size"] == packed["model"].stat().st_size
    assert [(t["name"], t["dtype"], t["shape"]) for t in summary["inputs"]] == [("x", "float32", [4, 16])]
    assert [(t["name"], t["dtype"], t["shape"]) for t in summary["outputs"]] == [("y", "float32", [4, 8])]
    assert summary["execution"] == manifest["execution"]
    assert summary["execution"]["session_options"]["graph_optimization_level"] == "ORT_ENABLE_EXTENDED"
    assert summary["comparison"] == {"default": {"mode": "exact"}, "outputs": {}}
    assert summary["annotations"] == {"case": "42"}
    assert summary["signatures"] == [
        {"file": f"signatures/{packed['keyid']}.dsse.json", "keyids": [packed["keyid"]]}
    ]
    assert summary["totals"]["artifacts"] == 3
    assert summary["environment"] == manifest["environment"]


def test_inspect_executes_nothing(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path]) -> None:
    # A bundle recorded for a provider this machine does not have: check cannot run it, inspect
    # describes it all the same.
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here")
    np.save(tmp_path / "y.npy", np.zeros((4, 8), dtype=np.float32))
    bundle = tmp_path / "cuda.ogb"
    assert run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "-O", f"y={tmp_path / 'y.npy'}",
                   "--provider", "CUDAExecutionProvider", "--out", bundle).exit_code == 0
    assert run_cli("check", bundle, "--allow-unsigned").exit_code == 3
    result = run_cli("inspect", bundle)
    assert result.exit_code == 0, result.output
    assert "on CUDAExecutionProvider" in result.stdout
    assert "(unsigned)" in result.stdout
    summary = json.loads(run_cli("inspect", bundle, "--format", "json").stdout)
    assert summary["signatures"] == []
    assert summary["execution"]["providers"] == [{"name": "CUDAExecutionProvider", "options": {}}]


def test_inspect_errors(tmp_path: Path, run_cli: RunCli, packed: dict[str, Any]) -> None:
    result = run_cli("inspect", tmp_path / "absent.ogb")
    assert result.exit_code == 3
    assert single_error_line(result) == f"error: no such bundle: {tmp_path / 'absent.ogb'}"
    result = run_cli("inspect", packed["bundle"], "--format", "yaml")
    assert result.exit_code == 2
    assert single_error_line(result) == "error: unknown format 'yaml'; use text or json"


# --- extract ----------------------------------------------------------------------------------


def test_extract_writes_the_documented_layout(packed: dict[str, Any], run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "extracted"
    result = run_cli("extract", packed["bundle"], target)
    assert result.exit_code == 0, result.output
    assert f"extracted {packed['bundle']} into {target}" in result.stderr
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == [
        "inputs/x.npy", "manifest.json", "model/mlp.onnx", "outputs/y.npy",
        f"signatures/{packed['keyid']}.dsse.json", "tensors.json",
    ]
    assert (target / "manifest.json").read_bytes() == read_members(packed["bundle"])["manifest.json"]
    assert (target / "model" / "mlp.onnx").read_bytes() == packed["model"].read_bytes()
    index = json.loads((target / "tensors.json").read_text(encoding="utf-8"))
    assert index == {"inputs": {"x": "inputs/x.npy"}, "outputs": {"y": "outputs/y.npy"}}
    x = np.load(target / index["inputs"]["x"], allow_pickle=False)
    y = np.load(target / index["outputs"]["y"], allow_pickle=False)
    assert x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(x, packed["x"])
    np.testing.assert_array_equal(y, packed["y"])
    envelope = (target / "signatures" / f"{packed['keyid']}.dsse.json").read_bytes()
    assert envelope == read_members(packed["bundle"])[f"signatures/{packed['keyid']}.dsse.json"]
    assert leftovers(tmp_path) == []


def test_extract_external_data_and_odd_tensor_names(tmp_path: Path, run_cli: RunCli) -> None:
    model = models.save(models.multi_io(), tmp_path / "multi.onnx")
    mlp = models.save(models.mlp(), tmp_path / "ext.onnx", external_data=True)
    rng = np.random.default_rng(8)
    np.savez(tmp_path / "in.npz", a=rng.standard_normal((2, 3)).astype(np.float32),
             b=rng.standard_normal((2, 3)).astype(np.float32), n=np.array([1, 2], dtype=np.int64))
    bundle = tmp_path / "multi.ogb"
    assert run_cli("pack", model, "-i", tmp_path / "in.npz", "--run", "--out", bundle).exit_code == 0
    target = tmp_path / "out"
    assert extract_bundle(bundle, target) == target
    index = json.loads((target / "tensors.json").read_text(encoding="utf-8"))
    assert index["outputs"] == {"count": "outputs/count.npy", "prod": "outputs/prod.npy", "sum": "outputs/sum.npy"}
    np.testing.assert_array_equal(np.load(target / "outputs" / "count.npy"), np.array([2, 4], dtype=np.int64))

    np.save(tmp_path / "x.npy", rng.standard_normal((4, 16)).astype(np.float32))
    ext_bundle = tmp_path / "ext"
    assert run_cli("pack", mlp, "-i", f"x={tmp_path / 'x.npy'}", "--run", "--out", ext_bundle).exit_code == 0
    ext_target = tmp_path / "ext-out"
    assert run_cli("extract", ext_bundle, ext_target).exit_code == 0
    assert (ext_target / "model" / "ext.data").read_bytes() == (tmp_path / "ext.data").read_bytes()
    assert (ext_target / "model" / "ext.onnx").read_bytes() == mlp.read_bytes()
    # The extracted model runs: its external data sits where the graph expects it.
    session = ort.InferenceSession(str(ext_target / "model" / "ext.onnx"), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.load(ext_target / "inputs" / "x.npy")})
    assert y.shape == (4, 8)


def test_extract_into_an_existing_empty_directory(packed: dict[str, Any], run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    result = run_cli("extract", packed["bundle"], target)
    assert result.exit_code == 0, result.output
    assert (target / "tensors.json").is_file()


def test_extract_refuses_a_non_empty_target(packed: dict[str, Any], run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("precious", encoding="utf-8")
    refused = run_cli("extract", packed["bundle"], target)
    assert refused.exit_code == 2
    assert single_error_line(refused) == f"error: {target} is not empty (use --force to replace it)"
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    replaced = run_cli("extract", packed["bundle"], target, "--force")
    assert replaced.exit_code == 0, replaced.output
    assert not (target / "keep.txt").exists()
    np.testing.assert_array_equal(np.load(target / "outputs" / "y.npy"), packed["y"])
    assert leftovers(tmp_path) == []


def test_extract_refuses_a_file_target(packed: dict[str, Any], run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x", encoding="utf-8")
    refused = run_cli("extract", packed["bundle"], target, "--force")
    assert refused.exit_code == 2
    assert single_error_line(refused) == f"error: {target} exists and is not a directory"


@pytest.mark.parametrize("force", [False, True])
def test_extract_of_a_corrupted_blob_leaves_nothing(packed: dict[str, Any], run_cli: RunCli, tmp_path: Path,
                                                    force: bool) -> None:
    def change(members: Members) -> None:
        name = blob_name(tensor_entry(json.loads(members["manifest.json"]), "outputs", "y"))
        members[name] = flip_last_byte(members[name])

    tamper(packed["bundle"], change)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "extracted"
    if force:
        target.mkdir()
        (target / "old.txt").write_text("old", encoding="utf-8")
    result = run_cli("extract", packed["bundle"], target, *(["--force"] if force else []))
    assert result.exit_code == 3, result.output
    assert single_error_line(result).startswith("error: claimed output 'y': ")
    if force:
        # A failed forced extract keeps what was there.
        assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
        assert sorted(p.name for p in out_dir.iterdir()) == ["extracted"]
    else:
        assert list(out_dir.iterdir()) == []


def test_extract_of_a_missing_bundle(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("extract", tmp_path / "absent", tmp_path / "out")
    assert result.exit_code == 3
    assert single_error_line(result) == f"error: no such bundle: {tmp_path / 'absent'}"
    assert sorted(p.name for p in tmp_path.iterdir()) == []
