"""Hostile or mistaken arguments, policies and paths (not bundles: those are the corpus).

Each must end with the right exit code and one ``error: ...`` line that names what is wrong,
never a traceback and never a message that sends the user looking for the wrong thing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ogverify.errors import UsageError
from ogverify.evidence.bundle import Limits
from ogverify.packing.pack import pack
from ogverify.verify.audit import AuditOptions
from ogverify.verify.pipeline import CheckOptions
from tests.bundle_helpers import single_error_line
from tests.conftest import RunCli
from tests.fixtures import models


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A signed MLP bundle (outputs given, so nothing runs to make it), its key pair and model."""
    from ogverify.evidence.signing import generate_key_pair

    folder = tmp_path_factory.mktemp("signed")
    key = folder / "signer.key"
    generate_key_pair(key)
    model = models.save(models.mlp(), folder / "mlp.onnx")
    x = np.ones((4, 16), np.float32)
    np.save(folder / "x.npy", x)
    bundle = pack(model, folder / "b.ogb", inputs={"x": x}, claimed_outputs={"y": np.zeros((4, 8), np.float32)},
                  sign_keys=[key]).path
    return {"bundle": bundle, "key": key, "pub": folder / "signer.key.pub", "model": model, "folder": folder}


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- numbers out of range ------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_huge_replay_memory_limit_is_a_usage_error(
    signed: dict[str, Path], tmp_path: Path, run_cli: RunCli, jobs: str
) -> None:
    policy = _policy(tmp_path, "[limits]\nmax_replay_memory = 99999999999999999999999\n")
    result = run_cli("check", signed["bundle"], "-k", signed["pub"], "--policy", policy, "--jobs", jobs)
    assert result.exit_code == 2, result.output
    line = single_error_line(result)
    assert f"policy {policy}" in line and "limits/max_replay_memory" in line and "maximum" in line, line
    assert result.stdout == ""


def test_limits_have_an_upper_bound() -> None:
    with pytest.raises(UsageError, match="limit max_replay_memory must be at most"):
        Limits(max_replay_memory=10**23)
    Limits(max_replay_memory=1 << 62)


def test_setting_a_memory_limit_never_raises() -> None:
    """A limit larger than the system's limit type holds is not applied, and says so by None."""
    code = ("from ogverify.runtime.worker import limit_memory\n"
            "print(limit_memory(10**23), limit_memory(None), limit_memory(1 << 62) in (1 << 62, None))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["None", "None", "True"]


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-inf", "0", "-1", "1e7"])
def test_a_timeout_out_of_range_is_a_usage_error(signed: dict[str, Path], run_cli: RunCli, value: str) -> None:
    result = run_cli("check", signed["bundle"], "-k", signed["pub"], "--timeout", value)
    assert result.exit_code == 2, result.output
    assert single_error_line(result).startswith("error: --timeout must be a number of seconds above 0 and at most")


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400", "1e7"])
def test_a_policy_timeout_out_of_range_is_a_usage_error(
    signed: dict[str, Path], tmp_path: Path, run_cli: RunCli, value: str
) -> None:
    policy = _policy(tmp_path, f"[check]\ntimeout = {value}\n")
    result = run_cli("check", signed["bundle"], "-k", signed["pub"], "--policy", policy)
    assert result.exit_code == 2, result.output
    assert f"policy {policy} does not match its schema at check/timeout: " in single_error_line(result)


def test_the_library_refuses_an_unusable_timeout() -> None:
    for value in (float("inf"), float("nan"), 0.0):
        with pytest.raises(UsageError, match="timeout must be a number of seconds"):
            CheckOptions(timeout=value)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--timeout", "inf", "--timeout must be a number of seconds above 0 and at most"),
    ("--timeout", "nan", "--timeout must be a number of seconds above 0 and at most"),
    ("--timeout", "1e400", "--timeout must be a number of seconds above 0 and at most"),
    ("--confidence", "nan", "--confidence must be between 0 and 1"),
    ("--max-failure-rate", "nan", "--max-failure-rate must be at least 0 and below 1"),
    ("--explain-records", "-1", "--jobs must be positive, --explain-budget and --explain-records 0 or more"),
])
def test_an_audit_number_out_of_range_is_a_usage_error(
    signed: dict[str, Path], tmp_path: Path, run_cli: RunCli, option: str, value: str, message: str
) -> None:
    """Refused before the log is read (there is none here): exit 2, not an internal error or a NaN bound."""
    result = run_cli("audit", tmp_path / "no-log", "-k", signed["pub"], option, value)
    assert result.exit_code == 2, result.output
    assert single_error_line(result).startswith(f"error: {message}")


@pytest.mark.parametrize("options", [
    {"timeout": float("inf")}, {"timeout": float("nan")}, {"confidence": 1.0}, {"confidence": float("nan")},
    {"max_failure_rate": -0.5}, {"jobs": 0}, {"explain_budget": -1},
])
def test_the_library_refuses_unusable_audit_options(options: dict[str, float]) -> None:
    with pytest.raises(UsageError, match="must be"):
        AuditOptions(**options)  # type: ignore[arg-type]


# --- policy mistakes, in words ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ('[comparison]\nallowed = ["exakt"]\n',
     "comparison/allowed/0: 'exakt' is not a comparison mode: exact, ulp, allclose or topk"),
    ('[environment]\nallow = ["cpu flags"]\n',
     "environment/allow/0: 'cpu flags' is not a fingerprint field name or glob"),
    ("[limit]\nmax_members = 3\n", "(top level): unknown key 'limit' (did you mean 'limits'?); known keys: check,"),
    ("[limits]\nmax_member = 3\n", "limits: unknown key 'max_member' (did you mean 'max_members'?); known keys:"),
    ('[limits]\nmax_members = "3"\n', "limits/max_members: '3' is not an integer"),
])
def test_a_policy_typo_is_explained_in_words(
    signed: dict[str, Path], tmp_path: Path, run_cli: RunCli, text: str, message: str
) -> None:
    policy = _policy(tmp_path, text)
    result = run_cli("check", signed["bundle"], "-k", signed["pub"], "--policy", policy)
    assert result.exit_code == 2, result.output
    line = single_error_line(result)
    assert message in line, line
    assert "^" not in line and "$'" not in line, "a regular expression reached the user"


# --- paths that are not what they seem ---------------------------------------------------------------


def _special(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.ogb"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        os.symlink(tmp_path / "loop-b", path)
        os.symlink(path, tmp_path / "loop-b")
    elif kind == "dangling":
        os.symlink(tmp_path / "nowhere", path)
    return path


@pytest.mark.parametrize(("kind", "said"), [
    ("fifo", "is not a bundle: it is a FIFO (named pipe), not a file or directory"),
    ("loop", "is not a bundle: it is a symbolic link loop"),
    ("dangling", "is not a bundle: it is a symbolic link to '{tmp}/nowhere', which does not exist"),
])
def test_a_bundle_path_that_is_no_file_says_what_it_is(tmp_path: Path, run_cli: RunCli, kind: str, said: str) -> None:
    path = _special(tmp_path, kind)
    result = run_cli("check", path, "--allow-unsigned")
    assert result.exit_code == 3, result.output
    assert result.stdout.splitlines()[0] == f"COULD NOT VERIFY: {path} {said.format(tmp=tmp_path)}"


def test_a_directory_given_as_the_model_is_named_as_one(signed: dict[str, Path], tmp_path: Path,
                                                        run_cli: RunCli) -> None:
    np.save(tmp_path / "x.npy", np.ones((4, 16), np.float32))
    result = run_cli("pack", signed["folder"], "-i", f"x={tmp_path / 'x.npy'}", "--run", "--out", tmp_path / "o.ogb")
    assert result.exit_code == 2, result.output
    assert single_error_line(result) == f"error: model {signed['folder']} is a directory, not a file"
    result = run_cli("check", signed["bundle"], "-k", signed["pub"], "--candidate-model", _special(tmp_path, "fifo"))
    assert result.exit_code == 2, result.output
    assert single_error_line(result).endswith("fifo.ogb is a FIFO (named pipe), not a file")


def test_extract_works_through_a_link_to_a_directory(signed: dict[str, Path], tmp_path: Path,
                                                     run_cli: RunCli) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result = run_cli("extract", signed["bundle"], tmp_path / "link")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "real" / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


@pytest.mark.parametrize(("kind", "said"), [
    ("loop", "is a symbolic link loop"),
    ("dangling", "is a symbolic link to '{tmp}/nowhere', which does not exist"),
])
def test_extract_refuses_a_link_to_nothing(signed: dict[str, Path], tmp_path: Path, run_cli: RunCli,
                                           kind: str, said: str) -> None:
    link = _special(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("extract", signed["bundle"], link)
    assert result.exit_code == 2, result.output
    assert single_error_line(result) == f"error: {link} {said.format(tmp=tmp_path)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --- where the result goes ----------------------------------------------------------------------------


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder nothing can be created in, for root too (root ignores permission bits; /proc has no room)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o555)
        return folder
    if not Path("/proc/self").is_dir():
        pytest.skip("no folder root cannot write to on this system")
    return Path("/proc")


def _unrunnable_model(folder: Path) -> Path:
    """A model onnxruntime refuses to load (a custom operator): packing it with --run fails if it runs."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Mystery", ["x"], ["y"], domain="example.custom")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    path = folder / "mystery.onnx"
    path.write_bytes(model.SerializeToString())
    np.save(folder / "x.npy", np.ones(2, np.float32))
    return path


def test_pack_into_an_unwritable_folder_fails_before_the_model_runs(tmp_path: Path, run_cli: RunCli) -> None:
    model = _unrunnable_model(tmp_path)
    out = _unwritable_folder(tmp_path) / "run.ogb"
    result = run_cli("pack", model, "-i", f"x={tmp_path / 'x.npy'}", "--run", "--out", out)
    assert result.exit_code == 2, result.output
    line = single_error_line(result)
    assert line.startswith(f"error: cannot write {out}: "), line
    assert ".partial" not in line
    assert "running the model" not in result.stderr


def test_extract_into_an_unwritable_folder_names_the_target(signed: dict[str, Path], tmp_path: Path,
                                                            run_cli: RunCli) -> None:
    target = _unwritable_folder(tmp_path) / "out"
    result = run_cli("extract", signed["bundle"], target)
    assert result.exit_code == 2, result.output
    line = single_error_line(result)
    assert line.startswith(f"error: cannot write {target}: ") and ".partial" not in line, line


def test_the_library_says_overwrite_where_the_command_says_force(signed: dict[str, Path], run_cli: RunCli) -> None:
    from ogverify.errors import TargetExistsError

    existing = signed["bundle"]
    with pytest.raises(TargetExistsError) as caught:
        pack(signed["model"], existing, inputs={"x": np.ones((4, 16), np.float32)},
             claimed_outputs={"y": np.zeros((4, 8), np.float32)})
    assert caught.value.message == f"{existing} already exists (pass overwrite=True to replace it)"
    assert "--force" not in caught.value.message
    result = run_cli("pack", signed["model"], "-i", f"x={signed['folder'] / 'x.npy'}", "--run", "--out", existing)
    assert single_error_line(result) == f"error: {existing} already exists (use --force to replace it)"


# --- files whose size stat does not tell ---------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_attestation_that_never_ends_is_refused_before_the_check(
    signed: dict[str, Path], tmp_path: Path, run_cli: RunCli, jobs: str
) -> None:
    """/dev/zero has size 0 by stat and no end: refused as what it is, before any bundle is checked."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    result = run_cli("check", signed["bundle"], signed["bundle"], "-k", signed["pub"], "--jobs", jobs,
                     "--attestation", "/dev/zero")
    assert result.exit_code == 2, result.output
    assert single_error_line(result) == "error: --attestation /dev/zero is a character device, not a file"
    assert result.stdout == ""


def test_an_attestation_is_read_with_a_bound(signed: dict[str, Path], tmp_path: Path) -> None:
    """A file that grows past the limit after stat: the read stops at the limit, whatever stat said."""
    from ogverify.report.findings import Report
    from ogverify.verify.attest import MAX_ATTESTATION_BYTES, verify_attestation

    big = tmp_path / "big.dsse.json"
    with big.open("wb") as out:
        out.truncate(MAX_ATTESTATION_BYTES * 4)  # sparse: costs no disk
    finding = verify_attestation(big, Report(str(signed["bundle"]), ()), {})
    assert finding.message == f"attestation {big} is larger than {MAX_ATTESTATION_BYTES} bytes"


@pytest.mark.parametrize("option", ["--output", "--report"])
def test_check_refuses_a_report_file_it_could_not_write_before_it_runs(
    signed: dict[str, Path], tmp_path: Path, run_cli: RunCli, option: str
) -> None:
    written = tmp_path / "report.json"
    for place in (_unwritable_folder(tmp_path) / "r.sarif", tmp_path / "missing" / "r.sarif"):
        value = f"sarif={place}" if option == "--report" else str(place)
        other = ("--report", f"json={written}") if option == "--output" else ("--output", str(written))
        result = run_cli("check", signed["bundle"], "--trusted-key", signed["pub"], option, value, *other)
        assert result.exit_code == 2, result.output
        assert single_error_line(result).startswith(f"error: {option}: "), result.stderr
        assert not written.exists(), "the check ran and wrote its other report"


def test_audit_refuses_an_output_in_a_missing_folder(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("audit", tmp_path / "no-log", "--trusted-key", tmp_path / "k.pub",
                     "--output", tmp_path / "missing" / "audit.json")
    assert result.exit_code == 2, result.output
    assert single_error_line(result) == f"error: --output: directory {tmp_path / 'missing'} does not exist"
