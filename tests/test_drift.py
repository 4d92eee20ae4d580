"""The drift engine on drift built for real: outputs produced under one configuration and
recorded as another. Each test asserts the cause the report names, and where it applies the
node where the numbers first part.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import ogverify
from ogverify.evidence.execution import ExecutionConfig
from ogverify.packing.pack import runtime_version
from ogverify.runtime.trials import Trial, run_trials
from tests.bundle_helpers import check_json_and_text
from tests.conftest import RunCli
from tests.fixtures import models

RECORDED = ExecutionConfig(runtime_version=runtime_version())


def _drifted_bundle(
    tmp_path: Path, model: onnx.ModelProto, inputs: dict[str, np.ndarray], produced: ExecutionConfig,
    name: str = "drift.ogb",
) -> Path:
    """A bundle that records RECORDED but whose claimed outputs were produced under ``produced``.

    Whether ``produced`` changes the output bits depends on the kernels onnxruntime picks on this
    CPU, so both configurations run here first (in one process); where they agree there is no
    drift to explain on this machine and the test is skipped, saying so.
    """
    model_path = models.save(model, tmp_path / "model.onnx")
    result, reference = run_trials(
        model_path, inputs, [Trial("producer", produced), Trial("recorded", RECORDED)], tmp_path / "producer"
    )
    assert result.error is None and reference.error is None, result.error or reference.error
    if all(result.outputs[name].tobytes() == reference.outputs[name].tobytes() for name in result.outputs):
        pytest.skip("on this CPU the producing configuration gives the recorded one's output bits: no drift")
    bundle = tmp_path / name
    ogverify.pack(model_path, bundle, inputs=inputs, claimed_outputs=result.outputs, config=RECORDED)
    return bundle


def _swapped_bundle(tmp_path: Path, builder: Any, inputs: dict[str, np.ndarray]) -> tuple[Path, Path]:
    """A bundle of ``builder(seed=0)`` whose claimed outputs came from ``builder(seed=5)``: (bundle, that model)."""
    swapped = models.save(builder(seed=5), tmp_path / "swapped.onnx")
    claimed = run_trials(swapped, inputs, [Trial("producer", RECORDED)], tmp_path / "producer")[0].outputs
    model_path = models.save(builder(seed=0), tmp_path / "model.onnx")
    bundle = tmp_path / "swap.ogb"
    ogverify.pack(model_path, bundle, inputs=inputs, claimed_outputs=claimed, config=RECORDED)
    return bundle, swapped


def _check_json(run_cli: RunCli, bundle: Path, *extra: str | Path) -> dict[str, Any]:
    result = run_cli("check", bundle, "--allow-unsigned", "--format", "json", *extra)
    assert result.exit_code == 1, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _x(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_mlp_produced_without_optimisation_names_the_level_the_transformer_and_the_node(
    tmp_path: Path, run_cli: RunCli
) -> None:
    produced = dataclasses.replace(RECORDED, graph_optimization_level="ORT_DISABLE_ALL")
    bundle = _drifted_bundle(tmp_path, models.big_mlp(), {"x": _x((8, 256))}, produced)
    # One check, both reports: the drift search is the expensive part.
    result, report, text = check_json_and_text(run_cli, tmp_path, bundle, "--allow-unsigned")
    assert result.exit_code == 1, result.output
    assert report["cause"].startswith(
        "outputs reproduce exactly with graph_optimization_level=ORT_DISABLE_ALL; the bundle records ORT_ENABLE_ALL"
    )
    explanation = report["explanation"]
    assert explanation["cause"] == "knob"
    assert explanation["transformers"] == ["MatMulAddFusion"]
    assert "MatMulAddFusion" in report["cause"]
    assert explanation["op_histogram_diff"]["MatMul"] == {"recorded": 0, "reproducing": 2}
    origin = explanation["localisation"]["origin"]
    assert origin["node"] == "fc2/MatMulAddFusion"
    assert origin["role"] == "ROOT"
    assert origin["output"] == "y"
    assert explanation["localisation"]["first_exceeding"]["role"] == "ROOT"

    lines = text.splitlines()
    assert lines[0].startswith("FAILED: output 'y' [exact]:")
    assert lines[1].startswith("cause: outputs reproduce exactly with graph_optimization_level=ORT_DISABLE_ALL")
    assert "ROOT: Gemm node 'fc2/MatMulAddFusion'" in text


def test_conv_produced_at_extended_names_the_nchwc_transformer(tmp_path: Path, run_cli: RunCli) -> None:
    produced = dataclasses.replace(RECORDED, graph_optimization_level="ORT_ENABLE_EXTENDED")
    bundle = _drifted_bundle(tmp_path, models.big_conv(), {"image": _x((1, 3, 32, 32))}, produced)
    explanation = _check_json(run_cli, bundle)["explanation"]
    # The nearest reproducing level is named, not merely DISABLE_ALL.
    assert explanation["changes"] == [
        {"knob": "graph_optimization_level", "recorded": "ORT_ENABLE_ALL", "value": "ORT_ENABLE_EXTENDED"}
    ]
    assert explanation["transformers"] == ["NchwcTransformer"]
    assert explanation["op_histogram_diff"]["com.microsoft.nchwc::Conv"] == {"recorded": 2, "reproducing": 0}
    localisation = explanation["localisation"]
    assert localisation["first_exceeding"] is not None
    # NCHWc tensors have no counterpart in the plain graph: the suspects are named instead.
    assert any("com.microsoft.nchwc::Conv" in s for s in localisation["unaligned_suspects"])


def test_tree_ensemble_thread_count_drift(tmp_path: Path, run_cli: RunCli) -> None:
    model, features = models.tree_ensemble()
    produced = dataclasses.replace(RECORDED, intra_op_num_threads=2)
    bundle = _drifted_bundle(tmp_path, model, {"X": features}, produced)
    report = _check_json(run_cli, bundle)
    assert report["explanation"]["changes"] == [
        {"knob": "intra_op_num_threads", "recorded": "1", "value": "2"}
    ]
    assert report["cause"] == (
        "outputs reproduce exactly with intra_op_num_threads=2; the bundle records 1"
    )


def test_prepacking_entry_drift(tmp_path: Path, run_cli: RunCli) -> None:
    produced = dataclasses.replace(RECORDED, config_entries={"session.disable_prepacking": "1"})
    bundle = _drifted_bundle(tmp_path, models.big_mlp(), {"x": _x((8, 256))}, produced)
    report = _check_json(run_cli, bundle)
    assert report["explanation"]["changes"] == [
        {"knob": "session.disable_prepacking", "recorded": "0", "value": "1"}
    ]


def test_gelu_approximation_entry_drift(tmp_path: Path, run_cli: RunCli) -> None:
    produced = dataclasses.replace(RECORDED, config_entries={"optimization.enable_gelu_approximation": "1"})
    bundle = _drifted_bundle(tmp_path, models.gelu_mlp(), {"x": _x((8, 64))}, produced)
    report = _check_json(run_cli, bundle)
    assert report["cause"].startswith("outputs reproduce exactly with optimization.enable_gelu_approximation=1")


def test_swapped_weights_are_not_explained_by_a_knob_and_the_candidate_names_the_tensors(
    tmp_path: Path, run_cli: RunCli
) -> None:
    bundle, swapped = _swapped_bundle(tmp_path, models.big_mlp, {"x": _x((8, 256))})

    report = _check_json(run_cli, bundle)
    assert report["explanation"]["cause"] == "unexplained"
    assert report["cause"].startswith("outputs are not explained by any configuration knob")

    with_candidate = _check_json(run_cli, bundle, "--candidate-model", swapped)
    assert with_candidate["explanation"]["cause"] == "candidate_model"
    assert with_candidate["cause"].startswith(
        "outputs reproduce exactly with the candidate model swapped.onnx, not with the bundle's model; "
        "they differ in 4 tensor(s): b1, b2, w1, w2"
    )


def test_nondeterministic_model_is_not_called_tampering(tmp_path: Path, run_cli: RunCli) -> None:
    model_path = models.save(models.noisy(), tmp_path / "noisy.onnx")
    inputs = {"x": np.zeros((4, 8), np.float32)}
    bundle = tmp_path / "noisy.ogb"
    ogverify.pack(model_path, bundle, inputs=inputs, config=RECORDED)
    report = _check_json(run_cli, bundle)
    assert report["explanation"]["cause"] == "nondeterministic"
    assert "nondeterministic under the recorded configuration" in report["cause"]
    assert "not evidence of tampering" in report["cause"]


def test_clean_rechecks_report_no_drift(tmp_path: Path, run_cli: RunCli) -> None:
    model_path = models.save(models.big_mlp(), tmp_path / "model.onnx")
    bundle = tmp_path / "clean.ogb"
    ogverify.pack(model_path, bundle, inputs={"x": _x((8, 256))}, config=RECORDED)
    for _ in range(5):
        result = run_cli("check", bundle, "--allow-unsigned", "--format", "json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["cause"] is None and report["explanation"] is None
        assert all(output["bitwise_equal"] for output in report["outputs"])


def test_no_explain_and_zero_budget(tmp_path: Path, run_cli: RunCli) -> None:
    produced = dataclasses.replace(RECORDED, graph_optimization_level="ORT_DISABLE_ALL")
    bundle = _drifted_bundle(tmp_path, models.big_mlp(), {"x": _x((8, 256))}, produced)
    plain = run_cli("check", bundle, "--allow-unsigned", "--no-explain")
    assert plain.exit_code == 1
    assert "cause:" not in plain.stdout
    starved = _check_json(run_cli, bundle, "--explain-budget", "0")
    assert starved["explanation"]["runs"] == 0
    assert starved["explanation"]["cause"] == "unexplained"


def test_diff_models_names_changed_tensors_and_exit_codes(tmp_path: Path, run_cli: RunCli) -> None:
    a = models.save(models.mlp(seed=0), tmp_path / "a.onnx")
    b = models.save(models.mlp(seed=1), tmp_path / "b.onnx")
    same = run_cli("diff", a, a)
    assert same.exit_code == 0 and same.stdout.startswith("identical")
    different = run_cli("diff", a, b, "--format", "json")
    assert different.exit_code == 1
    report = json.loads(different.stdout)
    assert [t["name"] for t in report["changed_tensors"]] == ["b1", "b2", "w1", "w2"]
    assert all(t["max_abs_diff"] > 0 for t in report["changed_tensors"])


def test_diff_bundles_names_config_fields(tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path]) -> None:
    x = np.load(mlp_files["x"])
    first, second = tmp_path / "a.ogb", tmp_path / "b.ogb"
    ogverify.pack(mlp_files["model"], first, inputs={"x": x}, config=RECORDED)
    ogverify.pack(mlp_files["model"], second, inputs={"x": x},
                  config=dataclasses.replace(RECORDED, intra_op_num_threads=2))
    result = run_cli("diff", first, second)
    assert result.exit_code == 1
    assert "execution session_options.intra_op_num_threads: 1 -> 2" in result.stdout
    mixed = run_cli("diff", first, mlp_files["model"])
    assert mixed.exit_code == 2
    assert "two models or two bundles" in mixed.stderr


def test_diff_bundles_gives_the_numbers_of_a_differing_output(tmp_path: Path, run_cli: RunCli,
                                                               mlp_files: dict[str, Path]) -> None:
    """Not two digests: how many elements differ and by how much (exact data: any CPU gives these)."""
    x = np.load(mlp_files["x"])
    claimed = np.zeros((4, 8), np.float32)
    changed = claimed.copy()
    changed[0, :3] = 0.5
    first, second = tmp_path / "a.ogb", tmp_path / "b.ogb"
    ogverify.pack(mlp_files["model"], first, inputs={"x": x}, claimed_outputs={"y": claimed})
    ogverify.pack(mlp_files["model"], second, inputs={"x": x}, claimed_outputs={"y": changed})
    result = run_cli("diff", first, second)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1:] == [
        "  tensor output y (float32[4,8]): 3 elements differ, max abs diff 0.5, mean abs diff 0.0469"]
    report = json.loads(run_cli("diff", first, second, "--format", "json").stdout)
    assert [(t["name"], t["elements_differing"], t["max_abs_diff"]) for t in report["changed_tensors"]] == [
        ("output y", 3, 0.5)]


@pytest.mark.parametrize("recorded_level", ["ORT_ENABLE_ALL", "ORT_DISABLE_ALL"])
def test_single_knob_variants_never_repeat_the_recorded_value(recorded_level: str) -> None:
    from ogverify.verify.drift.engine import single_knob_changes

    config = dataclasses.replace(RECORDED, graph_optimization_level=recorded_level)
    changes = single_knob_changes(config, ["CPUExecutionProvider", "AzureExecutionProvider"])
    assert all(change.value != change.recorded for change in changes)
    assert not any(change.knob == "provider" for change in changes)
    levels = [c.value for c in changes if c.knob == "graph_optimization_level"]
    assert len(levels) == 4 and recorded_level not in levels


def test_a_graph_optimised_differently_here_is_named_when_no_knob_explains(
    tmp_path: Path, run_cli: RunCli
) -> None:
    from tests.bundle_helpers import canonical, tamper

    bundle, _ = _swapped_bundle(tmp_path, models.mlp, {"x": _x((4, 16))})
    with ogverify.load_bundle(bundle) as opened:
        environment = json.loads(opened.manifest_bytes)["environment"]
    assert set(environment["optimized_graph"]) == {"sha256", "op_histogram", "level"}

    def pretend_packed_elsewhere(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["manifest.json"])
        manifest["environment"]["optimized_graph"]["sha256"] = "0" * 64
        manifest["environment"]["optimized_graph"]["op_histogram"] = {"MatMul": 2, "Add": 2, "Relu": 1}
        members["manifest.json"] = canonical(manifest)

    tamper(bundle, pretend_packed_elsewhere)
    report = _check_json(run_cli, bundle)
    assert report["explanation"]["cause"] == "unexplained"
    assert "onnxruntime here optimises the graph differently than where the bundle was packed" in report["cause"]
    assert "MatMul 2->0" in report["cause"]


def test_align_matches_names_first_then_op_and_shape_order() -> None:
    from onnx import helper

    from ogverify.verify.drift.localise import align

    def graph(hidden: str) -> onnx.ModelProto:
        nodes = [helper.make_node("Relu", ["x"], [hidden]), helper.make_node("Exp", [hidden], ["y"]),
                 helper.make_node("Sigmoid", [hidden], [hidden + "_s"])]
        return helper.make_model(helper.make_graph(nodes, "g", [], []))

    a = np.ones((2, 3), np.float32)
    recorded_values = {"r1": a, "y": a * 2, "r1_s": a.reshape(3, 2)}
    reference_values = {"h": a * 3, "y": a * 4, "h_s": a * 5}
    aligned, by_order = align(graph("r1"), graph("h"), recorded_values, reference_values)
    assert aligned["y"] is reference_values["y"]
    assert aligned["r1"] is reference_values["h"]
    # Same op (Sigmoid) but another shape: not aligned.
    assert "r1_s" not in aligned
    assert by_order == 1


def test_trials_share_a_process_only_with_the_same_sticky_settings_after_a_first_that_sets_them() -> None:
    """The first session of a process fixes its denormal setting: a process holds trials of one
    such state, a fresh-process trial runs first in its own, and the rest spread over up to
    ``parallel`` processes."""
    from ogverify.runtime.trials import _groups

    ftz = dataclasses.replace(RECORDED, config_entries={"session.set_denormal_as_zero": "1"})
    no_ftz = dataclasses.replace(RECORDED, config_entries={"session.set_denormal_as_zero": "0"})
    trials = [Trial("rerun 1", RECORDED, fresh_process=True), Trial("rerun 2", RECORDED, fresh_process=True),
              Trial("a", RECORDED), Trial("ftz", ftz), Trial("b", RECORDED), Trial("c", RECORDED),
              Trial("ftz pair", ftz), Trial("no ftz", no_ftz)]
    groups = _groups(trials, parallel=2)
    assert sorted(i for group in groups for i in group) == list(range(len(trials)))
    assert [0, 2, 5] in groups and [1, 4] in groups  # each re-run first in its own process, the rest after them
    assert [3, 6] in groups and [7] in groups  # denormals: same value together, another value apart
    assert len(groups) == 4
    plain = [Trial(str(i), RECORDED) for i in range(5)]
    assert _groups(plain, parallel=1) == [[0, 1, 2, 3, 4]]
    assert _groups(plain, parallel=2) == [[0, 2, 4], [1, 3]]
    assert _groups([*plain[:2], Trial("ftz", ftz)], parallel=2) == [[0, 1], [2]]
