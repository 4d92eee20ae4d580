"""Evidence-log records beyond plain tensors: a record's trace (taken with ``log append --trace``,
stored content-addressed with the record, signed through its leaf, exported into the bundle's
manifest and used by ``check`` and ``audit`` to name the first node that differs), sequences, maps
and optionals as inputs and claimed outputs, and how many failed records an audit explains."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ogverify.evidence import canonical_json
from ogverify.evidence.bundle import open_bundle
from ogverify.evidence.log import layout
from ogverify.evidence.log.attached import verify_log_proof
from ogverify.evidence.log.store import open_store
from ogverify.evidence.signing import generate_key_pair
from ogverify.evidence.trace import Trace
from ogverify.packing.log import EvidenceLog
from tests.conftest import RunCli
from tests.fixtures import models
from tests.log_helpers import add_double_model, records


def _audit(run_cli: RunCli, log: Path, pub: Path, *args: str | Path) -> tuple[int, dict[str, Any]]:
    result = run_cli("audit", log, "--trusted-key", pub, "--format", "json", "--sample", "all", "--seed", "01", *args)
    report: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, report


def _forged(trace: Trace, node: str) -> Trace:
    """``trace`` with the recorded bits of ``node``'s output changed: a producer whose run parted there."""
    outputs = tuple(dataclasses.replace(o, summary=dataclasses.replace(o.summary, digest="0" * 32))
                    if o.node == node else o for o in trace.outputs)
    return dataclasses.replace(trace, outputs=outputs)


def test_a_record_carries_its_trace_through_the_leaf_the_export_and_the_audit(tmp_path: Path,
                                                                              run_cli: RunCli) -> None:
    model = add_double_model(tmp_path / "m.onnx")
    log = tmp_path / "log"
    assert run_cli("log", "init", log, model).exit_code == 0
    np.save(tmp_path / "x.npy", records(1)[0])
    result = run_cli("log", "append", log, "-i", f"x={tmp_path / 'x.npy'}", "--run", "--trace")
    assert result.exit_code == 0 and result.stdout.split() == ["0"], result.output
    np.savez(tmp_path / "xs.npz", x=records(2, start=10))
    result = run_cli("log", "append", log, "--inputs-npz", tmp_path / "xs.npz", "--run", "--trace")
    assert result.exit_code == 0 and result.stdout.split() == ["1", "2"], result.output
    assert run_cli("log", "append", log, "-i", f"x={tmp_path / 'x.npy'}", "--run").exit_code == 0  # no trace

    reader = layout.LogReader(open_store(log))
    entries = [reader.record(i) for i in range(4)]
    assert [e.trace is not None for e in entries] == [True, True, True, False]
    assert b'"trace":{"blake3":' in reader.leaf(0) and b'"trace"' not in reader.leaf(3)
    stored = entries[0].trace
    assert stored is not None and stored.size <= layout.MAX_TRACE_BLOB
    trace = Trace.from_json(canonical_json.loads_strict(reader.trace(stored), "trace"))
    assert [(o.node, o.op_type) for o in trace.outputs] == [("add", "Add"), ("double", "Mul")]
    assert trace.claim_reproduced is True
    # The same inputs twice: stored once (content-addressed), named by both records.
    assert entries[3].inputs[0].blake3 == entries[0].inputs[0].blake3

    # A producer whose run parted from this machine's at `double`, and whose claim followed it.
    claimed = (records(1)[0] + 1) * 2 + 2
    with EvidenceLog.open(log) as opened:
        assert opened.append({"x": records(1)[0]}, {"y": claimed}, trace=_forged(trace, "double")) == 4
    key, pub, _ = generate_key_pair(tmp_path / "producer.key")
    assert run_cli("log", "checkpoint", log, "--sign", key).exit_code == 0

    honest, lying = tmp_path / "honest.ogb", tmp_path / "lying.ogb"
    assert run_cli("log", "export", log, "--index", "1", "--out", honest).exit_code == 0
    assert run_cli("log", "export", log, "--index", "4", "--out", lying).exit_code == 0
    with open_bundle(honest) as bundle:
        assert bundle.manifest.trace is not None and len(bundle.manifest.trace.outputs) == 2
    assert run_cli("check", honest, "--trusted-key", pub).exit_code == 0  # the trace is signed through the log
    result = run_cli("check", lying, "--trusted-key", pub, "--format", "json", "--explain-budget", "3")
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and "signed through the log" in json.dumps(report["findings"])
    node = report["first_divergent_node"]
    assert (node["name"], node["op_type"]) == ("double", "Mul")

    # The trace is covered by the leaf: a bundle whose trace is not the one its record names is not signed.
    with open_bundle(honest) as bundle:
        manifest = json.loads(bundle.manifest_bytes)
        proof = bundle.log_proof
    assert proof is not None
    assert verify_log_proof(proof, manifest, [pub_key(pub)]).status == "trusted"
    changed = {**manifest, "trace": _forged(Trace.from_json(manifest["trace"]), "add").to_json()}
    assert verify_log_proof(proof, changed, [pub_key(pub)]).status == "invalid"
    assert verify_log_proof(proof, {k: v for k, v in manifest.items() if k != "trace"}, [pub_key(pub)]).status \
        == "invalid"

    code, audit = _audit(run_cli, log, pub, "--explain-budget", "3")
    assert code == 1 and audit["failed_indices"] == [4] and audit["explained"] == 1
    (record,) = audit["records"]
    assert record["first_divergent_node"]["name"] == "double"

    # A trace changed after the checkpoint: the record fails its audit like a changed tensor.
    copy = tmp_path / "changed"
    shutil.copytree(log, copy)
    pack = copy / layout.pack_path(stored.pack)
    data = bytearray(pack.read_bytes())
    data[stored.offset + stored.size - 3] ^= 1
    pack.write_bytes(bytes(data))
    code, audit = _audit(run_cli, copy, pub, "--no-explain")
    assert code == 1 and 0 in audit["failed_indices"]
    assert "trace does not match its digest" in json.dumps(audit["records"])

    # Claimed outputs with --trace: the trace says whether the log's configuration reproduces them.
    np.save(tmp_path / "wrong.npy", claimed)
    result = run_cli("log", "append", log, "-i", f"x={tmp_path / 'x.npy'}", "-O", f"y={tmp_path / 'wrong.npy'}",
                     "--trace")
    assert result.exit_code == 0 and result.stdout.split() == ["5"], result.output
    entry = layout.LogReader(open_store(log)).record(5)
    assert entry.trace is not None
    taken = Trace.from_json(canonical_json.loads_strict(layout.LogReader(open_store(log)).trace(entry.trace), "t"))
    assert taken.claim_reproduced is False and taken.outputs == trace.outputs


def pub_key(path: Path) -> Any:
    from ogverify.evidence.signing import load_trusted_keys

    return next(iter(load_trusted_keys([path]).values())).key


def test_an_audit_explains_a_stated_number_of_failed_records(tmp_path: Path, run_cli: RunCli) -> None:
    model = add_double_model(tmp_path / "m.onnx")
    xs = records(6)
    ys = (xs + 1) * 2
    ys[[1, 3, 5]] += 2  # three lying records
    with EvidenceLog.create(tmp_path / "log", model) as log:
        log.append_batch({"x": xs}, {"y": ys})
    key, pub, _ = generate_key_pair(tmp_path / "producer.key")
    assert run_cli("log", "checkpoint", tmp_path / "log", "--sign", key).exit_code == 0
    code, report = _audit(run_cli, tmp_path / "log", pub, "--explain-records", "1", "--explain-budget", "1")
    assert code == 1 and report["failed_indices"] == [1, 3, 5]
    assert (report["explained"], report["not_explained"]) == (1, 2)
    assert [r["explanation"] is not None for r in report["records"]] == [True, False, False]
    assert "2 more failed record(s) not explained: only the first 1 are" in json.dumps(report["findings"])
    code, report = _audit(run_cli, tmp_path / "log", pub, "--explain-records", "0")
    assert (report["explained"], report["not_explained"]) == (0, 3)
    assert run_cli("audit", tmp_path / "log", "--trusted-key", pub, "--explain-records", "-1").exit_code == 2


def test_sequences_maps_and_optionals_are_logged_exported_and_audited(tmp_path: Path, run_cli: RunCli) -> None:
    zipper = models.save(models.zipper(), tmp_path / "zip.onnx")
    log = tmp_path / "log"
    assert run_cli("log", "init", log, zipper).exit_code == 0
    np.save(tmp_path / "scores.npy", np.array([[0.5, 0.25, 0.25]], np.float32))
    result = run_cli("log", "append", log, "-i", f"scores={tmp_path / 'scores.npy'}", "--run")
    assert result.exit_code == 0, result.output
    (tmp_path / "p.json").write_text('[{"0": 0.5, "1": 0.25, "2": 0.25}]', encoding="utf-8")
    (tmp_path / "lie.json").write_text('[{"0": 0.25, "1": 0.5, "2": 0.25}]', encoding="utf-8")
    for claim in ("p.json", "lie.json"):
        result = run_cli("log", "append", log, "-i", f"scores={tmp_path / 'scores.npy'}",
                         "-O", f"probabilities={tmp_path / claim}")
        assert result.exit_code == 0, result.output
    with EvidenceLog.open(log) as opened:  # the Python API takes what onnxruntime returns: lists and dicts
        assert opened.append({"scores": np.array([[1, 0, 0]], np.float32)},
                             {"probabilities": [{0: 1.0, 1: 0.0, 2: 0.0}]}) == 3
        with pytest.raises(Exception, match="follows tensors only"):
            opened.append({"scores": np.array([[1, 0, 0]], np.float32)}, trace=True)
    entry = layout.LogReader(open_store(log)).record(0)
    assert isinstance(entry.outputs[0], layout.ValueRef) and entry.outputs[0].type == "seq(map(int64,tensor(float)))"
    key, pub, _ = generate_key_pair(tmp_path / "producer.key")
    assert run_cli("log", "checkpoint", log, "--sign", key).exit_code == 0
    assert run_cli("log", "export", log, "--index", "1", "--out", tmp_path / "r1.ogb").exit_code == 0
    result = run_cli("check", tmp_path / "r1.ogb", "--trusted-key", pub)
    assert result.exit_code == 0, result.output
    code, report = _audit(run_cli, log, pub, "--no-explain")
    assert code == 1 and report["failed_indices"] == [2], report["records"]
    assert "probabilities" in report["records"][0]["message"]

    # A sequence input, given to the Python API as a list of arrays.
    concatenator = models.save(models.concatenator(), tmp_path / "concat.onnx")
    with EvidenceLog.create(tmp_path / "seq", concatenator) as opened:
        opened.append({"parts": [np.array([1, 2], np.float32), np.array([4], np.float32)]})
        opened.checkpoint([key])
    assert _audit(run_cli, tmp_path / "seq", pub)[0] == 0


def test_a_failed_append_leaves_the_log_as_it_was(tmp_path: Path) -> None:
    model = add_double_model(tmp_path / "m.onnx")
    trees = []
    for name, fail in (("failed", True), ("clean", False)):
        with EvidenceLog.create(tmp_path / name, model) as log:
            log.append_batch({"x": records(300)})
            if fail:
                bad = {"x": records(1)[0].astype(np.float64)}
                with pytest.raises(Exception, match="expects float32"):
                    log.append_many([({"x": records(1, start=400)[0]}, None), (bad, None)])
                with pytest.raises(Exception, match="first dimension"):
                    log.append_batch({"x": records(3)}, {"y": records(2)})
                assert log.size == 300
            log.append_batch({"x": records(20, start=300)})
        trees.append({p.relative_to(tmp_path / name).as_posix(): p.read_bytes()
                      for p in (tmp_path / name).rglob("*") if p.is_file() and p.name != "log.json"})
    assert trees[0] == trees[1]


def test_the_logs_in_process_trace_is_the_one_pack_records(tmp_path: Path) -> None:
    """The log takes its traces on a session kept loaded; pack takes one in a fresh trial process.
    The two must record the same bits, or check would see drift that is not there."""
    from ogverify.evidence.execution import ExecutionConfig
    from ogverify.runtime.trace import TraceTaker, record_trace

    model = add_double_model(tmp_path / "m.onnx")
    config = ExecutionConfig(runtime_version="any", intra_op_num_threads=1)
    x = {"x": records(1, start=7)[0]}
    taker = TraceTaker(model, config, tmp_path / "log-trace")
    assert taker.take(x, claim_reproduced=True).outputs == record_trace(model, x, config, tmp_path / "pack").outputs
    assert taker.take(x).outputs == taker.take(x).outputs  # the session is reused
