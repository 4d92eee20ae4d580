"""The sensitivity profile: which configuration knobs change a model's output bits on given inputs.

Every knob is varied alone from a baseline configuration (the one the producer records): each
optimisation level, intra-op threads (1, 2 and the core count), the execution mode, weight
prepacking, the GELU approximation, denormals as zero, and every graph transformer that rewrites
the model at the baseline (each disabled alone). A knob "changes bits" when any of its values
gives outputs whose bits differ from the baseline's. Trials run in parallel processes, up to the
cores available: one wave for the knobs, a second for the transformers (known only once the
baseline session has been built).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ogverify.errors import ReplayError
from ogverify.evidence.execution import OPT_LEVELS, ExecutionConfig
from ogverify.evidence.trace import KnobSensitivity, Profile
from ogverify.model.tensors import Array
from ogverify.runtime.trials import Trial, TrialResult, run_trials

ENTRY_KNOBS = ("session.disable_prepacking", "optimization.enable_gelu_approximation",
               "session.set_denormal_as_zero")
LEVEL_ORDER = ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_LAYOUT", "ORT_ENABLE_ALL")


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _levels_known() -> tuple[str, ...]:
    import onnxruntime

    return tuple(level for level in LEVEL_ORDER
                 if level in OPT_LEVELS.values() and hasattr(onnxruntime.GraphOptimizationLevel, level))


def knob_variants(config: ExecutionConfig, core_count: int) -> list[tuple[str, str, ExecutionConfig]]:
    """(knob, value, configuration) for every one-knob variant of ``config`` (transformers aside)."""
    variants = [("graph_optimization_level", level, dataclasses.replace(config, graph_optimization_level=level))
                for level in _levels_known() if level != config.graph_optimization_level]
    for threads in sorted({1, 2, core_count} - {config.intra_op_num_threads}):
        variants.append(("intra_op_num_threads", str(threads),
                         dataclasses.replace(config, intra_op_num_threads=threads)))
    other = "ORT_PARALLEL" if config.execution_mode == "ORT_SEQUENTIAL" else "ORT_SEQUENTIAL"
    variants.append(("execution_mode", other, dataclasses.replace(config, execution_mode=other)))
    for key in ENTRY_KNOBS:
        current = config.config_entries.get(key, "0")
        value = "1" if current == "0" else "0"
        variants.append((key, value, dataclasses.replace(config, config_entries={**config.config_entries, key: value})))
    return variants


def _baseline_value(config: ExecutionConfig, knob: str) -> str:
    if knob == "graph_optimization_level":
        return config.graph_optimization_level
    if knob == "intra_op_num_threads":
        return str(config.intra_op_num_threads)
    if knob == "execution_mode":
        return config.execution_mode
    if knob in ENTRY_KNOBS:
        return config.config_entries.get(knob, "0")
    return "enabled"


def _difference(baseline: Mapping[str, Array], outputs: Mapping[str, Array]) -> tuple[bool, float | None]:
    """(bits differ, max abs difference over the outputs)."""
    from ogverify.evidence.comparison import ComparisonSpec
    from ogverify.model.compare import compare_output

    changed, largest = False, 0.0
    for name, value in baseline.items():
        other = outputs.get(name)
        if other is None or other.dtype != value.dtype or other.shape != value.shape:
            return True, None
        if other.tobytes() == value.tobytes():
            continue
        changed = True
        comparison = compare_output(name, value, other, ComparisonSpec())
        if comparison.max_abs_diff is not None:
            largest = max(largest, comparison.max_abs_diff)
    return changed, largest


def profile_model(
    model: Path, inputs: Mapping[str, Array], config: ExecutionConfig, work_dir: Path, *,
    timeout: float = 600.0, parallel: int | None = None,
) -> Profile:
    """Measure which knobs change ``model``'s output bits on ``inputs``, varying each from ``config``.

    Raises:
        ReplayError: the baseline configuration itself does not run.
    """
    workers = parallel or cores()
    variants = knob_variants(config, cores())
    trials = [Trial("baseline", config, capture_transformers=True),
              *(Trial(f"{knob}={value}", variant) for knob, value, variant in variants)]
    results = run_trials(model, inputs, trials, work_dir / "knobs", timeout=timeout, parallel=workers)
    baseline = results[0]
    if baseline.error is not None:
        raise ReplayError(f"the model does not run under the baseline configuration: {baseline.error}")
    transformer_trials = [Trial(f"disabled {name}", config, (name,)) for name in baseline.applied_transformers]
    transformer_results = (run_trials(model, inputs, transformer_trials, work_dir / "transformers",
                                      timeout=timeout, parallel=workers) if transformer_trials else [])
    measured: dict[str, list[tuple[str, TrialResult]]] = {}
    for (knob, value, _), result in zip(variants, results[1:], strict=True):
        measured.setdefault(knob, []).append((value, result))
    for name, result in zip(baseline.applied_transformers, transformer_results, strict=True):
        measured.setdefault(name, []).append(("disabled", result))
    knobs = []
    for knob, tried in measured.items():
        ran = [(value, result) for value, result in tried if result.error is None]
        if not ran:
            continue  # this runtime does not know the knob's other values
        differences = [_difference(baseline.outputs, result.outputs) for _, result in ran]
        sizes = [size for _, size in differences if size is not None]
        base = _baseline_value(config, knob)
        knobs.append(KnobSensitivity(
            knob, (base, *(value for value, _ in ran)), any(changed for changed, _ in differences),
            max(sizes) if sizes else None, base,
        ))
    return Profile(tuple(knobs), len(trials) + len(transformer_trials))


def describe(profile: Profile) -> list[str]:
    """One line per knob: "intra_op_num_threads (1, 2, 16): changes bits, max abs diff 1.2e-07"."""
    lines = []
    for knob in profile.knobs:
        verdict = "changes bits" if knob.changes_bits else "same bits"
        size = f", max abs diff {knob.max_abs_diff:.3g}" if knob.changes_bits and knob.max_abs_diff is not None else ""
        lines.append(f"{knob.knob} ({', '.join(knob.values)}): {verdict}{size}")
    return lines


def sensitive_knobs(profile: Profile | None) -> Sequence[str]:
    """The knobs a profile found to change bits."""
    return [k.knob for k in profile.knobs if k.changes_bits] if profile is not None else []
