"""The writing side under interruption and misuse: ``pack`` killed mid-write leaves nothing at its
target (nor a ``*.partial`` beside it), a forced pack that is interrupted keeps the old bundle, and
``extract`` never replaces or half-writes a directory it was not asked to.

The interruption tests signal a real ``python -m ogverify pack`` process while it copies a 128 MiB
external-data file, so the signal lands mid-write.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.bundle_helpers import single_error_line, write_members
from tests.conftest import RunCli
from tests.hostile.corpus import CASES, Base, build_base

BIG = 128 << 20


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``y = x + max(w)`` where ``w`` is 128 MiB of incompressible external data."""
    folder = tmp_path_factory.mktemp("big")
    (folder / "w.bin").write_bytes(np.random.default_rng(0).bytes(BIG))
    weights = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[BIG // 4], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "w.bin"), ("offset", "0"), ("length", str(BIG))):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("ReduceMax", ["w"], ["peak"], keepdims=0), helper.make_node("Add", ["x", "peak"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(folder / "big.onnx"))
    np.save(folder / "x.npy", np.zeros(4, np.float32))
    np.save(folder / "y.npy", np.ones(4, np.float32))
    return {"model": folder / "big.onnx", "x": folder / "x.npy", "y": folder / "y.npy"}


_MAIN_WITH_CTRL_C = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                     "runpy.run_module('ogverify', run_name='__main__', alter_sys=True)")


def _pack_and_signal(
    files: dict[str, Path], target: Path, signum: int, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Start a pack, wait until it has begun writing next to ``target``, then send ``signum``."""
    before = set(target.parent.iterdir())
    # `python -m ogverify`, with SIGINT as Python sets it at start when it is not ignored: a shell
    # starts background jobs (`pytest &`) with SIGINT ignored, and the pack would inherit that.
    process = subprocess.Popen(
        [sys.executable, "-c", _MAIN_WITH_CTRL_C, "pack", str(files["model"]), "-i", f"x={files['x']}",
         "-O", f"y={files['y']}", "--out", str(target), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while set(target.parent.iterdir()) == before:
        assert process.poll() is None, f"pack ended before writing anything: {process.communicate()}"
        assert time.monotonic() < deadline, "pack did not start writing within 60 s"
        time.sleep(0.002)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize(("signum", "code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                      (signal.SIGINT, 130, "interrupted")])
@pytest.mark.parametrize("name", ["b.ogb", "bundle-dir"])
def test_interrupted_pack_leaves_nothing(big_model: dict[str, Path], tmp_path: Path, signum: int, code: int,
                                         word: str, name: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = _pack_and_signal(big_model, out / name, signum)
    assert result.returncode == code, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: {word}"
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [], "a partial bundle or staging file was left behind"


def test_interrupted_forced_pack_keeps_the_old_bundle(big_model: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    old = out / "b.ogb"
    old.write_bytes(b"the previous bundle")
    result = _pack_and_signal(big_model, old, signal.SIGTERM, "--force")
    assert result.returncode == 143, result.stderr
    assert old.read_bytes() == b"the previous bundle"
    assert sorted(p.name for p in out.iterdir()) == ["b.ogb"]


# --- extract -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return build_base(tmp_path_factory.mktemp("pack-side-base"))


def test_extract_refuses_to_overwrite_without_force(base: Base, tmp_path: Path, run_cli: RunCli) -> None:
    bundle = tmp_path / "b.ogb"
    write_members(bundle, dict(base.members))
    target = tmp_path / "target"
    target.mkdir()
    (target / "notes.txt").write_text("mine", encoding="utf-8")
    result = run_cli("extract", bundle, target)
    assert result.exit_code == 2
    assert single_error_line(result) == f"error: {target} is not empty (use --force to replace it)"
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.ogb", "target"]


def test_extract_refuses_a_file_in_the_way(base: Base, tmp_path: Path, run_cli: RunCli) -> None:
    bundle = tmp_path / "b.ogb"
    write_members(bundle, dict(base.members))
    target = tmp_path / "target"
    target.write_text("mine", encoding="utf-8")
    for args in ((), ("--force",)):
        result = run_cli("extract", bundle, target, *args)
        assert result.exit_code == 2
        assert single_error_line(result) == f"error: {target} exists and is not a directory"
    assert target.read_text(encoding="utf-8") == "mine"


def test_forced_extract_of_a_hostile_bundle_keeps_the_old_directory(base: Base, tmp_path: Path,
                                                                    run_cli: RunCli) -> None:
    bomb = next(case for case in CASES if case.name == "blob-zstd-bomb")
    bundle = bomb.make(base, tmp_path / "in")
    target = tmp_path / "target"
    target.mkdir()
    (target / "notes.txt").write_text("mine", encoding="utf-8")
    result = run_cli("extract", bundle, target, "--force")
    assert result.exit_code == 3
    assert "claimed output 'y': decompresses to more than its declared 256 bytes" in single_error_line(result)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "target"]
