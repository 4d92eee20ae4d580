"""``ogverify pack`` end to end: both bundle forms, every input form, recorded config, errors."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from ogverify.errors import UsageError
from ogverify.evidence.bundle import open_bundle
from ogverify.model.tensors import parse_npy
from ogverify.packing.pack import pack
from ogverify.runtime.threads import physical_cores
from tests.bundle_helpers import (
    blob_content,
    leftovers,
    load_npy,
    manifest_of,
    read_members,
    single_error_line,
    tensor_entry,
)
from tests.conftest import CliResult, RunCli, invoke_cli, write_mlp_files
from tests.fixtures import models

FORMS = ["dir", "b.ogb"]


def _x() -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)


def _ort_outputs(model: Path, feeds: dict[str, Any]) -> list[Any]:
    # What pack --run must have recorded, computed on this machine with the configuration it
    # records (1 thread): the same kernels, so the same bits; on another CPU they could differ.
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    outputs: list[Any] = session.run(None, feeds)
    return outputs


def _stored_tensor(bundle: Path, section: str, name: str) -> np.ndarray[Any, Any]:
    members = read_members(bundle)
    return load_npy(blob_content(members, tensor_entry(manifest_of(bundle), section, name)))


@pytest.fixture(scope="module")
def default_packs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, CliResult, dict[str, Path]]]:
    """``pack MODEL -i x=X --run --out OUT`` with every default, once per form for the module (the
    tests only read them): form -> (OUT, what pack printed, the model and input files)."""
    packs = {}
    for form in FORMS:
        folder = tmp_path_factory.mktemp("default-pack")
        files = write_mlp_files(folder / "mlp")
        out = folder / form
        result = invoke_cli("pack", files["model"], "-i", f"x={files['x']}", "--run", "--out", out)
        assert result.exit_code == 0, result.output
        packs[form] = (out, result, files)
    return packs


# --- forms and input files ------------------------------------------------------------------


@pytest.mark.parametrize("target", FORMS)
def test_pack_writes_both_forms(default_packs: dict[str, tuple[Path, CliResult, dict[str, Path]]],
                                target: str) -> None:
    out, result, _ = default_packs[target]
    assert f"wrote {out}" in result.stderr
    umask = os.umask(0o022)
    os.umask(umask)
    expected_mode = (0o666 if target.endswith(".ogb") else 0o777) & ~umask
    assert stat.S_IMODE(out.stat().st_mode) == expected_mode, oct(out.stat().st_mode)
    if target.endswith(".ogb"):
        assert out.is_file() and tarfile.is_tarfile(out)
        with tarfile.open(out) as tar:
            names = tar.getnames()
        assert names == sorted(names)
    else:
        assert out.is_dir()
        names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    manifest = manifest_of(out)
    assert {"ogverify-bundle.json", "manifest.json"} <= set(names)
    blobs = {n for n in names if n.startswith("blobs/blake3/")}
    assert blobs == {f"blobs/blake3/{e['digest']['blake3']}" for e in
                     [manifest["model"], *manifest["inputs"], *manifest["outputs"]]}
    assert manifest["model"]["name"] == "mlp.onnx"
    assert manifest["model"]["media_type"] == "application/x-onnx"
    assert [(t["name"], t["dtype"], t["shape"]) for t in manifest["inputs"]] == [("x", "float32", [4, 16])]
    assert [(t["name"], t["dtype"], t["shape"]) for t in manifest["outputs"]] == [("y", "float32", [4, 8])]
    assert manifest["model_files"] == []
    with open_bundle(out) as bundle:
        assert bundle.form == ("file" if target.endswith(".ogb") else "directory")
        for label, artifact in bundle.manifest.artifacts():
            assert bundle.verify_blob(artifact) is None, label
    assert leftovers(out.parent) == []


def test_pack_run_records_what_onnxruntime_computes(
    default_packs: dict[str, tuple[Path, CliResult, dict[str, Path]]],
) -> None:
    out, _, mlp_files = default_packs["b.ogb"]
    x = np.load(mlp_files["x"])
    np.testing.assert_array_equal(_stored_tensor(out, "inputs", "x"), x)
    (expected,) = _ort_outputs(mlp_files["model"], {"x": x})
    np.testing.assert_array_equal(_stored_tensor(out, "outputs", "y"), expected)


def test_pack_claimed_outputs_are_stored_as_given(tmp_path: Path, run_cli: RunCli,
                                                  mlp_files: dict[str, Path]) -> None:
    claimed = np.full((4, 8), 0.25, dtype=np.float32)
    np.save(tmp_path / "y.npy", claimed)
    out = tmp_path / "b"
    result = run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "-O", f"y={tmp_path / 'y.npy'}",
                     "--out", out)
    assert result.exit_code == 0, result.output
    assert "running the model" not in result.stderr
    np.testing.assert_array_equal(_stored_tensor(out, "outputs", "y"), claimed)
    entry = tensor_entry(manifest_of(out), "outputs", "y")
    content = blob_content(read_members(out), entry)
    assert blake3.blake3(content).hexdigest() == entry["digest"]["blake3"]
    assert parse_npy(content, "y").dtype == np.float32


def test_pack_unnamed_npy_goes_to_the_only_input(tmp_path: Path, run_cli: RunCli,
                                                 mlp_files: dict[str, Path]) -> None:
    out = tmp_path / "b"
    assert run_cli("pack", mlp_files["model"], "-i", mlp_files["x"], "--run", "--out", out).exit_code == 0
    np.testing.assert_array_equal(_stored_tensor(out, "inputs", "x"), np.load(mlp_files["x"]))


def test_pack_npz_with_all_inputs(tmp_path: Path, run_cli: RunCli) -> None:
    model = models.save(models.multi_io(), tmp_path / "multi.onnx")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 3)).astype(np.float32)
    b = rng.standard_normal((2, 3)).astype(np.float32)
    n = np.array([7, -2], dtype=np.int64)
    np.savez(tmp_path / "inputs.npz", a=a, b=b, n=n)
    out = tmp_path / "b.ogb"
    result = run_cli("pack", model, "-i", tmp_path / "inputs.npz", "--run", "--out", out)
    assert result.exit_code == 0, result.output
    manifest = manifest_of(out)
    assert [(t["name"], t["dtype"]) for t in manifest["inputs"]] == [("a", "float32"), ("b", "float32"),
                                                                      ("n", "int64")]
    assert [(t["name"], t["dtype"]) for t in manifest["outputs"]] == [("sum", "float32"), ("prod", "float32"),
                                                                       ("count", "int64")]
    np.testing.assert_array_equal(_stored_tensor(out, "inputs", "n"), n)
    np.testing.assert_array_equal(_stored_tensor(out, "outputs", "count"), n * 2)
    np.testing.assert_array_equal(_stored_tensor(out, "outputs", "sum"), a + b)


def test_pack_named_npz_picks_one_array(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path]) -> None:
    x = np.load(mlp_files["x"])
    np.savez(tmp_path / "many.npz", x=x, decoy=np.zeros((4, 16), dtype=np.float32))
    out = tmp_path / "b"
    result = run_cli("pack", mlp_files["model"], "-i", f"x={tmp_path / 'many.npz'}", "--run", "--out", out)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(_stored_tensor(out, "inputs", "x"), x)


def test_pack_npz_without_the_named_array_is_refused(tmp_path: Path, run_cli: RunCli,
                                                     mlp_files: dict[str, Path]) -> None:
    np.savez(tmp_path / "many.npz", p=np.zeros(2), q=np.ones(2))
    result = run_cli("pack", mlp_files["model"], "-i", f"x={tmp_path / 'many.npz'}", "--run",
                     "--out", tmp_path / "b")
    assert result.exit_code == 2
    assert "holds p, q; none is named 'x'" in single_error_line(result)


def test_pack_tensor_proto_input(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path]) -> None:
    x = np.load(mlp_files["x"])
    (tmp_path / "x.pb").write_bytes(numpy_helper.from_array(x, "x").SerializeToString())
    out = tmp_path / "b"
    result = run_cli("pack", mlp_files["model"], "-i", tmp_path / "x.pb", "--run", "--out", out)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(_stored_tensor(out, "inputs", "x"), x)


def test_pack_test_data_directory(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path]) -> None:
    x = np.load(mlp_files["x"])
    expected = models.mlp_reference_outputs(models.mlp(), x)
    folder = tmp_path / "test_data_set_0"
    folder.mkdir()
    # Unnamed protos: the file's index decides which input/output each one is.
    (folder / "input_0.pb").write_bytes(numpy_helper.from_array(x).SerializeToString())
    (folder / "output_0.pb").write_bytes(numpy_helper.from_array(expected).SerializeToString())
    out = tmp_path / "b.ogb"
    result = run_cli("pack", mlp_files["model"], "--test-data", folder, "--out", out)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(_stored_tensor(out, "inputs", "x"), x)
    np.testing.assert_array_equal(_stored_tensor(out, "outputs", "y"), expected)


# --- what the manifest records ----------------------------------------------------------------


def test_pack_records_execution_config_comparison_and_annotations(tmp_path: Path, run_cli: RunCli,
                                                                   mlp_files: dict[str, Path]) -> None:
    out = tmp_path / "b"
    result = run_cli(
        "pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "--run", "--out", out,
        "--opt-level", "basic", "--threads", "2", "--inter-threads", "3", "--execution-mode", "parallel",
        "--session-config", "session.intra_op.allow_spinning=0",
        "--session-config", "session.set_denormal_as_zero=1",
        "--run-config", "memory.enable_memory_arena_shrinkage=cpu:0",
        "--compare", "allclose:1e-3,1e-5", "--compare-output", "y=ulp:4",
        "--annotate", "case=ticket-17", "--annotate", "owner=audit team",
    )
    assert result.exit_code == 0, result.output
    manifest = manifest_of(out)
    execution = manifest["execution"]
    assert execution["runtime"] == {"name": "onnxruntime", "version": ort.__version__}
    assert execution["providers"] == [{"name": "CPUExecutionProvider", "options": {}}]
    assert execution["session_options"] == {
        "graph_optimization_level": "ORT_ENABLE_BASIC",
        "intra_op_num_threads": 2,
        "inter_op_num_threads": 3,
        "execution_mode": "ORT_PARALLEL",
        "config_entries": {"session.intra_op.allow_spinning": "0", "session.set_denormal_as_zero": "1"},
    }
    assert execution["run_options"] == {"config_entries": {"memory.enable_memory_arena_shrinkage": "cpu:0"}}
    assert manifest["comparison"] == {
        "default": {"mode": "allclose", "rtol": 1e-3, "atol": 1e-5},
        "outputs": {"y": {"mode": "ulp", "ulp": 4}},
    }
    assert manifest["annotations"] == {"case": "ticket-17", "owner": "audit team"}
    assert manifest["producer"]["tool"] == "ogverify"


def test_pack_defaults_are_recorded(default_packs: dict[str, tuple[Path, CliResult, dict[str, Path]]]) -> None:
    out, _, _ = default_packs["dir"]
    manifest = manifest_of(out)
    session = manifest["execution"]["session_options"]
    assert session["graph_optimization_level"] == "ORT_ENABLE_ALL"
    # No --threads: onnxruntime's default ran, recorded as the number it resolves to here
    # (tests/test_threads.py holds physical_cores() to the threads onnxruntime starts).
    assert (session["intra_op_num_threads"], session["inter_op_num_threads"]) == (physical_cores(), 1)
    assert session["execution_mode"] == "ORT_SEQUENTIAL"
    assert manifest["comparison"] == {"default": {"mode": "exact"}, "outputs": {}}
    assert manifest["annotations"] == {}


def test_pack_sha256_adds_digests(tmp_path: Path, run_cli: RunCli,
                                  default_packs: dict[str, tuple[Path, CliResult, dict[str, Path]]]) -> None:
    plain, _, mlp_files = default_packs["dir"]
    with_sha = tmp_path / "sha"
    assert run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "--run", "--out", with_sha,
                   "--sha256").exit_code == 0
    for entry in _artifact_entries(manifest_of(plain)):
        assert set(entry["digest"]) == {"blake3"}
    members = read_members(with_sha)
    entries = _artifact_entries(manifest_of(with_sha))
    assert len(entries) == 3
    for entry in entries:
        content = blob_content(members, entry)
        assert entry["digest"]["sha256"] == hashlib.sha256(content).hexdigest()
        assert entry["digest"]["blake3"] == blake3.blake3(content).hexdigest()
    assert entries[0]["digest"]["sha256"] == hashlib.sha256(mlp_files["model"].read_bytes()).hexdigest()


def _artifact_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [manifest["model"], *manifest["model_files"], *manifest["inputs"], *manifest["outputs"]]


def test_pack_records_the_environment_fingerprint(
    run_cli: RunCli, default_packs: dict[str, tuple[Path, CliResult, dict[str, Path]]],
) -> None:
    out, _, _ = default_packs["b.ogb"]
    fingerprint = run_cli("fingerprint", "--format", "json")
    assert fingerprint.exit_code == 0, fingerprint.output
    environment = manifest_of(out)["environment"]
    # The machine's fingerprint, plus how onnxruntime optimises this model here.
    graph = environment.pop("optimized_graph")
    assert graph["level"] == "ORT_ENABLE_ALL"
    assert len(graph["sha256"]) == 64 and sum(graph["op_histogram"].values()) >= 1
    assert environment == json.loads(fingerprint.stdout)
    assert environment["runtime"]["version"] == ort.__version__
    assert "CPUExecutionProvider" in environment["runtime"]["available_providers"]
    assert environment["numpy"] == np.__version__


# --- determinism and overwriting --------------------------------------------------------------


@pytest.mark.parametrize("name", FORMS)
def test_pack_is_deterministic(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path],
                               keypair: tuple[Path, Path], name: str) -> None:
    key, _ = keypair
    first, second = tmp_path / "one" / name, tmp_path / "two" / name
    for out in (first, second):
        out.parent.mkdir()
        result = run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "--run", "--sign", key,
                         "--sha256", "--annotate", "k=v", "--out", out)
        assert result.exit_code == 0, result.output
    if name.endswith(".ogb"):
        assert first.read_bytes() == second.read_bytes()
    else:
        files = sorted(p.relative_to(first) for p in first.rglob("*"))
        assert files == sorted(p.relative_to(second) for p in second.rglob("*"))
        assert any(str(f).startswith("signatures/") for f in files)
        for relative in files:
            if (first / relative).is_file():
                assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative
    assert read_members(first) == read_members(second)


@pytest.mark.parametrize("name", FORMS)
def test_pack_refuses_to_overwrite_without_force(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path],
                                                 name: str) -> None:
    out = tmp_path / name
    base = ("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "--run", "--out", out)
    assert run_cli(*base, "--annotate", "version=1").exit_code == 0
    before = read_members(out)
    refused = run_cli(*base, "--annotate", "version=2")
    assert refused.exit_code == 2
    assert single_error_line(refused) == f"error: {out} already exists (use --force to replace it)"
    assert read_members(out) == before
    replaced = run_cli(*base, "--annotate", "version=2", "--force")
    assert replaced.exit_code == 0, replaced.output
    assert manifest_of(out)["annotations"] == {"version": "2"}
    assert leftovers(tmp_path) == []


# --- usage errors -----------------------------------------------------------------------------


def _usage_error_cases(tmp: Path, files: dict[str, Path]) -> dict[str, tuple[list[str | Path], str]]:
    model, x = files["model"], files["x"]
    np.save(tmp / "x64.npy", np.load(x).astype(np.float64))
    np.save(tmp / "short.npy", np.load(x)[:2])
    np.save(tmp / "y.npy", np.zeros((4, 8), dtype=np.float32))
    y = f"y={tmp / 'y.npy'}"
    return {
        "dtype": ([model, "-i", f"x={tmp / 'x64.npy'}", "-O", y],
                  "error: input 'x' expects float32[4,16], got float64[4,16]"),
        "shape": ([model, "-i", f"x={tmp / 'short.npy'}", "-O", y],
                  "error: input 'x' expects float32[4,16], got float32[2,16]"),
        "unknown input": ([model, "-i", f"x={x}", "-i", f"z={x}", "-O", y],
                          "error: the model has no input 'z' (inputs: x)"),
        "missing input": ([model, "-O", y], "error: input 'x' (float32[4,16]) is not given"),
        "missing model": ([tmp / "absent.onnx", "-i", f"x={x}", "--run"],
                          f"error: model {tmp / 'absent.onnx'} does not exist"),
        "-O with --run": ([model, "-i", f"x={x}", "-O", y, "--run"],
                          "error: --run computes the outputs; do not also give --claimed-output"),
        "no outputs": ([model, "-i", f"x={x}"],
                       "error: no outputs: give --claimed-output NAME=PATH, --test-data DIR, or --run"),
        "bad compare": ([model, "-i", f"x={x}", "--run", "--compare", "close-enough"],
                        "error: invalid comparison 'close-enough'; use exact, ulp:N, allclose:RTOL,ATOL, topk:K "
                        "or decimal:D[,D...]"),
        "bad compare output": ([model, "-i", f"x={x}", "--run", "--compare-output", "y=allclose:1e-3"],
                               "error: invalid comparison 'allclose:1e-3'; "
                               "use exact, ulp:N, allclose:RTOL,ATOL, topk:K or decimal:D[,D...]"),
        "bad opt level": ([model, "-i", f"x={x}", "--run", "--opt-level", "max"],
                          "error: unknown optimization level 'max'; use one of disable, basic, extended, layout, all"),
        "unknown output": ([model, "-i", f"x={x}", "-O", f"q={tmp / 'y.npy'}"],
                           "error: the model has no output 'q' (outputs: y)"),
        "missing input file": ([model, "-i", f"x={tmp / 'nope.npy'}", "--run"],
                               f"error: --input {tmp / 'nope.npy'}: {tmp / 'nope.npy'} does not exist"),
    }


USAGE_CASES = ["dtype", "shape", "unknown input", "missing input", "missing model", "-O with --run", "no outputs",
               "bad compare", "bad compare output", "bad opt level", "unknown output", "missing input file"]


@pytest.mark.parametrize("case", USAGE_CASES)
@pytest.mark.parametrize("name", FORMS)
def test_pack_usage_errors(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path], case: str,
                           name: str) -> None:
    args, expected = _usage_error_cases(tmp_path, mlp_files)[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli("pack", *args, "--out", out_dir / name)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert single_error_line(result) == expected
    assert list(out_dir.iterdir()) == []


def test_pack_claimed_output_of_the_wrong_dtype(tmp_path: Path, run_cli: RunCli,
                                                mlp_files: dict[str, Path]) -> None:
    np.save(tmp_path / "y.npy", np.zeros((4, 8), dtype=np.float64))
    result = run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "-O", f"y={tmp_path / 'y.npy'}",
                     "--out", tmp_path / "b")
    assert result.exit_code == 2
    assert single_error_line(result) == (
        "error: claimed output 'y': the model produces float32[4,8], got float64[4,8]"
    )
    assert not (tmp_path / "b").exists()


# --- external data and failure cleanup ----------------------------------------------------------


@pytest.mark.parametrize("name", FORMS)
def test_pack_model_with_external_data(tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path],
                                       name: str) -> None:
    key, pub = keypair
    source = tmp_path / "src"
    source.mkdir()
    model = models.save(models.mlp(seed=5), source / "mlp.onnx", external_data=True)
    assert (source / "mlp.data").is_file()
    np.save(source / "x.npy", _x())
    out = tmp_path / name
    result = run_cli("pack", model, "-i", f"x={source / 'x.npy'}", "--run", "--sign", key, "--out", out)
    assert result.exit_code == 0, result.output
    manifest = manifest_of(out)
    assert [f["name"] for f in manifest["model_files"]] == ["mlp.data"]
    data_entry = manifest["model_files"][0]
    assert data_entry["size"] == (source / "mlp.data").stat().st_size
    assert blob_content(read_members(out), data_entry) == (source / "mlp.data").read_bytes()
    # The bundle must carry everything: check it with the source files gone.
    for path in source.iterdir():
        path.unlink()
    checked = run_cli("check", out, "--trusted-key", pub)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("VERIFIED")


def test_pack_with_missing_external_data_is_refused(tmp_path: Path, run_cli: RunCli) -> None:
    model = models.save(models.mlp(), tmp_path / "mlp.onnx", external_data=True)
    (tmp_path / "mlp.data").unlink()
    np.save(tmp_path / "x.npy", _x())
    np.save(tmp_path / "y.npy", np.zeros((4, 8), dtype=np.float32))
    result = run_cli("pack", model, "-i", f"x={tmp_path / 'x.npy'}", "-O", f"y={tmp_path / 'y.npy'}",
                     "--out", tmp_path / "b.ogb")
    assert result.exit_code == 2
    assert single_error_line(result) == "error: external data file 'mlp.data' of mlp.onnx is missing"
    assert not (tmp_path / "b.ogb").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", FORMS)
def test_failed_pack_leaves_nothing_behind(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path],
                                           name: str) -> None:
    np.save(tmp_path / "x64.npy", np.load(mlp_files["x"]).astype(np.float64))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli("pack", mlp_files["model"], "-i", f"x={tmp_path / 'x64.npy'}", "--run",
                     "--out", out_dir / name)
    assert result.exit_code == 2
    assert "input 'x' expects float32[4,16], got float64[4,16]" in single_error_line(result)
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("name", FORMS)
def test_pack_failing_while_writing_cleans_its_staging(tmp_path: Path, mlp_files: dict[str, Path],
                                                       name: str) -> None:
    # An annotation that cannot be written as UTF-8 JSON fails only after every blob was staged.
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    x = np.load(mlp_files["x"])
    with pytest.raises(UsageError, match="cannot be written as canonical JSON"):
        pack(mlp_files["model"], out_dir / name, inputs={"x": x},
             claimed_outputs={"y": np.zeros((4, 8), dtype=np.float32)}, annotations={"note": "\udcff"})
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("name", FORMS)
def test_failed_forced_pack_keeps_the_old_bundle(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path],
                                                 name: str) -> None:
    out = tmp_path / "out" / name
    out.parent.mkdir()
    assert run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "--run", "--out", out).exit_code == 0
    before = read_members(out)
    x = np.load(mlp_files["x"])
    with pytest.raises(UsageError, match="cannot be written as canonical JSON"):
        pack(mlp_files["model"], out, inputs={"x": x}, claimed_outputs={"y": np.zeros((4, 8), dtype=np.float32)},
             annotations={"note": "\udcff"}, overwrite=True)
    assert read_members(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == [name]


def test_pack_api_compare_output_must_name_a_claimed_output(tmp_path: Path, mlp_files: dict[str, Path]) -> None:
    from ogverify.evidence.comparison import ComparisonPolicy, ComparisonSpec

    policy = ComparisonPolicy(outputs={"logits": ComparisonSpec.parse("ulp:2")})
    with pytest.raises(UsageError, match="--compare-output names 'logits', which is not a claimed output"):
        pack(mlp_files["model"], tmp_path / "b", inputs={"x": np.load(mlp_files["x"])}, comparison=policy)
    assert not (tmp_path / "b").exists()


def test_public_pack_is_the_one_pack_and_takes_what_a_caller_has(tmp_path: Path, mlp_files: dict[str, Path]) -> None:
    """``ogverify.pack`` is ``packing.pack.pack`` itself: strings as paths, a Fortran-ordered input,
    a big-endian claimed output, a mode string and a claimed CID are converted there."""
    import ogverify
    from ogverify.evidence.cid import file_cids

    assert ogverify.pack is pack
    x = np.load(mlp_files["x"])
    y = ort.InferenceSession(str(mlp_files["model"]), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    cid = file_cids(mlp_files["model"]).v1
    result = pack(str(mlp_files["model"]), str(tmp_path / "b.ogb"), inputs={"x": np.asfortranarray(x)},
                  claimed_outputs={"y": y.astype(y.dtype.newbyteorder(">"))}, comparison="allclose:1e-4,1e-5",
                  model_cid=cid, annotations={"k": "v"})
    assert result.path == tmp_path / "b.ogb"
    with open_bundle(result.path) as bundle:
        assert bundle.manifest.comparison.default.to_json() == {"mode": "allclose", "rtol": 1e-4, "atol": 1e-5}
        assert bundle.manifest.provenance is not None and bundle.manifest.provenance.model_cid == cid
        stored = {t.name: t for t in (*bundle.manifest.inputs, *bundle.manifest.outputs)}
        assert stored["x"].describe() == f"float32[{','.join(map(str, x.shape))}]"
        assert parse_npy(bundle.read_blob(stored["y"].artifact, "y", 1 << 20), "y").dtype.byteorder in "=<|"
        assert np.array_equal(parse_npy(bundle.read_blob(stored["x"].artifact, "x", 1 << 20), "x"), x)
