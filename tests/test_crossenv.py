"""Drift across machines: the recorded trace names the first node whose bits differ from the
producer's, and the sensitivity profile says which knobs change a model's bits.

No assertion holds float bits a CPU can move. Where a fact depends on the CPU (prepacking, NCHWc,
thread counts), the test measures it here with onnxruntime directly and asserts that ogverify's
answer is the same. A producer's other environment is simulated by a recorded trace whose entry
for one node is changed (the bundle is re-packed with it): what check must then name is known on
any CPU.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import ogverify
from ogverify.evidence.bundle import open_bundle
from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.trace import KnobSensitivity, Profile, Trace
from ogverify.model.sketch import movement, sketch, summarise
from ogverify.packing.pack import runtime_version
from ogverify.report.findings import EnvironmentDifference
from ogverify.runtime.fingerprint import capture, diff_environments
from ogverify.runtime.sensitivity import profile_model
from ogverify.runtime.trace import record_trace
from ogverify.verify.drift.engine import single_knob_changes
from ogverify.verify.drift.finding import difference_phrase
from tests.conftest import RunCli
from tests.fixtures import models

RECORDED = ExecutionConfig(runtime_version=runtime_version())


def _x(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _run(model: Path, feeds: dict[str, np.ndarray], *, level: str = "ORT_ENABLE_ALL", threads: int = 1,
         entries: dict[str, str] | None = None, disabled: tuple[str, ...] = ()) -> list[np.ndarray]:
    """The model's outputs under one configuration, with onnxruntime directly (the test's own measure)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    for key, value in (entries or {}).items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=list(disabled))
    return [np.asarray(v) for v in session.run(None, feeds)]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))


def _manifest(bundle: Path) -> Any:
    with open_bundle(bundle) as opened:
        return opened.manifest


def _check_json(run_cli: RunCli, bundle: Path, *extra: str | Path) -> dict[str, Any]:
    result = run_cli("check", bundle, "--allow-unsigned", "--format", "json", *extra)
    assert result.exit_code == 1, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


# --- the trace ---------------------------------------------------------------------------------


def test_pack_trace_records_every_node_output_bounded_and_in_order(tmp_path: Path, run_cli: RunCli) -> None:
    model = models.save(models.big_mlp(), tmp_path / "mlp.onnx")
    np.save(tmp_path / "x.npy", _x((8, 256)))
    bundle = tmp_path / "t.ogb"
    result = run_cli("pack", model, "-i", f"x={tmp_path / 'x.npy'}", "--run", "--trace", "--out", bundle)
    assert result.exit_code == 0, result.output
    trace = _manifest(bundle).trace
    assert trace is not None and trace.claim_reproduced is True and trace.omitted == 0
    graph = onnx.load(str(model)).graph
    assert [(o.node, o.output) for o in trace.outputs] == [(n.name, n.output[0]) for n in graph.node]
    # What the trace records is what the model computes at DISABLE_ALL here: digests of the bits.
    import onnxruntime as ort

    traced = onnx.load(str(model))
    traced.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n.output[0]) for n in graph.node[:-1])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(traced.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(None, {"x": np.load(tmp_path / "x.npy")}), strict=True))
    for entry in trace.outputs:
        assert entry.summary.digest == summarise(values[entry.output]).digest
        assert len(json.dumps(entry.to_json())) < 512  # a few hundred bytes a node
    # The default packs a trace too; --no-trace leaves it out.
    assert run_cli("pack", model, "-i", f"x={tmp_path / 'x.npy'}", "--run", "--out", tmp_path / "d.ogb").exit_code == 0
    assert _manifest(tmp_path / "d.ogb").trace is not None
    assert run_cli("pack", model, "-i", f"x={tmp_path / 'x.npy'}", "--run", "--no-trace",
                   "--out", tmp_path / "n.ogb").exit_code == 0
    assert _manifest(tmp_path / "n.ogb").trace is None
    inspected = run_cli("inspect", bundle)
    assert re.search(rf"trace +{len(trace.outputs)} node outputs at ORT_DISABLE_ALL", inspected.stdout)


def test_sketch_says_how_far_values_moved() -> None:
    values = np.arange(64, dtype=np.float32)  # exactly representable: the same numbers on any machine
    recorded = sketch(values)
    assert recorded is not None and recorded.count == 64 and recorded.min == 0.0 and recorded.max == 63.0
    assert recorded.mean == 31.5
    moved = values.copy()
    moved[:] += 0.5
    shift = movement(recorded, sketch(moved))
    assert shift["mean_shift"] == 0.5 and shift["max_stat_shift"] == 0.5
    one = values.copy()
    one[5] += 8  # each ±1 projection moves by 8/sqrt(64): the estimated RMS change per element is 1
    shift = movement(recorded, sketch(one))
    assert shift["mean_shift"] == 0.125 and shift["rms_change_estimate"] == 1.0
    assert movement(recorded, sketch(values)) == {"max_stat_shift": 0.0, "mean_shift": 0.0,
                                                  "rms_change_estimate": 0.0, "projection_shift_relative": 0.0}
    special = sketch(np.array([np.nan, np.inf, 1.0], np.float32))
    assert special is not None and (special.nan, special.inf, special.min) == (1, 1, 1.0)
    assert sketch(np.array(["a"])) is None


def _traced_bundle(tmp_path: Path, *, forge: str | None = None, drop: str | None = None,
                   claim_from_numpy: bool = False) -> tuple[Path, Trace]:
    """An MLP bundle whose claimed output is not what the model computes here (one element moved
    by one ULP, or numpy's float64 result), with a trace; ``forge`` changes the recorded digest of
    that node's output (another environment computed it otherwise), ``drop`` removes one entry."""
    model_proto = models.mlp(features=16, hidden=32, classes=8, batch=4)
    model = models.save(model_proto, tmp_path / "mlp.onnx")
    x = _x((4, 16))
    (here,) = _run(model, {"x": x})
    if claim_from_numpy:
        claimed = models.mlp_reference_outputs(model_proto, x)
    else:
        claimed = here.copy()
        claimed[0, 0] = np.nextafter(claimed[0, 0], np.float32(np.inf))
    trace = record_trace(model, {"x": x}, RECORDED, tmp_path / "trace", claimed={"y": claimed})
    outputs = list(trace.outputs)
    for index, entry in enumerate(outputs):
        if entry.node == forge:
            summary = dataclasses.replace(entry.summary, digest="0" * 32)
            outputs[index] = dataclasses.replace(entry, summary=summary)
    outputs = [o for o in outputs if o.node != drop]
    trace = dataclasses.replace(trace, outputs=tuple(outputs))
    bundle = tmp_path / "traced.ogb"
    ogverify.pack(model, bundle, inputs={"x": x}, claimed_outputs={"y": claimed}, config=RECORDED, trace=trace)
    return bundle, trace


def test_check_names_the_first_divergent_node_from_the_trace_and_its_root(tmp_path: Path, run_cli: RunCli) -> None:
    bundle, _ = _traced_bundle(tmp_path, forge="relu")
    report = _check_json(run_cli, bundle, "--explain-budget", "3")
    node = report["first_divergent_node"]
    assert (node["name"], node["op_type"], node["output"], node["role"]) == ("relu", "Relu", "h2", "ROOT")
    assert node["inputs"] == [{"name": "h1", "status": "matched"}]
    assert report["cause"].startswith(
        "Relu `relu` is the first node whose output differs from the producer's (output `h2`); "
        "its inputs match bit for bit")
    assert report["explanation"]["trace"]["matched"] == 2  # fc1's and bias1's outputs matched before it
    # Its input not recorded: the node may not be where the difference starts.
    (tmp_path / "u").mkdir()
    unresolved, _ = _traced_bundle(tmp_path / "u", forge="relu", drop="bias1")
    node = _check_json(run_cli, unresolved, "--explain-budget", "3")["first_divergent_node"]
    assert node["role"] == "UNRESOLVED" and node["inputs"] == [{"name": "h1", "status": "not recorded"}]


def test_a_claim_the_producer_never_computed_is_told_from_drift(tmp_path: Path, run_cli: RunCli) -> None:
    """The mlp-numpy case: the outputs come from numpy. The producer's own pack-time run tells."""
    bundle, trace = _traced_bundle(tmp_path, claim_from_numpy=True)
    model = tmp_path / "mlp.onnx"
    x = _load_input(bundle)
    computed_here = _same(_run(model, {"x": x}), [models.mlp_reference_outputs(onnx.load(str(model)), x)])
    assert trace.claim_reproduced is computed_here  # whatever numpy gives on this CPU
    if computed_here:
        pytest.skip("numpy's float64 result rounds to onnxruntime's bits on this CPU: nothing to tell apart")
    report = _check_json(run_cli, bundle, "--explain-budget", "14")
    assert report["first_divergent_node"] is None
    assert report["cause"].startswith("the claimed outputs were not produced by this model under the recorded "
                                      "configuration: the producer's own run did not reproduce them at pack time")
    assert "CPU" not in report["cause"]


def _load_input(bundle: Path) -> np.ndarray:
    from ogverify.model.tensors import parse_npy

    with open_bundle(bundle) as opened:
        entry = opened.manifest.inputs[0]
        return parse_npy(opened.read_blob(entry.artifact, "input", 1 << 20), "input")


def test_clean_rechecks_with_a_trace_report_no_drift(tmp_path: Path, run_cli: RunCli) -> None:
    model = models.save(models.mlp(), tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", _x((4, 16)))
    bundle = tmp_path / "c.ogb"
    assert run_cli("pack", model, "-i", f"x={tmp_path / 'x.npy'}", "--run", "--trace", "--out", bundle).exit_code == 0
    for _ in range(3):  # benchmarks/clean_rechecks.py does 50
        result = run_cli("check", bundle, "--allow-unsigned", "--format", "json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["cause"] is None and report["first_divergent_node"] is None


# --- explanations a user can act on --------------------------------------------------------------


def _environment_drift_bundle(tmp_path: Path, trace: bool) -> Path:
    """A bundle whose environment records CPU features this machine lacks, and whose claim no knob explains."""
    model = models.save(models.mlp(), tmp_path / "m.onnx")
    x = _x((4, 16))
    (here,) = _run(model, {"x": x})
    claimed = here.copy()
    claimed[0, 0] = np.nextafter(claimed[0, 0], np.float32(np.inf))
    environment = capture()
    environment["cpu"] = {**environment["cpu"],
                          "numeric_flags": sorted([*environment["cpu"]["numeric_flags"], "avx9000x", "avx9000y"])}
    from ogverify.packing.pack import pack

    bundle = tmp_path / "env.ogb"
    pack(model, bundle, inputs={"x": x}, claimed_outputs={"y": claimed}, config=RECORDED, environment=environment,
         trace=trace)
    return bundle


def test_only_the_difference_of_cpu_features_is_named_and_policy_allowed_ones_never(
    tmp_path: Path, run_cli: RunCli
) -> None:
    bundle = _environment_drift_bundle(tmp_path, trace=False)
    budget = ("--explain-budget", "13")  # the noise floor and every one-knob variant; no pairs
    report = _check_json(run_cli, bundle, *budget)
    cause = report["cause"]
    assert "two explanations remain" in cause and "CPU features avx9000x, avx9000y missing here" in cause
    assert "[" not in cause  # never the two lists
    assert "no trace (pack --trace)" in cause
    environment = next(f for f in report["findings"] if f["stage"] == "environment")
    model_line = [c for c in environment["children"] if c["subject"] == "cpu.model"]
    assert all("same features" not in c["message"] for c in model_line)
    policy = tmp_path / "ogverify.toml"
    policy.write_text('[environment]\nallow = ["cpu.*"]\n', encoding="utf-8")
    allowed = _check_json(run_cli, bundle, "--policy", policy, *budget)
    assert "cpu" not in allowed["cause"].lower() and "avx9000" not in allowed["cause"]


def test_budget_exhaustion_is_stated_with_what_was_not_tried(tmp_path: Path, run_cli: RunCli) -> None:
    bundle = _environment_drift_bundle(tmp_path, trace=False)
    report = _check_json(run_cli, bundle, "--explain-budget", "4")
    explanation = report["explanation"]
    assert explanation["budget_exhausted"] is True and explanation["untried"]
    assert "the search stopped at its budget of 4 trial runs" in report["cause"]
    assert explanation["untried"][0].split("=")[0] in report["cause"]
    text = run_cli("check", bundle, "--allow-unsigned", "--explain-budget", "4").stdout
    lines = [line.strip(" │├└─") for line in text.splitlines()]
    for parent, child in itertools.pairwise(lines):
        assert not parent or parent.split(None, 1)[-1] != child.split(None, 1)[-1]  # no repeated lines
    assert "tolerance" not in text  # the comparison is exact
    assert "bitwise: every bit equal" in text and "NaN/inf: elements where" in text


def test_difference_phrases_and_cpu_model_wording() -> None:
    flags = EnvironmentDifference("cpu.numeric_flags", ["avx2", "avx512bw", "avx512f"], ["avx2"], "high", "")
    assert difference_phrase(flags) == "CPU features avx512bw, avx512f missing here"
    version = EnvironmentDifference("runtime.version", "1.20.1", "1.32.0", "high", "")
    assert difference_phrase(version) == "onnxruntime 1.20.1 -> 1.32.0"
    recorded = {"cpu": {"model": "A", "numeric_flags": ["avx2", "avx512f"]}}
    current = {"cpu": {"model": "B", "numeric_flags": ["avx2"]}}
    (model_difference,) = [d for d in diff_environments(recorded, current) if d.field == "cpu.model"]
    assert "same features" not in model_difference.why
    (alone,) = diff_environments({"cpu": {"model": "A"}}, {"cpu": {"model": "B"}})
    assert "same features" in alone.why


# --- the sensitivity profile ---------------------------------------------------------------------


def _knob(profile: Profile, name: str) -> KnobSensitivity:
    knob = profile.get(name)
    assert knob is not None, [k.knob for k in profile.knobs]
    return knob


def test_profile_of_a_tree_ensemble_names_the_thread_count(tmp_path: Path) -> None:
    proto, features = models.tree_ensemble()
    model = models.save(proto, tmp_path / "gb.onnx")
    profile = profile_model(model, {"X": features}, RECORDED, tmp_path / "work")
    threads = _knob(profile, "intra_op_num_threads")
    measured = not _same(_run(model, {"X": features}), _run(model, {"X": features}, threads=2))
    assert threads.changes_bits is measured  # True wherever the per-tree sums split across 2 threads
    assert threads.values[:2] == ("1", "2")
    assert _knob(profile, "graph_optimization_level").changes_bits is not _same(
        _run(model, {"X": features}), _run(model, {"X": features}, level="ORT_DISABLE_ALL"))


def test_profile_of_a_plain_mlp_prepacking_and_not_the_level(tmp_path: Path) -> None:
    model = models.save(models.plain_mlp(), tmp_path / "plain.onnx")
    feeds = {"x": _x((8, 256))}
    profile = profile_model(model, feeds, RECORDED, tmp_path / "work")
    base = _run(model, feeds)
    prepacking = not _same(base, _run(model, feeds, entries={"session.disable_prepacking": "1"}))
    assert _knob(profile, "session.disable_prepacking").changes_bits is prepacking
    levels = [lv for lv in ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED")]
    level_changes = any(not _same(base, _run(model, feeds, level=lv)) for lv in levels)
    assert _knob(profile, "graph_optimization_level").changes_bits is level_changes
    assert not level_changes  # nothing to fuse: no level rewrites this graph's arithmetic
    knobs = [k.to_json() for k in profile.knobs]
    assert all(set(k) >= {"knob", "values", "changes_bits", "max_abs_diff"} for k in knobs)


def test_profile_of_a_conv_net_names_the_nchwc_transformer(tmp_path: Path) -> None:
    model = models.save(models.big_conv(), tmp_path / "conv.onnx")
    feeds = {"image": _x((1, 3, 32, 32))}
    profile = profile_model(model, feeds, RECORDED, tmp_path / "work")
    nchwc = not _same(_run(model, feeds), _run(model, feeds, disabled=("NchwcTransformer",)))
    knob = profile.get("NchwcTransformer")
    # NCHWc needs AVX2 or newer; where onnxruntime does not apply it, the profile has nothing to say.
    assert (knob is not None and knob.changes_bits) is nchwc
    if knob is not None:
        assert knob.values == ("enabled", "disabled")


def test_profile_command_json_pack_profile_inspect_and_the_search_order(tmp_path: Path, run_cli: RunCli) -> None:
    model = models.save(models.mlp(), tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", _x((4, 16)))
    result = run_cli("profile", model, "-i", f"x={tmp_path / 'x.npy'}", "--format", "json")
    assert result.exit_code == 0, result.output
    knobs = json.loads(result.stdout)["knobs"]
    assert {k["knob"] for k in knobs} >= {"graph_optimization_level", "intra_op_num_threads", "execution_mode",
                                          "session.disable_prepacking", "optimization.enable_gelu_approximation",
                                          "session.set_denormal_as_zero"}
    assert run_cli("profile", model, "-i", f"x={tmp_path / 'x.npy'}", "--format", "xml").exit_code == 2
    bundle = tmp_path / "p.ogb"
    assert run_cli("pack", model, "-i", f"x={tmp_path / 'x.npy'}", "--run", "--profile", "--no-trace",
                   "--out", bundle).exit_code == 0
    profile = _manifest(bundle).profile
    assert profile is not None and [k.to_json() for k in profile.knobs] == knobs
    sensitive = profile.sensitive()
    text = run_cli("inspect", bundle).stdout
    assert ("this model's outputs depend on" in text) is bool(sensitive)
    # check: knobs the profile found irrelevant are searched last.
    threads_only = Profile((KnobSensitivity("intra_op_num_threads", ("1", "2"), False, 0.0, "1"),
                            KnobSensitivity("session.disable_prepacking", ("0", "1"), True, 1e-6, "0")))
    order = [c.knob for c in single_knob_changes(RECORDED, (), threads_only)]
    assert order.index("session.disable_prepacking") < order.index("intra_op_num_threads")
    assert order[-1] == "intra_op_num_threads"
    assert all(k != "intra_op_num_threads" for k in order[: order.index("intra_op_num_threads")])


def test_the_recorder_records_a_trace_and_whether_a_fresh_process_reproduces_the_session(tmp_path: Path) -> None:
    model = models.save(models.mlp(), tmp_path / "m.onnx")
    recorder = ogverify.Recorder(model, tmp_path / "evidence", trace=True)
    recorder.run(None, {"x": _x((4, 16))})
    trace = _manifest(recorder.bundles[-1]).trace
    assert trace is not None and len(trace.outputs) == 5
    assert trace.claim_reproduced is True  # the same configuration in a fresh process gives the session's bits
