"""Property-based tests of the three parsers of untrusted bytes: the manifest parser, the tensor
loader and the tar reader. Whatever the input, each accepts it or refuses it with a BundleError;
nothing else escapes. The same targets and strategies run for minutes in ``tools/fuzz.py``; every
crashing input it finds is kept under ``tests/hostile/regressions/`` and replayed here.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.strategies import inputs_for
from tools.fuzz import REGRESSIONS, TARGET_NAMES, TARGETS, seed_bundle_members, seeds

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = {target: seeds(target) for target in TARGET_NAMES}


def test_the_seeds_are_accepted() -> None:
    """The honest inputs pass the targets, so the properties below are not vacuous."""
    from ogverify.evidence.manifest import Manifest
    from ogverify.model.tensors import parse_npy

    for seed in SEEDS["manifest"]:
        TARGETS["manifest"](seed)
        Manifest.from_bytes(seed)
    for seed in SEEDS["npy"]:
        assert parse_npy(seed, "seed").size >= 0
    for seed in SEEDS["tar"]:
        TARGETS["tar"](seed)


@FAST
@given(inputs_for("manifest", SEEDS["manifest"]))
def test_manifest_parser_accepts_or_refuses(data: bytes) -> None:
    TARGETS["manifest"](data)


@FAST
@given(inputs_for("npy", SEEDS["npy"]))
def test_tensor_loader_accepts_or_refuses(data: bytes) -> None:
    TARGETS["npy"](data)


@FAST
@given(inputs_for("tar", SEEDS["tar"], seed_bundle_members()))
def test_tar_reader_accepts_or_refuses(data: bytes) -> None:
    TARGETS["tar"](data)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_cutting_or_extending_an_honest_bundle_is_refused(data: st.DataObject) -> None:
    """Cut anywhere before the end-of-archive marker is complete, or with anything but zeros appended."""
    from ogverify.errors import BundleError
    from ogverify.evidence.bundle import open_bundle

    honest = SEEDS["tar"][0]
    last_member_end = -(-len(honest.rstrip(b"\0")) // 512) * 512
    cut = data.draw(st.integers(min_value=0, max_value=last_member_end + 1023))
    appended = data.draw(st.binary(min_size=1, max_size=4096).filter(any))
    folder = Path(tempfile.mkdtemp(prefix="ogverify-property-"))
    try:
        for forged in (honest[:cut], honest + appended):
            (folder / "t.ogb").write_bytes(forged)
            with pytest.raises(BundleError):
                open_bundle(folder / "t.ogb").close()
    finally:
        shutil.rmtree(folder)


def regression_inputs() -> list[Path]:
    """The inputs the fuzzer kept: libFuzzer's ``crash-*``/``oom-*``/``timeout-*``/``slow-unit-*`` files."""
    prefixes = ("crash-", "oom-", "timeout-", "slow-unit-", "leak-")
    return sorted(path for target in TARGET_NAMES for path in (REGRESSIONS / target).glob("*")
                  if path.is_file() and path.name.startswith(prefixes))


def test_fuzzer_regressions_stay_fixed() -> None:
    """Every input tools/fuzz.py ever crashed on (committed under tests/hostile/regressions/<target>/)."""
    for path in regression_inputs():
        TARGETS[path.parent.name](path.read_bytes())


def test_the_fuzzer_leaves_no_scratch_folder(tmp_path: Path) -> None:
    """fuzz_tar writes each input to a scratch file; the folder goes when the process ends."""
    import os
    import subprocess
    import sys

    code = "from tools.fuzz import fuzz_tar, scratch_folder; fuzz_tar(b'abc'); print(scratch_folder())"
    env = {k: v for k, v in os.environ.items() if k != "OGVERIFY_FUZZ_SCRATCH"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**env, "TMPDIR": str(tmp_path)}, cwd=Path(__file__).resolve().parents[2])
    assert Path(done.stdout.strip()).parent == tmp_path
    assert list(tmp_path.iterdir()) == []
    # A child of a fuzzing run works in its parent's folder, which the parent removes.
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                   env={**env, "TMPDIR": str(tmp_path), "OGVERIFY_FUZZ_SCRATCH": str(shared)},
                   cwd=Path(__file__).resolve().parents[2])
    assert list(tmp_path.iterdir()) == [shared]
