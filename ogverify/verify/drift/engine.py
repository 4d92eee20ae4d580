"""The drift explanation engine: when re-execution does not reproduce the claimed outputs, say why.

Steps, each bounded by a budget of trial runs (``--explain-budget``):

1. Noise floor: re-run the recorded configuration in fresh processes; if those runs disagree,
   the model is nondeterministic under that configuration, which is not evidence of tampering.
2. Counterfactuals: vary one knob at a time (optimisation level, threads, execution mode, the
   numerics-relevant session config entries, provider); a variant that reproduces the claimed
   outputs bitwise names the drifted knob. Then pairs of knobs, greedily. The one-knob variants
   run in the noise floor's processes, after its re-runs (a process start is most of what a
   trial costs); their answers are used only when the noise floor finds no noise.
3. When the optimisation level is to blame: bisect onnxruntime's ``disabled_optimizers`` to
   name the graph transformer whose rewrite changed the numbers, and diff the op histograms
   of the two optimised graphs.
4. Localisation (see ``localise``): the first node that originates the error (ROOT) and the
   first node whose output exceeds the tolerance.
5. Nothing explains it: say so, and with a candidate model, test whether that model does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ogverify.evidence.comparison import ComparisonSpec
from ogverify.evidence.execution import OPT_LEVELS, ExecutionConfig, ProviderSpec
from ogverify.evidence.json_fields import JsonFields
from ogverify.model.compare import compare_output
from ogverify.model.graph import op_histogram
from ogverify.model.tensors import Array
from ogverify.runtime.fingerprint import graph_fingerprint
from ogverify.runtime.sensitivity import cores
from ogverify.runtime.trials import Trial, TrialResult, run_trials
from ogverify.verify.drift.localise import Localisation, localise
from ogverify.verify.drift.trace import TraceComparison, compare_trace

if TYPE_CHECKING:
    from ogverify.evidence.trace import Profile, Trace

DEFAULT_BUDGET = 32
# Session config entries known to change output bits, with the value onnxruntime defaults to.
NUMERIC_CONFIG_ENTRIES = {
    "session.disable_prepacking": "0",
    "optimization.enable_gelu_approximation": "0",
    "session.set_denormal_as_zero": "0",
}
THREAD_CHOICES = (1, 2, 4, 0)
NON_COMPUTE_PROVIDERS = {"AzureExecutionProvider"}

Cause = Literal["knob", "nondeterministic", "unexplained", "candidate_model", "error"]


@dataclass(frozen=True)
class KnobChange(JsonFields):
    """One configuration knob set to a value other than the recorded one."""

    knob: str
    recorded: str
    value: str

    @property
    def label(self) -> str:
        """``knob=value``: how a trial, an attempt and a finding name the change."""
        return f"{self.knob}={self.value}"


@dataclass(frozen=True)
class Attempt:
    """One counterfactual run and how close it came to the claimed outputs."""

    changes: tuple[KnobChange, ...]
    reproduced: bool
    elements_differing: int | None
    error: str | None = None

    @property
    def label(self) -> str:
        return ", ".join(c.label for c in self.changes) or "recorded configuration"

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes], "reproduced": self.reproduced,
                "elements_differing": self.elements_differing, "error": self.error}


@dataclass(frozen=True, kw_only=True)
class Explanation:
    """Why re-execution did not reproduce the claim, with the evidence (built by keyword: a
    positional list of its many fields reads as nothing and breaks silently when one is added)."""

    cause: Cause
    summary: str
    changes: tuple[KnobChange, ...] = ()
    transformers: tuple[str, ...] = ()
    op_histogram_diff: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    localisation: Localisation | None = None
    attempts: tuple[Attempt, ...] = ()
    runs: int = 0
    notes: tuple[str, ...] = ()
    also_reproducing: tuple[str, ...] = ()
    recorded_graph: Mapping[str, Any] | None = None
    # The producer's recorded trace against this machine's (None: the bundle has no trace).
    trace: TraceComparison | None = None
    # One-knob variants the budget left untried, and whether pairs of knobs were cut short.
    untried: tuple[str, ...] = ()
    pairs_cut: bool = False
    budget: int = DEFAULT_BUDGET

    @property
    def budget_exhausted(self) -> bool:
        """The budget stopped the search before every one-knob variant was tried."""
        return bool(self.untried)

    def to_json(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "summary": self.summary,
            "changes": [c.to_json() for c in self.changes],
            "transformers": list(self.transformers),
            "op_histogram_diff": {
                op: {"recorded": a, "reproducing": b} for op, (a, b) in self.op_histogram_diff.items()
            },
            "localisation": self.localisation.to_json() if self.localisation else None,
            "attempts": [a.to_json() for a in self.attempts],
            "runs": self.runs,
            "notes": list(self.notes),
            "also_reproducing": list(self.also_reproducing),
            "recorded_graph": dict(self.recorded_graph) if self.recorded_graph is not None else None,
            "trace": self.trace.to_json() if self.trace is not None else None,
            "first_divergent_node": (self.trace.first.to_json()
                                     if self.trace is not None and self.trace.first is not None else None),
            "untried": list(self.untried),
            "pairs_cut": self.pairs_cut,
            "budget": self.budget,
            "budget_exhausted": self.budget_exhausted,
        }


def reproduces(claimed: Mapping[str, Array], outputs: Mapping[str, Array]) -> bool:
    """True when every claimed output is reproduced bit for bit."""
    return all(
        name in outputs and outputs[name].dtype == value.dtype and outputs[name].shape == value.shape
        and outputs[name].tobytes() == value.tobytes()
        for name, value in claimed.items()
    )


def differing_elements(claimed: Mapping[str, Array], outputs: Mapping[str, Array]) -> int | None:
    """How many claimed elements a run got wrong (None when the run has another shape or dtype)."""
    total = 0
    for name, value in claimed.items():
        other = outputs.get(name)
        if other is None or other.dtype != value.dtype or other.shape != value.shape:
            return None
        comparison = compare_output(name, value, other, ComparisonSpec())
        total += comparison.elements_differing
    return total


def _with(config: ExecutionConfig, change: KnobChange) -> ExecutionConfig:
    if change.knob == "graph_optimization_level":
        return dataclasses.replace(config, graph_optimization_level=change.value)
    if change.knob == "intra_op_num_threads":
        return dataclasses.replace(config, intra_op_num_threads=int(change.value))
    if change.knob == "inter_op_num_threads":
        return dataclasses.replace(config, inter_op_num_threads=int(change.value))
    if change.knob == "execution_mode":
        return dataclasses.replace(config, execution_mode=change.value)
    if change.knob == "provider":
        return dataclasses.replace(config, providers=(ProviderSpec(change.value),))
    entries = dict(config.config_entries)
    entries[change.knob] = change.value
    return dataclasses.replace(config, config_entries=entries)


def single_knob_changes(
    config: ExecutionConfig, available_providers: Sequence[str], profile: Profile | None = None
) -> list[KnobChange]:
    """Every one-knob variant of ``config`` worth trying, most likely culprits first; knobs that
    the producer's sensitivity profile found not to change bits come last."""
    changes = _single_knob_changes(config, available_providers)
    if profile is None:
        return changes
    irrelevant = {k.knob for k in profile.knobs if not k.changes_bits}
    return sorted(changes, key=lambda change: change.knob in irrelevant)


def _single_knob_changes(config: ExecutionConfig, available_providers: Sequence[str]) -> list[KnobChange]:
    levels = list(OPT_LEVELS.values())
    recorded_index = levels.index(config.graph_optimization_level)
    # Nearest levels first: the closest reproducing level names the fewest rewrites.
    nearest = sorted((lv for lv in levels if lv != config.graph_optimization_level),
                     key=lambda lv: abs(levels.index(lv) - recorded_index))
    changes = [KnobChange("graph_optimization_level", config.graph_optimization_level, lv) for lv in nearest]
    changes += [
        KnobChange(key, config.config_entries.get(key, default), value)
        for key, default in NUMERIC_CONFIG_ENTRIES.items()
        for value in ("0", "1") if value != config.config_entries.get(key, default)
    ]
    changes += [
        KnobChange("intra_op_num_threads", str(config.intra_op_num_threads), str(threads))
        for threads in THREAD_CHOICES if threads != config.intra_op_num_threads
    ]
    other_mode = "ORT_PARALLEL" if config.execution_mode == "ORT_SEQUENTIAL" else "ORT_SEQUENTIAL"
    changes.append(KnobChange("execution_mode", config.execution_mode, other_mode))
    if config.execution_mode == "ORT_PARALLEL":
        changes += [
            KnobChange("inter_op_num_threads", str(config.inter_op_num_threads), str(threads))
            for threads in THREAD_CHOICES if threads != config.inter_op_num_threads
        ]
    recorded_provider = config.providers[0].name
    changes += [
        KnobChange("provider", recorded_provider, name)
        for name in available_providers if name != recorded_provider and name not in NON_COMPUTE_PROVIDERS
    ]
    return changes


class _Budget:
    def __init__(self, runs: int) -> None:
        self.left = runs
        self.used = 0

    def take(self, count: int) -> int:
        granted = max(0, min(count, self.left))
        self.left -= granted
        self.used += granted
        return granted


@dataclass
class _Context:
    model: Path
    inputs: Mapping[str, Array]
    claimed: Mapping[str, Array]
    recorded: ExecutionConfig
    work_dir: Path
    timeout: float
    budget: _Budget
    tolerance: ComparisonSpec
    parallel: int = 1

    def run(self, trials: Sequence[Trial]) -> list[TrialResult]:
        return run_trials(self.model, self.inputs, trials, self.work_dir, timeout=self.timeout,
                          parallel=self.parallel)

    def config_for(self, changes: Sequence[KnobChange]) -> ExecutionConfig:
        config = self.recorded
        for change in changes:
            config = _with(config, change)
        return config


def explain(
    model: Path,
    inputs: Mapping[str, Array],
    claimed: Mapping[str, Array],
    recorded: ExecutionConfig,
    first_reproduction: Mapping[str, Array],
    work_dir: Path,
    *,
    budget: int = DEFAULT_BUDGET,
    timeout: float = 600.0,
    tolerance: ComparisonSpec | None = None,
    candidate_model: Path | None = None,
    available_providers: Sequence[str] = (),
    trace: Trace | None = None,
    profile: Profile | None = None,
) -> Explanation:
    """Find the cause of a failed reproduction (see the module docstring for the steps).

    Args:
        model: the bundle's model, materialised.
        inputs: the packed inputs.
        claimed: the claimed outputs.
        recorded: the recorded execution configuration.
        first_reproduction: the outputs ``check`` reproduced under ``recorded``.
        work_dir: scratch space that lives as long as this call.
        budget: the most trial runs to spend.
        timeout: seconds each trial process may take.
        tolerance: the comparison that decides "exceeds the tolerance" in localisation.
        candidate_model: a model that may have produced the claim instead.
        available_providers: execution providers present here.
        trace: the producer's recorded trace; compared with this machine's first, at the
            reference level, to name the first node whose bits differ.
        profile: the producer's sensitivity profile; knobs it found irrelevant are tried last.
    """
    context = _Context(model, inputs, claimed, recorded, work_dir, timeout, _Budget(budget),
                       tolerance or ComparisonSpec(), cores())
    reruns = _noise_trials(context)
    traces = trace is not None and context.budget.take(1) == 1
    every = single_knob_changes(context.recorded, available_providers, profile)
    singles = every[: context.budget.take(len(every))]
    results = context.run([*reruns, *(Trial(c.label, context.config_for([c])) for c in singles)])
    noise, recorded_run = _noise_floor(context, first_reproduction, results[: len(reruns)])
    graph = graph_fingerprint(recorded_run)
    if noise is not None:
        return dataclasses.replace(noise, recorded_graph=graph, budget=budget, runs=len(results))
    traced = None
    if traces:
        assert trace is not None
        traced = compare_trace(trace, model, inputs, recorded, work_dir / "trace-here", timeout=timeout)
    search = _counterfactuals(context, singles, results[len(reruns):], tuple(c.label for c in every[len(singles):]),
                              reserve=1 if candidate_model is not None else 0)
    attempts = search.attempts
    matching = [a for a in attempts if a.reproduced]
    if not matching:
        return dataclasses.replace(_unexplained(context, attempts, candidate_model, search), recorded_graph=graph,
                                   trace=traced, untried=search.untried, pairs_cut=search.pairs_cut, budget=budget)
    best = matching[0]
    knobs = ", ".join(c.label for c in best.changes)
    records = (best.changes[0].recorded if len(best.changes) == 1
               else ", ".join(f"{c.knob}={c.recorded}" for c in best.changes))
    summary = f"outputs reproduce exactly with {knobs}; the bundle records {records}"
    transformers: tuple[str, ...] = ()
    histogram: dict[str, tuple[int, int]] = {}
    notes: list[str] = []
    reference_graph = None
    recorded_graph = recorded_run.optimized_model if recorded_run is not None else None
    if recorded_run is not None and context.budget.take(1) == 1:
        reproducing = context.run([
            Trial("reproducing", context.config_for(best.changes), save_optimized=True, capture_transformers=True),
        ])[0]
        reference_graph = reproducing.optimized_model
        histogram = _histogram_diff(recorded_graph, reference_graph)
        if any(c.knob == "graph_optimization_level" for c in best.changes):
            applied = [t for t in recorded_run.applied_transformers if t not in reproducing.applied_transformers]
            transformers, bisect_note = _bisect_transformers(context, applied)
            if len(transformers) == 1:
                summary += f" (graph transformer {transformers[0]})"
            elif transformers:
                summary += f" (graph transformers {', '.join(transformers)}, disabled together)"
            if bisect_note:
                notes.append(bisect_note)
    localisation = None
    if recorded_graph is not None and reference_graph is not None:
        localisation = localise(
            recorded_graph, reference_graph, inputs, first_reproduction, claimed, context.tolerance,
            work_dir / "trace", config=recorded, timeout=timeout,
        )
    return Explanation(
        cause="knob", summary=summary, changes=best.changes, transformers=transformers, op_histogram_diff=histogram,
        localisation=localisation, attempts=tuple(attempts), runs=context.budget.used, notes=tuple(notes),
        also_reproducing=tuple(a.label for a in matching[1:]), recorded_graph=graph, trace=traced,
        untried=search.untried, pairs_cut=search.pairs_cut, budget=budget,
    )


def _noise_trials(context: _Context) -> list[Trial]:
    """Two re-runs of the recorded configuration, each the first session of a fresh process; the
    first also keeps its optimised graph and the transformers that rewrote it (saving and logging
    do not change the numbers)."""
    return [
        Trial(f"rerun {i + 1}", context.recorded, fresh_process=True,
              save_optimized=i == 0, capture_transformers=i == 0)
        for i in range(context.budget.take(2))
    ]


def _noise_floor(
    context: _Context, first: Mapping[str, Array], results: Sequence[TrialResult]
) -> tuple[Explanation | None, TrialResult | None]:
    """Whether the re-runs (``_noise_trials``) disagree with the first reproduction or with each other."""
    recorded_run = results[0] if results and results[0].error is None else None
    disagreeing = []
    for result in results:
        if result.error is not None:
            continue
        if not reproduces(first, result.outputs):
            disagreeing.append(differing_elements(first, result.outputs))
    if not disagreeing and not any(reproduces(context.claimed, r.outputs) for r in results):
        return None, recorded_run
    detail = (
        f"{len(disagreeing)} of {len(results)} fresh re-runs differ from the first"
        if disagreeing else "a fresh re-run reproduced the claim although the first did not"
    )
    return Explanation(
        cause="nondeterministic",
        summary=f"outputs are nondeterministic under the recorded configuration ({detail}); "
        "this is not evidence of tampering",
    ), recorded_run


def _attempt(context: _Context, changes: tuple[KnobChange, ...], result: TrialResult) -> Attempt:
    if result.error is not None:
        return Attempt(changes, False, None, result.error)
    return Attempt(changes, reproduces(context.claimed, result.outputs),
                   differing_elements(context.claimed, result.outputs))


@dataclass(frozen=True)
class _Search:
    attempts: list[Attempt]
    untried: tuple[str, ...] = ()
    pairs_cut: bool = False


def _counterfactuals(
    context: _Context, singles: Sequence[KnobChange], results: Sequence[TrialResult], untried: tuple[str, ...],
    reserve: int,
) -> _Search:
    """The one-knob variants' attempts (run already: ``results``), then pairs of knobs if none reproduces."""
    attempts = [_attempt(context, (change,), result) for change, result in zip(singles, results, strict=True)]
    if any(a.reproduced for a in attempts):
        return _Search(attempts, untried)
    # Greedy pairs: combine the knobs that came closest, within what is left of the budget.
    ranked = sorted(
        (a for a in attempts if a.error is None and a.elements_differing is not None),
        key=lambda a: a.elements_differing if a.elements_differing is not None else 0,
    )
    pairs: list[tuple[KnobChange, ...]] = []
    for i, first in enumerate(ranked):
        for second in ranked[i + 1:]:
            if first.changes[0].knob != second.changes[0].knob:
                pairs.append((first.changes[0], second.changes[0]))
    wanted = len(pairs)
    pairs = pairs[: context.budget.take(min(len(pairs), context.budget.left - reserve))]
    if pairs:
        results = context.run([Trial(", ".join(map(str, p)), context.config_for(p)) for p in pairs])
        attempts += [_attempt(context, pair, result) for pair, result in zip(pairs, results, strict=True)]
    return _Search(attempts, untried, len(pairs) < wanted)


def _bisect_transformers(context: _Context, candidates: list[str]) -> tuple[tuple[str, ...], str]:
    """The smallest set of transformers whose disabling reproduces the claim (one culprit assumed)."""
    if not candidates:
        return (), "no graph transformer reported changing the graph"

    def disabling_reproduces(names: Sequence[str]) -> bool | None:
        if context.budget.take(1) == 0:
            return None
        result = context.run([Trial("disabled " + ",".join(names), context.recorded, tuple(names))])[0]
        return result.error is None and reproduces(context.claimed, result.outputs)

    suspects = list(candidates)
    outcome = disabling_reproduces(suspects)
    if outcome is None:
        return (), "the explain budget ran out before the graph transformers were bisected"
    if not outcome:
        return (), ("disabling the transformers that changed the graph (" + ", ".join(suspects)
                    + ") does not reproduce the claim")
    while len(suspects) > 1:
        half = suspects[: len(suspects) // 2]
        first = disabling_reproduces(half)
        if first is None:
            return tuple(suspects), "the explain budget ran out while bisecting graph transformers"
        if first:
            suspects = half
            continue
        rest = suspects[len(half):]
        second = disabling_reproduces(rest)
        if second is None:
            return tuple(suspects), "the explain budget ran out while bisecting graph transformers"
        if not second:
            return tuple(suspects), "several graph transformers are needed together to explain the difference"
        suspects = rest
    return tuple(suspects), ""


def _histogram_diff(recorded: Path | None, reference: Path | None) -> dict[str, tuple[int, int]]:
    before, after = op_histogram(recorded), op_histogram(reference)
    return {op: (before[op], after[op]) for op in sorted(set(before) | set(after)) if before[op] != after[op]}


def _unexplained(
    context: _Context, attempts: list[Attempt], candidate_model: Path | None, search: _Search
) -> Explanation:
    tried = len(attempts)
    pairs = sum(len(a.changes) == 2 for a in attempts)
    if search.untried:
        left = (f"{len(search.untried)} one-knob variant(s) untried: {', '.join(search.untried[:4])}"
                + (", ..." if len(search.untried) > 4 else ""))
        summary = (f"no configuration tried reproduces the outputs, but the search stopped at its budget "
                   f"of {context.budget.used + context.budget.left} trial runs ({tried} configuration(s) tried; "
                   f"{left}): raise --explain-budget")
    else:
        summary = (f"outputs are not explained by any configuration knob (every one-knob variant and {pairs} "
                   f"pair(s) of knobs tried{', not every pair' if search.pairs_cut else ''})")
    notes: list[str] = []
    if candidate_model is not None and context.budget.take(1):
        result = run_trials(candidate_model, context.inputs, [Trial("candidate", context.recorded)],
                            context.work_dir, timeout=context.timeout)[0]
        if result.error is not None:
            notes.append(f"the candidate model could not be run: {result.error}")
        elif reproduces(context.claimed, result.outputs):
            from ogverify.verify.diff import diff_models

            difference = diff_models(context.model, candidate_model)
            changed = difference.changed_tensor_names()
            summary = (f"outputs reproduce exactly with the candidate model {candidate_model.name}, "
                       f"not with the bundle's model; they differ in {len(changed)} tensor(s): "
                       + ", ".join(changed[:8]) + ("..." if len(changed) > 8 else ""))
            return Explanation(cause="candidate_model", summary=summary, attempts=tuple(attempts),
                               runs=context.budget.used, notes=tuple(difference.summary_lines()))
        else:
            notes.append(f"the candidate model {candidate_model.name} does not reproduce the claim either")
    return Explanation(cause="unexplained", summary=summary, attempts=tuple(attempts), runs=context.budget.used,
                       notes=tuple(notes))
