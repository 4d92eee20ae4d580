"""Every hostile bundle of the corpus is refused by ``check`` (and ``extract``): the exit code the
case names, a one-line reason that says what is wrong, no traceback, and nothing written anywhere.

The corpus itself lives in ``tests/hostile/corpus.py`` (also a script that writes it to a folder).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ogverify.errors import UsageError
from ogverify.evidence.bundle import DEFAULT_LIMITS, Limits
from ogverify.evidence.signing import load_trusted_keys
from ogverify.packing.pack import pack
from ogverify.report.findings import Verdict
from ogverify.verify.pipeline import CheckOptions, check_bundle
from tests.bundle_helpers import single_error_line
from tests.conftest import RunCli
from tests.hostile.corpus import CANARY, CASES, Base, Case, build_base, build_corpus, memory_hog_model

EXTRACT_CASES = [case for case in CASES if case.extract_refused]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return build_base(tmp_path_factory.mktemp("hostile-base"))


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``folder`` (links not followed) with its type, size and mtime."""
    entries = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            info = os.lstat(os.path.join(root, name))
            kind = stat.S_IFMT(info.st_mode)
            # a directory's own size and mtime change when something is created in it and removed again
            changes = (0, 0) if kind == stat.S_IFDIR else (info.st_size, info.st_mtime_ns)
            entries[os.path.relpath(os.path.join(root, name), folder)] = (kind, *changes)
    return entries


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private temporary directory for ogverify's own work files, so a test can see it left none."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_corpus_is_large_and_covers_every_group() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 40
    groups = Counter(case.group for case in CASES)
    assert set(groups) == {"tar", "directory", "blobs", "manifest", "signatures", "model", "tensors"}
    assert all(case.exit_code in (1, 3) for case in CASES)


def test_the_base_bundle_verifies(base: Base, tmp_path: Path, run_cli: RunCli) -> None:
    """The hostile cases fail because of what each changes, not because the base is broken."""
    for form in ("b.ogb", "dir"):
        bundle = tmp_path / form
        from tests.bundle_helpers import write_members

        write_members(bundle, dict(base.members))
        result = run_cli("check", bundle, "--trusted-key", base.pub, "--format", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["headline"] == "VERIFIED: outputs reproduced"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_check_refuses(case: Case, base: Base, tmp_path: Path, scratch: Path, run_cli: RunCli) -> None:
    bundle = case.make(base, tmp_path / "in")
    before = _snapshot(tmp_path)
    result = run_cli("check", bundle, "--trusted-key", base.pub, "--format", "json")
    report = json.loads(result.stdout)
    headline = report["headline"]
    assert (result.exit_code, report["exit_code"]) == (case.exit_code, case.exit_code), headline
    assert headline.startswith("FAILED: " if case.exit_code == 1 else "COULD NOT VERIFY: ")
    assert "\n" not in headline
    assert case.expected_reason(bundle) in headline
    assert result.stderr == ""
    assert _snapshot(tmp_path) == before, "check wrote or left something behind"
    assert not (base.root / CANARY).exists()
    assert not (Path("/tmp") / CANARY).exists()


@pytest.mark.parametrize("case", EXTRACT_CASES, ids=lambda case: case.name)
def test_extract_refuses(case: Case, base: Base, tmp_path: Path, scratch: Path, run_cli: RunCli) -> None:
    bundle = case.make(base, tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("extract", bundle, out / "extracted")
    assert result.exit_code == 3, result.output
    assert case.expected_reason(bundle) in single_error_line(result)
    assert list(out.iterdir()) == [], "extract left a partial result"
    assert list(scratch.iterdir()) == []
    assert not (tmp_path / CANARY).exists()


def test_corpus_script_writes_every_case_and_an_index(tmp_path: Path) -> None:
    index = build_corpus(tmp_path / "corpus")
    assert [entry["name"] for entry in index] == [case.name for case in CASES]
    document = json.loads((tmp_path / "corpus" / "index.json").read_text(encoding="utf-8"))
    assert len(document["cases"]) == len(CASES)
    for entry in document["cases"]:
        assert (tmp_path / "corpus" / entry["bundle"]).exists() or (tmp_path / "corpus" / entry["bundle"]).is_symlink()


# --- the replay memory cap, with limits small enough to test for real ----------------------------


@pytest.fixture(scope="module")
def hog_bundle(base: Base, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signed bundle whose model fills a 512 MiB tensor; outputs computed by a real (uncapped) run."""
    folder = tmp_path_factory.mktemp("hog")
    model = folder / "hog.onnx"
    model.write_bytes(memory_hog_model(1 << 27))
    return pack(model, folder / "hog.ogb", inputs={"x": base.x}, sign_keys=[base.key]).path


def test_replay_over_the_memory_limit_cannot_verify(hog_bundle: Path, base: Base) -> None:
    limits = Limits(max_replay_memory=320 << 20)
    report = check_bundle(hog_bundle, CheckOptions(trusted_keys=load_trusted_keys([base.pub]), limits=limits))
    assert report.verdict is Verdict.ERROR
    assert int(report.exit_code) == 3
    assert report.headline == (
        f"COULD NOT VERIFY: re-execution exceeded the memory limit of {320 << 20} bytes (max_replay_memory); "
        "the model needs more memory than the policy allows"
    )


def test_policy_file_sets_the_memory_limit(hog_bundle: Path, base: Base, tmp_path: Path, run_cli: RunCli) -> None:
    policy = tmp_path / "ogverify.toml"
    policy.write_text(f"[limits]\nmax_replay_memory = {320 << 20}\nmax_members = 50\n", encoding="utf-8")
    result = run_cli("check", hog_bundle, "--trusted-key", base.pub, "--policy", policy, "--format", "json")
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["headline"].startswith(
        f"COULD NOT VERIFY: re-execution exceeded the memory limit of {320 << 20} bytes (max_replay_memory)"
    )


def test_the_same_model_verifies_under_the_default_limit(hog_bundle: Path, base: Base) -> None:
    report = check_bundle(hog_bundle, CheckOptions(trusted_keys=load_trusted_keys([base.pub])))
    assert report.verdict is Verdict.VERIFIED, report.headline


# --- limits themselves ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["max_members", "max_blob_bytes", "max_replay_memory", "max_signatures"])
@pytest.mark.parametrize("value", [0, -1, True, 1.5, "10"])
def test_limits_must_be_positive_integers(field: str, value: object) -> None:
    with pytest.raises(UsageError, match=f"limit {field} must be a positive integer"):
        Limits(**{field: value})  # type: ignore[arg-type]


def test_replay_memory_limit_has_a_floor() -> None:
    with pytest.raises(UsageError, match="max_replay_memory must be at least"):
        Limits(max_replay_memory=1 << 20)


def test_default_limits_are_consistent() -> None:
    limits = DEFAULT_LIMITS
    # an envelope carries the manifest base64-encoded inside its statement
    assert limits.max_signature_bytes > limits.max_manifest_bytes * 4 // 3 + (64 << 10)
    assert limits.max_tensor_bytes <= limits.max_blob_bytes <= limits.max_total_bytes
    assert limits.max_tensor_bytes < limits.max_replay_memory


def test_a_smaller_member_limit_is_applied(base: Base, tmp_path: Path) -> None:
    from tests.bundle_helpers import write_members

    bundle = tmp_path / "b.ogb"
    write_members(bundle, dict(base.members))
    report = check_bundle(bundle, CheckOptions(limits=Limits(max_members=3), rerun=False))
    assert report.headline == "COULD NOT VERIFY: bundle has more than 3 members"
    assert np.isfinite(len(base.members))


@pytest.mark.parametrize("name", ["model-file-over-folder", "model-folder-over-file"])
def test_extract_and_diff_write_model_files_only_through_the_safe_materialiser(
    name: str, base: Base, tmp_path: Path, run_cli: RunCli
) -> None:
    """check, extract and diff share one way to write model files: the names that make check fail
    make extract and diff refuse (diff wrote model files without any check before)."""
    case = next(c for c in CASES if c.name == name)
    bundle = case.make(base, tmp_path / "cases")
    for args in (("extract", bundle, tmp_path / "out"), ("diff", bundle, bundle)):
        result = run_cli(*args)
        assert result.exit_code == 3, result.output
        assert "model file 'w' appears twice" in single_error_line(result)
    assert not (tmp_path / "out").exists()
