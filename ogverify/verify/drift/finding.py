"""The drift engine's answer as a report finding: the cause line and the evidence below it.

The cause line names one cause when one is established, and says so when several remain,
ranked by the evidence for each. Environment differences are named by what differs (the CPU
features missing here, the onnxruntime versions), never as two lists, and differences a policy
allows are never cited as a cause.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ogverify.evidence.comparison import ComparisonSpec
from ogverify.report.findings import EnvironmentDifference, Finding, Status
from ogverify.verify.drift.engine import Explanation

MAX_NAMED = 4
_COMMIT = re.compile(r"git-commit-id=([0-9a-f]+)")


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" (+{len(items) - MAX_NAMED} more)" if len(items) > MAX_NAMED else "")


def difference_phrase(difference: EnvironmentDifference) -> str:
    """What differs, in a few words: "onnxruntime 1.20.1 -> 1.32.0", "CPU features avx512f,
    avx512bw missing here"."""
    recorded, current = difference.recorded, difference.current
    if difference.field == "runtime.version":
        return f"onnxruntime {recorded} -> {current}"
    if isinstance(recorded, list) and isinstance(current, list):
        missing = [str(v) for v in recorded if v not in current]
        extra = [str(v) for v in current if v not in recorded]
        what = "CPU features" if difference.field == "cpu.numeric_flags" else difference.field
        parts = []
        if missing:
            parts.append(f"{_listed(missing)} missing here")
        if extra:
            parts.append(f"{_listed(extra)} only here")
        return f"{what} {'; '.join(parts) or 'in another order'}"
    if difference.field == "optimized_graph":
        return "the optimised graph"
    if difference.field == "runtime.build_info":
        before, after = _COMMIT.search(str(recorded)), _COMMIT.search(str(current))
        if before and after:
            return f"another onnxruntime build (commit {before.group(1)} -> {after.group(1)})"
        return "another onnxruntime build"
    return f"{difference.field} {recorded} -> {current}"


def environment_phrase(differences: Sequence[EnvironmentDifference]) -> str:
    """The differences in a few words each, the runtime version first; another build is implied
    by another version and is not named beside it."""
    fields = {d.field for d in differences}
    named = sorted((d for d in differences if not (d.field == "runtime.build_info" and "runtime.version" in fields)),
                   key=lambda d: d.field != "runtime.version")
    return "; ".join(difference_phrase(d) for d in named[:3])


def cause_line(explanation: Explanation, numeric: Sequence[EnvironmentDifference], graph_note: str) -> str:
    """The one-line cause, ranked by the evidence the bundle and this machine give.

    ``numeric``: the environment differences likely to change numerics that no policy allows.
    """
    if explanation.cause != "unexplained":
        return explanation.summary
    traced = explanation.trace
    environment = environment_phrase(numeric)
    if traced is not None and traced.error is None:
        if traced.first is not None:
            line = traced.first.sentence()
            return line + (f"; {environment}" if environment
                           else "; this machine matches the producer's in everything its fingerprint records")
        if traced.claim_reproduced is False:
            return ("the claimed outputs were not produced by this model under the recorded configuration: "
                    "the producer's own run did not reproduce them at pack time, and every traced node output "
                    f"matches the producer's here ({traced.matched} of {traced.compared})")
        return (f"every traced node output matches the producer's at ORT_DISABLE_ALL ({traced.matched} of "
                f"{traced.compared}); the outputs part in onnxruntime's optimised graph at the recorded level"
                + (f", and this machine differs: {environment}" if environment else ""))
    if explanation.budget_exhausted:
        return explanation.summary
    if environment or graph_note:
        why = environment or graph_note
        return ("no configuration knob reproduces the outputs; two explanations remain: this machine computes "
                f"differently ({why}), or the outputs were computed otherwise (another runtime, library or "
                "model); the bundle has no trace (pack --trace) that would tell them apart")
    return (explanation.summary + "; no environment difference here is known to change numerics, so the model, "
            "its inputs or the computation differ from what the producer claims")


def _localisation_children(explanation: Explanation, spec: ComparisonSpec) -> list[Finding]:
    localisation = explanation.localisation
    if localisation is None:
        return []
    exceeds = "is the first to differ" if spec.mode == "exact" else "is the first to exceed the tolerance"
    children = []
    origin, first = localisation.origin, localisation.first_exceeding
    nodes: list[tuple[Any, str]] = []
    if origin is not None and first is not None and origin.node == first.node and origin.output == first.output:
        nodes.append((first, f"originates the error and {exceeds}"))
    else:
        if origin is not None:
            nodes.append((origin, "originates the error (fed the reproducing run's inputs, it still differs)"))
        if first is not None:
            nodes.append((first, exceeds))
    for node, label in nodes:
        size = f", max abs diff {node.max_abs_diff:.3g}" if node.max_abs_diff is not None else ""
        children.append(Finding("drift", node.node, Status.WARN,
                                f"{node.role}: {node.describe()} {label} ({node.elements_differing} "
                                f"elements differ{size})", node.to_json()))
    children += [Finding("drift", "localisation", Status.WARN, note) for note in localisation.notes]
    return children


def _trace_children(explanation: Explanation, summary: str) -> list[Finding]:
    traced = explanation.trace
    if traced is None:
        return [Finding("drift", "trace", Status.WARN,
                        "the bundle has no recorded trace: packed with --trace, it would let this check name the "
                        "first node whose output differs from the producer's")]
    if traced.error is not None:
        return [Finding("drift", "trace", Status.WARN, traced.error)]
    children = []
    if traced.first is not None:
        sentence = traced.first.sentence()
        before = (f"the {traced.matched} node output(s) before it match the producer's bit for bit"
                  if traced.matched else "it is the first node traced")
        text = before if sentence in summary else f"{sentence}; {before}"
        children.append(Finding("drift", "trace", Status.WARN,
                                f"{text} (both traced at ORT_DISABLE_ALL, one thread)", traced.first.to_json()))
    elif explanation.cause != "unexplained":
        children.append(Finding("drift", "trace", Status.PASS,
                                f"every traced node output matches the producer's at ORT_DISABLE_ALL "
                                f"({traced.matched} of {traced.compared})"))
    children += [Finding("drift", "trace", Status.WARN, note) for note in traced.notes]
    return children


def _search_line(explanation: Explanation) -> str:
    tried = len(explanation.attempts)
    line = (f"{explanation.runs} trial runs (fresh onnxruntime sessions) of a budget of {explanation.budget}; "
            + (f"{tried} configuration(s) tried, each the recorded one with one or two knobs changed" if tried
               else "no other configuration tried"))
    if explanation.untried:
        line += f"; not tried: {_listed(list(explanation.untried))}"
    if explanation.pairs_cut:
        line += "; not every pair of knobs was tried"
    return line


def explanation_finding(
    explanation: Explanation, spec: ComparisonSpec, numeric: Sequence[EnvironmentDifference], graph_note: str,
) -> Finding:
    """The explanation finding (a warning: the comparison findings already carry the failure)."""
    summary = cause_line(explanation, numeric, graph_note)
    children = _localisation_children(explanation, spec)
    if explanation.op_histogram_diff:
        ops = ", ".join(f"{op} {a}->{b}" for op, (a, b) in explanation.op_histogram_diff.items())
        children.append(Finding("drift", "optimised graph", Status.WARN,
                                f"op histogram, recorded -> reproducing configuration: {ops}"))
    if graph_note and graph_note not in summary:
        children.append(Finding("drift", "optimised graph", Status.WARN, graph_note))
    if explanation.cause in ("unexplained", "knob"):
        children += _trace_children(explanation, summary)
    if explanation.cause == "unexplained" and summary != explanation.summary:
        children.append(Finding("drift", "search", Status.WARN, explanation.summary))
    children += [Finding("drift", "note", Status.WARN, note) for note in explanation.notes]
    children.append(Finding("drift", "search", Status.PASS, _search_line(explanation)))
    return Finding("drift", "explanation", Status.WARN, summary, explanation.to_json(), tuple(children))
