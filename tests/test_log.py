"""Evidence logs end to end on a real model: init, append (one and many, claims and --run),
checkpoint, prove, consistency, export, check of the export, and audit; what a lying producer,
changed blobs, rewritten history and truncation look like to the auditor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ogverify.evidence.log import layout, merkle, note
from ogverify.evidence.log.store import LogStore
from ogverify.packing.log import EvidenceLog
from ogverify.verify import sampling
from tests import rfc9162_reference as rfc
from tests.conftest import RunCli, invoke_cli
from tests.log_helpers import add_one_model, records


@pytest.fixture(scope="module")
def made_once(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A log of 300 records made through the CLI (npz with claims, npz --run, one -i/-O), once per module."""
    from ogverify.evidence.signing import generate_key_pair

    run_cli = invoke_cli

    tmp_path = tmp_path_factory.mktemp("made")
    model = add_one_model(tmp_path / "add.onnx")
    log = tmp_path / "log"
    assert run_cli("log", "init", log, model, "--threads", "1").exit_code == 0
    xs = records(200)
    np.savez(tmp_path / "xs.npz", x=xs)
    np.savez(tmp_path / "ys.npz", y=xs + 1)
    result = run_cli("log", "append", log, "--inputs-npz", tmp_path / "xs.npz", "--claimed-npz", tmp_path / "ys.npz")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(i) for i in range(200)]
    np.savez(tmp_path / "more.npz", x=records(99, start=200))
    result = run_cli("log", "append", log, "--inputs-npz", tmp_path / "more.npz", "--run")
    assert result.exit_code == 0 and result.stdout.split()[-1] == "298"
    np.save(tmp_path / "x.npy", records(1, start=1000)[0])
    np.save(tmp_path / "y.npy", records(1, start=1001)[0])
    result = run_cli("log", "append", log, "-i", f"x={tmp_path / 'x.npy'}", "-O", f"y={tmp_path / 'y.npy'}")
    assert result.exit_code == 0 and result.stdout.strip() == "299"
    key, pub, _ = generate_key_pair(tmp_path / "signer.key")
    return {"log": log, "key": key, "pub": pub, "model": model}


@pytest.fixture
def made(tmp_path: Path, made_once: dict[str, Path]) -> dict[str, Path]:
    """A copy of the module's log, for a test to change."""
    shutil.copytree(made_once["log"], tmp_path / "log")
    return {**made_once, "log": tmp_path / "log"}


def _checkpoint(run_cli: RunCli, made: dict[str, Path], out: Path | None = None) -> bytes:
    result = run_cli("log", "checkpoint", made["log"], "--sign", made["key"])
    assert result.exit_code == 0, result.output
    if out is not None:
        out.write_text(result.stdout)
    return result.stdout.encode()


def _audit(run_cli: RunCli, made: dict[str, Path], *args: str | Path) -> tuple[int, dict[str, Any]]:
    result = run_cli("audit", made["log"], "--trusted-key", made["pub"], "--format", "json", *args)
    report: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, report


def test_the_whole_cycle(tmp_path: Path, run_cli: RunCli, made: dict[str, Path]) -> None:
    signed = _checkpoint(run_cli, made)
    lines = signed.decode().split("\n")
    checkpoint = note.Checkpoint.parse(note.parse_note(signed).text)
    assert lines[1] == "300" and lines[4].startswith("\u2014 ") and checkpoint.size == 300
    reader = layout.LogReader(_store(made["log"]))
    leaves = [reader.leaf(i) for i in range(300)]
    assert rfc.mth(leaves) == checkpoint.root  # the tree is RFC 9162's over the stored leaves

    proof = json.loads(run_cli("log", "prove", made["log"], "--index", "137").stdout)
    assert set(proof) == {"index", "tree_size", "leaf_hash", "root_hash", "inclusion_path"}
    assert rfc.verify_inclusion(137, 300, bytes.fromhex(proof["leaf_hash"]),
                                [bytes.fromhex(h) for h in proof["inclusion_path"]], checkpoint.root)
    proof = json.loads(run_cli("log", "prove", made["log"], "--index", "3", "--size", "5").stdout)
    assert rfc.verify_inclusion(3, 5, merkle.leaf_hash(leaves[3]), [bytes.fromhex(h) for h in proof["inclusion_path"]],
                                rfc.mth(leaves[:5]))
    consistency = json.loads(run_cli("log", "consistency", made["log"], "--from", "77").stdout)
    assert set(consistency) == {"first_size", "second_size", "first_root", "second_root", "consistency_path"}
    assert rfc.verify_consistency(77, 300, rfc.mth(leaves[:77]), checkpoint.root,
                                  [bytes.fromhex(h) for h in consistency["consistency_path"]])
    assert run_cli("log", "prove", made["log"], "--index", "300").exit_code == 2

    bundle = tmp_path / "r250.ogb"
    assert run_cli("log", "export", made["log"], "--index", "250", "--out", bundle).exit_code == 0
    result = run_cli("check", bundle, "--trusted-key", made["pub"], "--format", "json")
    assert result.exit_code == 0, result.output
    signatures = next(f for f in json.loads(result.stdout)["findings"] if f["stage"] == "signatures")
    assert "signed through the log" in signatures["children"][0]["message"]
    other = tmp_path / "other.key"
    assert run_cli("keygen", "--out", other).exit_code == 0
    assert run_cli("check", bundle, "--trusted-key", f"{other}.pub").exit_code == 1

    code, report = _audit(run_cli, made, "--sample", "40", "--seed", "0a")
    assert code == 0, report
    assert report["checkpoint"] == {"origin": checkpoint.origin, "size": 300, "root_hash": checkpoint.root.hex()}
    assert report["sampled"] == 40 and report["failed"] == 0 and report["failed_indices"] == []
    assert report["sampled_indices"] == sampling.draw_sample(checkpoint.root, b"\x0a", 300, 40)
    assert report["seed"] == "0a" and report["confidence"] == 0.95
    bound = sampling.failing_upper_bound(300, 40, 0, 0.95)
    assert report["failure_rate_upper_bound"] == bound / 300
    again = _audit(run_cli, made, "--sample", "40", "--seed", "0a")[1]
    assert again["sampled_indices"] == report["sampled_indices"]
    assert _audit(run_cli, made, "--sample", "40", "--seed", "0b")[1]["sampled_indices"] != report["sampled_indices"]
    # without --sample: the fewest records that can show the rate
    code, report = _audit(run_cli, made, "--max-failure-rate", "0.05", "--seed", "01")
    assert code == 0 and report["sampled"] == sampling.smallest_sample(300, 0.05, 0.95)
    assert report["failure_rate_upper_bound"] <= 0.05
    result = run_cli("audit", made["log"], "--trusted-key", made["pub"], "--sample", "all", "--jobs", "2",
                     "--format", "junit")
    assert result.exit_code == 0 and "<testsuite" in result.stdout


def _store(log: Path) -> LogStore:
    from ogverify.evidence.log.store import open_store

    return open_store(log)


def test_a_lying_producer_is_found_and_named(tmp_path: Path, run_cli: RunCli, made: dict[str, Path]) -> None:
    x = records(1, start=5000)[0]
    with EvidenceLog.open(made["log"]) as log:
        log.append({"x": x}, {"y": x + 2})  # one wrong claim: record 300
        log.append_batch({"x": records(100, start=6000)})
    _checkpoint(run_cli, made)
    code, report = _audit(run_cli, made, "--sample", "all", "--seed", "01", "--explain-budget", "2")
    assert code == 1
    assert report["failed_indices"] == [300] and report["sampled"] == 401
    record = report["records"][0]
    assert record["index"] == 300 and "output 'y'" in record["message"]
    assert record["explanation"]  # check's drift explanation of the failure
    assert report["failure_rate_upper_bound"] == 1 / 401
    result = run_cli("audit", made["log"], "--trusted-key", made["pub"], "--sample", "all", "--seed", "01",
                     "--no-explain")
    assert result.exit_code == 1 and "record 300" in result.stdout


def test_a_bound_over_the_limit_fails(run_cli: RunCli, made: dict[str, Path]) -> None:
    _checkpoint(run_cli, made)
    code, report = _audit(run_cli, made, "--sample", "10", "--max-failure-rate", "0.01", "--seed", "01")
    assert code == 1 and report["failed"] == 0
    assert report["failure_rate_upper_bound"] > 0.01


def test_a_blob_changed_after_checkpointing_fails(run_cli: RunCli, made: dict[str, Path]) -> None:
    _checkpoint(run_cli, made)
    pack = made["log"] / "data" / "000"
    data = bytearray(pack.read_bytes())
    data[-1] ^= 0x40  # the last byte of a tensor of the first pack
    pack.write_bytes(bytes(data))
    code, report = _audit(run_cli, made, "--sample", "all", "--seed", "01", "--no-explain")
    assert code == 1 and report["failed"] >= 1
    assert any("does not match its digest" in r["message"] for r in report["records"])


def test_rewritten_history_and_truncation_fail_against_an_earlier_checkpoint(
    tmp_path: Path, run_cli: RunCli, made: dict[str, Path]
) -> None:
    earlier = tmp_path / "earlier.checkpoint"
    _checkpoint(run_cli, made, earlier)
    assert _audit(run_cli, made, "--sample", "3", "--previous-checkpoint", earlier)[0] == 0
    # an honest extension passes
    with EvidenceLog.open(made["log"]) as log:
        log.append_batch({"x": records(10, start=7000)})
    _checkpoint(run_cli, made)
    code, report = _audit(run_cli, made, "--sample", "3", "--previous-checkpoint", earlier)
    assert code == 0 and report["previous_checkpoint"]["size"] == 300
    # the producer rebuilds the log with record 5 changed, and signs the rewritten history
    model = made["model"]
    rebuilt = tmp_path / "rebuilt"
    with EvidenceLog.create(rebuilt, model) as log:
        xs = records(310)
        xs[5] += 64
        log.append_batch({"x": xs})
    shutil.rmtree(made["log"])
    shutil.copytree(rebuilt, made["log"])
    _checkpoint(run_cli, made)
    code, report = _audit(run_cli, made, "--sample", "3", "--previous-checkpoint", earlier)
    assert code == 1
    assert "rewritten or forked" in json.dumps(report["findings"])
    # truncation: a log of fewer records than the auditor saw before
    truncated = tmp_path / "truncated"
    with EvidenceLog.create(truncated, model) as log:
        log.append_batch({"x": records(100)})
    shutil.rmtree(made["log"])
    shutil.copytree(truncated, made["log"])
    _checkpoint(run_cli, made)
    code, report = _audit(run_cli, made, "--sample", "3", "--previous-checkpoint", earlier)
    assert code == 1 and "truncated" in json.dumps(report["findings"])


def test_an_untrusted_checkpoint_key_fails(tmp_path: Path, run_cli: RunCli, made: dict[str, Path]) -> None:
    stranger = tmp_path / "stranger.key"
    assert run_cli("keygen", "--out", stranger).exit_code == 0
    assert run_cli("log", "checkpoint", made["log"], "--sign", stranger).exit_code == 0
    code, report = _audit(run_cli, made, "--sample", "3")
    assert code == 1 and report["sampled"] == 0
    assert "not signed by a trusted key" in report["headline"]


def test_a_log_stores_the_model_once(tmp_path: Path, made: dict[str, Path]) -> None:
    model_bytes = made["model"].stat().st_size
    total = sum(p.stat().st_size for p in made["log"].rglob("*") if p.is_file())
    payload = 300 * 2 * (128 + 16)  # each record: an input and an output of 16 bytes, .npy headers of 128
    assert total < model_bytes + 300 * (payload // 300 + 4096)
    assert len(list((made["log"] / "blobs" / "blake3").iterdir())) == 1


def test_logs_written_twice_are_identical(tmp_path: Path) -> None:
    model = add_one_model(tmp_path / "add.onnx")
    trees = []
    for name in ("a", "b"):
        with EvidenceLog.create(tmp_path / name, model) as log:
            log.append_batch({"x": records(300)}, {"y": records(300, start=1)})
            log.append({"x": records(1)[0]}, {"y": records(1, start=1)[0]})
        trees.append({p.relative_to(tmp_path / name).as_posix(): p.read_bytes()
                      for p in (tmp_path / name).rglob("*") if p.is_file() and p.name != "log.json"})
    assert trees[0] == trees[1]
    assert "tile/0/001.p/45" in trees[0] and "tile/entries/000" in trees[0]
    assert not any(".p/44" in name for name in trees[0])  # narrower partials are gone


def test_bad_arguments_are_usage_errors(tmp_path: Path, run_cli: RunCli, made: dict[str, Path]) -> None:
    assert run_cli("log", "init", made["log"], made["model"]).exit_code == 2  # exists
    assert run_cli("log", "append", made["log"], "--run").exit_code == 2  # no record
    assert run_cli("log", "append", tmp_path / "nowhere", "-i", "x.npy", "--run").exit_code == 2
    assert run_cli("log", "export", made["log"], "--index", "1", "--out", tmp_path / "r.ogb").exit_code == 2
    assert run_cli("audit", made["log"], "--trusted-key", made["pub"], "--sample", "-3").exit_code == 2
    assert run_cli("audit", made["log"], "--trusted-key", made["pub"], "--seed", "xyz").exit_code == 2
    assert run_cli("audit", made["log"], "--trusted-key", made["pub"], "--confidence", "1.5").exit_code == 2
    code, report = _audit(run_cli, made, "--sample", "3")
    assert code == 1 and "no checkpoint" in report["headline"]


@pytest.mark.parametrize(("total", "sample", "failures", "confidence", "expected"), [
    (1000, 300, 0, 0.95, 8),     # the design's example: at most 0.8% of 1,000 records
    (1000, 1000, 0, 0.95, 0),    # everything checked
    (1000, 1000, 3, 0.95, 3),
    (10, 1, 0, 0.5, 5),          # P(X=0 | D) = (10-D)/10 >= 0.5  <=>  D <= 5
    (10, 1, 1, 0.95, 10),
    (20, 2, 0, 0.9, 13),         # C(20-D,2)/C(20,2) >= 0.1  <=>  (20-D)(19-D) >= 38  <=>  D <= 13
])
def test_the_bound_against_known_values(total: int, sample: int, failures: int, confidence: float,
                                        expected: int) -> None:
    assert sampling.failing_upper_bound(total, sample, failures, confidence) == expected


def test_the_smallest_sample() -> None:
    n = sampling.smallest_sample(1000, 0.008, 0.95)
    assert n == sampling.smallest_sample(1000, "0.008", "0.95")
    assert sampling.failing_upper_bound(1000, n, 0, 0.95) <= 8 < sampling.failing_upper_bound(1000, n - 1, 0, 0.95)
    assert n <= 300
    assert sampling.smallest_sample(10**6, 0.01, 0.95) < 300  # about 3/p, as for sampling with replacement


def test_an_audit_on_dask_finds_the_same(run_cli: RunCli, made: dict[str, Path]) -> None:
    """With --dask-scheduler each worker reads its records from the log itself; same sample, same result."""
    distributed = pytest.importorskip("distributed")
    _checkpoint(run_cli, made)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0", scheduler_port=0) as cluster:
        code, report = _audit(run_cli, made, "--sample", "60", "--seed", "05",
                              "--dask-scheduler", cluster.scheduler_address)
    assert code == 0, report
    assert report["sampled_indices"] == _audit(run_cli, made, "--sample", "60", "--seed", "05")[1]["sampled_indices"]
